//! eviction-resume: an agent stopped mid-task with the template's grace period (SIGTERM, then
//! SIGKILL at the deadline; on Kubernetes, the Eviction API) checkpoints, exits non-zero (143:
//! work left unfinished, so an Indexed Job does not count the index complete), and a
//! replacement resumes the task at or after the step reached. An agent that ignores SIGTERM
//! (`AGENT_TEST_IGNORE_SIGTERM=true`) is killed at the grace deadline, and its task still
//! completes from the last per-step checkpoint.
//!
//! On a cluster the fleet's PodDisruptionBudget (integer `minAvailable`) decides: *keepers*,
//! agents consuming a queue of their own, hold the `minAvailable` floor so that the agent under
//! test may be evicted, and the scenario checks that the budget admits exactly the evictions it
//! allows and refuses the next with 429 (a keeper's), and that the eviction did not consume
//! the Job's backoffLimit (podFailurePolicy ignores DisruptionTarget). On Docker these two
//! checks are recorded as skipped.

use std::time::Duration;

use agentfleet_cluster::checks::disruption::{
    BackoffObservation, EvictionAttempt, check_backoff_not_consumed, check_budget,
};
use agentfleet_cluster::fleet::EvictOutcome as ClusterEvict;
use agentfleet_protocol::env;
use tokio::time::Instant;

use super::Findings;
use super::common::{
    Books, SETTLE, ScenarioError, judge_ledger, slow, task, wait_consumers, wait_event, wait_exit,
    wait_task_calls,
};
use crate::runtime::{AgentRef, AgentSet, ClusterOps, EvictOutcome, RuntimeEvent, Session};

/// Names of the cluster-only checks of this scenario.
pub const BUDGET_CHECK: &str = "PodDisruptionBudget admits its budget, then refuses with 429";
pub const BACKOFF_CHECK: &str = "eviction does not consume backoffLimit";

/// The keepers' own queue: they hold the budget's floor without taking the scenario's tasks.
const KEEPER_QUEUE: &str = "agent-tasks-keepers";
/// Keepers' indexes start here, clear of the agents under test.
const KEEPER_INDEX: u32 = 100;
const BUDGET_WAIT: Duration = Duration::from_secs(60);

/// Steps and per-step delay of the gracefully stopped task.
const GRACEFUL_STEPS: u32 = 8;
/// The stubborn agent keeps working through the whole grace period, so its task must be
/// longer than that: 1 step per second, more steps than the grace has seconds (checked below).
const STEP_DELAY_MS: u64 = 1000;
/// Stop once this many steps were answered.
const STOP_AFTER_CALLS: usize = 3;

