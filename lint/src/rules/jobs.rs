//! Job semantics: restart policy, failure policy, TTL, grace period, completion index.

use super::{Sink, catalog};
use crate::fleet::{Controller, Fleet, Workload};

/// Pod template annotation declaring how long the agent needs to checkpoint on SIGTERM.
pub const CHECKPOINT_ANNOTATION: &str = "agentfleet.dev/checkpoint-seconds";
/// Kubernetes' default terminationGracePeriodSeconds.
const DEFAULT_GRACE_SECONDS: i64 = 30;
/// Kubernetes' default Job backoffLimit.
const DEFAULT_BACKOFF_LIMIT: i32 = 6;

pub(super) fn check(fleet: &Fleet, sink: &mut Sink) {
    for workload in fleet.workloads() {
        checkpoint_grace(&workload, sink);
        let Some(job) = workload.job else { continue };
        let object = workload.object;
        let spec_path = workload.spec_path();
        let job_path = workload.job_path();
        let (restart, defaulted) = workload.restart_policy();
        let restart_path = if defaulted {
            spec_path.clone()
        } else {
            spec_path.key("restartPolicy")
        };

        match workload.controller {
            Controller::ScaledJob if defaulted => sink.report(
                &catalog::SCALEDJOB_RESTART_POLICY_DEFAULT,
                object,
                &spec_path,
                "the Job template has no restartPolicy, so KEDA fills in OnFailure",
            ),
            Controller::Job | Controller::CronJob if restart == "Always" => sink.report(
                &catalog::JOB_RESTART_POLICY_INVALID,
                object,
                &restart_path,
                if defaulted {
                    "the Job's pod template has no restartPolicy; the pod default Always is rejected for Jobs".to_owned()
                } else {
                    "restartPolicy Always is rejected for Jobs".to_owned()
                },
            ),
            _ => {}
        }

        if restart != "Never" {
            let how = if defaulted {
                format!("{restart} (KEDA's default)")
            } else {
                restart.to_owned()
            };
            if job.pod_failure_policy.is_some() {
                sink.report(
                    &catalog::POD_FAILURE_POLICY_NEEDS_NEVER,
                    object,
                    &job_path.key("podFailurePolicy"),
                    format!("podFailurePolicy requires restartPolicy Never, but the pod template has {how}"),
                );
            }
            if job.backoff_limit_per_index.is_some() {
                sink.report(
                    &catalog::POD_FAILURE_POLICY_NEEDS_NEVER,
                    object,
                    &job_path.key("backoffLimitPerIndex"),
                    format!("backoffLimitPerIndex requires restartPolicy Never, but the pod template has {how}"),
                );
            }
        }

        if workload.controller == Controller::ScaledJob
            && let Some(policy) = &job.pod_failure_policy
        {
            for (ri, rule) in policy.rules.iter().enumerate() {
                for (ci, condition) in rule.on_pod_conditions.iter().flatten().enumerate() {
                    if condition.status.is_empty() {
                        sink.report(
                            &catalog::SCALEDJOB_CONDITION_WITHOUT_STATUS,
                            object,
                            &job_path.join(&format!(
                                "podFailurePolicy.rules[{ri}].onPodConditions[{ci}]"
                            )),
                            format!(
                                "onPodConditions type {} has no status: KEDA's ScaledJob CRD requires it, so the apply is rejected",
                                condition.type_
                            ),
                        );
                    }
                }
            }
        }

        let ignores_disruptions = job.pod_failure_policy.as_ref().is_some_and(|p| {
            p.rules.iter().any(|rule| {
                rule.action == "Ignore"
                    && rule.on_pod_conditions.iter().flatten().any(|c| {
                        c.type_ == "DisruptionTarget" && (c.status.is_empty() || c.status == "True")
                    })
            })
        });
        if !ignores_disruptions {
            let backoff = job.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT);
            let (path, message) = match &job.pod_failure_policy {
                Some(_) => (
                    job_path.key("podFailurePolicy"),
                    format!(
                        "podFailurePolicy has no DisruptionTarget -> Ignore rule: every eviction spends one of backoffLimit {backoff}"
                    ),
                ),
                None => (
                    job_path.clone(),
                    format!(
                        "no podFailurePolicy: every eviction or preemption spends one of backoffLimit {backoff}"
                    ),
                ),
            };
            sink.report(&catalog::DISRUPTION_BURNS_BACKOFF, object, &path, message);
        }

        if restart == "OnFailure" {
            let backoff = job.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT);
            let memory = memory_summary(&workload);
            sink.report(
                &catalog::ONFAILURE_OOM_RESTARTS,
                object,
                &restart_path,
                format!(
                    "restartPolicy {restart}{}: an OOM kill{memory} restarts the container in place and counts toward backoffLimit {backoff}",
                    if defaulted { " (KEDA's default)" } else { "" }
                ),
            );
        }

        if workload.controller == Controller::Job && job.ttl_seconds_after_finished.is_none() {
            sink.report(
                &catalog::JOB_NO_TTL,
                object,
                &job_path,
                "no ttlSecondsAfterFinished: the finished Job and its pods are never cleaned up",
            );
        }

        if job.completion_mode.as_deref() != Some("Indexed") {
            for (ci, container) in workload.spec.containers.iter().enumerate() {
                for (ei, env) in container.env.iter().flatten().enumerate() {
                    let field = env
                        .value_from
                        .as_ref()
                        .and_then(|v| v.field_ref.as_ref())
                        .map(|f| f.field_path.as_str());
                    if field.is_some_and(|f| f.contains("job-completion-index")) {
                        sink.report(
                            &catalog::COMPLETION_INDEX_NOT_INDEXED,
                            object,
                            &spec_path.join(&format!("containers[{ci}].env[{ei}].valueFrom.fieldRef.fieldPath")),
                            format!(
                                "{} reads the job-completion-index annotation, but completionMode is {}: the annotation does not exist and every pod gets the same identity",
                                env.name,
                                job.completion_mode.as_deref().unwrap_or("NonIndexed (the default)")
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// ` at the 4Gi limit (request 2Gi)` for the first container with memory settings.
fn memory_summary(workload: &Workload<'_>) -> String {
    let resources = workload
        .spec
        .containers
        .iter()
        .find_map(|c| c.resources.as_ref());
    let get = |which: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >| { which.and_then(|m| m.get("memory")).map(|q| q.0.clone()) };
    let limit = resources.and_then(|r| get(r.limits.as_ref()));
    let request = resources.and_then(|r| get(r.requests.as_ref()));
    match (limit, request) {
        (Some(l), Some(r)) if l != r => format!(
            " at the {l} memory limit (request {r}, so the pod is also first in line under node memory pressure)"
        ),
        (Some(l), _) => format!(" at the {l} memory limit"),
        (None, _) => " (no memory limit: under node memory pressure)".to_owned(),
    }
}

fn checkpoint_grace(workload: &Workload<'_>, sink: &mut Sink) {
    let Some(value) = workload.annotation(CHECKPOINT_ANNOTATION) else {
        return;
    };
    let annotation_path = workload
        .metadata_path()
        .key("annotations")
        .key(CHECKPOINT_ANNOTATION);
    let Ok(checkpoint) = value.trim().parse::<i64>() else {
        sink.report(
            &catalog::GRACE_SHORTER_THAN_CHECKPOINT,
            workload.object,
            &annotation_path,
            format!("{CHECKPOINT_ANNOTATION} is \"{value}\", not a whole number of seconds"),
        );
        return;
    };
    let grace = workload.spec.termination_grace_period_seconds;
    if grace.unwrap_or(DEFAULT_GRACE_SECONDS) < checkpoint {
        let (path, grace_text) = match grace {
            Some(g) => (
                workload.spec_path().key("terminationGracePeriodSeconds"),
                format!("terminationGracePeriodSeconds is {g}"),
            ),
            None => (
                annotation_path,
                format!("terminationGracePeriodSeconds is unset (default {DEFAULT_GRACE_SECONDS})"),
            ),
        };
        sink.report(
            &catalog::GRACE_SHORTER_THAN_CHECKPOINT,
            workload.object,
            &path,
            format!("{grace_text} but the agent declares {checkpoint}s to checkpoint: SIGKILL arrives mid-checkpoint"),
        );
    }
}
