//! Typed operations on a fleet of agents in one namespace, the 1:1 counterparts of the
//! harness runtime trait: start (apply a Job or ScaledJob), list agents with status, stop with
//! grace (Eviction API, so PodDisruptionBudgets are honoured), kill (delete with grace 0),
//! logs. The probe and the event stream live in [`crate::probe`] and [`crate::events`].

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    DeleteOptions as K8sDeleteOptions, ObjectMeta,
};
use kube::api::{
    DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::{Api, Client};
use serde::Serialize;
use serde_json::Value;

use crate::FIELD_MANAGER;
use crate::pod_status::{AgentStatus, agent_status};

/// Label selector of agent pods; the fleet's NetworkPolicy and PDB select the same label.
pub const AGENT_SELECTOR: &str = "app=ai-agent";

/// KEDA's ScaledJob, addressed without discovery (its group/version are part of the contract
/// of the manifests, and KEDA's CRD serves exactly this).
pub fn scaled_job_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledJob"),
        "scaledjobs",
    )
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{operation} {object} in namespace {namespace} failed: {source}")]
    Api {
        operation: &'static str,
        object: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("{object}: {problem}")]
    Invalid { object: String, problem: String },
}

/// The answer of the Eviction API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum EvictOutcome {
    /// 200/201: the pod is being terminated gracefully.
    Evicted,
    /// 429: a PodDisruptionBudget does not allow it now; `message` names the budget.
    RefusedByBudget { message: String },
    /// 404: no such pod.
    NotFound,
}

/// The answer of a forced delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KillOutcome {
    Killed,
    NotFound,
}

/// What to read of a pod's log.
#[derive(Debug, Clone, Default)]
pub struct LogRequest {
    /// Needed when the pod has more than one container.
    pub container: Option<String>,
    /// The log of the previous (restarted, e.g. OOM-killed) container.
    pub previous: bool,
    pub tail_lines: Option<i64>,
}

/// The agents of one namespace.
#[derive(Clone)]
pub struct Fleet {
    client: Client,
    namespace: String,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Rewrites the namespace of every namespaced object from `from` to `to` and drops the
/// Namespace object `from`: the reference fleet lives in `agents`, each scenario in its own.
pub fn retarget(objects: Vec<Value>, from: &str, to: &str) -> Vec<Value> {
    objects
        .into_iter()
        .filter(|o| !(o["kind"] == "Namespace" && o["metadata"]["name"] == from))
        .map(|mut o| {
            if o["metadata"]["namespace"] == from {
                o["metadata"]["namespace"] = Value::String(to.to_owned());
            }
            o
        })
        .collect()
}

impl Fleet {
    pub fn new(client: Client, namespace: impl Into<String>) -> Fleet {
        Fleet {
            client,
            namespace: namespace.into(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn api_error(
        &self,
        operation: &'static str,
        object: impl Into<String>,
    ) -> impl FnOnce(kube::Error) -> FleetError + '_ {
        let object = object.into();
        move |source| FleetError::Api {
            operation,
            object,
            namespace: self.namespace.clone(),
            source,
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Server-side applies an (Indexed) Job into this namespace: starts its agents.
    pub async fn apply_job(&self, job: &Job) -> Result<Job, FleetError> {
        let name = job
            .metadata
            .name
            .clone()
            .ok_or_else(|| FleetError::Invalid {
                object: "Job".into(),
                problem: "metadata.name is missing".into(),
            })?;
        let mut job = job.clone();
        job.metadata.namespace = Some(self.namespace.clone());
        job.metadata.managed_fields = None;
        let api: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace);
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&job),
        )
        .await
        .map_err(self.api_error("apply", format!("Job {name}")))
    }

    /// Server-side applies a ScaledJob (as JSON: KEDA's types are not in k8s-openapi).
    pub async fn apply_scaled_job(&self, scaled_job: &Value) -> Result<DynamicObject, FleetError> {
        let invalid = |problem: &str| FleetError::Invalid {
            object: "ScaledJob".into(),
            problem: problem.to_owned(),
        };
        if scaled_job["kind"] != "ScaledJob" || scaled_job["apiVersion"] != "keda.sh/v1alpha1" {
            return Err(invalid(
                "expected apiVersion keda.sh/v1alpha1, kind ScaledJob",
            ));
        }
        let name = scaled_job["metadata"]["name"]
            .as_str()
            .ok_or_else(|| invalid("metadata.name is missing"))?
            .to_owned();
        let mut object = scaled_job.clone();
        object["metadata"]["namespace"] = Value::String(self.namespace.clone());
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &scaled_job_resource());
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(self.api_error("apply", format!("ScaledJob {name}")))
    }

    /// Agent pods matching `selector` (normally [`AGENT_SELECTOR`]), sorted by name.
    pub async fn agents(&self, selector: &str) -> Result<Vec<AgentStatus>, FleetError> {
        let list = self
            .pods()
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(self.api_error("list", format!("pods {selector}")))?;
        let mut agents: Vec<AgentStatus> = list.items.iter().map(agent_status).collect();
        agents.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(agents)
    }

