//! Handling one delivery from the task queue, from parse to ack.
//!
//! The order of operations is the contract:
//! - malformed body: publish it to the dead-letter queue (confirmed), then ack;
//! - attempt over the delivery limit: dead-letter (confirmed), ack, drop the checkpoint;
//! - otherwise record the attempt in the checkpoint, run the remaining steps, publish the
//!   result (confirmed) *before* acking, ack, then delete the checkpoint;
//! - a failed step: nack with requeue, so the broker counts the delivery;
//! - interrupted (SIGTERM, lost connection): no ack at all; closing the channel requeues.
//!
//! An ack after a confirmed publish can still be lost (crash in between): the task is then
//! redelivered and its result published twice, which the result's task id makes detectable.

use std::{
    collections::BTreeMap,
    time::{SystemTime, UNIX_EPOCH},
};

use agentfleet_protocol::{
    DeadLetterReason, Task, TaskResult,
    task::{DEAD_LETTER_DETAIL_HEADER, DEAD_LETTER_REASON_HEADER},
};
use lapin::{
    BasicProperties,
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions},
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

use crate::{
    broker::{Broker, BrokerError, DELIVERY_COUNT_HEADER, delivery_count},
    checkpoint::{Loaded, Progress},
    metrics::TaskStatus,
    shutdown::Stop,
    steps::{Interruption, StepRunner, StepsOutcome},
};

/// Longest dead-letter detail header.
const DETAIL_MAX: usize = 1000;

/// How handling a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Acked (success, dead-lettered) or nacked and requeued (failed).
    Finished(TaskStatus),
    /// Left unacked; the broker redelivers it when the channel closes.
    Interrupted(Interruption),
}

#[derive(Debug)]
pub struct DeliveryHandler<'a> {
    pub agent_index: u32,
    pub steps: StepRunner<'a>,
}

