//! End-to-end tests of the connection engine over real sockets, on both adapters,
//! written as a client sees them (issue 7):
//!
//! - a client that reads promptly and pipelines 5000 `greet` and 1000 `echo.ping` calls
//!   gets every answer exactly once and is never closed (backpressure, not 1013);
//! - a client that floods bad frames *while still sending* receives close 1008 with its
//!   reason (the closing handshake: the server keeps reading until the client's close);
//! - an oversize message followed by more frames receives 1009;
//! - (a client that pings and never reads is closed, and the server's memory stays
//!   bounded: `examples/reference/tests/binaries/engine_memory.rs`, on the binary's `VmRSS`;)
//! - a room member that never reads is closed with 1013 while the other members get
//!   every event.
//!
//! Every wait is on an event (a frame, a close, a failed write, a counter), bounded by
//! [`WAIT`]; no test sleeps to wait for a state change.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use zocket_core::{Server, ServerConfig};
use zocket_examples::reference::{self, RefCtx};
use zocket_tests::support::{Ended, Harness, RawClient, WAIT};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Ws, Message>;
type Frames = SplitStream<Ws>;

/// Connect, read the `__welcome` frame, and split the socket so that one task can write
/// while another reads.
async fn connect(addr: SocketAddr, query: &str) -> (Sink, Frames) {
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/?{query}")),
    )
    .await
    .expect("connect in time")
    .expect("the handshake is accepted");
    let (sink, mut frames) = ws.split();
    let welcome = next_json(&mut frames).await;
    assert_eq!(welcome["type"], "__welcome", "{welcome}");
    (sink, frames)
}

/// What the client reads next: a text frame as JSON, or how the connection ended.
enum Read {
    Frame(Value),
    Ended(Ended),
}

async fn read(frames: &mut Frames) -> Read {
    loop {
        let msg = tokio::time::timeout(WAIT, frames.next())
            .await
            .unwrap_or_else(|_| panic!("nothing read within {WAIT:?}"));
        return match msg {
            Some(Ok(Message::Text(text))) => Read::Frame(
                serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}")),
            ),
            Some(Ok(Message::Close(Some(close)))) => Read::Ended(Ended::Close(
                u16::from(close.code),
                close.reason.to_string(),
            )),
            Some(Ok(Message::Close(None))) => Read::Ended(Ended::CloseWithoutCode),
            Some(Ok(_)) => continue,
            Some(Err(e)) => Read::Ended(Ended::Dropped(e.to_string())),
            None => Read::Ended(Ended::Dropped("end of stream".into())),
        };
    }
}

async fn next_json(frames: &mut Frames) -> Value {
    match read(frames).await {
        Read::Frame(frame) => frame,
        Read::Ended(ended) => panic!("the connection ended: {ended:?}"),
    }
}

/// Read until the connection ends; returns how, and how many text frames came first.
/// After a close frame, keeps polling as a real client does (so that tungstenite sends
/// its close reply) until the server ends the TCP connection.
async fn read_until_end(frames: &mut Frames) -> (Ended, usize) {
    let mut count = 0;
    loop {
        match read(frames).await {
            Read::Frame(_) => count += 1,
            Read::Ended(ended) => {
                let _ =
                    tokio::time::timeout(WAIT, async { while frames.next().await.is_some() {} })
                        .await;
                return (ended, count);
            }
        }
    }
}

/// Send `first` frames back to back, then keep sending (one frame, one flush at a time)
/// until `stop` is set or a send fails (the client saw the close). Returns how many
/// frames were sent.
fn keep_sending(
    mut sink: Sink,
    first: Vec<String>,
    then: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut sent = 0u64;
        for text in first {
            if sink.feed(Message::text(text)).await.is_err() {
                return sent;
            }
            sent += 1;
        }
        if sink.flush().await.is_err() {
            return sent;
        }
        while !stop.load(Ordering::Relaxed) && sent < 1_000_000 {
            if sink.send(Message::text(then.clone())).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    })
}

// ---------------------------------------------------------------------------------
// (a) A burst of pipelined calls from a client that reads: backpressure, no close.
// ---------------------------------------------------------------------------------

const GREETS: usize = 5000;
const PINGS: usize = 1000;

