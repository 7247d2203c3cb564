//! `cargo xtask images`: every image the tests and scenarios need, built with no registry.
//!
//! - agent, gateway: static musl binaries `FROM scratch` with the host's CA bundle.
//! - rabbitmq, prometheus: the pinned upstream image when it can be pulled (a two-line Dockerfile
//!   on top), otherwise the same versions from Debian bookworm on a base made with debootstrap and
//!   `docker import`, configured identically.
//!
//! Every image carries a label with the hash of its build context; an image whose label matches
//! is not rebuilt, so re-runs take seconds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::process::{cmd, on_path, output, succeeds};
use crate::progress::Progress;
use crate::project_root;

/// Version of the workspace crates, used as the tag of the images built from them.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
const HASH_LABEL: &str = "dev.agentfleet.context-hash";
/// Set to `debian` on platform images built from Debian packages instead of the upstream image;
/// `agentfleet cluster up` reads it (Debian's Prometheus cannot discover Kubernetes pods).
const BASE_LABEL: &str = "dev.agentfleet.base";
const DEBIAN_SUITE: &str = "bookworm";
/// Everything the platform images need from Debian, installed once into one shared base.
const DEBIAN_PACKAGES: &str = "rabbitmq-server,prometheus,ca-certificates";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Build only these images (agent, gateway, rabbitmq, prometheus).
    #[arg(long = "only", value_name = "NAME")]
    only: Vec<String>,
    /// Rebuild even when the context hash matches.
    #[arg(long)]
    force: bool,
    /// Skip trying to pull upstream images (go straight to the debootstrap fallback).
    #[arg(long, env = "AGENTFLEET_OFFLINE")]
    offline: bool,
}

