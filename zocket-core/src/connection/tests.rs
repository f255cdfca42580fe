//! The state machine in virtual time: every instant is explicit.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::*;
use crate::ids::ClientId;
use crate::protocol::CloseFrame;
use crate::server::SlowConsumerPolicy;
use crate::stats::Stats;

const S: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn settings() -> Settings {
    Settings {
        max_message_bytes: 1 << 20,
        max_in_flight: 4,
        heartbeat: None,
        flood: Flood {
            max: 100,
            window: 10 * S,
        },
        rate: None,
        close_timeout: 5 * S,
        shutdown_grace: 10 * S,
    }
}

struct T {
    m: Connection,
    out: Outbound,
    stats: Arc<Stats>,
    t0: Instant,
}

impl T {
    fn new(budget: usize, settings: Settings) -> Self {
        Self::with_replies(budget, settings, PingReplies::Transport)
    }

    fn with_replies(budget: usize, settings: Settings, replies: PingReplies) -> Self {
        let stats = Arc::new(Stats::default());
        let out = Outbound::new(
            ClientId::from("c"),
            Budget {
                bytes: budget,
                pushed_frames: 1000,
                policy: SlowConsumerPolicy::Close,
            },
            stats.clone(),
        );
        let t0 = Instant::now();
        Self {
            m: Connection::new(out.clone(), Arc::new(settings), replies, t0),
            out,
            stats,
            t0,
        }
    }

    fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    /// Everything the machine writes now, flushing as it asks; `flush: false` leaves the
    /// last flush hanging (a stuck socket).
    fn write(&mut self, now: Instant, flush: bool) -> Vec<WsFrame> {
        let mut written = Vec::new();
        loop {
            while let Some(f) = self.m.poll_transmit() {
                written.push(f);
            }
            if !self.m.wants_flush() {
                return written;
            }
            self.m.on_flush_start();
            if !flush {
                return written;
            }
            self.m.on_flushed(now);
        }
    }

    fn read(&mut self, now: Instant, frame: WsFrame) -> Option<Text> {
        self.m.on_read(now, Some(Ok(frame)))
    }

    fn own(&self, n: usize, len: usize) {
        for _ in 0..n {
            self.out.push_own(Text::from("x".repeat(len)));
        }
    }

    fn stat(&self, f: impl Fn(&Stats) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.stats).load(Relaxed)
    }
}

fn text(s: &str) -> WsFrame {
    WsFrame::Text(Text::from(s))
}

fn close_of(frames: &[WsFrame]) -> Option<CloseFrame> {
    frames.iter().find_map(|f| match f {
        WsFrame::Close(c) => c.clone(),
        _ => None,
    })
}

fn texts(frames: &[WsFrame]) -> usize {
    frames
        .iter()
        .filter(|f| matches!(f, WsFrame::Text(_)))
        .count()
}

// ---- writer: batching and accounting ----

#[test]
fn frames_are_batched_and_released_when_flushed() {
    let mut t = T::new(1 << 20, settings());
    t.own(100, 10);
    let mut batch = Vec::new();
    while let Some(f) = t.m.poll_transmit() {
        batch.push(f);
    }
    assert_eq!(
        batch.len(),
        MAX_BATCH_FRAMES as usize,
        "one batch, then a flush"
    );
    assert!(t.m.wants_flush());
    t.m.on_flush_start();
    assert!(
        t.m.poll_transmit().is_none(),
        "nothing is fed while flushing"
    );
    assert_eq!(
        t.out.shared.charged(),
        100 * outbound::cost(10),
        "charged until flushed"
    );
    t.m.on_flushed(t.t0);
    assert_eq!(t.out.shared.charged(), 36 * outbound::cost(10));
    assert_eq!(texts(&t.write(t.t0, true)), 36);
    assert_eq!(t.out.shared.charged(), 0);
    assert!(!t.m.wants_flush());
}

#[test]
fn a_batch_stops_at_its_byte_limit() {
    let mut t = T::new(1 << 20, settings());
    t.own(4, 40 * 1024);
    let mut n = 0;
    while t.m.poll_transmit().is_some() {
        n += 1;
    }
    assert_eq!(n, 2, "64 KiB per batch, exceeded by one frame at most");
}

// ---- backpressure ----

