//! kind cluster lifecycle: find (or fetch) kind, decide the node image for this host, write the
//! effective config, preflight the host, create or reuse the cluster, load local images.
//!
//! Pure decisions (cgroup version from the filesystem magic, config rendering, preflight
//! verdicts) are separate from the probes that feed them, so they are tested without kind,
//! Docker or a network.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::download::{self, Artifact, Checksum, DownloadError};

/// The kind release this project is tested with; kind-config/kind.yaml pins its node image.
pub const KIND_VERSION: &str = "v0.31.0";
/// Release asset for the only platform the build machines have.
pub const KIND_URL: &str =
    "https://github.com/kubernetes-sigs/kind/releases/download/v0.31.0/kind-linux-amd64";
/// kind publishes `<asset>.sha256sum` next to every binary; no copy of the digest itself was
/// available when this was written, so the published file is fetched and checked at download
/// time (and the download is refused when it cannot be fetched).
pub const KIND_SHA256_URL: &str =
    "https://github.com/kubernetes-sigs/kind/releases/download/v0.31.0/kind-linux-amd64.sha256sum";
/// Default cluster name when the config has none.
pub const DEFAULT_CLUSTER_NAME: &str = "agentfleet";

/// `statfs(2)` magic numbers of the filesystem mounted at /sys/fs/cgroup.
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
const TMPFS_MAGIC: u64 = 0x0102_1994;

/// The host's cgroup hierarchy, which decides whether a K8s >= 1.35 kubelet starts at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

impl fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "cgroup v1",
            CgroupVersion::V2 => "cgroup v2",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KindError {
    #[error("cannot statfs {path}: {source}; is /sys/fs/cgroup mounted?")]
    Statfs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is neither cgroup2fs nor tmpfs (filesystem magic {magic:#x}); kind needs a cgroup v1 or v2 host"
    )]
    UnknownCgroupFs { path: PathBuf, magic: u64 },
    #[error("cannot read kind config {path}: {source}; pass the path of kind-config/kind.yaml")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kind config {path} is not valid YAML: {reason}")]
    ParseConfig { path: PathBuf, reason: String },
    #[error("kind config {path}: {problem}")]
    InvalidConfig { path: PathBuf, problem: String },
    #[error("cannot write the effective kind config {path}: {source}")]
    WriteConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error("`{command}` could not start: {source}; is {binary} executable?")]
    Spawn {
        command: String,
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
}

/// Reads the cgroup version of this host from the filesystem type of `cgroup_root`
/// (normally `/sys/fs/cgroup`).
pub fn detect_cgroup(cgroup_root: &Path) -> Result<CgroupVersion, KindError> {
    let stat = rustix::fs::statfs(cgroup_root).map_err(|e| KindError::Statfs {
        path: cgroup_root.to_owned(),
        source: e.into(),
    })?;
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between libc targets
    let magic = stat.f_type as u64;
    cgroup_from_magic(magic).ok_or(KindError::UnknownCgroupFs {
        path: cgroup_root.to_owned(),
        magic,
    })
}

/// cgroup2fs means a unified (v2) hierarchy; tmpfs holding per-controller mounts means v1.
pub fn cgroup_from_magic(magic: u64) -> Option<CgroupVersion> {
    match magic {
        CGROUP2_SUPER_MAGIC => Some(CgroupVersion::V2),
        TMPFS_MAGIC => Some(CgroupVersion::V1),
        _ => None,
    }
}

