//! The public API: the [`Client`] handle and its [`ClientBuilder`]. The machinery lives
//! elsewhere: pending calls in `calls`, the outbound queues in `outbound`, the
//! connection task in `driver`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use zocket_core::protocol::{WireError, encode_client_frame};
use zocket_core::{ClientId, Event, Message};

use crate::calls::{Reply, lock};
use crate::config::{ClientConfig, Heartbeat, Reconnect};
use crate::driver::{AfterConnect, Driver, Endpoint, HookRun, is_secret_header};
use crate::error::{ClientError, ConnectError};
use crate::outbound::{Lane, QueuedFrame, Track, outbox};
use crate::shared::Shared;
use crate::state::ConnectionState;
use crate::subscription::Subscription;

/// An after-connect hook, as [`ClientBuilder::on_connect`] stores it.
type HookFn = Arc<
    dyn Fn(Client) -> Pin<Box<dyn Future<Output = Result<(), ClientError>> + Send>> + Send + Sync,
>;

/// What every clone of a [`Client`] shares.
struct ClientInner {
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    /// The driver until [`Client::connect`] starts it.
    driver: Mutex<Option<Driver>>,
    hooks: Arc<[HookFn]>,
    url: String,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The hooks as the driver runs them: each run gets a handle on the priority lane.
/// Holds the client weakly, so the driver does not keep it alive.
struct HookRunner {
    hooks: Arc<[HookFn]>,
    client: Weak<ClientInner>,
}

impl AfterConnect for HookRunner {
    fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    fn run(&self) -> Option<HookRun> {
        let client = Client {
            inner: self.client.upgrade()?,
            lane: Lane::Priority,
        };
        let hooks = self.hooks.clone();
        Some(Box::pin(async move {
            for hook in hooks.iter() {
                hook(client.clone()).await?;
            }
            Ok(())
        }))
    }
}

/// A typed Zocket client: one WebSocket connection, kept alive by reconnecting.
///
/// Cheap to clone (every clone shares the connection); the connection is closed when
/// [`Client::close`] is called or the last clone is dropped. See the
/// [crate documentation](crate) for an example.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
    /// Handles given to after-connect hooks write ahead of buffered messages.
    lane: Lane,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.url)
            .field("state", &self.state())
            .field("client_id", &self.client_id())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Start configuring a client for `url` (`ws://host:port/path`).
    ///
    /// ```
    /// # mod doc { include!(concat!(env!("CARGO_MANIFEST_DIR"), "/doc/server.rs")); }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let url = doc::doc_server().await;
    /// let client = zocket_client::Client::builder(url) // e.g. "ws://127.0.0.1:3000/"
    ///     .header("userName", "Ada")
    ///     .connect()
    ///     .await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            headers: Vec::new(),
            http_only: Vec::new(),
            config: ClientConfig::default(),
            hooks: Vec::new(),
        }
    }

    /// Connect a client built with [`ClientBuilder::build`]: resolves once the socket is
    /// open, the server's `__welcome` arrived (or the welcome timeout passed) and the
    /// after-connect hooks ran.
    ///
    /// A handshake rejection (HTTP 400 / 401 / 403) is returned as
    /// [`ConnectError::Rejected`] and never retried. Other failures of this first
    /// connection are returned at once unless
    /// [`ClientBuilder::retry_initial_connect`] is set. On an error the client is closed.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        let driver = lock(&self.inner.driver)
            .take()
            .ok_or(ConnectError::AlreadyStarted)?;
        let hooks = HookRunner {
            hooks: self.inner.hooks.clone(),
            client: Arc::downgrade(&self.inner),
        };
        let (tx, rx) = oneshot::channel();
        tokio::spawn(driver.run(Box::new(hooks), tx));
        rx.await.unwrap_or(Err(ConnectError::Closed))
    }

    /// Call `M` and wait for its typed result, with the default RPC timeout.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use zocket_client::{Client, ClientError, Message};
    /// # #[derive(Serialize, Deserialize)] pub struct GreetIn { pub name: String }
    /// pub enum Greet {}
    /// impl Message for Greet {
    ///     const NAME: &'static str = "greet";
    ///     type Input = GreetIn;
    ///     type Output = String;
    /// }
    /// # mod doc { include!(concat!(env!("CARGO_MANIFEST_DIR"), "/doc/server.rs")); }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let client = Client::builder(doc::doc_server().await).connect().await?;
    /// let hello = client.call::<Greet>(GreetIn { name: "Ada".into() }).await?;
    /// assert_eq!(hello, "Hello, Ada!");
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    ///
    /// Errors: [`ClientError::Rejected`] when the server answers `__rpc_err`,
    /// [`ClientError::Timeout`], [`ClientError::Disconnected`] when the connection drops
    /// while waiting, [`ClientError::BufferFull`] / [`ClientError::NotConnected`] /
    /// [`ClientError::Closed`] when it could not be sent, [`ClientError::Decode`] when
    /// the result does not match `M::Output`.
    pub async fn call<M: Message>(&self, input: M::Input) -> Result<M::Output, ClientError> {
        self.call_with_timeout::<M>(input, self.inner.shared.config.rpc_timeout)
            .await
    }

    /// [`Client::call`] with its own timeout instead of the default.
    pub async fn call_with_timeout<M: Message>(
        &self,
        input: M::Input,
        timeout: Duration,
    ) -> Result<M::Output, ClientError> {
        let (id, text) = self.prepare(M::NAME, &input, true)?;
        drop(input);
        let payload = self.rpc(M::NAME, id, text, timeout).await?;
        decode_reply(M::NAME, payload.as_deref())
    }

    /// Call a message by name with a JSON payload and get the JSON result (`null` for a
    /// unit result), for dynamic use. Errors as for [`Client::call`].
    pub async fn call_raw(
        &self,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.call_raw_with_timeout(name, payload, self.inner.shared.config.rpc_timeout)
            .await
    }

    /// [`Client::call_raw`] with its own timeout.
    pub async fn call_raw_with_timeout(
        &self,
        name: &str,
        payload: serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, ClientError> {
        let (id, text) = self.prepare(name, &payload, true)?;
        drop(payload);
        let reply = self.rpc(name, id, text, timeout).await?;
        decode_reply(name, reply.as_deref())
    }

    /// Send `M` without an `rpcId`: the server sends no reply; a failure on the server
    /// comes back as an `__error` frame (see [`Client::server_errors`]).
    ///
    /// Resolves once the frame was written to the socket. While disconnected the frame
    /// is buffered (see [`ClientBuilder::outbound_buffer`]) and written after the
    /// reconnect; what cannot be written fails: [`ClientError::BufferFull`] /
    /// [`ClientError::NotConnected`] at once, [`ClientError::Timeout`] after the RPC
    /// timeout (the frame is then dropped, not sent later), [`ClientError::Closed`].
    /// Delivery is at most once: a frame written just as the connection dies may be lost.
    pub async fn emit<M: Message>(&self, input: M::Input) -> Result<(), ClientError> {
        self.emit_with_timeout::<M>(input, self.inner.shared.config.rpc_timeout)
            .await
    }

    /// [`Client::emit`] with its own timeout instead of the RPC timeout.
    pub async fn emit_with_timeout<M: Message>(
        &self,
        input: M::Input,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let (_, text) = self.prepare(M::NAME, &input, false)?;
        drop(input);
        self.send_emit(M::NAME, text, timeout).await
    }

    /// [`Client::emit`] by name with a JSON payload.
    pub async fn emit_raw(
        &self,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<(), ClientError> {
        let (_, text) = self.prepare(name, &payload, false)?;
        drop(payload);
        self.send_emit(name, text, self.inner.shared.config.rpc_timeout)
            .await
    }

    /// Subscribe to event `E`: every `E` that arrives from now on, decoded as
    /// `E::Payload`. Several subscriptions of one event each get every event; dropping
    /// one unsubscribes it. See [`Subscription`].
    ///
    /// ```
    /// # use futures::StreamExt;
    /// # use zocket_client::{Client, Event};
    /// pub enum Broadcast {}
    /// impl Event for Broadcast {
    ///     const NAME: &'static str = "message";
    ///     type Payload = String;
    /// }
    /// # mod doc { include!(concat!(env!("CARGO_MANIFEST_DIR"), "/doc/server.rs")); }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let client = Client::builder(doc::doc_server().await).connect().await?;
    /// let mut messages = client.subscribe::<Broadcast>();
    /// # client.call_raw("shout", serde_json::json!("hello")).await?; // the server broadcasts it
    /// match messages.next().await {
    ///     Some(Ok(text)) => eprintln!("message: {text}"),
    ///     Some(Err(e)) => eprintln!("bad event (or missed events): {e}"),
    ///     None => eprintln!("the client is closed"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn subscribe<E: Event>(&self) -> Subscription<E::Payload> {
        self.subscribe_as::<E::Payload>(E::NAME)
    }

    /// Subscribe to an event by name, with payloads as JSON values.
    pub fn subscribe_raw(&self, name: &str) -> Subscription<serde_json::Value> {
        self.subscribe_as(name)
    }

    /// Subscribe to an event by name, decoding payloads as `T`.
    pub fn subscribe_as<T: DeserializeOwned>(&self, name: &str) -> Subscription<T> {
        let shared = &self.inner.shared;
        Subscription::new(
            name,
            shared.registry.clone(),
            shared.config.subscription_buffer,
        )
    }

    /// How many subscriptions of the event `name` are alive (dropped ones are gone).
    pub fn subscribers(&self, name: &str) -> usize {
        self.inner.shared.registry.count(name)
    }

    /// The server's `__error` frames: failures of messages sent without `rpcId`
    /// ([`Client::emit`]) and of malformed frames.
    pub fn server_errors(&self) -> Subscription<WireError> {
        self.subscribe_as(zocket_core::protocol::ERROR)
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.inner.shared.state()
    }

    /// A watch of the connection state, e.g. to wait for a state:
    ///
    /// ```
    /// # use zocket_client::{Client, ConnectionState};
    /// # mod doc { include!(concat!(env!("CARGO_MANIFEST_DIR"), "/doc/server.rs")); }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let client = Client::builder(doc::doc_server().await).build()?;
    /// let mut state = client.state_watch();
    /// # let connecting = tokio::spawn({ let client = client.clone(); async move { client.connect().await } });
    /// state.wait_for(|s| *s == ConnectionState::Open).await?;
    /// # connecting.await??;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn state_watch(&self) -> watch::Receiver<ConnectionState> {
        self.inner.shared.state_tx.subscribe()
    }

    /// The client id the server assigned to the current connection (from `__welcome`);
    /// `None` while disconnected or when the server sent no welcome. A new connection
    /// gets a new id.
    pub fn client_id(&self) -> Option<ClientId> {
        self.inner.shared.client_id_tx.borrow().clone()
    }

    /// A watch of the client id (`None` while disconnected).
    pub fn client_id_watch(&self) -> watch::Receiver<Option<ClientId>> {
        self.inner.shared.client_id_tx.subscribe()
    }

    /// Why the client closed on its own after having been connected: the handshake was
    /// rejected on a reconnect ([`ConnectError::Rejected`]), reconnecting gave up
    /// ([`ConnectError::GaveUp`]), or the connection dropped with reconnecting off
    /// ([`ConnectError::Transport`]). `None` while not closed, after
    /// [`Client::close`] or dropping, and when the first connect failed (`connect`
    /// returned that error).
    pub fn close_reason(&self) -> Option<Arc<ConnectError>> {
        lock(&self.inner.shared.close_reason).clone()
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.shared.config
    }

    /// The URL this client connects to (without the header query parameters).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Close the connection (a WebSocket close frame, code 1000) and stop reconnecting.
    /// Pending calls fail with [`ClientError::Closed`] or
    /// [`ClientError::Disconnected`], subscriptions end. Resolves once closed.
    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        let started = lock(&self.inner.driver).take().is_none();
        if !started {
            // Never connected: nothing runs that would mark the client closed.
            self.inner.shared.mark_closed();
            return;
        }
        let mut state = self.state_watch();
        let _ = state.wait_for(|s| *s == ConnectionState::Closed).await;
    }

    /// Encode a frame; allocates an RPC id when `rpc` is set.
    fn prepare<P: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &P,
        rpc: bool,
    ) -> Result<(u64, String), ClientError> {
        let id = if rpc {
            self.inner.shared.calls.next_id()
        } else {
            0
        };
        let rpc_id = rpc.then(|| id.to_string());
        let text = encode_client_frame(name, payload, rpc_id.as_deref()).map_err(|source| {
            ClientError::Encode {
                name: name.to_owned(),
                source,
            }
        })?;
        Ok((id, text))
    }

    async fn rpc(
        &self,
        name: &str,
        id: u64,
        text: String,
        timeout: Duration,
    ) -> Result<Option<Box<RawValue>>, ClientError> {
        let (_guard, rx) = self.inner.shared.calls.register(id);
        let exchange = async {
            self.enqueue(
                name,
                QueuedFrame {
                    text,
                    track: Track::Rpc(id),
                },
            )
            .await?;
            match rx.await {
                Ok(Reply::Ok(payload)) => Ok(payload),
                Ok(Reply::Err(e)) => Err(ClientError::Rejected(e.into())),
                Ok(Reply::Closed) => Err(ClientError::Closed),
                Ok(Reply::Disconnected) | Err(_) => Err(ClientError::Disconnected {
                    name: name.to_owned(),
                }),
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                name: name.to_owned(),
                after: timeout,
            }),
        }
    }

    async fn send_emit(
        &self,
        name: &str,
        text: String,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        let exchange = async {
            self.enqueue(
                name,
                QueuedFrame {
                    text,
                    track: Track::Emit(tx),
                },
            )
            .await?;
            match rx.await {
                Ok(Reply::Ok(_)) => Ok(()),
                Ok(Reply::Disconnected) => Err(ClientError::Disconnected {
                    name: name.to_owned(),
                }),
                Ok(Reply::Err(e)) => Err(ClientError::Rejected(e.into())),
                Ok(Reply::Closed) | Err(_) => Err(ClientError::Closed),
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                name: name.to_owned(),
                after: timeout,
            }),
        }
    }

    async fn enqueue(&self, name: &str, out: QueuedFrame) -> Result<(), ClientError> {
        let shared = &*self.inner.shared;
        shared
            .outbox
            .enqueue(self.lane, shared.state(), name, out)
            .await
    }
}

