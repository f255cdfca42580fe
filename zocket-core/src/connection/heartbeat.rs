//! The heartbeat: a ping every interval, and a deadline for its pong.
//!
//! - At each interval a ping is *owed*; the engine writes it as soon as the writer can
//!   take a frame (it goes first in the next batch). The pong deadline starts right away,
//!   so a connection whose writes are stuck (the peer reads nothing, its socket is full)
//!   is dropped `timeout` after the tick even though the ping never left.
//! - When the flush that carried the ping completes, the ping is *sent* and the peer gets
//!   the full `timeout` from then. A pong read after that answers it, and so does a
//!   message (a peer whose messages keep arriving is alive, even if the server is busy
//!   with its backlog and has not reached the pong yet). Its pings do not: a peer that
//!   pings and never reads is not answering. Frames read before the ping left do not
//!   count, so a peer whose socket is full cannot keep itself alive meanwhile.
//! - While reading is paused (the in-flight limit or the byte budget), pongs cannot be
//!   read. A deadline that passes during such a pause is forgiven when the writer made
//!   progress during the pause (a completed flush: the peer is reading) or has nothing to
//!   write (the pause is the server's doing); otherwise the peer is dead or stuck.
//! - Ticks missed while a ping is outstanding are not made up in a burst.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No ping outstanding; the next at `next_ping`.
    Idle,
    /// A ping is owed (not handed to the writer yet).
    Owed { deadline: Instant },
    /// The ping is in the writer's batch, not flushed yet.
    Written { deadline: Instant },
    /// The ping is flushed; waiting for the pong.
    Sent {
        deadline: Instant,
        paused: bool,
        progressed: bool,
    },
}

/// What a passing deadline means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing to do.
    Fine,
    /// No pong in time: drop the connection.
    Dead,
}

/// The heartbeat's timings, shared by every connection of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

/// One connection's heartbeat state (its timings are passed in: they are the server's).
#[derive(Debug, Clone)]
pub(crate) struct PingTimer {
    next_ping: Instant,
    state: State,
}

impl PingTimer {
    pub(crate) fn new(t: Timing, now: Instant) -> Self {
        Self {
            next_ping: now + t.interval,
            state: State::Idle,
        }
    }

    /// When something is due.
    pub(crate) fn poll_timeout(&self) -> Instant {
        match self.state {
            State::Idle => self.next_ping,
            State::Owed { deadline }
            | State::Written { deadline }
            | State::Sent { deadline, .. } => deadline,
        }
    }

    /// Time passes. `writer_busy`: frames are waiting to be written or being written.
    pub(crate) fn handle_timeout(&mut self, t: Timing, now: Instant, writer_busy: bool) -> Verdict {
        match self.state {
            State::Idle if now >= self.next_ping => {
                self.state = State::Owed {
                    deadline: now + t.timeout,
                };
                self.next_ping = now + t.interval;
            }
            State::Owed { deadline } | State::Written { deadline } if now >= deadline => {
                return Verdict::Dead;
            }
            State::Sent {
                deadline,
                paused,
                progressed,
            } if now >= deadline => {
                if paused && (progressed || !writer_busy) {
                    // The pong may sit unread behind the pause: the peer is alive.
                    self.state = State::Idle;
                    self.next_ping = self.next_ping.max(now);
                } else {
                    return Verdict::Dead;
                }
            }
            _ => {}
        }
        Verdict::Fine
    }

    /// Whether a ping is owed; the writer takes it (it is then "written").
    pub(crate) fn take_ping(&mut self) -> bool {
        if let State::Owed { deadline } = self.state {
            self.state = State::Written { deadline };
            true
        } else {
            false
        }
    }

    /// Whether a ping is owed and not yet taken.
    #[cfg(test)]
    pub(crate) fn ping_owed(&self) -> bool {
        matches!(self.state, State::Owed { .. })
    }

    /// A flush completed at `now`.
    pub(crate) fn on_flushed(&mut self, t: Timing, now: Instant) {
        match &mut self.state {
            State::Written { .. } => {
                self.state = State::Sent {
                    deadline: now + t.timeout,
                    paused: false,
                    progressed: false,
                };
            }
            // Progress counts while reading is paused: the peer drains what we write.
            State::Sent {
                paused: true,
                progressed,
                ..
            } => *progressed = true,
            _ => {}
        }
    }

    /// Reading is paused.
    pub(crate) fn on_read_paused(&mut self) {
        if let State::Sent {
            paused: paused @ false,
            progressed,
            ..
        } = &mut self.state
        {
            *paused = true;
            *progressed = false;
        }
    }

