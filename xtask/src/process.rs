//! Running external programs (cargo, docker, debootstrap) with errors that say what failed.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Builds a command from a program and arguments.
pub fn cmd<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(program);
    c.args(args);
    c
}

fn describe(c: &Command) -> String {
    let mut s = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs to completion with inherited stdio; a non-zero exit is an error naming the command.
pub fn exec(mut c: Command) -> Result<()> {
    let what = describe(&c);
    let status = c
        .status()
        .with_context(|| format!("could not start `{what}` (is it installed?)"))?;
    if !status.success() {
        bail!("`{what}` failed with {status}");
    }
    Ok(())
}

/// Runs with captured output; returns stdout. On failure the error carries stderr's tail, so a
/// quiet build still explains itself.
pub fn output(mut c: Command) -> Result<String> {
    let what = describe(&c);
    let out = c
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start `{what}` (is it installed?)"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let tail: Vec<&str> = stderr
            .lines()
            .chain(stdout.lines())
            .rev()
            .take(30)
            .collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("`{what}` failed with {}:\n{}", out.status, tail.join("\n"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs and reports only whether it succeeded (for probes such as `docker image inspect`).
pub fn succeeds(mut c: Command) -> bool {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a program is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// `cargo run` of the harness binary (`agentfleet`) with `args`, from the workspace root: the
/// xtask commands that drive scenarios or clusters hand over to it, so that logic lives once,
/// in the harness.
pub fn agentfleet<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = cmd(
        "cargo",
        [
            "run",
            "--locked",
            "--quiet",
            "--package",
            "agentfleet",
            "--bin",
            "agentfleet",
            "--",
        ],
    );
    c.args(args).current_dir(crate::project_root());
    c
}
