//! Clause 2, work: manual ack, prefetch 1, the result published (with confirms) before the
//! ack, the task id in the result.
//!
//! Observed from outside: while the agent works on the first of three tasks the other two stay
//! *ready* on the queue (prefetch 1; a larger prefetch would hold them unacked); a SIGKILL in
//! the middle of a task loses nothing: the task is redelivered (manual ack: with auto-ack it
//! would be gone) and every task gets a result whose `task_id` and AMQP `message_id` are the
//! task's id. That no task is lost across the kill is also the evidence for "confirm before
//! ack": an agent that acked first and published after could lose the result in between.

use std::time::Duration;

use agentfleet_protocol::TaskFaults;
use agentfleet_protocol::gateway::FaultProfile;

use crate::agents::AgentTemplate;
use crate::stack::Stack;
use crate::wait::{Probe, until};

use crate::conform::check::{
    CheckError, CheckResult, QUIET, require, task, violation, wait_consuming, wait_done, wait_held,
};

/// Steps of each task; the second step's LLM call hangs until the kill.
const STEPS: u32 = 4;

pub async fn check(image: &str) -> CheckResult {
    let mut stack = Stack::up("conform-work").await?;
    let agent = stack
        .launcher(AgentTemplate::new(image))
        .launch(&stack.scope, 0)
        .await?;
    wait_consuming(&stack, 1).await?;
    let tasks: Vec<_> = (1..=3)
        .map(|n| task(&format!("work-{n}"), STEPS, TaskFaults::default()))
        .collect();
    let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    // Whichever task the agent takes first, it is frozen inside it: the gateway answers the
    // first step and holds the second step's call open.
    let gateway = stack.gateway.admin().clone();
    gateway
        .set_faults(&FaultProfile::hanging(ids.iter().copied(), 1))
        .await?;
    for t in &tasks {
        stack.publish(t).await?;
    }
    let mut evidence = Vec::new();

    // Prefetch 1: once the agent is inside a task, the other two are still ready.
    let in_flight = wait_held(&stack, &ids, 1).await?;
    let queue = stack.topology.task_queue.clone();
    let ready = until(
        format!("2 ready messages on {queue} while the agent works on {in_flight}"),
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async {
            match stack.queue.depth(&queue).await {
                Ok(d) if d.ready == 2 => Probe::Ready(d.ready),
                Ok(d) => Probe::NotYet(format!("{} ready", d.ready)),
                Err(e) => Probe::NotYet(e.to_string()),
            }
        },
    )
    .await
    .map_err(|e| {
        violation(format!(
            "prefetch 1: with one task in progress the other two must stay ready on the queue; {e}"
        ))
    })?;
    evidence.push(format!(
        "{ready} of 3 tasks ready while the agent worked on {in_flight}: prefetch 1"
    ));

    // SIGKILL in the middle of the task, release the hang, restart in place (restartPolicy
    // OnFailure).
    agent.container().kill("SIGKILL").await?;
    agent.container().wait_exit(Duration::from_secs(15)).await?;
    gateway.set_faults(&FaultProfile::default()).await?;
    agent.container().start().await?;
    wait_done(&mut stack, "three tasks across a SIGKILL of their agent").await?;
    let verdict = stack
        .settle(QUIET)
        .await
        .map_err(|e| CheckError::Harness(e.to_string()))?;
    require(
        verdict.lost.is_empty() && verdict.undecodable.is_empty() && verdict.unexpected.is_empty(),
        || format!("tasks lost or results unreadable across a SIGKILL: {verdict}"),
    )?;
    for t in &tasks {
        for record in stack.ledger.results_for(&t.id) {
            require(record.result.task_id == t.id, || {
                format!(
                    "a result for {} carries task_id {:?}",
                    t.id, record.result.task_id
                )
            })?;
            require(record.message_id.as_deref() == Some(t.id.as_str()), || {
                format!(
                    "a result for {} carries AMQP message_id {:?}, not the task id",
                    t.id, record.message_id
                )
            })?;
        }
    }
    let redelivered = stack.ledger.results_for(&in_flight);
    require(redelivered.iter().any(|r| r.result.attempt >= 2), || {
        format!(
            "{in_flight} was in progress at the SIGKILL but its result says attempt {:?}: \
             was it acked before the work was done?",
            redelivered
                .iter()
                .map(|r| r.result.attempt)
                .collect::<Vec<_>>()
        )
    })?;
    evidence.push(format!(
        "SIGKILL mid-task: {in_flight} redelivered and finished (manual ack); {verdict}"
    ));
    evidence.push("every result carries its task id in task_id and message_id".to_owned());
    stack.teardown().await?;
    Ok(evidence)
}
