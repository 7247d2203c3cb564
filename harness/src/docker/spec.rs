//! What a container should look like, as plain data, and its translation to the Engine API.
//!
//! Kept free of I/O so the translation (memory-swap pinned to memory, ports bound to loopback,
//! ...) is unit-tested without a daemon.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountType, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};

/// A network to attach, with the DNS aliases the container answers to on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAttachment {
    pub network: String,
    pub aliases: Vec<String>,
}

/// A named volume mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
    pub read_only: bool,
}

/// Docker's restart policies that the scenarios use (Kubernetes `restartPolicy` analogues).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// `restartPolicy: Never`.
    Never,
    /// `restartPolicy: OnFailure`, at most this many restarts (0 = unlimited).
    OnFailure { max_restarts: u32 },
}

/// Everything needed to create one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// Container name; the [`crate::Scope`] prefixes it with the scope name.
    pub name: String,
    pub image: String,
    pub hostname: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    /// Memory limit in bytes; memory+swap is pinned to the same value so that exceeding it is an
    /// OOM kill (as in a Kubernetes pod) and not a slow swap.
    pub memory_bytes: Option<u64>,
    /// CPU limit in CPUs (e.g. 0.5).
    pub cpus: Option<f64>,
    /// Grace period of `docker stop` when none is passed explicitly (`terminationGracePeriodSeconds`).
    pub stop_timeout: Option<Duration>,
    pub labels: BTreeMap<String, String>,
    /// The first network is the one ports are published through: keep it a non-internal one when
    /// `published_ports` is not empty.
    pub networks: Vec<NetworkAttachment>,
    pub volumes: Vec<VolumeMount>,
    pub read_only_rootfs: bool,
    /// Capabilities dropped (`ALL` drops every one).
    pub cap_drop: Vec<String>,
    /// `--security-opt` values (`no-new-privileges`, `seccomp=unconfined`).
    pub security_opt: Vec<String>,
    /// tmpfs mounts: path -> mount options (e.g. `size=16m,mode=1777`).
    pub tmpfs: BTreeMap<String, String>,
    /// Container TCP ports published on 127.0.0.1 with a host port Docker picks.
    pub published_ports: Vec<u16>,
    pub restart: Restart,
}

impl ContainerSpec {
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            hostname: None,
            entrypoint: None,
            cmd: None,
            env: BTreeMap::new(),
            user: None,
            memory_bytes: None,
            cpus: None,
            stop_timeout: None,
            labels: BTreeMap::new(),
            networks: Vec::new(),
            volumes: Vec::new(),
            read_only_rootfs: false,
            cap_drop: Vec::new(),
            security_opt: Vec::new(),
            tmpfs: BTreeMap::new(),
            published_ports: Vec::new(),
            restart: Restart::Never,
        }
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Drops `capability` (`ALL` for every one), as `securityContext.capabilities.drop` does.
    pub fn cap_drop(mut self, capability: impl Into<String>) -> Self {
        self.cap_drop.push(capability.into());
        self
    }

    /// Adds a `--security-opt` (`no-new-privileges`, `seccomp=unconfined`).
    pub fn security_opt(mut self, option: impl Into<String>) -> Self {
        self.security_opt.push(option.into());
        self
    }

    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    pub fn entrypoint<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.entrypoint = Some(args.into_iter().map(Into::into).collect());
        self
    }

    pub fn cmd<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.cmd = Some(args.into_iter().map(Into::into).collect());
        self
    }

    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    pub fn memory_mib(mut self, mib: u64) -> Self {
        self.memory_bytes = Some(mib * 1024 * 1024);
        self
    }

    pub fn cpus(mut self, cpus: f64) -> Self {
        self.cpus = Some(cpus);
        self
    }

    pub fn stop_timeout(mut self, grace: Duration) -> Self {
        self.stop_timeout = Some(grace);
        self
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn network<S: Into<String>>(
        mut self,
        network: impl Into<String>,
        aliases: impl IntoIterator<Item = S>,
    ) -> Self {
        self.networks.push(NetworkAttachment {
            network: network.into(),
            aliases: aliases.into_iter().map(Into::into).collect(),
        });
        self
    }

    pub fn volume(mut self, volume: impl Into<String>, target: impl Into<String>) -> Self {
        self.volumes.push(VolumeMount {
            volume: volume.into(),
            target: target.into(),
            read_only: false,
        });
        self
    }

    pub fn read_only_rootfs(mut self) -> Self {
        self.read_only_rootfs = true;
        self
    }

    pub fn tmpfs(mut self, path: impl Into<String>, options: impl Into<String>) -> Self {
        self.tmpfs.insert(path.into(), options.into());
        self
    }

    pub fn publish(mut self, container_port: u16) -> Self {
        self.published_ports.push(container_port);
        self
    }

    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// The create request. Only the first network goes in it: API 1.41 accepts a single endpoint
    /// at creation, the others are connected before start (see [`Self::extra_networks`]).
    pub fn to_create_body(&self) -> ContainerCreateBody {
        let memory = self
            .memory_bytes
            .map(|b| i64::try_from(b).unwrap_or(i64::MAX));
        let port_key = |port: u16| format!("{port}/tcp");
        let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = self
            .published_ports
            .iter()
            .map(|&port| {
                let binding = PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                };
                (port_key(port), Some(vec![binding]))
            })
            .collect();
        let mounts: Vec<Mount> = self
            .volumes
            .iter()
            .map(|v| Mount {
                target: Some(v.target.clone()),
                source: Some(v.volume.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(v.read_only),
                ..Default::default()
            })
            .collect();
        let restart_policy = match self.restart {
            Restart::Never => RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            },
            Restart::OnFailure { max_restarts } => RestartPolicy {
                name: Some(RestartPolicyNameEnum::ON_FAILURE),
                maximum_retry_count: Some(i64::from(max_restarts)),
            },
        };
        let first_network = self.networks.first();
        let host_config = HostConfig {
            memory,
            memory_swap: memory,
            nano_cpus: self.cpus.map(|c| (c * 1e9).round() as i64),
            network_mode: first_network.map(|n| n.network.clone()),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            mounts: (!mounts.is_empty()).then_some(mounts),
            readonly_rootfs: Some(self.read_only_rootfs),
            cap_drop: (!self.cap_drop.is_empty()).then(|| self.cap_drop.clone()),
            security_opt: (!self.security_opt.is_empty()).then(|| self.security_opt.clone()),
            tmpfs: (!self.tmpfs.is_empty()).then(|| self.tmpfs.clone().into_iter().collect()),
            restart_policy: Some(restart_policy),
            ..Default::default()
        };
        let networking_config = first_network.map(|n| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(n.network.clone(), endpoint(&n.aliases))])),
        });
        ContainerCreateBody {
            image: Some(self.image.clone()),
            hostname: self.hostname.clone(),
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            env: Some(self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: self.user.clone(),
            labels: Some(self.labels.clone().into_iter().collect()),
            stop_timeout: self.stop_timeout.map(|d| d.as_secs() as i64),
            exposed_ports: (!self.published_ports.is_empty())
                .then(|| self.published_ports.iter().map(|&p| port_key(p)).collect()),
            host_config: Some(host_config),
            networking_config,
            ..Default::default()
        }
    }

    /// Networks after the first, connected between create and start.
    pub fn extra_networks(&self) -> &[NetworkAttachment] {
        self.networks.get(1..).unwrap_or_default()
    }
}

