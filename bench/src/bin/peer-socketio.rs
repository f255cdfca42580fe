//! Peer: socketioxide on axum, written as socketioxide's README and examples show
//! (default configuration). Events: `echo` (ack with the data), `join` (room name; ack),
//! `fanout` (`{roomId, ...}`: `tick` with the data to the room; ack).

use clap::Parser;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
}

async fn on_connect(socket: SocketRef) {
    socket.on("echo", async |Data::<Value>(data), ack: AckSender| {
        ack.send(&data).ok();
    });
    socket.on(
        "join",
        async |socket: SocketRef, Data::<String>(room), ack: AckSender| {
            socket.join(room);
            ack.send(&"ok").ok();
        },
    );
    socket.on(
        "fanout",
        async |socket: SocketRef, Data::<Value>(data), ack: AckSender| {
            let room = data
                .get("roomId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            socket.within(room).emit("tick", &data).await.ok();
            ack.send(&()).ok();
        },
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", on_connect);
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    zocket_bench::print_listening(listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
