//! `cargo xtask`: all of agentfleet's automation, in Rust (matklad's xtask pattern).
//!
//! The only shell script in the repository is `.ci/run`, which installs system packages and then
//! calls `cargo xtask test`, exactly the command the README gives.

mod bench;
mod cluster;
mod e2e;
mod images;
mod process;
mod progress;
mod test;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "agentfleet automation")]
struct Cli {
    /// Plain line output, no spinners (also when CI is set or stderr is not a terminal).
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build every image the tests need, with no registry; rebuilds only what changed.
    Images(images::ImagesArgs),
    /// The test command: images, then the whole workspace under nextest, then promtool rule tests.
    Test(test::TestArgs),
    /// The main job: build images and run the scenarios on a runtime, then write reports.
    E2e(e2e::E2eArgs),
    /// Benchmarks (throughput and memory targets live here, never in timed tests).
    Bench(bench::BenchArgs),
    /// The kind cluster and existing clusters: up (images built first), install, down, sweep,
    /// plan.
    Cluster(cluster::ClusterArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let progress = progress::Progress::new(cli.quiet);
    match cli.command {
        Command::Images(args) => images::run(&args, &progress),
        Command::Test(args) => test::run(&args, &progress),
        Command::E2e(args) => e2e::run(&args, &progress),
        Command::Bench(args) => bench::run(&args, &progress),
        Command::Cluster(args) => cluster::run(&args, &progress),
    }
}

/// The workspace root (xtask lives one level below it).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}
