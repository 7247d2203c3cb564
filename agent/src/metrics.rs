//! Prometheus metrics and the HTTP endpoints that expose them with the agent's health.
//!
//! `GET /metrics` is OpenMetrics text (prometheus-client appends `_total` to counters itself,
//! so counters are registered without it). `GET /healthz` is 200 while the process serves
//! HTTP at all; `GET /readyz` is 200 only while the agent consumes from the task queue, so a
//! probe tells "alive but cut off from the broker" apart from "working".

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::net::TcpListener;

use crate::breaker::BreakerState;

/// How a delivery ended, the `status` label of `agent_tasks_completed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Result published and the task acked.
    Success,
    /// Published to the dead-letter queue and acked.
    DeadLettered,
    /// A step failed; the task was nacked and requeued.
    Failed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Success => "success",
            TaskStatus::DeadLettered => "dead_lettered",
            TaskStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

/// Every metric the agent exports, plus its readiness flag.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    tasks_completed: Family<StatusLabel, Counter>,
    task_duration: Histogram,
    llm_tokens: Family<ModelLabel, Counter>,
    llm_requests: Family<StatusLabel, Counter>,
    llm_retries: Counter,
    breaker_state: Gauge<i64, AtomicI64>,
    breaker_opened: Counter,
    checkpoints_written: Counter,
    checkpoint_corrupt: Counter,
    resumes: Counter,
    deliveries: Counter,
    ready: AtomicBool,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let tasks_completed = Family::<StatusLabel, Counter>::default();
        registry.register(
            "agent_tasks_completed",
            "Deliveries handled, by outcome: success, dead_lettered or failed (requeued)",
            tasks_completed.clone(),
        );
        // 0.1 s .. ~27 min: a task is a handful of LLM calls, each up to a timeout.
        let task_duration = Histogram::new(exponential_buckets(0.1, 2.0, 15));
        registry.register(
            "agent_task_duration_seconds",
            "Time from delivery to ack of successful tasks",
            task_duration.clone(),
        );
        let llm_tokens = Family::<ModelLabel, Counter>::default();
        registry.register(
            "agent_llm_tokens",
            "LLM tokens consumed",
            llm_tokens.clone(),
        );
        let llm_requests = Family::<StatusLabel, Counter>::default();
        registry.register(
            "agent_llm_requests",
            "Requests sent to the gateway, by HTTP status or transport error (timeout, connect, ...)",
            llm_requests.clone(),
        );
        let llm_retries = Counter::default();
        registry.register(
            "agent_llm_retries",
            "LLM requests that were retries",
            llm_retries.clone(),
        );
        let breaker_state = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "agent_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            breaker_state.clone(),
        );
        let breaker_opened = Counter::default();
        registry.register(
            "agent_breaker_opened",
            "Times the circuit breaker opened (including reopening after a failed probe)",
            breaker_opened.clone(),
        );
        let checkpoints_written = Counter::default();
        registry.register(
            "agent_checkpoints_written",
            "Checkpoints written (atomically) to the checkpoint directory",
            checkpoints_written.clone(),
        );
        let checkpoint_corrupt = Counter::default();
        registry.register(
            "agent_checkpoint_corrupt",
            "Checkpoints found corrupt or unreadable and moved aside",
            checkpoint_corrupt.clone(),
        );
        let resumes = Counter::default();
        registry.register(
            "agent_resumes",
            "Deliveries that resumed from a checkpoint with completed steps",
            resumes.clone(),
        );
        let deliveries = Counter::default();
        registry.register(
            "agent_deliveries",
            "Task deliveries received",
            deliveries.clone(),
        );

        Metrics {
            registry,
            tasks_completed,
            task_duration,
            llm_tokens,
            llm_requests,
            llm_retries,
            breaker_state,
            breaker_opened,
            checkpoints_written,
            checkpoint_corrupt,
            resumes,
            deliveries,
            ready: AtomicBool::new(false),
        }
    }

    pub fn task_finished(&self, status: TaskStatus) {
        self.tasks_completed
            .get_or_create(&StatusLabel {
                status: status.as_str().to_owned(),
            })
            .inc();
    }

    pub fn task_duration(&self, took: Duration) {
        self.task_duration.observe(took.as_secs_f64());
    }

    pub fn llm_tokens(&self, model: &str, tokens: u64) {
        self.llm_tokens
            .get_or_create(&ModelLabel {
                model: model.to_owned(),
            })
            .inc_by(tokens);
    }

    pub fn llm_request(&self, status: &str) {
        self.llm_requests
            .get_or_create(&StatusLabel {
                status: status.to_owned(),
            })
            .inc();
    }

    pub fn llm_retry(&self) {
        self.llm_retries.inc();
    }

    pub fn breaker_state(&self, state: BreakerState) {
        self.breaker_state.set(state.gauge_value());
    }

    pub fn breaker_opened(&self) {
        self.breaker_opened.inc();
    }

    pub fn checkpoint_written(&self) {
        self.checkpoints_written.inc();
    }

    pub fn checkpoint_corrupt(&self) {
        self.checkpoint_corrupt.inc();
    }

    pub fn resumed(&self) {
        self.resumes.inc();
    }

    pub fn delivery(&self) {
        self.deliveries.inc();
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (AGENT_METRICS_ADDR): {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds the metrics address. Separate from [`serve`] so a taken port fails start-up instead
/// of a background task.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the process exits.
/// `with_metrics` is `false` only under the `no-metrics` contract break (`/metrics` is then 404).
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    with_metrics: bool,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics, with_metrics)).await
}

