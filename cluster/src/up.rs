//! `cluster up` for the kind runtime, in order: preflight, cgroup decision and effective
//! config, kind (PATH, cache or pinned download), create or reuse the cluster, load the local
//! images, connect, install KEDA, install the platform and the fleet's supporting objects (not
//! its Job and ScaledJob: see `keda::is_fleet_workload`).

use std::path::PathBuf;
use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::keda::{InstallError, Installed, KEDA_VERSION, install_keda, install_platform};
use crate::kind::{
    self, ClusterState, EffectiveConfig, HostProbe, KindError, Preflight, Requirements,
};

/// Inputs of [`up`].
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The workspace root (kind-config/, manifests/, target/).
    pub workspace: PathBuf,
    /// Local images to `kind load`.
    pub images: Vec<String>,
    pub node_image_override: Option<String>,
    /// Per wait (CRDs, each Deployment).
    pub timeout: Duration,
}

/// A running, provisioned cluster.
pub struct Up {
    pub client: Client,
    pub state: ClusterState,
    pub config: EffectiveConfig,
    pub preflight: Preflight,
    pub keda: Installed,
    pub platform: Installed,
}

impl std::fmt::Debug for Up {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Up")
            .field("state", &self.state)
            .field("cluster", &self.config.cluster_name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("preflight failed:\n  - {}", problems.join("\n  - "))]
    Preflight { problems: Vec<String> },
    #[error(transparent)]
    Kind(#[from] KindError),
    #[error("the kubeconfig from `kind get kubeconfig --name {cluster}` is unusable: {reason}")]
    Kubeconfig { cluster: String, reason: String },
    #[error(transparent)]
    Install(#[from] InstallError),
}

/// Brings the kind cluster up (reusing a running one of the same name) and provisions it.
pub async fn up(options: &UpOptions, probe: &dyn HostProbe) -> Result<Up, UpError> {
    crate::tls::install_crypto_provider();
    let target = options.workspace.join("target/agentfleet");
    let preflight = kind::preflight(probe, &Requirements::for_images(options.images.clone()));
    if !preflight.passed() {
        return Err(UpError::Preflight {
            problems: preflight.problems,
        });
    }
    let cgroup = kind::detect_cgroup("/sys/fs/cgroup".as_ref())?;
    let source_path = options.workspace.join("kind-config/kind.yaml");
    let source = std::fs::read_to_string(&source_path).map_err(|source| KindError::ReadConfig {
        path: source_path.clone(),
        source,
    })?;
    let config = kind::effective_config(
        &source_path,
        &source,
        cgroup,
        options.node_image_override.as_deref(),
    )?;
    let config_path = target.join("kind-config.yaml");
    kind::write_effective_config(&config, &config_path)?;
    let kind = kind::ensure_kind(&target.join("bin")).await?;
    let state = kind
        .ensure_cluster(&config.cluster_name, &config_path)
        .await?;
    kind.load_images(&config.cluster_name, &options.images)
        .await?;
    let client = client_from_kubeconfig(
        &config.cluster_name,
        &kind.kubeconfig(&config.cluster_name).await?,
    )
    .await?;
    let keda = install_keda(
        client.clone(),
        &target.join("cache"),
        KEDA_VERSION,
        options.timeout,
    )
    .await?;
    let platform = install_platform(
        client.clone(),
        &options.workspace.join("manifests"),
        options.timeout,
    )
    .await?;
    Ok(Up {
        client,
        state,
        config,
        preflight,
        keda,
        platform,
    })
}

/// A client for the kubeconfig text kind printed (never logged: it holds the client key).
pub async fn client_from_kubeconfig(cluster: &str, text: &str) -> Result<Client, UpError> {
    let fail = |reason: String| UpError::Kubeconfig {
        cluster: cluster.to_owned(),
        reason,
    };
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|e| fail(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(e.to_string()))?;
    Client::try_from(config).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::KindLocation;
    use std::path::Path;

    struct NoDocker;

    impl HostProbe for NoDocker {
        fn docker_version(&self) -> Result<String, String> {
            Err("Cannot connect to the Docker daemon at unix:///var/run/docker.sock".into())
        }
        fn kind(&self) -> KindLocation {
            KindLocation::Missing("/nowhere/kind".into())
        }
        fn free_disk_bytes(&self, _: &Path) -> Result<u64, String> {
            Ok(100 << 30)
        }
        fn available_memory_bytes(&self) -> Result<u64, String> {
            Ok(32 << 30)
        }
        fn image_present(&self, _: &str) -> Result<bool, String> {
            Ok(true)
        }
    }

    #[tokio::test]
    async fn up_stops_at_preflight_before_touching_anything() {
        let workspace = tempfile::tempdir().unwrap();
        let options = UpOptions {
            workspace: workspace.path().to_owned(),
            images: vec![],
            node_image_override: None,
            timeout: Duration::from_secs(1),
        };
        let error = up(&options, &NoDocker).await.unwrap_err().to_string();
        assert!(
            error.starts_with("preflight failed") && error.contains("Docker daemon not reachable"),
            "{error}"
        );
        assert_eq!(
            std::fs::read_dir(workspace.path()).unwrap().count(),
            0,
            "nothing may be written before preflight passes"
        );
    }

    #[tokio::test]
    async fn kubeconfig_errors_name_the_cluster() {
        let Err(error) = client_from_kubeconfig("agentfleet", "not: [a kubeconfig").await else {
            panic!("garbage accepted as a kubeconfig")
        };
        let error = error.to_string();
        assert!(
            error.contains("kind get kubeconfig --name agentfleet"),
            "{error}"
        );
    }
}
