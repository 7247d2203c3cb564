//! retry-storm: 20 agents working when the gateway fails every request for `T` = 10 s.
//!
//! The bound. With capped exponential backoff and full jitter (base `b`, cap `C`), an agent past
//! the cap sleeps `uniform(0, C)`, `C/2` on average, then spends the request time `T_req`, so
//! the fleet of `N` agents sends at most about
//!
//! ```text
//!     rate <= N / (C/2 + T_req)
//! ```
//!
//! requests per second once every agent is past the cap, which the outage's second half is
//! (`b * 2^n` reaches `C` = 2 s after 5 failures, well within the first 5 s). A circuit breaker
//! that opens after `F` failures and then lets one probe through every `O` seconds lowers that
//! to about `N / O`; the check uses the backoff bound (it must hold even if a breaker were
//! slow to open) and reports the breaker estimate beside it. The rate is counted from the
//! gateway's request log, by the gateway's own arrival timestamps.
//!
//! Also checked: every agent's breaker opened (`agent_breaker_opened_total >= 1` on every agent,
//! from Prometheus), no agent restarted, and every task completed within a stated time after
//! the outage. Run with backoff disabled and the breaker out of reach
//! ([`super::ScenarioOptions::retry_storm_without_backoff`]), the same checks must fail: the
//! fleet then retries as fast as the gateway answers, far above the bound.

use std::collections::BTreeSet;
use std::time::Duration;

use agentfleet_protocol::env;

use super::Findings;
use super::common::{
    Books, SETTLE, ScenarioError, fixed_llm_latency, judge_ledger, prometheus_api, slow, task,
    unix_ms, wait_consumers,
};
use crate::runtime::{AgentSet, RuntimeEvent, Session};
use crate::wait::{Probe, until};

const AGENTS: u32 = 20;
const OUTAGE: Duration = Duration::from_secs(10);
const BACKOFF_BASE_MS: u64 = 100;
const BACKOFF_CAP_MS: u64 = 2000;
const BREAKER_FAILURES: u32 = 5;
const BREAKER_OPEN_MS: u64 = 3000;
/// Steps and per-step delay: ~5 s of work per task, so every agent is mid-task at the outage.
const STEPS: u32 = 30;
const STEP_DELAY_MS: u64 = 100;
const LATENCY_MS: u64 = 50;
/// Every task must be finished this long after the outage ends: the breaker's open period, one
/// capped backoff and the remaining work (at most all of it, ~5 s), with margin.
const RECOVERY_BOUND: Duration = Duration::from_secs(20);

