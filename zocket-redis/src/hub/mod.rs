//! [`RedisHub`]: a [`LocalHub`] for this node's connections, plus Redis pub/sub for
//! the other nodes' and Redis sets for cluster-wide membership.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use zocket_core::ClientId;
use zocket_core::hub::{
    Delivery, Hub, HubError, HubFuture, HubStats, LocalHub, Outbound, Recipients, check_close,
};
use zocket_core::protocol::Text;

use crate::config::RedisHubConfig;
use crate::envelope::{self, Decoded, Instance, Kind};

mod backoff;
mod subscriber;
mod writer;

use backoff::Backoff;
use subscriber::subscriber;
use writer::writer;

/// Why [`RedisHub::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisHubError {
    /// The URL is not a valid Redis URL.
    #[error("invalid redis url: {0}")]
    InvalidUrl(String),
    /// Redis did not answer at startup.
    #[error("redis unreachable at startup: {0}")]
    Unreachable(String),
}

/// The most commands sent to Redis in one pipelined round trip.
const BATCH: usize = 1024;
/// The most channels named in one SUBSCRIBE / UNSUBSCRIBE.
const SUB_CHUNK: usize = 1000;

/// Names of the channels and keys, all under the configured prefix.
struct Names {
    all: String,
    room: String,
    client: String,
    nodes: String,
    node: String,
    clients: String,
    members: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            all: format!("{prefix}:all"),
            room: format!("{prefix}:room:"),
            client: format!("{prefix}:client:"),
            nodes: format!("{prefix}:nodes"),
            node: format!("{prefix}:node:"),
            clients: format!("{prefix}:clients:"),
            members: format!("{prefix}:members:"),
        }
    }
    fn room_channel(&self, room: &str) -> String {
        format!("{}{room}", self.room)
    }
    fn client_channel(&self, id: &str) -> String {
        format!("{}{id}", self.client)
    }
    fn node_key(&self, node: &str) -> String {
        format!("{}{node}", self.node)
    }
    fn clients_key(&self, node: &str) -> String {
        format!("{}{node}", self.clients)
    }
    fn members_key(&self, node: &str, room: &str) -> String {
        format!("{}{node}:{room}", self.members)
    }
}

/// Where the writer sends a publish's receiver count.
type Reply = oneshot::Sender<Result<i64, HubError>>;

/// One command for the writer task, which owns the order of everything sent to Redis.
enum Op {
    Publish {
        channel: String,
        payload: Bytes,
        reply: Option<Reply>,
    },
    Register(ClientId),
    Unregister(ClientId, Vec<String>),
    Join(ClientId, String),
    Leave(ClientId, String),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// Which connections are down, so an outage is logged once, when it starts and ends.
#[derive(Default)]
struct Outage {
    /// Bit 0: the writer connection; bit 1: the subscriber connection.
    down: Mutex<(u8, Option<Instant>, u64)>,
}

const WRITER: u8 = 1;
const SUBSCRIBER: u8 = 2;

impl Outage {
    fn failed(&self, who: u8, error: &dyn std::fmt::Display, failed_total: u64) {
        let mut d = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if d.0 == 0 {
            tracing::warn!(%error, "redis unreachable: cross-node sends fail (counted in cluster_send_failures) until it is back; local delivery continues");
            d.1 = Some(Instant::now());
            d.2 = failed_total;
        }
        d.0 |= who;
    }
    fn ok(&self, who: u8, failed_total: u64) {
        let mut d = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if d.0 & who == 0 {
            return;
        }
        d.0 &= !who;
        if d.0 == 0 {
            let took = d.1.map(|t| t.elapsed()).unwrap_or_default();
            tracing::warn!(
                outage = ?took,
                failed_sends = failed_total.saturating_sub(d.2),
                "redis reachable again: subscriptions restored"
            );
        }
    }
}

/// What the subscriber should be subscribed to, and what changed since it last looked.
#[derive(Default)]
struct Subs {
    wanted: HashSet<String>,
    pending: HashMap<String, bool>,
    /// Bumped on every change of `wanted`.
    requested: u64,
}

struct Shared {
    local: LocalHub,
    cfg: RedisHubConfig,
    instance: Instance,
    instance_hex: String,
    names: Names,
    queue: mpsc::Sender<Op>,
    subs: Mutex<Subs>,
    sub_notify: Notify,
    /// The `requested` generation the subscriber has applied, while connected.
    applied: watch::Sender<Option<u64>>,
    published: AtomicU64,
    received: AtomicU64,
    failed: AtomicU64,
    sessions: AtomicU64,
    outage: Outage,
    queue_full_logged: AtomicBool,
    bad_envelope_logged: AtomicBool,
    dirty: AtomicBool,
    conn: ConnectionManager,
    cancel: CancellationToken,
}

/// A [`Hub`] that makes several server processes behave as one, over Redis.
///
/// - **Delivery**: each event is encoded once (by core) and published once per target
///   on a channel per room (`{prefix}:room:{name}`), per client
///   (`{prefix}:client:{id}`) or for everyone (`{prefix}:all`), in a small binary
///   envelope around the unchanged frame. The sending node delivers to its own
///   recipients directly and ignores its own echo; each node subscribes to exactly the
///   channels its connections need (a room's channel from its first local member until
///   its last leaves, each local client's own channel, the broadcast channel) and
///   delivers the frame bytes without decoding them. Events to clients that are all on
///   this node never touch Redis.
/// - **Never waits**: `join`, `leave` and sends enqueue their Redis work on one writer
///   task (a bounded queue, [`RedisHubConfig::publish_queue`]), which sends it in order,
///   pipelined; subscriptions are changed by a subscriber task. So events from one
///   sender to one target arrive in the order sent.
/// - **Membership** lives in Redis sets per node, refreshed by a heartbeat and expiring
///   after [`RedisHubConfig::membership_ttl`] without one, so a crashed node's members
///   disappear from [`Hub::members`], [`Hub::member_count`] and [`Hub::is_connected`]
///   within that bound.
/// - **Failures**: see the crate docs.
pub struct RedisHub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHub")
            .field("node", &self.shared.cfg.node_name)
            .field("instance", &self.shared.instance_hex)
            .field("prefix", &self.shared.cfg.prefix)
            .finish()
    }
}

