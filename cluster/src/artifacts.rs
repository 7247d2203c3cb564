//! On failure, everything needed to debug without the cluster: pod logs (current and
//! previous containers), Events, object dumps (JSON), and the KEDA operator's logs.
//!
//! Collection is best effort by design: one unreadable log must not hide the rest, so item
//! failures are recorded in the report and written to `problems.txt`.

use std::path::{Path, PathBuf};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DynamicObject, ListParams, LogParams};
use kube::{Api, Client};
use serde::Serialize;

use crate::fleet::scaled_job_resource;

/// Where KEDA runs and how its operator pods are labelled (release YAML).
pub const KEDA_NAMESPACE: &str = "keda";
pub const KEDA_OPERATOR_SELECTOR: &str = "app=keda-operator";

/// What was written.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Collected {
    pub files: Vec<PathBuf>,
    pub problems: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write artifact {path}: {source}; check the report directory")]
pub struct ArtifactError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl Collected {
    fn write(&mut self, path: PathBuf, contents: &[u8]) -> Result<(), ArtifactError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ArtifactError {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, contents).map_err(|source| ArtifactError {
            path: path.clone(),
            source,
        })?;
        self.files.push(path);
        Ok(())
    }

    fn dump<T: Serialize>(&mut self, path: PathBuf, value: &T) -> Result<(), ArtifactError> {
        let json = serde_json::to_vec_pretty(value)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}").into_bytes());
        self.write(path, &json)
    }
}

/// Events as `time type reason object: message`, oldest first.
pub fn events_text(events: &[Event]) -> String {
    let mut lines: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let when = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                .unwrap_or_default();
            let record = crate::events::event_record(e);
            (
                when.clone(),
                format!(
                    "{when} {} {} {}: {} (x{})\n",
                    record.type_, record.reason, record.object, record.message, record.count
                ),
            )
        })
        .collect();
    lines.sort();
    lines.into_iter().map(|(_, line)| line).collect()
}

async fn pod_logs(
    client: &Client,
    namespace: &str,
    selector: Option<&str>,
    dir: &Path,
    collected: &mut Collected,
) -> Result<(), ArtifactError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = selector
        .map(|s| ListParams::default().labels(s))
        .unwrap_or_default();
    let list = match pods.list(&params).await {
        Ok(list) => list,
        Err(error) => {
            collected
                .problems
                .push(format!("list pods in {namespace}: {error}"));
            return Ok(());
        }
    };
    for pod in &list.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        for status in statuses {
            let mut wanted = vec![false];
            if status.restart_count > 0 {
                wanted.push(true);
            }
            for previous in wanted {
                let params = LogParams {
                    container: Some(status.name.clone()),
                    previous,
                    ..LogParams::default()
                };
                let suffix = if previous { ".previous" } else { "" };
                match pods.logs(&name, &params).await {
                    Ok(text) => collected.write(
                        dir.join(format!("{name}.{}{suffix}.log", status.name)),
                        text.as_bytes(),
                    )?,
                    Err(error) => collected.problems.push(format!(
                        "logs of {namespace}/{name} container {}{suffix}: {error}",
                        status.name
                    )),
                }
            }
        }
    }
    Ok(())
}

