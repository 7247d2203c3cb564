//! The gateway client: one chat completion per call, retried politely.
//!
//! Connect errors, timeouts, 408, 429 and 5xx are retried, after a capped exponential backoff
//! with full jitter and behind the [`Pacer`]'s gates (`Retry-After`, retry budget, circuit
//! breaker). Waiting at a gate does not count as an attempt: an open breaker makes the step
//! wait, it does not fail the task. Other 4xx answers are the request's fault and are not
//! retried. `AGENT_LLM_MAX_ATTEMPTS` bounds the requests of one call (0 = unlimited).

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use agentfleet_protocol::gateway::{AGENT_INDEX_HEADER, ChatRequest, ChatResponse, TASK_ID_HEADER};
use reqwest::{StatusCode, Url, header::RETRY_AFTER};
use tokio::{sync::Notify, time::Instant};
use tracing::{debug, info, warn};

use crate::{
    backoff::Backoff,
    breaker::{Breaker, BreakerState},
    budget::RetryBudget,
    config::{LlmConfig, chat_completions_url},
    metrics::Metrics,
    pacer::{Change, Decision, Pacer, WaitReason},
    retry_after::{self, MAX_RETRY_AFTER},
};

/// Longest excerpt of an error body kept in errors and logs.
const BODY_EXCERPT: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// A 4xx other than 408/429: retrying the same request cannot help.
    #[error("gateway rejected the request with HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("gave up after {attempts} attempts (AGENT_LLM_MAX_ATTEMPTS); last failure: {last}")]
    Exhausted { attempts: u32, last: String },
    #[error("cannot build the gateway HTTP client: {0}")]
    Client(String),
}

/// One request's result, before retry policy.
enum Attempt {
    Answered(ChatResponse),
    Rejected {
        status: u16,
        body: String,
    },
    Retryable {
        failure: String,
        retry_after: Option<Duration>,
    },
}

#[derive(Debug)]
pub struct LlmClient {
    http: reqwest::Client,
    url: Url,
    agent_index: String,
    timeout: Duration,
    backoff: Backoff,
    max_attempts: Option<u32>,
    pacer: Mutex<Pacer>,
    /// Wakes callers waiting for a half-open probe's outcome.
    settled: Notify,
    metrics: Arc<Metrics>,
}

