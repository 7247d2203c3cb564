//! docs/lint-rules.md and `--explain`, both generated from the rule table.

use std::fmt::Write;

use crate::rules::{IGNORE_ANNOTATION, RULES, Rule};

/// The text `agentfleet lint --explain ID` prints.
pub fn explain(rule: &Rule) -> String {
    format!(
        "{} {} ({})\n{}\n\nWhy: {}\n\nFix: {}\n\nReference: {}\n{}",
        rule.id,
        rule.name,
        rule.severity,
        rule.title,
        rule.rationale,
        rule.fix,
        rule.reference,
        if rule.input_error {
            "\nThis is an input error: the object could not be read. It always makes the run exit 2 and cannot be suppressed.\n".to_owned()
        } else {
            format!(
                "\nSuppress for one object with the annotation {IGNORE_ANNOTATION}: {}\n",
                rule.id
            )
        }
    )
}

/// The whole of docs/lint-rules.md.
pub fn rules_markdown() -> String {
    let mut md = String::new();
    md.push_str("# agentfleet lint rules\n\n");
    md.push_str("<!-- Generated from lint/src/rules/catalog.rs by `UPDATE_DOCS=1 cargo test -p agentfleet-lint docs_are_up_to_date`. Do not edit by hand. -->\n\n");
    md.push_str("`agentfleet lint PATH...` reads files, directories (recursively: `.yaml`, `.yml`, `.json`) and `-` (stdin), ");
    md.push_str("decodes every document into typed Kubernetes and KEDA objects, and checks them against the facts in DESIGN.md.\n\n");
    md.push_str("- Exit codes: `0` clean, `1` findings at or above `--fail-on` (default `error`), `2` usage or input errors (AF001-AF004).\n");
    md.push_str("- Formats: `--format human|json|sarif|junit`.\n");
    let _ = writeln!(
        md,
        "- Suppress a rule for one object with the annotation `{IGNORE_ANNOTATION}: AF0xx,AF0yy` on that object's metadata."
    );
    md.push_str("- Objects without `metadata.namespace` are checked as if in `--namespace` (default `default`), as `kubectl apply` without `-n` would place them.\n\n");
    md.push_str("| ID | Name | Severity | Title |\n|---|---|---|---|\n");
    for rule in RULES {
        let _ = writeln!(
            md,
            "| [{id}](#{anchor}) | `{}` | {} | {} |",
            rule.name,
            rule.severity,
            rule.title,
            id = rule.id,
            anchor = rule.id.to_ascii_lowercase()
        );
    }
    for rule in RULES {
        let _ = write!(
            md,
            "\n## {}\n\n**{}** · `{}` · {}\n\n{}\n\n**Fix:** {}\n\n**Reference:** {}\n",
            rule.id, rule.title, rule.name, rule.severity, rule.rationale, rule.fix, rule.reference
        );
        if rule.input_error {
            md.push_str("\nInput error: always exits 2; cannot be suppressed.\n");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/lint-rules.md must match the rule table. Regenerate with
    /// `UPDATE_DOCS=1 cargo test -p agentfleet-lint docs_are_up_to_date`.
    #[test]
    fn docs_are_up_to_date() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/lint-rules.md");
        let expected = rules_markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &expected).unwrap();
            return;
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "{} is out of date with lint/src/rules/catalog.rs; run `UPDATE_DOCS=1 cargo test -p agentfleet-lint docs_are_up_to_date`",
            path.display()
        );
    }

    #[test]
    fn explain_has_every_part() {
        let text = explain(crate::rules::find("AF011").unwrap());
        for part in [
            "AF011",
            "pdb-blocks-job-evictions",
            "Why:",
            "Fix:",
            "Reference:",
            "lint-ignore",
        ] {
            assert!(text.contains(part), "{part} missing from:\n{text}");
        }
    }
}
