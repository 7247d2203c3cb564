//! NetworkPolicies, judged with the same engine that computes `agentfleet netpol`.

use k8s_openapi::api::networking::v1::NetworkPolicySpec;

use super::disruption::{evident_targets, label_hint};
use super::{Sink, catalog};
use crate::fleet::{Fleet, NAMESPACE_NAME_LABEL};
use crate::model::{Object, Resource};
use crate::netpol::{self, Endpoint, Network, Port, Role, Verdict};
use crate::selector;
use crate::yaml::Path;

pub(super) fn check(fleet: &Fleet, sink: &mut Sink) {
    let network = Network::new(fleet);
    let endpoints = netpol::endpoints(fleet);
    let find = |role: Role, port: Port| {
        endpoints
            .iter()
            .find(|e| e.role == role && e.port.as_ref() == Some(&port))
            .cloned()
    };
    let dns_udp = find(Role::Dns, Port::udp(53));
    let dns_tcp = find(Role::Dns, Port::tcp(53));
    let outside = endpoints.iter().find(|e| e.role == Role::Outside).cloned();
    let outside_dns = outside.clone().map(|o| Endpoint {
        port: Some(Port::udp(53)),
        ..o
    });
    let forbidden: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|e| {
            matches!(
                e.role,
                Role::Outside | Role::ApiServer | Role::OtherNamespace
            )
        })
        .collect();

    for object in &fleet.objects {
        let Resource::NetworkPolicy(np) = &object.resource else {
            continue;
        };
        let Some(spec) = &np.spec else { continue };
        let namespace = fleet.namespace_of(object).unwrap_or_default();
        namespace_selectors(fleet, object, spec, sink);

        let selected: Vec<Endpoint> = fleet
            .workloads_in(namespace)
            .filter(|w| {
                spec.pod_selector
                    .as_ref()
                    .is_none_or(|s| selector::matches(s, &w.labels()))
            })
            .map(|w| netpol::workload_endpoint(&w))
            .collect();
        let evident = evident_targets(fleet, spec.pod_selector.as_ref());
        if selected.is_empty()
            && spec
                .pod_selector
                .as_ref()
                .is_some_and(|s| !selector::is_empty(s))
        {
            sink.report(
                &catalog::NETPOL_SELECTS_NOTHING,
                object,
                &Path::parse("spec.podSelector"),
                format!(
                    "podSelector {} matches no pod template in namespace {namespace}{}",
                    spec.pod_selector
                        .as_ref()
                        .map(selector::describe)
                        .unwrap_or_default(),
                    label_hint(&evident)
                ),
            );
        }

        // The pods this policy governs: the selected ones, or else a stand-in pod carrying the
        // selector's labels, so that a policy is judged on its own even when it selects nothing.
        let subjects: Vec<Endpoint> = if selected.is_empty() {
            let role = if evident.iter().any(|w| w.controller.runs_jobs()) {
                Role::Agent
            } else {
                Role::Workload
            };
            vec![Endpoint {
                name: format!("pods selected by NetworkPolicy {namespace}/{}", object.name),
                role,
                namespace: Some(namespace.to_owned()),
                labels: spec
                    .pod_selector
                    .as_ref()
                    .and_then(|s| s.match_labels.clone())
                    .unwrap_or_default(),
                ip: None,
                port: None,
                from_input: false,
            }]
        } else {
            selected
        };

        for subject in &subjects {
            if !network
                .isolating(subject, true)
                .iter()
                .any(|p| p.name == object.name && p.namespace == namespace)
            {
                continue; // this policy does not govern egress for it
            }
            let udp = dns_udp
                .as_ref()
                .is_some_and(|d| network.egress(subject, d).allows());
            let tcp = dns_tcp
                .as_ref()
                .is_some_and(|d| network.egress(subject, d).allows());
            match (udp, tcp) {
                (true, false) => sink.report(
                    &catalog::DNS_UDP_ONLY,
                    object,
                    &Path::parse("spec.egress"),
                    format!(
                        "{} can reach kube-dns on UDP 53 but not TCP 53",
                        subject.name
                    ),
                ),
                (false, false) => sink.report(
                    &catalog::EGRESS_WITHOUT_DNS,
                    object,
                    &Path::parse("spec.egress"),
                    format!(
                        "{} is egress-isolated and can reach kube-dns on neither UDP nor TCP 53",
                        subject.name
                    ),
                ),
                _ => {}
            }
            if let Some(target) = &outside_dns
                && let Verdict::Allowed { policy, rule } = network.egress(subject, target)
                && policy.name == object.name
            {
                sink.report(
                            &catalog::DNS_EGRESS_ANY_DESTINATION,
                            object,
                            &Path::parse("spec.egress").index(rule),
                            format!("egress rule {rule} allows port 53 to any address, including resolvers outside the cluster"),
                        );
            }
            if subject.role == Role::Agent {
                for target in &forbidden {
                    if let Verdict::Allowed { policy, rule } = network.egress(subject, target)
                        && policy.name == object.name
                    {
                        sink.report(
                            &catalog::AGENT_EGRESS_TOO_WIDE,
                            object,
                            &Path::parse("spec.egress").index(rule),
                            format!(
                                "egress rule {rule} lets {} reach {}",
                                subject.name,
                                target.label()
                            ),
                        );
                    }
                }
            }
        }
    }

    let prometheus = endpoints
        .iter()
        .find(|e| e.role == Role::Prometheus)
        .cloned();
    for workload in fleet.workloads() {
        let endpoint = netpol::workload_endpoint(&workload);
        if workload.controller.runs_jobs() && network.isolating(&endpoint, true).is_empty() {
            sink.report(
                &catalog::AGENT_NOT_ISOLATED,
                workload.object,
                &workload.metadata_path(),
                format!(
                    "no NetworkPolicy selects the pods of {} for egress: they can connect anywhere",
                    workload.describe()
                ),
            );
        }
        let (Some(prometheus), Some("true")) =
            (&prometheus, workload.annotation("prometheus.io/scrape"))
        else {
            continue;
        };
        let ports = netpol::declared_ports(&workload);
        let wanted = workload
            .annotation("prometheus.io/port")
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = ports
            .iter()
            .find(|p| wanted.is_none_or(|w| p.number == w))
            .cloned()
        else {
            continue;
        };
        let target = Endpoint {
            port: Some(port.clone()),
            ..endpoint
        };
        if let Verdict::Denied { policies } = network.ingress(prometheus, &target) {
            let names: Vec<String> = policies.iter().map(ToString::to_string).collect();
            sink.report(
                &catalog::SCRAPE_BLOCKED_BY_NETPOL,
                workload.object,
                &workload.metadata_path().key("annotations").key("prometheus.io/scrape"),
                format!("{} asks to be scraped on {port}, but NetworkPolicy {} denies ingress from {} ({})", workload.describe(), names.join(", "), prometheus.name, prometheus.namespace.as_deref().unwrap_or("?")),
            );
        }
    }
}

