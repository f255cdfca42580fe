//! A small fake Zocket server for the client's tests: real sockets on 127.0.0.1, a
//! handful of routes, answers like a Zocket server would (out of order where asked).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

/// How the fake server treats connections.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Upgrade, send `__welcome`, answer frames.
    Normal,
    /// Refuse the upgrade with this status and JSON body.
    Reject(u16, Value),
    /// Upgrade, send `__welcome`, then never read (so pings are never answered).
    Silent,
}

/// What the server saw of one handshake.
#[derive(Clone, Debug)]
pub struct Handshake {
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl Handshake {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
pub struct Log {
    /// Every handshake attempt (accepted or not).
    pub handshakes: Mutex<Vec<Handshake>>,
    /// Every text frame received, with the connection number (1-based).
    pub frames: Mutex<Vec<(usize, Value)>>,
    /// Connections upgraded so far.
    pub connections: AtomicUsize,
    /// Connections whose socket ended (client closed or dropped).
    pub closed: AtomicUsize,
    /// Woken after every change above, so tests wait on events, not on a poll.
    changed: tokio::sync::Notify,
}

impl Log {
    fn changed(&self) {
        self.changed.notify_waiters();
    }

    /// Wait until `cond` holds of this log, re-checked after each change; panics after
    /// `limit` (which bounds the wait only).
    pub async fn wait_until(&self, limit: Duration, what: &str, cond: impl Fn(&Log) -> bool) {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if cond(self) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            panic!("timed out waiting for: {what}");
        }
    }

    pub fn handshake_count(&self) -> usize {
        self.handshakes.lock().unwrap().len()
    }
    pub fn frames_of(&self, conn: usize) -> Vec<Value> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

pub struct FakeServer {
    pub addr: SocketAddr,
    pub log: Arc<Log>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FakeServer {
    /// Start on a free port.
    pub async fn start(mode: Mode) -> Self {
        Self::start_on(
            "127.0.0.1:0".parse().unwrap(),
            mode,
            Arc::new(Log::default()),
        )
        .await
    }

    /// Start on `addr` (e.g. the port of a stopped server), sharing `log`.
    pub async fn start_on(addr: SocketAddr, mode: Mode, log: Arc<Log>) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let listener: TcpListener = socket.listen(128).unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let t = tasks.clone();
        let l = log.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let conn = tokio::spawn(serve(stream, mode.clone(), l.clone(), t.clone()));
                t.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { addr, log, tasks }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Stop accepting and drop every connection (like a killed process); returns once
    /// the port is free again.
    pub async fn stop(&self) {
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().unwrap().drain(..).collect();
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[allow(clippy::result_large_err)] // the callback type is fixed by tungstenite
async fn serve(
    stream: tokio::net::TcpStream,
    mode: Mode,
    log: Arc<Log>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    let reject = match &mode {
        Mode::Reject(status, body) => Some((*status, body.to_string())),
        _ => None,
    };
    let hs_log = log.clone();
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        hs_log.handshakes.lock().unwrap().push(Handshake {
            uri: req.uri().to_string(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
        });
        hs_log.changed();
        match &reject {
            Some((status, body)) => {
                let mut r = ErrorResponse::new(Some(body.clone()));
                *r.status_mut() = StatusCode::from_u16(*status).unwrap();
                r.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                Err(r)
            }
            None => Ok(resp),
        }
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let conn = log.connections.fetch_add(1, Ordering::SeqCst) + 1;
    log.changed();
    let (mut sink, mut stream) = ws.split();
    let welcome =
        json!({"type":"__welcome","payload":{"clientId":format!("c{conn}"),"version":"1"}});
    if sink.send(Message::text(welcome.to_string())).await.is_err() {
        return;
    }
    if let Mode::Silent = mode {
        // Hold the socket, never read: pings stay unanswered.
        let _keep = (sink, stream);
        std::future::pending::<()>().await;
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
    });
    tasks.lock().unwrap().push(writer);
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        log.frames.lock().unwrap().push((conn, frame.clone()));
        log.changed();
        handle(frame, &tx);
    }
    log.closed.fetch_add(1, Ordering::SeqCst);
    log.changed();
}

fn send(tx: &mpsc::UnboundedSender<Message>, v: Value) {
    let _ = tx.send(Message::text(v.to_string()));
}

fn reply(tx: &mpsc::UnboundedSender<Message>, id: &Option<String>, payload: Option<Value>) {
    if let Some(id) = id {
        let mut v = json!({"type":"__rpc_res","rpcId":id});
        if let Some(p) = payload {
            v["payload"] = p;
        }
        send(tx, v);
    }
}

fn error(
    tx: &mpsc::UnboundedSender<Message>,
    id: &Option<String>,
    kind: &str,
    code: &str,
    message: &str,
    data: Option<Value>,
) {
    let mut err = json!({"code":code,"message":message});
    if let Some(d) = data {
        err["data"] = d;
    }
    match id {
        Some(id) => send(tx, json!({"type":"__rpc_err","rpcId":id,"error":err})),
        None => {
            err["type"] = json!(kind);
            send(tx, json!({"type":"__error","error":err}))
        }
    }
}

/// The routes.
fn handle(frame: Value, tx: &mpsc::UnboundedSender<Message>) {
    let kind = frame["type"].as_str().unwrap_or("").to_owned();
    let id = frame["rpcId"].as_str().map(str::to_owned);
    let payload = frame.get("payload").cloned().unwrap_or(Value::Null);
    match kind.as_str() {
        "greet" => match payload["name"].as_str() {
            Some(name) => reply(tx, &id, Some(json!(format!("Hello, {name}!")))),
            None => error(tx, &id, &kind, "INVALID_INPUT", "name: missing field", None),
        },
        // unit output: no payload key
        "log" | "rooms.join" => reply(tx, &id, None),
        "null.output" => reply(tx, &id, Some(Value::Null)),
        "fail.error" => error(
            tx,
            &id,
            &kind,
            "TEAPOT",
            "I'm a teapot",
            Some(json!({"hint":"try coffee"})),
        ),
        "slow.sleep" => {
            let ms = payload["ms"].as_u64().unwrap_or(0);
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                reply(&tx, &id, Some(json!(ms)));
            });
        }
        // Replies out of order: a pseudo-random delay derived from the input.
        "echo.shuffle" => {
            let n = payload["n"].as_u64().unwrap_or(0);
            let delay = n.wrapping_mul(7919) % 23;
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                reply(&tx, &id, Some(payload));
            });
        }
        // Send the given events to the caller, then reply unit.
        "emit.events" => {
            if let Some(events) = payload.as_array() {
                for e in events {
                    send(tx, json!({"type": e["type"], "payload": e["payload"]}));
                }
            }
            reply(tx, &id, None);
        }
        _ => error(
            tx,
            &id,
            &kind,
            "NOT_FOUND",
            &format!("no message `{kind}`"),
            None,
        ),
    }
}
