//! The in-memory hub.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::RwLock;

use super::{Delivery, Hub, HubFuture, Outbound, Recipients, check_close};
use crate::context::CloseReason;
use crate::ids::ClientId;
use crate::protocol::Text;

/// One connection: its queue and its rooms.
#[derive(Default)]
struct Entry {
    out: Option<Outbound>,
    rooms: BTreeSet<String>,
}

/// Every connection of this node and every room with a member here.
#[derive(Default)]
struct Registry {
    conns: HashMap<ClientId, Entry>,
    rooms: HashMap<String, HashSet<ClientId>>,
}

/// The in-memory hub: one process, every connection in a map, rooms as sets.
///
/// Besides the [`Hub`] trait it offers synchronous, this-node-only methods
/// (`local_*`, [`deliver_room_once`](LocalHub::deliver_room_once)) that a distributed
/// hub wrapping it builds on.
#[derive(Default)]
pub struct LocalHub {
    registry: RwLock<Registry>,
}

impl LocalHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|p| p.into_inner())
    }
    /// The members of `room` on this node, sorted.
    pub fn local_members(&self, room: &str) -> Vec<ClientId> {
        let mut v: Vec<ClientId> = self
            .read()
            .rooms
            .get(room)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
    /// How many members `room` has on this node.
    pub fn local_member_count(&self, room: &str) -> usize {
        self.read().rooms.get(room).map_or(0, HashSet::len)
    }
    /// Whether `id` is a connection of this node.
    pub fn is_local(&self, id: &ClientId) -> bool {
        self.read().conns.contains_key(id)
    }
    /// The ids of this node's connections (unsorted).
    pub fn local_ids(&self) -> Vec<ClientId> {
        self.read().conns.keys().cloned().collect()
    }
    /// The rooms that have at least one member on this node (unsorted).
    pub fn local_rooms(&self) -> Vec<String> {
        self.read().rooms.keys().cloned().collect()
    }
    /// Close `id` if it is a connection of this node, with [`CloseReason::Closed`];
    /// `false` if it is not here. The code and reason are not checked here (see
    /// [`check_close`]).
    pub fn disconnect_local(&self, id: &ClientId, code: u16, reason: &str) -> bool {
        match self.read().conns.get(id).and_then(|e| e.out.as_ref()) {
            Some(out) => {
                out.close(CloseReason::Closed {
                    code,
                    reason: reason.to_owned(),
                });
                true
            }
            None => false,
        }
    }
    /// Deliver to this node's members of `rooms[index]` that are in none of
    /// `rooms[..index]`: called once per room of a multi-room send, each member gets
    /// the frame once, and no state is needed between the calls. An `index` out of range
    /// delivers nothing.
    pub fn deliver_room_once(&self, rooms: &[String], index: usize, frame: &Text) -> Delivery {
        let mut d = Delivery::default();
        let (Some(room), earlier) = (rooms.get(index), rooms.get(..index).unwrap_or(&[])) else {
            return d;
        };
        let st = self.read();
        for id in st.rooms.get(room).into_iter().flatten() {
            if let Some(e) = st.conns.get(id) {
                if earlier.iter().any(|r| e.rooms.contains(r)) {
                    continue;
                }
                if let Some(out) = &e.out {
                    d.add(out.push(frame.clone()));
                }
            }
        }
        crate::stats::record_events_delivered(d.queued);
        d
    }
}

impl Hub for LocalHub {
    fn register(&self, out: Outbound) {
        let id = out.id().clone();
        self.write().conns.insert(
            id,
            Entry {
                out: Some(out),
                rooms: BTreeSet::new(),
            },
        );
    }

    fn unregister(&self, id: &ClientId) {
        let mut st = self.write();
        if let Some(entry) = st.conns.remove(id) {
            for room in entry.rooms {
                if let Some(set) = st.rooms.get_mut(&room) {
                    set.remove(id);
                    if set.is_empty() {
                        st.rooms.remove(&room);
                    }
                }
            }
        }
    }

    fn join(&self, id: &ClientId, room: &str) -> bool {
        let mut st = self.write();
        let Some(entry) = st.conns.get_mut(id) else {
            return false;
        };
        if !entry.rooms.insert(room.to_owned()) {
            return false;
        }
        st.rooms
            .entry(room.to_owned())
            .or_default()
            .insert(id.clone());
        true
    }

    fn leave(&self, id: &ClientId, room: &str) -> bool {
        let mut st = self.write();
        let Some(entry) = st.conns.get_mut(id) else {
            return false;
        };
        if !entry.rooms.remove(room) {
            return false;
        }
        if let Some(set) = st.rooms.get_mut(room) {
            set.remove(id);
            if set.is_empty() {
                st.rooms.remove(room);
            }
        }
        true
    }

    fn has(&self, id: &ClientId, room: &str) -> bool {
        self.read()
            .conns
            .get(id)
            .is_some_and(|e| e.rooms.contains(room))
    }

    fn rooms_of(&self, id: &ClientId) -> Vec<String> {
        self.read()
            .conns
            .get(id)
            .map(|e| e.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn deliver(&self, to: &Recipients, frame: &Text) -> Delivery {
        let st = self.read();
        let mut d = Delivery::default();
        let mut push = |e: &Entry| {
            if let Some(out) = &e.out {
                d.add(out.push(frame.clone()));
            }
        };
        match to {
            Recipients::All => st.conns.values().for_each(&mut push),
            Recipients::Clients(ids) => {
                let mut seen = HashSet::with_capacity(ids.len());
                for id in ids {
                    if seen.insert(id) {
                        if let Some(e) = st.conns.get(id) {
                            push(e);
                        }
                    }
                }
            }
            Recipients::Rooms(rooms) => {
                if let [room] = rooms.as_slice() {
                    for id in st.rooms.get(room).into_iter().flatten() {
                        if let Some(e) = st.conns.get(id) {
                            push(e);
                        }
                    }
                } else {
                    let mut seen = HashSet::new();
                    for id in rooms.iter().filter_map(|r| st.rooms.get(r)).flatten() {
                        if seen.insert(id) {
                            if let Some(e) = st.conns.get(id) {
                                push(e);
                            }
                        }
                    }
                }
            }
        }
        crate::stats::record_events_delivered(d.queued);
        d
    }

    fn local_connections(&self) -> usize {
        self.read().conns.len()
    }

    fn members(&self, room: &str) -> HubFuture<'_, Vec<ClientId>> {
        let v = self.local_members(room);
        Box::pin(std::future::ready(Ok(v)))
    }

    fn member_count(&self, room: &str) -> HubFuture<'_, usize> {
        let n = self.local_member_count(room);
        Box::pin(std::future::ready(Ok(n)))
    }

    fn is_connected(&self, id: &ClientId) -> HubFuture<'_, bool> {
        let b = self.is_local(id);
        Box::pin(std::future::ready(Ok(b)))
    }

    fn disconnect(&self, id: &ClientId, code: u16, reason: &str) -> HubFuture<'_, bool> {
        let r = check_close(code, reason).map(|()| self.disconnect_local(id, code, reason));
        Box::pin(std::future::ready(r))
    }
}
