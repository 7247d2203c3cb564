//! The connection to the Docker engine.

use bollard::Docker;

use super::DockerError;

/// bollard's default when `DOCKER_HOST` is unset (not exported by bollard).
const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// A connected, version-negotiated Docker client. Cheap to clone (one shared connection pool).
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
}

impl Engine {
    /// Connects to the daemon named by `DOCKER_HOST` (default `unix:///var/run/docker.sock`),
    /// negotiates the API version down to the daemon's (1.41 on the machines this is built on:
    /// bollard speaks a newer one by default and the daemon would reject it) and pings it, so that
    /// a missing daemon is reported here, once, with the fix, rather than on the first container.
    pub async fn connect() -> Result<Engine, DockerError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned());
        let no_daemon = |source| DockerError::NoDaemon {
            host: host.clone(),
            source,
        };
        let docker = Docker::connect_with_defaults().map_err(no_daemon)?;
        let docker = docker.negotiate_version().await.map_err(no_daemon)?;
        docker.ping().await.map_err(no_daemon)?;
        Ok(Engine { docker, host })
    }

    /// The daemon address, for messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The underlying bollard client, for calls this layer does not wrap.
    pub fn raw(&self) -> &Docker {
        &self.docker
    }

    /// Fails with [`DockerError::ImageMissing`] (which says to run `cargo xtask images`) unless
    /// `image` is present locally. Nothing is ever pulled: the machines this runs on have no
    /// registry access, and a pulled image would not be the one under test anyway.
    pub async fn require_image(&self, image: &str) -> Result<(), DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(DockerError::ImageMissing {
                image: image.to_owned(),
            }),
            Err(source) => Err(DockerError::Api {
                action: "inspect image",
                object: image.to_owned(),
                source,
            }),
        }
    }
}
