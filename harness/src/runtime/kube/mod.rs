//! The Kubernetes runtime (`kind` and `cluster`): the runtime trait mapped onto the typed
//! operations of `agentfleet_cluster`, one call per method.
//!
//! A session is a scenario namespace (`af-<scenario>-<random>`, removed on close, drop, panic and
//! by `agentfleet cluster sweep`) holding the reference fleet's supporting objects (Secret,
//! NetworkPolicies, PDB, PVC, LimitRange, ServiceAccount), retargeted from `agents`. Agents are
//! Indexed Jobs derived from the reference Job ([`job`]); status, eviction, kill and logs go
//! through `agentfleet_cluster::fleet`, probes through `agentfleet_cluster::probe`, events
//! through the namespace's watches ([`events`]). The platform (RabbitMQ, the gateway,
//! Prometheus) is the one `cluster up` (kind) or `cluster install` (an existing cluster)
//! installed, shared by every session, and reached from the
//! harness through port-forwards ([`port_forward`]).

pub mod agents;
pub mod cluster_ops;
pub mod events;
pub mod job;
pub mod platform;
pub mod port_forward;
pub mod status;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentfleet_cluster::apply::Applier;
use agentfleet_cluster::checks::netpol::{self, Canary};
use agentfleet_cluster::namespace::{LiveNamespaces, ScenarioNamespace};
use agentfleet_cluster::probe::{self as cluster_probe, ProbeSpec};
use agentfleet_cluster::{artifacts, events::cluster_events, keda, kustomize};
use agentfleet_protocol::env;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::images::AGENT_IMAGE_ENV;
use crate::queue::QueueClient;
use crate::runtime::event_bus::EventBus;
use crate::runtime::template::{EnvSource, REFERENCE_JOB};
use crate::runtime::{
    AgentRef, AgentSet, AgentStatus, Capabilities, EvictOutcome, Platform, PodTemplate,
    ProbeOutcome, ProbeTarget, Runtime, RuntimeError, RuntimeEvent, Session, SessionSetup,
    write_event_history,
};
use crate::scenario::ScenarioId;
use crate::services::gateway::GatewayAdmin;
use agents::AgentOps;
use cluster_ops::{ClusterHistory, KubeCluster};
use events::EventMapper;
use port_forward::PortForward;

/// Which cluster: a kind cluster this project manages, or the current kubeconfig context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavour {
    /// Images are loaded into the nodes (`imagePullPolicy: Never`, manifests/overlays/kind).
    Kind { cluster: String },
    /// An existing cluster; images come from a registry (manifests/base as written).
    Cluster { context: String },
}

/// Bounds of the runtime's own waits.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From applying a Job until each of its pods runs (image already on the node).
    pub start: Duration,
    /// One probe pod, from creation to verdict.
    pub probe: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            start: Duration::from_secs(180),
            probe: Duration::from_secs(90),
        }
    }
}

/// The Kubernetes runtime.
#[derive(Clone)]
pub struct KubeRuntime {
    client: Client,
    /// The manifests root: `base/`, `platform/`, `overlays/kind/`.
    manifests: PathBuf,
    flavour: Flavour,
    live: LiveNamespaces,
    /// Set once [`KubeRuntime::verify_cni`] saw a deny-all policy enforced.
    egress_enforced: Arc<AtomicBool>,
    /// The canary's verdict, for the NetworkPolicy matrix check of every session.
    canary: Arc<tokio::sync::Mutex<Option<Canary>>>,
    timeouts: Timeouts,
}

impl std::fmt::Debug for KubeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeRuntime")
            .field("manifests", &self.manifests)
            .field("flavour", &self.flavour)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

fn setup(what: &str) -> impl Fn(String) -> RuntimeError + '_ {
    move |e| RuntimeError::Setup(format!("{what}: {e}"))
}

