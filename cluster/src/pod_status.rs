//! What a scenario needs to know about one agent pod, read from the Pod object.
//!
//! OOM kills show up as `reason: OOMKilled` (exit 137) in `state.terminated` while the
//! container is down and in `lastState.terminated` once the kubelet restarted it in place
//! (`restartPolicy: OnFailure`), so both are read. Evictions carry the `DisruptionTarget`
//! condition (what `podFailurePolicy` matches); OOM does not.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::Serialize;

/// Annotation holding an Indexed Job pod's completion index.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// Label the Job controller puts on its pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// A container termination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Termination {
    pub container: String,
    pub exit_code: i32,
    pub reason: Option<String>,
}

/// One agent pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentStatus {
    pub name: String,
    pub job: Option<String>,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    pub phase: String,
    pub completion_index: Option<u32>,
    /// Sum over containers.
    pub restarts: i32,
    /// The current termination of a container that is down now.
    pub terminated: Option<Termination>,
    /// The termination before the last restart.
    pub last_terminated: Option<Termination>,
    /// Any container's current or last termination was an OOM kill.
    pub oom_killed: bool,
    /// `reason` of a `DisruptionTarget=True` condition (`EvictionByEvictionAPI`, ...).
    pub disruption_target: Option<String>,
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    pub node: Option<String>,
}

impl AgentStatus {
    /// The exit code to report: the current termination's, else the last one's.
    pub fn exit_code(&self) -> Option<i32> {
        self.terminated
            .as_ref()
            .or(self.last_terminated.as_ref())
            .map(|t| t.exit_code)
    }
}

fn termination(status: &ContainerStatus, last: bool) -> Option<Termination> {
    let state = if last {
        status.last_state.as_ref()
    } else {
        status.state.as_ref()
    };
    let terminated = state?.terminated.as_ref()?;
    Some(Termination {
        container: status.name.clone(),
        exit_code: terminated.exit_code,
        reason: terminated.reason.clone(),
    })
}

/// Reads an [`AgentStatus`] from a pod.
pub fn agent_status(pod: &Pod) -> AgentStatus {
    let metadata = &pod.metadata;
    let status = pod.status.as_ref();
    let containers: &[ContainerStatus] = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);
    let terminated = containers.iter().find_map(|c| termination(c, false));
    let last_terminated = containers.iter().find_map(|c| termination(c, true));
    let oom_killed = containers
        .iter()
        .flat_map(|c| [termination(c, false), termination(c, true)])
        .flatten()
        .any(|t| t.reason.as_deref() == Some("OOMKilled"));
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    AgentStatus {
        name: metadata.name.clone().unwrap_or_default(),
        job: metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(JOB_NAME_LABEL).or_else(|| l.get("job-name")))
            .cloned(),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into()),
        completion_index: metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(COMPLETION_INDEX_ANNOTATION))
            .and_then(|v| v.parse().ok()),
        restarts: containers.iter().map(|c| c.restart_count).sum(),
        terminated,
        last_terminated,
        oom_killed,
        disruption_target: conditions
            .iter()
            .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
            .map(|c| {
                c.reason
                    .clone()
                    .unwrap_or_else(|| "DisruptionTarget".into())
            }),
        ready: conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        terminating: metadata.deletion_timestamp.is_some(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod as the API server returns it after an OOM kill and an in-place restart.
    fn oom_restarted_pod() -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "agent-batch-2-x7k", "namespace": "agents",
                "labels": {"app": "ai-agent", "batch.kubernetes.io/job-name": "agent-batch"},
                "annotations": {"batch.kubernetes.io/job-completion-index": "2"}},
            "spec": {"nodeName": "agentfleet-worker", "containers": [{"name": "agent", "image": "agentfleet/agent:0.1.0"}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "agent", "image": "agentfleet/agent:0.1.0", "imageID": "", "ready": true, "restartCount": 1,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:10Z"}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:09Z"}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn oom_killed_is_read_from_last_state() {
        let status = agent_status(&oom_restarted_pod());
        assert!(status.oom_killed);
        assert_eq!(status.exit_code(), Some(137));
        assert_eq!(status.terminated, None);
        assert_eq!(status.restarts, 1);
        assert_eq!(status.completion_index, Some(2));
        assert_eq!(status.job.as_deref(), Some("agent-batch"));
        assert!(status.ready);
        assert_eq!(
            status.disruption_target, None,
            "OOM does not set DisruptionTarget"
        );
    }

    #[test]
    fn evicted_pod_has_disruption_target_and_its_exit_code() {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:01:00Z"},
            "status": {"phase": "Failed",
                "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}],
                "containerStatuses": [{"name": "agent", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 143, "reason": "Error"}}}]}
        }))
        .unwrap();
        let status = agent_status(&pod);
        assert_eq!(
            status.disruption_target.as_deref(),
            Some("EvictionByEvictionAPI")
        );
        assert_eq!(status.exit_code(), Some(143));
        assert!(!status.oom_killed);
        assert!(status.terminating);
        assert_eq!(status.phase, "Failed");
    }

    #[test]
    fn oom_killed_in_current_state_counts_too() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "agent", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}
        }))
        .unwrap();
        assert!(agent_status(&pod).oom_killed);
    }
}
