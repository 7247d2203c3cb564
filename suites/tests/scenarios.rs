//! The five scenarios on the Docker runtime, end to end. Each test asserts on the observed
//! figures (printed on failure with every reason), not only on the verdict.

use agentfleet::runtime::docker::DockerRuntime;
use agentfleet::scenario::{ScenarioId, ScenarioOutcome, Verdict};
use agentfleet::scenarios::{ScenarioOptions, run};
use rstest::rstest;

fn options() -> ScenarioOptions {
    ScenarioOptions {
        artifacts_dir: Some(std::env::temp_dir().join("agentfleet-scenario-artifacts")),
        ..ScenarioOptions::default()
    }
}

/// Verdict, reasons, figures and warnings, for assertion messages.
fn describe(outcome: &ScenarioOutcome) -> String {
    let mut text = format!(
        "{} on {}: {:?} in {:?}\n",
        outcome.scenario, outcome.runtime, outcome.verdict, outcome.duration
    );
    for f in &outcome.figures {
        text.push_str(&format!(
            "  {} = {} {} {}\n",
            f.name,
            f.value,
            f.unit,
            f.bound.as_deref().unwrap_or("")
        ));
    }
    for w in &outcome.warnings {
        text.push_str(&format!("  warning: {w}\n"));
    }
    if let Some(dir) = &outcome.artifacts {
        text.push_str(&format!("  artifacts: {}\n", dir.display()));
    }
    text
}

fn figure(outcome: &ScenarioOutcome, name: &str) -> f64 {
    outcome
        .figures
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no figure `{name}`:\n{}", describe(outcome)))
        .value
}

#[rstest]
#[case::scaling(ScenarioId::Scaling)]
#[case::oom(ScenarioId::Oom)]
#[case::eviction_resume(ScenarioId::EvictionResume)]
#[case::retry_storm(ScenarioId::RetryStorm)]
#[case::network_isolation(ScenarioId::NetworkIsolation)]
#[tokio::test(flavor = "multi_thread")]
async fn docker_scenario_passes(#[case] id: ScenarioId) {
    let runtime = DockerRuntime::connect().await.expect("Docker is reachable");
    let outcome = run(id, &runtime, &options()).await;
    let text = describe(&outcome);
    eprintln!("{text}");
    assert_eq!(outcome.verdict, Verdict::Passed, "{text}");
    let ledger = outcome
        .ledger
        .as_ref()
        .unwrap_or_else(|| panic!("no ledger:\n{text}"));
    assert!(
        ledger.lost.is_empty() && ledger.queue_left == 0 && ledger.published > 0,
        "{text}"
    );
    assert!(
        !outcome.timeline.samples.is_empty(),
        "no timeline samples:\n{text}"
    );
    assert!(
        outcome.warnings.iter().any(|w| w.contains("livenessProbe")),
        "unhonoured pod-spec fields not reported:\n{text}"
    );
    match id {
        ScenarioId::Scaling => {
            assert!(
                figure(&outcome, "speed-up of 4 agents over 1") >= 3.0,
                "{text}"
            );
            assert_eq!(
                figure(&outcome, "Prometheus completed tasks, four phase"),
                12.0,
                "{text}"
            );
        }
        ScenarioId::Oom => {
            assert!(
                figure(&outcome, "OOMKilled exits observed") >= 2.0,
                "{text}"
            );
            assert_eq!(
                figure(&outcome, "oom-once resumed from step"),
                2.0,
                "{text}"
            );
            assert_eq!(figure(&outcome, "oom-always dead letters"), 1.0, "{text}");
        }
        ScenarioId::EvictionResume => {
            assert_eq!(
                figure(&outcome, "graceful agent exit code"),
                143.0,
                "{text}"
            );
            assert_eq!(
                figure(&outcome, "SIGTERM-ignoring agent exit code"),
                137.0,
                "{text}"
            );
            assert!(
                figure(&outcome, "stubborn task resumed from step") > 0.0,
                "{text}"
            );
        }
        ScenarioId::RetryStorm => {
            assert_eq!(
                figure(&outcome, "agents whose breaker opened"),
                20.0,
                "{text}"
            );
            assert!(
                figure(&outcome, "fleet request rate in the outage's second half") > 0.0,
                "{text}"
            );
        }
        ScenarioId::NetworkIsolation => {
            assert_eq!(
                figure(&outcome, "forbidden targets reachable"),
                0.0,
                "{text}"
            );
            assert_eq!(figure(&outcome, "allowed peers reachable"), 2.0, "{text}");
        }
    }
}

