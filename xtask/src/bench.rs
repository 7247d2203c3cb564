//! `cargo xtask bench`: throughput and memory figures, measured, never asserted in timed tests.

use anyhow::Result;

use crate::images::{self, ImagesArgs};
use crate::process::{cmd, exec};
use crate::progress::Progress;
use crate::project_root;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark: `lint` (parse + lint a generated corpus of 10,000 manifests), `agent`
    /// (the reference agent's image size, start-up time, idle RSS and tasks/s; needs Docker).
    #[arg(value_parser = ["lint", "agent"], default_value = "lint")]
    which: String,
}

pub fn run(args: &BenchArgs, progress: &Progress) -> Result<()> {
    match args.which.as_str() {
        "lint" => progress.step("lint throughput on 10,000 generated manifests", || {
            let mut c = cmd(
                "cargo",
                [
                    "bench",
                    "--locked",
                    "-p",
                    "agentfleet-lint",
                    "--bench",
                    "throughput",
                ],
            );
            c.current_dir(project_root());
            exec(c)
        }),
        "agent" => {
            images::run(&ImagesArgs::all(), progress)?;
            progress.step("reference agent figures (real image, real broker)", || {
                let mut c = cmd(
                    "cargo",
                    [
                        "bench",
                        "--locked",
                        "-p",
                        "agentfleet-suites",
                        "--bench",
                        "agent",
                    ],
                );
                c.current_dir(project_root());
                exec(c)
            })
        }
        other => unreachable!("clap only accepts known benchmarks, got {other}"),
    }
}
