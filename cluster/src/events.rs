//! The cluster's side of the timeline: watches on pods, Jobs and Events of one namespace,
//! merged into one stream of typed, timestamped [`ClusterEvent`]s. Scenario waits consume this
//! stream instead of polling.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as KubeEvent, Pod};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::Serialize;

use crate::pod_status::{AgentStatus, agent_status};

/// A Job's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobState {
    pub name: String,
    /// `scaledjob.keda.sh/name` label: the ScaledJob that created it.
    pub scaled_job: Option<String>,
    pub active: i32,
    pub ready: i32,
    pub succeeded: i32,
    pub failed: i32,
    /// `Type=Status (reason)` of each condition (Complete, Failed, FailureTarget, ...).
    pub conditions: Vec<String>,
}

impl JobState {
    /// Finished = has a Complete or Failed condition that is True.
    pub fn finished(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| c.starts_with("Complete=True") || c.starts_with("Failed=True"))
    }
}

/// A Kubernetes Event (Evicted, OOMKilling, SuccessfulCreate, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    /// `Kind/name` of the involved object.
    pub object: String,
    pub reason: String,
    pub message: String,
    /// `Normal` or `Warning`.
    pub type_: String,
    pub count: i32,
    /// When the cluster says it happened (lastTimestamp, else eventTime).
    pub happened: Option<jiff::Timestamp>,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "kebab-case")]
pub enum ClusterEventKind {
    Pod(AgentStatus),
    PodDeleted { name: String },
    Job(JobState),
    JobDeleted { name: String },
    Event(EventRecord),
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterEvent {
    /// When this process observed it.
    pub observed: jiff::Timestamp,
    pub kind: ClusterEventKind,
}

#[derive(Debug, thiserror::Error)]
#[error("watching {what} in namespace {namespace} failed: {source}")]
pub struct EventsError {
    pub what: &'static str,
    pub namespace: String,
    #[source]
    pub source: watcher::Error,
}

/// Reads a Job's state.
pub fn job_state(job: &Job) -> JobState {
    let status = job.status.as_ref();
    JobState {
        name: job.metadata.name.clone().unwrap_or_default(),
        scaled_job: job
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("scaledjob.keda.sh/name"))
            .cloned(),
        active: status.and_then(|s| s.active).unwrap_or(0),
        ready: status.and_then(|s| s.ready).unwrap_or(0),
        succeeded: status.and_then(|s| s.succeeded).unwrap_or(0),
        failed: status.and_then(|s| s.failed).unwrap_or(0),
        conditions: status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}={} ({})",
                    c.type_,
                    c.status,
                    c.reason.as_deref().unwrap_or("")
                )
            })
            .collect(),
    }
}

/// Reads a core/v1 Event.
pub fn event_record(event: &KubeEvent) -> EventRecord {
    let involved = &event.involved_object;
    EventRecord {
        object: format!(
            "{}/{}",
            involved.kind.as_deref().unwrap_or("?"),
            involved.name.as_deref().unwrap_or("?")
        ),
        reason: event.reason.clone().unwrap_or_default(),
        message: event.message.clone().unwrap_or_default(),
        type_: event.type_.clone().unwrap_or_default(),
        count: event.count.unwrap_or(1),
        happened: event
            .last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| event.event_time.as_ref().map(|t| t.0)),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<ClusterEvent, EventsError>> + Send>>;

fn watch<K, F>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    namespace: &str,
    on_apply: F,
    on_delete: fn(&K) -> ClusterEventKind,
) -> EventStream
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: Fn(&K) -> ClusterEventKind + Send + 'static,
{
    let namespace = namespace.to_owned();
    let mut seen = Seen::default();
    watcher(api, config)
        .default_backoff()
        .map(move |event| {
            let items: Vec<Result<ClusterEventKind, EventsError>> = match event {
                Ok(event) => seen
                    .on(event)
                    .into_iter()
                    .map(|change| {
                        Ok(match change {
                            Change::Applied(object) => on_apply(&object),
                            Change::Deleted(object) => on_delete(&object),
                        })
                    })
                    .collect(),
                Err(source) => vec![Err(EventsError {
                    what,
                    namespace: namespace.clone(),
                    source,
                })],
            };
            futures::stream::iter(items.into_iter().map(|r| {
                r.map(|kind| ClusterEvent {
                    observed: jiff::Timestamp::now(),
                    kind,
                })
            }))
        })
        .flatten()
        .boxed()
}

