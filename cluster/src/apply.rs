//! Server-side apply of rendered manifests, in dependency order, with readiness waits.
//!
//! Objects arrive as JSON values (from [`crate::kustomize`] or a release YAML), so the kinds
//! are not known at compile time: each GroupVersionKind is resolved through API discovery once
//! (which also tells namespaced from cluster-scoped) and applied as a `DynamicObject` with
//! field manager `agentfleet` and `force`, so re-runs converge instead of conflicting.
//! Namespaces and CRDs go first, and CRDs must be Established before any custom resource of
//! theirs is applied, or the API server would 404 on the new kind.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};
use kube::runtime::wait::{Condition, conditions};
use kube::{Api, Client};
use serde_json::Value;

use crate::FIELD_MANAGER;
use crate::kustomize::describe;
use crate::wait::{WaitError, wait_for};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{object}: {problem}")]
    Invalid { object: String, problem: String },
    #[error(
        "{object}: the API server does not serve {api_version} {kind}: {source}; install its CRD first (KEDA for keda.sh) or fix apiVersion"
    )]
    Discovery {
        object: String,
        api_version: String,
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("server-side apply of {object} failed: {source}")]
    Apply {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Wait(#[from] WaitError),
}

/// Apply priority: Namespaces, then CRDs, then everything else in input order.
pub fn apply_rank(object: &Value) -> u8 {
    match object["kind"].as_str() {
        Some("Namespace") => 0,
        Some("CustomResourceDefinition") => 1,
        _ => 2,
    }
}

/// Stable-sorts `objects` into apply order.
pub fn order_for_apply(objects: &mut [Value]) {
    objects.sort_by_key(apply_rank);
}

/// Applies objects, caching discovery per GroupVersionKind.
pub struct Applier {
    client: Client,
    resolved: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
    /// How long to wait for each CRD to become Established.
    pub crd_timeout: Duration,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("resolved", &self.resolved.len())
            .field("crd_timeout", &self.crd_timeout)
            .finish_non_exhaustive()
    }
}

impl Applier {
    pub fn new(client: Client) -> Applier {
        Applier {
            client,
            resolved: HashMap::new(),
            crd_timeout: Duration::from_secs(60),
        }
    }

    async fn resolve(
        &mut self,
        object: &str,
        gvk: &GroupVersionKind,
    ) -> Result<(ApiResource, ApiCapabilities), ApplyError> {
        if let Some(found) = self.resolved.get(gvk) {
            return Ok(found.clone());
        }
        let found = discovery::pinned_kind(&self.client, gvk)
            .await
            .map_err(|source| ApplyError::Discovery {
                object: object.to_owned(),
                api_version: gvk.api_version(),
                kind: gvk.kind.clone(),
                source,
            })?;
        self.resolved.insert(gvk.clone(), found.clone());
        Ok(found)
    }

    /// Server-side applies one object and returns what the server stored.
    pub async fn apply(&mut self, object: &Value) -> Result<DynamicObject, ApplyError> {
        let name_of = describe(object);
        let invalid = |problem: &str| ApplyError::Invalid {
            object: name_of.clone(),
            problem: problem.to_owned(),
        };
        let api_version = object["apiVersion"]
            .as_str()
            .ok_or_else(|| invalid("apiVersion is missing"))?;
        let kind = object["kind"]
            .as_str()
            .ok_or_else(|| invalid("kind is missing"))?;
        let name = object["metadata"]["name"]
            .as_str()
            .ok_or_else(|| invalid("metadata.name is missing"))?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) = self.resolve(&name_of, &gvk).await?;
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
            Scope::Namespaced => {
                let namespace = object["metadata"]["namespace"].as_str().ok_or_else(|| {
                    invalid("is namespaced but has no metadata.namespace; set it in the manifest")
                })?;
                Api::namespaced_with(self.client.clone(), namespace, &resource)
            }
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(|source| ApplyError::Apply {
                object: name_of.clone(),
                source,
            })
    }

    /// Applies everything in dependency order; waits for CRDs before the objects after them.
    /// Returns `Kind namespace/name` of each applied object, in apply order.
    pub async fn apply_all(&mut self, mut objects: Vec<Value>) -> Result<Vec<String>, ApplyError> {
        order_for_apply(&mut objects);
        let mut applied = Vec::new();
        let mut pending_crds: Vec<String> = Vec::new();
        for object in &objects {
            if apply_rank(object) == 2 && !pending_crds.is_empty() {
                for crd in pending_crds.drain(..) {
                    wait_crd_established(self.client.clone(), &crd, self.crd_timeout).await?;
                }
            }
            self.apply(object).await?;
            if object["kind"] == "CustomResourceDefinition"
                && let Some(name) = object["metadata"]["name"].as_str()
            {
                pending_crds.push(name.to_owned());
            }
            applied.push(describe(object));
        }
        for crd in pending_crds {
            wait_crd_established(self.client.clone(), &crd, self.crd_timeout).await?;
        }
        Ok(applied)
    }
}

