//! `cargo xtask cluster up|install|down|sweep|plan`: the harness's `agentfleet cluster` command
//! from a developer checkout. `up` builds the images first, since it loads them into the kind
//! nodes; everything else is handed over unchanged.

use anyhow::{Context, Result};

use crate::images::{self, ImagesArgs};
use crate::process::{agentfleet, exec};
use crate::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// The `agentfleet cluster` subcommand and its flags: up, install, down, sweep or plan
    /// (`cargo xtask cluster help` lists them).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "COMMAND"
    )]
    args: Vec<String>,
}

pub fn run(args: &ClusterArgs, progress: &Progress) -> Result<()> {
    if args.args.first().map(String::as_str) == Some("up") {
        images::run(&ImagesArgs::all(), progress)?;
    }
    let mut c = agentfleet(["cluster"]);
    c.args(&args.args);
    exec(c).with_context(|| format!("agentfleet cluster {}", args.args.join(" ")))
}
