//! Output formats: human, JSON, SARIF 2.1.0 and JUnit XML.

mod human;
mod json;
pub mod junit;
mod sarif;

use std::io::{self, Write};

use crate::LintReport;
use crate::finding::Severity;

/// Output format of `agentfleet lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// file:line:column lines for people (coloured on a terminal).
    Human,
    /// One JSON document with every finding and a summary.
    Json,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
    /// JUnit XML: one test case per object, failing when it has findings at or above --fail-on.
    Junit,
}

/// Counts for the summary line and exit code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub info: usize,
    pub suppressed: usize,
    pub input_errors: usize,
    pub files: usize,
    pub objects: usize,
}

impl Summary {
    pub fn of(report: &LintReport) -> Summary {
        let mut s = Summary {
            files: report.files,
            objects: report.objects.len(),
            ..Summary::default()
        };
        for finding in &report.findings {
            if finding.suppressed {
                s.suppressed += 1;
                continue;
            }
            if finding.is_input_error() {
                s.input_errors += 1;
            }
            match finding.severity() {
                Severity::Error => s.errors += 1,
                Severity::Warning => s.warnings += 1,
                Severity::Info => s.info += 1,
            }
        }
        s
    }
}

/// Writes `report` in `format`. `fail_on` is the threshold that makes a finding a failure (for
/// JUnit); `color` is only used by the human format.
pub fn render(
    format: Format,
    report: &LintReport,
    fail_on: Option<Severity>,
    color: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Human => human::render(report, color, out),
        Format::Json => json::render(report, out),
        Format::Sarif => sarif::render(report, out),
        Format::Junit => junit::render(report, fail_on, out),
    }
}
