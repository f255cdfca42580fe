//! The soak (issue 9): many raw WebSocket clients against the reference server in this
//! process, connecting, calling, joining, leaving, sending to rooms and disconnecting
//! (gracefully or by dropping the socket) for a fixed time. At the end:
//!
//! - every RPC got exactly one reply (none lost, none doubled),
//! - no `bench.tick` reached a client outside its room (a client counts as a member
//!   from sending `rooms.join` until the reply of its `rooms.leave` arrives),
//! - the server's live connections, admission slots and hub rooms are back to zero, and
//!   the process's RSS is measured before, at the peak and after.
//!
//! Used by the `soak` binary (long runs) and by a short test in CI. Only 127.0.0.1.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use zocket_core::{Server, ServerConfig};

use crate::reference;

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Concurrent clients (each reconnects after every session until the time is up).
    pub clients: usize,
    /// How long clients keep starting sessions.
    pub duration: Duration,
    /// Rooms to pick from.
    pub rooms: usize,
    /// Serve with the hyper adapter instead of warp.
    pub hyper: bool,
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    /// Sessions (connections) opened.
    pub sessions: u64,
    /// RPCs sent.
    pub calls: u64,
    /// RPC replies received.
    pub replies: u64,
    /// RPCs without a reply (must be 0).
    pub lost: u64,
    /// Replies for an RPC already answered or never sent (must be 0).
    pub unexpected_replies: u64,
    /// `bench.tick` events received.
    pub ticks: u64,
    /// Ticks that reached a client outside the room (must be 0).
    pub ticks_outside_room: u64,
    /// Sessions that failed (connect refused, transport error, a reply timeout).
    pub failures: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Live connections at the end (must be 0).
    pub connections_after: usize,
    /// Admission slots held at the end (must be `(0, 0)`).
    pub admitted_after: (usize, usize),
    /// Rooms with members left in the hub at the end (must be 0).
    pub rooms_left: usize,
    /// RSS in KiB before the clients started, at the highest sample, and after.
    pub rss_kib: (u64, u64, u64),
    /// The first few failure messages.
    pub errors: Vec<String>,
}

impl SoakReport {
    /// Whether every invariant held.
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.unexpected_replies == 0
            && self.ticks_outside_room == 0
            && self.failures == 0
            && self.connections_after == 0
            && self.admitted_after == (0, 0)
            && self.rooms_left == 0
            && self.calls > 0
            && self.calls == self.replies
    }
}

#[derive(Default)]
struct Totals {
    sessions: AtomicU64,
    calls: AtomicU64,
    replies: AtomicU64,
    lost: AtomicU64,
    unexpected: AtomicU64,
    ticks: AtomicU64,
    outside: AtomicU64,
    failures: AtomicU64,
    errors: std::sync::Mutex<Vec<String>>,
}

