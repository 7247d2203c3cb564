//! The five scenarios, written once against [`Runtime`]/[`Session`], and their single entry
//! point [`run`], which the e2e runner and the suite's tests call.
//!
//! Each scenario module has one job: drive the fleet into its situation, observe, and record
//! figures and failed checks in [`Findings`]. Everything around it (capability check, session,
//! timeline sampling, artifacts on failure, teardown) happens here, once.

mod common;
pub mod eviction_resume;
pub mod network_isolation;
pub mod oom;
pub mod retry_storm;
pub mod scaling;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use crate::runtime::{Capability, Runtime, RuntimeError, RuntimeEvent, Session, SessionSetup};
use crate::scenario::{CheckOutcome, Figure, LedgerSummary, ScenarioId, ScenarioOutcome, Verdict};
use crate::timeline::{Reading, SampleSource, TimelineRecorder};
use agentfleet_cluster::checks::Verdict as CheckVerdict;

pub use common::ScenarioError;

/// Interval of the background timeline sampler.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// How a scenario is run.
#[derive(Debug, Clone, Default)]
pub struct ScenarioOptions {
    /// Where a failed scenario's evidence goes (`<dir>/<scenario>-<runtime>/`); none = nowhere.
    pub artifacts_dir: Option<PathBuf>,
    /// retry-storm only: run the fleet with backoff disabled and the breaker out of reach, the
    /// configuration that must violate the rate bound (so the check is shown able to fail).
    pub retry_storm_without_backoff: bool,
}

/// Figures, failed checks and caveats a scenario accumulates.
#[derive(Debug, Default)]
pub struct Findings {
    pub figures: Vec<Figure>,
    pub checks: Vec<CheckOutcome>,
    pub reasons: Vec<String>,
    pub warnings: Vec<String>,
    pub waiting_by_design: Duration,
    pub ledger: Option<LedgerSummary>,
    pub timeline: TimelineRecorder,
}

impl Findings {
    /// A figure with no bound.
    pub fn figure(&mut self, name: &str, value: f64, unit: &str) {
        self.figures.push(Figure::new(name, value, unit));
    }

    /// A figure checked against `bound`; `ok` is the check's result, `reason` its failure text.
    pub fn bounded(&mut self, name: &str, value: f64, unit: &str, bound: &str, ok: bool) {
        self.figures
            .push(Figure::new(name, value, unit).bounded(bound));
        if !ok {
            self.reasons.push(format!(
                "{name} = {} {unit} violates the bound {bound}",
                round(value)
            ));
        }
    }

    /// Records a failed check when `ok` is false.
    pub fn check(&mut self, ok: bool, reason: impl FnOnce() -> String) {
        if !ok {
            self.reasons.push(reason());
        }
    }

    /// Records a cluster-only check: a failure fails the scenario; a skip stays a skip in the
    /// reports (never a pass) and does not fail the scenario, whose own checks still ran.
    pub fn cluster_check(&mut self, name: &str, verdict: CheckVerdict) {
        match &verdict {
            CheckVerdict::Passed { summary } => {
                self.event("check-passed", format!("{name}: {summary}"))
            }
            CheckVerdict::Failed { reasons } => {
                self.event("check-failed", name);
                self.reasons
                    .extend(reasons.iter().map(|r| format!("{name}: {r}")));
            }
            CheckVerdict::Skipped { reason } => {
                self.event("check-skipped", format!("{name}: {reason}"))
            }
        }
        self.checks.push(CheckOutcome {
            name: name.to_owned(),
            verdict,
        });
    }

    /// Records cluster-only checks this runtime cannot run, with its reason.
    pub fn skip_checks(&mut self, names: &[&str], reason: &str) {
        for name in names {
            self.cluster_check(
                name,
                CheckVerdict::Skipped {
                    reason: reason.to_owned(),
                },
            );
        }
    }

    pub fn event(&self, kind: &str, detail: impl Into<String>) {
        self.timeline.event(kind, detail);
    }
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Capabilities each scenario needs; a missing one makes it Skipped.
pub fn required(id: ScenarioId) -> &'static [Capability] {
    match id {
        ScenarioId::Scaling => &[Capability::Prometheus, Capability::GatewayFaults],
        ScenarioId::Oom => &[Capability::OomDetection, Capability::Replacement],
        ScenarioId::EvictionResume => &[Capability::GracefulStop, Capability::Replacement],
        ScenarioId::RetryStorm => &[Capability::GatewayFaults, Capability::Prometheus],
        ScenarioId::NetworkIsolation => &[Capability::NetworkProbe, Capability::EgressIsolation],
    }
}

fn setup(id: ScenarioId) -> SessionSetup {
    SessionSetup {
        prometheus: matches!(id, ScenarioId::Scaling | ScenarioId::RetryStorm),
        canary: id == ScenarioId::NetworkIsolation,
    }
}

