//! The Docker runtime's stand-in for the Job controller: it starts agent containers, follows
//! their Docker events, and with `restartPolicy: Never` creates a replacement container for a
//! failed one (same index, next generation) until the index's backoff limit is spent, exactly
//! where Kubernetes would create a new pod. Stops requested by the harness count as disruptions,
//! which `podFailurePolicy: DisruptionTarget -> Ignore` keeps from burning the limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentfleet_protocol::env;
use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt;

use crate::Scope;
use crate::agents::{AgentLauncher, METRICS_PORT};
use crate::docker::{Container, ContainerStatus};
use crate::runtime::event_bus::EventBus;
use crate::runtime::{AgentPhase, AgentRef, AgentStatus, RestartBehaviour, RuntimeError, RuntimeEvent};
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
    scope: Arc<Scope>,
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
        scope: Arc<Scope>,
        launcher: AgentLauncher,
        tmpfs: Vec<(String, String)>,
        restart: RestartBehaviour,
        prometheus: Option<Arc<Prometheus>>,
        bus: EventBus,
    ) -> Arc<Fleet> {
        Arc::new(Fleet {
            scope,
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
            .unwrap_or(UNIX_EPOCH)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let filters = HashMap::from([
            ("type", vec!["container".to_owned()]),
            ("label", vec![format!("{SCOPE_LABEL}={}", self.scope.id()), FLEET_LABEL.to_owned()]),
        ]);
        let options = EventsOptionsBuilder::new().since(&since).filters(&filters).build();
        let mut stream = Box::pin(self.scope.engine().raw().events(Some(options)));
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
        let Some(agent) = self.agent_of(container_id) else { return };
        match action {
            "oom" => self.bus.publish(RuntimeEvent::OomKilled { agent }),
            "start" => {
                let restarted = self.update(container_id, |i| std::mem::replace(&mut i.exited, false));
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
                self.bus.publish(RuntimeEvent::Exited { agent: agent.clone(), exit_code, oom_killed: status.oom_killed });
                self.after_exit(container_id, agent, exit_code, &status).await;
            }
            _ => {}
        }
    }

    /// The Job controller's decision after an instance ended.
    async fn after_exit(self: &Arc<Fleet>, container_id: &str, agent: AgentRef, exit_code: i64, status: &ContainerStatus) {
        let RestartBehaviour::Never { backoff_limit_per_index, backoff_limit, disruptions_ignored, fail_job_exit_codes } =
            &self.restart
        else {
            // OnFailure: Docker restarts it in place (its restart policy carries the limit).
            return;
        };
        if exit_code == 0 && !status.oom_killed {
            return;
        }
        if fail_job_exit_codes.iter().any(|c| i64::from(*c) == exit_code) {
            self.bus.publish(RuntimeEvent::IndexFailed { index: agent.index, failures: self.failures_of(agent.index) });
            return;
        }
        let Some((disrupted, generation, fleet, env)) =
            self.update(container_id, |i| (i.disrupted, i.generation, i.fleet.clone(), i.env.clone()))
        else {
            return;
        };
        let counts = !(disrupted && *disruptions_ignored);
        let failures = {
            let mut state = lock(&self.state);
            let failures = state.failures.entry(agent.index).or_default();
            if counts {
                *failures += 1;
            }
            *failures
        };
        let limit = backoff_limit_per_index.unwrap_or(*backoff_limit);
        if failures > limit {
            self.bus.publish(RuntimeEvent::IndexFailed { index: agent.index, failures });
            return;
        }
        match self.launch(agent.index, generation + 1, &fleet, &env).await {
            Ok(replacement) => self.bus.publish(RuntimeEvent::Replaced { failed: agent, replacement }),
            Err(e) => tracing::error!(agent = %agent.name, "cannot start a replacement: {e}"),
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
        let name = if generation == 0 { format!("agent-{index}") } else { format!("agent-{index}-{generation}") };
        let mut spec = self.launcher.spec(&self.scope, index);
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
        let agent_error = |e: crate::docker::DockerError| RuntimeError::Agent { agent: name.clone(), problem: e.to_string() };
        let container = self.scope.create_container(spec).await.map_err(agent_error)?;
        let agent = AgentRef { index, name: container.name().to_owned() };
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
        self.bus.publish(RuntimeEvent::Started { agent: agent.clone() });
        if let Some(prometheus) = &self.prometheus {
            prometheus.set_targets(&self.scope, &self.targets()).await.map_err(agent_error)?;
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
            let status = container
                .status()
                .await
                .map_err(|e| RuntimeError::Agent { agent: agent.name.clone(), problem: e.to_string() })?;
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

    fn failures_of(&self, index: u32) -> u32 {
        lock(&self.state).failures.get(&index).copied().unwrap_or(0)
    }

    fn agent_of(&self, container_id: &str) -> Option<AgentRef> {
        lock(&self.state).instances.iter().find(|i| i.container.id() == container_id).map(|i| i.agent.clone())
    }

    fn update<T>(&self, container_id: &str, f: impl FnOnce(&mut Instance) -> T) -> Option<T> {
        lock(&self.state).instances.iter_mut().find(|i| i.container.id() == container_id).map(f)
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
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
