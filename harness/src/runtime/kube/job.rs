//! The Indexed Jobs that start an [`AgentSet`]: the reference Job of the manifests with the
//! set's size, labels and environment overrides, everything else (podFailurePolicy,
//! backoffLimitPerIndex, restartPolicy, limits, grace period) kept as the manifests declare it.
//!
//! Kubernetes numbers an Indexed Job's pods `0..completions`, and the agent reads its index from
//! the completion-index annotation. A set `0..n` is therefore one Job; any other set (the
//! eviction scenario starts index 1 alone) becomes one single-completion Job per index with
//! `AGENT_INDEX` set literally, so every agent still sees the index the scenario asked for.
//! [`JobTable`] remembers which agent index each (Job, completion index) pair stands for.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use agentfleet_protocol::env;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::runtime::{AgentSet, RuntimeError};

/// Pod label naming the [`AgentSet::fleet`] a pod belongs to.
pub const FLEET_LABEL: &str = "agentfleet.dev/fleet";

/// Longest fleet name kept in a Job name: Job names end up in pod names and labels (63 chars).
const MAX_FLEET_IN_NAME: usize = 30;

/// One Job to apply and the agent index of each of its completion indexes.
#[derive(Debug, Clone)]
pub struct PlannedJob {
    pub job: Job,
    pub indexes: Vec<u32>,
}

/// What the session knows about a Job it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Agent index per completion index.
    pub indexes: Vec<u32>,
    /// `spec.backoffLimitPerIndex`: failures an index may have before it is given up.
    pub backoff_limit_per_index: Option<i32>,
}

/// Jobs started by one session, shared with the event mapper.
#[derive(Debug, Clone, Default)]
pub struct JobTable(Arc<Mutex<HashMap<String, JobRecord>>>);

impl JobTable {
    pub fn insert(&self, planned: &PlannedJob) {
        let name = planned.job.metadata.name.clone().unwrap_or_default();
        let record = JobRecord {
            indexes: planned.indexes.clone(),
            backoff_limit_per_index: planned
                .job
                .spec
                .as_ref()
                .and_then(|s| s.backoff_limit_per_index),
        };
        self.record(name, record);
    }

    /// Records `job` under `name` (for Jobs planned elsewhere, and tests).
    pub fn record(&self, name: impl Into<String>, record: JobRecord) {
        self.lock().insert(name.into(), record);
    }

    /// The agent index of a pod of `job` with `completion_index`. Pods of Jobs this session did
    /// not start keep their completion index.
    pub fn agent_index(&self, job: Option<&str>, completion_index: Option<u32>) -> Option<u32> {
        let completion_index = completion_index?;
        match job.and_then(|j| self.lock().get(j).cloned()) {
            Some(record) => record.indexes.get(completion_index as usize).copied(),
            None => Some(completion_index),
        }
    }

