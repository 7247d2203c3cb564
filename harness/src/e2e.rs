//! `agentfleet e2e`: run the scenarios on a runtime, show progress, print the verdict table and
//! write the reports (report.json, junit.xml, one timeline SVG per scenario).
//!
//! Runtime selection: `--runtime auto` uses kind when it can run here (a `kind` binary on PATH or
//! already downloaded, and a reachable Docker daemon), otherwise Docker, and says loudly which
//! checks that skips. On kind the cluster is booted, or a running one reused, exactly as
//! `agentfleet cluster up` does, before the first scenario.
//! Scenarios run one after another (the machines this runs on have two cores and every scenario
//! brings up its own broker); Ctrl-C stops the running scenario, whose session tears itself
//! down, and still writes the reports of the scenarios that finished.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cluster_cli::{ClusterArgs, ClusterCommand, PlanArgs, WorkspaceArgs};
use crate::docker::Engine;
use crate::images::Images;
use crate::report;
use crate::report::style::stdout_wants_colour;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::kube::{Flavour, KubeRuntime};
use crate::runtime::{PodTemplate, Runtime};
use crate::scenario::{ScenarioId, ScenarioOutcome, Verdict};
use crate::scenarios::{self, ScenarioOptions};
use crate::scope::KEEP_ENV;
use agentfleet_cluster::kind::KindLocation;

/// Bound of each wait of the cluster boot (CRDs established, each Deployment available), as
/// `cluster up`'s default.
const CLUSTER_UP_WAIT: Duration = Duration::from_secs(300);

/// Where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeChoice {
    /// kind when a `kind` binary is on PATH (or downloaded before) and Docker answers, else
    /// docker.
    Auto,
    Docker,
    Kind,
    Cluster,
}

/// `agentfleet e2e`.
#[derive(Debug, Clone, clap::Args)]
pub struct E2eArgs {
    #[arg(long, value_enum, default_value = "auto")]
    pub runtime: RuntimeChoice,
    /// Run only this scenario (repeatable): scaling, oom, eviction-resume, retry-storm,
    /// network-isolation.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<ScenarioId>,
    /// Keep containers, networks and volumes after the run, for debugging (needs
    /// AGENTFLEET_KEEP=1 in the environment, which the scopes read when they are dropped).
    #[arg(long)]
    pub keep: bool,
    /// Print the plan (runtime, images, manifests, each scenario's steps and bounds) and exit
    /// without touching anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Where report.json, junit.xml and the timeline SVGs are written.
    #[arg(long, default_value = "target/agentfleet")]
    pub report_dir: PathBuf,
    /// Plain progress lines instead of spinners (also when CI is set or stderr is not a
    /// terminal).
    #[arg(long)]
    pub quiet: bool,
    /// kubeconfig context (`--runtime cluster`; default: the current context).
    #[arg(long)]
    pub context: Option<String>,
    /// The manifests root (the directory holding base/, platform/, overlays/).
    #[arg(long, default_value = "manifests")]
    pub manifests: PathBuf,
}

impl E2eArgs {
    /// The workspace around `--manifests` (kind-config/, target/), with the default images.
    fn workspace(&self) -> WorkspaceArgs {
        WorkspaceArgs {
            workspace: self.manifests.join(".."),
            images: Vec::new(),
            node_image: None,
        }
    }
}

/// The runtime chosen, and why (printed before anything runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub runtime: ResolvedRuntime,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedRuntime {
    Docker,
    Kind,
    Cluster,
}

impl ResolvedRuntime {
    pub fn name(self) -> &'static str {
        match self {
            ResolvedRuntime::Docker => "docker",
            ResolvedRuntime::Kind => "kind",
            ResolvedRuntime::Cluster => "cluster",
        }
    }
}

