//! The connection driver: one task per client that connects, reconnects, reads and
//! writes.
//!
//! The reader only routes frames into channels (pending RPCs, subscription queues,
//! watches) and never waits for user code; decoding into user types happens in the
//! caller's task. After-connect hooks run in a task of their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Request};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zocket_core::protocol::{
    ERROR, RPC_ERR, RPC_RES, ServerFrame, VERSION, WELCOME, WireError, decode_server_frame,
};

use crate::client::{Client, ClientInner, HookFn, Outgoing, Reply, Shared, Track, lock};
use crate::error::{ConnectError, HandshakeRejection};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The name of the version header and query parameter.
const VERSION_HEADER: &str = "x-zocket-version";

/// Where to connect: the URL with the headers as query parameters, plus the headers that
/// are valid HTTP headers.
pub(crate) struct Target {
    url: url::Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    tls: bool,
}

impl Target {
    /// `http_only`: names of headers sent as HTTP headers only, never in the URL.
    pub(crate) fn new(
        url: &str,
        headers: &[(String, String)],
        http_only: &[String],
    ) -> Result<Self, ConnectError> {
        let mut parsed =
            url::Url::parse(url).map_err(|e| ConnectError::InvalidUrl(format!("{url}: {e}")))?;
        let scheme = match parsed.scheme() {
            "ws" | "http" => "ws",
            "wss" | "https" => "wss",
            other => {
                return Err(ConnectError::InvalidUrl(format!(
                    "{url}: unsupported scheme `{other}` (expected ws:// or wss://)"
                )));
            }
        };
        if scheme == "wss" && !cfg!(feature = "tls") {
            return Err(ConnectError::InvalidUrl(format!(
                "{url}: wss:// needs zocket-client's `tls` feature (on by default)"
            )));
        }
        if parsed.scheme() != scheme && parsed.set_scheme(scheme).is_err() {
            return Err(ConnectError::InvalidUrl(format!(
                "{url}: cannot use scheme {scheme}"
            )));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(ConnectError::InvalidUrl(format!("{url}: no host")));
        }
        let user_sets_version = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(VERSION_HEADER));
        let mut all: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if !user_sets_version {
            all.push((VERSION_HEADER, VERSION));
        }
        let is_http_only = |k: &str| http_only.iter().any(|n| n == k);
        {
            let mut query = parsed.query_pairs_mut();
            for (k, v) in &all {
                if !is_http_only(k) {
                    query.append_pair(k, v);
                }
            }
        }
        let mut http_headers = Vec::new();
        for (k, v) in all {
            match (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                (Ok(name), Ok(mut value)) => {
                    if crate::client::is_secret_header(k) || is_http_only(k) {
                        value.set_sensitive(true);
                    }
                    http_headers.push((name, value))
                }
                _ if is_http_only(k) => {
                    return Err(ConnectError::InvalidUrl(format!(
                        "header `{k}` is to be sent as an HTTP header only, but its name or value is not valid in HTTP"
                    )));
                }
                _ => debug!(
                    header = k,
                    "not a valid HTTP header; sent as a query parameter only"
                ),
            }
        }
        Ok(Self {
            tls: scheme == "wss",
            url: parsed,
            headers: http_headers,
        })
    }

    fn request(&self) -> Result<Request<()>, ConnectError> {
        let mut req = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::InvalidUrl(format!("{}: {e}", self.url)))?;
        let headers = req.headers_mut();
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone());
        }
        Ok(req)
    }
}

/// Why a session ended.
enum End {
    /// The client was closed.
    Shutdown,
    /// The connection was lost (with the reason, for logs).
    Dropped(String),
    /// The first connection's hooks failed; `connect` was told.
    HookFailed,
}

type FirstTx = oneshot::Sender<Result<(), ConnectError>>;

pub(crate) struct Driver {
    shared: Arc<Shared>,
    target: Target,
    main_rx: mpsc::Receiver<Outgoing>,
    prio_rx: mpsc::Receiver<Outgoing>,
    hooks: Arc<[HookFn]>,
    shutdown: CancellationToken,
    generation: u64,
}

