//! A JUnit XML writer for the CI UIs (GitLab, Jenkins, GitHub test reporters): one
//! `<testsuite>` with one `<testcase>` per scenario or contract clause. Hand-written because
//! the subset CI tools read is tiny, and every text goes through [`escape`].

use std::fmt::Write as _;
use std::time::Duration;

/// One test case's outcome, in JUnit's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseStatus {
    Passed,
    /// `<failure message=...>body</failure>`.
    Failed {
        message: String,
        body: String,
    },
    /// `<error message=...>body</error>`: the test could not run.
    Error {
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
                CaseStatus::Failed { message, body } => {
                    let _ = write!(
                        xml,
                        "\n      <failure message=\"{}\">{}</failure>",
                        escape(message),
                        escape(body)
                    );
                }
                CaseStatus::Error { message, body } => {
                    let _ = write!(
                        xml,
                        "\n      <error message=\"{}\">{}</error>",
                        escape(message),
                        escape(body)
                    );
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::xml_check::assert_well_formed;

    fn case(name: &str, status: CaseStatus) -> Case {
        Case {
            name: name.into(),
            classname: "agentfleet.e2e".into(),
            time: Duration::from_millis(1500),
            status,
            system_out: String::new(),
        }
    }

    #[test]
    fn writes_counts_and_one_testcase_per_case() {
        let suite = Suite {
            name: "agentfleet e2e".into(),
            cases: vec![
                case("scaling", CaseStatus::Passed),
                case(
                    "oom",
                    CaseStatus::Failed {
                        message: "resumed from 0 < 3".into(),
                        body: "log <tail> & \"more\"\u{1b}[0m".into(),
                    },
                ),
                case(
                    "rollout",
                    CaseStatus::Skipped {
                        message: "needs a cluster (runtime docker)".into(),
                    },
                ),
            ],
        };
        let xml = suite.to_xml();
        assert_well_formed(&xml);
        assert!(
            xml.contains(r#"tests="3" failures="1" errors="0" skipped="1" time="4.500""#),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert!(
            xml.contains(r#"<skipped message="needs a cluster (runtime docker)"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains("log &lt;tail&gt; &amp; &quot;more&quot;\u{FFFD}[0m"),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<testcase name="scaling" classname="agentfleet.e2e" time="1.500"></testcase>"#
            ),
            "{xml}"
        );
    }
}
