//! The runtime trait: what a scenario may do to a fleet, wherever the fleet runs.
//!
//! A scenario opens a [`Session`] (a Kubernetes namespace, or a Docker [`crate::Scope`]) in
//! which the platform (broker, gateway, Prometheus, a canary) is reachable and agents are
//! started from the fleet's reference pod template. Everything a scenario observes comes back as
//! runtime-neutral data ([`AgentStatus`], [`EvictOutcome`], [`RuntimeEvent`], [`ProbeOutcome`]),
//! so the Kubernetes runtime is an adapter that maps pods, the Eviction API and watch events
//! onto the same types.
//!
//! # Generic, not `dyn`
//!
//! Scenarios are generic over `R: Runtime` and the trait uses `async fn` (with `Send` futures
//! spelled out) instead of `#[async_trait]` and `dyn Runtime`. There are only ever a handful of
//! runtimes, chosen once at start-up by the caller (`match runtime_name { ... }`), so nothing is
//! gained from type erasure, while a generic keeps each runtime's associated [`Session`] type
//! concrete (no boxing of every call, no extra dependency) and lets the compiler check that a new
//! runtime implements every operation a scenario uses.

pub mod cluster;
pub mod docker;
pub mod event_bus;
pub mod kube;
pub mod template;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use futures::stream::BoxStream;
use serde::Serialize;

use crate::queue::QueueClient;
use crate::scenario::ScenarioId;
use crate::services::gateway::GatewayAdmin;

pub use cluster::{ClusterOps, DisruptionBudget, NoCluster};
pub use template::{PodTemplate, RestartBehaviour, TemplateError};

/// What a runtime can do; a scenario needing a missing one is reported as skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Capabilities {
    /// Memory limits are enforced and an exceeded limit is reported as OOMKilled.
    pub oom_detection: bool,
    /// Agents can be stopped with a grace period (SIGTERM, then SIGKILL).
    pub graceful_stop: bool,
    /// Failed agents are replaced per the template's restart behaviour.
    pub replacement: bool,
    /// Connections can be probed from the agents' network position.
    pub network_probe: bool,
    /// Agents' egress is actually limited to the template's allowed peers.
    pub egress_isolation: bool,
    /// A Prometheus scrapes every agent and answers queries.
    pub prometheus: bool,
    /// The gateway's fault profile can be changed at run time.
    pub gateway_faults: bool,
}

/// Which capability a scenario needs, for the skip reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    OomDetection,
    GracefulStop,
    Replacement,
    NetworkProbe,
    EgressIsolation,
    Prometheus,
    GatewayFaults,
}

impl Capabilities {
    pub fn has(&self, capability: Capability) -> bool {
        match capability {
            Capability::OomDetection => self.oom_detection,
            Capability::GracefulStop => self.graceful_stop,
            Capability::Replacement => self.replacement,
            Capability::NetworkProbe => self.network_probe,
            Capability::EgressIsolation => self.egress_isolation,
            Capability::Prometheus => self.prometheus,
            Capability::GatewayFaults => self.gateway_faults,
        }
    }

    /// The first of `needed` that is missing.
    pub fn missing(&self, needed: &[Capability]) -> Option<Capability> {
        needed.iter().copied().find(|c| !self.has(*c))
    }
}

/// Errors of a runtime operation. Runtime-specific detail is carried as text so the scenario
/// code stays runtime-neutral; the message names the object and, where known, the fix.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime set-up failed: {0}")]
    Setup(String),
    #[error("pod template: {0}")]
    Template(#[from] TemplateError),
    #[error("agent {agent}: {problem}")]
    Agent { agent: String, problem: String },
    #[error("no agent named `{0}` in this session")]
    UnknownAgent(String),
    #[error("probe failed to run: {0}")]
    Probe(String),
    #[error("{0}")]
    Other(String),
}

/// One agent instance: a pod, or a container. A replacement for the same index is a new
/// instance with a new name (as a Job controller creates a new pod).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AgentRef {
    /// Completion index.
    pub index: u32,
    /// Pod or container name, unique within the session.
    pub name: String,
}

/// Lifecycle of one agent instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// What `kubectl get pod` / `docker inspect` says about one agent instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentStatus {
    pub agent: AgentRef,
    pub phase: AgentPhase,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// In-place restarts (restartPolicy OnFailure); replacements are separate instances.
    pub restarts: u32,
    /// Which instance of its index this is (0 = the first; n = the n-th replacement).
    pub generation: u32,
}

