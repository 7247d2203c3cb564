//! Clause 6, poison work: a malformed task and a task that fails on every delivery are
//! dead-lettered after a bounded number of deliveries (the quorum queue's delivery limit or the
//! agent's own count), and the agent goes on serving: a good task after them completes.

use crate::agents::AgentTemplate;
use crate::queue::DeadLetterCause;
use crate::stack::Stack;
use agentfleet_protocol::TaskFaults;

use crate::conform::check::{
    CheckError, CheckResult, QUIET, require, task, the_result, wait_consuming, wait_done,
};

pub async fn check(image: &str) -> CheckResult {
    let mut stack = Stack::up("conform-poison").await?;
    let agent = stack
        .launcher(AgentTemplate::new(image))
        .launch(&stack.scope, 0)
        .await?;
    wait_consuming(&stack, 1).await?;
    stack
        .publish_raw(
            "poison-malformed",
            br#"{"id":"poison-malformed","model":"m","prompt":"p","steps":"many"}"#,
        )
        .await?;
    let failing = task(
        "poison-failing",
        2,
        TaskFaults {
            fail_at_step: Some(1),
            ..TaskFaults::default()
        },
    );
    stack.publish(&failing).await?;
    wait_done(&mut stack, "a malformed and an always-failing task").await?;
    let mut evidence = Vec::new();
    for id in ["poison-malformed", failing.id.as_str()] {
        let dead = stack.ledger.dead_letters_for(id);
        let results = stack.ledger.results_for(id);
        require(dead.len() == 1 && results.is_empty(), || {
            format!(
                "{id}: {} dead letter(s) and {} result(s), expected one dead letter and no result",
                dead.len(),
                results.len()
            )
        })?;
        evidence.push(format!("{id}: dead-lettered ({})", cause(&dead[0].cause)));
    }

    let good = task("poison-good-after", 2, TaskFaults::default());
    stack.publish(&good).await?;
    wait_done(&mut stack, "a good task after the poison ones").await?;
    let verdict = stack
        .settle(QUIET)
        .await
        .map_err(|e| CheckError::Harness(e.to_string()))?;
    let r = the_result(&stack, &good.id)?;
    require(r.steps == 2, || format!("{r:?}"))?;
    let status = agent.container().status().await?;
    require(status.running, || {
        format!("the agent stopped serving after poison work: {status}")
    })?;
    evidence.push(format!("a good task after them completed; {verdict}"));
    stack.teardown().await?;
    Ok(evidence)
}

fn cause(cause: &DeadLetterCause) -> String {
    match cause {
        DeadLetterCause::Agent { reason, .. } => format!("by the agent: {reason}"),
        DeadLetterCause::Broker { reason } => format!("by the broker: {reason}"),
        DeadLetterCause::Unknown => "no reason given".to_owned(),
    }
}
