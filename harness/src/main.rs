//! `agentfleet`: the command-line face of the harness.
//!
//! - `lint` and `netpol`: static fleet checks (the `agentfleet-lint` crate), seconds, no cluster;
//! - `sweep`: remove whatever an interrupted run left in Docker.
//!
//! Exit codes follow each command's documentation; anyhow is used only here, at the edge.

use std::io::Write;
use std::process::ExitCode;

use agentfleet::docker::Engine;
use agentfleet::sweep::{Sweep, sweep};
use agentfleet_lint::cli::{LintArgs, NetpolArgs};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "agentfleet", version, about = "End-to-end tests and conformance for AI-agent fleets on Kubernetes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check fleet manifests against the facts of KEDA, Jobs, PDBs and NetworkPolicy.
    /// Exit 0 clean, 1 findings at or above --fail-on, 2 usage or parse errors.
    Lint(LintArgs),
    /// Print the expected reachability truth table computed from the NetworkPolicies.
    Netpol(NetpolArgs),
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
        Command::Lint(args) => {
            ExitCode::from(agentfleet_lint::cli::run_lint(&args, &mut std::io::stdout(), &mut std::io::stderr()))
        }
        Command::Netpol(args) => {
            ExitCode::from(agentfleet_lint::cli::run_netpol(&args, &mut std::io::stdout(), &mut std::io::stderr()))
        }
        Command::Sweep { scope } => report(block_on(run_sweep(scope))),
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

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentfleet: {e:#}");
            ExitCode::FAILURE
        }
    }
}