/// What the machine offers, probed once; separate from [`resolve`] so the decision is testable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Path of the `kind` binary: on PATH, or the pinned one `cluster up` downloaded.
    pub kind: Option<PathBuf>,
    /// Why `cluster up`'s preflight would refuse to boot kind here (probed only when a kind
    /// binary is there): `auto` then falls back to Docker instead of failing.
    pub kind_blockers: Vec<String>,
    /// `Ok(docker host)` or why Docker is unusable.
    pub docker: Result<String, String>,
}

impl Host {
    /// Probes this machine; `workspace` is where a downloaded kind would be.
    pub async fn probe(workspace: &Path) -> Host {
        let kind = match crate::cluster_cli::locate_kind(workspace) {
            KindLocation::OnPath(path) | KindLocation::Cached(path) => Some(path),
            KindLocation::Missing(_) => None,
        };
        Host {
            kind_blockers: match &kind {
                Some(_) => crate::cluster_cli::kind_blockers(workspace),
                None => Vec::new(),
            },
            kind,
            docker: match Engine::connect().await {
                Ok(engine) => Ok(engine.host().to_owned()),
                Err(e) => Err(e.to_string()),
            },
        }
    }
}

/// Picks the runtime for `choice` on `host`.
pub fn resolve(choice: RuntimeChoice, host: &Host) -> anyhow::Result<Resolved> {
    let docker_needed = |runtime: ResolvedRuntime| -> anyhow::Result<()> {
        if let Err(e) = &host.docker {
            bail!(
                "the {} runtime needs a Docker daemon, and none answered: {e}\n\
                 start dockerd (or set DOCKER_HOST), or use --runtime cluster",
                runtime.name()
            );
        }
        Ok(())
    };
    let resolved = match choice {
        RuntimeChoice::Auto => match (&host.kind, &host.docker) {
            (Some(kind), Ok(_)) if host.kind_blockers.is_empty() => Resolved {
                runtime: ResolvedRuntime::Kind,
                reason: format!("auto: kind found at {} and Docker answers", kind.display()),
            },
            (Some(kind), Ok(docker)) => Resolved {
                runtime: ResolvedRuntime::Docker,
                reason: format!(
                    "auto: kind at {} cannot boot a cluster here ({}); Docker answers at {docker}",
                    kind.display(),
                    host.kind_blockers.join("; ")
                ),
            },
            (None, Ok(docker)) => Resolved {
                runtime: ResolvedRuntime::Docker,
                reason: format!(
                    "auto: no `kind` on PATH nor downloaded; Docker answers at {docker}"
                ),
            },
            (_, Err(e)) => bail!(
                "--runtime auto found no usable runtime: Docker did not answer ({e}); start \
                 dockerd, or use --runtime cluster with a kubeconfig"
            ),
        },
        RuntimeChoice::Docker => {
            docker_needed(ResolvedRuntime::Docker)?;
            Resolved {
                runtime: ResolvedRuntime::Docker,
                reason: "--runtime docker".into(),
            }
        }
        RuntimeChoice::Kind => {
            docker_needed(ResolvedRuntime::Kind)?;
            Resolved {
                runtime: ResolvedRuntime::Kind,
                reason: match &host.kind {
                    Some(kind) => format!("--runtime kind, kind at {}", kind.display()),
                    // Asked for explicitly: cluster up fetches the pinned release (and fails
                    // fast, naming the URL and how to preload it, without a network).
                    None => format!(
                        "--runtime kind; no `kind` on PATH, so the pinned kind {} is downloaded \
                         and sha256-checked first",
                        agentfleet_cluster::kind::KIND_VERSION
                    ),
                },
            }
        }
        RuntimeChoice::Cluster => Resolved {
            runtime: ResolvedRuntime::Cluster,
            reason: "--runtime cluster: the current kubeconfig context".into(),
        },
    };
    Ok(resolved)
}

