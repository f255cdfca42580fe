//! The WebSocket transport of both bundled adapters: RFC 6455 frames over an upgraded
//! hyper connection, built to hold as little as possible per connection.
//!
//! - **Reading** ([`FrameReader`]): a connection owns no read buffer while it is idle.
//!   Each read goes into a scratch buffer on the stack ([`READ_CHUNK`] bytes, never
//!   zeroed); only the bytes actually received are kept, and only until the frames in
//!   them have been handed to the engine. A frame that arrives in pieces is collected in
//!   a buffer sized for that frame. When the socket has nothing more to read, the
//!   buffer is released. The maximum message size is enforced from the frame header,
//!   before any payload is buffered: an oversize message is skipped as it arrives (never
//!   held whole) and reported as [`TransportError::MessageTooBig`], after which reading
//!   goes on, so the engine can drain the socket during its closing sequence.
//! - **Writing** ([`FrameWriter`]): frames are encoded as they are fed; small payloads are
//!   copied next to their header, larger ones are written from their own shared bytes
//!   (an event fanned out to many connections is never copied per recipient), and a
//!   flush writes everything with vectored writes. Nothing stays allocated once a flush
//!   completes. Closing the writer flushes it and shuts down the TCP write side (FIN).
//! - **Pings** are handed to the engine, which answers them under its outbound byte
//!   budget ([`PingReplies::Engine`]).
//!
//! Protocol violations (reserved bits without an extension, an unmasked client frame, a
//! fragmented or oversize control frame, an unknown opcode, a stray continuation frame,
//! invalid UTF-8 in a text message or a close reason, an invalid close code) end the
//! stream with a [`TransportError::Other`].
//!
//! [`serve_upgrade`] runs a Zocket connection over an upgraded connection with these;
//! [`ZocketService`](crate::ZocketService) and `zocket-warp` both use it.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Cursor, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Sink, SinkExt, Stream};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use zocket_core::protocol::{CloseFrame, Text, TransportError, WsFrame};
use zocket_core::{Accepted, CloseReason, Context, PingReplies};

/// Bytes asked for in one read from the socket (into a scratch buffer on the stack).
pub const READ_CHUNK: usize = 16 * 1024;
/// Encoded bytes the writer holds before [`Sink::poll_ready`] writes them out.
pub const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Payloads up to this size are copied next to their frame header; larger ones are
/// written from their own bytes.
const COPY_MAX: usize = 1024;
/// Where the writer starts a new chunk for the headers and small payloads that follow.
const SMALL_CHUNK: usize = 16 * 1024;
/// Buffers handed to one vectored write.
const MAX_IOVECS: usize = 64;
/// How long the socket is still read (and discarded) after the TCP write side was shut
/// down, waiting for the peer to close its side, so that the kernel does not answer
/// late bytes with a reset.
pub const LINGER: Duration = Duration::from_secs(1);
/// How long shutting down the TCP write side may take when the engine did not.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// Wait for the upgrade, then run `accepted` over the upgraded HTTP/1.1 connection with
/// [`FrameReader`] and [`FrameWriter`] until it ends: the engine writes its close frame,
/// drains the socket until the peer's close frame or its close timeout, and closes the
/// writer, which shuts down the TCP write side; then the socket is read for at most
/// [`LINGER`] more, until the peer closes its side, and dropped. Returns why the
/// connection ended (`None` when the upgrade did not complete).
///
/// `max_message_bytes` is the largest message accepted (normally
/// [`ServerConfig::max_message_bytes`](zocket_core::ServerConfig::max_message_bytes)).
/// Adapters spawn this right after answering `101 Switching Protocols`.
pub fn serve_upgrade<C: Context>(
    accepted: Accepted<C>,
    on_upgrade: OnUpgrade,
    max_message_bytes: usize,
) -> impl Future<Output = Option<CloseReason>> + Send + 'static {
    // Boxed until the upgrade completes: the future then keeps a pointer, not a second
    // copy of `Accepted` beside the one the engine's future holds (about 160 bytes per
    // connection).
    serve_boxed(Box::new(accepted), on_upgrade, max_message_bytes)
}

