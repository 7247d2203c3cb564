//! The Docker runtime's stand-in for the Job controller: it starts agent containers, follows
//! their Docker events, and with `restartPolicy: Never` creates a replacement container for a
//! failed one (same index, next generation) until the index's backoff limit is spent, exactly
//! where Kubernetes would create a new pod. Stops requested by the harness count as disruptions,
//! which `podFailurePolicy: DisruptionTarget -> Ignore` keeps from burning the limit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentfleet_protocol::env;
use futures::StreamExt;

use crate::Scope;
use crate::agents::{AgentLauncher, METRICS_PORT};
use crate::docker::{Container, ContainerStatus, container_events};
use crate::runtime::event_bus::EventBus;
use crate::runtime::{
    AgentPhase, AgentRef, AgentStatus, RestartBehaviour, RuntimeError, RuntimeEvent,
};
use crate::services::prometheus::{Prometheus, Target};
use crate::sweep::SCOPE_LABEL;

/// Label marking agent containers (services and probes do not carry it).
const FLEET_LABEL: &str = "agentfleet.fleet";

#[derive(Debug)]
struct Instance {
    agent: AgentRef,
    container: Container,
    generation: u32,
    fleet: String,
    env: BTreeMap<String, String>,
    /// The harness asked it to stop (a disruption, not the agent's failure).
    disrupted: bool,
    exited: bool,
}

#[derive(Debug, Default)]
struct State {
    instances: Vec<Instance>,
    /// Failures counted against each index's backoff limit.
    failures: BTreeMap<u32, u32>,
}

/// Agents of one session and the controller loop that replaces failed ones.
#[derive(Debug)]
pub struct Fleet {
    /// Weak: the session owns the scope, so dropping the session (also in a panic) removes
    /// everything at once, whatever background task still holds the fleet.
    scope: Weak<Scope>,
    /// The scope's id and engine, for the events subscription.
    scope_id: String,
    engine: crate::docker::Engine,
    launcher: AgentLauncher,
    tmpfs: Vec<(String, String)>,
    restart: RestartBehaviour,
    prometheus: Option<Arc<Prometheus>>,
    bus: EventBus,
    state: Mutex<State>,
    /// Serializes launches with target-list updates.
    launching: tokio::sync::Mutex<()>,
}

impl Fleet {
    pub fn new(
        scope: &Arc<Scope>,
        launcher: AgentLauncher,
        tmpfs: Vec<(String, String)>,
        restart: RestartBehaviour,
        prometheus: Option<Arc<Prometheus>>,
        bus: EventBus,
    ) -> Arc<Fleet> {
        Arc::new(Fleet {
            scope: Arc::downgrade(scope),
            scope_id: scope.id().to_owned(),
            engine: scope.engine().clone(),
            launcher,
            tmpfs,
            restart,
            prometheus,
            bus,
            state: Mutex::new(State::default()),
            launching: tokio::sync::Mutex::new(()),
        })
    }

