//! When the next gateway request may go out: the gates every request passes.
//!
//! Three rules, checked in order, each with its own reason to wait:
//! 1. `Retry-After`: the gateway said "not before T"; no request (retry or first attempt of
//!    the next step) leaves before T.
//! 2. Retry budget: a retry needs a token ([`crate::budget`]).
//! 3. Circuit breaker: nothing while open, one probe when half-open ([`crate::breaker`]).
//!
//! Backoff is not a gate: it is the caller's sleep between a failure and asking again.
//! Pure state machine: every method takes `now`, so tests drive it with a fake clock.

use std::time::{Duration, Instant};

use crate::{
    breaker::{Admission, Breaker, BreakerState},
    budget::RetryBudget,
};

/// Why a request has to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    RetryAfter,
    RetryBudget,
    BreakerOpen,
    /// Half-open with the probe in flight: wait for its outcome.
    ProbeInFlight,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::RetryAfter => "retry_after",
            WaitReason::RetryBudget => "retry_budget",
            WaitReason::BreakerOpen => "breaker_open",
            WaitReason::ProbeInFlight => "probe_in_flight",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send now; `probe` when this request is the half-open probe.
    Send { probe: bool },
    /// Ask again at `until` (for [`WaitReason::ProbeInFlight`], when the probe settles or at
    /// `until`, whichever comes first).
    Wait { until: Instant, reason: WaitReason },
}

/// What recording an outcome changed, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub before: BreakerState,
    pub after: BreakerState,
    /// The breaker (re)opened.
    pub opened: bool,
}

#[derive(Debug, Clone)]
pub struct Pacer {
    breaker: Breaker,
    budget: RetryBudget,
    open_for: Duration,
    not_before: Option<Instant>,
}

