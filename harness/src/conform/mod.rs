//! `agentfleet conform --image IMAGE`: the agent contract (docs/agent-contract.md), clause by
//! clause, against a custom agent image on the Docker runtime.
//!
//! Each clause has one check ([`checks`]) built from the harness's own pieces (the
//! [`crate::stack::Stack`], the agent launcher, the ledger, the gateway's request log), each in
//! its own scope so the checks run concurrently. The image may declare optional clauses it
//! lacks with the label [`declared::OPTIONAL_MISSING_LABEL`]; those are skipped, never passed.

pub mod check;
pub mod checks;
pub mod clause;
pub mod declared;
pub mod outcome;
pub mod output;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;

use crate::docker::{DockerError, Engine};
use crate::report::style::stdout_wants_colour;

use check::CheckError;
use clause::Clause;
use declared::{OPTIONAL_MISSING_LABEL, parse_optional_missing};
use outcome::{ClauseOutcome, ConformReport, Status};

/// Report format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Junit,
}

/// `agentfleet conform`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConformArgs {
    /// The agent image to check (must be present locally; nothing is pulled).
    #[arg(long)]
    pub image: String,
    /// Check only this clause (number from docs/agent-contract.md); repeatable.
    #[arg(long = "clause", value_name = "N", value_parser = clap::value_parser!(u8).range(1..=8))]
    pub clauses: Vec<u8>,
    /// Format of the report on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Where conform.json and conform.junit.xml are written.
    #[arg(long, default_value = "target/agentfleet")]
    pub report_dir: PathBuf,
    /// Clause checks run at once (each brings up its own broker and gateway).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub jobs: u8,
}

/// Runs the selected clauses, prints the report, writes it to `--report-dir`. Exit code 0 when
/// conformant, 1 when a clause failed or could not be checked, 130 on Ctrl-C.
pub async fn run(args: &ConformArgs) -> anyhow::Result<ExitCode> {
    crate::tls::install_crypto_provider();
    let engine = Engine::connect()
        .await
        .context("agentfleet conform needs a Docker daemon")?;
    let declared = declared_missing(&engine, &args.image).await?;
    let selected: BTreeSet<Clause> = if args.clauses.is_empty() {
        Clause::ALL.into_iter().collect()
    } else {
        args.clauses
            .iter()
            .filter_map(|n| Clause::from_number(*n))
            .collect()
    };

    let started = Instant::now();
    let checking = check_all(&args.image, &selected, &declared, usize::from(args.jobs));
    let clauses = tokio::select! {
        clauses = checking => clauses,
        _ = tokio::signal::ctrl_c() => {
            // Dropping the checks drops their stacks, whose scopes remove every container,
            // network and volume they made.
            eprintln!(
                "interrupted: tearing down the checks' containers (a check interrupted while its \
                 broker was starting can leave objects behind: `agentfleet sweep` removes them)"
            );
            return Ok(ExitCode::from(130));
        }
    };
    let report = ConformReport {
        image: args.image.clone(),
        declared_missing: declared.iter().map(|c| c.number()).collect(),
        clauses,
        duration: started.elapsed(),
    };
    let stdout = match args.format {
        Format::Human => output::human(&report, stdout_wants_colour()),
        Format::Json => output::json(&report),
        Format::Junit => output::junit(&report),
    };
    print!("{stdout}");
    write_files(&args.report_dir, &report)?;
    Ok(if report.is_conformant() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the library side of `conform` without printing: what the tests drive.
pub async fn check_image(image: &str, clauses: &[Clause]) -> anyhow::Result<ConformReport> {
    crate::tls::install_crypto_provider();
    let engine = Engine::connect().await?;
    let declared = declared_missing(&engine, image).await?;
    let started = Instant::now();
    let selected = clauses.iter().copied().collect();
    let clauses = check_all(image, &selected, &declared, 4).await;
    Ok(ConformReport {
        image: image.to_owned(),
        declared_missing: declared.iter().map(|c| c.number()).collect(),
        clauses,
        duration: started.elapsed(),
    })
}

async fn check_all(
    image: &str,
    selected: &BTreeSet<Clause>,
    declared: &BTreeSet<Clause>,
    jobs: usize,
) -> Vec<ClauseOutcome> {
    let mut outcomes: Vec<ClauseOutcome> = futures::stream::iter(Clause::ALL)
        .map(|clause| async move {
            if !selected.contains(&clause) {
                return ClauseOutcome::new(
                    clause,
                    Status::Skipped,
                    vec!["not selected (--clause)".into()],
                    Duration::ZERO,
                );
            }
            if declared.contains(&clause) {
                return ClauseOutcome::new(
                    clause,
                    Status::Skipped,
                    vec![format!(
                        "the image declares it lacks this optional clause ({OPTIONAL_MISSING_LABEL})"
                    )],
                    Duration::ZERO,
                );
            }
            let started = Instant::now();
            let result = checks::run(clause, image).await;
            let took = started.elapsed();
            match result {
                Ok(evidence) => ClauseOutcome::new(clause, Status::Passed, evidence, took),
                Err(CheckError::Violation(e)) => {
                    ClauseOutcome::new(clause, Status::Failed, vec![e], took)
                }
                Err(e @ CheckError::Harness(_)) => {
                    ClauseOutcome::new(clause, Status::Error, vec![e.to_string()], took)
                }
            }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    outcomes.sort_by_key(|c| c.number);
    outcomes
}

/// The image's declared missing clauses; fails if the image is absent or the label is invalid.
async fn declared_missing(engine: &Engine, image: &str) -> anyhow::Result<BTreeSet<Clause>> {
    engine.require_image(image).await?;
    let inspect = engine
        .raw()
        .inspect_image(image)
        .await
        .map_err(DockerError::api("inspect image", image))?;
    let labels = inspect.config.and_then(|c| c.labels).unwrap_or_default();
    match labels.get(OPTIONAL_MISSING_LABEL) {
        None => Ok(BTreeSet::new()),
        Some(value) => parse_optional_missing(value)
            .with_context(|| format!("image {image} carries an invalid contract label")),
    }
}

fn write_files(dir: &Path, report: &ConformReport) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "creating the report directory {} (--report-dir)",
            dir.display()
        )
    })?;
    for (name, text) in [
        ("conform.json", output::json(report)),
        ("conform.junit.xml", output::junit(report)),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
