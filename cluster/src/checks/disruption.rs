//! Evictions and PodDisruptionBudgets for Job pods.
//!
//! Two claims are checked on a live cluster:
//! 1. The PDB admits exactly the budgeted evictions and refuses the next one with 429. For Job
//!    pods only an integer `minAvailable` works: Jobs have no scale subresource, so with
//!    `maxUnavailable` or a percentage the disruption controller sets `disruptionsAllowed=0`
//!    and every eviction is refused (the article's PDB bug).
//! 2. An eviction does not consume the Job's `backoffLimit`: with `restartPolicy: Never` and a
//!    `podFailurePolicy` rule `DisruptionTarget -> Ignore`, `status.failed` stays put, and the
//!    evicted pods carry the `DisruptionTarget` condition that rule matches.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::Serialize;

use super::Verdict;
use crate::fleet::{EvictOutcome, Fleet, FleetError};

/// The PDB's `minAvailable` when it is the one form that can budget Job pods (an integer, no
/// `maxUnavailable`); None for the forms that refuse every eviction of them.
pub fn integer_min_available(pdb: &PodDisruptionBudget) -> Option<u32> {
    let spec = pdb.spec.as_ref()?;
    match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(min)), None) => Some(u32::try_from(*min).unwrap_or(0)),
        _ => None,
    }
}

/// How many evictions a PDB allows for `healthy` Job pods (see the module doc).
pub fn budgeted_evictions(pdb: &PodDisruptionBudget, healthy: u32) -> u32 {
    let Some(spec) = pdb.spec.as_ref() else {
        return 0;
    };
    if spec.max_unavailable.is_some() {
        return 0;
    }
    match &spec.min_available {
        Some(IntOrString::Int(min)) => healthy.saturating_sub(u32::try_from(*min).unwrap_or(0)),
        // Percentages need the controller's scale; Jobs have none.
        Some(IntOrString::String(_)) => 0,
        None => 0,
    }
}

/// A wait on PodDisruptionBudget status that ran out, with what was last seen.
#[derive(Debug, thiserror::Error)]
#[error(
    "the PodDisruptionBudgets in {namespace} did not reach `{condition}` within {timeout:?}; last seen: [{last_seen}]"
)]
pub struct BudgetWaitError {
    pub namespace: String,
    pub condition: String,
    pub timeout: Duration,
    pub last_seen: String,
}

fn describe_status(pdb: &PodDisruptionBudget) -> String {
    let name = pdb.metadata.name.as_deref().unwrap_or("?");
    match &pdb.status {
        Some(s) => format!(
            "{name}: currentHealthy={} desiredHealthy={} disruptionsAllowed={} expectedPods={}",
            s.current_healthy, s.desired_healthy, s.disruptions_allowed, s.expected_pods
        ),
        None => format!("{name}: no status yet"),
    }
}

/// Waits, on a watch of the namespace's PodDisruptionBudgets, until there is at least one and
/// every one's status satisfies `condition`; returns them as last seen.
///
/// The disruption controller recomputes a budget asynchronously after pods become Ready or go,
/// so an eviction sent right after a start races it and may be refused for a budget that is
/// about to open; waiting on the status (not sleeping) removes the race. `condition` is named
/// by `what` in the timeout error, which lists every budget's last status.
pub async fn wait_budgets(
    client: Client,
    namespace: &str,
    what: &str,
    condition: impl Fn(&PodDisruptionBudget) -> bool,
    timeout: Duration,
) -> Result<Vec<PodDisruptionBudget>, BudgetWaitError> {
    let api: Api<PodDisruptionBudget> = Api::namespaced(client, namespace);
    let mut seen: BTreeMap<String, PodDisruptionBudget> = BTreeMap::new();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let satisfied = |seen: &BTreeMap<String, PodDisruptionBudget>| {
        !seen.is_empty()
            && seen.values().all(|pdb| {
                let current = pdb.metadata.generation.is_none()
                    || pdb.status.as_ref().and_then(|s| s.observed_generation)
                        >= pdb.metadata.generation;
                current && pdb.status.is_some() && condition(pdb)
            })
    };
    let name = |pdb: &PodDisruptionBudget| pdb.metadata.name.clone().unwrap_or_default();
    // Judged only on a complete list: while the initial list streams in, the budgets seen so
    // far may all pass while a tighter one is still to come.
    let mut listed = false;
    let waited = tokio::time::timeout(timeout, async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => {
                    seen.clear();
                    listed = false;
                }
                Ok(watcher::Event::InitApply(pdb)) => {
                    seen.insert(name(&pdb), pdb);
                }
                Ok(watcher::Event::InitDone) => listed = true,
                Ok(watcher::Event::Apply(pdb)) => {
                    seen.insert(name(&pdb), pdb);
                }
                Ok(watcher::Event::Delete(pdb)) => {
                    seen.remove(&name(&pdb));
                }
                Err(error) => tracing::warn!(%error, "watching PodDisruptionBudgets"),
            }
            if listed && satisfied(&seen) {
                return true;
            }
        }
        false
    })
    .await;
    if waited == Ok(true) {
        return Ok(seen.into_values().collect());
    }
    let last_seen = if seen.is_empty() {
        "no PodDisruptionBudget in the namespace".to_owned()
    } else {
        seen.values()
            .map(describe_status)
            .collect::<Vec<_>>()
            .join("; ")
    };
    Err(BudgetWaitError {
        namespace: namespace.to_owned(),
        condition: what.to_owned(),
        timeout,
        last_seen,
    })
}

