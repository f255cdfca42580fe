//! The chat example: a single-page browser chat and its WebSocket on one port.
//!
//! ```text
//! cargo run -p zocket-examples --bin chat [-- --addr 127.0.0.1:8080] [--redis URL] [--metrics 127.0.0.1:9100]
//! ```
//!
//! With `--redis URL` several chat processes (on different ports or machines) form one
//! chat: messages, presence, member lists and private messages cross processes
//! ([`zocket_redis::RedisHub`]; key prefix from env `ZOCKET_REDIS_PREFIX`, default
//! `zocket`).
//!
//! Serves the page at `/` and the Zocket WebSocket at `/ws` (warp adapter, in-memory
//! hub). The first line on stdout says where to open it:
//! `chat on http://127.0.0.1:8080/ (WebSocket ws://127.0.0.1:8080/ws)`. `--addr` with
//! port 0 picks a free port. `--metrics HOST:PORT` serves Prometheus metrics at
//! `http://HOST:PORT/metrics` (then the second stdout line is
//! `metrics on http://HOST:PORT/metrics`). Logs go to stderr (`RUST_LOG`, default `info`).
//! Ctrl-C / SIGTERM: graceful shutdown (open sockets are closed with 1001), exit 0.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use warp::Filter;
use zocket_core::Server;
use zocket_examples::chat;

const DEFAULT_ADDR: &str = "127.0.0.1:8080";

const USAGE: &str = "\
usage: chat [--addr HOST:PORT] [--redis URL] [--metrics HOST:PORT]

Serves the Zocket chat page at / and its WebSocket at /ws on the same port.

  --addr HOST:PORT   where to listen (default 127.0.0.1:8080; port 0 picks a free port)
  --redis URL        one chat across processes on this Redis (prefix: env ZOCKET_REDIS_PREFIX)
  --metrics HOST:PORT  serve Prometheus metrics at http://HOST:PORT/metrics
  -h, --help         this text";

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChatArgs {
    addr: SocketAddr,
    redis: Option<String>,
    metrics: Option<SocketAddr>,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<ChatArgs>, String> {
    let mut addr = DEFAULT_ADDR.to_owned();
    let mut redis = None;
    let mut metrics = None;
    let mut args = args;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--addr" => {
                addr = args
                    .next()
                    .ok_or_else(|| "--addr needs a value, e.g. --addr 127.0.0.1:8080".to_owned())?
            }
            "--redis" => {
                redis = Some(args.next().ok_or_else(|| {
                    "--redis needs a value, e.g. --redis redis://127.0.0.1:6379/".to_owned()
                })?)
            }
            "--metrics" => {
                metrics = Some(args.next().ok_or_else(|| {
                    "--metrics needs a value, e.g. --metrics 127.0.0.1:9100".to_owned()
                })?)
            }
            other => match (
                other.strip_prefix("--addr="),
                other.strip_prefix("--redis="),
                other.strip_prefix("--metrics="),
            ) {
                (Some(v), _, _) => addr = v.to_owned(),
                (_, Some(v), _) => redis = Some(v.to_owned()),
                (_, _, Some(v)) => metrics = Some(v.to_owned()),
                _ => return Err(format!("unknown argument `{other}`")),
            },
        }
    }
    let addr = addr
        .parse::<SocketAddr>()
        .map_err(|e| format!("--addr `{addr}` is not HOST:PORT ({e})"))?;
    let metrics = metrics
        .map(|m| {
            m.parse::<SocketAddr>()
                .map_err(|e| format!("--metrics `{m}` is not HOST:PORT ({e})"))
        })
        .transpose()?;
    Ok(Some(ChatArgs {
        addr,
        redis,
        metrics,
    }))
}

#[tokio::main]
async fn main() -> ExitCode {
    zocket_examples::init_logging();

    let ChatArgs {
        addr,
        redis,
        metrics,
    } = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("chat: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("chat: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chat: cannot read the bound address: {e}");
            return ExitCode::FAILURE;
        }
    };
    // An unspecified address (0.0.0.0) is not something a browser can open.
    let shown = if local.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port())
    } else {
        local
    };

    // Before the server exists, so that every metric reaches the recorder.
    let metrics = match metrics {
        Some(addr) => match zocket_examples::prometheus::serve(addr, None).await {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("chat: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };

    let (server, hub) = match &redis {
        None => (Server::new(chat::router()), None),
        Some(url) => {
            let hub = match zocket_examples::redis_hub(url, None).await {
                Ok(hub) => hub,
                Err(e) => {
                    eprintln!("chat: --redis {url}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let prefix =
                std::env::var("ZOCKET_REDIS_PREFIX").unwrap_or_else(|_| "zocket".to_owned());
            let names = match chat::ChatCluster::connect(url, &prefix).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("chat: --redis {url}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let server = Server::builder(chat::router())
                .state(chat::ChatState::clustered(names))
                .hub(hub.clone())
                .build();
            (server, Some(hub))
        }
    };
    let page = warp::path::end()
        .and(warp::get())
        .map(|| warp::reply::html(chat::PAGE));
    let ws = warp::path("ws").and(zocket_warp::upgrade(server.clone()));
    let routes = page.or(ws).with(warp::trace::request());

    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(
        warp::serve(routes)
            .incoming(listener)
            .graceful(async {
                let _ = http_stopped.await;
            })
            .run(),
    );

    println!("chat on http://{shown}/ (WebSocket ws://{shown}/ws)");
    if let Some(metrics) = &metrics {
        println!("metrics on http://{}/metrics", metrics.addr);
    }
    let _ = std::io::stdout().flush();
    tracing::info!(%local, "chat example listening; open the page in two browser tabs");

    zocket_examples::run_until_stopped(&server, stop_http, http).await;
    if let Some(hub) = hub {
        hub.close().await;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> impl Iterator<Item = String> {
        a.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn addr_defaults_and_parses() {
        let addr = |a: &[&str]| parse_args(args(a)).unwrap().map(|c| c.addr);
        assert_eq!(addr(&[]), Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(
            addr(&["--addr", "0.0.0.0:0"]),
            Some("0.0.0.0:0".parse().unwrap())
        );
        assert_eq!(
            addr(&["--addr=127.0.0.1:9"]),
            Some("127.0.0.1:9".parse().unwrap())
        );
        let redis = |a: &[&str]| parse_args(args(a)).unwrap().and_then(|c| c.redis);
        assert_eq!(redis(&[]), None);
        assert_eq!(
            redis(&["--redis", "redis://r/"]).as_deref(),
            Some("redis://r/")
        );
        assert_eq!(
            redis(&["--redis=redis://r/"]).as_deref(),
            Some("redis://r/")
        );
        let metrics = |a: &[&str]| parse_args(args(a)).unwrap().and_then(|c| c.metrics);
        assert_eq!(metrics(&[]), None);
        assert_eq!(
            metrics(&["--metrics", "127.0.0.1:0"]),
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            metrics(&["--metrics=127.0.0.1:9100"]),
            Some("127.0.0.1:9100".parse().unwrap())
        );
        assert_eq!(parse_args(args(&["--help"])).unwrap(), None);
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        assert!(
            parse_args(args(&["--addr"]))
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse_args(args(&["--addr", "nope"]))
                .unwrap_err()
                .contains("not HOST:PORT")
        );
        assert!(
            parse_args(args(&["--metrics", "9100"]))
                .unwrap_err()
                .contains("--metrics `9100` is not HOST:PORT")
        );
        assert!(
            parse_args(args(&["--port", "1"]))
                .unwrap_err()
                .contains("unknown argument `--port`")
        );
    }
}
