//! Per-connection abuse limits: the protocol-error flood window (close 1008 "too many
//! protocol errors") and the message-rate token bucket (close 1008 "rate limit").
//! Both take the time as an input.

use std::time::Duration;

use tokio::time::Instant;

/// A message-rate limit per connection: a token bucket that holds `burst` messages and
/// refills at `per_second`. A connection that sends faster is closed with 1008 and the
/// reason `rate limit`. Every text or binary frame counts (control frames do not).
///
/// ```
/// use zocket_core::{RateLimit, ServerConfig};
/// let strict = ServerConfig::default().message_rate(RateLimit { per_second: 50, burst: 100 });
/// let off = ServerConfig::default().message_rate(None);
/// assert_eq!(ServerConfig::default().message_rate, Some(RateLimit::default()));
/// # let _ = (strict, off);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained messages per second. Default 10 000.
    pub per_second: u32,
    /// Messages that may arrive at once (the bucket's size). Default 10 000, so a
    /// pipelined burst of several thousand calls passes.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 10_000,
            burst: 10_000,
        }
    }
}

/// A [`RateLimit`] as the token bucket uses it, shared by every connection of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    /// Time one message costs.
    every: Duration,
    /// How far ahead of now the arrival time may run: `(burst - 1) * every`.
    tolerance: Duration,
}

impl From<RateLimit> for Rate {
    fn from(limit: RateLimit) -> Self {
        let every = Duration::from_secs(1) / limit.per_second.max(1);
        Self {
            every,
            tolerance: every * limit.burst.max(1).saturating_sub(1),
        }
    }
}

/// One connection's token bucket, kept as a generic cell rate algorithm: one instant
/// (the "theoretical arrival time") instead of a token count and a refill time.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    tat: Instant,
}

impl RateLimiter {
    pub(crate) fn new(now: Instant) -> Self {
        Self { tat: now }
    }

    /// One message arrives at `now`: whether it is within the rate.
    pub(crate) fn allow(&mut self, rate: Rate, now: Instant) -> bool {
        let tat = self.tat.max(now);
        if tat > now + rate.tolerance {
            return false;
        }
        self.tat = tat + rate.every;
        true
    }
}

/// Protocol errors (`BAD_REQUEST`, `NOT_FOUND`, `INVALID_INPUT`) counted in a fixed
/// window: more than `max` in one window closes with 1008.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flood {
    pub(crate) max: u32,
    pub(crate) window: Duration,
}

/// One connection's count in the current window.
#[derive(Debug, Clone)]
pub(crate) struct FloodWindow {
    start: Instant,
    count: u32,
}

impl FloodWindow {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            start: now,
            count: 0,
        }
    }

    /// `n` more errors at `now`: whether the limit is now exceeded.
    pub(crate) fn record(&mut self, limit: Flood, now: Instant, n: u32) -> bool {
        if now.saturating_duration_since(self.start) > limit.window {
            self.start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(n);
        self.count > limit.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let rate = Rate::from(RateLimit {
            per_second: 10,
            burst: 5,
        });
        let mut r = RateLimiter::new(t0);
        for _ in 0..5 {
            assert!(r.allow(rate, t0));
        }
        assert!(!r.allow(rate, t0), "the sixth at once is over the burst");
        // A refused message costs nothing; 100 ms later one token is back.
        assert!(!r.allow(rate, t0 + Duration::from_millis(99)));
        assert!(r.allow(rate, t0 + Duration::from_millis(100)));
        assert!(!r.allow(rate, t0 + Duration::from_millis(100)));
        // After a quiet second the whole burst is back, not more.
        let t1 = t0 + Duration::from_secs(2);
        for _ in 0..5 {
            assert!(r.allow(rate, t1));
        }
        assert!(!r.allow(rate, t1));
    }

    #[test]
    fn sustained_rate_at_the_limit_passes() {
        let t0 = Instant::now();
        let rate = Rate::from(RateLimit {
            per_second: 1000,
            burst: 1,
        });
        let mut r = RateLimiter::new(t0);
        for i in 0..10_000u32 {
            assert!(
                r.allow(rate, t0 + Duration::from_millis(u64::from(i))),
                "{i}"
            );
        }
    }

    #[test]
    fn default_passes_a_pipelined_burst_of_5000() {
        let t0 = Instant::now();
        let rate = Rate::from(RateLimit::default());
        let mut r = RateLimiter::new(t0);
        assert!((0..5000).all(|_| r.allow(rate, t0)));
    }

    #[test]
    fn flood_window_counts_per_window() {
        let t0 = Instant::now();
        let limit = Flood {
            max: 3,
            window: Duration::from_secs(10),
        };
        let mut w = FloodWindow::new(t0);
        assert!(!w.record(limit, t0, 3));
        assert!(w.record(limit, t0 + Duration::from_secs(1), 1));
        // A new window starts over.
        let mut w = FloodWindow::new(t0);
        assert!(!w.record(limit, t0, 3));
        assert!(!w.record(limit, t0 + Duration::from_secs(11), 3));
        assert!(w.record(limit, t0 + Duration::from_secs(12), 1));
    }
}
