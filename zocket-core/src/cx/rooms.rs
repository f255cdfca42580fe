//! A connection's rooms, as its handlers see them.

use std::fmt;
use std::sync::atomic::Ordering;

use super::conn::Conn;
use super::limits::limit_reject;
use crate::error::Reject;
use crate::stats::inc;

/// Room operations of one connection. They never wait.
///
/// Joining and leaving cost O(log n) in the number of rooms the connection is in;
/// [`current`](Self::current) copies the list (O(n)), which
/// [`ServerConfig::max_rooms_per_connection`](crate::ServerConfig::max_rooms_per_connection)
/// bounds.
#[derive(Clone, Copy)]
pub struct Rooms<'a> {
    pub(super) conn: &'a Conn,
}

impl fmt::Debug for Rooms<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::redact::list(&self.current(), 10, 64))
    }
}

impl Rooms<'_> {
    /// Join a room: `Ok(true)` if joined, `Ok(false)` if a member already. Refused with
    /// a `LIMIT` [`Reject`] (return it with `?` to answer the client) when the name is
    /// longer than [`ServerConfig::max_room_name_bytes`](crate::ServerConfig::max_room_name_bytes)
    /// or the connection is in
    /// [`ServerConfig::max_rooms_per_connection`](crate::ServerConfig::max_rooms_per_connection)
    /// rooms already.
    pub fn join(&self, room: &str) -> Result<bool, Reject> {
        let conn = self.conn;
        let limits = &conn.limits;
        if let Err((limit, max)) = limits.check_room_name(room) {
            inc(&conn.stats.limit_refusals);
            tracing::debug!(client_id = %conn.id, len = room.len(), "join refused: {limit}");
            return Err(limit_reject(limit, max));
        }
        if conn.hub.has(&conn.id, room) {
            return Ok(false);
        }
        if conn.rooms.fetch_add(1, Ordering::AcqRel) >= limits.max_rooms {
            conn.rooms.fetch_sub(1, Ordering::AcqRel);
            inc(&conn.stats.limit_refusals);
            tracing::debug!(client_id = %conn.id, max = limits.max_rooms, "join refused: max_rooms_per_connection");
            return Err(limit_reject("max_rooms_per_connection", limits.max_rooms));
        }
        let joined = conn.hub.join(&conn.id, room);
        if !joined {
            conn.rooms.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(joined)
    }
    /// Leave a room; `false` if not a member.
    pub fn leave(&self, room: &str) -> bool {
        let left = self.conn.hub.leave(&self.conn.id, room);
        if left {
            self.conn.rooms.fetch_sub(1, Ordering::AcqRel);
        }
        left
    }
    /// Whether this connection is in `room`.
    pub fn has(&self, room: &str) -> bool {
        self.conn.hub.has(&self.conn.id, room)
    }
    /// The current rooms, sorted.
    pub fn current(&self) -> Vec<String> {
        self.conn.hub.rooms_of(&self.conn.id)
    }
}
