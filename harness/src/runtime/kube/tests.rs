//! Mock-API tests (`mock_*`) of the adapter's mappings: every request the runtime sends is
//! answered by the test through `tower_test::mock::pair`, so the tests assert the exact HTTP the
//! trait methods produce and the runtime-neutral values they return.

use std::path::Path;
use std::time::Duration;

use agentfleet_cluster::events::cluster_events;
use agentfleet_cluster::kustomize;
use futures::StreamExt;
use http::Response;
use k8s_openapi::api::batch::v1::Job;
use kube::client::Body;
use serde_json::{Value, json};

use super::agents::AgentOps;
use super::events::{EventMapper, Killed};
use super::job::{JobRecord, JobTable};
use super::reference_job;
use super::status::agent_pod_selector;
use crate::runtime::event_bus::EventBus;
use crate::runtime::{
    AgentPhase, AgentRef, AgentSet, AgentStatus, EvictOutcome, RuntimeError, RuntimeEvent,
};

const NS: &str = "af-oom-abc123";

// The kube-rs mock-service plumbing is agentfleet-cluster's (feature `test-support`).
use agentfleet_cluster::mock::{
    MockHandle, client as mock_client, json as respond_json, json_body, next, query,
    status as respond_status, watch_events as respond_watch,
};

fn respond_list(kind: &str, api_version: &str, items: Vec<Value>) -> Response<Body> {
    agentfleet_cluster::mock::list(kind, api_version, "10", items)
}

/// The reference Job exactly as the manifests render it.
fn manifests_reference_job() -> Job {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base");
    reference_job(
        &kustomize::render(&base)
            .expect("manifests/base renders")
            .objects,
    )
    .expect("manifests/base has the reference Job")
}

fn ops(client: kube::Client, bus: EventBus) -> AgentOps {
    AgentOps::new(
        client,
        NS,
        manifests_reference_job(),
        bus,
        Duration::from_secs(40),
        Duration::from_secs(5),
    )
}

/// A pod as the API server returns it.
fn pod(name: &str, job: &str, index: u32, created: &str, status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "11", "creationTimestamp": created,
            "labels": {"app": "ai-agent", "batch.kubernetes.io/job-name": job},
            "annotations": {"batch.kubernetes.io/job-completion-index": index.to_string()}},
        "status": status})
}

fn running() -> Value {
    json!({"phase": "Running", "containerStatuses": [{"name": "agent", "image": "", "imageID": "", "ready": true,
        "restartCount": 0, "state": {"running": {}}}]})
}

fn oom_killed() -> Value {
    json!({"phase": "Failed", "containerStatuses": [{"name": "agent", "image": "", "imageID": "", "ready": false,
        "restartCount": 0, "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]})
}

fn env_of(body: &Value) -> Vec<Value> {
    body["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("container env")
        .clone()
}

fn env_var<'a>(env: &'a [Value], name: &str) -> &'a Value {
    env.iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no env {name} in {env:#?}"))
}

#[tokio::test]
async fn mock_start_agents_applies_an_indexed_job_with_the_set_and_waits_for_its_pods() {
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (request, respond) = next(&mut handle, "Job PATCH").await;
        assert_eq!(request.method(), http::Method::PATCH);
        assert_eq!(
            request.uri().path(),
            format!("/apis/batch/v1/namespaces/{NS}/jobs/agent-oom-0")
        );
        assert_eq!(
            query(&request, "fieldManager").as_deref(),
            Some("agentfleet")
        );
        let body = json_body(request).await;
        assert_eq!(body["metadata"]["namespace"], NS);
        let spec = &body["spec"];
        assert_eq!(spec["completionMode"], "Indexed");
        assert_eq!(
            (spec["completions"].as_i64(), spec["parallelism"].as_i64()),
            (Some(2), Some(2))
        );
        assert_eq!(spec["backoffLimitPerIndex"], 2, "kept from the manifests");
        let rules = spec["podFailurePolicy"]["rules"]
            .as_array()
            .expect("podFailurePolicy kept");
        assert_eq!(rules[0]["action"], "Ignore");
        assert_eq!(rules[0]["onPodConditions"][0]["type"], "DisruptionTarget");
        assert_eq!(rules[1]["action"], "FailJob");
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(spec["template"]["metadata"]["labels"]["app"], "ai-agent");
        assert_eq!(
            spec["template"]["metadata"]["labels"]["agentfleet.dev/fleet"],
            "oom"
        );
        let env = env_of(&body);
        assert_eq!(
            env_var(&env, "AGENT_LOG")["value"],
            "debug",
            "override applied"
        );
        assert_eq!(
            env_var(&env, "AGENT_TEST_OOM_STEP")["value"],
            "3",
            "new variable added"
        );
        assert!(
            env_var(&env, "AGENT_INDEX")["valueFrom"]["fieldRef"].is_object(),
            "a 0..n set keeps the completion-index fieldRef"
        );
        assert!(env_var(&env, "AGENT_QUEUE_URL")["valueFrom"]["secretKeyRef"].is_object());
        respond.send_response(respond_json(200, body));

        let (request, respond) = next(&mut handle, "pod LIST of the Job").await;
        assert_eq!(
            request.uri().path(),
            format!("/api/v1/namespaces/{NS}/pods")
        );
        let selector = query(&request, "labelSelector").unwrap_or_default();
        assert!(selector.contains("agent-oom-0"), "{selector}");
        respond.send_response(respond_list(
            "PodList",
            "v1",
            vec![
                pod(
                    "agent-oom-0-0-aaaaa",
                    "agent-oom-0",
                    0,
                    "2026-01-01T00:00:00Z",
                    running(),
                ),
                pod(
                    "agent-oom-0-1-bbbbb",
                    "agent-oom-0",
                    1,
                    "2026-01-01T00:00:00Z",
                    running(),
                ),
            ],
        ));
        // The watch that would follow stays open until the test ends.
        let held = handle.next_request().await;
        drop(held);
    });
    let set = AgentSet::new("oom", 0..2)
        .env("AGENT_LOG", "debug")
        .env("AGENT_TEST_OOM_STEP", 3);
    let started = ops(client, EventBus::default()).start(&set).await.unwrap();
    assert_eq!(
        started,
        [
            AgentRef {
                index: 0,
                name: "agent-oom-0-0-aaaaa".into()
            },
            AgentRef {
                index: 1,
                name: "agent-oom-0-1-bbbbb".into()
            },
        ]
    );
    server.abort();
}

#[tokio::test]
async fn mock_start_agents_for_a_lone_index_sets_agent_index_literally() {
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (request, respond) = next(&mut handle, "Job PATCH").await;
        assert!(
            request.uri().path().ends_with("/jobs/agent-stubborn-0-1"),
            "{}",
            request.uri()
        );
        let body = json_body(request).await;
        assert_eq!(body["spec"]["completions"], 1);
        let env = env_of(&body);
        assert_eq!(
            env_var(&env, "AGENT_INDEX"),
            &json!({"name": "AGENT_INDEX", "value": "1"})
        );
        respond.send_response(respond_json(200, body));
        let (_, respond) = next(&mut handle, "pod LIST").await;
        respond.send_response(respond_list(
            "PodList",
            "v1",
            vec![pod(
                "agent-stubborn-0-1-0-ccccc",
                "agent-stubborn-0-1",
                0,
                "2026-01-01T00:00:00Z",
                running(),
            )],
        ));
        let held = handle.next_request().await;
        drop(held);
    });
    let started = ops(client, EventBus::default())
        .start(&AgentSet::new("stubborn", [1]))
        .await
        .unwrap();
    assert_eq!(
        started,
        [AgentRef {
            index: 1,
            name: "agent-stubborn-0-1-0-ccccc".into()
        }],
        "completion index 0 of the per-index Job is agent index 1"
    );
    server.abort();
}