    /// A pong or a message was read from the peer.
    pub(crate) fn on_frame(&mut self) {
        if matches!(self.state, State::Sent { .. }) {
            self.state = State::Idle;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const T: Timing = Timing {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
    };

    #[test]
    fn ping_pong_cycle() {
        let t0 = Instant::now();
        let mut h = PingTimer::new(T, t0);
        assert_eq!(h.poll_timeout(), t0 + 10 * S);
        assert_eq!(h.handle_timeout(T, t0 + 9 * S, false), Verdict::Fine);
        assert!(!h.take_ping());
        h.handle_timeout(T, t0 + 10 * S, false);
        assert!(h.take_ping());
        h.on_flushed(T, t0 + 10 * S);
        assert_eq!(h.poll_timeout(), t0 + 15 * S);
        h.on_frame();
        assert_eq!(h.poll_timeout(), t0 + 20 * S);
        assert_eq!(h.handle_timeout(T, t0 + 15 * S, false), Verdict::Fine);
    }

    #[test]
    fn any_frame_after_the_ping_left_answers_it() {
        let t0 = Instant::now();
        let mut h = PingTimer::new(T, t0);
        h.handle_timeout(T, t0 + 10 * S, false);
        h.take_ping();
        h.on_flushed(T, t0 + 10 * S);
        h.on_frame();
        assert_eq!(h.handle_timeout(T, t0 + 15 * S, false), Verdict::Fine);
    }

    #[test]
    fn no_pong_is_dead() {
        let t0 = Instant::now();
        let mut h = PingTimer::new(T, t0);
        h.handle_timeout(T, t0 + 10 * S, false);
        assert!(h.take_ping());
        h.on_flushed(T, t0 + 10 * S);
        assert_eq!(h.handle_timeout(T, t0 + 15 * S, false), Verdict::Dead);
    }

    #[test]
    fn pong_before_the_ping_left_does_not_count() {
        let t0 = Instant::now();
        let mut h = PingTimer::new(T, t0);
        h.handle_timeout(T, t0 + 10 * S, true);
        h.on_frame();
        assert!(h.take_ping());
        h.on_frame();
        assert_eq!(h.handle_timeout(T, t0 + 15 * S, true), Verdict::Dead);
    }

    #[test]
    fn owed_ping_during_a_stuck_write_runs_the_deadline_from_the_tick() {
        let t0 = Instant::now();
        let mut h = PingTimer::new(T, t0);
        h.handle_timeout(T, t0 + 10 * S, true);
        assert!(h.ping_owed());
        assert_eq!(h.poll_timeout(), t0 + 15 * S);
        assert_eq!(h.handle_timeout(T, t0 + 15 * S, true), Verdict::Dead);
    }

    #[test]
    fn owed_ping_sent_late_gets_the_full_timeout() {
        let t0 = Instant::now();
        let mut h = PingTimer::new(T, t0);
        h.handle_timeout(T, t0 + 10 * S, true);
        // The stuck write completes at 14 s; the ping goes then.
        assert!(h.take_ping());
        h.on_flushed(T, t0 + 14 * S);
        assert_eq!(h.handle_timeout(T, t0 + 15 * S, false), Verdict::Fine);
        assert_eq!(h.poll_timeout(), t0 + 19 * S);
        h.on_frame();
        // No burst of pings for the missed tick: the next is due one interval after the last.
        assert_eq!(h.poll_timeout(), t0 + 20 * S);
    }

    #[test]
    fn a_pause_with_write_progress_is_forgiven_without_progress_not() {
        let t0 = Instant::now();
        let mut h = PingTimer::new(T, t0);
        h.handle_timeout(T, t0 + 10 * S, false);
        h.take_ping();
        h.on_flushed(T, t0 + 10 * S);
        h.on_read_paused();
        h.on_flushed(T, t0 + 12 * S);
        assert_eq!(h.handle_timeout(T, t0 + 15 * S, true), Verdict::Fine);
        // Next cycle: paused, writer busy, no progress: dead.
        h.handle_timeout(T, t0 + 20 * S, true);
        h.take_ping();
        h.on_flushed(T, t0 + 20 * S);
        h.on_read_paused();
        assert_eq!(h.handle_timeout(T, t0 + 25 * S, true), Verdict::Dead);
    }

    #[test]
    fn progress_before_the_pause_does_not_count() {
        let t0 = Instant::now();
        let mut h = PingTimer::new(T, t0);
        h.handle_timeout(T, t0 + 10 * S, false);
        h.take_ping();
        h.on_flushed(T, t0 + 10 * S);
        h.on_flushed(T, t0 + 11 * S);
        h.on_read_paused();
        assert_eq!(h.handle_timeout(T, t0 + 15 * S, true), Verdict::Dead);
    }

    #[test]
    fn a_pause_of_the_servers_doing_is_forgiven() {
        let t0 = Instant::now();
        let mut h = PingTimer::new(T, t0);
        h.handle_timeout(T, t0 + 10 * S, false);
        h.take_ping();
        h.on_flushed(T, t0 + 10 * S);
        h.on_read_paused();
        assert_eq!(h.handle_timeout(T, t0 + 15 * S, false), Verdict::Fine);
    }
}
