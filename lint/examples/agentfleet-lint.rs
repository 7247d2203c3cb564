//! Stand-alone front end for trying the linter without the `agentfleet` binary:
//! `cargo run -p agentfleet-lint --example agentfleet-lint -- lint fixtures/seed/article`.

use std::process::ExitCode;

use agentfleet_lint::cli::{LintArgs, NetpolArgs, run_lint, run_netpol};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "agentfleet-lint", about = "agentfleet's static fleet checks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lint fleet manifests.
    Lint(LintArgs),
    /// Print the NetworkPolicy reachability truth table.
    Netpol(NetpolArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr().lock());
    let code = match &cli.command {
        Command::Lint(args) => run_lint(args, &mut stdout, &mut stderr),
        Command::Netpol(args) => run_netpol(args, &mut stdout, &mut stderr),
    };
    ExitCode::from(code)
}