/// Waits until the CRD `name` has condition Established=True.
pub async fn wait_crd_established(
    client: Client,
    name: &str,
    timeout: Duration,
) -> Result<CustomResourceDefinition, WaitError> {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let established = conditions::is_crd_established();
    wait_for(
        api,
        name,
        &format!("CRD {name} to be Established"),
        timeout,
        |crd| established.matches_object(Some(crd)),
        |crd| match crd {
            None => "the CRD does not exist".into(),
            Some(crd) => {
                let conditions = crd.status.as_ref().and_then(|s| s.conditions.as_ref());
                let listed: Vec<String> = conditions
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        format!(
                            "{}={} ({})",
                            c.type_,
                            c.status,
                            c.message.as_deref().unwrap_or("")
                        )
                    })
                    .collect();
                if listed.is_empty() {
                    "no conditions yet".into()
                } else {
                    listed.join(", ")
                }
            }
        },
    )
    .await
}

/// Whether a Deployment is Available at its current generation with all replicas updated.
pub fn deployment_available(deployment: &Deployment) -> bool {
    let Some(status) = deployment.status.as_ref() else {
        return false;
    };
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let current_generation = status.observed_generation >= deployment.metadata.generation;
    let available = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Available" && c.status == "True");
    current_generation
        && available
        && status.updated_replicas.unwrap_or(0) >= wanted
        && status.available_replicas.unwrap_or(0) >= wanted
}

fn describe_deployment(deployment: Option<&Deployment>) -> String {
    let Some(deployment) = deployment else {
        return "the Deployment does not exist".into();
    };
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let Some(status) = deployment.status.as_ref() else {
        return format!("{wanted} replicas wanted, no status yet");
    };
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={} {}: {}",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            )
        })
        .collect();
    format!(
        "replicas wanted {wanted}, updated {}, available {}, unavailable {}; conditions: [{}]",
        status.updated_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
        status.unavailable_replicas.unwrap_or(0),
        conditions.join("; ")
    )
}

