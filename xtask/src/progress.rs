//! Progress for long steps: a spinner on a terminal, plain lines in CI or with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    interactive: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let ci = std::env::var_os("CI").is_some();
        Progress {
            interactive: !quiet && !ci && std::io::stderr().is_terminal(),
        }
    }

    /// Runs `f` under a spinner labelled `what`, then prints how long it took.
    pub fn step<T>(&self, what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let start = Instant::now();
        let bar = if self.interactive {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("valid template"),
            );
            bar.set_message(what.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            Some(bar)
        } else {
            eprintln!("xtask: {what} ...");
            None
        };
        let result = f();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let verdict = if result.is_ok() { "done" } else { "FAILED" };
        eprintln!(
            "xtask: {what}: {verdict} in {:.1}s",
            start.elapsed().as_secs_f64()
        );
        result
    }

    pub fn note(&self, line: &str) {
        eprintln!("xtask: {line}");
    }
}