/// Pods (matching `pod_selector`), Jobs and Events of `namespace`, merged in arrival order.
///
/// Watch errors are yielded (the watchers back off and resume), so the consumer decides
/// whether a broken watch fails the scenario.
pub fn cluster_events(
    client: Client,
    namespace: &str,
    pod_selector: &str,
) -> impl Stream<Item = Result<ClusterEvent, EventsError>> + Send + use<> {
    let pods = watch(
        Api::<Pod>::namespaced(client.clone(), namespace),
        watcher::Config::default().labels(pod_selector),
        "pods",
        namespace,
        |pod| ClusterEventKind::Pod(agent_status(pod)),
        |pod| ClusterEventKind::PodDeleted {
            name: pod.metadata.name.clone().unwrap_or_default(),
        },
    );
    let jobs = watch(
        Api::<Job>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
        "jobs",
        namespace,
        |job| ClusterEventKind::Job(job_state(job)),
        |job| ClusterEventKind::JobDeleted {
            name: job.metadata.name.clone().unwrap_or_default(),
        },
    );
    let events = watch(
        Api::<KubeEvent>::namespaced(client, namespace),
        watcher::Config::default(),
        "events",
        namespace,
        |event| ClusterEventKind::Event(event_record(event)),
        // A deleted Event (TTL expiry) is not news; keep the record of what it said.
        |event| ClusterEventKind::Event(event_record(event)),
    );
    futures::stream::select_all([pods, jobs, events])
}

/// What a watcher event means for the objects seen so far.
#[derive(Debug)]
enum Change<K> {
    Applied(K),
    Deleted(K),
}

/// The objects a watch has seen, so that a re-list (after a gap or an expired resource
/// version) reports the objects deleted during the gap as deleted: the watcher itself only
/// re-lists what still exists, and a recorder that never hears of a deletion (the rollout
/// check) would judge on a Job that is long gone.
#[derive(Debug)]
struct Seen<K> {
    known: std::collections::BTreeMap<String, K>,
    relisted: Option<std::collections::BTreeSet<String>>,
}

impl<K> Default for Seen<K> {
    fn default() -> Self {
        Seen {
            known: std::collections::BTreeMap::new(),
            relisted: None,
        }
    }
}

