//! A handle to one created container: lifecycle, inspection, logs, waits.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::{
    KillContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures::StreamExt;

use super::{ContainerStatus, DockerError, Engine};

/// A container created through a [`crate::Scope`]. Dropping the handle does not remove the
/// container: the scope owns removal.
#[derive(Debug, Clone)]
pub struct Container {
    engine: Engine,
    id: String,
    name: String,
}

/// Lines kept from the end of the log in error messages.
const TAIL_LINES: usize = 30;

/// What `docker inspect` says of a container's hardening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedSecurity {
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub read_only_rootfs: bool,
}

impl Container {
    pub(crate) fn new(engine: Engine, id: String, name: String) -> Container {
        Container { engine, id, name }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    async fn inspect(&self) -> Result<bollard::models::ContainerInspectResponse, DockerError> {
        self.engine
            .raw()
            .inspect_container(&self.id, None)
            .await
            .map_err(DockerError::api("inspect container", &self.name))
    }

    /// The container's address on `network`, or `None` when it is not attached there.
    pub async fn ip_on(&self, network: &str) -> Result<Option<std::net::IpAddr>, DockerError> {
        let inspect = self.inspect().await?;
        Ok(inspect
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.ip_address)
            .and_then(|ip| ip.parse().ok()))
    }

    pub async fn start(&self) -> Result<(), DockerError> {
        self.engine
            .raw()
            .start_container(&self.id, None)
            .await
            .map_err(DockerError::api("start container", &self.name))
    }

    /// `docker stop -t <grace>`: SIGTERM, then SIGKILL once the grace period is over. Returns when
    /// the container has stopped. Docker counts the grace in whole seconds (rounded down here).
    pub async fn stop(&self, grace: Duration) -> Result<(), DockerError> {
        let grace_secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::new().t(grace_secs).build();
        match self
            .engine
            .raw()
            .stop_container(&self.id, Some(options))
            .await
        {
            // 304: already stopped, which is what was asked for.
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(source) => Err(DockerError::Api {
                action: "stop container",
                object: self.name.clone(),
                source,
            }),
        }
    }

    /// Sends `signal` (e.g. `SIGKILL`, `SIGTERM`) to the container's main process.
    pub async fn kill(&self, signal: &str) -> Result<(), DockerError> {
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        self.engine
            .raw()
            .kill_container(&self.id, Some(options))
            .await
            .map_err(DockerError::api("kill container", &self.name))
    }

    pub async fn status(&self) -> Result<ContainerStatus, DockerError> {
        inspect_status(&self.engine, &self.id).await
    }

    /// The security settings Docker applied (from `docker inspect`'s HostConfig), so a test
    /// can prove the template's securityContext reached the container.
    pub async fn security(&self) -> Result<AppliedSecurity, DockerError> {
        let host = self.inspect().await?.host_config.unwrap_or_default();
        Ok(AppliedSecurity {
            cap_drop: host.cap_drop.unwrap_or_default(),
            security_opt: host.security_opt.unwrap_or_default(),
            read_only_rootfs: host.readonly_rootfs.unwrap_or(false),
        })
    }

