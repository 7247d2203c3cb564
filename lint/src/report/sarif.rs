//! SARIF 2.1.0, the format GitHub code scanning and other code-scanning UIs read.

use std::io::{self, Write};

use serde_json::{Value, json};

use crate::LintReport;
use crate::finding::Severity;
use crate::rules::RULES;

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A relative URI reference for a file name: forward slashes, with characters that are not
/// allowed in URIs percent-encoded. Stdin is reported as `stdin`.
pub(crate) fn artifact_uri(file: &str) -> String {
    if file == "-" {
        return "stdin".to_owned();
    }
    let path = file.replace('\\', "/");
    let path = path.strip_prefix("./").unwrap_or(&path);
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

pub(super) fn render(report: &LintReport, out: &mut dyn Write) -> io::Result<()> {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|rule| {
            let mut descriptor = json!({
                "id": rule.id,
                "name": rule.name,
                "shortDescription": { "text": rule.title },
                "fullDescription": { "text": rule.rationale },
                "help": {
                    "text": format!("{}\n\nFix: {}\nReference: {}", rule.rationale, rule.fix, rule.reference),
                    "markdown": format!("{}\n\n**Fix:** {}\n\n**Reference:** {}", rule.rationale, rule.fix, rule.reference),
                },
                "defaultConfiguration": { "level": level(rule.severity) },
                "properties": { "tags": ["kubernetes", "agentfleet"] },
            });
            if let Some(url) = rule.reference.split_whitespace().find(|w| w.starts_with("https://")) {
                descriptor["helpUri"] = json!(url.trim_end_matches([';', ',', ')']));
            }
            descriptor
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let rule_index = RULES.iter().position(|r| r.id == f.rule.id).unwrap_or_default();
            let mut location = json!({
                "physicalLocation": {
                    "artifactLocation": { "uri": artifact_uri(&f.location.file) },
                    "region": { "startLine": f.location.line, "startColumn": f.location.column },
                },
            });
            if let Some(object) = &f.object {
                let qualified = match &object.namespace {
                    Some(ns) => format!("{ns}/{}/{}", object.kind, object.name),
                    None => format!("{}/{}", object.kind, object.name),
                };
                location["logicalLocations"] = json!([{ "name": object.name, "fullyQualifiedName": qualified, "kind": "resource" }]);
            }
            let mut result = json!({
                "ruleId": f.rule.id,
                "ruleIndex": rule_index,
                "level": level(f.severity()),
                "message": { "text": f.message },
                "locations": [location],
            });
            if f.suppressed {
                result["suppressions"] = json!([{ "kind": "inSource", "justification": "agentfleet.dev/lint-ignore annotation" }]);
            }
            result
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "agentfleet-lint",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    serde_json::to_writer_pretty(&mut *out, &log)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::artifact_uri;

    #[test]
    fn uris_are_relative_and_encoded() {
        assert_eq!(
            artifact_uri("./manifests/base/job.yaml"),
            "manifests/base/job.yaml"
        );
        assert_eq!(artifact_uri("my dir\\a.yaml"), "my%20dir/a.yaml");
        assert_eq!(artifact_uri("-"), "stdin");
    }
}
