//! Steps the scenarios share: tasks, the ledger fed from the result queues, event waits.

use std::time::Duration;

use agentfleet_protocol::gateway::{FaultProfile, Latency};
use agentfleet_protocol::{Task, TaskFaults};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::time::Instant;

use crate::ledger::{Ledger, LedgerError, Verdict};
use crate::queue::{Outcomes, QueueError};
use crate::runtime::{AgentRef, Platform, RuntimeError, RuntimeEvent};
use crate::scenario::LedgerSummary;
use crate::services::ServiceError;
use crate::services::prometheus::PrometheusApi;
use crate::wait::{Probe, WaitTimeout, until};

/// Why a scenario could not be carried out (as opposed to a check that failed).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Wait(#[from] WaitTimeout),
    #[error("{0}")]
    Step(String),
}

/// A client for the session's Prometheus, for scenarios that judge by scraped counters; a
/// session without one cannot run them.
#[expect(
    clippy::result_large_err,
    reason = "ScenarioError is what every step returns; this one runs once per scenario"
)]
pub fn prometheus_api(platform: &Platform) -> Result<PrometheusApi, ScenarioError> {
    let base = platform
        .prometheus
        .clone()
        .ok_or_else(|| ScenarioError::Step("the session runs no Prometheus".into()))?;
    Ok(PrometheusApi::new(base))
}

/// A PromQL label selector `{name="value",...}` for this session's agents: `matchers` plus the
/// platform's own (the namespace on Kubernetes, where Prometheus outlives every session).
pub fn selector(platform: &Platform, matchers: &[(&str, &str)]) -> String {
    let all: Vec<String> = matchers
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .chain(
            platform
                .metric_labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\"")),
        )
        .collect();
    format!("{{{}}}", all.join(","))
}

/// Sets the gateway to answer every call after a fixed `ms` and inject no other fault, so the
/// LLM time of a task is known in advance.
pub async fn fixed_llm_latency(platform: &Platform, ms: u64) -> Result<(), ScenarioError> {
    platform
        .gateway
        .set_faults(&FaultProfile {
            latency: Latency::Fixed { ms },
            ..FaultProfile::default()
        })
        .await?;
    Ok(())
}

/// A task with `steps` steps and the given faults.
pub fn task(id: &str, steps: u32, faults: TaskFaults) -> Task {
    Task {
        id: id.to_owned(),
        model: "sim-small".into(),
        prompt: format!("scenario task {id}"),
        steps,
        faults,
    }
}

/// Faults with only a per-step delay.
pub fn slow(step_delay_ms: u64) -> TaskFaults {
    TaskFaults {
        step_delay_ms: Some(step_delay_ms),
        ..TaskFaults::default()
    }
}

/// The ledger with its feed: publishes tasks and consumes results and dead letters.
pub struct Books {
    pub ledger: Ledger,
    outcomes: Outcomes,
}

impl std::fmt::Debug for Books {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Books")
            .field("verdict", &self.ledger.verdict())
            .finish()
    }
}

impl Books {
    pub async fn open(platform: &Platform) -> Result<Books, ScenarioError> {
        Ok(Books {
            ledger: Ledger::new(),
            outcomes: platform.queue.outcomes().await?,
        })
    }

    pub async fn publish(&mut self, platform: &Platform, task: &Task) -> Result<(), ScenarioError> {
        platform.queue.publish_task(task).await?;
        self.ledger.published(&task.id);
        Ok(())
    }

    pub async fn wait_accounted(&mut self, timeout: Duration) -> Result<Verdict, ScenarioError> {
        Ok(self
            .ledger
            .wait_accounted(&mut self.outcomes, timeout)
            .await?)
    }

    /// Waits `quiet` for late duplicates, then judges.
    pub async fn settle(&mut self, quiet: Duration) -> Result<Verdict, ScenarioError> {
        self.ledger.settle(&mut self.outcomes, quiet).await?;
        Ok(self.ledger.verdict())
    }
}

/// Quiet period for late duplicates after everything is accounted for.
pub const SETTLE: Duration = Duration::from_secs(2);

