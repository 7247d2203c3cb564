//! The live fault state: the current profile, when it was applied, the fault dice and the
//! in-flight count.
//!
//! One mutex guards the decision and the admission together so that `capacity` is exact under
//! concurrency: two requests can never both see `capacity - 1` in flight and both be admitted.
//! The critical section is a few comparisons and two RNG draws; nothing awaits inside it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use agentfleet_protocol::gateway::{FaultProfile, Outage};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::decision::{Dice, Rejection, Verdict, decide};
use crate::validate::{InvalidProfile, validate_outage, validate_profile};

/// Shared fault state. Every method takes `now` so tests can drive it with a synthetic clock.
#[derive(Debug)]
pub struct FaultEngine {
    state: Mutex<EngineState>,
    in_flight: Arc<AtomicU32>,
}

#[derive(Debug)]
struct EngineState {
    profile: FaultProfile,
    applied_at: Instant,
    dice: StdRng,
}

impl EngineState {
    fn new(profile: FaultProfile, now: Instant) -> Self {
        // A seed makes the dice reproducible from the moment the profile is applied; without
        // one, every run differs.
        let dice = match profile.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            profile,
            applied_at: now,
            dice,
        }
    }
}

/// The outcome of [`FaultEngine::admit`].
#[derive(Debug)]
pub enum Admission {
    Rejected(Rejection),
    /// Serve the request after `latency`; the request counts as in flight until `guard` drops.
    Admitted {
        latency: Duration,
        guard: InFlightGuard,
    },
}

/// Keeps one request counted in flight. Dropping it (answer sent, or the client went away and
/// the handler was cancelled) releases the slot.
#[derive(Debug)]
pub struct InFlightGuard {
    in_flight: Arc<AtomicU32>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl FaultEngine {
    /// Applies `profile` at `now` after validating it.
    pub fn new(profile: FaultProfile, now: Instant) -> Result<Self, InvalidProfile> {
        validate_profile(&profile)?;
        Ok(Self {
            state: Mutex::new(EngineState::new(profile, now)),
            in_flight: Arc::new(AtomicU32::new(0)),
        })
    }

    /// The profile in force (outage windows relative to when it was applied).
    pub fn profile(&self) -> FaultProfile {
        self.lock().profile.clone()
    }

    /// Requests admitted and not yet answered.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Replaces the profile; its outage windows now count from `now` and its dice restart
    /// from its seed. Requests already in flight keep their slots.
    pub fn replace(&self, profile: FaultProfile, now: Instant) -> Result<(), InvalidProfile> {
        validate_profile(&profile)?;
        *self.lock() = EngineState::new(profile, now);
        Ok(())
    }

    /// Adds an outage window that starts at `now` to the current profile and returns the
    /// updated profile. The dice are left alone so a seeded run stays reproducible.
    pub fn start_outage(
        &self,
        duration_ms: u64,
        status: u16,
        now: Instant,
    ) -> Result<FaultProfile, InvalidProfile> {
        let mut state = self.lock();
        let start_ms = millis_between(state.applied_at, now);
        let outage = Outage {
            start_ms,
            duration_ms,
            status,
        };
        validate_outage("", &outage)?;
        state.profile.outages.push(outage);
        Ok(state.profile.clone())
    }

    /// Decides one request at `now` and, when it is served, counts it in flight.
    pub fn admit(&self, now: Instant) -> Admission {
        let mut state = self.lock();
        let since_applied = now.saturating_duration_since(state.applied_at);
        let dice = Dice::roll(&mut state.dice);
        // Increments happen only under the lock, so this load cannot be overtaken by another
        // admission; a concurrent release only makes the check more conservative.
        let in_flight = self.in_flight.load(Ordering::Acquire);
        match decide(&state.profile, since_applied, in_flight, dice) {
            Verdict::Reject(rejection) => Admission::Rejected(rejection),
            Verdict::Serve { latency } => {
                self.in_flight.fetch_add(1, Ordering::AcqRel);
                Admission::Admitted {
                    latency,
                    guard: InFlightGuard {
                        in_flight: Arc::clone(&self.in_flight),
                    },
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, EngineState> {
        // The state is replaced wholesale or read; a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn millis_between(earlier: Instant, later: Instant) -> u64 {
    u64::try_from(later.saturating_duration_since(earlier).as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_at(engine: &FaultEngine, now: Instant) -> u16 {
        match engine.admit(now) {
            Admission::Rejected(rejection) => rejection.status,
            Admission::Admitted { .. } => 200,
        }
    }

    #[test]
    fn capacity_counts_admitted_requests_until_their_guard_drops() {
        let start = Instant::now();
        let profile = FaultProfile {
            capacity: Some(2),
            ..FaultProfile::default()
        };
        let engine = FaultEngine::new(profile, start).expect("valid profile");
        let first = engine.admit(start);
        let second = engine.admit(start);
        assert_eq!(engine.in_flight(), 2);
        assert_eq!(status_at(&engine, start), 429);
        drop(first);
        assert_eq!(engine.in_flight(), 1);
        let third = engine.admit(start);
        assert!(matches!(third, Admission::Admitted { .. }));
        drop((second, third));
        assert_eq!(engine.in_flight(), 0);
    }

    #[test]
    fn outage_started_later_is_relative_to_the_profile_and_ends() {
        let start = Instant::now();
        let engine = FaultEngine::new(FaultProfile::default(), start).expect("valid profile");
        let outage_at = start + Duration::from_millis(1_000);
        let profile = engine
            .start_outage(200, 503, outage_at)
            .expect("valid outage");
        assert_eq!(
            profile.outages,
            vec![Outage {
                start_ms: 1_000,
                duration_ms: 200,
                status: 503
            }]
        );
        assert_eq!(status_at(&engine, outage_at), 503);
        assert_eq!(
            status_at(&engine, outage_at + Duration::from_millis(199)),
            503
        );
        assert_eq!(
            status_at(&engine, outage_at + Duration::from_millis(200)),
            200
        );
    }

    #[test]
    fn replacing_the_profile_restarts_the_outage_clock() {
        let start = Instant::now();
        let profile = FaultProfile {
            outages: vec![Outage {
                start_ms: 0,
                duration_ms: 100,
                status: 503,
            }],
            ..FaultProfile::default()
        };
        let engine = FaultEngine::new(profile.clone(), start).expect("valid profile");
        let later = start + Duration::from_secs(10);
        assert_eq!(status_at(&engine, later), 200);
        engine.replace(profile, later).expect("valid profile");
        assert_eq!(status_at(&engine, later), 503);
    }

    #[test]
    fn same_seed_gives_the_same_fault_sequence() {
        let start = Instant::now();
        let profile = FaultProfile {
            rate_500: 0.5,
            seed: Some(7),
            ..FaultProfile::default()
        };
        let sequence = |engine: &FaultEngine| -> Vec<u16> {
            (0..64).map(|_| status_at(engine, start)).collect()
        };
        let engine = FaultEngine::new(profile.clone(), start).expect("valid profile");
        let first = sequence(&engine);
        engine.replace(profile, start).expect("valid profile");
        assert_eq!(sequence(&engine), first);
        assert!(first.contains(&500) && first.contains(&200), "{first:?}");
    }

    #[test]
    fn invalid_outage_is_rejected_and_not_added() {
        let start = Instant::now();
        let engine = FaultEngine::new(FaultProfile::default(), start).expect("valid profile");
        let error = engine
            .start_outage(100, 200, start)
            .expect_err("200 is not an outage status");
        assert_eq!(error.field, "status");
        assert!(engine.profile().outages.is_empty());
    }
}
