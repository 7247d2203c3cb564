//! scaling, Docker form: competing consumers. The same task set is run on 1 agent and then on 4
//! fresh agents, with gateway latency dominating each step, so the 4-agent run must finish at
//! least 3x faster; no task may be processed twice except by a recorded redelivery; and
//! Prometheus' `sum(agent_tasks_completed_total{status="success"})` of each phase's agents must
//! equal the number of tasks (the fleet's own accounting agrees with the ledger's).
//!
//! On Kubernetes the same scenario additionally checks KEDA's formula; that needs a capability
//! the Docker runtime does not claim, and lives in the kind runtime's scenario variant.

use std::time::Duration;

use agentfleet_protocol::TaskFaults;
use tokio::time::Instant;

use super::Findings;
use super::common::{
    Books, ScenarioError, fixed_llm_latency, judge_ledger, prometheus_api, task, wait_consumers,
    wait_exits,
};
use crate::runtime::{AgentRef, AgentSet, Session};
use crate::services::prometheus::PrometheusApi;
use crate::wait::{Probe, until};

/// Tasks per phase and steps per task.
const TASKS: u32 = 12;
const STEPS: u32 = 4;
/// Gateway latency per call: 12 x 4 x 250 ms = 12 s of pure LLM time for one agent.
const LATENCY_MS: u64 = 250;
/// Minimum speed-up of 4 agents over 1.
const MIN_SPEEDUP: f64 = 3.0;
const PHASE_TIMEOUT: Duration = Duration::from_secs(90);

pub async fn run<S: Session>(session: &S, findings: &mut Findings) -> Result<(), ScenarioError> {
    let platform = session.platform();
    let prometheus = prometheus_api(platform)?;
    fixed_llm_latency(platform, LATENCY_MS).await?;
    let mut books = Books::open(platform).await?;
    let one = phase(session, findings, &mut books, &prometheus, "one", &[0]).await?;
    let four = phase(
        session,
        findings,
        &mut books,
        &prometheus,
        "four",
        &[1, 2, 3, 4],
    )
    .await?;
    books.settle(super::common::SETTLE).await?;
    judge_ledger(findings, &books, platform).await?;

    let speedup = one.as_secs_f64() / four.as_secs_f64().max(0.001);
    findings.figure("drain time, 1 agent", one.as_secs_f64(), "s");
    findings.figure("drain time, 4 agents", four.as_secs_f64(), "s");
    findings.bounded(
        "speed-up of 4 agents over 1",
        speedup,
        "x",
        &format!(">= {MIN_SPEEDUP}"),
        speedup >= MIN_SPEEDUP,
    );

    // Double work shows in the gateway log too: a task's calls beyond its steps, unless redelivered.
    let log = platform.gateway.requests().await?;
    // A task counts as redelivered when one of its results came from a later delivery.
    let extra_calls: usize = (0..TASKS)
        .flat_map(|n| [task_id("one", n), task_id("four", n)])
        .filter(|id| {
            let results = books.ledger.results_for(id);
            results.len() <= 1 && results.iter().all(|r| r.result.attempt <= 1)
        })
        .map(|id| {
            crate::request_log::of_task(&log, &id)
                .len()
                .saturating_sub(STEPS as usize)
        })
        .sum();
    findings.bounded(
        "gateway calls beyond each task's steps (not redelivered)",
        extra_calls as f64,
        "calls",
        "= 0",
        extra_calls == 0,
    );
    Ok(())
}

fn task_id(fleet: &str, n: u32) -> String {
    format!("scaling-{fleet}-{n:02}")
}

/// Runs the task set on fresh agents `indexes`; returns the drain time (publish to last result).
async fn phase<S: Session>(
    session: &S,
    findings: &mut Findings,
    books: &mut Books,
    prometheus: &PrometheusApi,
    fleet: &str,
    indexes: &[u32],
) -> Result<Duration, ScenarioError> {
    let platform = session.platform();
    let mut events = session.events();
    let agents = session
        .start_agents(&AgentSet::new(fleet, indexes.iter().copied()))
        .await?;
    wait_consumers(platform, indexes.len() as u32, Duration::from_secs(60)).await?;
    findings.event(
        "phase-start",
        format!("{TASKS} tasks on {} agent(s)", indexes.len()),
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|n| task(&task_id(fleet, n), STEPS, TaskFaults::default()))
        .collect();
    for t in &tasks {
        books.publish(platform, t).await?;
    }
    books.wait_accounted(PHASE_TIMEOUT).await?;
    let drained = started.elapsed();
    findings.event(
        "phase-drained",
        format!("{fleet}: {:.1} s", drained.as_secs_f64()),
    );

    // Prometheus must see every completion before the agents go (it scrapes every second).
    let query = format!(r#"sum(agent_tasks_completed_total{{fleet="{fleet}",status="success"}})"#);
    let expected = f64::from(TASKS);
    let seen = until(
        format!("Prometheus: {query} = {expected}"),
        Duration::from_secs(20),
        Duration::from_millis(500),
        || async {
            match prometheus.scalar(&query).await {
                Ok(v) if (v - expected).abs() < 0.5 => Probe::Ready(v),
                Ok(v) => Probe::NotYet(format!("{v}")),
                Err(e) => Probe::NotYet(e.to_string()),
            }
        },
    )
    .await;
    let value = match &seen {
        Ok(v) => *v,
        Err(_) => prometheus.scalar(&query).await.unwrap_or(f64::NAN),
    };
    findings.bounded(
        &format!("Prometheus completed tasks, {fleet} phase"),
        value,
        "tasks",
        &format!("= {TASKS}"),
        seen.is_ok(),
    );

    // Work spread: with competing consumers every agent of the phase took some of it.
    let busy = indexes
        .iter()
        .filter(|&&i| {
            tasks.iter().any(|t| {
                books
                    .ledger
                    .results_for(&t.id)
                    .iter()
                    .any(|r| r.result.agent_index == i)
            })
        })
        .count();
    findings.bounded(
        &format!("agents that completed tasks, {fleet} phase"),
        busy as f64,
        "agents",
        &format!("= {}", indexes.len()),
        busy == indexes.len(),
    );

    stop_all(session, &mut events, &agents).await?;
    Ok(drained)
}

/// Stops the phase's agents and waits for their exits (idle agents exit 0 on SIGTERM).
async fn stop_all<S: Session>(
    session: &S,
    events: &mut futures::stream::BoxStream<'static, crate::runtime::RuntimeEvent>,
    agents: &[AgentRef],
) -> Result<(), ScenarioError> {
    for agent in agents {
        session.stop(agent, None).await?;
    }
    wait_exits(
        events,
        agents,
        session.template().grace + Duration::from_secs(10),
    )
    .await?;
    Ok(())
}
