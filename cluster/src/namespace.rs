//! One namespace per scenario, always removed.
//!
//! Scenarios run side by side on one cluster and must not see each other's agents, queues or
//! NetworkPolicies, so each gets `af-<scope>-<random>` labelled `agentfleet.dev/scope=<scope>`.
//! Cleanup deletes the objects registered with [`ScenarioNamespace::defer_delete`] in reverse
//! order (a ScaledJob goes before the namespace so KEDA stops creating Jobs while the namespace
//! terminates), then the namespace. It runs on success and failure (call
//! [`ScenarioNamespace::cleanup`]), on panic (the `Drop` impl spawns it on the current tokio
//! runtime; best effort, since a runtime that is shutting down may drop the task), on Ctrl-C ([`cleanup_on`] with `tokio::signal::ctrl_c()`), and whatever escaped all
//! of those is removed by [`sweep`], which deletes every namespace carrying the scope label.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::ObjectMeta;
use kube::discovery::ApiResource;
use kube::{Api, Client};
use rand::Rng;

/// Label on every namespace this crate creates; its value is the scenario.
pub const SCOPE_LABEL: &str = "agentfleet.dev/scope";

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error(
        "scope `{scope}` is not usable as a label value: use 1-40 characters of a-z, 0-9 and '-', starting and ending alphanumeric"
    )]
    BadScope { scope: String },
    #[error(
        "cannot create namespace {name}: {source}; check that the context may create namespaces"
    )]
    Create {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "cannot delete {what}: {source}; remove it with `agentfleet sweep` (deletes every namespace labelled {SCOPE_LABEL})"
    )]
    Delete {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot list namespaces labelled {SCOPE_LABEL}: {source}")]
    List {
        #[source]
        source: kube::Error,
    },
}

/// Namespaces that exist right now, shared with the Ctrl-C handler.
#[derive(Debug, Clone, Default)]
pub struct LiveNamespaces(Arc<Mutex<BTreeSet<String>>>);

impl LiveNamespaces {
    fn insert(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.to_owned());
    }

    fn remove(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(name);
    }

    /// Names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// An object deleted at cleanup.
#[derive(Debug, Clone)]
pub struct Registered {
    pub resource: ApiResource,
    pub name: String,
}

/// A scenario's namespace. Call [`cleanup`](Self::cleanup); dropping it without doing so
/// spawns the cleanup in the background.
pub struct ScenarioNamespace {
    client: Client,
    name: String,
    scope: String,
    registered: Vec<Registered>,
    live: LiveNamespaces,
    cleaned: bool,
}

impl std::fmt::Debug for ScenarioNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScenarioNamespace")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("registered", &self.registered.len())
            .finish()
    }
}

/// Checks a scope and returns it; it becomes part of a DNS label and a label value.
pub fn validate_scope(scope: &str) -> Result<&str, NamespaceError> {
    let ok = (1..=40).contains(&scope.len())
        && scope
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !scope.starts_with('-')
        && !scope.ends_with('-');
    if ok {
        Ok(scope)
    } else {
        Err(NamespaceError::BadScope {
            scope: scope.to_owned(),
        })
    }
}

/// `af-<scope>-<6 random lowercase alphanumerics>`.
pub fn namespace_name(scope: &str, rng: &mut impl Rng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let suffix: String = (0..6)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("af-{scope}-{suffix}")
}

