//! Arrival-order dispatch and the in-flight limit.
//!
//! Each message's handler is started in arrival order and polled once on the spot, so a
//! handler that never waits completes (effects and reply included) before the next
//! message is read: v1's event-loop order. A handler that waits is kept by the driver
//! and polled concurrently with later ones, up to `max_in_flight`; at the limit reading
//! pauses (backpressure, nothing dropped). `max_in_flight = 1` is strictly sequential.

/// Counts the handlers that wait.
#[derive(Debug, Clone)]
pub(crate) struct Ordering {
    in_flight: u32,
    limit: u32,
}

impl Ordering {
    pub(crate) fn new(max_in_flight: usize) -> Self {
        Self {
            in_flight: 0,
            limit: u32::try_from(max_in_flight.max(1)).unwrap_or(u32::MAX),
        }
    }

    /// Whether another message may be read (and its handler started).
    pub(crate) fn has_room(&self) -> bool {
        self.in_flight < self.limit
    }

    /// A handler went pending after its first poll.
    pub(crate) fn started(&mut self) {
        self.in_flight += 1;
    }

    /// A pending handler completed.
    pub(crate) fn finished(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The handlers abandoned on close.
    pub(crate) fn abandon(&mut self) -> u32 {
        std::mem::take(&mut self.in_flight)
    }

    /// Handlers waiting now.
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_pauses_and_a_completion_resumes() {
        let mut o = Ordering::new(2);
        assert!(o.has_room());
        o.started();
        o.started();
        assert!(!o.has_room());
        o.finished();
        assert!(o.has_room());
        assert_eq!(Ordering::new(0).limit, 1, "0 means sequential, not stuck");
    }
}