    pub fn get(&self, job: &str) -> Option<JobRecord> {
        self.lock().get(job).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().keys().cloned().collect();
        names.sort();
        names
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, JobRecord>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `a-z0-9-` only, trimmed, at most [`MAX_FLEET_IN_NAME`] characters.
pub(crate) fn name_part(fleet: &str) -> String {
    let cleaned: String = fleet
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(MAX_FLEET_IN_NAME)
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "fleet".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Sets `name` to `value` in `env`, replacing a `valueFrom` of the same name.
fn set_env(env: &mut Vec<EnvVar>, name: &str, value: &str) {
    let var = EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    };
    match env.iter_mut().find(|v| v.name == name) {
        Some(existing) => *existing = var,
        None => env.push(var),
    }
}

fn is_zero_based_run(indexes: &[u32]) -> bool {
    indexes.iter().copied().eq(0..indexes.len() as u32)
}

/// The Jobs that start `set`, named `agent-<fleet>-<sequence>` (`-<index>` appended for
/// per-index Jobs). `sequence` keeps repeated starts of one fleet apart.
pub fn plan_jobs(
    reference: &Job,
    set: &AgentSet,
    sequence: u32,
) -> Result<Vec<PlannedJob>, RuntimeError> {
    if set.indexes.is_empty() {
        return Err(RuntimeError::Other(format!(
            "agent set `{}` has no indexes; give it at least one",
            set.fleet
        )));
    }
    let mut unique = set.indexes.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != set.indexes.len() {
        return Err(RuntimeError::Other(format!(
            "agent set `{}` repeats an index ({:?}); each index runs once",
            set.fleet, set.indexes
        )));
    }
    let base = format!("agent-{}-{sequence}", name_part(&set.fleet));
    if is_zero_based_run(&set.indexes) {
        let job = derive(reference, &base, set, set.indexes.len() as i32, None)?;
        return Ok(vec![PlannedJob {
            job,
            indexes: set.indexes.clone(),
        }]);
    }
    set.indexes
        .iter()
        .map(|&index| {
            let job = derive(reference, &format!("{base}-{index}"), set, 1, Some(index))?;
            Ok(PlannedJob {
                job,
                indexes: vec![index],
            })
        })
        .collect()
}

fn derive(
    reference: &Job,
    name: &str,
    set: &AgentSet,
    count: i32,
    literal_index: Option<u32>,
) -> Result<Job, RuntimeError> {
    let invalid = |field: &str| {
        RuntimeError::Template(crate::runtime::TemplateError::Field {
            job: reference.metadata.name.clone().unwrap_or_default(),
            field: field.to_owned(),
            problem: "missing (see manifests/base/job.yaml)".to_owned(),
        })
    };
    let mut labels: BTreeMap<String, String> =
        reference.metadata.labels.clone().unwrap_or_default();
    labels.insert(FLEET_LABEL.to_owned(), name_part(&set.fleet));
    let mut job = Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            annotations: reference.metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec: reference.spec.clone(),
        status: None,
    };
    let spec = job.spec.as_mut().ok_or_else(|| invalid("spec"))?;
    spec.completion_mode = Some("Indexed".into());
    spec.completions = Some(count);
    spec.parallelism = Some(count);
    // The API server generates the selector from the Job's uid.
    spec.selector = None;
    spec.manual_selector = None;
    let template_labels = spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default);
    template_labels
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(FLEET_LABEL.to_owned(), name_part(&set.fleet));
    let pod = spec
        .template
        .spec
        .as_mut()
        .ok_or_else(|| invalid("spec.template.spec"))?;
    let container = pod
        .containers
        .first_mut()
        .ok_or_else(|| invalid("spec.template.spec.containers[0]"))?;
    let env_vars = container.env.get_or_insert_with(Vec::new);
    if let Some(index) = literal_index {
        set_env(env_vars, env::AGENT_INDEX, &index.to_string());
    }
    for (name, value) in &set.env {
        set_env(env_vars, name, value);
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Job {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "agent-batch", "namespace": "agents", "labels": {"app": "ai-agent"}},
            "spec": {"completionMode": "Indexed", "completions": 4, "parallelism": 4, "backoffLimitPerIndex": 2,
                "template": {"metadata": {"labels": {"app": "ai-agent"}}, "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "agent", "image": "agentfleet/agent:0.1.0", "env": [
                        {"name": "AGENT_INDEX", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
                        {"name": "AGENT_LOG", "value": "info"}]}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn a_zero_based_run_is_one_job_with_the_index_from_the_annotation() {
        let set = AgentSet::new("Storm Fleet", 0..3).env("AGENT_LOG", "debug");
        let jobs = plan_jobs(&reference(), &set, 7).unwrap();
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0].job;
        assert_eq!(job.metadata.name.as_deref(), Some("agent-storm-fleet-7"));
        assert_eq!(job.metadata.namespace, None, "the fleet sets the namespace");
        let spec = job.spec.as_ref().unwrap();
        assert_eq!((spec.completions, spec.parallelism), (Some(3), Some(3)));
        let env = spec.template.spec.as_ref().unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        assert!(
            env[0].value_from.is_some(),
            "AGENT_INDEX stays the fieldRef"
        );
        assert_eq!(env[1].value.as_deref(), Some("debug"));
        assert_eq!(jobs[0].indexes, [0, 1, 2]);
    }

    #[test]
    fn other_sets_get_one_job_per_index_with_a_literal_agent_index() {
        let jobs = plan_jobs(&reference(), &AgentSet::new("stubborn", [1, 3]), 0).unwrap();
        let names: Vec<_> = jobs
            .iter()
            .map(|j| j.job.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["agent-stubborn-0-1", "agent-stubborn-0-3"]);
        let env = jobs[1]
            .job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .env
            .clone()
            .unwrap();
        assert_eq!(env[0].name, "AGENT_INDEX");
        assert_eq!(
            (env[0].value.as_deref(), env[0].value_from.is_none()),
            (Some("3"), true)
        );
        let table = JobTable::default();
        jobs.iter().for_each(|j| table.insert(j));
        assert_eq!(
            table.agent_index(Some("agent-stubborn-0-3"), Some(0)),
            Some(3)
        );
        assert_eq!(table.agent_index(Some("unknown"), Some(2)), Some(2));
        assert_eq!(table.agent_index(Some("agent-stubborn-0-3"), Some(1)), None);
    }

    #[test]
    fn empty_and_repeated_sets_are_refused_with_the_fleet_named() {
        let error = plan_jobs(&reference(), &AgentSet::new("x", []), 0)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`x` has no indexes"), "{error}");
        let error = plan_jobs(&reference(), &AgentSet::new("y", [2, 2]), 0)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`y` repeats an index"), "{error}");
    }
}
