//! scaling, Docker form: competing consumers. The same task set is run on 1 agent and then on 4
//! fresh agents, with gateway latency dominating each step, so the 4-agent run must finish at
//! least 3x faster; no task may be processed twice except by a recorded redelivery; and
//! Prometheus' `sum(agent_tasks_completed_total{status="success"})` of each phase's agents must
//! equal the number of tasks (the fleet's own accounting agrees with the ledger's).
//!
//! On a cluster a third phase runs the fleet as KEDA runs it: the ScaledJob is applied, tasks
//! arrive in bursts, and the Jobs KEDA creates are sampled next to the queue's ready count so
//! that `agentfleet_cluster::checks::keda_formula` can decide whether the documented formula
//! held (within one polling interval, never above maxReplicaCount). Mid-run the ScaledJob is
//! changed (a fleet change), and the Jobs running then must survive it (`rollout.strategy:
//! gradual`; KEDA's default deletes them). Prometheus, discovering the pods by annotation, must
//! count every KEDA-run task. On Docker these checks are recorded as skipped.

use std::time::Duration;

use agentfleet_cluster::checks::{keda_formula, rollout};
use agentfleet_protocol::{TaskFaults, env};
use futures::future::Either;
use tokio::time::Instant;

use super::Findings;
use super::common::{
    Books, ScenarioError, fixed_llm_latency, judge_ledger, prometheus_api, selector, task,
    wait_consumers, wait_event, wait_exits,
};
use crate::runtime::{AgentSet, ClusterOps, RuntimeEvent, Session};
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
/// Agents exit once the queue has been empty this long: longer than the in-cluster
/// Prometheus' 10 s scrape interval, so each agent's final counters are scraped before it goes.
const IDLE_EXIT_SECS: u32 = 15;

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
    match session.cluster() {
        Ok(cluster) => keda_phase(session, cluster, findings, &mut books, &prometheus).await?,
        Err(reason) => findings.skip_checks(&[KEDA_CHECK, ROLLOUT_CHECK], &reason),
    }
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
    // A phase ends as a fleet scales down: its agents run out of work and exit (0) by themselves.
    // Stopping them instead would be an eviction on a cluster, which the PodDisruptionBudget
    // rightly refuses for the last minAvailable agents.
    let agents = session
        .start_agents(
            &AgentSet::new(fleet, indexes.iter().copied()).env(env::IDLE_EXIT_SECS, IDLE_EXIT_SECS),
        )
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

    // Every completion, counted by Prometheus from the agents' own counters; max_over_time
    // keeps each agent's last scrape once it has gone.
    let query = format!(
        "sum(max_over_time(agent_tasks_completed_total{}[15m]))",
        selector(platform, &[("fleet", fleet), ("status", "success")])
    );
    let (value, seen) = prometheus_total(prometheus, &query, TASKS, Duration::from_secs(20)).await;
    findings.bounded(
        &format!("Prometheus completed tasks, {fleet} phase"),
        value,
        "tasks",
        &format!("= {TASKS}"),
        seen,
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

    let idle_since = Instant::now();
    let codes = wait_exits(
        &mut events,
        &agents,
        Duration::from_secs(u64::from(IDLE_EXIT_SECS) + 30),
    )
    .await?;
    findings.waiting_by_design += idle_since.elapsed();
    let nonzero = codes.iter().filter(|&&c| c != 0).count();
    findings.bounded(
        &format!("agents of the {fleet} phase exiting non-zero once idle"),
        nonzero as f64,
        "agents",
        "= 0 (idle exit is a clean exit)",
        nonzero == 0,
    );
    Ok(drained)
}

/// Waits until Prometheus answers `query` with `expected`; returns the last value read and
/// whether it got there within `timeout` (scrapes lag the fleet by up to one interval).
async fn prometheus_total(
    prometheus: &PrometheusApi,
    query: &str,
    expected: u32,
    timeout: Duration,
) -> (f64, bool) {
    let expected = f64::from(expected);
    let seen = until(
        format!("Prometheus: {query} = {expected}"),
        timeout,
        Duration::from_millis(500),
        || async {
            match prometheus.scalar(query).await {
                Ok(v) if (v - expected).abs() < 0.5 => Probe::Ready(v),
                Ok(v) => Probe::NotYet(format!("{v}")),
                Err(e) => Probe::NotYet(e.to_string()),
            }
        },
    )
    .await;
    match seen {
        Ok(v) => (v, true),
        Err(_) => (prometheus.scalar(query).await.unwrap_or(f64::NAN), false),
    }
}

/// Names of the cluster-only checks of this scenario.
pub const KEDA_CHECK: &str = "KEDA ScaledJob follows its scaling formula";
pub const ROLLOUT_CHECK: &str = "fleet change leaves running Jobs alone";

/// Task bursts of the KEDA phase, published one polling interval and a half apart so each
/// lands on a different poll: a backlog of 2-5 Jobs' worth, then one beyond a single Job.
const BURSTS: [u32; 3] = [12, 23, 6];

/// From KEDA's decision to the Job being visible to the watch.
const KEDA_SLACK: Duration = Duration::from_secs(5);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

