//! The harness's side of the broker: declare the topology, publish tasks, take results and dead
//! letters off their queues as typed records ([`outcome`]), and read queue depths.

mod outcome;

pub use outcome::{DeadLetterCause, DeadLetterRecord, Outcome, Outcomes, ResultRecord};

use std::fmt;

use agentfleet_protocol::topology::ArgValue;
use agentfleet_protocol::{Task, Topology};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot connect to the broker at {endpoint}: {source}")]
    Connect {
        /// Host, port and vhost only: the URL's credentials are never shown.
        endpoint: String,
        #[source]
        source: lapin::Error,
    },
    #[error("the broker refused to {action} `{object}`: {source}")]
    Amqp {
        action: &'static str,
        object: String,
        #[source]
        source: lapin::Error,
    },
    #[error("the broker nacked the publish of `{message_id}` to `{queue}`")]
    Nacked { message_id: String, queue: String },
    #[error(
        "the publish of `{message_id}` to `{queue}` got no confirm: the channel is not in confirm mode"
    )]
    Unconfirmed { message_id: String, queue: String },
    #[error(
        "the publish of `{message_id}` was returned unroutable: queue `{queue}` does not exist \
         (declare the topology first)"
    )]
    Unroutable { message_id: String, queue: String },
}

impl QueueError {
    fn amqp(
        action: &'static str,
        object: impl Into<String>,
    ) -> impl FnOnce(lapin::Error) -> QueueError {
        let object = object.into();
        move |source| QueueError::Amqp {
            action,
            object,
            source,
        }
    }
}

/// `amqp://user:password@host:port/vhost` without the user and password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable AMQP URL>".to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// Turns the protocol's argument list into lapin's table. Strings are long strings, integers
/// signed 64-bit: the agent does the same, and RabbitMQ compares redeclarations by value and type
/// class, so both sides declaring from the same [`Topology`] cannot disagree.
pub fn field_table(args: Vec<(&'static str, ArgValue)>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in args {
        let value = match value {
            ArgValue::Str(s) => AMQPValue::LongString(LongString::from(s)),
            ArgValue::Int(i) => AMQPValue::LongLongInt(i),
        };
        table.insert(ShortString::from(key), value);
    }
    table
}

/// Depth of one queue as a passive declare reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    /// Messages ready for delivery (unacknowledged ones are not counted: for those, see
    /// [`crate::services::rabbitmq::Management::queue_stats`]).
    pub ready: u32,
    pub consumers: u32,
}

/// A connection with a publisher-confirm channel.
pub struct QueueClient {
    connection: Connection,
    channel: Channel,
    topology: Topology,
    endpoint: String,
}

impl fmt::Debug for QueueClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueClient")
            .field("endpoint", &self.endpoint)
            .field("topology", &self.topology)
            .finish()
    }
}

impl QueueClient {
    /// Connects and opens a channel in confirm mode. Does not declare anything.
    pub async fn connect(url: &str, topology: Topology) -> Result<QueueClient, QueueError> {
        crate::tls::install_crypto_provider();
        let endpoint = redact_url(url);
        let connect_error = |source| QueueError::Connect {
            endpoint: endpoint.clone(),
            source,
        };
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .map_err(connect_error)?;
        let channel = connection.create_channel().await.map_err(connect_error)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(QueueError::amqp("enable publisher confirms on", &endpoint))?;
        Ok(QueueClient {
            connection,
            channel,
            topology,
            endpoint,
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Declares the task, result and dead-letter queues with the protocol's arguments.
    pub async fn declare_topology(&self) -> Result<(), QueueError> {
        let t = &self.topology;
        self.declare(&t.task_queue, field_table(t.task_queue_args()))
            .await?;
        self.declare(&t.result_queue, field_table(t.sink_queue_args()))
            .await?;
        self.declare(&t.dead_letter_queue, field_table(t.sink_queue_args()))
            .await
    }

    async fn declare(&self, queue: &str, args: FieldTable) -> Result<(), QueueError> {
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        self.channel
            .queue_declare(queue.into(), options, args)
            .await
            .map_err(QueueError::amqp("declare queue", queue))?;
        Ok(())
    }

    /// Publishes a task (persistent, `message_id` = task id) and waits for the broker's confirm.
    pub async fn publish_task(&self, task: &Task) -> Result<(), QueueError> {
        self.publish_raw(&task.id, &task.to_json()).await
    }

    /// Publishes any body to the task queue under `message_id` (malformed-task scenarios).
    pub async fn publish_raw(&self, message_id: &str, body: &[u8]) -> Result<(), QueueError> {
        let queue = self.topology.task_queue.clone();
        let properties = BasicProperties::default()
            .with_message_id(message_id.into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = self
            .channel
            .basic_publish("".into(), queue.as_str().into(), options, body, properties)
            .await
            .map_err(QueueError::amqp("accept a publish to", &queue))?
            .await
            .map_err(QueueError::amqp("confirm a publish to", &queue))?;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::NotRequested => Err(QueueError::Unconfirmed {
                message_id: message_id.to_owned(),
                queue,
            }),
            Confirmation::Ack(Some(_returned)) => Err(QueueError::Unroutable {
                message_id: message_id.to_owned(),
                queue,
            }),
            Confirmation::Nack(_) => Err(QueueError::Nacked {
                message_id: message_id.to_owned(),
                queue,
            }),
        }
    }

    /// Ready messages and consumers of `queue` (passive declare: fails if it does not exist).
    pub async fn depth(&self, queue: &str) -> Result<QueueDepth, QueueError> {
        let options = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        // A failed passive declare closes the channel; use a throwaway one.
        let channel = self
            .connection
            .create_channel()
            .await
            .map_err(QueueError::amqp("open a channel for", queue))?;
        let q = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .map_err(QueueError::amqp("passively declare", queue))?;
        let _ = channel.close(200, "depth read".into()).await;
        Ok(QueueDepth {
            ready: q.message_count(),
            consumers: q.consumer_count(),
        })
    }

    /// Starts consuming the result and dead-letter queues. Every message is decoded into an
    /// [`Outcome`] and acked: the harness is their final consumer.
    pub async fn outcomes(&self) -> Result<Outcomes, QueueError> {
        Outcomes::start(&self.connection, &self.topology).await
    }

    /// Closes the connection (pending confirms are already awaited by every publish).
    pub async fn close(self) -> Result<(), QueueError> {
        self.connection
            .close(200, "harness done".into())
            .await
            .map_err(QueueError::amqp("close", &self.endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_credentials_only() {
        assert_eq!(
            redact_url("amqp://guest:s3cret@rabbitmq:5672/%2f"),
            "amqp://rabbitmq:5672/%2f"
        );
        assert_eq!(redact_url("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        assert_eq!(redact_url("amqps://u:p@w@h:1/v"), "amqps://h:1/v");
        assert!(!redact_url("nonsense:s3cret").contains("s3cret"));
    }

    #[test]
    fn topology_arguments_keep_types_the_broker_compares() {
        let t = Topology::default();
        let table = field_table(t.task_queue_args());
        let args = table.inner();
        assert_eq!(
            args.get("x-delivery-limit"),
            Some(&AMQPValue::LongLongInt(3))
        );
        assert_eq!(
            args.get("x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(
            args.get("x-dead-letter-routing-key"),
            Some(&AMQPValue::LongString(t.dead_letter_queue.clone().into()))
        );
    }
}
