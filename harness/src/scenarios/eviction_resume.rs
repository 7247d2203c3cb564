//! eviction-resume: an agent stopped mid-task with the template's grace period (SIGTERM, then
//! SIGKILL at the deadline; on Kubernetes, the Eviction API) checkpoints, exits non-zero (143:
//! work left unfinished, so an Indexed Job does not count the index complete), and a
//! replacement resumes the task at or after the step reached. An agent that ignores SIGTERM
//! (`AGENT_TEST_IGNORE_SIGTERM=true`) is killed at the grace deadline, and its task still
//! completes from the last per-step checkpoint.

use std::time::Duration;

use agentfleet_protocol::env;
use tokio::time::Instant;

use super::Findings;
use super::common::{
    Books, SETTLE, ScenarioError, judge_ledger, slow, task, wait_consumers, wait_event, wait_exit,
    wait_task_calls,
};
use crate::runtime::{AgentRef, AgentSet, EvictOutcome, RuntimeEvent, Session};

/// Steps and per-step delay of the gracefully stopped task.
const GRACEFUL_STEPS: u32 = 8;
/// The stubborn agent keeps working through the whole grace period, so its task must be
/// longer than that: 1 step per second, more steps than the grace has seconds (checked below).
const STEP_DELAY_MS: u64 = 1000;
/// Stop once this many steps were answered.
const STOP_AFTER_CALLS: usize = 3;

pub async fn run<S: Session>(session: &S, findings: &mut Findings) -> Result<(), ScenarioError> {
    let platform = session.platform();
    let grace = session.template().grace;
    findings.figure(
        "grace period (terminationGracePeriodSeconds)",
        grace.as_secs_f64(),
        "s",
    );
    let mut books = Books::open(platform).await?;
    let mut events = session.events();

    // Part 1: a well-behaved agent.
    let graceful = task("evict-graceful", GRACEFUL_STEPS, slow(STEP_DELAY_MS));
    let agents = session
        .start_agents(&AgentSet::new("graceful", [0]))
        .await?;
    wait_consumers(platform, 1, Duration::from_secs(60)).await?;
    books.publish(platform, &graceful).await?;
    let answered = wait_task_calls(
        platform,
        &graceful.id,
        STOP_AFTER_CALLS,
        Duration::from_secs(30),
    )
    .await?;
    let stopped_at = Instant::now();
    let outcome = session.stop(&agents[0], None).await?;
    findings.check(outcome == EvictOutcome::Evicted, || {
        format!("stop of {} was not granted: {outcome:?}", agents[0].name)
    });
    let (code, _) = wait_exit(&mut events, &agents[0], grace + Duration::from_secs(10)).await?;
    let took = stopped_at.elapsed();
    findings.bounded(
        "graceful agent exit code",
        code as f64,
        "",
        "= 143",
        code == 143,
    );
    findings.bounded(
        "graceful agent stop time",
        took.as_secs_f64(),
        "s",
        &format!("< {} (grace)", grace.as_secs()),
        took < grace,
    );
    let replacement = wait_replacement(&mut events, &agents[0]).await?;
    books.wait_accounted(Duration::from_secs(60)).await?;
    check_resume(findings, &books, &graceful.id, answered, "graceful");

    // The replacement is idle now; stop it so the stubborn agent gets the next task. Idle, it
    // must exit 0 (nothing unfinished), and so is not replaced.
    session.stop(&replacement, None).await?;
    let (idle_code, _) =
        wait_exit(&mut events, &replacement, grace + Duration::from_secs(10)).await?;
    findings.bounded(
        "idle agent exit code on SIGTERM",
        idle_code as f64,
        "",
        "= 0",
        idle_code == 0,
    );

    // Part 2: an agent that ignores SIGTERM, killed at the grace deadline.
    let steps = u32::try_from(grace.as_secs())
        .unwrap_or(u32::MAX)
        .saturating_mul(1000)
        .div_ceil(STEP_DELAY_MS as u32)
        + 10;
    let stubborn_task = task("evict-stubborn", steps, slow(STEP_DELAY_MS));
    let stubborn = session
        .start_agents(&AgentSet::new("stubborn", [1]).env(env::TEST_IGNORE_SIGTERM, "true"))
        .await?;
    wait_consumers(platform, 1, Duration::from_secs(60)).await?;
    books.publish(platform, &stubborn_task).await?;
    wait_task_calls(
        platform,
        &stubborn_task.id,
        STOP_AFTER_CALLS,
        Duration::from_secs(30),
    )
    .await?;
    let stopped_at = Instant::now();
    session.stop(&stubborn[0], None).await?;
    let (code, _) = wait_exit(&mut events, &stubborn[0], grace + Duration::from_secs(15)).await?;
    let took = stopped_at.elapsed();
    findings.waiting_by_design += took;
    findings.bounded(
        "SIGTERM-ignoring agent exit code",
        code as f64,
        "",
        "= 137 (SIGKILL)",
        code == 137,
    );
    findings.bounded(
        "SIGTERM-ignoring agent killed after",
        took.as_secs_f64(),
        "s",
        &format!(
            "within [{}, {}] s",
            grace.as_secs().saturating_sub(1),
            grace.as_secs() + 5
        ),
        took + Duration::from_secs(1) >= grace && took <= grace + Duration::from_secs(5),
    );
    // Steps answered before the kill: the checkpoint holds at least all but the one in flight.
    let reached =
        crate::request_log::of_task(&platform.gateway.requests().await?, &stubborn_task.id).len();
    wait_replacement(&mut events, &stubborn[0]).await?;
    books.wait_accounted(Duration::from_secs(90)).await?;
    check_resume(findings, &books, &stubborn_task.id, reached, "stubborn");
    books.settle(SETTLE).await?;
    judge_ledger(findings, &books, platform).await?;
    Ok(())
}

async fn wait_replacement(
    events: &mut futures::stream::BoxStream<'static, RuntimeEvent>,
    agent: &AgentRef,
) -> Result<AgentRef, ScenarioError> {
    wait_event(
        events,
        &format!("a replacement for {}", agent.name),
        Duration::from_secs(30),
        |e| match e {
            RuntimeEvent::Replaced {
                failed,
                replacement,
            } if failed == agent => Some(replacement.clone()),
            _ => None,
        },
    )
    .await
}

/// The task finished exactly once, by a later delivery, resumed at or after the step reached
/// when its agent was stopped (all answered steps but the one in flight).
fn check_resume(findings: &mut Findings, books: &Books, id: &str, answered: usize, label: &str) {
    let reached = u32::try_from(answered.saturating_sub(1)).unwrap_or(u32::MAX);
    match books.ledger.single_result(id) {
        Ok(record) => {
            let r = &record.result;
            findings.bounded(
                &format!("{label} task resumed from step"),
                f64::from(r.resumed_from_step),
                "steps done",
                &format!(
                    ">= {reached} (steps answered before the stop, minus the one in flight), > 0"
                ),
                r.resumed_from_step >= reached && r.resumed_from_step > 0,
            );
            findings.check(r.attempt >= 2, || {
                format!(
                    "{id} finished on attempt {}, expected a redelivery",
                    r.attempt
                )
            });
        }
        Err(e) => findings.reasons.push(format!("{label}: {e}")),
    }
}