#[test]
fn own_frames_over_the_budget_pause_reading_until_the_writer_drains() {
    let mut t = T::new(4096, settings());
    assert!(t.m.wants_read());
    // The replies of a pipelined burst: over the budget, all kept.
    t.own(100, 100);
    assert!(!t.m.wants_read(), "reading pauses");
    assert!(!t.m.wants_read());
    assert_eq!(t.stat(|s| &s.read_pauses), 1, "one pause counted once");
    assert!(t.m.reason().is_none(), "never a close");
    // A stuck flush keeps it paused.
    let first = t.write(t.t0, false);
    assert_eq!(texts(&first), 64);
    assert!(!t.m.wants_read());
    t.m.on_flushed(t.t0);
    let rest = t.write(t.t0, true);
    assert_eq!(texts(&rest), 36, "nothing dropped");
    assert!(t.m.wants_read(), "drained: reading resumes");
    assert_eq!(t.stat(|s| &s.frames_dropped), 0);
}

#[test]
fn pushed_events_over_the_budget_close_1013_without_writing_the_rest() {
    let mut t = T::new(4096, settings());
    for i in 0..100 {
        t.out.push(Text::from(format!("event {i}")));
    }
    assert_eq!(t.stat(|s| &s.slow_consumer_closes), 1);
    let reason = t.out.shared.take_close_request().unwrap();
    assert_eq!(reason, CloseReason::SlowConsumer);
    t.m.close(t.t0, reason);
    let frames = t.write(t.t0, true);
    assert_eq!(texts(&frames), 0, "a slow consumer's queue is dropped");
    assert_eq!(close_of(&frames).unwrap().code, 1013);
    assert_eq!(t.out.shared.charged(), 0);
}

#[test]
fn the_in_flight_limit_pauses_reading() {
    let mut t = T::new(1 << 20, settings());
    for _ in 0..4 {
        assert!(t.m.wants_read());
        t.m.on_handler_started();
    }
    assert!(!t.m.wants_read());
    t.m.on_handler_finished(t.t0);
    assert!(t.m.wants_read());
}

// ---- pings and pongs ----

#[test]
fn a_peer_that_pings_and_never_reads_fills_the_budget_and_reading_pauses() {
    let mut t = T::new(64 * 1024, settings());
    let mut read = 0;
    while t.m.wants_read() && read < 1_000_000 {
        t.read(t.t0, WsFrame::Ping(Bytes::from_static(b"12345678")));
        read += 1;
        // The transport answers; the engine asks for a flush, which never completes.
        t.write(t.t0, false);
    }
    assert!(read < 2000, "paused after {read} pings");
    assert!(t.out.shared.charged() >= 64 * 1024);
}

#[test]
fn pongs_of_the_transport_are_released_by_the_next_flush() {
    let mut t = T::new(64 * 1024, settings());
    t.read(t.t0, WsFrame::Ping(Bytes::new()));
    assert!(t.m.wants_flush(), "the transport's pong must leave");
    assert!(
        t.write(t.t0, true).is_empty(),
        "the engine writes no pong itself"
    );
    assert_eq!(t.out.shared.charged(), 0);
}

#[test]
fn the_engine_answers_the_latest_ping_when_asked_to() {
    let mut t = T::with_replies(64 * 1024, settings(), PingReplies::Engine);
    t.read(t.t0, WsFrame::Ping(Bytes::from_static(b"a")));
    t.read(t.t0, WsFrame::Ping(Bytes::from_static(b"b")));
    let frames = t.write(t.t0, true);
    assert_eq!(frames, vec![WsFrame::Pong(Bytes::from_static(b"b"))]);
    assert_eq!(t.out.shared.charged(), 0);
}

// ---- heartbeat ----

fn heartbeat() -> Settings {
    Settings {
        heartbeat: Some(Timing {
            interval: 10 * S,
            timeout: 5 * S,
        }),
        ..settings()
    }
}

#[test]
fn heartbeat_pings_and_a_pong_keeps_the_connection() {
    let mut t = T::new(1 << 20, heartbeat());
    assert_eq!(t.m.poll_timeout(), Some(t.at(10 * S)));
    t.m.handle_timeout(t.at(10 * S));
    let frames = t.write(t.at(10 * S), true);
    assert_eq!(frames, vec![WsFrame::Ping(Bytes::new())]);
    assert_eq!(t.m.poll_timeout(), Some(t.at(15 * S)));
    t.read(t.at(11 * S), WsFrame::Pong(Bytes::new()));
    t.m.handle_timeout(t.at(15 * S));
    assert!(t.m.reason().is_none());
    assert_eq!(t.m.poll_timeout(), Some(t.at(20 * S)));
}

