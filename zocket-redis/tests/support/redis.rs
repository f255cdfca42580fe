//! Finding or starting a Redis server for tests (shared by the zocket-redis and the
//! examples test suites through `#[path]`).
//!
//! Order: the `ZOCKET_TEST_REDIS` environment variable (a `redis://` URL), else
//! 127.0.0.1:6379 if it answers PING, else a `redis-server` from PATH on a free port.
//! Without any of them the tests fail with a message saying to install redis-server:
//! they never skip silently. Every test uses its own key prefix ([`unique_prefix`]), so
//! tests running in parallel against one Redis do not see each other.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A Redis server for tests: either one that was already there or one this process
/// started (stopped when dropped, or when the test process exits).
pub struct TestRedis {
    /// `redis://127.0.0.1:PORT/`.
    pub url: String,
    /// Its port.
    pub port: u16,
    own: Option<(Child, ChildStdin)>,
}

/// Whether something at `addr` answers a Redis PING.
pub fn answers_ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// The Redis every test of this process shares.
pub fn shared() -> &'static str {
    static REDIS: OnceLock<TestRedis> = OnceLock::new();
    &REDIS
        .get_or_init(|| {
            if let Ok(url) = std::env::var("ZOCKET_TEST_REDIS") {
                return TestRedis {
                    url,
                    port: 0,
                    own: None,
                };
            }
            let default: SocketAddr = "127.0.0.1:6379".parse().unwrap();
            if answers_ping(default) {
                return TestRedis {
                    url: "redis://127.0.0.1:6379/".into(),
                    port: 6379,
                    own: None,
                };
            }
            TestRedis::start(free_port())
        })
        .url
}

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A key prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "zt-{test}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        uuid_like()
    )
}

fn uuid_like() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl TestRedis {
    /// Start a `redis-server` of our own on `port` (no persistence). It runs under a
    /// small shell that kills it (SIGKILL, like a crash) when its stdin closes, so it
    /// never outlives the test process. Waits for "Ready to accept connections".
    pub fn start(port: u16) -> TestRedis {
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
             --loglevel notice --logfile '' & P=$!; read _; kill -9 $P; wait $P 2>/dev/null; true"
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sh runs");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut ready = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    ready.take().map(|tx| tx.send(true));
                }
            }
            if let Some(tx) = ready {
                let _ = tx.send(false);
            }
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(true) => {}
            _ => panic!(
                "no Redis for the tests: set ZOCKET_TEST_REDIS=redis://HOST:PORT/, run one on \
                 127.0.0.1:6379, or install redis-server (apt-get install redis-server) so the \
                 tests can start their own (starting `redis-server --port {port}` failed)"
            ),
        }
        TestRedis {
            url: format!("redis://127.0.0.1:{port}/"),
            port,
            own: Some((child, stdin)),
        }
    }

    /// Kill our own server (SIGKILL) and wait until it is gone.
    pub fn kill(&mut self) {
        if let Some((mut child, stdin)) = self.own.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run one Redis command through `redis-cli` against `url` (tests only).
pub fn cli(url: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-u")
        .arg(url)
        .args(args)
        .output()
        .expect("redis-cli runs (install redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