pub async fn run<S: Session>(
    session: &S,
    findings: &mut Findings,
    without_backoff: bool,
) -> Result<(), ScenarioError> {
    let platform = session.platform();
    let prometheus = prometheus_api(platform)?;
    fixed_llm_latency(platform, LATENCY_MS).await?;
    let mut set = AgentSet::new("storm", 0..AGENTS)
        .env(env::BACKOFF_BASE_MS, BACKOFF_BASE_MS)
        .env(env::BACKOFF_CAP_MS, BACKOFF_CAP_MS)
        .env(env::BREAKER_OPEN_MS, BREAKER_OPEN_MS)
        .env(env::LLM_TIMEOUT_MS, 2000)
        // Only backoff and the breaker shape the load: no step may give up during the outage
        // (that would requeue and eventually dead-letter tasks) and no retry budget may bind.
        .env(env::LLM_MAX_ATTEMPTS, 1_000_000)
        .env(env::RETRY_BUDGET_RATIO, 1000)
        .env(env::RETRY_BUDGET_MIN_PER_SEC, 100_000);
    if without_backoff {
        findings.warnings.push(
            "backoff disabled and breaker threshold out of reach: this run must violate the bound"
                .into(),
        );
        set = set
            .env(env::BACKOFF_ENABLED, "false")
            .env(env::BREAKER_FAILURES, 1_000_000_000);
    } else {
        set = set
            .env(env::BACKOFF_ENABLED, "true")
            .env(env::BREAKER_FAILURES, BREAKER_FAILURES);
    }
    let mut books = Books::open(platform).await?;
    session.start_agents(&set).await?;
    wait_consumers(platform, AGENTS, Duration::from_secs(120)).await?;
    let tasks: Vec<_> = (0..AGENTS)
        .map(|n| task(&format!("storm-{n:02}"), STEPS, slow(STEP_DELAY_MS)))
        .collect();
    for t in &tasks {
        books.publish(platform, t).await?;
    }
    // Every agent busy (has had a call answered) before the outage starts.
    until(
        format!("all {AGENTS} agents calling the gateway"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            match platform.gateway.requests().await {
                Ok(log) => {
                    let calling: BTreeSet<u32> = log.iter().filter_map(|r| r.agent_index).collect();
                    if calling.len() as u32 >= AGENTS {
                        Probe::Ready(())
                    } else {
                        Probe::NotYet(format!("{} agents calling", calling.len()))
                    }
                }
                Err(e) => Probe::NotYet(e.to_string()),
            }
        },
    )
    .await?;

    let outage_start = unix_ms();
    platform.gateway.start_outage(OUTAGE, 503).await?;
    findings.event("outage-start", format!("503 for {} s", OUTAGE.as_secs()));
    findings.waiting_by_design += OUTAGE;
    let outage_end = outage_start + OUTAGE.as_millis() as u64;
    books
        .wait_accounted(OUTAGE + RECOVERY_BOUND + Duration::from_secs(40))
        .await?;
    findings.event("all-accounted", "");
    books.settle(SETTLE).await?;
    judge_ledger(findings, &books, platform).await?;

    // The rate in the outage's second half, from the gateway's log.
    let log = platform.gateway.requests_since(outage_start).await?;
    let half_start = outage_start + OUTAGE.as_millis() as u64 / 2;
    let in_half: Vec<_> = log
        .iter()
        .filter(|r| r.at_ms >= half_start && r.at_ms < outage_end)
        .collect();
    let failed_latencies: Vec<u64> = {
        let mut l: Vec<u64> = log
            .iter()
            .filter(|r| r.status == 503 && r.at_ms < outage_end)
            .map(|r| r.latency_ms)
            .collect();
        l.sort_unstable();
        l
    };
    let t_req = failed_latencies
        .get(failed_latencies.len() / 2)
        .copied()
        .unwrap_or(0) as f64
        / 1000.0;
    let half_secs = OUTAGE.as_secs_f64() / 2.0;
    let rate = in_half.len() as f64 / half_secs;
    let n = f64::from(AGENTS);
    let cap = BACKOFF_CAP_MS as f64 / 1000.0;
    let bound = n / (cap / 2.0 + t_req);
    let dropped = platform
        .gateway
        .metrics()
        .await
        .map(|m| m.value_or_zero("gateway_request_log_dropped_total", &[]))
        .unwrap_or(0.0);
    findings.figure("median request time during the outage (T_req)", t_req, "s");
    findings.figure(
        "breaker-limited estimate N/O_open",
        n / (BREAKER_OPEN_MS as f64 / 1000.0),
        "req/s",
    );
    findings.bounded(
        "fleet request rate in the outage's second half",
        rate,
        "req/s",
        &format!(
            "<= N/(C/2+T_req) = {AGENTS}/({:.1}+{t_req:.3}) = {bound:.2}",
            cap / 2.0
        ),
        rate <= bound,
    );
    if dropped > 0.0 {
        findings.warnings.push(format!("the gateway's request log dropped {dropped} records: the measured rate is a lower bound"));
    }

    // Every breaker opened (per agent, from Prometheus).
    let opened_query = format!(
        "max by (agent_index) (agent_breaker_opened_total{})",
        super::common::selector(session.platform(), &[("fleet", "storm")])
    );
    let count_open = |series: &[crate::services::prometheus::Series]| {
        series.iter().filter(|s| s.value >= 1.0).count()
    };
    let opened = until(
        "agent_breaker_opened_total >= 1 on every agent",
        Duration::from_secs(10),
        Duration::from_millis(500),
        || async {
            match prometheus.query(&opened_query).await {
                Ok(series) => {
                    let open = count_open(&series);
                    if open as u32 >= AGENTS {
                        Probe::Ready(open)
                    } else {
                        Probe::NotYet(format!("{open} agents"))
                    }
                }
                Err(e) => Probe::NotYet(e.to_string()),
            }
        },
    )
    .await;
    let opened = match opened {
        Ok(n) => n,
        // Not all within the wait: count what Prometheus has now, for the figure.
        Err(_timeout) => count_open(&prometheus.query(&opened_query).await?),
    };
    findings.bounded(
        "agents whose breaker opened",
        opened as f64,
        "agents",
        &format!("= {AGENTS}"),
        opened as u32 == AGENTS,
    );

    // No agent restarted or was replaced.
    let disruptions = session
        .event_history()
        .iter()
        .filter(|e| {
            matches!(
                e,
                RuntimeEvent::Exited { .. }
                    | RuntimeEvent::Restarted { .. }
                    | RuntimeEvent::Replaced { .. }
            )
        })
        .count();
    findings.bounded(
        "agent exits and restarts",
        disruptions as f64,
        "events",
        "= 0",
        disruptions == 0,
    );

    // Recovery: the last task finished within the bound after the outage.
    let last_finish = tasks
        .iter()
        .flat_map(|t| {
            books
                .ledger
                .results_for(&t.id)
                .iter()
                .map(|r| r.result.finished_at_ms)
        })
        .max()
        .unwrap_or(outage_end);
    let recovery = last_finish.saturating_sub(outage_end) as f64 / 1000.0;
    findings.bounded(
        "last task finished after the outage ended",
        recovery,
        "s",
        &format!("<= {}", RECOVERY_BOUND.as_secs()),
        recovery <= RECOVERY_BOUND.as_secs_f64(),
    );
    Ok(())
}
