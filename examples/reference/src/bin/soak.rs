//! The soak run (issue 9): the reference server in this process, thousands of raw
//! WebSocket clients in a child process (127.0.0.1 only), for a fixed time, in one or
//! more rounds; see [`zocket_examples::soak`].
//!
//! ```text
//! cargo run --release -p zocket-examples --bin soak -- [--clients 2000] [--secs 120] \
//!     [--rooms 50] [--adapter warp|hyper] [--rounds 2] [--server-cpu 0] [--client-cpu 1] \
//!     [--reply-bound-secs 60]
//! ```
//!
//! `--server-cpu` / `--client-cpu` pin the server process and the client process to one
//! core each (`sched_setaffinity`, like `taskset -c`). Per round it prints the clients'
//! figures and the server's counters and RSS; exit code 1 when an invariant failed.
//!
//! RSS is the server process's own (`VmRSS` of `/proc/self/status`, KiB): *before* once
//! the server listens and no client has connected; *peak* the highest value sampled
//! every 100 ms during the round; *after* once every connection has ended
//! (`Server::wait_until`, an event wait); *trimmed* after that and `malloc_trim(0)` (glibc hands its free
//! memory back to the kernel; what remains is memory in use plus fragmentation). *Heap in
//! use* is the allocator's own count of live bytes over every arena (glibc `malloc_info`,
//! after the trim), free of retention and fragmentation. A leak grows both round after round; allocator
//! retention grows neither.

use std::process::ExitCode;
use std::time::Duration;

use zocket_examples::soak::{self, ClientReport, Counts, SoakConfig, SoakServer};

