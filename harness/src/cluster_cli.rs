//! The Kubernetes commands of the `agentfleet` binary: `cluster up|install|down|sweep|plan` and
//! `probe`, plus what the e2e runner needs for `--runtime kind|cluster`: [`kind_up`] (the same
//! boot-or-reuse as `cluster up`) and [`context_runtime`].
//!
//! Each command is a thin front over `agentfleet_cluster`; this module adds only argument
//! parsing, progress lines and exit codes. `cluster plan` reads files and prints; it starts no
//! process, writes nothing and talks to no API server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentfleet_cluster::kind::{self, KindLocation, SystemProbe};
use agentfleet_cluster::plan::{self, ScenarioPlan};
use agentfleet_cluster::probe::{ProbeOutcome, ProbeSpec, run_probe};
use agentfleet_cluster::{namespace, up};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::images::Images;
use crate::runtime::kube::{Flavour, KubeRuntime};
use crate::scenario::ScenarioId;

/// `agentfleet cluster ...`
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Boot (or reuse) the kind cluster and install KEDA, the platform and the fleet's supporting
    /// objects (not its Job and ScaledJob, which would take the scenarios' tasks).
    Up(UpArgs),
    /// Install KEDA, the platform and the fleet's supporting objects into an existing cluster
    /// (the current kubeconfig context, or --context): what `--runtime cluster` expects and
    /// never installs by itself.
    Install(InstallArgs),
    /// Delete the kind cluster.
    Down(DownArgs),
    /// Delete every scenario namespace left behind (label agentfleet.dev/scope).
    Sweep,
    /// Print what `up` and the scenarios would do, touching nothing.
    Plan(PlanArgs),
}

/// Where the workspace is and which images go into the nodes.
#[derive(Debug, Clone, Args)]
pub struct WorkspaceArgs {
    /// Workspace root holding kind-config/, manifests/ and target/.
    #[arg(long, default_value_os_t = default_workspace())]
    pub workspace: PathBuf,
    /// Local images to `kind load` (default: the agent, gateway, RabbitMQ and Prometheus images,
    /// each overridable by its AGENTFLEET_*_IMAGE variable).
    #[arg(long = "image")]
    pub images: Vec<String>,
    /// Node image instead of the one kind-config/kind.yaml names.
    #[arg(long)]
    pub node_image: Option<String>,
}

impl WorkspaceArgs {
    fn images(&self) -> Vec<String> {
        if !self.images.is_empty() {
            return self.images.clone();
        }
        default_images()
    }
}

/// The images the nodes get: the agent, gateway, RabbitMQ and Prometheus images, each
/// overridable by its AGENTFLEET_*_IMAGE variable.
fn default_images() -> Vec<String> {
    let images = Images::from_env();
    vec![
        images.agent,
        images.gateway,
        images.rabbitmq,
        images.prometheus,
    ]
}

/// Why a kind cluster cannot be booted on this host (`cluster up`'s preflight: Docker, kind,
/// disk, memory, the images and their build), empty when it can.
pub fn kind_blockers(workspace: &Path) -> Vec<String> {
    kind::preflight(
        &SystemProbe {
            bin_dir: bin_dir(workspace),
        },
        &kind::Requirements::for_images(default_images()),
    )
    .problems
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub workspace: WorkspaceArgs,
    /// Bound of each wait (CRDs established, each Deployment available), in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Workspace root holding manifests/ and target/ (KEDA's release YAML cache).
    #[arg(long, default_value_os_t = default_workspace())]
    pub workspace: PathBuf,
    /// Leave KEDA alone (already installed by other means).
    #[arg(long)]
    pub skip_keda: bool,
    /// Bound of each wait (CRDs established, each Deployment available), in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// The kind cluster to delete.
    #[arg(long, default_value = kind::DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// Workspace root (kind is looked up on PATH, then in target/agentfleet/bin).
    #[arg(long, default_value_os_t = default_workspace())]
    pub workspace: PathBuf,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub workspace: WorkspaceArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `agentfleet probe`: one TCP connect from a pod with the given labels; the reproduce command
/// the network-isolation check prints for each wrong cell.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Namespace to run the probe pod in.
    #[arg(long)]
    pub namespace: String,
    /// Labels of the probe pod, `k=v,k2=v2` (the NetworkPolicies select on them).
    #[arg(long, value_parser = parse_labels, default_value = "")]
    pub labels: BTreeMap<String, String>,
    /// `host:port` to connect to.
    #[arg(long, value_parser = parse_target)]
    pub target: (String, u16),
    /// Image with bash and coreutils, present on the nodes.
    #[arg(long, default_value = agentfleet_cluster::probe::DEFAULT_PROBE_IMAGE)]
    pub image: String,
    /// Connect timeout inside the pod, in seconds.
    #[arg(long, default_value_t = 5)]
    pub connect_timeout_secs: u64,
}