/// Result of stop-with-grace. On Kubernetes this is the Eviction API's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum EvictOutcome {
    /// The agent was asked to stop (SIGTERM) and will be killed at the grace deadline.
    Evicted,
    /// A disruption budget refused the eviction (HTTP 429 on Kubernetes).
    RefusedByBudget { status: u16, message: String },
    /// No such agent (already gone).
    NotFound,
}

/// A typed event from the runtime, for waits and the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuntimeEvent {
    Started {
        agent: AgentRef,
    },
    /// The instance ended. `oom_killed` as the runtime reported it.
    Exited {
        agent: AgentRef,
        exit_code: i64,
        oom_killed: bool,
    },
    /// The kernel OOM killer hit the instance (may precede `Exited`).
    OomKilled {
        agent: AgentRef,
    },
    /// Restarted in place (restartPolicy OnFailure).
    Restarted {
        agent: AgentRef,
    },
    /// The controller created a replacement instance for a failed one.
    Replaced {
        failed: AgentRef,
        replacement: AgentRef,
    },
    /// The index is given up: its backoff limit is exhausted (or a FailJob rule matched).
    IndexFailed {
        index: u32,
        failures: u32,
    },
    /// Grace-period stop requested.
    StopRequested {
        agent: AgentRef,
        grace_ms: u64,
    },
}

impl RuntimeEvent {
    /// Short kind and detail, for the timeline.
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            RuntimeEvent::Started { agent } => ("agent-start", agent.name.clone()),
            RuntimeEvent::Exited {
                agent,
                exit_code,
                oom_killed,
            } => (
                "agent-exit",
                format!(
                    "{} exit {exit_code}{}",
                    agent.name,
                    if *oom_killed { " OOMKilled" } else { "" }
                ),
            ),
            RuntimeEvent::OomKilled { agent } => ("oom", agent.name.clone()),
            RuntimeEvent::Restarted { agent } => ("agent-restart", agent.name.clone()),
            RuntimeEvent::Replaced {
                failed,
                replacement,
            } => (
                "agent-replaced",
                format!("{} -> {}", failed.name, replacement.name),
            ),
            RuntimeEvent::IndexFailed { index, failures } => (
                "index-failed",
                format!("index {index} after {failures} failures"),
            ),
            RuntimeEvent::StopRequested { agent, grace_ms } => {
                ("stop", format!("{} grace {grace_ms} ms", agent.name))
            }
        }
    }
}

/// A set of agents to start from the session's pod template.
#[derive(Debug, Clone, Default)]
pub struct AgentSet {
    /// Names the set (a Prometheus target label `fleet`, so phases can be queried apart).
    pub fleet: String,
    pub indexes: Vec<u32>,
    /// Environment overrides on top of the template's (scenario knobs: backoff, step delay).
    pub env: BTreeMap<String, String>,
}

impl AgentSet {
    pub fn new(fleet: impl Into<String>, indexes: impl IntoIterator<Item = u32>) -> AgentSet {
        AgentSet {
            fleet: fleet.into(),
            indexes: indexes.into_iter().collect(),
            env: BTreeMap::new(),
        }
    }

    pub fn env(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.env.insert(name.into(), value.to_string());
        self
    }
}

/// A TCP endpoint to probe from the agents' network position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeTarget {
    /// What it is, for messages: `queue`, `gateway`, `canary`, `outside`.
    pub role: String,
    pub host: String,
    pub port: u16,
}

/// Whether a TCP connection succeeded, and what the probe saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeOutcome {
    pub target: ProbeTarget,
    pub connected: bool,
    pub detail: String,
}

/// The platform endpoints a session provides, reachable from the harness.
#[derive(Debug)]
pub struct Platform {
    /// Publishing tasks and reading results (host-side client; the topology is declared).
    pub queue: QueueClient,
    pub gateway: GatewayAdmin,
    /// Base URL of Prometheus' HTTP API, if the session runs one.
    pub prometheus: Option<String>,
    /// RabbitMQ's management API (unacked counts for the timeline), if reachable.
    pub management: Option<crate::services::rabbitmq::Management>,
    /// Label matchers that select this session's agents in Prometheus, besides `fleet`: the
    /// namespace on Kubernetes, whose Prometheus is shared by every session; none on Docker,
    /// whose Prometheus belongs to the session.
    pub metric_labels: BTreeMap<String, String>,
    /// How long an agent must stay up after its last completion for Prometheus to have scraped
    /// its final counters: a few scrape intervals, plus target discovery on Kubernetes.
    pub metrics_settle: Duration,
    /// Endpoints the agents must reach (queue, gateway) and must not (canary, outside).
    pub reachable: Vec<ProbeTarget>,
    pub unreachable: Vec<ProbeTarget>,
}

