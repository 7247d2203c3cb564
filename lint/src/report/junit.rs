//! JUnit XML for CI test tabs (GitLab, Jenkins, GitHub test reporters).
//!
//! [`Suite`] is the one JUnit writer of the workspace: `agentfleet lint` renders one test case
//! per object (and per file with input errors) through it, and the harness uses it for its e2e
//! and conformance reports. Hand-written because the subset CI tools read is tiny, and every
//! text goes through [`escape`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use crate::LintReport;
use crate::finding::{Finding, Severity};

/// One test case's outcome, in JUnit's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseStatus {
    Passed,
    /// `<failure type=... message=...>body</failure>`.
    Failed {
        /// The `type` attribute (e.g. the rule ids that failed), left out when `None`.
        kind: Option<String>,
        message: String,
        body: String,
    },
    /// `<error type=... message=...>body</error>`: the test could not run.
    Error {
        /// The `type` attribute, left out when `None`.
        kind: Option<String>,
        message: String,
        body: String,
    },
    /// `<skipped message=.../>`.
    Skipped {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub classname: String,
    pub time: Duration,
    pub status: CaseStatus,
    /// Extra output for `<system-out>` (evidence, figures).
    pub system_out: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    pub cases: Vec<Case>,
}

impl Suite {
    /// The document, with an XML declaration, a `<testsuites>` root and its counts.
    pub fn to_xml(&self) -> String {
        let count = |f: fn(&CaseStatus) -> bool| self.cases.iter().filter(|c| f(&c.status)).count();
        let failures = count(|s| matches!(s, CaseStatus::Failed { .. }));
        let errors = count(|s| matches!(s, CaseStatus::Error { .. }));
        let skipped = count(|s| matches!(s, CaseStatus::Skipped { .. }));
        let time: f64 = self.cases.iter().map(|c| c.time.as_secs_f64()).sum();
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            xml,
            "<testsuites name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
            name = escape(&self.name),
            tests = self.cases.len(),
        );
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
            name = escape(&self.name),
            tests = self.cases.len(),
        );
        for case in &self.cases {
            let _ = write!(
                xml,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">",
                escape(&case.name),
                escape(&case.classname),
                case.time.as_secs_f64()
            );
            match &case.status {
                CaseStatus::Passed => {}
                CaseStatus::Failed {
                    kind,
                    message,
                    body,
                } => write_problem(&mut xml, "failure", kind.as_deref(), message, body),
                CaseStatus::Error {
                    kind,
                    message,
                    body,
                } => write_problem(&mut xml, "error", kind.as_deref(), message, body),
                CaseStatus::Skipped { message } => {
                    let _ = write!(xml, "\n      <skipped message=\"{}\"/>", escape(message));
                }
            }
            if !case.system_out.is_empty() {
                let _ = write!(
                    xml,
                    "\n      <system-out>{}</system-out>",
                    escape(&case.system_out)
                );
            }
            if case.status != CaseStatus::Passed || !case.system_out.is_empty() {
                xml.push_str("\n    ");
            }
            xml.push_str("</testcase>\n");
        }
        xml.push_str("  </testsuite>\n</testsuites>\n");
        xml
    }
}

/// Writes a `<failure>` or `<error>` element (`element`) on its own line: JUnit spells the two
/// alike, with an optional `type`, the `message` attribute and the body as text.
fn write_problem(xml: &mut String, element: &str, kind: Option<&str>, message: &str, body: &str) {
    let kind = kind.map_or_else(String::new, |kind| format!(" type=\"{}\"", escape(kind)));
    let _ = write!(
        xml,
        "\n      <{element}{kind} message=\"{}\">{}</{element}>",
        escape(message),
        escape(body)
    );
}

/// Escapes text for an XML attribute or element. Characters XML 1.0 cannot carry at all
/// (control characters other than tab, newline and carriage return, as found in raw container
/// logs) become U+FFFD rather than making the document unreadable.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn line(f: &Finding) -> String {
    format!(
        "{}: {}[{}] {}",
        f.location,
        f.severity(),
        f.rule.id,
        f.message
    )
}

pub(super) fn render(
    report: &LintReport,
    fail_on: Option<Severity>,
    out: &mut dyn Write,
) -> io::Result<()> {
    // Test cases keyed by (file, object); objects without findings pass.
    let mut cases: BTreeMap<(String, String), Vec<&Finding>> = BTreeMap::new();
    for (file, object) in &report.objects {
        cases.entry((file.clone(), object.to_string())).or_default();
    }
    for f in report.findings.iter().filter(|f| !f.suppressed) {
        let name = f
            .object
            .as_ref()
            .map_or_else(|| "(file)".to_owned(), ToString::to_string);
        cases
            .entry((f.location.file.clone(), name))
            .or_default()
            .push(f);
    }
    let fails = |f: &&Finding| !f.is_input_error() && fail_on.is_some_and(|t| f.severity() >= t);
    let cases = cases
        .into_iter()
        .map(|((file, name), findings)| {
            let input: Vec<&&Finding> = findings.iter().filter(|f| f.is_input_error()).collect();
            let failing: Vec<&&Finding> = findings.iter().filter(|f| fails(f)).collect();
            let status = if let Some(first) = input.first() {
                let body: Vec<String> = input.iter().map(|f| line(f)).collect();
                CaseStatus::Error {
                    kind: Some(first.rule.id.to_owned()),
                    message: first.message.clone(),
                    body: body.join("\n"),
                }
            } else if let Some(first) = failing.first() {
                let ids: Vec<&str> = failing.iter().map(|f| f.rule.id).collect();
                let body: Vec<String> = failing.iter().map(|f| line(f)).collect();
                CaseStatus::Failed {
                    kind: Some(ids.join(",")),
                    message: format!(
                        "{} finding(s) at or above {}: {}",
                        failing.len(),
                        fail_on.map_or("", Severity::as_str),
                        first.message
                    ),
                    body: body.join("\n"),
                }
            } else {
                CaseStatus::Passed
            };
            let rest: Vec<String> = findings
                .iter()
                .filter(|f| !f.is_input_error() && !fails(f))
                .map(|f| line(f))
                .collect();
            Case {
                name,
                classname: file,
                time: Duration::ZERO,
                status,
                system_out: rest.join("\n"),
            }
        })
        .collect();
    let suite = Suite {
        name: "agentfleet-lint".into(),
        cases,
    };
    out.write_all(suite.to_xml().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_and_marks_characters_xml_cannot_carry() {
        assert_eq!(
            escape("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot;\u{FFFD}"
        );
    }
}
