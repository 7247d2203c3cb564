//! [`Scope`]: owner of every Docker object one test or scenario creates.
//!
//! Tests run in parallel (nextest runs each in its own process) against one Docker engine, so
//! everything a test creates carries a label with its scope's unique id and a name prefixed with
//! it. Teardown removes by label, so nothing depends on the test having kept its handles, and a
//! panicking test still cleans up: `Drop` removes whatever an explicit
//! [`Scope::teardown`] did not. Set `AGENTFLEET_KEEP=1` to keep a failed test's containers for
//! inspection (remove them later with [`sweep`](crate::sweep::sweep)).

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bollard::models::{NetworkConnectRequest, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::ListContainersOptionsBuilder;

use crate::docker::{Container, ContainerSpec, DockerError, Engine, EventRecorder, endpoint, tail};
use crate::sweep::{SCOPE_LABEL, Sweep, Swept, sweep};

/// Environment variable that keeps a scope's objects after the test (for debugging).
pub const KEEP_ENV: &str = "AGENTFLEET_KEEP";

/// Log lines of each container printed when a scope is dropped during a panic.
const PANIC_LOG_LINES: usize = 40;

/// The Docker objects of one test or scenario.
#[derive(Debug)]
pub struct Scope {
    engine: Engine,
    id: String,
    agents_network: String,
    edge_network: String,
    torn_down: AtomicBool,
}

impl Scope {
    /// Creates a scope named after `hint` (usually the test name) and its two networks:
    /// - the *agents* network, `internal`: agents reach the broker and the gateway by their
    ///   aliases and nothing outside (no route to other networks);
    /// - the *edge* network, a plain bridge the services publish their ports through (Docker
    ///   cannot publish a port of a container whose only network is internal).
    pub async fn new(engine: &Engine, hint: &str) -> Result<Scope, DockerError> {
        let id = format!("af-{}-{:06x}", sanitize(hint), unique() & 0xff_ffff);
        let scope = Scope {
            engine: engine.clone(),
            agents_network: format!("{id}-agents"),
            edge_network: format!("{id}-edge"),
            id,
            torn_down: AtomicBool::new(false),
        };
        live_scopes().insert(scope.id.clone());
        scope.create_network(&scope.agents_network, true).await?;
        scope.create_network(&scope.edge_network, false).await?;
        Ok(scope)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The internal network agents run on.
    pub fn agents_network(&self) -> &str {
        &self.agents_network
    }

    /// The bridge network services publish ports through.
    pub fn edge_network(&self) -> &str {
        &self.edge_network
    }

    /// `<scope id>-<suffix>`: the name of an object of this scope.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{}", self.id, sanitize(suffix))
    }

    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(SCOPE_LABEL.to_owned(), self.id.clone())])
    }

    async fn create_network(&self, name: &str, internal: bool) -> Result<(), DockerError> {
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            internal: Some(internal),
            labels: Some(self.labels()),
            ..Default::default()
        };
        self.engine
            .raw()
            .create_network(request)
            .await
            .map_err(DockerError::api("create network", name))?;
        Ok(())
    }

    /// Creates a further bridge network `<scope id>-<suffix>` (e.g. a network no agent joins, to
    /// host a target that must be unreachable) and returns its name.
    pub async fn create_extra_network(&self, suffix: &str) -> Result<String, DockerError> {
        let name = self.name(suffix);
        self.create_network(&name, false).await?;
        Ok(name)
    }

    /// Creates a named volume `<scope id>-<suffix>` and returns its name.
    pub async fn create_volume(&self, suffix: &str) -> Result<String, DockerError> {
        let name = self.name(suffix);
        let request = VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(self.labels()),
            ..Default::default()
        };
        self.engine
            .raw()
            .create_volume(request)
            .await
            .map_err(DockerError::api("create volume", &name))?;
        Ok(name)
    }

    /// Creates (does not start) a container: name prefixed with the scope id, scope label added,
    /// networks after the first connected with their aliases.
    pub async fn create_container(&self, spec: ContainerSpec) -> Result<Container, DockerError> {
        let mut spec = spec;
        spec.name = self.name(&spec.name);
        spec.labels.insert(SCOPE_LABEL.to_owned(), self.id.clone());
        let options = bollard::query_parameters::CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created = self
            .engine
            .raw()
            .create_container(Some(options), spec.to_create_body())
            .await
            .map_err(|source| match source {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ref message,
                } if message.contains("image") => DockerError::ImageMissing {
                    image: spec.image.clone(),
                },
                source => DockerError::Api {
                    action: "create container",
                    object: spec.name.clone(),
                    source,
                },
            })?;
        let container = Container::new(self.engine.clone(), created.id, spec.name.clone());
        for attachment in spec.extra_networks() {
            let request = NetworkConnectRequest {
                container: container.id().to_owned(),
                endpoint_config: Some(endpoint(&attachment.aliases)),
            };
            self.engine
                .raw()
                .connect_network(&attachment.network, request)
                .await
                .map_err(DockerError::api(
                    "connect to network",
                    format!("{} -> {}", spec.name, attachment.network),
                ))?;
        }
        Ok(container)
    }

    /// Creates and starts a container.
    pub async fn run(&self, spec: ContainerSpec) -> Result<Container, DockerError> {
        let container = self.create_container(spec).await?;
        container.start().await?;
        Ok(container)
    }

    /// Starts recording the Docker events of this scope's containers (see [`EventRecorder`]).
    pub fn record_events(&self) -> EventRecorder {
        EventRecorder::start(&self.engine, format!("{SCOPE_LABEL}={}", self.id))
    }

    /// Removes everything of this scope now and reports what was removed.
    pub async fn teardown(self) -> Result<Swept, DockerError> {
        self.torn_down.store(true, Ordering::SeqCst);
        live_scopes().remove(&self.id);
        if keep_requested() {
            eprintln!(
                "{KEEP_ENV} is set: keeping the Docker objects of scope {}",
                self.id
            );
            return Ok(Swept::default());
        }
        sweep(&self.engine, &Sweep::Scope(self.id.clone())).await
    }
}

