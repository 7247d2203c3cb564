//! The cluster's watch stream ([`agentfleet_cluster::events::cluster_events`]) as
//! [`RuntimeEvent`]s.
//!
//! A watch delivers the *state* of a pod each time it changes; the runtime trait wants
//! *transitions*. [`EventMapper`] remembers what it has already reported per pod and per index
//! and emits each transition once: the first time a pod runs (`Started`), the first time it is
//! seen terminated (`OomKilled` then `Exited`), an in-place restart (`Restarted`), a second pod
//! for an index (`Replaced`, the Job controller's replacement), and an index whose failures
//! exceed the Job's `backoffLimitPerIndex` (`IndexFailed`). Evicted pods carry the
//! `DisruptionTarget` condition, which the reference podFailurePolicy ignores, so they do not
//! count as failures here either. `StopRequested` is published by the session itself when the
//! Eviction API accepts a stop.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use agentfleet_cluster::events::{ClusterEvent, ClusterEventKind};
use agentfleet_cluster::pod_status;

use super::job::JobTable;
use super::status::agent_ref;
use crate::runtime::{AgentRef, RuntimeEvent};

/// Exit code of a SIGKILLed process (128 + 9).
const SIGKILL_EXIT: i64 = 137;

/// Pods the session deleted with grace 0. A force-deleted pod vanishes from the API before the
/// kubelet reports its termination, so its exit is known only from having killed it.
#[derive(Debug, Clone, Default)]
pub struct Killed(Arc<Mutex<HashSet<String>>>);

impl Killed {
    pub fn insert(&self, pod: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pod.to_owned());
    }

    fn contains(&self, pod: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(pod)
    }
}

#[derive(Debug)]
struct PodSeen {
    agent: AgentRef,
    started: bool,
    exited: bool,
    restarts: i32,
}

/// Turns successive pod states into transitions.
#[derive(Debug)]
pub struct EventMapper {
    jobs: JobTable,
    killed: Killed,
    pods: HashMap<String, PodSeen>,
    /// The newest pod of each index.
    latest: HashMap<u32, AgentRef>,
    /// Failures that count against the index's backoff limit.
    failures: HashMap<u32, u32>,
    given_up: HashSet<u32>,
}

impl EventMapper {
    pub fn new(jobs: JobTable, killed: Killed) -> EventMapper {
        EventMapper {
            jobs,
            killed,
            pods: HashMap::new(),
            latest: HashMap::new(),
            failures: HashMap::new(),
            given_up: HashSet::new(),
        }
    }

    /// The transitions `event` reveals, in the order they happened.
    pub fn map(&mut self, event: &ClusterEvent) -> Vec<RuntimeEvent> {
        match &event.kind {
            ClusterEventKind::Pod(status) => self.pod(status),
            ClusterEventKind::PodDeleted { name } => self.deleted(name),
            // Job counters and Kubernetes Events go to the artifacts, not to the trait.
            ClusterEventKind::Job(_)
            | ClusterEventKind::JobDeleted { .. }
            | ClusterEventKind::Event(_) => Vec::new(),
        }
    }

    fn pod(&mut self, status: &pod_status::AgentStatus) -> Vec<RuntimeEvent> {
        let Some(agent) = agent_ref(&self.jobs, status) else {
            return Vec::new();
        };
        // Pods of Jobs this session did not start (KEDA's, from a ScaledJob) keep their
        // completion index, which says nothing about replacement or an index's backoff.
        let ours = status
            .job
            .as_deref()
            .is_some_and(|job| self.jobs.get(job).is_some());
        let mut out = Vec::new();
        if !self.pods.contains_key(&status.name) {
            if ours
                && let Some(previous) = self.latest.insert(agent.index, agent.clone())
                && previous.name != agent.name
            {
                out.push(RuntimeEvent::Replaced {
                    failed: previous,
                    replacement: agent.clone(),
                });
            }
            self.pods.insert(
                status.name.clone(),
                PodSeen {
                    agent: agent.clone(),
                    started: false,
                    exited: false,
                    restarts: 0,
                },
            );
        }
        let seen = self
            .pods
            .get_mut(&status.name)
            .expect("inserted just above");
        let finished = matches!(status.phase.as_str(), "Succeeded" | "Failed");
        if !seen.started && (status.phase == "Running" || finished) {
            seen.started = true;
            out.push(RuntimeEvent::Started {
                agent: agent.clone(),
            });
        }
        if status.restarts > seen.restarts {
            seen.restarts = status.restarts;
            let oom = status
                .last_terminated
                .as_ref()
                .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"));
            if oom {
                out.push(RuntimeEvent::OomKilled {
                    agent: agent.clone(),
                });
            }
            out.push(RuntimeEvent::Restarted {
                agent: agent.clone(),
            });
        }
        if !seen.exited
            && finished
            && let Some(terminated) = &status.terminated
        {
            seen.exited = true;
            let oom_killed = terminated.reason.as_deref() == Some("OOMKilled");
            if oom_killed {
                out.push(RuntimeEvent::OomKilled {
                    agent: agent.clone(),
                });
            }
            out.push(RuntimeEvent::Exited {
                agent: agent.clone(),
                exit_code: i64::from(terminated.exit_code),
                oom_killed,
            });
            if ours && status.phase == "Failed" && status.disruption_target.is_none() {
                out.extend(self.count_failure(status.job.as_deref(), agent.index));
            }
        }
        out
    }

    fn deleted(&mut self, name: &str) -> Vec<RuntimeEvent> {
        let Some(seen) = self.pods.get_mut(name) else {
            return Vec::new();
        };
        if seen.exited || !self.killed.contains(name) {
            return Vec::new();
        }
        seen.exited = true;
        vec![RuntimeEvent::Exited {
            agent: seen.agent.clone(),
            exit_code: SIGKILL_EXIT,
            oom_killed: false,
        }]
    }

    fn count_failure(&mut self, job: Option<&str>, index: u32) -> Option<RuntimeEvent> {
        let failures = self.failures.entry(index).or_insert(0);
        *failures += 1;
        let limit = job
            .and_then(|j| self.jobs.get(j))
            .and_then(|r| r.backoff_limit_per_index)?;
        let limit = u32::try_from(limit).unwrap_or(0);
        (*failures > limit && self.given_up.insert(index)).then_some(RuntimeEvent::IndexFailed {
            index,
            failures: *failures,
        })
    }
}