fn router(metrics: Arc<Metrics>, with_metrics: bool) -> Router {
    let router = if with_metrics {
        Router::new().route("/metrics", get(metrics_text))
    } else {
        Router::new()
    };
    router
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(metrics)
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}

async fn readyz(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.is_ready() {
        (StatusCode::OK, "consuming\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not consuming from the task queue\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_contract_names() {
        let m = Metrics::new();
        m.task_finished(TaskStatus::Success);
        m.task_finished(TaskStatus::DeadLettered);
        m.task_duration(Duration::from_millis(1500));
        m.llm_tokens("m-1", 42);
        m.llm_request("200");
        m.breaker_state(BreakerState::Open);
        let text = m.render();
        for needle in [
            "agent_tasks_completed_total{status=\"success\"} 1",
            "agent_tasks_completed_total{status=\"dead_lettered\"} 1",
            "agent_task_duration_seconds_bucket{le=\"1.6\"} 1",
            "agent_task_duration_seconds_count 1",
            "agent_llm_tokens_total{model=\"m-1\"} 42",
            "agent_llm_requests_total{status=\"200\"} 1",
            "agent_llm_retries_total 0",
            "agent_breaker_state 2",
            "agent_breaker_opened_total 0",
            "agent_checkpoints_written_total 0",
            "agent_checkpoint_corrupt_total 0",
            "agent_resumes_total 0",
            "agent_deliveries_total 0",
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[tokio::test]
    async fn readyz_follows_the_ready_flag() {
        crate::crypto::install_ring_provider();
        let metrics = Arc::new(Metrics::new());
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, metrics.clone(), true));
        let client = reqwest::Client::new();
        let get = |path: &'static str| {
            let client = client.clone();
            async move {
                client
                    .get(format!("http://{addr}{path}"))
                    .send()
                    .await
                    .unwrap()
            }
        };
        assert_eq!(get("/healthz").await.status(), 200);
        assert_eq!(get("/readyz").await.status(), 503);
        metrics.set_ready(true);
        assert_eq!(get("/readyz").await.status(), 200);
        let response = get("/metrics").await;
        assert_eq!(response.status(), 200);
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("agent_deliveries_total")
        );
    }

    #[tokio::test]
    async fn the_no_metrics_break_removes_only_the_metrics_route() {
        crate::crypto::install_ring_provider();
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Arc::new(Metrics::new()), false));
        let client = reqwest::Client::new();
        let status = |path: &'static str| {
            let client = client.clone();
            async move {
                client
                    .get(format!("http://{addr}{path}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(status("/metrics").await, 404);
        assert_eq!(status("/healthz").await, 200);
    }
}