/// `kindest/node:v1.34.3@sha256:...` -> (1, 34, 3).
pub fn node_image_version(image: &str) -> Option<(u32, u32, u32)> {
    let without_digest = image.split('@').next()?;
    let (_, tag) = without_digest.rsplit_once(':')?;
    let mut parts = tag.strip_prefix('v')?.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

/// From Kubernetes 1.35 the kubelet's `failCgroupV1` defaults to true.
pub fn needs_fail_cgroup_v1_false(cgroup: CgroupVersion, image: &str) -> bool {
    cgroup == CgroupVersion::V1
        && node_image_version(image).is_some_and(|(major, minor, _)| (major, minor) >= (1, 35))
}

const FAIL_CGROUP_V1_PATCH: &str = "kind: KubeletConfiguration\nfailCgroupV1: false\n";

/// The config kind is started with, and why it differs from the checked-in one.
#[derive(Debug, Clone, Serialize)]
pub struct EffectiveConfig {
    pub cluster_name: String,
    pub cgroup: CgroupVersion,
    /// Node images, one per node, in config order.
    pub node_images: Vec<String>,
    /// Changes made to the source config, for the plan.
    pub adjustments: Vec<String>,
    pub yaml: String,
}

/// Renders the effective kind config for this host.
///
/// `image_override` replaces every node's image (for trying another Kubernetes version).
pub fn effective_config(
    source_path: &Path,
    source: &str,
    cgroup: CgroupVersion,
    image_override: Option<&str>,
) -> Result<EffectiveConfig, KindError> {
    let mut config: Value = serde_saphyr::from_str(source).map_err(|e| KindError::ParseConfig {
        path: source_path.to_owned(),
        reason: e.to_string(),
    })?;
    let invalid = |problem: &str| KindError::InvalidConfig {
        path: source_path.to_owned(),
        problem: problem.to_owned(),
    };
    let root = config
        .as_object_mut()
        .ok_or_else(|| invalid("the document is not a mapping"))?;
    if root.get("kind").and_then(Value::as_str) != Some("Cluster") {
        return Err(invalid(
            "`kind: Cluster` is missing; this is not a kind cluster config",
        ));
    }
    let cluster_name = root
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_CLUSTER_NAME)
        .to_owned();
    let mut adjustments = Vec::new();
    let nodes = root
        .get_mut("nodes")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| {
            invalid("`nodes` is missing; list the control-plane and workers with a pinned `image`")
        })?;
    let mut node_images = Vec::new();
    for (index, node) in nodes.iter_mut().enumerate() {
        let node = node
            .as_object_mut()
            .ok_or_else(|| invalid(&format!("nodes[{index}] is not a mapping")))?;
        if let Some(image) = image_override {
            node.insert("image".into(), Value::String(image.to_owned()));
        }
        let image = node.get("image").and_then(Value::as_str).ok_or_else(|| {
            invalid(&format!(
                "nodes[{index}].image is missing; pin a kindest/node image by digest"
            ))
        })?;
        node_images.push(image.to_owned());
    }
    if let Some(image) = image_override {
        adjustments.push(format!("node image overridden: {image}"));
    }
    if node_images
        .iter()
        .any(|image| needs_fail_cgroup_v1_false(cgroup, image))
    {
        let patches = root
            .entry("kubeadmConfigPatches")
            .or_insert_with(|| Value::Array(Vec::new()));
        let patches = patches
            .as_array_mut()
            .ok_or_else(|| invalid("kubeadmConfigPatches is not a list"))?;
        let already = patches
            .iter()
            .any(|p| p.as_str().is_some_and(|s| s.contains("failCgroupV1")));
        if !already {
            patches.push(Value::String(FAIL_CGROUP_V1_PATCH.into()));
            adjustments.push("host is cgroup v1 and a node image is >= 1.35: added KubeletConfiguration failCgroupV1: false".into());
        }
    }
    let body =
        serde_saphyr::to_string(&config).map_err(|e| invalid(&format!("cannot render: {e}")))?;
    let yaml = format!(
        "# Generated by agentfleet from {} for a {cgroup} host. Do not edit.\n{body}",
        source_path.display()
    );
    Ok(EffectiveConfig {
        cluster_name,
        cgroup,
        node_images,
        adjustments,
        yaml,
    })
}

/// Writes the effective config where `kind create cluster --config` reads it.
pub fn write_effective_config(config: &EffectiveConfig, path: &Path) -> Result<(), KindError> {
    let write_err = |source| KindError::WriteConfig {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    std::fs::write(path, &config.yaml).map_err(write_err)
}

/// Where kind comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindLocation {
    OnPath(PathBuf),
    Cached(PathBuf),
    /// Neither; it would be downloaded to this path.
    Missing(PathBuf),
}

