//! The reference pod template as a Docker container template: what carries over exactly, what
//! is emulated, and (as warnings) what the Docker runtime cannot honour.

use agentfleet_protocol::{Topology, env};

use crate::agents::AgentTemplate;
use crate::docker::Restart;
use crate::runtime::template::{EnvSource, PodTemplate, RestartBehaviour, rewrite_service_host};
use crate::services::{gateway, rabbitmq};

/// The in-cluster service names the manifests use, as the session's network aliases.
const SERVICE_ALIASES: &[&str] = &[rabbitmq::ALIAS, gateway::ALIAS];
/// Egress peers the session provides on the agents' network (`kube-dns` is Docker's embedded DNS).
const PROVIDED_PEERS: &[&str] = &[rabbitmq::ALIAS, gateway::ALIAS, "kube-dns"];

/// A container template and the caveats of the translation.
#[derive(Debug, Clone)]
pub struct DockerPod {
    pub template: AgentTemplate,
    pub topology: Topology,
    /// Broker credentials from the Secret (user, password), to create on the session's broker.
    pub broker_user: Option<(String, String)>,
    /// tmpfs mounts standing in for the template's emptyDirs: path -> mount options.
    pub tmpfs: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// Translates `pod`. `image_override` (from `AGENTFLEET_AGENT_IMAGE`) replaces the template's
/// image, for conformance runs of other agents.
pub fn translate(pod: &PodTemplate, image_override: Option<&str>) -> DockerPod {
    let mut warnings = Vec::new();
    let image = image_override.unwrap_or(&pod.image);
    let mut template = AgentTemplate::new(image);
    let mut broker_user = None;
    for (name, source) in &pod.env {
        let value = match source {
            // The launcher sets AGENT_INDEX per instance; JOB_COMPLETION_INDEX is what Kubernetes
            // also sets on Indexed Job pods, and is set alongside it below.
            EnvSource::CompletionIndex => continue,
            EnvSource::Literal(value) => value.clone(),
            EnvSource::Secret { value, secret, key } => {
                if name == env::QUEUE_URL {
                    broker_user = credentials_of(value);
                }
                match rewrite_service_host(value, SERVICE_ALIASES) {
                    Some(rewritten) => rewritten,
                    None => {
                        warnings.push(format!(
                            "env {name} (Secret {secret}/{key}) names no service the Docker session provides; passed unchanged"
                        ));
                        value.clone()
                    }
                }
            }
        };
        let value = match source {
            EnvSource::Literal(v) if v.contains("://") => {
                rewrite_service_host(v, SERVICE_ALIASES).unwrap_or(value)
            }
            _ => value,
        };
        template.env.insert(name.clone(), value);
    }
    template.memory_mib = pod.memory_limit_bytes.map(|b| b.div_ceil(1024 * 1024));
    template.cpus = pod.cpu_limit;
    template.stop_grace = pod.grace;
    template.user = pod.run_as_user.map(|u| u.to_string());
    template.read_only_rootfs = pod.read_only_root;
    template.cap_drop = pod.drop_capabilities.clone();
    template.no_new_privileges = pod.no_new_privileges;
    template.seccomp_unconfined = pod.seccomp.as_deref() == Some("Unconfined");
    // Agents are only reachable from the agents' network (Prometheus scrapes them there), as the
    // NetworkPolicy's ingress rule allows; publishing a port would attach them to the edge.
    template.publish_metrics = false;
    template.restart = match &pod.restart {
        RestartBehaviour::Never { .. } => Restart::Never,
        RestartBehaviour::OnFailure { backoff_limit } => Restart::OnFailure {
            max_restarts: *backoff_limit,
        },
    };
    if pod
        .checkpoint_mount
        .as_deref()
        .is_some_and(|m| m != crate::checkpoints::MOUNT_PATH)
    {
        warnings.push(format!(
            "checkpoint PVC mounted at {} in the template; the Docker runtime mounts its volume at {} and sets {} accordingly",
            pod.checkpoint_mount.as_deref().unwrap_or_default(),
            crate::checkpoints::MOUNT_PATH,
            env::CHECKPOINT_DIR
        ));
    }
    for (path, size) in &pod.scratch_mounts {
        warnings.push(format!(
            "emptyDir at {path} (sizeLimit {}) is a tmpfs here, which counts toward the memory limit (a disk-backed emptyDir does not)",
            size.map_or("none".to_owned(), |s| format!("{} MiB", s / (1024 * 1024)))
        ));
    }
    match &pod.egress {
        None => warnings.push("no NetworkPolicy selects the agents: the Docker runtime still confines them to the agents' network".into()),
        Some(peers) => {
            for peer in peers {
                if !PROVIDED_PEERS.contains(&peer.name.as_str()) {
                    warnings.push(format!("NetworkPolicy egress peer `{}` has no counterpart in the Docker session; it is unreachable", peer.name));
                }
            }
            warnings.push(
                "NetworkPolicy ports are not enforced per peer: agents reach every port of the services on their network (e.g. RabbitMQ's management port)".into(),
            );
        }
    }
    warnings.push(
        "a Docker --internal network does not cut agents off from services listening on the host's address on that network".into(),
    );
    if let RestartBehaviour::Never { .. } = pod.restart {
        warnings.push("PodDisruptionBudget is not consulted: every stop is granted (the Eviction API would apply minAvailable)".into());
    }
    for field in &pod.unmodelled {
        warnings.push(format!("not honoured by the Docker runtime: {field}"));
    }
    let topology = pod.topology();
    let tmpfs = pod
        .scratch_mounts
        .iter()
        .map(|(path, size)| {
            let size = size.map_or(String::new(), |s| format!("size={s},"));
            (path.clone(), format!("{size}mode=1777"))
        })
        .collect();
    DockerPod {
        template,
        topology,
        broker_user,
        tmpfs,
        warnings,
    }
}

/// `user:password` of an AMQP URL, percent-decoded.
fn credentials_of(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (user, password) = userinfo.split_once(':')?;
    Some((percent_decode(user), percent_decode(password)))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> DockerPod {
        let pod = PodTemplate::load(&PodTemplate::default_dir()).unwrap();
        translate(&pod, None)
    }

    #[test]
    fn limits_grace_user_and_restart_carry_over() {
        let t = reference().template;
        assert_eq!(t.memory_mib, Some(256));
        assert_eq!(t.cpus, Some(0.5));
        assert_eq!(t.stop_grace.as_secs(), 40);
        assert_eq!(t.user.as_deref(), Some("65532"));
        assert!(t.read_only_rootfs && !t.publish_metrics);
        assert_eq!(t.restart, Restart::Never);
    }

    #[test]
    fn the_security_context_is_honoured_not_warned_about() {
        let pod = reference();
        assert_eq!(pod.template.cap_drop, ["ALL"]);
        assert!(pod.template.no_new_privileges && !pod.template.seccomp_unconfined);
        for field in ["capabilities", "allowPrivilegeEscalation", "seccomp"] {
            assert!(
                !pod.warnings.iter().any(|w| w.contains(field)),
                "{field} is honoured: {:?}",
                pod.warnings
            );
        }
        let spec = pod.template.harden(crate::docker::ContainerSpec::new(
            "agent-0",
            "agentfleet/agent:0.1.0",
        ));
        assert_eq!(spec.cap_drop, ["ALL"]);
        assert_eq!(spec.security_opt, ["no-new-privileges"]);
    }

    #[test]
    fn service_hosts_become_aliases_and_the_secret_user_is_extracted() {
        let pod = reference();
        assert_eq!(pod.template.env[env::GATEWAY_URL], "http://gateway:8080");
        let url = &pod.template.env[env::QUEUE_URL];
        assert!(
            url.starts_with("amqp://agentfleet:") && url.ends_with("@rabbitmq:5672/%2f"),
            "queue URL host not rewritten"
        );
        let (user, _password) = pod.broker_user.expect("credentials in the Secret");
        assert_eq!(user, "agentfleet");
        assert!(!pod.template.env.contains_key(env::AGENT_INDEX));
        assert_eq!(pod.topology, Topology::default());
    }

    #[test]
    fn unhonoured_fields_are_warnings() {
        let w = reference().warnings;
        assert!(w.iter().any(|w| w.contains("livenessProbe")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("PodDisruptionBudget")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("tmpfs")), "{w:?}");
    }

    #[test]
    fn percent_encoded_credentials_are_decoded() {
        assert_eq!(
            credentials_of("amqp://a%40b:p%3Aw@h:1/%2f"),
            Some(("a@b".to_owned(), "p:w".to_owned()))
        );
        assert_eq!(credentials_of("amqp://h:1/"), None);
    }
}
