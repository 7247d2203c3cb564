//! The agent half of a Kubernetes session: start (Indexed Jobs), list, stop (Eviction API),
//! kill, logs. Kept apart from the session's platform (port-forwards, AMQP client) so that every
//! call is exercised by the mock-API tests without a broker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use agentfleet_cluster::checks::disruption;
use agentfleet_cluster::fleet::{self, Fleet, KillOutcome, LogRequest};
use agentfleet_cluster::pod_status::{self, JOB_NAME_LABEL, agent_status};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::events::Killed;
use super::job::{JobTable, plan_jobs};
use super::status;
use crate::runtime::event_bus::EventBus;
use crate::runtime::{AgentRef, AgentSet, AgentStatus, EvictOutcome, RuntimeError, RuntimeEvent};

/// How long a refused eviction waits for the budget to open before the refusal stands.
pub const DRAIN_PATIENCE: Duration = Duration::from_secs(30);

/// Agents of one namespace.
pub struct AgentOps {
    fleet: Fleet,
    reference_job: Job,
    jobs: JobTable,
    killed: Killed,
    bus: EventBus,
    sequence: AtomicU32,
    /// The template's grace period, reported with a stop that does not override it.
    grace: Duration,
    start_timeout: Duration,
    drain_patience: Duration,
}

impl std::fmt::Debug for AgentOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentOps")
            .field("namespace", &self.fleet.namespace())
            .field("jobs", &self.jobs.names())
            .finish_non_exhaustive()
    }
}

fn agent_error(agent: &AgentRef) -> impl Fn(String) -> RuntimeError + '_ {
    move |problem| RuntimeError::Agent {
        agent: agent.name.clone(),
        problem,
    }
}

impl AgentOps {
    pub fn new(
        client: Client,
        namespace: &str,
        reference_job: Job,
        bus: EventBus,
        grace: Duration,
        start_timeout: Duration,
    ) -> AgentOps {
        AgentOps {
            fleet: Fleet::new(client, namespace),
            reference_job,
            jobs: JobTable::default(),
            killed: Killed::default(),
            bus,
            sequence: AtomicU32::new(0),
            grace,
            start_timeout,
            drain_patience: DRAIN_PATIENCE,
        }
    }

    /// How long a refused eviction waits for the budget (default [`DRAIN_PATIENCE`]).
    pub fn with_drain_patience(mut self, patience: Duration) -> Self {
        self.drain_patience = patience;
        self
    }

    pub fn jobs(&self) -> &JobTable {
        &self.jobs
    }

