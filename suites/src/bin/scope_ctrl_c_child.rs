//! Test helper for `suites/tests/hygiene.rs`: creates a scope with a container and a volume,
//! installs the Ctrl-C teardown, prints `READY <scope id>` and waits to be interrupted.

use std::time::Duration;

use agentfleet::Scope;
use agentfleet::docker::{ContainerSpec, Engine};
use agentfleet::images::Images;
use agentfleet::scope::teardown_on_ctrl_c;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let interrupted = teardown_on_ctrl_c();
    let engine = Engine::connect().await?;
    let scope = Scope::new(&engine, "ctrl-c-child").await?;
    scope.create_volume("data").await?;
    let toolbox = Images::from_env().toolbox;
    let spec = ContainerSpec::new("sleeper", &toolbox)
        .entrypoint(["sleep", "600"])
        .cmd(Vec::<String>::new())
        .network(scope.agents_network(), Vec::<String>::new());
    scope.run(spec).await?;
    println!("READY {}", scope.id());
    // Waits for the interrupt: the handler exits the process; the timeout only bounds a hang.
    tokio::time::timeout(Duration::from_secs(120), interrupted)
        .await
        .ok();
    anyhow::bail!("not interrupted within 120 s")
}