/// Waits until Deployment `namespace/name` is available (see [`deployment_available`]).
pub async fn wait_deployment_available(
    client: Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<Deployment, WaitError> {
    let api: Api<Deployment> = Api::namespaced(client, namespace);
    wait_for(
        api,
        name,
        &format!("Deployment {namespace}/{name} to be available"),
        timeout,
        deployment_available,
        describe_deployment,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock;
    use serde_json::json;

    fn core_v1_resources() -> Value {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
            {"name": "configmaps", "singularName": "configmap", "namespaced": true, "kind": "ConfigMap", "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
            {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace", "verbs": ["get", "list", "watch", "create", "patch", "delete"]}
        ]})
    }

    #[test]
    fn namespaces_then_crds_then_the_rest_in_input_order() {
        let mut objects = vec![
            json!({"kind": "Deployment", "metadata": {"name": "d"}}),
            json!({"kind": "CustomResourceDefinition", "metadata": {"name": "c"}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "m"}}),
            json!({"kind": "Namespace", "metadata": {"name": "n"}}),
        ];
        order_for_apply(&mut objects);
        let names: Vec<&str> = objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["n", "c", "d", "m"]);
    }

    #[tokio::test]
    async fn mock_server_side_apply_uses_apply_patch_with_field_manager_and_force() {
        let (client, mut handle) = mock::client();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "discovery GET /api/v1").await;
            assert_eq!(request.method(), http::Method::GET);
            assert_eq!(request.uri().path(), "/api/v1");
            respond.send_response(mock::json(200, core_v1_resources()));

            let (request, respond) = mock::next(&mut handle, "server-side apply PATCH").await;
            mock::assert_server_side_apply(
                &request,
                "/api/v1/namespaces/agents/configmaps/settings",
            );
            let body = mock::json_body(request).await;
            assert_eq!(body["data"]["k"], "v");
            respond.send_response(mock::json(200, body));
        });
        let mut applier = Applier::new(client);
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "agents"}, "data": {"k": "v"}});
        let stored = applier.apply(&object).await.unwrap();
        assert_eq!(stored.metadata.name.as_deref(), Some("settings"));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_namespaced_object_without_namespace_is_refused_naming_it() {
        let (client, mut handle) = mock::client();
        let server = tokio::spawn(async move {
            let (_, respond) = mock::next(&mut handle, "discovery GET /api/v1").await;
            respond.send_response(mock::json(200, core_v1_resources()));
        });
        let mut applier = Applier::new(client);
        let object =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}});
        let error = applier.apply(&object).await.unwrap_err().to_string();
        assert!(
            error.contains("ConfigMap settings") && error.contains("metadata.namespace"),
            "{error}"
        );
        server.await.unwrap();
    }

    fn crd(established: &str) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "scaledjobs.keda.sh", "resourceVersion": "7"},
            "spec": {"group": "keda.sh", "names": {"kind": "ScaledJob", "plural": "scaledjobs"}, "scope": "Namespaced", "versions": []},
            "status": {"conditions": [{"type": "Established", "status": established, "message": "waiting"}]}})
    }

    #[tokio::test]
    async fn mock_crd_wait_returns_when_established() {
        let (client, mut handle) = mock::client();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "CRD list").await;
            assert!(
                request.uri().path().ends_with("/customresourcedefinitions"),
                "{}",
                request.uri()
            );
            assert!(
                request
                    .uri()
                    .query()
                    .unwrap_or("")
                    .contains("metadata.name%3Dscaledjobs.keda.sh"),
                "{}",
                request.uri()
            );
            respond.send_response(mock::list(
                "CustomResourceDefinitionList",
                "apiextensions.k8s.io/v1",
                "7",
                vec![crd("False")],
            ));
            let (request, respond) = mock::next(&mut handle, "CRD watch").await;
            assert_eq!(mock::query(&request, "watch").as_deref(), Some("true"));
            respond.send_response(mock::watch_events(&[
                json!({"type": "MODIFIED", "object": crd("True")}),
            ]));
        });
        let crd = wait_crd_established(client, "scaledjobs.keda.sh", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(crd.metadata.name.as_deref(), Some("scaledjobs.keda.sh"));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_crd_wait_timeout_reports_last_observed_condition() {
        let (client, mut handle) = mock::client();
        let server = tokio::spawn(async move {
            let (_, respond) = mock::next(&mut handle, "CRD list").await;
            respond.send_response(mock::list(
                "CustomResourceDefinitionList",
                "apiextensions.k8s.io/v1",
                "7",
                vec![crd("False")],
            ));
            // Hold the watch open without events until the client gives up.
            let (_request, _respond) = mock::next(&mut handle, "CRD watch").await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        let error = wait_crd_established(client, "scaledjobs.keda.sh", Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("timed out") && error.contains("Established=False"),
            "{error}"
        );
        server.abort();
    }

    fn deployment(available: &str, ready: i32) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "keda-operator", "namespace": "keda", "generation": 2, "resourceVersion": "3"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "keda-operator"}}, "template": {"spec": {"containers": []}}},
            "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": ready,
                "conditions": [{"type": "Available", "status": available, "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."}]}})
    }

    #[tokio::test]
    async fn mock_deployment_wait_returns_when_available() {
        let (client, mut handle) = mock::client();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "Deployment list").await;
            assert_eq!(
                request.uri().path(),
                "/apis/apps/v1/namespaces/keda/deployments"
            );
            respond.send_response(mock::list(
                "DeploymentList",
                "apps/v1",
                "3",
                vec![deployment("False", 0)],
            ));
            let (_, respond) = mock::next(&mut handle, "Deployment watch").await;
            respond.send_response(mock::watch_events(&[
                json!({"type": "MODIFIED", "object": deployment("False", 0)}),
                json!({"type": "MODIFIED", "object": deployment("True", 1)}),
            ]));
        });
        let deployment =
            wait_deployment_available(client, "keda", "keda-operator", Duration::from_secs(5))
                .await
                .unwrap();
        assert_eq!(deployment.status.unwrap().available_replicas, Some(1));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_deployment_wait_timeout_reports_replicas_and_conditions() {
        let (client, mut handle) = mock::client();
        let server = tokio::spawn(async move {
            let (_, respond) = mock::next(&mut handle, "Deployment list").await;
            respond.send_response(mock::list(
                "DeploymentList",
                "apps/v1",
                "3",
                vec![deployment("False", 0)],
            ));
            let (_request, _respond) = mock::next(&mut handle, "Deployment watch").await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        let error =
            wait_deployment_available(client, "keda", "keda-operator", Duration::from_millis(300))
                .await
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("available 0") && error.contains("MinimumReplicasUnavailable"),
            "{error}"
        );
        server.abort();
    }
}