impl ScenarioNamespace {
    /// Creates the namespace and records it in `live`.
    pub async fn create(
        client: Client,
        scope: &str,
        live: LiveNamespaces,
    ) -> Result<ScenarioNamespace, NamespaceError> {
        let scope = validate_scope(scope)?.to_owned();
        let name = namespace_name(&scope, &mut rand::rng());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(SCOPE_LABEL.to_owned(), scope.clone())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let api: Api<Namespace> = Api::all(client.clone());
        api.create(&PostParams::default(), &namespace)
            .await
            .map_err(|source| NamespaceError::Create {
                name: name.clone(),
                source,
            })?;
        live.insert(&name);
        Ok(ScenarioNamespace {
            client,
            name,
            scope,
            registered: Vec::new(),
            live,
            cleaned: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Deletes `name` of `resource` in this namespace at cleanup, before anything registered
    /// earlier.
    pub fn defer_delete(&mut self, resource: ApiResource, name: impl Into<String>) {
        self.registered.push(Registered {
            resource,
            name: name.into(),
        });
    }

    /// Deletes registered objects (newest first), then the namespace. Already-gone objects are
    /// fine; the first real failure is returned after everything else was attempted.
    pub async fn cleanup(mut self) -> Result<(), NamespaceError> {
        self.cleaned = true;
        let registered = std::mem::take(&mut self.registered);
        let result = delete_all(self.client.clone(), self.name.clone(), registered).await;
        self.live.remove(&self.name);
        result
    }
}

impl Drop for ScenarioNamespace {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let registered = std::mem::take(&mut self.registered);
        let (client, name, live) = (self.client.clone(), self.name.clone(), self.live.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(error) = delete_all(client, name.clone(), registered).await {
                        tracing::warn!(namespace = %name, %error, "background cleanup failed");
                    }
                    live.remove(&name);
                });
            }
            Err(_) => tracing::warn!(
                namespace = %name,
                "scenario namespace dropped outside a tokio runtime; run `agentfleet sweep` to remove it"
            ),
        }
    }
}

async fn delete_all(
    client: Client,
    namespace: String,
    registered: Vec<Registered>,
) -> Result<(), NamespaceError> {
    let mut first_error = None;
    for object in registered.into_iter().rev() {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &namespace, &object.resource);
        let what = format!("{} {namespace}/{}", object.resource.kind, object.name);
        if let Err(error) = delete_ignoring_absent(
            api.delete(&object.name, &DeleteParams::background())
                .await
                .map(drop),
            what,
        ) {
            first_error.get_or_insert(error);
        }
    }
    let api: Api<Namespace> = Api::all(client);
    let result = delete_ignoring_absent(
        api.delete(&namespace, &DeleteParams::background())
            .await
            .map(drop),
        format!("namespace {namespace}"),
    );
    match first_error {
        Some(error) => Err(error),
        None => result,
    }
}

fn delete_ignoring_absent(
    result: Result<(), kube::Error>,
    what: String,
) -> Result<(), NamespaceError> {
    match result {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(NamespaceError::Delete { what, source }),
    }
}

/// Deletes every namespace in `live` once `trigger` completes (pass `tokio::signal::ctrl_c()`),
/// and returns their names. Run it in `tokio::select!` next to the scenario, then exit.
pub async fn cleanup_on<F>(trigger: F, client: Client, live: LiveNamespaces) -> Vec<String>
where
    F: std::future::Future,
{
    trigger.await;
    let names = live.names();
    for name in &names {
        if let Err(error) = delete_all(client.clone(), name.clone(), Vec::new()).await {
            tracing::warn!(namespace = %name, %error, "cleanup after interrupt failed");
        }
        live.remove(name);
    }
    names
}

