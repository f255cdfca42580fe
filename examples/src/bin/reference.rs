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
//! - `--message-rate N|off`: messages per second per connection (also its burst), or no
//!   limit ([`zocket_core::ServerConfig::message_rate`]; default 10 000); a connection
//!   over it is closed with 1008. The benchmarks' pipelined scenario goes past the default.
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

use warp::Filter;
use zocket_core::Server;
use zocket_examples::reference;

const DEFAULT_ADDR: &str = "127.0.0.1:3000";

const USAGE: &str = "\
usage: reference [--addr HOST:PORT] [--adapter warp|hyper] [--redis URL] [--node NAME] [--metrics HOST:PORT]
                 [--max-connections N] [--max-connections-per-ip N] [--message-rate N|off]

Serves the Zocket reference app (REFERENCE_APP.md) over WebSocket at /.

  --addr HOST:PORT      where to listen (default 127.0.0.1:3000; port 0 picks a free port)
  --adapter warp|hyper  the HTTP adapter (default warp)
  --redis URL           the distributed hub on Redis (key prefix: env ZOCKET_REDIS_PREFIX, default zocket)
  --node NAME           this node's name in a cluster (with --redis)
  --metrics HOST:PORT   serve Prometheus metrics at http://HOST:PORT/metrics
  --max-connections N   connections at once, in total (default 65536; over it: 503)
  --max-connections-per-ip N
                        connections at once from one IP address (default 16384)
  --message-rate N|off  messages per second per connection, also the burst (default 10000;
                        over it: close 1008), or no limit
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
    metrics: Option<SocketAddr>,
    /// `--max-connections` / `--max-connections-per-ip`: the admission limits.
    limits: Limits,
}

/// The admission limits from the command line (`None`: the library's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Limits {
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    /// `--message-rate`: `Some(None)` is `off`.
    message_rate: Option<Option<u32>>,
}

impl Limits {
    fn apply(self, config: zocket_core::ServerConfig) -> zocket_core::ServerConfig {
        zocket_core::ServerConfig {
            max_connections: self.max_connections.unwrap_or(config.max_connections),
            max_connections_per_ip: self
                .max_connections_per_ip
                .unwrap_or(config.max_connections_per_ip),
            message_rate: match self.message_rate {
                None => config.message_rate,
                Some(None) => None,
                Some(Some(n)) => Some(zocket_core::RateLimit {
                    per_second: n,
                    burst: n,
                }),
            },
            ..config
        }
    }
}

fn parse_count(flag: &str, value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .map_err(|e| format!("{flag} `{value}` is not a count ({e})"))
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut addr = DEFAULT_ADDR.to_owned();
    let mut adapter = "warp".to_owned();
    let mut redis = None;
    let mut node = None;
    let mut metrics = None;
    let mut max_connections = None;
    let mut max_connections_per_ip = None;
    let mut message_rate = None;
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
            "--metrics" => metrics.get_or_insert_with(String::new),
            "--max-connections" => max_connections.get_or_insert_with(String::new),
            "--max-connections-per-ip" => max_connections_per_ip.get_or_insert_with(String::new),
            "--message-rate" => message_rate.get_or_insert_with(String::new),
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
    let metrics = metrics
        .map(|m| {
            m.parse::<SocketAddr>()
                .map_err(|e| format!("--metrics `{m}` is not HOST:PORT ({e})"))
        })
        .transpose()?;
    let limits = Limits {
        max_connections: max_connections
            .map(|v| parse_count("--max-connections", &v))
            .transpose()?,
        max_connections_per_ip: max_connections_per_ip
            .map(|v| parse_count("--max-connections-per-ip", &v))
            .transpose()?,
        message_rate: match message_rate.as_deref() {
            None => None,
            Some("off") => Some(None),
            Some(v) => Some(Some(
                u32::try_from(parse_count("--message-rate", v)?)
                    .map_err(|_| format!("--message-rate `{v}` is too large"))?,
            )),
        },
    };
    Ok(Some(Args {
        addr,
        adapter,
        redis,
        node,
        metrics,
        limits,
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
                metrics: None,
                limits: Limits::default(),
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
            "--metrics",
            "127.0.0.1:9100",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(args.addr, "0.0.0.0:0".parse().unwrap());
        assert_eq!(args.adapter, Adapter::Hyper);
        assert_eq!(args.redis.as_deref(), Some("redis://127.0.0.1/"));
        assert_eq!(args.node.as_deref(), Some("n1"));
        assert_eq!(args.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(parse(&["-h"]).unwrap(), None);
        let limits = parse(&["--max-connections", "10", "--max-connections-per-ip=2"])
            .unwrap()
            .unwrap()
            .limits;
        let config = limits.apply(zocket_core::ServerConfig::default());
        assert_eq!(
            (config.max_connections, config.max_connections_per_ip),
            (10, 2)
        );
        let rate = |a: &[&str]| {
            parse(a)
                .unwrap()
                .unwrap()
                .limits
                .apply(zocket_core::ServerConfig::default())
                .message_rate
        };
        assert_eq!(rate(&[]), zocket_core::ServerConfig::default().message_rate);
        assert_eq!(rate(&["--message-rate", "off"]), None);
        assert_eq!(
            rate(&["--message-rate=50"]),
            Some(zocket_core::RateLimit {
                per_second: 50,
                burst: 50
            })
        );
        assert!(
            parse(&["--message-rate", "fast"])
                .unwrap_err()
                .contains("not a count")
        );
        assert!(
            parse(&["--max-connections", "many"])
                .unwrap_err()
                .contains("not a count")
        );
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
            parse(&["--metrics", "9100"])
                .unwrap_err()
                .contains("--metrics `9100` is not HOST:PORT")
        );
        assert!(
            parse(&["--port", "1"])
                .unwrap_err()
                .contains("unknown argument `--port`")
        );
    }
}
