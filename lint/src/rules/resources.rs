//! Requests, limits and the namespace's LimitRanges.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, LimitRangeItem};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{Sink, catalog};
use crate::fleet::{Fleet, Workload};
use crate::model::Resource;
use crate::quantity;
use crate::yaml::Path;

type Quantities = BTreeMap<String, Quantity>;

/// A container's effective requests and limits after LimitRange defaulting, as numbers.
#[derive(Debug, Default)]
struct Effective {
    requests: BTreeMap<String, f64>,
    limits: BTreeMap<String, f64>,
}

pub(super) fn check(fleet: &Fleet, sink: &mut Sink) {
    for workload in fleet.workloads() {
        let ranges: Vec<&LimitRangeItem> = fleet
            .in_namespace(workload.namespace)
            .filter_map(|o| match &o.resource {
                Resource::LimitRange(lr) => lr.spec.as_ref(),
                _ => None,
            })
            .flat_map(|spec| spec.limits.iter())
            .collect();
        let container_ranges: Vec<&LimitRangeItem> = ranges
            .iter()
            .copied()
            .filter(|r| r.type_ == "Container")
            .collect();
        let mut pod_totals = Effective::default();
        let groups: [(&str, &[Container]); 2] = [
            ("containers", &workload.spec.containers),
            (
                "initContainers",
                workload.spec.init_containers.as_deref().unwrap_or_default(),
            ),
        ];
        for (field, containers) in groups {
            for (index, container) in containers.iter().enumerate() {
                let path = workload
                    .spec_path()
                    .key(field)
                    .index(index)
                    .key("resources");
                let effective = effective(container, &container_ranges);
                if field == "containers" {
                    for (k, v) in &effective.requests {
                        *pod_totals.requests.entry(k.clone()).or_default() += v;
                    }
                    for (k, v) in &effective.limits {
                        *pod_totals.limits.entry(k.clone()).or_default() += v;
                    }
                }
                check_container(
                    &workload,
                    container,
                    &effective,
                    &container_ranges,
                    &path,
                    sink,
                );
            }
        }
        for range in ranges.iter().filter(|r| r.type_ == "Pod") {
            bounds(
                &workload,
                "the pod (all containers)",
                &pod_totals,
                range,
                &workload.spec_path(),
                sink,
            );
        }
    }
}

fn numbers(q: Option<&Quantities>) -> BTreeMap<String, f64> {
    q.into_iter()
        .flatten()
        .filter_map(|(k, v)| quantity::parse(&v.0).map(|n| (k.clone(), n)))
        .collect()
}

/// Applies LimitRange defaults the way the admission plugin does: a missing limit takes
/// `default`; a missing request takes the container's limit if it set one, else
/// `defaultRequest`, else the defaulted limit.
fn effective(container: &Container, ranges: &[&LimitRangeItem]) -> Effective {
    let resources = container.resources.as_ref();
    let own_requests = numbers(resources.and_then(|r| r.requests.as_ref()));
    let own_limits = numbers(resources.and_then(|r| r.limits.as_ref()));
    let mut out = Effective {
        requests: own_requests,
        limits: own_limits.clone(),
    };
    for range in ranges {
        for (k, v) in numbers(range.default.as_ref()) {
            out.limits.entry(k).or_insert(v);
        }
        for (k, v) in numbers(range.default_request.as_ref()) {
            if !own_limits.contains_key(&k) {
                out.requests.entry(k).or_insert(v);
            }
        }
    }
    for (k, v) in &out.limits {
        out.requests.entry(k.clone()).or_insert(*v);
    }
    out
}

fn check_container(
    workload: &Workload<'_>,
    container: &Container,
    effective: &Effective,
    ranges: &[&LimitRangeItem],
    path: &Path,
    sink: &mut Sink,
) {
    let mut missing = Vec::new();
    for (set, key, what) in [
        (&effective.requests, "cpu", "requests.cpu"),
        (&effective.requests, "memory", "requests.memory"),
        (&effective.limits, "memory", "limits.memory"),
    ] {
        if !set.contains_key(key) {
            missing.push(what);
        }
    }
    if !missing.is_empty() {
        sink.report(
            &catalog::MISSING_RESOURCES,
            workload.object,
            path,
            format!(
                "container {} has no {} (and no LimitRange default in namespace {} fills it)",
                container.name,
                missing.join(", "),
                workload.namespace
            ),
        );
    }
    for (resource, request) in &effective.requests {
        if let Some(limit) = effective.limits.get(resource)
            && request > limit
        {
            sink.report(
                &catalog::REQUEST_EXCEEDS_LIMIT,
                workload.object,
                &path.key("requests").key(resource),
                format!(
                    "container {}: {resource} request {} is greater than its limit {}",
                    container.name,
                    human(resource, *request),
                    human(resource, *limit)
                ),
            );
        }
    }
    for range in ranges {
        bounds(
            workload,
            &format!("container {}", container.name),
            effective,
            range,
            path,
            sink,
        );
    }
}

/// AF051/AF052 for one LimitRange item against one container (or the pod's sums).
fn bounds(
    workload: &Workload<'_>,
    who: &str,
    effective: &Effective,
    range: &LimitRangeItem,
    path: &Path,
    sink: &mut Sink,
) {
    for (resource, max) in numbers(range.max.as_ref()) {
        if let Some(limit) = effective.limits.get(&resource).filter(|l| **l > max) {
            sink.report(
                &catalog::LIMIT_RANGE_VIOLATION,
                workload.object,
                &path.key("limits").key(&resource),
                format!(
                    "{who}: {resource} limit {} is above the LimitRange max {} in namespace {}",
                    human(&resource, *limit),
                    human(&resource, max),
                    workload.namespace
                ),
            );
        }
    }
    for (resource, min) in numbers(range.min.as_ref()) {
        if let Some(request) = effective.requests.get(&resource).filter(|r| **r < min) {
            sink.report(
                &catalog::LIMIT_RANGE_VIOLATION,
                workload.object,
                &path.key("requests").key(&resource),
                format!(
                    "{who}: {resource} request {} is below the LimitRange min {} in namespace {}",
                    human(&resource, *request),
                    human(&resource, min),
                    workload.namespace
                ),
            );
        }
    }
    for (resource, max_ratio) in numbers(range.max_limit_request_ratio.as_ref()) {
        let (Some(limit), Some(request)) = (
            effective.limits.get(&resource),
            effective.requests.get(&resource),
        ) else {
            continue;
        };
        if let Some(ratio) = quantity::ratio(*limit, *request).filter(|r| *r > max_ratio + 1e-9) {
            sink.report(
                &catalog::LIMIT_REQUEST_RATIO,
                workload.object,
                &path.key("limits").key(&resource),
                format!("{who}: {resource} limit/request is {ratio:.2}, above the LimitRange maxLimitRequestRatio {max_ratio} in namespace {}", workload.namespace),
            );
        }
    }
}

/// Renders a computed quantity: memory in Mi/Gi, CPU in cores or millicores.
fn human(resource: &str, value: f64) -> String {
    const GI: f64 = 1024.0 * 1024.0 * 1024.0;
    const MI: f64 = 1024.0 * 1024.0;
    if resource == "cpu" {
        if value.fract() == 0.0 {
            format!("{value}")
        } else {
            format!("{}m", (value * 1000.0).round())
        }
    } else if value >= GI && (value / GI).fract() == 0.0 {
        format!("{}Gi", value / GI)
    } else if value >= MI {
        format!("{}Mi", (value / MI).round())
    } else {
        format!("{value}")
    }
}
