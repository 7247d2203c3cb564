//! The LLM gateway simulator's HTTP interface beyond the OpenAI-compatible API: headers the
//! agent sends, the fault profile, and the request log the harness reads.

use serde::{Deserialize, Serialize};

/// Header with the calling agent's index, logged by the gateway for per-agent request rates.
pub const AGENT_INDEX_HEADER: &str = "x-agent-index";
/// Header with the task id of the call.
pub const TASK_ID_HEADER: &str = "x-task-id";

/// OpenAI-compatible request body (the subset the agent sends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// OpenAI-compatible response body (the subset the agent reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: crate::TokenUsage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    pub index: u32,
    pub message: ChatMessage,
    pub finish_reason: String,
}

/// Fault injection, set at start (`--faults FILE` / `GATEWAY_FAULTS` JSON) and replaced at
/// runtime with `PUT /admin/faults`. Everything is off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultProfile {
    /// Probability (0..=1) of answering 429 with `Retry-After`.
    pub rate_429: f64,
    /// Probability of answering 500.
    pub rate_500: f64,
    /// Probability of answering 503.
    pub rate_503: f64,
    /// `Retry-After` seconds sent with 429 (and 503) answers; none when `None`.
    pub retry_after_secs: Option<u64>,
    /// Outage windows relative to the moment the profile was applied: every request inside one
    /// is answered with the window's status.
    pub outages: Vec<Outage>,
    /// Added latency per request.
    pub latency: Latency,
    /// At most this many requests in flight; beyond it the gateway answers 429 (limited LLM
    /// capacity). `None` = unlimited.
    pub capacity: Option<u32>,
    /// Seed for the fault dice, so a run is reproducible.
    pub seed: Option<u64>,
    /// Hung LLM calls: requests of a task beyond its first answers are held open, unanswered,
    /// until the profile is replaced (or the gateway shuts down); then they are answered. Besides being a fault in its own right, this freezes an
    /// agent between two steps however loaded the machine is, so a test can kill it there
    /// without racing the agent's progress.
    pub hangs: Vec<Hang>,
}

impl FaultProfile {
    /// A profile that only hangs `task_ids`, each after `after_answers` answers.
    pub fn hanging<'a>(task_ids: impl IntoIterator<Item = &'a str>, after_answers: u32) -> Self {
        FaultProfile {
            hangs: task_ids
                .into_iter()
                .map(|task_id| Hang {
                    task_id: task_id.to_owned(),
                    after_answers,
                })
                .collect(),
            ..FaultProfile::default()
        }
    }
}

/// One entry of [`FaultProfile::hangs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hang {
    /// The task whose calls hang ([`TASK_ID_HEADER`]).
    pub task_id: String,
    /// Answers the task's requests get before the next one hangs (0 = the first one hangs).
    /// Counted from the moment the profile was applied; refused requests (outage, capacity,
    /// injected errors) do not count, so with a one-call-per-step agent this is the number of
    /// steps that can complete.
    pub after_answers: u32,
}

/// Body of `GET /admin/held`: the requests held open by a [`Hang`] right now, by task id.
pub type HeldRequests = std::collections::BTreeMap<String, u32>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    pub start_ms: u64,
    pub duration_ms: u64,
    /// Status answered during the window (503 unless set).
    #[serde(default = "Outage::default_status")]
    pub status: u16,
}

impl Outage {
    fn default_status() -> u16 {
        503
    }
}

/// Latency distribution added to every request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    #[default]
    None,
    Fixed {
        ms: u64,
    },
    Uniform {
        min_ms: u64,
        max_ms: u64,
    },
    /// Exponential with this mean, capped at `max_ms`: a long-tailed LLM.
    Exponential {
        mean_ms: u64,
        max_ms: u64,
    },
}

/// One line of the gateway's request log (`GET /admin/requests`, JSON array, oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Unix time in milliseconds when the request arrived.
    pub at_ms: u64,
    /// Value of [`AGENT_INDEX_HEADER`], if sent.
    pub agent_index: Option<u32>,
    /// Value of [`TASK_ID_HEADER`], if sent.
    pub task_id: Option<String>,
    /// Status answered.
    pub status: u16,
    /// `Retry-After` seconds sent with the answer, if any.
    pub retry_after_secs: Option<u64>,
    /// Time spent answering, in milliseconds.
    pub latency_ms: u64,
}
