//! oom: a task allocates past the agent's memory limit at step k on its first delivery only.
//! The runtime must report the agent OOMKilled (exit 137), the controller must replace it, and
//! the task must resume at step k (its checkpoint holds k-1 steps, not 0) and finish exactly
//! once. A second task allocates on every delivery: it must be dead-lettered after the queue's
//! delivery limit, while the other tasks finish unaffected.

use std::time::Duration;

use agentfleet_protocol::TaskFaults;

use super::Findings;
use super::common::{
    Books, SETTLE, ScenarioError, judge_ledger, slow, task, wait_consumers, wait_event,
};
use crate::runtime::{AgentSet, RuntimeEvent, Session};

const AGENTS: u32 = 4;
/// The once-OOMing task's steps and the step that allocates.
const STEPS: u32 = 5;
const OOM_STEP: u32 = 3;
const OTHER_TASKS: u32 = 6;
/// Far above the reference template's 256 MiB limit.
const OOM_MIB: u64 = 1024;

pub async fn run<S: Session>(session: &S, findings: &mut Findings) -> Result<(), ScenarioError> {
    let platform = session.platform();
    let limit_mib = session
        .template()
        .memory_limit_bytes
        .map(|b| b / (1024 * 1024));
    findings.figure("memory limit", limit_mib.unwrap_or(0) as f64, "MiB");
    if limit_mib.is_none() {
        findings
            .reasons
            .push("the pod template sets no memory limit: nothing can be OOM-killed".into());
        return Ok(());
    }
    let mut books = Books::open(platform).await?;
    session
        .start_agents(&AgentSet::new("oom", 0..AGENTS))
        .await?;
    wait_consumers(platform, AGENTS, Duration::from_secs(60)).await?;

    let once = task(
        "oom-once",
        STEPS,
        TaskFaults {
            oom_at_step: Some(OOM_STEP),
            oom_mib: Some(OOM_MIB),
            oom_attempts: Some(1),
            step_delay_ms: Some(200),
            ..TaskFaults::default()
        },
    );
    let always = task(
        "oom-always",
        2,
        TaskFaults {
            oom_at_step: Some(1),
            oom_mib: Some(OOM_MIB),
            ..TaskFaults::default()
        },
    );
    books.publish(platform, &once).await?;
    let others: Vec<_> = (0..OTHER_TASKS)
        .map(|n| task(&format!("oom-other-{n}"), 3, slow(100)))
        .collect();
    for t in &others {
        books.publish(platform, t).await?;
    }
    books.publish(platform, &always).await?;
    books.wait_accounted(Duration::from_secs(180)).await?;
    books.settle(SETTLE).await?;
    judge_ledger(findings, &books, platform).await?;

    // What the runtime saw: OOM kills (137 + OOMKilled) and replacements for them.
    // The controller reacts to the last kill concurrently with the dead letter's arrival:
    // wait (on events) until every OOM-killed instance is replaced, restarted or given up.
    let replayed = session.event_history().len();
    let mut events = session.events();
    let (mut seen, mut pending) = (0usize, Vec::<crate::runtime::AgentRef>::new());
    let settled = wait_event(
        &mut events,
        "a replacement for every OOM-killed agent",
        Duration::from_secs(30),
        |e| {
            seen += 1;
            match e {
                RuntimeEvent::Exited {
                    agent,
                    oom_killed: true,
                    ..
                } => pending.push(agent.clone()),
                RuntimeEvent::Replaced { failed, .. }
                | RuntimeEvent::Restarted { agent: failed } => pending.retain(|a| a != failed),
                RuntimeEvent::IndexFailed { index, .. } => pending.retain(|a| a.index != *index),
                _ => {}
            }
            (seen >= replayed && pending.is_empty()).then_some(())
        },
    )
    .await;
    if let Err(e) = settled {
        findings.reasons.push(e.to_string());
    }
    let history = session.event_history();
    let oom_exits: Vec<_> = history
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::Exited {
                agent,
                exit_code,
                oom_killed: true,
            } => Some((agent.clone(), *exit_code)),
            _ => None,
        })
        .collect();
    findings.bounded(
        "OOMKilled exits observed",
        oom_exits.len() as f64,
        "exits",
        ">= 2",
        oom_exits.len() >= 2,
    );
    findings.check(oom_exits.iter().all(|(_, code)| *code == 137), || {
        format!("OOM kills with exit codes other than 137: {oom_exits:?}")
    });
    let replaced = oom_exits
        .iter()
        .filter(|(agent, _)| history.iter().any(|e| matches!(e, RuntimeEvent::Replaced { failed, .. } | RuntimeEvent::Restarted { agent: failed } if failed == agent)))
        .count();
    findings.bounded(
        "OOM-killed agents replaced or restarted",
        replaced as f64,
        "agents",
        &format!("= {}", oom_exits.len()),
        replaced == oom_exits.len() || failed_index_explains(&history, &oom_exits),
    );

    // The once-OOMing task: one result, resumed from its checkpoint at step k.
    match books.ledger.single_result(&once.id) {
        Ok(record) => {
            let r = &record.result;
            findings.bounded(
                "oom-once resumed from step",
                f64::from(r.resumed_from_step),
                "steps done",
                &format!("= {} (checkpoint before step {OOM_STEP})", OOM_STEP - 1),
                r.resumed_from_step == OOM_STEP - 1,
            );
            findings.bounded(
                "oom-once delivery attempt that finished",
                f64::from(r.attempt),
                "attempt",
                ">= 2",
                r.attempt >= 2,
            );
            findings.check(r.steps == STEPS, || {
                format!("oom-once finished with {} steps, expected {STEPS}", r.steps)
            });
        }
        Err(e) => findings.reasons.push(format!("oom-once: {e}")),
    }
    // The always-OOMing task: dead-lettered, never finished.
    let dead = books.ledger.dead_letters_for(&always.id).len();
    findings.bounded(
        "oom-always dead letters",
        dead as f64,
        "messages",
        "= 1",
        dead == 1,
    );
    findings.check(books.ledger.results_for(&always.id).is_empty(), || {
        "oom-always has a result although every delivery OOMs".into()
    });
    // The others: exactly one result each.
    let clean = others
        .iter()
        .filter(|t| books.ledger.single_result(&t.id).is_ok())
        .count();
    findings.bounded(
        "other tasks finished exactly once",
        clean as f64,
        "tasks",
        &format!("= {OTHER_TASKS}"),
        clean == others.len(),
    );
    Ok(())
}

/// True when every OOM-killed agent without a replacement belongs to an index the controller
/// gave up on (its backoff limit spent), which is the Job's documented behaviour.
fn failed_index_explains(
    history: &[RuntimeEvent],
    oom_exits: &[(crate::runtime::AgentRef, i64)],
) -> bool {
    oom_exits.iter().all(|(agent, _)| {
        history.iter().any(|e| match e {
            RuntimeEvent::Replaced { failed, .. } | RuntimeEvent::Restarted { agent: failed } => {
                failed == agent
            }
            RuntimeEvent::IndexFailed { index, .. } => *index == agent.index,
            _ => false,
        })
    })
}
