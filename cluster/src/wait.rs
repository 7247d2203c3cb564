//! Event-driven waits with a deadline that report what was last seen.
//!
//! `kube::runtime::wait::await_condition` under a `tokio::time::timeout` loses the object on
//! timeout, so the error could only say "timed out". Here the watch is consumed by hand and the
//! last observed state is described in the error, which is what a person debugging a stuck
//! Deployment needs first.

use std::fmt::Debug;
use std::time::Duration;

use futures::{StreamExt, pin_mut};
use kube::runtime::watcher;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// A wait that did not end well.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("timed out after {timeout:?} waiting for {what}; last observed: {last_observed}")]
    Timeout {
        what: String,
        timeout: Duration,
        last_observed: String,
    },
    #[error("watching {what} failed: {source}; check RBAC (get/list/watch) and the API server")]
    Watch {
        what: String,
        #[source]
        source: watcher::Error,
    },
}

/// Watches `name` through `api` until `done` holds, for at most `timeout`.
///
/// `describe` renders an observation for the timeout error (`None`: the object does not exist).
pub async fn wait_for<K>(
    api: Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&K) -> bool,
    describe: impl Fn(Option<&K>) -> String,
) -> Result<K, WaitError>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let stream = watcher::watch_object(api, name);
    pin_mut!(stream);
    let mut last_observed = "nothing yet (no response from the API server)".to_owned();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_elapsed) => {
                return Err(WaitError::Timeout {
                    what: what.to_owned(),
                    timeout,
                    last_observed,
                });
            }
            Ok(None) => {
                return Err(WaitError::Timeout {
                    what: what.to_owned(),
                    timeout,
                    last_observed: format!("{last_observed} (watch ended)"),
                });
            }
            Ok(Some(Err(source))) => {
                return Err(WaitError::Watch {
                    what: what.to_owned(),
                    source,
                });
            }
            Ok(Some(Ok(object))) => {
                last_observed = describe(object.as_ref());
                if let Some(object) = object
                    && done(&object)
                {
                    return Ok(object);
                }
            }
        }
    }
}
