//! Running a task's steps, resuming from its checkpoint and checkpointing after each step.
//!
//! Step n (1-based) is one chat completion with the task's prompt plus "step n of N". The
//! task's fault knobs act here: memory ballast at the start of a step, an injected failure,
//! and a delay after the gateway answered. Between steps the runner honours a stop request
//! (SIGTERM) and a lost broker connection; a step in flight may finish until the stop's grace
//! deadline and is abandoned after it. Whatever happens, the last completed step is in the
//! checkpoint: the checkpoint is written before the next step starts, and the write is never
//! interrupted.

use std::time::Duration;

use agentfleet_protocol::{
    Task, TokenUsage,
    gateway::{ChatMessage, ChatRequest},
};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::{
    ballast::{Ballast, BallastError},
    checkpoint::{CheckpointError, CheckpointStore, Progress},
    llm::{LlmClient, LlmError},
    metrics::Metrics,
    shutdown::Stop,
};

/// Why a step failed. The delivery is requeued (the broker counts it towards the limit).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("step {step} failed on purpose (fault fail_at_step={step})")]
    InjectedFailure { step: u32 },
    #[error("step {step}: {source}")]
    Llm {
        step: u32,
        #[source]
        source: LlmError,
    },
    #[error("step {step}: {source}")]
    Ballast {
        step: u32,
        #[source]
        source: BallastError,
    },
    #[error("step {step} completed but its checkpoint was not written: {source}")]
    Checkpoint {
        step: u32,
        #[source]
        source: CheckpointError,
    },
}

/// Why the runner stopped before the last step, leaving the delivery unacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// A stop was requested; no step was in flight or the one in flight finished in time.
    Stopping,
    /// A stop was requested and the step in flight did not finish within the grace period.
    StepAbandoned,
    /// The broker connection is gone, so the delivery will be redelivered: stop spending.
    BrokerLost,
}

#[derive(Debug)]
pub enum StepsOutcome {
    /// Every step is done and checkpointed.
    Completed(Progress),
    Failed {
        progress: Progress,
        error: StepError,
    },
    Interrupted {
        progress: Progress,
        reason: Interruption,
    },
}

/// What the runner needs from the rest of the agent.
#[derive(Debug)]
pub struct StepRunner<'a> {
    pub llm: &'a LlmClient,
    pub store: &'a CheckpointStore,
    pub metrics: &'a Metrics,
    /// `AGENT_TEST_STEP_DELAY_MS`, added to every step of every task.
    pub extra_step_delay: Duration,
    /// `false` only under the `checkpoint-only-on-sigterm` contract break: progress is then
    /// written when a stop interrupts the task, as the article's agent does, and lost on a kill.
    pub checkpoint_every_step: bool,
}

/// What one completed step contributes to the task's progress.
struct StepOutput {
    usage: TokenUsage,
    content: String,
}

