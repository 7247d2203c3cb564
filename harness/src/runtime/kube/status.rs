//! Agent pods as runtime-neutral [`AgentStatus`]es.
//!
//! The pod fields themselves are read by `agentfleet_cluster::pod_status`; this module only adds
//! what the runtime trait needs on top: the scenario's agent index (through the [`JobTable`]),
//! the phase as an enum, and the generation, which Kubernetes does not record: with
//! `restartPolicy: Never` the Job controller replaces a failed pod by a new pod for the same
//! index, so the n-th pod created for an index is its generation n.

use std::collections::HashMap;

use agentfleet_cluster::pod_status::{self, agent_status};
use k8s_openapi::api::core::v1::Pod;

use super::job::JobTable;
use crate::runtime::{AgentPhase, AgentRef, AgentStatus};

/// Label selector of the session's agent pods: agent-labelled, probe pods excluded.
pub fn agent_pod_selector() -> String {
    format!(
        "{},!{}",
        agentfleet_cluster::fleet::AGENT_SELECTOR,
        agentfleet_cluster::probe::PROBE_LABEL
    )
}

pub fn phase(phase: &str) -> AgentPhase {
    match phase {
        "Running" => AgentPhase::Running,
        "Succeeded" => AgentPhase::Succeeded,
        "Failed" => AgentPhase::Failed,
        // `Pending`, and `Unknown` (node unreachable): not known to run.
        _ => AgentPhase::Pending,
    }
}

/// The agent a cluster pod status stands for, if it belongs to an index.
pub fn agent_ref(jobs: &JobTable, status: &pod_status::AgentStatus) -> Option<AgentRef> {
    let index = jobs.agent_index(status.job.as_deref(), status.completion_index)?;
    Some(AgentRef {
        index,
        name: status.name.clone(),
    })
}

/// Maps one pod with its generation.
pub fn from_cluster(
    agent: AgentRef,
    status: &pod_status::AgentStatus,
    generation: u32,
) -> AgentStatus {
    AgentStatus {
        agent,
        phase: phase(&status.phase),
        exit_code: status.exit_code().map(i64::from),
        oom_killed: status.oom_killed,
        restarts: u32::try_from(status.restarts).unwrap_or(0),
        generation,
    }
}

/// Every agent pod, oldest first, with generations counted per index in creation order.
/// Pods that belong to no index (not created by a Job) are left out.
pub fn statuses(jobs: &JobTable, pods: &[Pod]) -> Vec<AgentStatus> {
    let mut pods: Vec<&Pod> = pods.iter().collect();
    pods.sort_by(|a, b| {
        let key = |p: &Pod| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut generations: HashMap<u32, u32> = HashMap::new();
    pods.into_iter()
        .filter_map(|pod| {
            let status = agent_status(pod);
            let agent = agent_ref(jobs, &status)?;
            let generation = generations.entry(agent.index).or_insert(0);
            let mapped = from_cluster(agent, &status, *generation);
            *generation += 1;
            Some(mapped)
        })
        .collect()
}
