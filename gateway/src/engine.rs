//! The live fault state: the current profile, when it was applied, the fault dice, the
//! in-flight count and the requests held open by a hang.
//!
//! One mutex guards the decision and the admission together so that `capacity` is exact under
//! concurrency: two requests can never both see `capacity - 1` in flight and both be admitted.
//! The critical section is a few comparisons and two RNG draws; nothing awaits inside it.
//!
//! A held request subscribes to the release signal under that same mutex, and replacing the
//! profile signals under it too, so a request can never be held by a profile that is already
//! gone and then miss the release.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use agentfleet_protocol::gateway::{FaultProfile, HeldRequests, Outage};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::watch;

use crate::decision::{Dice, Rejection, Verdict, decide};
use crate::validate::{InvalidProfile, validate_outage, validate_profile};

/// Shared fault state. Every method takes `now` so tests can drive it with a synthetic clock.
#[derive(Debug)]
pub struct FaultEngine {
    state: Mutex<EngineState>,
    in_flight: Arc<AtomicU32>,
    held: Arc<Mutex<HeldRequests>>,
    /// Bumped whenever the profile is replaced: the signal held requests wait for.
    release: watch::Sender<u64>,
}

#[derive(Debug)]
struct EngineState {
    profile: FaultProfile,
    applied_at: Instant,
    dice: StdRng,
    /// Answers admitted since the profile was applied, for the tasks it hangs.
    answers: HashMap<String, u32>,
    /// False once the gateway is shutting down: nothing is held any more.
    holding: bool,
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
            answers: HashMap::new(),
            holding: true,
        }
    }

    /// Whether a request of `task_id` must be held: the profile hangs the task and it has had
    /// its answers.
    fn hangs(&self, task_id: Option<&str>) -> bool {
        let Some(task_id) = task_id.filter(|_| self.holding) else {
            return false;
        };
        self.profile
            .hangs
            .iter()
            .find(|hang| hang.task_id == task_id)
            .is_some_and(|hang| {
                self.answers.get(task_id).copied().unwrap_or(0) >= hang.after_answers
            })
    }

    /// Counts an admitted answer of `task_id`, if the profile hangs that task (so the map stays
    /// as small as the profile).
    fn count_answer(&mut self, task_id: Option<&str>) {
        if let Some(task_id) = task_id
            && self
                .profile
                .hangs
                .iter()
                .any(|hang| hang.task_id == task_id)
        {
            *self.answers.entry(task_id.to_owned()).or_default() += 1;
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
    /// Hold the request open, unanswered; once [`HeldRequest::released`] returns (the profile
    /// was replaced, or the gateway is shutting down), answer it.
    Held(HeldRequest),
}

/// A request held open by a hang. It is listed by [`FaultEngine::held`] until dropped.
#[derive(Debug)]
pub struct HeldRequest {
    release: watch::Receiver<u64>,
    task_id: String,
    held: Arc<Mutex<HeldRequests>>,
}

impl HeldRequest {
    /// Waits until the profile is replaced, the gateway shuts down ([`FaultEngine::stop_holding`])
    /// or the engine is gone.
    pub async fn released(mut self) {
        // An error means the sender is gone with the engine: nothing will ever release it.
        let _ = self.release.changed().await;
    }
}

impl Drop for HeldRequest {
    fn drop(&mut self) {
        let mut held = lock(&self.held);
        if let Some(count) = held.get_mut(&self.task_id) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.task_id);
            }
        }
    }
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
            held: Arc::new(Mutex::new(HeldRequests::new())),
            release: watch::Sender::new(0),
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

    /// Requests held open by a hang right now, by task id.
    pub fn held(&self) -> HeldRequests {
        lock(&self.held).clone()
    }

    /// Replaces the profile; its outage windows now count from `now`, its dice restart from its
    /// seed and its hangs count answers from zero. Held requests are released (and answered);
    /// requests already in flight keep their slots.
    pub fn replace(&self, profile: FaultProfile, now: Instant) -> Result<(), InvalidProfile> {
        validate_profile(&profile)?;
        let mut state = self.lock();
        let holding = state.holding;
        *state = EngineState::new(profile, now);
        state.holding = holding;
        self.release.send_modify(|generation| *generation += 1);
        Ok(())
    }

    /// Releases every held request and holds no more, for a shutdown: the profile's hangs no
    /// longer apply, everything else does.
    pub fn stop_holding(&self) {
        let mut state = self.lock();
        state.holding = false;
        self.release.send_modify(|generation| *generation += 1);
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

    /// Decides one request of `task_id` at `now`: held by a hang, refused, or served (then
    /// counted in flight).
    pub fn admit(&self, now: Instant, task_id: Option<&str>) -> Admission {
        let mut state = self.lock();
        if state.hangs(task_id) {
            let task_id = task_id.unwrap_or_default().to_owned();
            *lock(&self.held).entry(task_id.clone()).or_default() += 1;
            return Admission::Held(HeldRequest {
                release: self.release.subscribe(),
                task_id,
                held: Arc::clone(&self.held),
            });
        }
        let since_applied = now.saturating_duration_since(state.applied_at);
        let dice = Dice::roll(&mut state.dice);
        // Increments happen only under the lock, so this load cannot be overtaken by another
        // admission; a concurrent release only makes the check more conservative.
        let in_flight = self.in_flight.load(Ordering::Acquire);
        match decide(&state.profile, since_applied, in_flight, dice) {
            Verdict::Reject(rejection) => Admission::Rejected(rejection),
            Verdict::Serve { latency } => {
                state.count_answer(task_id);
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
        lock(&self.state)
    }
}

/// Every lock here guards state that is replaced wholesale or changed by one statement, so a
/// panic elsewhere cannot leave it half-written: a poisoned lock is still good.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis_between(earlier: Instant, later: Instant) -> u64 {
    u64::try_from(later.saturating_duration_since(earlier).as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentfleet_protocol::gateway::Hang;

    fn status_at(engine: &FaultEngine, now: Instant) -> u16 {
        match engine.admit(now, None) {
            Admission::Rejected(rejection) => rejection.status,
            Admission::Admitted { .. } => 200,
            Admission::Held(_) => panic!("no hang in these profiles"),
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
        let first = engine.admit(start, None);
        let second = engine.admit(start, None);
        assert_eq!(engine.in_flight(), 2);
        assert_eq!(status_at(&engine, start), 429);
        drop(first);
        assert_eq!(engine.in_flight(), 1);
        let third = engine.admit(start, None);
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
            outages: vec![first_100_ms_down()],
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

    /// A 503 outage over the profile's first 100 ms.
    fn first_100_ms_down() -> Outage {
        Outage {
            start_ms: 0,
            duration_ms: 100,
            status: 503,
        }
    }

    fn hang(task_id: &str, after_answers: u32) -> Hang {
        Hang {
            task_id: task_id.to_owned(),
            after_answers,
        }
    }

    #[tokio::test]
    async fn a_hung_task_is_held_after_its_answers_until_the_profile_is_replaced() {
        let start = Instant::now();
        let profile = FaultProfile {
            hangs: vec![hang("t", 2)],
            ..FaultProfile::default()
        };
        let engine = FaultEngine::new(profile, start).expect("valid profile");
        for _ in 0..2 {
            assert!(matches!(
                engine.admit(start, Some("t")),
                Admission::Admitted { .. }
            ));
        }
        let Admission::Held(held) = engine.admit(start, Some("t")) else {
            panic!("the third request of t must be held");
        };
        // Other tasks and untagged requests are not affected.
        assert_eq!(status_at(&engine, start), 200);
        assert!(matches!(
            engine.admit(start, Some("other")),
            Admission::Admitted { .. }
        ));
        assert_eq!(engine.held(), HeldRequests::from([("t".to_owned(), 1)]));
        let waiter = tokio::spawn(held.released());
        // Still held after a moment: only a new profile releases it.
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        engine
            .replace(FaultProfile::default(), start)
            .expect("valid profile");
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("released by the new profile")
            .expect("the waiter does not panic");
        assert!(engine.held().is_empty(), "{:?}", engine.held());
        assert!(matches!(
            engine.admit(start, Some("t")),
            Admission::Admitted { .. }
        ));
    }

    #[tokio::test]
    async fn stop_holding_releases_and_no_longer_holds_even_after_a_new_profile() {
        let start = Instant::now();
        let profile = FaultProfile {
            hangs: vec![hang("t", 0)],
            ..FaultProfile::default()
        };
        let engine = FaultEngine::new(profile.clone(), start).expect("valid profile");
        let Admission::Held(held) = engine.admit(start, Some("t")) else {
            panic!("after 0 answers the first request is held");
        };
        engine.stop_holding();
        tokio::time::timeout(Duration::from_secs(5), held.released())
            .await
            .expect("released by the shutdown");
        engine.replace(profile, start).expect("valid profile");
        assert!(matches!(
            engine.admit(start, Some("t")),
            Admission::Admitted { .. }
        ));
    }

    #[test]
    fn refused_requests_do_not_count_as_answers_of_a_hung_task() {
        let start = Instant::now();
        let profile = FaultProfile {
            outages: vec![first_100_ms_down()],
            hangs: vec![hang("t", 1)],
            ..FaultProfile::default()
        };
        let engine = FaultEngine::new(profile, start).expect("valid profile");
        assert!(matches!(
            engine.admit(start, Some("t")),
            Admission::Rejected(_)
        ));
        let later = start + Duration::from_millis(200);
        assert!(matches!(
            engine.admit(later, Some("t")),
            Admission::Admitted { .. }
        ));
        assert!(matches!(engine.admit(later, Some("t")), Admission::Held(_)));
    }

    #[test]
    fn after_zero_answers_the_first_request_is_held() {
        let start = Instant::now();
        let profile = FaultProfile {
            hangs: vec![hang("t", 0)],
            ..FaultProfile::default()
        };
        let engine = FaultEngine::new(profile, start).expect("valid profile");
        let held = engine.admit(start, Some("t"));
        assert!(matches!(held, Admission::Held(_)));
        assert_eq!(engine.held().get("t"), Some(&1));
        drop(held);
        assert!(engine.held().is_empty());
    }
}
