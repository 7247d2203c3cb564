//! Tasks (published to the task queue) and results (published by agents to the result queue).
//!
//! Delivery is at-least-once, so every message carries the task id: the AMQP `message_id`
//! property of both the task and its result is the task id, and the bodies repeat it. The
//! ledger matches results and dead letters to published tasks by that id alone.

use serde::{Deserialize, Serialize};

/// One unit of agent work: `steps` calls to the LLM gateway, checkpointed after each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Unique id; also the AMQP `message_id` and the checkpoint key.
    pub id: String,
    /// Model name sent to the gateway (`agent_llm_tokens_total{model}`).
    pub model: String,
    /// Prompt sent on every step (the step number is appended by the agent).
    pub prompt: String,
    /// Number of LLM steps; at least 1.
    pub steps: u32,
    /// Test knobs that scenarios drive; absent in production tasks.
    #[serde(default, skip_serializing_if = "TaskFaults::is_none")]
    pub faults: TaskFaults,
}

/// Failure injection carried by a task, for the scenarios. All off by default.
///
/// These live on the task, not on the agent, because the scenarios need one bad task among good
/// ones (the OOM scenario's "a task that always OOMs is dead-lettered; the others are unaffected").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFaults {
    /// Sleep this long inside every step, after the gateway answered (so a scenario can stop an
    /// agent mid-task deterministically).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_delay_ms: Option<u64>,
    /// Allocate and touch `oom_mib` MiB at the start of this step (1-based), to trip a memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_at_step: Option<u32>,
    /// Size of the allocation made at `oom_at_step`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_mib: Option<u64>,
    /// Allocate only on deliveries up to this attempt number (1 = only the first delivery);
    /// `None` means on every attempt, i.e. a poison task that always kills its agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_attempts: Option<u32>,
    /// Fail this step (1-based) with an error on every attempt: a poison task that keeps failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_at_step: Option<u32>,
}

impl TaskFaults {
    pub fn is_none(&self) -> bool {
        *self == TaskFaults::default()
    }
}

/// Why a task is malformed; returned by [`Task::parse`].
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(
        "task body is not valid JSON for a task: {0} (expected fields: id, model, prompt, steps, optional faults)"
    )]
    Json(#[from] serde_json::Error),
    #[error("task field `{field}` is invalid: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

impl Task {
    /// Parses and validates a task body. A task that fails here is dead-lettered, never retried.
    pub fn parse(body: &[u8]) -> Result<Task, TaskError> {
        let task: Task = serde_json::from_slice(body)?;
        task.validate()?;
        Ok(task)
    }

    pub fn validate(&self) -> Result<(), TaskError> {
        let field = |field, problem: &str| TaskError::Field {
            field,
            problem: problem.to_owned(),
        };
        if self.id.is_empty() || self.id.len() > 200 {
            return Err(field("id", "must be 1..=200 characters"));
        }
        if !self
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(field(
                "id",
                "may only contain ASCII letters, digits, '-', '_' and '.' (it names the checkpoint file)",
            ));
        }
        if self.id.starts_with('.') {
            return Err(field("id", "must not start with '.'"));
        }
        if self.model.is_empty() {
            return Err(field("model", "must not be empty"));
        }
        if self.steps == 0 || self.steps > 10_000 {
            return Err(field("steps", "must be 1..=10000"));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Task always serializes")
    }
}

/// Token usage as the gateway reports it (OpenAI `usage` object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl std::ops::AddAssign for TokenUsage {
    fn add_assign(&mut self, rhs: Self) {
        self.prompt_tokens += rhs.prompt_tokens;
        self.completion_tokens += rhs.completion_tokens;
        self.total_tokens += rhs.total_tokens;
    }
}

/// What an agent publishes (with publisher confirms) before it acks the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    pub task_id: String,
    /// Index of the agent that finished the task.
    pub agent_index: u32,
    /// Steps completed in total (equals the task's `steps`).
    pub steps: u32,
    /// Tokens over all completed steps; a step's tokens are counted once even across resumes.
    pub tokens: TokenUsage,
    /// Step count found in the checkpoint when this delivery started (0 = fresh start).
    pub resumed_from_step: u32,
    /// Delivery attempt that finished the task (1 = first delivery).
    pub attempt: u32,
    /// Digest of the step outputs, so two results for one task can be compared.
    pub output_digest: String,
    /// Unix time in milliseconds when the result was published.
    pub finished_at_ms: u64,
}

/// Why a task was dead-lettered by the agent itself; carried in the [`DEAD_LETTER_REASON_HEADER`]
/// header of the message it publishes to the dead-letter queue. Broker-side dead-lettering
/// (quorum queue delivery limit) is recognised by RabbitMQ's own `x-death`/`x-first-death-reason`
/// headers instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The body is not a valid task.
    Malformed,
    /// The task failed or killed its agent on more deliveries than the limit allows.
    DeliveryLimit,
}

impl DeadLetterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Malformed => "malformed",
            DeadLetterReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// AMQP header on agent-published dead letters; value is [`DeadLetterReason::as_str`].
pub const DEAD_LETTER_REASON_HEADER: &str = "x-agentfleet-dead-letter-reason";
/// AMQP header on agent-published dead letters: a human-readable detail (parse error etc.).
pub const DEAD_LETTER_DETAIL_HEADER: &str = "x-agentfleet-dead-letter-detail";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_minimal_task() {
        let t = Task::parse(br#"{"id":"t-1","model":"m","prompt":"p","steps":3}"#).unwrap();
        assert_eq!(t.steps, 3);
        assert!(t.faults.is_none());
    }

    #[test]
    fn rejects_unknown_fields_and_bad_ids() {
        assert!(
            Task::parse(br#"{"id":"t","model":"m","prompt":"p","steps":1,"stepz":2}"#).is_err()
        );
        let err = Task::parse(br#"{"id":"../x","model":"m","prompt":"p","steps":1}"#).unwrap_err();
        assert!(err.to_string().contains("`id`"), "{err}");
        let err = Task::parse(br#"{"id":"a","model":"m","prompt":"p","steps":0}"#).unwrap_err();
        assert!(err.to_string().contains("`steps`"), "{err}");
        assert!(Task::parse(b"not json").is_err());
    }
}