impl Driver {
    pub(crate) fn new(
        shared: Arc<Shared>,
        target: Target,
        main_rx: mpsc::Receiver<Outgoing>,
        prio_rx: mpsc::Receiver<Outgoing>,
        hooks: Vec<HookFn>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            shared,
            target,
            main_rx,
            prio_rx,
            hooks: hooks.into(),
            shutdown,
            generation: 0,
        }
    }

    /// Connect, run sessions and reconnect until closed. `first` learns how the first
    /// connection went.
    pub(crate) async fn run(mut self, handle: Weak<ClientInner>, first: FirstTx) {
        let mut first = Some(first);
        let policy = self.shared.config.reconnect.clone();
        let retry_initial = self.shared.config.retry_initial_connect;
        let mut attempt: u32 = 0;
        let mut last_error: Option<ConnectError> = None;
        // Why the client closed after its first connection (for `Client::close_reason`).
        let mut close_reason: Option<ConnectError> = None;
        loop {
            if attempt > 0 {
                if !policy.allows(attempt) {
                    let attempts = attempt - 1;
                    let last = last_error
                        .take()
                        .unwrap_or_else(|| ConnectError::Transport("connection lost".into()));
                    let error = if attempts > 0 {
                        ConnectError::GaveUp {
                            attempts,
                            last: Box::new(last),
                        }
                    } else {
                        last
                    };
                    warn!(attempts, "giving up reconnecting; the client is closed");
                    match first.take() {
                        Some(tx) => {
                            let _ = tx.send(Err(error));
                        }
                        None => close_reason = Some(error),
                    }
                    break;
                }
                self.shared
                    .state_tx
                    .send_replace(crate::ConnectionState::Reconnecting { attempt });
                let delay = policy.jittered_delay(attempt);
                debug!(attempt, ?delay, "waiting before reconnecting");
                tokio::select! {
                    _ = self.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            let opened = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                r = self.open() => r,
            };
            let ws = match opened {
                Ok(ws) => ws,
                Err(e) => {
                    let fatal = e.is_fatal();
                    if first.is_some() && (fatal || !retry_initial) {
                        if let Some(tx) = first.take() {
                            let _ = tx.send(Err(e));
                        }
                        break;
                    }
                    if fatal {
                        warn!(error = %e, "not reconnecting; the client is closed");
                        close_reason = Some(e);
                        break;
                    }
                    debug!(attempt, error = %e, "connection attempt failed");
                    last_error = Some(e);
                    attempt = attempt.saturating_add(1);
                    continue;
                }
            };
            last_error = None;
            self.generation += 1;
            let end = self.session(ws, &handle, &mut first).await;
            self.after_session();
            match end {
                End::Shutdown | End::HookFailed => break,
                End::Dropped(reason) => {
                    if let Some(tx) = first.take() {
                        if retry_initial && policy.is_enabled() {
                            first = Some(tx);
                        } else {
                            let _ = tx.send(Err(ConnectError::Transport(
                                format!("connection lost while connecting: {reason}").into(),
                            )));
                            break;
                        }
                    }
                    if !policy.is_enabled() {
                        info!(%reason, "connection lost; reconnecting is off, the client is closed");
                        close_reason = Some(ConnectError::Transport(
                            format!("connection lost: {reason}").into(),
                        ));
                        break;
                    }
                    info!(%reason, "connection lost; reconnecting");
                    attempt = 1;
                }
            }
        }
        if let Some(tx) = first.take() {
            let _ = tx.send(Err(ConnectError::Closed));
        }
        self.main_rx.close();
        self.prio_rx.close();
        while let Ok(out) = self.main_rx.try_recv() {
            out.fail(&self.shared, Reply::Closed);
        }
        while let Ok(out) = self.prio_rx.try_recv() {
            out.fail(&self.shared, Reply::Closed);
        }
        if let Some(reason) = close_reason {
            *lock(&self.shared.close_reason) = Some(Arc::new(reason));
        }
        self.shared.mark_closed();
        debug!("client closed");
    }

    /// One connection attempt.
    async fn open(&self) -> Result<Ws, ConnectError> {
        let request = self.target.request()?;
        let config = &self.shared.config;
        let ws_config = WebSocketConfig::default()
            .max_message_size(config.max_message_size)
            .max_frame_size(config.max_message_size);
        #[cfg(feature = "tls")]
        let connector = if self.target.tls {
            Some(crate::tls::connector(config.tls.as_ref()))
        } else {
            None
        };
        #[cfg(not(feature = "tls"))]
        let connector = None;
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(ws_config),
            true,
            connector,
        );
        match tokio::time::timeout(config.connect_timeout, connecting).await {
            Err(_) => Err(ConnectError::Timeout(config.connect_timeout)),
            Ok(Ok((ws, _response))) => Ok(ws),
            Ok(Err(e)) => Err(classify(e)),
        }
    }

    /// Cleanup after a connection ended: in-flight RPCs fail with `Disconnected`,
    /// messages of the hooks that were not written yet as well.
    fn after_session(&mut self) {
        let shared = &*self.shared;
        shared.client_id_tx.send_replace(None);
        let generation = self.generation;
        shared.fail_pending(|p| p.sent_on == Some(generation), || Reply::Disconnected);
        while let Ok(out) = self.prio_rx.try_recv() {
            out.fail(shared, Reply::Disconnected);
        }
    }

    async fn session(
        &mut self,
        ws: Ws,
        handle: &Weak<ClientInner>,
        first: &mut Option<FirstTx>,
    ) -> End {
        let generation = self.generation;
        let shared = &*self.shared;
        let config = &shared.config;
        let shutdown = &self.shutdown;
        let main_rx = &mut self.main_rx;
        let prio_rx = &mut self.prio_rx;
        let (mut sink, mut stream) = ws.split();
        let liveness = AtomicU64::new(0);

        // The server's first frame is `__welcome` (with the client id); wait for it so
        // the id is known when `connect` returns and when the hooks run.
        if let Some(wait) = config.welcome_timeout {
            let first_frame = tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = close(&mut sink).await;
                    return End::Shutdown;
                }
                r = tokio::time::timeout(wait, stream.next()) => r,
            };
            match first_frame {
                Err(_) => debug!(
                    ?wait,
                    "no __welcome from the server; going on without a client id"
                ),
                Ok(None) => return End::Dropped("closed by the server".into()),
                Ok(Some(Err(e))) => return End::Dropped(e.to_string()),
                Ok(Some(Ok(msg))) => {
                    if let Some(reason) = route(shared, msg) {
                        return End::Dropped(reason);
                    }
                }
            }
        }
        shared.state_tx.send_replace(crate::ConnectionState::Open);
        info!(client_id = ?shared.client_id_tx.borrow().as_deref(), "connected");

        // After-connect hooks, in their own task; their handle writes ahead of the buffer.
        let mut first_tx = first.take();
        let (hooks_tx, mut hooks_rx) = oneshot::channel();
        let mut hooks_done = self.hooks.is_empty();
        let mut hook_task = None;
        if hooks_done {
            if let Some(tx) = first_tx.take() {
                let _ = tx.send(Ok(()));
            }
        } else {
            let Some(inner) = handle.upgrade() else {
                let _ = close(&mut sink).await;
                return End::Shutdown;
            };
            let client = Client {
                inner,
                priority: true,
            };
            let hooks = self.hooks.clone();
            hook_task = Some(tokio::spawn(async move {
                let mut result = Ok(());
                for hook in hooks.iter() {
                    result = hook(client.clone()).await;
                    if result.is_err() {
                        break;
                    }
                }
                drop(client);
                let _ = hooks_tx.send(result);
            }));
        }

        let reader = async {
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
        };

        // Heartbeat: after each `interval`, ask the writer for a ping and give the peer
        // `timeout` to send anything at all. Separate from the writer, so a writer stuck
        // on a full socket cannot hide a dead peer.
        let ping_now = Notify::new();
        let watchdog = async {
            let heartbeat = config.heartbeat;
            let (Some(every), Some(timeout)) = (heartbeat.interval(), heartbeat.timeout()) else {
                return std::future::pending::<String>().await;
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
        };

        let writer = async {
            let mut ping_seq = 0u64;
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => {
                        let _ = close(&mut sink).await;
                        return End::Shutdown;
                    }
                    r = &mut hooks_rx, if !hooks_done => {
                        hooks_done = true;
                        let failure = match r {
                            Ok(Ok(())) => None,
                            Ok(Err(e)) => Some(ConnectError::Hook(e)),
                            Err(_) => Some(ConnectError::HookPanicked),
                        };
                        match (first_tx.take(), failure) {
                            (Some(tx), None) => { let _ = tx.send(Ok(())); }
                            (Some(tx), Some(e)) => {
                                let _ = tx.send(Err(e));
                                let _ = close(&mut sink).await;
                                return End::HookFailed;
                            }
                            (None, Some(e)) => warn!(error = %e, "after-connect hook failed"),
                            (None, None) => {}
                        }
                    }
                    _ = ping_now.notified() => {
                        ping_seq += 1;
                        let ping = WsMessage::Ping(ping_seq.to_be_bytes().to_vec().into());
                        if let Err(e) = sink.send(ping).await {
                            return End::Dropped(e.to_string());
                        }
                    }
                    Some(out) = prio_rx.recv() => {
                        if let Err(reason) = write(&mut sink, shared, generation, out).await {
                            return End::Dropped(reason);
                        }
                    }
                    Some(out) = main_rx.recv(), if hooks_done => {
                        if let Err(reason) = write(&mut sink, shared, generation, out).await {
                            return End::Dropped(reason);
                        }
                    }
                }
            }
        };

        let end = tokio::select! {
            reason = watchdog => End::Dropped(reason),
            // The writer sends the close frame; this only bounds a writer stuck on a full
            // socket.
            _ = async {
                shutdown.cancelled().await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            } => End::Shutdown,
            reason = reader => End::Dropped(reason),
            end = writer => end,
        };
        if let Some(task) = hook_task {
            task.abort();
        }
        // The first connection died before its hooks finished: let `run` decide.
        if first_tx.is_some() {
            *first = first_tx;
        }
        end
    }
}