async fn serve_boxed<C: Context>(
    accepted: Box<Accepted<C>>,
    on_upgrade: OnUpgrade,
    max_message_bytes: usize,
) -> Option<CloseReason> {
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(client_id = %accepted.client_id(), error = %e, "the upgrade did not complete");
            return None;
        }
    };
    let (read, write) = tokio::io::split(TokioIo::new(upgraded));
    let mut reader = FrameReader::new(read, max_message_bytes);
    let mut writer = FrameWriter::new(write);
    let serve = {
        // Moved out of its box here, so the box is freed now, not when this ends.
        let boxed = accepted;
        (*boxed)
            .ping_replies(PingReplies::Engine)
            .serve(&mut reader, &mut writer)
    };
    let reason = serve.await;
    // Normally done by the engine already (then this returns at once).
    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, writer.close()).await;
    let _ = tokio::time::timeout(LINGER, reader.discard_until_eof()).await;
    tracing::debug!(?reason, "websocket connection ended");
    Some(reason)
}

/// The kind of a (possibly fragmented) data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// The reading half: a [`Stream`] of the frames a client sends.
///
/// Idle, it holds no buffer (see the [module docs](self)).
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    /// Bytes received and not yet decoded; no allocation when empty and idle.
    buf: BytesMut,
    /// A fragmented message being collected.
    message: Option<(Kind, BytesMut)>,
    /// Payload bytes of an oversize frame still to discard as they arrive.
    skip: u64,
    /// The continuation frames of an oversize message are discarded up to its last one.
    discarding: bool,
    max_message: usize,
    ended: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of client frames from `io`, with messages up to `max_message` bytes.
    pub fn new(io: R, max_message: usize) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            message: None,
            skip: 0,
            discarding: false,
            max_message,
            ended: false,
        }
    }

    /// Read and discard everything until the peer closes its side (or an error).
    pub async fn discard_until_eof(&mut self) {
        self.buf = BytesMut::new();
        self.message = None;
        loop {
            let n = std::future::poll_fn(|cx| {
                let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
                let mut read = ReadBuf::uninit(&mut scratch);
                ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
                Poll::Ready(Ok::<_, io::Error>(read.filled().len()))
            })
            .await;
            if !matches!(n, Ok(n) if n > 0) {
                return;
            }
        }
    }

    /// Whether a frame or message is partly received.
    fn mid_frame(&self) -> bool {
        !self.buf.is_empty() || self.message.is_some() || self.skip > 0 || self.discarding
    }

    /// Read more bytes into `buf`; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<usize>> {
        if self.buf.is_empty() {
            // Nothing pending: read into the stack, keep only what arrived.
            let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut read = ReadBuf::uninit(&mut scratch);
            if let Poll::Ready(result) = Pin::new(&mut self.io).poll_read(cx, &mut read) {
                result?;
                let data = read.filled();
                let skipped = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.skip -= skipped as u64;
                self.buf.extend_from_slice(&data[skipped..]);
                return Poll::Ready(Ok(data.len()));
            }
            // Idle: release the buffer (payloads already handed out keep their bytes).
            self.buf = BytesMut::new();
            Poll::Pending
        } else {
            // A frame is partly here: read straight into the buffer behind it (`decode`
            // reserved room for the whole frame).
            if self.buf.capacity() - self.buf.len() < 64 {
                self.buf.reserve(READ_CHUNK);
            }
            let spare = self.buf.spare_capacity_mut();
            let mut read = ReadBuf::uninit(spare);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
            unsafe { self.buf.set_len(self.buf.len() + n) };
            Poll::Ready(Ok(n))
        }
    }

    /// Decode the next complete frame from `buf`, if there is one.
    fn decode(&mut self) -> Result<Option<WsFrame>, TransportError> {
        loop {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(self.buf.len());
                self.buf.advance(n);
                self.skip -= n as u64;
                if self.skip > 0 {
                    return Ok(None);
                }
            }
            let mut cursor = Cursor::new(&self.buf[..]);
            let Some((header, len)) =
                FrameHeader::parse(&mut cursor).map_err(|e| protocol_error(&e.to_string()))?
            else {
                return Ok(None);
            };
            let head_len = cursor.position() as usize;
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(protocol_error("reserved bits set without an extension"));
            }
            let Some(mask) = header.mask else {
                return Err(protocol_error("unmasked frame from a client"));
            };
            let control = matches!(header.opcode, OpCode::Control(_));
            if control && (!header.is_final || len > 125) {
                return Err(protocol_error("fragmented or oversize control frame"));
            }
            if !control {
                if self.discarding && header.opcode == OpCode::Data(Data::Continue) {
                    self.buf.advance(head_len);
                    self.skip = len;
                    self.discarding = !header.is_final;
                    continue;
                }
                let so_far = self.message.as_ref().map_or(0, |(_, m)| m.len());
                if len > self.max_message.saturating_sub(so_far) as u64 {
                    // Never buffered: the payload is skipped as it arrives, and so are the
                    // rest of the message's frames.
                    self.buf.advance(head_len);
                    self.skip = len;
                    self.message = None;
                    self.discarding = !header.is_final;
                    return Err(TransportError::MessageTooBig);
                }
            }
            // Below the message limit (or a control frame of at most 125 bytes).
            let total = head_len + len as usize;
            if self.buf.len() < total {
                self.buf.reserve(total - self.buf.len());
                return Ok(None);
            }
            let mut payload = self.buf.split_to(total);
            payload.advance(head_len);
            unmask(&mut payload, mask);
            match header.opcode {
                OpCode::Control(Control::Ping) => return Ok(Some(WsFrame::Ping(payload.freeze()))),
                OpCode::Control(Control::Pong) => return Ok(Some(WsFrame::Pong(payload.freeze()))),
                OpCode::Control(Control::Close) => return close_frame(&payload).map(Some),
                OpCode::Data(data @ (Data::Text | Data::Binary)) => {
                    if self.message.is_some() {
                        return Err(protocol_error(
                            "a new message began inside a fragmented one",
                        ));
                    }
                    let kind = if data == Data::Text {
                        Kind::Text
                    } else {
                        Kind::Binary
                    };
                    if header.is_final {
                        return message(kind, payload).map(Some);
                    }
                    self.message = Some((kind, payload));
                }
                OpCode::Data(Data::Continue) => {
                    let Some((kind, mut so_far)) = self.message.take() else {
                        return Err(protocol_error("continuation frame outside a message"));
                    };
                    so_far.extend_from_slice(&payload);
                    if header.is_final {
                        return message(kind, so_far).map(Some);
                    }
                    self.message = Some((kind, so_far));
                }
                OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
                    return Err(protocol_error("reserved opcode"));
                }
            }
        }
    }
}

