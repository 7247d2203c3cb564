//! `file:line:column: severity[ID] object: message` lines, like compilers print.

use std::io::{self, Write};

use super::Summary;
use crate::LintReport;
use crate::finding::Severity;

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn severity(&self, severity: Severity) -> String {
        let code = match severity {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Info => "1;36",
        };
        self.wrap(code, severity.as_str())
    }
}

pub(super) fn render(report: &LintReport, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let paint = Paint { on: color };
    for finding in report.findings.iter().filter(|f| !f.suppressed) {
        let object = finding
            .object
            .as_ref()
            .map(|o| format!("{o}: "))
            .unwrap_or_default();
        writeln!(
            out,
            "{}: {}[{}] {object}{}",
            paint.wrap("1", &finding.location.to_string()),
            paint.severity(finding.severity()),
            finding.rule.id,
            finding.message
        )?;
        writeln!(out, "    {} {}", paint.wrap("2", "fix:"), finding.rule.fix)?;
    }
    let s = Summary::of(report);
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut line = format!(
        "{}, {}, {} info in {} ({})",
        plural(s.errors, "error"),
        plural(s.warnings, "warning"),
        s.info,
        plural(s.files, "file"),
        plural(s.objects, "object")
    );
    if s.suppressed > 0 {
        line.push_str(&format!(
            "; {} suppressed by agentfleet.dev/lint-ignore",
            s.suppressed
        ));
    }
    writeln!(out, "{}", paint.wrap("1", &line))?;
    if s.input_errors > 0 {
        writeln!(
            out,
            "{} of the errors are input errors (the YAML or schema is broken); fix those first",
            s.input_errors
        )?;
    }
    if s.errors + s.warnings + s.info > 0 {
        writeln!(out, "explain a rule with: agentfleet lint --explain <ID>")?;
    }
    Ok(())
}
