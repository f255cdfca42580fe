//! The outbound queues: frames waiting to be written, in two lanes.
//!
//! The main lane holds what every handle sends (buffered while disconnected, up to the
//! outbound buffer); the priority lane holds what after-connect hooks send, written
//! ahead of the main lane, which waits until the hooks are done.

use tokio::sync::{mpsc, oneshot};

use crate::calls::{Calls, Reply};
use crate::error::ClientError;
use crate::state::ConnectionState;

/// A frame waiting to be written.
pub(crate) struct QueuedFrame {
    pub(crate) text: String,
    pub(crate) track: Track,
}

/// Who learns what became of an outgoing frame.
pub(crate) enum Track {
    /// An RPC: its pending entry (the reply comes from the reader).
    Rpc(u64),
    /// An emit: told once the frame is written (`Reply::Ok`) or cannot be.
    Emit(oneshot::Sender<Reply>),
}

impl QueuedFrame {
    /// This frame will never be written: tell its caller why.
    pub(crate) fn fail(self, calls: &Calls, reply: Reply) {
        match self.track {
            Track::Rpc(id) => {
                calls.answer(id, reply);
            }
            Track::Emit(ack) => {
                let _ = ack.send(reply);
            }
        }
    }
}

/// Which queue a handle writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Every ordinary handle.
    Main,
    /// The handles given to after-connect hooks.
    Priority,
}

/// The sending side of both lanes (held by every handle).
pub(crate) struct Outbox {
    main: mpsc::Sender<QueuedFrame>,
    priority: mpsc::Sender<QueuedFrame>,
    /// The outbound buffer (`0`: nothing is buffered while disconnected).
    capacity: usize,
}

/// The receiving side (held by the driver).
pub(crate) struct OutboxRx {
    pub(crate) main: mpsc::Receiver<QueuedFrame>,
    pub(crate) priority: mpsc::Receiver<QueuedFrame>,
}

/// Both lanes, each of `capacity` frames (at least 1).
pub(crate) fn outbox(capacity: usize) -> (Outbox, OutboxRx) {
    let (main, main_rx) = mpsc::channel(capacity.max(1));
    let (priority, priority_rx) = mpsc::channel(capacity.max(1));
    (
        Outbox {
            main,
            priority,
            capacity,
        },
        OutboxRx {
            main: main_rx,
            priority: priority_rx,
        },
    )
}

impl Outbox {
    /// Queue a frame. While open it waits for room; while (re)connecting it is
    /// buffered or refused at once (`BufferFull`, `NotConnected`).
    pub(crate) async fn enqueue(
        &self,
        lane: Lane,
        state: ConnectionState,
        name: &str,
        out: QueuedFrame,
    ) -> Result<(), ClientError> {
        let tx = match lane {
            Lane::Main => &self.main,
            Lane::Priority => &self.priority,
        };
        match state {
            ConnectionState::Open => tx.send(out).await.map_err(|_| ClientError::Closed),
            ConnectionState::Closed => Err(ClientError::Closed),
            ConnectionState::Connecting | ConnectionState::Reconnecting { .. } => {
                if self.capacity == 0 {
                    return Err(ClientError::NotConnected {
                        name: name.to_owned(),
                    });
                }
                tx.try_send(out).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => ClientError::BufferFull {
                        name: name.to_owned(),
                        capacity: self.capacity,
                    },
                    mpsc::error::TrySendError::Closed(_) => ClientError::Closed,
                })
            }
        }
    }
}

impl OutboxRx {
    /// The connection dropped: the hooks' frames not written yet fail with
    /// `Disconnected` (the main lane waits for the next connection).
    pub(crate) fn fail_priority(&mut self, calls: &Calls) {
        while let Ok(out) = self.priority.try_recv() {
            out.fail(calls, Reply::Disconnected);
        }
    }

    /// The client closed: nothing more is accepted, everything queued fails `Closed`.
    pub(crate) fn close(&mut self, calls: &Calls) {
        self.main.close();
        self.priority.close();
        while let Ok(out) = self.main.try_recv() {
            out.fail(calls, Reply::Closed);
        }
        while let Ok(out) = self.priority.try_recv() {
            out.fail(calls, Reply::Closed);
        }
    }
}
