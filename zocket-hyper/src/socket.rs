//! The WebSocket transport of both bundled adapters: RFC 6455 frames over an upgraded
//! hyper connection, built to hold as little as possible per connection.
//!
//! - **Reading** ([`FrameReader`]): a connection owns no read buffer while it is idle.
//!   Each read goes into a scratch buffer on the stack ([`READ_CHUNK`] bytes, never
//!   zeroed); only the bytes actually received are kept, and only until the frames in
//!   them have been handed to the engine. They are copied into the thread's spare read
//!   buffer (at most 4 KiB, reused once every frame read into it is gone, so a busy
//!   thread allocates nothing per read) or, when that is in use or too small, into a new
//!   one. A frame that arrives in pieces is collected in a buffer sized for that frame.
//!   When the socket has nothing more to read, the buffer is released (back to the
//!   thread when it is the spare's size). The maximum message size is enforced from the
//!   frame header, before any payload is buffered: an oversize message is skipped as it arrives (never
//!   held whole) and reported as [`TransportError::MessageTooBig`], after which reading
//!   goes on, so the engine can drain the socket during its closing sequence.
//! - **Writing** ([`FrameWriter`]): frames are encoded as they are fed; small payloads are
//!   copied next to their header, larger ones are written from their own shared bytes
//!   (an event fanned out to many connections is never copied per recipient), and a
//!   flush writes everything in one write (vectored when large payloads are among it).
//!   Nothing stays allocated per connection once a flush completes (the buffer goes
//!   back to its thread, for the next connection that writes). Closing the writer
//!   flushes it and shuts down the TCP write side (FIN).
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
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::future::Either;
use futures::{Sink, SinkExt, Stream};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
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
/// The first allocation of the writer's buffer for headers and small payloads (it
/// grows as more frames are fed before a flush; freed when the flush completes).
const SMALL_FIRST: usize = 512;
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
    // Boxed until the upgrade completes (freed when the engine takes `Accepted` over):
    // the future then keeps one pointer, not a second copy of `Accepted` beside the one
    // the engine's future holds, nor the upgrade's receiver for the connection's life.
    let mut setup = Box::new(Setup {
        accepted,
        on_upgrade,
        max_message_bytes,
    });
    // No `async fn` on the way: an `async fn` keeps its arguments in its future next to
    // the locals they are moved into, and every connection would carry both copies for
    // its whole life. What is needed after the upgrade is built outside of any future
    // (`transport`) and moved into the one that runs it (`run`).
    async move {
        let upgraded = match (&mut setup.on_upgrade).await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(client_id = %setup.accepted.client_id(), error = %e, "the upgrade did not complete");
                return None;
            }
        };
        let reason = transport(setup, upgraded).await;
        tracing::debug!(?reason, "websocket connection ended");
        Some(reason)
    }
}

/// What [`serve_upgrade`] holds until the upgrade completes.
struct Setup<C: Context> {
    accepted: Accepted<C>,
    on_upgrade: OnUpgrade,
    max_message_bytes: usize,
}

/// The future that serves the upgraded connection with the transport that suits it.
fn transport<C: Context>(
    setup: Box<Setup<C>>,
    upgraded: Upgraded,
) -> Either<impl Future<Output = CloseReason> + Send, impl Future<Output = CloseReason> + Send> {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        // A plain TCP connection (both bundled adapters' own accept loops): read and
        // write the socket itself, through its two halves, rather than through the
        // upgrade's boxed IO and a lock shared by two split halves. Owned halves (the
        // socket behind an `Arc`): borrowed ones would keep the socket in the future
        // beside the reader and the writer that borrow it, and a copy of the bytes
        // below in it besides.
        Ok(parts) => {
            let (read, write) = parts.io.into_inner().into_split();
            let mut reader = FrameReader::new(read, setup.max_message_bytes);
            // What the HTTP parser read past the request is the start of the stream.
            reader.buf.extend_from_slice(&parts.read_buf);
            drop(parts.read_buf);
            Either::Left(run(setup, reader, FrameWriter::new(write)))
        }
        // Anything else (TLS): the upgraded connection as it is.
        Err(upgraded) => {
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            let reader = FrameReader::new(read, setup.max_message_bytes);
            Either::Right(run(setup, reader, FrameWriter::new(write)))
        }
    }
}