/// One eviction and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvictionAttempt {
    pub pod: String,
    pub outcome: EvictOutcome,
}

/// Evicts `pods` one after another (no waiting between: the budget is decremented at
/// admission, so the next eviction sees it at once).
pub async fn evict_in_turn(
    fleet: &Fleet,
    pods: &[String],
) -> Result<Vec<EvictionAttempt>, FleetError> {
    let mut attempts = Vec::new();
    for pod in pods {
        let outcome = fleet.evict(pod, None).await?;
        attempts.push(EvictionAttempt {
            pod: pod.clone(),
            outcome,
        });
    }
    Ok(attempts)
}

/// The first `budget` attempts must be admitted and the one after refused with 429.
pub fn check_budget(budget: u32, attempts: &[EvictionAttempt]) -> Verdict {
    let budget = budget as usize;
    if attempts.len() <= budget {
        return Verdict::Skipped {
            reason: format!(
                "{} evictions attempted for a budget of {budget}; one more is needed to see the refusal",
                attempts.len()
            ),
        };
    }
    let mut reasons = Vec::new();
    for (index, attempt) in attempts.iter().enumerate().take(budget + 1) {
        let expected_admit = index < budget;
        match (&attempt.outcome, expected_admit) {
            (EvictOutcome::Evicted, true) | (EvictOutcome::RefusedByBudget { .. }, false) => {}
            (EvictOutcome::RefusedByBudget { message }, true) => reasons.push(format!(
                "eviction #{} of {} was refused (429: {message}) although the budget allows {budget}; with Job pods use an integer minAvailable, not maxUnavailable or a percentage",
                index + 1,
                attempt.pod
            )),
            (EvictOutcome::Evicted, false) => reasons.push(format!(
                "eviction #{} of {} was admitted beyond the budget of {budget}: the PDB does not select the agents or minAvailable is too low",
                index + 1,
                attempt.pod
            )),
            (EvictOutcome::NotFound, _) => {
                reasons.push(format!("eviction #{} of {}: the pod no longer exists, so the attempt decides nothing", index + 1, attempt.pod))
            }
        }
    }
    Verdict::from_reasons(
        reasons,
        format!("the PDB admitted {budget} eviction(s) and refused the next with 429"),
    )
}

/// What was seen of the Job around the evictions.
#[derive(Debug, Clone, Serialize)]
pub struct BackoffObservation {
    pub job: String,
    pub failed_before: i32,
    pub failed_after: i32,
    /// Evicted pods and the reason of their DisruptionTarget condition (None: absent).
    pub evicted: Vec<(String, Option<String>)>,
}

/// `status.failed` of a Job (0 when unset).
pub async fn failed_count(jobs: &Api<Job>, name: &str) -> Result<i32, kube::Error> {
    Ok(jobs
        .get_status(name)
        .await?
        .status
        .and_then(|s| s.failed)
        .unwrap_or(0))
}