impl KubeRuntime {
    pub fn new(client: Client, manifests: impl Into<PathBuf>, flavour: Flavour) -> KubeRuntime {
        KubeRuntime {
            client,
            manifests: manifests.into(),
            flavour,
            live: LiveNamespaces::default(),
            egress_enforced: Arc::new(AtomicBool::new(false)),
            canary: Arc::default(),
            timeouts: Timeouts::default(),
        }
    }

    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn flavour(&self) -> &Flavour {
        &self.flavour
    }

    /// Namespaces of open sessions, for a Ctrl-C handler
    /// (`agentfleet_cluster::namespace::cleanup_on`).
    pub fn live_namespaces(&self) -> &LiveNamespaces {
        &self.live
    }

    /// The CNI canary: a deny-all egress policy in a namespace of its own and a probe through
    /// it. Only when the probe is refused does [`Capabilities::egress_isolation`] become true,
    /// because a CNI that does not enforce NetworkPolicy (or fails open) would let the
    /// network-isolation scenario pass for the wrong reason.
    pub async fn verify_cni(&self) -> Result<Canary, RuntimeError> {
        let canary = run_cni_canary(&self.client, &self.live, self.timeouts.probe).await?;
        self.egress_enforced
            .store(canary == Canary::Enforced, Ordering::SeqCst);
        *self.canary.lock().await = Some(canary.clone());
        Ok(canary)
    }

    /// The rendered manifests this flavour applies.
    fn rendered(&self) -> Result<Vec<Value>, RuntimeError> {
        let rendered = match &self.flavour {
            Flavour::Kind { .. } => keda::render_kind_overlay(&self.manifests),
            Flavour::Cluster { .. } => kustomize::render(&self.manifests.join("base")),
        };
        rendered
            .map(|r| r.objects)
            .map_err(|e| setup("rendering the manifests")(e.to_string()))
    }
}

impl Runtime for KubeRuntime {
    type Session = KubeSession;

    fn name(&self) -> &str {
        match self.flavour {
            Flavour::Kind { .. } => "kind",
            Flavour::Cluster { .. } => "cluster",
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            oom_detection: true,
            graceful_stop: true,
            replacement: true,
            network_probe: true,
            egress_isolation: self.egress_enforced.load(Ordering::SeqCst),
            prometheus: true,
            gateway_faults: true,
        }
    }

    async fn open(
        &self,
        scenario: ScenarioId,
        setup_request: &SessionSetup,
    ) -> Result<KubeSession, RuntimeError> {
        KubeSession::open(self, scenario, setup_request).await
    }
}

/// The deny-all canary in a namespace of its own (the fleet's policies must not apply to it:
/// their allow rules would let the probe through whatever the CNI does).
pub(crate) async fn run_cni_canary(
    client: &Client,
    live: &LiveNamespaces,
    probe_timeout: Duration,
) -> Result<Canary, RuntimeError> {
    let namespace = ScenarioNamespace::create(client.clone(), "cni-canary", live.clone())
        .await
        .map_err(|e| setup("CNI canary namespace")(e.to_string()))?;
    let gateway = &platform::reachable()[1];
    let target = netpol::Target {
        host: gateway.host.clone(),
        port: gateway.port,
    };
    let canary =
        netpol::run_canary(client.clone(), namespace.name(), &target, 3, probe_timeout).await;
    let cleanup = namespace.cleanup().await;
    let canary = canary.map_err(|e| RuntimeError::Probe(e.to_string()))?;
    cleanup.map_err(|e| RuntimeError::Other(e.to_string()))?;
    Ok(canary)
}

/// One scenario's namespace on the cluster.
pub struct KubeSession {
    client: Client,
    agents: AgentOps,
    cluster: KubeCluster,
    template: PodTemplate,
    platform: Platform,
    bus: EventBus,
    _watch: WatchTask,
    timeouts: Timeouts,
    control: OnceCell<ScenarioNamespace>,
    live: LiveNamespaces,
    scope: String,
    _forwards: Vec<PortForward>,
    // Last: its drop (cleanup in the background) runs after the watch is aborted.
    namespace: ScenarioNamespace,
}