/// Serve the connection until it ends, then close the writer and linger (see
/// [`serve_upgrade`]).
// Not an `async fn`, which would hold the reader and the writer twice (see above).
#[allow(clippy::manual_async_fn)]
fn run<C, R, W>(
    setup: Box<Setup<C>>,
    mut reader: FrameReader<R>,
    mut writer: FrameWriter<W>,
) -> impl Future<Output = CloseReason> + Send
where
    C: Context,
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    async move {
        let reason = serve(setup, &mut reader, &mut writer).await;
        // The reason goes through `linger`'s future rather than waiting beside it: a
        // local written by one `.await` and kept across the next cannot share the room
        // of the first one's future (40 bytes more per connection).
        linger(&mut reader, &mut writer, reason).await
    }
}

/// The engine's future for the connection `setup` accepted, over `reader` and `writer`.
/// Not `async`: the box is freed here (not when the connection ends, as it would be if
/// the future that holds it moved the value out), and the future returned is the
/// engine's own.
#[allow(clippy::boxed_local)]
fn serve<'a, C, R, W>(
    setup: Box<Setup<C>>,
    reader: &'a mut FrameReader<R>,
    writer: &'a mut FrameWriter<W>,
) -> impl Future<Output = CloseReason> + Send + 'a
where
    C: Context,
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let Setup { accepted, .. } = *setup;
    accepted
        .ping_replies(PingReplies::Engine)
        .serve(reader, writer)
}

/// After the engine ended (for `reason`, returned): close the writer (normally done by
/// the engine already, then this returns at once) and read the socket for at most
/// [`LINGER`] more, until the peer closes its side (see [`serve_upgrade`]).
async fn linger<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    reason: CloseReason,
) -> CloseReason
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, writer.close()).await;
    let _ = tokio::time::timeout(LINGER, reader.discard_until_eof()).await;
    reason
}

/// A frame header (RFC 6455 §5.2), as read from the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    is_final: bool,
    /// Any of the three reserved bits is set.
    rsv: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    /// Payload length.
    len: u64,
    /// Header length (2 to 14 bytes).
    head_len: usize,
}

