//! The RabbitMQ side: connecting (with backoff, up to a deadline), declaring the topology,
//! consuming with prefetch 1 and manual ack, and publishing with publisher confirms.
//!
//! Two channels: one consumes tasks, one publishes results and dead letters in confirm mode.
//! Keeping confirms off the consuming channel means a publish can never be confused with, or
//! blocked behind, the consumer's flow.
//!
//! The broker URL carries credentials, so only [`BrokerConfig::endpoint`] (host:port/vhost)
//! ever reaches a log line or an error.

use std::time::Duration;

use agentfleet_protocol::{Topology, topology::ArgValue};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, ErrorKind,
    options::{
        BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions,
    },
    protocol::AMQPErrorKind,
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use tokio::time::{Instant, sleep, timeout};
use tracing::{info, warn};

use crate::{backoff::Backoff, config::BrokerConfig};

/// Bounds one connection attempt (TCP, TLS, AMQP handshake, topology).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest bound of an attempt, even at the deadline.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// Reconnect backoff: full jitter between 0 and min(5 s, 200 ms x 2^n).
const RECONNECT_BASE: Duration = Duration::from_millis(200);
const RECONNECT_CAP: Duration = Duration::from_secs(5);
/// A confirm that takes longer means a stuck connection; the caller reconnects.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// Bounds closing the channels and the connection at exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "broker {endpoint} unreachable for {waited_secs} s (AGENT_BROKER_DEADLINE_SECS); last error: {last_error}"
    )]
    Unreachable {
        endpoint: String,
        waited_secs: u64,
        last_error: String,
    },
    /// The broker refused the topology (e.g. PRECONDITION_FAILED: a queue exists with other
    /// arguments). Retrying cannot fix that.
    #[error(
        "broker {endpoint} refused to declare queue {queue:?}: {source}; if the queue exists with \
         other arguments, delete it or align AGENT_DELIVERY_LIMIT / the queue names with the fleet's"
    )]
    Topology {
        endpoint: String,
        queue: String,
        #[source]
        source: lapin::Error,
    },
    #[error("AMQP {operation} failed: {source}")]
    Amqp {
        operation: &'static str,
        #[source]
        source: lapin::Error,
    },
    #[error("the broker nacked the message published to {queue:?}")]
    Nacked { queue: String },
    #[error(
        "the message published to {queue:?} was returned unroutable ({reply}): does the queue exist?"
    )]
    Unroutable { queue: String, reply: String },
    #[error("no publisher confirm for the message to {queue:?} within {} s", CONFIRM_TIMEOUT.as_secs())]
    ConfirmTimeout { queue: String },
}

impl BrokerError {
    /// A refusal about this one message (nack, unroutable), after which the connection is
    /// still usable; every other error means the connection or channel is gone.
    pub fn is_message_refused(&self) -> bool {
        matches!(
            self,
            BrokerError::Nacked { .. } | BrokerError::Unroutable { .. }
        )
    }

    fn amqp(operation: &'static str) -> impl FnOnce(lapin::Error) -> BrokerError {
        move |source| BrokerError::Amqp { operation, source }
    }
}

/// Why one connection attempt failed.
enum AttemptError {
    /// Worth another try (broker down, restarting, network).
    Transient(String),
    Fatal(BrokerError),
}

/// A live connection with its consuming and publishing channels.
#[derive(Debug)]
pub struct Broker {
    connection: Connection,
    consume: Channel,
    publish: Channel,
    topology: Topology,
    consumer_tag: String,
    endpoint: String,
}