impl LlmClient {
    pub fn new(
        gateway: &Url,
        agent_index: u32,
        config: &LlmConfig,
        metrics: Arc<Metrics>,
    ) -> Result<LlmClient, LlmError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("agentfleet-agent/", env!("CARGO_PKG_VERSION")));
        if gateway.scheme() == "http" {
            // Plain HTTP needs no trust roots. Without this, reqwest loads the platform's CA
            // store at build time and fails in a `FROM scratch` image, which has none.
            // An https gateway keeps the platform verifier (ship a CA bundle for it).
            builder = builder.tls_certs_only(std::iter::empty());
        }
        let http = builder
            .build()
            .map_err(|e| LlmError::Client(error_chain(&e)))?;
        let now = Instant::now().into_std();
        let pacer = Pacer::new(
            Breaker::new(config.breaker_failures, config.breaker_open),
            RetryBudget::new(
                config.retry_budget_ratio,
                config.retry_budget_min_per_sec,
                now,
            ),
            config.breaker_open,
        );
        metrics.breaker_state(pacer.breaker_state());
        Ok(LlmClient {
            http,
            url: chat_completions_url(gateway),
            agent_index: agent_index.to_string(),
            timeout: config.timeout,
            backoff: Backoff::new(
                config.backoff_base,
                config.backoff_cap,
                config.backoff_enabled,
            ),
            max_attempts: config.max_attempts,
            pacer: Mutex::new(pacer),
            settled: Notify::new(),
            metrics,
        })
    }

    /// Sends `request` until the gateway answers it, the answer is a rejection, or the
    /// attempts run out.
    pub async fn chat(
        &self,
        task_id: &str,
        request: &ChatRequest,
    ) -> Result<ChatResponse, LlmError> {
        let mut failures = 0u32;
        loop {
            let admitted = self.admit(failures > 0).await;
            if failures > 0 {
                self.metrics.llm_retry();
            }
            match self.send_once(task_id, request).await {
                Attempt::Answered(response) => {
                    admitted.settle(|p| p.on_success());
                    return Ok(response);
                }
                Attempt::Rejected { status, body } => {
                    // The gateway is up and answering: not a breaker failure.
                    admitted.settle(|p| p.on_success());
                    return Err(LlmError::Rejected { status, body });
                }
                Attempt::Retryable {
                    failure,
                    retry_after,
                } => {
                    let now = Instant::now().into_std();
                    admitted.settle(|p| p.on_failure(now, retry_after));
                    failures += 1;
                    if self.max_attempts.is_some_and(|max| failures >= max) {
                        return Err(LlmError::Exhausted {
                            attempts: failures,
                            last: failure,
                        });
                    }
                    let delay = self.backoff.delay(failures - 1, &mut rand::rng());
                    warn!(
                        failure = %failure,
                        attempt = failures,
                        retry_in_ms = millis(delay),
                        retry_after_ms = retry_after.map(millis),
                        "LLM request failed; will retry"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Waits at the pacer's gates until a request may go out.
    async fn admit(&self, is_retry: bool) -> Admitted<'_> {
        loop {
            // Registered before looking at the pacer, so a probe settling in between is not
            // missed.
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let (decision, state) = {
                let mut pacer = self.lock_pacer();
                (
                    pacer.admit(Instant::now().into_std(), is_retry),
                    pacer.breaker_state(),
                )
            };
            self.metrics.breaker_state(state);
            match decision {
                Decision::Send { probe } => {
                    if probe {
                        info!("circuit breaker half-open: sending one probe");
                    }
                    return Admitted {
                        client: self,
                        probe,
                        settled: false,
                    };
                }
                Decision::Wait { until, reason } => {
                    let until = Instant::from_std(until);
                    debug!(
                        reason = reason.as_str(),
                        wait_ms = millis(until.saturating_duration_since(Instant::now())),
                        "LLM request waiting"
                    );
                    if reason == WaitReason::ProbeInFlight {
                        tokio::select! {
                            () = settled => {}
                            () = tokio::time::sleep_until(until) => {}
                        }
                    } else {
                        tokio::time::sleep_until(until).await;
                    }
                }
            }
        }
    }

    async fn send_once(&self, task_id: &str, request: &ChatRequest) -> Attempt {
        let sent = self
            .http
            .post(self.url.clone())
            .header(AGENT_INDEX_HEADER, &self.agent_index)
            .header(TASK_ID_HEADER, task_id)
            .timeout(self.timeout)
            .json(request)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                let label = transport_label(&e);
                self.metrics.llm_request(label);
                return Attempt::Retryable {
                    failure: format!("{label}: {}", e.without_url()),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        self.metrics.llm_request(status.as_str());
        let retry_after = retry_after_of(&response);
        if status.is_success() {
            return match response.json::<ChatResponse>().await {
                Ok(answer) => Attempt::Answered(answer),
                Err(e) => Attempt::Retryable {
                    failure: format!("unreadable HTTP {status} answer: {}", e.without_url()),
                    retry_after,
                },
            };
        }
        if is_retryable(status) {
            return Attempt::Retryable {
                failure: format!("HTTP {}", status.as_u16()),
                retry_after,
            };
        }
        let body = response.text().await.unwrap_or_default();
        Attempt::Rejected {
            status: status.as_u16(),
            body: excerpt(&body),
        }
    }

    fn lock_pacer(&self) -> MutexGuard<'_, Pacer> {
        // The pacer is plain data updated under short critical sections: a panic cannot leave
        // it half-updated in a way that matters more than stopping the agent would.
        self.pacer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, change: Change) {
        self.metrics.breaker_state(change.after);
        if change.opened {
            self.metrics.breaker_opened();
            warn!("circuit breaker opened: holding LLM requests");
        } else if change.after == BreakerState::Closed && change.before != BreakerState::Closed {
            info!("circuit breaker closed: the gateway answers again");
        }
    }
}

/// A request admitted by the pacer. Its outcome must be recorded with [`Admitted::settle`];
/// dropped unsettled (the step was abandoned mid-request), it frees the half-open probe slot.
struct Admitted<'a> {
    client: &'a LlmClient,
    probe: bool,
    settled: bool,
}

impl Admitted<'_> {
    fn settle(mut self, outcome: impl FnOnce(&mut Pacer) -> Change) {
        let change = outcome(&mut self.client.lock_pacer());
        self.client.record(change);
        self.settled = true;
        self.client.settled.notify_waiters();
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.client.lock_pacer().on_abandoned(self.probe);
            self.client.settled.notify_waiters();
        }
    }
}

/// The answer's `Retry-After`, clamped to [`MAX_RETRY_AFTER`].
fn retry_after_of(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    let Some(delay) = retry_after::parse(value, SystemTime::now()) else {
        debug!(value, "ignoring an unparseable Retry-After");
        return None;
    };
    if delay > MAX_RETRY_AFTER {
        warn!(
            value,
            clamped_to_secs = MAX_RETRY_AFTER.as_secs(),
            "Retry-After is implausibly long; clamping"
        );
        return Some(MAX_RETRY_AFTER);
    }
    Some(delay)
}

/// `error: cause: cause ...`: reqwest's own message alone is often just "builder error".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// The `status` label for a request that got no HTTP answer.
fn transport_label(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect_error"
    } else {
        "transport_error"
    }
}

fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(BODY_EXCERPT) {
        Some((cut, _)) => format!("{}...", &body[..cut]),
        None => body.to_owned(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
