//! Clause 5, politeness, judged from the gateway's request log (what the agent really sent, not
//! what it says it did):
//! - during an 8 s outage (503, no `Retry-After`) one agent sends at most 2 calls per second of
//!   outage on average, and fewer in the outage's second half than in its first (backoff grows,
//!   or a breaker opens); without backoff an agent retries as fast as the gateway answers;
//! - after the outage the task completes (the agent recovers on its own);
//! - after a 429 with `Retry-After: 1`, the agent's next call comes at least 1 s later.
//!
//! The image's own backoff and breaker settings are used. Only the retry budget is widened
//! (`AGENT_RETRY_BUDGET_RATIO=1`, `AGENT_RETRY_BUDGET_MIN_PER_SEC=100`): a budget paces one
//! agent to its floor rate whatever its backoff, so with it in place an agent without backoff
//! would look polite here; the budget is the fleet's guard, backoff the agent's.

use std::time::{SystemTime, UNIX_EPOCH};

use agentfleet_protocol::gateway::{FaultProfile, Outage};
use agentfleet_protocol::{TaskFaults, env};

use crate::agents::AgentTemplate;
use crate::request_log;
use crate::stack::Stack;

use crate::conform::check::{CheckError, CheckResult, require, task, wait_consuming, wait_done};

const OUTAGE_MS: u64 = 8_000;
/// Calls per second of outage one polite agent stays under, on average.
const MAX_CALLS_PER_SEC: u64 = 2;
const RETRY_AFTER_SECS: u64 = 1;
const RETRY_AFTER_WINDOW_MS: u64 = 3_000;

pub async fn check(image: &str) -> CheckResult {
    let mut stack = Stack::up("conform-politeness").await?;
    let template = AgentTemplate::new(image)
        .env(env::RETRY_BUDGET_RATIO, 1)
        .env(env::RETRY_BUDGET_MIN_PER_SEC, 100);
    let _agent = stack.launcher(template).launch(&stack.scope, 0).await?;
    wait_consuming(&stack, 1).await?;
    let admin = stack.gateway.admin().clone();
    let mut evidence = Vec::new();

    // Outage.
    let outage_start_ms = now_ms();
    admin
        .set_faults(&FaultProfile {
            outages: vec![Outage {
                start_ms: 0,
                duration_ms: OUTAGE_MS,
                status: 503,
            }],
            ..FaultProfile::default()
        })
        .await?;
    let outage_task = task("politeness-outage", 1, TaskFaults::default());
    stack.publish(&outage_task).await?;
    wait_done(
        &mut stack,
        "a task started in a gateway outage, after the outage",
    )
    .await?;
    let log = admin.requests().await?;
    let calls = request_log::of_task(&log, &outage_task.id);
    let outage_end_ms = outage_start_ms + OUTAGE_MS;
    let during: Vec<_> = calls
        .iter()
        .copied()
        .filter(|c| c.at_ms < outage_end_ms)
        .collect();
    let half = outage_start_ms + OUTAGE_MS / 2;
    let first_half = request_log::count_between(&during, 0, half);
    let second_half = during.len() - first_half;
    let gaps = request_log::gaps_ms(&during);
    let shown = format!(
        "{} calls in the {OUTAGE_MS} ms outage ({first_half} in its first half, {second_half} \
         in its second); first gaps (ms): {:?}",
        during.len(),
        &gaps[..gaps.len().min(12)]
    );
    let bound = (MAX_CALLS_PER_SEC * OUTAGE_MS / 1000) as usize;
    require(during.len() <= bound, || {
        format!("retry storm: more than {bound} calls (2/s): {shown}")
    })?;
    require(second_half < first_half || during.len() <= 2, || {
        format!(
            "the call rate did not fall during the outage (no growing backoff, no breaker): {shown}"
        )
    })?;
    require(
        calls
            .iter()
            .any(|c| c.status == 200 && c.at_ms >= outage_end_ms),
        || format!("no successful call after the outage: {shown}"),
    )?;
    evidence.push(shown);

    // Retry-After.
    admin
        .set_faults(&FaultProfile {
            retry_after_secs: Some(RETRY_AFTER_SECS),
            outages: vec![Outage {
                start_ms: 0,
                duration_ms: RETRY_AFTER_WINDOW_MS,
                status: 429,
            }],
            ..FaultProfile::default()
        })
        .await?;
    let throttled = task("politeness-retry-after", 1, TaskFaults::default());
    stack.publish(&throttled).await?;
    wait_done(&mut stack, "a task throttled with 429 and Retry-After").await?;
    let log = admin.requests().await?;
    let calls: Vec<_> = request_log::of_task(&log, &throttled.id)
        .into_iter()
        .cloned()
        .collect();
    let check = request_log::check_retry_after(&calls);
    require(check.violations.is_empty(), || {
        let list: Vec<String> = check.violations.iter().map(ToString::to_string).collect();
        format!("Retry-After not honoured: {}", list.join("; "))
    })?;
    if check.judged == 0 {
        return Err(CheckError::Harness(format!(
            "no 429 with Retry-After was followed by another call ({} calls): the Retry-After \
             check proved nothing",
            calls.len()
        )));
    }
    evidence.push(format!(
        "Retry-After {RETRY_AFTER_SECS} s honoured on {} throttled answer(s)",
        check.judged
    ));
    stack.teardown().await?;
    Ok(evidence)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
