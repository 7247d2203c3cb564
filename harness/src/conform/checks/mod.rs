//! One check per contract clause; each brings up its own [`crate::stack::Stack`] (broker,
//! gateway, checkpoint volume in a fresh scope), so checks run concurrently without sharing
//! queues or request logs.

pub mod durability;
pub mod identity;
pub mod isolation;
pub mod observability;
pub mod poison;
pub mod politeness;
pub mod termination;
pub mod work;

use super::check::CheckResult;
use super::clause::Clause;

/// Runs the check of `clause` against `image`.
pub async fn run(clause: Clause, image: &str) -> CheckResult {
    match clause {
        Clause::Identity => identity::check(image).await,
        Clause::Work => work::check(image).await,
        Clause::Durability => durability::check(image).await,
        Clause::Termination => termination::check(image).await,
        Clause::Politeness => politeness::check(image).await,
        Clause::PoisonWork => poison::check(image).await,
        Clause::Observability => observability::check(image).await,
        Clause::Isolation => isolation::check(image).await,
    }
}