impl Drop for RedisHub {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

impl RedisHub {
    /// Connect to Redis and start the writer, subscriber and heartbeat tasks (on the
    /// current tokio runtime). Resolves once the broadcast channel is subscribed, so the
    /// node is ready when this returns. Fails if Redis does not answer now; once
    /// connected, outages are survived (see the crate docs).
    pub async fn connect(cfg: RedisHubConfig) -> Result<Arc<Self>, RedisHubError> {
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|e| RedisHubError::InvalidUrl(e.to_string()))?;
        let mgr_cfg = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(cfg.reconnect_min)
            .set_max_delay(cfg.reconnect_max)
            .set_connection_timeout(Some(cfg.command_timeout))
            .set_response_timeout(Some(cfg.command_timeout));
        let conn = tokio::time::timeout(
            cfg.command_timeout * 2,
            ConnectionManager::new_with_config(client.clone(), mgr_cfg),
        )
        .await
        .map_err(|_| RedisHubError::Unreachable("connect timed out".into()))?
        .map_err(|e| RedisHubError::Unreachable(e.to_string()))?;
        let instance: Instance = *uuid::Uuid::new_v4().as_bytes();
        let instance_hex = instance
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let (queue, rx) = mpsc::channel(cfg.publish_queue);
        let names = Names::new(&cfg.prefix);
        let mut subs = Subs::default();
        subs.wanted.insert(names.all.clone());
        subs.requested = 1;
        let shared = Arc::new(Shared {
            local: LocalHub::new(),
            instance,
            instance_hex,
            names,
            queue,
            subs: Mutex::new(subs),
            sub_notify: Notify::new(),
            applied: watch::Sender::new(None),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            outage: Outage::default(),
            queue_full_logged: AtomicBool::new(false),
            bad_envelope_logged: AtomicBool::new(false),
            dirty: AtomicBool::new(true),
            conn,
            cancel: CancellationToken::new(),
            cfg,
        });
        tracing::info!(node = %shared.cfg.node_name, instance = %shared.instance_hex, prefix = %shared.cfg.prefix, "redis hub connected");
        tokio::spawn(writer(shared.clone(), rx));
        tokio::spawn(subscriber(shared.clone(), client));
        let hub = Arc::new(Self { shared });
        let ready = tokio::time::timeout(hub.shared.cfg.command_timeout * 2, hub.settled()).await;
        if ready.is_err() {
            return Err(RedisHubError::Unreachable("subscribe timed out".into()));
        }
        Ok(hub)
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.shared.cfg.node_name
    }