/// The pinned kind binary's cache path under `bin_dir` (target/agentfleet/bin).
pub fn cached_kind_path(bin_dir: &Path) -> PathBuf {
    bin_dir.join(format!("kind-{KIND_VERSION}"))
}

/// Looks for `kind` on `path_env` (the value of PATH), then in the cache.
pub fn locate_kind(path_env: Option<OsString>, bin_dir: &Path) -> KindLocation {
    if let Some(path_env) = path_env {
        for dir in std::env::split_paths(&path_env) {
            let candidate = dir.join("kind");
            if candidate.is_file() {
                return KindLocation::OnPath(candidate);
            }
        }
    }
    let cached = cached_kind_path(bin_dir);
    if cached.is_file() {
        KindLocation::Cached(cached)
    } else {
        KindLocation::Missing(cached)
    }
}

/// The download of the pinned kind release into `bin_dir`.
pub fn kind_artifact(bin_dir: &Path, url: &str, sha256_url: &str) -> Artifact {
    Artifact {
        what: format!("kind {KIND_VERSION} (linux-amd64)"),
        url: url.to_owned(),
        checksum: Checksum::Published {
            url: sha256_url.to_owned(),
        },
        dest: cached_kind_path(bin_dir),
        executable: true,
    }
}

/// kind from PATH, else the cached pinned release, else downloaded (sha256-checked).
pub async fn ensure_kind(bin_dir: &Path) -> Result<Kind, KindError> {
    match locate_kind(std::env::var_os("PATH"), bin_dir) {
        KindLocation::OnPath(binary) | KindLocation::Cached(binary) => Ok(Kind { binary }),
        KindLocation::Missing(_) => {
            let binary =
                download::fetch(&kind_artifact(bin_dir, KIND_URL, KIND_SHA256_URL)).await?;
            Ok(Kind { binary })
        }
    }
}

/// Whether `kind create cluster` ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterState {
    Created,
    Reused,
}

/// A kind binary and the commands we run with it.
#[derive(Debug, Clone)]
pub struct Kind {
    pub binary: PathBuf,
}