#[tokio::test]
async fn mock_start_agents_times_out_naming_what_it_saw() {
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (request, respond) = next(&mut handle, "Job PATCH").await;
        let body = json_body(request).await;
        respond.send_response(respond_json(200, body));
        let (_, respond) = next(&mut handle, "pod LIST").await;
        respond.send_response(respond_list(
            "PodList",
            "v1",
            vec![pod(
                "agent-slow-0-0-ddddd",
                "agent-slow-0",
                0,
                "2026-01-01T00:00:00Z",
                json!({"phase": "Pending"}),
            )],
        ));
        let mut held = Vec::new();
        while let Some(pair) = handle.next_request().await {
            held.push(pair);
        }
    });
    let ops = AgentOps::new(
        client,
        NS,
        manifests_reference_job(),
        EventBus::default(),
        Duration::from_secs(40),
        Duration::from_millis(300),
    );
    let error = ops
        .start(&AgentSet::new("slow", [0]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("0 of 1 agents running") && error.contains("agent-slow-0-0-ddddd Pending"),
        "{error}"
    );
    server.abort();
}

fn pdb(disruptions_allowed: i32) -> Value {
    json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "agent-pdb", "namespace": NS, "generation": 1, "resourceVersion": "7"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "ai-agent"}}},
        "status": {"observedGeneration": 1, "currentHealthy": 1 + disruptions_allowed, "desiredHealthy": 1,
                   "disruptionsAllowed": disruptions_allowed, "expectedPods": 1 + disruptions_allowed}
    })
}

const REFUSAL: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

#[tokio::test]
async fn mock_stop_maps_eviction_201_429_404_and_waits_like_a_drain() {
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (request, respond) = next(&mut handle, "eviction POST").await;
        assert_eq!(
            request.uri().path(),
            format!("/api/v1/namespaces/{NS}/pods/agent-a/eviction")
        );
        let body = json_body(request).await;
        assert_eq!(body["deleteOptions"]["gracePeriodSeconds"], 10);
        respond.send_response(respond_json(
            201,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}),
        ));
        // agent-b: refused, the budget opens (the controller counted a new Ready pod), retried.
        let (_, respond) = next(&mut handle, "eviction POST").await;
        respond.send_response(respond_status(429, "TooManyRequests", REFUSAL));
        let (request, respond) = next(&mut handle, "PDB list").await;
        assert_eq!(
            request.uri().path(),
            format!("/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets")
        );
        respond.send_response(respond_list(
            "PodDisruptionBudgetList",
            "policy/v1",
            vec![pdb(1)],
        ));
        let (request, respond) = next(&mut handle, "eviction POST (retry)").await;
        assert!(request.uri().path().ends_with("/pods/agent-b/eviction"));
        respond.send_response(respond_json(
            201,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}),
        ));
        let (_, respond) = next(&mut handle, "eviction POST").await;
        respond.send_response(respond_status(
            404,
            "NotFound",
            "pods \"agent-c\" not found",
        ));
        // agent-d: refused, and the budget stays closed past the patience.
        let (_, respond) = next(&mut handle, "eviction POST").await;
        respond.send_response(respond_status(429, "TooManyRequests", REFUSAL));
        let (_, respond) = next(&mut handle, "PDB list").await;
        respond.send_response(respond_list(
            "PodDisruptionBudgetList",
            "policy/v1",
            vec![pdb(0)],
        ));
        // The watch that follows gets no answer: the budget never opens.
        let _held = next(&mut handle, "PDB watch").await;
        std::future::pending::<()>().await;
    });
    let bus = EventBus::default();
    let ops = ops(client, bus.clone()).with_drain_patience(Duration::from_millis(500));
    let agent = |name: &str| AgentRef {
        index: 0,
        name: name.into(),
    };
    assert_eq!(
        ops.stop(&agent("agent-a"), Some(Duration::from_secs(10)))
            .await
            .unwrap(),
        EvictOutcome::Evicted
    );
    assert_eq!(
        ops.stop(&agent("agent-b"), None).await.unwrap(),
        EvictOutcome::Evicted
    );
    assert_eq!(
        ops.stop(&agent("agent-c"), None).await.unwrap(),
        EvictOutcome::NotFound
    );
    let EvictOutcome::RefusedByBudget { status, message } =
        ops.stop(&agent("agent-d"), None).await.unwrap()
    else {
        panic!("a budget that stays closed must refuse")
    };
    assert_eq!(status, 429);
    assert!(
        message.starts_with(REFUSAL)
            && message.contains("disruptionsAllowed >= 1")
            && message
                .contains("agent-pdb: currentHealthy=1 desiredHealthy=1 disruptionsAllowed=0"),
        "{message}"
    );
    assert_eq!(
        bus.history(),
        [
            RuntimeEvent::StopRequested {
                agent: agent("agent-a"),
                grace_ms: 10_000
            },
            RuntimeEvent::StopRequested {
                agent: agent("agent-b"),
                grace_ms: 40_000
            }
        ],
        "only an accepted eviction is a stop request"
    );
    server.abort();
}

#[tokio::test]
async fn mock_kill_deletes_with_grace_zero_and_404_is_an_unknown_agent() {
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (request, respond) = next(&mut handle, "pod DELETE").await;
        assert_eq!(request.method(), http::Method::DELETE);
        assert_eq!(json_body(request).await["gracePeriodSeconds"], 0);
        respond.send_response(respond_json(
            200,
            pod("agent-a", "j", 0, "2026-01-01T00:00:00Z", running()),
        ));
        let (_, respond) = next(&mut handle, "pod DELETE").await;
        respond.send_response(respond_status(404, "NotFound", "gone"));
    });
    let ops = ops(client, EventBus::default());
    let agent = AgentRef {
        index: 0,
        name: "agent-a".into(),
    };
    ops.kill(&agent).await.unwrap();
    assert!(
        matches!(ops.kill(&agent).await, Err(RuntimeError::UnknownAgent(name)) if name == "agent-a")
    );
    server.await.unwrap();
}