    /// How many times the pub/sub connection has been established (1 after
    /// [`connect`](Self::connect); each reconnect after a failure adds one).
    pub fn subscriber_sessions(&self) -> u64 {
        self.shared.sessions.load(Relaxed)
    }

    /// The local part: this node's connections and rooms.
    pub fn local(&self) -> &LocalHub {
        &self.shared.local
    }

    /// Resolves once every subscription this node's connections need right now is
    /// confirmed by Redis (the subscriber is connected and has caught up). Joins and
    /// registrations after the call are not waited for. For tests and orderly startup;
    /// handlers never need it.
    pub async fn settled(&self) {
        let target = self.shared.lock_subs().requested;
        let mut rx = self.shared.applied.subscribe();
        let _ = rx.wait_for(|a| a.is_some_and(|a| a >= target)).await;
    }

    /// Resolves once every Redis command queued before the call (publishes, membership
    /// updates) has been sent and answered, or has failed. For tests and orderly
    /// shutdown; handlers never need it.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.queue.send(Op::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Leave the cluster in order: the queued Redis work is sent, then this node's
    /// membership records are removed, and the tasks stop. Call it after the server's
    /// shutdown. (Dropping the hub without it stops the tasks; the records then expire
    /// after the membership TTL.)
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.queue.send(Op::Close(tx)).await.is_ok() {
            let _ = tokio::time::timeout(self.shared.cfg.command_timeout * 2, rx).await;
        }
        self.shared.cancel.cancel();
    }
}

impl Shared {
    fn lock_subs(&self) -> std::sync::MutexGuard<'_, Subs> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Want `channel` subscribed or not; the subscriber task is told if that changes.
    fn want(&self, channel: String, on: bool) {
        let mut s = self.lock_subs();
        let changed = if on {
            s.wanted.insert(channel.clone())
        } else {
            s.wanted.remove(&channel)
        };
        if changed {
            s.pending.insert(channel, on);
            s.requested += 1;
            drop(s);
            self.sub_notify.notify_one();
        }
    }

    /// Re-evaluate a room's channel after a join or leave (under the subs lock, so the
    /// last evaluation always sees the last change).
    fn room_changed(&self, room: &str) {
        let mut s = self.lock_subs();
        let on = self.local.local_member_count(room) > 0;
        let channel = self.names.room_channel(room);
        let changed = if on {
            s.wanted.insert(channel.clone())
        } else {
            s.wanted.remove(&channel)
        };
        if changed {
            s.pending.insert(channel, on);
            s.requested += 1;
            drop(s);
            self.sub_notify.notify_one();
        }
    }

    fn enqueue(&self, op: Op) -> bool {
        match self.queue.try_send(op) {
            Ok(()) => true,
            Err(e) => {
                let op = match e {
                    mpsc::error::TrySendError::Full(op) => {
                        if !self.queue_full_logged.swap(true, Relaxed) {
                            tracing::warn!(
                                capacity = self.cfg.publish_queue,
                                "redis publish queue full: cross-node sends fail until it drains"
                            );
                        }
                        op
                    }
                    mpsc::error::TrySendError::Closed(op) => op,
                };
                match op {
                    Op::Publish { reply, .. } => {
                        self.failed.fetch_add(1, Relaxed);
                        if let Some(r) = reply {
                            let _ = r.send(Err(HubError::Unavailable(
                                "redis publish queue full or closed".into(),
                            )));
                        }
                    }
                    _ => self.dirty.store(true, Relaxed),
                }
                false
            }
        }
    }

    fn publish(&self, channel: String, payload: Bytes) {
        self.enqueue(Op::Publish {
            channel,
            payload,
            reply: None,
        });
    }

    /// The other live nodes' instance ids.
    async fn other_nodes(&self, conn: &mut ConnectionManager) -> Result<Vec<String>, HubError> {
        let nodes: Vec<String> = self
            .timed(
                redis::cmd("SMEMBERS")
                    .arg(&self.names.nodes)
                    .query_async(conn),
            )
            .await?;
        Ok(nodes
            .into_iter()
            .filter(|n| *n != self.instance_hex)
            .collect())
    }

    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, HubError> {
        match tokio::time::timeout(self.cfg.command_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(HubError::Unavailable(e.to_string())),
            Err(_) => Err(HubError::Unavailable("redis timed out".into())),
        }
    }

