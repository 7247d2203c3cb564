//! `agent`: the reference implementation of the agentfleet agent contract.
//!
//! Consumes tasks from RabbitMQ (prefetch 1, manual ack), runs each task's steps against the
//! LLM gateway with checkpoints after every step, publishes the result with publisher
//! confirms before acking, and leaves politely on SIGTERM. Configured entirely through
//! environment variables (`agentfleet_protocol::env`).
//!
//! # Exit codes
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | done: idle for `AGENT_IDLE_EXIT_SECS`, `AGENT_MAX_TASKS` reached, or stopped while idle |
//! | 1    | other fatal error (metrics port taken, topology refused by the broker, ...) |
//! | 69   | the broker stayed unreachable past `AGENT_BROKER_DEADLINE_SECS` (EX_UNAVAILABLE) |
//! | 78   | configuration error: a bad environment variable or an unwritable checkpoint directory (EX_CONFIG) |
//! | 143  | stopped by SIGTERM/SIGINT with a task unfinished (left unacked; the broker requeues it) |
//!
//! 143 rather than 0 matters for Indexed Jobs: exit 0 would mark the index complete with its
//! work undone (the article's `sys.exit(0)` bug).

mod app;
mod backoff;
mod ballast;
mod breaker;
mod broker;
mod budget;
mod checkpoint;
mod config;
mod crypto;
mod delivery;
mod llm;
mod logging;
mod metrics;
mod pacer;
mod retry_after;
mod shutdown;
mod steps;
mod worker;

use std::process::ExitCode;

use app::exit_code;
use config::Config;

fn main() -> ExitCode {
    crypto::install_ring_provider();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            // Log through the same JSON format, with the default filter: the configured one
            // is part of what failed to load.
            let _ = logging::init("info", None);
            tracing::error!(error = %e, exit_code = exit_code::CONFIG, "invalid configuration");
            return ExitCode::from(exit_code::CONFIG);
        }
    };
    if let Err(e) = logging::init(&config.log_filter, Some(config.agent_index)) {
        let _ = logging::init("info", Some(config.agent_index));
        tracing::error!(error = %e, exit_code = exit_code::CONFIG, "invalid configuration");
        return ExitCode::from(exit_code::CONFIG);
    }
    // Two workers: the agent runs one task at a time; the second keeps /metrics, heartbeats
    // and signals responsive while a step computes (e.g. touches OOM ballast).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, exit_code = exit_code::FAILURE, "cannot start the async runtime");
            return ExitCode::from(exit_code::FAILURE);
        }
    };
    let code = match runtime.block_on(app::run(config)) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            tracing::error!(error = %e, exit_code = code, "fatal");
            code
        }
    };
    // Background tasks (metrics server, broker I/O) must not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}