impl Totals {
    fn fail(&self, e: String) {
        self.failures.fetch_add(1, Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.len() < 10 {
            errors.push(e);
        }
    }
}

/// The resident set size of this process, in KiB (0 where /proc is not available).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A small xorshift generator: the soak needs variety, not cryptography.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

const REPLY_WAIT: Duration = Duration::from_secs(20);

/// Run the soak.
pub async fn run(cfg: SoakConfig) -> SoakReport {
    let server = Server::builder(reference::router())
        .config(ServerConfig::default())
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let http = if cfg.hyper {
        tokio::spawn(zocket_hyper::serve(listener, server.clone()))
    } else {
        tokio::spawn(zocket_warp::serve(
            listener,
            zocket_warp::upgrade(server.clone()),
            server.clone(),
        ))
    };
    let rss_before = rss_kib();
    let totals = Arc::new(Totals::default());
    let started = Instant::now();
    let deadline = started + cfg.duration;
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(), Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut tasks = Vec::with_capacity(cfg.clients);
    for n in 0..cfg.clients {
        let totals = totals.clone();
        let rooms = cfg.rooms;
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((n as u64 + 1) * 0x2545_F491));
            while Instant::now() < deadline {
                totals.sessions.fetch_add(1, Relaxed);
                if let Err(e) = session(addr, n, rooms, &mut rng, &totals).await {
                    totals.fail(format!("client {n}: {e}"));
                    // Do not hammer a failing server.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed();
    // Every client is gone: the server must get back to nothing, promptly.
    let settle = Instant::now() + Duration::from_secs(20);
    while (server.handle().local_connections() != 0 || server.admitted() != (0, 0))
        && Instant::now() < settle
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sampler.abort();
    let mut rooms_left = 0;
    for r in 0..cfg.rooms {
        let members = server.handle().member_count(&format!("soak-{r}")).await;
        if members.map_or(true, |n| n > 0) {
            rooms_left += 1;
        }
    }
    let report = SoakReport {
        sessions: totals.sessions.load(Relaxed),
        calls: totals.calls.load(Relaxed),
        replies: totals.replies.load(Relaxed),
        lost: totals.lost.load(Relaxed),
        unexpected_replies: totals.unexpected.load(Relaxed),
        ticks: totals.ticks.load(Relaxed),
        ticks_outside_room: totals.outside.load(Relaxed),
        failures: totals.failures.load(Relaxed),
        elapsed,
        connections_after: server.handle().local_connections(),
        admitted_after: server.admitted(),
        rooms_left,
        rss_kib: (rss_before, peak.load(Relaxed), rss_kib()),
        errors: totals
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    };
    server.shutdown().await;
    http.abort();
    report
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One client's view of one session.
struct Session<'a> {
    ws: Ws,
    client: usize,
    /// Rooms it may receive ticks from: join sent, leave reply not yet received.
    may_receive: HashSet<String>,
    /// Rooms it is in (after the join reply; until the leave is sent).
    joined: HashSet<String>,
    pending: HashMap<String, (&'static str, String)>,
    answered: HashSet<String>,
    next: u64,
    totals: &'a Totals,
}

impl Session<'_> {
    async fn call(&mut self, kind: &'static str, payload: Value, room: &str) -> Result<(), String> {
        self.next += 1;
        let id = format!("{}-{}", self.client, self.next);
        if kind == "rooms.join" {
            self.may_receive.insert(room.to_owned());
        }
        if kind == "rooms.leave" {
            self.joined.remove(room);
        }
        let frame = json!({"type": kind, "payload": payload, "rpcId": id});
        self.pending.insert(id.clone(), (kind, room.to_owned()));
        self.totals.calls.fetch_add(1, Relaxed);
        self.ws
            .send(WsMessage::text(frame.to_string()))
            .await
            .map_err(|e| format!("send: {e}"))?;
        // One call in flight per client: read until its reply.
        let wait = tokio::time::Instant::now() + REPLY_WAIT;
        while self.pending.contains_key(&id) {
            let msg = tokio::time::timeout_at(wait, self.ws.next())
                .await
                .map_err(|_| format!("no reply to {kind} within {REPLY_WAIT:?}"))?;
            match msg {
                Some(Ok(WsMessage::Text(text))) => self.frame(&text)?,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("transport: {e}")),
                None => return Err("closed by the server".into()),
            }
        }
        Ok(())
    }

    fn frame(&mut self, text: &str) -> Result<(), String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match v["type"].as_str() {
            Some("__rpc_res") | Some("__rpc_err") => {
                let id = v["rpcId"].as_str().unwrap_or_default().to_owned();
                match self.pending.remove(&id) {
                    Some((kind, room)) => {
                        self.totals.replies.fetch_add(1, Relaxed);
                        self.answered.insert(id);
                        if v["type"] == "__rpc_err" {
                            return Err(format!("{kind} failed: {}", v["error"]));
                        }
                        match kind {
                            "rooms.join" => {
                                self.joined.insert(room);
                            }
                            "rooms.leave" => {
                                self.may_receive.remove(&room);
                            }
                            _ => {}
                        }
                    }
                    None => {
                        self.totals.unexpected.fetch_add(1, Relaxed);
                    }
                }
            }
            Some("bench.tick") => {
                self.totals.ticks.fetch_add(1, Relaxed);
                let room = v["payload"]["roomId"].as_str().unwrap_or_default();
                if !self.may_receive.contains(room) {
                    self.totals.outside.fetch_add(1, Relaxed);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

async fn session(
    addr: SocketAddr,
    client: usize,
    rooms: usize,
    rng: &mut Rng,
    totals: &Totals,
) -> Result<(), String> {
    let url = format!("ws://{addr}/?userName=soak{client}");
    let (ws, _) = tokio::time::timeout(REPLY_WAIT, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    let mut s = Session {
        ws,
        client,
        may_receive: HashSet::new(),
        joined: HashSet::new(),
        pending: HashMap::new(),
        answered: HashSet::new(),
        next: 0,
        totals,
    };
    let ops = 4 + rng.below(16);
    let result = async {
        for _ in 0..ops {
            let room = format!("soak-{}", rng.below(rooms));
            match rng.below(10) {
                0..=2 => s.call("bench.echo", json!({"n": s.next}), "").await?,
                3..=4 => s.call("rooms.join", json!({"roomId": room}), &room).await?,
                5 => {
                    let joined: Vec<String> = s.joined.iter().cloned().collect();
                    if let Some(room) = joined.get(rng.below(joined.len().max(1))).cloned() {
                        s.call("rooms.leave", json!({"roomId": room}), &room)
                            .await?;
                    }
                }
                _ => {
                    s.call(
                        "bench.fanout",
                        json!({"roomId": room, "from": client, "n": s.next}),
                        "",
                    )
                    .await?
                }
            }
        }
        Ok::<_, String>(())
    }
    .await;
    let lost = s.pending.len() as u64;
    if lost > 0 {
        totals.lost.fetch_add(lost, Relaxed);
    }
    result?;
    if rng.below(4) == 0 {
        // Abrupt: drop the socket without a close frame.
        drop(s);
        return Ok(());
    }
    let _ = s.ws.close(None).await;
    let wait = tokio::time::Instant::now() + REPLY_WAIT;
    loop {
        match tokio::time::timeout_at(wait, s.ws.next()).await {
            Err(_) => return Err("no close reply".into()),
            Ok(Some(Ok(WsMessage::Text(text)))) => s.frame(&text)?,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => return Ok(()),
        }
    }
}
