//! The agent contract against real containers: a RabbitMQ broker, the gateway simulator and the
//! agent image, each test in its own [`Scope`] (its own broker, networks and volume), so tests
//! run in parallel.
//!
//! Every test here needs a Docker daemon and the images `cargo xtask images` builds; without
//! them a test fails with the message that says so (they never skip). Their names start with
//! `docker_` so `cargo nextest run -E 'not test(/^docker_/)'` leaves them out.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentfleet::Scope;
use agentfleet::checkpoints::{AGENT_UID, CheckpointVolume};
use agentfleet::docker::{Engine, Restart};
use agentfleet::images::Images;
use agentfleet::ledger::Ledger;
use agentfleet::queue::DeadLetterCause;
use agentfleet::request_log;
use agentfleet::services::gateway::Gateway;
use agentfleet::services::rabbitmq::{self, RabbitMq};
use agentfleet::stack::Stack;
use agentfleet::wait::{Probe, until};
use agentfleet_protocol::gateway::{FaultProfile, Outage};
use agentfleet_protocol::{Task, TaskFaults, Topology, env};
use anyhow::{Context, Result, anyhow, bail, ensure};

/// Upper bound for one test's waits on the fleet; each test's own budget is well below it.
const ACCOUNTED: Duration = Duration::from_secs(45);
/// After every task is accounted for, how long without a new message before judging
/// duplicates.
const QUIET: Duration = Duration::from_millis(750);

fn task(id: &str, steps: u32, faults: TaskFaults) -> Task {
    Task {
        id: id.to_owned(),
        model: "model-a".to_owned(),
        prompt: format!(
            "Summarise the incident report for {}.",
            id.split('-').next().unwrap_or(id)
        ),
        steps,
        faults,
    }
}

fn delayed(step_delay_ms: u64) -> TaskFaults {
    TaskFaults {
        step_delay_ms: Some(step_delay_ms),
        ..TaskFaults::default()
    }
}

