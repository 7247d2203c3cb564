//! Does KEDA's ScaledJob scaler follow its documented formula on the observed queue?
//!
//! KEDA (scale_jobs.go): `maxScale = ceil(min(queueLength / value, maxReplicaCount))`; "running"
//! is the number of unfinished Jobs of the ScaledJob. Each poll, while the trigger is active
//! (queueLength > 0), it creates `effective` new Jobs:
//! - default strategy: `maxScale - running`;
//! - accurate strategy: `maxReplicaCount - running` if `maxScale + running > maxReplicaCount`,
//!   else `maxScale - pending`.
//!
//! (negative values mean none). The RabbitMQ trigger over AMQP counts *ready* messages only.
//!
//! The check takes a timeline sampled more often than the polling interval and decides three
//! things: the fleet never ran more than maxReplicaCount Jobs; in any stretch shorter than one
//! polling interval (which contains at most one poll) no more Jobs were created than the
//! largest demand possible in it (judged on `outstanding_messages`, an upper bound of what a
//! poll between two samples could have seen ready); and whenever demand stayed positive for a whole polling interval
//! (plus `slack` for API latency), at least the smallest demand seen was created in it.

use std::time::Duration;

use serde::Serialize;

use super::Verdict;

/// `spec.scalingStrategy.strategy` of a ScaledJob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Default,
    Accurate,
}

impl Strategy {
    /// Parses the ScaledJob field; `custom` is not modelled and is an error naming the field.
    pub fn from_spec(value: Option<&str>) -> Result<Strategy, String> {
        match value {
            None | Some("") | Some("default") => Ok(Strategy::Default),
            Some("accurate") => Ok(Strategy::Accurate),
            Some(other) => Err(format!(
                "spec.scalingStrategy.strategy `{other}` is not modelled by the scaling check; use `default` or `accurate`"
            )),
        }
    }
}

/// What the check needs from the ScaledJob.
#[derive(Debug, Clone, Serialize)]
pub struct ScalerSpec {
    /// The trigger's `value` (messages per Job), > 0.
    pub target_value: f64,
    pub max_replica_count: u32,
    pub polling_interval: Duration,
    pub strategy: Strategy,
}

/// One observation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Since the start of the scenario.
    pub t: Duration,
    /// Ready messages in the queue (what the AMQP trigger counts).
    pub ready_messages: u64,
    /// An upper bound of the ready count at any moment since the previous sample (published
    /// minus finished tasks): a KEDA poll between two samples may see a spike neither sample
    /// caught, so the "at most" side of the check uses this. At least `ready_messages`.
    pub outstanding_messages: u64,
    /// Unfinished Jobs of the ScaledJob.
    pub running_jobs: u32,
    /// Unfinished Jobs none of whose pods is Running or Succeeded yet (KEDA's "pending").
    pub pending_jobs: u32,
    /// Jobs created so far (cumulative).
    pub created_jobs: u32,
}

/// `ceil(min(queueLength / value, maxReplicaCount))`.
pub fn max_scale(queue_length: u64, target_value: f64, max_replica_count: u32) -> u32 {
    let ratio = queue_length as f64 / target_value;
    ratio.min(f64::from(max_replica_count)).ceil() as u32
}

/// How many Jobs one poll in the state of `sample` creates.
pub fn jobs_per_poll(spec: &ScalerSpec, sample: &Sample) -> u32 {
    if sample.ready_messages == 0 {
        return 0;
    }
    let scale = i64::from(max_scale(
        sample.ready_messages,
        spec.target_value,
        spec.max_replica_count,
    ));
    let running = i64::from(sample.running_jobs);
    let effective = match spec.strategy {
        Strategy::Default => scale - running,
        Strategy::Accurate if scale + running > i64::from(spec.max_replica_count) => {
            i64::from(spec.max_replica_count) - running
        }
        Strategy::Accurate => scale - i64::from(sample.pending_jobs),
    };
    effective.max(0) as u32
}