impl StepRunner<'_> {
    /// Runs the steps after `progress.steps_completed` for delivery `attempt`.
    /// `broker_alive` is asked between steps.
    pub async fn run(
        &self,
        task: &Task,
        attempt: u32,
        mut progress: Progress,
        stop: &Stop,
        broker_alive: &(dyn Fn() -> bool + Sync),
    ) -> StepsOutcome {
        for step in progress.steps_completed + 1..=task.steps {
            if stop.is_requested() {
                if !self.checkpoint_every_step {
                    self.save_on_stop(&progress).await;
                }
                return StepsOutcome::Interrupted {
                    progress,
                    reason: Interruption::Stopping,
                };
            }
            if !broker_alive() {
                return StepsOutcome::Interrupted {
                    progress,
                    reason: Interruption::BrokerLost,
                };
            }
            let output = tokio::select! {
                biased;
                output = self.step(task, attempt, step) => output,
                () = stop.grace_expired() => {
                    if !self.checkpoint_every_step {
                        self.save_on_stop(&progress).await;
                    }
                    return StepsOutcome::Interrupted { progress, reason: Interruption::StepAbandoned };
                }
            };
            let output = match output {
                Ok(output) => output,
                Err(error) => return StepsOutcome::Failed { progress, error },
            };
            progress.steps_completed = step;
            progress.tokens += output.usage;
            progress.output_digest = chain_digest(&progress.output_digest, step, &output.content);
            if !self.checkpoint_every_step {
                continue;
            }
            if let Err(source) = self.store.save(&progress).await {
                return StepsOutcome::Failed {
                    progress,
                    error: StepError::Checkpoint { step, source },
                };
            }
            self.metrics.checkpoint_written();
            info!(
                step,
                of = task.steps,
                tokens = output.usage.total_tokens,
                "step completed and checkpointed"
            );
        }
        StepsOutcome::Completed(progress)
    }

    /// The `checkpoint-only-on-sigterm` break's only checkpoint.
    async fn save_on_stop(&self, progress: &Progress) {
        match self.store.save(progress).await {
            Ok(()) => self.metrics.checkpoint_written(),
            Err(error) => warn!(error = %error, "cannot checkpoint on stop"),
        }
    }

    async fn step(&self, task: &Task, attempt: u32, step: u32) -> Result<StepOutput, StepError> {
        let faults = &task.faults;
        // Held until the end of the step, so the memory is resident while the step runs.
        let _ballast = match (faults.oom_at_step, faults.oom_mib) {
            (Some(at), Some(mib))
                if at == step && faults.oom_attempts.is_none_or(|n| attempt <= n) =>
            {
                info!(
                    step,
                    mib, attempt, "allocating memory ballast (fault oom_at_step)"
                );
                // Writing hundreds of MiB takes a while: keep it off the runtime's workers.
                let ballast = tokio::task::spawn_blocking(move || Ballast::allocate(mib))
                    .await
                    .map_err(|e| StepError::Ballast {
                        step,
                        source: BallastError {
                            mib,
                            reason: e.to_string(),
                        },
                    })?
                    .map_err(|source| StepError::Ballast { step, source })?;
                info!(
                    step,
                    resident_bytes = ballast.resident_bytes(),
                    "memory ballast resident"
                );
                Some(ballast)
            }
            _ => None,
        };
        if faults.fail_at_step == Some(step) {
            return Err(StepError::InjectedFailure { step });
        }
        let request = ChatRequest {
            model: task.model.clone(),
            messages: vec![ChatMessage {
                role: "user".to_owned(),
                content: format!("{}\n\nstep {step} of {}", task.prompt, task.steps),
            }],
            max_tokens: None,
        };
        let response = self
            .llm
            .chat(&task.id, &request)
            .await
            .map_err(|source| StepError::Llm { step, source })?;
        self.metrics
            .llm_tokens(&task.model, response.usage.total_tokens);
        let delay =
            Duration::from_millis(faults.step_delay_ms.unwrap_or(0)) + self.extra_step_delay;
        if !delay.is_zero() {
            debug!(
                step,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "step delay"
            );
            tokio::time::sleep(delay).await;
        }
        let content = response
            .choices
            .into_iter()
            .next()
            .map(|c| c.message.content)
            .unwrap_or_default();
        Ok(StepOutput {
            usage: response.usage,
            content,
        })
    }
}

/// The next link of the output digest: `sha256(previous || "\n" || step || "\n" || output)`,
/// hex. Chained so that the final digest covers every step in order, and computable
/// incrementally across resumes from the checkpointed previous link.
pub fn chain_digest(previous: &str, step: u32, output: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(b"\n");
    hasher.update(step.to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(output.as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_chain_depends_on_order_and_resumes_identically() {
        let outputs = ["alpha", "beta", "gamma"];
        let full = outputs
            .iter()
            .zip(1..)
            .fold(String::new(), |d, (o, n)| chain_digest(&d, n, o));
        // Resume after step 2 from the checkpointed digest.
        let after_two = chain_digest(&chain_digest("", 1, "alpha"), 2, "beta");
        assert_eq!(chain_digest(&after_two, 3, "gamma"), full);
        let swapped = chain_digest(
            &chain_digest(&chain_digest("", 1, "beta"), 2, "alpha"),
            3,
            "gamma",
        );
        assert_ne!(swapped, full);
        assert_eq!(full.len(), 64);
    }
}
