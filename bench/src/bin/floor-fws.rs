//! The floor on fastwebsockets instead of tokio-tungstenite: the same protocol subset
//! for the RPC and idle scenarios (`__welcome`, `bench.echo`, `rooms.join`; no fan-out),
//! used as fastwebsockets' README shows (`WebSocket::after_handshake`, `read_frame`,
//! `write_frame`, auto pong and close), one task per connection, for measuring the
//! codec against the tungstenite floor and Zocket's own transport (BENCHMARKS.md:
//! the transport decision).
//!
//! The handshake is read and answered here (one request, `Sec-WebSocket-Key` → accept
//! key), so no HTTP server runs in this process. fastwebsockets writes each frame with
//! its own `write_all` (one write per reply, also when calls are pipelined): it has no
//! way to ask whether more frames are already buffered, and `read_frame` cannot be
//! polled once and dropped (it consumes a frame's header before awaiting the rest).

use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zocket_bench::subset::{self, Action};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
}

/// Read the HTTP upgrade request and answer `101`; returns bytes read past it.
async fn handshake(tcp: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        anyhow::ensure!(buf.len() < 16 * 1024, "request headers too long");
    };
    let head = std::str::from_utf8(&buf[..end])?;
    let key = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim())
        })
        .ok_or_else(|| anyhow::anyhow!("no Sec-WebSocket-Key"))?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    tcp.write_all(response.as_bytes()).await?;
    Ok(buf[end..].to_vec())
}

async fn connection(mut tcp: TcpStream, id: u64) -> anyhow::Result<()> {
    tcp.set_nodelay(true)?;
    let rest = handshake(&mut tcp).await?;
    anyhow::ensure!(rest.is_empty(), "frames before the handshake's answer");
    let mut ws = WebSocket::after_handshake(tcp, Role::Server);
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    let welcome = subset::welcome(id);
    ws.write_frame(Frame::text(Payload::Borrowed(welcome.as_bytes())))
        .await?;
    let mut joined: Vec<String> = Vec::new();
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text => {
                let text = std::str::from_utf8(&frame.payload)?;
                let reply = match subset::decode(text) {
                    Action::Reply(r) => Some(r),
                    Action::Join { room, rpc_id } => {
                        if !joined.iter().any(|r| r == room) {
                            joined.push(room.to_owned());
                        }
                        let list = serde_json::to_string(&joined)?;
                        rpc_id.map(|r| subset::reply(r, Some(&list)))
                    }
                    // This floor has no rooms of other connections: RPC scenarios only.
                    Action::Fanout { .. } | Action::Nothing => None,
                };
                if let Some(r) = reply {
                    ws.write_frame(Frame::text(Payload::Owned(r.into_bytes())))
                        .await?;
                }
            }
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(&args.addr).await?;
    zocket_bench::print_listening(listener.local_addr()?);
    let ids = AtomicU64::new(1);
    loop {
        let (stream, _) = listener.accept().await?;
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _ = connection(stream, id).await;
        });
    }
}
