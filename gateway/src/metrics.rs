//! The gateway's own Prometheus metrics, so a scenario can read the load the fleet put on the
//! LLM (request rate by status, concurrency, tokens) from the same Prometheus as the agents'.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Content type of [`GatewayMetrics::encode`]'s output (OpenMetrics text, which Prometheus
/// negotiates and parses).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Debug)]
pub struct GatewayMetrics {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    in_flight: Gauge,
    tokens: Counter,
    duration: Histogram,
    log_dropped: Counter,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<StatusLabels, Counter>::default();
        // prometheus-client appends `_total` to counter names itself.
        registry.register(
            "gateway_requests",
            "Chat completion requests answered, by HTTP status",
            requests.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "gateway_requests_in_flight",
            "Chat completion requests admitted and not yet answered",
            in_flight.clone(),
        );
        let tokens = Counter::default();
        registry.register(
            "gateway_tokens",
            "Tokens (prompt + completion) of successful answers",
            tokens.clone(),
        );
        // 1 ms .. ~33 s: from an instant rejection to a long-tailed LLM answer.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "gateway_request_duration_seconds",
            "Time to answer a chat completion request, rejections included",
            duration.clone(),
        );
        let log_dropped = Counter::default();
        registry.register(
            "gateway_request_log_dropped",
            "Request log records dropped because the log was full",
            log_dropped.clone(),
        );
        Self {
            registry,
            requests,
            in_flight,
            tokens,
            duration,
            log_dropped,
        }
    }

    pub fn observe_request(&self, status: u16, took: Duration) {
        self.requests.get_or_create(&StatusLabels { status }).inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn add_tokens(&self, tokens: u64) {
        self.tokens.inc_by(tokens);
    }

    pub fn add_log_dropped(&self, dropped: u64) {
        if dropped > 0 {
            self.log_dropped.inc_by(dropped);
        }
    }

    /// Renders the registry. `in_flight` is sampled from the fault engine at scrape time, so
    /// the gauge can never drift from the count that capacity decisions use.
    pub fn encode(&self, in_flight: u32) -> String {
        self.in_flight.set(i64::from(in_flight));
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing metrics to a String cannot fail");
        text
    }
}