#[tokio::test]
async fn mock_agents_maps_an_oom_killed_pod_and_counts_generations_per_index() {
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        let (request, respond) = next(&mut handle, "pod LIST").await;
        let selector = query(&request, "labelSelector").unwrap_or_default();
        assert_eq!(
            selector, "app%3Dai-agent%2C%21agentfleet.dev%2Fprobe",
            "probe pods excluded"
        );
        // Listed newest first on purpose: generations follow creation, not list order.
        respond.send_response(respond_list(
            "PodList",
            "v1",
            vec![
                pod(
                    "agent-oom-0-0-new",
                    "agent-oom-0",
                    0,
                    "2026-01-01T00:01:00Z",
                    running(),
                ),
                pod(
                    "agent-oom-0-1-aaa",
                    "agent-oom-0",
                    1,
                    "2026-01-01T00:00:00Z",
                    running(),
                ),
                pod(
                    "agent-oom-0-0-old",
                    "agent-oom-0",
                    0,
                    "2026-01-01T00:00:00Z",
                    oom_killed(),
                ),
            ],
        ));
    });
    let statuses = ops(client, EventBus::default()).statuses().await.unwrap();
    let status = |index: u32, name: &str, phase, exit_code, oom_killed, generation| AgentStatus {
        agent: AgentRef {
            index,
            name: name.into(),
        },
        phase,
        exit_code,
        oom_killed,
        restarts: 0,
        generation,
    };
    assert_eq!(
        statuses,
        [
            status(
                0,
                "agent-oom-0-0-old",
                AgentPhase::Failed,
                Some(137),
                true,
                0
            ),
            status(1, "agent-oom-0-1-aaa", AgentPhase::Running, None, false, 0),
            status(0, "agent-oom-0-0-new", AgentPhase::Running, None, false, 1),
        ]
    );
    server.await.unwrap();
}

#[tokio::test]
async fn mock_events_map_a_watch_stream_to_runtime_events() {
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        // Three watchers (pods, jobs, events), each a list then a watch, in scheduler order.
        let mut held = Vec::new();
        for _ in 0..6 {
            let (request, respond) = next(&mut handle, "a list or watch").await;
            let watching = query(&request, "watch").as_deref() == Some("true");
            let resource = request
                .uri()
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            match (resource.as_str(), watching) {
                ("pods", false) => respond.send_response(respond_list("PodList", "v1", vec![
                    pod("agent-a", "agent-oom-0", 0, "2026-01-01T00:00:00Z", running()),
                ])),
                ("pods", true) => respond.send_response(respond_watch(&[
                    json!({"type": "MODIFIED", "object": pod("agent-a", "agent-oom-0", 0, "2026-01-01T00:00:00Z", oom_killed())}),
                    json!({"type": "ADDED", "object": pod("agent-b", "agent-oom-0", 0, "2026-01-01T00:00:30Z", json!({"phase": "Pending"}))}),
                    json!({"type": "MODIFIED", "object": pod("agent-b", "agent-oom-0", 0, "2026-01-01T00:00:30Z", running())}),
                    json!({"type": "MODIFIED", "object": pod("agent-b", "agent-oom-0", 0, "2026-01-01T00:00:30Z", oom_killed())}),
                ])),
                ("jobs", false) => respond.send_response(respond_list("JobList", "batch/v1", vec![])),
                ("events", false) => respond.send_response(respond_list("EventList", "v1", vec![])),
                _ => held.push(respond),
            }
        }
        // Keep the other watches open until the test ends.
        let rest = handle.next_request().await;
        drop((held, rest));
    });
    let jobs = JobTable::default();
    jobs.record(
        "agent-oom-0",
        JobRecord {
            indexes: vec![0],
            backoff_limit_per_index: Some(1),
        },
    );
    let mut mapper = EventMapper::new(jobs, Killed::default());
    let mut stream = Box::pin(cluster_events(client, NS, &agent_pod_selector()));
    let mut mapped = Vec::new();
    while mapped.len() < 8 {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(event))) => mapped.extend(mapper.map(&event)),
            other => panic!("stream ended or failed after {mapped:#?}: {other:?}"),
        }
    }
    let a = AgentRef {
        index: 0,
        name: "agent-a".into(),
    };
    let b = AgentRef {
        index: 0,
        name: "agent-b".into(),
    };
    assert_eq!(
        mapped,
        [
            RuntimeEvent::Started { agent: a.clone() },
            RuntimeEvent::OomKilled { agent: a.clone() },
            RuntimeEvent::Exited {
                agent: a.clone(),
                exit_code: 137,
                oom_killed: true
            },
            RuntimeEvent::Replaced {
                failed: a,
                replacement: b.clone()
            },
            RuntimeEvent::Started { agent: b.clone() },
            RuntimeEvent::OomKilled { agent: b.clone() },
            RuntimeEvent::Exited {
                agent: b,
                exit_code: 137,
                oom_killed: true
            },
            RuntimeEvent::IndexFailed {
                index: 0,
                failures: 2
            },
        ]
    );
    server.abort();
}

#[test]
fn an_evicted_pod_does_not_count_against_the_backoff_limit_and_a_killed_one_exits_137() {
    use agentfleet_cluster::events::{ClusterEvent, ClusterEventKind};
    use agentfleet_cluster::pod_status::agent_status;
    let jobs = JobTable::default();
    jobs.record(
        "j",
        JobRecord {
            indexes: vec![4],
            backoff_limit_per_index: Some(0),
        },
    );
    let killed = Killed::default();
    let mut mapper = EventMapper::new(jobs, killed.clone());
    let epoch = || {
        serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>(json!(
            "2026-01-01T00:00:00Z"
        ))
        .unwrap()
        .0
    };
    let event = |pod: Value| ClusterEvent {
        observed: epoch(),
        kind: ClusterEventKind::Pod(agent_status(&serde_json::from_value(pod).unwrap())),
    };
    let mut evicted = pod(
        "e",
        "j",
        0,
        "2026-01-01T00:00:00Z",
        json!({"phase": "Failed",
        "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}],
        "containerStatuses": [{"name": "agent", "image": "", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 143, "reason": "Error"}}}]}),
    );
    evicted["metadata"]["name"] = json!("e");
    let events = mapper.map(&event(evicted));
    let e = AgentRef {
        index: 4,
        name: "e".into(),
    };
    assert_eq!(
        events,
        [
            RuntimeEvent::Started { agent: e.clone() },
            RuntimeEvent::Exited {
                agent: e,
                exit_code: 143,
                oom_killed: false
            },
        ],
        "no IndexFailed: DisruptionTarget is ignored by the podFailurePolicy"
    );
    let k = AgentRef {
        index: 4,
        name: "k".into(),
    };
    mapper.map(&event(pod("k", "j", 0, "2026-01-01T00:01:00Z", running())));
    killed.insert("k");
    let deleted = ClusterEvent {
        observed: epoch(),
        kind: ClusterEventKind::PodDeleted { name: "k".into() },
    };
    assert_eq!(
        mapper.map(&deleted),
        [RuntimeEvent::Exited {
            agent: k,
            exit_code: 137,
            oom_killed: false
        }]
    );
}

/// [`ClusterOps`](crate::runtime::ClusterOps) on Kubernetes (`cluster_ops.rs`): the KEDA
/// objects, the watches' history, the disruption budget and the NetworkPolicy probes.
mod cluster {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use agentfleet_cluster::checks::Verdict as CheckVerdict;
    use agentfleet_cluster::checks::disruption::EvictionAttempt;
    use agentfleet_cluster::checks::netpol::{self, Canary};
    use agentfleet_cluster::events::{ClusterEvent, ClusterEventKind};
    use agentfleet_cluster::fleet::EvictOutcome as ClusterEvictOutcome;
    use agentfleet_cluster::keda;
    use agentfleet_cluster::mock::assert_server_side_apply;
    use agentfleet_cluster::namespace::LiveNamespaces;
    use agentfleet_cluster::pod_status::agent_status;
    use agentfleet_cluster::probe::PROBE_LABEL;
    use serde_json::{Value, json};