    /// Starts the controller loop; it runs until the returned handle is aborted.
    pub fn spawn_controller(self: &Arc<Fleet>) -> tokio::task::JoinHandle<()> {
        let since = SystemTime::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(UNIX_EPOCH);
        let labels = vec![
            format!("{SCOPE_LABEL}={}", self.scope_id),
            FLEET_LABEL.to_owned(),
        ];
        let mut stream = Box::pin(container_events(&self.engine, labels, since));
        let fleet = self.clone();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                let Ok(event) = event else {
                    tracing::error!("Docker events stream failed: agents will not be replaced");
                    return;
                };
                let id = event.actor.and_then(|a| a.id).unwrap_or_default();
                let action = event.action.unwrap_or_default();
                fleet.on_event(&id, &action).await;
            }
        })
    }

    async fn on_event(self: &Arc<Fleet>, container_id: &str, action: &str) {
        let Some(agent) = self.agent_of(container_id) else {
            return;
        };
        match action {
            "oom" => self.bus.publish(RuntimeEvent::OomKilled { agent }),
            "start" => {
                let restarted =
                    self.update(container_id, |i| std::mem::replace(&mut i.exited, false));
                if restarted == Some(true) {
                    self.bus.publish(RuntimeEvent::Restarted { agent });
                }
            }
            "die" => {
                let container = self.update(container_id, |i| {
                    i.exited = true;
                    i.container.clone()
                });
                let Some(container) = container else { return };
                let status = match container.status().await {
                    Ok(status) => status,
                    Err(e) => {
                        tracing::warn!(agent = %agent.name, "cannot inspect an exited agent: {e}");
                        return;
                    }
                };
                let exit_code = status.exit_code.unwrap_or(-1);
                self.bus.publish(RuntimeEvent::Exited {
                    agent: agent.clone(),
                    exit_code,
                    oom_killed: status.oom_killed,
                });
                self.after_exit(container_id, agent, exit_code, &status)
                    .await;
            }
            _ => {}
        }
    }

    /// The Job controller's decision after an instance ended.
    async fn after_exit(
        self: &Arc<Fleet>,
        container_id: &str,
        agent: AgentRef,
        exit_code: i64,
        status: &ContainerStatus,
    ) {
        let Some((disrupted, generation, fleet, env)) = self.update(container_id, |i| {
            (i.disrupted, i.generation, i.fleet.clone(), i.env.clone())
        }) else {
            return;
        };
        let decision = {
            let mut state = lock(&self.state);
            let failures = state.failures.entry(agent.index).or_default();
            let exit = Exit {
                code: exit_code,
                oom_killed: status.oom_killed,
                disrupted,
            };
            let decision = decide(&self.restart, exit, *failures);
            if let Decision::Replace { failures: n } | Decision::GiveUp { failures: n } = decision {
                *failures = n;
            }
            decision
        };
        match decision {
            Decision::Done | Decision::InPlace => {}
            Decision::FailJob { failures } | Decision::GiveUp { failures } => {
                self.bus.publish(RuntimeEvent::IndexFailed {
                    index: agent.index,
                    failures,
                });
            }
            Decision::Replace { .. } => {
                match self.launch(agent.index, generation + 1, &fleet, &env).await {
                    Ok(replacement) => self.bus.publish(RuntimeEvent::Replaced {
                        failed: agent,
                        replacement,
                    }),
                    Err(e) => {
                        tracing::error!(agent = %agent.name, "cannot start a replacement: {e}")
                    }
                }
            }
        }
    }

    /// Creates and starts one instance and adds it to Prometheus' targets.
    pub async fn launch(
        &self,
        index: u32,
        generation: u32,
        fleet: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<AgentRef, RuntimeError> {
        let _serial = self.launching.lock().await;
        let scope = self
            .scope
            .upgrade()
            .ok_or_else(|| RuntimeError::Other(format!("agent-{index}: the session is closed")))?;
        let name = if generation == 0 {
            format!("agent-{index}")
        } else {
            format!("agent-{index}-{generation}")
        };
        let mut spec = self.launcher.spec(&scope, index);
        spec.name = name.clone();
        spec = spec
            .env(env::JOB_COMPLETION_INDEX, index.to_string())
            .label(FLEET_LABEL, fleet)
            .label("agentfleet.generation", generation.to_string());
        for (k, v) in env {
            spec = spec.env(k, v);
        }
        if self.launcher.template().read_only_rootfs {
            for (path, options) in &self.tmpfs {
                spec = spec.tmpfs(path, options);
            }
        }
        let agent_error = |e: crate::docker::DockerError| RuntimeError::Agent {
            agent: name.clone(),
            problem: e.to_string(),
        };
        let container = scope.create_container(spec).await.map_err(agent_error)?;
        let agent = AgentRef {
            index,
            name: container.name().to_owned(),
        };
        lock(&self.state).instances.push(Instance {
            agent: agent.clone(),
            container: container.clone(),
            generation,
            fleet: fleet.to_owned(),
            env: env.clone(),
            disrupted: false,
            exited: false,
        });
        container.start().await.map_err(agent_error)?;
        self.bus.publish(RuntimeEvent::Started {
            agent: agent.clone(),
        });
        if let Some(prometheus) = &self.prometheus {
            prometheus
                .set_targets(&scope, &self.targets())
                .await
                .map_err(agent_error)?;
        }
        Ok(agent)
    }

    fn targets(&self) -> Vec<Target> {
        lock(&self.state)
            .instances
            .iter()
            .map(|i| Target {
                address: format!("{}:{METRICS_PORT}", i.agent.name),
                labels: BTreeMap::from([
                    ("fleet".to_owned(), i.fleet.clone()),
                    ("agent_index".to_owned(), i.agent.index.to_string()),
                    ("generation".to_owned(), i.generation.to_string()),
                ]),
            })
            .collect()
    }

    pub fn container(&self, agent: &AgentRef) -> Result<Container, RuntimeError> {
        lock(&self.state)
            .instances
            .iter()
            .find(|i| i.agent == *agent)
            .map(|i| i.container.clone())
            .ok_or_else(|| RuntimeError::UnknownAgent(agent.name.clone()))
    }

    /// Marks `agent` as disrupted (a stop the harness asked for) and returns its container.
    pub fn mark_disrupted(&self, agent: &AgentRef) -> Result<Container, RuntimeError> {
        let mut state = lock(&self.state);
        let instance = state
            .instances
            .iter_mut()
            .find(|i| i.agent == *agent)
            .ok_or_else(|| RuntimeError::UnknownAgent(agent.name.clone()))?;
        instance.disrupted = true;
        Ok(instance.container.clone())
    }

    pub async fn statuses(&self) -> Result<Vec<AgentStatus>, RuntimeError> {
        let instances: Vec<(AgentRef, Container, u32)> = lock(&self.state)
            .instances
            .iter()
            .map(|i| (i.agent.clone(), i.container.clone(), i.generation))
            .collect();
        let mut statuses = Vec::with_capacity(instances.len());
        for (agent, container, generation) in instances {
            let status = container.status().await.map_err(|e| RuntimeError::Agent {
                agent: agent.name.clone(),
                problem: e.to_string(),
            })?;
            statuses.push(AgentStatus {
                phase: phase_of(&status),
                exit_code: status.exit_code,
                oom_killed: status.oom_killed,
                restarts: u32::try_from(status.restart_count).unwrap_or(0),
                generation,
                agent,
            });
        }
        Ok(statuses)
    }

    fn agent_of(&self, container_id: &str) -> Option<AgentRef> {
        lock(&self.state)
            .instances
            .iter()
            .find(|i| i.container.id() == container_id)
            .map(|i| i.agent.clone())
    }

    fn update<T>(&self, container_id: &str, f: impl FnOnce(&mut Instance) -> T) -> Option<T> {
        lock(&self.state)
            .instances
            .iter_mut()
            .find(|i| i.container.id() == container_id)
            .map(f)
    }
}