/// The soak run: the reference server here, thousands of clients in a child process, in
/// rounds; exit code 1 when an invariant failed.
#[derive(Debug, clap::Parser)]
#[command(name = "soak")]
struct Cli {
    /// Concurrent clients.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    clients: usize,
    /// How long clients keep starting sessions, per round.
    #[arg(long, value_name = "S", default_value_t = 120)]
    secs: u64,
    /// Rooms to pick from.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    rooms: u64,
    /// The server's adapter.
    #[arg(long, value_enum, default_value = "warp")]
    adapter: AdapterArg,
    /// Rounds, each with a fresh client process.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: u64,
    /// Pin the server process to this core.
    #[arg(long, value_name = "CPU")]
    server_cpu: Option<usize>,
    /// Pin the client process to this core.
    #[arg(long, value_name = "CPU")]
    client_cpu: Option<usize>,
    /// How long a client waits for one reply before counting it lost (it reads all the while).
    #[arg(long, value_name = "S", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    reply_bound_secs: u64,
    /// Internal: run the clients against this address and print their report.
    #[arg(long, value_name = "ADDR", hide = true)]
    drive: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AdapterArg {
    Warp,
    Hyper,
}

struct Args {
    cfg: SoakConfig,
    rounds: usize,
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
    /// Internal: run the clients against this address and print their report.
    drive: Option<std::net::SocketAddr>,
}

impl From<Cli> for Args {
    fn from(cli: Cli) -> Self {
        let cfg = SoakConfig {
            clients: cli.clients,
            duration: Duration::from_secs(cli.secs),
            rooms: usize::try_from(cli.rooms).unwrap_or(usize::MAX),
            hyper: cli.adapter == AdapterArg::Hyper,
            reply_bound: Duration::from_secs(cli.reply_bound_secs),
            ..SoakConfig::default()
        };
        Self {
            cfg,
            rounds: usize::try_from(cli.rounds).unwrap_or(usize::MAX),
            server_cpu: cli.server_cpu,
            client_cpu: cli.client_cpu,
            drive: cli.drive,
        }
    }
}

/// Pin this process (the calling thread, and every thread it starts afterwards) to one
/// core.
fn pin(cpu: usize) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within it for
    // cpu < CPU_SETSIZE (checked); sched_setaffinity only reads the set.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(format!("cpu {cpu} is out of range"));
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "sched_setaffinity({cpu}): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Hand the allocator's free memory back to the kernel (glibc); whether anything was
/// released.
fn malloc_trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Bytes the allocator has handed out and not got back, over every arena (glibc's
/// `malloc_info`: system bytes minus free chunks, plus mmapped chunks): the live heap,
/// whatever the allocator retains or fragmentation costs. `None` elsewhere.
fn heap_in_use() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut buf: *mut libc::c_char = std::ptr::null_mut();
        let mut len: libc::size_t = 0;
        // SAFETY: open_memstream writes the buffer pointer and length, which stay valid
        // until we free the buffer; malloc_info writes to the stream; fclose flushes it.
        let xml = unsafe {
            let f = libc::open_memstream(&mut buf, &mut len);
            if f.is_null() {
                return None;
            }
            let ok = libc::malloc_info(0, f) == 0;
            libc::fclose(f);
            let text = ok.then(|| {
                String::from_utf8_lossy(std::slice::from_raw_parts(buf as *const u8, len))
                    .into_owned()
            });
            libc::free(buf.cast());
            text?
        };
        // The totals over every arena follow the last `</heap>`.
        let totals = &xml[xml.rfind("</heap>").map_or(0, |i| i + 7)..];
        let field = |tag: &str| -> Option<u64> {
            let at = totals.find(tag)? + tag.len();
            let rest = &totals[at..];
            let size = rest.find("size=\"")? + 6;
            let end = rest[size..].find('"')? + size;
            rest[size..end].parse().ok()
        };
        let current = field("<system type=\"current\"")?;
        let fast = field("<total type=\"fast\"")?;
        let free = field("<total type=\"rest\"")?;
        let mmap = field("<total type=\"mmap\"")?;
        Some((current + mmap).saturating_sub(fast + free))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// `VmHWM` of `/proc/self/status` (the kernel's peak RSS), KiB.
fn hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn runtime() -> tokio::runtime::Runtime {
    // The default worker count follows the affinity set by `pin`.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn main() -> ExitCode {
    // `--help` prints the usage; a bad argument says what is wrong (exit 2).
    let args = Args::from(<Cli as clap::Parser>::parse());
    // Quiet by default: the reference app logs every connection at INFO.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(addr) = args.drive {
        // The client process.
        if let Some(Err(e)) = args.client_cpu.map(pin) {
            eprintln!("soak clients: {e}");
            return ExitCode::from(2);
        }
        let report = runtime().block_on(soak::drive(addr, &args.cfg));
        match serde_json::to_string(&report) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("soak clients: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    if let Some(Err(e)) = args.server_cpu.map(pin) {
        eprintln!("soak: {e}");
        return ExitCode::from(2);
    }
    match runtime().block_on(server_side(&args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

/// One round: the client process, sampled; its report.
async fn round(
    addr: std::net::SocketAddr,
    args: &Args,
    peak: &mut u64,
) -> Result<ClientReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let c = &args.cfg;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["--drive", &addr.to_string()])
        .args(["--clients", &c.clients.to_string()])
        .args(["--secs", &c.duration.as_secs().to_string()])
        .args(["--rooms", &c.rooms.to_string()])
        .args(["--reply-bound-secs", &c.reply_bound.as_secs().to_string()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(cpu) = args.client_cpu {
        cmd.args(["--client-cpu", &cpu.to_string()]);
    }
    let child = cmd.spawn().map_err(|e| format!("spawn the clients: {e}"))?;
    let output = child.wait_with_output();
    tokio::pin!(output);
    let mut sample = tokio::time::interval(Duration::from_millis(100));
    let output = loop {
        tokio::select! {
            out = &mut output => break out.map_err(|e| format!("the client process: {e}"))?,
            _ = sample.tick() => *peak = (*peak).max(soak::rss_kib()),
        }
    };
    if !output.status.success() {
        return Err(format!("the client process failed: {}", output.status));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).map_err(|e| format!("the clients' report: {e}: {text}"))
}

fn show_counts(c: &Counts) -> String {
    format!(
        "connections {}, admitted {:?}, hub connections {}, hub rooms {}, tasks {}",
        c.connections, c.admitted, c.hub_connections, c.hub_rooms, c.tasks
    )
}

async fn server_side(args: &Args) -> Result<bool, String> {
    let server = SoakServer::start(args.cfg.hyper)
        .await
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let before = server.counts();
    let rss_before = soak::rss_kib();
    // Live bytes are counted after a trim (the allocator's top chunk, free but not in a
    // bin, would otherwise count as in use).
    malloc_trim();
    let heap_before = heap_in_use();
    let c = &args.cfg;
    println!(
        "soak: {} clients, {} adapter, {} s per round, {} rooms, {} rounds, server cpu {:?}, client cpu {:?}, reply bound {:?}",
        c.clients,
        if c.hyper { "hyper" } else { "warp" },
        c.duration.as_secs(),
        c.rooms,
        args.rounds,
        args.server_cpu,
        args.client_cpu,
        c.reply_bound,
    );
    println!("before: {}; RSS {} KiB", show_counts(&before), rss_before);
    let mut ok = true;
    for n in 1..=args.rounds {
        let mut peak = soak::rss_kib();
        let r = round(server.addr(), args, &mut peak).await?;
        let settled = server.settle(soak::SETTLE_WITHIN).await;
        let after = server.counts();
        let rss_after = soak::rss_kib();
        let trimmed = malloc_trim();
        let rss_trimmed = soak::rss_kib();
        let heap_after = heap_in_use();
        let round_ok = r.ok() && settled && soak::back_to_baseline(&before, &after);
        ok &= round_ok;
        println!(
            "round {n}: {:.1} s, {} sessions, {} calls, {} replies, lost {} (on close {}, on transport error {}, unanswered within the bound {}), \
             slow (> {:?}) {}, latency p50 <= {} us, p99 <= {} us, p99.9 <= {} us, max {} us, {} unexpected replies, {} rpc errors, \
             {} abandoned calls, {} room events, {} outside their room, server closes {:?}, {} connect failures, {} slow connects (max {} us), {} failures",
            r.elapsed.as_secs_f64(),
            r.sessions,
            r.calls,
            r.replies,
            r.lost(),
            r.lost_on_close,
            r.lost_on_error,
            r.unanswered,
            soak::SLOW_AFTER,
            r.slow,
            r.latency_quantile_us(0.5),
            r.latency_quantile_us(0.99),
            r.latency_quantile_us(0.999),
            r.max_latency_us,
            r.unexpected_replies,
            r.rpc_errors,
            r.abandoned,
            r.room_events,
            r.outside_room,
            r.server_closes,
            r.connect_failures,
            r.slow_connects,
            r.max_connect_us,
            r.failures,
        );
        println!(
            "round {n} after: settled {settled}; {}; RSS KiB before {rss_before} / peak {peak} / after {rss_after} / after malloc_trim {rss_trimmed} (released: {trimmed}); heap in use KiB before {:?} / after {:?}; {}",
            show_counts(&after),
            heap_before.map(|b| b / 1024),
            heap_after.map(|b| b / 1024),
            if round_ok { "ok" } else { "FAILED" },
        );
        for e in &r.errors {
            eprintln!("soak: {e}");
        }
    }
    let s = server.stats();
    println!(
        "server stats: {} connections total, {} messages in, {} frames queued, {} dropped, {} slow-consumer closes, \
         {} rate-limit closes, {} flood closes, {} heartbeat timeouts, {} close timeouts, {} read pauses, {} handler panics; VmHWM {} KiB",
        s.connections_total,
        s.messages_in,
        s.frames_queued,
        s.frames_dropped,
        s.slow_consumer_closes,
        s.rate_limit_closes,
        s.flood_closes,
        s.heartbeat_timeouts,
        s.close_timeouts,
        s.read_pauses,
        s.handler_panics,
        hwm_kib(),
    );
    server.stop().await;
    println!("soak: {}", if ok { "ok" } else { "FAILED" });
    Ok(ok)
}