/// Decides whether the timeline follows the formula (see the module doc). `slack` absorbs
/// the time from KEDA's decision to the Job being visible.
pub fn check(spec: &ScalerSpec, timeline: &[Sample], slack: Duration) -> Verdict {
    let mut reasons = Vec::new();
    if spec.target_value <= 0.0 {
        return Verdict::Failed {
            reasons: vec![format!("trigger value {} must be > 0", spec.target_value)],
        };
    }
    if timeline.len() < 2 {
        return Verdict::Skipped {
            reason: format!("{} samples recorded; at least 2 are needed", timeline.len()),
        };
    }
    let interval = spec.polling_interval;
    for sample in timeline {
        if sample.running_jobs > spec.max_replica_count {
            reasons.push(format!(
                "t={:?}: {} Jobs running, above maxReplicaCount {}",
                sample.t, sample.running_jobs, spec.max_replica_count
            ));
        }
    }
    // Least demand from what was sampled; most demand from the outstanding bound.
    let demand: Vec<u32> = timeline.iter().map(|s| jobs_per_poll(spec, s)).collect();
    let demand_most: Vec<u32> = timeline
        .iter()
        .map(|s| {
            let bound = Sample {
                ready_messages: s.ready_messages.max(s.outstanding_messages),
                ..*s
            };
            jobs_per_poll(spec, &bound)
        })
        .collect();
    for i in 0..timeline.len() {
        for j in i + 1..timeline.len() {
            let span = timeline[j].t.saturating_sub(timeline[i].t);
            let created = timeline[j]
                .created_jobs
                .saturating_sub(timeline[i].created_jobs);
            let window = &demand[i..=j];
            if span < interval {
                let most = *demand_most[i..=j].iter().max().unwrap_or(&0);
                if created > most {
                    reasons.push(format!(
                        "t={:?}..{:?} (< one polling interval {interval:?}): {created} Jobs created, but one poll creates at most {most} ({:?} strategy, ready={} running={} pending={})",
                        timeline[i].t, timeline[j].t, spec.strategy, timeline[i].ready_messages, timeline[i].running_jobs, timeline[i].pending_jobs
                    ));
                }
            } else if span >= interval + slack {
                let least = *window.iter().min().unwrap_or(&0);
                if created < least {
                    reasons.push(format!(
                        "t={:?}..{:?} (> polling interval {interval:?} + {slack:?}): demand stayed >= {least} Jobs per poll but only {created} were created",
                        timeline[i].t, timeline[j].t
                    ));
                }
                break; // longer windows from i are implied by this one
            }
        }
    }
    reasons.dedup();
    let peak = timeline.iter().map(|s| s.running_jobs).max().unwrap_or(0);
    Verdict::from_reasons(
        reasons,
        format!(
            "{} samples: KEDA followed the {:?} formula within one polling interval; peak {peak} Jobs <= maxReplicaCount {}",
            timeline.len(),
            spec.strategy,
            spec.max_replica_count
        ),
    )
}

impl ScalerSpec {
    /// Reads the spec from a ScaledJob object. KEDA defaults: pollingInterval 30 s,
    /// maxReplicaCount 100; the RabbitMQ trigger's target is `metadata.value` (mode
    /// QueueLength) or the legacy `metadata.queueLength`.
    pub fn from_scaled_job(scaled_job: &serde_json::Value) -> Result<ScalerSpec, String> {
        let spec = &scaled_job["spec"];
        let trigger = spec["triggers"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "rabbitmq"))
            .ok_or("spec.triggers has no `rabbitmq` trigger; the scaling check models the RabbitMQ queue-length trigger")?;
        let metadata = &trigger["metadata"];
        let value = metadata["value"]
            .as_str()
            .or_else(|| metadata["queueLength"].as_str())
            .unwrap_or("20");
        let target_value: f64 = value.parse().map_err(|_| {
            format!("spec.triggers[rabbitmq].metadata.value `{value}` is not a number")
        })?;
        if metadata["mode"]
            .as_str()
            .is_some_and(|m| m != "QueueLength")
        {
            return Err(
                "spec.triggers[rabbitmq].metadata.mode must be QueueLength for the scaling check"
                    .into(),
            );
        }
        let count = |field: &str, default: u64| spec[field].as_u64().unwrap_or(default);
        Ok(ScalerSpec {
            target_value,
            max_replica_count: u32::try_from(count("maxReplicaCount", 100))
                .map_err(|_| "spec.maxReplicaCount is too large".to_owned())?,
            polling_interval: Duration::from_secs(count("pollingInterval", 30)),
            strategy: Strategy::from_spec(spec["scalingStrategy"]["strategy"].as_str())?,
        })
    }
}

