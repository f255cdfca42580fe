//! The reference server of REFERENCE_APP.md: the fixed reference router
//! ([`zocket_examples::reference::router`]) on a real socket, with either adapter.
//!
//! ```text
//! cargo run --release -p zocket-examples --bin reference -- [--addr 127.0.0.1:0] [--adapter warp|hyper] [--redis URL] [--node NAME] [--metrics ADDR]
//! ```
//!
//! - `--addr HOST:PORT` (default `127.0.0.1:3000`; port 0 picks a free one).
//! - `--adapter warp|hyper` (default `warp`): both serve the identical router.
//! - `--max-connections N`, `--max-connections-per-ip N`: the admission limits
//!   ([`zocket_core::ServerConfig::max_connections`] and `max_connections_per_ip`;
//!   defaults 65 536 and 16 384); over them a handshake is answered `503`.
//! - `--redis URL`: the distributed hub ([`zocket_redis::RedisHub`]): processes with
//!   the same Redis (and the same key prefix, env `ZOCKET_REDIS_PREFIX`, default
//!   `zocket`) form one cluster. If Redis does not answer at startup: exit code 1.
//! - `--node NAME`: this process's name in the cluster (default: a random one), in the
//!   logs.
//! - `--metrics ADDR`: serve Prometheus metrics at `http://ADDR/metrics` (port 0 picks a
//!   free one; the second stdout line is then `metrics on http://HOST:PORT/metrics`),
//!   with the node's name as the `node` label when `--node` is given.
//!
//! The first line on stdout is exactly `listening on ws://HOST:PORT/` (the bound
//! address); WebSocket connections are accepted at `/`. Logs go to stderr (`RUST_LOG`,
//! default `info`). SIGINT / SIGTERM: graceful shutdown (in-flight calls finish, then
//! every socket is closed with 1001), exit code 0.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use warp::Filter;
use zocket_core::Server;
use zocket_examples::reference;

const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// Which adapter serves the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Adapter {
    /// `zocket_warp::upgrade` served by `zocket_warp::serve`.
    Warp,
    /// `zocket_hyper::serve`.
    Hyper,
}

/// Serves the Zocket reference app (REFERENCE_APP.md) over WebSocket at /.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "reference", args_override_self = true)]
struct Args {
    /// Where to listen (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADDR)]
    addr: SocketAddr,
    /// The HTTP adapter.
    #[arg(long, value_enum, default_value = "warp")]
    adapter: Adapter,
    /// The distributed hub on Redis (key prefix: env ZOCKET_REDIS_PREFIX, default zocket).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// This node's name in a cluster (with --redis).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    metrics: Option<SocketAddr>,
    /// `--max-connections` / `--max-connections-per-ip`: the admission limits.
    #[command(flatten)]
    limits: Limits,
}

/// The admission limits from the command line (`None`: the library's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::Args)]
struct Limits {
    /// Connections at once, in total (default 65536; over it: 503).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Connections at once from one IP address (default 16384).
    #[arg(long, value_name = "N")]
    max_connections_per_ip: Option<usize>,
}

impl Limits {
    fn apply(self, config: zocket_core::ServerConfig) -> zocket_core::ServerConfig {
        let max_connections = self.max_connections.unwrap_or(config.max_connections);
        let per_ip = self
            .max_connections_per_ip
            .unwrap_or(config.max_connections_per_ip);
        config
            .max_connections(max_connections)
            .max_connections_per_ip(per_ip)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    zocket_examples::init_logging();

    // `--help` prints the usage and exits 0; a bad argument says what is wrong, exit 2.
    let args = Args::parse();
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

    // Before the server exists, so that every metric reaches the recorder.
    let metrics = match args.metrics {
        Some(addr) => match zocket_examples::prometheus::serve(addr, args.node.as_deref()).await {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("reference: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };

    let config = args.limits.apply(zocket_core::ServerConfig::default());
    let mut builder = Server::builder(reference::router()).config(config);
    if let Some(hub) = &hub {
        builder = builder.hub(hub.clone());
    }
    let server = builder.build();
    let (stop_http, _http_stopped) = tokio::sync::oneshot::channel::<()>();
    // Both stop accepting by themselves when the shutdown begins, and apply the
    // handshake timeout.
    let http = match args.adapter {
        Adapter::Warp => {
            let routes = zocket_warp::upgrade(server.clone()).with(warp::trace::request());
            tokio::spawn(zocket_warp::serve(listener, routes, server.clone()))
        }
        Adapter::Hyper => tokio::spawn(zocket_hyper::serve(listener, server.clone())),
    };

    println!("listening on ws://{local}/");
    if let Some(metrics) = &metrics {
        println!("metrics on http://{}/metrics", metrics.addr);
    }
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
    use clap::error::ErrorKind;

    fn parse(a: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("reference").chain(a.iter().copied()))
    }

    #[test]
    fn defaults_follow_reference_app_md() {
        assert_eq!(
            parse(&[]).unwrap(),
            Args {
                addr: "127.0.0.1:3000".parse().unwrap(),
                adapter: Adapter::Warp,
                redis: None,
                node: None,
                metrics: None,
                limits: Limits::default(),
            }
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
            "--metrics",
            "127.0.0.1:9100",
        ])
        .unwrap();
        assert_eq!(args.addr, "0.0.0.0:0".parse().unwrap());
        assert_eq!(args.adapter, Adapter::Hyper);
        assert_eq!(args.redis.as_deref(), Some("redis://127.0.0.1/"));
        assert_eq!(args.node.as_deref(), Some("n1"));
        assert_eq!(args.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(parse(&["-h"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
        assert_eq!(
            parse(&["--help"]).unwrap_err().kind(),
            ErrorKind::DisplayHelp
        );
        let limits = parse(&["--max-connections", "10", "--max-connections-per-ip=2"])
            .unwrap()
            .limits;
        let config = limits.apply(zocket_core::ServerConfig::default());
        assert_eq!(
            (config.max_connections, config.max_connections_per_ip),
            (10, 2)
        );
        let e = parse(&["--max-connections", "many"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("many"), "{e}");
        // A later flag wins (the tests restart a process on a port given after the default).
        let args = parse(&["--addr", "127.0.0.1:0", "--addr", "127.0.0.1:9"]).unwrap();
        assert_eq!(args.addr, "127.0.0.1:9".parse().unwrap());
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        let e = parse(&["--adapter", "actix"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert!(
            e.to_string().contains("[possible values: warp, hyper]"),
            "{e}"
        );
        let e = parse(&["--addr"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert!(e.to_string().contains("--addr <HOST:PORT>"), "{e}");
        let e = parse(&["--addr", "localhost"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("'localhost'"), "{e}");
        let e = parse(&["--metrics", "9100"]).unwrap_err();
        assert!(
            e.to_string().contains("'9100' for '--metrics <HOST:PORT>'"),
            "{e}"
        );
        let e = parse(&["--port", "1"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        assert!(e.to_string().contains("'--port'"), "{e}");
    }
}
