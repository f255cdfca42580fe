//! A connection whose handshake passed, and serving it: the hand-over to the engine.

use futures::{FutureExt as _, Sink, Stream};
use tracing::Instrument;

use super::Server;
use super::admission::Slot;
use crate::connection::{PingReplies, driver};
use crate::context::{CloseReason, ConnInfo, Context};
use crate::ids::ClientId;
use crate::protocol::{TransportError, WsFrame};

/// A connection whose handshake passed: the context is built, the upgrade may proceed.
pub struct Accepted<C: Context> {
    pub(super) server: Server<C>,
    pub(super) ctx: C,
    pub(super) info: ConnInfo,
    /// The admission slot: freed when the served connection ends (or this is dropped).
    pub(super) slot: Slot,
    pub(super) replies: PingReplies,
}

impl<C: Context> std::fmt::Debug for Accepted<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl<C: Context> Accepted<C> {
    /// The connection's id.
    pub fn client_id(&self) -> &ClientId {
        &self.info.client_id
    }

    /// Who answers the peer's pings: the transport (the default; tokio-tungstenite does,
    /// inside its stream) or the engine, through the sink. Pongs count against the
    /// outbound budget either way; see [`crate::protocol`].
    pub fn ping_replies(mut self, replies: PingReplies) -> Self {
        self.replies = replies;
        self
    }

    /// Drive the connection to its end: `__welcome`, dispatch in arrival order
    /// (concurrent once handlers wait, up to the in-flight limit), writing under the byte
    /// budget with backpressure, heartbeats, limits, the closing sequence, and the
    /// disconnect hook, exactly once. Returns why it ended. The rules: [`crate::protocol`].
    ///
    /// The stream yields what the peer sent (a [`TransportError::MessageTooBig`] for a
    /// message over the transport's size limit); the sink takes what to send. Closing the
    /// sink is the end of the closing sequence: adapters shut the TCP write side down then.
    pub fn serve<S, K>(self, stream: S, sink: K) -> impl Future<Output = CloseReason> + Send
    where
        S: Stream<Item = Result<WsFrame, TransportError>> + Send + Unpin,
        K: Sink<WsFrame> + Send + Unpin,
        K::Error: std::fmt::Display,
    {
        let Accepted {
            server,
            ctx,
            info,
            slot,
            replies,
        } = self;
        let span = tracing::info_span!("connection", client_id = %info.client_id, remote = ?info.remote_addr);
        // Only the id lives on: the handshake's header map is freed here.
        let id = info.client_id;
        let tracker = server.inner.tracker.clone();
        tracker
            .track_future(driver::serve(server, ctx, id, replies, stream, sink))
            .instrument(span)
            .map(move |reason| {
                // The admission slot is freed once the connection has ended.
                drop(slot);
                reason
            })
    }
}