impl DeliveryHandler<'_> {
    /// Handles `delivery`. `Err` means the broker connection failed mid-way; the delivery is
    /// then redelivered by the broker, and the caller reconnects.
    pub async fn handle(
        &self,
        broker: &Broker,
        delivery: Delivery,
        stop: &Stop,
    ) -> Result<Handled, BrokerError> {
        let metrics = self.steps.metrics;
        metrics.delivery();
        let started = Instant::now();
        match Task::parse(&delivery.data) {
            Ok(task) => {
                let span = info_span!("task", task_id = %task.id);
                self.handle_task(broker, &delivery, &task, stop, started)
                    .instrument(span)
                    .await
            }
            Err(e) => {
                let message_id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(ShortString::to_string);
                let span = info_span!("task", task_id = message_id.as_deref().unwrap_or(""));
                self.malformed(broker, &delivery, &e.to_string())
                    .instrument(span)
                    .await
            }
        }
    }

    async fn malformed(
        &self,
        broker: &Broker,
        delivery: &Delivery,
        error: &str,
    ) -> Result<Handled, BrokerError> {
        warn!(error, "malformed task; dead-lettering it");
        self.dead_letter_and_ack(broker, delivery, DeadLetterReason::Malformed, error, None)
            .await
    }

    async fn handle_task(
        &self,
        broker: &Broker,
        delivery: &Delivery,
        task: &Task,
        stop: &Stop,
        started: Instant,
    ) -> Result<Handled, BrokerError> {
        let store = self.steps.store;
        let metrics = self.steps.metrics;
        let mut progress = self.load_progress(task).await;
        let broker_count = delivery_count(&delivery.properties);
        let attempt = match broker_count {
            Some(count) => count.saturating_add(1),
            // Classic queues keep no count: the checkpoint's is the agent's own.
            None => progress.attempts.saturating_add(1),
        };
        let limit = broker.topology().delivery_limit;
        if attempt > limit {
            let detail = format!(
                "delivery attempt {attempt} exceeds the limit of {limit} (AGENT_DELIVERY_LIMIT)"
            );
            warn!(
                attempt,
                limit, "delivery limit exceeded; dead-lettering the task"
            );
            return self
                .dead_letter_and_ack(
                    broker,
                    delivery,
                    DeadLetterReason::DeliveryLimit,
                    &detail,
                    Some(&task.id),
                )
                .await;
        }

        let resumed_from_step = progress.steps_completed;
        progress.attempts = attempt;
        if resumed_from_step > 0 {
            metrics.resumed();
            info!(
                attempt,
                delivery_count = broker_count,
                resumed_from_step,
                steps = task.steps,
                "resuming the task from its checkpoint"
            );
        } else {
            info!(
                attempt,
                delivery_count = broker_count,
                steps = task.steps,
                redelivered = delivery.redelivered,
                "task started"
            );
        }
        // Recorded before any work, so a task that kills its agent (OOM) is still counted.
        if let Err(error) = store.save(&progress).await {
            warn!(error = %error, "cannot record the attempt in the checkpoint; requeueing the task");
            return self.requeue(delivery).await;
        }
        metrics.checkpoint_written();

        let broker_alive = || broker.is_connected();
        match self
            .steps
            .run(task, attempt, progress, stop, &broker_alive)
            .await
        {
            StepsOutcome::Completed(progress) => {
                let result = TaskResult {
                    task_id: task.id.clone(),
                    agent_index: self.agent_index,
                    steps: task.steps,
                    tokens: progress.tokens,
                    resumed_from_step,
                    attempt,
                    output_digest: progress.output_digest,
                    finished_at_ms: unix_millis(),
                };
                tokio::select! {
                    biased;
                    handled = self.publish_result_and_ack(broker, delivery, &result, started) => handled,
                    () = stop.grace_expired() => {
                        warn!("grace period over while publishing the result; leaving the task unacked");
                        Ok(Handled::Interrupted(Interruption::StepAbandoned))
                    }
                }
            }
            StepsOutcome::Failed { progress, error } => {
                warn!(
                    error = %error,
                    attempt,
                    limit,
                    steps_completed = progress.steps_completed,
                    "step failed; requeueing the task"
                );
                self.requeue(delivery).await
            }
            StepsOutcome::Interrupted { progress, reason } => {
                info!(
                    reason = ?reason,
                    steps_completed = progress.steps_completed,
                    "task interrupted; leaving it unacked for redelivery (progress is checkpointed)"
                );
                Ok(Handled::Interrupted(reason))
            }
        }
    }

    /// The task's checkpoint, or fresh progress when there is none or it is unusable.
    async fn load_progress(&self, task: &Task) -> Progress {
        let metrics = self.steps.metrics;
        match self.steps.store.load(&task.id).await {
            Ok(Loaded::Found(progress)) if progress.steps_completed <= task.steps => progress,
            Ok(Loaded::Found(progress)) => {
                warn!(
                    steps_completed = progress.steps_completed,
                    steps = task.steps,
                    "checkpoint records more steps than the task has; restarting from step 0"
                );
                Progress {
                    attempts: progress.attempts,
                    ..Progress::fresh(&task.id)
                }
            }
            Ok(Loaded::Absent) => Progress::fresh(&task.id),
            Ok(Loaded::Corrupt { reason, moved_to }) => {
                metrics.checkpoint_corrupt();
                warn!(
                    reason,
                    moved_to = moved_to.as_ref().map(|p| p.display().to_string()),
                    "checkpoint is corrupt; moved aside, restarting the task from step 0"
                );
                Progress::fresh(&task.id)
            }
            Err(error) => {
                metrics.checkpoint_corrupt();
                warn!(error = %error, "cannot read the checkpoint; restarting the task from step 0");
                Progress::fresh(&task.id)
            }
        }
    }

    async fn publish_result_and_ack(
        &self,
        broker: &Broker,
        delivery: &Delivery,
        result: &TaskResult,
        started: Instant,
    ) -> Result<Handled, BrokerError> {
        let body = serde_json::to_vec(result).expect("a TaskResult always serializes");
        let properties = BasicProperties::default()
            .with_message_id(ShortString::from(result.task_id.as_str()))
            .with_content_type(ShortString::from("application/json"));
        let queue = &broker.topology().result_queue;
        if let Some(refused) = self
            .publish_then_ack(broker, delivery, queue, &body, properties, "result")
            .await?
        {
            return Ok(refused);
        }
        self.forget_checkpoint(&result.task_id).await;
        let metrics = self.steps.metrics;
        let took = started.elapsed();
        metrics.task_finished(TaskStatus::Success);
        metrics.task_duration(took);
        info!(
            attempt = result.attempt,
            resumed_from_step = result.resumed_from_step,
            total_tokens = result.tokens.total_tokens,
            duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            "task completed; result published and acked"
        );
        Ok(Handled::Finished(TaskStatus::Success))
    }

    /// Publishes the delivery's body to the dead-letter queue with the reason headers, waits
    /// for the confirm, then acks (and drops the task's checkpoint, if it has one).
    async fn dead_letter_and_ack(
        &self,
        broker: &Broker,
        delivery: &Delivery,
        reason: DeadLetterReason,
        detail: &str,
        task_id: Option<&str>,
    ) -> Result<Handled, BrokerError> {
        let headers = dead_letter_headers(delivery.properties.headers().as_ref(), reason, detail);
        // The original properties, message_id included, so the ledger can match the letter.
        let properties = delivery.properties.clone().with_headers(headers);
        let queue = &broker.topology().dead_letter_queue;
        if let Some(refused) = self
            .publish_then_ack(
                broker,
                delivery,
                queue,
                &delivery.data,
                properties,
                "dead letter",
            )
            .await?
        {
            return Ok(refused);
        }
        if let Some(id) = task_id {
            self.forget_checkpoint(id).await;
        }
        self.steps.metrics.task_finished(TaskStatus::DeadLettered);
        info!(reason = reason.as_str(), "task dead-lettered and acked");
        Ok(Handled::Finished(TaskStatus::DeadLettered))
    }

    /// The contract's ordering in one place: publish `body` to `queue`, wait for the broker's
    /// confirm, and only then ack the task. A message the broker refuses requeues the task
    /// instead (returned as `Some`); a lost connection is an error and the broker redelivers.
    async fn publish_then_ack(
        &self,
        broker: &Broker,
        delivery: &Delivery,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
        what: &'static str,
    ) -> Result<Option<Handled>, BrokerError> {
        match broker.publish_confirmed(queue, body, properties).await {
            Ok(()) => {}
            Err(error) if error.is_message_refused() => {
                warn!(error = %error, what, "not accepted by the broker; requeueing the task");
                return self.requeue(delivery).await.map(Some);
            }
            Err(error) => return Err(error),
        }
        delivery
            .ack(BasicAckOptions::default())
            .await
            .map_err(amqp("basic.ack"))?;
        Ok(None)
    }

    /// Nack with requeue: the broker redelivers the task and counts the delivery.
    async fn requeue(&self, delivery: &Delivery) -> Result<Handled, BrokerError> {
        delivery
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .map_err(amqp("basic.nack"))?;
        self.steps.metrics.task_finished(TaskStatus::Failed);
        Ok(Handled::Finished(TaskStatus::Failed))
    }

    async fn forget_checkpoint(&self, task_id: &str) {
        if let Err(error) = self.steps.store.remove(task_id).await {
            // Harmless beyond disk space: a later duplicate would resume from it.
            warn!(error = %error, "cannot delete the checkpoint of a finished task");
        }
    }
}