#[test]
fn heartbeat_without_pong_drops_without_a_close_frame() {
    let mut t = T::new(1 << 20, heartbeat());
    t.m.handle_timeout(t.at(10 * S));
    t.write(t.at(10 * S), true);
    t.m.handle_timeout(t.at(15 * S) - MS);
    assert!(t.m.reason().is_none());
    t.m.handle_timeout(t.at(15 * S));
    assert!(t.m.is_done());
    assert_eq!(t.m.reason(), Some(&CloseReason::HeartbeatTimeout));
    assert!(t.write(t.at(15 * S), true).is_empty());
    assert_eq!(t.stat(|s| &s.heartbeat_timeouts), 1);
}

#[test]
fn heartbeat_drops_a_peer_that_only_pings_even_while_its_buffers_take_our_writes() {
    let mut t = T::with_replies(1 << 20, heartbeat(), PingReplies::Engine);
    t.m.handle_timeout(t.at(10 * S));
    t.write(t.at(10 * S), true);
    for i in 0..1000u32 {
        let now = t.at(10 * S) + MS * (i * 4);
        t.read(now, WsFrame::Ping(Bytes::new()));
        t.write(now, true); // its kernel buffers still take our pongs
    }
    t.m.handle_timeout(t.at(15 * S));
    assert_eq!(t.m.reason(), Some(&CloseReason::HeartbeatTimeout));
}

#[test]
fn heartbeat_counts_a_message_read_after_the_ping_as_an_answer() {
    // The server may be busy with the peer's backlog; its pong is behind its messages.
    let mut t = T::new(1 << 20, heartbeat());
    t.m.handle_timeout(t.at(10 * S));
    t.write(t.at(10 * S), true);
    assert!(t.read(t.at(14 * S), text("{}")).is_some());
    t.m.handle_timeout(t.at(15 * S));
    assert!(t.m.reason().is_none());
}

#[test]
fn heartbeat_ping_owed_during_a_stuck_write_drops_the_connection_in_time() {
    let mut t = T::new(1 << 20, heartbeat());
    t.own(10, 10);
    assert_eq!(texts(&t.write(t.t0, false)), 10, "the flush hangs");
    t.m.handle_timeout(t.at(10 * S));
    assert!(
        t.m.poll_transmit().is_none(),
        "the ping waits for the flush"
    );
    // A pong sent unasked does not count: the ping never left.
    t.read(t.at(12 * S), WsFrame::Pong(Bytes::new()));
    t.m.handle_timeout(t.at(15 * S));
    assert_eq!(t.m.reason(), Some(&CloseReason::HeartbeatTimeout));
}

#[test]
fn heartbeat_ping_owed_during_a_stuck_write_goes_first_when_it_completes() {
    let mut t = T::new(1 << 20, heartbeat());
    t.own(10, 10);
    t.write(t.t0, false);
    t.m.handle_timeout(t.at(10 * S));
    t.own(1, 10);
    t.m.on_flushed(t.at(12 * S));
    let frames = t.write(t.at(12 * S), true);
    assert_eq!(frames[0], WsFrame::Ping(Bytes::new()), "{frames:?}");
    assert_eq!(texts(&frames), 1);
    // The full timeout from the moment the ping left.
    assert_eq!(t.m.poll_timeout(), Some(t.at(17 * S)));
}

// ---- limits ----

#[test]
fn flood_of_protocol_errors_closes_1008_after_the_error_frames() {
    let mut t = T::new(
        1 << 20,
        Settings {
            flood: Flood {
                max: 3,
                window: 10 * S,
            },
            ..settings()
        },
    );
    for _ in 0..4 {
        t.read(t.t0, WsFrame::Binary(Bytes::from_static(b"\x01")));
    }
    assert_eq!(t.stat(|s| &s.flood_closes), 1);
    assert_eq!(t.stat(|s| &s.protocol_errors), 4);
    let frames = t.write(t.t0, true);
    assert_eq!(texts(&frames), 4, "the error frames precede the close");
    assert_eq!(
        close_of(&frames),
        Some(CloseFrame {
            code: 1008,
            reason: "too many protocol errors".into()
        })
    );
    // Errors spread over windows do not close.
    let mut t = T::new(
        1 << 20,
        Settings {
            flood: Flood {
                max: 3,
                window: 10 * S,
            },
            ..settings()
        },
    );
    t.m.on_protocol_errors(t.t0, 3);
    t.m.on_protocol_errors(t.at(11 * S), 3);
    assert!(t.m.reason().is_none());
}

#[test]
fn rate_limit_closes_1008_with_reason_rate_limit() {
    let mut t = T::new(
        1 << 20,
        Settings {
            rate: Some(Rate::from(RateLimit {
                per_second: 10,
                burst: 3,
            })),
            ..settings()
        },
    );
    for _ in 0..3 {
        assert!(t.read(t.t0, text("{}")).is_some());
    }
    assert!(
        t.read(t.t0, text("{}")).is_none(),
        "the fourth is not dispatched"
    );
    assert_eq!(t.m.reason(), Some(&CloseReason::RateLimited));
    assert_eq!(t.stat(|s| &s.rate_limit_closes), 1);
    let close = close_of(&t.write(t.t0, true)).unwrap();
    assert_eq!((close.code, &*close.reason), (1008, "rate limit"));
}

