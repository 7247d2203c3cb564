//! The Kubernetes side of agentfleet.
//!
//! Everything a scenario needs from a real cluster, as typed operations the harness' `Runtime`
//! adapter maps 1:1 onto: boot or reuse a kind cluster ([`kind`], [`download`], [`up`]),
//! server-side apply manifests
//! ([`apply`], [`kustomize`]), install KEDA and the platform ([`keda`]), give every scenario its
//! own namespace that is removed whatever happens ([`namespace`]), and run agents, evict, kill,
//! read logs, probe the network and stream events ([`fleet`], [`probe`], [`events`]). The checks
//! that only a cluster can answer are pure functions over recorded observations ([`checks`]).
//!
//! No Kubernetes runs on the machines this is built on, so every API interaction is covered by a
//! kube-rs mock-service test (`mock_*`), and [`plan`] renders what would happen without touching
//! anything.

pub mod apply;
pub mod artifacts;
pub mod checks;
pub mod download;
pub mod events;
pub mod fleet;
pub mod keda;
pub mod kind;
pub mod kustomize;
pub mod namespace;
pub mod plan;
pub mod pod_status;
pub mod probe;
pub mod tls;
pub mod up;
mod wait;

pub use wait::{WaitError, wait_for};

#[cfg(any(test, feature = "test-support"))]
pub mod mock;

/// The field manager of every server-side apply: objects we own show up under this name in
/// `metadata.managedFields`, and re-applies never fight another manager (`force`).
pub const FIELD_MANAGER: &str = "agentfleet";

/// Connects with the current kubeconfig context (or the in-cluster config).
///
/// Installs the ring rustls provider first: kube uses ring while reqwest and lapin pull
/// aws-lc-rs, and with two providers compiled in rustls panics unless one is installed.
pub async fn connect() -> Result<kube::Client, ConnectError> {
    tls::install_crypto_provider();
    kube::Client::try_default()
        .await
        .map_err(|source| ConnectError { source })
}

/// No kube client could be built from the environment.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot build a Kubernetes client from KUBECONFIG / ~/.kube/config or the in-cluster config: {source}; \
     run `kind get kubeconfig --name agentfleet` or `kubectl config use-context <ctx>` and retry"
)]
pub struct ConnectError {
    #[source]
    pub source: kube::Error,
}
