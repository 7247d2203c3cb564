//! The fleet's reference pod template, read from the manifests (through the lint crate's typed
//! loader) and reduced to what a runtime needs to start an agent: image, environment (with the
//! completion index and Secrets resolved), limits, grace period, restart behaviour, volumes and
//! the NetworkPolicy's allowed egress peers.
//!
//! Fields the reduction does not carry are listed in [`PodTemplate::unmodelled`], so a runtime
//! can report them as warnings instead of dropping them silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentfleet_lint::fleet::Controller;
use agentfleet_lint::model::{Object, Resource};
use agentfleet_lint::{Fleet, quantity};
use agentfleet_protocol::{Topology, env};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The Indexed Job whose pod template the runtimes run (the ScaledJob shares it).
pub const REFERENCE_JOB: &str = "agent-batch";
/// Field path Kubernetes fills with the completion index.
const COMPLETION_INDEX_FIELD: &str =
    "metadata.annotations['batch.kubernetes.io/job-completion-index']";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "cannot read manifests at {path}: {problem} (pass the directory holding manifests/base, or set AGENTFLEET_MANIFESTS)"
    )]
    Read { path: String, problem: String },
    #[error("{path}: no Job named `{job}` with a pod template (expected manifests/base/job.yaml)")]
    NoJob { path: String, job: String },
    #[error("{job}: field `{field}` is {problem}")]
    Field {
        job: String,
        field: String,
        problem: String,
    },
    #[error(
        "{job}: env `{var}` refers to key `{key}` of Secret `{secret}`, which the manifests do not define (add it to manifests/base/secret.yaml)"
    )]
    MissingSecret {
        job: String,
        var: String,
        secret: String,
        key: String,
    },
}

/// How failed agents are restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartBehaviour {
    /// `restartPolicy: Never`: the Job controller creates a replacement pod for the same index,
    /// up to `backoff_limit_per_index` failures of that index (or `backoff_limit` for the Job).
    Never {
        backoff_limit_per_index: Option<u32>,
        backoff_limit: u32,
        /// `podFailurePolicy` `DisruptionTarget -> Ignore`: evictions do not count as failures.
        disruptions_ignored: bool,
        /// `podFailurePolicy` `FailJob` exit codes: no replacement at all.
        fail_job_exit_codes: Vec<i32>,
    },
    /// `restartPolicy: OnFailure`: the kubelet restarts the container in place.
    OnFailure { backoff_limit: u32 },
}

/// One egress peer the NetworkPolicy allows, by its workload name (`app.kubernetes.io/name` or
/// `k8s-app`), with its TCP/UDP ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPeer {
    pub name: String,
    pub ports: Vec<(String, u16)>,
}

/// A value of the environment as the pod would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    Literal(String),
    /// The Indexed Job's completion index.
    CompletionIndex,
    /// Resolved from the manifests' Secret. The value is a secret: never print it.
    Secret {
        secret: String,
        key: String,
        value: String,
    },
}

/// The reduced pod template.
#[derive(Debug, Clone)]
pub struct PodTemplate {
    /// `Job agents/agent-batch` in `<file>`, for messages.
    pub origin: String,
    pub image: String,
    pub env: Vec<(String, EnvSource)>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_limit: Option<f64>,
    pub grace: Duration,
    pub restart: RestartBehaviour,
    pub run_as_user: Option<i64>,
    pub read_only_root: bool,
    /// `securityContext.capabilities.drop` (e.g. `ALL`).
    pub drop_capabilities: Vec<String>,
    /// `securityContext.allowPrivilegeEscalation: false`, i.e. no_new_privs.
    pub no_new_privileges: bool,
    /// `seccompProfile.type` (container's, else the pod's): `RuntimeDefault`, `Unconfined`, ...
    pub seccomp: Option<String>,
    /// Mount path of the checkpoint PersistentVolumeClaim.
    pub checkpoint_mount: Option<String>,
    /// emptyDir mounts: path and size limit in bytes.
    pub scratch_mounts: Vec<(String, Option<u64>)>,
    /// The container port named `metrics`.
    pub metrics_port: Option<u16>,
    /// Egress the NetworkPolicies allow the agents; `None` when no policy selects them.
    pub egress: Option<Vec<EgressPeer>>,
    /// Fields present in the template that this reduction does not carry (probes, requests,
    /// capabilities, seccomp, ...), as `field: value` text.
    pub unmodelled: Vec<String>,
}