    /// The host port Docker bound on 127.0.0.1 for `container_port`/tcp. Looked up on every call:
    /// a restarted container gets a new port.
    pub async fn host_port(&self, container_port: u16) -> Result<u16, DockerError> {
        let inspect = self.inspect().await?;
        let key = format!("{container_port}/tcp");
        inspect
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|mut ports| ports.remove(&key).flatten())
            .into_iter()
            .flatten()
            .find_map(|binding| binding.host_port.and_then(|p| p.parse().ok()))
            .ok_or_else(|| DockerError::PortNotPublished {
                container: self.name.clone(),
                container_port,
            })
    }

    /// The container's whole log so far (stdout and stderr interleaved as Docker stored them).
    pub async fn logs(&self) -> Result<String, DockerError> {
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
        let mut stream = self.engine.raw().logs(&self.id, Some(options));
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(DockerError::api("read logs of", &self.name))?;
            text.push_str(&String::from_utf8_lossy(log_bytes(&chunk)));
        }
        Ok(text)
    }

    /// The last `n` log lines, for error messages and failure reports.
    pub async fn log_tail(&self, n: usize) -> String {
        match self.logs().await {
            Ok(text) => tail(&text, n),
            Err(e) => format!("(logs unavailable: {e})"),
        }
    }

    /// Waits, event-driven, until `done` holds for the container's state.
    pub async fn wait_for(
        &self,
        waiting_for: &str,
        timeout: Duration,
        done: impl FnMut(&ContainerStatus) -> bool,
    ) -> Result<ContainerStatus, DockerError> {
        super::events::wait_for_status(&self.engine, &self.id, waiting_for, timeout, done)
            .await
            .map_err(|e| rename(e, &self.name))
    }

    /// Waits until the container has exited (and is not being restarted by its policy).
    pub async fn wait_exit(&self, timeout: Duration) -> Result<ContainerStatus, DockerError> {
        self.wait_for("exit", timeout, ContainerStatus::has_exited)
            .await
    }

    /// The second half of [`Container::stop`], for a caller that sent the SIGTERM itself (to act
    /// between the signal and the exit): waits up to `grace` for the exit, then SIGKILLs and
    /// waits for that.
    pub async fn wait_exit_or_kill(&self, grace: Duration) -> Result<ContainerStatus, DockerError> {
        match self.wait_exit(grace).await {
            Ok(status) => Ok(status),
            Err(_) => {
                self.kill("SIGKILL").await?;
                self.wait_exit(Duration::from_secs(15)).await
            }
        }
    }

    /// Follows the log from its beginning until a line satisfies `matches`; returns that line.
    /// Fails if the log ends (the container exited) or `timeout` passes first, with the last lines.
    pub async fn wait_for_log(
        &self,
        waiting_for: &str,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Result<String, DockerError> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(true)
            .build();
        let mut stream = self.engine.raw().logs(&self.id, Some(options));
        let mut seen = String::new();
        let mut pending = String::new();
        let scan = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(DockerError::api("follow logs of", &self.name))?;
                pending.push_str(&String::from_utf8_lossy(log_bytes(&chunk)));
                while let Some(newline) = pending.find('\n') {
                    let line: String = pending.drain(..=newline).collect();
                    seen.push_str(&line);
                    if matches(line.trim_end()) {
                        return Ok(Some(line.trim_end().to_owned()));
                    }
                }
            }
            // A last line without a newline still counts.
            if !pending.is_empty() && matches(pending.trim_end()) {
                return Ok(Some(pending.trim_end().to_owned()));
            }
            seen.push_str(&pending);
            Ok(None)
        };
        let outcome = tokio::time::timeout(timeout, scan).await;
        match outcome {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => Err(DockerError::LogEnded {
                container: self.name.clone(),
                waiting_for: waiting_for.to_owned(),
                tail: tail(&seen, TAIL_LINES),
            }),
            Ok(Err(e)) => Err(e),
            Err(_elapsed) => Err(DockerError::LogTimeout {
                container: self.name.clone(),
                waiting_for: waiting_for.to_owned(),
                waited: timeout,
                tail: tail(&seen, TAIL_LINES),
            }),
        }
    }

    /// Force-removes the container (and its anonymous volumes). Missing is not an error.
    pub async fn remove(&self) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self
            .engine
            .raw()
            .remove_container(&self.id, Some(options))
            .await
        {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(source) => Err(DockerError::Api {
                action: "remove container",
                object: self.name.clone(),
                source,
            }),
        }
    }
}

pub(crate) async fn inspect_status(
    engine: &Engine,
    container: &str,
) -> Result<ContainerStatus, DockerError> {
    let inspect = engine
        .raw()
        .inspect_container(container, None)
        .await
        .map_err(DockerError::api("inspect container", container))?;
    Ok(ContainerStatus::from_inspect(&inspect))
}

fn log_bytes(chunk: &LogOutput) -> &[u8] {
    match chunk {
        LogOutput::StdErr { message }
        | LogOutput::StdOut { message }
        | LogOutput::StdIn { message }
        | LogOutput::Console { message } => message,
    }
}

/// Errors from the events module name the container by id; callers know it by name.
fn rename(error: DockerError, name: &str) -> DockerError {
    match error {
        DockerError::Timeout {
            waiting_for,
            waited,
            last,
            ..
        } => DockerError::Timeout {
            container: name.to_owned(),
            waiting_for,
            waited,
            last,
        },
        DockerError::EventsEnded {
            waiting_for, last, ..
        } => DockerError::EventsEnded {
            container: name.to_owned(),
            waiting_for,
            last,
        },
        other => other,
    }
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