impl std::fmt::Debug for KubeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSession")
            .field("namespace", &self.namespace.name())
            .field("agents", &self.agents)
            .finish_non_exhaustive()
    }
}

/// The watch task; aborted when the session goes, however it goes.
#[derive(Debug)]
struct WatchTask(tokio::task::JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The broker URL the agents get from the Secret (it holds a password: never printed).
fn broker_url(template: &PodTemplate) -> Result<String, RuntimeError> {
    template
        .env
        .iter()
        .find(|(name, _)| name == env::QUEUE_URL)
        .and_then(|(_, source)| match source {
            EnvSource::Secret { value, .. } | EnvSource::Literal(value) => Some(value.clone()),
            EnvSource::CompletionIndex => None,
        })
        .ok_or_else(|| {
            RuntimeError::Setup(format!(
                "{}: the agent container has no {} with a value or a Secret the manifests define (manifests/base/secret.yaml)",
                template.origin,
                env::QUEUE_URL
            ))
        })
}

/// The reference Job of the rendered manifests.
fn reference_job(rendered: &[Value]) -> Result<Job, RuntimeError> {
    let object = rendered
        .iter()
        .find(|o| {
            o["kind"] == "Job"
                && o["metadata"]["name"] == REFERENCE_JOB
                && o["metadata"]["namespace"] == platform::FLEET_NAMESPACE
        })
        .ok_or_else(|| {
            RuntimeError::Setup(format!(
                "the manifests define no Job {}/{REFERENCE_JOB} (expected manifests/base/job.yaml)",
                platform::FLEET_NAMESPACE
            ))
        })?;
    serde_json::from_value(object.clone())
        .map_err(|e| setup(&format!("Job {REFERENCE_JOB}"))(e.to_string()))
}

/// `AGENTFLEET_AGENT_IMAGE` replaces the agent image, as on Docker (`conform --image`).
fn override_agent_image(job: &mut Job) {
    let Some(image) = std::env::var(AGENT_IMAGE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return;
    };
    if let Some(container) = job
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|s| s.containers.first_mut())
    {
        container.image = Some(image);
    }
}

