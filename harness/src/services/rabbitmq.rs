//! RabbitMQ in a container: reachable as `rabbitmq:5672` from the agents' network and through
//! ports published on 127.0.0.1 from the host.

use std::time::Duration;

use agentfleet_protocol::Topology;
use serde::Deserialize;

use super::{ServiceError, http_client, percent_encode, require_success, wait_ready};
use crate::Scope;
use crate::docker::{Container, ContainerSpec};
use crate::queue::QueueClient;

/// DNS name of the broker on the agents' network.
pub const ALIAS: &str = "rabbitmq";
pub const AMQP_PORT: u16 = 5672;
pub const MANAGEMENT_PORT: u16 = 15672;
/// The image allows `guest` from any host (its default restricts it to loopback).
const USER: &str = "guest";
const PASSWORD: &str = "guest";
/// Boot of an Erlang node on a busy two-core machine: usually 5-15 s.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(90);

/// The URL agents use; valid before the broker exists (the broker-down-at-start scenario).
pub fn agent_url() -> String {
    format!("amqp://{USER}:{PASSWORD}@{ALIAS}:{AMQP_PORT}/%2f")
}

/// The broker's container spec: on the edge network (published ports) and on the agents'
/// network as `rabbitmq`. The hostname is fixed because it names the Erlang node and so its
/// data directory.
pub fn spec(scope: &Scope, image: &str) -> ContainerSpec {
    ContainerSpec::new("rabbitmq", image)
        .hostname(ALIAS)
        .network(scope.edge_network(), [ALIAS])
        .network(scope.agents_network(), [ALIAS])
        .publish(AMQP_PORT)
        .publish(MANAGEMENT_PORT)
        .memory_mib(1024)
        .stop_timeout(Duration::from_secs(10))
}

/// A running broker.
#[derive(Debug)]
pub struct RabbitMq {
    container: Container,
    host_url: String,
    management: Management,
}

impl RabbitMq {
    /// Starts the broker and returns once it accepts AMQP connections from the host.
    pub async fn start(
        scope: &Scope,
        image: &str,
        timeout: Duration,
    ) -> Result<RabbitMq, ServiceError> {
        scope.engine().require_image(image).await?;
        let container = scope.run(spec(scope, image)).await?;
        let amqp_port = container.host_port(AMQP_PORT).await?;
        let management_port = container.host_port(MANAGEMENT_PORT).await?;
        let broker = RabbitMq {
            host_url: format!("amqp://{USER}:{PASSWORD}@127.0.0.1:{amqp_port}/%2f"),
            management: Management::new(
                format!("http://127.0.0.1:{management_port}"),
                USER,
                PASSWORD,
            ),
            container,
        };
        broker.wait_ready(timeout).await?;
        Ok(broker)
    }

    /// Retries an AMQP connection until one succeeds; fails early if the container stops.
    async fn wait_ready(&self, timeout: Duration) -> Result<(), ServiceError> {
        wait_ready(
            "RabbitMQ",
            &self.container,
            "an AMQP connection to RabbitMQ",
            timeout,
            Duration::from_millis(250),
            || async {
                let client = QueueClient::connect(&self.host_url, Topology::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = client.close().await;
                Ok(())
            },
        )
        .await
    }

    /// AMQP URL for the host side (credentials included: do not print it; see
    /// [`crate::queue::redact_url`]).
    pub fn host_url(&self) -> &str {
        &self.host_url
    }

    pub fn container(&self) -> &Container {
        &self.container
    }

    pub fn management(&self) -> &Management {
        &self.management
    }

    /// A client with its topology declared.
    pub async fn client(
        &self,
        topology: Topology,
    ) -> Result<QueueClient, crate::queue::QueueError> {
        let client = QueueClient::connect(&self.host_url, topology).await?;
        client.declare_topology().await?;
        Ok(client)
    }
}

/// Queue counters from the management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct QueueStats {
    #[serde(rename = "messages_ready", default)]
    pub ready: u64,
    #[serde(rename = "messages_unacknowledged", default)]
    pub unacked: u64,
    #[serde(default)]
    pub consumers: u64,
}

/// `%XX` escapes decoded (userinfo of a URL); invalid escapes are kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The RabbitMQ management HTTP API (port 15672). Its counters are sampled by the broker every
/// few seconds, so they lag; exact ready counts come from [`QueueClient::depth`].
#[derive(Clone)]
pub struct Management {
    base: String,
    user: String,
    password: String,
    http: reqwest::Client,
}

/// Never prints the password.
impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("base", &self.base)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Management {
    /// The API at `base` (`http://host:15672`), authenticating as `user` (which needs the
    /// `management` or `administrator` tag).
    pub fn new(
        base: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Management {
        Management {
            base: base.into(),
            user: user.into(),
            password: password.into(),
            http: http_client(),
        }
    }

    /// The API at `base` with the credentials of an AMQP URL
    /// (`amqp://user:password@host:port/vhost`, percent-encoded); None if it has none.
    pub fn from_amqp_url(base: impl Into<String>, url: &str) -> Option<Management> {
        let (_, rest) = url.split_once("://")?;
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        let (userinfo, _) = authority.rsplit_once('@')?;
        let (user, password) = userinfo.split_once(':')?;
        Some(Management::new(
            base,
            percent_decode(user),
            percent_decode(password),
        ))
    }

    /// Creates (or updates) a user with full permissions on the default vhost: the credentials
    /// the manifests' example Secret gives the agents, so the Docker runtime can use the Secret
    /// as it is instead of swapping in the harness' own credentials.
    pub async fn add_user(&self, user: &str, password: &str) -> Result<(), ServiceError> {
        let user_path = format!("/api/users/{}", percent_encode(user));
        self.put(
            &user_path,
            &serde_json::json!({ "password": password, "tags": "" }),
        )
        .await?;
        let permissions = format!("/api/permissions/%2F/{}", percent_encode(user));
        self.put(
            &permissions,
            &serde_json::json!({ "configure": ".*", "write": ".*", "read": ".*" }),
        )
        .await
    }

    async fn put(&self, path: &str, body: &serde_json::Value) -> Result<(), ServiceError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .put(&url)
            .basic_auth(&self.user, Some(&self.password))
            .json(body)
            .send()
            .await
            .map_err(|source| ServiceError::Http {
                service: "RabbitMQ management",
                method: "PUT",
                url: url.clone(),
                source,
            })?;
        require_success("RabbitMQ management", "PUT", url, response).await?;
        Ok(())
    }

    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats, ServiceError> {
        let url = format!("{}/api/queues/%2F/{queue}", self.base);
        let http_error = |source| ServiceError::Http {
            service: "RabbitMQ management",
            method: "GET",
            url: url.clone(),
            source,
        };
        let response = self
            .http
            .get(&url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .map_err(http_error)?;
        require_success("RabbitMQ management", "GET", url.clone(), response)
            .await?
            .json()
            .await
            .map_err(http_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_credentials_come_from_the_amqp_url_and_are_never_printed() {
        let m = Management::from_amqp_url(
            "http://127.0.0.1:1",
            "amqp://agent%40fleet:p%3Ass@rabbitmq.message-queue.svc:5672/%2f",
        )
        .unwrap();
        assert_eq!(
            (m.user.as_str(), m.password.as_str()),
            ("agent@fleet", "p:ss")
        );
        assert!(!format!("{m:?}").contains("p:ss"));
        assert!(Management::from_amqp_url("http://x", "amqp://host:5672/%2f").is_none());
    }
}
