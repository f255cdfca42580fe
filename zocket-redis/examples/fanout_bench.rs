//! Cross-node fan-out benchmark: one room of N members (default 1000) on a single
//! `reference` node (in-memory hub), then spread evenly over 2 `reference` nodes on one
//! Redis; a sender on node 0 sends M `bench.fanout` events (default 300) as fast as it
//! can; the figure is deliveries per second (N × M over the time from the first send to
//! the last receipt) and server CPU per delivery (utime + stime of the server processes
//! from /proc/PID/stat; Redis's own CPU is reported beside it). Bounded: a few runs of
//! N × M deliveries each. Not run by `cargo test`.
//!
//! ```text
//! cargo build --release -p zocket-examples --bin reference
//! cargo build --release -p zocket-redis --example fanout_bench
//! taskset -c 1 target/release/examples/fanout_bench \
//!     --reference target/release/reference --redis redis://127.0.0.1:6379/ \
//!     [--members 1000] [--messages 300] [--runs 3] [--server-cpus 0]
//! ```
//!
//! The servers are started under `taskset -c <--server-cpus>` (both nodes share the
//! same CPUs as the single node, so the comparison is at equal server CPU budget).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

struct Opts {
    reference: String,
    redis: String,
    members: usize,
    messages: usize,
    runs: usize,
    server_cpus: String,
}

fn opts() -> Opts {
    let mut o = Opts {
        reference: "target/release/reference".into(),
        redis: "redis://127.0.0.1:6379/".into(),
        members: 1000,
        messages: 300,
        runs: 3,
        server_cpus: "0".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--reference" => o.reference = v(),
            "--redis" => o.redis = v(),
            "--members" => o.members = v().parse().expect("--members N"),
            "--messages" => o.messages = v().parse().expect("--messages N"),
            "--runs" => o.runs = v().parse().expect("--runs N"),
            "--server-cpus" => o.server_cpus = v(),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        o.messages < 1000,
        "stay under the outbound queue (1024) per member"
    );
    o
}

struct Node {
    child: Child,
    addr: String,
}

async fn start_node(o: &Opts, redis: Option<(&str, &str)>, name: &str) -> Node {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(&o.server_cpus)
        .arg(&o.reference)
        .args(["--addr", "127.0.0.1:0"]);
    if let Some((url, prefix)) = redis {
        cmd.args(["--redis", url, "--node", name])
            .env("ZOCKET_REDIS_PREFIX", prefix);
    }
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start reference (is taskset installed?)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().expect("first line");
    let addr = first
        .strip_prefix("listening on ws://")
        .and_then(|r| r.strip_suffix('/'))
        .expect("listening line")
        .to_owned();
    Node { child, addr }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" of the command name: state is field 3; utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

async fn redis_pid(url: &str) -> Option<u32> {
    let client = redis::Client::open(url).ok()?;
    let mut c = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut c)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
}

struct Result_ {
    deliveries: usize,
    secs: f64,
    server_cpu: f64,
    redis_cpu: f64,
}

