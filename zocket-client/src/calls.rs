//! The pending-call table: every RPC waiting for its reply, by RPC id.
//!
//! A call registers itself before its frame is queued and is removed when it ends in
//! any way (reply, timeout, cancellation: [`CallGuard`]). The writer marks a call as
//! written on a connection generation; when that connection drops, exactly those calls
//! fail with `Disconnected`, while calls still buffered wait for the next connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::value::RawValue;
use tokio::sync::oneshot;
use zocket_core::protocol::WireError;

/// What a pending call (or an emit waiting to be written) is answered.
pub(crate) enum Reply {
    /// The result payload (`None` for a unit result), or for an emit: written.
    Ok(Option<Box<RawValue>>),
    /// The server's `__rpc_err`.
    Err(WireError),
    /// The connection dropped after the frame was written.
    Disconnected,
    /// The client closed.
    Closed,
}

struct Pending {
    tx: oneshot::Sender<Reply>,
    /// The connection generation it was written on; `None` while still buffered.
    sent_on: Option<u64>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pending calls, and the counter their RPC ids come from.
pub(crate) struct Calls {
    table: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
}

impl Default for Calls {
    fn default() -> Self {
        Self {
            table: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }
}

impl Calls {
    /// A fresh RPC id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Register call `id`: its reply arrives on the receiver; the guard removes it.
    pub(crate) fn register(&self, id: u64) -> (CallGuard<'_>, oneshot::Receiver<Reply>) {
        let (tx, rx) = oneshot::channel();
        lock(&self.table).insert(id, Pending { tx, sent_on: None });
        (CallGuard { calls: self, id }, rx)
    }

    /// Mark call `id` as written on connection `generation`; `false` when its caller
    /// gave up already (then the frame is not written).
    pub(crate) fn mark_sent(&self, id: u64, generation: u64) -> bool {
        match lock(&self.table).get_mut(&id) {
            Some(p) => {
                p.sent_on = Some(generation);
                true
            }
            None => false,
        }
    }

    /// Answer call `id` (and forget it); `false` when nobody waits for it.
    pub(crate) fn answer(&self, id: u64, reply: Reply) -> bool {
        let removed = lock(&self.table).remove(&id);
        match removed {
            Some(p) => {
                let _ = p.tx.send(reply);
                true
            }
            None => false,
        }
    }

    /// Fail every call written on connection `generation` with `Disconnected`.
    pub(crate) fn fail_sent_on(&self, generation: u64) {
        self.fail_where(|p| p.sent_on == Some(generation), || Reply::Disconnected);
    }

    /// Fail every call with `Closed`.
    pub(crate) fn fail_all(&self) {
        self.fail_where(|_| true, || Reply::Closed);
    }

    fn fail_where(&self, pred: impl Fn(&Pending) -> bool, reply: fn() -> Reply) {
        let failed: Vec<Pending> = {
            let mut table = lock(&self.table);
            let ids: Vec<u64> = table
                .iter()
                .filter(|(_, p)| pred(p))
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| table.remove(id)).collect()
        };
        for p in failed {
            let _ = p.tx.send(reply());
        }
    }
}

/// Removes a pending call when the call ends in any way (reply, timeout, cancellation).
pub(crate) struct CallGuard<'a> {
    calls: &'a Calls,
    id: u64,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        lock(&self.calls.table).remove(&self.id);
    }
}
