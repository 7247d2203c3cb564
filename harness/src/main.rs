//! `agentfleet`: the command-line face of the harness.
//!
//! - `e2e`: run the scenarios on a runtime (docker, kind, an existing cluster) and write reports;
//! - `conform`: check a custom agent image against the agent contract, clause by clause;
//! - `lint` and `netpol`: static fleet checks (the `agentfleet-lint` crate), seconds, no cluster;
//! - `cluster`: kind lifecycle, install into an existing cluster, dry-run plan and namespace
//!   sweep; `probe`: one connectivity probe
//!   from the agents' position in a cluster (the reproduce command of the isolation check);
//! - `sweep`: remove whatever an interrupted run left in Docker.
//!
//! Exit codes follow each command's documentation; anyhow is used only here, at the edge.

use std::io::Write;
use std::process::ExitCode;

use agentfleet::cluster_cli::{self, ClusterArgs, ProbeArgs};
use agentfleet::conform::{self, ConformArgs};
use agentfleet::docker::Engine;
use agentfleet::e2e::{self, E2eArgs};
use agentfleet::sweep::{Sweep, sweep};
use agentfleet_lint::cli::{LintArgs, NetpolArgs};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "agentfleet",
    version,
    about = "End-to-end tests and conformance for AI-agent fleets on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the scenarios on a runtime, print the verdict table, write report.json, junit.xml and
    /// one SVG timeline per scenario. Exit 0 when none failed, 1 when one did.
    E2e(E2eArgs),
    /// Run the agent contract against an image on the Docker runtime and report clause by clause.
    Conform(ConformArgs),
    /// Check fleet manifests against the facts of KEDA, Jobs, PDBs and NetworkPolicy.
    /// Exit 0 clean, 1 findings at or above --fail-on, 2 usage or parse errors.
    Lint(LintArgs),
    /// Print the expected reachability truth table computed from the NetworkPolicies.
    Netpol(NetpolArgs),
    /// kind cluster lifecycle (up, down), the dry-run plan, and sweeping scenario namespaces.
    Cluster(ClusterArgs),
    /// Probe one TCP target from a pod labelled like an agent (exit 0 reachable, 1 not).
    Probe(ProbeArgs),
    /// Remove containers, networks and volumes left by agentfleet runs on this Docker engine.
    Sweep {
        /// Only the objects of this scope id (default: every scope; do not run while tests run).
        #[arg(long)]
        scope: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lint(args) => ExitCode::from(agentfleet_lint::cli::run_lint(
            &args,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )),
        Command::Netpol(args) => ExitCode::from(agentfleet_lint::cli::run_netpol(
            &args,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )),
        Command::Sweep { scope } => report(block_on(run_sweep(scope))),
        Command::E2e(args) => exit_code(block_on(e2e::run(&args))),
        Command::Conform(args) => exit_code(block_on(conform::run(&args))),
        Command::Cluster(args) => report(block_on(cluster_cli::run(&args, &mut std::io::stdout()))),
        Command::Probe(args) => match block_on(cluster_cli::probe(&args, &mut std::io::stdout())) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("agentfleet: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

async fn run_sweep(scope: Option<String>) -> anyhow::Result<()> {
    let engine = Engine::connect().await?;
    let what = scope.map_or(Sweep::All, Sweep::Scope);
    let swept = sweep(&engine, &what).await?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "removed {} containers, {} networks, {} volumes",
        swept.containers.len(),
        swept.networks.len(),
        swept.volumes.len()
    )?;
    Ok(())
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
        .block_on(future)
}

fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("agentfleet: {e:#}");
        ExitCode::from(2)
    })
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentfleet: {e:#}");
            ExitCode::FAILURE
        }
    }
}