    /// Ask every other node's set with one pipelined command each.
    async fn per_node<T: redis::FromRedisValue>(
        &self,
        cmd: &str,
        key: impl Fn(&str) -> String,
        arg: Option<&str>,
    ) -> Result<Vec<T>, HubError> {
        let mut conn = self.conn.clone();
        let nodes = self.other_nodes(&mut conn).await?;
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for n in &nodes {
            let c = pipe.cmd(cmd).arg(key(n));
            if let Some(a) = arg {
                c.arg(a);
            }
        }
        self.timed(pipe.query_async(&mut conn)).await
    }

    fn on_message(&self, channel: &str, payload: &[u8]) {
        if envelope::sender(payload) == Some(&self.instance[..]) {
            return;
        }
        let decoded = match envelope::decode(payload) {
            Ok(d) => d,
            Err(e) => return self.bad_envelope(channel, &e),
        };
        let frame = |bytes: &[u8]| Text::try_from(Bytes::copy_from_slice(bytes));
        self.received.fetch_add(1, Relaxed);
        match decoded {
            Decoded::Client(f) => {
                let Some(id) = channel.strip_prefix(&self.names.client) else {
                    return self.bad_envelope(channel, &"client event on another channel");
                };
                match frame(f) {
                    Ok(t) => {
                        self.local
                            .deliver(&Recipients::Clients(vec![ClientId::from(id)]), &t);
                    }
                    Err(_) => self.bad_envelope(channel, &"frame is not UTF-8"),
                }
            }
            Decoded::All(f) => match frame(f) {
                Ok(t) => {
                    self.local.deliver(&Recipients::All, &t);
                }
                Err(_) => self.bad_envelope(channel, &"frame is not UTF-8"),
            },
            Decoded::Rooms(names, f) => {
                let Some(room) = channel.strip_prefix(&self.names.room) else {
                    return self.bad_envelope(channel, &"room event on another channel");
                };
                let Some(index) = names.iter().position(|n| *n == room) else {
                    return self.bad_envelope(channel, &"room not in the envelope's rooms");
                };
                match frame(f) {
                    Ok(t) => {
                        let rooms: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
                        self.local.deliver_room_once(&rooms, index, &t);
                    }
                    Err(_) => self.bad_envelope(channel, &"frame is not UTF-8"),
                }
            }
            Decoded::Disconnect(code, reason) => {
                let Some(id) = channel.strip_prefix(&self.names.client) else {
                    return self.bad_envelope(channel, &"disconnect on another channel");
                };
                if check_close(code, reason).is_ok() {
                    self.local
                        .disconnect_local(&ClientId::from(id), code, reason);
                } else {
                    self.bad_envelope(channel, &"invalid close code or reason");
                }
            }
        }
    }

    fn bad_envelope(&self, channel: &str, error: &dyn std::fmt::Display) {
        if !self.bad_envelope_logged.swap(true, Relaxed) {
            tracing::warn!(%channel, %error, "ignoring a malformed message on a zocket channel (logged once; later ones at debug)");
        } else {
            tracing::debug!(%channel, %error, "ignoring a malformed message");
        }
    }
}

impl Hub for RedisHub {
    fn register(&self, out: Outbound) {
        let s = &self.shared;
        let id = out.id().clone();
        s.local.register(out);
        s.want(s.names.client_channel(id.as_str()), true);
        s.enqueue(Op::Register(id));
    }

    fn unregister(&self, id: &ClientId) {
        let s = &self.shared;
        let rooms = s.local.rooms_of(id);
        s.local.unregister(id);
        for r in &rooms {
            s.room_changed(r);
        }
        s.want(s.names.client_channel(id.as_str()), false);
        s.enqueue(Op::Unregister(id.clone(), rooms));
    }

    fn join(&self, id: &ClientId, room: &str) -> bool {
        let s = &self.shared;
        if !s.local.join(id, room) {
            return false;
        }
        s.room_changed(room);
        s.enqueue(Op::Join(id.clone(), room.to_owned()));
        true
    }

    fn leave(&self, id: &ClientId, room: &str) -> bool {
        let s = &self.shared;
        if !s.local.leave(id, room) {
            return false;
        }
        s.room_changed(room);
        s.enqueue(Op::Leave(id.clone(), room.to_owned()));
        true
    }

    fn has(&self, id: &ClientId, room: &str) -> bool {
        self.shared.local.has(id, room)
    }

    fn rooms_of(&self, id: &ClientId) -> Vec<String> {
        self.shared.local.rooms_of(id)
    }

