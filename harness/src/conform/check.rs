//! What a clause check returns, and the small helpers every check shares.
//!
//! A check either passes with evidence (what it observed, for the report), finds a
//! [`CheckError::Violation`] (the image broke the clause; the message is the evidence), or
//! cannot run ([`CheckError::Harness`]: Docker, the broker or the gateway failed, which says
//! nothing about the image). Harness failures are reported as errors, never as passes.

use std::time::Duration;

use agentfleet_protocol::{Task, TaskFaults, TaskResult};

use crate::agents::AgentError;
use crate::docker::DockerError;
use crate::ledger::LedgerError;
use crate::metrics::MetricsError;
use crate::queue::QueueError;
use crate::services::ServiceError;
use crate::stack::{Stack, StackError};
use crate::wait::{Probe, WaitTimeout, until};

/// Evidence lines of a passed check.
pub type Evidence = Vec<String>;

pub type CheckResult = Result<Evidence, CheckError>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The image broke the clause; the text is the evidence.
    #[error("{0}")]
    Violation(String),
    /// The check could not run; nothing is known about the image.
    #[error("the check could not run: {0}")]
    Harness(String),
}

pub fn violation(text: impl Into<String>) -> CheckError {
    CheckError::Violation(text.into())
}

/// `Err(Violation(text))` unless `holds`.
pub fn require(holds: bool, text: impl FnOnce() -> String) -> Result<(), CheckError> {
    if holds {
        Ok(())
    } else {
        Err(violation(text()))
    }
}

macro_rules! harness_error {
    ($($error:ty),*) => {$(
        impl From<$error> for CheckError {
            fn from(e: $error) -> CheckError {
                CheckError::Harness(e.to_string())
            }
        }
    )*};
}
harness_error!(
    StackError,
    DockerError,
    QueueError,
    ServiceError,
    WaitTimeout,
    MetricsError
);

/// An agent error is the image's fault when the agent exited or never answered, the harness's
/// when Docker itself failed.
impl From<AgentError> for CheckError {
    fn from(e: AgentError) -> CheckError {
        match e {
            AgentError::Docker(e) => CheckError::Harness(e.to_string()),
            other => CheckError::Violation(other.to_string()),
        }
    }
}

/// How long a check waits for tasks to be accounted for before it calls the work undone.
pub const ACCOUNTED: Duration = Duration::from_secs(45);
/// After the last outcome, how long without a new one before duplicates are judged.
pub const QUIET: Duration = Duration::from_millis(750);

/// A task for conformance checks, with a recognisable id.
pub fn task(id: &str, steps: u32, faults: TaskFaults) -> Task {
    Task {
        id: id.to_owned(),
        model: "model-a".to_owned(),
        prompt: format!("Conformance task {id}: summarise the incident report."),
        steps,
        faults,
    }
}

pub fn delayed(step_delay_ms: u64) -> TaskFaults {
    TaskFaults {
        step_delay_ms: Some(step_delay_ms),
        ..TaskFaults::default()
    }
}

/// Waits until every published task is accounted for. A timeout means the image did not do
/// the work: a violation of `clause_context`, with the ledger's account as evidence.
pub async fn wait_done(stack: &mut Stack, what: &str) -> Result<(), CheckError> {
    match stack.wait_accounted(ACCOUNTED).await {
        Ok(_) => Ok(()),
        Err(e @ LedgerError::Timeout { .. }) => Err(violation(format!("{what}: {e}"))),
        Err(e) => Err(CheckError::Harness(e.to_string())),
    }
}

/// The single result of `task_id`, or a violation saying what came back instead.
pub fn the_result(stack: &Stack, task_id: &str) -> Result<TaskResult, CheckError> {
    stack
        .ledger
        .single_result(task_id)
        .map(|r| r.result.clone())
        .map_err(|e| violation(format!("result of {task_id}: {e}")))
}

/// Waits until the agent consumes the task queue (it is connected and ready for work). Uses
/// the broker's consumer count, so it needs nothing from the image beyond the contract.
pub async fn wait_consuming(stack: &Stack, consumers: u32) -> Result<(), CheckError> {
    let queue = stack.topology.task_queue.clone();
    until(
        format!("{consumers} consumer(s) on {queue}"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            match stack.queue.depth(&queue).await {
                Ok(d) if d.consumers >= consumers => Probe::Ready(()),
                Ok(d) => Probe::NotYet(format!("{} consumer(s)", d.consumers)),
                Err(e) => Probe::NotYet(e.to_string()),
            }
        },
    )
    .await
    .map_err(|e| violation(format!("the agent never consumed the task queue: {e}")))
}

/// How long an agent may take to reach the LLM call a hang holds.
const REACH_HELD_CALL: Duration = Duration::from_secs(30);

/// Waits until the gateway holds an LLM call of one of `task_ids` (profile
/// [`FaultProfile::hanging`] set before the tasks were published): the agent is then frozen
/// inside that task, after `answers` answered steps. Returns the task's id. A timeout is the
/// image's violation: it never made that call, or made it without the task id in `x-task-id`.
///
/// [`FaultProfile::hanging`]: agentfleet_protocol::gateway::FaultProfile::hanging
pub async fn wait_held(
    stack: &Stack,
    task_ids: &[&str],
    answers: u32,
) -> Result<String, CheckError> {
    stack
        .gateway
        .admin()
        .wait_held(task_ids, REACH_HELD_CALL)
        .await
        .map_err(|e| {
            violation(format!(
                "the agent never made LLM call {} of {task_ids:?} (one call per step, with the \
                 task id in x-task-id): {e}",
                answers + 1
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_exits_are_violations_and_docker_failures_are_not() {
        let exited = AgentError::Timeout {
            index: 0,
            timeout: WaitTimeout {
                what: "x".into(),
                waited: Duration::from_secs(1),
                attempts: 1,
                last_seen: "y".into(),
            },
        };
        assert!(matches!(CheckError::from(exited), CheckError::Violation(_)));
        assert!(require(true, || unreachable!()).is_ok());
        assert_eq!(
            require(false, || "broken".into()),
            Err(CheckError::Violation("broken".into()))
        );
    }
}
