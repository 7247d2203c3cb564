//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use agentfleet_lint::source::{Source, SourceText};
use agentfleet_lint::{LintReport, lint, source};

/// The workspace root (fixtures/ and manifests/ live there).
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("lint/ has a parent")
        .to_path_buf()
}

/// A path under the workspace root, as a string for the linter's inputs.
pub fn path(relative: &str) -> String {
    workspace().join(relative).display().to_string()
}

pub fn lint_paths(paths: &[String]) -> LintReport {
    let sources = source::load(paths, &mut &b""[..]).expect("inputs are readable");
    lint(&sources, "default")
}

pub fn lint_text(name: &str, text: &str) -> LintReport {
    lint(
        &[Source {
            name: name.into(),
            text: SourceText::Text(text.into()),
        }],
        "default",
    )
}

/// Rule IDs of the findings that count (not suppressed), sorted and de-duplicated.
pub fn fired(report: &LintReport) -> Vec<&'static str> {
    let mut ids: Vec<_> = report
        .findings
        .iter()
        .filter(|f| !f.suppressed)
        .map(|f| f.rule.id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Every finding, one per line, for assertion messages.
pub fn dump(report: &LintReport) -> String {
    report
        .findings
        .iter()
        .map(|f| {
            format!(
                "{} {}[{}] {}\n",
                f.location,
                f.severity(),
                f.rule.id,
                f.message
            )
        })
        .collect()
}