    fn deliver(&self, target: &Recipients, frame: &Text) -> Delivery {
        let s = &self.shared;
        let d = s.local.deliver(target, frame);
        match target {
            Recipients::All => {
                let e = envelope::event(&s.instance, Kind::All, frame.as_bytes());
                s.publish(s.names.all.clone(), e);
            }
            Recipients::Clients(ids) => {
                let mut seen = HashSet::with_capacity(ids.len());
                let mut env = None;
                for id in ids {
                    if !seen.insert(id) || s.local.is_local(id) {
                        continue;
                    }
                    let e = env
                        .get_or_insert_with(|| {
                            envelope::event(&s.instance, Kind::Client, frame.as_bytes())
                        })
                        .clone();
                    s.publish(s.names.client_channel(id.as_str()), e);
                }
            }
            Recipients::Rooms(rooms) => {
                let mut unique: Vec<String> = Vec::with_capacity(rooms.len());
                for r in rooms {
                    if !unique.contains(r) {
                        unique.push(r.clone());
                    }
                }
                match envelope::rooms(&s.instance, &unique, frame.as_bytes()) {
                    Ok(e) => {
                        for r in &unique {
                            s.publish(s.names.room_channel(r), e.clone());
                        }
                    }
                    Err(err) => {
                        s.failed.fetch_add(unique.len() as u64, Relaxed);
                        tracing::warn!(error = %err, rooms = unique.len(), "event not published to other nodes");
                    }
                }
            }
        }
        d
    }

    fn local_connections(&self) -> usize {
        self.shared.local.local_connections()
    }

    fn members(&self, room: &str) -> HubFuture<'_, Vec<ClientId>> {
        let room = room.to_owned();
        Box::pin(async move {
            let s = &self.shared;
            let mut all = s.local.local_members(&room);
            let remote: Vec<Vec<String>> = s
                .per_node("SMEMBERS", |n| s.names.members_key(n, &room), None)
                .await?;
            all.extend(remote.into_iter().flatten().map(ClientId::from));
            all.sort();
            all.dedup();
            Ok(all)
        })
    }

    fn member_count(&self, room: &str) -> HubFuture<'_, usize> {
        let room = room.to_owned();
        Box::pin(async move {
            let s = &self.shared;
            let local = s.local.local_member_count(&room);
            let remote: Vec<usize> = s
                .per_node("SCARD", |n| s.names.members_key(n, &room), None)
                .await?;
            Ok(local + remote.into_iter().sum::<usize>())
        })
    }

    fn is_connected(&self, id: &ClientId) -> HubFuture<'_, bool> {
        let id = id.clone();
        Box::pin(async move {
            let s = &self.shared;
            if s.local.is_local(&id) {
                return Ok(true);
            }
            let found: Vec<bool> = s
                .per_node("SISMEMBER", |n| s.names.clients_key(n), Some(id.as_str()))
                .await?;
            Ok(found.into_iter().any(|b| b))
        })
    }

    fn disconnect(&self, id: &ClientId, code: u16, reason: &str) -> HubFuture<'_, bool> {
        let id = id.clone();
        let reason = reason.to_owned();
        Box::pin(async move {
            check_close(code, &reason)?;
            let s = &self.shared;
            if s.local.disconnect_local(&id, code, &reason) {
                return Ok(true);
            }
            let (tx, rx) = oneshot::channel();
            // Through the writer's queue, so events sent before the disconnect arrive
            // before it.
            s.enqueue(Op::Publish {
                channel: s.names.client_channel(id.as_str()),
                payload: envelope::disconnect(&s.instance, code, &reason),
                reply: Some(tx),
            });
            let receivers = rx
                .await
                .map_err(|_| HubError::Unavailable("redis hub closed".into()))??;
            Ok(receivers > 0)
        })
    }

    fn stats(&self) -> HubStats {
        let s = &self.shared;
        HubStats::new(
            s.published.load(Relaxed),
            s.received.load(Relaxed),
            s.failed.load(Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_under_the_prefix() {
        let n = Names::new("p");
        assert_eq!(n.room_channel("a:b"), "p:room:a:b");
        assert_eq!(n.client_channel("c"), "p:client:c");
        assert_eq!(n.members_key("n1", "r"), "p:members:n1:r");
        assert_eq!(n.clients_key("n1"), "p:clients:n1");
        assert_eq!(n.all, "p:all");
        assert_eq!(crate::envelope::INSTANCE_LEN, 16);
    }
}