async fn pipelined_burst_is_answered_exactly_once<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(Server::new(reference::router())).await;
    let (mut sink, mut frames) =
        connect(app.addr().expect("about sockets"), "userName=burst").await;

    let writer = tokio::spawn(async move {
        for i in 0..GREETS {
            let frame = json!({"type": "greet", "payload": {"name": format!("n{i}")}, "rpcId": format!("g{i}")});
            sink.feed(Message::text(frame.to_string())).await.unwrap();
        }
        for i in 0..PINGS {
            let frame = json!({"type": "echo.ping", "payload": {"message": format!("p{i}")}, "rpcId": format!("e{i}")});
            sink.feed(Message::text(frame.to_string())).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink
    });

    // Read everything while the writer is still sending.
    let mut greets = vec![0u32; GREETS];
    let mut replies = vec![0u32; PINGS];
    let mut pongs = vec![0u32; PINGS];
    for _ in 0..GREETS + 2 * PINGS {
        let frame = match read(&mut frames).await {
            Read::Frame(frame) => frame,
            Read::Ended(ended) => panic!(
                "closed during the burst ({ended:?}) after {} replies",
                greets.iter().sum::<u32>()
            ),
        };
        let index = |prefix: &str, s: &str| -> usize {
            s.strip_prefix(prefix)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected id in {frame}"))
        };
        match (frame["type"].as_str(), frame["rpcId"].as_str()) {
            (Some("__rpc_res"), Some(id)) if id.starts_with('g') => {
                let i = index("g", id);
                assert_eq!(frame["payload"], format!("Hello, n{i}!"), "{frame}");
                greets[i] += 1;
            }
            (Some("__rpc_res"), Some(id)) if id.starts_with('e') => {
                replies[index("e", id)] += 1;
            }
            (Some("echo.pong"), None) => {
                let reply = frame["payload"]["reply"].as_str().unwrap_or_default();
                pongs[index("pong: p", reply)] += 1;
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
    assert!(greets.iter().all(|&n| n == 1), "every greet answered once");
    assert!(
        replies.iter().all(|&n| n == 1),
        "every echo.ping answered once"
    );
    assert!(pongs.iter().all(|&n| n == 1), "every echo.pong sent once");

    // Nothing more came: the next frame is the answer to a new call, and the connection
    // is open.
    let mut sink = tokio::time::timeout(WAIT, writer)
        .await
        .expect("the writer finished")
        .unwrap();
    let after = json!({"type": "greet", "payload": {"name": "after"}, "rpcId": "after"});
    sink.send(Message::text(after.to_string())).await.unwrap();
    let frame = next_json(&mut frames).await;
    assert_eq!(frame["rpcId"], "after", "{frame}");
    assert_eq!(frame["payload"], "Hello, after!");
    let stats = app.stats();
    assert_eq!(stats.slow_consumer_closes, 0, "{stats:?}");
    assert_eq!(stats.connections_open, 1, "{stats:?}");
}

// ---------------------------------------------------------------------------------
// (b), (c) Close codes reach a client that is still sending.
// ---------------------------------------------------------------------------------

async fn bad_frame_flood_while_sending_gets_1008<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(Server::new(reference::router())).await;
    let (sink, mut frames) = connect(app.addr().expect("about sockets"), "userName=flood").await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_sending(
        sink,
        vec!["not json".to_owned(); 1500],
        "still not json".to_owned(),
        stop.clone(),
    );
    let (ended, errors) = read_until_end(&mut frames).await;
    stop.store(true, Ordering::Relaxed);
    assert_eq!(ended, Ended::Close(1008, "too many protocol errors".into()));
    let limit = ServerConfig::default().protocol_errors.max as usize;
    assert!(errors >= limit, "{errors} error frames before the close");
    // The client stops sending once it has read the close frame.
    let sent = tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    assert!(
        sent > limit as u64,
        "the client was still sending: {sent} frames"
    );
    app.wait_stats("the flood close", |s| {
        s.flood_closes == 1 && s.connections_open == 0
    })
    .await;
}

async fn oversize_message_then_more_frames_gets_1009<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(Server::new(reference::router())).await;
    let (sink, mut frames) = connect(app.addr().expect("about sockets"), "userName=big").await;
    let limit = ServerConfig::default().max_message_bytes;
    let big = json!({"type": "bench.echo", "payload": "y".repeat(limit + 1)}).to_string();
    let greet = json!({"type": "greet", "payload": {"name": "x"}, "rpcId": "1"}).to_string();
    let mut first = vec![big];
    first.extend(std::iter::repeat_n(greet.clone(), 200));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_sending(sink, first, greet, stop.clone());
    let (ended, _) = read_until_end(&mut frames).await;
    stop.store(true, Ordering::Relaxed);
    assert_eq!(ended, Ended::Close(1009, "message too big".into()));
    let sent = tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    assert!(sent > 1, "frames followed the oversize one: {sent} frames");
    app.wait_stats("the oversize close", |s| {
        s.oversize_closes == 1 && s.connections_open == 0
    })
    .await;
}

// ---------------------------------------------------------------------------------
// (e) A room member that never reads: 1013, while the others get every event.
// ---------------------------------------------------------------------------------

async fn never_reading_member_gets_1013_others_get_everything<H: Harness<Ctx = RefCtx>>() {
    let config = ServerConfig::default()
        .heartbeat(zocket_core::Heartbeat::disabled())
        // Long enough that the slow member still finds the close frame once it reads.
        .close_timeout(Duration::from_secs(60));
    let app = H::start(Server::builder(reference::router()).config(config).build()).await;
    let mut slow =
        RawClient::connect_small_buffer(app.addr().expect("about sockets"), "userName=slow").await;
    let mut members = vec![
        app.client("userName=r1").await,
        app.client("userName=r2").await,
    ];
    let mut sender = app.client("userName=sender").await;
    slow.ok("rooms.join", json!({"roomId": "firehose"})).await;
    slow.event("rooms.joined").await;
    for i in 0..members.len() {
        members[i]
            .ok("rooms.join", json!({"roomId": "firehose"}))
            .await;
        slow.event("rooms.joined").await;
        for member in members.iter_mut().take(i + 1) {
            member.event("rooms.joined").await;
        }
    }

    // Each member reads every tick in a task of its own, until the last one.
    let readers: Vec<_> = members
        .into_iter()
        .map(|mut member| {
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                loop {
                    let tick = member.event("bench.tick").await;
                    seqs.push(tick["seq"].as_u64().unwrap());
                    if tick["last"] == true {
                        return seqs;
                    }
                }
            })
        })
        .collect();

    // `slow` reads nothing from now on: ticks of 32 KiB until the budget cuts it off.
    let pad = "p".repeat(32 * 1024);
    let mut seq = 0u64;
    while app.stats().slow_consumer_closes == 0 {
        assert!(seq < 20_000, "never cut off: {:?}", app.stats());
        let tick = json!({"roomId": "firehose", "seq": seq, "pad": pad});
        sender.ok("bench.fanout", tick).await;
        seq += 1;
    }
    for _ in 0..20 {
        let tick = json!({"roomId": "firehose", "seq": seq, "pad": pad});
        sender.ok("bench.fanout", tick).await;
        seq += 1;
    }
    let last = json!({"roomId": "firehose", "seq": seq, "last": true});
    sender.ok("bench.fanout", last).await;
    for reader in readers {
        let seqs = tokio::time::timeout(WAIT * 3, reader)
            .await
            .expect("a member gets every tick")
            .unwrap();
        assert_eq!(seqs, (0..=seq).collect::<Vec<_>>(), "every tick, in order");
    }
    assert_eq!(app.stats().slow_consumer_closes, 1);

    // Reading at last, the slow member finds what got through, then the 1013.
    let (ended, frames) = slow.ended().await;
    assert_eq!(
        ended,
        Ended::Close(1013, "slow consumer: outbound queue full".into())
    );
    assert!(frames.len() < seq as usize, "it did not get everything");
    let other = frames.iter().find(|f| f["type"] != "bench.tick");
    assert!(other.is_none(), "only ticks, got {other:?}");
    // The slow member's close completed (the members, done reading, are gone too).
    app.wait_stats("only the sender left", |s| s.connections_open == 1)
        .await;
}

zocket_tests::scenarios!(RefCtx;
    all: [],
    sockets: [
        pipelined_burst_is_answered_exactly_once,
        bad_frame_flood_while_sending_gets_1008,
        oversize_message_then_more_frames_gets_1009,
        never_reading_member_gets_1013_others_get_everything,
    ],
);
