//! The soak (issue 9): many raw WebSocket clients against the reference server,
//! connecting, calling (one at a time or pipelined), joining, leaving, sending to rooms
//! and disconnecting (gracefully, by dropping the socket, or by dropping it with a call
//! in flight) for a fixed time. At the end:
//!
//! - every RPC got exactly one reply: none lost, none doubled. A reply that arrives late
//!   is *slow*, not lost: a client waits up to [`SoakConfig::reply_bound`] for each reply
//!   while reading everything the server sends. *Lost* is a call still unanswered when
//!   the server closed the connection, when the transport failed, or at that bound;
//! - no room event (`bench.tick`, `rooms.joined`, `rooms.left`) reached a client outside
//!   its room (a client counts as a member from sending `rooms.join` until the reply of
//!   its `rooms.leave` arrives);
//! - the server's live connections, admission slots, hub connections and hub rooms are
//!   back to their baseline (zero), waited for with [`Server::wait_until`] (an event
//!   wait on the connection counts), bounded.
//!
//! The client side ([`drive`]) and the server side ([`SoakServer`]) are separate, so
//! that the `soak` binary runs them in two processes pinned to different cores (the
//! server's RSS is then its own); [`run`] puts both in one process for the short test
//! in `cargo test`. Only 127.0.0.1.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use zocket_core::hub::LocalHub;
use zocket_core::{Server, ServerConfig, StatsSnapshot};

use crate::reference::{self, RefCtx};

/// What to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakConfig {
    /// Concurrent clients (each starts a new session after every session until the time
    /// is up).
    pub clients: usize,
    /// How long clients keep starting sessions.
    pub duration: Duration,
    /// Rooms to pick from.
    pub rooms: usize,
    /// Serve with the hyper adapter instead of warp.
    pub hyper: bool,
    /// How long a client waits for one reply before counting it lost (it reads all the
    /// while). Replies later than [`SLOW_AFTER`] are counted as slow.
    pub reply_bound: Duration,
    /// Sessions each client runs at least, however long they take (then it goes on until
    /// `duration` has passed).
    pub min_sessions: usize,
}

impl Default for SoakConfig {
    /// 2 000 clients, 120 s, 50 rooms, warp, replies bounded at 60 s.
    fn default() -> Self {
        Self {
            clients: 2000,
            duration: Duration::from_secs(120),
            rooms: 50,
            hyper: false,
            reply_bound: Duration::from_secs(60),
            min_sessions: 1,
        }
    }
}

/// A reply later than this (from sending the call) is counted as slow.
pub const SLOW_AFTER: Duration = Duration::from_secs(1);

/// Latency buckets: bucket `i` holds replies within `2^i` µs.
const BUCKETS: usize = 32;

/// What the clients saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientReport {
    /// Sessions (connections) opened.
    pub sessions: u64,
    /// Connections that could not be opened (refused, or not within
    /// [`SoakConfig::reply_bound`]).
    pub connect_failures: u64,
    /// Connections (TCP and WebSocket handshake) that took longer than [`SLOW_AFTER`].
    pub slow_connects: u64,
    /// The slowest connection set-up, in µs.
    pub max_connect_us: u64,
    /// RPCs sent and waited for.
    pub calls: u64,
    /// RPC replies received for them.
    pub replies: u64,
    /// Calls sent right before dropping the socket on purpose (never waited for).
    pub abandoned: u64,
    /// Calls unanswered when the server closed the connection (must be 0).
    pub lost_on_close: u64,
    /// Calls unanswered when the transport failed (must be 0).
    pub lost_on_error: u64,
    /// Calls without a reply within [`SoakConfig::reply_bound`], the connection still
    /// open (must be 0).
    pub unanswered: u64,
    /// Replies that arrived later than [`SLOW_AFTER`] (not lost).
    pub slow: u64,
    /// The slowest reply, in µs.
    pub max_latency_us: u64,
    /// Reply latencies: `latency_buckets[i]` replies took at most `2^i` µs.
    pub latency_buckets: Vec<u64>,
    /// Replies for an RPC already answered or never sent (must be 0).
    pub unexpected_replies: u64,
    /// Calls answered with `__rpc_err` (must be 0: the soak only makes valid calls).
    pub rpc_errors: u64,
    /// Room events received (`bench.tick`, `rooms.joined`, `rooms.left`).
    pub room_events: u64,
    /// Room events that reached a client outside the room (must be 0).
    pub outside_room: u64,
    /// Closes the server started, by close code (0: no close frame), e.g. 1013 for a
    /// slow consumer (must be empty).
    pub server_closes: BTreeMap<u16, u64>,
    /// Sessions that ended in any failure above.
    pub failures: u64,
    /// Wall time of the client side.
    pub elapsed: Duration,
    /// The first few failure messages.
    pub errors: Vec<String>,
}

