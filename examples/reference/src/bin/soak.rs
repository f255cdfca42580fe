//! The soak run: thousands of raw WebSocket clients against the reference server in
//! this process (127.0.0.1 only), for a fixed time; see [`zocket_examples::soak`].
//!
//! ```text
//! cargo run --release -p zocket-examples --bin soak -- [--clients 2000] [--secs 120] [--rooms 50] [--adapter warp|hyper]
//! ```
//!
//! Prints the figures; exit code 1 when an invariant failed.

use std::process::ExitCode;
use std::time::Duration;

use zocket_examples::soak::{self, SoakConfig};

#[tokio::main]
async fn main() -> ExitCode {
    zocket_examples::init_logging();
    let mut cfg = SoakConfig {
        clients: 2000,
        duration: Duration::from_secs(120),
        rooms: 50,
        hyper: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} `{value}`: {e}"))
        };
        let parsed = match flag.as_str() {
            "--clients" => number().map(|n| cfg.clients = n as usize),
            "--secs" => number().map(|n| cfg.duration = Duration::from_secs(n)),
            "--rooms" => number().map(|n| cfg.rooms = n.max(1) as usize),
            "--adapter" => match value.as_str() {
                "warp" => {
                    cfg.hyper = false;
                    Ok(())
                }
                "hyper" => {
                    cfg.hyper = true;
                    Ok(())
                }
                other => Err(format!("--adapter `{other}` is not warp or hyper")),
            },
            other => Err(format!("unknown argument `{other}`")),
        };
        if let Err(e) = parsed {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    }
    let report = soak::run(cfg.clone()).await;
    println!(
        "soak: {} clients, {} adapter, {:.1} s: {} sessions, {} calls, {} replies, {} lost, \
         {} unexpected replies, {} ticks, {} outside their room, {} failures; after: {} \
         connections, admitted {:?}, {} rooms with members; RSS KiB before {} / peak {} / after {}",
        cfg.clients,
        if cfg.hyper { "hyper" } else { "warp" },
        report.elapsed.as_secs_f64(),
        report.sessions,
        report.calls,
        report.replies,
        report.lost,
        report.unexpected_replies,
        report.ticks,
        report.ticks_outside_room,
        report.failures,
        report.connections_after,
        report.admitted_after,
        report.rooms_left,
        report.rss_kib.0,
        report.rss_kib.1,
        report.rss_kib.2,
    );
    for e in &report.errors {
        eprintln!("soak: {e}");
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
