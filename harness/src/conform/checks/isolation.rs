//! Clause 8, isolation (optional): the agent needs no egress besides the queue, the gateway and
//! DNS. It runs attached only to the scope's `internal` agents network, where the broker and the
//! gateway are the only other members, and must complete a task there.
//!
//! A canary runs first: a throwaway container on the same network must reach the gateway by its
//! alias and must *not* reach a listener on the other (edge) network, which a control probe from
//! the edge network reaches. A Docker host where the internal network leaks would make the
//! agent's success meaningless, so a leaking canary is a harness error, not a pass.
//!
//! The listener publishes no port. The gateway's edge address would be a poor target: its
//! published admin port has an ACCEPT rule in Docker's FORWARD chain, and while another network
//! is being created Docker briefly re-inserts the jump to its isolation chain, so a probe to a
//! published port can slip through on a busy host (tests running in parallel) and look like a
//! leak.

use std::time::Duration;

use agentfleet_protocol::TaskFaults;

use crate::agents::AgentTemplate;
use crate::docker::ContainerSpec;
use crate::services::gateway;
use crate::stack::Stack;

use crate::conform::check::{
    CheckError, CheckResult, require, task, the_result, wait_consuming, wait_done,
};

const CANARY_SCRIPT: &str = r#"
inside=no; timeout 3 bash -c "</dev/tcp/$INSIDE_HOST/$PORT" 2>/dev/null && inside=yes
outside=no; timeout 3 bash -c "</dev/tcp/$OUTSIDE_IP/$PORT" 2>/dev/null && outside=yes
echo "inside=$inside outside=$outside"
"#;

/// The control: from the edge network the listener answers once it is up (deadline-bounded,
/// it has no readiness signal of its own).
const CONTROL_SCRIPT: &str = r#"
for attempt in $(seq 1 40); do
  timeout 1 bash -c "</dev/tcp/$OUTSIDE_IP/$PORT" 2>/dev/null && { echo "control=yes"; exit 0; }
  sleep 0.25
done
echo "control=no"
"#;

pub async fn check(image: &str) -> CheckResult {
    let mut stack = Stack::up("conform-isolation").await?;
    let canary = canary(&stack).await?;
    if canary != "inside=yes outside=no" {
        return Err(CheckError::Harness(format!(
            "canary on the agents network: {canary} (expected inside=yes outside=no): this \
             Docker host does not isolate internal networks, so isolation cannot be judged"
        )));
    }
    let mut evidence = vec![format!(
        "canary: gateway reachable by alias, an edge-network listener (reachable from the edge) unreachable ({canary})"
    )];

    let template = AgentTemplate::new(image).publish_metrics(false);
    let _agent = stack.launcher(template).launch(&stack.scope, 0).await?;
    wait_consuming(&stack, 1).await?;
    let t = task("isolation-1", 2, TaskFaults::default());
    stack.publish(&t).await?;
    wait_done(
        &mut stack,
        "a task for an agent with egress only to the queue and gateway",
    )
    .await?;
    let r = the_result(&stack, &t.id)?;
    require(r.steps == 2, || format!("{r:?}"))?;
    evidence.push(format!(
        "agent attached only to internal network {}: task completed",
        stack.scope.agents_network()
    ));
    stack.teardown().await?;
    Ok(evidence)
}

/// Starts the edge listener, proves it reachable from the edge network, then runs the canary on
/// the agents network and returns its verdict line.
async fn canary(stack: &Stack) -> Result<String, CheckError> {
    let scope = &stack.scope;
    let listener = scope
        .run(
            ContainerSpec::new("isolation-outside", &stack.images.gateway)
                .network(scope.edge_network(), Vec::<String>::new())
                .memory_mib(64)
                .read_only_rootfs(),
        )
        .await?;
    let outside_ip = listener.ip_on(scope.edge_network()).await?.ok_or_else(|| {
        CheckError::Harness(format!(
            "the edge listener has no address on {}",
            scope.edge_network()
        ))
    })?;
    let probe = |name: &str, script: &str, network: &str| {
        ContainerSpec::new(name, &stack.images.toolbox)
            .entrypoint(["bash", "-c", script])
            .cmd(Vec::<String>::new())
            .env("INSIDE_HOST", gateway::ALIAS)
            .env("OUTSIDE_IP", outside_ip.to_string())
            .env("PORT", gateway::PORT.to_string())
            .network(network, Vec::<String>::new())
    };
    let control = last_line(
        stack,
        probe("isolation-control", CONTROL_SCRIPT, scope.edge_network()),
    )
    .await?;
    if control != "control=yes" {
        return Err(CheckError::Harness(format!(
            "the edge listener at {outside_ip}:{} never answered a probe from the edge network \
             ({control}), so the canary could not tell isolation from a dead listener",
            gateway::PORT
        )));
    }
    let verdict = last_line(
        stack,
        probe("isolation-canary", CANARY_SCRIPT, scope.agents_network()),
    )
    .await;
    listener.remove().await?;
    verdict
}

/// Runs a probe container to its end and returns the last line it printed.
async fn last_line(stack: &Stack, spec: ContainerSpec) -> Result<String, CheckError> {
    let container = stack.scope.run(spec).await?;
    container.wait_exit(Duration::from_secs(30)).await?;
    let out = container.logs().await?;
    container.remove().await?;
    Ok(out.lines().last().unwrap_or_default().trim().to_owned())
}
