//! What a check reports: a rule, a message, a place in a file and the object it is about.

use std::fmt;

use serde::Serialize;

use crate::rules::Rule;
use crate::yaml::Pos;

/// How bad a finding is. Ordered so that `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing breaks.
    Info,
    /// Probably wrong, or wrong under conditions that are common in production.
    Warning,
    /// Breaks the fleet (or is rejected by the API server) as written.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Kubernetes object by kind, namespace and name, as findings and reports name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A file and a position in it. `file` is the name the user gave (a path, or `-` for stdin).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Location {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

impl Location {
    pub fn new(file: &str, pos: Pos) -> Location {
        Location {
            file: file.to_owned(),
            line: pos.line,
            column: pos.column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One reported problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static Rule,
    pub message: String,
    pub location: Location,
    /// The object the finding is about; `None` for problems that precede objects (YAML syntax).
    pub object: Option<ObjectRef>,
    /// Set when the object's `agentfleet.dev/lint-ignore` annotation names this rule.
    pub suppressed: bool,
}

impl Finding {
    pub fn severity(&self) -> Severity {
        self.rule.severity
    }

    /// Input problems (syntax, schema) make the run exit 2 whatever `--fail-on` says.
    pub fn is_input_error(&self) -> bool {
        self.rule.input_error
    }
}

/// Sorts findings by file, position, then rule, so that output is stable across runs.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (&a.location, a.rule.id, &a.message).cmp(&(&b.location, b.rule.id, &b.message))
    });
}
