//! The load generator: drives one server through one scenario and prints one JSON line
//! with the results (`run.sh` collects them). Loads target the address given (loopback
//! only in this suite) and stop by themselves: every scenario is bounded in count and
//! time.
//!
//! ```text
//! loadgen --addr 127.0.0.1:3000 --proto zocket --pid 1234 rpc --connections 50 --in-flight 1 --duration 5
//! loadgen ... fanout --members 1000 --messages 200            # burst
//! loadgen ... fanout --members 1000 --messages 1000 --rate 200 # paced
//! loadgen ... idle --connections 10000
//! ```

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util_free::CancelFlag;
use zocket_bench::proto::{Incoming, Proto};
use zocket_bench::{cpu_ns, rss_bytes};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Parser, Debug)]
#[command(about = "Load generator for the Zocket benchmark suite")]
struct Args {
    /// Server address (loopback).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
    /// Wire protocol the server speaks.
    #[arg(long, value_enum, default_value = "zocket")]
    proto: Proto,
    /// The server's PID: CPU time and RSS are read from /proc/PID.
    #[arg(long)]
    pid: Option<u32>,
    /// A label for the server in the output (e.g. `zocket-hyper`).
    #[arg(long, default_value = "server")]
    server: String,
    /// Repetition number, copied to the output.
    #[arg(long, default_value_t = 0)]
    rep: u32,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Echo RPCs: `connections` sockets, each keeping `in_flight` calls outstanding.
    Rpc {
        #[arg(long, default_value_t = 50)]
        connections: usize,
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
        /// Measured seconds (after the warm-up).
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Seconds of load before measuring starts.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Length of the string in the echoed payload.
        #[arg(long, default_value_t = 16)]
        payload: usize,
        /// Make exactly this many calls per connection, then stop (no warm-up, no
        /// duration): for counting the server's instructions or syscalls per call
        /// (`valgrind --tool=callgrind`, `strace -c`), which are repeatable where time
        /// is not. Every call is measured.
        #[arg(long)]
        calls: Option<u64>,
    },
    /// One room of `members`; a separate sender asks the server to send `messages`
    /// events to it, as fast as possible (burst) or at `rate` per second (paced).
    Fanout {
        #[arg(long, default_value_t = 1000)]
        members: usize,
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// Length of the padding string in each event.
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Events per second; absent: burst.
        #[arg(long)]
        rate: Option<f64>,
        /// Give up waiting for deliveries after this many seconds without progress.
        #[arg(long, default_value_t = 3.0)]
        quiet: f64,
    },
    /// Hold `connections` idle sockets and report the server's RSS per connection.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Handshakes in progress at once.
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// Seconds to wait after the last connection before reading RSS.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
    },
}

/// A cancellation flag without pulling tokio-util for one type.
mod tokio_util_free {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::sync::Notify;

    #[derive(Clone, Default)]
    pub struct CancelFlag(Arc<(AtomicBool, Notify)>);

    impl CancelFlag {
        pub fn cancel(&self) {
            self.0.0.store(true, Ordering::SeqCst);
            self.0.1.notify_waiters();
        }
        pub async fn cancelled(&self) {
            loop {
                let notified = self.0.1.notified();
                if self.0.0.load(Ordering::SeqCst) {
                    return;
                }
                notified.await;
            }
        }
    }
}

fn epoch() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 120_000_000_000, 3).expect("valid histogram bounds")
}

fn client_config() -> WebSocketConfig {
    // Small buffers: 10 000 idle clients must not cost the machine gigabytes.
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
}

/// Connect, upgrade, and complete the protocol's session set-up.
async fn connect(addr: &str, proto: Proto) -> anyhow::Result<Ws> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(proto.url(addr), Some(client_config()), true)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
    if proto == Proto::Jsonrpc {
        return Ok(ws);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| anyhow!("no session set-up within 10 s"))?
            .ok_or_else(|| anyhow!("closed during set-up"))??;
        if let Message::Text(t) = msg {
            if proto == Proto::Socketio && t.starts_with('0') {
                if let Some(hello) = proto.hello() {
                    ws.send(Message::text(hello)).await?;
                }
                continue;
            }
            if proto.is_ready(&t) {
                return Ok(ws);
            }
        }
    }
}

