//! Launching agent containers the way the fleet's pod template does: same env (names from
//! `agentfleet_protocol::env`), limits, grace period, user, read-only root and shared
//! checkpoint volume.

use std::collections::BTreeMap;
use std::time::Duration;

use agentfleet_protocol::{Topology, env};

use crate::Scope;
use crate::checkpoints::{CheckpointVolume, MOUNT_PATH};
use crate::docker::{Container, ContainerSpec, ContainerStatus, DockerError, Restart};
use crate::metrics::{Metrics, MetricsError, scrape};
use crate::services::{gateway, rabbitmq};
use crate::wait::{Probe, WaitTimeout, until};

/// Port of the agent's `/metrics`, `/healthz`, `/readyz` inside the container.
pub const METRICS_PORT: u16 = 8080;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("agent {index}: {source}")]
    Metrics {
        index: u32,
        #[source]
        source: MetricsError,
    },
    #[error(
        "agent {index} exited while waiting for {waiting_for} ({status})\nlast log lines:\n{logs}"
    )]
    Exited {
        index: u32,
        waiting_for: String,
        status: ContainerStatus,
        logs: String,
    },
    #[error("agent {index}: {timeout}")]
    Timeout {
        index: u32,
        #[source]
        timeout: WaitTimeout,
    },
}

/// The pod template of the Docker runtime.
#[derive(Debug, Clone)]
pub struct AgentTemplate {
    pub image: String,
    /// Extra variables, and overrides of the ones the launcher sets.
    pub env: BTreeMap<String, String>,
    pub memory_mib: Option<u64>,
    pub cpus: Option<f64>,
    /// `docker stop` grace (the pod's `terminationGracePeriodSeconds`).
    pub stop_grace: Duration,
    /// `None` keeps the image's user (65532 for the reference agent).
    pub user: Option<String>,
    pub read_only_rootfs: bool,
    /// Capabilities dropped (the reference pod template drops `ALL`).
    pub cap_drop: Vec<String>,
    /// `allowPrivilegeEscalation: false`: the process cannot gain privileges (no_new_privs).
    pub no_new_privileges: bool,
    /// `seccompProfile: Unconfined` turns Docker's default seccomp profile off; anything else
    /// keeps it (RuntimeDefault is Docker's default profile).
    pub seccomp_unconfined: bool,
    /// Publish the metrics port on 127.0.0.1. This also attaches the agent to the scope's edge
    /// network (Docker cannot publish ports from an internal network only); turn it off for
    /// isolation scenarios.
    pub publish_metrics: bool,
    pub restart: Restart,
}

impl AgentTemplate {
    /// The template's security settings on `spec`: read-only root (with a small `/tmp`),
    /// dropped capabilities, no privilege escalation, seccomp.
    pub fn harden(&self, mut spec: ContainerSpec) -> ContainerSpec {
        if self.read_only_rootfs {
            spec = spec.read_only_rootfs().tmpfs("/tmp", "size=16m,mode=1777");
        }
        for capability in &self.cap_drop {
            spec = spec.cap_drop(capability);
        }
        if self.no_new_privileges {
            spec = spec.security_opt("no-new-privileges");
        }
        if self.seccomp_unconfined {
            spec = spec.security_opt("seccomp=unconfined");
        }
        spec
    }

    /// Defaults: 128 MiB, 10 s grace, read-only root with a small `/tmp`, every capability
    /// dropped, no privilege escalation, metrics published, no restart.
    pub fn new(image: impl Into<String>) -> AgentTemplate {
        AgentTemplate {
            image: image.into(),
            env: BTreeMap::new(),
            memory_mib: Some(128),
            cpus: None,
            stop_grace: Duration::from_secs(10),
            user: None,
            read_only_rootfs: true,
            cap_drop: vec!["ALL".to_owned()],
            no_new_privileges: true,
            seccomp_unconfined: false,
            publish_metrics: true,
            restart: Restart::Never,
        }
    }

    pub fn env(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.env.insert(name.into(), value.to_string());
        self
    }

    pub fn memory_mib(mut self, mib: u64) -> Self {
        self.memory_mib = Some(mib);
        self
    }

    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    pub fn publish_metrics(mut self, publish: bool) -> Self {
        self.publish_metrics = publish;
        self
    }
}

/// Starts agents from a template against one broker, gateway and checkpoint volume.
#[derive(Debug, Clone)]
pub struct AgentLauncher {
    template: AgentTemplate,
    topology: Topology,
    checkpoint_volume: String,
    broker_url: String,
    gateway_url: String,
}

impl AgentLauncher {
    /// Agents reach the broker and the gateway by their aliases on the scope's agents network.
    pub fn new(
        template: AgentTemplate,
        topology: Topology,
        checkpoints: &CheckpointVolume,
    ) -> AgentLauncher {
        AgentLauncher {
            template,
            topology,
            checkpoint_volume: checkpoints.name().to_owned(),
            broker_url: rabbitmq::agent_url(),
            gateway_url: gateway::agent_url(),
        }
    }

    /// Points the agents at another broker URL (e.g. a host with no broker).
    pub fn broker_url(mut self, url: impl Into<String>) -> Self {
        self.broker_url = url.into();
        self
    }