#[derive(Debug, Clone, Copy)]
enum Recipe {
    /// A workspace binary, statically linked, alone in a scratch image.
    StaticBinary {
        package: &'static str,
        bin: &'static str,
    },
    /// An upstream image when pullable, else Debian's package on the debootstrap base.
    Platform { fallback_dockerfile: &'static str },
    /// The agent image plus a Dockerfile of settings: conformance fixtures that break a clause.
    OnAgent,
}

#[derive(Debug, Clone, Copy)]
struct Image {
    name: &'static str,
    tag: &'static str,
    recipe: Recipe,
}

impl Image {
    fn reference(&self) -> String {
        format!("agentfleet/{}:{}", self.name, self.tag)
    }
}

const RABBITMQ_FALLBACK: &str = r#"FROM {base}
COPY rabbitmq.conf /etc/rabbitmq/rabbitmq.conf
COPY enabled_plugins /etc/rabbitmq/enabled_plugins
USER rabbitmq
ENV HOME=/var/lib/rabbitmq
WORKDIR /var/lib/rabbitmq
EXPOSE 5672 15672 15692
ENTRYPOINT ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
"#;

const PROMETHEUS_FALLBACK: &str = r#"FROM {base}
COPY prometheus.yml /etc/prometheus/prometheus.yml
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.listen-address=:9090"]
"#;

/// The images, in build order. Tags of platform images pin the upstream version.
const IMAGES: &[Image] = &[
    Image {
        name: "agent",
        tag: VERSION,
        recipe: Recipe::StaticBinary {
            package: "agentfleet-agent",
            bin: "agent",
        },
    },
    Image {
        name: "gateway",
        tag: VERSION,
        recipe: Recipe::StaticBinary {
            package: "agentfleet-gateway",
            bin: "gateway",
        },
    },
    Image {
        name: "rabbitmq",
        tag: "3.10.8",
        recipe: Recipe::Platform {
            fallback_dockerfile: RABBITMQ_FALLBACK,
        },
    },
    Image {
        name: "prometheus",
        tag: "2.42.0",
        recipe: Recipe::Platform {
            fallback_dockerfile: PROMETHEUS_FALLBACK,
        },
    },
    Image {
        name: "conform-exit-zero-on-sigterm",
        tag: VERSION,
        recipe: Recipe::OnAgent,
    },
    Image {
        name: "conform-checkpoint-only-on-sigterm",
        tag: VERSION,
        recipe: Recipe::OnAgent,
    },
    Image {
        name: "conform-no-metrics",
        tag: VERSION,
        recipe: Recipe::OnAgent,
    },
    Image {
        name: "conform-retry-without-backoff",
        tag: VERSION,
        recipe: Recipe::OnAgent,
    },
];

/// The reference (`agentfleet/NAME:TAG`) of one image.
pub fn reference(name: &str) -> String {
    IMAGES
        .iter()
        .find(|i| i.name == name)
        .map(Image::reference)
        .expect("a known image name")
}

impl ImagesArgs {
    /// Every image, rebuilt only when changed.
    pub fn all() -> ImagesArgs {
        ImagesArgs {
            only: Vec::new(),
            force: false,
            offline: std::env::var_os("AGENTFLEET_OFFLINE").is_some(),
        }
    }
}

pub fn run(args: &ImagesArgs, progress: &Progress) -> Result<()> {
    for name in &args.only {
        if !IMAGES.iter().any(|i| i.name == name) {
            let known: Vec<_> = IMAGES.iter().map(|i| i.name).collect();
            bail!(
                "unknown image `{name}` in --only; known images: {}",
                known.join(", ")
            );
        }
    }
    let selected: Vec<Image> = IMAGES
        .iter()
        .filter(|i| args.only.is_empty() || args.only.iter().any(|n| n == i.name))
        .copied()
        .collect();
    preflight_docker()?;

    let statics: Vec<(&str, &str)> = selected
        .iter()
        .filter_map(|i| match i.recipe {
            Recipe::StaticBinary { package, bin } => Some((package, bin)),
            Recipe::Platform { .. } | Recipe::OnAgent => None,
        })
        .collect();
    if !statics.is_empty() {
        progress.step("build static musl binaries", || {
            build_static_binaries(&statics)
        })?;
    }
    for image in &selected {
        let context = stage_context(image)?;
        let hash = hash_dir(&context)?;
        if !args.force && image_hash(&image.reference()).as_deref() == Some(hash.as_str()) {
            progress.note(&format!("{} is up to date", image.reference()));
            continue;
        }
        progress.step(&format!("build {}", image.reference()), || {
            match image.recipe {
                Recipe::StaticBinary { .. } => {
                    docker_build(&context, &image.reference(), &hash, None)
                }
                Recipe::OnAgent => docker_build(&context, &image.reference(), &hash, None),
                Recipe::Platform {
                    fallback_dockerfile,
                } => build_platform(
                    image,
                    &context,
                    &hash,
                    fallback_dockerfile,
                    args.offline,
                    progress,
                ),
            }
        })?;
    }
    Ok(())
}

/// Fails early, with the fix, when no Docker daemon answers.
pub fn preflight_docker() -> Result<()> {
    if !on_path("docker") {
        bail!(
            "the `docker` CLI is not installed: `apt-get install docker.io` (then start `dockerd`)"
        );
    }
    if !succeeds(cmd(
        "docker",
        ["version", "--format", "{{.Server.APIVersion}}"],
    )) {
        bail!(
            "no Docker daemon answers at {}: start it (`dockerd &` as root, or `systemctl start docker`) or set DOCKER_HOST",
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
        );
    }
    Ok(())
}

fn build_static_binaries(statics: &[(&str, &str)]) -> Result<()> {
    let mut c = cmd(
        "cargo",
        ["build", "--release", "--locked", "--target", MUSL_TARGET],
    );
    for (package, _) in statics {
        c.args(["--package", package]);
    }
    c.current_dir(project_root());
    output(c).context(
        "building the static binaries failed; the musl target needs `rustup target add x86_64-unknown-linux-musl` and `apt-get install musl-tools`",
    )?;
    Ok(())
}

fn staging_dir(image: &Image) -> PathBuf {
    project_root()
        .join("target/agentfleet/images")
        .join(image.name)
}

/// Copies everything the image's build needs into one directory, so its hash is the build's.
fn stage_context(image: &Image) -> Result<PathBuf> {
    let dir = staging_dir(image);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cleaning {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    let source = project_root().join("fixtures/images").join(image.name);
    for entry in fs::read_dir(&source).with_context(|| format!("reading {}", source.display()))? {
        let entry = entry?;
        fs::copy(entry.path(), dir.join(entry.file_name()))?;
    }
    if let Recipe::OnAgent = image.recipe {
        // The agent's image id is part of the context, so a rebuilt agent rebuilds its fixtures.
        let agent = reference("agent");
        let id = output(cmd(
            "docker",
            ["image", "inspect", "--format", "{{.Id}}", &agent],
        ))
        .with_context(|| format!("{agent} must be built before the conformance fixtures on it"))?;
        fs::write(dir.join("agent-image-id"), id.trim())?;
        let dockerfile = dir.join("Dockerfile");
        let text = fs::read_to_string(&dockerfile)?;
        fs::write(
            &dockerfile,
            text.replace(
                "ARG AGENT_IMAGE=agentfleet/agent:0.1.0",
                &format!("ARG AGENT_IMAGE={agent}"),
            ),
        )?;
    }
    if let Recipe::Platform {
        fallback_dockerfile,
    } = image.recipe
    {
        // The Debian recipe is part of what the image is: a changed recipe rebuilds it.
        fs::write(
            dir.join("Dockerfile.debian.recipe"),
            debian_dockerfile(fallback_dockerfile, "{base}"),
        )?;
    }
    if let Recipe::StaticBinary { bin, .. } = image.recipe {
        let binary = project_root()
            .join("target")
            .join(MUSL_TARGET)
            .join("release")
            .join(bin);
        fs::copy(&binary, dir.join(bin))
            .with_context(|| format!("copying {} (was it built?)", binary.display()))?;
        fs::copy(CA_BUNDLE, dir.join("ca-certificates.crt")).with_context(|| {
            format!("copying the CA bundle {CA_BUNDLE}: `apt-get install ca-certificates`")
        })?;
    }
    Ok(dir)
}

/// sha256 over the sorted file names and contents of a directory.
fn hash_dir(dir: &Path) -> Result<String> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    let mut h = Sha256::new();
    for name in names {
        h.update(name.as_encoded_bytes());
        h.update([0]);
        h.update(fs::read(dir.join(&name))?);
        h.update([0]);
    }
    Ok(hex::encode(&h.finalize()[..12]))
}

fn image_hash(reference: &str) -> Option<String> {
    let format = format!("{{{{index .Config.Labels \"{HASH_LABEL}\"}}}}");
    output(cmd(
        "docker",
        ["image", "inspect", "--format", &format, reference],
    ))
    .ok()
    .map(|s| s.trim().to_owned())
    .filter(|s| !s.is_empty() && s != "<no value>")
}

fn docker_build(
    context: &Path,
    reference: &str,
    hash: &str,
    dockerfile: Option<&Path>,
) -> Result<()> {
    let mut c = cmd("docker", ["build", "--quiet", "--label"]);
    c.arg(format!("{HASH_LABEL}={hash}"))
        .args(["--tag", reference]);
    if let Some(f) = dockerfile {
        c.arg("--file").arg(f);
    }
    c.arg(context).env("DOCKER_BUILDKIT", "0");
    output(c)?;
    Ok(())
}

fn build_platform(
    image: &Image,
    context: &Path,
    hash: &str,
    fallback_dockerfile: &str,
    offline: bool,
    progress: &Progress,
) -> Result<()> {
    if !offline {
        let (context_owned, reference, hash_owned) =
            (context.to_path_buf(), image.reference(), hash.to_owned());
        let pull = move || docker_build(&context_owned, &reference, &hash_owned, None);
        match with_timeout(Duration::from_secs(90), pull) {
            Ok(()) => return Ok(()),
            Err(e) => progress.note(&format!(
                "upstream base for {} cannot be pulled ({}); building it from Debian {DEBIAN_SUITE} instead",
                image.reference(),
                e.to_string().lines().last().unwrap_or("unknown error")
            )),
        }
    }
    let base = ensure_debian_base(progress)?;
    let fallback = context.join("Dockerfile.debian");
    fs::write(&fallback, debian_dockerfile(fallback_dockerfile, &base))?;
    docker_build(context, &image.reference(), hash, Some(&fallback))
}

/// The Dockerfile that builds a platform image from Debian packages on `base`, labelled so that
/// `cluster up` can tell it from the upstream image.
fn debian_dockerfile(template: &str, base: &str) -> String {
    format!(
        "{}\nLABEL {BASE_LABEL}=debian\n",
        template.replace("{base}", base).trim_end()
    )
}

/// Runs `f` on a thread and gives up after `limit` (a pull that hangs on a dead network).
fn with_timeout(limit: Duration, f: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| bail!("timed out after {}s", limit.as_secs()))
}

