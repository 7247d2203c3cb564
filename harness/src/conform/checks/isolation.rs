//! Clause 8, isolation (optional): the agent needs no egress besides the queue, the gateway and
//! DNS. It runs attached only to the scope's `internal` agents network, where the broker and the
//! gateway are the only other members, and must complete a task there.
//!
//! A canary runs first: a throwaway container on the same network must reach the gateway by its
//! alias and must *not* reach the gateway's address on the other (edge) network. A Docker host
//! where the internal network leaks would make the agent's success meaningless, so a leaking
//! canary is a harness error, not a pass.

use std::time::Duration;

use agentfleet_protocol::TaskFaults;

use crate::agents::AgentTemplate;
use crate::docker::{ContainerSpec, DockerError};
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
        "canary: gateway reachable by alias, unreachable on the edge network ({canary})"
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

/// Runs the canary and returns its verdict line.
async fn canary(stack: &Stack) -> Result<String, CheckError> {
    let scope = &stack.scope;
    let inspect = scope
        .engine()
        .raw()
        .inspect_container(stack.gateway.container().id(), None)
        .await
        .map_err(DockerError::api(
            "inspect container",
            stack.gateway.container().name(),
        ))?;
    let outside_ip = inspect
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|mut nets| nets.remove(scope.edge_network()))
        .and_then(|endpoint| endpoint.ip_address)
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| {
            CheckError::Harness(format!(
                "the gateway has no address on the edge network {}",
                scope.edge_network()
            ))
        })?;
    let spec = ContainerSpec::new("isolation-canary", &stack.images.toolbox)
        .entrypoint(["bash", "-c", CANARY_SCRIPT])
        .cmd(Vec::<String>::new())
        .env("INSIDE_HOST", gateway::ALIAS)
        .env("OUTSIDE_IP", outside_ip)
        .env("PORT", gateway::PORT.to_string())
        .network(scope.agents_network(), Vec::<String>::new());
    let container = scope.run(spec).await?;
    container.wait_exit(Duration::from_secs(20)).await?;
    let out = container.logs().await?;
    container.remove().await?;
    Ok(out.lines().last().unwrap_or_default().trim().to_owned())
}