    pub fn template(&self) -> &AgentTemplate {
        &self.template
    }

    /// The container spec of agent `index`.
    pub fn spec(&self, scope: &Scope, index: u32) -> ContainerSpec {
        let t = &self.template;
        let mut spec = ContainerSpec::new(format!("agent-{index}"), &t.image)
            .env(env::AGENT_INDEX, index.to_string())
            .env(env::QUEUE_URL, &self.broker_url)
            .env(env::TASK_QUEUE, &self.topology.task_queue)
            .env(env::RESULT_QUEUE, &self.topology.result_queue)
            .env(env::DEAD_LETTER_QUEUE, &self.topology.dead_letter_queue)
            .env(
                env::DELIVERY_LIMIT,
                self.topology.delivery_limit.to_string(),
            )
            .env(env::GATEWAY_URL, &self.gateway_url)
            .env(env::CHECKPOINT_DIR, MOUNT_PATH)
            .env(env::METRICS_ADDR, format!("0.0.0.0:{METRICS_PORT}"))
            .volume(&self.checkpoint_volume, MOUNT_PATH)
            .stop_timeout(t.stop_grace)
            .restart(t.restart)
            .label("agentfleet.agent-index", index.to_string());
        for (k, v) in &t.env {
            spec = spec.env(k, v);
        }
        if t.publish_metrics {
            spec = spec
                .network(scope.edge_network(), Vec::<String>::new())
                .publish(METRICS_PORT);
        }
        spec = spec.network(scope.agents_network(), Vec::<String>::new());
        if let Some(mib) = t.memory_mib {
            spec = spec.memory_mib(mib);
        }
        if let Some(cpus) = t.cpus {
            spec = spec.cpus(cpus);
        }
        if let Some(user) = &t.user {
            spec = spec.user(user);
        }
        t.harden(spec)
    }

    /// Creates and starts agent `index`.
    pub async fn launch(&self, scope: &Scope, index: u32) -> Result<AgentHandle, AgentError> {
        scope.engine().require_image(&self.template.image).await?;
        let container = scope.run(self.spec(scope, index)).await?;
        Ok(AgentHandle {
            index,
            container,
            http: crate::services::http_client(),
        })
    }

    /// Starts agents `0..count`.
    pub async fn launch_many(
        &self,
        scope: &Scope,
        count: u32,
    ) -> Result<Vec<AgentHandle>, AgentError> {
        let mut agents = Vec::with_capacity(count as usize);
        for index in 0..count {
            agents.push(self.launch(scope, index).await?);
        }
        Ok(agents)
    }
}

/// One running (or stopped) agent container.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    index: u32,
    container: Container,
    http: reqwest::Client,
}

impl AgentHandle {
    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn container(&self) -> &Container {
        &self.container
    }

    /// `http://127.0.0.1:<port>` of the agent's HTTP server; looked up anew each time because a
    /// restarted container gets a new host port.
    pub async fn base_url(&self) -> Result<String, AgentError> {
        Ok(format!(
            "http://127.0.0.1:{}",
            self.container.host_port(METRICS_PORT).await?
        ))
    }

    /// GETs `path` (e.g. `/healthz`) and returns the status code.
    pub async fn http_status(&self, path: &str) -> Result<u16, AgentError> {
        let url = format!("{}{path}", self.base_url().await?);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| AgentError::Metrics {
                index: self.index,
                source: MetricsError::Http { url, source },
            })?;
        Ok(response.status().as_u16())
    }

    pub async fn metrics(&self) -> Result<Metrics, AgentError> {
        let url = format!("{}/metrics", self.base_url().await?);
        scrape(&self.http, &url)
            .await
            .map_err(|source| AgentError::Metrics {
                index: self.index,
                source,
            })
    }

    /// Scrapes until the value of `name{labels}` (sum over matching series, 0 when absent)
    /// satisfies `done`; fails at `timeout` with the last value seen, or at once if the agent
    /// exits meanwhile.
    pub async fn wait_for_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        timeout: Duration,
        done: impl Fn(f64) -> bool,
    ) -> Result<f64, AgentError> {
        let what = format!("{name}{labels:?} to reach the expected value");
        let outcome = until(&what, timeout, Duration::from_millis(100), || async {
            match self.container.status().await {
                Ok(status) if status.has_exited() => return Probe::Ready(Err(status)),
                Ok(_) => {}
                Err(e) => return Probe::NotYet(e.to_string()),
            }
            match self.metrics().await {
                Ok(m) => {
                    let value = m.value_or_zero(name, labels);
                    if done(value) {
                        Probe::Ready(Ok(value))
                    } else {
                        Probe::NotYet(format!("{name} = {value}"))
                    }
                }
                Err(e) => Probe::NotYet(e.to_string()),
            }
        })
        .await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(status)) => Err(AgentError::Exited {
                index: self.index,
                waiting_for: what,
                status,
                logs: self.container.log_tail(30).await,
            }),
            Err(timeout) => Err(AgentError::Timeout {
                index: self.index,
                timeout,
            }),
        }
    }
}