/// What a scenario asks of a session when opening it.
#[derive(Debug, Clone, Default)]
pub struct SessionSetup {
    /// Run Prometheus scraping every agent.
    pub prometheus: bool,
    /// Run a canary service outside the agents' allowed peers, and an outside listener.
    pub canary: bool,
}

/// A place to run agents: Docker, kind, an existing cluster.
pub trait Runtime: Send + Sync {
    type Session: Session;

    /// `docker`, `kind`, `cluster`.
    fn name(&self) -> &str;

    fn capabilities(&self) -> Capabilities;

    /// Opens an isolated session for one scenario run: its own names, platform and agents.
    fn open(
        &self,
        scenario: ScenarioId,
        setup: &SessionSetup,
    ) -> impl Future<Output = Result<Self::Session, RuntimeError>> + Send;
}

/// One scenario's isolated slice of a runtime. Dropping it must release everything it created
/// (also on panic); [`Session::close`] does the same and reports failures.
pub trait Session: Send + Sync {
    /// Cluster-only operations ([`NoCluster`] for a runtime without them).
    type Cluster: ClusterOps;

    fn platform(&self) -> &Platform;

    /// The cluster-only operations, or why this runtime has none (the scenario then records
    /// its cluster-only checks as skipped with this reason).
    fn cluster(&self) -> Result<&Self::Cluster, String>;

    /// The template agents are started from.
    fn template(&self) -> &PodTemplate;

    /// Pod-spec fields this runtime cannot honour, and other caveats, for the outcome.
    fn warnings(&self) -> Vec<String>;

    /// Starts agents; returns once every instance is created and started.
    fn start_agents(
        &self,
        set: &AgentSet,
    ) -> impl Future<Output = Result<Vec<AgentRef>, RuntimeError>> + Send;

    /// Every instance this session started, replacements included, oldest first.
    fn agents(&self) -> impl Future<Output = Result<Vec<AgentStatus>, RuntimeError>> + Send;

    /// Stops with the template's grace period (or `grace`): SIGTERM, then SIGKILL at the
    /// deadline. Returns as soon as the stop is requested; the exit arrives as an event.
    fn stop(
        &self,
        agent: &AgentRef,
        grace: Option<Duration>,
    ) -> impl Future<Output = Result<EvictOutcome, RuntimeError>> + Send;

    /// SIGKILL now.
    fn kill(&self, agent: &AgentRef) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    fn logs(&self, agent: &AgentRef) -> impl Future<Output = Result<String, RuntimeError>> + Send;

    /// A TCP connect to `target` from exactly the agents' network position.
    fn probe(
        &self,
        target: &ProbeTarget,
    ) -> impl Future<Output = Result<ProbeOutcome, RuntimeError>> + Send;

    /// The same connect from a position no policy restricts: the control of an isolation check
    /// (a target unreachable from there is down, and its unreachability from the agents proves
    /// nothing; the CNI canary of the kind runtime is the same idea).
    fn probe_control(
        &self,
        target: &ProbeTarget,
    ) -> impl Future<Output = Result<ProbeOutcome, RuntimeError>> + Send;

    /// Events from now on (plus the ones since the session opened, so a wait started just after
    /// an action cannot miss its event).
    fn events(&self) -> BoxStream<'static, RuntimeEvent>;

    /// Every event since the session opened, oldest first.
    fn event_history(&self) -> Vec<RuntimeEvent>;

    /// Writes agent logs, status and other evidence into `dir`.
    fn collect_artifacts(
        &self,
        dir: &Path,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Removes everything the session created.
    fn close(self) -> impl Future<Output = Result<(), RuntimeError>> + Send;
}

/// Writes `events` as `runtime-events.json` in `dir`: every runtime leaves the same file among
/// its artifacts, so whoever reads them need not know which runtime ran.
pub(crate) async fn write_event_history(
    dir: &Path,
    events: &[RuntimeEvent],
) -> Result<(), RuntimeError> {
    let json = serde_json::to_string_pretty(events).unwrap_or_default();
    tokio::fs::write(dir.join("runtime-events.json"), json)
        .await
        .map_err(|e| RuntimeError::Other(format!("writing artifacts to {}: {e}", dir.display())))
}
