//! `cargo xtask bench agent`: the reference agent's figures, measured on the real image.
//!
//! - image size (`docker image inspect`),
//! - start-up time: container start until `/readyz` answers 200 (consuming),
//! - idle RSS: the container's cgroup `rss` once it is ready and idle,
//! - throughput: tasks per second for one agent against a zero-latency gateway (1-step tasks,
//!   so the figure is the per-task overhead: consume, LLM call, checkpoint, confirmed publish, ack).
//!
//! A benchmark, not a test: it prints figures and asserts nothing about speed.

use std::time::{Duration, Instant};

use agentfleet::stack::Stack;
use agentfleet_protocol::Task;
use anyhow::{Context, Result, bail};
use bollard::query_parameters::StatsOptionsBuilder;
use futures::StreamExt;

const TASKS: usize = 400;

#[tokio::main]
async fn main() -> Result<()> {
    let mut stack = Stack::up("bench-agent").await?;
    let result = measure(&mut stack).await;
    stack.teardown().await?;
    result
}

async fn measure(stack: &mut Stack) -> Result<()> {
    let engine = stack.scope.engine().clone();
    let image = engine.raw().inspect_image(&stack.images.agent).await?;
    let size_mib = image.size.unwrap_or_default() as f64 / (1024.0 * 1024.0);

    let launcher = stack.launcher(stack.agent_template());
    let started = Instant::now();
    let agent = launcher.launch(&stack.scope, 0).await?;
    // /readyz has no event stream: a bounded poll is the only way to observe it.
    let deadline = started + Duration::from_secs(30);
    loop {
        if agent.http_status("/readyz").await.unwrap_or(0) == 200 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the agent was not ready within 30 s:\n{}",
                agent.container().log_tail(20).await
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ready_after = started.elapsed();

    let stats = engine
        .raw()
        .stats(
            agent.container().id(),
            Some(StatsOptionsBuilder::default().stream(false).build()),
        )
        .next()
        .await
        .context("no stats from Docker")??;
    let memory = stats.memory_stats.context("no memory stats")?;
    let rss = memory
        .stats
        .as_ref()
        .and_then(|s| s.get("rss").or_else(|| s.get("anon")).copied())
        .or(memory.usage)
        .unwrap_or_default();

    let tasks: Vec<Task> = (0..TASKS)
        .map(|i| Task {
            id: format!("bench-{i}"),
            model: "bench-model".into(),
            prompt: "measure the per-task overhead".into(),
            steps: 1,
            faults: Default::default(),
        })
        .collect();
    let t0 = Instant::now();
    for task in &tasks {
        stack.publish(task).await?;
    }
    let verdict = stack.wait_accounted(Duration::from_secs(300)).await?;
    let elapsed = t0.elapsed();
    if verdict.completed != TASKS {
        bail!(
            "only {} of {TASKS} tasks completed: {verdict:?}",
            verdict.completed
        );
    }

    println!(
        "agent image size        {size_mib:>8.1} MiB  ({})",
        stack.images.agent
    );
    println!(
        "start-up to ready       {:>8.0} ms   (container start -> /readyz 200)",
        ready_after.as_secs_f64() * 1e3
    );
    println!(
        "idle RSS                {:>8.1} MiB  (cgroup rss, ready and idle)",
        rss as f64 / (1024.0 * 1024.0)
    );
    println!(
        "throughput              {:>8.1} tasks/s ({TASKS} one-step tasks, 1 agent, zero-latency gateway, {:.1} s)",
        TASKS as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
