//! The fleet's dependencies as containers on a scope's networks: the RabbitMQ broker and the LLM
//! gateway simulator, each with its host-side client.

pub mod gateway;
pub mod prometheus;
pub mod rabbitmq;

use std::time::Duration;

use crate::docker::{ContainerStatus, DockerError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(
        "{service} was not ready after {waited:?}: {last_error}\nlast log lines of {container}:\n{logs}"
    )]
    NotReady {
        service: &'static str,
        container: String,
        waited: Duration,
        last_error: String,
        logs: String,
    },
    #[error(
        "{service} container {container} stopped while starting ({status})\nlast log lines:\n{logs}"
    )]
    Exited {
        service: &'static str,
        container: String,
        status: ContainerStatus,
        logs: String,
    },
    #[error("{service} request {method} {url} failed: {source}")]
    Http {
        service: &'static str,
        method: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{service} answered {status} to {method} {url}: {body}")]
    Status {
        service: &'static str,
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// An HTTP client for host-side calls to services; short timeouts, since everything is local.
pub(crate) fn http_client() -> reqwest::Client {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("a reqwest client with only timeouts set always builds")
}

/// Lines of a service's log shown when it fails to start.
pub(crate) const START_LOG_LINES: usize = 25;
