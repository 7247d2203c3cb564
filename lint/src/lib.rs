//! Fleet manifests: typed parsing, lint rules and the NetworkPolicy truth table.
//!
//! `agentfleet lint` and `agentfleet netpol` are thin front ends ([`cli`]) over this library:
//! [`source`] reads files, directories and stdin; [`yaml`] parses them into position-carrying
//! trees; [`model`] decodes those into typed k8s-openapi and KEDA ([`keda`]) objects, reporting
//! unknown fields and wrong types with file:line:column ([`decode`]); [`rules`] checks the
//! objects against the facts in DESIGN.md; [`netpol`] computes who can reach whom; and
//! [`report`] prints findings for people and for CI.

pub mod cli;
pub mod decode;
pub mod docs;
pub mod finding;
pub mod fleet;
pub mod keda;
pub mod model;
pub mod netpol;
pub mod quantity;
pub mod report;
pub mod rules;
pub mod selector;
pub mod source;
pub mod yaml;

pub use finding::{Finding, Location, ObjectRef, Severity};
pub use fleet::Fleet;
pub use netpol::{Cell, Endpoint, Matrix};
pub use rules::{RULES, Rule};

/// The outcome of linting a set of sources.
#[derive(Debug, Clone, Default)]
pub struct LintReport {
    /// Input problems and rule findings, sorted by file and position. Suppressed findings are
    /// included (marked) so that reports can count them.
    pub findings: Vec<Finding>,
    /// Files read.
    pub files: usize,
    /// Objects that parsed, with their file.
    pub objects: Vec<(String, ObjectRef)>,
}

impl LintReport {
    /// Whether any input error (YAML syntax, schema) was found: the run exits 2.
    pub fn has_input_errors(&self) -> bool {
        self.findings.iter().any(|f| f.is_input_error())
    }

    /// Findings that count: not suppressed, at or above `threshold`.
    pub fn failing(&self, threshold: Severity) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(move |f| !f.suppressed && f.severity() >= threshold)
    }
}

/// Parses and lints `sources`. Namespace-less objects are placed in `default_namespace`, as
/// `kubectl apply` without `-n` would.
pub fn lint(sources: &[source::Source], default_namespace: &str) -> LintReport {
    let (fleet, mut findings) = load_fleet(sources, default_namespace);
    findings.extend(rules::check(&fleet));
    finding::sort(&mut findings);
    LintReport {
        findings,
        files: sources.len(),
        objects: fleet
            .objects
            .iter()
            .map(|o| (o.file.to_string(), o.object_ref()))
            .collect(),
    }
}

/// Parses `sources` into a [`Fleet`], returning the input problems beside it.
pub fn load_fleet(sources: &[source::Source], default_namespace: &str) -> (Fleet, Vec<Finding>) {
    let parsed = model::parse_sources(sources);
    (
        Fleet::new(parsed.objects, default_namespace),
        parsed.problems,
    )
}