impl Drop for Scope {
    /// Removes what [`Scope::teardown`] did not, also when a test panics. `Drop` cannot await, and
    /// blocking inside the test's runtime could deadlock it, so the sweep runs on its own thread
    /// with its own runtime and Docker connection; the drop waits for it.
    fn drop(&mut self) {
        if self.torn_down.swap(true, Ordering::SeqCst) {
            return;
        }
        live_scopes().remove(&self.id);
        let id = self.id.clone();
        let panicking = std::thread::panicking();
        let keep = keep_requested();
        let cleanup = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => return eprintln!("scope {id}: cannot build a runtime for teardown: {e}"),
            };
            runtime.block_on(async {
                let engine = match Engine::connect().await {
                    Ok(engine) => engine,
                    Err(e) => return eprintln!("scope {id}: teardown impossible: {e}"),
                };
                if panicking {
                    print_container_logs(&engine, &id).await;
                }
                if keep {
                    return eprintln!(
                        "{KEEP_ENV} is set: keeping the Docker objects of scope {id}"
                    );
                }
                if let Err(e) = sweep(&engine, &Sweep::Scope(id.clone())).await {
                    eprintln!("scope {id}: teardown incomplete, run a sweep later: {e}");
                }
            });
        });
        if cleanup.join().is_err() {
            eprintln!("scope {}: the teardown thread panicked", self.id);
        }
    }
}

/// Prints every container's state and last log lines to stderr: when a test fails, this is the
/// evidence (the containers are gone afterwards).
async fn print_container_logs(engine: &Engine, scope_id: &str) {
    let filters = HashMap::from([("label", vec![format!("{SCOPE_LABEL}={scope_id}")])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let Ok(containers) = engine.raw().list_containers(Some(options)).await else {
        return;
    };
    for summary in containers {
        let (Some(id), Some(names)) = (summary.id, summary.names) else {
            continue;
        };
        let name = names
            .first()
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default();
        let container = Container::new(engine.clone(), id, name.clone());
        let status = container
            .status()
            .await
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        let logs = container.logs().await.unwrap_or_else(|e| e.to_string());
        eprintln!(
            "---- {name} ({status}), last {PANIC_LOG_LINES} log lines:\n{}",
            tail(&logs, PANIC_LOG_LINES)
        );
    }
}

/// Ids of the scopes of this process that are not torn down yet: what Ctrl-C must remove, since
/// `std::process::exit` runs no destructors.
fn live_scopes() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Exit status after an interrupt (128 + SIGINT), as shells report it.
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

/// Installs the Ctrl-C path: on SIGINT, every live scope of this process is swept (unless
/// [`KEEP_ENV`] is set) and the process exits with [`INTERRUPTED_EXIT_CODE`]. Call it once, early,
/// from binaries inside a Tokio runtime; tests need not (a killed test process is cleaned up by
/// `agentfleet sweep`).
pub fn teardown_on_ctrl_c() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_err() {
            eprintln!("cannot listen for Ctrl-C: scopes will not be removed on interrupt");
            return;
        }
        let ids: Vec<String> = live_scopes().iter().cloned().collect();
        eprintln!(
            "interrupted: removing {} scope(s): {}",
            ids.len(),
            ids.join(", ")
        );
        if !keep_requested() && !ids.is_empty() {
            match Engine::connect().await {
                Ok(engine) => {
                    for id in ids {
                        if let Err(e) = sweep(&engine, &Sweep::Scope(id.clone())).await {
                            eprintln!("scope {id}: teardown incomplete, run a sweep later: {e}");
                        }
                    }
                }
                Err(e) => eprintln!("interrupted, but Docker is unreachable for teardown: {e}"),
            }
        }
        std::process::exit(INTERRUPTED_EXIT_CODE);
    })
}

fn keep_requested() -> bool {
    std::env::var(KEEP_ENV).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Lower-case ASCII letters, digits and '-', at most 40 characters: valid in container, network
/// and volume names and in label values.
fn sanitize(hint: &str) -> String {
    let mut out: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(40);
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "scope".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// A value unique per call and per process: std's randomly keyed hasher over a counter.
fn unique() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one((n, std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_docker_safe() {
        assert_eq!(
            sanitize("agent_contract::sigkill Mid-Task"),
            "agent-contract--sigkill-mid-task"
        );
        assert_eq!(sanitize("::"), "scope");
        assert_eq!(sanitize(&"x".repeat(100)).len(), 40);
    }

    #[test]
    fn unique_values_differ() {
        assert_ne!(unique(), unique());
    }
}