impl<R: AsyncRead + Unpin> Stream for FrameReader<R> {
    type Item = Result<WsFrame, TransportError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match this.decode() {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) => {}
                // The oversize message is skipped; reading goes on.
                Err(TransportError::MessageTooBig) => {
                    return Poll::Ready(Some(Err(TransportError::MessageTooBig)));
                }
                Err(e) => return Poll::Ready(Some(Err(this.fail(e)))),
            }
            match ready!(this.poll_fill(cx)) {
                Ok(0) if this.mid_frame() => {
                    let e = TransportError::Other("the connection ended inside a frame".into());
                    return Poll::Ready(Some(Err(this.fail(e))));
                }
                Ok(0) => {
                    this.fail(TransportError::Other(String::new()));
                    return Poll::Ready(None);
                }
                Ok(_) => {}
                Err(e) => {
                    let e = TransportError::Other(e.to_string());
                    return Poll::Ready(Some(Err(this.fail(e))));
                }
            }
        }
    }
}

impl<R> FrameReader<R> {
    /// End the stream (after `e`, which is returned).
    fn fail(&mut self, e: TransportError) -> TransportError {
        self.ended = true;
        self.buf = BytesMut::new();
        self.message = None;
        e
    }
}

fn protocol_error(what: &str) -> TransportError {
    TransportError::Other(format!("WebSocket protocol error: {what}"))
}

/// XOR the client's masking key into `payload` (RFC 6455 §5.3).
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