/// Folds the cluster event stream into the Job side of [`Sample`]s; the queue depth comes from
/// the broker (the harness' queue client) at sampling time.
#[derive(Debug, Default)]
pub struct JobRecorder {
    scaled_job: String,
    jobs: std::collections::BTreeMap<String, crate::events::JobState>,
    created: std::collections::BTreeSet<String>,
    /// Jobs with a pod seen Running or Succeeded: no longer pending for KEDA
    /// (`isAnyPodRunningOrCompleted`), whatever their readiness.
    started: std::collections::BTreeSet<String>,
}

impl JobRecorder {
    /// Records Jobs created by the ScaledJob `scaled_job` (label `scaledjob.keda.sh/name`).
    pub fn new(scaled_job: impl Into<String>) -> JobRecorder {
        JobRecorder {
            scaled_job: scaled_job.into(),
            ..JobRecorder::default()
        }
    }

    pub fn observe(&mut self, event: &crate::events::ClusterEvent) {
        use crate::events::ClusterEventKind;
        match &event.kind {
            ClusterEventKind::Job(job)
                if job.scaled_job.as_deref() == Some(self.scaled_job.as_str()) =>
            {
                self.created.insert(job.name.clone());
                self.jobs.insert(job.name.clone(), job.clone());
            }
            ClusterEventKind::JobDeleted { name } => {
                self.jobs.remove(name);
            }
            ClusterEventKind::Pod(pod) if pod.phase == "Running" || pod.phase == "Succeeded" => {
                if let Some(job) = &pod.job {
                    self.started.insert(job.clone());
                }
            }
            _ => {}
        }
    }

