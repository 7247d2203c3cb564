//! The fault decision for one chat request, as a pure function.
//!
//! Everything that varies (time since the profile was applied, requests already in flight, the
//! random draws) is passed in, so the order of the checks and every boundary can be unit-tested
//! without a server, a clock or an RNG. [`crate::engine`] supplies the real values.

use std::time::Duration;

use agentfleet_protocol::gateway::{FaultProfile, Latency};
use rand::Rng;

/// `Retry-After` sent with a capacity 429 when the profile configures none. Real LLM providers
/// always hint when they shed load for capacity, and a well-behaved agent should be able to see
/// that hint in the capacity scenario even with an otherwise minimal profile.
pub const CAPACITY_RETRY_AFTER_DEFAULT_SECS: u64 = 1;

/// The two uniform draws in `[0, 1)` one request may consume: one for the error dice, one for
/// the latency sample. Drawn up front so [`decide`] stays pure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dice {
    pub fault: f64,
    pub latency: f64,
}

impl Dice {
    pub fn roll(rng: &mut impl Rng) -> Self {
        Self {
            fault: rng.random::<f64>(),
            latency: rng.random::<f64>(),
        }
    }
}

/// Why a request was refused; also the `type`/message the error body reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Inside an outage window.
    Outage,
    /// `capacity` requests were already in flight.
    Capacity,
    /// The error dice came up (rate_429 / rate_500 / rate_503).
    Injected,
}

/// A refused request: the status to answer and the `Retry-After` seconds, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub retry_after_secs: Option<u64>,
    pub reason: RejectReason,
}

/// What to do with one chat request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Reject(Rejection),
    /// Answer successfully after waiting `latency` (while counted in flight).
    Serve {
        latency: Duration,
    },
}

/// Decides the fate of one request, in the documented order: outage window, capacity, random
/// errors, then latency for the successful answer.
///
/// `since_applied` is the time since the profile was applied (outage windows are relative to
/// it); `in_flight` counts the requests already admitted and not yet answered.
pub fn decide(
    profile: &FaultProfile,
    since_applied: Duration,
    in_flight: u32,
    dice: Dice,
) -> Verdict {
    let elapsed_ms = u64::try_from(since_applied.as_millis()).unwrap_or(u64::MAX);
    if let Some(outage) = profile.outages.iter().find(|outage| {
        elapsed_ms >= outage.start_ms && elapsed_ms - outage.start_ms < outage.duration_ms
    }) {
        return Verdict::Reject(Rejection {
            status: outage.status,
            retry_after_secs: retry_after_for(outage.status, profile.retry_after_secs),
            reason: RejectReason::Outage,
        });
    }
    if let Some(capacity) = profile.capacity
        && in_flight >= capacity
    {
        return Verdict::Reject(Rejection {
            status: 429,
            retry_after_secs: Some(
                profile
                    .retry_after_secs
                    .unwrap_or(CAPACITY_RETRY_AFTER_DEFAULT_SECS),
            ),
            reason: RejectReason::Capacity,
        });
    }
    if let Some(status) = injected_status(profile, dice.fault) {
        return Verdict::Reject(Rejection {
            status,
            retry_after_secs: retry_after_for(status, profile.retry_after_secs),
            reason: RejectReason::Injected,
        });
    }
    Verdict::Serve {
        latency: sample_latency(&profile.latency, dice.latency),
    }
}

/// `Retry-After` only makes sense for "come back later" statuses: 429 and 503.
fn retry_after_for(status: u16, configured: Option<u64>) -> Option<u64> {
    matches!(status, 429 | 503).then_some(configured).flatten()
}

/// One draw picks at most one error: `[0, r429)` -> 429, then 500, then 503, else none. The
/// rates therefore hold independently as long as they add up to at most 1 (validated).
fn injected_status(profile: &FaultProfile, draw: f64) -> Option<u16> {
    let mut threshold = 0.0;
    for (rate, status) in [
        (profile.rate_429, 429),
        (profile.rate_500, 500),
        (profile.rate_503, 503),
    ] {
        threshold += rate;
        if draw < threshold {
            return Some(status);
        }
    }
    None
}