/// Checks that only a cluster can make, per scenario: what the Docker runtime skips. The names
/// are the scenarios' own, so the plan and the notice say exactly what the reports will show.
pub const CLUSTER_ONLY: [(ScenarioId, &str); 5] = [
    (ScenarioId::Scaling, scenarios::scaling::KEDA_CHECK),
    (ScenarioId::Scaling, scenarios::scaling::ROLLOUT_CHECK),
    (
        ScenarioId::EvictionResume,
        scenarios::eviction_resume::BUDGET_CHECK,
    ),
    (
        ScenarioId::EvictionResume,
        scenarios::eviction_resume::BACKOFF_CHECK,
    ),
    (
        ScenarioId::NetworkIsolation,
        scenarios::network_isolation::MATRIX_CHECK,
    ),
];

fn keep_env_set() -> bool {
    std::env::var(KEEP_ENV).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn selected(args: &E2eArgs) -> Vec<ScenarioId> {
    if args.scenarios.is_empty() {
        ScenarioId::ALL.to_vec()
    } else {
        let mut ids = args.scenarios.clone();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Entry point of `agentfleet e2e`. Exit 0 when no scenario failed, 1 when one did, 130 on
/// Ctrl-C.
pub async fn run(args: &E2eArgs) -> anyhow::Result<ExitCode> {
    crate::tls::install_crypto_provider();
    let host = Host::probe(&args.workspace().workspace).await;
    let resolved = match (args.dry_run, args.runtime) {
        // A plan needs neither kind nor a cluster: it is how to see what they would get.
        (true, RuntimeChoice::Kind) => Resolved {
            runtime: ResolvedRuntime::Kind,
            reason: "--runtime kind --dry-run".into(),
        },
        (true, RuntimeChoice::Cluster) => Resolved {
            runtime: ResolvedRuntime::Cluster,
            reason: "--runtime cluster --dry-run".into(),
        },
        (_, choice) => resolve(choice, &host)?,
    };
    if args.context.is_some() && resolved.runtime != ResolvedRuntime::Cluster {
        bail!(
            "--context selects the kubeconfig context of --runtime cluster; this run resolved to \
             {} ({}). Add --runtime cluster, or drop --context",
            resolved.runtime.name(),
            resolved.reason
        );
    }
    let scenarios = selected(args);
    eprintln!("runtime: {} ({})", resolved.runtime.name(), resolved.reason);
    if resolved.runtime == ResolvedRuntime::Docker {
        eprintln!("{}", docker_skip_notice(&scenarios));
    }
    if args.dry_run {
        print!("{}", plan(&resolved, &scenarios));
        if resolved.runtime != ResolvedRuntime::Docker {
            // The cluster side of the plan: kind config, node image, images to load, every
            // manifest object with the overlay applied, the scenarios' cluster steps.
            let cluster_plan = ClusterArgs {
                command: ClusterCommand::Plan(PlanArgs {
                    workspace: args.workspace(),
                    json: false,
                }),
            };
            println!();
            crate::cluster_cli::run(&cluster_plan, &mut std::io::stdout()).await?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.keep && !keep_env_set() {
        // Scopes read the variable when they are dropped; a process cannot set its own
        // environment safely once threads run, so the flag asks for it instead.
        bail!(
            "--keep: set {KEEP_ENV}=1 in the environment (e.g. `{KEEP_ENV}=1 agentfleet e2e ...`); \
             every scenario's containers, networks and volumes are then kept"
        );
    }
    match resolved.runtime {
        ResolvedRuntime::Docker => {
            let runtime = DockerRuntime::connect()
                .await
                .context("connecting to Docker")?;
            run_all(args, &runtime, &scenarios).await
        }
        ResolvedRuntime::Kind | ResolvedRuntime::Cluster => {
            let runtime = match resolved.runtime {
                ResolvedRuntime::Kind => boot_kind(args).await?,
                _ => {
                    crate::cluster_cli::context_runtime(args.context.as_deref(), &args.manifests)
                        .await?
                }
            };
            // Isolation results mean nothing on a CNI that fails open: the deny-all canary runs
            // first, and egress_isolation stays off (network-isolation skipped) when it connects.
            match runtime.verify_cni().await {
                Ok(canary) => eprintln!("CNI canary: {canary:?}"),
                Err(e) => {
                    eprintln!("CNI canary could not run ({e}); network-isolation will be skipped")
                }
            }
            run_all(args, &runtime, &scenarios).await
        }
    }
}

/// Boots the kind cluster, or reuses a running one, as `cluster up` does, and returns the
/// runtime on it.
async fn boot_kind(args: &E2eArgs) -> anyhow::Result<KubeRuntime> {
    let step = Progress::new(args.quiet).step("kind cluster up");
    // Buffered so the spinner is not torn by the lines; printed either way.
    let mut lines = Vec::new();
    let up = crate::cluster_cli::kind_up(&args.workspace(), CLUSTER_UP_WAIT, &mut lines).await;
    step.finish(if up.is_ok() { "ready" } else { "failed" });
    if let Ok(up) = &up {
        crate::cluster_cli::report_up(up, &mut lines)?;
    }
    eprint!("{}", String::from_utf8_lossy(&lines));
    let up = up.context("booting the kind cluster")?;
    Ok(KubeRuntime::new(
        up.client,
        &args.manifests,
        Flavour::Kind {
            cluster: up.config.cluster_name,
        },
    ))
}

/// The loud notice of what running on Docker leaves out.
pub fn docker_skip_notice(scenarios: &[ScenarioId]) -> String {
    let mut text = String::from(
        "NOTE: no Kubernetes here; the scenarios run in their Docker form. Cluster-only checks \
         are SKIPPED:",
    );
    let mut any = false;
    for (scenario, check) in CLUSTER_ONLY {
        if scenarios.contains(&scenario) {
            text.push_str(&format!("\n  - {scenario}: {check}"));
            any = true;
        }
    }
    if !any {
        text.push_str(" none for the selected scenarios.");
    }
    text.push_str("\n  Run with --runtime kind or --runtime cluster for them.");
    text
}

async fn run_all<R: Runtime>(
    args: &E2eArgs,
    runtime: &R,
    ids: &[ScenarioId],
) -> anyhow::Result<ExitCode> {
    let progress = Progress::new(args.quiet);
    let options = ScenarioOptions {
        artifacts_dir: Some(args.report_dir.join("artifacts")),
        ..ScenarioOptions::default()
    };
    let mut outcomes: Vec<ScenarioOutcome> = Vec::new();
    let mut interrupted = false;
    for (n, id) in ids.iter().copied().enumerate() {
        let task = progress.start(id, n + 1, ids.len());
        let running = scenarios::run(id, runtime, &options);
        tokio::select! {
            outcome = running => {
                task.finish(&outcome);
                outcomes.push(outcome);
            }
            _ = tokio::signal::ctrl_c() => {
                // Dropping the scenario's future drops its session, which removes its
                // containers, networks and volumes (unless --keep).
                task.interrupted();
                interrupted = true;
                break;
            }
        }
    }
    println!();
    print!(
        "{}",
        report::table::render(&outcomes, stdout_wants_colour())
    );
    let written = report::write_all(&args.report_dir, runtime.name(), &outcomes)?;
    eprintln!(
        "reports: {}, {}, {} timeline(s) in {}",
        file_name(&written.json),
        file_name(&written.junit),
        written.timelines.len(),
        args.report_dir.display()
    );
    if interrupted {
        eprintln!(
            "interrupted: {} of {} scenarios ran. A session interrupted while it was still \
             starting can leave Docker objects behind: `agentfleet sweep` removes them",
            outcomes.len(),
            ids.len()
        );
        return Ok(ExitCode::from(130));
    }
    let failed = outcomes
        .iter()
        .any(|o| matches!(o.verdict, Verdict::Failed { .. }));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Progress on stderr: a spinner per scenario with its elapsed time on a terminal, plain lines
/// otherwise (`--quiet`, `CI` set, or stderr redirected), so CI logs stay readable.
#[derive(Debug)]
struct Progress {
    fancy: bool,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        Progress {
            fancy: !quiet && !ci && std::io::stderr().is_terminal(),
        }
    }

    /// A long step (the cluster boot, a scenario): a spinner, or a start line.
    fn step(&self, what: &str) -> StepProgress {
        let bar = if self.fancy {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}")
                    .expect("a valid progress template"),
            );
            bar.set_prefix(what.to_owned());
            bar.set_message("running");
            bar.enable_steady_tick(Duration::from_millis(120));
            Some(bar)
        } else {
            eprintln!("{what}: running");
            None
        };
        StepProgress {
            what: what.to_owned(),
            bar,
            started: Instant::now(),
        }
    }

    fn start(&self, id: ScenarioId, n: usize, of: usize) -> ScenarioProgress {
        ScenarioProgress(self.step(&format!("[{n}/{of}] {id}")))
    }
}

#[derive(Debug)]
struct StepProgress {
    what: String,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl StepProgress {
    fn finish(self, status: &str) {
        let line = format!(
            "{}: {status} ({:.1}s)",
            self.what,
            self.started.elapsed().as_secs_f64()
        );
        match self.bar {
            Some(bar) => bar.finish_with_message(line),
            None => eprintln!("{line}"),
        }
    }

    fn interrupted(self) {
        let line = format!("{}: interrupted (Ctrl-C); tearing down", self.what);
        match self.bar {
            Some(bar) => bar.abandon_with_message(line),
            None => eprintln!("{line}"),
        }
    }
}

/// A scenario's step, finished with its verdict.
#[derive(Debug)]
struct ScenarioProgress(StepProgress);

impl ScenarioProgress {
    fn finish(self, outcome: &ScenarioOutcome) {
        let status = match &outcome.verdict {
            Verdict::Passed => "passed".to_owned(),
            Verdict::Failed { reasons } => format!(
                "FAILED: {}",
                reasons.first().map_or("no reason given", String::as_str)
            ),
            Verdict::Skipped { reason } => format!("skipped: {reason}"),
        };
        self.0.finish(&status);
    }

    fn interrupted(self) {
        self.0.interrupted();
    }
}

/// The `--dry-run` plan: runtime, images, manifests, and each scenario's steps and bounds.
/// Reads the manifests directory; starts nothing.
pub fn plan(resolved: &Resolved, ids: &[ScenarioId]) -> String {
    let images = Images::from_env();
    let manifests = PodTemplate::default_dir();
    let mut out = format!(
        "plan (dry run: nothing is started)\n\nruntime: {} ({})\n\nimages (local, never pulled):\n  agent     {}\n  gateway   {}\n  rabbitmq  {}\n  toolbox   {}\n",
        resolved.runtime.name(),
        resolved.reason,
        images.agent,
        images.gateway,
        images.rabbitmq,
        images.toolbox
    );
    out.push_str(&format!("\nmanifests: {}\n", manifests.display()));
    match manifest_files(&manifests) {
        Ok(files) => {
            for file in files {
                out.push_str(&format!("  {file}\n"));
            }
        }
        Err(e) => out.push_str(&format!("  (cannot read: {e})\n")),
    }
    match PodTemplate::load(&manifests) {
        Ok(t) => out.push_str(&format!(
            "  pod template from {}: image {}, memory {}, grace {} s, restart {:?}\n",
            t.origin,
            t.image,
            t.memory_limit_bytes
                .map_or("unlimited".to_owned(), |b| format!(
                    "{} MiB",
                    b / (1024 * 1024)
                )),
            t.grace.as_secs(),
            t.restart
        )),
        Err(e) => out.push_str(&format!("  pod template: cannot load: {e}\n")),
    }
    for id in ids {
        let p = scenario_plan(*id);
        out.push_str(&format!("\n{id}: {}\n", p.proves));
        for (i, step) in p.steps.iter().enumerate() {
            out.push_str(&format!("  {}. {step}\n", i + 1));
        }
        out.push_str(&format!("  bound: {}\n", p.bound));
        if resolved.runtime != ResolvedRuntime::Docker {
            for step in p.cluster_steps {
                out.push_str(&format!("  on {}: {step}\n", resolved.runtime.name()));
            }
        }
        let cluster: Vec<&str> = CLUSTER_ONLY
            .iter()
            .filter(|(s, _)| s == id)
            .map(|(_, c)| *c)
            .collect();
        if !cluster.is_empty() {
            let verb = if resolved.runtime == ResolvedRuntime::Docker {
                "skipped on docker"
            } else {
                "run on this runtime"
            };
            for check in cluster {
                out.push_str(&format!("  cluster-only ({verb}): {check}\n"));
            }
        }
    }
    out
}

/// The YAML files of the manifests directory the pod template is read from.
fn manifest_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "yaml") {
            files.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    if files.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no YAML files in {}", dir.display()),
        ));
    }
    files.sort();
    Ok(files)
}