/// Waits until `file` is absent from the checkpoint volume (the agent removes it after the ack,
/// which follows the result the test already saw).
async fn wait_checkpoint_gone(scope: &Scope, volume: &CheckpointVolume, file: &str) -> Result<()> {
    until(
        format!("{file} to be removed from the checkpoint volume"),
        Duration::from_secs(15),
        Duration::from_millis(200),
        || async {
            match volume.list(scope).await {
                Ok(files) if !files.iter().any(|f| f == file) => Probe::Ready(()),
                Ok(files) => Probe::NotYet(format!("volume holds {files:?}")),
                Err(e) => Probe::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_task_completes_once_with_its_tokens_and_leaves_no_checkpoint() -> Result<()> {
    let mut stack = Stack::up("task-completes").await?;
    let agent = stack
        .launcher(stack.agent_template())
        .launch(&stack.scope, 0)
        .await?;
    let t = task("complete-1", 3, TaskFaults::default());
    stack.publish(&t).await?;
    stack.wait_accounted(ACCOUNTED).await?;
    let verdict = stack.settle(QUIET).await?;
    ensure!(verdict.is_clean() && verdict.completed == 1, "{verdict}");

    let record = stack.ledger.single_result(&t.id).map_err(|e| anyhow!(e))?;
    let r = &record.result;
    assert_eq!(
        record.message_id.as_deref(),
        Some(t.id.as_str()),
        "result message_id must be the task id"
    );
    assert_eq!(
        (r.steps, r.resumed_from_step, r.attempt, r.agent_index),
        (3, 0, 1, 0),
        "{r:?}"
    );
    // The gateway's usage: prompt ceil(chars/4) >= 1, completion 8..=31 per call.
    let u = r.tokens;
    assert_eq!(
        u.total_tokens,
        u.prompt_tokens + u.completion_tokens,
        "{u:?}"
    );
    assert!(
        u.prompt_tokens >= 3 && (24..=93).contains(&u.completion_tokens),
        "{u:?}"
    );

    // Each step called the gateway exactly once, successfully, as agent 0.
    let log = stack.gateway.admin().requests().await?;
    let calls = request_log::of_task(&log, &t.id);
    assert_eq!(calls.len(), 3, "gateway calls for {}: {calls:?}", t.id);
    assert!(
        calls
            .iter()
            .all(|c| c.status == 200 && c.agent_index == Some(0)),
        "{calls:?}"
    );

    let success = [("status", "success")];
    agent
        .wait_for_metric(
            "agent_tasks_completed_total",
            &success,
            Duration::from_secs(10),
            |v| v >= 1.0,
        )
        .await?;
    let metrics = agent.metrics().await?;
    assert_eq!(
        metrics.value("agent_tasks_completed_total", &success),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metrics.value("agent_llm_tokens_total", &[("model", "model-a")]),
        Some(u.total_tokens as f64),
        "{metrics}"
    );
    let written = metrics.value_or_zero("agent_checkpoints_written_total", &[]);
    assert!(
        written >= 3.0,
        "a checkpoint after every step: {written} written for 3 steps"
    );

    wait_checkpoint_gone(&stack.scope, &stack.checkpoints, "complete-1.json").await?;

    // JSON logs, every line with the agent index, the task's lines with its id.
    let logs = agent.container().logs().await?;
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("log line is not JSON: {l}")))
        .collect::<Result<_>>()?;
    assert!(
        lines.iter().all(|l| l["agent_index"] == 0),
        "a log line without agent_index 0:\n{logs}"
    );
    assert!(
        lines.iter().any(|l| l["task_id"] == t.id.as_str()),
        "no log line carries task_id {}:\n{logs}",
        t.id
    );
    stack.teardown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_sigkill_mid_task_resumes_from_the_checkpoint_counting_each_step_once() -> Result<()>
{
    let mut stack = Stack::up("sigkill-resume").await?;
    let agent = stack
        .launcher(stack.agent_template())
        .launch(&stack.scope, 0)
        .await?;
    let killed = task("killed-1", 6, TaskFaults::default());
    // The gateway answers three steps and holds the fourth step's call open: the agent is
    // frozen right after step 3's checkpoint when the SIGKILL lands, however loaded the
    // machine is.
    let gateway = stack.gateway.admin().clone();
    gateway
        .set_faults(&FaultProfile::hanging([killed.id.as_str()], 3))
        .await?;
    stack.publish(&killed).await?;
    gateway
        .wait_held(&[killed.id.as_str()], Duration::from_secs(30))
        .await?;
    agent.container().kill("SIGKILL").await?;
    let status = agent.container().wait_exit(Duration::from_secs(15)).await?;
    assert_eq!(
        (status.exit_code, status.oom_killed),
        (Some(137), false),
        "{status}"
    );
    let files = stack.checkpoints.list(&stack.scope).await?;
    assert!(
        files.contains(&"killed-1.json".to_owned()),
        "checkpoint lost with the agent: {files:?}"
    );

    // Release the hang, restart in place (restartPolicy OnFailure): the redelivered task
    // resumes after the three answered steps.
    gateway.set_faults(&FaultProfile::default()).await?;
    agent.container().start().await?;
    stack.wait_accounted(ACCOUNTED).await?;
    let resumed = stack
        .ledger
        .single_result(&killed.id)
        .map_err(|e| anyhow!(e))?
        .result
        .clone();
    assert_eq!(
        resumed.resumed_from_step, 3,
        "killed while step 4's call hung: {resumed:?}"
    );
    assert!(
        resumed.attempt >= 2,
        "the redelivery must be attempt 2 or later: {resumed:?}"
    );
    assert_eq!(resumed.steps, 6);

    // Same model, prompt and steps, never interrupted: the gateway answers deterministically,
    // so its tokens and digest are what "each step counted once" must give.
    let twin = Task {
        id: "twin-1".into(),
        faults: TaskFaults::default(),
        ..killed.clone()
    };
    stack.publish(&twin).await?;
    stack.wait_accounted(ACCOUNTED).await?;
    let verdict = stack.settle(QUIET).await?;
    ensure!(verdict.is_clean(), "{verdict}");
    let reference = &stack
        .ledger
        .single_result(&twin.id)
        .map_err(|e| anyhow!(e))?
        .result;
    assert_eq!(
        resumed.tokens, reference.tokens,
        "tokens of the resumed task vs an uninterrupted twin"
    );
    assert_eq!(
        resumed.output_digest, reference.output_digest,
        "digest of the resumed task vs its twin"
    );

    // The gateway answered every step once, and step 4 twice: once to the killed agent (when
    // the hang was released, to nobody) and once to the redelivery.
    let log = stack.gateway.admin().requests().await?;
    let ok_calls = request_log::of_task(&log, &killed.id)
        .iter()
        .filter(|r| r.status == 200)
        .count();
    assert_eq!(
        ok_calls, 7,
        "successful gateway calls for a 6-step task killed while step 4 hung"
    );
    stack.teardown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_sigterm_mid_step_exits_143_in_grace_and_another_agent_resumes() -> Result<()> {
    let mut stack = Stack::up("sigterm-resume").await?;
    let grace = Duration::from_secs(10);
    let launcher = stack.launcher(
        stack
            .agent_template()
            .stop_grace(grace)
            .env(env::STOP_GRACE_MS, 5000),
    );
    let first = launcher.launch(&stack.scope, 0).await?;
    let t = task("evicted-1", 5, delayed(1500));
    // Frozen inside the task when the SIGTERM lands: the second step's call hangs. Then that
    // call is answered (the step in flight may finish) while every later call hangs, so the
    // task cannot complete before the agent leaves, however loaded the machine is.
    let gateway = stack.gateway.admin().clone();
    gateway
        .set_faults(&FaultProfile::hanging([t.id.as_str()], 1))
        .await?;
    stack.publish(&t).await?;
    gateway
        .wait_held(&[t.id.as_str()], Duration::from_secs(30))
        .await?;

    // `docker stop` in two parts (SIGTERM now, SIGKILL at the grace deadline) so the hang can
    // change in between. 143 before the deadline means the agent left on its own, with its work
    // checkpointed and unacked.
    let stopping = Instant::now();
    first.container().kill("SIGTERM").await?;
    gateway
        .set_faults(&FaultProfile::hanging([t.id.as_str()], 0))
        .await?;
    let status = first.container().wait_exit_or_kill(grace).await?;
    let took = stopping.elapsed();
    assert_eq!(
        status.exit_code,
        Some(143),
        "{status}; logs:\n{}",
        first.container().log_tail(20).await
    );
    assert!(
        took < grace,
        "the agent was still running {took:?} after SIGTERM, the whole {grace:?} grace"
    );
    gateway.set_faults(&FaultProfile::default()).await?;
    let checkpoint = stack
        .checkpoints
        .read(&stack.scope, "evicted-1.json")
        .await?;
    ensure!(
        checkpoint.is_some_and(|c| !c.is_empty()),
        "no checkpoint left by the stopped agent"
    );

    let second = launcher.launch(&stack.scope, 1).await?;
    stack.wait_accounted(ACCOUNTED).await?;
    let verdict = stack.settle(QUIET).await?;
    ensure!(verdict.is_clean(), "{verdict}");
    let r = &stack
        .ledger
        .single_result(&t.id)
        .map_err(|e| anyhow!(e))?
        .result;
    assert_eq!(r.agent_index, second.index(), "{r:?}");
    assert!(
        r.resumed_from_step > 0,
        "the second agent started over: {r:?}"
    );
    assert_eq!(r.steps, 5);
    stack.teardown().await?;
    Ok(())
}

/// Backoff base and cap, breaker threshold and open time of the outage test's agent.
const BASE_MS: u64 = 100;
const CAP_MS: u64 = 800;
const BREAKER_FAILURES: usize = 6;
const BREAKER_OPEN_MS: u64 = 1500;
/// Scheduling and HTTP time the agent may add to a backoff sleep on a busy two-core machine.
const SLACK_MS: u64 = 300;
/// The retries before the breaker opens sleep uniform(0, 100|200|400|800|800) ms: 1150 ms in
/// total on average. Below this floor (probability about 1e-5 with jitter) there is no backoff.
const MIN_BACKOFF_TOTAL_MS: u64 = 100;

#[tokio::test(flavor = "multi_thread")]
async fn docker_gateway_outage_backs_off_opens_the_breaker_recovers_and_honours_retry_after()
-> Result<()> {
    let mut stack = Stack::up("outage").await?;
    let template = stack
        .agent_template()
        .env(env::BACKOFF_BASE_MS, BASE_MS)
        .env(env::BACKOFF_CAP_MS, CAP_MS)
        .env(env::BREAKER_FAILURES, BREAKER_FAILURES)
        .env(env::BREAKER_OPEN_MS, BREAKER_OPEN_MS)
        .env(env::LLM_MAX_ATTEMPTS, 0)
        // A generous budget, so that only backoff and the breaker shape the gaps measured here.
        .env(env::RETRY_BUDGET_RATIO, 1)
        .env(env::RETRY_BUDGET_MIN_PER_SEC, 100)
        .env(env::LLM_TIMEOUT_MS, 2000);
    let agent = stack.launcher(template).launch(&stack.scope, 0).await?;
    let admin = stack.gateway.admin().clone();

    // Phase 1: 503 without Retry-After for 6 s.
    let outage_ms = 6000;
    let outage_start_ms = now_ms();
    admin
        .set_faults(&FaultProfile {
            outages: vec![Outage {
                start_ms: 0,
                duration_ms: outage_ms,
                status: 503,
            }],
            ..FaultProfile::default()
        })
        .await?;
    let a = task("outage-1", 2, TaskFaults::default());
    stack.publish(&a).await?;
    agent
        .wait_for_metric("agent_breaker_state", &[], Duration::from_secs(10), |v| {
            v == 2.0
        })
        .await?;
    stack.wait_accounted(ACCOUNTED).await?;
    agent
        .wait_for_metric("agent_breaker_state", &[], Duration::from_secs(5), |v| {
            v == 0.0
        })
        .await?;
    let metrics = agent.metrics().await?;
    assert!(
        metrics.value_or_zero("agent_breaker_opened_total", &[]) >= 1.0,
        "{metrics}"
    );

    // Phase 2: 429 with Retry-After: 1 for 3 s.
    admin
        .set_faults(&FaultProfile {
            retry_after_secs: Some(1),
            outages: vec![Outage {
                start_ms: 0,
                duration_ms: 3000,
                status: 429,
            }],
            ..FaultProfile::default()
        })
        .await?;
    let b = task("retry-after-1", 1, TaskFaults::default());
    stack.publish(&b).await?;
    stack.wait_accounted(ACCOUNTED).await?;
    let verdict = stack.settle(QUIET).await?;
    ensure!(verdict.is_clean() && verdict.completed == 2, "{verdict}");

    let log = admin.requests().await?;
    let calls = request_log::of_task(&log, &a.id);
    let failures = calls.iter().take_while(|r| r.status == 503).count();
    ensure!(
        failures > BREAKER_FAILURES,
        "only {failures} failed calls in a {outage_ms} ms outage: {calls:?}"
    );
    ensure!(
        calls.len() > failures,
        "no successful call after the outage: {calls:?}"
    );
    // Gaps between the failed calls, and from the last failure to the recovering call.
    let gaps = request_log::gaps_ms(&calls[..=failures]);
    let shown = format!("gaps between calls (ms): {gaps:?}");
    eprintln!("outage: {failures} failed calls; {shown}");

    // Before the breaker opens: full-jitter sleeps within min(cap, base * 2^n), and not all ~0.
    let (retries, while_open) = gaps.split_at(BREAKER_FAILURES - 1);
    for (n, gap) in retries.iter().enumerate() {
        let ceiling = CAP_MS.min(BASE_MS << n);
        assert!(
            *gap <= ceiling + SLACK_MS,
            "retry {n} came {gap} ms after the failure, above min(cap, base*2^n) = {ceiling} ms; {shown}"
        );
    }
    let backoff_total: u64 = retries.iter().sum();
    assert!(
        backoff_total >= MIN_BACKOFF_TOTAL_MS,
        "retries {backoff_total} ms apart in total: no backoff; {shown}"
    );
    // From the breaker's threshold on: at most one probe per open period.
    for gap in while_open {
        assert!(
            *gap + 50 >= BREAKER_OPEN_MS,
            "a call {gap} ms after the previous one while the breaker was open; {shown}"
        );
    }
    // The request rate decays: fewer calls in the second half of the outage than in the first.
    let half = outage_start_ms + outage_ms / 2;
    let first_half = request_log::count_between(&calls[..failures], 0, half);
    let second_half = failures - first_half;
    assert!(
        second_half < first_half,
        "{first_half} calls in the outage's first half, {second_half} in its second; {shown}"
    );
    let bound = BREAKER_FAILURES + (outage_ms / BREAKER_OPEN_MS) as usize + 1;
    assert!(
        failures <= bound,
        "{failures} calls during the outage, bound {bound}; {shown}"
    );

    // Retry-After: the same agent's next call never comes before it has elapsed.
    let check = request_log::check_retry_after(&log);
    eprintln!("Retry-After: {} answers judged", check.judged);
    assert!(
        check.violations.is_empty(),
        "Retry-After violated: {}",
        check
            .violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    assert!(
        check.judged >= 2,
        "only {} Retry-After answers were followed by a call: the check proved nothing",
        check.judged
    );
    stack.teardown().await?;
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_malformed_and_poison_tasks_are_dead_lettered_while_the_agent_keeps_serving()
-> Result<()> {
    let mut stack = Stack::up("poison").await?;
    let events = stack.scope.record_events();
    // OnFailure restarts, as the manifests' pod template: an OOM-killed agent comes back.
    let template = stack
        .agent_template()
        .memory_mib(64)
        .restart(Restart::OnFailure { max_restarts: 10 });
    let agent = stack.launcher(template).launch(&stack.scope, 0).await?;

    stack
        .publish_raw(
            "malformed-1",
            br#"{"id":"malformed-1","model":"m","prompt":"p","steps":"many"}"#,
        )
        .await?;
    let failing = task(
        "failing-1",
        2,
        TaskFaults {
            fail_at_step: Some(1),
            ..TaskFaults::default()
        },
    );
    let hog = task(
        "hog-1",
        2,
        TaskFaults {
            oom_at_step: Some(1),
            oom_mib: Some(256),
            ..TaskFaults::default()
        },
    );
    stack.publish(&failing).await?;
    stack.publish(&hog).await?;
    stack.wait_accounted(Duration::from_secs(60)).await?;

    let malformed = stack.ledger.dead_letters_for("malformed-1");
    assert!(
        matches!(malformed, [d] if matches!(&d.cause, DeadLetterCause::Agent { reason, .. } if reason == "malformed")),
        "malformed-1: {malformed:?}"
    );
    for id in [&failing.id, &hog.id] {
        let dead = stack.ledger.dead_letters_for(id);
        assert_eq!(dead.len(), 1, "{id}: {dead:?}");
        assert!(stack.ledger.results_for(id).is_empty(), "{id} has a result");
        let reason = match &dead[0].cause {
            DeadLetterCause::Agent { reason, .. } | DeadLetterCause::Broker { reason } => {
                reason.as_str()
            }
            DeadLetterCause::Unknown => "",
        };
        assert_eq!(reason, "delivery_limit", "{id}: {:?}", dead[0].cause);
    }

    // The hog killed the agent (OOM) until the delivery limit stopped it; the agent came back.
    let ooms = events.of(agent.container().id(), "oom");
    let dies: Vec<Option<i64>> = events
        .of(agent.container().id(), "die")
        .iter()
        .map(|e| e.exit_code)
        .collect();
    assert!(!ooms.is_empty(), "no OOM kill recorded; deaths: {dies:?}");
    assert!(
        dies.iter().all(|c| *c == Some(137)) && !dies.is_empty(),
        "deaths: {dies:?}"
    );
    let status = agent.container().status().await?;
    assert!(
        status.running && status.restart_count >= 1,
        "{status}, deaths {dies:?}"
    );

    // ... and serves: a good task after the poison ones completes.
    let good = task("good-1", 2, TaskFaults::default());
    stack.publish(&good).await?;
    stack.wait_accounted(ACCOUNTED).await?;
    let verdict = stack.settle(QUIET).await?;
    ensure!(
        verdict.is_clean() && (verdict.completed, verdict.dead_lettered) == (1, 3),
        "{verdict}"
    );
    let r = &stack
        .ledger
        .single_result(&good.id)
        .map_err(|e| anyhow!(e))?
        .result;
    assert_eq!((r.steps, r.agent_index), (2, 0), "{r:?}");
    stack.teardown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_corrupt_checkpoint_is_reported_and_the_task_restarts_from_step_zero() -> Result<()>
{
    let mut stack = Stack::up("corrupt-checkpoint").await?;
    stack
        .checkpoints
        .write(
            &stack.scope,
            "corrupt-1.json",
            "{\"task_id\": \"corrupt-1\", trailing garbage",
        )
        .await?;
    let agent = stack
        .launcher(stack.agent_template())
        .launch(&stack.scope, 0)
        .await?;
    let t = task("corrupt-1", 3, TaskFaults::default());
    stack.publish(&t).await?;
    stack.wait_accounted(ACCOUNTED).await?;
    let verdict = stack.settle(QUIET).await?;
    ensure!(verdict.is_clean(), "{verdict}");
    let r = &stack
        .ledger
        .single_result(&t.id)
        .map_err(|e| anyhow!(e))?
        .result;
    assert_eq!(
        (r.resumed_from_step, r.steps, r.attempt),
        (0, 3, 1),
        "{r:?}"
    );

    let metrics = agent.metrics().await?;
    assert_eq!(
        metrics.value("agent_checkpoint_corrupt_total", &[]),
        Some(1.0),
        "{metrics}"
    );
    let status = agent.container().status().await?;
    assert!(
        status.running && status.restart_count == 0,
        "a corrupt checkpoint must not crash the agent: {status}"
    );
    wait_checkpoint_gone(&stack.scope, &stack.checkpoints, "corrupt-1.json").await?;
    stack.teardown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_agent_started_before_the_broker_connects_once_it_is_up() -> Result<()> {
    let images = Images::from_env();
    let engine = Engine::connect().await?;
    for image in [&images.agent, &images.gateway, &images.rabbitmq] {
        engine.require_image(image).await?;
    }
    let scope = Scope::new(&engine, "broker-late").await?;
    let _gateway = Gateway::start(&scope, &images.gateway, &FaultProfile::default()).await?;
    let volume = CheckpointVolume::create(&scope, &images.toolbox, AGENT_UID).await?;
    let topology = Topology::default();
    let template =
        agentfleet::agents::AgentTemplate::new(&images.agent).env(env::BROKER_DEADLINE_SECS, 120);
    let agent = agentfleet::agents::AgentLauncher::new(template, topology.clone(), &volume)
        .launch(&scope, 0)
        .await?;

    // Alive but not ready: it is waiting for the broker, not crash-looping.
    until(
        "the agent's /healthz",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            match agent.http_status("/healthz").await {
                Ok(200) => Probe::Ready(()),
                Ok(code) => Probe::NotYet(format!("/healthz answered {code}")),
                Err(e) => Probe::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    assert_eq!(
        agent.http_status("/readyz").await?,
        503,
        "ready without a broker"
    );

    let broker = RabbitMq::start(&scope, &images.rabbitmq, rabbitmq::DEFAULT_START_TIMEOUT).await?;
    let queue = broker.client(topology).await?;
    let mut outcomes = queue.outcomes().await?;
    let mut ledger = Ledger::new();
    let t = task("late-1", 2, TaskFaults::default());
    queue.publish_task(&t).await?;
    ledger.published(&t.id);
    ledger
        .wait_accounted(&mut outcomes, Duration::from_secs(60))
        .await?;
    let r = &ledger.single_result(&t.id).map_err(|e| anyhow!(e))?.result;
    assert_eq!((r.agent_index, r.steps), (0, 2), "{r:?}");
    let status = agent.container().status().await?;
    assert!(status.running && status.restart_count == 0, "{status}");
    assert_eq!(agent.http_status("/readyz").await?, 200);
    scope.teardown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_agent_gives_up_on_an_unreachable_broker_with_exit_69_naming_the_host() -> Result<()>
{
    let images = Images::from_env();
    let engine = Engine::connect().await?;
    engine.require_image(&images.agent).await?;
    let scope = Scope::new(&engine, "broker-deadline").await?;
    let volume = CheckpointVolume::create(&scope, &images.toolbox, AGENT_UID).await?;
    let password = "pw-never-logged-7f3a";
    let deadline_secs = 3;
    let template = agentfleet::agents::AgentTemplate::new(&images.agent)
        .env(env::BROKER_DEADLINE_SECS, deadline_secs);
    let launcher = agentfleet::agents::AgentLauncher::new(template, Topology::default(), &volume)
        .broker_url(format!("amqp://fleet:{password}@no-broker-here:5672/%2f"));
    let started = Instant::now();
    let agent = launcher.launch(&scope, 0).await?;
    let status = agent.container().wait_exit(Duration::from_secs(30)).await?;
    let took = started.elapsed();
    let logs = agent.container().logs().await?;
    assert_eq!(status.exit_code, Some(69), "{status}; logs:\n{logs}");
    assert!(
        took >= Duration::from_secs(deadline_secs) - Duration::from_millis(500),
        "gave up after {took:?}, before its {deadline_secs} s deadline"
    );
    assert!(
        logs.contains("no-broker-here"),
        "the error does not name the broker host:\n{logs}"
    );
    assert!(
        !logs.contains(password),
        "the broker password appears in the logs:\n{logs}"
    );
    scope.teardown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_agent_metrics_are_scrapable_from_the_host_under_a_memory_limit() -> Result<()> {
    let mut stack = Stack::up("metrics").await?;
    let agent = stack
        .launcher(stack.agent_template().memory_mib(32))
        .launch(&stack.scope, 0)
        .await?;
    let t = task("metrics-1", 2, TaskFaults::default());
    stack.publish(&t).await?;
    stack.wait_accounted(ACCOUNTED).await?;

    let success = [("status", "success")];
    agent
        .wait_for_metric(
            "agent_tasks_completed_total",
            &success,
            Duration::from_secs(10),
            |v| v == 1.0,
        )
        .await?;
    let metrics = agent.metrics().await?;
    for family in [
        "agent_tasks_completed",
        "agent_task_duration_seconds",
        "agent_llm_tokens",
    ] {
        assert!(
            metrics.has_family(family),
            "/metrics lacks {family}:\n{metrics}"
        );
    }
    assert_eq!(
        metrics.value("agent_task_duration_seconds_count", &[]),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metrics.value_or_zero("agent_llm_tokens_total", &[("model", "model-a")]) > 0.0,
        "{metrics}"
    );
    assert_eq!(agent.http_status("/healthz").await?, 200);
    // The pod template's hardening reached the container, and the agent works under it.
    let security = agent.container().security().await?;
    assert_eq!(security.cap_drop, ["ALL"], "{security:?}");
    assert!(
        security
            .security_opt
            .iter()
            .any(|o| o == "no-new-privileges")
            && security.read_only_rootfs,
        "{security:?}"
    );
    let status = agent.container().status().await?;
    if !status.running || status.oom_killed || status.restart_count != 0 {
        bail!("the agent did not run cleanly in 32 MiB: {status}");
    }
    stack.teardown().await?;
    Ok(())
}