impl KubeSession {
    async fn open(
        runtime: &KubeRuntime,
        scenario: ScenarioId,
        setup_request: &SessionSetup,
    ) -> Result<KubeSession, RuntimeError> {
        let template = PodTemplate::load(&runtime.manifests.join("base"))?;
        let rendered = runtime.rendered()?;
        let mut reference_job = reference_job(&rendered)?;
        override_agent_image(&mut reference_job);
        let url = broker_url(&template)?;
        let client = runtime.client.clone();
        let namespace =
            ScenarioNamespace::create(client.clone(), scenario.as_str(), runtime.live.clone())
                .await
                .map_err(|e| setup("scenario namespace")(e.to_string()))?;
        let objects = platform::fleet_objects(&rendered, namespace.name());
        Applier::new(client.clone())
            .apply_all(objects)
            .await
            .map_err(|e| {
                setup(&format!("applying the fleet into {}", namespace.name()))(e.to_string())
            })?;

        let amqp = PortForward::start(client.clone(), platform::rabbitmq_amqp())
            .await
            .map_err(|e| setup("RabbitMQ")(e.to_string()))?;
        let gateway = PortForward::start(client.clone(), platform::gateway_http())
            .await
            .map_err(|e| setup("gateway")(e.to_string()))?;
        let management = PortForward::start(client.clone(), platform::rabbitmq_management())
            .await
            .map_err(|e| setup("RabbitMQ management")(e.to_string()))?;
        let prometheus = if setup_request.prometheus {
            Some(
                PortForward::start(client.clone(), platform::prometheus_http())
                    .await
                    .map_err(|e| setup("Prometheus")(e.to_string()))?,
            )
        } else {
            None
        };
        let host_url = platform::url_through(&url, amqp.local()).ok_or_else(|| {
            RuntimeError::Setup(format!(
                "{} in {} is not a URL of the form amqp://user:password@host:port/vhost",
                env::QUEUE_URL,
                template.origin
            ))
        })?;
        let queue = QueueClient::connect(&host_url, template.topology())
            .await
            .map_err(|e| setup("queue client")(e.to_string()))?;
        queue
            .declare_topology()
            .await
            .map_err(|e| setup("queue topology")(e.to_string()))?;

        let bus = EventBus::default();
        let agents = AgentOps::new(
            client.clone(),
            namespace.name(),
            reference_job,
            bus.clone(),
            template.grace,
            runtime.timeouts.start,
        );
        let history = ClusterHistory::default();
        let watch = tokio::spawn(publish_events(
            cluster_events(
                client.clone(),
                namespace.name(),
                &status::agent_pod_selector(),
            ),
            EventMapper::new(agents.jobs().clone(), agents.killed().clone()),
            bus.clone(),
            history.clone(),
        ));
        let cluster = KubeCluster::new(
            client.clone(),
            namespace.name(),
            cluster_ops::keda_objects(&rendered, namespace.name()),
            history,
            runtime.canary.clone(),
            runtime.live.clone(),
            vec![
                runtime.manifests.join("base"),
                runtime.manifests.join("platform"),
            ],
            runtime.timeouts,
        );
        let platform = Platform {
            queue,
            gateway: GatewayAdmin::new(format!("http://{}", gateway.local())),
            prometheus: prometheus.as_ref().map(|p| format!("http://{}", p.local())),
            management: crate::services::rabbitmq::Management::from_amqp_url(
                format!("http://{}", management.local()),
                &url,
            ),
            metric_labels: [("namespace".to_owned(), namespace.name().to_owned())].into(),
            // manifests/platform/prometheus: 10 s scrapes; a new pod becomes a target after up
            // to ~5 s of discovery and ~5 s of scrape-manager reload, then a first scrape
            // offset of up to one interval.
            metrics_settle: Duration::from_secs(25),
            reachable: platform::reachable(),
            unreachable: if setup_request.canary {
                platform::unreachable()
            } else {
                Vec::new()
            },
        };
        let forwards = [Some(amqp), Some(gateway), Some(management), prometheus]
            .into_iter()
            .flatten()
            .collect();
        Ok(KubeSession {
            client,
            agents,
            cluster,
            template,
            platform,
            bus,
            _watch: WatchTask(watch),
            timeouts: runtime.timeouts,
            control: OnceCell::new(),
            live: runtime.live.clone(),
            scope: scenario.as_str().to_owned(),
            _forwards: forwards,
            namespace,
        })
    }

    pub fn namespace(&self) -> &str {
        self.namespace.name()
    }

    async fn run_probe(
        &self,
        namespace: &str,
        spec: ProbeSpec,
        target: &ProbeTarget,
    ) -> Result<ProbeOutcome, RuntimeError> {
        let outcome =
            cluster_probe::run_probe(self.client.clone(), namespace, &spec, self.timeouts.probe)
                .await
                .map_err(|e| RuntimeError::Probe(e.to_string()))?;
        Ok(match outcome {
            cluster_probe::ProbeOutcome::Reachable => ProbeOutcome {
                target: target.clone(),
                connected: true,
                detail: "connected".into(),
            },
            cluster_probe::ProbeOutcome::Unreachable { detail } => ProbeOutcome {
                target: target.clone(),
                connected: false,
                detail,
            },
        })
    }
}

/// Feeds the bus from the namespace's watches until the session ends.
async fn publish_events(
    stream: impl futures::Stream<
        Item = Result<
            agentfleet_cluster::events::ClusterEvent,
            agentfleet_cluster::events::EventsError,
        >,
    > + Send,
    mut mapper: EventMapper,
    bus: EventBus,
    history: ClusterHistory,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                history.record(&event);
                mapper.map(&event).into_iter().for_each(|e| bus.publish(e));
            }
            // The watchers back off and resume; a gap shows up as late events, not lost ones
            // (a re-list replays current state, which the mapper deduplicates).
            Err(error) => tracing::warn!(%error, "cluster watch interrupted"),
        }
    }
}

