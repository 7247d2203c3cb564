//! Teardown hygiene: nothing a scenario creates outlives it, whether it ends normally, by panic
//! or by Ctrl-C.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentfleet::docker::Engine;
use agentfleet::runtime::docker::DockerRuntime;
use agentfleet::runtime::{AgentSet, Runtime, Session, SessionSetup};
use agentfleet::scenario::ScenarioId;
use agentfleet::scope::INTERRUPTED_EXIT_CODE;
use agentfleet::sweep::SCOPE_LABEL;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
};

/// Containers, networks and volumes still labelled with `scope_id`.
async fn leftovers(engine: &Engine, scope_id: &str) -> Vec<String> {
    let label = format!("{SCOPE_LABEL}={scope_id}");
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let docker = engine.raw();
    let mut found = Vec::new();
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("list containers");
    found.extend(
        containers
            .into_iter()
            .map(|c| format!("container {:?}", c.names)),
    );
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .expect("list networks");
    found.extend(
        networks
            .into_iter()
            .map(|n| format!("network {:?}", n.name)),
    );
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .expect("list volumes");
    found.extend(
        volumes
            .volumes
            .into_iter()
            .flatten()
            .map(|v| format!("volume {}", v.name)),
    );
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_removes_every_object_of_the_live_scopes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scope_ctrl_c_child"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the helper");
    let stdout = child.stdout.take().expect("piped stdout");
    // Blocking read on a helper thread, bounded by the channel timeout below.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(60));
    let Ok(line) = ready else {
        let _ = child.kill();
        let output = child.wait_with_output().expect("helper output");
        panic!(
            "the helper never got ready: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let scope_id = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();
    let engine = Engine::connect().await.expect("Docker");
    assert!(
        !leftovers(&engine, &scope_id).await.is_empty(),
        "the helper created nothing to remove"
    );

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT failed");
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait for the helper") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the helper did not exit within 60 s of SIGINT"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        exit.code(),
        Some(INTERRUPTED_EXIT_CODE),
        "exit after Ctrl-C: {exit:?}"
    );
    let left = leftovers(&engine, &scope_id).await;
    assert!(left.is_empty(), "objects left after Ctrl-C: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_dropped_by_a_panic_leaves_nothing_behind() {
    let runtime = DockerRuntime::connect().await.expect("Docker");
    let engine = runtime.engine().clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let panicked = tokio::spawn(async move {
        let session = runtime
            .open(ScenarioId::Oom, &SessionSetup::default())
            .await
            .expect("open a session");
        session
            .start_agents(&AgentSet::new("doomed", [0]))
            .await
            .expect("start an agent");
        tx.send(session.scope().id().to_owned())
            .expect("send the scope id");
        panic!("scenario panics with a live session and agent");
    })
    .await;
    assert!(
        panicked.is_err_and(|e| e.is_panic()),
        "the task was meant to panic"
    );
    let scope_id = rx.await.expect("scope id");
    let left = leftovers(&engine, &scope_id).await;
    assert!(left.is_empty(), "objects left after a panic: {left:?}");
}