impl PodTemplate {
    /// Loads the reference template from the manifests directory (e.g. `manifests/base`).
    pub fn load(dir: &Path) -> Result<PodTemplate, TemplateError> {
        let path = dir.display().to_string();
        let sources =
            agentfleet_lint::source::load(std::slice::from_ref(&path), &mut std::io::empty())
                .map_err(|e| TemplateError::Read {
                    path: path.clone(),
                    problem: e.to_string(),
                })?;
        let (fleet, problems) = agentfleet_lint::load_fleet(&sources, "default");
        if let Some(problem) = problems.first() {
            return Err(TemplateError::Read {
                path,
                problem: format!("{problem:?}"),
            });
        }
        PodTemplate::from_fleet(&fleet, &path)
    }

    /// The manifests directory: `$AGENTFLEET_MANIFESTS`, else `manifests/base` of this workspace.
    pub fn default_dir() -> PathBuf {
        match std::env::var_os("AGENTFLEET_MANIFESTS") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base"),
        }
    }

    fn from_fleet(fleet: &Fleet, path: &str) -> Result<PodTemplate, TemplateError> {
        let workload = fleet
            .workloads()
            .find(|w| w.controller == Controller::Job && w.object.name == REFERENCE_JOB)
            .ok_or_else(|| TemplateError::NoJob {
                path: path.to_owned(),
                job: REFERENCE_JOB.to_owned(),
            })?;
        let job_name = format!("{} ({})", workload.describe(), workload.object.file);
        let field = |field: &str, problem: &str| TemplateError::Field {
            job: job_name.clone(),
            field: field.to_owned(),
            problem: problem.to_owned(),
        };
        let spec: &PodSpec = workload.spec;
        let container: &Container = spec
            .containers
            .first()
            .ok_or_else(|| field("spec.template.spec.containers", "empty"))?;
        let image = container
            .image
            .clone()
            .ok_or_else(|| field("containers[0].image", "missing"))?;
        let secrets = secrets_of(fleet, workload.namespace);
        let env = container
            .env
            .iter()
            .flatten()
            .map(|var| env_source(var, &secrets, &job_name).map(|s| (var.name.clone(), s)))
            .collect::<Result<Vec<_>, _>>()?;
        let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
        let limit = |name: &str| -> Result<Option<f64>, TemplateError> {
            match limits.and_then(|l| l.get(name)) {
                None => Ok(None),
                Some(q) => quantity::parse(&q.0).map(Some).ok_or_else(|| {
                    field(
                        &format!("resources.limits.{name}"),
                        &format!("not a quantity: `{}`", q.0),
                    )
                }),
            }
        };
        let memory_limit_bytes = limit("memory")?.map(|b| b as u64);
        let cpu_limit = limit("cpu")?;
        let grace_secs = spec.termination_grace_period_seconds.unwrap_or(30);
        let grace = Duration::from_secs(
            u64::try_from(grace_secs)
                .map_err(|_| field("terminationGracePeriodSeconds", "negative"))?,
        );
        let job = workload.job;
        let backoff_limit = job.and_then(|j| j.backoff_limit).unwrap_or(6).max(0) as u32;
        let restart = match workload.restart_policy().0 {
            "Never" => {
                let rules = job
                    .and_then(|j| j.pod_failure_policy.as_ref())
                    .map(|p| p.rules.as_slice())
                    .unwrap_or_default();
                RestartBehaviour::Never {
                    backoff_limit_per_index: job
                        .and_then(|j| j.backoff_limit_per_index)
                        .map(|n| n.max(0) as u32),
                    backoff_limit,
                    disruptions_ignored: rules.iter().any(|r| {
                        r.action == "Ignore"
                            && r.on_pod_conditions
                                .iter()
                                .flatten()
                                .any(|c| c.type_ == "DisruptionTarget")
                    }),
                    fail_job_exit_codes: rules
                        .iter()
                        .filter(|r| r.action == "FailJob")
                        .filter_map(|r| r.on_exit_codes.as_ref())
                        .filter(|c| c.operator == "In")
                        .flat_map(|c| c.values.clone())
                        .collect(),
                }
            }
            "OnFailure" => RestartBehaviour::OnFailure { backoff_limit },
            other => {
                return Err(field(
                    "restartPolicy",
                    &format!("`{other}`, which a Job does not allow (use Never or OnFailure)"),
                ));
            }
        };
        let run_as_user = container
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user)
            .or_else(|| spec.security_context.as_ref().and_then(|s| s.run_as_user));
        let read_only_root = container
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false);
        let container_security = container.security_context.as_ref();
        let drop_capabilities = container_security
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.drop.clone())
            .unwrap_or_default();
        let no_new_privileges =
            container_security.and_then(|s| s.allow_privilege_escalation) == Some(false);
        let seccomp = container_security
            .and_then(|s| s.seccomp_profile.as_ref())
            .or_else(|| {
                spec.security_context
                    .as_ref()
                    .and_then(|s| s.seccomp_profile.as_ref())
            })
            .map(|p| p.type_.clone());
        let mut checkpoint_mount = None;
        let mut scratch_mounts = Vec::new();
        let mut unmodelled = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = spec.volumes.iter().flatten().find(|v| v.name == mount.name);
            match volume {
                Some(v) if v.persistent_volume_claim.is_some() => {
                    checkpoint_mount = Some(mount.mount_path.clone())
                }
                Some(v) if v.empty_dir.is_some() => {
                    let size = v
                        .empty_dir
                        .as_ref()
                        .and_then(|e| e.size_limit.as_ref())
                        .and_then(|q| quantity::parse(&q.0));
                    scratch_mounts.push((mount.mount_path.clone(), size.map(|s| s as u64)));
                }
                _ => unmodelled.push(format!(
                    "volumeMount `{}` at {} (volume kind not modelled)",
                    mount.name, mount.mount_path
                )),
            }
        }
        let metrics_port = container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("metrics"))
            .and_then(|p| u16::try_from(p.container_port).ok());
        let labels = workload.labels();
        let egress = egress_of(fleet, workload.namespace, &labels);
        unmodelled.extend(unmodelled_fields(spec, container, job));
        Ok(PodTemplate {
            origin: job_name,
            image,
            env,
            memory_limit_bytes,
            cpu_limit,
            grace,
            restart,
            run_as_user,
            read_only_root,
            drop_capabilities,
            no_new_privileges,
            seccomp,
            checkpoint_mount,
            scratch_mounts,
            metrics_port,
            egress,
            unmodelled,
        })
    }

    /// Queue names and delivery limit as the template's literal env declares them, with the
    /// protocol's defaults for what it leaves out: both runtimes must talk to the queues the
    /// agents will actually use.
    pub fn topology(&self) -> Topology {
        let literal = |name: &str| self.literal_env(name).map(str::to_owned);
        let defaults = Topology::default();
        Topology {
            task_queue: literal(env::TASK_QUEUE).unwrap_or(defaults.task_queue),
            result_queue: literal(env::RESULT_QUEUE).unwrap_or(defaults.result_queue),
            dead_letter_queue: literal(env::DEAD_LETTER_QUEUE)
                .unwrap_or(defaults.dead_letter_queue),
            delivery_limit: literal(env::DELIVERY_LIMIT)
                .and_then(|v| v.parse().ok())
                .unwrap_or(defaults.delivery_limit),
        }
    }

    /// The value of a literal env var, if the template sets one.
    pub fn literal_env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, s)| match s {
                EnvSource::Literal(v) => Some(v.as_str()),
                _ => None,
            })
    }
}

