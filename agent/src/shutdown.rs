//! SIGTERM / SIGINT: the stop request and its grace deadline.
//!
//! Kubernetes (eviction, scale-down, rollout) and `docker stop` send SIGTERM and SIGKILL after
//! the pod's grace period. The agent stops taking work at once, may finish the step in flight
//! until `AGENT_STOP_GRACE_MS` after the signal, and then leaves. [`Stop`] is the read side
//! every part of the agent can wait on; the signal listener is the only writer.

use std::time::Duration;

use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
    time::Instant,
};

/// Observes the stop request. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Stop {
    requested_at: watch::Receiver<Option<Instant>>,
    grace: Duration,
}

/// Requests a stop; held by the signal listener (or a test).
#[derive(Debug)]
pub struct StopTrigger {
    requested_at: watch::Sender<Option<Instant>>,
}

impl StopTrigger {
    /// Requests the stop now. Later calls keep the first request's time (and its deadline).
    pub fn request(&self) -> bool {
        self.requested_at.send_if_modified(|at| {
            if at.is_some() {
                return false;
            }
            *at = Some(Instant::now());
            true
        })
    }
}

/// A trigger and the stop it controls.
pub fn channel(grace: Duration) -> (StopTrigger, Stop) {
    let (tx, rx) = watch::channel(None);
    (
        StopTrigger { requested_at: tx },
        Stop {
            requested_at: rx,
            grace,
        },
    )
}

impl Stop {
    pub fn is_requested(&self) -> bool {
        self.requested_at.borrow().is_some()
    }

    /// When the grace period ends, once a stop was requested.
    pub fn deadline(&self) -> Option<Instant> {
        self.requested_at.borrow().map(|at| at + self.grace)
    }

    /// Resolves when a stop is requested (never, if its trigger is gone unused).
    pub async fn requested(&self) {
        let mut rx = self.requested_at.clone();
        if rx.wait_for(Option::is_some).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves when the grace period after the stop request has run out.
    pub async fn grace_expired(&self) {
        self.requested().await;
        if let Some(deadline) = self.deadline() {
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Installs SIGTERM and SIGINT handlers that trigger the returned [`Stop`]. With
/// `ignore_sigterm` (a test knob) both signals are logged and ignored, so the platform has to
/// SIGKILL the agent at its own deadline.
pub fn listen(grace: Duration, ignore_sigterm: bool) -> std::io::Result<Stop> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let (trigger, stop) = channel(grace);
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = sigterm.recv() => "SIGTERM",
                Some(()) = sigint.recv() => "SIGINT",
                else => break,
            };
            if ignore_sigterm {
                tracing::warn!(
                    signal = name,
                    "ignoring the signal (AGENT_TEST_IGNORE_SIGTERM=true)"
                );
            } else if trigger.request() {
                tracing::info!(
                    signal = name,
                    grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                    "stop requested: no new work; the step in flight may finish within the grace period"
                );
            } else {
                tracing::info!(signal = name, "already stopping");
            }
        }
    });
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn grace_runs_from_the_first_request() {
        let (trigger, stop) = channel(Duration::from_secs(20));
        assert!(!stop.is_requested());
        assert_eq!(stop.deadline(), None);
        let t0 = Instant::now();
        assert!(trigger.request());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(
            !trigger.request(),
            "a second signal does not move the deadline"
        );
        assert_eq!(stop.deadline(), Some(t0 + Duration::from_secs(20)));
        stop.requested().await;
        stop.grace_expired().await;
        assert!(Instant::now() >= t0 + Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn requested_wakes_waiters() {
        let (trigger, stop) = channel(Duration::ZERO);
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.requested().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        trigger.request();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the waiter was not woken within 1 s")
            .unwrap();
    }
}