/// Runs one scenario on `runtime` and judges it. Never panics on a fleet's misbehaviour and
/// never returns an error: set-up problems are a Failed verdict with the reason.
pub async fn run<R: Runtime>(
    id: ScenarioId,
    runtime: &R,
    opts: &ScenarioOptions,
) -> ScenarioOutcome {
    let started = Instant::now();
    let mut findings = Findings::default();
    let outcome =
        |findings: Findings, verdict: Verdict, artifacts: Option<PathBuf>| ScenarioOutcome {
            scenario: id,
            runtime: runtime.name().to_owned(),
            verdict,
            duration: started.elapsed(),
            waiting_by_design: findings.waiting_by_design,
            figures: findings.figures,
            checks: findings.checks,
            warnings: findings.warnings,
            ledger: findings.ledger,
            timeline: findings.timeline.snapshot(),
            artifacts,
        };
    if let Some(missing) = runtime.capabilities().missing(required(id)) {
        let reason = format!(
            "runtime `{}` lacks the capability {missing:?} that {id} needs",
            runtime.name()
        );
        return outcome(findings, Verdict::Skipped { reason }, None);
    }
    findings.event("session-open", format!("{id} on {}", runtime.name()));
    let session = match runtime.open(id, &setup(id)).await {
        Ok(session) => session,
        Err(e) => {
            let verdict = Verdict::Failed {
                reasons: vec![format!("could not set the scenario up: {e}")],
            };
            return outcome(findings, verdict, None);
        }
    };
    findings.warnings.extend(session.warnings());
    let _forwarder = EventForwarder::start(&session, &findings.timeline);
    let sampler = findings.timeline.start_sampler(
        sample_source(&session, _forwarder.running.clone()),
        SAMPLE_EVERY,
    );
    findings.event("scenario-start", id.as_str());
    let result = match id {
        ScenarioId::Scaling => scaling::run(&session, &mut findings).await,
        ScenarioId::Oom => oom::run(&session, &mut findings).await,
        ScenarioId::EvictionResume => eviction_resume::run(&session, &mut findings).await,
        ScenarioId::RetryStorm => {
            retry_storm::run(&session, &mut findings, opts.retry_storm_without_backoff).await
        }
        ScenarioId::NetworkIsolation => network_isolation::run(&session, &mut findings).await,
    };
    drop(sampler);
    if let Err(e) = result {
        findings.reasons.push(e.to_string());
    }
    findings.event(
        "scenario-end",
        format!("{} failed checks", findings.reasons.len()),
    );
    let mut artifacts = None;
    if !findings.reasons.is_empty()
        && let Some(root) = &opts.artifacts_dir
    {
        let dir = root.join(format!("{id}-{}", runtime.name()));
        match write_artifacts(&session, &findings, &dir).await {
            Ok(()) => artifacts = Some(dir),
            Err(e) => findings
                .warnings
                .push(format!("artifacts not written: {e}")),
        }
    }
    drop(_forwarder);
    if let Err(e) = session.close().await {
        findings.warnings.push(format!("teardown: {e}"));
    }
    let verdict = if findings.reasons.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed {
            reasons: std::mem::take(&mut findings.reasons),
        }
    };
    outcome(findings, verdict, artifacts)
}

async fn write_artifacts<S: Session>(
    session: &S,
    findings: &Findings,
    dir: &std::path::Path,
) -> Result<(), RuntimeError> {
    // The directory belongs to this scenario and runtime: an earlier run's files would mix in.
    if tokio::fs::try_exists(dir).await.unwrap_or(false) {
        tokio::fs::remove_dir_all(dir)
            .await
            .map_err(|e| RuntimeError::Other(format!("clearing {}: {e}", dir.display())))?;
    }
    session.collect_artifacts(dir).await?;
    let io = |e: std::io::Error| RuntimeError::Other(format!("writing to {}: {e}", dir.display()));
    let ledger = serde_json::to_string_pretty(&findings.ledger).unwrap_or_default();
    tokio::fs::write(dir.join("ledger.json"), ledger)
        .await
        .map_err(io)?;
    let timeline = serde_json::to_string_pretty(&findings.timeline.snapshot()).unwrap_or_default();
    tokio::fs::write(dir.join("timeline.json"), timeline)
        .await
        .map_err(io)?;
    tokio::fs::write(dir.join("reasons.txt"), findings.reasons.join("\n"))
        .await
        .map_err(io)?;
    Ok(())
}

/// Copies runtime events into the timeline and keeps a count of running agents.
struct EventForwarder {
    running: Arc<AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl EventForwarder {
    fn start<S: Session>(session: &S, timeline: &TimelineRecorder) -> EventForwarder {
        let running = Arc::new(AtomicI64::new(0));
        let mut events = session.events();
        let (count, timeline) = (running.clone(), timeline.clone());
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match &event {
                    RuntimeEvent::Started { .. } | RuntimeEvent::Restarted { .. } => {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    RuntimeEvent::Exited { .. } => {
                        count.fetch_sub(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
                let (kind, detail) = event.describe();
                timeline.event(kind, detail);
            }
        });
        EventForwarder { running, task }
    }
}

impl Drop for EventForwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the sampler reads: queue counters (management API), running agents (from events),
/// the gateway's request counter.
fn sample_source<S: Session>(session: &S, running: Arc<AtomicI64>) -> SampleSource {
    let platform = session.platform();
    let management = platform.management.clone();
    let queue = platform.queue.topology().task_queue.clone();
    let gateway = platform.gateway.clone();
    Arc::new(move || {
        let (management, queue, gateway, running) = (
            management.clone(),
            queue.clone(),
            gateway.clone(),
            running.clone(),
        );
        Box::pin(async move {
            let stats = match &management {
                Some(m) => m.queue_stats(&queue).await.ok(),
                None => None,
            };
            let requests = gateway
                .metrics()
                .await
                .ok()
                .map(|m| m.value_or_zero("gateway_requests_total", &[]) as u64);
            Reading {
                queue_ready: stats.map(|s| s.ready as u32),
                queue_unacked: stats.map(|s| s.unacked as u32),
                agents_running: Some(running.load(Ordering::SeqCst).max(0) as u32),
                gateway_requests: requests,
            }
        })
    })
}