fn default_workspace() -> PathBuf {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR"));
    harness.parent().unwrap_or(harness).to_owned()
}

/// `k=v,k2=v2` -> map; empty input is no labels.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(format!(
                "label `{pair}` is not key=value; write --labels app=ai-agent,tier=batch"
            )),
        })
        .collect()
}

/// `host:port` -> (host, port).
pub fn parse_target(text: &str) -> Result<(String, u16), String> {
    let fix = "write --target host:port, e.g. rabbitmq.message-queue.svc:5672";
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("target `{text}` has no port; {fix}"))?;
    if host.is_empty() {
        return Err(format!("target `{text}` has no host; {fix}"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("target `{text}`: `{port}` is not a port (1-65535); {fix}"))?;
    if port == 0 {
        return Err(format!("target `{text}`: port 0 is not connectable; {fix}"));
    }
    Ok((host.to_owned(), port))
}

fn bin_dir(workspace: &Path) -> PathBuf {
    workspace.join("target/agentfleet/bin")
}

/// Runs `agentfleet cluster ...`, writing progress and results to `out`.
pub async fn run(args: &ClusterArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    match &args.command {
        ClusterCommand::Up(up_args) => cluster_up(up_args, out).await,
        ClusterCommand::Install(install) => cluster_install(install, out).await,
        ClusterCommand::Down(down) => cluster_down(down, out).await,
        ClusterCommand::Sweep => cluster_sweep(out).await,
        ClusterCommand::Plan(plan_args) => cluster_plan(plan_args, out),
    }
}

async fn cluster_up(args: &UpArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let done = kind_up(&args.workspace, Duration::from_secs(args.timeout_secs), out).await?;
    report_up(&done, out)?;
    writeln!(out, "cluster up: ready")?;
    Ok(())
}

/// Boots the kind cluster of `workspace`'s kind-config/ (or reuses a running one of that name),
/// loads the images and installs KEDA, the platform and the fleet's supporting objects: what
/// `cluster up` does, and what `e2e --runtime kind` does before its scenarios.
pub async fn kind_up(
    workspace: &WorkspaceArgs,
    timeout: Duration,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<up::Up> {
    let root = &workspace.workspace;
    let options = up::UpOptions {
        workspace: root.clone(),
        images: workspace.images(),
        node_image_override: workspace.node_image.clone(),
        timeout,
    };
    writeln!(
        out,
        "cluster up: preflight, kind cluster, {} image(s) to load, KEDA {}, platform from {}",
        options.images.len(),
        agentfleet_cluster::keda::KEDA_VERSION,
        root.join("manifests/overlays/kind").display()
    )?;
    let probe = SystemProbe {
        bin_dir: bin_dir(root),
    };
    Ok(up::up(&options, &probe).await?)
}

/// What `up` found and did, a line each.
pub fn report_up(done: &up::Up, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    for note in &done.preflight.notes {
        writeln!(out, "  preflight: {note}")?;
    }
    writeln!(
        out,
        "  kind cluster `{}`: {:?} (cgroup {:?})",
        done.config.cluster_name, done.state, done.config.cgroup
    )?;
    for adjustment in &done.config.adjustments {
        writeln!(out, "  config: {adjustment}")?;
    }
    writeln!(
        out,
        "  KEDA: {} object(s) applied; ready: {}",
        done.keda.applied.len(),
        done.keda.ready.join(", ")
    )?;
    writeln!(
        out,
        "  platform and fleet: {} object(s) applied; ready: {}",
        done.platform.applied.len(),
        done.platform.ready.join(", ")
    )?;
    Ok(())
}

async fn cluster_down(args: &DownArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let binary = match locate_kind(&args.workspace) {
        KindLocation::OnPath(path) | KindLocation::Cached(path) => path,
        KindLocation::Missing(expected) => bail!(
            "kind is not on PATH nor at {}: nothing to delete without it (`agentfleet cluster up` downloads it)",
            expected.display()
        ),
    };
    let kind = kind::Kind { binary };
    kind.delete_cluster(&args.name).await?;
    writeln!(out, "cluster down: kind cluster `{}` deleted", args.name)?;
    Ok(())
}

async fn cluster_install(args: &InstallArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    agentfleet_cluster::tls::install_crypto_provider();
    let config = match &args.context {
        Some(context) => context_config(context, &format!("context `{context}`")).await?,
        None => kube::Config::infer().await.map_err(|e| KubeconfigError {
            what: "the current context".into(),
            problem: e.to_string(),
        })?,
    };
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    let timeout = Duration::from_secs(args.timeout_secs);
    if !args.skip_keda {
        writeln!(
            out,
            "install: KEDA {}",
            agentfleet_cluster::keda::KEDA_VERSION
        )?;
        agentfleet_cluster::keda::install_keda(
            client.clone(),
            &args.workspace.join("target/agentfleet/cache"),
            agentfleet_cluster::keda::KEDA_VERSION,
            timeout,
        )
        .await?;
    }
    let manifests = args.workspace.join("manifests");
    writeln!(
        out,
        "install: {} and {} (the fleet's Job and ScaledJob left out)",
        manifests.join("platform").display(),
        manifests.join("base").display()
    )?;
    agentfleet_cluster::keda::install_on_existing_cluster(client, &manifests, timeout).await?;
    writeln!(out, "install: done; run `agentfleet e2e --runtime cluster`")?;
    Ok(())
}

async fn cluster_sweep(out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let client = agentfleet_cluster::connect().await?;
    let removed = namespace::sweep(client).await?;
    if removed.is_empty() {
        writeln!(out, "sweep: no scenario namespaces left")?;
    }
    for name in removed {
        writeln!(out, "sweep: deleted namespace {name}")?;
    }
    Ok(())
}

/// The scenarios' steps as the e2e plan states them.
fn scenario_plans() -> Vec<ScenarioPlan> {
    ScenarioId::ALL
        .iter()
        .map(|id| {
            let plan = crate::e2e::scenario_plan(*id);
            ScenarioPlan {
                name: id.as_str().to_owned(),
                steps: plan
                    .steps
                    .iter()
                    .chain(plan.cluster_steps)
                    .map(|s| (*s).to_owned())
                    .collect(),
            }
        })
        .collect()
}

fn cluster_plan(args: &PlanArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let workspace = &args.workspace.workspace;
    let cgroup = kind::detect_cgroup(Path::new("/sys/fs/cgroup"))?;
    let mut input =
        plan::input_for_workspace(workspace, cgroup, args.workspace.images(), scenario_plans());
    input.node_image_override = args.workspace.node_image.clone();
    let plan = plan::build(&input)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&plan.to_json())?)?;
    } else {
        write!(out, "{}", plan.to_human())?;
    }
    Ok(())
}