impl Broker {
    /// Connects, declares the topology and starts consuming the task queue, retrying with
    /// capped backoff and full jitter until `config.deadline` has passed since the call.
    pub async fn connect(
        config: &BrokerConfig,
        agent_index: u32,
    ) -> Result<(Broker, Consumer), BrokerError> {
        let endpoint = config.endpoint();
        let started = Instant::now();
        let deadline = started + config.deadline;
        let backoff = Backoff::new(RECONNECT_BASE, RECONNECT_CAP, true);
        let mut failures = 0u32;
        loop {
            // The last attempt, at the deadline, still gets a fair chance to complete.
            let attempt_timeout = deadline
                .saturating_duration_since(Instant::now())
                .clamp(MIN_ATTEMPT_TIMEOUT, ATTEMPT_TIMEOUT);
            let failure = match timeout(attempt_timeout, connect_once(config, agent_index)).await {
                Ok(Ok(session)) => {
                    info!(
                        broker = %endpoint,
                        attempts = failures + 1,
                        queue = %config.topology.task_queue,
                        "connected to the broker; topology declared; consuming"
                    );
                    return Ok(session);
                }
                Ok(Err(AttemptError::Fatal(error))) => return Err(error),
                Ok(Err(AttemptError::Transient(reason))) => reason,
                Err(_elapsed) => format!("no answer within {} s", attempt_timeout.as_secs_f32()),
            };
            failures += 1;
            let now = Instant::now();
            if now >= deadline {
                return Err(BrokerError::Unreachable {
                    endpoint,
                    waited_secs: started.elapsed().as_secs(),
                    last_error: failure,
                });
            }
            // Never sleep past the deadline: the final attempt happens at it.
            let delay = backoff
                .delay(failures - 1, &mut rand::rng())
                .min(deadline - now);
            warn!(
                broker = %endpoint,
                attempt = failures,
                error = %failure,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "cannot connect to the broker; retrying"
            );
            sleep(delay).await;
        }
    }

    /// Stops the broker from sending more tasks; unacked ones stay with this channel until it
    /// closes.
    pub async fn cancel_consumer(&self) -> Result<(), BrokerError> {
        self.consume
            .basic_cancel(
                ShortString::from(self.consumer_tag.as_str()),
                BasicCancelOptions::default(),
            )
            .await
            .map_err(BrokerError::amqp("basic.cancel"))
    }

    /// Publishes `body` to `queue` (default exchange, persistent, mandatory) and waits for
    /// the broker's confirm. Only `Ok` means the broker has taken responsibility for it.
    pub async fn publish_confirmed(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BrokerError> {
        let confirm = self
            .publish
            .basic_publish(
                ShortString::from(""),
                ShortString::from(queue),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties.with_delivery_mode(2),
            )
            .await
            .map_err(BrokerError::amqp("basic.publish"))?;
        let confirmation = timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| BrokerError::ConfirmTimeout {
                queue: queue.to_owned(),
            })?
            .map_err(BrokerError::amqp("publisher confirm"))?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(BrokerError::Unroutable {
                queue: queue.to_owned(),
                reply: format!("{} {}", returned.reply_code, returned.reply_text),
            }),
            Confirmation::Nack(_) => Err(BrokerError::Nacked {
                queue: queue.to_owned(),
            }),
            // confirm_select was called at connect, so the broker always confirms.
            Confirmation::NotRequested => Err(BrokerError::Nacked {
                queue: queue.to_owned(),
            }),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether the connection is still up (checked between steps).
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected() && self.consume.status().connected()
    }

    /// Closes both channels and the connection without acking anything: the broker requeues
    /// an unacked task for another agent.
    pub async fn close(&self) {
        for (channel, name) in [(&self.consume, "consuming"), (&self.publish, "publishing")] {
            if channel.status().connected() {
                let closed = timeout(
                    CLOSE_TIMEOUT,
                    channel.close(200, ShortString::from("agent stopping")),
                )
                .await;
                if !matches!(closed, Ok(Ok(()))) {
                    warn!(channel = name, "could not close the channel cleanly");
                }
            }
        }
        if self.connection.status().connected() {
            let closed = timeout(
                CLOSE_TIMEOUT,
                self.connection
                    .close(200, ShortString::from("agent stopping")),
            )
            .await;
            if !matches!(closed, Ok(Ok(()))) {
                warn!(broker = %self.endpoint, "could not close the connection cleanly");
            }
        }
    }
}