impl<K: kube::Resource + Clone> Seen<K> {
    fn on(&mut self, event: watcher::Event<K>) -> Vec<Change<K>> {
        let name = |object: &K| object.meta().name.clone().unwrap_or_default();
        match event {
            watcher::Event::Init => {
                self.relisted = Some(std::collections::BTreeSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                if let Some(relisted) = &mut self.relisted {
                    relisted.insert(name(&object));
                }
                self.known.insert(name(&object), object.clone());
                vec![Change::Applied(object)]
            }
            watcher::Event::InitDone => {
                let Some(relisted) = self.relisted.take() else {
                    return Vec::new();
                };
                let gone: Vec<String> = self
                    .known
                    .keys()
                    .filter(|n| !relisted.contains(*n))
                    .cloned()
                    .collect();
                gone.iter()
                    .filter_map(|n| self.known.remove(n))
                    .map(Change::Deleted)
                    .collect()
            }
            watcher::Event::Apply(object) => {
                self.known.insert(name(&object), object.clone());
                vec![Change::Applied(object)]
            }
            watcher::Event::Delete(object) => {
                self.known.remove(&name(&object));
                vec![Change::Deleted(object)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> Job {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
    }

    fn names(changes: Vec<Change<Job>>) -> Vec<String> {
        changes
            .into_iter()
            .map(|c| match c {
                Change::Applied(j) => format!("+{}", j.metadata.name.unwrap()),
                Change::Deleted(j) => format!("-{}", j.metadata.name.unwrap()),
            })
            .collect()
    }

    #[test]
    fn a_relist_reports_what_was_deleted_during_the_gap() {
        let mut seen = Seen::default();
        let mut all = Vec::new();
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(job("a")),
            watcher::Event::InitApply(job("b")),
            watcher::Event::InitDone,
            watcher::Event::Apply(job("c")),
            // The watch broke; meanwhile `a` and `c` were deleted.
            watcher::Event::Init,
            watcher::Event::InitApply(job("b")),
            watcher::Event::InitDone,
        ] {
            all.extend(names(seen.on(event)));
        }
        assert_eq!(all, ["+a", "+b", "+c", "+b", "-a", "-c"]);
    }
    use crate::mock;
    use serde_json::json;
    use std::time::Duration;

    #[tokio::test]
    async fn mock_watch_events_become_typed_cluster_events() {
        let (client, mut handle) = mock::client();
        let namespace = "af-oom-aaaaaa";
        let server = tokio::spawn(async move {
            // Three watchers: each lists, then watches. Their order is up to the scheduler.
            let mut held = Vec::new();
            for _ in 0..6 {
                let (request, respond) =
                    mock::next(&mut handle, "a list or watch of pods/jobs/events").await;
                let path = request.uri().path().to_owned();
                let watching = mock::query(&request, "watch").as_deref() == Some("true");
                let resource = path.rsplit('/').next().unwrap().to_owned();
                match (resource.as_str(), watching) {
                    ("pods", false) => {
                        assert_eq!(mock::query(&request, "labelSelector").as_deref(), Some("app%3Dai-agent"));
                        respond.send_response(mock::list("PodList", "v1", "10", vec![json!({"metadata": {"name": "agent-0"}, "status": {"phase": "Running"}})]));
                    }
                    ("pods", true) => respond.send_response(mock::watch_events(&[json!({"type": "MODIFIED", "object": {
                        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent-0", "resourceVersion": "11"},
                        "status": {"phase": "Running", "containerStatuses": [{"name": "agent", "image": "", "imageID": "", "ready": true, "restartCount": 1,
                            "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}})])),
                    ("jobs", false) => respond.send_response(mock::list("JobList", "batch/v1", "10", vec![json!({
                        "metadata": {"name": "agent-batch", "labels": {"scaledjob.keda.sh/name": "agent-scaledjob"}},
                        "status": {"active": 1, "failed": 0}})])),
                    ("events", false) => respond.send_response(mock::list("EventList", "v1", "10", vec![])),
                    ("events", true) => respond.send_response(mock::watch_events(&[json!({"type": "ADDED", "object": {
                        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "agent-0.1", "resourceVersion": "12"},
                        "involvedObject": {"kind": "Pod", "name": "agent-0"}, "reason": "Killing", "message": "Stopping container agent",
                        "type": "Normal", "count": 1, "lastTimestamp": "2026-01-01T00:00:05Z"}})])),
                    _ => held.push(respond),
                }
            }
            // Keep the remaining watches open until the test ends.
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(held);
        });
        let mut stream = Box::pin(cluster_events(client, namespace, "app=ai-agent"));
        let mut kinds = Vec::new();
        while kinds.len() < 4 {
            match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                Ok(Some(Ok(event))) => kinds.push(event.kind),
                other => panic!("stream ended or failed after {kinds:?}: {other:?}"),
            }
        }
        assert!(
            kinds.iter().any(
                |k| matches!(k, ClusterEventKind::Pod(p) if p.name == "agent-0" && !p.oom_killed)
            ),
            "{kinds:#?}"
        );
        assert!(
            kinds
                .iter()
                .any(|k| matches!(k, ClusterEventKind::Pod(p) if p.oom_killed && p.restarts == 1)),
            "{kinds:#?}"
        );
        assert!(
            kinds.iter().any(|k| matches!(k, ClusterEventKind::Job(j) if j.active == 1 && j.scaled_job.as_deref() == Some("agent-scaledjob"))),
            "{kinds:#?}"
        );
        let killing = kinds
            .iter()
            .find_map(|k| match k {
                ClusterEventKind::Event(e) => Some(e),
                _ => None,
            })
            .expect("an Event");
        assert_eq!(
            (killing.object.as_str(), killing.reason.as_str()),
            ("Pod/agent-0", "Killing")
        );
        assert_eq!(
            killing.happened,
            Some("2026-01-01T00:00:05Z".parse().unwrap())
        );
        server.abort();
    }

    #[test]
    fn job_finished_reads_conditions() {
        let job: Job = serde_json::from_value(json!({"metadata": {"name": "j"}, "status": {"succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True", "reason": "CompletionsReached"}]}}))
        .unwrap();
        let state = job_state(&job);
        assert!(state.finished());
        assert_eq!(state.conditions, ["Complete=True (CompletionsReached)"]);
    }
}