impl ClientReport {
    /// Calls that never got their reply.
    pub fn lost(&self) -> u64 {
        self.lost_on_close + self.lost_on_error + self.unanswered
    }

    /// The latency within which `q` (0..=1) of the replies arrived: an upper bound in
    /// µs (a power of two), 0 with no replies.
    pub fn latency_quantile_us(&self, q: f64) -> u64 {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.latency_buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return 1u64 << i;
            }
        }
        1u64 << (BUCKETS - 1)
    }

    /// Whether every client-side invariant held.
    pub fn ok(&self) -> bool {
        self.lost() == 0
            && self.unexpected_replies == 0
            && self.rpc_errors == 0
            && self.outside_room == 0
            && self.connect_failures == 0
            && self.server_closes.is_empty()
            && self.failures == 0
            && self.calls > 0
            && self.calls == self.replies
    }
}

#[derive(Default)]
struct Totals {
    sessions: AtomicU64,
    connect_failures: AtomicU64,
    slow_connects: AtomicU64,
    max_connect_us: AtomicU64,
    calls: AtomicU64,
    replies: AtomicU64,
    abandoned: AtomicU64,
    lost_on_close: AtomicU64,
    lost_on_error: AtomicU64,
    unanswered: AtomicU64,
    slow: AtomicU64,
    max_latency_us: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
    unexpected: AtomicU64,
    rpc_errors: AtomicU64,
    room_events: AtomicU64,
    outside: AtomicU64,
    failures: AtomicU64,
    server_closes: std::sync::Mutex<BTreeMap<u16, u64>>,
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

    fn latency(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.max_latency_us.fetch_max(us, Relaxed);
        let bucket = (64 - us.max(1).saturating_sub(1).leading_zeros() as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Relaxed);
        if d > SLOW_AFTER {
            self.slow.fetch_add(1, Relaxed);
        }
    }

    fn report(&self, elapsed: Duration) -> ClientReport {
        ClientReport {
            sessions: self.sessions.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            slow_connects: self.slow_connects.load(Relaxed),
            max_connect_us: self.max_connect_us.load(Relaxed),
            calls: self.calls.load(Relaxed),
            replies: self.replies.load(Relaxed),
            abandoned: self.abandoned.load(Relaxed),
            lost_on_close: self.lost_on_close.load(Relaxed),
            lost_on_error: self.lost_on_error.load(Relaxed),
            unanswered: self.unanswered.load(Relaxed),
            slow: self.slow.load(Relaxed),
            max_latency_us: self.max_latency_us.load(Relaxed),
            latency_buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            unexpected_replies: self.unexpected.load(Relaxed),
            rpc_errors: self.rpc_errors.load(Relaxed),
            room_events: self.room_events.load(Relaxed),
            outside_room: self.outside.load(Relaxed),
            server_closes: self
                .server_closes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            failures: self.failures.load(Relaxed),
            elapsed,
            errors: self
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// The resident set size of this process, in KiB (`VmRSS` of `/proc/self/status`; 0
/// where /proc is not available).
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

/// The clients' side: `cfg.clients` clients against the server at `addr`, each for at
/// least `cfg.min_sessions` sessions and until `cfg.duration` has passed (finishing the
/// session it is in).
pub async fn drive(addr: SocketAddr, cfg: &SoakConfig) -> ClientReport {
    let totals = Arc::new(Totals::default());
    let started = Instant::now();
    let deadline = started + cfg.duration;
    let mut tasks = Vec::with_capacity(cfg.clients);
    for n in 0..cfg.clients {
        let totals = totals.clone();
        let (rooms, bound, min) = (cfg.rooms, cfg.reply_bound, cfg.min_sessions);
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((n as u64 + 1) * 0x2545_F491));
            let mut done = 0;
            while done < min || Instant::now() < deadline {
                done += 1;
                totals.sessions.fetch_add(1, Relaxed);
                if let Err(e) = session(addr, n, rooms, bound, &mut rng, &totals).await {
                    // A failed client stops: every failure is counted, none hidden by
                    // retrying.
                    totals.fail(format!("client {n}: {e}"));
                    return;
                }
            }
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            totals.fail(format!("client task: {e}"));
        }
    }
    totals.report(started.elapsed())
}

/// The server's counters the soak checks, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// `ServerHandle::local_connections`.
    pub connections: usize,
    /// `Server::admitted`: slots in total, and distinct IPs holding one.
    pub admitted: (usize, usize),
    /// Connections in the hub's map.
    pub hub_connections: usize,
    /// Rooms with members in the hub.
    pub hub_rooms: usize,
    /// Tokio tasks alive in the runtime this was read on (the server's, when the
    /// clients are in another process).
    pub tasks: usize,
}

