//! [`RedisHubConfig`]: where Redis is, the key prefix, the node's name, and the timers.

use std::time::Duration;

/// How a [`crate::RedisHub`] connects and behaves. Build with [`RedisHubConfig::new`]
/// and the setters; every field has a documented default.
#[derive(Debug, Clone)]
pub struct RedisHubConfig {
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) node_name: String,
    pub(crate) heartbeat: Duration,
    pub(crate) membership_ttl: Duration,
    pub(crate) publish_queue: usize,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) command_timeout: Duration,
}

impl RedisHubConfig {
    /// Connect to the Redis server at `url` (`redis://[user:password@]host[:port][/db]`),
    /// with the defaults: prefix `zocket`, a random node name, heartbeat every 5 s,
    /// membership expiry 15 s, a publish queue of 65 536 commands, reconnect backoff
    /// from 100 ms doubling up to 5 s, and a 2 s timeout per Redis round trip.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "zocket".into(),
            node_name: format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            heartbeat: Duration::from_secs(5),
            membership_ttl: Duration::from_secs(15),
            publish_queue: 65_536,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            command_timeout: Duration::from_secs(2),
        }
    }

    /// The prefix of every channel and key this hub uses (default `zocket`). Nodes with
    /// the same prefix on the same Redis form one cluster; different prefixes share a
    /// Redis without seeing each other.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// This node's name, shown in logs (default `node-` and 8 random hex digits). Names
    /// need not be unique: each process also has a random instance id.
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node_name = name.into();
        self
    }

    /// How often the node refreshes its membership records in Redis (default 5 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(10));
        self
    }

    /// How long membership records live without a heartbeat (default 15 s; at least
    /// twice the heartbeat, raised to that if set lower). This is the bound: the members
    /// and connections of a node that crashed disappear from the cluster-wide answers
    /// ([`members`](zocket_core::ServerHandle::members), `member_count`, `is_connected`)
    /// at most this long after its last heartbeat.
    pub fn membership_ttl(mut self, ttl: Duration) -> Self {
        self.membership_ttl = ttl;
        self
    }

    /// How many Redis commands (publishes and membership updates) may wait for the
    /// connection (default 65 536). A send that finds the queue full is counted as a
    /// failed cross-node send, never waited for.
    pub fn publish_queue(mut self, capacity: usize) -> Self {
        self.publish_queue = capacity.max(1);
        self
    }

    /// Reconnect backoff: the first delay after a failure, doubled per failed attempt up
    /// to `max` (defaults 100 ms and 5 s).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// The longest one Redis round trip may take before it counts as failed (default 2 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The effective membership expiry (at least twice the heartbeat).
    pub(crate) fn ttl(&self) -> Duration {
        self.membership_ttl.max(self.heartbeat * 2)
    }
}
