//! JUnit XML for CI test tabs: one test case per object (and per file with input errors).

use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::LintReport;
use crate::finding::{Finding, Severity};

/// Escapes text for XML attributes and content, dropping characters XML 1.0 cannot carry.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
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
    let failures = cases
        .values()
        .filter(|fs| !fs.iter().any(|f| f.is_input_error()) && fs.iter().any(fails))
        .count();
    let errors = cases
        .values()
        .filter(|fs| fs.iter().any(|f| f.is_input_error()))
        .count();

    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="agentfleet-lint" tests="{}" failures="{failures}" errors="{errors}">"#,
        cases.len()
    )?;
    writeln!(
        out,
        r#"  <testsuite name="agentfleet-lint" tests="{}" failures="{failures}" errors="{errors}" skipped="0">"#,
        cases.len()
    )?;
    for ((file, name), findings) in &cases {
        write!(
            out,
            r#"    <testcase classname="{}" name="{}""#,
            escape(file),
            escape(name)
        )?;
        if findings.is_empty() {
            writeln!(out, "/>")?;
            continue;
        }
        writeln!(out, ">")?;
        let input: Vec<&&Finding> = findings.iter().filter(|f| f.is_input_error()).collect();
        let failing: Vec<&&Finding> = findings.iter().filter(|f| fails(f)).collect();
        if let Some(first) = input.first() {
            let body: Vec<String> = input.iter().map(|f| line(f)).collect();
            writeln!(
                out,
                r#"      <error type="{}" message="{}">{}</error>"#,
                first.rule.id,
                escape(&first.message),
                escape(&body.join("\n"))
            )?;
        } else if let Some(first) = failing.first() {
            let ids: Vec<&str> = failing.iter().map(|f| f.rule.id).collect();
            let body: Vec<String> = failing.iter().map(|f| line(f)).collect();
            let message = format!(
                "{} finding(s) at or above {}: {}",
                failing.len(),
                fail_on.map_or("", Severity::as_str),
                first.message
            );
            writeln!(
                out,
                r#"      <failure type="{}" message="{}">{}</failure>"#,
                ids.join(","),
                escape(&message),
                escape(&body.join("\n"))
            )?;
        }
        let rest: Vec<String> = findings
            .iter()
            .filter(|f| !f.is_input_error() && !fails(f))
            .map(|f| line(f))
            .collect();
        if !rest.is_empty() {
            writeln!(
                out,
                "      <system-out>{}</system-out>",
                escape(&rest.join("\n"))
            )?;
        }
        writeln!(out, "    </testcase>")?;
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
