//! Wiring: build every part from the configuration, run the worker, and turn the way it
//! ended into one of the documented exit codes.

use std::sync::Arc;

use tracing::{error, info, warn};

use crate::{
    broker::BrokerError,
    checkpoint::{CheckpointError, CheckpointStore},
    config::{Config, ConfigError, ContractBreak},
    delivery::DeliveryHandler,
    llm::{LlmClient, LlmError},
    metrics::{self, BindError, Metrics},
    shutdown,
    steps::StepRunner,
    worker::{Worker, WorkerExit},
};

/// Exit codes (see the crate documentation in main.rs).
pub mod exit_code {
    pub const DONE: u8 = 0;
    /// Other fatal error.
    pub const FAILURE: u8 = 1;
    /// EX_UNAVAILABLE: the broker stayed unreachable past AGENT_BROKER_DEADLINE_SECS.
    pub const BROKER_UNREACHABLE: u8 = 69;
    /// EX_CONFIG: bad configuration (environment, unwritable checkpoint directory).
    pub const CONFIG: u8 = 78;
    /// 128 + SIGTERM: stopped with a task left unfinished (requeued by the broker).
    pub const INTERRUPTED: u8 = 143;
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    MetricsBind(#[from] BindError),
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl Fatal {
    pub fn exit_code(&self) -> u8 {
        match self {
            Fatal::Config(_) | Fatal::Checkpoint(CheckpointError::NotWritable { .. }) => {
                exit_code::CONFIG
            }
            Fatal::Broker(BrokerError::Unreachable { .. }) => exit_code::BROKER_UNREACHABLE,
            _ => exit_code::FAILURE,
        }
    }
}

/// Runs the agent to completion; returns the exit code of a normal end.
pub async fn run(config: Config) -> Result<u8, Fatal> {
    let metrics = Arc::new(Metrics::new());
    let store = CheckpointStore::open(&config.checkpoint_dir)?;
    let listener = metrics::bind(config.metrics_addr).await?;
    let stop =
        shutdown::listen(config.stop_grace, config.test.ignore_sigterm).map_err(Fatal::Signals)?;
    let serve_metrics = config.test.contract_break != Some(ContractBreak::NoMetrics);
    tokio::spawn({
        let metrics = metrics.clone();
        async move {
            if let Err(e) = metrics::serve(listener, metrics, serve_metrics).await {
                error!(error = %e, "the metrics server stopped");
            }
        }
    });
    let llm = LlmClient::new(
        &config.gateway_url,
        config.agent_index,
        &config.llm,
        metrics.clone(),
    )?;
    log_start(&config);

    let worker = Worker {
        agent_index: config.agent_index,
        broker: &config.broker,
        handler: DeliveryHandler {
            agent_index: config.agent_index,
            steps: StepRunner {
                llm: &llm,
                store: &store,
                metrics: &metrics,
                extra_step_delay: config.test.step_delay,
                checkpoint_every_step: config.test.contract_break
                    != Some(ContractBreak::CheckpointOnlyOnSigterm),
            },
        },
        metrics: &metrics,
        stop,
        idle_exit: config.idle_exit,
        max_tasks: config.max_tasks,
    };
    let exit = worker.run().await?;
    if exit.left_work_unfinished()
        && config.test.contract_break == Some(ContractBreak::ExitZeroOnSigterm)
    {
        warn!(
            exit_code = exit_code::DONE,
            "test knob AGENT_TEST_BREAK=exit-zero-on-sigterm: exiting 0 with a task unfinished"
        );
        Ok(exit_code::DONE)
    } else if exit.left_work_unfinished() {
        info!(
            exit_code = exit_code::INTERRUPTED,
            "stopped with a task unfinished; the broker requeues it"
        );
        Ok(exit_code::INTERRUPTED)
    } else {
        let reason = match exit {
            WorkerExit::Idle => "idle",
            WorkerExit::MaxTasks => "task limit reached",
            WorkerExit::Stopped { .. } => "stopped while idle",
        };
        info!(exit_code = exit_code::DONE, reason, "done");
        Ok(exit_code::DONE)
    }
}

fn log_start(config: &Config) {
    let mut gateway = config.gateway_url.clone();
    // Credentials in the gateway URL are as secret as the broker's.
    let _ = gateway.set_username("");
    let _ = gateway.set_password(None);
    let topology = &config.broker.topology;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        broker = %config.broker.endpoint(),
        task_queue = %topology.task_queue,
        result_queue = %topology.result_queue,
        dead_letter_queue = %topology.dead_letter_queue,
        delivery_limit = topology.delivery_limit,
        gateway = %gateway,
        checkpoint_dir = %config.checkpoint_dir.display(),
        metrics_addr = %config.metrics_addr,
        backoff_enabled = config.llm.backoff_enabled,
        "agent starting"
    );
}