    /// The sample at `t` with `ready_messages` read from the broker (the outstanding bound
    /// defaults to it; the caller may raise it).
    pub fn sample(&self, t: Duration, ready_messages: u64) -> Sample {
        let unfinished: Vec<_> = self.jobs.values().filter(|j| !j.finished()).collect();
        let pending = unfinished
            .iter()
            .filter(|j| j.ready == 0 && !self.started.contains(&j.name))
            .count();
        Sample {
            t,
            ready_messages,
            outstanding_messages: ready_messages,
            running_jobs: unfinished.len() as u32,
            pending_jobs: pending as u32,
            created_jobs: self.created.len() as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ClusterEvent, ClusterEventKind};

    fn job_event(name: &str, ready: i32, finished: bool) -> ClusterEvent {
        crate::mock::job_event(name, "agent-scaledjob", ready, finished)
    }

    #[test]
    fn a_job_whose_pod_runs_is_not_pending_even_before_it_is_ready() {
        let mut recorder = JobRecorder::new("agent-scaledjob");
        recorder.observe(&job_event("a", 0, false));
        recorder.observe(&job_event("b", 0, false));
        assert_eq!(recorder.sample(Duration::ZERO, 0).pending_jobs, 2);
        let pod = serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(serde_json::json!({
            "metadata": {"name": "a-xyz", "labels": {"batch.kubernetes.io/job-name": "a", "app": "ai-agent"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
        }))
        .unwrap();
        recorder.observe(&ClusterEvent {
            observed: jiff::Timestamp::UNIX_EPOCH,
            kind: ClusterEventKind::Pod(crate::pod_status::agent_status(&pod)),
        });
        assert_eq!(recorder.sample(Duration::ZERO, 0).pending_jobs, 1);
    }

    #[test]
    fn a_poll_between_two_samples_may_see_what_neither_sampled() {
        let spec = spec(Strategy::Accurate);
        // A burst of 25 published and taken by agents between two 1 s samples: no sample saw
        // it ready, yet KEDA's poll in between did and created 5 Jobs.
        let mut burst = s(1, 0, 0, 0, 5);
        burst.outstanding_messages = 25;
        let timeline = [s(0, 0, 0, 0, 0), burst, s(2, 0, 5, 0, 5)];
        assert!(check(&spec, &timeline, Duration::from_secs(5)).passed());
        // Without the outstanding bound the same creations are more than one poll makes.
        let unbounded = [s(0, 0, 0, 0, 0), s(1, 0, 0, 0, 5), s(2, 0, 5, 0, 5)];
        assert!(!check(&spec, &unbounded, Duration::from_secs(5)).passed());
    }

    #[test]
    fn recorder_counts_running_pending_and_created() {
        let mut recorder = JobRecorder::new("agent-scaledjob");
        recorder.observe(&job_event("a", 1, false));
        recorder.observe(&job_event("b", 0, false));
        recorder.observe(&job_event("c", 0, true));
        recorder.observe(&ClusterEvent {
            observed: jiff::Timestamp::UNIX_EPOCH,
            kind: ClusterEventKind::JobDeleted { name: "c".into() },
        });
        let sample = recorder.sample(Duration::from_secs(3), 7);
        assert_eq!(
            (
                sample.running_jobs,
                sample.pending_jobs,
                sample.created_jobs,
                sample.ready_messages
            ),
            (2, 1, 3, 7)
        );
    }

    #[test]
    fn spec_is_read_from_the_reference_scaled_job() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../manifests/base/scaledjob.yaml");
        let object: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let spec = ScalerSpec::from_scaled_job(&object).unwrap();
        assert!(
            spec.target_value > 0.0 && spec.max_replica_count > 0,
            "{spec:?}"
        );
    }

    fn spec(strategy: Strategy) -> ScalerSpec {
        ScalerSpec {
            target_value: 2.0,
            max_replica_count: 5,
            polling_interval: Duration::from_secs(10),
            strategy,
        }
    }

    fn s(t: u64, ready: u64, running: u32, pending: u32, created: u32) -> Sample {
        Sample {
            t: Duration::from_secs(t),
            ready_messages: ready,
            outstanding_messages: ready,
            running_jobs: running,
            pending_jobs: pending,
            created_jobs: created,
        }
    }

    #[test]
    fn max_scale_is_the_documented_formula() {
        assert_eq!(max_scale(7, 2.0, 10), 4); // ceil(3.5)
        assert_eq!(max_scale(100, 2.0, 5), 5); // capped
        assert_eq!(max_scale(0, 2.0, 5), 0);
        assert_eq!(max_scale(1, 5.0, 5), 1); // ceil(0.2)
    }

    #[test]
    fn per_poll_demand_by_strategy() {
        let busy = s(0, 6, 2, 1, 2); // maxScale 3
        assert_eq!(jobs_per_poll(&spec(Strategy::Default), &busy), 1);
        assert_eq!(jobs_per_poll(&spec(Strategy::Accurate), &busy), 2); // 3 - pending 1
        let crowded = s(0, 10, 4, 0, 4); // maxScale 5, 5 + 4 > 5
        assert_eq!(jobs_per_poll(&spec(Strategy::Accurate), &crowded), 1); // capped: 5 - 4
        assert_eq!(
            jobs_per_poll(&spec(Strategy::Default), &s(0, 0, 0, 0, 0)),
            0
        );
        assert_eq!(
            Strategy::from_spec(Some("accurate")),
            Ok(Strategy::Accurate)
        );
        assert!(
            Strategy::from_spec(Some("custom"))
                .unwrap_err()
                .contains("spec.scalingStrategy.strategy")
        );
    }

    /// Recorded with the default strategy: 10 ready messages, value 2 -> 5 Jobs at the first
    /// poll; agents take messages (ready drops), no further Jobs while running covers demand.
    fn default_timeline() -> Vec<Sample> {
        vec![
            s(0, 10, 0, 0, 0),
            s(4, 10, 0, 0, 0),
            s(8, 10, 5, 5, 5),
            s(12, 5, 5, 0, 5),
            s(16, 5, 5, 0, 5),
            s(20, 0, 5, 0, 5),
            s(24, 0, 3, 0, 5),
            s(28, 0, 0, 0, 5),
        ]
    }

    #[test]
    fn recorded_default_timeline_passes() {
        let verdict = check(
            &spec(Strategy::Default),
            &default_timeline(),
            Duration::from_secs(2),
        );
        assert!(verdict.passed(), "{verdict:?}");
    }

    #[test]
    fn exceeding_max_replica_count_fails() {
        let mut timeline = default_timeline();
        timeline[3] = s(12, 5, 6, 0, 6);
        let verdict = check(&spec(Strategy::Default), &timeline, Duration::from_secs(2));
        let Verdict::Failed { reasons } = verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("above maxReplicaCount 5")),
            "{reasons:#?}"
        );
    }