pub(crate) fn endpoint(aliases: &[String]) -> EndpointSettings {
    EndpointSettings {
        aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec::new("agent-0", "agentfleet/agent:0.1.0")
            .env("AGENT_INDEX", "0")
            .memory_mib(64)
            .cpus(0.5)
            .stop_timeout(Duration::from_secs(7))
            .network("edge", ["rabbitmq"])
            .network("agents", ["rabbitmq", "broker"])
            .volume("ckpt", "/checkpoints")
            .read_only_rootfs()
            .tmpfs("/tmp", "size=8m")
            .publish(8080)
            .user("65532")
            .restart(Restart::OnFailure { max_restarts: 5 })
    }

    #[test]
    fn memory_swap_is_pinned_to_memory_so_the_limit_ooms() {
        let host = spec().to_create_body().host_config.unwrap();
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.nano_cpus, Some(500_000_000));
    }

    #[test]
    fn ports_are_published_on_loopback_with_a_docker_chosen_port() {
        let body = spec().to_create_body();
        assert_eq!(body.exposed_ports, Some(vec!["8080/tcp".to_owned()]));
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let binding = &bindings["8080/tcp"].as_ref().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some(""));
    }

    #[test]
    fn first_network_at_create_others_connected_later() {
        let s = spec();
        let body = s.to_create_body();
        assert_eq!(
            body.host_config.as_ref().unwrap().network_mode.as_deref(),
            Some("edge")
        );
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints["edge"].aliases, Some(vec!["rabbitmq".to_owned()]));
        assert_eq!(s.extra_networks().len(), 1);
        assert_eq!(s.extra_networks()[0].network, "agents");
    }

    #[test]
    fn hardening_restart_and_grace_are_carried() {
        let body = spec().to_create_body();
        let host = body.host_config.unwrap();
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.tmpfs.unwrap()["/tmp"], "size=8m");
        assert_eq!(body.user.as_deref(), Some("65532"));
        assert_eq!(body.stop_timeout, Some(7));
        let restart = host.restart_policy.unwrap();
        assert_eq!(restart.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(restart.maximum_retry_count, Some(5));
        let mount = &host.mounts.unwrap()[0];
        assert_eq!(
            (mount.source.as_deref(), mount.target.as_deref()),
            (Some("ckpt"), Some("/checkpoints"))
        );
        assert_eq!(body.env.unwrap(), vec!["AGENT_INDEX=0".to_owned()]);
    }

    #[test]
    fn no_network_means_docker_default() {
        let body = ContainerSpec::new("x", "img").to_create_body();
        assert!(body.networking_config.is_none());
        assert!(body.host_config.unwrap().network_mode.is_none());
    }
}