    use super::{
        MockHandle, NS, REFUSAL, json_body, mock_client, next, pod, query, respond_json,
        respond_list, respond_status, respond_watch, running,
    };
    use crate::runtime::kube::Timeouts;
    use crate::runtime::kube::cluster_ops::{
        ClusterHistory, KedaObjects, KubeCluster, keda_objects, scaled_job_for,
    };
    use crate::runtime::{AgentRef, AgentSet, ClusterOps, DisruptionBudget, RuntimeError};

    const KEDA_API: &str = "/apis/keda.sh/v1alpha1";

    fn manifests() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests")
    }

    /// manifests/overlays/kind rendered, as the kind runtime renders it.
    fn rendered() -> Vec<Value> {
        keda::render_kind_overlay(&manifests())
            .expect("manifests/overlays/kind renders")
            .objects
    }

    fn keda_of_manifests() -> KedaObjects {
        keda_objects(&rendered(), NS).expect("the manifests define a ScaledJob in `agents`")
    }

    fn policy_sources() -> Vec<PathBuf> {
        vec![manifests().join("base"), manifests().join("platform")]
    }

    fn kube_cluster(
        client: kube::Client,
        keda: Option<KedaObjects>,
        history: ClusterHistory,
        canary: Option<Canary>,
    ) -> KubeCluster {
        KubeCluster::new(
            client,
            NS,
            keda,
            history,
            Arc::new(tokio::sync::Mutex::new(canary)),
            LiveNamespaces::default(),
            policy_sources(),
            Timeouts {
                start: Duration::from_secs(5),
                probe: Duration::from_secs(5),
            },
        )
    }

    /// Asserts that the client sends nothing more (a retry, a stray request) within 200 ms.
    async fn assert_no_request(handle: &mut MockHandle, after: &str) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
        {
            panic!(
                "unexpected request after {after}: {} {}",
                request.method(),
                request.uri()
            );
        }
    }

    fn agent(name: &str) -> AgentRef {
        AgentRef {
            index: 0,
            name: name.into(),
        }
    }

    fn event(kind: ClusterEventKind) -> ClusterEvent {
        ClusterEvent {
            observed: k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            kind,
        }
    }

    /// A Job as the session's Job watch reports it.
    fn job(name: &str, scaled_job: &str, ready: i32, finished: bool) -> ClusterEvent {
        agentfleet_cluster::mock::job_event(name, scaled_job, ready, finished)
    }

    fn job_deleted(name: &str) -> ClusterEvent {
        event(ClusterEventKind::JobDeleted { name: name.into() })
    }

    fn pod_event(pod: Value) -> ClusterEvent {
        event(ClusterEventKind::Pod(agent_status(
            &serde_json::from_value(pod).expect("a Pod"),
        )))
    }

    fn env_named<'a>(container: &'a Value, name: &str) -> &'a Value {
        container["env"]
            .as_array()
            .expect("container env")
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no env {name} in {container:#}"))
    }

    fn agent_container(scaled_job: &Value) -> &Value {
        &scaled_job["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]
    }

    #[test]
    fn keda_objects_retarget_the_scaled_job_and_pick_the_trigger_authentication_it_names() {
        let mut objects = rendered();
        // A TriggerAuthentication the trigger does not name, ahead of the real one.
        objects.insert(
            0,
            json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
                "metadata": {"name": "other-auth", "namespace": "agents"}, "spec": {}}),
        );
        let keda = keda_objects(&objects, NS).expect("a ScaledJob in `agents`");
        assert_eq!(keda.scaled_job["kind"], "ScaledJob");
        assert_eq!(keda.scaled_job["metadata"]["name"], "agent-scaledjob");
        assert_eq!(keda.scaled_job["metadata"]["namespace"], NS);
        assert_eq!(
            keda.scaled_job["spec"]["triggers"][0]["authenticationRef"]["name"],
            "rabbitmq-auth"
        );
        let auth = keda
            .trigger_authentication
            .expect("the TriggerAuthentication named by authenticationRef");
        assert_eq!(auth["kind"], "TriggerAuthentication");
        assert_eq!(auth["metadata"]["name"], "rabbitmq-auth");
        assert_eq!(auth["metadata"]["namespace"], NS);
        assert_eq!(auth["spec"]["secretTargetRef"][0]["name"], "agent-secrets");

        let without_scaled_job: Vec<Value> = objects
            .into_iter()
            .filter(|o| o["kind"] != "ScaledJob")
            .collect();
        assert!(keda_objects(&without_scaled_job, NS).is_none());
    }

    #[test]
    fn scaled_job_for_sets_the_fleet_label_and_env_overrides_keeping_the_rest() {
        let keda = keda_of_manifests();
        let set = AgentSet::new("Scaling Up", [0])
            .env("AGENT_IDLE_EXIT_SECS", 25)
            .env("AGENT_TEST_STEP_DELAY_MS", 300)
            .env("AGENT_INDEX", 7);
        let object = scaled_job_for(&keda.scaled_job, &set, None).unwrap();
        let labels = &object["spec"]["jobTargetRef"]["template"]["metadata"]["labels"];
        assert_eq!(labels["agentfleet.dev/fleet"], "scaling-up");
        assert_eq!(labels["app"], "ai-agent", "template label kept");
        let container = agent_container(&object);
        assert_eq!(
            env_named(container, "AGENT_IDLE_EXIT_SECS"),
            &json!({"name": "AGENT_IDLE_EXIT_SECS", "value": "25"}),
            "override replaces the manifests' 60"
        );
        assert_eq!(
            env_named(container, "AGENT_TEST_STEP_DELAY_MS"),
            &json!({"name": "AGENT_TEST_STEP_DELAY_MS", "value": "300"}),
            "new variable added"
        );
        assert_eq!(
            env_named(container, "AGENT_INDEX"),
            &json!({"name": "AGENT_INDEX", "value": "7"}),
            "a literal replaces the valueFrom of the same name"
        );
        assert_eq!(env_named(container, "AGENT_LOG")["value"], "info");
        assert!(env_named(container, "AGENT_QUEUE_URL")["valueFrom"]["secretKeyRef"].is_object());
        let before = agent_container(&keda.scaled_job)["env"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(
            container["env"].as_array().unwrap().len(),
            before + 1,
            "only the new variable is added"
        );
        assert_eq!(
            object["spec"]["rollout"],
            keda.scaled_job["spec"]["rollout"]
        );
        assert_eq!(object["metadata"]["namespace"], NS);

        let mut broken = keda.scaled_job.clone();
        broken["spec"]["jobTargetRef"]
            .as_object_mut()
            .unwrap()
            .remove("template");
        assert!(
            matches!(scaled_job_for(&broken, &set, None), Err(RuntimeError::Setup(m)) if m.contains("spec.jobTargetRef.template"))
        );
    }

    fn keda_resources() -> Value {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "keda.sh/v1alpha1", "resources": [
            {"name": "scaledjobs", "singularName": "scaledjob", "namespaced": true, "kind": "ScaledJob", "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
            {"name": "scaledjobs/status", "singularName": "", "namespaced": true, "kind": "ScaledJob", "verbs": ["get", "patch", "update"]},
            {"name": "triggerauthentications", "singularName": "triggerauthentication", "namespaced": true, "kind": "TriggerAuthentication", "verbs": ["get", "list", "watch", "create", "patch", "delete"]}
        ]})
    }

    #[tokio::test]
    async fn mock_apply_scaled_job_applies_the_trigger_authentication_then_the_scaled_job_in_the_session()
     {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            let (request, respond) = next(&mut handle, "discovery of keda.sh/v1alpha1").await;
            assert_eq!(request.method(), http::Method::GET);
            assert_eq!(request.uri().path(), KEDA_API);
            respond.send_response(respond_json(200, keda_resources()));

            let (request, respond) = next(&mut handle, "TriggerAuthentication apply").await;
            assert_server_side_apply(
                &request,
                &format!("{KEDA_API}/namespaces/{NS}/triggerauthentications/rabbitmq-auth"),
            );
            let body = json_body(request).await;
            assert_eq!(body["kind"], "TriggerAuthentication");
            assert_eq!(body["metadata"]["namespace"], NS);
            assert_eq!(body["spec"]["secretTargetRef"][0]["key"], "amqp-url");
            respond.send_response(respond_json(200, body));

            let (request, respond) = next(&mut handle, "ScaledJob apply").await;
            assert_server_side_apply(
                &request,
                &format!("{KEDA_API}/namespaces/{NS}/scaledjobs/agent-scaledjob"),
            );
            let body = json_body(request).await;
            assert_eq!(body["kind"], "ScaledJob");
            assert_eq!(body["metadata"]["namespace"], NS);
            let template = &body["spec"]["jobTargetRef"]["template"];
            assert_eq!(
                template["metadata"]["labels"]["agentfleet.dev/fleet"],
                "scaling"
            );
            assert_eq!(template["metadata"]["labels"]["app"], "ai-agent");
            let container = agent_container(&body);
            assert_eq!(
                env_named(container, "AGENT_IDLE_EXIT_SECS"),
                &json!({"name": "AGENT_IDLE_EXIT_SECS", "value": "25"})
            );
            assert_eq!(env_named(container, "AGENT_LOG")["value"], "info");
            assert!(
                env_named(container, "AGENT_QUEUE_URL")["valueFrom"]["secretKeyRef"].is_object()
            );
            assert_eq!(body["spec"]["rollout"]["strategy"], "gradual");
            assert_eq!(body["spec"]["maxReplicaCount"], 4, "the scenario's ceiling");
            respond.send_response(respond_json(200, body));
            handle
        });
        let cluster = kube_cluster(
            client,
            Some(keda_of_manifests()),
            ClusterHistory::default(),
            None,
        );
        cluster
            .apply_scaled_job(
                &AgentSet::new("scaling", [0]).env("AGENT_IDLE_EXIT_SECS", 25),
                Some(4),
            )
            .await
            .unwrap();
        let mut handle = server.await.unwrap();
        assert_no_request(&mut handle, "the ScaledJob apply").await;
    }

    #[tokio::test]
    async fn mock_apply_scaled_job_without_keda_fails_setup_before_the_scaled_job() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            let (request, respond) = next(&mut handle, "discovery of keda.sh/v1alpha1").await;
            assert_eq!(request.uri().path(), KEDA_API);
            respond.send_response(respond_status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
            handle
        });
        let cluster = kube_cluster(
            client,
            Some(keda_of_manifests()),
            ClusterHistory::default(),
            None,
        );
        let error = cluster
            .apply_scaled_job(&AgentSet::new("scaling", [0]), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, RuntimeError::Setup(m) if m.contains("TriggerAuthentication") && m.contains("is KEDA installed?")),
            "{error}"
        );
        let mut handle = server.await.unwrap();
        assert_no_request(&mut handle, "the failed discovery").await;

        // Manifests without a ScaledJob: refused before any request.
        let (client, mut handle) = mock_client();
        let cluster = kube_cluster(client, None, ClusterHistory::default(), None);
        let error = cluster
            .apply_scaled_job(&AgentSet::new("scaling", [0]), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, RuntimeError::Setup(m) if m.contains("manifests/base/scaledjob.yaml")),
            "{error}"
        );
        assert_no_request(&mut handle, "a refused apply").await;
    }

    #[tokio::test]
    async fn mock_delete_scaled_job_deletes_in_the_background_and_a_missing_one_is_ok() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            let path = format!("{KEDA_API}/namespaces/{NS}/scaledjobs/agent-scaledjob");
            let (request, respond) = next(&mut handle, "ScaledJob DELETE").await;
            assert_eq!(request.method(), http::Method::DELETE);
            assert_eq!(request.uri().path(), path);
            assert_eq!(
                json_body(request).await,
                json!({"propagationPolicy": "Background"})
            );
            respond.send_response(respond_json(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
            ));
            let (request, respond) = next(&mut handle, "ScaledJob DELETE (already gone)").await;
            assert_eq!(request.method(), http::Method::DELETE);
            assert_eq!(request.uri().path(), path);
            respond.send_response(respond_status(
                404,
                "NotFound",
                "scaledjobs.keda.sh \"agent-scaledjob\" not found",
            ));
            let (_, respond) = next(&mut handle, "ScaledJob DELETE (forbidden)").await;
            respond.send_response(respond_status(
                403,
                "Forbidden",
                "scaledjobs.keda.sh \"agent-scaledjob\" is forbidden",
            ));
        });
        let cluster = kube_cluster(
            client,
            Some(keda_of_manifests()),
            ClusterHistory::default(),
            None,
        );
        cluster.delete_scaled_job().await.unwrap();
        cluster
            .delete_scaled_job()
            .await
            .expect("404: already deleted is fine");
        let error = cluster.delete_scaled_job().await.unwrap_err();
        assert!(
            matches!(&error, RuntimeError::Other(m) if m.starts_with("deleting the ScaledJob") && m.contains("is forbidden")),
            "other errors are not swallowed: {error}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_scaling_sample_and_rollout_observation_fold_the_scaled_jobs_watched_jobs() {
        let (client, mut handle) = mock_client();
        let before_edit = [
            job("agent-scaledjob-a", "agent-scaledjob", 1, false),
            job("agent-scaledjob-b", "agent-scaledjob", 0, false),
            job("agent-scaledjob-c", "agent-scaledjob", 0, true),
            // Not this ScaledJob's: ignored by both recorders.
            job("other-x", "other-scaledjob", 0, false),
            pod_event(pod(
                "agent-scaledjob-a-0-aaaaa",
                "agent-scaledjob-a",
                0,
                "2026-01-01T00:00:00Z",
                running(),
            )),
        ];
        let after_edit = [
            job_deleted("agent-scaledjob-c"),
            // a: running at the edit, deleted unfinished (KEDA's default rollout).
            job_deleted("agent-scaledjob-a"),
            // b: running at the edit, finished, then deleted: survived.
            job("agent-scaledjob-b", "agent-scaledjob", 0, true),
            job_deleted("agent-scaledjob-b"),
            job("agent-scaledjob-d", "agent-scaledjob", 0, false),
            job_deleted("other-x"),
        ];
        let history = ClusterHistory::default();
        let cluster = kube_cluster(
            client.clone(),
            Some(keda_of_manifests()),
            history.clone(),
            None,
        );
        for e in &before_edit {
            history.record(e);
        }
        let sample = cluster.scaling_sample(Duration::from_secs(12), 9);
        assert_eq!(
            (
                sample.t,
                sample.ready_messages,
                sample.running_jobs,
                sample.pending_jobs,
                sample.created_jobs
            ),
            (Duration::from_secs(12), 9, 2, 1, 3),
            "a and b unfinished, b not ready, a b c created"
        );

        cluster.mark_fleet_change();
        let observation = cluster.rollout_observation();
        assert_eq!(observation.strategy.as_deref(), Some("gradual"));
        assert_eq!(
            observation.running_at_edit,
            ["agent-scaledjob-a", "agent-scaledjob-b"],
            "marked after the last event"
        );
        assert!(observation.deleted_unfinished.is_empty());

        for e in &after_edit {
            history.record(e);
        }
        let observation = cluster.rollout_observation();
        assert_eq!(
            observation.running_at_edit,
            ["agent-scaledjob-a", "agent-scaledjob-b"]
        );
        assert_eq!(observation.deleted_unfinished, ["agent-scaledjob-a"]);
        let sample = cluster.scaling_sample(Duration::from_secs(20), 0);
        assert_eq!(
            (
                sample.running_jobs,
                sample.pending_jobs,
                sample.created_jobs
            ),
            (1, 1, 4),
            "only d left, not ready; created counts every Job ever seen"
        );

        // The same events without a mark: no Job counts as running at an edit.
        let unmarked = ClusterHistory::default();
        for e in before_edit.iter().chain(&after_edit) {
            unmarked.record(e);
        }
        let observation =
            kube_cluster(client, Some(keda_of_manifests()), unmarked, None).rollout_observation();
        assert!(
            observation.running_at_edit.is_empty() && observation.deleted_unfinished.is_empty(),
            "{observation:?}"
        );
        assert_no_request(&mut handle, "folding the history").await;
    }

    const PDBS: &str = "poddisruptionbudgets";

    fn budget(spec: Value, current_healthy: i32) -> Value {
        json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "agent-pdb", "namespace": NS, "generation": 1, "resourceVersion": "7"},
            "spec": spec,
            "status": {"observedGeneration": 1, "currentHealthy": current_healthy, "desiredHealthy": 1,
                       "disruptionsAllowed": (current_healthy - 1).max(0), "expectedPods": current_healthy}
        })
    }

    fn min_available(n: i32) -> Value {
        json!({"minAvailable": n, "selector": {"matchLabels": {"app": "ai-agent"}}})
    }

    /// Answers the PDB list of the budget wait with `listed`.
    async fn answer_pdb_list(handle: &mut MockHandle, listed: Vec<Value>) {
        let (request, respond) = next(handle, "PDB list").await;
        assert_eq!(request.method(), http::Method::GET);
        assert_eq!(
            request.uri().path(),
            format!("/apis/policy/v1/namespaces/{NS}/{PDBS}")
        );
        assert_eq!(query(&request, "watch"), None, "a list first");
        respond.send_response(respond_list("PodDisruptionBudgetList", "policy/v1", listed));
    }

    #[tokio::test]
    async fn mock_disruption_budget_waits_on_the_watch_until_the_agents_are_counted_healthy() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            answer_pdb_list(&mut handle, vec![budget(min_available(1), 1)]).await;
            let (request, respond) = next(&mut handle, "PDB watch").await;
            assert_eq!(
                request.uri().path(),
                format!("/apis/policy/v1/namespaces/{NS}/{PDBS}")
            );
            assert_eq!(query(&request, "watch").as_deref(), Some("true"));
            let mut counted = budget(min_available(1), 3);
            counted["metadata"]["resourceVersion"] = json!("8");
            respond.send_response(respond_watch(&[
                json!({"type": "MODIFIED", "object": budget(min_available(1), 2)}),
                json!({"type": "MODIFIED", "object": counted}),
            ]));
            let rest = handle.next_request().await;
            drop(rest);
        });
        let cluster = kube_cluster(client, None, ClusterHistory::default(), None);
        let budget = cluster
            .disruption_budget(3, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            budget,
            DisruptionBudget {
                min_available: Some(1),
                allowed: 2
            }
        );
        server.abort();
    }

    #[tokio::test]
    async fn mock_disruption_budget_with_max_unavailable_allows_no_eviction() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            answer_pdb_list(
                &mut handle,
                vec![budget(
                    json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app": "ai-agent"}}}),
                    3,
                )],
            )
            .await;
            let rest = handle.next_request().await;
            drop(rest);
        });
        let cluster = kube_cluster(client, None, ClusterHistory::default(), None);
        assert_eq!(
            cluster
                .disruption_budget(3, Duration::from_secs(5))
                .await
                .unwrap(),
            DisruptionBudget {
                min_available: None,
                allowed: 0
            }
        );
        server.abort();
    }

    #[tokio::test]
    async fn mock_disruption_budget_of_several_budgets_is_decided_by_the_tightest() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            let mut tight = budget(min_available(2), 3);
            tight["metadata"]["name"] = json!("agent-pdb-tight");
            answer_pdb_list(&mut handle, vec![budget(min_available(1), 3), tight]).await;
            let rest = handle.next_request().await;
            drop(rest);
        });
        let cluster = kube_cluster(client, None, ClusterHistory::default(), None);
        assert_eq!(
            cluster
                .disruption_budget(3, Duration::from_secs(5))
                .await
                .unwrap(),
            DisruptionBudget {
                min_available: Some(2),
                allowed: 1
            },
            "both listed budgets count, not only the first one seen"
        );
        server.abort();
    }

    #[tokio::test]
    async fn mock_disruption_budget_that_never_counts_the_agents_times_out_naming_its_last_status()
    {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            answer_pdb_list(&mut handle, vec![budget(min_available(1), 1)]).await;
            // The watch gets no answer: the controller never counts three healthy agents.
            let _held = next(&mut handle, "PDB watch").await;
            std::future::pending::<()>().await;
        });
        let cluster = kube_cluster(client, None, ClusterHistory::default(), None);
        let error = cluster
            .disruption_budget(3, Duration::from_millis(500))
            .await
            .unwrap_err();
        let RuntimeError::Other(message) = &error else {
            panic!("{error:?}")
        };
        assert!(
            message.contains(&format!("PodDisruptionBudgets in {NS}"))
                && message.contains("`status.currentHealthy >= 3`")
                && message.contains("500ms")
                && message.contains(
                    "agent-pdb: currentHealthy=1 desiredHealthy=1 disruptionsAllowed=0 expectedPods=1"
                ),
            "{message}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn mock_evict_once_posts_one_eviction_and_a_429_is_a_refusal_without_retry() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            let (request, respond) = next(&mut handle, "eviction POST").await;
            assert_eq!(request.method(), http::Method::POST);
            assert_eq!(
                request.uri().path(),
                format!("/api/v1/namespaces/{NS}/pods/agent-a/eviction")
            );
            let body = json_body(request).await;
            assert_eq!(body["kind"], "Eviction");
            assert_eq!(body["apiVersion"], "policy/v1");
            assert_eq!(body["metadata"]["name"], "agent-a");
            assert_eq!(body["metadata"]["namespace"], NS);
            assert!(
                body.get("deleteOptions").is_none(),
                "the pod's own grace period: {body}"
            );
            respond.send_response(respond_status(429, "TooManyRequests", REFUSAL));
            handle
        });
        let cluster = kube_cluster(client, None, ClusterHistory::default(), None);
        let attempt = cluster.evict_once(&agent("agent-a")).await.unwrap();
        assert_eq!(
            attempt,
            EvictionAttempt {
                pod: "agent-a".into(),
                outcome: ClusterEvictOutcome::RefusedByBudget {
                    message: REFUSAL.into()
                }
            }
        );
        let mut handle = server.await.unwrap();
        assert_no_request(&mut handle, "the refused eviction").await;

        // Anything but 2xx/404/429 is an error naming the pod.
        let agent_b = agent("agent-b");
        let (result, ()) = tokio::join!(cluster.evict_once(&agent_b), async {
            let (request, respond) = next(&mut handle, "eviction POST").await;
            assert!(request.uri().path().ends_with("/pods/agent-b/eviction"));
            respond.send_response(respond_status(500, "InternalError", "etcd is unavailable"));
        });
        assert!(
            matches!(&result, Err(RuntimeError::Agent { agent, problem }) if agent == "agent-b" && problem.contains("etcd is unavailable")),
            "{result:?}"
        );
    }

    fn job_status(failed: Option<i32>) -> Value {
        let mut job = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "agent-graceful-0-0", "namespace": NS, "resourceVersion": "5"},
            "status": {"active": 1}});
        if let Some(failed) = failed {
            job["status"]["failed"] = json!(failed);
        }
        job
    }

    #[tokio::test]
    async fn mock_job_failures_reads_the_status_of_the_job_the_watches_saw_owning_the_pod() {
        let (client, mut handle) = mock_client();
        let history = ClusterHistory::default();
        history.record(&pod_event(pod(
            "agent-graceful-0-0-abcde",
            "agent-graceful-0-0",
            0,
            "2026-01-01T00:00:00Z",
            running(),
        )));
        let server = tokio::spawn(async move {
            let status_path =
                format!("/apis/batch/v1/namespaces/{NS}/jobs/agent-graceful-0-0/status");
            let (request, respond) = next(&mut handle, "Job status GET").await;
            assert_eq!(request.method(), http::Method::GET);
            assert_eq!(request.uri().path(), status_path);
            respond.send_response(respond_json(200, job_status(Some(2))));
            let (request, respond) = next(&mut handle, "Job status GET").await;
            assert_eq!(request.uri().path(), status_path);
            respond.send_response(respond_json(200, job_status(None)));
            let (_, respond) = next(&mut handle, "Job status GET").await;
            respond.send_response(respond_status(
                404,
                "NotFound",
                "jobs.batch \"agent-graceful-0-0\" not found",
            ));
            handle
        });
        let cluster = kube_cluster(client.clone(), None, history, None);
        let graceful = agent("agent-graceful-0-0-abcde");
        assert_eq!(cluster.job_failures(&graceful).await.unwrap(), 2);
        assert_eq!(
            cluster.job_failures(&graceful).await.unwrap(),
            0,
            "no status.failed yet"
        );
        let error = cluster.job_failures(&graceful).await.unwrap_err();
        assert!(
            matches!(&error, RuntimeError::Other(m) if m.starts_with("reading Job agent-graceful-0-0") && m.contains("not found")),
            "{error}"
        );
        let mut handle = server.await.unwrap();

        // A pod the watches never saw: no Job to read, and no request.
        let unseen = kube_cluster(client, None, ClusterHistory::default(), None);
        let error = unseen.job_failures(&graceful).await.unwrap_err();
        assert!(
            matches!(&error, RuntimeError::Agent { agent, problem } if agent == "agent-graceful-0-0-abcde" && problem.contains("no Job owns this pod")),
            "{error}"
        );
        assert_no_request(&mut handle, "a pod without a Job").await;
    }

    #[tokio::test]
    async fn mock_disruption_condition_is_the_reason_on_the_last_status_seen_of_the_pod() {
        let (client, mut handle) = mock_client();
        let history = ClusterHistory::default();
        let cluster = kube_cluster(client, None, history.clone(), None);
        let evicted = agent("agent-e");
        assert_eq!(cluster.disruption_condition(&evicted), None, "never seen");
        history.record(&pod_event(pod(
            "agent-e",
            "agent-graceful-0-0",
            0,
            "2026-01-01T00:00:00Z",
            running(),
        )));
        assert_eq!(cluster.disruption_condition(&evicted), None, "running");
        history.record(&pod_event(pod(
            "agent-e",
            "agent-graceful-0-0",
            0,
            "2026-01-01T00:00:00Z",
            json!({"phase": "Failed",
                "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}],
                "containerStatuses": [{"name": "agent", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 143, "reason": "Error"}}}]}),
        )));
        history.record(&pod_event(pod(
            "agent-f",
            "agent-graceful-0-1",
            0,
            "2026-01-01T00:00:00Z",
            running(),
        )));
        history.record(&event(ClusterEventKind::PodDeleted {
            name: "agent-e".into(),
        }));
        assert_eq!(
            cluster.disruption_condition(&evicted).as_deref(),
            Some("EvictionByEvictionAPI"),
            "the last status of agent-e, still known after its deletion"
        );
        assert_eq!(cluster.disruption_condition(&agent("agent-f")), None);
        assert_no_request(&mut handle, "reading the history").await;
    }

    #[tokio::test]
    async fn mock_policy_matrix_with_a_cni_that_does_not_enforce_is_skipped_without_probing() {
        let (client, mut handle) = mock_client();
        let cluster = kube_cluster(
            client,
            None,
            ClusterHistory::default(),
            Some(Canary::NotEnforced { attempts: 3 }),
        );
        let verdict = cluster.policy_matrix().await.unwrap();
        let CheckVerdict::Skipped { reason } = &verdict else {
            panic!("a CNI that does not enforce must skip, not pass or fail: {verdict:?}")
        };
        assert!(
            reason.contains("the CNI does not enforce NetworkPolicy")
                && reason.contains("3 attempt(s)"),
            "{reason}"
        );
        assert_no_request(&mut handle, "a skipped matrix").await;
    }

    /// One probeable cell of the expected matrix: where the probe connects, and whether the
    /// policies allow it.
    struct Cell {
        host: String,
        port: u16,
        allowed: bool,
    }

    fn probeable_cells() -> Vec<Cell> {
        let expected = netpol::expected(&policy_sources()).expect("the expected matrix");
        netpol::probeable(&expected, &netpol::in_cluster_target)
            .into_iter()
            .map(|(r, c, target)| Cell {
                host: target.host,
                port: target.port,
                allowed: expected.cells[r][c].allowed,
            })
            .collect()
    }

    fn probe_pod_json(name: &str, phase: &str, exit_code: Option<i32>) -> Value {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "resourceVersion": "3",
                "labels": {"app": "ai-agent", PROBE_LABEL: "true"}},
            "status": {"phase": phase}});
        if let Some(code) = exit_code {
            pod["status"]["containerStatuses"] = json!([{"name": "probe", "image": "", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}}}]);
        }
        pod
    }

    /// Serves one probe per cell (create, list of the finished pod, delete), answering like a
    /// CNI that enforces the policies, except for cell `wrong`, answered the other way.
    async fn serve_probes(
        mut handle: MockHandle,
        cells: Vec<Cell>,
        wrong: Option<usize>,
    ) -> MockHandle {
        let pods = format!("/api/v1/namespaces/{NS}/pods");
        for (i, cell) in cells.iter().enumerate() {
            let (request, respond) = next(&mut handle, "probe pod POST").await;
            assert_eq!(request.method(), http::Method::POST);
            assert_eq!(
                request.uri().path(),
                pods,
                "probes run in the session namespace"
            );
            let body = json_body(request).await;
            assert_eq!(body["metadata"]["generateName"], "agent-probe-");
            assert_eq!(
                body["metadata"]["labels"]["app"], "ai-agent",
                "labelled like an agent"
            );
            assert_eq!(body["metadata"]["labels"][PROBE_LABEL], "true");
            let env = &body["spec"]["containers"][0]["env"];
            assert_eq!(
                env[0],
                json!({"name": "PROBE_HOST", "value": cell.host}),
                "cell {i}"
            );
            assert_eq!(
                env[1],
                json!({"name": "PROBE_PORT", "value": cell.port.to_string()}),
                "cell {i}"
            );
            let name = format!("agent-probe-{i}");
            respond.send_response(respond_json(201, probe_pod_json(&name, "Pending", None)));

            let (request, respond) = next(&mut handle, "probe pod LIST").await;
            assert_eq!(request.uri().path(), pods);
            assert_eq!(
                query(&request, "fieldSelector"),
                Some(format!("metadata.name%3D{name}"))
            );
            let reachable = cell.allowed != (wrong == Some(i));
            let (phase, exit_code) = if reachable {
                ("Succeeded", 0)
            } else {
                ("Failed", 1)
            };
            respond.send_response(respond_list(
                "PodList",
                "v1",
                vec![probe_pod_json(&name, phase, Some(exit_code))],
            ));

            let (request, respond) = next(&mut handle, "probe pod DELETE").await;
            assert_eq!(request.method(), http::Method::DELETE);
            assert_eq!(request.uri().path(), format!("{pods}/{name}"));
            assert_eq!(json_body(request).await["gracePeriodSeconds"], 0);
            respond.send_response(respond_json(
                200,
                probe_pod_json(&name, phase, Some(exit_code)),
            ));
        }
        handle
    }

    #[tokio::test]
    async fn mock_policy_matrix_with_an_enforcing_cni_probes_every_cell_from_the_session_and_passes()
     {
        let cells = probeable_cells();
        let hosts: Vec<&str> = cells.iter().map(|c| c.host.as_str()).collect();
        assert!(
            hosts.contains(&"rabbitmq.message-queue.svc")
                && hosts.contains(&"gateway.llm-gateway.svc"),
            "the agents' in-cluster Services are probed: {hosts:?}"
        );
        let count = cells.len();
        let (client, handle) = mock_client();
        let server = tokio::spawn(serve_probes(handle, cells, None));
        let cluster = kube_cluster(
            client,
            None,
            ClusterHistory::default(),
            Some(Canary::Enforced),
        );
        let verdict = cluster.policy_matrix().await.unwrap();
        assert_eq!(
            verdict,
            CheckVerdict::Passed {
                summary: format!(
                    "{count} probed connection(s) match the NetworkPolicy truth table"
                )
            }
        );
        let mut handle = server.await.unwrap();
        assert_no_request(&mut handle, "the last probe").await;
    }

    #[tokio::test]
    async fn mock_policy_matrix_fails_naming_the_cell_a_probe_contradicts() {
        let cells = probeable_cells();
        let first = format!("{}:{}", cells[0].host, cells[0].port);
        let (want, got) = if cells[0].allowed {
            ("expected allow, observed deny", "deny")
        } else {
            ("expected deny, observed allow", "allow")
        };
        let (client, handle) = mock_client();
        let server = tokio::spawn(serve_probes(handle, cells, Some(0)));
        let cluster = kube_cluster(
            client,
            None,
            ClusterHistory::default(),
            Some(Canary::Enforced),
        );
        let verdict = cluster.policy_matrix().await.unwrap();
        let CheckVerdict::Failed { reasons } = &verdict else {
            panic!("a contradicted cell must fail: {verdict:?}")
        };
        assert_eq!(
            reasons.len(),
            2,
            "the cell, then both matrices: {reasons:#?}"
        );
        assert!(
            reasons[0].contains(want)
                && reasons[0].contains(&format!(
                    "reproduce: agentfleet probe --namespace {NS} --labels "
                ))
                && reasons[0].ends_with(&format!("--target {first}")),
            "{} in {reasons:#?}",
            got
        );
        server.await.unwrap();
    }
}