/// Evictions must not raise `status.failed`, and each evicted pod must carry DisruptionTarget.
pub fn check_backoff_not_consumed(observation: &BackoffObservation) -> Verdict {
    if observation.evicted.is_empty() {
        return Verdict::Skipped {
            reason: "no pod was evicted".into(),
        };
    }
    let mut reasons = Vec::new();
    if observation.failed_after > observation.failed_before {
        reasons.push(format!(
            "Job {}: status.failed went from {} to {} after {} eviction(s): evictions consume backoffLimit. Use restartPolicy: Never and a podFailurePolicy rule {{action: Ignore, onPodConditions: [{{type: DisruptionTarget}}]}}",
            observation.job,
            observation.failed_before,
            observation.failed_after,
            observation.evicted.len()
        ));
    }
    for (pod, condition) in &observation.evicted {
        if condition.is_none() {
            reasons.push(format!("evicted pod {pod} has no DisruptionTarget condition, so podFailurePolicy cannot ignore its failure"));
        }
    }
    Verdict::from_reasons(
        reasons,
        format!(
            "{} eviction(s) left Job {} status.failed at {}",
            observation.evicted.len(),
            observation.job,
            observation.failed_after
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock;
    use serde_json::json;

    fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({"metadata": {"name": "agents"}, "spec": spec})).unwrap()
    }

    #[test]
    fn only_integer_min_available_budgets_job_pods() {
        assert_eq!(budgeted_evictions(&pdb(json!({"minAvailable": 2})), 3), 1);
        assert_eq!(budgeted_evictions(&pdb(json!({"minAvailable": 5})), 3), 0);
        assert_eq!(budgeted_evictions(&pdb(json!({"maxUnavailable": 1})), 3), 0);
        assert_eq!(
            budgeted_evictions(&pdb(json!({"minAvailable": "50%"})), 4),
            0
        );
    }

    fn attempt(pod: &str, outcome: EvictOutcome) -> EvictionAttempt {
        EvictionAttempt {
            pod: pod.into(),
            outcome,
        }
    }

    fn refused() -> EvictOutcome {
        EvictOutcome::RefusedByBudget {
            message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        }
    }

    #[test]
    fn budget_respected_passes() {
        let attempts = [attempt("a", EvictOutcome::Evicted), attempt("b", refused())];
        assert!(check_budget(1, &attempts).passed());
    }

    #[test]
    fn article_pdb_refusing_everything_fails() {
        let attempts = [attempt("a", refused()), attempt("b", refused())];
        let Verdict::Failed { reasons } = check_budget(1, &attempts) else {
            panic!()
        };
        assert!(reasons[0].contains("integer minAvailable"), "{reasons:?}");
    }

    #[test]
    fn eviction_beyond_budget_fails() {
        let attempts = [
            attempt("a", EvictOutcome::Evicted),
            attempt("b", EvictOutcome::Evicted),
        ];
        assert!(!check_budget(1, &attempts).passed());
        assert!(matches!(
            check_budget(2, &attempts),
            Verdict::Skipped { .. }
        ));
    }

    #[test]
    fn eviction_counted_as_failure_fails() {
        let observation = BackoffObservation {
            job: "agent-batch".into(),
            failed_before: 0,
            failed_after: 1,
            evicted: vec![(
                "agent-batch-0-x".into(),
                Some("EvictionByEvictionAPI".into()),
            )],
        };
        let Verdict::Failed { reasons } = check_backoff_not_consumed(&observation) else {
            panic!()
        };
        assert!(reasons[0].contains("podFailurePolicy"), "{reasons:?}");
        let ignored = BackoffObservation {
            failed_after: 0,
            ..observation.clone()
        };
        assert!(check_backoff_not_consumed(&ignored).passed());
        let unattributed = BackoffObservation {
            failed_after: 0,
            evicted: vec![("p".into(), None)],
            ..observation
        };
        assert!(!check_backoff_not_consumed(&unattributed).passed());
    }

    #[tokio::test]
    async fn mock_evict_in_turn_records_admission_then_refusal_and_job_failures() {
        let (client, mut handle) = mock::client();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "first eviction").await;
            assert!(request.uri().path().ends_with("/pods/a/eviction"));
            respond.send_response(mock::json(
                201,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ));
            let (request, respond) = mock::next(&mut handle, "second eviction").await;
            assert!(request.uri().path().ends_with("/pods/b/eviction"));
            respond.send_response(mock::status(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            ));
            let (request, respond) = mock::next(&mut handle, "job status GET").await;
            assert_eq!(
                request.uri().path(),
                "/apis/batch/v1/namespaces/ns/jobs/agent-batch/status"
            );
            respond.send_response(mock::json(200, json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "agent-batch"}, "status": {"failed": 0}})));
        });
        let fleet = Fleet::new(client.clone(), "ns");
        let attempts = evict_in_turn(&fleet, &["a".into(), "b".into()])
            .await
            .unwrap();
        assert!(check_budget(1, &attempts).passed(), "{attempts:?}");
        assert_eq!(
            failed_count(&Api::namespaced(client, "ns"), "agent-batch")
                .await
                .unwrap(),
            0
        );
        server.await.unwrap();
    }
}
