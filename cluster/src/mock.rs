//! kube-rs mock-service plumbing for the `mock_*` tests: a client whose every request is
//! answered by the test, so the tests assert the exact HTTP the typed calls produce.

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use tower_test::mock::{Handle, SendResponse};

pub type MockHandle = Handle<Request<Body>, Response<Body>>;

/// A client talking to the returned handle, with namespace `default`.
pub fn client() -> (kube::Client, MockHandle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

/// The next request, or a panic saying which request the test waited for.
pub async fn next(
    handle: &mut MockHandle,
    expecting: &str,
) -> (Request<Body>, SendResponse<Response<Body>>) {
    match tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await {
        Ok(Some(pair)) => pair,
        Ok(None) => panic!("client dropped before sending {expecting}"),
        Err(_) => panic!("no request within 5 s; expected {expecting}"),
    }
}

/// The body of a request, as JSON.
pub async fn json_body(request: Request<Body>) -> serde_json::Value {
    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .expect("request body");
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "request body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

pub fn json(status: u16, value: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&value).expect("json")))
        .expect("response")
}

pub fn text(status: u16, text: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(text.as_bytes().to_vec()))
        .expect("response")
}

/// A `Status` failure body as the API server sends it.
pub fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    json(
        code,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}),
    )
}

/// A watch response: one JSON event per line, then the stream ends.
pub fn watch_events(events: &[serde_json::Value]) -> Response<Body> {
    let mut body = Vec::new();
    for event in events {
        body.extend(serde_json::to_vec(event).expect("json"));
        body.push(b'\n');
    }
    Response::builder()
        .status(200)
        .body(Body::from(body))
        .expect("response")
}

/// An empty list of `kind` at `resource_version`.
pub fn list(
    kind: &str,
    api_version: &str,
    resource_version: &str,
    items: Vec<serde_json::Value>,
) -> Response<Body> {
    json(
        200,
        serde_json::json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": resource_version}, "items": items}),
    )
}

/// Asserts that `request` is a server-side apply of `path` as agentfleet does it: PATCH with
/// `application/apply-patch+yaml`, field manager `agentfleet`, `force=true`.
pub fn assert_server_side_apply(request: &Request<Body>, path: &str) {
    assert_eq!(request.method(), http::Method::PATCH);
    assert_eq!(request.uri().path(), path);
    assert_eq!(
        request.headers()["content-type"],
        "application/apply-patch+yaml"
    );
    assert_eq!(
        query(request, "fieldManager").as_deref(),
        Some(crate::FIELD_MANAGER)
    );
    assert_eq!(query(request, "force").as_deref(), Some("true"));
}

/// Query parameter `key` of a request URI.
pub fn query(request: &Request<Body>, key: &str) -> Option<String> {
    request.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| v.to_owned())
    })
}

/// A Job of `scaled_job` as the session's Job watch reports it: `ready` pods, unfinished or
/// finished (Complete=True).
pub fn job_event(
    name: &str,
    scaled_job: &str,
    ready: i32,
    finished: bool,
) -> crate::events::ClusterEvent {
    crate::events::ClusterEvent {
        observed: jiff::Timestamp::UNIX_EPOCH,
        kind: crate::events::ClusterEventKind::Job(crate::events::JobState {
            name: name.into(),
            scaled_job: Some(scaled_job.into()),
            active: i32::from(!finished),
            ready,
            succeeded: i32::from(finished),
            failed: 0,
            conditions: if finished {
                vec!["Complete=True (CompletionsReached)".into()]
            } else {
                vec![]
            },
        }),
    }
}