fn secrets_of(fleet: &Fleet, namespace: &str) -> BTreeMap<(String, String), String> {
    let mut values = BTreeMap::new();
    let in_namespace = |o: &&Object| fleet.namespace_of(o) == Some(namespace);
    for object in fleet
        .objects_of(|r| matches!(r, Resource::Secret(_)))
        .filter(in_namespace)
    {
        let Resource::Secret(secret) = &object.resource else {
            continue;
        };
        for (key, value) in secret.string_data.iter().flatten() {
            values.insert((object.name.clone(), key.clone()), value.clone());
        }
        for (key, value) in secret.data.iter().flatten() {
            values.insert(
                (object.name.clone(), key.clone()),
                String::from_utf8_lossy(&value.0).into_owned(),
            );
        }
    }
    values
}

fn env_source(
    var: &EnvVar,
    secrets: &BTreeMap<(String, String), String>,
    job: &str,
) -> Result<EnvSource, TemplateError> {
    let unsupported = |what: &str| TemplateError::Field {
        job: job.to_owned(),
        field: format!("env {}", var.name),
        problem: format!("{what}, which no runtime here can provide"),
    };
    let Some(from) = &var.value_from else {
        return Ok(EnvSource::Literal(var.value.clone().unwrap_or_default()));
    };
    if let Some(field_ref) = &from.field_ref {
        return if field_ref.field_path == COMPLETION_INDEX_FIELD {
            Ok(EnvSource::CompletionIndex)
        } else {
            Err(unsupported(&format!("fieldRef `{}`", field_ref.field_path)))
        };
    }
    if let Some(secret_ref) = &from.secret_key_ref {
        let key = (secret_ref.name.clone(), secret_ref.key.clone());
        return match secrets.get(&key) {
            Some(value) => Ok(EnvSource::Secret {
                secret: key.0,
                key: key.1,
                value: value.clone(),
            }),
            None => Err(TemplateError::MissingSecret {
                job: job.to_owned(),
                var: var.name.clone(),
                secret: key.0,
                key: key.1,
            }),
        };
    }
    Err(unsupported("a valueFrom other than fieldRef/secretKeyRef"))
}