/// Connect `n` sockets, `concurrency` handshakes at a time.
async fn connect_many(addr: &str, proto: Proto, n: usize, concurrency: usize) -> (Vec<Ws>, usize) {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    for _ in 0..n {
        let sem = sem.clone();
        let addr = addr.to_owned();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            connect(&addr, proto).await
        });
    }
    let mut out = Vec::with_capacity(n);
    let mut failed = 0;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(ws)) => out.push(ws),
            Ok(Err(e)) => {
                if failed < 3 {
                    eprintln!("loadgen: connection failed: {e:#}");
                }
                failed += 1;
            }
            Err(e) => {
                eprintln!("loadgen: connect task failed: {e}");
                failed += 1;
            }
        }
    }
    (out, failed)
}

/// The next message, or an error after `secs` of silence (a stuck server must not hang
/// the run).
async fn next_msg(ws: &mut Ws, secs: u64) -> anyhow::Result<Message> {
    match tokio::time::timeout(Duration::from_secs(secs), ws.next()).await {
        Err(_) => bail!("no frame from the server for {secs} s"),
        Ok(None) => bail!("connection ended"),
        Ok(Some(r)) => Ok(r?),
    }
}

fn pad(n: usize) -> String {
    "x".repeat(n)
}

struct Cpu {
    pid: Option<u32>,
    server: Option<u64>,
    own: Option<u64>,
    at: Instant,
}

impl Cpu {
    fn sample(pid: Option<u32>) -> Self {
        Self {
            pid,
            server: pid.and_then(cpu_ns),
            own: cpu_ns(std::process::id()),
            at: Instant::now(),
        }
    }
    /// (server CPU ns, generator CPU ns, wall ns) since `self`.
    fn since(&self) -> (Option<u64>, Option<u64>, u64) {
        let now = Cpu::sample(self.pid);
        let d = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
        (
            d(self.server, now.server),
            d(self.own, now.own),
            now.at.duration_since(self.at).as_nanos() as u64,
        )
    }
}