/// What a scenario proves, its steps and its bound, as the plan and docs/scenarios.md state them.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioPlan {
    pub proves: &'static str,
    pub steps: &'static [&'static str],
    pub bound: &'static str,
    /// Further steps on kind/cluster, for the cluster-only checks.
    pub cluster_steps: &'static [&'static str],
}

pub fn scenario_plan(id: ScenarioId) -> ScenarioPlan {
    match id {
        ScenarioId::Scaling => ScenarioPlan {
            proves: "competing consumers drain one queue: more agents finish faster, no task is lost or done twice, and the fleet's own metrics agree with the ledger",
            steps: &[
                "gateway latency 250 ms per call; 12 tasks x 4 steps on 1 agent (phase one)",
                "the same 12 tasks on 4 fresh agents (phase four)",
                "ledger, gateway request log and Prometheus per phase; each phase's agents exit by themselves once idle long enough to be scraped (5 s on docker, 25 s on kind/cluster), exit 0, as a fleet scales down",
            ],
            bound: "speed-up of 4 agents over 1 >= 3x; lost = 0; queue left = 0; gateway calls beyond each task's steps (not redelivered) = 0; Prometheus sum(max_over_time(agent_tasks_completed_total{fleet=<phase>,status=\"success\"}[15m])) = 12 per phase; every agent completed tasks; idle exits = 0",
            cluster_steps: &[
                "apply the fleet's ScaledJob with maxReplicaCount 4 (agents exit after 25 s idle); bursts of 12, 23 and 6 tasks of 4 s each, 1.5 polling intervals apart",
                "sample every 1 s: ready messages (AMQP passive declare), tasks outstanding (published minus finished) and the ScaledJob's Jobs (watch; pending = no pod Running yet); KEDA formula check for the ScaledJob's strategy within one polling interval (+5 s)",
                "queue empty, KEDA's Jobs still up: re-apply the ScaledJob with AGENT_LOG=debug (a fleet change); none of those Jobs may be deleted unfinished",
                "in-cluster Prometheus sum(max_over_time(agent_tasks_completed_total{fleet=\"keda\"}[15m])) = 41",
            ],
        },
        ScenarioId::Oom => ScenarioPlan {
            proves: "an agent killed for memory (OOMKilled, exit 137) is replaced and its task resumes from the last step checkpoint; a task that OOMs on every delivery is dead-lettered",
            steps: &[
                "4 agents; oom-once allocates 1024 MiB at step 3 of 5 on its first delivery only",
                "oom-always allocates on every delivery; 6 ordinary tasks beside them",
                "watch OOM kills, replacements and redeliveries; account for every task",
            ],
            bound: "OOMKilled exits >= 2, all 137, each replaced or restarted; oom-once resumed_from_step = 2 on attempt >= 2; oom-always dead-lettered exactly once (delivery limit 3), no result; the 6 others finished exactly once",
            cluster_steps: &[],
        },
        ScenarioId::EvictionResume => ScenarioPlan {
            proves: "an agent stopped mid-task (SIGTERM, grace, SIGKILL) checkpoints and exits non-zero within its grace, and a replacement resumes the task",
            steps: &[
                "an 8-step task at 1 s per step; stop its agent after 3 answered calls with the template's grace",
                "stop an idle agent; stop an agent that ignores SIGTERM (AGENT_TEST_IGNORE_SIGTERM=true)",
                "replacements finish both interrupted tasks",
            ],
            bound: "graceful exit = 143 before the grace; idle exit = 0; SIGTERM-ignoring exit = 137 within [grace-1, grace+5] s; resumed_from_step >= steps answered - 1 and > 0, attempt >= 2; lost = 0",
            cluster_steps: &[
                "start minAvailable keepers (agents on a queue of their own) so the PDB can admit an eviction",
                "wait for the PDB to count the keepers and the agent under test healthy; evict the agent, then at once a keeper (Eviction API, no retry)",
                "the first eviction admitted, the second refused with 429; the evicted pod carries DisruptionTarget and its Job's status.failed is unchanged after the replacement",
            ],
        },
        ScenarioId::RetryStorm => ScenarioPlan {
            proves: "a gateway outage does not become a retry storm: backoff with full jitter and breakers bound the fleet's request rate, and the fleet recovers",
            steps: &[
                "20 agents mid-task (backoff base b = 100 ms, cap C = 2 s, breaker 5 failures / 3 s open)",
                "the gateway fails every request for 10 s; its request log gives the fleet's rate",
                "the outage ends; every task must finish",
            ],
            bound: "rate in the outage's second half <= N / (C/2 + T_req) (N agents, T_req median request time); every agent's breaker opened (estimate N / O_open); no agent exits or restarts; last task done <= 20 s after the outage; without backoff (scenario option) the same bound must fail",
            cluster_steps: &[],
        },
        ScenarioId::NetworkIsolation => ScenarioPlan {
            proves: "agents work with egress limited to the queue, the gateway and DNS, and reach nothing else",
            steps: &[
                "control probes from an unrestricted position first: the canary and the outside address are up",
                "probe queue, gateway, canary and outside from the agents' network position",
                "2 isolated agents complete 4 tasks",
            ],
            bound: "allowed peers reachable = all; forbidden targets reachable = 0; tasks completed = 4",
            cluster_steps: &[
                "the deny-all CNI canary first (the whole scenario is skipped if a probe connects through it)",
                "expected matrix = `agentfleet netpol manifests/base manifests/platform`; probe every agent-row cell with an in-cluster address (RabbitMQ 5672/15672/15692, gateway 8080, Prometheus 9090, DNS over TCP, the API server) from an agent-labelled pod",
                "a wrong cell prints both matrices and an `agentfleet probe` command reproducing it",
            ],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(kind: bool, docker: bool) -> Host {
        Host {
            kind: kind.then(|| PathBuf::from("/usr/local/bin/kind")),
            kind_blockers: Vec::new(),
            docker: if docker {
                Ok("unix:///var/run/docker.sock".into())
            } else {
                Err("connection refused".into())
            },
        }
    }

    #[test]
    fn auto_prefers_kind_only_when_kind_and_docker_are_both_there() {
        let r = resolve(RuntimeChoice::Auto, &host(true, true)).unwrap();
        assert_eq!(r.runtime, ResolvedRuntime::Kind);
        let r = resolve(RuntimeChoice::Auto, &host(false, true)).unwrap();
        assert_eq!(r.runtime, ResolvedRuntime::Docker);
        assert!(
            r.reason.contains("no `kind` on PATH nor downloaded"),
            "{}",
            r.reason
        );
        let err = resolve(RuntimeChoice::Auto, &host(true, false)).unwrap_err();
        assert!(err.to_string().contains("connection refused"), "{err}");
    }

    #[test]
    fn auto_falls_back_to_docker_when_kind_cannot_boot_here_and_says_why() {
        let blocked = Host {
            kind_blockers: vec!["only 2.0 GiB of memory available; kind needs 6".into()],
            ..host(true, true)
        };
        let r = resolve(RuntimeChoice::Auto, &blocked).unwrap();
        assert_eq!(r.runtime, ResolvedRuntime::Docker);
        assert!(
            r.reason.contains("cannot boot a cluster here"),
            "{}",
            r.reason
        );
        assert!(r.reason.contains("kind needs 6"), "{}", r.reason);
        // Asked for by name, kind is attempted: cluster up's preflight then fails with the same
        // problems, instead of a silent switch to another runtime.
        let r = resolve(RuntimeChoice::Kind, &blocked).unwrap();
        assert_eq!(r.runtime, ResolvedRuntime::Kind);
    }

    #[test]
    fn explicit_runtimes_say_what_is_missing() {
        // Asked for by name, kind is fetched when missing (cluster up downloads the pinned
        // release, or fails fast offline); only Docker is a hard requirement.
        let r = resolve(RuntimeChoice::Kind, &host(false, true)).unwrap();
        assert_eq!(r.runtime, ResolvedRuntime::Kind);
        assert!(r.reason.contains("downloaded"), "{}", r.reason);
        let err = resolve(RuntimeChoice::Kind, &host(true, false)).unwrap_err();
        assert!(err.to_string().contains("start dockerd"), "{err}");
        let err = resolve(RuntimeChoice::Docker, &host(false, false)).unwrap_err();
        assert!(err.to_string().contains("start dockerd"), "{err}");
        let r = resolve(RuntimeChoice::Cluster, &host(false, false)).unwrap();
        assert_eq!(r.runtime, ResolvedRuntime::Cluster);
    }

    #[test]
    fn docker_notice_names_the_skipped_cluster_checks_of_the_selected_scenarios() {
        let all = docker_skip_notice(&ScenarioId::ALL);
        for check in [
            "KEDA ScaledJob follows its scaling formula",
            "429",
            "fleet change",
            "backoffLimit",
            "NetworkPolicy truth table",
        ] {
            assert!(all.contains(check), "{all}");
        }
        let oom = docker_skip_notice(&[ScenarioId::Oom]);
        assert!(oom.contains("none for the selected scenarios"), "{oom}");
    }

    #[test]
    fn dry_run_plan_lists_runtime_images_manifests_and_each_scenarios_bound() {
        let resolved = Resolved {
            runtime: ResolvedRuntime::Docker,
            reason: "--runtime docker".into(),
        };
        let text = plan(&resolved, &[ScenarioId::RetryStorm, ScenarioId::Scaling]);
        assert!(
            text.contains("runtime: docker (--runtime docker)"),
            "{text}"
        );
        assert!(text.contains("agentfleet/agent:"), "{text}");
        assert!(text.contains("manifests: "), "{text}");
        assert!(text.contains("retry-storm: "), "{text}");
        assert!(text.contains("N / (C/2 + T_req)"), "{text}");
        assert!(
            text.contains("cluster-only (skipped on docker): KEDA ScaledJob follows"),
            "{text}"
        );
        assert!(
            !text.contains("\noom: "),
            "only the selected scenarios: {text}"
        );
    }

    #[test]
    fn selection_is_deduplicated_in_suite_order() {
        let args = E2eArgs {
            runtime: RuntimeChoice::Auto,
            scenarios: vec![
                ScenarioId::RetryStorm,
                ScenarioId::Oom,
                ScenarioId::RetryStorm,
            ],
            keep: false,
            dry_run: true,
            report_dir: PathBuf::from("target/agentfleet"),
            quiet: true,
            context: None,
            manifests: PathBuf::from("manifests"),
        };
        assert_eq!(
            selected(&args),
            vec![ScenarioId::Oom, ScenarioId::RetryStorm]
        );
    }
}