impl Kind {
    async fn run(&self, args: &[&str]) -> Result<String, KindError> {
        let command = format!("kind {}", args.join(" "));
        let output = tokio::process::Command::new(&self.binary)
            .args(args)
            .output()
            .await
            .map_err(|source| KindError::Spawn {
                command: command.clone(),
                binary: self.binary.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(KindError::Command {
                command,
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Names of the running kind clusters.
    pub async fn clusters(&self) -> Result<Vec<String>, KindError> {
        Ok(parse_cluster_list(&self.run(&["get", "clusters"]).await?))
    }

    /// Creates the cluster unless one of that name runs already (re-runs reuse it).
    pub async fn ensure_cluster(
        &self,
        name: &str,
        config_path: &Path,
    ) -> Result<ClusterState, KindError> {
        if self.clusters().await?.iter().any(|c| c == name) {
            return Ok(ClusterState::Reused);
        }
        let config = config_path.display().to_string();
        self.run(&[
            "create", "cluster", "--name", name, "--config", &config, "--wait", "180s",
        ])
        .await?;
        Ok(ClusterState::Created)
    }

    /// Copies local Docker images into every node's containerd (`imagePullPolicy: Never`).
    pub async fn load_images(&self, name: &str, images: &[String]) -> Result<(), KindError> {
        if images.is_empty() {
            return Ok(());
        }
        let mut args = vec!["load", "docker-image", "--name", name];
        args.extend(images.iter().map(String::as_str));
        self.run(&args).await.map(drop)
    }

    /// The kubeconfig of the cluster (credentials included: never log it).
    pub async fn kubeconfig(&self, name: &str) -> Result<String, KindError> {
        self.run(&["get", "kubeconfig", "--name", name]).await
    }

    pub async fn delete_cluster(&self, name: &str) -> Result<(), KindError> {
        self.run(&["delete", "cluster", "--name", name])
            .await
            .map(drop)
    }
}

/// `kind get clusters` prints one name per line (and "No kind clusters found." on stderr).
pub fn parse_cluster_list(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("No kind clusters"))
        .map(str::to_owned)
        .collect()
}

/// What the host offers, asked through probes so that the verdicts are testable.
pub trait HostProbe {
    /// The Docker server version, or why the daemon is unreachable.
    fn docker_version(&self) -> Result<String, String>;
    fn kind(&self) -> KindLocation;
    fn free_disk_bytes(&self, path: &Path) -> Result<u64, String>;
    fn available_memory_bytes(&self) -> Result<u64, String>;
    fn image_present(&self, image: &str) -> Result<bool, String>;
    /// The value of `label` on a local image (None: no such label).
    fn image_label(&self, image: &str, label: &str) -> Result<Option<String>, String> {
        let _ = (image, label);
        Ok(None)
    }
}

/// Label `cargo xtask images` sets to `debian` on platform images built from Debian packages.
pub const BASE_LABEL: &str = "dev.agentfleet.base";

/// What a kind run needs.
#[derive(Debug, Clone)]
pub struct Requirements {
    /// Where kind and Docker keep data (Docker's root, usually /var/lib/docker).
    pub disk_path: PathBuf,
    pub min_free_disk_bytes: u64,
    pub min_available_memory_bytes: u64,
    pub images: Vec<String>,
}

impl Requirements {
    /// Three nodes with KEDA, RabbitMQ, Prometheus and a few agents.
    pub fn for_images(images: Vec<String>) -> Requirements {
        Requirements {
            disk_path: "/var/lib/docker".into(),
            min_free_disk_bytes: 10 << 30,
            min_available_memory_bytes: 6 << 30,
            images,
        }
    }
}

/// Everything preflight found; `problems` stop the run, `notes` do not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Preflight {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

impl Preflight {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// Checks the host before anything is created.
pub fn preflight(probe: &dyn HostProbe, requirements: &Requirements) -> Preflight {
    let mut report = Preflight::default();
    match probe.docker_version() {
        Ok(version) => report.notes.push(format!("Docker daemon {version} reachable")),
        Err(reason) => report.problems.push(format!(
            "Docker daemon not reachable ({reason}): start it (`sudo systemctl start docker` or `sudo dockerd &`) and make sure your user can use /var/run/docker.sock"
        )),
    }
    match probe.kind() {
        KindLocation::OnPath(path) => report.notes.push(format!("kind found on PATH: {}", path.display())),
        KindLocation::Cached(path) => report.notes.push(format!("kind {KIND_VERSION} cached at {}", path.display())),
        KindLocation::Missing(path) => report.notes.push(format!(
            "kind is not on PATH: {KIND_URL} will be downloaded to {} (sha256-checked); offline, copy a kind {KIND_VERSION} binary there",
            path.display()
        )),
    }
    match probe.free_disk_bytes(&requirements.disk_path) {
        Ok(free) if free < requirements.min_free_disk_bytes => report.problems.push(format!(
            "only {:.1} GiB free on {} ({:.1} GiB needed for the node images and volumes): run `docker system prune` or free space",
            free as f64 / GIB,
            requirements.disk_path.display(),
            requirements.min_free_disk_bytes as f64 / GIB
        )),
        Ok(free) => report.notes.push(format!("{:.1} GiB free on {}", free as f64 / GIB, requirements.disk_path.display())),
        Err(reason) => report.problems.push(format!("cannot read free space of {}: {reason}", requirements.disk_path.display())),
    }
    match probe.available_memory_bytes() {
        Ok(available) if available < requirements.min_available_memory_bytes => report.problems.push(format!(
            "only {:.1} GiB memory available ({:.1} GiB needed for three kind nodes and the platform): stop other containers or VMs",
            available as f64 / GIB,
            requirements.min_available_memory_bytes as f64 / GIB
        )),
        Ok(available) => report.notes.push(format!("{:.1} GiB memory available", available as f64 / GIB)),
        Err(reason) => report.problems.push(format!("cannot read available memory: {reason}")),
    }
    for image in &requirements.images {
        match probe.image_present(image) {
            Ok(true) if image.contains("prometheus")
                && probe.image_label(image, BASE_LABEL).ok().flatten().as_deref() == Some("debian") =>
            {
                report.problems.push(format!(
                    "local image {image} was built from Debian packages (the upstream prom/prometheus image could not be pulled), and Debian's Prometheus has Kubernetes service discovery compiled out: the in-cluster Prometheus (kubernetes_sd_configs) would refuse its configuration. Make the upstream image pullable (`docker pull prom/prometheus:v2.42.0`), then `docker rmi {image}` and `cargo xtask images`"
                ))
            }
            Ok(true) => {}
            Ok(false) => report.problems.push(format!(
                "local image {image} is missing: build it with `cargo xtask images`"
            )),
            Err(reason) => report
                .problems
                .push(format!("cannot inspect local image {image}: {reason}")),
        }
    }
    report
}

/// `MemAvailable` of /proc/meminfo, in bytes.
pub fn parse_meminfo_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => Some(value * 1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// The real host: Docker CLI, statvfs, /proc/meminfo.
#[derive(Debug, Clone)]
pub struct SystemProbe {
    pub bin_dir: PathBuf,
}

impl SystemProbe {
    fn docker(&self, args: &[&str]) -> Result<std::process::Output, String> {
        std::process::Command::new("docker")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run `docker`: {e}"))
    }
}

impl HostProbe for SystemProbe {
    fn docker_version(&self) -> Result<String, String> {
        let output = self.docker(&["version", "--format", "{{.Server.Version}}"])?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    fn kind(&self) -> KindLocation {
        locate_kind(std::env::var_os("PATH"), &self.bin_dir)
    }

    fn free_disk_bytes(&self, path: &Path) -> Result<u64, String> {
        // Docker's root may be unreadable for a normal user; its nearest existing ancestor is on
        // the same filesystem in the common layouts.
        let existing = path
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(Path::new("/"));
        let stat = rustix::fs::statvfs(existing)
            .map_err(|e| format!("statvfs {}: {e}", existing.display()))?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    fn available_memory_bytes(&self) -> Result<u64, String> {
        let text =
            std::fs::read_to_string("/proc/meminfo").map_err(|e| format!("/proc/meminfo: {e}"))?;
        parse_meminfo_available(&text)
            .ok_or_else(|| "/proc/meminfo has no MemAvailable line".to_owned())
    }

    fn image_present(&self, image: &str) -> Result<bool, String> {
        Ok(self
            .docker(&["image", "inspect", "--format", "{{.Id}}", image])?
            .status
            .success())
    }

    fn image_label(&self, image: &str, label: &str) -> Result<Option<String>, String> {
        let format = format!("{{{{index .Config.Labels \"{label}\"}}}}");
        let out = self.docker(&["image", "inspect", "--format", &format, image])?;
        let value = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((out.status.success() && !value.is_empty() && value != "<no value>").then_some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = include_str!("../../kind-config/kind.yaml");

    #[test]
    fn cgroup_magic_decides_version() {
        assert_eq!(cgroup_from_magic(0x6367_7270), Some(CgroupVersion::V2));
        assert_eq!(cgroup_from_magic(0x0102_1994), Some(CgroupVersion::V1));
        assert_eq!(cgroup_from_magic(0xEF53), None);
    }

    #[test]
    fn this_host_has_a_known_cgroup_version() {
        // The build machines are cgroup v1 (DESIGN.md); any Linux host is one or the other.
        detect_cgroup(Path::new("/sys/fs/cgroup")).expect("cgroup version");
    }

    #[test]
    fn node_image_versions_parse() {
        assert_eq!(
            node_image_version("kindest/node:v1.34.3@sha256:08497e"),
            Some((1, 34, 3))
        );
        assert_eq!(node_image_version("kindest/node:v1.35.0"), Some((1, 35, 0)));
        assert_eq!(
            node_image_version("localhost:5000/node:v1.36.1"),
            Some((1, 36, 1))
        );
        assert_eq!(node_image_version("kindest/node"), None);
    }

    #[test]
    fn pinned_1_34_on_cgroup_v1_is_left_alone() {
        let config =
            effective_config(Path::new("kind.yaml"), SOURCE, CgroupVersion::V1, None).unwrap();
        assert_eq!(config.cluster_name, "agentfleet");
        assert_eq!(config.node_images.len(), 3);
        assert!(
            config
                .node_images
                .iter()
                .all(|i| i.starts_with("kindest/node:v1.34.3@sha256:"))
        );
        assert!(config.adjustments.is_empty(), "{:?}", config.adjustments);
        assert!(!config.yaml.contains("failCgroupV1"));
        let round_trip: Value = serde_saphyr::from_str(&config.yaml).unwrap();
        assert_eq!(round_trip["nodes"][1]["role"], "worker");
    }

    #[test]
    fn image_1_35_on_cgroup_v1_gets_fail_cgroup_v1_false() {
        let config = effective_config(
            Path::new("kind.yaml"),
            SOURCE,
            CgroupVersion::V1,
            Some("kindest/node:v1.35.0"),
        )
        .unwrap();
        assert!(
            config.yaml.contains("failCgroupV1: false"),
            "{}",
            config.yaml
        );
        assert_eq!(config.adjustments.len(), 2, "{:?}", config.adjustments);
        let parsed: Value = serde_saphyr::from_str(&config.yaml).unwrap();
        let patch = parsed["kubeadmConfigPatches"][0].as_str().unwrap();
        assert!(patch.contains("kind: KubeletConfiguration"), "{patch}");
    }

    #[test]
    fn image_1_35_on_cgroup_v2_needs_nothing() {
        let config = effective_config(
            Path::new("kind.yaml"),
            SOURCE,
            CgroupVersion::V2,
            Some("kindest/node:v1.35.0"),
        )
        .unwrap();
        assert!(!config.yaml.contains("failCgroupV1"));
    }

    #[test]
    fn config_without_images_is_rejected_naming_the_field() {
        let source =
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n";
        let error = effective_config(Path::new("cfg.yaml"), source, CgroupVersion::V1, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("cfg.yaml") && error.contains("nodes[0].image"),
            "{error}"
        );
    }

    #[test]
    fn effective_config_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentfleet/kind-config.yaml");
        let config =
            effective_config(Path::new("kind.yaml"), SOURCE, CgroupVersion::V1, None).unwrap();
        write_effective_config(&config, &path).unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), config.yaml);
    }

    #[test]
    fn kind_is_found_on_path_before_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path_dir = dir.path().join("bin");
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&path_dir).unwrap();
        assert_eq!(
            locate_kind(Some(path_dir.clone().into_os_string()), &cache),
            KindLocation::Missing(cached_kind_path(&cache))
        );
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(cached_kind_path(&cache), b"").unwrap();
        assert_eq!(
            locate_kind(Some(path_dir.clone().into_os_string()), &cache),
            KindLocation::Cached(cached_kind_path(&cache))
        );
        std::fs::write(path_dir.join("kind"), b"").unwrap();
        assert_eq!(
            locate_kind(Some(path_dir.clone().into_os_string()), &cache),
            KindLocation::OnPath(path_dir.join("kind"))
        );
    }

    #[tokio::test]
    async fn missing_kind_download_error_names_url_and_how_to_preload() {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/kind-linux-amd64");
        let artifact = kind_artifact(dir.path(), &url, &format!("{url}.sha256sum"));
        let error = download::fetch(&artifact).await.unwrap_err().to_string();
        assert!(error.contains("kind v0.31.0"), "{error}");
        assert!(error.contains(&format!("{url}.sha256sum")), "{error}");
        assert!(
            error.contains(&cached_kind_path(dir.path()).display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn cluster_list_parses() {
        assert_eq!(
            parse_cluster_list("agentfleet\nother\n"),
            vec!["agentfleet", "other"]
        );
        assert!(parse_cluster_list("No kind clusters found.\n").is_empty());
    }

    #[test]
    fn meminfo_parses() {
        assert_eq!(
            parse_meminfo_available("MemTotal: 100 kB\nMemAvailable:   2048 kB\n"),
            Some(2 << 20)
        );
        assert_eq!(parse_meminfo_available("MemTotal: 100 kB\n"), None);
    }

    struct FakeHost {
        docker: Result<String, String>,
        free_disk: u64,
        memory: u64,
        images: Vec<&'static str>,
        debian_built: Vec<&'static str>,
    }

    impl HostProbe for FakeHost {
        fn docker_version(&self) -> Result<String, String> {
            self.docker.clone()
        }
        fn kind(&self) -> KindLocation {
            KindLocation::Missing("/cache/kind-v0.31.0".into())
        }
        fn free_disk_bytes(&self, _: &Path) -> Result<u64, String> {
            Ok(self.free_disk)
        }
        fn available_memory_bytes(&self) -> Result<u64, String> {
            Ok(self.memory)
        }
        fn image_present(&self, image: &str) -> Result<bool, String> {
            Ok(self.images.contains(&image))
        }
        fn image_label(&self, image: &str, label: &str) -> Result<Option<String>, String> {
            Ok((label == BASE_LABEL && self.debian_built.contains(&image))
                .then(|| "debian".to_owned()))
        }
    }

    #[test]
    fn preflight_refuses_a_debian_built_prometheus_for_kind() {
        let host = FakeHost {
            docker: Ok("26.1.5".into()),
            free_disk: 50 << 30,
            memory: 16 << 30,
            images: vec!["agentfleet/prometheus:2.42.0", "agentfleet/rabbitmq:3.10.8"],
            debian_built: vec!["agentfleet/prometheus:2.42.0", "agentfleet/rabbitmq:3.10.8"],
        };
        let report = preflight(
            &host,
            &Requirements::for_images(vec![
                "agentfleet/prometheus:2.42.0".into(),
                "agentfleet/rabbitmq:3.10.8".into(),
            ]),
        );
        assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
        assert!(
            report.problems[0].contains("agentfleet/prometheus:2.42.0")
                && report.problems[0].contains("service discovery")
                && report.problems[0].contains("docker pull prom/prometheus:v2.42.0"),
            "{}",
            report.problems[0]
        );
    }

    #[test]
    fn preflight_passes_a_good_host() {
        let host = FakeHost {
            docker: Ok("26.1.5".into()),
            free_disk: 50 << 30,
            memory: 16 << 30,
            images: vec!["agentfleet/agent:0.1.0"],
            debian_built: vec![],
        };
        let report = preflight(
            &host,
            &Requirements::for_images(vec!["agentfleet/agent:0.1.0".into()]),
        );
        assert!(report.passed(), "{:?}", report.problems);
        assert!(
            report.notes.iter().any(|n| n.contains(KIND_URL)),
            "{:?}",
            report.notes
        );
    }

    #[test]
    fn preflight_names_every_problem_and_its_fix() {
        let host = FakeHost {
            docker: Err("Cannot connect to the Docker daemon".into()),
            free_disk: 1 << 30,
            memory: 1 << 30,
            images: vec![],
            debian_built: vec![],
        };
        let report = preflight(
            &host,
            &Requirements::for_images(vec!["agentfleet/agent:0.1.0".into()]),
        );
        assert_eq!(report.problems.len(), 4, "{:#?}", report.problems);
        assert!(
            report.problems[0].contains("Docker daemon not reachable")
                && report.problems[0].contains("dockerd")
        );
        assert!(
            report.problems[1].contains("1.0 GiB free")
                && report.problems[1].contains("docker system prune")
        );
        assert!(report.problems[2].contains("memory"));
        assert!(
            report.problems[3].contains("agentfleet/agent:0.1.0")
                && report.problems[3].contains("cargo xtask images")
        );
    }
}
