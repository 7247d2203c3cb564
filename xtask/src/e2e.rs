//! `cargo xtask e2e`: the main job. Builds what the runtime needs, then hands over to the
//! `agentfleet e2e` command of the harness, which runs the scenarios and writes the reports.
//!
//! The split keeps scenario logic in the harness library (one place for every runtime) and leaves
//! xtask with what only a developer checkout has: cargo, the image build contexts.

use anyhow::{Context, Result};

use crate::images::{self, ImagesArgs};
use crate::process::{agentfleet, exec};
use crate::progress::Progress;
use crate::project_root;

#[derive(Debug, clap::Args)]
pub struct E2eArgs {
    /// Where to run: auto (kind when it can run, else docker), docker, kind, cluster.
    #[arg(long, default_value = "auto", value_parser = ["auto", "docker", "kind", "cluster"])]
    runtime: String,
    /// Run only these scenarios (scaling, oom, eviction-resume, retry-storm, network-isolation).
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Keep containers, networks and volumes (or the cluster namespace) after the run.
    #[arg(long)]
    keep: bool,
    /// Print the plan (images, manifests, scenario steps) and touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// kubeconfig context for `--runtime cluster` (default: the current one).
    #[arg(long)]
    context: Option<String>,
}

pub fn run(args: &E2eArgs, progress: &Progress) -> Result<()> {
    if !args.dry_run {
        // On kind (asked for, or picked by auto) the harness boots or reuses the cluster and
        // loads these images before the first scenario.
        images::run(&ImagesArgs::all(), progress)?;
    }
    let report_dir = project_root().join("target/agentfleet");
    let mut c = agentfleet(["e2e"]);
    c.args(["--runtime", &args.runtime])
        .arg("--report-dir")
        .arg(&report_dir);
    for s in &args.scenarios {
        c.args(["--scenario", s]);
    }
    if args.keep {
        // The scopes read AGENTFLEET_KEEP when they are dropped; only a parent can set it.
        c.arg("--keep").env("AGENTFLEET_KEEP", "1");
    }
    if args.dry_run {
        c.arg("--dry-run");
    }
    if let Some(context) = &args.context {
        c.args(["--context", context]);
    }
    exec(c).context("the end-to-end run failed; reports and artifacts are in target/agentfleet/")
}