fn message(kind: Kind, payload: BytesMut) -> Result<WsFrame, TransportError> {
    match kind {
        Kind::Binary => Ok(WsFrame::Binary(payload.freeze())),
        Kind::Text => Text::try_from(payload.freeze())
            .map(WsFrame::Text)
            .map_err(|_| protocol_error("invalid UTF-8 in a text message")),
    }
}

fn close_frame(payload: &[u8]) -> Result<WsFrame, TransportError> {
    match payload {
        [] => Ok(WsFrame::Close(None)),
        [_] => Err(protocol_error("close frame with a one-byte payload")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !CloseCode::from(code).is_allowed() {
                return Err(protocol_error("invalid close code"));
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| protocol_error("invalid UTF-8 in a close reason"))?;
            Ok(WsFrame::Close(Some(CloseFrame {
                code,
                reason: reason.to_owned().into(),
            })))
        }
    }
}

/// The writing half: a [`Sink`] of the frames the server sends (unmasked, unfragmented).
///
/// Holds no buffer once a flush completed (see the [module docs](self)).
#[derive(Debug)]
pub struct FrameWriter<W> {
    io: W,
    /// Encoded bytes waiting to be written, in order.
    chunks: VecDeque<Bytes>,
    /// Headers and small payloads not yet moved to `chunks`.
    small: BytesMut,
    /// Bytes in `chunks` and `small`.
    queued: usize,
    shut_down: bool,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer of server frames to `io`.
    pub fn new(io: W) -> Self {
        Self {
            io,
            chunks: VecDeque::new(),
            small: BytesMut::new(),
            queued: 0,
            shut_down: false,
        }
    }

    /// Bytes fed and not yet written.
    pub fn queued(&self) -> usize {
        self.queued
    }

    fn encode(&mut self, frame: WsFrame) {
        let (opcode, payload) = match frame {
            WsFrame::Text(text) => (0x1, text.into_bytes()),
            WsFrame::Binary(bytes) => (0x2, bytes),
            WsFrame::Close(None) => (0x8, Bytes::new()),
            WsFrame::Close(Some(CloseFrame { code, reason })) => {
                let mut payload = BytesMut::with_capacity(2 + reason.len());
                payload.extend_from_slice(&code.to_be_bytes());
                payload.extend_from_slice(reason.as_bytes());
                (0x8, payload.freeze())
            }
            WsFrame::Ping(bytes) => (0x9, bytes),
            WsFrame::Pong(bytes) => (0xA, bytes),
        };
        let len = payload.len();
        if self.small.capacity() == self.small.len() {
            self.small.reserve(if len <= COPY_MAX { 4096 } else { 64 });
        }
        let (head, head_len) = header(opcode, len);
        self.small.extend_from_slice(&head[..head_len]);
        self.queued += head_len + len;
        if len <= COPY_MAX {
            self.small.extend_from_slice(&payload);
            if self.small.len() >= SMALL_CHUNK {
                self.chunks.push_back(self.small.split().freeze());
            }
        } else {
            self.chunks.push_back(self.small.split().freeze());
            self.chunks.push_back(payload);
        }
    }

    /// Write everything queued.
    fn poll_write_out(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        if !self.small.is_empty() {
            self.chunks.push_back(self.small.split().freeze());
        }
        while !self.chunks.is_empty() {
            let mut n = if self.io.is_write_vectored() && self.chunks.len() > 1 {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
                    *slot = IoSlice::new(chunk);
                    count += 1;
                }
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?
            } else {
                ready!(Pin::new(&mut self.io).poll_write(cx, &self.chunks[0]))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.queued -= n;
            while n > 0 {
                let Some(front) = self.chunks.front_mut() else {
                    break;
                };
                if front.len() <= n {
                    n -= front.len();
                    self.chunks.pop_front();
                } else {
                    front.advance(n);
                    n = 0;
                }
            }
        }
        // Written: hold nothing while idle.
        self.chunks = VecDeque::new();
        self.small = BytesMut::new();
        Poll::Ready(Ok(()))
    }
}