/// AF042: namespaceSelectors on labels that no namespace carries.
fn namespace_selectors(fleet: &Fleet, object: &Object, spec: &NetworkPolicySpec, sink: &mut Sink) {
    let namespaces: Vec<&Object> = fleet
        .objects
        .iter()
        .filter(|o| matches!(o.resource, Resource::Namespace(_)))
        .collect();
    let rules = spec
        .egress
        .iter()
        .flatten()
        .enumerate()
        .flat_map(|(i, r)| {
            r.to.iter()
                .flatten()
                .enumerate()
                .map(move |(j, p)| (Path::parse("spec.egress").index(i).key("to").index(j), p))
        })
        .chain(
            spec.ingress
                .iter()
                .flatten()
                .enumerate()
                .flat_map(|(i, r)| {
                    r.from.iter().flatten().enumerate().map(move |(j, p)| {
                        (Path::parse("spec.ingress").index(i).key("from").index(j), p)
                    })
                }),
        );
    for (path, peer) in rules {
        let Some(sel) = &peer.namespace_selector else {
            continue;
        };
        for (key, value) in sel.match_labels.iter().flatten() {
            if key == NAMESPACE_NAME_LABEL {
                continue;
            }
            let set_by_input = namespaces
                .iter()
                .any(|ns| ns.labels.get(key) == Some(value));
            if !set_by_input {
                sink.report(
                    &catalog::NAMESPACE_LABEL_UNSET,
                    object,
                    &path.key("namespaceSelector").key("matchLabels").key(key),
                    format!(
                        "namespaceSelector {key}={value} matches no namespace: namespaces carry {NAMESPACE_NAME_LABEL} automatically, `{key}` only if someone adds it, and no Namespace in the input does (use {NAMESPACE_NAME_LABEL}: {value})"
                    ),
                );
            }
        }
        for (index, expr) in sel.match_expressions.iter().flatten().enumerate() {
            if expr.key == NAMESPACE_NAME_LABEL
                || !matches!(expr.operator.as_str(), "In" | "Exists")
            {
                continue;
            }
            if !namespaces
                .iter()
                .any(|ns| ns.labels.contains_key(&expr.key))
            {
                sink.report(
                    &catalog::NAMESPACE_LABEL_UNSET,
                    object,
                    &path.key("namespaceSelector").key("matchExpressions").index(index),
                    format!("namespaceSelector requires label `{}`, which no Namespace in the input sets; namespaces only carry {NAMESPACE_NAME_LABEL} automatically", expr.key),
                );
            }
        }
    }
}