    pub fn killed(&self) -> &Killed {
        &self.killed
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.fleet.client().clone(), self.fleet.namespace())
    }

    /// Applies the set's Jobs and waits until each index has a pod that runs (or already ended).
    pub async fn start(&self, set: &AgentSet) -> Result<Vec<AgentRef>, RuntimeError> {
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst);
        let planned = plan_jobs(&self.reference_job, set, sequence)?;
        let mut names = Vec::with_capacity(planned.len());
        for job in &planned {
            // Recorded before applying, so the watch maps the first pod events to the index.
            self.jobs.insert(job);
            self.fleet
                .apply_job(&job.job)
                .await
                .map_err(|e| RuntimeError::Other(e.to_string()))?;
            names.push(job.job.metadata.name.clone().unwrap_or_default());
        }
        self.wait_started(&names, set.indexes.len()).await
    }

    /// One [`AgentRef`] per index whose pod left `Pending`, sorted by index.
    fn started(&self, pods: &BTreeMap<String, pod_status::AgentStatus>) -> Vec<AgentRef> {
        let mut refs: Vec<AgentRef> = pods
            .values()
            .filter(|s| s.phase != "Pending" && s.phase != "Unknown")
            .filter_map(|s| status::agent_ref(&self.jobs, s))
            .collect();
        refs.sort();
        refs.dedup_by_key(|r| r.index);
        refs
    }

    async fn wait_started(
        &self,
        names: &[String],
        expected: usize,
    ) -> Result<Vec<AgentRef>, RuntimeError> {
        let selector = format!("{JOB_NAME_LABEL} in ({})", names.join(","));
        let mut pods = BTreeMap::new();
        let mut stream = watcher(self.pods(), watcher::Config::default().labels(&selector))
            .default_backoff()
            .applied_objects()
            .boxed();
        let waited = tokio::time::timeout(self.start_timeout, async {
            while let Some(event) = stream.next().await {
                match event {
                    Ok(pod) => {
                        let status = agent_status(&pod);
                        pods.insert(status.name.clone(), status);
                        if self.started(&pods).len() >= expected {
                            return true;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "watching agent pods"),
                }
            }
            false
        })
        .await;
        if waited == Ok(true) {
            return Ok(self.started(&pods));
        }
        let seen: Vec<String> = pods
            .values()
            .map(|s| format!("{} {}", s.name, s.phase))
            .collect();
        let namespace = self.fleet.namespace();
        Err(RuntimeError::Other(format!(
            "Jobs {} in {namespace}: {} of {expected} agents running after {:?}; last seen: [{}] (see `kubectl -n {namespace} get events` for image pulls, quota or scheduling)",
            names.join(", "),
            self.started(&pods).len(),
            self.start_timeout,
            seen.join(", "),
        )))
    }

    /// Every agent pod, oldest first.
    pub async fn statuses(&self) -> Result<Vec<AgentStatus>, RuntimeError> {
        let pods = self
            .pods()
            .list(&ListParams::default().labels(&status::agent_pod_selector()))
            .await
            .map_err(|e| {
                RuntimeError::Other(format!(
                    "listing agent pods in {}: {e}",
                    self.fleet.namespace()
                ))
            })?;
        Ok(status::statuses(&self.jobs, &pods.items))
    }

    /// Eviction with the pod's grace period, or `grace`, as `kubectl drain` does it: a PDB
    /// refusal (429) is retried once the budget's status allows a disruption again (watched,
    /// up to [`DRAIN_PATIENCE`]), because the disruption controller counts newly Ready pods
    /// asynchronously. A refusal that outlasts the wait is an outcome, not an error.
    pub async fn stop(
        &self,
        agent: &AgentRef,
        grace: Option<Duration>,
    ) -> Result<EvictOutcome, RuntimeError> {
        let grace_seconds = grace.map(|g| u32::try_from(g.as_secs()).unwrap_or(u32::MAX));
        let evict = || async {
            self.fleet
                .evict(&agent.name, grace_seconds)
                .await
                .map_err(|e| agent_error(agent)(e.to_string()))
        };
        let mut outcome = evict().await?;
        if let fleet::EvictOutcome::RefusedByBudget { message } = &outcome {
            match disruption::wait_budgets(
                self.fleet.client().clone(),
                self.fleet.namespace(),
                "status.disruptionsAllowed >= 1",
                |pdb| {
                    pdb.status
                        .as_ref()
                        .is_some_and(|s| s.disruptions_allowed >= 1)
                },
                self.drain_patience,
            )
            .await
            {
                Ok(_) => outcome = evict().await?,
                Err(waited) => {
                    outcome = fleet::EvictOutcome::RefusedByBudget {
                        message: format!("{message} ({waited})"),
                    }
                }
            }
        }
        Ok(match outcome {
            fleet::EvictOutcome::Evicted => {
                self.bus.publish(RuntimeEvent::StopRequested {
                    agent: agent.clone(),
                    grace_ms: grace.unwrap_or(self.grace).as_millis() as u64,
                });
                EvictOutcome::Evicted
            }
            fleet::EvictOutcome::RefusedByBudget { message } => EvictOutcome::RefusedByBudget {
                status: 429,
                message,
            },
            fleet::EvictOutcome::NotFound => EvictOutcome::NotFound,
        })
    }

    /// Delete with grace 0.
    pub async fn kill(&self, agent: &AgentRef) -> Result<(), RuntimeError> {
        self.killed.insert(&agent.name);
        match self
            .fleet
            .kill(&agent.name)
            .await
            .map_err(|e| agent_error(agent)(e.to_string()))?
        {
            KillOutcome::Killed => Ok(()),
            KillOutcome::NotFound => Err(RuntimeError::UnknownAgent(agent.name.clone())),
        }
    }

    /// The agent container's log.
    pub async fn logs(&self, agent: &AgentRef) -> Result<String, RuntimeError> {
        let container = self
            .reference_job
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone());
        self.fleet
            .logs(
                &agent.name,
                &LogRequest {
                    container,
                    ..LogRequest::default()
                },
            )
            .await
            .map_err(|e| agent_error(agent)(e.to_string()))
    }
}