/// The dead letter's headers: the task's own, minus the task queue's delivery count (it
/// means nothing on the dead-letter queue), plus the reason and a bounded detail.
fn dead_letter_headers(
    original: Option<&FieldTable>,
    reason: DeadLetterReason,
    detail: &str,
) -> FieldTable {
    let mut headers: BTreeMap<ShortString, AMQPValue> = original
        .map(|table| table.inner().clone())
        .unwrap_or_default();
    headers.remove(DELIVERY_COUNT_HEADER);
    headers.insert(
        ShortString::from(DEAD_LETTER_REASON_HEADER),
        AMQPValue::LongString(LongString::from(reason.as_str())),
    );
    headers.insert(
        ShortString::from(DEAD_LETTER_DETAIL_HEADER),
        AMQPValue::LongString(LongString::from(truncate(detail, DETAIL_MAX))),
    );
    FieldTable::from(headers)
}

fn amqp(operation: &'static str) -> impl FnOnce(lapin::Error) -> BrokerError {
    move |source| BrokerError::Amqp { operation, source }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_headers_keep_the_tasks_own_and_drop_the_delivery_count() {
        let mut original = FieldTable::default();
        original.insert(
            ShortString::from("x-trace"),
            AMQPValue::LongString("abc".into()),
        );
        original.insert(
            ShortString::from(DELIVERY_COUNT_HEADER),
            AMQPValue::LongLongInt(3),
        );
        let long_detail = "e".repeat(5000);
        let headers = dead_letter_headers(
            Some(&original),
            DeadLetterReason::DeliveryLimit,
            &long_detail,
        );
        let get = |k: &str| headers.inner().get(k).cloned();
        assert_eq!(get("x-trace"), Some(AMQPValue::LongString("abc".into())));
        assert_eq!(get(DELIVERY_COUNT_HEADER), None);
        assert_eq!(
            get(DEAD_LETTER_REASON_HEADER),
            Some(AMQPValue::LongString("delivery_limit".into()))
        );
        match get(DEAD_LETTER_DETAIL_HEADER) {
            Some(AMQPValue::LongString(detail)) => assert_eq!(detail.len(), DETAIL_MAX + 3),
            other => panic!("detail header is {other:?}"),
        }
        let headers = dead_letter_headers(None, DeadLetterReason::Malformed, "bad json");
        assert_eq!(headers.inner().len(), 2);
    }
}
