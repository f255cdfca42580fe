//! The reference server of REFERENCE_APP.md: the fixed reference router
//! ([`zocket_examples::reference::router`]) on a real socket, with either adapter.
//!
//! ```text
//! cargo run --release -p zocket-examples --bin reference -- [--addr 127.0.0.1:0] [--adapter warp|hyper] [--redis URL] [--node NAME]
//! ```
//!
//! - `--addr HOST:PORT` (default `127.0.0.1:3000`; port 0 picks a free one).
//! - `--adapter warp|hyper` (default `warp`): both serve the identical router.
//! - `--redis URL`: the distributed hub ([`zocket_redis::RedisHub`]): processes with
//!   the same Redis (and the same key prefix, env `ZOCKET_REDIS_PREFIX`, default
//!   `zocket`) form one cluster. If Redis does not answer at startup: exit code 1.
//! - `--node NAME`: this process's name in the cluster (default: a random one), in the
//!   logs.
//!
//! The first line on stdout is exactly `listening on ws://HOST:PORT/` (the bound
//! address); WebSocket connections are accepted at `/`. Logs go to stderr (`RUST_LOG`,
//! default `info`). SIGINT / SIGTERM: graceful shutdown (in-flight calls finish, then
//! every socket is closed with 1001), exit code 0.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use warp::Filter;
use zocket_core::Server;
use zocket_examples::reference;

const DEFAULT_ADDR: &str = "127.0.0.1:3000";

const USAGE: &str = "\
usage: reference [--addr HOST:PORT] [--adapter warp|hyper] [--redis URL] [--node NAME]

Serves the Zocket reference app (REFERENCE_APP.md) over WebSocket at /.

  --addr HOST:PORT      where to listen (default 127.0.0.1:3000; port 0 picks a free port)
  --adapter warp|hyper  the HTTP adapter (default warp)
  --redis URL           the distributed hub on Redis (key prefix: env ZOCKET_REDIS_PREFIX, default zocket)
  --node NAME           this node's name in a cluster (with --redis)
  -h, --help            this text";

/// Which adapter serves the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adapter {
    Warp,
    Hyper,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Args {
    addr: SocketAddr,
    adapter: Adapter,
    redis: Option<String>,
    node: Option<String>,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut addr = DEFAULT_ADDR.to_owned();
    let mut adapter = "warp".to_owned();
    let mut redis = None;
    let mut node = None;
    let mut args = args;
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "--addr" => &mut addr,
            "--adapter" => &mut adapter,
            "--redis" => redis.get_or_insert_with(String::new),
            "--node" => node.get_or_insert_with(String::new),
            _ => return Err(format!("unknown argument `{arg}`")),
        };
        *slot = match inline {
            Some(value) => value,
            None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
        };
    }
    let addr = addr
        .parse::<SocketAddr>()
        .map_err(|e| format!("--addr `{addr}` is not HOST:PORT ({e})"))?;
    let adapter = match adapter.as_str() {
        "warp" => Adapter::Warp,
        "hyper" => Adapter::Hyper,
        other => return Err(format!("--adapter `{other}` is not `warp` or `hyper`")),
    };
    Ok(Some(Args {
        addr,
        adapter,
        redis,
        node,
    }))
}

#[tokio::main]
async fn main() -> ExitCode {
    zocket_examples::init_logging();

    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("reference: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let hub = match &args.redis {
        Some(url) => match zocket_examples::redis_hub(url, args.node.as_deref()).await {
            Ok(hub) => Some(hub),
            Err(e) => {
                eprintln!("reference: --redis {url}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => {
            if let Some(node) = &args.node {
                tracing::info!(%node, "--node without --redis: a single node on the in-memory hub");
            }
            None
        }
    };

    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("reference: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("reference: cannot read the bound address: {e}");
            return ExitCode::FAILURE;
        }
    };

    let mut builder = Server::builder(reference::router());
    if let Some(hub) = &hub {
        builder = builder.hub(hub.clone());
    }
    let server = builder.build();
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = match args.adapter {
        Adapter::Warp => {
            let routes = zocket_warp::upgrade(server.clone()).with(warp::trace::request());
            tokio::spawn(
                warp::serve(routes)
                    .incoming(listener)
                    .graceful(async {
                        let _ = http_stopped.await;
                    })
                    .run(),
            )
        }
        // Stops accepting by itself when the shutdown begins.
        Adapter::Hyper => tokio::spawn(zocket_hyper::serve(listener, server.clone())),
    };

    println!("listening on ws://{local}/");
    let _ = std::io::stdout().flush();
    tracing::info!(%local, adapter = ?args.adapter, "reference server listening");

    zocket_examples::run_until_stopped(&server, stop_http, http).await;
    if let Some(hub) = hub {
        hub.close().await;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Result<Option<Args>, String> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_follow_reference_app_md() {
        assert_eq!(
            parse(&[]).unwrap(),
            Some(Args {
                addr: "127.0.0.1:3000".parse().unwrap(),
                adapter: Adapter::Warp,
                redis: None,
                node: None,
            })
        );
    }

    #[test]
    fn every_flag_parses_with_a_space_or_an_equals_sign() {
        let args = parse(&[
            "--addr",
            "0.0.0.0:0",
            "--adapter=hyper",
            "--redis",
            "redis://127.0.0.1/",
            "--node=n1",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(args.addr, "0.0.0.0:0".parse().unwrap());
        assert_eq!(args.adapter, Adapter::Hyper);
        assert_eq!(args.redis.as_deref(), Some("redis://127.0.0.1/"));
        assert_eq!(args.node.as_deref(), Some("n1"));
        assert_eq!(parse(&["-h"]).unwrap(), None);
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        assert!(
            parse(&["--adapter", "actix"])
                .unwrap_err()
                .contains("not `warp` or `hyper`")
        );
        assert!(
            parse(&["--addr"])
                .unwrap_err()
                .contains("--addr needs a value")
        );
        assert!(
            parse(&["--addr", "localhost"])
                .unwrap_err()
                .contains("not HOST:PORT")
        );
        assert!(
            parse(&["--port", "1"])
                .unwrap_err()
                .contains("unknown argument `--port`")
        );
    }
}