/// Runs `agentfleet probe`; `Ok(true)` when the target was reachable (exit 0), `Ok(false)` when
/// not (exit 1). Errors mean the probe itself could not run.
pub async fn probe(args: &ProbeArgs, out: &mut dyn std::io::Write) -> anyhow::Result<bool> {
    let client = agentfleet_cluster::connect().await?;
    let (host, port) = args.target.clone();
    let spec = ProbeSpec {
        host: host.clone(),
        port,
        connect_timeout: Duration::from_secs(args.connect_timeout_secs.max(1)),
        image: args.image.clone(),
        labels: args.labels.clone(),
    };
    let outcome = run_probe(client, &args.namespace, &spec, Duration::from_secs(120))
        .await
        .with_context(|| format!("probe {host}:{port} from namespace {}", args.namespace))?;
    let labels: Vec<String> = args
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    match &outcome {
        ProbeOutcome::Reachable => writeln!(
            out,
            "reachable: {host}:{port} from a pod labelled [{}] in {}",
            labels.join(","),
            args.namespace
        )?,
        ProbeOutcome::Unreachable { detail } => writeln!(
            out,
            "unreachable: {host}:{port} from a pod labelled [{}] in {} ({detail})",
            labels.join(","),
            args.namespace
        )?,
    }
    Ok(outcome.reachable())
}

/// No kubeconfig could be loaded.
#[derive(Debug, thiserror::Error)]
#[error(
    "no usable kubeconfig for {what}: {problem}; set KUBECONFIG or write ~/.kube/config (kind: `agentfleet cluster up` or `kind export kubeconfig --name <cluster>`; other clusters: `kubectl config use-context <ctx>`)"
)]
pub struct KubeconfigError {
    pub what: String,
    pub problem: String,
}

