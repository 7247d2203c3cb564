//! Circuit breaker in front of the gateway: closed, open, half-open.
//!
//! Closed lets every request through and counts consecutive failures; at the threshold it
//! opens. Open lets nothing through for `open_for`; then it is half-open and lets exactly one
//! probe through. The probe's success closes the breaker, its failure reopens it. So a dead
//! gateway sees at most one request per agent per `open_for`, whatever the backoff does.
//!
//! Pure state machine: every method takes `now`, so tests drive it with a fake clock.

use std::time::{Duration, Instant};

/// The externally visible state, also exported as `agent_breaker_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// Value of the `agent_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// What [`Breaker::acquire`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send the request (it is the half-open probe when `probe` is true).
    Granted { probe: bool },
    /// Open: ask again at this instant.
    OpenUntil(Instant),
    /// Half-open and the single probe is in flight: wait for its outcome.
    ProbeInFlight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed { consecutive_failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool },
}

#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    phase: Phase,
}

impl Breaker {
    /// `threshold` consecutive failures open the breaker (at least 1).
    pub fn new(threshold: u32, open_for: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            open_for,
            phase: Phase::Closed {
                consecutive_failures: 0,
            },
        }
    }

    pub fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to send one request at `now`. An open breaker whose time is up becomes half-open
    /// here and grants the probe.
    pub fn acquire(&mut self, now: Instant) -> Admission {
        match self.phase {
            Phase::Closed { .. } => Admission::Granted { probe: false },
            Phase::Open { until } if now < until => Admission::OpenUntil(until),
            Phase::Open { .. }
            | Phase::HalfOpen {
                probe_in_flight: false,
            } => {
                self.phase = Phase::HalfOpen {
                    probe_in_flight: true,
                };
                Admission::Granted { probe: true }
            }
            Phase::HalfOpen {
                probe_in_flight: true,
            } => Admission::ProbeInFlight,
        }
    }

    /// A request answered well: closes the breaker.
    pub fn on_success(&mut self) {
        self.phase = Phase::Closed {
            consecutive_failures: 0,
        };
    }

    /// A request failed at `now`. Returns `true` when this failure opened the breaker.
    pub fn on_failure(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Closed {
                consecutive_failures,
            } => {
                let failures = consecutive_failures.saturating_add(1);
                if failures >= self.threshold {
                    self.open(now);
                    true
                } else {
                    self.phase = Phase::Closed {
                        consecutive_failures: failures,
                    };
                    false
                }
            }
            Phase::HalfOpen { .. } => {
                self.open(now);
                true
            }
            // A request admitted before the breaker opened failed late: it is already open.
            Phase::Open { .. } => false,
        }
    }

    /// The half-open probe was dropped without an outcome (its step was abandoned): let the
    /// next caller probe instead of waiting forever for this one.
    pub fn on_probe_abandoned(&mut self) {
        if let Phase::HalfOpen {
            probe_in_flight: true,
        } = self.phase
        {
            self.phase = Phase::HalfOpen {
                probe_in_flight: false,
            };
        }
    }

    fn open(&mut self, now: Instant) {
        self.phase = Phase::Open {
            until: now + self.open_for,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Duration = Duration::from_secs(10);

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, OPEN);
        assert!(!b.on_failure(t0));
        assert!(!b.on_failure(t0));
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.on_failure(t0), "the third failure opens");
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            b.acquire(t0 + Duration::from_secs(9)),
            Admission::OpenUntil(t0 + OPEN)
        );
    }

    #[test]
    fn a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, OPEN);
        b.on_failure(t0);
        b.on_failure(t0);
        b.on_success();
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "failures were not consecutive"
        );
    }

    #[test]
    fn half_open_allows_exactly_one_probe_and_its_success_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, OPEN);
        assert!(b.on_failure(t0));
        let later = t0 + OPEN;
        assert_eq!(b.acquire(later), Admission::Granted { probe: true });
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.acquire(later), Admission::ProbeInFlight, "only one probe");
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.acquire(later), Admission::Granted { probe: false });
    }

    #[test]
    fn a_failed_probe_reopens_for_another_full_period() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, OPEN);
        b.on_failure(t0);
        b.on_failure(t0);
        let probe_at = t0 + OPEN + Duration::from_secs(1);
        assert_eq!(b.acquire(probe_at), Admission::Granted { probe: true });
        assert!(
            b.on_failure(probe_at),
            "a failed probe reopens (counts as an opening)"
        );
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            b.acquire(probe_at + OPEN / 2),
            Admission::OpenUntil(probe_at + OPEN)
        );
        assert_eq!(
            b.acquire(probe_at + OPEN),
            Admission::Granted { probe: true }
        );
    }

    #[test]
    fn a_late_failure_does_not_extend_an_open_breaker() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, OPEN);
        b.on_failure(t0);
        assert!(!b.on_failure(t0 + Duration::from_secs(5)));
        assert_eq!(b.acquire(t0 + OPEN), Admission::Granted { probe: true });
    }

    #[test]
    fn an_abandoned_probe_frees_the_slot() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, OPEN);
        b.on_failure(t0);
        assert_eq!(b.acquire(t0 + OPEN), Admission::Granted { probe: true });
        b.on_probe_abandoned();
        assert_eq!(b.acquire(t0 + OPEN), Admission::Granted { probe: true });
    }

    #[test]
    fn gauge_values_match_the_metric_contract() {
        assert_eq!(BreakerState::Closed.gauge_value(), 0);
        assert_eq!(BreakerState::HalfOpen.gauge_value(), 1);
        assert_eq!(BreakerState::Open.gauge_value(), 2);
    }
}
