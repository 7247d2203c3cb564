//! The Docker runtime: the fleet's pod template run as containers on the local engine.
//!
//! A session is one [`Scope`] (unique names and labels, teardown on drop, panic and Ctrl-C) with
//! RabbitMQ, the gateway and optionally Prometheus and a canary as containers. Agents join only
//! the scope's internal agents network, where the NetworkPolicy's allowed peers (queue, gateway,
//! Docker's DNS) live; the canary and the harness' outside listener live on the edge network.

pub mod fleet;
pub mod pod;
pub mod probe;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;

use crate::Scope;
use crate::agents::AgentLauncher;
use crate::checkpoints::{AGENT_UID, CheckpointVolume};
use crate::docker::{Container, ContainerSpec, Engine};
use crate::images::{AGENT_IMAGE_ENV, Images};
use crate::runtime::event_bus::EventBus;
use crate::runtime::{
    AgentRef, AgentSet, AgentStatus, Capabilities, EvictOutcome, Platform, PodTemplate,
    ProbeOutcome, ProbeTarget, Runtime, RuntimeError, RuntimeEvent, Session, SessionSetup,
    write_event_history,
};
use crate::scenario::ScenarioId;
use crate::services::gateway::{self, Gateway};
use crate::services::prometheus::{self, Prometheus};
use crate::services::rabbitmq::{self, RabbitMq};
use fleet::Fleet;
use probe::{OutsideListener, probe_from};

/// Port the canary (a second gateway) listens on.
const CANARY_PORT: u16 = gateway::PORT;

/// The Docker runtime: an engine, the images and the manifests the pod template comes from.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    engine: Engine,
    images: Images,
    manifests: PathBuf,
}

impl DockerRuntime {
    /// Connects to Docker; images from [`Images::from_env`], manifests from
    /// [`PodTemplate::default_dir`].
    pub async fn connect() -> Result<DockerRuntime, RuntimeError> {
        let engine = Engine::connect()
            .await
            .map_err(|e| RuntimeError::Setup(e.to_string()))?;
        Ok(DockerRuntime {
            engine,
            images: Images::from_env(),
            manifests: PodTemplate::default_dir(),
        })
    }

    pub fn with_manifests(mut self, dir: impl Into<PathBuf>) -> Self {
        self.manifests = dir.into();
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Runtime for DockerRuntime {
    type Session = DockerSession;

    fn name(&self) -> &str {
        "docker"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            oom_detection: true,
            graceful_stop: true,
            replacement: true,
            network_probe: true,
            egress_isolation: true,
            prometheus: true,
            gateway_faults: true,
        }
    }

    async fn open(
        &self,
        scenario: ScenarioId,
        setup: &SessionSetup,
    ) -> Result<DockerSession, RuntimeError> {
        DockerSession::open(self, scenario, setup).await
    }
}

/// One scenario's scope on Docker.
#[derive(Debug)]
pub struct DockerSession {
    template: PodTemplate,
    platform: Platform,
    warnings: Vec<String>,
    toolbox_image: String,
    fleet: Arc<Fleet>,
    tasks: BackgroundTasks,
    bus: EventBus,
    // Held for their lifetime (containers are removed with the scope).
    _rabbitmq: RabbitMq,
    _gateway: Gateway,
    prometheus: Option<Arc<Prometheus>>,
    _canary: Option<Container>,
    _outside: Option<Container>,
    /// Network a control probe of each unreachable target's role runs from.
    control_networks: HashMap<String, String>,
    // Last: dropped after everything that refers to its objects.
    scope: Arc<Scope>,
}

fn setup_error(what: &str) -> impl Fn(String) -> RuntimeError + '_ {
    move |e| RuntimeError::Setup(format!("{what}: {e}"))
}

