//! PodDisruptionBudgets against the workloads they select.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Sink, catalog};
use crate::fleet::{Fleet, Workload};
use crate::model::Resource;
use crate::selector;
use crate::yaml::Path;

pub(super) fn check(fleet: &Fleet, sink: &mut Sink) {
    for object in &fleet.objects {
        let Resource::PodDisruptionBudget(pdb) = &object.resource else {
            continue;
        };
        let Some(spec) = &pdb.spec else { continue };
        let namespace = fleet.namespace_of(object).unwrap_or_default();
        let selected: Vec<Workload<'_>> = match &spec.selector {
            Some(sel) => fleet
                .workloads_in(namespace)
                .filter(|w| selector::matches(sel, &w.labels()))
                .collect(),
            None => Vec::new(),
        };
        let evident = evident_targets(fleet, spec.selector.as_ref());
        if selected.is_empty() {
            let what = spec.selector.as_ref().map_or_else(
                || "no selector (a null selector selects no pods)".to_owned(),
                |s| format!("selector {}", selector::describe(s)),
            );
            sink.report(
                &catalog::PDB_SELECTS_NOTHING,
                object,
                &Path::parse("spec.selector"),
                format!(
                    "{what} matches no pod template in namespace {namespace}{}",
                    label_hint(&evident)
                ),
            );
        }

        let targets: Vec<&Workload<'_>> = if selected.is_empty() {
            evident.iter().collect()
        } else {
            selected.iter().collect()
        };
        let job_targets: Vec<String> = targets
            .iter()
            .filter(|w| w.controller.runs_jobs())
            .map(|w| w.describe())
            .collect();
        if !job_targets.is_empty() {
            let who = job_targets.join(", ");
            if let Some(max) = &spec.max_unavailable {
                sink.report(
                    &catalog::PDB_BLOCKS_JOB_EVICTIONS,
                    object,
                    &Path::parse("spec.maxUnavailable"),
                    format!("maxUnavailable {} over Job pods ({who}): Jobs have no scale subresource, so disruptionsAllowed stays 0 and every eviction is refused with 429", show(max)),
                );
            } else if let Some(IntOrString::String(percent)) = &spec.min_available {
                sink.report(
                    &catalog::PDB_BLOCKS_JOB_EVICTIONS,
                    object,
                    &Path::parse("spec.minAvailable"),
                    format!("percentage minAvailable \"{percent}\" over Job pods ({who}): Jobs have no scale subresource, so disruptionsAllowed stays 0 and every eviction is refused with 429"),
                );
            }
        }

        if let (Some(IntOrString::Int(min)), false) = (&spec.min_available, selected.is_empty()) {
            let counts: Option<Vec<i32>> = selected.iter().map(Workload::pod_count).collect();
            if let Some(total) = counts.map(|c| c.iter().sum::<i32>())
                && *min >= total
            {
                sink.report(
                        &catalog::PDB_MIN_AVAILABLE_UNREACHABLE,
                        object,
                        &Path::parse("spec.minAvailable"),
                        format!("minAvailable {min} but the selected workloads run {total} pod(s): disruptionsAllowed is never positive"),
                    );
            }
        }
    }
}

fn show(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => format!("\"{s}\""),
    }
}

/// Workloads whose *own* labels match a selector that matches none of their pod templates:
/// the classic mistake of labelling the Job instead of its pod template. They are the
/// selector's evident targets, and what PDB/NetworkPolicy rules judge when nothing else
/// matches.
pub(super) fn evident_targets<'a>(
    fleet: &'a Fleet,
    sel: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Vec<Workload<'a>> {
    let Some(sel) = sel.filter(|s| !selector::is_empty(s)) else {
        return Vec::new();
    };
    fleet
        .workloads()
        .filter(|w| !w.object.labels.is_empty() && selector::matches(sel, &w.object.labels))
        .collect()
}

/// "; Job default/x carries these labels on its own metadata, which pods do not inherit".
pub(super) fn label_hint(evident: &[Workload<'_>]) -> String {
    match evident.first() {
        Some(w) => format!(
            "; {} carries the labels on its own metadata, which its pods do not inherit: put them in {}.metadata.labels{}",
            w.describe(),
            w.template_path,
            if evident.len() > 1 {
                format!(" (and {} more)", evident.len() - 1)
            } else {
                String::new()
            }
        ),
        None => String::new(),
    }
}