mod port_forward_tests {
    use super::*;
    use crate::runtime::kube::platform;
    use crate::runtime::kube::port_forward::{PortForward, PortForwardError};

    fn rabbitmq_pod(name: &str, phase: &str, terminating: bool) -> Value {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "message-queue",
                         "labels": {"app.kubernetes.io/name": "rabbitmq"}},
            "status": {"phase": phase}
        });
        if terminating {
            pod["metadata"]["deletionTimestamp"] = json!("2026-11-28T08:00:00Z");
        }
        pod
    }

    #[tokio::test]
    async fn mock_port_forward_needs_a_running_pod_and_says_how_to_install_the_platform() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            let (request, respond) = next(&mut handle, "pod list").await;
            assert_eq!(
                request.uri().path(),
                "/api/v1/namespaces/message-queue/pods"
            );
            assert_eq!(
                query(&request, "labelSelector").as_deref(),
                Some("app.kubernetes.io%2Fname%3Drabbitmq")
            );
            respond.send_response(respond_list(
                "PodList",
                "v1",
                vec![
                    rabbitmq_pod("rabbitmq-old", "Running", true),
                    rabbitmq_pod("rabbitmq-new", "Pending", false),
                ],
            ));
        });
        let error = PortForward::start(client, platform::rabbitmq_management())
            .await
            .unwrap_err();
        assert!(matches!(error, PortForwardError::NoPod { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("app.kubernetes.io/name=rabbitmq")
                && text.contains("message-queue")
                && text.contains("RabbitMQ management API")
                && text.contains("agentfleet cluster up"),
            "{text}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn mock_port_forward_opens_the_portforward_subresource_per_connection() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            for expecting in ["pod list at start", "pod list for the connection"] {
                let (_, respond) = next(&mut handle, expecting).await;
                respond.send_response(respond_list(
                    "PodList",
                    "v1",
                    vec![rabbitmq_pod("rabbitmq-0", "Running", false)],
                ));
            }
            let (request, respond) = next(&mut handle, "portforward upgrade").await;
            assert_eq!(
                request.uri().path(),
                "/api/v1/namespaces/message-queue/pods/rabbitmq-0/portforward"
            );
            assert_eq!(query(&request, "ports").as_deref(), Some("15672"));
            assert_eq!(
                request.headers()["upgrade"],
                "websocket",
                "port-forward is a WebSocket upgrade"
            );
            // No upgrade: the forward fails and the connection is closed, not hung.
            respond.send_response(respond_status(
                403,
                "Forbidden",
                "pods/portforward is forbidden",
            ));
        });
        let forward = PortForward::start(client, platform::rabbitmq_management())
            .await
            .unwrap();
        assert!(forward.local().ip().is_loopback());
        let mut connection = tokio::net::TcpStream::connect(forward.local())
            .await
            .unwrap();
        let mut buffer = [0u8; 1];
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut connection, &mut buffer),
        )
        .await
        .expect("a failed forward closes the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        server.await.unwrap();
    }
}