#[test]
fn rate_limit_lets_a_steady_sender_through() {
    let mut t = T::new(
        1 << 20,
        Settings {
            rate: Some(Rate::from(RateLimit {
                per_second: 100,
                burst: 1,
            })),
            ..settings()
        },
    );
    for i in 0..1000u32 {
        assert!(t.read(t.at(10 * MS * i), text("{}")).is_some());
    }
}

// ---- closing ----

#[test]
fn client_close_is_answered_with_1000_and_the_sink_closed() {
    let mut t = T::new(1 << 20, settings());
    t.own(3, 10);
    t.read(
        t.t0,
        WsFrame::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })),
    );
    assert!(!t.m.wants_read(), "the peer closed: nothing to drain");
    let frames = t.write(t.t0, true);
    assert_eq!(
        texts(&frames),
        0,
        "queued frames are not sent after the peer's close"
    );
    assert_eq!(close_of(&frames).unwrap().code, 1000);
    assert!(t.m.wants_sink_close());
    t.m.on_sink_closed();
    assert_eq!(t.m.reason(), Some(&CloseReason::ClientClosed(Some(1000))));
    assert!(t.m.is_done());
}

#[test]
fn the_transport_having_answered_the_close_itself_still_closes_the_sink() {
    let mut t = T::new(1 << 20, settings());
    t.read(t.t0, WsFrame::Close(None));
    assert!(matches!(t.m.poll_transmit(), Some(WsFrame::Close(_))));
    // tokio-tungstenite refuses a send after the peer's close.
    t.m.on_write_error(t.t0, "sending after closing is not allowed".into());
    assert!(!t.m.is_done());
    assert!(t.m.wants_sink_close());
}

