//! Checks only a cluster can answer. Each is a pure function over recorded observations (so it
//! is tested with recorded timelines that pass and ones that must fail) next to the code that
//! records those observations on a live cluster.

pub mod disruption;
pub mod keda_formula;
pub mod netpol;
pub mod rollout;

use serde::Serialize;

/// The result of a check. `Skipped` is never a pass: it carries the reason the check could not
/// be decided on this cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Passed { summary: String },
    Failed { reasons: Vec<String> },
    Skipped { reason: String },
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Passed { .. })
    }

    /// `Passed` with `summary` when `reasons` is empty, else `Failed`.
    pub fn from_reasons(reasons: Vec<String>, summary: impl Into<String>) -> Verdict {
        if reasons.is_empty() {
            Verdict::Passed {
                summary: summary.into(),
            }
        } else {
            Verdict::Failed { reasons }
        }
    }
}