/// The listen backlog of the soak's server (the kernel caps it at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 8192;

/// The reference server on 127.0.0.1 (warp or hyper adapter), with its hub at hand.
pub struct SoakServer {
    server: Server<RefCtx>,
    hub: Arc<LocalHub>,
    addr: SocketAddr,
    http: tokio::task::JoinHandle<()>,
}

impl SoakServer {
    /// Bind 127.0.0.1:0 and serve the reference router with the default configuration.
    pub async fn start(hyper: bool) -> std::io::Result<Self> {
        let hub = Arc::new(LocalHub::new());
        let server = Server::builder(reference::router())
            .config(ServerConfig::default())
            .hub(hub.clone())
            .build();
        // A listen backlog above the clients that may connect at once: with the default
        // (1 024, tokio's), a busy server's accept queue overflows, the kernel drops SYNs
        // and a connect waits for SYN retransmits (1 s, 3 s, 7 s, ... 63 s).
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(([127, 0, 0, 1], 0).into())?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        let addr = listener.local_addr()?;
        let http = if hyper {
            tokio::spawn(zocket_hyper::serve(listener, server.clone()))
        } else {
            tokio::spawn(zocket_warp::serve(
                listener,
                zocket_warp::upgrade(server.clone()),
                server.clone(),
            ))
        };
        Ok(Self {
            server,
            hub,
            addr,
            http,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        Counts {
            connections: self.server.handle().local_connections(),
            admitted: self.server.admitted(),
            hub_connections: self.hub.local_ids().len(),
            hub_rooms: self.hub.local_rooms().len(),
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
        }
    }

    /// The server's stats.
    pub fn stats(&self) -> StatsSnapshot {
        self.server.stats()
    }

    /// Wait (at most `within`) until every connection has ended and freed its admission
    /// slot ([`Server::wait_until`]);
    /// whether it did.
    pub async fn settle(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.server.wait_until(|s| s.admitted() == (0, 0)))
            .await
            .is_ok()
    }

    /// Shut the server down and stop serving.
    pub async fn stop(self) {
        self.server.shutdown().await;
        self.http.abort();
    }
}

/// What one in-process soak found: both sides, and the server's counters.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// The clients' side.
    pub clients: ClientReport,
    /// The server's counters before the clients started.
    pub before: Counts,
    /// ... and once every connection ended (or the wait gave up).
    pub after: Counts,
    /// Every connection ended within the wait.
    pub settled: bool,
    /// The server's stats at the end (slow-consumer closes, dropped frames, ...).
    pub stats: StatsSnapshot,
}

impl SoakReport {
    /// Whether every invariant held: the clients' ([`ClientReport::ok`]) and the server
    /// back to its baseline (no connection, slot, hub connection or hub room left).
    pub fn ok(&self) -> bool {
        self.clients.ok() && self.settled && back_to_baseline(&self.before, &self.after)
    }
}

/// Whether the server's counters are back where they started: no connection, slot,
/// hub connection or hub room left (tasks are reported, not compared: the runtime's
/// count is only eventually consistent).
pub fn back_to_baseline(before: &Counts, after: &Counts) -> bool {
    after.connections == before.connections
        && after.admitted == before.admitted
        && after.hub_connections == before.hub_connections
        && after.hub_rooms == before.hub_rooms
}

/// How long the server may take to end every connection once the clients are gone.
pub const SETTLE_WITHIN: Duration = Duration::from_secs(20);