/// Maps a uniform draw in `[0, 1)` onto the latency distribution (inverse transform sampling).
pub fn sample_latency(latency: &Latency, draw: f64) -> Duration {
    let draw = draw.clamp(0.0, 1.0);
    let ms = match *latency {
        Latency::None => 0,
        Latency::Fixed { ms } => ms,
        Latency::Uniform { min_ms, max_ms } => {
            let span = max_ms.saturating_sub(min_ms);
            // `span + 1` slots so max_ms itself is reachable; a draw of exactly 1.0 is clamped.
            let offset = (draw * (span as f64 + 1.0)).floor() as u64;
            min_ms.saturating_add(offset.min(span))
        }
        Latency::Exponential { mean_ms, max_ms } => {
            let sample = -(mean_ms as f64) * (1.0 - draw).max(f64::MIN_POSITIVE).ln();
            (sample.round() as u64).min(max_ms)
        }
    };
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentfleet_protocol::gateway::Outage;

    const NO_FAULT: Dice = Dice {
        fault: 0.999,
        latency: 0.5,
    };

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    fn status(verdict: Verdict) -> u16 {
        match verdict {
            Verdict::Reject(rejection) => rejection.status,
            Verdict::Serve { .. } => 200,
        }
    }

    fn outage_profile() -> FaultProfile {
        FaultProfile {
            retry_after_secs: Some(3),
            outages: vec![
                Outage {
                    start_ms: 100,
                    duration_ms: 50,
                    status: 503,
                },
                Outage {
                    start_ms: 300,
                    duration_ms: 10,
                    status: 500,
                },
            ],
            ..FaultProfile::default()
        }
    }

    #[test]
    fn default_profile_serves_without_latency() {
        assert_eq!(
            decide(&FaultProfile::default(), ms(0), 1000, NO_FAULT),
            Verdict::Serve { latency: ms(0) }
        );
    }

    #[test]
    fn outage_window_is_start_inclusive_end_exclusive() {
        let profile = outage_profile();
        let observed: Vec<(u64, u16)> = [0, 99, 100, 149, 150, 299, 300, 309, 310]
            .into_iter()
            .map(|at| (at, status(decide(&profile, ms(at), 0, NO_FAULT))))
            .collect();
        assert_eq!(
            observed,
            vec![
                (0, 200),
                (99, 200),
                (100, 503),
                (149, 503),
                (150, 200),
                (299, 200),
                (300, 500),
                (309, 500),
                (310, 200)
            ]
        );
    }

    #[test]
    fn retry_after_only_accompanies_429_and_503() {
        let profile = outage_profile();
        let Verdict::Reject(in_503) = decide(&profile, ms(120), 0, NO_FAULT) else {
            panic!("expected the 503 window at 120 ms");
        };
        assert_eq!(in_503.retry_after_secs, Some(3));
        assert_eq!(in_503.reason, RejectReason::Outage);
        let Verdict::Reject(in_500) = decide(&profile, ms(305), 0, NO_FAULT) else {
            panic!("expected the 500 window at 305 ms");
        };
        assert_eq!(in_500.retry_after_secs, None);
    }

    #[test]
    fn outage_wins_over_capacity_and_capacity_over_dice() {
        let profile = FaultProfile {
            capacity: Some(2),
            rate_500: 1.0,
            outages: vec![Outage {
                start_ms: 0,
                duration_ms: 10,
                status: 503,
            }],
            ..FaultProfile::default()
        };
        let always_fault = Dice {
            fault: 0.0,
            latency: 0.0,
        };
        assert_eq!(status(decide(&profile, ms(5), 5, always_fault)), 503);
        let Verdict::Reject(capacity) = decide(&profile, ms(20), 2, always_fault) else {
            panic!("expected a capacity rejection with 2 in flight");
        };
        assert_eq!(
            (capacity.status, capacity.reason, capacity.retry_after_secs),
            (
                429,
                RejectReason::Capacity,
                Some(CAPACITY_RETRY_AFTER_DEFAULT_SECS)
            )
        );
        assert_eq!(status(decide(&profile, ms(20), 1, always_fault)), 500);
    }

    #[test]
    fn capacity_uses_configured_retry_after() {
        let profile = FaultProfile {
            capacity: Some(1),
            retry_after_secs: Some(9),
            ..FaultProfile::default()
        };
        assert_eq!(
            decide(&profile, ms(0), 1, NO_FAULT),
            Verdict::Reject(Rejection {
                status: 429,
                retry_after_secs: Some(9),
                reason: RejectReason::Capacity
            })
        );
        assert_eq!(
            decide(&profile, ms(0), 0, NO_FAULT),
            Verdict::Serve { latency: ms(0) }
        );
    }

    #[test]
    fn fault_draw_maps_onto_consecutive_rate_bands() {
        let profile = FaultProfile {
            rate_429: 0.1,
            rate_500: 0.2,
            rate_503: 0.3,
            ..FaultProfile::default()
        };
        let observed: Vec<u16> = [0.0, 0.099, 0.1, 0.299, 0.301, 0.599, 0.601, 0.999]
            .into_iter()
            .map(|fault| {
                status(decide(
                    &profile,
                    ms(0),
                    0,
                    Dice {
                        fault,
                        latency: 0.0,
                    },
                ))
            })
            .collect();
        assert_eq!(observed, vec![429, 429, 500, 500, 503, 503, 200, 200]);
    }

    #[test]
    fn latency_samples_follow_the_distribution() {
        assert_eq!(sample_latency(&Latency::Fixed { ms: 40 }, 0.7), ms(40));
        let uniform = Latency::Uniform {
            min_ms: 10,
            max_ms: 20,
        };
        assert_eq!(sample_latency(&uniform, 0.0), ms(10));
        assert_eq!(sample_latency(&uniform, 0.9999), ms(20));
        assert_eq!(sample_latency(&uniform, 1.0), ms(20));
        let exponential = Latency::Exponential {
            mean_ms: 100,
            max_ms: 1000,
        };
        assert_eq!(sample_latency(&exponential, 0.0), ms(0));
        // Median of an exponential is mean * ln 2.
        assert_eq!(sample_latency(&exponential, 0.5), ms(69));
        assert_eq!(sample_latency(&exponential, 0.99999), ms(1000));
    }

    #[test]
    fn served_requests_carry_the_sampled_latency() {
        let profile = FaultProfile {
            latency: Latency::Uniform {
                min_ms: 0,
                max_ms: 99,
            },
            ..FaultProfile::default()
        };
        assert_eq!(
            decide(
                &profile,
                ms(0),
                0,
                Dice {
                    fault: 0.5,
                    latency: 0.25
                }
            ),
            Verdict::Serve { latency: ms(25) }
        );
    }
}