fn lat_json(h: &Histogram<u64>) -> Value {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({
        "p50_us": us(0.50),
        "p99_us": us(0.99),
        "p999_us": us(0.999),
        "max_us": h.max() as f64 / 1000.0,
        "mean_us": h.mean() / 1000.0,
    })
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

async fn rpc_conn(
    mut ws: Ws,
    proto: Proto,
    k: usize,
    payload: Arc<str>,
    phase: Arc<AtomicU8>,
    calls: Option<u64>,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    // Calls still to send (after the first `k`) when the count is fixed.
    let mut left = calls.map(|c| c.saturating_sub(k as u64));
    let k = calls.map_or(k, |c| k.min(c as usize));
    let reqs: Vec<Message> = (0..k)
        .map(|i| Message::text(proto.echo(i as u64, &payload)))
        .collect();
    let mut start = vec![Instant::now(); k];
    let mut hist = histogram();
    let mut count = 0u64;
    for (i, req) in reqs.iter().enumerate() {
        start[i] = Instant::now();
        ws.feed(req.clone()).await?;
    }
    ws.flush().await?;
    let mut outstanding = k;
    loop {
        let mut msg = Some(next_msg(&mut ws, 10).await?);
        let mut batch = 0;
        while let Some(m) = msg.take() {
            match m {
                Message::Text(t) => match proto.classify(&t) {
                    Incoming::Reply(id) if (id as usize) < k => {
                        let id = id as usize;
                        let now = Instant::now();
                        let ph = phase.load(Ordering::Relaxed);
                        if ph == MEASURE {
                            let _ = hist.record(now.duration_since(start[id]).as_nanos() as u64);
                            count += 1;
                        }
                        outstanding -= 1;
                        let more = match &mut left {
                            None => ph != STOP,
                            Some(0) => false,
                            Some(n) => {
                                *n -= 1;
                                true
                            }
                        };
                        if more {
                            start[id] = now;
                            ws.feed(reqs[id].clone()).await?;
                            outstanding += 1;
                        }
                    }
                    Incoming::Ping => ws.feed(Message::text("3")).await?,
                    _ => {}
                },
                Message::Close(c) => bail!("server closed the connection: {c:?}"),
                _ => {}
            }
            batch += 1;
            if batch < 256 {
                // Take what is already buffered without waiting, then flush once: the
                // generator coalesces its writes like a good client library.
                msg = match ws.next().now_or_never() {
                    Some(Some(r)) => Some(r?),
                    Some(None) => bail!("connection ended"),
                    None => None,
                };
            }
        }
        ws.flush().await?;
        if outstanding == 0 && (left == Some(0) || phase.load(Ordering::Relaxed) == STOP) {
            let _ = ws.close(None).await;
            return Ok((count, hist));
        }
    }
}

async fn run_rpc(
    args: &Args,
    connections: usize,
    in_flight: usize,
    duration: f64,
    warmup: f64,
    payload: usize,
    calls: Option<u64>,
) -> anyhow::Result<Value> {
    let (conns, failed) = connect_many(&args.addr, args.proto, connections, 64).await;
    if failed > 0 {
        bail!("{failed} of {connections} connections failed");
    }
    let payload: Arc<str> = format!(r#"{{"data":"{}"}}"#, pad(payload)).into();
    let phase = Arc::new(AtomicU8::new(if calls.is_some() {
        MEASURE
    } else {
        WARMUP
    }));
    let cpu0 = calls.map(|_| Cpu::sample(args.pid));
    let mut set = JoinSet::new();
    for ws in conns {
        set.spawn(rpc_conn(
            ws,
            args.proto,
            in_flight.max(1),
            payload.clone(),
            phase.clone(),
            calls,
        ));
    }
    let cpu = match cpu0 {
        Some(cpu) => cpu,
        None => {
            tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
            let cpu = Cpu::sample(args.pid);
            phase.store(MEASURE, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs_f64(duration)).await;
            phase.store(STOP, Ordering::Relaxed);
            cpu
        }
    };
    let stopped = if calls.is_none() {
        Some(cpu.since())
    } else {
        None
    };
    let mut hist = histogram();
    let mut total = 0u64;
    let mut errors = 0usize;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok((n, h))) => {
                total += n;
                hist.add(&h).ok();
            }
            Ok(Err(e)) => {
                if errors < 3 {
                    eprintln!("loadgen: rpc connection failed: {e:#}");
                }
                errors += 1;
            }
            Err(e) => {
                eprintln!("loadgen: rpc task failed: {e}");
                errors += 1;
            }
        }
    }
    let (server_ns, own_ns, wall_ns) = stopped.unwrap_or_else(|| cpu.since());
    let secs = wall_ns as f64 / 1e9;
    Ok(json!({
        "scenario": format!("rpc_{connections}x{in_flight}"),
        "connections": connections,
        "in_flight": in_flight,
        "calls": total,
        "errors": errors,
        "ops_per_s": total as f64 / secs,
        "server_cpu_us_per_op": server_ns.map(|ns| ns as f64 / 1000.0 / total.max(1) as f64),
        "server_cpu_pct": server_ns.map(|ns| ns as f64 / wall_ns as f64 * 100.0),
        "loadgen_cpu_pct": own_ns.map(|ns| ns as f64 / wall_ns as f64 * 100.0),
        "latency": lat_json(&hist),
    }))
}

struct FanoutShared {
    received: AtomicU64,
    last_ns: AtomicU64,
    hist: std::sync::Mutex<Histogram<u64>>,
}

