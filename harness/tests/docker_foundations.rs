//! The Docker layer against the real engine: scopes, limits, events, volumes, the broker.
//!
//! Needs a Docker daemon and `agentfleet/rabbitmq:3.10.8` (`cargo xtask images`); without them
//! these tests fail with the message saying so, they do not skip.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agentfleet::Scope;
use agentfleet::checkpoints::{AGENT_UID, CheckpointVolume};
use agentfleet::docker::{ContainerSpec, DockerError, Engine, Restart};
use agentfleet::images::Images;
use agentfleet::queue::DeadLetterCause;
use agentfleet::queue::Outcome;
use agentfleet::services::gateway::Gateway;
use agentfleet::services::rabbitmq::{self, RabbitMq};
use agentfleet::sweep::SCOPE_LABEL;
use agentfleet::wait::{Probe, until};
use agentfleet_protocol::gateway::{ChatMessage, ChatRequest, FaultProfile, Latency};
use agentfleet_protocol::{Task, TaskFaults, Topology};
use anyhow::{Context, Result};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
};
use futures::StreamExt;

async fn engine() -> Result<Engine> {
    Ok(Engine::connect().await?)
}

/// An image with a shell (the agent and gateway images have none).
fn shell_image() -> String {
    Images::from_env().toolbox
}