/// Deletes every namespace labelled [`SCOPE_LABEL`] (leftovers of crashed runs); returns the
/// names.
pub async fn sweep(client: Client) -> Result<Vec<String>, NamespaceError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default().labels(SCOPE_LABEL))
        .await
        .map_err(|source| NamespaceError::List { source })?;
    let mut removed = Vec::new();
    for namespace in list.items {
        let Some(name) = namespace.metadata.name else {
            continue;
        };
        delete_all(client.clone(), name.clone(), Vec::new()).await?;
        removed.push(name);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::scaled_job_resource;
    use crate::mock;
    use rand::SeedableRng;
    use serde_json::json;

    fn namespace_json(name: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {SCOPE_LABEL: "oom"}}})
    }

    #[test]
    fn names_and_scopes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let name = namespace_name("oom", &mut rng);
        assert!(
            name.starts_with("af-oom-") && name.len() == "af-oom-".len() + 6,
            "{name}"
        );
        assert_ne!(name, namespace_name("oom", &mut rng));
        assert!(validate_scope("eviction-resume").is_ok());
        for bad in ["", "Upper", "-x", "x-", "a_b", &"x".repeat(41)] {
            assert!(validate_scope(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn mock_create_then_cleanup_deletes_in_reverse_order_then_the_namespace() {
        let (client, mut handle) = mock::client();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "namespace POST").await;
            assert_eq!(
                (request.method().as_str(), request.uri().path()),
                ("POST", "/api/v1/namespaces")
            );
            let body = mock::json_body(request).await;
            assert_eq!(body["metadata"]["labels"][SCOPE_LABEL], "oom");
            let name = body["metadata"]["name"].as_str().unwrap().to_owned();
            respond.send_response(mock::json(201, namespace_json(&name)));

            let mut deleted = Vec::new();
            for expecting in ["ScaledJob DELETE", "ConfigMap DELETE", "namespace DELETE"] {
                let (request, respond) = mock::next(&mut handle, expecting).await;
                assert_eq!(request.method(), http::Method::DELETE);
                deleted.push(request.uri().path().to_owned());
                if expecting == "ConfigMap DELETE" {
                    respond.send_response(mock::status(
                        404,
                        "NotFound",
                        "configmaps \"gone\" not found",
                    ));
                } else {
                    respond.send_response(mock::json(
                        200,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                    ));
                }
            }
            (name, deleted)
        });
        let live = LiveNamespaces::default();
        let mut namespace = ScenarioNamespace::create(client, "oom", live.clone())
            .await
            .unwrap();
        assert_eq!(live.names(), vec![namespace.name().to_owned()]);
        namespace.defer_delete(
            ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
            "gone",
        );
        namespace.defer_delete(scaled_job_resource(), "agents");
        namespace.cleanup().await.unwrap();
        let (name, deleted) = server.await.unwrap();
        assert_eq!(
            deleted,
            vec![
                format!("/apis/keda.sh/v1alpha1/namespaces/{name}/scaledjobs/agents"),
                format!("/api/v1/namespaces/{name}/configmaps/gone"),
                format!("/api/v1/namespaces/{name}"),
            ]
        );
        assert!(live.names().is_empty());
    }

    #[tokio::test]
    async fn mock_dropped_namespace_is_deleted_in_the_background() {
        let (client, mut handle) = mock::client();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "namespace POST").await;
            let name = mock::json_body(request).await["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_owned();
            respond.send_response(mock::json(201, namespace_json(&name)));
            let (request, respond) = mock::next(&mut handle, "namespace DELETE from Drop").await;
            assert_eq!(request.method(), http::Method::DELETE);
            assert_eq!(request.uri().path(), format!("/api/v1/namespaces/{name}"));
            respond.send_response(mock::json(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ));
        });
        let namespace = ScenarioNamespace::create(client, "oom", LiveNamespaces::default())
            .await
            .unwrap();
        drop(namespace);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_interrupt_deletes_live_namespaces() {
        let (client, mut handle) = mock::client();
        let live = LiveNamespaces::default();
        live.insert("af-oom-abc123");
        let server = tokio::spawn(async move {
            let (request, respond) =
                mock::next(&mut handle, "namespace DELETE after interrupt").await;
            assert_eq!(request.uri().path(), "/api/v1/namespaces/af-oom-abc123");
            respond.send_response(mock::json(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ));
        });
        let removed = cleanup_on(std::future::ready(()), client, live.clone()).await;
        assert_eq!(removed, vec!["af-oom-abc123"]);
        assert!(live.names().is_empty());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_sweep_lists_by_label_and_deletes_each() {
        let (client, mut handle) = mock::client();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "namespace LIST").await;
            assert_eq!(request.method(), http::Method::GET);
            assert_eq!(
                mock::query(&request, "labelSelector").as_deref(),
                Some("agentfleet.dev%2Fscope")
            );
            respond.send_response(mock::list(
                "NamespaceList",
                "v1",
                "1",
                vec![
                    namespace_json("af-oom-aaaaaa"),
                    namespace_json("af-scaling-bbbbbb"),
                ],
            ));
            let mut deleted = Vec::new();
            for _ in 0..2 {
                let (request, respond) = mock::next(&mut handle, "namespace DELETE").await;
                assert_eq!(request.method(), http::Method::DELETE);
                deleted.push(request.uri().path().to_owned());
                respond.send_response(mock::json(
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                ));
            }
            deleted
        });
        let removed = sweep(client).await.unwrap();
        assert_eq!(removed, vec!["af-oom-aaaaaa", "af-scaling-bbbbbb"]);
        assert_eq!(
            server.await.unwrap(),
            vec![
                "/api/v1/namespaces/af-oom-aaaaaa",
                "/api/v1/namespaces/af-scaling-bbbbbb"
            ]
        );
    }
}