async fn member(
    mut ws: Ws,
    proto: Proto,
    shared: Arc<FanoutShared>,
    stop: CancelFlag,
) -> anyhow::Result<()> {
    let mut hist = histogram();
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => break,
            m = ws.next() => match m {
                None => bail!("member connection ended"),
                Some(m) => m?,
            },
        };
        if let Message::Text(t) = msg {
            match proto.classify(&t) {
                Incoming::Tick { t, .. } => {
                    let now = now_ns();
                    let _ = hist.record(now.saturating_sub(t).max(1_000));
                    shared.received.fetch_add(1, Ordering::Relaxed);
                    shared.last_ns.fetch_max(now, Ordering::Relaxed);
                }
                Incoming::Ping => ws.send(Message::text("3")).await?,
                _ => {}
            }
        }
    }
    shared
        .hist
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .add(&hist)
        .ok();
    let _ = ws.close(None).await;
    Ok(())
}

/// Join the room on a fresh connection and wait for the server's answer.
async fn join(mut ws: Ws, proto: Proto, room: &str) -> anyhow::Result<Ws> {
    const JOIN_ID: u64 = 900_000_001;
    ws.send(Message::text(proto.join(JOIN_ID, room))).await?;
    loop {
        if let Message::Text(t) = next_msg(&mut ws, 10).await? {
            match proto.classify(&t) {
                Incoming::Reply(JOIN_ID) => return Ok(ws),
                Incoming::Ping => ws.send(Message::text("3")).await?,
                _ => {}
            }
        }
    }
}