fn keda_task_id(n: u32) -> String {
    format!("scaling-keda-{n:02}")
}

/// The KEDA phase (see the module doc).
async fn keda_phase<S: Session>(
    session: &S,
    cluster: &S::Cluster,
    findings: &mut Findings,
    books: &mut Books,
    prometheus: &PrometheusApi,
) -> Result<(), ScenarioError> {
    let platform = session.platform();
    let spec = cluster.scaler_spec()?;
    findings.figure(
        "KEDA pollingInterval",
        spec.polling_interval.as_secs_f64(),
        "s",
    );
    findings.figure(
        "KEDA messages per Job (trigger value)",
        spec.target_value,
        "tasks",
    );
    findings.figure(
        "KEDA maxReplicaCount",
        f64::from(spec.max_replica_count),
        "Jobs",
    );
    let set = AgentSet::new("keda", []).env(env::IDLE_EXIT_SECS, IDLE_EXIT_SECS);
    let mut events = session.events();
    // The stream replays the session's history: only agents started from now on are KEDA's.
    let earlier: std::collections::HashSet<String> = session
        .event_history()
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::Started { agent } => Some(agent.name.clone()),
            _ => None,
        })
        .collect();
    cluster.apply_scaled_job(&set).await?;
    findings.event("keda-applied", format!("{:?} strategy", spec.strategy));

    let started = Instant::now();
    let gap = spec.polling_interval + spec.polling_interval / 2;
    let task_queue = platform.queue.topology().task_queue.clone();
    let mut samples: Vec<keda_formula::Sample> = Vec::new();
    let sampling = async {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            // The exact ready count (passive declare), what KEDA's AMQP trigger reads.
            if let Ok(depth) = platform.queue.depth(&task_queue).await {
                samples.push(cluster.scaling_sample(started.elapsed(), u64::from(depth.ready)));
            }
        }
    };
    let total: u32 = BURSTS.iter().sum();
    let driving = async {
        let mut next = 0;
        for (burst, size) in BURSTS.iter().enumerate() {
            // Pacing the load: each burst is meant for a later poll.
            tokio::time::sleep_until(started + gap * burst as u32).await;
            for _ in 0..*size {
                books
                    .publish(
                        platform,
                        &task(&keda_task_id(next), 2, TaskFaults::default()),
                    )
                    .await?;
                next += 1;
            }
            findings.event("burst", format!("{size} tasks"));
            if burst == 0 {
                // The fleet change lands while the first burst's Jobs run.
                wait_event(
                    &mut events,
                    "a KEDA-created agent running",
                    spec.polling_interval + Duration::from_secs(120),
                    |e| match e {
                        RuntimeEvent::Started { agent } if !earlier.contains(&agent.name) => {
                            Some(())
                        }
                        _ => None,
                    },
                )
                .await?;
                let changed = set.clone().env(env::LOG, "debug");
                cluster.apply_scaled_job(&changed).await?;
                cluster.mark_fleet_change();
                findings.event("fleet-change", "ScaledJob re-applied with AGENT_LOG=debug");
            }
        }
        books
            .wait_accounted(spec.polling_interval * 3 + Duration::from_secs(180))
            .await
    };
    let drained = {
        let (sampling, driving) = (std::pin::pin!(sampling), std::pin::pin!(driving));
        match futures::future::select(sampling, driving).await {
            Either::Right((result, _)) => result,
            Either::Left((never, _)) => match never {},
        }
    };
    findings.waiting_by_design += gap * (BURSTS.len() as u32 - 1);
    drained?;
    findings.figure(
        "KEDA phase drain time",
        started.elapsed().as_secs_f64(),
        "s",
    );
    let created = samples.last().map(|s| s.created_jobs).unwrap_or(0);
    let peak = samples.iter().map(|s| s.running_jobs).max().unwrap_or(0);
    findings.figure("Jobs KEDA created", f64::from(created), "Jobs");
    findings.bounded(
        "peak KEDA Jobs running",
        f64::from(peak),
        "Jobs",
        &format!("<= maxReplicaCount {}", spec.max_replica_count),
        peak <= spec.max_replica_count,
    );
    findings.cluster_check(KEDA_CHECK, keda_formula::check(&spec, &samples, KEDA_SLACK));
    findings.cluster_check(
        ROLLOUT_CHECK,
        rollout::check(&cluster.rollout_observation()),
    );

    // In-cluster Prometheus, discovering pods by annotation: every KEDA-run task counted. The
    // pods come and go, so each pod's last scrape counts (max_over_time outlives staleness).
    let query = format!(
        "sum(max_over_time(agent_tasks_completed_total{}[15m]))",
        selector(platform, &[("fleet", "keda"), ("status", "success")])
    );
    let (value, seen) = prometheus_total(
        prometheus,
        &query,
        total,
        Duration::from_secs(u64::from(IDLE_EXIT_SECS) + 30),
    )
    .await;
    findings.bounded(
        "Prometheus completed tasks, KEDA phase",
        value,
        "tasks",
        &format!("= {total}"),
        seen,
    );
    cluster.delete_scaled_job().await?;
    Ok(())
}
