//! Environment variables the agent reads. The manifests, the Docker runtime and `conform` set
//! them by these names; `docs/agent-contract.md` documents them.
//!
//! Durations are integers in milliseconds unless the name says `_SECS`.

/// Agent index (set by the manifests from the completion-index annotation).
pub const AGENT_INDEX: &str = "AGENT_INDEX";
/// Set by Kubernetes for Indexed Jobs; used when `AGENT_INDEX` is absent.
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";
/// AMQP URL of the broker, credentials included. A secret: never logged.
pub const QUEUE_URL: &str = "AGENT_QUEUE_URL";
pub const TASK_QUEUE: &str = "AGENT_TASK_QUEUE";
pub const RESULT_QUEUE: &str = "AGENT_RESULT_QUEUE";
pub const DEAD_LETTER_QUEUE: &str = "AGENT_DEAD_LETTER_QUEUE";
/// Deliveries after which a task is dead-lettered (quorum queue `x-delivery-limit` + 1 agent check).
pub const DELIVERY_LIMIT: &str = "AGENT_DELIVERY_LIMIT";
/// Give up connecting to the broker after this many seconds (start-up and reconnects).
pub const BROKER_DEADLINE_SECS: &str = "AGENT_BROKER_DEADLINE_SECS";
/// Base URL of the OpenAI-compatible gateway, e.g. `http://gateway:8080`.
pub const GATEWAY_URL: &str = "AGENT_GATEWAY_URL";
pub const CHECKPOINT_DIR: &str = "AGENT_CHECKPOINT_DIR";
/// Listen address of `/metrics`, `/healthz`, `/readyz`, e.g. `0.0.0.0:8080`.
pub const METRICS_ADDR: &str = "AGENT_METRICS_ADDR";
/// Per-request timeout of LLM calls.
pub const LLM_TIMEOUT_MS: &str = "AGENT_LLM_TIMEOUT_MS";
/// Capped exponential backoff with full jitter: sleep `uniform(0, min(cap, base * 2^n))`.
pub const BACKOFF_BASE_MS: &str = "AGENT_BACKOFF_BASE_MS";
pub const BACKOFF_CAP_MS: &str = "AGENT_BACKOFF_CAP_MS";
/// `true` (default) or `false`; `false` retries immediately, which the retry-storm scenario uses
/// to show that its bound can be violated.
pub const BACKOFF_ENABLED: &str = "AGENT_BACKOFF_ENABLED";
/// Maximum attempts of one LLM call before the step fails (the task is then requeued).
pub const LLM_MAX_ATTEMPTS: &str = "AGENT_LLM_MAX_ATTEMPTS";
/// Retry budget: retries may be at most this fraction of first attempts ...
pub const RETRY_BUDGET_RATIO: &str = "AGENT_RETRY_BUDGET_RATIO";
/// ... plus this many retries per second as a floor.
pub const RETRY_BUDGET_MIN_PER_SEC: &str = "AGENT_RETRY_BUDGET_MIN_PER_SEC";
/// Consecutive failures that open the circuit breaker.
pub const BREAKER_FAILURES: &str = "AGENT_BREAKER_FAILURES";
/// How long the breaker stays open before one half-open probe.
pub const BREAKER_OPEN_MS: &str = "AGENT_BREAKER_OPEN_MS";
/// Time the agent allows itself between SIGTERM and exit (keep below the pod's grace period).
pub const STOP_GRACE_MS: &str = "AGENT_STOP_GRACE_MS";
/// Exit 0 after this long with no task (0 = never), so a ScaledJob pod finishes.
pub const IDLE_EXIT_SECS: &str = "AGENT_IDLE_EXIT_SECS";
/// Exit 0 after this many tasks (0 = unlimited).
pub const MAX_TASKS: &str = "AGENT_MAX_TASKS";
/// Log filter (`info`, `debug`, `agent=debug`, ...).
pub const LOG: &str = "AGENT_LOG";
/// Test knob, off by default: extra delay in every step, for all tasks.
pub const TEST_STEP_DELAY_MS: &str = "AGENT_TEST_STEP_DELAY_MS";
/// Test knob, off by default: `true` makes the agent ignore SIGTERM (the eviction-resume
/// scenario's "agent that ignores SIGTERM is killed at the grace deadline").
pub const TEST_IGNORE_SIGTERM: &str = "AGENT_TEST_IGNORE_SIGTERM";
/// Test knob, off by default: deliberately break one contract clause, so `agentfleet conform`
/// can prove it catches the break. Values: `exit-zero-on-sigterm` (the article's `sys.exit(0)`),
/// `checkpoint-only-on-sigterm` (the article's checkpointing), `no-metrics`.
pub const TEST_BREAK: &str = "AGENT_TEST_BREAK";
