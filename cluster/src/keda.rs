//! KEDA and the platform (RabbitMQ, Prometheus, gateway) plus the fleet, on a fresh cluster.
//!
//! KEDA comes from its pinned release YAML, applied server-side (its CRDs are too large for
//! client-side apply's last-applied annotation). The platform and the fleet come from
//! manifests/overlays/kind, rendered by [`crate::kustomize`] (our strict subset: the overlay's
//! patches are JSON 6902 ops on storageClassName/accessModes and imagePullPolicy, applied in
//! Rust) rather than by a kustomize binary, which these machines do not have.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Client;
use serde_json::Value;

use crate::apply::{Applier, ApplyError, wait_deployment_available};
use crate::download::{self, Artifact, Checksum, DownloadError};
use crate::kustomize::{self, KustomizeError, Rendered};
use crate::wait::WaitError;

/// The KEDA release installed by default (>= 2.16 for the ScaledJob semantics DESIGN.md cites).
pub const KEDA_VERSION: &str = "2.16.1";
/// Environment variable that pins the sha256 of the KEDA release YAML.
///
/// KEDA's GitHub releases publish no checksum file for the YAML assets, and no digest of
/// `keda-2.16.1.yaml` could be confirmed when this was written, so none is compiled in: without
/// this variable the YAML is never downloaded, only taken from the cache (see [`keda_artifact`]).
pub const KEDA_SHA256_ENV: &str = "AGENTFLEET_KEDA_SHA256";

/// Release URL of the KEDA install YAML.
pub fn keda_url(version: &str) -> String {
    format!("https://github.com/kedacore/keda/releases/download/v{version}/keda-{version}.yaml")
}

/// Where the release YAML is cached (target/agentfleet/cache/keda-<version>.yaml).
pub fn keda_cache_path(cache_dir: &Path, version: &str) -> PathBuf {
    cache_dir.join(format!("keda-{version}.yaml"))
}

