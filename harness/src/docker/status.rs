//! A container's observed state, reduced to what scenarios assert on.

use std::fmt;

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};

/// The subset of `docker inspect` the scenarios need: is it running, how did it end, how often
/// was it restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// `created`, `running`, `restarting`, `exited`, `dead`, ... (Docker's words).
    pub state: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub restart_count: i64,
    /// Docker's own error for the last start, if any (e.g. a missing entrypoint).
    pub error: Option<String>,
}

impl ContainerStatus {
    pub(crate) fn unknown() -> ContainerStatus {
        ContainerStatus {
            state: "unknown (not inspected yet)".into(),
            running: false,
            exit_code: None,
            oom_killed: false,
            restart_count: 0,
            error: None,
        }
    }

    pub(crate) fn from_inspect(inspect: &ContainerInspectResponse) -> ContainerStatus {
        let state = inspect.state.clone().unwrap_or_default();
        let status = state.status.unwrap_or(ContainerStateStatusEnum::EMPTY);
        let running = state.running.unwrap_or(false);
        ContainerStatus {
            state: status.to_string(),
            running,
            // Docker reports 0 for containers that never exited; only an exited one has a code.
            exit_code: if running || status == ContainerStateStatusEnum::CREATED {
                None
            } else {
                state.exit_code
            },
            oom_killed: state.oom_killed.unwrap_or(false),
            restart_count: inspect.restart_count.unwrap_or(0),
            error: state.error.filter(|e| !e.is_empty()),
        }
    }

    /// Exited (or dead) and not about to be restarted by a restart policy.
    pub fn has_exited(&self) -> bool {
        !self.running && matches!(self.state.as_str(), "exited" | "dead")
    }
}

impl fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.state)?;
        if let Some(code) = self.exit_code {
            write!(f, ", exit code {code}")?;
        }
        if self.oom_killed {
            write!(f, ", OOMKilled")?;
        }
        if self.restart_count > 0 {
            write!(f, ", {} restarts", self.restart_count)?;
        }
        if let Some(error) = &self.error {
            write!(f, ", error: {error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::ContainerState;

    use super::*;

    fn inspect(
        status: ContainerStateStatusEnum,
        running: bool,
        code: i64,
        oom: bool,
    ) -> ContainerInspectResponse {
        ContainerInspectResponse {
            state: Some(ContainerState {
                status: Some(status),
                running: Some(running),
                exit_code: Some(code),
                oom_killed: Some(oom),
                error: Some(String::new()),
                ..Default::default()
            }),
            restart_count: Some(2),
            ..Default::default()
        }
    }

    #[test]
    fn an_oom_killed_container_reports_137_and_the_flag() {
        let s = ContainerStatus::from_inspect(&inspect(
            ContainerStateStatusEnum::EXITED,
            false,
            137,
            true,
        ));
        assert!(s.has_exited());
        assert_eq!(s.exit_code, Some(137));
        assert!(s.oom_killed);
        assert_eq!(s.error, None);
        assert_eq!(
            s.to_string(),
            "exited, exit code 137, OOMKilled, 2 restarts"
        );
    }

    #[test]
    fn a_running_container_has_no_exit_code() {
        let s = ContainerStatus::from_inspect(&inspect(
            ContainerStateStatusEnum::RUNNING,
            true,
            0,
            false,
        ));
        assert!(!s.has_exited());
        assert_eq!(s.exit_code, None);
    }
}