async fn run_fanout(
    args: &Args,
    members: usize,
    messages: usize,
    payload: usize,
    rate: Option<f64>,
    quiet: f64,
) -> anyhow::Result<Value> {
    const ROOM: &str = "bench";
    let proto = args.proto;
    let (conns, failed) = connect_many(&args.addr, proto, members, 64).await;
    if failed > 0 {
        bail!("{failed} of {members} member connections failed");
    }
    let mut joins = JoinSet::new();
    for ws in conns {
        joins.spawn(async move { join(ws, proto, ROOM).await });
    }
    let mut joined = Vec::with_capacity(members);
    while let Some(r) = joins.join_next().await {
        joined.push(r??);
    }
    let shared = Arc::new(FanoutShared {
        received: AtomicU64::new(0),
        last_ns: AtomicU64::new(0),
        hist: std::sync::Mutex::new(histogram()),
    });
    let stop = CancelFlag::default();
    let mut set = JoinSet::new();
    for ws in joined {
        set.spawn(member(ws, proto, shared.clone(), stop.clone()));
    }
    let sender = connect(&args.addr, proto).await?;
    // Let the join notifications (`rooms.joined` to the whole room) drain first.
    tokio::time::sleep(Duration::from_millis(750)).await;

    let (mut tx, mut rx) = sender.split();
    let acks = Arc::new(AtomicU64::new(0));
    let acks_reader = {
        let acks = acks.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Text(t) = m
                    && let Incoming::Reply(_) = proto.classify(&t)
                {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let padding = pad(payload);
    let expected = (members * messages) as u64;
    let cpu = Cpu::sample(args.pid);
    let start_ns = now_ns();
    match rate {
        None => {
            for seq in 0..messages {
                tx.feed(Message::text(proto.fanout(
                    seq as u64,
                    ROOM,
                    seq as u64,
                    now_ns(),
                    &padding,
                )))
                .await?;
                if seq % 16 == 15 {
                    tx.flush().await?;
                }
            }
            tx.flush().await?;
        }
        Some(rate) => {
            let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for seq in 0..messages {
                every.tick().await;
                tx.send(Message::text(proto.fanout(
                    seq as u64,
                    ROOM,
                    seq as u64,
                    now_ns(),
                    &padding,
                )))
                .await?;
            }
        }
    }
    let sent_ns = now_ns();
    // Wait for every delivery, or for `quiet` seconds without progress.
    let mut seen = 0;
    let mut progress_at = Instant::now();
    loop {
        let got = shared.received.load(Ordering::Relaxed);
        if got >= expected {
            break;
        }
        if got != seen {
            seen = got;
            progress_at = Instant::now();
        } else if progress_at.elapsed().as_secs_f64() > quiet {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (server_ns, own_ns, _) = cpu.since();
    let received = shared.received.load(Ordering::Relaxed);
    let last_ns = shared.last_ns.load(Ordering::Relaxed).max(start_ns + 1);
    stop.cancel();
    let mut member_errors = 0;
    while let Some(r) = set.join_next().await {
        if !matches!(r, Ok(Ok(()))) {
            member_errors += 1;
        }
    }
    let _ = tx.close().await;
    acks_reader.abort();
    let active_ns = last_ns - start_ns;
    let hist = shared.hist.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    let mode = if rate.is_some() { "paced" } else { "burst" };
    Ok(json!({
        "scenario": format!("fanout_{mode}"),
        "members": members,
        "messages": messages,
        "rate": rate,
        "payload": payload,
        "expected": expected,
        "delivered": received,
        "lost": expected - received.min(expected),
        "acks": acks.load(Ordering::Relaxed),
        "member_errors": member_errors,
        "send_s": (sent_ns - start_ns) as f64 / 1e9,
        "ops_per_s": received as f64 / (active_ns as f64 / 1e9),
        "server_cpu_us_per_op": server_ns.map(|ns| ns as f64 / 1000.0 / received.max(1) as f64),
        "server_cpu_ms": server_ns.map(|ns| ns as f64 / 1e6),
        "loadgen_cpu_ms": own_ns.map(|ns| ns as f64 / 1e6),
        "latency": lat_json(&hist),
    }))
}

async fn run_idle(args: &Args, n: usize, concurrency: usize, settle: f64) -> anyhow::Result<Value> {
    let pid = args.pid.ok_or_else(|| anyhow!("idle needs --pid"))?;
    let proto = args.proto;
    let rss0 = rss_bytes(pid).ok_or_else(|| anyhow!("cannot read /proc/{pid}/status"))?;
    let cpu = Cpu::sample(args.pid);
    let t0 = Instant::now();
    let (conns, failed) = connect_many(&args.addr, proto, n, concurrency).await;
    let connect_s = t0.elapsed().as_secs_f64();
    let held = conns.len();
    let stop = CancelFlag::default();
    let mut set = JoinSet::new();
    for mut ws in conns {
        let stop = stop.clone();
        set.spawn(async move {
            loop {
                let m = tokio::select! {
                    _ = stop.cancelled() => break,
                    m = ws.next() => m,
                };
                match m {
                    Some(Ok(Message::Text(t))) if proto.classify(&t) == Incoming::Ping => {
                        if ws.send(Message::text("3")).await.is_err() {
                            return false;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return false,
                }
            }
            drop(ws);
            true
        });
    }
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let rss1 = rss_bytes(pid).ok_or_else(|| anyhow!("server gone"))?;
    let (server_ns, _, _) = cpu.since();
    stop.cancel();
    let mut dropped = 0;
    while let Some(r) = set.join_next().await {
        if !matches!(r, Ok(true)) {
            dropped += 1;
        }
    }
    Ok(json!({
        "scenario": "idle",
        "connections": n,
        "held": held,
        "failed": failed,
        "dropped_while_held": dropped,
        "connect_s": connect_s,
        "rss_before": rss0,
        "rss_after": rss1,
        "rss_per_conn": (rss1 as f64 - rss0 as f64) / held.max(1) as f64,
        "server_cpu_us_per_connect": server_ns.map(|ns| ns as f64 / 1000.0 / held.max(1) as f64),
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    epoch();
    let mut out = match args.scenario {
        Scenario::Rpc {
            connections,
            in_flight,
            duration,
            warmup,
            payload,
            calls,
        } => {
            run_rpc(
                &args,
                connections,
                in_flight,
                duration,
                warmup,
                payload,
                calls,
            )
            .await
        }
        Scenario::Fanout {
            members,
            messages,
            payload,
            rate,
            quiet,
        } => run_fanout(&args, members, messages, payload, rate, quiet).await,
        Scenario::Idle {
            connections,
            concurrency,
            settle,
        } => run_idle(&args, connections, concurrency, settle).await,
    }?;
    out["server"] = json!(args.server);
    out["proto"] = json!(args.proto);
    out["rep"] = json!(args.rep);
    println!("{out}");
    Ok(())
}
