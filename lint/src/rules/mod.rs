//! The checks. Metadata lives in [`catalog`]; each area module checks one family of facts.

pub mod catalog;
mod disruption;
mod general;
mod jobs;
mod keda;
mod network;
mod observability;
mod references;
mod resources;
mod security;
mod storage;

pub use catalog::{RULES, Rule, find};

use std::collections::BTreeSet;

use crate::finding::{Finding, Location};
use crate::fleet::Fleet;
use crate::model::Object;
use crate::yaml::Path;

/// Annotation listing rule IDs to suppress for one object: `AF011,AF023`.
pub const IGNORE_ANNOTATION: &str = "agentfleet.dev/lint-ignore";

/// Runs every rule over the fleet. Findings come back unsorted; suppressed ones are included
/// and marked, so reports can count them.
pub fn check(fleet: &Fleet) -> Vec<Finding> {
    let mut sink = Sink::default();
    general::check(fleet, &mut sink);
    disruption::check(fleet, &mut sink);
    jobs::check(fleet, &mut sink);
    keda::check(fleet, &mut sink);
    network::check(fleet, &mut sink);
    resources::check(fleet, &mut sink);
    security::check(fleet, &mut sink);
    references::check(fleet, &mut sink);
    observability::check(fleet, &mut sink);
    storage::check(fleet, &mut sink);
    sink.findings
}

/// Collects findings, applying per-object suppressions and dropping exact duplicates (a
/// cross-object rule may reach the same conclusion from two directions).
#[derive(Debug, Default)]
pub(crate) struct Sink {
    findings: Vec<Finding>,
    seen: BTreeSet<(&'static str, Location, String)>,
}

impl Sink {
    pub(crate) fn report(
        &mut self,
        rule: &'static Rule,
        object: &Object,
        path: &Path,
        message: impl Into<String>,
    ) {
        let message = message.into();
        let location = object.location(path);
        if !self
            .seen
            .insert((rule.id, location.clone(), message.clone()))
        {
            return;
        }
        self.findings.push(Finding {
            rule,
            message,
            location,
            object: Some(object.object_ref()),
            suppressed: suppressed_ids(object).any(|id| id.eq_ignore_ascii_case(rule.id)),
        });
    }
}

/// The rule IDs an object's lint-ignore annotation lists.
pub(crate) fn suppressed_ids(object: &Object) -> impl Iterator<Item = &str> {
    object
        .annotations
        .get(IGNORE_ANNOTATION)
        .into_iter()
        .flat_map(|list| list.split([',', ' ']))
        .map(str::trim)
        .filter(|id| !id.is_empty())
}