/// Server and clients in this process (the short test in `cargo test`).
pub async fn run(cfg: SoakConfig) -> SoakReport {
    let server = SoakServer::start(cfg.hyper)
        .await
        .expect("bind 127.0.0.1:0");
    let before = server.counts();
    let clients = drive(server.addr(), &cfg).await;
    // Every client task has ended: the server must get back to nothing, promptly.
    let settled = server.settle(SETTLE_WITHIN).await;
    let report = SoakReport {
        clients,
        before,
        after: server.counts(),
        settled,
        stats: server.stats(),
    };
    server.stop().await;
    report
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Why a session ended early.
enum End {
    /// The server closed (its close code, 0 without a close frame).
    ServerClosed(u16),
    /// The transport failed.
    Transport(String),
    /// A reply did not come within the bound.
    Unanswered(&'static str),
    /// Anything else (an undecodable frame, an `__rpc_err`).
    Other(String),
}

/// One client's view of one session.
struct Session<'a> {
    ws: Ws,
    client: usize,
    /// Rooms it may receive room events from: join sent, leave reply not yet received.
    may_receive: HashSet<String>,
    /// Rooms it is in (after the join reply; until the leave is sent).
    joined: HashSet<String>,
    /// Calls waiting for their reply: id → (kind, room, sent at).
    pending: HashMap<String, (&'static str, String, Instant)>,
    next: u64,
    bound: Duration,
    totals: &'a Totals,
}

impl Session<'_> {
    /// Send one call; its reply is waited for by [`wait_replies`](Self::wait_replies).
    async fn send_call(
        &mut self,
        kind: &'static str,
        payload: Value,
        room: &str,
    ) -> Result<(), End> {
        self.next += 1;
        let id = format!("{}-{}", self.client, self.next);
        if kind == "rooms.join" {
            self.may_receive.insert(room.to_owned());
        }
        if kind == "rooms.leave" {
            self.joined.remove(room);
        }
        let frame = json!({"type": kind, "payload": payload, "rpcId": id});
        self.pending
            .insert(id, (kind, room.to_owned(), Instant::now()));
        self.totals.calls.fetch_add(1, Relaxed);
        self.ws
            .send(WsMessage::text(frame.to_string()))
            .await
            .map_err(|e| End::Transport(format!("send: {e}")))
    }

    /// Read (everything the server sends) until every pending call is answered.
    async fn wait_replies(&mut self) -> Result<(), End> {
        while let Some(oldest) = self.pending.values().map(|p| p.2).min() {
            let wait = tokio::time::Instant::from_std(oldest + self.bound);
            match tokio::time::timeout_at(wait, self.ws.next()).await {
                Err(_) => {
                    let kind = self
                        .pending
                        .values()
                        .min_by_key(|p| p.2)
                        .map_or("?", |p| p.0);
                    return Err(End::Unanswered(kind));
                }
                Ok(Some(Ok(WsMessage::Text(text)))) => self.frame(&text)?,
                Ok(Some(Ok(WsMessage::Close(close)))) => {
                    return Err(End::ServerClosed(close.map_or(0, |c| u16::from(c.code))));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(End::Transport(e.to_string())),
                Ok(None) => return Err(End::ServerClosed(0)),
            }
        }
        Ok(())
    }

    async fn call(&mut self, kind: &'static str, payload: Value, room: &str) -> Result<(), End> {
        self.send_call(kind, payload, room).await?;
        self.wait_replies().await
    }

    fn frame(&mut self, text: &str) -> Result<(), End> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| End::Other(format!("not JSON: {e}")))?;
        match v["type"].as_str() {
            Some("__rpc_res") | Some("__rpc_err") => {
                let id = v["rpcId"].as_str().unwrap_or_default();
                match self.pending.remove(id) {
                    Some((kind, room, sent)) => {
                        self.totals.replies.fetch_add(1, Relaxed);
                        self.totals.latency(sent.elapsed());
                        if v["type"] == "__rpc_err" {
                            self.totals.rpc_errors.fetch_add(1, Relaxed);
                            return Err(End::Other(format!("{kind} failed: {}", v["error"])));
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
            Some("bench.tick") | Some("rooms.joined") | Some("rooms.left") => {
                self.totals.room_events.fetch_add(1, Relaxed);
                let room = v["payload"]["roomId"].as_str().unwrap_or_default();
                if !self.may_receive.contains(room) {
                    self.totals.outside.fetch_add(1, Relaxed);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Count what an early end did to the calls still pending.
    fn count_end(&self, end: &End) {
        let pending = self.pending.len() as u64;
        match end {
            End::ServerClosed(code) => {
                *self
                    .totals
                    .server_closes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(*code)
                    .or_default() += 1;
                self.totals.lost_on_close.fetch_add(pending, Relaxed);
            }
            End::Transport(_) => {
                self.totals.lost_on_error.fetch_add(pending, Relaxed);
            }
            End::Unanswered(_) => {
                self.totals.unanswered.fetch_add(pending, Relaxed);
            }
            End::Other(_) => {}
        }
    }
}

fn describe(end: &End, bound: Duration) -> String {
    match end {
        End::ServerClosed(code) => format!("closed by the server (code {code})"),
        End::Transport(e) => format!("transport: {e}"),
        End::Unanswered(kind) => format!("no reply to {kind} within {bound:?}"),
        End::Other(e) => e.clone(),
    }
}

/// The read buffer of each soak client: small, as thousands of them share a process
/// (tungstenite's default is 128 KiB per connection).
const CLIENT_READ_BUFFER: usize = 4096;

async fn session(
    addr: SocketAddr,
    client: usize,
    rooms: usize,
    bound: Duration,
    rng: &mut Rng,
    totals: &Totals,
) -> Result<(), String> {
    let url = format!("ws://{addr}/?userName=soak{client}");
    let config = WebSocketConfig::default()
        .read_buffer_size(CLIENT_READ_BUFFER)
        .write_buffer_size(0);
    let connect = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let started = Instant::now();
    let ws = match tokio::time::timeout(bound, connect).await {
        Ok(Ok((ws, _))) => {
            let took = started.elapsed();
            totals
                .max_connect_us
                .fetch_max(took.as_micros().min(u64::MAX as u128) as u64, Relaxed);
            if took > SLOW_AFTER {
                totals.slow_connects.fetch_add(1, Relaxed);
            }
            ws
        }
        Ok(Err(e)) => {
            totals.connect_failures.fetch_add(1, Relaxed);
            return Err(format!("connect: {e}"));
        }
        Err(_) => {
            totals.connect_failures.fetch_add(1, Relaxed);
            return Err(format!("connect: no answer within {bound:?}"));
        }
    };
    let mut s = Session {
        ws,
        client,
        may_receive: HashSet::new(),
        joined: HashSet::new(),
        pending: HashMap::new(),
        next: 0,
        bound,
        totals,
    };
    let ops = 4 + rng.below(16);
    let result = async {
        for _ in 0..ops {
            let room = format!("soak-{}", rng.below(rooms));
            match rng.below(12) {
                0..=2 => s.call("bench.echo", json!({"n": s.next}), "").await?,
                3 => {
                    // Pipelined: several calls in flight, replies in any order.
                    for _ in 0..2 + rng.below(7) {
                        s.send_call("bench.echo", json!({"n": s.next}), "").await?;
                    }
                    s.wait_replies().await?
                }
                4..=5 => s.call("rooms.join", json!({"roomId": room}), &room).await?,
                6 => {
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
        Ok::<_, End>(())
    }
    .await;
    if let Err(end) = &result {
        s.count_end(end);
        return Err(describe(end, bound));
    }
    match rng.below(8) {
        0 => {
            // Abrupt: drop the socket without a close frame.
            return Ok(());
        }
        1 => {
            // Abrupt with a handler in flight: the server must end it and clean up.
            let frame = json!({"type": "slow.sleep", "payload": {"ms": 20}, "rpcId": "abandoned"});
            totals.abandoned.fetch_add(1, Relaxed);
            let _ = s.ws.send(WsMessage::text(frame.to_string())).await;
            return Ok(());
        }
        _ => {}
    }
    // Graceful: our close frame, then read until the server's close and the end.
    let _ = s.ws.close(None).await;
    let wait = tokio::time::Instant::now() + bound;
    loop {
        match tokio::time::timeout_at(wait, s.ws.next()).await {
            Err(_) => return Err(format!("no close reply within {bound:?}")),
            Ok(Some(Ok(WsMessage::Text(text)))) => {
                if let Err(end) = s.frame(&text) {
                    return Err(describe(&end, bound));
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => return Ok(()),
        }
    }
}
