//! Clause 7, observability (optional): `/metrics` in Prometheus text with the fleet's
//! families, `/healthz`, and JSON log lines carrying the agent index (every line) and the task
//! id (the task's lines).

use std::time::Duration;

use agentfleet_protocol::TaskFaults;

use crate::agents::AgentTemplate;
use crate::stack::Stack;

use crate::conform::check::{CheckResult, require, task, violation, wait_consuming, wait_done};

/// Metric families the dashboards and alerts of the reference manifests use.
const FAMILIES: [&str; 3] = [
    "agent_tasks_completed",
    "agent_task_duration_seconds",
    "agent_llm_tokens",
];

pub async fn check(image: &str) -> CheckResult {
    let mut stack = Stack::up("conform-observability").await?;
    let agent = stack
        .launcher(AgentTemplate::new(image))
        .launch(&stack.scope, 0)
        .await?;
    wait_consuming(&stack, 1).await?;
    let t = task("observability-1", 2, TaskFaults::default());
    stack.publish(&t).await?;
    wait_done(&mut stack, "a task for the metrics").await?;
    let mut evidence = Vec::new();

    let healthz = agent.http_status("/healthz").await?;
    require(healthz == 200, || format!("/healthz answered {healthz}"))?;
    evidence.push("/healthz 200".to_owned());

    // One scrape first, so a missing endpoint is reported as what it is (e.g. a 404) rather
    // than as a wait that timed out.
    agent
        .metrics()
        .await
        .map_err(|e| violation(format!("/metrics: {e}")))?;
    let success = [("status", "success")];
    agent
        .wait_for_metric(
            "agent_tasks_completed_total",
            &success,
            Duration::from_secs(10),
            |v| v >= 1.0,
        )
        .await
        .map_err(|e| violation(format!("/metrics: {e}")))?;
    let metrics = agent
        .metrics()
        .await
        .map_err(|e| violation(format!("/metrics: {e}")))?;
    let missing: Vec<&str> = FAMILIES
        .iter()
        .copied()
        .filter(|f| !metrics.has_family(f))
        .collect();
    require(missing.is_empty(), || {
        format!("/metrics lacks {missing:?}:\n{metrics}")
    })?;
    require(
        metrics.value_or_zero("agent_task_duration_seconds_count", &[]) >= 1.0,
        || {
            format!(
                "agent_task_duration_seconds is not a histogram with the task in it:\n{metrics}"
            )
        },
    )?;
    let tokens = metrics.value_or_zero("agent_llm_tokens_total", &[("model", "model-a")]);
    require(tokens > 0.0, || {
        format!("agent_llm_tokens_total{{model=\"model-a\"}} is {tokens} after a task:\n{metrics}")
    })?;
    evidence.push(format!(
        "/metrics has {FAMILIES:?}; {tokens} tokens for model-a"
    ));

    let logs = agent.container().logs().await?;
    let mut lines = 0;
    let mut with_task = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| violation(format!("log line is not JSON ({e}): {line}")))?;
        require(
            value.get("agent_index").and_then(|v| v.as_u64()) == Some(0),
            || format!("log line without agent_index 0: {line}"),
        )?;
        lines += 1;
        if value.get("task_id").and_then(|v| v.as_str()) == Some(t.id.as_str()) {
            with_task += 1;
        }
    }
    require(with_task > 0, || {
        format!(
            "no log line carries task_id {} in {lines} lines:\n{logs}",
            t.id
        )
    })?;
    evidence.push(format!(
        "{lines} JSON log lines, all with agent_index, {with_task} with task_id"
    ));
    stack.teardown().await?;
    Ok(evidence)
}