impl Pacer {
    pub fn new(breaker: Breaker, budget: RetryBudget, open_for: Duration) -> Pacer {
        Pacer {
            breaker,
            budget,
            open_for,
            not_before: None,
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// May a request (a retry when `is_retry`) go out at `now`? A `Send` decision has already
    /// taken the budget token (or credited the first attempt) and the probe slot.
    pub fn admit(&mut self, now: Instant, is_retry: bool) -> Decision {
        if let Some(until) = self.not_before {
            if now < until {
                return Decision::Wait {
                    until,
                    reason: WaitReason::RetryAfter,
                };
            }
            self.not_before = None;
        }
        if is_retry {
            let wait = self.budget.wait_for_token(now);
            if !wait.is_zero() {
                return Decision::Wait {
                    until: now + wait,
                    reason: WaitReason::RetryBudget,
                };
            }
        }
        match self.breaker.acquire(now) {
            Admission::Granted { probe } => {
                if is_retry {
                    let spent = self.budget.try_spend(now);
                    debug_assert!(spent, "a token was available a moment ago");
                } else {
                    self.budget.record_first_attempt(now);
                }
                Decision::Send { probe }
            }
            Admission::OpenUntil(until) => Decision::Wait {
                until,
                reason: WaitReason::BreakerOpen,
            },
            // The probe's outcome wakes the waiter; the period bounds the wait if it never comes.
            Admission::ProbeInFlight => Decision::Wait {
                until: now + self.open_for,
                reason: WaitReason::ProbeInFlight,
            },
        }
    }

    /// The gateway answered (a success, or a 4xx that proves it healthy).
    pub fn on_success(&mut self) -> Change {
        let before = self.breaker.state();
        self.breaker.on_success();
        Change {
            before,
            after: self.breaker.state(),
            opened: false,
        }
    }

    /// A retryable failure at `now`; `retry_after` is the gateway's `Retry-After`, if any.
    pub fn on_failure(&mut self, now: Instant, retry_after: Option<Duration>) -> Change {
        if let Some(delay) = retry_after {
            let until = now + delay;
            self.not_before = Some(self.not_before.map_or(until, |t| t.max(until)));
        }
        let before = self.breaker.state();
        let opened = self.breaker.on_failure(now);
        Change {
            before,
            after: self.breaker.state(),
            opened,
        }
    }

    /// An admitted request was dropped before its outcome (its step was abandoned).
    pub fn on_abandoned(&mut self, probe: bool) {
        if probe {
            self.breaker.on_probe_abandoned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Duration = Duration::from_secs(10);

    fn pacer(now: Instant, failures: u32, min_per_sec: f64) -> Pacer {
        Pacer::new(
            Breaker::new(failures, OPEN),
            RetryBudget::new(0.0, min_per_sec, now),
            OPEN,
        )
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn first_attempts_pass_a_closed_breaker_without_budget() {
        let t0 = Instant::now();
        let mut p = pacer(t0, 3, 1.0);
        for _ in 0..5 {
            assert_eq!(p.admit(t0, false), Decision::Send { probe: false });
        }
    }

    #[test]
    fn a_retry_waits_for_a_budget_token() {
        let t0 = Instant::now();
        let mut p = pacer(t0, 100, 1.0);
        assert_eq!(p.admit(t0, false), Decision::Send { probe: false });
        p.on_failure(t0, None);
        match p.admit(t0, true) {
            Decision::Wait {
                until,
                reason: WaitReason::RetryBudget,
            } => {
                assert!(until > t0 && until <= t0 + secs(1) + Duration::from_millis(1));
                assert_eq!(p.admit(until, true), Decision::Send { probe: false });
            }
            other => panic!("expected a budget wait, got {other:?}"),
        }
        // The token was spent: the next retry waits again.
        assert!(matches!(
            p.admit(t0 + secs(1), true),
            Decision::Wait {
                reason: WaitReason::RetryBudget,
                ..
            }
        ));
    }

    #[test]
    fn retry_after_holds_every_request_until_it_elapses() {
        let t0 = Instant::now();
        let mut p = pacer(t0, 100, 1000.0);
        p.admit(t0, false);
        p.on_failure(t0, Some(secs(7)));
        for (at, retry) in [(t0, true), (t0 + secs(6), false)] {
            assert_eq!(
                p.admit(at, retry),
                Decision::Wait {
                    until: t0 + secs(7),
                    reason: WaitReason::RetryAfter
                }
            );
        }
        assert_eq!(p.admit(t0 + secs(7), true), Decision::Send { probe: false });
        // A shorter Retry-After never shortens a longer one already in force.
        p.on_failure(t0 + secs(7), Some(secs(30)));
        p.on_failure(t0 + secs(8), Some(secs(1)));
        assert_eq!(
            p.admit(t0 + secs(9), true),
            Decision::Wait {
                until: t0 + secs(37),
                reason: WaitReason::RetryAfter
            }
        );
    }

    #[test]
    fn an_open_breaker_holds_requests_then_lets_one_probe_through() {
        let t0 = Instant::now();
        let mut p = pacer(t0, 2, 1000.0);
        p.admit(t0, false);
        assert!(!p.on_failure(t0, None).opened);
        p.admit(t0 + secs(1), true);
        let change = p.on_failure(t0 + secs(1), None);
        assert!(change.opened);
        assert_eq!(
            (change.before, change.after),
            (BreakerState::Closed, BreakerState::Open)
        );
        let reopen_at = t0 + secs(1) + OPEN;
        assert_eq!(
            p.admit(t0 + secs(2), true),
            Decision::Wait {
                until: reopen_at,
                reason: WaitReason::BreakerOpen
            }
        );
        assert_eq!(p.admit(reopen_at, true), Decision::Send { probe: true });
        assert!(matches!(
            p.admit(reopen_at, false),
            Decision::Wait {
                reason: WaitReason::ProbeInFlight,
                ..
            }
        ));
        let change = p.on_success();
        assert_eq!(
            (change.before, change.after),
            (BreakerState::HalfOpen, BreakerState::Closed)
        );
        assert_eq!(p.admit(reopen_at, false), Decision::Send { probe: false });
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_request_probe() {
        let t0 = Instant::now();
        let mut p = pacer(t0, 1, 1000.0);
        p.admit(t0, false);
        p.on_failure(t0, None);
        assert_eq!(p.admit(t0 + OPEN, false), Decision::Send { probe: true });
        p.on_abandoned(true);
        assert_eq!(p.admit(t0 + OPEN, false), Decision::Send { probe: true });
    }
}
