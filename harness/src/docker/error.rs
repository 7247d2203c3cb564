//! Errors of the Docker layer. Each names the object involved and, where there is one, the fix.

use std::time::Duration;

use super::ContainerStatus;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "no Docker daemon at {host}: start dockerd (`dockerd &`) or set DOCKER_HOST ({source})"
    )]
    NoDaemon {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },

    #[error(
        "image `{image}` is not in the local Docker engine: run `cargo xtask images` \
         (agentfleet never pulls images)"
    )]
    ImageMissing { image: String },

    #[error("Docker refused to {action} `{object}`: {source}{}", hint_for(source))]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: bollard::errors::Error,
    },

    #[error("container `{container}` has no host port published for {container_port}/tcp")]
    PortNotPublished {
        container: String,
        container_port: u16,
    },

    #[error(
        "Docker events stream for `{container}` ended before {waiting_for}; last state: {last}"
    )]
    EventsEnded {
        container: String,
        waiting_for: String,
        last: ContainerStatus,
    },

    #[error(
        "timed out after {waited:?} waiting for `{container}` to {waiting_for}; last state: {last}"
    )]
    Timeout {
        container: String,
        waiting_for: String,
        waited: Duration,
        last: ContainerStatus,
    },

    #[error(
        "timed out after {waited:?} waiting for a log line of `{container}` that {waiting_for}; \
         last lines:\n{tail}"
    )]
    LogTimeout {
        container: String,
        waiting_for: String,
        waited: Duration,
        tail: String,
    },

    #[error(
        "`{container}` stopped logging (exited?) before a line that {waiting_for}; last lines:\n{tail}"
    )]
    LogEnded {
        container: String,
        waiting_for: String,
        tail: String,
    },

    #[error("helper container `{container}` failed with exit code {exit_code}: {output}")]
    HelperFailed {
        container: String,
        exit_code: i64,
        output: String,
    },
}

impl DockerError {
    pub(crate) fn api(
        action: &'static str,
        object: impl Into<String>,
    ) -> impl FnOnce(bollard::errors::Error) -> DockerError {
        let object = object.into();
        move |source| DockerError::Api {
            action,
            object,
            source,
        }
    }

    /// True when Docker answered 404 (no such container / network / volume / image).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            DockerError::Api {
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                },
                ..
            }
        )
    }
}

/// The fix for Docker refusals whose message alone does not say what to do.
fn hint_for(source: &bollard::errors::Error) -> &'static str {
    if source
        .to_string()
        .contains("non-overlapping IPv4 address pool")
    {
        // Each agentfleet scope makes two or three networks; the default pools hold about 30.
        "\n  fix: Docker ran out of network address pools: remove leftovers with `agentfleet sweep`, \
         or give dockerd a larger pool in /etc/docker/daemon.json, e.g. \
         {\"default-address-pools\":[{\"base\":\"10.213.0.0/16\",\"size\":24}]}, and restart it"
    } else {
        ""
    }
}
