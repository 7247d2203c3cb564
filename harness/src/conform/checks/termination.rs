//! Clause 4, termination: on SIGTERM the agent stops taking work, checkpoints and exits within
//! the grace period: 0 when it was idle, non-zero when work was left undone (exit 0 would mark
//! an Indexed Job's index complete with its work undone: the article's `sys.exit(0)` bug). The
//! undone task must then be finished by another agent: nothing was acked early.

use std::time::{Duration, Instant};

use agentfleet_protocol::env;
use agentfleet_protocol::gateway::FaultProfile;

use crate::agents::AgentTemplate;
use crate::stack::Stack;

use crate::conform::check::{
    CheckResult, delayed, require, task, the_result, wait_consuming, wait_done, wait_held,
};

/// `docker stop` grace: the pod's `terminationGracePeriodSeconds`.
const GRACE: Duration = Duration::from_secs(10);
/// What the agent is told it may use of it (below the grace, as the manifests do).
const AGENT_STOP_GRACE_MS: u64 = 5_000;
/// Work in each step after its answer: the step in flight at the SIGTERM takes this long to
/// finish, well inside the agent's stop grace.
const STEP_DELAY_MS: u64 = 1_500;

pub async fn check(image: &str) -> CheckResult {
    let mut stack = Stack::up("conform-termination").await?;
    let launcher = stack.launcher(
        AgentTemplate::new(image)
            .stop_grace(GRACE)
            .env(env::STOP_GRACE_MS, AGENT_STOP_GRACE_MS),
    );
    let mut evidence = Vec::new();

    // Idle: exit 0, promptly.
    let idle = launcher.launch(&stack.scope, 0).await?;
    wait_consuming(&stack, 1).await?;
    let started = Instant::now();
    idle.container().stop(GRACE).await?;
    let took = started.elapsed();
    let status = idle.container().wait_exit(Duration::from_secs(5)).await?;
    let logs = idle.container().log_tail(10).await;
    require(status.exit_code == Some(0), || {
        format!("SIGTERM while idle must exit 0 (nothing is undone): {status}; logs:\n{logs}")
    })?;
    require(took < GRACE, || {
        format!("SIGTERM while idle: exit took {took:?}, the whole {GRACE:?} grace (SIGKILLed)")
    })?;
    evidence.push(format!("idle: exit 0 after {} ms", took.as_millis()));

    // Busy: non-zero, within the grace, and the task survives. The agent is frozen inside the
    // task (its second LLM call hangs) when the SIGTERM lands; then the held call is answered
    // (the step in flight may finish) while every later call of the task hangs, so the task
    // cannot be completed before the agent leaves, however loaded the machine is.
    let busy = launcher.launch(&stack.scope, 1).await?;
    wait_consuming(&stack, 1).await?;
    let t = task("termination-busy", 5, delayed(STEP_DELAY_MS));
    let gateway = stack.gateway.admin().clone();
    gateway
        .set_faults(&FaultProfile::hanging([t.id.as_str()], 1))
        .await?;
    stack.publish(&t).await?;
    wait_held(&stack, &[t.id.as_str()], 1).await?;
    // `docker stop` in two parts, so the hang can change between the SIGTERM and the exit:
    // SIGTERM, then SIGKILL if the agent is still running at the grace deadline.
    let started = Instant::now();
    busy.container().kill("SIGTERM").await?;
    gateway
        .set_faults(&FaultProfile::hanging([t.id.as_str()], 0))
        .await?;
    let status = busy.container().wait_exit_or_kill(GRACE).await?;
    let took = started.elapsed();
    let logs = busy.container().log_tail(10).await;
    require(status.exit_code.is_some_and(|c| c != 0), || {
        format!(
            "SIGTERM in the middle of {}: the agent {status}; exit 0 with the task undone marks an \
             Indexed Job's index complete (the article's sys.exit(0) bug); logs:\n{logs}",
            t.id
        )
    })?;
    require(took < GRACE, || {
        format!("SIGTERM mid-task: exit took {took:?}, the whole {GRACE:?} grace (SIGKILLed)")
    })?;
    gateway.set_faults(&FaultProfile::default()).await?;
    let replacement = launcher.launch(&stack.scope, 2).await?;
    wait_done(
        &mut stack,
        "the task interrupted by SIGTERM, on a replacement agent",
    )
    .await?;
    let r = the_result(&stack, &t.id)?;
    require(r.agent_index == replacement.index(), || {
        format!(
            "the interrupted task was finished by agent {}, not the replacement: {r:?}",
            r.agent_index
        )
    })?;
    evidence.push(format!(
        "busy: exit {} after {} ms (grace {} s); the replacement finished {} from step {}",
        status.exit_code.unwrap_or_default(),
        took.as_millis(),
        GRACE.as_secs(),
        t.id,
        r.resumed_from_step
    ));
    stack.teardown().await?;
    Ok(evidence)
}
