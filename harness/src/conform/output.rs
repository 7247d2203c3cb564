//! Rendering a [`ConformReport`]: a human table, JSON, or JUnit (one testcase per clause).

use std::fmt::Write as _;

use crate::report::junit::{Case, CaseStatus, Suite};
use crate::report::style::{Tone, paint};

use super::outcome::{ConformReport, Status};

/// The clause table with evidence under each clause, and a summary line.
pub fn human(report: &ConformReport, colour: bool) -> String {
    let mut out = format!("agent contract conformance of {}\n\n", report.image);
    for c in &report.clauses {
        let tone = match c.status {
            Status::Passed => Tone::Good,
            Status::Failed | Status::Error => Tone::Bad,
            Status::Skipped => Tone::Muted,
        };
        let label = format!("{:<5}", c.status.label());
        let optional = if c.optional { " (optional)" } else { "" };
        let _ = writeln!(
            out,
            "{} {:>2}. {:<14} {:>6.1}s  {}{optional}",
            paint(&label, tone, colour),
            c.number,
            c.clause,
            c.duration.as_secs_f64(),
            c.summary
        );
        let _ = writeln!(out, "          check: {}", c.check);
        for line in &c.evidence {
            for (i, part) in line.lines().enumerate() {
                let bullet = if i == 0 { "-" } else { " " };
                let _ = writeln!(out, "          {bullet} {part}");
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{} passed, {} failed, {} errors, {} skipped in {:.1}s: {}",
        report.count(Status::Passed),
        report.count(Status::Failed),
        report.count(Status::Error),
        report.count(Status::Skipped),
        report.duration.as_secs_f64(),
        if report.is_conformant() {
            paint("CONFORMANT", Tone::Good, colour)
        } else {
            paint("NOT CONFORMANT", Tone::Bad, colour)
        }
    );
    out
}

pub fn json(report: &ConformReport) -> String {
    let mut text = serde_json::to_string_pretty(report).expect("a report always serializes");
    text.push('\n');
    text
}

pub fn junit(report: &ConformReport) -> String {
    let cases = report
        .clauses
        .iter()
        .map(|c| {
            let evidence = c.evidence.join("\n");
            let status = match c.status {
                Status::Passed => CaseStatus::Passed,
                Status::Failed => CaseStatus::Failed {
                    kind: None,
                    message: first_line(&evidence),
                    body: evidence.clone(),
                },
                Status::Error => CaseStatus::Error {
                    kind: None,
                    message: first_line(&evidence),
                    body: evidence.clone(),
                },
                Status::Skipped => CaseStatus::Skipped {
                    message: evidence.clone(),
                },
            };
            Case {
                name: format!("{}. {} ({})", c.number, c.clause, c.check),
                classname: format!("agentfleet.conform.{}", report.image),
                time: c.duration,
                system_out: if c.status == Status::Passed {
                    evidence
                } else {
                    String::new()
                },
                status,
            }
        })
        .collect();
    Suite {
        name: format!("agentfleet conform {}", report.image),
        cases,
    }
    .to_xml()
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::conform::clause::Clause;
    use crate::conform::outcome::ClauseOutcome;
    use crate::report::xml_check::assert_well_formed;

    fn report() -> ConformReport {
        ConformReport {
            image: "registry/my-agent:1.4.2".into(),
            declared_missing: vec![8],
            clauses: vec![
                ClauseOutcome::new(
                    Clause::Identity,
                    Status::Passed,
                    vec!["index 3".into()],
                    Duration::from_secs(3),
                ),
                ClauseOutcome::new(
                    Clause::Termination,
                    Status::Failed,
                    vec!["SIGTERM mid-task exited 0 <undone>\nlogs: x".into()],
                    Duration::from_secs(9),
                ),
                ClauseOutcome::new(
                    Clause::Isolation,
                    Status::Skipped,
                    vec!["declared missing".into()],
                    Duration::ZERO,
                ),
            ],
            duration: Duration::from_secs(12),
        }
    }

    #[test]
    fn human_table_lists_every_clause_with_evidence_and_a_verdict() {
        let text = human(&report(), false);
        assert!(text.contains("PASS   1. identity"), "{text}");
        assert!(text.contains("FAIL   4. termination"), "{text}");
        assert!(text.contains("SKIP   8. isolation"), "{text}");
        assert!(
            text.contains("- SIGTERM mid-task exited 0 <undone>"),
            "{text}"
        );
        assert!(
            text.contains("1 passed, 1 failed, 0 errors, 1 skipped"),
            "{text}"
        );
        assert!(text.contains("NOT CONFORMANT"), "{text}");
        assert!(!text.contains('\u{1b}'), "no colour when not asked");
    }

    #[test]
    fn junit_and_json_carry_the_statuses() {
        let xml = junit(&report());
        assert_well_formed(&xml);
        assert!(
            xml.contains("<failure message=\"SIGTERM mid-task exited 0 &lt;undone&gt;\">"),
            "{xml}"
        );
        assert!(
            xml.contains("<skipped message=\"declared missing\"/>"),
            "{xml}"
        );
        let value: serde_json::Value = serde_json::from_str(&json(&report())).unwrap();
        assert_eq!(value["clauses"][1]["status"], "failed");
        assert_eq!(value["clauses"][1]["number"], 4);
        assert_eq!(value["duration"], 12.0);
    }
}
