//! What comes back from the fleet: results and dead letters, decoded into typed records.

use std::fmt;
use std::pin::Pin;

use agentfleet_protocol::{TaskResult, Topology, task};
use futures::{Stream, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};

use super::QueueError;

/// A result as it came off the result queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRecord {
    pub result: TaskResult,
    pub message_id: Option<String>,
    pub redelivered: bool,
}

/// Who dead-lettered a message, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterCause {
    /// The agent published it, with [`task::DEAD_LETTER_REASON_HEADER`] (`malformed`,
    /// `delivery_limit`) and a detail.
    Agent {
        reason: String,
        detail: Option<String>,
    },
    /// RabbitMQ dead-lettered it (`x-first-death-reason`: `delivery_limit`, `rejected`, ...).
    Broker { reason: String },
    /// Neither header is present.
    Unknown,
}

/// A message as it came off the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRecord {
    /// The task id: the `message_id` the agent or the broker preserved, else the body's `id`.
    pub task_id: Option<String>,
    pub cause: DeadLetterCause,
    pub body: Vec<u8>,
}

/// One message taken off the result or dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Result(ResultRecord),
    DeadLetter(DeadLetterRecord),
    /// A message on the result queue that is not a [`TaskResult`]: a contract violation.
    Undecodable {
        queue: String,
        message_id: Option<String>,
        error: String,
    },
}

fn header_text(headers: &FieldTable, key: &str) -> Option<String> {
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn decode(
    is_result_queue: bool,
    queue: String,
    message_id: Option<String>,
    headers: &FieldTable,
    body: Vec<u8>,
    redelivered: bool,
) -> Outcome {
    if is_result_queue {
        return match serde_json::from_slice::<TaskResult>(&body) {
            Ok(result) => Outcome::Result(ResultRecord {
                result,
                message_id,
                redelivered,
            }),
            Err(e) => Outcome::Undecodable {
                queue,
                message_id,
                error: e.to_string(),
            },
        };
    }
    let cause = if let Some(reason) = header_text(headers, task::DEAD_LETTER_REASON_HEADER) {
        DeadLetterCause::Agent {
            reason,
            detail: header_text(headers, task::DEAD_LETTER_DETAIL_HEADER),
        }
    } else if let Some(reason) = header_text(headers, "x-first-death-reason") {
        DeadLetterCause::Broker { reason }
    } else {
        DeadLetterCause::Unknown
    };
    let task_id = message_id.or_else(|| {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned))
    });
    Outcome::DeadLetter(DeadLetterRecord {
        task_id,
        cause,
        body,
    })
}

/// The merged stream of results and dead letters.
pub struct Outcomes {
    stream: Pin<Box<dyn Stream<Item = Result<Outcome, QueueError>> + Send>>,
    _channel: Channel,
}

impl fmt::Debug for Outcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outcomes").finish_non_exhaustive()
    }
}

impl Outcomes {
    /// Consumes the result and dead-letter queues on a channel of its own. Every message is
    /// decoded and acked: the harness is their final consumer.
    pub(super) async fn start(
        connection: &Connection,
        topology: &Topology,
    ) -> Result<Outcomes, QueueError> {
        let channel = connection
            .create_channel()
            .await
            .map_err(QueueError::amqp("open a channel for", "outcomes"))?;
        let consume = |queue: String| {
            let channel = channel.clone();
            async move {
                let consumer = channel
                    .basic_consume(
                        queue.as_str().into(),
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(QueueError::amqp("consume", &queue))?;
                Ok::<_, QueueError>(consumer.map(move |d| (queue.clone(), d)))
            }
        };
        let results = consume(topology.result_queue.clone()).await?;
        let dead = consume(topology.dead_letter_queue.clone()).await?;
        let result_queue = topology.result_queue.clone();
        let merged = futures::stream::select(results, dead).then(move |(queue, delivery)| {
            let is_result_queue = queue == result_queue;
            async move {
                let delivery = delivery.map_err(QueueError::amqp("deliver from", &queue))?;
                delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(QueueError::amqp("ack a message of", &queue))?;
                let message_id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.as_str().to_owned());
                let headers = delivery.properties.headers().clone().unwrap_or_default();
                Ok(decode(
                    is_result_queue,
                    queue,
                    message_id,
                    &headers,
                    delivery.data,
                    delivery.redelivered,
                ))
            }
        });
        Ok(Outcomes {
            stream: Box::pin(merged),
            _channel: channel,
        })
    }

    /// The next outcome; `None` when the consumers were cancelled (connection closed).
    pub async fn next(&mut self) -> Option<Result<Outcome, QueueError>> {
        self.stream.next().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> FieldTable {
        let mut table = FieldTable::default();
        for (k, v) in pairs {
            table.insert((*k).into(), AMQPValue::LongString((*v).into()));
        }
        table
    }

    #[test]
    fn dead_letters_say_who_and_why() {
        let agent = decode(
            false,
            "dlq".into(),
            Some("t-1".into()),
            &headers(&[
                (task::DEAD_LETTER_REASON_HEADER, "malformed"),
                (task::DEAD_LETTER_DETAIL_HEADER, "bad json"),
            ]),
            b"not json".to_vec(),
            false,
        );
        assert_eq!(
            agent,
            Outcome::DeadLetter(DeadLetterRecord {
                task_id: Some("t-1".into()),
                cause: DeadLetterCause::Agent {
                    reason: "malformed".into(),
                    detail: Some("bad json".into())
                },
                body: b"not json".to_vec(),
            })
        );
        let broker = decode(
            false,
            "dlq".into(),
            None,
            &headers(&[("x-first-death-reason", "delivery_limit")]),
            br#"{"id":"t-2"}"#.to_vec(),
            false,
        );
        let Outcome::DeadLetter(record) = broker else {
            panic!("not a dead letter: {broker:?}")
        };
        assert_eq!(record.task_id.as_deref(), Some("t-2"));
        assert_eq!(
            record.cause,
            DeadLetterCause::Broker {
                reason: "delivery_limit".into()
            }
        );
    }

    #[test]
    fn a_result_that_is_not_a_task_result_is_flagged() {
        let outcome = decode(
            true,
            "results".into(),
            Some("t".into()),
            &FieldTable::default(),
            b"{}".to_vec(),
            false,
        );
        assert!(
            matches!(outcome, Outcome::Undecodable { .. }),
            "{outcome:?}"
        );
    }
}