/// One run: members spread round-robin over `nodes`, the sender on node 0.
async fn run(o: &Opts, nodes: &[Node], redis: Option<u32>, room: &str) -> Result_ {
    let done = Arc::new(AtomicUsize::new(0));
    let sentinel_seen = Arc::new(AtomicUsize::new(0));
    let notify = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for i in 0..o.members {
        let addr = nodes[i % nodes.len()].addr.clone();
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .expect("connect");
        let (mut tx, mut rx) = ws.split();
        tx.send(Message::text(format!(
            r#"{{"type":"rooms.join","payload":{{"roomId":"{room}"}},"rpcId":"j"}}"#
        )))
        .await
        .unwrap();
        let (done, seen, notify, m) = (
            done.clone(),
            sentinel_seen.clone(),
            notify.clone(),
            o.messages,
        );
        tasks.push(tokio::spawn(async move {
            let _tx = tx;
            let mut sentinel = false;
            let mut ticks = 0usize;
            while let Some(Ok(msg)) = rx.next().await {
                let Message::Text(t) = msg else { continue };
                if !t.as_str().contains("bench.tick") {
                    continue;
                }
                if t.as_str().contains(r#""seq":-1"#) {
                    if !sentinel {
                        sentinel = true;
                        seen.fetch_add(1, Ordering::SeqCst);
                        notify.notify_waiters();
                    }
                    continue;
                }
                ticks += 1;
                if ticks == m {
                    done.fetch_add(1, Ordering::SeqCst);
                    notify.notify_waiters();
                }
            }
        }));
    }
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", nodes[0].addr))
        .await
        .unwrap();
    let (mut sender, mut sender_rx) = ws.split();
    tokio::spawn(async move { while sender_rx.next().await.is_some() {} });
    // Until every member has seen a sentinel (joins done, subscriptions in place).
    let deadline = Instant::now() + Duration::from_secs(30);
    while sentinel_seen.load(Ordering::SeqCst) < o.members {
        assert!(Instant::now() < deadline, "setup did not settle");
        sender
            .send(Message::text(format!(
                r#"{{"type":"bench.fanout","payload":{{"roomId":"{room}","seq":-1}}}}"#
            )))
            .await
            .unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(200), notify.notified()).await;
    }
    let pids: Vec<u32> = nodes.iter().filter_map(|n| n.child.id()).collect();
    let cpu0: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
    let r0 = redis.map(cpu_seconds).unwrap_or(0.0);
    let t0 = Instant::now();
    for seq in 0..o.messages {
        sender
            .feed(Message::text(format!(
                r#"{{"type":"bench.fanout","payload":{{"roomId":"{room}","seq":{seq},"pad":"0123456789abcdef0123456789abcdef"}}}}"#
            )))
            .await
            .unwrap();
    }
    sender.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = notify.notified();
        if done.load(Ordering::SeqCst) >= o.members {
            break;
        }
        assert!(Instant::now() < deadline, "deliveries did not complete");
        let _ = tokio::time::timeout(Duration::from_millis(100), n).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let server_cpu = pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - cpu0;
    let redis_cpu = redis.map(cpu_seconds).unwrap_or(0.0) - r0;
    for t in tasks {
        t.abort();
    }
    Result_ {
        deliveries: o.members * o.messages,
        secs,
        server_cpu,
        redis_cpu,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let o = opts();
    let prefix = format!("bench-{}", std::process::id());
    let redis = redis_pid(&o.redis).await;
    let mut single = Vec::new();
    let mut cluster = Vec::new();
    for r in 0..o.runs {
        {
            let nodes = [start_node(&o, None, "single").await];
            let res = run(&o, &nodes, None, &format!("room{r}")).await;
            single.push(res);
        }
        {
            let p = format!("{prefix}-{r}");
            let nodes = [
                start_node(&o, Some((&o.redis, &p)), "n0").await,
                start_node(&o, Some((&o.redis, &p)), "n1").await,
            ];
            let res = run(&o, &nodes, redis, &format!("room{r}")).await;
            cluster.push(res);
        }
    }
    let report = |name: &str, rs: &[Result_]| {
        let rate = median(rs.iter().map(|r| r.deliveries as f64 / r.secs).collect());
        let cpu = median(
            rs.iter()
                .map(|r| r.server_cpu * 1e6 / r.deliveries as f64)
                .collect(),
        );
        let rcpu = median(
            rs.iter()
                .map(|r| r.redis_cpu * 1e6 / r.deliveries as f64)
                .collect(),
        );
        println!(
            "{name:<22} {rate:>12.0} deliveries/s   server CPU {cpu:>6.3} µs/delivery   redis CPU {rcpu:>6.3} µs/delivery   (median of {} runs of {} deliveries)",
            rs.len(),
            rs[0].deliveries
        );
        (rate, cpu)
    };
    println!(
        "fan-out: one room of {} members, {} events from one sender; servers on CPUs {}",
        o.members, o.messages, o.server_cpus
    );
    let (r1, c1) = report("single node", &single);
    let (r2, c2) = report("2 nodes over redis", &cluster);
    println!(
        "ratio (2 nodes / single): throughput {:.2}, server CPU per delivery {:.2}",
        r2 / r1,
        c2 / c1
    );
}