fn decode_reply<T: DeserializeOwned>(
    name: &str,
    payload: Option<&RawValue>,
) -> Result<T, ClientError> {
    // An absent payload (unit outputs) decodes as `null`, so `()` and `Option<_>` work.
    let text = payload.map_or("null", RawValue::get);
    serde_json::from_str(text).map_err(|source| ClientError::Decode {
        name: name.to_owned(),
        source,
    })
}

/// Configures and connects a [`Client`]; created by [`Client::builder`].
///
/// ```
/// use std::time::Duration;
/// use zocket_client::{Client, Heartbeat, Reconnect};
///
/// # mod doc { include!(concat!(env!("CARGO_MANIFEST_DIR"), "/doc/server.rs")); }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let url = doc::doc_server().await;
/// let client = Client::builder(url) // e.g. "ws://127.0.0.1:3000/"
///     .header("userName", "Ada")
///     .header("userRole", "admin")
///     .rpc_timeout(Duration::from_secs(5))
///     .reconnect(Reconnect::default().max_delay(Duration::from_secs(10)))
///     .heartbeat(Heartbeat::new(Duration::from_secs(10), Duration::from_secs(5)))
///     .outbound_buffer(100)
///     .on_connect(|client| async move {
///         // runs after every (re)connect, before buffered messages are sent
///         client.call_raw("rooms.join", serde_json::json!({"roomId": "lobby"})).await?;
///         Ok(())
///     })
///     .connect()
///     .await?;
/// # Ok::<(), zocket_client::ConnectError>(()) }).unwrap();
/// ```
#[must_use = "a builder does nothing until `connect` or `build` is called"]
pub struct ClientBuilder {
    url: String,
    headers: Vec<(String, String)>,
    http_only: Vec<String>,
    config: ClientConfig,
    hooks: Vec<HookFn>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("headers", &redacted(&self.headers))
            .field("config", &self.config)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl ClientBuilder {
    /// A handshake header: sent as a query parameter (as Zocket v1 does, and as the
    /// only way browsers have) and as an HTTP header (when its name and value are valid
    /// for HTTP). Later values of the same name replace earlier ones.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(n, _)| *n != name);
        self.http_only.retain(|n| *n != name);
        self.headers.push((name, value.into()));
        self
    }

