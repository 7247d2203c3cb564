//! Queue names and arguments. The agent declares the same topology idempotently at start and the
//! harness (and the RabbitMQ definitions in manifests/platform) declare it identically: RabbitMQ
//! refuses a redeclaration with different arguments (PRECONDITION_FAILED), so the arguments are
//! defined once, here, as plain data each side turns into its client's argument table.

/// Names and limits of one fleet's queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub task_queue: String,
    pub result_queue: String,
    pub dead_letter_queue: String,
    /// Deliveries after which RabbitMQ dead-letters a task (quorum `x-delivery-limit`).
    pub delivery_limit: u32,
}

/// A queue argument value (the subset of AMQP field values we use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgValue {
    Str(String),
    Int(i64),
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            task_queue: "agent-tasks".into(),
            result_queue: "agent-results".into(),
            dead_letter_queue: "agent-tasks-dlq".into(),
            delivery_limit: 3,
        }
    }
}

impl Topology {
    /// Same names with a suffix, for scenarios that run in parallel on one broker.
    pub fn with_suffix(suffix: &str) -> Topology {
        let d = Topology::default();
        Topology {
            task_queue: format!("{}-{suffix}", d.task_queue),
            result_queue: format!("{}-{suffix}", d.result_queue),
            dead_letter_queue: format!("{}-{suffix}", d.dead_letter_queue),
            delivery_limit: d.delivery_limit,
        }
    }

    /// Arguments of the task queue: a quorum queue that dead-letters to the DLQ after
    /// `delivery_limit` deliveries. RabbitMQ 3.10 counts a requeue on channel close (eviction,
    /// OOM kill) as a delivery, which is what bounds a task that keeps killing its agent.
    pub fn task_queue_args(&self) -> Vec<(&'static str, ArgValue)> {
        vec![
            ("x-queue-type", ArgValue::Str("quorum".into())),
            (
                "x-delivery-limit",
                ArgValue::Int(i64::from(self.delivery_limit)),
            ),
            ("x-dead-letter-exchange", ArgValue::Str(String::new())),
            (
                "x-dead-letter-routing-key",
                ArgValue::Str(self.dead_letter_queue.clone()),
            ),
        ]
    }

    /// Arguments of the result and dead-letter queues: durable quorum queues.
    pub fn sink_queue_args(&self) -> Vec<(&'static str, ArgValue)> {
        vec![("x-queue-type", ArgValue::Str("quorum".into()))]
    }
}
