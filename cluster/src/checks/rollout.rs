//! Editing a ScaledJob mid-run must leave running Jobs alone.
//!
//! KEDA's default `rollout.strategy` deletes the ScaledJob's *running* Jobs when its spec
//! changes (killing agents mid-task); `gradual` keeps them and applies the new template to new
//! Jobs only. The recorder marks the moment of the edit and collects, from the cluster event
//! stream, the Jobs that were running then and were deleted before they finished.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Verdict;
use crate::events::{ClusterEvent, ClusterEventKind, JobState};

/// Folds cluster events around one ScaledJob edit.
#[derive(Debug, Default)]
pub struct RolloutRecorder {
    scaled_job: String,
    jobs: BTreeMap<String, JobState>,
    running_at_edit: Option<BTreeSet<String>>,
    deleted_unfinished: Vec<String>,
}

/// What the recorder saw.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutObservation {
    /// `spec.rollout.strategy` of the ScaledJob (None: KEDA's default).
    pub strategy: Option<String>,
    pub running_at_edit: Vec<String>,
    /// Jobs running at the edit that were deleted without finishing.
    pub deleted_unfinished: Vec<String>,
}

impl RolloutRecorder {
    pub fn new(scaled_job: impl Into<String>) -> RolloutRecorder {
        RolloutRecorder {
            scaled_job: scaled_job.into(),
            ..RolloutRecorder::default()
        }
    }

    pub fn observe(&mut self, event: &ClusterEvent) {
        match &event.kind {
            ClusterEventKind::Job(job)
                if job.scaled_job.as_deref() == Some(self.scaled_job.as_str()) =>
            {
                self.jobs.insert(job.name.clone(), job.clone());
            }
            ClusterEventKind::JobDeleted { name } => {
                let finished = self.jobs.remove(name).is_some_and(|j| j.finished());
                let was_running = self
                    .running_at_edit
                    .as_ref()
                    .is_some_and(|r| r.contains(name));
                if was_running && !finished {
                    self.deleted_unfinished.push(name.clone());
                }
            }
            _ => {}
        }
    }

    /// Call just before applying the edited ScaledJob: a default-strategy deletion may reach the
    /// watch before the apply returns.
    pub fn mark_edit(&mut self) {
        self.running_at_edit = Some(
            self.jobs
                .values()
                .filter(|j| !j.finished())
                .map(|j| j.name.clone())
                .collect(),
        );
    }

    pub fn finish(self, strategy: Option<String>) -> RolloutObservation {
        RolloutObservation {
            strategy,
            running_at_edit: self
                .running_at_edit
                .unwrap_or_default()
                .into_iter()
                .collect(),
            deleted_unfinished: self.deleted_unfinished,
        }
    }
}

/// Passes when no Job running at the edit was deleted before finishing.
pub fn check(observation: &RolloutObservation) -> Verdict {
    if observation.running_at_edit.is_empty() {
        return Verdict::Skipped {
            reason: "no Job was running when the ScaledJob was edited".into(),
        };
    }
    let reasons = observation
        .deleted_unfinished
        .iter()
        .map(|job| {
            format!(
                "Job {job} was running when the ScaledJob changed and was deleted before finishing (rollout.strategy: {}); set spec.rollout.strategy: gradual",
                observation.strategy.as_deref().unwrap_or("default")
            )
        })
        .collect();
    Verdict::from_reasons(
        reasons,
        format!(
            "{} running Job(s) survived the ScaledJob edit",
            observation.running_at_edit.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: ClusterEventKind) -> ClusterEvent {
        ClusterEvent {
            observed: jiff::Timestamp::UNIX_EPOCH,
            kind,
        }
    }

    fn job(name: &str, finished: bool) -> ClusterEvent {
        crate::mock::job_event(name, "agent-scaledjob", i32::from(!finished), finished)
    }

    fn deleted(name: &str) -> ClusterEvent {
        event(ClusterEventKind::JobDeleted { name: name.into() })
    }

    #[test]
    fn gradual_rollout_timeline_passes() {
        let mut recorder = RolloutRecorder::new("agent-scaledjob");
        for e in [job("a", false), job("b", false)] {
            recorder.observe(&e);
        }
        recorder.mark_edit();
        for e in [
            job("c", false),
            job("a", true),
            deleted("a"),
            job("b", true),
        ] {
            recorder.observe(&e);
        }
        let observation = recorder.finish(Some("gradual".into()));
        assert!(check(&observation).passed(), "{observation:?}");
    }

    #[test]
    fn default_rollout_timeline_fails() {
        let mut recorder = RolloutRecorder::new("agent-scaledjob");
        for e in [job("a", false), job("b", false), job("old", true)] {
            recorder.observe(&e);
        }
        recorder.mark_edit();
        for e in [deleted("a"), deleted("b"), deleted("old"), job("c", false)] {
            recorder.observe(&e);
        }
        let Verdict::Failed { reasons } = check(&recorder.finish(None)) else {
            panic!()
        };
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("Job a") && reasons[0].contains("gradual"));
    }

    #[test]
    fn nothing_running_is_skipped() {
        let mut recorder = RolloutRecorder::new("agent-scaledjob");
        recorder.mark_edit();
        assert!(matches!(
            check(&recorder.finish(None)),
            Verdict::Skipped { .. }
        ));
    }
}