pub async fn run<S: Session>(session: &S, findings: &mut Findings) -> Result<(), ScenarioError> {
    let platform = session.platform();
    let grace = session.template().grace;
    findings.figure(
        "grace period (terminationGracePeriodSeconds)",
        grace.as_secs_f64(),
        "s",
    );
    let mut books = Books::open(platform).await?;
    let mut events = session.events();
    let keepers = match session.cluster() {
        Ok(cluster) => start_keepers(session, cluster).await?,
        Err(reason) => {
            findings.skip_checks(&[BUDGET_CHECK, BACKOFF_CHECK], &reason);
            Vec::new()
        }
    };

    // Part 1: a well-behaved agent.
    let graceful = task("evict-graceful", GRACEFUL_STEPS, slow(STEP_DELAY_MS));
    let agents = session
        .start_agents(&AgentSet::new("graceful", [0]))
        .await?;
    wait_consumers(platform, 1, Duration::from_secs(60)).await?;
    // On a cluster: the budget is read once the agent counts as healthy, before its task starts,
    // so the wait cannot eat into the task and let it finish before the eviction.
    let budget = match session.cluster() {
        Ok(cluster) => Some(budget_before_eviction(cluster, findings, &agents[0], &keepers).await?),
        Err(_) => None,
    };
    books.publish(platform, &graceful).await?;
    let answered = wait_task_calls(
        platform,
        &graceful.id,
        STOP_AFTER_CALLS,
        Duration::from_secs(30),
    )
    .await?;
    let stopped_at = Instant::now();
    let outcome = match (&budget, session.cluster()) {
        (Some(budget), Ok(cluster)) => {
            evict_in_turn(cluster, findings, &agents[0], &keepers, budget).await?
        }
        _ => session.stop(&agents[0], None).await?,
    };
    findings.check(outcome == EvictOutcome::Evicted, || {
        format!("stop of {} was not granted: {outcome:?}", agents[0].name)
    });
    let (code, _) = wait_exit(&mut events, &agents[0], grace + Duration::from_secs(10)).await?;
    let took = stopped_at.elapsed();
    findings.bounded(
        "graceful agent exit code",
        code as f64,
        "",
        "= 143",
        code == 143,
    );
    findings.bounded(
        "graceful agent stop time",
        took.as_secs_f64(),
        "s",
        &format!("< {} (grace)", grace.as_secs()),
        took < grace,
    );
    let replacement = wait_replacement(&mut events, &agents[0]).await?;
    books.wait_accounted(Duration::from_secs(60)).await?;
    check_resume(findings, &books, &graceful.id, answered, "graceful");
    if let (Some(budget), Ok(cluster)) = (&budget, session.cluster()) {
        let observation = BackoffObservation {
            job: format!("of pod {}", agents[0].name),
            failed_before: budget.failed_before,
            failed_after: cluster.job_failures(&agents[0]).await?,
            evicted: vec![(
                agents[0].name.clone(),
                cluster.disruption_condition(&agents[0]),
            )],
        };
        findings.cluster_check(BACKOFF_CHECK, check_backoff_not_consumed(&observation));
    }

    // The replacement is idle now; stop it so the stubborn agent gets the next task. Idle, it
    // must exit 0 (nothing unfinished), and so is not replaced.
    session.stop(&replacement, None).await?;
    let (idle_code, _) =
        wait_exit(&mut events, &replacement, grace + Duration::from_secs(10)).await?;
    findings.bounded(
        "idle agent exit code on SIGTERM",
        idle_code as f64,
        "",
        "= 0",
        idle_code == 0,
    );

    // Part 2: an agent that ignores SIGTERM, killed at the grace deadline.
    let steps = u32::try_from(grace.as_secs())
        .unwrap_or(u32::MAX)
        .saturating_mul(1000)
        .div_ceil(STEP_DELAY_MS as u32)
        + 10;
    let stubborn_task = task("evict-stubborn", steps, slow(STEP_DELAY_MS));
    let stubborn = session
        .start_agents(&AgentSet::new("stubborn", [1]).env(env::TEST_IGNORE_SIGTERM, "true"))
        .await?;
    wait_consumers(platform, 1, Duration::from_secs(60)).await?;
    books.publish(platform, &stubborn_task).await?;
    wait_task_calls(
        platform,
        &stubborn_task.id,
        STOP_AFTER_CALLS,
        Duration::from_secs(30),
    )
    .await?;
    let stopped_at = Instant::now();
    session.stop(&stubborn[0], None).await?;
    let (code, _) = wait_exit(&mut events, &stubborn[0], grace + Duration::from_secs(15)).await?;
    let took = stopped_at.elapsed();
    findings.waiting_by_design += took;
    findings.bounded(
        "SIGTERM-ignoring agent exit code",
        code as f64,
        "",
        "= 137 (SIGKILL)",
        code == 137,
    );
    findings.bounded(
        "SIGTERM-ignoring agent killed after",
        took.as_secs_f64(),
        "s",
        &format!(
            "within [{}, {}] s",
            grace.as_secs().saturating_sub(1),
            grace.as_secs() + 5
        ),
        took + Duration::from_secs(1) >= grace && took <= grace + Duration::from_secs(5),
    );
    // Steps answered before the kill: the checkpoint holds at least all but the one in flight.
    let reached =
        crate::request_log::of_task(&platform.gateway.requests().await?, &stubborn_task.id).len();
    wait_replacement(&mut events, &stubborn[0]).await?;
    books.wait_accounted(Duration::from_secs(90)).await?;
    check_resume(findings, &books, &stubborn_task.id, reached, "stubborn");
    books.settle(SETTLE).await?;
    judge_ledger(findings, &books, platform).await?;
    Ok(())
}

async fn wait_replacement(
    events: &mut futures::stream::BoxStream<'static, RuntimeEvent>,
    agent: &AgentRef,
) -> Result<AgentRef, ScenarioError> {
    wait_event(
        events,
        &format!("a replacement for {}", agent.name),
        Duration::from_secs(30),
        |e| match e {
            RuntimeEvent::Replaced {
                failed,
                replacement,
            } if failed == agent => Some(replacement.clone()),
            _ => None,
        },
    )
    .await
}