async fn connect_once(
    config: &BrokerConfig,
    agent_index: u32,
) -> Result<(Broker, Consumer), AttemptError> {
    let transient = |e: lapin::Error| AttemptError::Transient(e.to_string());
    let properties = ConnectionProperties::default()
        .with_connection_name(LongString::from(format!("agentfleet-agent-{agent_index}")));
    let connection = Connection::connect_uri(config.uri.clone(), properties)
        .await
        .map_err(transient)?;
    let consume = connection.create_channel().await.map_err(transient)?;
    let publish = connection.create_channel().await.map_err(transient)?;
    let topology = config.topology.clone();
    let endpoint = config.endpoint();
    declare_topology(&publish, &topology, &endpoint).await?;
    // One unacked task at a time: a second prefetched task would sit idle behind the first
    // and be requeued (with a burned delivery) if this agent dies.
    consume
        .basic_qos(1, BasicQosOptions::default())
        .await
        .map_err(transient)?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(transient)?;
    let consumer_tag = format!("agent-{agent_index}-{}", std::process::id());
    // Manual ack: a task is acked only after its result is confirmed.
    let consumer = consume
        .basic_consume(
            ShortString::from(topology.task_queue.as_str()),
            ShortString::from(consumer_tag.as_str()),
            BasicConsumeOptions {
                no_ack: false,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(transient)?;
    let broker = Broker {
        connection,
        consume,
        publish,
        topology,
        consumer_tag,
        endpoint,
    };
    Ok((broker, consumer))
}

/// Declares the task, result and dead-letter queues with the fleet's shared arguments.
/// Idempotent: redeclaring with the same arguments is a no-op for RabbitMQ.
async fn declare_topology(
    channel: &Channel,
    topology: &Topology,
    endpoint: &str,
) -> Result<(), AttemptError> {
    let queues = [
        (&topology.dead_letter_queue, topology.sink_queue_args()),
        (&topology.result_queue, topology.sink_queue_args()),
        (&topology.task_queue, topology.task_queue_args()),
    ];
    for (queue, args) in queues {
        let declared = channel
            .queue_declare(
                ShortString::from(queue.as_str()),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                field_table(&args),
            )
            .await;
        if let Err(source) = declared {
            // A soft (channel) error is the broker's answer to this declaration; anything else
            // (I/O, connection closed) is worth another connection attempt.
            if matches!(source.kind(), ErrorKind::ProtocolError(e) if matches!(e.kind(), AMQPErrorKind::Soft(_)))
            {
                return Err(AttemptError::Fatal(BrokerError::Topology {
                    endpoint: endpoint.to_owned(),
                    queue: queue.clone(),
                    source,
                }));
            }
            return Err(AttemptError::Transient(source.to_string()));
        }
    }
    Ok(())
}

/// Turns the protocol crate's plain argument list into lapin's table.
pub fn field_table(args: &[(&'static str, ArgValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in args {
        let value = match value {
            ArgValue::Str(s) => AMQPValue::LongString(LongString::from(s.as_str())),
            ArgValue::Int(n) => AMQPValue::LongLongInt(*n),
        };
        table.insert(ShortString::from(*key), value);
    }
    table
}

/// Header in which quorum queues count a message's earlier deliveries.
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// The `x-delivery-count` header quorum queues set on redeliveries (absent on the first).
pub fn delivery_count(properties: &BasicProperties) -> Option<u32> {
    let headers = properties.headers().as_ref()?;
    let value = headers.inner().get(DELIVERY_COUNT_HEADER)?;
    let count: i128 = match value {
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => (*n).into(),
        AMQPValue::Timestamp(n) => (*n).into(),
        _ => return None,
    };
    Some(u32::try_from(count.max(0)).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: AMQPValue) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(ShortString::from("x-delivery-count"), value);
        BasicProperties::default().with_headers(headers)
    }

    #[test]
    fn delivery_count_reads_any_integer_type() {
        assert_eq!(delivery_count(&BasicProperties::default()), None);
        assert_eq!(
            delivery_count(&with_header(AMQPValue::LongLongInt(2))),
            Some(2)
        );
        assert_eq!(delivery_count(&with_header(AMQPValue::LongInt(3))), Some(3));
        assert_eq!(
            delivery_count(&with_header(AMQPValue::ShortShortUInt(1))),
            Some(1)
        );
        assert_eq!(
            delivery_count(&with_header(AMQPValue::LongLongInt(-4))),
            Some(0)
        );
        assert_eq!(
            delivery_count(&with_header(AMQPValue::LongString("2".into()))),
            None
        );
    }

    #[test]
    fn topology_arguments_convert_to_amqp_values() {
        let table = field_table(&Topology::default().task_queue_args());
        let get = |k: &str| table.inner().get(k).cloned();
        assert_eq!(
            get("x-queue-type"),
            Some(AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(get("x-delivery-limit"), Some(AMQPValue::LongLongInt(3)));
        assert_eq!(
            get("x-dead-letter-exchange"),
            Some(AMQPValue::LongString("".into()))
        );
        assert_eq!(
            get("x-dead-letter-routing-key"),
            Some(AMQPValue::LongString("agent-tasks-dlq".into()))
        );
    }
}