/// The KEDA YAML download; `sha256` from [`KEDA_SHA256_ENV`] when set.
pub fn keda_artifact(cache_dir: &Path, version: &str, sha256: Option<String>) -> Artifact {
    Artifact {
        what: format!("KEDA {version} release YAML"),
        url: keda_url(version),
        checksum: sha256
            .map(|hex| Checksum::Pinned(hex.to_ascii_lowercase()))
            .unwrap_or(Checksum::Unpinned),
        dest: keda_cache_path(cache_dir, version),
        executable: false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Render(#[from] KustomizeError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Wait(#[from] WaitError),
}

/// What an install did.
#[derive(Debug, Clone, Default)]
pub struct Installed {
    /// `Kind namespace/name` in apply order.
    pub applied: Vec<String>,
    /// `namespace/name` of the Deployments waited for.
    pub ready: Vec<String>,
}

/// `(namespace, name)` of every Deployment among `objects`.
pub fn deployments(objects: &[Value]) -> Vec<(String, String)> {
    objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .filter_map(|o| {
            Some((
                o["metadata"]["namespace"].as_str()?.to_owned(),
                o["metadata"]["name"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Applies `objects` (CRDs waited for by the applier) and waits for their Deployments.
pub async fn apply_and_wait(
    client: Client,
    objects: Vec<Value>,
    timeout: Duration,
) -> Result<Installed, InstallError> {
    let waits = deployments(&objects);
    let mut applier = Applier::new(client.clone());
    applier.crd_timeout = timeout;
    let applied = applier.apply_all(objects).await?;
    let mut ready = Vec::new();
    for (namespace, name) in waits {
        wait_deployment_available(client.clone(), &namespace, &name, timeout).await?;
        ready.push(format!("{namespace}/{name}"));
    }
    Ok(Installed { applied, ready })
}

/// Reads (downloading when allowed) and parses the KEDA release YAML.
pub async fn keda_objects(cache_dir: &Path, version: &str) -> Result<Vec<Value>, InstallError> {
    let artifact = keda_artifact(cache_dir, version, std::env::var(KEDA_SHA256_ENV).ok());
    let path = download::fetch(&artifact).await?;
    let text = std::fs::read_to_string(&path).map_err(|source| KustomizeError::Read {
        path: path.clone(),
        source,
    })?;
    Ok(kustomize::parse_documents(&path, &text)?)
}

/// Installs KEDA and waits until its CRDs are Established and its Deployments available.
pub async fn install_keda(
    client: Client,
    cache_dir: &Path,
    version: &str,
    timeout: Duration,
) -> Result<Installed, InstallError> {
    let objects = keda_objects(cache_dir, version).await?;
    apply_and_wait(client, objects, timeout).await
}

/// Renders manifests/overlays/kind (the fleet on top of the platform).
pub fn render_kind_overlay(manifests_dir: &Path) -> Result<Rendered, KustomizeError> {
    kustomize::render(&manifests_dir.join("overlays/kind"))
}

/// The namespace the reference fleet is written for.
pub const FLEET_NAMESPACE: &str = "agents";

/// Whether `object` is one of the reference fleet's workloads (its Job or ScaledJob).
///
/// `cluster up` leaves them out: they would consume the platform's one task queue, competing
/// with the agents each scenario starts in its own namespace (a scenario's ledger would see
/// tasks taken by agents it never started). Everything else of the fleet (namespace, Secret,
/// PDB, NetworkPolicies, TriggerAuthentication) is applied, so the reference fleet can be
/// started by hand with `kubectl apply -f manifests/base/scaledjob.yaml`.
pub fn is_fleet_workload(object: &Value) -> bool {
    (object["kind"] == "Job" || object["kind"] == "ScaledJob")
        && object["metadata"]["namespace"] == FLEET_NAMESPACE
}

/// Installs the platform and the fleet's supporting objects from manifests/overlays/kind, the
/// fleet's workloads left out ([`is_fleet_workload`]). KEDA must be installed first: the
/// fleet's TriggerAuthentication is a KEDA kind.
pub async fn install_platform(
    client: Client,
    manifests_dir: &Path,
    timeout: Duration,
) -> Result<Installed, InstallError> {
    let rendered = render_kind_overlay(manifests_dir)?;
    apply_and_wait(client, without_fleet_workloads(rendered.objects), timeout).await
}

/// The objects an existing cluster gets from `agentfleet cluster install`: manifests/platform
/// and manifests/base as written (images from their registry, the PVC on the default storage
/// class), the fleet's workloads left out as on kind.
pub fn existing_cluster_objects(manifests_dir: &Path) -> Result<Vec<Value>, KustomizeError> {
    let mut objects = kustomize::render(&manifests_dir.join("platform"))?.objects;
    objects.extend(kustomize::render(&manifests_dir.join("base"))?.objects);
    Ok(without_fleet_workloads(objects))
}

/// Installs [`existing_cluster_objects`] into the cluster `client` talks to.
pub async fn install_on_existing_cluster(
    client: Client,
    manifests_dir: &Path,
    timeout: Duration,
) -> Result<Installed, InstallError> {
    apply_and_wait(client, existing_cluster_objects(manifests_dir)?, timeout).await
}

fn without_fleet_workloads(objects: Vec<Value>) -> Vec<Value> {
    objects
        .into_iter()
        .filter(|o| !is_fleet_workload(o))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offline_keda_without_preload_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let error = download::fetch(&keda_artifact(dir.path(), KEDA_VERSION, None))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(&keda_url(KEDA_VERSION)), "{error}");
        assert!(
            error.contains(
                &keda_cache_path(dir.path(), KEDA_VERSION)
                    .display()
                    .to_string()
            ),
            "{error}"
        );
    }

    #[tokio::test]
    async fn preloaded_keda_yaml_is_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: keda\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: keda-operator\n  namespace: keda\nspec: {}\n";
        std::fs::write(keda_cache_path(dir.path(), "9.9.9"), yaml).unwrap();
        let objects = keda_objects(dir.path(), "9.9.9").await.unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(
            deployments(&objects),
            vec![("keda".to_owned(), "keda-operator".to_owned())]
        );
    }

    #[test]
    fn cluster_up_leaves_out_exactly_the_fleets_job_and_scaledjob() {
        let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let rendered = render_kind_overlay(&manifests).unwrap();
        let left_out: Vec<String> = rendered
            .objects
            .iter()
            .filter(|o| is_fleet_workload(o))
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(left_out, ["Job/agent-batch", "ScaledJob/agent-scaledjob"]);
        assert!(
            rendered
                .objects
                .iter()
                .any(|o| o["kind"] == "TriggerAuthentication" && !is_fleet_workload(o))
        );
    }

    #[test]
    fn an_existing_cluster_gets_base_and_platform_as_written_without_workloads() {
        let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let objects = existing_cluster_objects(&manifests).unwrap();
        assert!(!objects.iter().any(is_fleet_workload));
        let pvc = objects
            .iter()
            .find(|o| o["kind"] == "PersistentVolumeClaim")
            .unwrap();
        assert_eq!(
            pvc["spec"]["accessModes"][0], "ReadWriteMany",
            "no kind patch on an existing cluster"
        );
        let deployments = deployments(&objects);
        assert_eq!(deployments.len(), 3, "{deployments:?}");
    }

    #[test]
    fn the_kind_overlay_waits_for_the_three_platform_deployments() {
        let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let rendered = render_kind_overlay(&manifests).unwrap();
        let mut names: Vec<String> = deployments(&rendered.objects)
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        names.sort();
        assert_eq!(names, ["gateway", "prometheus", "rabbitmq"]);
    }
}
