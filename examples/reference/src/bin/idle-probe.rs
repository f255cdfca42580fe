//! Measures what a connection costs the `reference` server: it starts the server as a
//! child process, opens many idle WebSocket connections to it (raw TCP clients, so the
//! probe itself stays small), and reports the server's RSS growth per connection; or it
//! floods the server with pings from a client that never reads and reports the
//! server's peak RSS.
//!
//! ```text
//! ulimit -n 20000
//! cargo build --release -p zocket-examples --bin reference --bin idle-probe
//! target/release/idle-probe --adapter warp --connections 10000
//! target/release/idle-probe --adapter hyper --pings 1000000
//! ```
//!
//! - `--server PATH`: the `reference` binary (default: next to this one).
//! - `--adapter warp|hyper` (default `warp`).
//! - `--connections N` (default 10000): idle connections, opened `--batch B` (default
//!   200) at a time, each counted once its `__welcome` frame arrived.
//! - `--pings N`: instead, one client that sends `N` pings and never reads;
//!   `--ping-bytes B` (default 0, at most 125) is each ping's payload.
//! - `--attach ADDR,PID`: measure a server that is already running (e.g. under a heap
//!   profiler) instead of starting one.
//!
//! Connections go to `127.0.0.1` only. The server's RSS is read from
//! `/proc/PID/status` (`VmRSS`), so this runs on Linux. Output: one `key=value` line.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Measures the `reference` server's RSS per idle connection, or its peak RSS under a
/// ping flood from a client that never reads.
#[derive(Debug, clap::Parser)]
#[command(name = "idle-probe")]
struct Args {
    /// The `reference` binary (default: next to this one).
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// The server's adapter.
    #[arg(long, value_name = "warp|hyper", default_value = "warp")]
    adapter: String,
    /// Idle connections to open, each counted once its `__welcome` frame arrived.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    connections: usize,
    /// Connections opened at a time.
    #[arg(long, value_name = "B", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Instead: one client that sends N pings and never reads.
    #[arg(long, value_name = "N")]
    pings: Option<u64>,
    /// Each ping's payload (a control frame: at most 125).
    #[arg(long, value_name = "B", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=125))]
    ping_bytes: u8,
    /// Measure a server that is already running (e.g. under a heap profiler).
    #[arg(long, value_name = "ADDR,PID", value_parser = parse_attach)]
    attach: Option<(String, u32)>,
}

fn parse_attach(v: &str) -> Result<(String, u32), String> {
    let (addr, pid) = v.split_once(',').ok_or("expected ADDR,PID")?;
    let pid = pid.parse().map_err(|e| format!("PID `{pid}`: {e}"))?;
    Ok((addr.to_owned(), pid))
}

/// The server's resident set size in KiB.
fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("no VmRSS in /proc/PID/status"))
}

/// Start the server on a free port; returns it and its address.
async fn start_server(args: &Args) -> Result<(Child, String), String> {
    let server = match &args.server {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("reference"),
    };
    let mut child = Command::new(&server)
        .args(["--addr", "127.0.0.1:0", "--adapter", &args.adapter])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    let addr = line
        .trim()
        .strip_prefix("listening on ws://")
        .and_then(|rest| rest.strip_suffix('/'))
        .ok_or_else(|| format!("unexpected first line {line:?}"))?
        .to_owned();
    Ok((child, addr))
}

/// Open one WebSocket connection over raw TCP and wait for its `__welcome` frame.
async fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "GET /?userName=probe HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut seen = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed before __welcome"));
        }
        seen.extend_from_slice(&chunk[..n]);
        if !seen.starts_with(b"HTTP/1.1 101") && seen.len() >= 12 {
            return Err(std::io::Error::other(format!(
                "upgrade refused: {}",
                String::from_utf8_lossy(&seen)
            )));
        }
        if seen.windows(9).any(|w| w == b"__welcome") {
            return Ok(stream);
        }
    }
}

async fn idle(args: &Args, pid: u32, addr: &str) -> Result<(), String> {
    // One connection first, so one-off allocations are not counted per connection.
    let warm = connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut open = Vec::with_capacity(args.connections);
    while open.len() < args.connections {
        let n = (args.batch as usize).min(args.connections - open.len());
        let batch: Vec<_> = (0..n)
            .map(|_| {
                let addr = addr.to_owned();
                tokio::spawn(async move { connect(&addr).await })
            })
            .collect();
        for task in batch {
            open.push(
                task.await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("connect #{}: {e}", open.len()))?,
            );
        }
    }
    let established = rss_kib(pid).map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = rss_kib(pid).map_err(|e| e.to_string())?;
    let n = open.len() as u64;
    println!(
        "adapter={} connections={n} connect_secs={:.1} rss_before_kib={before} \
         rss_established_kib={established} rss_idle_kib={settled} \
         bytes_per_connection_established={} bytes_per_connection_idle={}",
        args.adapter,
        started.elapsed().as_secs_f64(),
        (established.saturating_sub(before) * 1024) / n,
        (settled.saturating_sub(before) * 1024) / n,
    );
    drop(open);
    drop(warm);
    Ok(())
}

/// A masked client ping frame with a payload of `len` bytes (mask 0: sent as is).
fn ping_frame(len: usize) -> Vec<u8> {
    let mut frame = vec![0x89, 0x80 | len as u8, 0, 0, 0, 0];
    frame.resize(6 + len, b'p');
    frame
}

async fn ping_flood(args: &Args, pid: u32, addr: &str, pings: u64) -> Result<(), String> {
    let mut stream = connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid).map_err(|e| e.to_string())?;
    let mut peak = before;
    let started = Instant::now();
    let ping = ping_frame(usize::from(args.ping_bytes));
    let chunk: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1000)
        .collect();
    let mut sent = 0u64;
    let mut ended = None;
    while sent < pings {
        match tokio::time::timeout(Duration::from_secs(5), stream.write_all(&chunk)).await {
            Ok(Ok(())) => sent += 1000,
            Ok(Err(e)) => {
                ended = Some(format!("write failed: {e}"));
                break;
            }
            Err(_) => {
                ended = Some("writes stuck for 5 s (the server stopped reading)".into());
                break;
            }
        }
        if sent.is_multiple_of(50_000) {
            peak = peak.max(rss_kib(pid).map_err(|e| e.to_string())?);
        }
    }
    peak = peak.max(rss_kib(pid).map_err(|e| e.to_string())?);
    println!(
        "adapter={} ping_bytes={} pings_sent={sent} secs={:.1} rss_before_kib={before} rss_peak_kib={peak} \
         growth_kib={} ended={:?}",
        args.adapter,
        args.ping_bytes,
        started.elapsed().as_secs_f64(),
        peak - before,
        ended.as_deref().unwrap_or("no: every ping was written"),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    // `--help` prints the usage; a bad argument says what is wrong (exit 2).
    let args = <Args as clap::Parser>::parse();
    let result = async {
        if let Some((addr, pid)) = args.attach.clone() {
            return match args.pings {
                Some(pings) => ping_flood(&args, pid, &addr, pings).await,
                None => idle(&args, pid, &addr).await,
            };
        }
        let (mut child, addr) = start_server(&args).await?;
        let pid = child.id().ok_or("the server exited")?;
        let result = match args.pings {
            Some(pings) => ping_flood(&args, pid, &addr, pings).await,
            None => idle(&args, pid, &addr).await,
        };
        let _ = child.kill().await;
        result
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idle-probe: {e}");
            ExitCode::FAILURE
        }
    }
}
