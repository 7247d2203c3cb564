//! Clause 1, identity: the agent takes its index from `AGENT_INDEX`, else from
//! `JOB_COMPLETION_INDEX` (what Kubernetes sets for Indexed Jobs), and says so in its results
//! and in the `x-agent-index` header of its gateway calls.

use std::time::Duration;

use agentfleet_protocol::{TaskFaults, env};

use crate::agents::AgentTemplate;
use crate::request_log;
use crate::stack::Stack;

use crate::conform::check::{CheckResult, require, task, the_result, wait_done};

const GRACE: Duration = Duration::from_secs(10);

pub async fn check(image: &str) -> CheckResult {
    let mut stack = Stack::up("conform-identity").await?;
    let launcher = stack.launcher(AgentTemplate::new(image));
    let mut evidence = Vec::new();

    // AGENT_INDEX=3.
    let first = launcher.launch(&stack.scope, 3).await?;
    let t = task("identity-agent-index", 1, TaskFaults::default());
    stack.publish(&t).await?;
    wait_done(&mut stack, "a task for the agent with AGENT_INDEX=3").await?;
    let r = the_result(&stack, &t.id)?;
    require(r.agent_index == 3, || {
        format!(
            "AGENT_INDEX=3 but the result says agent_index {}",
            r.agent_index
        )
    })?;
    let log = stack.gateway.admin().requests().await?;
    let headers: Vec<Option<u32>> = request_log::of_task(&log, &t.id)
        .iter()
        .map(|c| c.agent_index)
        .collect();
    require(
        !headers.is_empty() && headers.iter().all(|h| *h == Some(3)),
        || format!("AGENT_INDEX=3 but the gateway saw x-agent-index {headers:?}"),
    )?;
    evidence.push(format!(
        "AGENT_INDEX=3: result agent_index 3, {} gateway call(s) with x-agent-index 3",
        headers.len()
    ));
    first.container().stop(GRACE).await?;
    first.container().wait_exit(GRACE).await?;

    // AGENT_INDEX empty, JOB_COMPLETION_INDEX=5: Kubernetes' variable for Indexed Jobs. The
    // Docker launcher always sets AGENT_INDEX, so it is removed from the spec here.
    let mut spec = launcher.spec(&stack.scope, 5);
    spec.env.remove(env::AGENT_INDEX);
    spec.env
        .insert(env::JOB_COMPLETION_INDEX.to_owned(), "5".to_owned());
    let _second = stack.scope.run(spec).await?;
    let t = task("identity-completion-index", 1, TaskFaults::default());
    stack.publish(&t).await?;
    wait_done(
        &mut stack,
        "a task for the agent with only JOB_COMPLETION_INDEX=5",
    )
    .await?;
    let r = the_result(&stack, &t.id)?;
    require(r.agent_index == 5, || {
        format!(
            "only JOB_COMPLETION_INDEX=5 is set but the result says agent_index {}",
            r.agent_index
        )
    })?;
    evidence.push("JOB_COMPLETION_INDEX=5 alone: result agent_index 5".to_owned());
    stack.teardown().await?;
    Ok(evidence)
}
