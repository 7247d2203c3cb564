//! network-isolation: from the agents' network position, the queue and the gateway are
//! reachable and neither a canary service nor an address outside the agents' networks is; and
//! the fleet, so isolated, completes its tasks.
//!
//! Every "unreachable" is only believed after a control probe from an unrestricted position
//! reached the same target: a canary that is down would otherwise pass as isolated (the same
//! reason the kind runtime checks a deny-all canary before trusting NetworkPolicy results).
//!
//! On a cluster the whole truth table is checked as well: after the CNI canary, every cell of
//! `agentfleet netpol`'s expected matrix that a pod can probe (agent rows; the platform's
//! Services, DNS over TCP and the API server as columns) is probed from an agent-labelled pod,
//! and a mismatch prints both matrices and a command to reproduce each wrong cell. On Docker
//! that check is recorded as skipped.

use std::time::Duration;

use agentfleet_protocol::TaskFaults;

use super::Findings;
use super::common::{Books, SETTLE, ScenarioError, judge_ledger, task, wait_consumers};
use crate::runtime::{AgentSet, ClusterOps, ProbeOutcome, ProbeTarget, Session};

/// Name of the cluster-only check of this scenario.
pub const MATRIX_CHECK: &str = "NetworkPolicy truth table matches the probes";

const AGENTS: u32 = 2;
const TASKS: u32 = 4;

pub async fn run<S: Session>(session: &S, findings: &mut Findings) -> Result<(), ScenarioError> {
    let platform = session.platform();
    if platform.unreachable.is_empty() {
        findings
            .reasons
            .push("the session provides no canary or outside address to probe".into());
    }
    for target in &platform.unreachable {
        let control = session.probe_control(target).await?;
        findings.check(control.connected, || {
            format!(
                "control probe could not reach the {} ({}:{}) from an unrestricted position ({}); its unreachability from the agents would prove nothing",
                target.role, target.host, target.port, control.detail
            )
        });
    }
    let mut reached_allowed = 0;
    for target in &platform.reachable {
        let probe = probe_as_agent(session, findings, target).await?;
        findings.check(probe.connected, || {
            format!(
                "the agents cannot reach the {} at {}:{}: {}",
                target.role, target.host, target.port, probe.detail
            )
        });
        reached_allowed += usize::from(probe.connected);
    }
    let mut reached_forbidden = 0;
    for target in &platform.unreachable {
        let probe = probe_as_agent(session, findings, target).await?;
        findings.check(!probe.connected, || {
            format!(
                "the agents reach the {} at {}:{}, which no policy allows",
                target.role, target.host, target.port
            )
        });
        reached_forbidden += usize::from(probe.connected);
    }
    findings.bounded(
        "allowed peers reachable",
        reached_allowed as f64,
        "targets",
        &format!("= {}", platform.reachable.len()),
        reached_allowed == platform.reachable.len(),
    );
    findings.bounded(
        "forbidden targets reachable",
        reached_forbidden as f64,
        "targets",
        "= 0",
        reached_forbidden == 0,
    );

    match session.cluster() {
        Ok(cluster) => {
            let verdict = cluster.policy_matrix().await?;
            findings.cluster_check(MATRIX_CHECK, verdict);
        }
        Err(reason) => findings.skip_checks(&[MATRIX_CHECK], &reason),
    }

    // The isolated fleet still works.
    let mut books = Books::open(platform).await?;
    session
        .start_agents(&AgentSet::new("isolated", 0..AGENTS))
        .await?;
    wait_consumers(platform, AGENTS, Duration::from_secs(60)).await?;
    for n in 0..TASKS {
        books
            .publish(
                platform,
                &task(&format!("isolated-{n}"), 3, TaskFaults::default()),
            )
            .await?;
    }
    books.wait_accounted(Duration::from_secs(60)).await?;
    books.settle(SETTLE).await?;
    let verdict = judge_ledger(findings, &books, platform).await?;
    findings.bounded(
        "tasks completed by the isolated fleet",
        verdict.completed as f64,
        "tasks",
        &format!("= {TASKS}"),
        verdict.completed == TASKS as usize,
    );
    Ok(())
}

/// Probes `target` from the agents' position and records the outcome on the timeline, whichever
/// way the check on it goes.
async fn probe_as_agent<S: Session>(
    session: &S,
    findings: &mut Findings,
    target: &ProbeTarget,
) -> Result<ProbeOutcome, ScenarioError> {
    let probe = session.probe(target).await?;
    findings.event(
        "probe",
        format!(
            "{} {}:{} -> {}",
            target.role, target.host, target.port, probe.detail
        ),
    );
    Ok(probe)
}
