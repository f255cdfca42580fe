//! Exponential backoff between reconnect attempts.

use std::time::Duration;

/// Exponential backoff state.
pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(super) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }
    pub(super) fn reset(&mut self) {
        self.next = self.min;
    }
    pub(super) fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let steps: Vec<_> = (0..4).map(|_| b.step().as_millis()).collect();
        assert_eq!(steps, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.step().as_millis(), 100);
    }
}