    /// A handshake header sent as an HTTP header only, never in the URL (where proxies
    /// and access logs would see it): for secrets such as a `token`. Zocket servers read
    /// HTTP headers as well as the query; a Zocket v1 server reads only the query, so
    /// plain [`header`](Self::header) stays the default. A name or value that is not
    /// valid in HTTP makes [`build`](Self::build) fail.
    pub fn header_only(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self = self.header(name.clone(), value);
        if !self.http_only.contains(&name) {
            self.http_only.push(name);
        }
        self
    }

    /// Several handshake headers (see [`ClientBuilder::header`]).
    pub fn headers<K, V>(mut self, headers: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        for (k, v) in headers {
            self = self.header(k, v);
        }
        self
    }

    /// Replace the whole configuration (timeouts, reconnect, heartbeat, buffers, TLS) with
    /// `config`; the setters below change one option each.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// The default timeout of [`Client::call`] (10 s unless set).
    pub fn rpc_timeout(mut self, timeout: Duration) -> Self {
        self.config.rpc_timeout = timeout;
        self
    }

    /// How long one connection attempt (TCP and handshake) may take (10 s unless set).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// The reconnect policy ([`Reconnect::default`] unless set: on, forever).
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.config.reconnect = policy;
        self
    }

    /// The heartbeat ([`Heartbeat::default`] unless set: ping every 15 s, 10 s to answer).
    pub fn heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.config.heartbeat = heartbeat;
        self
    }

    /// How many messages may wait to be sent (1024 unless set). While disconnected,
    /// calls and emits are buffered up to this many and sent after the reconnect (and
    /// after the after-connect hooks); beyond it they fail with
    /// [`ClientError::BufferFull`]. `0` turns buffering off: while disconnected they fail
    /// at once with [`ClientError::NotConnected`]. A buffered call still times out
    /// after its RPC timeout, and is then not sent.
    pub fn outbound_buffer(mut self, messages: usize) -> Self {
        self.config.outbound_buffer = messages;
        self
    }

    /// How many events each subscription may hold before it starts dropping (and
    /// reporting [`ClientError::Lagged`]); 1024 unless set.
    pub fn subscription_buffer(mut self, events: usize) -> Self {
        self.config = self.config.subscription_buffer(events);
        self
    }

    /// How long to wait for the server's `__welcome` (which carries the client id)
    /// before a connection counts as open (5 s unless set). `None` does not wait, for
    /// servers that send no welcome (Zocket v1).
    pub fn welcome_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.welcome_timeout = timeout;
        self
    }

    /// Also retry the *first* connection according to the reconnect policy when it
    /// fails for a reason other than a handshake rejection (off unless set: the first
    /// failure is returned by `connect`).
    pub fn retry_initial_connect(mut self, retry: bool) -> Self {
        self.config.retry_initial_connect = retry;
        self
    }

    /// The TLS configuration of `wss://` connections (the default: rustls with the
    /// webpki root certificates and the `ring` provider). Use it for client
    /// certificates, or ALPN, or any other rustls setting.
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.config.tls = Some(config);
        self
    }

    /// Trust these root certificates for `wss://` instead of the webpki roots (e.g. a
    /// private CA, or a self-signed certificate in tests).
    ///
    /// ```
    /// # fn demo(ca_der: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
    /// use zocket_client::rustls::RootCertStore;
    /// let mut roots = RootCertStore::empty();
    /// roots.add(ca_der.into())?;
    /// let client = zocket_client::Client::builder("wss://localhost:8443/")
    ///     .tls_root_certificates(roots)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_root_certificates(mut self, roots: rustls::RootCertStore) -> Self {
        self.config.tls = Some(crate::tls::config_with_roots(roots));
        self
    }

    /// The largest incoming message accepted (16 MiB unless set; `None` for no limit).
    pub fn max_message_bytes(mut self, bytes: Option<usize>) -> Self {
        self.config.max_message_bytes = bytes;
        self
    }

    /// Run `hook` after every successful (re)connect, e.g. to re-join rooms. Hooks run
    /// in the order added, in their own task, with a [`Client`] whose messages are
    /// written *before* anything buffered while disconnected. Use that handle (not
    /// another clone) inside the hook: other handles' messages wait until the hooks are
    /// done. An error of a hook fails the first [`connect`](ClientBuilder::connect)
    /// (with [`ConnectError::Hook`]); on a reconnect it is logged.
    pub fn on_connect<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Client) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ClientError>> + Send + 'static,
    {
        self.hooks
            .push(Arc::new(move |client| Box::pin(hook(client))));
        self
    }

    /// Build the client without connecting, e.g. to subscribe before the first event can
    /// arrive; then call [`Client::connect`]. Fails only for an invalid URL.
    pub fn build(self) -> Result<Client, ConnectError> {
        let endpoint = Endpoint::new(&self.url, &self.headers, &self.http_only)?;
        let (outbox, outbox_rx) = outbox(self.config.outbound_buffer);
        let shared = Arc::new(Shared::new(self.config, outbox));
        let shutdown = CancellationToken::new();
        let driver = Driver::new(shared.clone(), endpoint, outbox_rx, shutdown.clone());
        Ok(Client {
            inner: Arc::new(ClientInner {
                shared,
                shutdown,
                driver: Mutex::new(Some(driver)),
                hooks: self.hooks.into(),
                url: self.url,
            }),
            lane: Lane::Main,
        })
    }

    /// Build and connect: see [`ClientBuilder::build`] and [`Client::connect`].
    pub async fn connect(self) -> Result<Client, ConnectError> {
        let client = self.build()?;
        client.connect().await?;
        Ok(client)
    }
}

fn redacted(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_header(k) {
                "<redacted>"
            } else {
                v.as_str()
            };
            (k.as_str(), v)
        })
        .collect()
}
