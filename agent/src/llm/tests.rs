//! The client against an in-process fake gateway that answers from a script.
//!
//! Time is real here (the HTTP round trips are), so the durations are small; the pacing maths
//! itself is unit-tested with a fake clock in `pacer`, `breaker` and `budget`.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use agentfleet_protocol::{
    TokenUsage,
    gateway::{ChatChoice, ChatMessage, ChatRequest, ChatResponse},
};
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use tokio::time::Instant;

use super::*;
use crate::{config::LlmConfig, crypto, metrics::Metrics};

/// One scripted answer; once the script is empty the gateway answers 200.
#[derive(Debug, Clone)]
enum Reply {
    Status(u16),
    StatusRetryAfter(u16, &'static str),
    /// Answer 200 after this long (to trip the client's timeout).
    Slow(Duration),
}

#[derive(Debug)]
struct Seen {
    at: Instant,
    agent_index: Option<String>,
    task_id: Option<String>,
    request: ChatRequest,
}

#[derive(Debug, Default)]
struct FakeGateway {
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
}

impl FakeGateway {
    fn seen_times(&self) -> Vec<Instant> {
        self.seen.lock().unwrap().iter().map(|s| s.at).collect()
    }
}

async fn answer(
    State(gw): State<Arc<FakeGateway>>,
    headers: HeaderMap,
    Json(request): Json<ChatRequest>,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content = format!("echo: {}", request.messages[0].content);
    let model = request.model.clone();
    gw.seen.lock().unwrap().push(Seen {
        at: Instant::now(),
        agent_index: header("x-agent-index"),
        task_id: header("x-task-id"),
        request,
    });
    let reply = gw.script.lock().unwrap().pop_front();
    match reply {
        Some(Reply::Status(code)) => StatusCode::from_u16(code).unwrap().into_response(),
        Some(Reply::StatusRetryAfter(code, after)) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", after)],
        )
            .into_response(),
        Some(Reply::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            ok(model, content).into_response()
        }
        None => ok(model, content).into_response(),
    }
}

fn ok(model: String, content: String) -> Json<ChatResponse> {
    Json(ChatResponse {
        id: "c-1".into(),
        object: "chat.completion".into(),
        created: 0,
        model,
        choices: vec![ChatChoice {
            index: 0,
            message: ChatMessage {
                role: "assistant".into(),
                content,
            },
            finish_reason: "stop".into(),
        }],
        usage: TokenUsage {
            prompt_tokens: 1,
            completion_tokens: 2,
            total_tokens: 3,
        },
    })
}

async fn start(script: Vec<Reply>) -> (Arc<FakeGateway>, SocketAddr) {
    let gw = Arc::new(FakeGateway {
        script: Mutex::new(script.into()),
        ..FakeGateway::default()
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(answer))
        .with_state(gw.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (gw, addr)
}

/// Fast pacing that never gets in the way unless a test asks for it.
fn quick_config() -> LlmConfig {
    LlmConfig {
        timeout: Duration::from_secs(5),
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(5),
        backoff_enabled: true,
        max_attempts: None,
        retry_budget_ratio: 1.0,
        retry_budget_min_per_sec: 10_000.0,
        breaker_failures: 100,
        breaker_open: Duration::from_millis(200),
    }
}

fn client(addr: SocketAddr, config: &LlmConfig) -> (LlmClient, Arc<Metrics>) {
    crypto::install_ring_provider();
    let metrics = Arc::new(Metrics::new());
    let base = Url::parse(&format!("http://{addr}")).unwrap();
    (
        LlmClient::new(&base, 7, config, metrics.clone()).unwrap(),
        metrics,
    )
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "m-1".into(),
        messages: vec![ChatMessage {
            role: "user".into(),
            content: "hello\n\nstep 1 of 2".into(),
        }],
        max_tokens: None,
    }
}

fn assert_metric(metrics: &Metrics, line: &str) {
    let text = metrics.render();
    assert!(
        text.lines().any(|l| l == line),
        "missing {line:?} in:\n{text}"
    );
}

#[tokio::test]
async fn sends_the_identity_headers_and_returns_the_answer() {
    let (gw, addr) = start(vec![]).await;
    let (llm, metrics) = client(addr, &quick_config());
    let answer = llm.chat("t-1", &request()).await.unwrap();
    assert_eq!(
        answer.choices[0].message.content,
        "echo: hello\n\nstep 1 of 2"
    );
    let seen = gw.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].agent_index.as_deref(), Some("7"));
    assert_eq!(seen[0].task_id.as_deref(), Some("t-1"));
    assert_eq!(seen[0].request, request());
    assert_metric(&metrics, "agent_llm_requests_total{status=\"200\"} 1");
    assert_metric(&metrics, "agent_llm_retries_total 0");
}

