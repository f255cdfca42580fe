//! The chat's directory across processes (`chat --redis URL`): room membership comes
//! from the hub's cluster-wide `members` (so a crashed process's users drop out with the
//! hub's membership expiry), and user names of other processes' connections from one
//! Redis hash, `{prefix}:chat:names` (client id → user name).

use std::collections::BTreeSet;
use std::time::Duration;

use redis::aio::ConnectionManager;
use zocket_core::{ClientId, ServerHandle};

use super::contract::{Member, Members};

/// The longest a name lookup may take before the member list is sent without the
/// remote part (logged).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// User names shared by the chat processes of one cluster.
#[derive(Clone)]
pub struct ChatCluster {
    conn: ConnectionManager,
    names_key: String,
}

impl std::fmt::Debug for ChatCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatCluster")
            .field("names_key", &self.names_key)
            .finish_non_exhaustive()
    }
}

impl ChatCluster {
    /// Connect to Redis; names live under `{prefix}:chat:names`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = tokio::time::timeout(LOOKUP_TIMEOUT, ConnectionManager::new(client))
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
        Ok(Self {
            conn,
            names_key: format!("{prefix}:chat:names"),
        })
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(LOOKUP_TIMEOUT, cmd.query_async(&mut conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "chat directory: redis command failed");
                None
            }
            Err(_) => {
                tracing::warn!("chat directory: redis command timed out");
                None
            }
        }
    }

    /// Publish a user's name for the other processes.
    pub(crate) async fn set_name(&self, m: &Member) {
        let _: Option<()> = self
            .run(
                redis::cmd("HSET")
                    .arg(&self.names_key)
                    .arg(m.client_id.as_str())
                    .arg(&m.user_name),
            )
            .await;
    }

    /// Forget a user's name (it disconnected).
    pub(crate) async fn forget(&self, id: &ClientId) {
        let _: Option<()> = self
            .run(redis::cmd("HDEL").arg(&self.names_key).arg(id.as_str()))
            .await;
    }

    /// The user with this id on any process, if connected and named.
    pub(crate) async fn user(&self, server: &ServerHandle, id: &ClientId) -> Option<Member> {
        if !server.is_connected(id).await.ok()? {
            return None;
        }
        let name: Option<String> = self
            .run(redis::cmd("HGET").arg(&self.names_key).arg(id.as_str()))
            .await?;
        name.map(|user_name| Member {
            user_name,
            client_id: id.clone(),
        })
    }

    /// A room's members on every process: `local` (this process's, with names) plus
    /// the hub's other members, named from the hash (ids without a name yet, i.e. not
    /// attached, are left out as locally). `exclude` is left out too (a member that is
    /// leaving or disconnecting but still registered).
    pub(crate) async fn members(
        &self,
        server: &ServerHandle,
        local: Members,
        exclude: Option<&ClientId>,
    ) -> Members {
        let mut set: BTreeSet<Member> = local.members.into_iter().collect();
        let ids = match server.members(&local.room).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, room = %local.room, "member list of this process only");
                Vec::new()
            }
        };
        let known: std::collections::HashSet<&ClientId> =
            set.iter().map(|m| &m.client_id).collect();
        let remote: Vec<ClientId> = ids
            .into_iter()
            .filter(|id| !known.contains(id) && Some(id) != exclude)
            .collect();
        if !remote.is_empty() {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(&self.names_key);
            for id in &remote {
                cmd.arg(id.as_str());
            }
            let names: Vec<Option<String>> = self.run(&cmd).await.unwrap_or_default();
            for (id, name) in remote.into_iter().zip(names) {
                if let Some(user_name) = name {
                    set.insert(Member {
                        user_name,
                        client_id: id,
                    });
                }
            }
        }
        if let Some(x) = exclude {
            set.retain(|m| &m.client_id != x);
        }
        Members {
            room: local.room,
            members: set.into_iter().collect(),
        }
    }
}
