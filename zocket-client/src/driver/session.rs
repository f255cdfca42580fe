//! One connection, from the open socket to its end.
//!
//! A session goes through three steps: it waits for the server's `__welcome` (so the
//! client id is known when `connect` returns), marks the client open and starts the
//! after-connect hooks, then runs four things at once until one of them ends it:
//!
//! - the **reader** ([`read_loop`]) routes every frame and counts them for the heartbeat;
//! - the **watchdog** ([`watchdog`]) asks for a ping after each interval and ends the
//!   session when nothing arrives within the timeout;
//! - the **writer** ([`Session::write_loop`]) writes the hooks' frames, then (once the
//!   hooks are done) everything else, answers the first `connect`, and sends the close
//!   frame on shutdown;
//! - a **deadline** bounds a writer stuck on a full socket after shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::connect::Ws;
use super::hooks::AfterConnect;
use super::incoming::route;
use crate::calls::Reply;
use crate::config::Heartbeat;
use crate::error::{ClientError, ConnectError};
use crate::outbound::{OutboxRx, QueuedFrame, Track};
use crate::shared::Shared;
use crate::state::ConnectionState;

type Sink = SplitSink<Ws, WsMessage>;
type Stream = SplitStream<Ws>;

/// How long the writer may take to send the close frame after shutdown.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a session may go on after shutdown (a writer stuck on a full socket).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

/// How the first `connect` learns how the first connection went.
pub(crate) type FirstTx = oneshot::Sender<Result<(), ConnectError>>;

/// Why a session ended.
pub(crate) enum End {
    /// The client was closed.
    Shutdown,
    /// The connection was lost (with the reason, for logs).
    Dropped(String),
    /// The first connection's hooks failed; `connect` was told.
    HookFailed,
}

/// The after-connect hooks of this connection.
enum Hooks {
    /// None, or all finished: the main lane is written.
    Done,
    /// Running in their own task; the main lane waits.
    Running {
        result: oneshot::Receiver<Result<(), ClientError>>,
        task: JoinHandle<()>,
    },
}

impl Hooks {
    /// Start `hooks` in a task of their own; `None` when every handle is gone.
    fn start(hooks: &dyn AfterConnect) -> Option<Self> {
        if hooks.is_empty() {
            return Some(Self::Done);
        }
        let run = hooks.run()?;
        let (tx, result) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = tx.send(run.await);
        });
        Some(Self::Running { result, task })
    }

    fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }

    /// How the hooks ended (a panic drops the sender). Pending while done.
    async fn finished(&mut self) -> Result<Result<(), ClientError>, oneshot::error::RecvError> {
        match self {
            Self::Running { result, .. } => result.await,
            Self::Done => std::future::pending().await,
        }
    }

    /// The session ended: stop hooks that are still running.
    fn abort(self) {
        if let Self::Running { task, .. } = self {
            task.abort();
        }
    }
}

/// One connection of the driver.
pub(crate) struct Session<'d> {
    pub(crate) shared: &'d Shared,
    /// The connection's number (pending calls remember which one they were written on).
    pub(crate) generation: u64,
    pub(crate) shutdown: &'d CancellationToken,
    /// The first `connect`, answered once this connection is ready (left in place when
    /// the connection ends before, for the driver to decide).
    pub(crate) first: &'d mut Option<FirstTx>,
}

