//! Clause 3, durability: a checkpoint after every step, keyed by task id (`<task id>.json` in
//! `AGENT_CHECKPOINT_DIR`), so a SIGKILL loses at most the step in flight and the redelivered
//! task resumes; a corrupt checkpoint is reported and the task starts over, without a crash.
//!
//! The kill lands at a known point: the gateway hangs the task's LLM call after a number of
//! answered steps, so the agent is frozen there until it is killed. A kill timed against the
//! agent's progress instead (after N calls, with a delay per step) raced a loaded machine: the
//! agent finished the task before the SIGKILL arrived and the check blamed the image.

use std::time::Duration;

use agentfleet_protocol::TaskFaults;
use agentfleet_protocol::gateway::FaultProfile;

use crate::agents::AgentTemplate;
use crate::stack::Stack;

use crate::conform::check::{
    CheckResult, require, task, the_result, wait_consuming, wait_done, wait_held,
};

/// Steps of the task killed mid-way.
const STEPS: u32 = 6;
/// Steps answered before the kill: the gateway holds the next step's LLM call open, so the
/// agent is frozen between step 3's checkpoint and step 4's answer when the SIGKILL lands,
/// whatever the machine's load.
const STEPS_BEFORE_KILL: u32 = 3;

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

    // SIGKILL while step 4's LLM call hangs; step 3's checkpoint must be on disk and the
    // redelivery must resume from it.
    let killed = task("durability-killed", STEPS, TaskFaults::default());
    let file = format!("{}.json", killed.id);
    let gateway = stack.gateway.admin().clone();
    gateway
        .set_faults(&FaultProfile::hanging(
            [killed.id.as_str()],
            STEPS_BEFORE_KILL,
        ))
        .await?;
    stack.publish(&killed).await?;
    wait_held(&stack, &[killed.id.as_str()], STEPS_BEFORE_KILL).await?;
    agent.container().kill("SIGKILL").await?;
    agent.container().wait_exit(Duration::from_secs(15)).await?;
    let files = stack.checkpoints.list(&stack.scope).await?;
    require(files.contains(&file), || {
        format!(
            "SIGKILL after {STEPS_BEFORE_KILL} answered steps, while step {}'s LLM call hung, left \
             no {file} in the checkpoint volume (it holds {files:?}): the agent does not \
             checkpoint after every step",
            STEPS_BEFORE_KILL + 1
        )
    })?;
    // Release the hang (the held call is answered to nobody) before the redelivery runs.
    gateway.set_faults(&FaultProfile::default()).await?;
    agent.container().start().await?;
    wait_done(&mut stack, "the SIGKILLed task after a restart").await?;
    let r = the_result(&stack, &killed.id)?;
    require(r.resumed_from_step == STEPS_BEFORE_KILL, || {
        format!(
            "killed after {STEPS_BEFORE_KILL} answered steps (step {} never got its answer) but \
             resumed from step {}: {}; {r:?}",
            STEPS_BEFORE_KILL + 1,
            r.resumed_from_step,
            if r.resumed_from_step < STEPS_BEFORE_KILL {
                "steps done before the kill were lost"
            } else {
                "a step without an answer was counted as done"
            }
        )
    })?;
    require(r.steps == STEPS, || format!("{r:?}"))?;
    evidence.push(format!(
        "SIGKILL while step {} of {STEPS} hung at the gateway: {file} on disk, resumed from step \
         {} (attempt {})",
        STEPS_BEFORE_KILL + 1,
        r.resumed_from_step,
        r.attempt
    ));
    stack.teardown().await?;
    Ok(evidence)
}
