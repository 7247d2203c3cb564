//! The fleet's dependencies as containers on a scope's networks: the RabbitMQ broker and the LLM
//! gateway simulator, each with its host-side client.

pub mod gateway;
pub mod prometheus;
pub mod rabbitmq;

use std::future::Future;
use std::time::Duration;

use crate::docker::{Container, ContainerStatus, DockerError};
use crate::wait::{Probe, until};

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

/// Waits until a freshly started service answers `probe`, checking every `interval` for up to
/// `timeout`.
///
/// Each round first inspects the container, so a service that crashes on start fails at once
/// with [`ServiceError::Exited`] instead of after the whole timeout; either failure carries the
/// container's last log lines, which usually say why. `probe` says what it saw when the service
/// is not ready yet (`Err`), and the last of those ends up in [`ServiceError::NotReady`].
pub(crate) async fn wait_ready<F, Fut>(
    service: &'static str,
    container: &Container,
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: F,
) -> Result<(), ServiceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let outcome = until(what, timeout, interval, || {
        let attempt = probe();
        async move {
            match container.status().await {
                Ok(status) if status.has_exited() => return Probe::Ready(Err(status)),
                Ok(_) => {}
                Err(e) => return Probe::NotYet(format!("cannot inspect the container: {e}")),
            }
            match attempt.await {
                Ok(()) => Probe::Ready(Ok(())),
                Err(seen) => Probe::NotYet(seen),
            }
        }
    })
    .await;
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(status)) => Err(ServiceError::Exited {
            service,
            container: container.name().to_owned(),
            status,
            logs: container.log_tail(START_LOG_LINES).await,
        }),
        Err(timeout) => Err(ServiceError::NotReady {
            service,
            container: container.name().to_owned(),
            waited: timeout.waited,
            last_error: timeout.last_seen,
            logs: container.log_tail(START_LOG_LINES).await,
        }),
    }
}

/// Passes a successful answer through and turns any other into [`ServiceError::Status`] with
/// the body the service sent, which usually names the problem.
pub(crate) async fn require_success(
    service: &'static str,
    method: &'static str,
    url: String,
    response: reqwest::Response,
) -> Result<reqwest::Response, ServiceError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(ServiceError::Status {
        service,
        method,
        url,
        status: status.as_u16(),
        body,
    })
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for a value in a URL path or
/// query string.
pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