    /// Stop with grace through the Eviction API. `grace_seconds` overrides the pod's
    /// terminationGracePeriodSeconds.
    ///
    /// The typed `policy/v1` Eviction is posted to the `eviction` subresource rather than
    /// through `Api::evict`: kube 5 serialises its `EvictParams` as `delete_options`
    /// (snake_case), a field the API server does not know, so a requested grace period would
    /// be silently dropped.
    pub async fn evict(
        &self,
        pod: &str,
        grace_seconds: Option<u32>,
    ) -> Result<EvictOutcome, FleetError> {
        let eviction = Eviction {
            metadata: ObjectMeta {
                name: Some(pod.to_owned()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            delete_options: grace_seconds.map(|grace| K8sDeleteOptions {
                grace_period_seconds: Some(i64::from(grace)),
                ..K8sDeleteOptions::default()
            }),
        };
        match self
            .pods()
            .create_subresource::<_, kube::core::Status>(
                "eviction",
                pod,
                &PostParams::default(),
                &eviction,
            )
            .await
        {
            Ok(_) => Ok(EvictOutcome::Evicted),
            Err(kube::Error::Api(status)) if status.code == 429 => {
                Ok(EvictOutcome::RefusedByBudget {
                    message: status.message,
                })
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(EvictOutcome::NotFound),
            Err(source) => Err(self.api_error("evict", format!("pod {pod}"))(source)),
        }
    }

    /// Deletes the pod with grace period 0: SIGKILL, no PDB.
    pub async fn kill(&self, pod: &str) -> Result<KillOutcome, FleetError> {
        match self
            .pods()
            .delete(pod, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => Ok(KillOutcome::Killed),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(KillOutcome::NotFound),
            Err(source) => Err(self.api_error("kill", format!("pod {pod}"))(source)),
        }
    }

    /// The pod's log.
    pub async fn logs(&self, pod: &str, request: &LogRequest) -> Result<String, FleetError> {
        let params = LogParams {
            container: request.container.clone(),
            previous: request.previous,
            tail_lines: request.tail_lines,
            ..LogParams::default()
        };
        self.pods()
            .logs(pod, &params)
            .await
            .map_err(self.api_error("read logs of", format!("pod {pod}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock;
    use serde_json::json;

    fn fleet() -> (Fleet, mock::MockHandle) {
        let (client, handle) = mock::client();
        (Fleet::new(client, "af-eviction-abc123"), handle)
    }

    const PODS: &str = "/api/v1/namespaces/af-eviction-abc123/pods";

    #[tokio::test]
    async fn mock_eviction_201_is_evicted_with_grace() {
        let (fleet, mut handle) = fleet();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "eviction POST").await;
            assert_eq!(request.method(), http::Method::POST);
            assert_eq!(request.uri().path(), format!("{PODS}/agent-0/eviction"));
            let body = mock::json_body(request).await;
            assert_eq!(
                (body["apiVersion"].as_str(), body["kind"].as_str()),
                (Some("policy/v1"), Some("Eviction"))
            );
            assert_eq!(body["metadata"]["name"], "agent-0");
            assert_eq!(body["deleteOptions"]["gracePeriodSeconds"], 30);
            respond.send_response(mock::json(
                201,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}),
            ));
        });
        assert_eq!(
            fleet.evict("agent-0", Some(30)).await.unwrap(),
            EvictOutcome::Evicted
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_eviction_429_is_refused_by_budget_with_the_message() {
        let (fleet, mut handle) = fleet();
        let server = tokio::spawn(async move {
            let (_, respond) = mock::next(&mut handle, "eviction POST").await;
            respond.send_response(mock::status(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            ));
        });
        assert_eq!(
            fleet.evict("agent-1", None).await.unwrap(),
            EvictOutcome::RefusedByBudget {
                message: "Cannot evict pod as it would violate the pod's disruption budget.".into()
            }
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_eviction_404_is_not_found_and_500_is_an_error() {
        let (fleet, mut handle) = fleet();
        let server = tokio::spawn(async move {
            let (_, respond) = mock::next(&mut handle, "eviction POST").await;
            respond.send_response(mock::status(404, "NotFound", "pods \"ghost\" not found"));
            let (_, respond) = mock::next(&mut handle, "eviction POST").await;
            respond.send_response(mock::status(500, "InternalError", "etcd timeout"));
        });
        assert_eq!(
            fleet.evict("ghost", None).await.unwrap(),
            EvictOutcome::NotFound
        );
        let error = fleet.evict("agent-2", None).await.unwrap_err().to_string();
        assert!(
            error.contains("evict pod agent-2") && error.contains("af-eviction-abc123"),
            "{error}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_kill_deletes_with_grace_zero() {
        let (fleet, mut handle) = fleet();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "pod DELETE").await;
            assert_eq!(request.method(), http::Method::DELETE);
            assert_eq!(request.uri().path(), format!("{PODS}/agent-0"));
            let body = mock::json_body(request).await;
            assert_eq!(body["gracePeriodSeconds"], 0);
            respond.send_response(mock::json(
                200,
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent-0"}}),
            ));
            let (_, respond) = mock::next(&mut handle, "pod DELETE").await;
            respond.send_response(mock::status(404, "NotFound", "gone"));
        });
        assert_eq!(fleet.kill("agent-0").await.unwrap(), KillOutcome::Killed);
        assert_eq!(fleet.kill("agent-0").await.unwrap(), KillOutcome::NotFound);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_logs_of_the_previous_container() {
        let (fleet, mut handle) = fleet();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "log GET").await;
            assert_eq!(request.uri().path(), format!("{PODS}/agent-0/log"));
            assert_eq!(mock::query(&request, "previous").as_deref(), Some("true"));
            assert_eq!(mock::query(&request, "container").as_deref(), Some("agent"));
            assert_eq!(mock::query(&request, "tailLines").as_deref(), Some("100"));
            respond.send_response(mock::text(200, "{\"msg\":\"checkpoint written\"}\n"));
        });
        let request = LogRequest {
            container: Some("agent".into()),
            previous: true,
            tail_lines: Some(100),
        };
        assert_eq!(
            fleet.logs("agent-0", &request).await.unwrap(),
            "{\"msg\":\"checkpoint written\"}\n"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_agents_lists_by_selector_and_parses_status() {
        let (fleet, mut handle) = fleet();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "pod LIST").await;
            assert_eq!(
                mock::query(&request, "labelSelector").as_deref(),
                Some("app%3Dai-agent")
            );
            respond.send_response(mock::list("PodList", "v1", "5", vec![
                json!({"metadata": {"name": "b"}, "status": {"phase": "Running"}}),
                json!({"metadata": {"name": "a"}, "status": {"phase": "Failed", "containerStatuses": [{"name": "agent", "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}),
            ]));
        });
        let agents = fleet.agents(AGENT_SELECTOR).await.unwrap();
        assert_eq!(
            agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(agents[0].oom_killed && !agents[1].oom_killed);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_apply_scaled_job_targets_keda_with_ssa() {
        let (fleet, mut handle) = fleet();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "ScaledJob PATCH").await;
            assert_eq!(request.method(), http::Method::PATCH);
            assert_eq!(
                request.uri().path(),
                "/apis/keda.sh/v1alpha1/namespaces/af-eviction-abc123/scaledjobs/agent-scaledjob"
            );
            assert_eq!(
                request.headers()["content-type"],
                "application/apply-patch+yaml"
            );
            assert_eq!(
                mock::query(&request, "fieldManager").as_deref(),
                Some("agentfleet")
            );
            let body = mock::json_body(request).await;
            assert_eq!(body["metadata"]["namespace"], "af-eviction-abc123");
            respond.send_response(mock::json(200, body));
        });
        let scaled = json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "agent-scaledjob", "namespace": "agents"}, "spec": {}});
        fleet.apply_scaled_job(&scaled).await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_apply_job_uses_ssa_in_the_fleet_namespace() {
        let (fleet, mut handle) = fleet();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "Job PATCH").await;
            assert_eq!(
                request.uri().path(),
                "/apis/batch/v1/namespaces/af-eviction-abc123/jobs/agent-batch"
            );
            assert_eq!(mock::query(&request, "force").as_deref(), Some("true"));
            let body = mock::json_body(request).await;
            assert_eq!(
                (body["apiVersion"].as_str(), body["kind"].as_str()),
                (Some("batch/v1"), Some("Job"))
            );
            respond.send_response(mock::json(200, body));
        });
        let job: Job = serde_json::from_value(json!({"metadata": {"name": "agent-batch"}, "spec": {"template": {"spec": {"containers": []}}}})).unwrap();
        let applied = fleet.apply_job(&job).await.unwrap();
        assert_eq!(
            applied.metadata.namespace.as_deref(),
            Some("af-eviction-abc123")
        );
        server.await.unwrap();
    }

    #[test]
    fn retarget_moves_the_fleet_into_the_scenario_namespace() {
        let objects = vec![
            json!({"kind": "Namespace", "metadata": {"name": "agents"}}),
            json!({"kind": "Job", "metadata": {"name": "j", "namespace": "agents"}}),
            json!({"kind": "Deployment", "metadata": {"name": "rabbitmq", "namespace": "message-queue"}}),
        ];
        let moved = retarget(objects, "agents", "af-x-1");
        assert_eq!(moved.len(), 2);
        assert_eq!(moved[0]["metadata"]["namespace"], "af-x-1");
        assert_eq!(moved[1]["metadata"]["namespace"], "message-queue");
    }
}