impl Head {
    /// The header at the start of `b`, or `None` while it is incomplete.
    fn parse(b: &[u8]) -> Option<Self> {
        let (&b0, &b1) = (b.first()?, b.get(1)?);
        let (len, mut at) = match b1 & 0x7F {
            126 => (
                u64::from(u16::from_be_bytes(b.get(2..4)?.try_into().ok()?)),
                4,
            ),
            127 => (u64::from_be_bytes(b.get(2..10)?.try_into().ok()?), 10),
            n => (u64::from(n), 2),
        };
        let mask = if b1 & 0x80 != 0 {
            let m: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
            at += 4;
            Some(m)
        } else {
            None
        };
        Some(Self {
            is_final: b0 & 0x80 != 0,
            rsv: b0 & 0x70 != 0,
            opcode: OpCode::from(b0 & 0x0F),
            mask,
            len,
            head_len: at,
        })
    }
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
    /// A fragmented message being collected (boxed: rare, and every idle connection
    /// would carry its room).
    message: Option<Box<(Kind, BytesMut)>>,
    /// Payload bytes of an oversize frame still to discard as they arrive.
    skip: u64,
    /// The continuation frames of an oversize message are discarded up to its last one.
    discarding: bool,
    max_message: usize,
    ended: bool,
    /// `buf` is at most [`read_spare::KEEP_MAX`] bytes and never grew: it goes back to
    /// the thread's spare when released.
    spare: bool,
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
            spare: false,
        }
    }

    /// Read and discard everything until the peer closes its side (or an error).
    pub async fn discard_until_eof(&mut self) {
        self.drop_buf();
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
                let data = &data[skipped..];
                // Into the buffer already held when it is a spare with room again
                // (its earlier frames gone), else into the thread's (or a new one).
                let fits = self.spare && self.buf.try_reclaim(data.len());
                if !fits && !data.is_empty() {
                    self.buf = read_spare::take(data.len());
                    self.spare = data.len() <= read_spare::KEEP_MAX;
                }
                self.buf.extend_from_slice(data);
                return Poll::Ready(Ok(data.len() + skipped));
            }
            // Idle: release the buffer (payloads already handed out keep their bytes).
            self.release_buf();
            Poll::Pending
        } else {
            // A frame is partly here: read straight into the buffer behind it (`decode`
            // reserved room for the whole frame).
            if self.buf.capacity() - self.buf.len() < 64 {
                self.buf.reserve(READ_CHUNK);
                self.spare = false;
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
            let Some(header) = Head::parse(&self.buf) else {
                return Ok(None);
            };
            let (len, head_len) = (header.len, header.head_len);
            if header.rsv {
                return Err(protocol_error("reserved bits set without an extension"));
            }
            if matches!(
                header.opcode,
                OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_))
            ) {
                return Err(protocol_error("reserved opcode"));
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
                let so_far = self.message.as_ref().map_or(0, |m| m.1.len());
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
                self.spare = false;
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
                    self.message = Some(Box::new((kind, payload)));
                }
                OpCode::Data(Data::Continue) => {
                    let Some(so_far) = &mut self.message else {
                        return Err(protocol_error("continuation frame outside a message"));
                    };
                    so_far.1.extend_from_slice(&payload);
                    if header.is_final {
                        if let Some(done) = self.message.take() {
                            let (kind, payload) = *done;
                            return message(kind, payload).map(Some);
                        }
                    }
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
    /// Let go of the (empty) buffer: back to the thread's spare if it is one.
    fn release_buf(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if std::mem::take(&mut self.spare) {
            read_spare::give_back(buf);
        }
    }

    /// Let go of the buffer and whatever it still holds.
    fn drop_buf(&mut self) {
        self.buf.clear();
        self.release_buf();
    }

    /// End the stream (after `e`, which is returned).
    fn fail(&mut self, e: TransportError) -> TransportError {
        self.ended = true;
        self.drop_buf();
        self.message = None;
        e
    }
}

#[cold]
#[inline(never)]
fn protocol_error(what: &str) -> TransportError {
    TransportError::Other(format!("WebSocket protocol error: {what}"))
}

