//! The floor: the thinnest tokio-tungstenite server of the Zocket protocol subset the
//! benchmarks use (`__welcome`, `bench.echo`, `rooms.join`, `bench.fanout` →
//! `bench.tick`), with 4 KiB buffers. One task per connection reads, dispatches and
//! writes; events from other connections arrive on an unbounded channel; replies to
//! frames that are already buffered are written with one flush.
//!
//! It validates nothing beyond what it needs and has no limits: it is a yardstick, not a
//! server to run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use zocket_bench::subset::{self, Action};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
}

type Tx = mpsc::UnboundedSender<Utf8Bytes>;

#[derive(Default)]
struct Rooms {
    rooms: Mutex<HashMap<String, HashMap<u64, Tx>>>,
}

/// Handle one client frame; a reply, if any, is returned for the caller.
fn handle(
    text: &str,
    id: u64,
    me: &Tx,
    rooms: &Rooms,
    joined: &mut Vec<String>,
) -> Option<Message> {
    match subset::decode(text) {
        Action::Reply(r) => Some(Message::text(r)),
        Action::Join { room, rpc_id } => {
            if !joined.iter().any(|r| r == room) {
                joined.push(room.to_owned());
                let mut map = rooms.rooms.lock().unwrap_or_else(|p| p.into_inner());
                map.entry(room.to_owned())
                    .or_default()
                    .insert(id, me.clone());
            }
            let list = serde_json::to_string(&joined).ok()?;
            rpc_id.map(|r| Message::text(subset::reply(r, Some(&list))))
        }
        Action::Fanout { room, event, reply } => {
            // Serialised once, shared by every recipient (Utf8Bytes is reference counted).
            let event: Utf8Bytes = event.into();
            let map = rooms.rooms.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(members) = map.get(room) {
                for tx in members.values() {
                    let _ = tx.send(event.clone());
                }
            }
            drop(map);
            reply.map(Message::text)
        }
        Action::Nothing => None,
    }
}

async fn connection(stream: TcpStream, id: u64, rooms: Arc<Rooms>) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096);
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    let mut joined = Vec::new();
    ws.send(Message::text(subset::welcome(id))).await?;
    let result: anyhow::Result<()> = async {
        loop {
            tokio::select! {
                msg = ws.next() => {
                    let mut msg = match msg {
                        Some(m) => Some(m?),
                        None => return Ok(()),
                    };
                    // Handle every frame already buffered, then flush once.
                    let mut n = 0;
                    while let Some(m) = msg.take() {
                        match m {
                            Message::Text(t) => {
                                if let Some(r) = handle(&t, id, &tx, &rooms, &mut joined) {
                                    ws.feed(r).await?;
                                }
                            }
                            Message::Close(_) => return Ok(()),
                            _ => {}
                        }
                        n += 1;
                        if n < 64 {
                            msg = match ws.next().now_or_never() {
                                Some(Some(r)) => Some(r?),
                                Some(None) => return Ok(()),
                                None => None,
                            };
                        }
                    }
                    ws.flush().await?;
                }
                Some(event) = rx.recv() => {
                    ws.feed(Message::Text(event)).await?;
                    for _ in 0..64 {
                        match rx.try_recv() {
                            Ok(e) => ws.feed(Message::Text(e)).await?,
                            Err(_) => break,
                        }
                    }
                    ws.flush().await?;
                }
            }
        }
    }
    .await;
    let mut map = rooms.rooms.lock().unwrap_or_else(|p| p.into_inner());
    for room in &joined {
        if let Some(m) = map.get_mut(room) {
            m.remove(&id);
            if m.is_empty() {
                map.remove(room);
            }
        }
    }
    result
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(&args.addr).await?;
    zocket_bench::print_listening(listener.local_addr()?);
    let rooms = Arc::new(Rooms::default());
    let ids = AtomicU64::new(1);
    loop {
        let (stream, _) = listener.accept().await?;
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let _ = connection(stream, id, rooms).await;
        });
    }
}
