//! LLM gateway simulator with fault injection.
//!
//! An OpenAI-compatible `POST /v1/chat/completions` that answers deterministically (same
//! request, same content and token usage) and injects the faults of a [`FaultProfile`]:
//! outage windows, a capacity limit, random 429/500/503 and latency. The harness drives it
//! through an admin API and reads back a request log to measure how an agent fleet behaves
//! when its LLM misbehaves (the retry-storm scenario).
//!
//! [`FaultProfile`]: agentfleet_protocol::gateway::FaultProfile

pub mod answer;
pub mod decision;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod profile_source;
pub mod request_log;
pub mod state;
pub mod validate;

pub use http::{router, serve};
pub use state::{DEFAULT_REQUEST_LOG_CAPACITY, GatewayState};
