//! Clause 3, durability: a checkpoint after every step, keyed by task id (`<task id>.json` in
//! `AGENT_CHECKPOINT_DIR`), so a SIGKILL loses at most the step in flight and the redelivered
//! task resumes; a corrupt checkpoint is reported and the task starts over, without a crash.

use std::time::Duration;

use agentfleet_protocol::TaskFaults;

use crate::agents::AgentTemplate;
use crate::stack::Stack;

use crate::conform::check::{
    CheckResult, delayed, require, successful_calls, task, the_result, wait_consuming, wait_done,
    wait_gateway_calls,
};

/// Steps of the task killed mid-way, and the pause in each (so the kill lands between steps'
/// checkpoints deterministically).
const STEPS: u32 = 6;
const STEP_DELAY_MS: u64 = 400;
/// Successful gateway calls seen before the kill: at least this many minus one steps are done.
const CALLS_BEFORE_KILL: usize = 3;

pub async fn check(image: &str) -> CheckResult {
    let mut stack = Stack::up("conform-durability").await?;
    let mut evidence = Vec::new();

    // A corrupt checkpoint waiting for its task.
    let corrupt = task("durability-corrupt", 2, TaskFaults::default());
    let planted = format!("{}.json", corrupt.id);
    stack
        .checkpoints
        .write(
            &stack.scope,
            &planted,
            "{\"task_id\": \"durability-corrupt\", trailing garbage",
        )
        .await?;
    let agent = stack
        .launcher(AgentTemplate::new(image))
        .launch(&stack.scope, 0)
        .await?;
    wait_consuming(&stack, 1).await?;
    stack.publish(&corrupt).await?;
    wait_done(&mut stack, "a task whose checkpoint is corrupt").await?;
    let r = the_result(&stack, &corrupt.id)?;
    require(r.resumed_from_step == 0 && r.steps == 2, || {
        format!("a corrupt checkpoint must restart the task from step 0: {r:?}")
    })?;
    let status = agent.container().status().await?;
    require(status.running && status.restart_count == 0, || {
        format!("a corrupt checkpoint must not crash the agent: {status}")
    })?;
    evidence.push("corrupt checkpoint: task restarted from step 0, agent kept running".to_owned());

    // SIGKILL after a few steps; the checkpoint must be on disk and the redelivery resume it.
    let killed = task("durability-killed", STEPS, delayed(STEP_DELAY_MS));
    let file = format!("{}.json", killed.id);
    stack.publish(&killed).await?;
    wait_gateway_calls(
        &stack,
        &killed.id,
        CALLS_BEFORE_KILL,
        Duration::from_secs(20),
    )
    .await?;
    agent.container().kill("SIGKILL").await?;
    agent.container().wait_exit(Duration::from_secs(15)).await?;
    let log = stack.gateway.admin().requests().await?;
    let calls_before = successful_calls(&log, &killed.id);
    let steps_done = calls_before.saturating_sub(1);
    let files = stack.checkpoints.list(&stack.scope).await?;
    require(files.contains(&file), || {
        format!(
            "SIGKILL after {calls_before} answered LLM calls ({steps_done}+ steps done) left no \
             {file} in the checkpoint volume (it holds {files:?}): the agent does not checkpoint \
             after every step"
        )
    })?;
    agent.container().start().await?;
    wait_done(&mut stack, "the SIGKILLed task after a restart").await?;
    let r = the_result(&stack, &killed.id)?;
    require(r.resumed_from_step as usize >= steps_done.max(1), || {
        format!(
            "killed after {calls_before} answered LLM calls but resumed from step {}: at least \
             {steps_done} steps were lost; {r:?}",
            r.resumed_from_step
        )
    })?;
    require(r.steps == STEPS, || format!("{r:?}"))?;
    evidence.push(format!(
        "SIGKILL after {calls_before} LLM calls: {file} on disk, resumed from step {} of {STEPS} \
         (attempt {})",
        r.resumed_from_step, r.attempt
    ));
    stack.teardown().await?;
    Ok(evidence)
}