/// Egress peers of every NetworkPolicy in the namespace whose pod selector matches `labels`.
fn egress_of(
    fleet: &Fleet,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Option<Vec<EgressPeer>> {
    let mut selected = false;
    let mut peers: Vec<EgressPeer> = Vec::new();
    for object in fleet.objects_of(|r| matches!(r, Resource::NetworkPolicy(_))) {
        if fleet.namespace_of(object) != Some(namespace) {
            continue;
        }
        let Resource::NetworkPolicy(policy) = &object.resource else {
            continue;
        };
        let policy: &NetworkPolicy = policy;
        let Some(spec) = &policy.spec else { continue };
        let selector = spec
            .pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default();
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        let egress_type = spec
            .policy_types
            .as_ref()
            .is_some_and(|t| t.iter().any(|t| t == "Egress"));
        if !(egress_type || spec.egress.is_some()) {
            continue;
        }
        selected = true;
        for rule in spec.egress.iter().flatten() {
            let ports: Vec<(String, u16)> = rule
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    let port = match &p.port {
                        Some(IntOrString::Int(n)) => u16::try_from(*n).ok()?,
                        _ => return None,
                    };
                    Some((p.protocol.clone().unwrap_or_else(|| "TCP".into()), port))
                })
                .collect();
            for peer in rule.to.iter().flatten() {
                let labels = peer
                    .pod_selector
                    .as_ref()
                    .and_then(|s| s.match_labels.as_ref());
                let name = labels
                    .and_then(|l| l.get("app.kubernetes.io/name").or_else(|| l.get("k8s-app")))
                    .cloned()
                    .unwrap_or_else(|| "<unnamed peer>".into());
                peers.push(EgressPeer {
                    name,
                    ports: ports.clone(),
                });
            }
        }
    }
    selected.then_some(peers)
}

/// Template fields the reduced form does not carry, named so a runtime can warn about them.
fn unmodelled_fields(
    spec: &PodSpec,
    container: &Container,
    job: Option<&k8s_openapi::api::batch::v1::JobSpec>,
) -> Vec<String> {
    let mut fields = Vec::new();
    if container.liveness_probe.is_some() {
        fields.push("livenessProbe".to_owned());
    }
    if container.readiness_probe.is_some() {
        fields.push("readinessProbe".to_owned());
    }
    if let Some(requests) = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
    {
        let text: Vec<String> = requests
            .iter()
            .map(|(k, v)| format!("{k}={}", v.0))
            .collect();
        fields.push(format!("resources.requests ({})", text.join(", ")));
    }
    if let Some(caps) = container
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.add.as_ref())
    {
        fields.push(format!("securityContext.capabilities.add {caps:?}"));
    }
    let seccomp = container
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| {
            spec.security_context
                .as_ref()
                .and_then(|s| s.seccomp_profile.as_ref())
        });
    if let Some(profile) = seccomp.filter(|p| p.type_ == "Localhost") {
        fields.push(format!(
            "seccompProfile Localhost {}",
            profile.localhost_profile.as_deref().unwrap_or("")
        ));
    }
    if spec
        .security_context
        .as_ref()
        .is_some_and(|psc| psc.fs_group.is_some())
    {
        fields.push("podSecurityContext.fsGroup".to_owned());
    }
    if spec.service_account_name.is_some() {
        fields.push("serviceAccountName".to_owned());
    }
    if let Some(job) = job {
        if let Some(n) = job.max_failed_indexes {
            fields.push(format!("maxFailedIndexes: {n}"));
        }
        if let Some(n) = job.ttl_seconds_after_finished {
            fields.push(format!("ttlSecondsAfterFinished: {n}"));
        }
    }
    fields
}

