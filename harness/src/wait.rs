//! Waiting on an observation with a deadline, for the things that have no event stream (an
//! HTTP endpoint, a Prometheus counter, a broker accepting connections).
//!
//! Each round runs the probe, which either produces the awaited value or says what it saw; the
//! wait fails at the deadline with the last thing seen, so a failed wait explains itself
//! ("agent_breaker_state was 0") instead of just "timed out".

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe<T> {
    Ready(T),
    /// Not yet; what was observed instead.
    NotYet(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "timed out after {waited:?} ({attempts} checks) waiting for {what}; last seen: {last_seen}"
)]
pub struct WaitTimeout {
    pub what: String,
    pub waited: Duration,
    pub attempts: u32,
    pub last_seen: String,
}

/// Runs `probe` every `interval` until it is [`Probe::Ready`] or `timeout` has passed. The probe
/// is always run at least once, and once more at the deadline is not skipped: a value that
/// appears just before the deadline is still seen.
pub async fn until<T, F, Fut>(
    what: impl fmt::Display,
    timeout: Duration,
    interval: Duration,
    mut probe: F,
) -> Result<T, WaitTimeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Probe<T>>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let last_seen = match tokio::time::timeout_at(deadline, probe()).await {
            Ok(Probe::Ready(value)) => return Ok(value),
            Ok(Probe::NotYet(seen)) => seen,
            Err(_elapsed) => "the last check itself did not finish before the deadline".to_owned(),
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitTimeout {
                what: what.to_string(),
                waited: now - started,
                attempts,
                last_seen,
            });
        }
        tokio::time::sleep_until(deadline.min(now + interval)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_the_value_once_ready() {
        let mut n = 0;
        let got = until(
            "n to reach 3",
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                n += 1;
                let seen = n;
                async move {
                    if seen >= 3 {
                        Probe::Ready(seen)
                    } else {
                        Probe::NotYet(format!("n = {seen}"))
                    }
                }
            },
        )
        .await;
        assert_eq!(got, Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_reporting_the_last_observation() {
        let mut n = 0;
        let err = until(
            "never",
            Duration::from_millis(100),
            Duration::from_millis(30),
            || {
                n += 1;
                let seen = n;
                async move { Probe::<()>::NotYet(format!("n = {seen}")) }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.what, "never");
        assert_eq!(err.attempts, 5, "{err}");
        assert_eq!(err.last_seen, "n = 5");
        assert!(err.to_string().contains("last seen: n = 5"), "{err}");
    }
}
