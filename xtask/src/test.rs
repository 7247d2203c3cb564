//! `cargo xtask test`: the README's test command, and the only thing `.ci/run` runs.
//!
//! Order matters: the integration tests run the real images, so they are built first; the alert
//! rules are tested with the promtool inside the Prometheus image, so no host install is needed.

use anyhow::{Context, Result};

use crate::images::{self, ImagesArgs};
use crate::process::{cmd, exec, on_path};
use crate::progress::Progress;
use crate::project_root;

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Extra arguments for `cargo nextest run` (e.g. a filter expression).
    #[arg(last = true)]
    nextest_args: Vec<String>,
}

pub fn run(args: &TestArgs, progress: &Progress) -> Result<()> {
    images::run(&ImagesArgs::all(), progress)?;
    if !on_path("cargo-nextest") {
        anyhow::bail!("cargo-nextest is not installed: `cargo install --locked cargo-nextest`");
    }
    let profile = if std::env::var_os("CI").is_some() {
        "ci"
    } else {
        "default"
    };
    let mut c = cmd(
        "cargo",
        [
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--profile",
            profile,
        ],
    );
    c.args(&args.nextest_args).current_dir(project_root());
    exec(c).context("the test suite failed")?;
    progress.step("promtool test rules (alert rules)", promtool_rules)?;
    Ok(())
}

/// `promtool test rules` with the promtool of the Prometheus image the fleet runs.
fn promtool_rules() -> Result<()> {
    let root = project_root();
    let mut c = cmd(
        "docker",
        [
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "promtool",
            "-v",
        ],
    );
    c.arg(format!("{}:/work:ro", root.display()))
        .args(["--workdir", "/work/fixtures/promtool"])
        .arg(images::reference("prometheus"))
        .args(["test", "rules", "agentfleet.rules.test.yaml"]);
    exec(c)
}