/// Builds the runtime for `--runtime cluster`: the given kubeconfig context, or the current one
/// (`kube::Config::infer`, which also covers in-cluster service accounts) when none is given.
/// Installs nothing: an existing cluster gets KEDA and the platform only from `cluster install`.
pub async fn context_runtime(
    context: Option<&str>,
    manifests_dir: &Path,
) -> anyhow::Result<KubeRuntime> {
    agentfleet_cluster::tls::install_crypto_provider();
    let config = match context {
        None => kube::Config::infer().await.map_err(|e| KubeconfigError {
            what: "the current context".into(),
            problem: e.to_string(),
        })?,
        Some(context) => context_config(context, &format!("context `{context}`")).await?,
    };
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    Ok(KubeRuntime::new(
        client,
        manifests_dir,
        Flavour::Cluster {
            context: context.unwrap_or_default().to_owned(),
        },
    ))
}

async fn context_config(context: &str, what: &str) -> Result<kube::Config, KubeconfigError> {
    let fail = |problem: String| KubeconfigError {
        what: what.to_owned(),
        problem,
    };
    let kubeconfig = Kubeconfig::read().map_err(|e| fail(e.to_string()))?;
    if !kubeconfig.contexts.iter().any(|c| c.name == context) {
        return Err(fail(format!("it has no context `{context}`")));
    }
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..KubeConfigOptions::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| fail(e.to_string()))
}

/// Where a `kind` binary is: on PATH, else the pinned download in `<workspace>/target/agentfleet/bin`.
pub fn locate_kind(workspace: &Path) -> KindLocation {
    kind::locate_kind(std::env::var_os("PATH"), &bin_dir(workspace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, Subcommand)]
    enum Command {
        Cluster(ClusterArgs),
        Probe(ProbeArgs),
    }

    #[test]
    fn probe_arguments_parse_the_reproduce_command_of_the_netpol_check() {
        let cli = Cli::try_parse_from([
            "agentfleet",
            "probe",
            "--namespace",
            "af-network-isolation-abc123",
            "--labels",
            "app=ai-agent,tier=batch",
            "--target",
            "rabbitmq.message-queue.svc:5672",
        ])
        .unwrap();
        let Command::Probe(args) = cli.command else {
            panic!("not a probe: {cli:?}")
        };
        assert_eq!(args.labels.len(), 2);
        assert_eq!(args.labels["app"], "ai-agent");
        assert_eq!(args.target, ("rabbitmq.message-queue.svc".into(), 5672));
    }

    #[test]
    fn bad_probe_arguments_say_how_to_write_them() {
        assert!(parse_target("gateway").unwrap_err().contains("host:port"));
        assert!(
            parse_target("gateway:http")
                .unwrap_err()
                .contains("not a port")
        );
        assert!(parse_labels("app").unwrap_err().contains("key=value"));
        assert_eq!(parse_labels("").unwrap().len(), 0);
    }

    /// `agentfleet cluster <args>`, parsed as the binary parses it; its standard output.
    fn run_cluster(args: &[&str]) -> Vec<u8> {
        let argv = ["agentfleet", "cluster"].iter().chain(args).copied();
        let cli = Cli::try_parse_from(argv).unwrap();
        let Command::Cluster(args) = cli.command else {
            panic!("not cluster: {cli:?}")
        };
        let mut out = Vec::new();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run(&args, &mut out))
            .unwrap();
        out
    }

    #[test]
    fn cluster_plan_prints_the_whole_plan_and_touches_nothing() {
        let workspace = default_workspace();
        let before = snapshot(&workspace.join("target/agentfleet"));
        let text = String::from_utf8(run_cluster(&["plan"])).unwrap();
        for needle in [
            "kind cluster `agentfleet`",
            "agentfleet/agent:0.1.0",
            "KEDA 2.16.1",
            "network-isolation",
            "control probes from an unrestricted position first",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
        }
        assert_eq!(before, snapshot(&workspace.join("target/agentfleet")));
    }

    #[test]
    fn cluster_plan_json_is_machine_readable() {
        let json: serde_json::Value =
            serde_json::from_slice(&run_cluster(&["plan", "--json"])).unwrap();
        assert_eq!(json["cluster"]["cluster_name"], "agentfleet");
        assert_eq!(json["scenarios"].as_array().map(Vec::len), Some(5));
    }

    /// Files under `dir` with their sizes and modification times (empty if absent).
    fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    stack.push(path);
                } else {
                    files.push((path, meta.len(), meta.modified().ok()));
                }
            }
        }
        files.sort();
        files
    }
}