/// XOR the client's masking key into `payload` (RFC 6455 §5.3).
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    // Sixteen bytes at a time: the key four times (the compiler keeps this in vector
    // registers).
    let key: [u8; 16] = std::array::from_fn(|i| mask[i % 4]);
    let mut chunks = payload.chunks_exact_mut(16);
    for chunk in &mut chunks {
        for (b, k) in chunk.iter_mut().zip(key) {
            *b ^= k;
        }
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(key) {
        *b ^= k;
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
    /// Encoded headers and small payloads, in order; the large payloads go between
    /// them at the offsets `large` records.
    small: Vec<u8>,
    /// Bytes at the start of `small` already written.
    written: usize,
    /// Large payloads, written from their own bytes, each before `small[offset..]`.
    large: VecDeque<(usize, Bytes)>,
    /// Bytes fed and not yet written.
    queued: usize,
    shut_down: bool,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer of server frames to `io`.
    pub fn new(io: W) -> Self {
        Self {
            io,
            small: Vec::new(),
            written: 0,
            large: VecDeque::new(),
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
        let (head, head_len) = header(opcode, len);
        let copied = if len <= COPY_MAX { len } else { 0 };
        if self.small.capacity() == 0 {
            self.small = spare::take();
            self.small.reserve(SMALL_FIRST.max(head_len + copied));
        }
        self.small.extend_from_slice(&head[..head_len]);
        self.queued += head_len + len;
        if len <= COPY_MAX {
            self.small.extend_from_slice(&payload);
        } else {
            self.large.push_back((self.small.len(), payload));
        }
    }

    /// Write everything queued.
    fn poll_write_out(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        while self.queued > 0 {
            let n = if self.large.is_empty() {
                ready!(Pin::new(&mut self.io).poll_write(cx, &self.small[self.written..]))?
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                let mut at = self.written;
                let mut all = true;
                for (offset, payload) in &self.large {
                    if count + 2 > MAX_IOVECS {
                        // The rest goes in the next write (small bytes after a large
                        // payload not listed here must wait for it).
                        all = false;
                        break;
                    }
                    if *offset > at {
                        slices[count] = IoSlice::new(&self.small[at..*offset]);
                        count += 1;
                        at = *offset;
                    }
                    slices[count] = IoSlice::new(payload);
                    count += 1;
                }
                if all && at < self.small.len() {
                    slices[count] = IoSlice::new(&self.small[at..]);
                    count += 1;
                }
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.queued -= n;
            self.consume(n);
        }
        // Written: hold nothing while idle (the buffer goes back to the thread's spare).
        spare::give_back(std::mem::take(&mut self.small));
        self.written = 0;
        self.large = VecDeque::new();
        Poll::Ready(Ok(()))
    }

    /// `n` bytes were written: move past them, in order.
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let end = self.large.front().map_or(self.small.len(), |(o, _)| *o);
            if self.written < end {
                let k = n.min(end - self.written);
                self.written += k;
                n -= k;
                continue;
            }
            let Some((_, payload)) = self.large.front_mut() else {
                break;
            };
            let k = n.min(payload.len());
            payload.advance(k);
            n -= k;
            if payload.is_empty() {
                self.large.pop_front();
            }
        }
    }
}

/// One spare write buffer per thread: a writer that starts encoding takes it, and gives
/// it back when its flush completed, so a busy thread encodes every connection's
/// frames into the same warm buffer (no allocation and no regrowth per flush), while an
/// idle connection holds no buffer. At most 64 KiB are kept per thread.
mod spare {
    use std::cell::Cell;

    /// The largest buffer kept as a thread's spare.
    pub(super) const SPARE_MAX: usize = 64 * 1024;

    thread_local! {
        static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    }

    /// The thread's spare buffer (empty, possibly without capacity).
    pub(super) fn take() -> Vec<u8> {
        SPARE.try_with(Cell::take).unwrap_or_default()
    }

    /// Keep `buf` as the thread's spare, unless it is too large or one is kept already.
    pub(super) fn give_back(mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > SPARE_MAX {
            return;
        }
        buf.clear();
        let _ = SPARE.try_with(|s| {
            let kept = s.take();
            s.set(if kept.capacity() >= buf.capacity() {
                kept
            } else {
                buf
            });
        });
    }
}

/// One spare read buffer per thread: a reader that receives bytes while it holds no
/// buffer takes it, and gives it back when the socket has nothing more to read, so a busy
/// thread reads every connection's frames into the same allocation while an idle
/// connection holds none. The frames handed out share it (zero-copy): it is reused only
/// once all of them are gone (`BytesMut::try_reclaim`), else the reader allocates a
/// fresh one and the frames free the old one with the last of them. A spare is kept only
/// up to [`read_spare::KEEP_MAX`] bytes, so a payload a handler holds keeps at most
/// that much (or its own read) allocated.
mod read_spare {
    use std::cell::Cell;

    use bytes::BytesMut;

    /// The largest buffer kept as a thread's spare.
    pub(super) const KEEP_MAX: usize = 4 * 1024;
    /// The smallest buffer allocated for a read: most reads of a busy connection then
    /// fit the spare that the previous one left.
    pub(super) const FRESH_MIN: usize = 2 * 1024;

    thread_local! {
        pub(super) static SPARE: Cell<Option<BytesMut>> = const { Cell::new(None) };
    }

    /// An empty buffer with room for `n` bytes: the thread's spare when nothing else
    /// uses its bytes any more and it is large enough, else a new one.
    pub(super) fn take(n: usize) -> BytesMut {
        if let Some(mut buf) = SPARE.try_with(Cell::take).ok().flatten() {
            if buf.try_reclaim(n) {
                return buf;
            }
        }
        BytesMut::with_capacity(n.max(FRESH_MIN))
    }

    /// Keep `buf` (empty, allocated at most [`KEEP_MAX`] bytes) as the thread's spare.
    pub(super) fn give_back(buf: BytesMut) {
        debug_assert!(buf.is_empty());
        let _ = SPARE.try_with(|s| s.set(Some(buf)));
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

    /// The text of a frame the reader returned, and where its bytes are.
    fn text_at(frame: Option<Result<WsFrame, TransportError>>) -> (String, usize) {
        match frame {
            Some(Ok(WsFrame::Text(t))) => (t.as_str().to_owned(), t.as_bytes().as_ptr() as usize),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn readers_on_one_thread_read_into_one_buffer() {
        let (mut client_a, server_a) = tokio::io::duplex(1 << 16);
        let (mut client_b, server_b) = tokio::io::duplex(1 << 16);
        let mut a = FrameReader::new(server_a, 1 << 20);
        let mut b = FrameReader::new(server_b, 1 << 20);
        let hello = client_frame(0x81, b"hello");
        client_a.write_all(&hello).await.unwrap();
        let (text, at) = text_at(a.next().await);
        assert_eq!(text, "hello");
        // A has nothing more: its buffer goes back to the thread.
        assert!(futures::poll!(a.next()).is_pending());
        assert_eq!(a.buf.capacity(), 0);
        // B's read goes into the same buffer, after A's frame.
        client_b
            .write_all(&client_frame(0x81, b"world"))
            .await
            .unwrap();
        let world = b.next().await;
        let b_at = at + hello.len();
        assert!(
            matches!(&world, Some(Ok(WsFrame::Text(t))) if t.as_bytes().as_ptr() as usize == b_at)
        );
        assert!(futures::poll!(b.next()).is_pending());
        // So does A's next one, and B's frame, still held, is left intact.
        client_a
            .write_all(&client_frame(0x81, b"again"))
            .await
            .unwrap();
        let (again, at_again) = text_at(a.next().await);
        assert_eq!(again, "again");
        assert_eq!(at_again, b_at + hello.len());
        assert_eq!(text_at(world).0, "world");
    }

    #[tokio::test]
    async fn the_spare_is_reused_from_its_start_once_its_frames_are_gone() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut reader = FrameReader::new(server, 1 << 20);
        let mut read = async |len: usize| {
            client
                .write_all(&client_frame(0x81, &vec![b'x'; len]))
                .await
                .unwrap();
            let frame = reader.next().await;
            assert!(futures::poll!(reader.next()).is_pending());
            frame
        };
        // 1508 bytes of a fresh 2 KiB buffer; the frame is dropped.
        let (_, first) = text_at(read(1500).await);
        // 1008 bytes do not fit behind it: the buffer is reclaimed, read from its start.
        let held = read(1000).await;
        let (_, at) = text_at(held.clone());
        assert_eq!(at, first);
        // Behind the held frame while there is room,
        let held_too = read(1000).await;
        let (_, at) = text_at(held_too.clone());
        assert_eq!(at, first + 1008);
        // then a new buffer: the held frames keep theirs, intact.
        let (text, at) = text_at(read(1000).await);
        assert_eq!(text.len(), 1000);
        assert!(at < first || at >= first + read_spare::FRESH_MIN);
        for frame in [held, held_too] {
            assert_eq!(text_at(frame).0, "x".repeat(1000));
        }
    }

    #[tokio::test]
    async fn a_large_read_is_not_kept_as_the_spare() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut reader = FrameReader::new(server, 1 << 20);
        let big = vec![b'x'; read_spare::KEEP_MAX + 100];
        client.write_all(&client_frame(0x81, &big)).await.unwrap();
        let (text, _) = text_at(reader.next().await);
        assert_eq!(text.len(), big.len());
        assert!(futures::poll!(reader.next()).is_pending());
        assert_eq!(reader.buf.capacity(), 0);
        let kept = read_spare::SPARE.with(|s| s.take());
        assert!(kept.is_none(), "a buffer above KEEP_MAX was kept: {kept:?}");
        // A small read is kept (and the next one reuses it).
        client
            .write_all(&client_frame(0x81, b"small"))
            .await
            .unwrap();
        assert_eq!(text_at(reader.next().await).0, "small");
        assert!(futures::poll!(reader.next()).is_pending());
        let kept = read_spare::SPARE.with(|s| s.take());
        assert!(kept.is_some_and(|mut b| b.try_reclaim(read_spare::FRESH_MIN)));
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

    #[tokio::test]
    async fn partial_writes_keep_small_and_large_frames_in_order() {
        // A pipe of 1000 bytes: every write is partial; more large payloads than one
        // vectored write takes.
        let (client, server) = tokio::io::duplex(1000);
        let (mut client_read, _client_write) = tokio::io::split(client);
        let mut writer = FrameWriter::new(server);
        let mut expected = Vec::new();
        let frames: Vec<Bytes> = (0..150)
            .map(|i| {
                let len = if i % 3 == 0 { 1500 + i } else { 10 + i };
                Bytes::from(vec![b'a' + (i % 26) as u8; len])
            })
            .collect();
        for f in &frames {
            let (head, n) = header(0x2, f.len());
            expected.extend_from_slice(&head[..n]);
            expected.extend_from_slice(f);
        }
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            client_read.read_to_end(&mut got).await.unwrap();
            got
        });
        for f in &frames {
            writer.feed(WsFrame::Binary(f.clone())).await.unwrap();
        }
        writer.close().await.unwrap();
        assert_eq!(writer.queued(), 0);
        assert!(writer.large.is_empty() && writer.small.capacity() == 0);
        drop(writer);
        let got = reading.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes out of order");
    }

    #[test]
    fn frame_headers_parse_like_tungstenite() {
        let cases: Vec<Vec<u8>> = vec![
            client_frame(0x81, b"hi"),
            client_frame(0x01, &[7; 126]),
            client_frame(0x82, &[1; 70_000]),
            client_frame(0x89, b""),
            vec![0x81, 0x05, b'h'],
            vec![0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4],
        ];
        for bytes in cases {
            for cut in 0..bytes.len().min(16) {
                let part = &bytes[..cut];
                let theirs = tungstenite::protocol::frame::FrameHeader::parse(
                    &mut std::io::Cursor::new(part),
                )
                .unwrap()
                .map(|(h, len)| {
                    (
                        h.is_final,
                        h.rsv1 || h.rsv2 || h.rsv3,
                        h.opcode,
                        h.mask,
                        len,
                    )
                });
                let ours = Head::parse(part).map(|h| (h.is_final, h.rsv, h.opcode, h.mask, h.len));
                assert_eq!(ours, theirs, "{part:?}");
                if let Some(h) = Head::parse(part) {
                    let mut cursor = std::io::Cursor::new(part);
                    tungstenite::protocol::frame::FrameHeader::parse(&mut cursor).unwrap();
                    assert_eq!(h.head_len as u64, cursor.position());
                }
            }
        }
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

    #[test]
    fn unmasking_every_length_matches_the_definition() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..40 {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut payload: Vec<u8> = plain
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            unmask(&mut payload, mask);
            assert_eq!(payload, plain, "length {len}");
        }
    }

    /// The future spawned per connection is what an idle connection costs the most
    /// (see BENCHMARKS.md, idle memory): tokio allocates a task as its future plus 104
    /// bytes, rounded up to 128, so up to 792 bytes make an 896-byte task.
    #[test]
    fn a_connection_task_fits_in_896_bytes() {
        struct Nobody;
        impl zocket_core::Context for Nobody {
            type Headers = serde_json::Value;
            type State = ();
            async fn connect(
                _: zocket_core::Connect<'_, Self>,
            ) -> Result<Self, zocket_core::Reject> {
                Ok(Nobody)
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let server = zocket_core::Server::new(zocket_core::Router::<Nobody>::new());
            let accepted = server
                .handshake(zocket_core::HandshakeRequest::default())
                .await
                .unwrap();
            let on_upgrade = hyper::upgrade::on(http::Request::new(()));
            let fut = serve_upgrade(accepted, on_upgrade, 1 << 20);
            let size = std::mem::size_of_val(&fut);
            println!("size_of serve_upgrade future = {size} B");
            assert!(size <= 792, "{size} B");
        });
    }
}