/// The task finished exactly once, by a later delivery, resumed at or after the step reached
/// when its agent was stopped (all answered steps but the one in flight).
fn check_resume(findings: &mut Findings, books: &Books, id: &str, answered: usize, label: &str) {
    let reached = u32::try_from(answered.saturating_sub(1)).unwrap_or(u32::MAX);
    match books.ledger.single_result(id) {
        Ok(record) => {
            let r = &record.result;
            findings.bounded(
                &format!("{label} task resumed from step"),
                f64::from(r.resumed_from_step),
                "steps done",
                &format!(
                    ">= {reached} (steps answered before the stop, minus the one in flight), > 0"
                ),
                r.resumed_from_step >= reached && r.resumed_from_step > 0,
            );
            findings.check(r.attempt >= 2, || {
                format!(
                    "{id} finished on attempt {}, expected a redelivery",
                    r.attempt
                )
            });
        }
        Err(e) => findings.reasons.push(format!("{label}: {e}")),
    }
}

/// Starts the agents that hold the budget's `minAvailable` floor (none if the budget has no
/// integer floor: then nothing can make an eviction admissible, which the budget check shows).
async fn start_keepers<S: Session>(
    session: &S,
    cluster: &S::Cluster,
) -> Result<Vec<AgentRef>, ScenarioError> {
    let floor = cluster
        .disruption_budget(0, BUDGET_WAIT)
        .await?
        .min_available
        .unwrap_or(0);
    if floor == 0 {
        return Ok(Vec::new());
    }
    let set = AgentSet::new("keepers", KEEPER_INDEX..KEEPER_INDEX + floor)
        .env(env::TASK_QUEUE, KEEPER_QUEUE)
        // Idle the whole scenario long: 0 = never exit for idleness.
        .env(env::IDLE_EXIT_SECS, 0);
    Ok(session.start_agents(&set).await?)
}

/// What the cluster said before the eviction.
struct BudgetSeen {
    /// Evictions the budget allows with the keepers and the agent under test healthy.
    allowed: u32,
    /// False when a budget uses a form that cannot budget Job pods (`maxUnavailable`, a
    /// percentage `minAvailable`).
    budgets_job_pods: bool,
    /// The agent's Job `status.failed` before its eviction.
    failed_before: i32,
}

async fn budget_before_eviction<C: ClusterOps>(
    cluster: &C,
    findings: &mut Findings,
    agent: &AgentRef,
    keepers: &[AgentRef],
) -> Result<BudgetSeen, ScenarioError> {
    let healthy = keepers.len() as u32 + 1;
    let budget = cluster.disruption_budget(healthy, BUDGET_WAIT).await?;
    findings.bounded(
        &format!("evictions the PodDisruptionBudget allows with {healthy} healthy agents"),
        f64::from(budget.allowed),
        "evictions",
        ">= 1 (a budget that admits none blocks every drain)",
        budget.allowed >= 1,
    );
    Ok(BudgetSeen {
        allowed: budget.allowed,
        budgets_job_pods: budget.min_available.is_some(),
        failed_before: cluster.job_failures(agent).await?,
    })
}

/// Evicts the agent under test, then at once a keeper: the first within the budget, the second
/// beyond it. Returns the first eviction's outcome in the runtime's terms.
async fn evict_in_turn<C: ClusterOps>(
    cluster: &C,
    findings: &mut Findings,
    agent: &AgentRef,
    keepers: &[AgentRef],
    budget: &BudgetSeen,
) -> Result<EvictOutcome, ScenarioError> {
    let mut attempts: Vec<EvictionAttempt> = vec![cluster.evict_once(agent).await?];
    if let Some(keeper) = keepers.first() {
        attempts.push(cluster.evict_once(keeper).await?);
    }
    for attempt in &attempts {
        findings.event(
            "eviction",
            format!("{}: {:?}", attempt.pod, attempt.outcome),
        );
    }
    let verdict = if budget.budgets_job_pods {
        check_budget(budget.allowed, &attempts)
    } else {
        // Refusing everything is what such a budget does, and exactly what is wrong with it.
        agentfleet_cluster::checks::Verdict::Failed {
            reasons: vec![format!(
                "the PodDisruptionBudget uses maxUnavailable or a percentage minAvailable, which budgets nothing for Job pods (no scale subresource: disruptionsAllowed stays 0), so every eviction is refused and no drain can finish ({:?}); use an integer minAvailable",
                attempts[0].outcome
            )],
        }
    };
    findings.cluster_check(BUDGET_CHECK, verdict);
    Ok(match &attempts[0].outcome {
        ClusterEvict::Evicted => EvictOutcome::Evicted,
        ClusterEvict::RefusedByBudget { message } => EvictOutcome::RefusedByBudget {
            status: 429,
            message: message.clone(),
        },
        ClusterEvict::NotFound => EvictOutcome::NotFound,
    })
}