/// The retry-storm bound is a real check: without backoff and breaker the fleet breaks it.
#[tokio::test(flavor = "multi_thread")]
async fn docker_retry_storm_without_backoff_violates_the_rate_bound() {
    let runtime = DockerRuntime::connect().await.expect("Docker is reachable");
    // A fresh directory, so the artifact checks below cannot pass on an earlier run's files.
    let artifacts = tempfile::tempdir().expect("temp dir");
    let opts = ScenarioOptions {
        retry_storm_without_backoff: true,
        artifacts_dir: Some(artifacts.path().to_owned()),
    };
    let outcome = run(ScenarioId::RetryStorm, &runtime, &opts).await;
    let text = describe(&outcome);
    eprintln!("{text}");
    let Verdict::Failed { reasons } = &outcome.verdict else {
        panic!("expected the bound to be violated:\n{text}");
    };
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("fleet request rate in the outage's second half")),
        "{reasons:#?}\n{text}"
    );
    let rate = outcome
        .figures
        .iter()
        .find(|f| f.name.starts_with("fleet request rate"))
        .expect("rate figure");
    let bound: f64 = rate
        .bound
        .as_deref()
        .and_then(|b| b.rsplit("= ").next())
        .and_then(|b| b.parse().ok())
        .expect("numeric bound");
    assert!(
        rate.value > 2.0 * bound,
        "rate {} not clearly above the bound {bound}:\n{text}",
        rate.value
    );
    // A failed scenario leaves its evidence behind.
    let dir = outcome
        .artifacts
        .as_ref()
        .unwrap_or_else(|| panic!("no artifacts for a failed run:\n{text}"));
    for file in [
        "ledger.json",
        "timeline.json",
        "reasons.txt",
        "agents.json",
        "runtime-events.json",
    ] {
        assert!(
            dir.join(file).is_file(),
            "{file} missing in {}",
            dir.display()
        );
    }
    let agent_logs = std::fs::read_dir(dir)
        .expect("artifact dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .count();
    assert_eq!(
        agent_logs,
        20,
        "one log per agent expected in {}",
        dir.display()
    );
}

/// A runtime lacking a capability skips the scenario, with the reason.
#[tokio::test]
async fn missing_capability_is_skipped_with_a_reason() {
    use agentfleet::runtime::{Capabilities, Runtime, RuntimeError, SessionSetup};

    struct NoOom;
    impl Runtime for NoOom {
        type Session = agentfleet::runtime::docker::DockerSession;
        fn name(&self) -> &str {
            "no-oom"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                oom_detection: false,
                ..Capabilities::default()
            }
        }
        async fn open(
            &self,
            _: ScenarioId,
            _: &SessionSetup,
        ) -> Result<Self::Session, RuntimeError> {
            Err(RuntimeError::Setup(
                "must not be opened when a capability is missing".into(),
            ))
        }
    }
    let outcome = run(ScenarioId::Oom, &NoOom, &ScenarioOptions::default()).await;
    match outcome.verdict {
        Verdict::Skipped { reason } => assert!(
            reason.contains("OomDetection") && reason.contains("no-oom"),
            "{reason}"
        ),
        other => panic!("expected Skipped, got {other:?}"),
    }
}