/// The Debian base with RabbitMQ and Prometheus installed, made once with debootstrap.
fn ensure_debian_base(progress: &Progress) -> Result<String> {
    let recipe = format!("{DEBIAN_SUITE} minbase {DEBIAN_PACKAGES} v1");
    let tag = hex::encode(&Sha256::digest(recipe.as_bytes())[..6]);
    let reference = format!("agentfleet/debian-platform:{DEBIAN_SUITE}-{tag}");
    if succeeds(cmd("docker", ["image", "inspect", &reference])) {
        return Ok(reference);
    }
    if !on_path("debootstrap") {
        bail!(
            "the upstream RabbitMQ/Prometheus images cannot be pulled and `debootstrap` is not installed: `apt-get install debootstrap` (it builds {reference} from Debian packages)"
        );
    }
    let mirror =
        std::env::var("DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    let rootfs = project_root().join("target/agentfleet/rootfs");
    // A finished debootstrap leaves this marker, so a failed import does not cost another one.
    let marker = rootfs.join(".agentfleet-recipe");
    if fs::read_to_string(&marker).ok().as_deref() != Some(recipe.as_str()) {
        if rootfs.exists() {
            fs::remove_dir_all(&rootfs)
                .with_context(|| format!("removing {}", rootfs.display()))?;
        }
        fs::create_dir_all(&rootfs)?;
        progress.step(&format!("debootstrap {DEBIAN_SUITE} with {DEBIAN_PACKAGES}"), || {
            let mut c = cmd("debootstrap", ["--variant=minbase", &format!("--include={DEBIAN_PACKAGES}"), DEBIAN_SUITE]);
            c.arg(&rootfs).arg(&mirror);
            output(c).context("debootstrap failed (needs root and a reachable Debian mirror; set DEBIAN_MIRROR)")?;
            // Prometheus' data directory, writable by its user (the image runs it as `prometheus`).
            let root = rootfs.to_str().context("the workspace path is not UTF-8")?;
            output(cmd("chroot", [root, "install", "-d", "-o", "prometheus", "-g", "prometheus", "/prometheus"]))?;
            fs::write(&marker, &recipe)?;
            Ok(())
        })?;
    }
    progress.step(&format!("docker import {reference}"), || {
        import_rootfs(&rootfs, &reference)
    })?;
    fs::remove_dir_all(&rootfs)?;
    Ok(reference)
}

/// `tar -c rootfs | docker import - reference`, streaming (the rootfs is ~400 MB).
fn import_rootfs(rootfs: &Path, reference: &str) -> Result<()> {
    let mut tar = Command::new("tar")
        .args(["--numeric-owner", "--exclude=./.agentfleet-recipe", "-C"])
        .arg(rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting tar")?;
    let tar_out = tar.stdout.take().context("tar's stdout")?;
    let import = Command::new("docker")
        .args(["import", "-", reference])
        .stdin(tar_out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting docker import")?
        .wait_with_output()?;
    let tar_status = tar.wait()?;
    if !import.status.success() {
        bail!(
            "docker import of {} failed: {}",
            rootfs.display(),
            String::from_utf8_lossy(&import.stderr)
        );
    }
    if !tar_status.success() {
        bail!("tar of {} failed with {tar_status}", rootfs.display());
    }
    Ok(())
}