/// How an instance ended, as far as the Job controller cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exit {
    code: i64,
    oom_killed: bool,
    /// The harness stopped it (an eviction, on Kubernetes).
    disrupted: bool,
}

/// What the Job controller does after an instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Succeeded: the index is complete.
    Done,
    /// `OnFailure`: the kubelet (here Docker's restart policy) restarts it in place.
    InPlace,
    /// A `podFailurePolicy` `FailJob` exit code: no replacement.
    FailJob { failures: u32 },
    /// A new instance for the same index; `failures` counted so far.
    Replace { failures: u32 },
    /// The index's backoff limit is spent.
    GiveUp { failures: u32 },
}

/// The Job controller's rule for `restartPolicy: Never` (and the hand-off to the kubelet for
/// `OnFailure`): evictions are ignored when `podFailurePolicy` says `DisruptionTarget -> Ignore`,
/// other failures count against `backoffLimitPerIndex` (else `backoffLimit`), and an index is
/// given up once its failures exceed the limit.
fn decide(restart: &RestartBehaviour, exit: Exit, failures_so_far: u32) -> Decision {
    let RestartBehaviour::Never {
        backoff_limit_per_index,
        backoff_limit,
        disruptions_ignored,
        fail_job_exit_codes,
    } = restart
    else {
        return if exit.code == 0 && !exit.oom_killed {
            Decision::Done
        } else {
            Decision::InPlace
        };
    };
    if exit.code == 0 && !exit.oom_killed {
        return Decision::Done;
    }
    if fail_job_exit_codes
        .iter()
        .any(|c| i64::from(*c) == exit.code)
    {
        return Decision::FailJob {
            failures: failures_so_far,
        };
    }
    let counts = !(exit.disrupted && *disruptions_ignored);
    let failures = failures_so_far + u32::from(counts);
    if failures > backoff_limit_per_index.unwrap_or(*backoff_limit) {
        Decision::GiveUp { failures }
    } else {
        Decision::Replace { failures }
    }
}