/// The header of an unmasked, final server frame: its bytes and length.
fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut head = [0u8; 10];
    head[0] = 0x80 | opcode;
    if len < 126 {
        head[1] = len as u8;
        (head, 2)
    } else if let Ok(len) = u16::try_from(len) {
        head[1] = 126;
        head[2..4].copy_from_slice(&len.to_be_bytes());
        (head, 4)
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (head, 10)
    }
}

/// The `Sec-WebSocket-Accept` value for a request's `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    tungstenite::handshake::derive_accept_key(key)
}

impl<W: AsyncWrite + Unpin> Sink<WsFrame> for FrameWriter<W> {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.queued >= WRITE_HIGH_WATER {
            ready!(this.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, frame: WsFrame) -> io::Result<()> {
        let this = self.get_mut();
        if this.shut_down {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the WebSocket writer is closed",
            ));
        }
        this.encode(frame);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    /// Flush, then shut down the write side of the connection (TCP FIN). Idempotent.
    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.shut_down {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_write_out(cx))?;
        ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
        this.shut_down = true;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A masked client frame.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![first];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= u16::MAX as usize {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn text(s: &str) -> WsFrame {
        WsFrame::Text(Text::from(s))
    }

    /// Everything the reader yields for `bytes`, then the end.
    async fn read_all(bytes: Vec<u8>, max: usize) -> Vec<Result<WsFrame, TransportError>> {
        let (mut client, server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            // Small writes, so frames arrive in pieces.
            for piece in bytes.chunks(7) {
                if client.write_all(piece).await.is_err() {
                    break; // the reader stopped after an error
                }
            }
        });
        let reader = FrameReader::new(server, max);
        let items = reader.collect::<Vec<_>>().await;
        writer.await.unwrap();
        items
    }

