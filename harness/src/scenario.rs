//! The outcome of one scenario run: the type the scenarios produce and the report writer reads.
//!
//! Everything here is plain, serializable data so that a report (table, JUnit, JSON, SVG) can be
//! written from it without access to the runtime that produced it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::timeline::Timeline;

/// The five scenarios of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioId {
    Scaling,
    Oom,
    EvictionResume,
    RetryStorm,
    NetworkIsolation,
}

impl ScenarioId {
    /// Every scenario, in the order the suite runs and reports them.
    pub const ALL: [ScenarioId; 5] = [
        ScenarioId::Scaling,
        ScenarioId::Oom,
        ScenarioId::EvictionResume,
        ScenarioId::RetryStorm,
        ScenarioId::NetworkIsolation,
    ];

    /// The scenario's name as used on the command line, in reports and in resource names.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioId::Scaling => "scaling",
            ScenarioId::Oom => "oom",
            ScenarioId::EvictionResume => "eviction-resume",
            ScenarioId::RetryStorm => "retry-storm",
            ScenarioId::NetworkIsolation => "network-isolation",
        }
    }
}

impl fmt::Display for ScenarioId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown scenario name; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scenario `{given}`; expected one of: scaling, oom, eviction-resume, retry-storm, network-isolation"
)]
pub struct UnknownScenario {
    pub given: String,
}

impl FromStr for ScenarioId {
    type Err = UnknownScenario;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScenarioId::ALL
            .into_iter()
            .find(|id| id.as_str() == s)
            .ok_or_else(|| UnknownScenario {
                given: s.to_owned(),
            })
    }
}

/// How a scenario ended. `Skipped` is never a pass: it says which capability was missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed { reasons: Vec<String> },
    Skipped { reason: String },
}

impl Verdict {
    pub fn is_passed(&self) -> bool {
        matches!(self, Verdict::Passed)
    }
}

/// One measured value, with the bound it was checked against (as text: `<= 12.5 req/s`,
/// `>= 3x`), so a report can show what was observed next to what was required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub bound: Option<String>,
}

impl Figure {
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit: unit.into(),
            bound: None,
        }
    }

    pub fn bounded(mut self, bound: impl Into<String>) -> Figure {
        self.bound = Some(bound.into());
        self
    }
}

/// The ledger's verdict reduced to counts and ids, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerSummary {
    pub published: usize,
    pub completed: usize,
    pub dead_lettered: usize,
    pub lost: Vec<String>,
    /// Task ids with more than one result, and how many results each had.
    pub duplicates: Vec<(String, usize)>,
    /// Messages left on the task queue when the scenario ended (0 = drained).
    pub queue_left: u32,
}

impl LedgerSummary {
    pub fn from_verdict(verdict: &crate::ledger::Verdict, queue_left: u32) -> LedgerSummary {
        LedgerSummary {
            published: verdict.published,
            completed: verdict.completed,
            dead_lettered: verdict.dead_lettered,
            lost: verdict.lost.clone(),
            duplicates: verdict.duplicates.clone(),
            queue_left,
        }
    }
}

/// The result of one cluster-only check (KEDA formula, disruption budget, rollout,
/// NetworkPolicy matrix). A runtime without a cluster records it as skipped, with the reason.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    pub name: String,
    #[serde(flatten)]
    pub verdict: agentfleet_cluster::checks::Verdict,
}

/// Everything one scenario run produced.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioOutcome {
    pub scenario: ScenarioId,
    /// Name of the runtime it ran on (`docker`, `kind`, `cluster`).
    pub runtime: String,
    pub verdict: Verdict,
    pub duration: Duration,
    /// Part of `duration` spent waiting on purpose (grace periods, outage windows), so a report
    /// can tell a slow harness from a scenario that is slow by design.
    pub waiting_by_design: Duration,
    pub figures: Vec<Figure>,
    /// Cluster-only checks, passed, failed or skipped.
    pub checks: Vec<CheckOutcome>,
    /// Pod-spec fields the runtime could not honour, and other caveats; never silently dropped.
    pub warnings: Vec<String>,
    pub ledger: Option<LedgerSummary>,
    pub timeline: Timeline,
    /// Directory with logs, inspect output and the ledger, written when the scenario failed.
    pub artifacts: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_ids_round_trip_through_their_names() {
        for id in ScenarioId::ALL {
            assert_eq!(id.to_string().parse::<ScenarioId>(), Ok(id));
        }
        let err = "scale".parse::<ScenarioId>().unwrap_err();
        assert!(err.to_string().contains("eviction-resume"), "{err}");
    }

    #[test]
    fn verdict_serializes_with_a_tag() {
        let json = serde_json::to_value(Verdict::Skipped {
            reason: "no oom".into(),
        })
        .unwrap();
        assert_eq!(json["verdict"], "skipped");
        assert_eq!(json["reason"], "no oom");
    }
}
