//! `agentfleet conform` against the reference agent and the fixture images that each break one
//! contract clause on purpose (fixtures/images/conform-*/, built by `cargo xtask images`): the
//! reference must pass every clause, each fixture must fail exactly its clause and pass the rest.
//! A check that cannot run (status "error") fails the test: it proves nothing either way.
//!
//! Needs a Docker daemon and the images; without them a test fails saying so. Names start with
//! `docker_` so `cargo nextest run -E 'not test(/^docker_/)'` leaves them out.

use std::time::Duration;

use agentfleet::conform::check_image;
use agentfleet::conform::clause::Clause;
use agentfleet::conform::outcome::{ConformReport, Status};
use agentfleet::conform::output;
use anyhow::Result;
use rstest::rstest;

/// One conform run, every clause; the budget the brief sets for it.
const RUN_BUDGET: Duration = Duration::from_secs(150);

async fn conform(image: &str) -> Result<ConformReport> {
    let report = tokio::time::timeout(RUN_BUDGET, check_image(image, &Clause::ALL))
        .await
        .map_err(|_| anyhow::anyhow!("conform {image} took longer than {RUN_BUDGET:?}"))??;
    eprintln!("{}", output::human(&report, false));
    Ok(report)
}

/// Fails unless exactly the clauses in `failing` failed and every other clause passed.
fn assert_fails_exactly(report: &ConformReport, failing: &[Clause]) {
    let table = output::human(report, false);
    assert_eq!(report.clauses.len(), Clause::ALL.len(), "{table}");
    for outcome in &report.clauses {
        let clause = Clause::from_number(outcome.number).expect("a known clause");
        let expected = if failing.contains(&clause) {
            Status::Failed
        } else {
            Status::Passed
        };
        assert_eq!(
            outcome.status, expected,
            "{}: clause {clause} is {:?}, expected {expected:?}\n{table}",
            report.image, outcome.status
        );
        assert!(
            !outcome.evidence.is_empty(),
            "clause {clause} reported no evidence\n{table}"
        );
    }
    assert_eq!(report.is_conformant(), failing.is_empty(), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_reference_agent_passes_every_clause() -> Result<()> {
    let report = conform("agentfleet/agent:0.1.0").await?;
    assert_fails_exactly(&report, &[]);
    Ok(())
}

#[rstest]
#[case::exit_zero_on_sigterm("agentfleet/conform-exit-zero-on-sigterm:0.1.0", &[Clause::Termination])]
#[case::checkpoint_only_on_sigterm("agentfleet/conform-checkpoint-only-on-sigterm:0.1.0", &[Clause::Durability])]
#[case::no_metrics("agentfleet/conform-no-metrics:0.1.0", &[Clause::Observability])]
#[case::retry_without_backoff("agentfleet/conform-retry-without-backoff:0.1.0", &[Clause::Politeness])]
#[tokio::test(flavor = "multi_thread")]
async fn docker_fixture_fails_exactly_its_clause(
    #[case] image: &str,
    #[case] failing: &[Clause],
) -> Result<()> {
    let report = conform(image).await?;
    assert_fails_exactly(&report, failing);
    Ok(())
}

/// An image that declares optional clauses missing (the label documented in
/// docs/agent-contract.md) gets them skipped with the reason, never passed; a clause not selected
/// is skipped as such. Builds the labelled image from the local reference image (no pull).
#[tokio::test(flavor = "multi_thread")]
async fn docker_declared_optional_clauses_are_skipped_with_the_reason() -> Result<()> {
    let image = "agentfleet/conform-declares-7-8:test";
    let dockerfile = format!(
        "FROM agentfleet/agent:0.1.0\nLABEL {}=\"7, 8\"\n",
        agentfleet::conform::declared::OPTIONAL_MISSING_LABEL
    );
    let mut build = std::process::Command::new("docker")
        .args(["build", "--quiet", "--tag", image, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("running `docker build` (the docker CLI is needed): {e}"))?;
    std::io::Write::write_all(
        &mut build.stdin.take().expect("piped stdin"),
        dockerfile.as_bytes(),
    )?;
    let status = build.wait()?;
    anyhow::ensure!(status.success(), "docker build of {image} failed: {status}");

    let report = check_image(
        image,
        &[Clause::Identity, Clause::Observability, Clause::Isolation],
    )
    .await?;
    let table = output::human(&report, false);
    let status_of = |clause: Clause| {
        report
            .clauses
            .iter()
            .find(|c| c.number == clause.number())
            .map(|c| (c.status, c.evidence.join(" ")))
            .expect("every clause is reported")
    };
    assert_eq!(report.declared_missing, vec![7, 8], "{table}");
    assert_eq!(status_of(Clause::Identity).0, Status::Passed, "{table}");
    for clause in [Clause::Observability, Clause::Isolation] {
        let (status, evidence) = status_of(clause);
        assert_eq!(status, Status::Skipped, "{table}");
        assert!(evidence.contains("declares it lacks"), "{table}");
    }
    let (status, evidence) = status_of(Clause::Work);
    assert_eq!(status, Status::Skipped, "{table}");
    assert!(evidence.contains("not selected"), "{table}");
    assert!(report.is_conformant(), "{table}");
    Ok(())
}