type Sink = futures::stream::SplitSink<Ws, WsMessage>;

async fn close(sink: &mut Sink) -> Result<(), tungstenite::Error> {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "client closed".into(),
    };
    let sending = sink.send(WsMessage::Close(Some(frame)));
    match tokio::time::timeout(Duration::from_secs(1), sending).await {
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
    out: Outgoing,
) -> Result<(), String> {
    match &out.track {
        Track::Rpc(id) => {
            let mut pending = lock(&shared.pending);
            match pending.get_mut(id) {
                Some(p) => p.sent_on = Some(generation),
                None => return Ok(()),
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

/// Route one incoming frame; `Some(reason)` when it ends the connection. Never waits.
fn route(shared: &Shared, msg: WsMessage) -> Option<String> {
    match msg {
        WsMessage::Text(text) => route_text(shared, text.as_str()),
        WsMessage::Binary(b) => debug!(len = b.len(), "ignoring a binary frame"),
        WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
        WsMessage::Close(frame) => {
            return Some(match frame {
                Some(f) => format!("closed by the server ({} {})", u16::from(f.code), f.reason),
                None => "closed by the server".to_owned(),
            });
        }
    }
    None
}

fn route_text(shared: &Shared, text: &str) {
    let frame: ServerFrame<'_> = match decode_server_frame(text) {
        Ok(f) => f,
        Err(e) => {
            warn!(error = %e, "ignoring an undecodable frame from the server");
            return;
        }
    };
    match &*frame.kind {
        RPC_RES | RPC_ERR => {
            let Some(id) = frame.rpc_id.as_deref().and_then(|s| s.parse::<u64>().ok()) else {
                warn!(kind = %frame.kind, "ignoring a reply without a known rpcId");
                return;
            };
            let Some(pending) = lock(&shared.pending).remove(&id) else {
                debug!(id, "reply to an RPC nobody waits for (timed out?)");
                return;
            };
            let reply = if frame.kind == RPC_RES {
                Reply::Ok(frame.payload.map(ToOwned::to_owned))
            } else {
                Reply::Err(frame.error.unwrap_or_else(|| {
                    WireError::new(zocket_core::codes::INTERNAL, "__rpc_err without an error")
                }))
            };
            let _ = pending.tx.send(reply);
        }
        WELCOME => {
            #[derive(Deserialize)]
            struct Welcome {
                #[serde(rename = "clientId")]
                client_id: String,
            }
            match frame
                .payload
                .map(|p| serde_json::from_str::<Welcome>(p.get()))
            {
                Some(Ok(w)) => {
                    shared.client_id_tx.send_replace(Some(w.client_id));
                }
                _ => warn!("ignoring a __welcome without a clientId"),
            }
        }
        ERROR => {
            if let Some(e) = &frame.error {
                debug!(code = %e.code, message = %e.message, kind = ?e.kind, "__error from the server");
            }
            if shared.registry.has(ERROR) {
                // The subscription decodes the `error` object; take its raw text.
                #[derive(Deserialize)]
                struct Raw<'a> {
                    #[serde(borrow)]
                    error: Option<&'a serde_json::value::RawValue>,
                }
                if let Ok(Raw { error: Some(raw) }) = serde_json::from_str::<Raw<'_>>(text) {
                    shared.registry.deliver(ERROR, &Arc::from(raw.get()));
                }
            }
        }
        name => {
            if shared.registry.has(name) {
                let payload: Arc<str> = Arc::from(frame.payload.map_or("null", |p| p.get()));
                shared.registry.deliver(name, &payload);
            }
        }
    }
}

/// Map a tungstenite connect error to a [`ConnectError`]: client-error statuses are
/// rejections (never retried), everything else is a transport error.
fn classify(e: tungstenite::Error) -> ConnectError {
    match e {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            if (400..500).contains(&status) && status != 408 && status != 429 {
                ConnectError::Rejected(HandshakeRejection::from_response(
                    status,
                    response.body().as_deref(),
                ))
            } else {
                ConnectError::Transport(format!("HTTP status {status}").into())
            }
        }
        tungstenite::Error::Url(u) => ConnectError::InvalidUrl(u.to_string()),
        other => ConnectError::Transport(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_go_to_query_and_http() {
        let t = Target::new(
            "ws://127.0.0.1:1/ws?a=1",
            &[
                ("userName".into(), "Ada Lovelace".into()),
                ("bad name".into(), "x".into()),
            ],
            &[],
        )
        .unwrap();
        let req = t.request().unwrap();
        let uri = req.uri().to_string();
        assert!(uri.contains("a=1"), "{uri}");
        assert!(uri.contains("userName=Ada+Lovelace"), "{uri}");
        assert!(uri.contains("bad+name=x"), "{uri}");
        assert!(uri.contains("x-zocket-version=1"), "{uri}");
        assert_eq!(req.headers().get("username").unwrap(), "Ada Lovelace");
        assert_eq!(req.headers().get("x-zocket-version").unwrap(), VERSION);
    }

    #[test]
    fn http_only_headers_never_reach_the_url() {
        let t = Target::new(
            "ws://127.0.0.1:1/",
            &[
                ("token".into(), "s3cret".into()),
                ("userName".into(), "Ada".into()),
            ],
            &["token".into()],
        )
        .unwrap();
        let req = t.request().unwrap();
        let uri = req.uri().to_string();
        assert!(!uri.contains("s3cret") && !uri.contains("token"), "{uri}");
        assert!(uri.contains("userName=Ada"), "{uri}");
        let token = req.headers().get("token").unwrap();
        assert_eq!(token, "s3cret");
        assert!(token.is_sensitive());
        // A header that cannot travel as HTTP is an error, not silently put in the URL.
        assert!(matches!(
            Target::new(
                "ws://h/",
                &[("bad name".into(), "x".into())],
                &["bad name".into()]
            ),
            Err(ConnectError::InvalidUrl(_))
        ));
    }

    #[test]
    fn bad_urls() {
        assert!(matches!(
            Target::new("nope", &[], &[]),
            Err(ConnectError::InvalidUrl(_))
        ));
        assert!(matches!(
            Target::new("ftp://x/", &[], &[]),
            Err(ConnectError::InvalidUrl(_))
        ));
        assert!(Target::new("http://localhost:3000", &[], &[]).is_ok());
    }

    #[test]
    fn rejection_bodies() {
        let r = HandshakeRejection::from_response(
            400,
            Some(br#"{"error":"INVALID_HEADERS","message":"bad","issues":[{"path":"userRole","message":"unknown variant"}]}"#),
        );
        assert_eq!(r.code, "INVALID_HEADERS");
        assert_eq!(r.issues.len(), 1);
        assert_eq!(r.issues[0].path, "userRole");
        let r = HandshakeRejection::from_response(401, Some(b"nope"));
        assert_eq!(
            (r.status, r.code.as_str(), r.message.as_str()),
            (401, "UNAUTHORIZED", "nope")
        );
        let r = HandshakeRejection::from_response(403, None);
        assert_eq!(r.code, "FORBIDDEN");
    }
}
