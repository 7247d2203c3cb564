//! scaling, Docker form: competing consumers. The same task set is run on 1 agent and then on 4
//! fresh agents, with gateway latency dominating each step, so the 4-agent run must finish at
//! least 3x faster; no task may be processed twice except by a recorded redelivery; and
//! Prometheus' `sum(max_over_time(agent_tasks_completed_total{fleet=<phase>,status="success"}[15m]))`
//! (each agent's last scrape, also once it has gone) must
//! equal the number of tasks (the fleet's own accounting agrees with the ledger's).
//!
//! On a cluster a third phase runs the fleet as KEDA runs it: the ScaledJob is applied (its
//! ceiling lowered to 4 so the bursts reach it), slow tasks arrive in bursts, and the Jobs KEDA
//! creates are sampled next to the queue's ready count so that
//! `agentfleet_cluster::checks::keda_formula` can decide whether the documented formula held
//! (within one polling interval, never above maxReplicaCount). Once the queue is empty and
//! KEDA's Jobs are still up, the ScaledJob is changed (a fleet change): those Jobs must survive
//! it (`rollout.strategy: gradual`; KEDA's default deletes them). Prometheus, discovering the
//! pods by annotation, must count every KEDA-run task. On Docker these checks are recorded as
//! skipped.

use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};

use agentfleet_cluster::checks::{keda_formula, rollout};
use agentfleet_protocol::{TaskFaults, env};
use futures::future::Either;
use tokio::time::Instant;

use super::Findings;
use super::common::{
    Books, ScenarioError, fixed_llm_latency, judge_ledger, prometheus_api, selector, slow, task,
    wait_consumers, wait_exits,
};
use crate::runtime::{AgentSet, ClusterOps, Session};
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
            &AgentSet::new(fleet, indexes.iter().copied())
                .env(env::IDLE_EXIT_SECS, idle_exit_secs(platform)),
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
        platform.metrics_settle + Duration::from_secs(30),
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

/// Agents exit once the queue has been empty this long: long enough for Prometheus to scrape
/// their final counters before they go.
fn idle_exit_secs(platform: &crate::runtime::Platform) -> u64 {
    platform.metrics_settle.as_secs().max(1)
}

/// Task bursts of the KEDA phase, published one polling interval and a half apart so each
/// lands on a different poll.
const BURSTS: [u32; 3] = [12, 23, 6];
/// The ScaledJob's ceiling in this phase: low enough that the bursts reach it, so the check
/// sees KEDA cap (`accurate`: maxReplicaCount - running) as well as scale.
const KEDA_MAX_REPLICAS: u32 = 4;
/// Each KEDA task takes about 4 s (4 steps, 750 ms each plus the gateway's 250 ms): a backlog
/// outlives a polling interval, so a KEDA that creates too few Jobs fails the check.
const KEDA_STEPS: u32 = 4;
const KEDA_STEP_DELAY_MS: u64 = 750;
/// From KEDA's decision to the Job being visible to the watch.
const KEDA_SLACK: Duration = Duration::from_secs(5);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

fn keda_task_id(n: u32) -> String {
    format!("scaling-keda-{n:02}")
}

/// One sample and what the bound on its ready count needs: when it was taken (the agents'
/// clock, as in results' `finished_at_ms`) and how many tasks had been published by then.
struct Sampled {
    sample: keda_formula::Sample,
    at_ms: u64,
    published: u64,
}

/// The KEDA phase (see the module doc). The ScaledJob is deleted however the phase ends, so
/// its Jobs cannot outlive it on the shared queue.
async fn keda_phase<S: Session>(
    session: &S,
    cluster: &S::Cluster,
    findings: &mut Findings,
    books: &mut Books,
    prometheus: &PrometheusApi,
) -> Result<(), ScenarioError> {
    let result = keda_run(session, cluster, findings, books, prometheus).await;
    let deleted = cluster.delete_scaled_job().await;
    result?;
    Ok(deleted?)
}