/// Collects the artifacts of `namespace` (and KEDA's operator logs) into `dir`.
pub async fn collect(
    client: Client,
    namespace: &str,
    dir: &Path,
) -> Result<Collected, ArtifactError> {
    let mut collected = Collected::default();
    let objects = dir.join("objects");
    match Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => collected.dump(objects.join("pods.json"), &list.items)?,
        Err(error) => collected.problems.push(format!("list pods: {error}")),
    }
    match Api::<Job>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => collected.dump(objects.join("jobs.json"), &list.items)?,
        Err(error) => collected.problems.push(format!("list jobs: {error}")),
    }
    match Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &scaled_job_resource())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => collected.dump(objects.join("scaledjobs.json"), &list.items)?,
        Err(error) => collected
            .problems
            .push(format!("list scaledjobs (is KEDA installed?): {error}")),
    }
    match Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => {
            collected.dump(objects.join("events.json"), &list.items)?;
            collected.write(dir.join("events.txt"), events_text(&list.items).as_bytes())?;
        }
        Err(error) => collected.problems.push(format!("list events: {error}")),
    }
    pod_logs(&client, namespace, None, &dir.join("logs"), &mut collected).await?;
    pod_logs(
        &client,
        KEDA_NAMESPACE,
        Some(KEDA_OPERATOR_SELECTOR),
        &dir.join("logs/keda"),
        &mut collected,
    )
    .await?;
    if !collected.problems.is_empty() {
        let text = collected.problems.join("\n") + "\n";
        collected.write(dir.join("problems.txt"), text.as_bytes())?;
    }
    Ok(collected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock;
    use serde_json::json;

    fn agent_pod(name: &str, restarts: i32) -> serde_json::Value {
        json!({"metadata": {"name": name}, "status": {"phase": "Running", "containerStatuses": [
            {"name": "agent", "image": "", "imageID": "", "ready": true, "restartCount": restarts}]}})
    }

    #[tokio::test]
    async fn mock_collect_writes_objects_events_and_logs_including_previous_and_keda() {
        let (client, mut handle) = mock::client();
        let server = tokio::spawn(async move {
            let mut requests = Vec::new();
            loop {
                let Ok(Some((request, respond))) =
                    tokio::time::timeout(std::time::Duration::from_secs(2), handle.next_request())
                        .await
                else {
                    break;
                };
                let path = request.uri().path().to_owned();
                let previous = mock::query(&request, "previous").is_some();
                requests.push(format!("{path}{}", if previous { "?previous" } else { "" }));
                let response = match path.as_str() {
                    "/api/v1/namespaces/af-oom-a/pods" => {
                        mock::list("PodList", "v1", "1", vec![agent_pod("agent-0", 1)])
                    }
                    "/apis/batch/v1/namespaces/af-oom-a/jobs" => mock::list(
                        "JobList",
                        "batch/v1",
                        "1",
                        vec![json!({"metadata": {"name": "agent-batch"}})],
                    ),
                    "/apis/keda.sh/v1alpha1/namespaces/af-oom-a/scaledjobs" => mock::status(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    ),
                    "/api/v1/namespaces/af-oom-a/events" => mock::list(
                        "EventList",
                        "v1",
                        "1",
                        vec![json!({"metadata": {"name": "e"},
                        "involvedObject": {"kind": "Pod", "name": "agent-0"}, "reason": "OOMKilling", "message": "Memory cgroup out of memory", "type": "Warning",
                        "lastTimestamp": "2026-01-01T00:00:09Z", "count": 1})],
                    ),
                    "/api/v1/namespaces/af-oom-a/pods/agent-0/log" if previous => {
                        mock::text(200, "before the OOM\n")
                    }
                    "/api/v1/namespaces/af-oom-a/pods/agent-0/log" => {
                        mock::text(200, "resumed from checkpoint\n")
                    }
                    "/api/v1/namespaces/keda/pods" => {
                        assert_eq!(
                            mock::query(&request, "labelSelector").as_deref(),
                            Some("app%3Dkeda-operator")
                        );
                        mock::list("PodList", "v1", "1", vec![agent_pod("keda-operator-1", 0)])
                    }
                    "/api/v1/namespaces/keda/pods/keda-operator-1/log" => {
                        mock::text(200, "scaledjob reconciled\n")
                    }
                    other => panic!("unexpected request {other}"),
                };
                respond.send_response(response);
            }
            requests
        });
        let dir = tempfile::tempdir().unwrap();
        let collected = collect(client, "af-oom-a", dir.path()).await.unwrap();
        let requests = server.await.unwrap();
        assert!(
            requests.contains(&"/api/v1/namespaces/af-oom-a/pods/agent-0/log?previous".to_owned()),
            "{requests:?}"
        );
        let read = |p: &str| {
            std::fs::read_to_string(dir.path().join(p))
                .unwrap_or_else(|e| panic!("{p}: {e}; have {:?}", collected.files))
        };
        assert_eq!(read("logs/agent-0.agent.previous.log"), "before the OOM\n");
        assert_eq!(read("logs/agent-0.agent.log"), "resumed from checkpoint\n");
        assert_eq!(
            read("logs/keda/keda-operator-1.agent.log"),
            "scaledjob reconciled\n"
        );
        assert!(
            read("events.txt")
                .contains("Warning OOMKilling Pod/agent-0: Memory cgroup out of memory")
        );
        assert!(read("objects/jobs.json").contains("agent-batch"));
        assert!(read("problems.txt").contains("is KEDA installed?"));
    }
}