/// Counts the containers, networks and volumes labelled with `scope_id`.
async fn labelled(engine: &Engine, scope_id: &str) -> Result<(usize, usize, usize)> {
    let filters = HashMap::from([("label", vec![format!("{SCOPE_LABEL}={scope_id}")])]);
    let docker = engine.raw();
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await?;
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await?;
    Ok((
        containers.len(),
        networks.len(),
        volumes.volumes.unwrap_or_default().len(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_missing_image_error_says_to_build_images() -> Result<()> {
    let engine = engine().await?;
    let err = engine
        .require_image("agentfleet/no-such-image:0.0.0")
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::ImageMissing { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("agentfleet/no-such-image:0.0.0") && text.contains("cargo xtask images"),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_scope_removes_everything_on_drop_and_on_teardown() -> Result<()> {
    let engine = engine().await?;
    engine.require_image(&shell_image()).await?;

    let scope = Scope::new(&engine, "drop-test").await?;
    let id = scope.id().to_owned();
    scope.create_volume("data").await?;
    scope
        .run(
            ContainerSpec::new("sleeper", shell_image())
                .entrypoint(["sleep", "300"])
                .network(scope.agents_network(), ["s"]),
        )
        .await?;
    assert_eq!(labelled(&engine, &id).await?, (1, 2, 1));
    drop(scope);
    assert_eq!(
        labelled(&engine, &id).await?,
        (0, 0, 0),
        "Drop left objects of {id} behind"
    );

    let scope = Scope::new(&engine, "teardown-test").await?;
    let id = scope.id().to_owned();
    scope.create_volume("data").await?;
    let swept = scope.teardown().await?;
    assert_eq!(
        (swept.networks.len(), swept.volumes.len()),
        (2, 1),
        "{swept:?}"
    );
    assert_eq!(labelled(&engine, &id).await?, (0, 0, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_scope_is_cleaned_when_the_test_panics() -> Result<()> {
    let engine = engine().await?;
    engine.require_image(&shell_image()).await?;
    let (tx, rx) = std::sync::mpsc::channel();
    let engine2 = engine.clone();
    let handle = tokio::spawn(async move {
        let scope = Scope::new(&engine2, "panic-test").await.expect("scope");
        tx.send(scope.id().to_owned()).expect("send id");
        panic!("deliberate panic with scope {} alive", scope.id());
    });
    assert!(handle.await.is_err(), "the task should have panicked");
    let id = rx.recv()?;
    assert_eq!(labelled(&engine, &id).await?, (0, 0, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_events_report_sigkill_sigterm_grace_and_oom() -> Result<()> {
    let engine = engine().await?;
    let image = shell_image();
    engine.require_image(&image).await?;
    let scope = Scope::new(&engine, "events").await?;
    let recorder = scope.record_events();

    // SIGKILL: 137, not OOM.
    let c = scope
        .run(ContainerSpec::new("killed", &image).entrypoint(["sleep", "300"]))
        .await?;
    c.kill("SIGKILL").await?;
    let status = c.wait_exit(Duration::from_secs(20)).await?;
    assert_eq!(
        (status.exit_code, status.oom_killed),
        (Some(137), false),
        "{status}"
    );

    // docker stop on a process that ignores SIGTERM: killed at the grace deadline, not before.
    let c = scope
        .run(ContainerSpec::new("stubborn", &image).entrypoint([
            "sh",
            "-c",
            "trap '' TERM; while :; do sleep 1; done",
        ]))
        .await?;
    let started = Instant::now();
    c.stop(Duration::from_secs(2)).await?;
    let took = started.elapsed();
    let status = c.wait_exit(Duration::from_secs(20)).await?;
    assert_eq!(status.exit_code, Some(137), "{status}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "stop took {took:?}"
    );

    // A memory limit with swap pinned: a real OOM kill, and on-failure restarts counted.
    let hog = "x=$(head -c 400000000 /dev/zero | tr '\\0' x); echo survived";
    let c = scope
        .run(
            ContainerSpec::new("hog", &image)
                .entrypoint(["sh", "-c", hog])
                .memory_mib(32)
                .restart(Restart::OnFailure { max_restarts: 1 }),
        )
        .await?;
    let status = c
        .wait_for(
            "two OOM kills (one restart)",
            Duration::from_secs(60),
            |s| s.has_exited() && s.restart_count >= 1,
        )
        .await?;
    assert!(status.oom_killed, "{status}");
    assert_eq!(status.exit_code, Some(137), "{status}");
    assert_eq!(status.restart_count, 1, "{status}");
    // The recorder saw the OOM kills, which a later inspect can no longer tell apart (the
    // kernel may report several OOM events per kill: one per process it had to kill).
    until(
        "recorded oom events",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let ooms = recorder.of(c.id(), "oom").len();
            async move {
                if ooms >= 2 {
                    Probe::Ready(ooms)
                } else {
                    Probe::NotYet(format!("{ooms} oom events"))
                }
            }
        },
    )
    .await?;
    let dies: Vec<Option<i64>> = recorder
        .of(c.id(), "die")
        .iter()
        .map(|e| e.exit_code)
        .collect();
    assert_eq!(dies, vec![Some(137), Some(137)]);

    // A wait that cannot succeed reports the last state.
    let c = scope
        .run(ContainerSpec::new("long", &image).entrypoint(["sleep", "300"]))
        .await?;
    let err = c.wait_exit(Duration::from_millis(500)).await.unwrap_err();
    assert!(err.to_string().contains("last state: running"), "{err}");

    // Logs are followed until a line matches; a log that ends first says so.
    let c = scope
        .run(ContainerSpec::new("talker", &image).entrypoint([
            "sh",
            "-c",
            "echo one; sleep 1; echo two; echo three >&2",
        ]))
        .await?;
    let line = c
        .wait_for_log("says two", Duration::from_secs(10), |l| l == "two")
        .await?;
    assert_eq!(line, "two");
    let err = c
        .wait_for_log("says four", Duration::from_secs(10), |l| l == "four")
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::LogEnded { .. }), "{err:?}");
    assert!(err.to_string().contains("three"), "{err}");

    scope.teardown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_checkpoint_volume_is_owned_by_the_agent_user_and_inspectable() -> Result<()> {
    let engine = engine().await?;
    let image = shell_image();
    let scope = Scope::new(&engine, "ckpt-volume").await?;
    let volume = CheckpointVolume::create(&scope, &image, AGENT_UID).await?;
    assert!(volume.list(&scope).await?.is_empty());
    assert_eq!(volume.read(&scope, "t-1.json").await?, None);

    // The agent's uid can write into it (the reference agent image has no shell to try with).
    let c = scope
        .run(
            ContainerSpec::new("writer", &image)
                .entrypoint([
                    "sh",
                    "-c",
                    "echo hi > /checkpoints/by-agent && ls -ln /checkpoints/by-agent",
                ])
                .user(AGENT_UID.to_string())
                .volume(volume.name(), "/checkpoints"),
        )
        .await?;
    let status = c.wait_exit(Duration::from_secs(20)).await?;
    let logs = c.logs().await?;
    assert_eq!(status.exit_code, Some(0), "{status}: {logs}");
    assert!(logs.contains(&format!(" 1 {AGENT_UID} ")), "{logs}");

    volume.write(&scope, "t-1.json", "{garbage").await?;
    assert_eq!(
        volume.read(&scope, "t-1.json").await?.as_deref(),
        Some("{garbage")
    );
    assert_eq!(
        volume.list(&scope).await?,
        vec!["by-agent".to_owned(), "t-1.json".to_owned()]
    );
    scope.teardown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_rabbitmq_accepts_the_topology_and_dead_letters_at_the_delivery_limit() -> Result<()>
{
    let images = Images::from_env();
    let engine = engine().await?;
    let scope = Scope::new(&engine, "rabbitmq").await?;
    let started = Instant::now();
    let broker = RabbitMq::start(&scope, &images.rabbitmq, rabbitmq::DEFAULT_START_TIMEOUT).await?;
    eprintln!("RabbitMQ ready in {:?}", started.elapsed());

    let topology = Topology::default();
    let queue = broker.client(topology.clone()).await?;
    // Declaring twice with the same arguments is accepted (the agent does it too).
    queue.declare_topology().await?;
    let mut outcomes = queue.outcomes().await?;

    let task = Task {
        id: "t-1".into(),
        model: "m".into(),
        prompt: "p".into(),
        steps: 1,
        faults: TaskFaults::default(),
    };
    queue.publish_task(&task).await?;
    let depth = queue.depth(&topology.task_queue).await?;
    assert_eq!((depth.ready, depth.consumers), (1, 0));
    // The management API agrees once its (sampled) statistics catch up.
    let management = broker.management().clone();
    let stats = until(
        "the management API to count the task",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || {
            let (management, queue) = (management.clone(), topology.task_queue.clone());
            async move {
                match management.queue_stats(&queue).await {
                    Ok(stats) if stats.ready == 1 => Probe::Ready(stats),
                    Ok(stats) => Probe::NotYet(format!("{stats:?}")),
                    Err(e) => Probe::NotYet(e.to_string()),
                }
            }
        },
    )
    .await?;
    assert_eq!((stats.ready, stats.unacked, stats.consumers), (1, 0, 0));

    // Reject with requeue until the quorum queue's delivery limit dead-letters it.
    let consumer_conn =
        lapin::Connection::connect(broker.host_url(), lapin::ConnectionProperties::default())
            .await?;
    let channel = consumer_conn.create_channel().await?;
    let mut deliveries = channel
        .basic_consume(
            topology.task_queue.as_str().into(),
            "rejecter".into(),
            lapin::options::BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await?;
    let mut rejected = 0;
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            tokio::select! {
                delivery = deliveries.next() => {
                    let delivery = delivery.context("the task consumer ended")??;
                    let requeue = lapin::options::BasicNackOptions { requeue: true, ..Default::default() };
                    delivery.acker.nack(requeue).await?;
                    rejected += 1;
                }
                outcome = outcomes.next() => return outcome.context("outcomes ended")?.map_err(anyhow::Error::from),
            }
        }
    })
    .await
    .with_context(|| format!("no dead letter within 20 s after {rejected} rejections"))??;
    let Outcome::DeadLetter(dead) = outcome else {
        anyhow::bail!("expected a dead letter, got {outcome:?}")
    };
    assert_eq!(dead.task_id.as_deref(), Some("t-1"));
    assert!(
        matches!(&dead.cause, DeadLetterCause::Broker { reason } if reason == "delivery_limit"),
        "{:?}",
        dead.cause
    );
    assert_eq!(
        rejected,
        topology.delivery_limit + 1,
        "deliveries before dead-lettering"
    );
    scope.teardown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_gateway_admin_client_round_trips() -> Result<()> {
    let images = Images::from_env();
    let engine = engine().await?;
    let scope = Scope::new(&engine, "gateway-admin").await?;
    let gateway = Gateway::start(&scope, &images.gateway, &FaultProfile::default()).await?;
    let admin = gateway.admin();

    let profile = FaultProfile {
        rate_429: 0.25,
        latency: Latency::Fixed { ms: 5 },
        seed: Some(7),
        ..FaultProfile::default()
    };
    admin.set_faults(&profile).await?;
    assert_eq!(admin.faults().await?, profile);
    admin.set_faults(&FaultProfile::default()).await?;

    agentfleet::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    let chat = |agent: &'static str| {
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "hello".into(),
            }],
            max_tokens: None,
        };
        http.post(format!("{}/v1/chat/completions", admin.base_url()))
            .header(agentfleet_protocol::gateway::AGENT_INDEX_HEADER, agent)
            .header(agentfleet_protocol::gateway::TASK_ID_HEADER, "t-1")
            .json(&request)
            .send()
    };
    assert_eq!(chat("3").await?.status(), 200);
    admin.start_outage(Duration::from_secs(30), 503).await?;
    assert_eq!(chat("3").await?.status(), 503);

    let log = admin.requests().await?;
    let statuses: Vec<(u16, Option<u32>)> = log.iter().map(|r| (r.status, r.agent_index)).collect();
    assert_eq!(statuses, vec![(200, Some(3)), (503, Some(3))]);
    assert_eq!(admin.requests_since(log[1].at_ms).await?.len(), 1);
    let metrics = admin.metrics().await?;
    assert!(metrics.has_family("gateway_requests"), "{metrics}");
    admin.clear_requests().await?;
    assert!(admin.requests().await?.is_empty());

    let err = admin
        .set_faults(&FaultProfile {
            rate_500: 2.0,
            ..FaultProfile::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
    scope.teardown().await?;
    Ok(())
}