async fn keda_run<S: Session>(
    session: &S,
    cluster: &S::Cluster,
    findings: &mut Findings,
    books: &mut Books,
    prometheus: &PrometheusApi,
) -> Result<(), ScenarioError> {
    let platform = session.platform();
    let mut spec = cluster.scaler_spec()?;
    spec.max_replica_count = spec.max_replica_count.min(KEDA_MAX_REPLICAS);
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
        "KEDA maxReplicaCount (this phase)",
        f64::from(spec.max_replica_count),
        "Jobs",
    );
    let set = AgentSet::new("keda", []).env(env::IDLE_EXIT_SECS, idle_exit_secs(platform));
    cluster
        .apply_scaled_job(&set, Some(spec.max_replica_count))
        .await?;
    findings.event("keda-applied", format!("{:?} strategy", spec.strategy));

    // Phase 1: bursts, sampled every second until every task is accounted for.
    let started = Instant::now();
    let gap = spec.polling_interval + spec.polling_interval / 2;
    let task_queue = platform.queue.topology().task_queue.clone();
    let published = AtomicU64::new(0);
    let mut sampled: Vec<Sampled> = Vec::new();
    let sampling = async {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            // The exact ready count (passive declare), what KEDA's AMQP trigger reads.
            if let Ok(depth) = platform.queue.depth(&task_queue).await {
                sampled.push(Sampled {
                    sample: cluster.scaling_sample(started.elapsed(), u64::from(depth.ready)),
                    at_ms: super::common::unix_ms(),
                    published: published.load(Ordering::SeqCst),
                });
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
                let t = task(&keda_task_id(next), KEDA_STEPS, slow(KEDA_STEP_DELAY_MS));
                books.publish(platform, &t).await?;
                published.fetch_add(1, Ordering::SeqCst);
                next += 1;
            }
            findings.event("burst", format!("{size} tasks"));
        }
        books
            .wait_accounted(spec.polling_interval * 3 + Duration::from_secs(240))
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
    // When each task first finished (a redelivered one counts from its first result).
    let finished_at_ms: Vec<u64> = (0..total)
        .filter_map(|n| {
            books
                .ledger
                .results_for(&keda_task_id(n))
                .iter()
                .map(|r| r.result.finished_at_ms)
                .min()
        })
        .collect();
    let samples = with_outstanding_bound(sampled, finished_at_ms);
    let created = samples.last().map(|s| s.created_jobs).unwrap_or(0);
    let peak = samples.iter().map(|s| s.running_jobs).max().unwrap_or(0);
    findings.figure("Jobs KEDA created", f64::from(created), "Jobs");
    findings.figure("peak KEDA Jobs running", f64::from(peak), "Jobs");
    findings.cluster_check(KEDA_CHECK, keda_formula::check(&spec, &samples, KEDA_SLACK));

    // Phase 2: a fleet change while the Jobs are still up (idle) and the queue is empty, so the
    // poll KEDA makes on the change creates nothing and cannot blur the formula check. Marked
    // before the apply: a default-strategy deletion may reach the watch before the apply returns.
    cluster.mark_fleet_change();
    let changed = set.clone().env(env::LOG, "debug");
    cluster
        .apply_scaled_job(&changed, Some(spec.max_replica_count))
        .await?;
    findings.event("fleet-change", "ScaledJob re-applied with AGENT_LOG=debug");
    let settle = platform.metrics_settle + Duration::from_secs(60);
    let finished = until(
        "every Job of the ScaledJob finished or gone",
        settle,
        Duration::from_millis(500),
        || async {
            let running = cluster.scaling_sample(started.elapsed(), 0).running_jobs;
            if running == 0 {
                Probe::Ready(())
            } else {
                Probe::NotYet(format!("{running} running"))
            }
        },
    )
    .await;
    findings.check(finished.is_ok(), || {
        format!("the ScaledJob's Jobs did not finish within {settle:?} of the fleet change")
    });
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
    let (value, seen) = prometheus_total(prometheus, &query, total, Duration::from_secs(30)).await;
    findings.bounded(
        "Prometheus completed tasks, KEDA phase",
        value,
        "tasks",
        &format!("= {total}"),
        seen,
    );
    Ok(())
}

/// Raises each sample's outstanding bound to the tasks published by it minus those finished by
/// the sample before (results carry `finished_at_ms`): whatever a KEDA poll between the two saw
/// ready was at most that.
fn with_outstanding_bound(
    sampled: Vec<Sampled>,
    mut finished: Vec<u64>,
) -> Vec<keda_formula::Sample> {
    finished.sort_unstable();
    let finished_by = |at_ms: u64| finished.partition_point(|&f| f <= at_ms) as u64;
    let mut previous_at = 0;
    sampled
        .into_iter()
        .map(|s| {
            let bound = s.published.saturating_sub(finished_by(previous_at));
            previous_at = s.at_ms;
            keda_formula::Sample {
                outstanding_messages: bound.max(s.sample.ready_messages),
                ..s.sample
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampled(t: u64, ready: u64, published: u64) -> Sampled {
        Sampled {
            sample: keda_formula::Sample {
                t: Duration::from_secs(t),
                ready_messages: ready,
                outstanding_messages: ready,
                running_jobs: 0,
                pending_jobs: 0,
                created_jobs: 0,
            },
            at_ms: 1_000 * t,
            published,
        }
    }

    #[test]
    fn the_outstanding_bound_is_published_by_now_minus_finished_by_the_sample_before() {
        // 10 published before t=1 s; 4 finished by then, 10 by t=2 s.
        let finished = vec![500, 600, 700, 1000, 1500, 1600, 1700, 1800, 1900, 2000];
        let samples = with_outstanding_bound(
            vec![
                sampled(0, 0, 0),
                sampled(1, 2, 10),
                sampled(2, 0, 10),
                sampled(3, 0, 10),
            ],
            finished,
        );
        let bounds: Vec<u64> = samples.iter().map(|s| s.outstanding_messages).collect();
        // t=1: 10 published - 0 finished by t=0; t=2: 10 - 4 (by t=1); t=3: 10 - 10.
        assert_eq!(bounds, [0, 10, 6, 0]);
        assert!(
            samples
                .iter()
                .all(|s| s.outstanding_messages >= s.ready_messages)
        );
    }
}