    #[tokio::test]
    async fn frames_in_pieces_fragments_and_interleaved_control_frames() {
        let mut bytes = client_frame(0x81, br#"{"type":"a"}"#);
        bytes.extend(client_frame(0x01, b"frag"));
        bytes.extend(client_frame(0x89, b"ping"));
        bytes.extend(client_frame(0x00, b"men"));
        bytes.extend(client_frame(0x80, b"ted"));
        bytes.extend(client_frame(0x82, &[1, 2, 3]));
        bytes.extend(client_frame(0x8A, b""));
        let big = "x".repeat(70_000);
        bytes.extend(client_frame(0x81, big.as_bytes()));
        bytes.extend(client_frame(0x88, b"\x03\xe8bye"));
        let items = read_all(bytes, 1 << 20).await;
        assert_eq!(
            items,
            vec![
                Ok(text(r#"{"type":"a"}"#)),
                Ok(WsFrame::Ping(Bytes::from_static(b"ping"))),
                Ok(text("fragmented")),
                Ok(WsFrame::Binary(Bytes::from_static(&[1, 2, 3]))),
                Ok(WsFrame::Pong(Bytes::new())),
                Ok(text(&big)),
                Ok(WsFrame::Close(Some(CloseFrame {
                    code: 1000,
                    reason: "bye".into()
                }))),
            ]
        );
    }

    #[tokio::test]
    async fn an_oversize_message_is_skipped_unbuffered_and_reading_goes_on() {
        let mut bytes = client_frame(0x81, &[b'a'; 300]);
        bytes.extend(client_frame(0x81, b"after"));
        // Fragmented: the second fragment makes it too big; the third is discarded too.
        bytes.extend(client_frame(0x01, &[b'b'; 60]));
        bytes.extend(client_frame(0x00, &[b'b'; 60]));
        bytes.extend(client_frame(0x80, b"rest"));
        bytes.extend(client_frame(0x88, b""));
        let items = read_all(bytes, 100).await;
        assert_eq!(
            items,
            vec![
                Err(TransportError::MessageTooBig),
                Ok(text("after")),
                Err(TransportError::MessageTooBig),
                Ok(WsFrame::Close(None)),
            ]
        );
    }

    #[tokio::test]
    async fn protocol_violations_end_the_stream() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("unmasked", vec![0x81, 0x01, b'a']),
            ("reserved bits", client_frame(0xC1, b"a")),
            ("reserved opcode", client_frame(0x83, b"a")),
            ("fragmented ping", client_frame(0x09, b"a")),
            ("long ping", client_frame(0x89, &[0; 126])),
            ("stray continuation", client_frame(0x80, b"a")),
            ("new message inside one", {
                let mut b = client_frame(0x01, b"a");
                b.extend(client_frame(0x81, b"b"));
                b
            }),
            ("bad utf-8", client_frame(0x81, &[0xff, 0xfe])),
            ("bad close code", client_frame(0x88, &[0x03, 0xed])),
            ("one-byte close", client_frame(0x88, &[0x03])),
            ("truncated", client_frame(0x81, b"hello")[..5].to_vec()),
        ];
        for (what, mut bytes) in cases {
            // Whatever follows is not read.
            bytes.extend(client_frame(0x81, b"never"));
            let items = read_all(bytes, 1 << 20).await;
            assert_eq!(items.len(), 1, "{what}: {items:?}");
            assert!(
                matches!(&items[0], Err(TransportError::Other(_))),
                "{what}: {items:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_idle_reader_holds_no_buffer() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(server, 1 << 20);
        client
            .write_all(&client_frame(0x81, b"hello"))
            .await
            .unwrap();
        assert_eq!(reader.next().await, Some(Ok(text("hello"))));
        // Nothing more to read: the poll returns pending and the buffer is gone.
        assert!(futures::poll!(reader.next()).is_pending());
        assert_eq!(reader.buf.capacity(), 0);
        // Half a frame stays buffered until the rest arrives.
        let frame = client_frame(0x81, b"world");
        client.write_all(&frame[..4]).await.unwrap();
        assert!(futures::poll!(reader.next()).is_pending());
        assert_eq!(reader.buf.len(), 4);
        client.write_all(&frame[4..]).await.unwrap();
        assert_eq!(reader.next().await, Some(Ok(text("world"))));
    }

    #[tokio::test]
    async fn the_writer_encodes_batches_and_shuts_down_the_write_side() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (mut client_read, _client_write) = tokio::io::split(client);
        let mut writer = FrameWriter::new(server);
        let big = Bytes::from(vec![b'z'; 70_000]);
        writer.feed(text("hi")).await.unwrap();
        writer.feed(WsFrame::Binary(big.clone())).await.unwrap();
        assert_eq!(writer.queued(), 4 + 10 + 70_000);
        // Over the high-water mark: the next feed writes out first.
        writer.feed(WsFrame::Ping(Bytes::new())).await.unwrap();
        assert_eq!(writer.queued(), 2);
        writer
            .feed(WsFrame::Close(Some(CloseFrame {
                code: 1008,
                reason: "too many errors".into(),
            })))
            .await
            .unwrap();
        writer.close().await.unwrap();
        assert_eq!(writer.queued(), 0);
        assert_eq!(writer.small.capacity(), 0);
        // The peer reads every frame, then the end of the stream (the FIN).
        let mut got = Vec::new();
        client_read.read_to_end(&mut got).await.unwrap();
        let mut expected = vec![0x81, 2, b'h', b'i', 0x82, 127];
        expected.extend_from_slice(&70_000u64.to_be_bytes());
        expected.extend_from_slice(&big);
        expected.extend_from_slice(&[0x89, 0, 0x88, 17, 0x03, 0xf0]);
        expected.extend_from_slice(b"too many errors");
        assert_eq!(got, expected);
        // Closing again is a no-op; sending after it fails.
        writer.close().await.unwrap();
        assert!(writer.send(text("late")).await.is_err());
    }

    #[test]
    fn headers_use_the_shortest_length_encoding() {
        let bytes = |(head, len): ([u8; 10], usize)| head[..len].to_vec();
        assert_eq!(bytes(header(0x1, 125)), vec![0x81, 125]);
        assert_eq!(bytes(header(0x1, 126)), vec![0x81, 126, 0, 126]);
        assert_eq!(bytes(header(0x2, 65_535)), vec![0x82, 126, 0xff, 0xff]);
        assert_eq!(
            bytes(header(0x2, 65_536)),
            vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }

    #[test]
    fn unmasking_matches_the_rfc_example() {
        // RFC 6455 §5.7: a masked "Hello".
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        unmask(&mut payload, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(&payload, b"Hello");
    }
}