/// The ledger summary plus the ledger checks every scenario makes: nothing lost, nothing
/// unexpected, the task queue drained; duplicates are counted and shown, and fail only when a
/// task was finished twice without a recorded redelivery (two first-attempt results).
pub async fn judge_ledger(
    findings: &mut super::Findings,
    books: &Books,
    platform: &Platform,
) -> Result<Verdict, ScenarioError> {
    let verdict = books.ledger.verdict();
    let depth = platform
        .queue
        .depth(&platform.queue.topology().task_queue)
        .await?;
    findings.ledger = Some(LedgerSummary::from_verdict(&verdict, depth.ready));
    findings.bounded(
        "lost tasks",
        verdict.lost.len() as f64,
        "tasks",
        "= 0",
        verdict.lost.is_empty(),
    );
    findings.figure(
        "duplicate results",
        verdict.duplicate_results() as f64,
        "results",
    );
    findings.bounded(
        "tasks left on the queue",
        f64::from(depth.ready),
        "messages",
        "= 0",
        depth.ready == 0,
    );
    findings.check(
        verdict.unexpected.is_empty() && verdict.undecodable.is_empty(),
        || {
            format!(
                "unexpected or undecodable outcomes: {:?} {:?}",
                verdict.unexpected, verdict.undecodable
            )
        },
    );
    for (id, _) in &verdict.duplicates {
        let first_attempts = books
            .ledger
            .results_for(id)
            .iter()
            .filter(|r| r.result.attempt <= 1)
            .count();
        findings.check(first_attempts <= 1, || {
            format!("task {id} was finished {first_attempts} times on its first delivery: double work without a redelivery")
        });
    }
    Ok(verdict)
}

/// Waits until the task queue has at least `n` consumers (agents connected and ready).
pub async fn wait_consumers(
    platform: &Platform,
    n: u32,
    timeout: Duration,
) -> Result<(), ScenarioError> {
    let queue = platform.queue.topology().task_queue.clone();
    until(
        format!("{n} consumers on {queue}"),
        timeout,
        Duration::from_millis(200),
        || async {
            match platform.queue.depth(&queue).await {
                Ok(d) if d.consumers >= n => Probe::Ready(()),
                Ok(d) => Probe::NotYet(format!("{} consumers", d.consumers)),
                Err(e) => Probe::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    Ok(())
}

/// Waits until the gateway has answered at least `n` calls for `task_id`; returns the count.
pub async fn wait_task_calls(
    platform: &Platform,
    task_id: &str,
    n: usize,
    timeout: Duration,
) -> Result<usize, ScenarioError> {
    let calls = until(
        format!("{n} gateway calls for {task_id}"),
        timeout,
        Duration::from_millis(100),
        || async {
            match platform.gateway.requests().await {
                Ok(log) => {
                    let count = log
                        .iter()
                        .filter(|r| r.task_id.as_deref() == Some(task_id) && r.status == 200)
                        .count();
                    if count >= n {
                        Probe::Ready(count)
                    } else {
                        Probe::NotYet(format!("{count} calls"))
                    }
                }
                Err(e) => Probe::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    Ok(calls)
}

/// Reads `events` until `matches` picks one, or fails at `timeout` listing what was seen.
pub async fn wait_event<T>(
    events: &mut BoxStream<'static, RuntimeEvent>,
    what: &str,
    timeout: Duration,
    mut matches: impl FnMut(&RuntimeEvent) -> Option<T>,
) -> Result<T, ScenarioError> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(event)) => {
                if let Some(found) = matches(&event) {
                    return Ok(found);
                }
                seen.push(event.describe().1);
            }
            Ok(None) => {
                return Err(ScenarioError::Step(format!(
                    "event stream ended while waiting for {what}; seen: {seen:?}"
                )));
            }
            Err(_) => {
                return Err(ScenarioError::Step(format!(
                    "no {what} within {timeout:?}; events seen meanwhile: {seen:?}"
                )));
            }
        }
    }
}

/// The exit of `agent` (exit code, OOMKilled).
pub async fn wait_exit(
    events: &mut BoxStream<'static, RuntimeEvent>,
    agent: &AgentRef,
    timeout: Duration,
) -> Result<(i64, bool), ScenarioError> {
    wait_event(
        events,
        &format!("exit of {}", agent.name),
        timeout,
        |e| match e {
            RuntimeEvent::Exited {
                agent: a,
                exit_code,
                oom_killed,
            } if a == agent => Some((*exit_code, *oom_killed)),
            _ => None,
        },
    )
    .await
}

/// Unix time in milliseconds (the gateway's request log uses it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Waits for the exits of all `agents` (in any order); returns their exit codes in order.
pub async fn wait_exits(
    events: &mut BoxStream<'static, RuntimeEvent>,
    agents: &[AgentRef],
    timeout: Duration,
) -> Result<Vec<i64>, ScenarioError> {
    let mut codes: Vec<Option<i64>> = vec![None; agents.len()];
    let what = format!(
        "exits of {}",
        agents
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    wait_event(events, &what, timeout, |e| {
        if let RuntimeEvent::Exited {
            agent, exit_code, ..
        } = e
            && let Some(i) = agents.iter().position(|a| a == agent)
        {
            codes[i] = Some(*exit_code);
        }
        codes.iter().all(Option::is_some).then_some(())
    })
    .await?;
    Ok(codes.into_iter().flatten().collect())
}