fn phase_of(status: &ContainerStatus) -> AgentPhase {
    match status.state.as_str() {
        "created" => AgentPhase::Pending,
        _ if status.running || status.state == "restarting" => AgentPhase::Running,
        _ if status.exit_code == Some(0) && !status.oom_killed => AgentPhase::Succeeded,
        _ => AgentPhase::Failed,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(per_index: Option<u32>) -> RestartBehaviour {
        RestartBehaviour::Never {
            backoff_limit_per_index: per_index,
            backoff_limit: 6,
            disruptions_ignored: true,
            fail_job_exit_codes: vec![78],
        }
    }

    const OOM: Exit = Exit {
        code: 137,
        oom_killed: true,
        disrupted: false,
    };
    const EVICTED: Exit = Exit {
        code: 143,
        oom_killed: false,
        disrupted: true,
    };

    #[test]
    fn oom_kills_count_until_the_per_index_limit_then_the_index_is_given_up() {
        let r = never(Some(2));
        assert_eq!(decide(&r, OOM, 0), Decision::Replace { failures: 1 });
        assert_eq!(decide(&r, OOM, 1), Decision::Replace { failures: 2 });
        assert_eq!(decide(&r, OOM, 2), Decision::GiveUp { failures: 3 });
        // Without a per-index limit the Job-wide one applies.
        assert_eq!(
            decide(&never(None), OOM, 5),
            Decision::Replace { failures: 6 }
        );
        assert_eq!(
            decide(&never(None), OOM, 6),
            Decision::GiveUp { failures: 7 }
        );
    }

    #[test]
    fn evictions_are_replaced_without_burning_the_limit_only_when_the_policy_ignores_them() {
        assert_eq!(
            decide(&never(Some(2)), EVICTED, 2),
            Decision::Replace { failures: 2 }
        );
        let strict = RestartBehaviour::Never {
            backoff_limit_per_index: Some(2),
            backoff_limit: 6,
            disruptions_ignored: false,
            fail_job_exit_codes: vec![],
        };
        assert_eq!(
            decide(&strict, EVICTED, 2),
            Decision::GiveUp { failures: 3 }
        );
    }

    #[test]
    fn success_fail_job_codes_and_on_failure_are_not_replaced() {
        let ok = Exit {
            code: 0,
            oom_killed: false,
            disrupted: true,
        };
        assert_eq!(decide(&never(Some(2)), ok, 0), Decision::Done);
        let config = Exit {
            code: 78,
            oom_killed: false,
            disrupted: false,
        };
        assert_eq!(
            decide(&never(Some(2)), config, 1),
            Decision::FailJob { failures: 1 }
        );
        let on_failure = RestartBehaviour::OnFailure { backoff_limit: 6 };
        assert_eq!(decide(&on_failure, OOM, 0), Decision::InPlace);
        assert_eq!(decide(&on_failure, ok, 0), Decision::Done);
    }
}
