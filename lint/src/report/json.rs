//! Machine-readable findings.

use std::io::{self, Write};

use serde::Serialize;

use super::Summary;
use crate::LintReport;
use crate::finding::{ObjectRef, Severity};

#[derive(Serialize)]
struct Document<'a> {
    tool: &'static str,
    version: &'static str,
    summary: Summary,
    findings: Vec<JsonFinding<'a>>,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    rule: &'static str,
    name: &'static str,
    severity: Severity,
    message: &'a str,
    file: &'a str,
    line: u32,
    column: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'a ObjectRef>,
    suppressed: bool,
}

pub(super) fn render(report: &LintReport, out: &mut dyn Write) -> io::Result<()> {
    let document = Document {
        tool: "agentfleet-lint",
        version: env!("CARGO_PKG_VERSION"),
        summary: Summary::of(report),
        findings: report
            .findings
            .iter()
            .map(|f| JsonFinding {
                rule: f.rule.id,
                name: f.rule.name,
                severity: f.severity(),
                message: &f.message,
                file: &f.location.file,
                line: f.location.line,
                column: f.location.column,
                object: f.object.as_ref(),
                suppressed: f.suppressed,
            })
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)
}
