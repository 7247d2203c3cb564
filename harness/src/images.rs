//! The local images the harness runs. `cargo xtask images` builds them; nothing is pulled.

/// Overrides the agent image (e.g. to check a custom agent against the contract).
pub const AGENT_IMAGE_ENV: &str = "AGENTFLEET_AGENT_IMAGE";
pub const GATEWAY_IMAGE_ENV: &str = "AGENTFLEET_GATEWAY_IMAGE";
pub const RABBITMQ_IMAGE_ENV: &str = "AGENTFLEET_RABBITMQ_IMAGE";
pub const PROMETHEUS_IMAGE_ENV: &str = "AGENTFLEET_PROMETHEUS_IMAGE";

pub const DEFAULT_AGENT_IMAGE: &str = "agentfleet/agent:0.1.0";
pub const DEFAULT_GATEWAY_IMAGE: &str = "agentfleet/gateway:0.1.0";
pub const DEFAULT_RABBITMQ_IMAGE: &str = "agentfleet/rabbitmq:3.10.8";
/// Debian's prometheus 2.42 package: no Kubernetes discovery, so targets come from file_sd.
pub const DEFAULT_PROMETHEUS_IMAGE: &str = "agentfleet/prometheus:2.42.0";

/// Image references for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// `FROM scratch`, entrypoint `/agent`, runs as 65532.
    pub agent: String,
    /// `FROM scratch`, entrypoint `/gateway`, listens on 8080.
    pub gateway: String,
    /// Debian bookworm + rabbitmq-server 3.10.8.
    pub rabbitmq: String,
    /// An image with a shell and coreutils, for short-lived helper containers (fixing a volume's
    /// owner, reading or planting checkpoint files). The agent and gateway images are `FROM
    /// scratch`, so the RabbitMQ image, the only Debian-based one, serves.
    pub toolbox: String,
    /// Debian bookworm + prometheus 2.42 (has a shell).
    pub prometheus: String,
}

impl Images {
    /// The default tags, each overridable by its `AGENTFLEET_*_IMAGE` variable.
    pub fn from_env() -> Images {
        let pick = |var: &str, default: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let rabbitmq = pick(RABBITMQ_IMAGE_ENV, DEFAULT_RABBITMQ_IMAGE);
        Images {
            agent: pick(AGENT_IMAGE_ENV, DEFAULT_AGENT_IMAGE),
            gateway: pick(GATEWAY_IMAGE_ENV, DEFAULT_GATEWAY_IMAGE),
            toolbox: rabbitmq.clone(),
            prometheus: pick(PROMETHEUS_IMAGE_ENV, DEFAULT_PROMETHEUS_IMAGE),
            rabbitmq,
        }
    }
}
