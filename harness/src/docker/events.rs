//! Event-driven waits on a container: the Docker events stream wakes the wait, `inspect` decides.
//!
//! The stream is opened with `since` slightly in the past, so an event that happened between the
//! caller's last action and the subscription is replayed rather than missed; every event only
//! triggers a fresh inspect, so replays are harmless.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt;

use super::{ContainerStatus, DockerError, Engine};

/// How far back the subscription reaches, to cover the gap between an action and the wait.
const REPLAY: Duration = Duration::from_secs(2);

/// Waits until `done(status)` holds for `container`, waking on its Docker events (`die`, `oom`,
/// `start`, `restart`, ...). On timeout the error carries the last state seen.
pub async fn wait_for_status(
    engine: &Engine,
    container: &str,
    waiting_for: &str,
    timeout: Duration,
    mut done: impl FnMut(&ContainerStatus) -> bool,
) -> Result<ContainerStatus, DockerError> {
    let since = SystemTime::now().checked_sub(REPLAY).unwrap_or(UNIX_EPOCH);
    let since = since
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .to_string();
    let filters = HashMap::from([("type", vec!["container"]), ("container", vec![container])]);
    let options = EventsOptionsBuilder::new()
        .since(&since)
        .filters(&filters)
        .build();
    let mut events = Box::pin(engine.raw().events(Some(options)));

    let mut last = ContainerStatus::unknown();
    let waited = async {
        loop {
            last = super::container::inspect_status(engine, container).await?;
            if done(&last) {
                return Ok(last.clone());
            }
            match events.next().await {
                Some(Ok(_event)) => continue,
                Some(Err(source)) => {
                    return Err(DockerError::Api {
                        action: "stream events of",
                        object: container.to_owned(),
                        source,
                    });
                }
                None => {
                    return Err(DockerError::EventsEnded {
                        container: container.to_owned(),
                        waiting_for: waiting_for.to_owned(),
                        last: last.clone(),
                    });
                }
            }
        }
    };
    match tokio::time::timeout(timeout, waited).await {
        Ok(result) => result,
        Err(_elapsed) => Err(DockerError::Timeout {
            container: container.to_owned(),
            waiting_for: waiting_for.to_owned(),
            waited: timeout,
            last,
        }),
    }
}

/// One container event, as recorded for timelines and assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// Unix time in nanoseconds (Docker's `timeNano`).
    pub time_nanos: i64,
    pub container_id: String,
    pub container_name: String,
    /// Docker's action: `create`, `start`, `kill`, `die`, `oom`, `stop`, `restart`, ...
    pub action: String,
    /// `die` events carry the exit code.
    pub exit_code: Option<i64>,
}

/// Records the container events of everything carrying one label, in the background, from the
/// moment it is started until it is dropped. Events are the evidence of things that a later
/// `inspect` cannot show any more: an OOM kill followed by a restart, say.
#[derive(Debug)]
pub struct EventRecorder {
    events: Arc<Mutex<Vec<ContainerEvent>>>,
    failure: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Docker's event stream for the containers carrying every one of `labels` (`key=value`, or
/// `key` alone), from `since` on (whole seconds: Docker's resolution).
pub fn container_events(
    engine: &Engine,
    labels: Vec<String>,
    since: SystemTime,
) -> impl futures::Stream<Item = Result<bollard::models::EventMessage, bollard::errors::Error>> + use<>
{
    let since = since
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .to_string();
    let filters = HashMap::from([("type", vec!["container".to_owned()]), ("label", labels)]);
    let options = EventsOptionsBuilder::new()
        .since(&since)
        .filters(&filters)
        .build();
    engine.raw().events(Some(options))
}

impl EventRecorder {
    /// Starts recording events of containers labelled `label` (`key=value`).
    pub fn start(engine: &Engine, label: String) -> EventRecorder {
        let mut stream = Box::pin(container_events(engine, vec![label], SystemTime::now()));
        let events = Arc::new(Mutex::new(Vec::new()));
        let failure = Arc::new(Mutex::new(None));
        let (sink, failed) = (events.clone(), failure.clone());
        let task = tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        let actor = event.actor.unwrap_or_default();
                        let attributes = actor.attributes.unwrap_or_default();
                        let recorded = ContainerEvent {
                            time_nanos: event.time_nano.unwrap_or_default(),
                            container_id: actor.id.unwrap_or_default(),
                            container_name: attributes.get("name").cloned().unwrap_or_default(),
                            action: event.action.unwrap_or_default(),
                            exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
                        };
                        lock(&sink).push(recorded);
                    }
                    Err(e) => {
                        *lock(&failed) = Some(e.to_string());
                        return;
                    }
                }
            }
            *lock(&failed) = Some("the Docker events stream ended".to_owned());
        });
        EventRecorder {
            events,
            failure,
            task,
        }
    }

    /// Everything recorded so far, oldest first.
    pub fn snapshot(&self) -> Vec<ContainerEvent> {
        lock(&self.events).clone()
    }

    /// Recorded events of one container with this action.
    pub fn of(&self, container_id: &str, action: &str) -> Vec<ContainerEvent> {
        lock(&self.events)
            .iter()
            .filter(|e| e.container_id == container_id && e.action == action)
            .cloned()
            .collect()
    }

    /// Why recording stopped early, if it did (then the snapshot is incomplete).
    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }
}

impl Drop for EventRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A poisoned lock only means a recorder task panicked mid-push; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
