//! The agent contract's clauses as data: number, name, the check that verifies each, and
//! whether an image may declare it missing. `docs/agent-contract.md` documents the same table;
//! the numbers are stable because images reference them in their label.

use std::fmt;

/// One numbered clause of the agent contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Clause {
    Identity,
    Work,
    Durability,
    Termination,
    Politeness,
    PoisonWork,
    Observability,
    Isolation,
}

impl Clause {
    /// Every clause, in contract order.
    pub const ALL: [Clause; 8] = [
        Clause::Identity,
        Clause::Work,
        Clause::Durability,
        Clause::Termination,
        Clause::Politeness,
        Clause::PoisonWork,
        Clause::Observability,
        Clause::Isolation,
    ];

    /// The clause's number in `docs/agent-contract.md` (1-based).
    pub fn number(self) -> u8 {
        Clause::ALL
            .iter()
            .position(|c| *c == self)
            .map_or(0, |i| i as u8 + 1)
    }

    pub fn from_number(number: u8) -> Option<Clause> {
        Clause::ALL
            .get(usize::from(number).checked_sub(1)?)
            .copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            Clause::Identity => "identity",
            Clause::Work => "work",
            Clause::Durability => "durability",
            Clause::Termination => "termination",
            Clause::Politeness => "politeness",
            Clause::PoisonWork => "poison-work",
            Clause::Observability => "observability",
            Clause::Isolation => "isolation",
        }
    }

    /// What the clause demands, in one line (the verdict table's description).
    pub fn summary(self) -> &'static str {
        match self {
            Clause::Identity => "index from AGENT_INDEX, else JOB_COMPLETION_INDEX",
            Clause::Work => {
                "manual ack, prefetch 1, result confirmed before ack, task id in result"
            }
            Clause::Durability => {
                "checkpoint per step, resume on redelivery, corrupt checkpoint survived"
            }
            Clause::Termination => {
                "SIGTERM: non-zero exit with work undone, 0 when idle, within grace"
            }
            Clause::Politeness => "backoff and breaker under an outage, Retry-After honoured",
            Clause::PoisonWork => "malformed and failing tasks dead-lettered, agent keeps serving",
            Clause::Observability => {
                "/metrics families, /healthz, JSON logs with task id and index"
            }
            Clause::Isolation => "works with egress only to the queue and the gateway",
        }
    }

    /// The check that verifies the clause (its name in reports and JUnit).
    pub fn check_name(self) -> &'static str {
        match self {
            Clause::Identity => "identity-index-from-env",
            Clause::Work => "work-ack-prefetch-redelivery",
            Clause::Durability => "durability-sigkill-resume-and-corrupt-checkpoint",
            Clause::Termination => "termination-sigterm-exit-codes",
            Clause::Politeness => "politeness-gateway-request-log",
            Clause::PoisonWork => "poison-dead-letter-keeps-serving",
            Clause::Observability => "observability-metrics-healthz-logs",
            Clause::Isolation => "isolation-internal-network",
        }
    }

    /// Optional clauses may be declared missing by the image and are then skipped; the others
    /// are what makes an agent safe to run in a fleet at all.
    pub fn is_optional(self) -> bool {
        matches!(self, Clause::Observability | Clause::Isolation)
    }
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}. {}", self.number(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_one_based() {
        for clause in Clause::ALL {
            assert_eq!(Clause::from_number(clause.number()), Some(clause));
        }
        assert_eq!(Clause::Identity.number(), 1);
        assert_eq!(Clause::Isolation.number(), 8);
        assert_eq!(Clause::from_number(0), None);
        assert_eq!(Clause::from_number(9), None);
    }

    #[test]
    fn only_observability_and_isolation_are_optional() {
        let optional: Vec<u8> = Clause::ALL
            .iter()
            .filter(|c| c.is_optional())
            .map(|c| c.number())
            .collect();
        assert_eq!(optional, vec![7, 8]);
    }
}
