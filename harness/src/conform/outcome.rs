//! The result of a conformance run, clause by clause, as plain serializable data.

use std::time::Duration;

use serde::Serialize;

use super::clause::Clause;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    /// The image broke the clause.
    Failed,
    /// Declared missing (optional clause) or not selected with `--clause`.
    Skipped,
    /// The check could not run (Docker, broker, gateway); nothing is known about the image.
    Error,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Passed => "PASS",
            Status::Failed => "FAIL",
            Status::Skipped => "SKIP",
            Status::Error => "ERROR",
        }
    }
}

/// One clause's verdict with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClauseOutcome {
    pub number: u8,
    pub clause: &'static str,
    pub summary: &'static str,
    pub check: &'static str,
    pub optional: bool,
    pub status: Status,
    /// What the check observed: on a pass, the measurements; on a failure, the violation; on a
    /// skip, why.
    pub evidence: Vec<String>,
    #[serde(with = "secs")]
    pub duration: Duration,
}

impl ClauseOutcome {
    pub fn new(clause: Clause, status: Status, evidence: Vec<String>, duration: Duration) -> Self {
        ClauseOutcome {
            number: clause.number(),
            clause: clause.name(),
            summary: clause.summary(),
            check: clause.check_name(),
            optional: clause.is_optional(),
            status,
            evidence,
            duration,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConformReport {
    pub image: String,
    /// Optional clauses the image declared missing (its label), by number.
    pub declared_missing: Vec<u8>,
    pub clauses: Vec<ClauseOutcome>,
    #[serde(with = "secs")]
    pub duration: Duration,
}

impl ConformReport {
    /// Conformant: nothing failed and nothing errored.
    pub fn is_conformant(&self) -> bool {
        self.clauses
            .iter()
            .all(|c| matches!(c.status, Status::Passed | Status::Skipped))
    }

    pub fn count(&self, status: Status) -> usize {
        self.clauses.iter().filter(|c| c.status == status).count()
    }
}

/// Durations as fractional seconds in JSON.
mod secs {
    use std::time::Duration;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}
