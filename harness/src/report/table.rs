//! The verdict table printed at the end of `agentfleet e2e`: one row per scenario with its
//! result, duration and key figures, and the reasons under a failed or skipped row.

use std::fmt::Write as _;

use agentfleet_cluster::checks::Verdict as CheckVerdict;

use crate::scenario::{CheckOutcome, Figure, ScenarioOutcome, Verdict};

use super::style::{Tone, paint};

/// Figures shown per row; the rest are in report.json.
const KEY_FIGURES: usize = 3;

pub fn render(outcomes: &[ScenarioOutcome], colour: bool) -> String {
    let name_w = outcomes
        .iter()
        .map(|o| o.scenario.as_str().len())
        .chain(["scenario".len()])
        .max()
        .unwrap_or(8);
    let common = common_warnings(outcomes);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<name_w$}  {:<7}  {:>8}  key figures",
        "scenario", "result", "duration"
    );
    for o in outcomes {
        let (word, tone) = match &o.verdict {
            Verdict::Passed => ("PASS", Tone::Good),
            Verdict::Failed { .. } => ("FAIL", Tone::Bad),
            Verdict::Skipped { .. } => ("SKIP", Tone::Muted),
        };
        // Pad before painting: escape codes have no width.
        let result = paint(&format!("{word:<7}"), tone, colour);
        // Checked figures first: they are what the verdict rests on.
        let figures: Vec<String> = o
            .figures
            .iter()
            .filter(|f| f.bound.is_some())
            .chain(o.figures.iter().filter(|f| f.bound.is_none()))
            .take(KEY_FIGURES)
            .map(figure)
            .collect();
        let _ = writeln!(
            out,
            "{:<name_w$}  {result}  {:>7.1}s  {}",
            o.scenario.as_str(),
            o.duration.as_secs_f64(),
            figures.join("; ")
        );
        let indent = " ".repeat(name_w + 2);
        for check in &o.checks {
            let _ = writeln!(out, "{indent}{}", check_line(check));
        }
        match &o.verdict {
            Verdict::Failed { reasons } => {
                for reason in reasons {
                    let _ = writeln!(out, "{indent}- {reason}");
                }
            }
            Verdict::Skipped { reason } => {
                let _ = writeln!(out, "{indent}- skipped: {reason}");
            }
            Verdict::Passed => {}
        }
        for warning in o.warnings.iter().filter(|w| !common.contains(w)) {
            let _ = writeln!(out, "{indent}! {warning}");
        }
        if let Some(dir) = &o.artifacts {
            let _ = writeln!(out, "{indent}artifacts: {}", dir.display());
        }
    }
    if !common.is_empty() {
        let _ = writeln!(out, "\ncaveats of the runtime (every scenario):");
        for warning in &common {
            let _ = writeln!(out, "  ! {warning}");
        }
    }
    let count = |f: fn(&Verdict) -> bool| outcomes.iter().filter(|o| f(&o.verdict)).count();
    let _ = writeln!(
        out,
        "\n{} passed, {} failed, {} skipped",
        count(|v| matches!(v, Verdict::Passed)),
        count(|v| matches!(v, Verdict::Failed { .. })),
        count(|v| matches!(v, Verdict::Skipped { .. })),
    );
    out
}

/// Warnings every scenario carries (the runtime's caveats), printed once instead of per row.
/// With a single scenario nothing is "common": its warnings stay on its row.
fn common_warnings(outcomes: &[ScenarioOutcome]) -> Vec<&String> {
    match outcomes {
        [first, _, ..] => first
            .warnings
            .iter()
            .filter(|w| outcomes.iter().all(|o| o.warnings.contains(w)))
            .collect(),
        _ => Vec::new(),
    }
}

/// `check passed: name (summary)`; a failed check's reasons are among the verdict's.
pub fn check_line(check: &CheckOutcome) -> String {
    match &check.verdict {
        CheckVerdict::Passed { summary } => format!("check passed: {} ({summary})", check.name),
        CheckVerdict::Failed { reasons } => {
            format!(
                "check FAILED: {} ({} reason(s) below)",
                check.name,
                reasons.len()
            )
        }
        CheckVerdict::Skipped { reason } => {
            format!("check skipped: {} ({reason})", check.name)
        }
    }
}

/// `name = value unit (bound)`.
pub fn figure(f: &Figure) -> String {
    let value = if f.value.fract() == 0.0 && f.value.abs() < 1e15 {
        format!("{:.0}", f.value)
    } else {
        format!("{:.2}", f.value)
    };
    let unit = if f.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", f.unit)
    };
    match &f.bound {
        Some(bound) => format!("{} = {value}{unit} ({bound})", f.name),
        None => format!("{} = {value}{unit}", f.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::outcomes;

    #[test]
    fn one_row_per_scenario_with_reasons_and_counts() {
        let text = render(&outcomes(), false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("scenario"), "{text}");
        assert!(
            text.contains("scaling            PASS        42.0s  throughput ratio = 3.10 x (>= 2.5 x); lost = 0"),
            "{text}"
        );
        assert!(text.contains("retry-storm        FAIL"), "{text}");
        assert!(
            text.contains("- aggregate retry rate 40 req/s above the bound 12.5 req/s"),
            "{text}"
        );
        assert!(
            text.contains("- skipped: needs kind or a cluster"),
            "{text}"
        );
        assert!(
            text.contains(
                "check skipped: KEDA ScaledJob follows its scaling formula (no KEDA on docker)"
            ),
            "{text}"
        );
        assert!(text.contains("2 passed, 1 failed, 1 skipped"), "{text}");
        assert!(!text.contains('\u{1b}'));
        assert!(render(&outcomes(), true).contains("\u{1b}[31;1mFAIL   \u{1b}[0m"));
    }

    #[test]
    fn runtime_caveats_shared_by_every_scenario_are_printed_once() {
        let mut all = outcomes();
        for o in &mut all {
            o.warnings.push("livenessProbe not honoured".into());
        }
        all[1].warnings.push("request log dropped 3 records".into());
        let text = render(&all, false);
        assert_eq!(
            text.matches("livenessProbe not honoured").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("caveats of the runtime (every scenario):\n  ! livenessProbe"),
            "{text}"
        );
        assert!(text.contains("  ! request log dropped 3 records"), "{text}");
    }
}