impl Session for KubeSession {
    type Cluster = KubeCluster;

    fn platform(&self) -> &Platform {
        &self.platform
    }

    fn cluster(&self) -> Result<&KubeCluster, String> {
        Ok(&self.cluster)
    }

    fn template(&self) -> &PodTemplate {
        &self.template
    }

    fn warnings(&self) -> Vec<String> {
        vec![format!(
            "RabbitMQ, the gateway and Prometheus are the cluster's shared platform (installed by `cluster up`), not per-session; agents run in namespace {}",
            self.namespace.name()
        )]
    }

    async fn start_agents(&self, set: &AgentSet) -> Result<Vec<AgentRef>, RuntimeError> {
        self.agents.start(set).await
    }

    async fn agents(&self) -> Result<Vec<AgentStatus>, RuntimeError> {
        self.agents.statuses().await
    }

    async fn stop(
        &self,
        agent: &AgentRef,
        grace: Option<Duration>,
    ) -> Result<EvictOutcome, RuntimeError> {
        self.agents.stop(agent, grace).await
    }

    async fn kill(&self, agent: &AgentRef) -> Result<(), RuntimeError> {
        self.agents.kill(agent).await
    }

    async fn logs(&self, agent: &AgentRef) -> Result<String, RuntimeError> {
        self.agents.logs(agent).await
    }

    async fn probe(&self, target: &ProbeTarget) -> Result<ProbeOutcome, RuntimeError> {
        let spec = ProbeSpec::as_agent(target.host.clone(), target.port);
        self.run_probe(self.namespace.name(), spec, target).await
    }

    async fn probe_control(&self, target: &ProbeTarget) -> Result<ProbeOutcome, RuntimeError> {
        // The fleet's default-deny policy selects every pod of the scenario namespace, so the
        // control runs in a sibling namespace without policies, unlabelled as an agent.
        let scope = format!("{}-control", self.scope);
        let control = self
            .control
            .get_or_try_init(|| {
                ScenarioNamespace::create(self.client.clone(), &scope, self.live.clone())
            })
            .await
            .map_err(|e| RuntimeError::Probe(format!("control namespace: {e}")))?;
        let mut spec = ProbeSpec::as_agent(target.host.clone(), target.port);
        spec.labels = [("agentfleet.dev/control".to_owned(), "true".to_owned())].into();
        self.run_probe(control.name(), spec, target).await
    }

    fn events(&self) -> BoxStream<'static, RuntimeEvent> {
        self.bus.stream()
    }

    fn event_history(&self) -> Vec<RuntimeEvent> {
        self.bus.history()
    }

    async fn collect_artifacts(&self, dir: &Path) -> Result<(), RuntimeError> {
        let collected = artifacts::collect(self.client.clone(), self.namespace.name(), dir)
            .await
            .map_err(|e| RuntimeError::Other(e.to_string()))?;
        if !collected.problems.is_empty() {
            tracing::warn!(
                problems = collected.problems.len(),
                "some artifacts could not be collected; see problems.txt"
            );
        }
        write_event_history(dir, &self.bus.history()).await
    }

    async fn close(mut self) -> Result<(), RuntimeError> {
        let control = self.control.take();
        let KubeSession {
            platform,
            namespace,
            _forwards,
            _watch,
            ..
        } = self;
        drop(_watch);
        let _ = platform.queue.close().await;
        drop(_forwards);
        let control = match control {
            Some(control) => control.cleanup().await,
            None => Ok(()),
        };
        namespace
            .cleanup()
            .await
            .and(control)
            .map_err(|e| RuntimeError::Other(e.to_string()))
    }
}