#[test]
fn too_big_closes_1009_then_drains_until_the_peers_close() {
    let mut t = T::new(1 << 20, settings());
    t.m.on_read(t.t0, Some(Err(TransportError::MessageTooBig)));
    assert_eq!(t.stat(|s| &s.oversize_closes), 1);
    let frames = t.write(t.t0, true);
    assert_eq!(close_of(&frames).unwrap().code, 1009);
    // The peer is still sending: read and discard, more oversize messages included.
    for _ in 0..100 {
        assert!(t.m.wants_read());
        assert!(t.read(t.t0, text(r#"{"type":"x"}"#)).is_none());
        t.m.on_read(t.t0, Some(Err(TransportError::MessageTooBig)));
    }
    assert!(
        !t.m.wants_sink_close(),
        "still waiting for the peer's close"
    );
    t.read(
        t.t0,
        WsFrame::Close(Some(CloseFrame {
            code: 1009,
            reason: "".into(),
        })),
    );
    assert!(!t.m.wants_read());
    assert!(t.m.wants_sink_close());
    t.m.on_sink_closed();
    assert_eq!(t.m.reason(), Some(&CloseReason::MessageTooBig));
}

#[test]
fn a_text_over_the_limit_closes_1009_too() {
    let mut t = T::new(
        1 << 20,
        Settings {
            max_message_bytes: 10,
            ..settings()
        },
    );
    assert!(t.read(t.t0, text("01234567890")).is_none());
    assert_eq!(t.m.reason(), Some(&CloseReason::MessageTooBig));
}

#[test]
fn close_timeout_closes_the_sink_without_the_peers_close_then_gives_up() {
    let mut t = T::new(1 << 20, settings());
    t.m.close(t.t0, CloseReason::ProtocolErrors);
    assert_eq!(close_of(&t.write(t.t0, true)).unwrap().code, 1008);
    assert_eq!(t.m.poll_timeout(), Some(t.at(5 * S)));
    t.m.handle_timeout(t.at(5 * S) - MS);
    assert!(!t.m.wants_sink_close());
    t.m.handle_timeout(t.at(5 * S));
    assert!(t.m.wants_sink_close());
    assert!(!t.m.wants_read(), "no more draining");
    assert_eq!(t.stat(|s| &s.close_timeouts), 1);
    // Closing the sink hangs too: given up after the grace.
    t.m.handle_timeout(t.at(5 * S) + SINK_CLOSE_GRACE);
    assert!(t.m.is_done());
    assert_eq!(t.m.reason(), Some(&CloseReason::ProtocolErrors));
}

#[test]
fn a_stuck_close_frame_is_given_up_at_the_close_timeout() {
    let mut t = T::new(1 << 20, settings());
    t.m.close(t.t0, CloseReason::SlowConsumer);
    let frames = t.write(t.t0, false);
    assert_eq!(close_of(&frames).unwrap().code, 1013);
    t.m.handle_timeout(t.at(5 * S));
    assert!(!t.m.wants_sink_close(), "the flush still hangs");
    t.m.handle_timeout(t.at(5 * S) + SINK_CLOSE_GRACE);
    assert!(t.m.is_done());
}

#[test]
fn shutdown_lets_in_flight_handlers_finish_then_writes_their_replies_before_1001() {
    let mut t = T::new(1 << 20, settings());
    t.m.on_handler_started();
    t.m.begin_shutdown(t.t0);
    assert!(!t.m.wants_read(), "no new messages");
    assert!(t.m.runs_handlers());
    assert_eq!(t.m.poll_timeout(), Some(t.at(10 * S)));
    t.own(1, 10); // the last reply
    t.m.on_handler_finished(t.at(S));
    let frames = t.write(t.at(S), true);
    assert!(matches!(frames[0], WsFrame::Text(_)), "{frames:?}");
    assert_eq!(
        close_of(&frames),
        Some(CloseFrame {
            code: 1001,
            reason: "server shutting down".into()
        })
    );
    assert!(t.m.wants_read(), "draining until the peer's close");
    t.read(t.at(S), WsFrame::Close(None));
    assert!(t.m.wants_sink_close());
}

#[test]
fn shutdown_grace_abandons_handlers() {
    let mut t = T::new(1 << 20, settings());
    t.m.on_handler_started();
    t.m.begin_shutdown(t.t0);
    t.m.handle_timeout(t.at(10 * S));
    assert_eq!(t.m.reason(), Some(&CloseReason::ServerShutdown));
    assert!(!t.m.runs_handlers(), "the driver drops them");
}

#[test]
fn a_server_side_disconnect_sends_its_code_and_reason() {
    let mut t = T::new(1 << 20, settings());
    let long = "é".repeat(100);
    t.m.close(
        t.t0,
        CloseReason::Closed {
            code: 4000,
            reason: long,
        },
    );
    let close = close_of(&t.write(t.t0, true)).unwrap();
    assert_eq!(close.code, 4000);
    assert!(close.reason.len() <= 123 && close.reason.starts_with('é'));
}

#[test]
fn transport_failures_end_at_once() {
    let mut t = T::new(1 << 20, settings());
    t.m.on_read(t.t0, None);
    assert!(t.m.is_done());
    assert!(matches!(t.m.reason(), Some(CloseReason::TransportError(_))));
    let mut t = T::new(1 << 20, settings());
    t.m.on_read(t.t0, Some(Err(TransportError::Other("reset".into()))));
    assert!(t.m.is_done());
    let mut t = T::new(1 << 20, settings());
    t.own(1, 1);
    t.write(t.t0, false);
    t.m.on_write_error(t.t0, "broken pipe".into());
    assert!(t.m.is_done());
    assert_eq!(t.out.push_own(Text::from("late")), Push::Closed);
}

#[test]
fn the_first_close_reason_wins() {
    let mut t = T::new(1 << 20, settings());
    t.m.close(t.t0, CloseReason::ServerShutdown);
    t.m.close(t.t0, CloseReason::ProtocolErrors);
    t.m.on_read(t.t0, Some(Err(TransportError::MessageTooBig)));
    assert_eq!(t.m.reason(), Some(&CloseReason::ServerShutdown));
}

#[test]
fn per_connection_state_is_small() {
    // Measured figures (x86_64), noted in the module docs; a loose bound catches growth.
    let machine = std::mem::size_of::<Connection>();
    let shared = std::mem::size_of::<outbound::Shared>();
    println!("size_of Connection = {machine} B, outbound Shared = {shared} B");
    println!(
        "size_of PingTimer = {}, Writer = {}, Phase = {}, FloodWindow = {}, RateLimiter = {}, Sleep = {}, shutdown future = {}",
        std::mem::size_of::<Option<PingTimer>>(),
        std::mem::size_of::<Writer>(),
        std::mem::size_of::<Phase>(),
        std::mem::size_of::<FloodWindow>(),
        std::mem::size_of::<Option<RateLimiter>>(),
        std::mem::size_of::<tokio::time::Sleep>(),
        std::mem::size_of::<tokio_util::sync::WaitForCancellationFuture<'static>>(),
    );
    assert!(machine <= 256, "{machine}");
    assert!(shared <= 256, "{shared}");
}
