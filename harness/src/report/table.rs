//! The verdict table printed at the end of `agentfleet e2e`: one row per scenario with its
//! result, duration and key figures, and the reasons under a failed or skipped row.

use std::fmt::Write as _;

use crate::scenario::{Figure, ScenarioOutcome, Verdict};

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
        let figures: Vec<String> = o.figures.iter().take(KEY_FIGURES).map(figure).collect();
        let _ = writeln!(
            out,
            "{:<name_w$}  {result}  {:>7.1}s  {}",
            o.scenario.as_str(),
            o.duration.as_secs_f64(),
            figures.join("; ")
        );
        let indent = " ".repeat(name_w + 2);
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
        for warning in &o.warnings {
            let _ = writeln!(out, "{indent}! {warning}");
        }
        if let Some(dir) = &o.artifacts {
            let _ = writeln!(out, "{indent}artifacts: {}", dir.display());
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
        assert!(text.contains("1 passed, 1 failed, 1 skipped"), "{text}");
        assert!(!text.contains('\u{1b}'));
        assert!(render(&outcomes(), true).contains("\u{1b}[31;1mFAIL   \u{1b}[0m"));
    }
}