    #[test]
    fn a_scaler_that_never_reacts_fails() {
        let timeline: Vec<Sample> = (0..8).map(|i| s(i * 4, 10, 0, 0, 0)).collect();
        let verdict = check(&spec(Strategy::Default), &timeline, Duration::from_secs(2));
        let Verdict::Failed { reasons } = verdict else {
            panic!("{verdict:?}")
        };
        assert!(reasons[0].contains("only 0 were created"), "{reasons:#?}");
    }

    #[test]
    fn jobs_created_while_the_queue_is_empty_fail() {
        let timeline = vec![s(0, 0, 0, 0, 0), s(4, 0, 2, 2, 2), s(8, 0, 2, 0, 2)];
        let verdict = check(&spec(Strategy::Default), &timeline, Duration::from_secs(2));
        assert!(!verdict.passed(), "{verdict:?}");
    }

    /// Recorded with the accurate strategy: pending Jobs are subtracted instead of running
    /// ones, so a second poll adds Jobs while the first ones still run.
    fn accurate_timeline() -> Vec<Sample> {
        vec![
            s(0, 4, 0, 0, 0),  // maxScale 2 -> 2 new
            s(6, 4, 2, 2, 2),  // still pending: 2 - 2 = 0
            s(12, 4, 2, 0, 2), // running, nothing pending, messages still ready -> 2 new (accurate)
            s(16, 4, 4, 2, 4),
            s(22, 0, 4, 0, 4),
            s(30, 0, 0, 0, 4),
        ]
    }

    #[test]
    fn accurate_timeline_passes_as_accurate_and_fails_as_default() {
        assert!(
            check(
                &spec(Strategy::Accurate),
                &accurate_timeline(),
                Duration::from_secs(2)
            )
            .passed()
        );
        let verdict = check(
            &spec(Strategy::Default),
            &accurate_timeline(),
            Duration::from_secs(2),
        );
        let Verdict::Failed { reasons } = verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("one poll creates at most 0")),
            "{reasons:#?}"
        );
    }

    #[test]
    fn too_short_a_timeline_is_skipped_not_passed() {
        assert!(matches!(
            check(
                &spec(Strategy::Default),
                &[s(0, 1, 0, 0, 0)],
                Duration::ZERO
            ),
            Verdict::Skipped { .. }
        ));
    }
}
