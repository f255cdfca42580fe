//! The chat example: a single-page browser chat and its WebSocket on one port.
//!
//! ```text
//! cargo run -p zocket-example-chat [-- --addr 127.0.0.1:8080] [--redis URL] [--metrics 127.0.0.1:9100]
//! ```
//!
//! With `--redis URL` several chat processes (on different ports or machines) form one
//! chat: messages, presence, member lists and private messages cross processes
//! (`zocket_redis::RedisHub`; key prefix from env `ZOCKET_REDIS_PREFIX`, default
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

use clap::Parser;
use warp::Filter;
use zocket_core::Server;
use zocket_example_chat as chat;

const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Serves the Zocket chat page at / and its WebSocket at /ws on the same port.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "chat", args_override_self = true)]
struct ChatArgs {
    /// Where to listen (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADDR)]
    addr: SocketAddr,
    /// One chat across processes on this Redis (prefix: env ZOCKET_REDIS_PREFIX).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    metrics: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    zocket_examples::init_logging();

    let ChatArgs {
        addr,
        redis,
        metrics,
    } = ChatArgs::parse(); // `--help`: the usage, exit 0; a bad argument: exit 2.
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
    use clap::error::ErrorKind;

    fn parse(a: &[&str]) -> Result<ChatArgs, clap::Error> {
        ChatArgs::try_parse_from(std::iter::once("chat").chain(a.iter().copied()))
    }

    #[test]
    fn addr_defaults_and_parses() {
        let addr = |a: &[&str]| parse(a).unwrap().addr;
        assert_eq!(addr(&[]), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(addr(&["--addr", "0.0.0.0:0"]), "0.0.0.0:0".parse().unwrap());
        assert_eq!(
            addr(&["--addr=127.0.0.1:9"]),
            "127.0.0.1:9".parse().unwrap()
        );
        // A later `--addr` wins (the tests restart on a port given after the default).
        assert_eq!(
            addr(&["--addr", "127.0.0.1:0", "--addr", "127.0.0.1:9"]),
            "127.0.0.1:9".parse().unwrap()
        );
        let redis = |a: &[&str]| parse(a).unwrap().redis;
        assert_eq!(redis(&[]), None);
        assert_eq!(
            redis(&["--redis", "redis://r/"]).as_deref(),
            Some("redis://r/")
        );
        assert_eq!(
            redis(&["--redis=redis://r/"]).as_deref(),
            Some("redis://r/")
        );
        let metrics = |a: &[&str]| parse(a).unwrap().metrics;
        assert_eq!(metrics(&[]), None);
        assert_eq!(
            metrics(&["--metrics", "127.0.0.1:0"]),
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            metrics(&["--metrics=127.0.0.1:9100"]),
            Some("127.0.0.1:9100".parse().unwrap())
        );
        assert_eq!(
            parse(&["--help"]).unwrap_err().kind(),
            ErrorKind::DisplayHelp
        );
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        let e = parse(&["--addr"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("a value is required for '--addr <HOST:PORT>'"),
            "{e}"
        );
        let e = parse(&["--addr", "nope"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        let e = parse(&["--metrics", "9100"]).unwrap_err();
        assert!(
            e.to_string().contains("'9100' for '--metrics <HOST:PORT>'"),
            "{e}"
        );
        let e = parse(&["--port", "1"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
    }
}