#[tokio::test]
async fn retries_server_errors_and_429_until_an_answer() {
    let (gw, addr) = start(vec![
        Reply::Status(500),
        Reply::Status(503),
        Reply::Status(429),
    ])
    .await;
    let (llm, metrics) = client(addr, &quick_config());
    llm.chat("t-1", &request()).await.unwrap();
    assert_eq!(gw.seen.lock().unwrap().len(), 4);
    assert_metric(&metrics, "agent_llm_retries_total 3");
    assert_metric(&metrics, "agent_llm_requests_total{status=\"500\"} 1");
    assert_metric(&metrics, "agent_llm_requests_total{status=\"429\"} 1");
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let (gw, addr) = start(vec![Reply::Status(400)]).await;
    let (llm, _metrics) = client(addr, &quick_config());
    let err = llm.chat("t-1", &request()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Rejected { status: 400, .. }),
        "{err}"
    );
    assert_eq!(gw.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn max_attempts_bounds_the_requests_of_one_call() {
    let (gw, addr) = start(vec![Reply::Status(503); 10]).await;
    let config = LlmConfig {
        max_attempts: Some(3),
        ..quick_config()
    };
    let (llm, _metrics) = client(addr, &config);
    let err = llm.chat("t-1", &request()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Exhausted { attempts: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert_eq!(gw.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn retry_after_delays_the_next_request() {
    let (gw, addr) = start(vec![Reply::StatusRetryAfter(429, "1")]).await;
    let (llm, _metrics) = client(addr, &quick_config());
    llm.chat("t-1", &request()).await.unwrap();
    let times = gw.seen_times();
    assert_eq!(times.len(), 2);
    let gap = times[1] - times[0];
    assert!(
        gap >= Duration::from_secs(1),
        "retried {gap:?} after a Retry-After of 1 s"
    );
    // It also holds the next call, not only the retries of this one: nothing is pending now.
    llm.chat("t-1", &request()).await.unwrap();
}

#[tokio::test]
async fn the_breaker_holds_requests_for_its_open_period_then_probes() {
    let (gw, addr) = start(vec![Reply::Status(503), Reply::Status(503)]).await;
    let config = LlmConfig {
        breaker_failures: 2,
        breaker_open: Duration::from_millis(300),
        ..quick_config()
    };
    let (llm, metrics) = client(addr, &config);
    llm.chat("t-1", &request()).await.unwrap();
    let times = gw.seen_times();
    assert_eq!(times.len(), 3, "two failures and one successful probe");
    let held = times[2] - times[1];
    assert!(
        held >= Duration::from_millis(300),
        "the probe went out {held:?} after the breaker opened"
    );
    assert_metric(&metrics, "agent_breaker_opened_total 1");
    assert_metric(&metrics, "agent_breaker_state 0");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let (gw, addr) = start(vec![Reply::Slow(Duration::from_secs(2))]).await;
    let config = LlmConfig {
        timeout: Duration::from_millis(200),
        ..quick_config()
    };
    let (llm, metrics) = client(addr, &config);
    llm.chat("t-1", &request()).await.unwrap();
    assert_eq!(gw.seen.lock().unwrap().len(), 2);
    assert_metric(&metrics, "agent_llm_requests_total{status=\"timeout\"} 1");
}

#[tokio::test]
async fn connection_refused_is_retried_as_a_connect_error() {
    // A port that was just free: bind, note it, release it.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let config = LlmConfig {
        max_attempts: Some(2),
        ..quick_config()
    };
    let (llm, metrics) = client(addr, &config);
    let err = llm.chat("t-1", &request()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Exhausted { attempts: 2, .. }),
        "{err}"
    );
    assert_metric(
        &metrics,
        "agent_llm_requests_total{status=\"connect_error\"} 2",
    );
}
