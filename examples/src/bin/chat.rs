//! The chat example: a single-page browser chat and its WebSocket on one port.
//!
//! ```text
//! cargo run -p zocket-examples --bin chat [-- --addr 127.0.0.1:8080] [--metrics 127.0.0.1:9100]
//! ```
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
usage: chat [--addr HOST:PORT] [--metrics HOST:PORT]

Serves the Zocket chat page at / and its WebSocket at /ws on the same port.

  --addr HOST:PORT     where to listen (default 127.0.0.1:8080; port 0 picks a free port)
  --metrics HOST:PORT  serve Prometheus metrics at http://HOST:PORT/metrics
  -h, --help           this text";

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Args {
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
}

fn parse_addr(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .parse::<SocketAddr>()
        .map_err(|e| format!("{flag} `{value}` is not HOST:PORT ({e})"))
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut addr = DEFAULT_ADDR.to_owned();
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
            "--metrics" => {
                let v = args.next().ok_or_else(|| {
                    "--metrics needs a value, e.g. --metrics 127.0.0.1:9100".to_owned()
                })?;
                metrics = Some(parse_addr("--metrics", &v)?);
            }
            other => {
                if let Some(v) = other.strip_prefix("--addr=") {
                    addr = v.to_owned();
                } else if let Some(v) = other.strip_prefix("--metrics=") {
                    metrics = Some(parse_addr("--metrics", v)?);
                } else {
                    return Err(format!("unknown argument `{other}`"));
                }
            }
        }
    }
    Ok(Some(Args {
        addr: parse_addr("--addr", &addr)?,
        metrics,
    }))
}

#[tokio::main]
async fn main() -> ExitCode {
    zocket_examples::init_logging();

    let Args { addr, metrics } = match parse_args(std::env::args().skip(1)) {
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

    let server = Server::new(chat::router());
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
        let at = |addr: &str, metrics: Option<&str>| {
            Some(Args {
                addr: addr.parse().unwrap(),
                metrics: metrics.map(|m| m.parse().unwrap()),
            })
        };
        assert_eq!(parse_args(args(&[])).unwrap(), at("127.0.0.1:8080", None));
        assert_eq!(
            parse_args(args(&["--addr", "0.0.0.0:0"])).unwrap(),
            at("0.0.0.0:0", None)
        );
        assert_eq!(
            parse_args(args(&["--addr=127.0.0.1:9", "--metrics", "127.0.0.1:0"])).unwrap(),
            at("127.0.0.1:9", Some("127.0.0.1:0"))
        );
        assert_eq!(
            parse_args(args(&["--metrics=127.0.0.1:9100"])).unwrap(),
            at("127.0.0.1:8080", Some("127.0.0.1:9100"))
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