impl Session<'_> {
    /// Run the session until the connection ends or the client is closed.
    pub(crate) async fn run(
        mut self,
        ws: Ws,
        outbox: &mut OutboxRx,
        after_connect: &dyn AfterConnect,
    ) -> End {
        let (mut sink, mut stream) = ws.split();
        if let Err(end) = self.await_welcome(&mut sink, &mut stream).await {
            return end;
        }
        self.shared.state_tx.send_replace(ConnectionState::Open);
        info!(client_id = ?self.shared.client_id_tx.borrow().as_ref(), "connected");

        let Some(mut hooks) = Hooks::start(after_connect) else {
            let _ = close(&mut sink).await;
            return End::Shutdown;
        };
        if hooks.is_done() {
            self.ready(None);
        }

        let (shared, shutdown) = (self.shared, self.shutdown);
        let liveness = AtomicU64::new(0);
        let ping_now = Notify::new();
        let end = tokio::select! {
            reason = watchdog(shared.config.heartbeat, &liveness, &ping_now) => End::Dropped(reason),
            _ = shutdown_deadline(shutdown) => End::Shutdown,
            reason = read_loop(shared, &mut stream, &liveness) => End::Dropped(reason),
            end = self.write_loop(&mut sink, outbox, &mut hooks, &ping_now) => end,
        };
        hooks.abort();
        end
    }

    /// Wait (up to the welcome timeout) for the server's first frame, `__welcome` with
    /// the client id. A server that sends none is not an error.
    async fn await_welcome(&self, sink: &mut Sink, stream: &mut Stream) -> Result<(), End> {
        let Some(wait) = self.shared.config.welcome_timeout else {
            return Ok(());
        };
        let first_frame = tokio::select! {
            _ = self.shutdown.cancelled() => {
                let _ = close(sink).await;
                return Err(End::Shutdown);
            }
            r = tokio::time::timeout(wait, stream.next()) => r,
        };
        match first_frame {
            Err(_) => {
                debug!(
                    ?wait,
                    "no __welcome from the server; going on without a client id"
                );
                Ok(())
            }
            Ok(None) => Err(End::Dropped("closed by the server".into())),
            Ok(Some(Err(e))) => Err(End::Dropped(e.to_string())),
            Ok(Some(Ok(msg))) => match route(self.shared, msg) {
                Some(reason) => Err(End::Dropped(reason)),
                None => Ok(()),
            },
        }
    }

    /// The connection is ready (its hooks succeeded, or failed with `failure`): answer
    /// the first `connect`. `Some(End)` when the session must end.
    fn ready(&mut self, failure: Option<ConnectError>) -> Option<End> {
        match (self.first.take(), failure) {
            (Some(tx), None) => {
                let _ = tx.send(Ok(()));
                None
            }
            (Some(tx), Some(e)) => {
                let _ = tx.send(Err(e));
                Some(End::HookFailed)
            }
            (None, Some(e)) => {
                warn!(error = %e, "after-connect hook failed");
                None
            }
            (None, None) => None,
        }
    }

    /// Write frames until the connection fails or the client is closed: the hooks'
    /// lane first, the main lane once the hooks are done, pings when the watchdog asks.
    async fn write_loop(
        &mut self,
        sink: &mut Sink,
        outbox: &mut OutboxRx,
        hooks: &mut Hooks,
        ping_now: &Notify,
    ) -> End {
        let mut ping_seq = 0u64;
        loop {
            let written = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    let _ = close(sink).await;
                    return End::Shutdown;
                }
                r = hooks.finished(), if !hooks.is_done() => {
                    *hooks = Hooks::Done;
                    let failure = match r {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(ConnectError::Hook(e)),
                        Err(_) => Some(ConnectError::HookPanicked),
                    };
                    if let Some(end) = self.ready(failure) {
                        let _ = close(sink).await;
                        return end;
                    }
                    Ok(())
                }
                _ = ping_now.notified() => {
                    ping_seq += 1;
                    let ping = WsMessage::Ping(ping_seq.to_be_bytes().to_vec().into());
                    sink.send(ping).await.map_err(|e| e.to_string())
                }
                Some(out) = outbox.priority.recv() => write(sink, self.shared, self.generation, out).await,
                Some(out) = outbox.main.recv(), if hooks.is_done() => {
                    write(sink, self.shared, self.generation, out).await
                }
            };
            if let Err(reason) = written {
                return End::Dropped(reason);
            }
        }
    }
}

/// Read and route frames until the connection ends; the reason it ended. Every frame
/// (pongs included) counts as a sign of life for the watchdog.
async fn read_loop(shared: &Shared, stream: &mut Stream, liveness: &AtomicU64) -> String {
    loop {
        match stream.next().await {
            None => return "closed by the server".to_owned(),
            Some(Err(e)) => return e.to_string(),
            Some(Ok(msg)) => {
                liveness.fetch_add(1, Ordering::Relaxed);
                if let Some(reason) = route(shared, msg) {
                    return reason;
                }
            }
        }
    }
}

/// The heartbeat: after each interval, ask the writer for a ping and give the peer the
/// timeout to send anything at all. Separate from the writer, so a writer stuck on a
/// full socket cannot hide a dead peer. Never ends when the heartbeat is off.
async fn watchdog(heartbeat: Heartbeat, liveness: &AtomicU64, ping_now: &Notify) -> String {
    let (Some(every), Some(timeout)) = (heartbeat.interval(), heartbeat.timeout()) else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(every).await;
        let seen = liveness.load(Ordering::Relaxed);
        ping_now.notify_one();
        tokio::time::sleep(timeout).await;
        if liveness.load(Ordering::Relaxed) == seen {
            return format!("heartbeat: nothing received within {timeout:?} after a ping");
        }
    }
}

/// Ends [`SHUTDOWN_DEADLINE`] after shutdown: the writer sends the close frame, this
/// only bounds a writer stuck on a full socket.
async fn shutdown_deadline(shutdown: &CancellationToken) {
    shutdown.cancelled().await;
    tokio::time::sleep(SHUTDOWN_DEADLINE).await;
}

/// Send the close frame (code 1000), giving up after [`CLOSE_WRITE_TIMEOUT`].
async fn close(sink: &mut Sink) -> Result<(), tungstenite::Error> {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "client closed".into(),
    };
    let sending = sink.send(WsMessage::Close(Some(frame)));
    match tokio::time::timeout(CLOSE_WRITE_TIMEOUT, sending).await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

/// Write one frame. A frame whose caller gave up already (timeout, cancellation) is
/// skipped; an RPC that is written is marked as in flight on this connection, an emit's
/// caller learns that it was written.
async fn write(
    sink: &mut Sink,
    shared: &Shared,
    generation: u64,
    out: QueuedFrame,
) -> Result<(), String> {
    match &out.track {
        Track::Rpc(id) => {
            if !shared.calls.mark_sent(*id, generation) {
                return Ok(());
            }
        }
        Track::Emit(ack) => {
            if ack.is_closed() {
                return Ok(());
            }
        }
    }
    let written = sink.send(WsMessage::text(out.text)).await;
    if let Track::Emit(ack) = out.track {
        let _ = ack.send(match written {
            Ok(()) => Reply::Ok(None),
            Err(_) => Reply::Disconnected,
        });
    }
    written.map_err(|e| e.to_string())
}