impl DockerSession {
    async fn open(
        runtime: &DockerRuntime,
        scenario: ScenarioId,
        setup: &SessionSetup,
    ) -> Result<DockerSession, RuntimeError> {
        let template = PodTemplate::load(&runtime.manifests)?;
        let image_override = std::env::var(AGENT_IMAGE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        let pod = pod::translate(&template, image_override.as_deref());
        let images = &runtime.images;
        for image in [
            &pod.template.image,
            &images.gateway,
            &images.rabbitmq,
            &images.toolbox,
        ]
        .into_iter()
        .chain(setup.prometheus.then_some(&images.prometheus))
        {
            runtime
                .engine
                .require_image(image)
                .await
                .map_err(|e| setup_error("images")(e.to_string()))?;
        }
        let scope = Arc::new(
            Scope::new(&runtime.engine, scenario.as_str())
                .await
                .map_err(|e| setup_error("scope")(e.to_string()))?,
        );
        let (rabbitmq, gateway, checkpoints, prometheus, canary) = tokio::try_join!(
            async {
                RabbitMq::start(&scope, &images.rabbitmq, rabbitmq::DEFAULT_START_TIMEOUT)
                    .await
                    .map_err(|e| setup_error("RabbitMQ")(e.to_string()))
            },
            async {
                Gateway::start(&scope, &images.gateway, &Default::default())
                    .await
                    .map_err(|e| setup_error("gateway")(e.to_string()))
            },
            async {
                CheckpointVolume::create(&scope, &images.toolbox, AGENT_UID)
                    .await
                    .map_err(|e| setup_error("checkpoint volume")(e.to_string()))
            },
            async {
                if !setup.prometheus {
                    return Ok(None);
                }
                Prometheus::start(
                    &scope,
                    &images.prometheus,
                    prometheus::DEFAULT_START_TIMEOUT,
                )
                .await
                .map(|p| Some(Arc::new(p)))
                .map_err(|e| setup_error("Prometheus")(e.to_string()))
            },
            async {
                if !setup.canary {
                    return Ok(None);
                }
                // A second gateway on the edge network only: a live service the agents must not reach.
                let spec = ContainerSpec::new("canary", &images.gateway)
                    .network(scope.edge_network(), ["canary"])
                    .memory_mib(64)
                    .read_only_rootfs();
                scope
                    .run(spec)
                    .await
                    .map(Some)
                    .map_err(|e| setup_error("canary")(e.to_string()))
            },
        )?;
        if let Some((user, password)) = &pod.broker_user {
            rabbitmq
                .management()
                .add_user(user, password)
                .await
                .map_err(|e| setup_error("creating the Secret's broker user")(e.to_string()))?;
        }
        let queue = rabbitmq
            .client(pod.topology.clone())
            .await
            .map_err(|e| setup_error("queue client")(e.to_string()))?;
        let reachable = vec![
            ProbeTarget {
                role: "queue".into(),
                host: rabbitmq::ALIAS.into(),
                port: rabbitmq::AMQP_PORT,
            },
            ProbeTarget {
                role: "gateway".into(),
                host: gateway::ALIAS.into(),
                port: gateway::PORT,
            },
        ];
        // Targets the agents must not reach, each with the network a control probe runs from:
        // the canary on the edge network, and an "outside" service on a network of its own.
        // (Not a host address: an --internal network still routes to the host's own addresses,
        // see the warnings.)
        let mut unreachable = Vec::new();
        let mut control_networks = HashMap::new();
        let mut outside = None;
        if let Some(canary) = &canary {
            let ip = container_ip(canary, scope.edge_network()).await?;
            unreachable.push(ProbeTarget {
                role: "canary".into(),
                host: ip.to_string(),
                port: CANARY_PORT,
            });
            control_networks.insert("canary".to_owned(), scope.edge_network().to_owned());
            let network = scope
                .create_extra_network("outside")
                .await
                .map_err(|e| setup_error("outside network")(e.to_string()))?;
            let spec = ContainerSpec::new("outside", &images.gateway)
                .network(&network, Vec::<String>::new())
                .memory_mib(64)
                .read_only_rootfs();
            let container = scope
                .run(spec)
                .await
                .map_err(|e| setup_error("outside service")(e.to_string()))?;
            let ip = container_ip(&container, &network).await?;
            unreachable.push(ProbeTarget {
                role: "outside".into(),
                host: ip.to_string(),
                port: CANARY_PORT,
            });
            control_networks.insert("outside".to_owned(), network);
            outside = Some(container);
        }
        let mut warnings = pod.warnings;
        if setup.canary {
            warnings.push(host_leak(&scope, &images.toolbox, &runtime.engine).await?);
        }
        let launcher = AgentLauncher::new(pod.template.clone(), pod.topology.clone(), &checkpoints);
        let bus = EventBus::default();
        let fleet = Fleet::new(
            &scope,
            launcher,
            pod.tmpfs.clone(),
            template.restart.clone(),
            prometheus.clone(),
            bus.clone(),
        );
        let controller = fleet.spawn_controller();
        let platform = Platform {
            queue,
            gateway: gateway.admin().clone(),
            prometheus: prometheus.as_ref().map(|p| p.api().base_url().to_owned()),
            management: Some(rabbitmq.management().clone()),
            metric_labels: Default::default(),
            // 1 s scrapes of a target list the harness writes as agents start.
            metrics_settle: Duration::from_secs(5),
            reachable,
            unreachable,
        };
        Ok(DockerSession {
            template,
            platform,
            warnings,
            toolbox_image: images.toolbox.clone(),
            fleet,
            tasks: BackgroundTasks {
                controller: Some(controller),
                stops: std::sync::Mutex::new(Vec::new()),
            },
            bus,
            _rabbitmq: rabbitmq,
            _gateway: gateway,
            prometheus,
            _canary: canary,
            _outside: outside,
            control_networks,
            scope,
        })
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }
}

/// The controller loop and pending `docker stop`s. They hold the fleet (and so the scope):
/// aborting them on drop lets a session dropped without [`Session::close`] (a panic) release
/// the scope, whose own drop then removes everything.
#[derive(Debug)]
struct BackgroundTasks {
    controller: Option<tokio::task::JoinHandle<()>>,
    stops: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl BackgroundTasks {
    async fn shutdown(&mut self) {
        self.abort_stops();
        if let Some(controller) = self.controller.take() {
            controller.abort();
            let _ = controller.await;
        }
    }

    fn abort_stops(&self) {
        for stop in self
            .stops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
        {
            stop.abort();
        }
    }
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        self.abort_stops();
        if let Some(controller) = &self.controller {
            controller.abort();
        }
    }
}

/// Measures the caveat of Docker's `--internal` networks: a listener of the harness on the host's
/// address of the edge network, probed from the agents' network. Returns the finding as text.
async fn host_leak(scope: &Scope, toolbox: &str, engine: &Engine) -> Result<String, RuntimeError> {
    let ip = network_gateway(engine, scope.edge_network()).await?;
    let listener = OutsideListener::bind(ip).await?;
    let target = ProbeTarget {
        role: "host".into(),
        host: ip.to_string(),
        port: listener.address().port(),
    };
    let probe = probe_from(scope, toolbox, &[scope.agents_network()], &target).await?;
    Ok(if probe.connected {
        format!(
            "measured: agents reach services on the host ({ip}:{} answered from the agents' network); Docker's --internal network does not isolate from the host, a NetworkPolicy would",
            target.port
        )
    } else {
        format!(
            "measured: a host listener at {ip}:{} was not reachable from the agents' network ({})",
            target.port, probe.detail
        )
    })
}

async fn container_ip(container: &Container, network: &str) -> Result<IpAddr, RuntimeError> {
    container
        .ip_on(network)
        .await
        .map_err(|e| RuntimeError::Setup(e.to_string()))?
        .ok_or_else(|| {
            RuntimeError::Setup(format!(
                "{} has no IP address on {network}",
                container.name()
            ))
        })
}

async fn network_gateway(engine: &Engine, network: &str) -> Result<IpAddr, RuntimeError> {
    let inspect = engine
        .raw()
        .inspect_network(
            network,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .map_err(|e| RuntimeError::Setup(format!("inspect network {network}: {e}")))?;
    inspect
        .ipam
        .and_then(|i| i.config)
        .into_iter()
        .flatten()
        .find_map(|c| c.gateway.and_then(|g| g.parse().ok()))
        .ok_or_else(|| RuntimeError::Setup(format!("network {network} has no gateway address")))
}

impl Session for DockerSession {
    type Cluster = crate::runtime::NoCluster;

    fn platform(&self) -> &Platform {
        &self.platform
    }

    fn cluster(&self) -> Result<&Self::Cluster, String> {
        Err("the Docker runtime has no KEDA, PodDisruptionBudget or NetworkPolicy enforcement; run with --runtime kind or cluster".into())
    }

    fn template(&self) -> &PodTemplate {
        &self.template
    }

    fn warnings(&self) -> Vec<String> {
        let mut warnings = self.warnings.clone();
        if self.prometheus.is_some() {
            warnings.push(format!(
                "Prometheus discovers agents through a file_sd list the harness writes (the image has no kubernetes_sd); scrape interval {:?}",
                prometheus::SCRAPE_INTERVAL
            ));
        }
        warnings
    }

    async fn start_agents(&self, set: &AgentSet) -> Result<Vec<AgentRef>, RuntimeError> {
        let mut started = Vec::with_capacity(set.indexes.len());
        for &index in &set.indexes {
            started.push(self.fleet.launch(index, 0, &set.fleet, &set.env).await?);
        }
        Ok(started)
    }

    async fn agents(&self) -> Result<Vec<AgentStatus>, RuntimeError> {
        self.fleet.statuses().await
    }

    async fn stop(
        &self,
        agent: &AgentRef,
        grace: Option<Duration>,
    ) -> Result<EvictOutcome, RuntimeError> {
        let container = match self.fleet.mark_disrupted(agent) {
            Ok(container) => container,
            Err(RuntimeError::UnknownAgent(_)) => return Ok(EvictOutcome::NotFound),
            Err(e) => return Err(e),
        };
        let status = container.status().await.map_err(|e| RuntimeError::Agent {
            agent: agent.name.clone(),
            problem: e.to_string(),
        })?;
        if !status.running {
            return Ok(EvictOutcome::NotFound);
        }
        let grace = grace.unwrap_or(self.template.grace);
        self.bus.publish(RuntimeEvent::StopRequested {
            agent: agent.clone(),
            grace_ms: grace.as_millis() as u64,
        });
        // `docker stop` returns only once the container is gone; the scenario waits on the exit
        // event instead, so the stop runs in the background.
        let name = agent.name.clone();
        let handle = tokio::spawn(async move {
            if let Err(e) = container.stop(grace).await {
                tracing::error!(agent = %name, "docker stop failed: {e}");
            }
        });
        self.tasks
            .stops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(handle);
        Ok(EvictOutcome::Evicted)
    }

    async fn kill(&self, agent: &AgentRef) -> Result<(), RuntimeError> {
        let container = self.fleet.mark_disrupted(agent)?;
        container
            .kill("SIGKILL")
            .await
            .map_err(|e| RuntimeError::Agent {
                agent: agent.name.clone(),
                problem: e.to_string(),
            })
    }

    async fn logs(&self, agent: &AgentRef) -> Result<String, RuntimeError> {
        self.fleet
            .container(agent)?
            .logs()
            .await
            .map_err(|e| RuntimeError::Agent {
                agent: agent.name.clone(),
                problem: e.to_string(),
            })
    }

    async fn probe(&self, target: &ProbeTarget) -> Result<ProbeOutcome, RuntimeError> {
        probe_from(
            &self.scope,
            &self.toolbox_image,
            &[self.scope.agents_network()],
            target,
        )
        .await
    }

    async fn probe_control(&self, target: &ProbeTarget) -> Result<ProbeOutcome, RuntimeError> {
        let network = self
            .control_networks
            .get(&target.role)
            .map_or(self.scope.edge_network(), String::as_str);
        probe_from(&self.scope, &self.toolbox_image, &[network], target).await
    }

    fn events(&self) -> BoxStream<'static, RuntimeEvent> {
        self.bus.stream()
    }

    fn event_history(&self) -> Vec<RuntimeEvent> {
        self.bus.history()
    }

    async fn collect_artifacts(&self, dir: &Path) -> Result<(), RuntimeError> {
        let io = |e: std::io::Error| {
            RuntimeError::Other(format!("writing artifacts to {}: {e}", dir.display()))
        };
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
        let statuses = self.fleet.statuses().await.unwrap_or_default();
        for status in &statuses {
            let logs = self
                .logs(&status.agent)
                .await
                .unwrap_or_else(|e| format!("(logs unavailable: {e})"));
            tokio::fs::write(dir.join(format!("{}.log", status.agent.name)), logs)
                .await
                .map_err(io)?;
            let Ok(container) = self.fleet.container(&status.agent) else {
                continue;
            };
            let inspect = self
                .scope
                .engine()
                .raw()
                .inspect_container(container.id(), None)
                .await;
            let json = match inspect {
                Ok(inspect) => serde_json::to_string_pretty(&inspect).unwrap_or_default(),
                Err(e) => format!("(inspect failed: {e})"),
            };
            tokio::fs::write(
                dir.join(format!("{}.inspect.json", status.agent.name)),
                json,
            )
            .await
            .map_err(io)?;
        }
        let summary = serde_json::to_string_pretty(&statuses).unwrap_or_default();
        tokio::fs::write(dir.join("agents.json"), summary)
            .await
            .map_err(io)?;
        write_event_history(dir, &self.bus.history()).await
    }

    async fn close(self) -> Result<(), RuntimeError> {
        let DockerSession {
            platform,
            mut tasks,
            scope,
            fleet,
            prometheus,
            ..
        } = self;
        tasks.shutdown().await;
        let _ = platform.queue.close().await;
        drop((fleet, prometheus));
        match Arc::try_unwrap(scope) {
            Ok(scope) => scope
                .teardown()
                .await
                .map(drop)
                .map_err(|e| RuntimeError::Other(format!("teardown: {e}"))),
            // Only the session holds the scope strongly and it is being consumed here.
            Err(_shared) => Err(RuntimeError::Other(
                "teardown: the scope is still shared; it is removed when the last holder drops it"
                    .into(),
            )),
        }
    }
}