/// Replaces the host of `scheme://[user@]host[:port]/...` when its first DNS label is one of
/// `aliases` (`rabbitmq.message-queue.svc` -> `rabbitmq`): the in-cluster service names of the
/// manifests become the session's network aliases. Returns `None` when no alias matches.
pub fn rewrite_service_host(url: &str, aliases: &[&str]) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let (host, port) = match hostport.rfind(':') {
        Some(colon) => (&hostport[..colon], &hostport[colon..]),
        None => (hostport, ""),
    };
    let first_label = host.split('.').next()?;
    let alias = aliases.iter().find(|a| **a == first_label)?;
    Some(format!("{scheme}://{userinfo}{alias}{port}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> PodTemplate {
        PodTemplate::load(&PodTemplate::default_dir()).expect("the reference manifests load")
    }

    #[test]
    fn the_reference_template_is_read_with_its_limits_grace_and_restart_rules() {
        let t = reference();
        assert_eq!(t.image, "agentfleet/agent:0.1.0");
        assert_eq!(t.memory_limit_bytes, Some(256 * 1024 * 1024));
        assert_eq!(t.cpu_limit, Some(0.5));
        assert_eq!(t.grace, Duration::from_secs(40));
        assert_eq!(t.run_as_user, Some(65532));
        assert!(t.read_only_root);
        assert_eq!(t.checkpoint_mount.as_deref(), Some("/checkpoints"));
        assert_eq!(
            t.scratch_mounts,
            vec![("/tmp".to_owned(), Some(64 * 1024 * 1024))]
        );
        assert_eq!(t.metrics_port, Some(8080));
        assert_eq!(
            t.restart,
            RestartBehaviour::Never {
                backoff_limit_per_index: Some(2),
                backoff_limit: 6,
                disruptions_ignored: true,
                fail_job_exit_codes: vec![78],
            }
        );
        assert!(
            t.unmodelled.iter().any(|f| f == "livenessProbe"),
            "{:?}",
            t.unmodelled
        );
    }

    #[test]
    fn env_resolves_the_index_and_the_secret() {
        let t = reference();
        let get = |name: &str| {
            t.env
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
        };
        assert_eq!(get("AGENT_INDEX"), Some(EnvSource::CompletionIndex));
        match get("AGENT_QUEUE_URL") {
            Some(EnvSource::Secret { secret, key, value }) => {
                assert_eq!(
                    (secret.as_str(), key.as_str()),
                    ("agent-secrets", "amqp-url")
                );
                assert!(value.starts_with("amqp://agentfleet:"));
            }
            other => panic!("AGENT_QUEUE_URL: {other:?}"),
        }
        assert_eq!(t.literal_env("AGENT_DELIVERY_LIMIT"), Some("3"));
    }

    #[test]
    fn egress_peers_come_from_the_network_policy() {
        let peers = reference().egress.expect("a policy selects the agents");
        let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["gateway", "rabbitmq", "kube-dns"]);
        assert_eq!(peers[1].ports, vec![("TCP".to_owned(), 5672)]);
    }

    #[test]
    fn service_hosts_are_rewritten_to_aliases_keeping_credentials_and_path() {
        let aliases = ["rabbitmq", "gateway"];
        assert_eq!(
            rewrite_service_host("amqp://u:p@rabbitmq.message-queue.svc:5672/%2f", &aliases)
                .as_deref(),
            Some("amqp://u:p@rabbitmq:5672/%2f")
        );
        assert_eq!(
            rewrite_service_host("http://gateway.llm-gateway.svc:8080", &aliases).as_deref(),
            Some("http://gateway:8080")
        );
        assert_eq!(rewrite_service_host("http://example.com", &aliases), None);
    }

    #[test]
    fn a_missing_directory_is_named_in_the_error() {
        let err = PodTemplate::load(Path::new("/nonexistent/manifests")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/manifests"), "{err}");
    }
}
