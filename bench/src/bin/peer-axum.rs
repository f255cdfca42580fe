//! Peer: raw axum WebSockets written like axum's chat example (`examples/chat`): the
//! socket split into a send task and a receive task, rooms as tokio broadcast channels,
//! one message sent (and flushed) at a time. It speaks the same Zocket subset as the
//! floor. The channel is sized for the 200-message burst (the example uses 100).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::any;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, mpsc};
use zocket_bench::subset::{self, Action};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
}

#[derive(Default)]
struct AppState {
    rooms: Mutex<HashMap<String, broadcast::Sender<Utf8Bytes>>>,
    ids: AtomicU64,
}

enum Out {
    Frame(Utf8Bytes),
    Join(broadcast::Receiver<Utf8Bytes>),
}

async fn ws_handler(ws: WebSocketUpgrade, State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ws.on_upgrade(|socket| websocket(socket, state))
}

async fn websocket(stream: WebSocket, state: Arc<AppState>) {
    let (mut sender, mut receiver) = stream.split();
    let id = state.ids.fetch_add(1, Ordering::Relaxed);
    if sender
        .send(Message::text(subset::welcome(id)))
        .await
        .is_err()
    {
        return;
    }
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Out>();

    let mut send_task = tokio::spawn(async move {
        let mut room: Option<broadcast::Receiver<Utf8Bytes>> = None;
        loop {
            let frame = tokio::select! {
                out = out_rx.recv() => match out {
                    Some(Out::Frame(f)) => f,
                    Some(Out::Join(rx)) => { room = Some(rx); continue; }
                    None => break,
                },
                ev = async { room.as_mut().expect("guarded").recv().await }, if room.is_some() => match ev {
                    Ok(f) => f,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => { room = None; continue; }
                },
            };
            if sender.send(Message::Text(frame)).await.is_err() {
                break;
            }
        }
    });

    let mut recv_task = tokio::spawn(async move {
        let mut joined: Vec<String> = Vec::new();
        while let Some(Ok(Message::Text(text))) = receiver.next().await {
            match subset::decode(&text) {
                Action::Reply(r) => {
                    let _ = out_tx.send(Out::Frame(r.into()));
                }
                Action::Join { room, rpc_id } => {
                    if !joined.iter().any(|r| r == room) {
                        joined.push(room.to_owned());
                        let rx = {
                            let mut rooms = state.rooms.lock().unwrap_or_else(|p| p.into_inner());
                            rooms
                                .entry(room.to_owned())
                                .or_insert_with(|| broadcast::channel(1024).0)
                                .subscribe()
                        };
                        let _ = out_tx.send(Out::Join(rx));
                    }
                    if let Some(r) = rpc_id {
                        let list = serde_json::to_string(&joined).unwrap_or_default();
                        let _ = out_tx.send(Out::Frame(subset::reply(r, Some(&list)).into()));
                    }
                }
                Action::Fanout { room, event, reply } => {
                    let tx = state
                        .rooms
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(room)
                        .cloned();
                    if let Some(tx) = tx {
                        let _ = tx.send(event.into());
                    }
                    if let Some(r) = reply {
                        let _ = out_tx.send(Out::Frame(r.into()));
                    }
                }
                Action::Nothing => {}
            }
        }
    });

    // If any one of the tasks run to completion, we abort the other.
    tokio::select! {
        _ = &mut send_task => recv_task.abort(),
        _ = &mut recv_task => send_task.abort(),
    };
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let app = Router::new()
        .route("/", any(ws_handler))
        .with_state(Arc::new(AppState::default()));
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    zocket_bench::print_listening(listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
