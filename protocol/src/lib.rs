//! The wire formats every agentfleet program agrees on.
//!
//! The agent, the gateway simulator and the harness are separate binaries (the agent and the
//! gateway ship as static `FROM scratch` images), so the formats they exchange live here, in a
//! crate with no I/O and no heavy dependencies. Anything that crosses a process boundary (a task
//! on the queue, a result, a dead-letter reason, an environment variable name, an HTTP header)
//! is defined once in this crate and nowhere else.

pub mod env;
pub mod gateway;
pub mod task;
pub mod topology;

pub use task::{DeadLetterReason, Task, TaskFaults, TaskResult, TokenUsage};
pub use topology::Topology;
