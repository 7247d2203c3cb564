//! Who can reach whom: the NetworkPolicy truth table.
//!
//! Kubernetes semantics, per direction: a pod that no policy selects for a direction is not
//! isolated in that direction (everything allowed); a pod that some policy selects is isolated,
//! and a connection is allowed iff at least one rule of one of those policies allows it.
//! A connection A -> B:port is allowed iff A's egress allows it AND B's ingress allows it.
//!
//! Endpoints are (namespace + labels + port/protocol): every pod template in the input with
//! each port it declares, plus well-known places a fleet must (or must not) reach: kube-dns,
//! the API server, the platform services (gateway, queue, Prometheus; synthesized with
//! conventional namespaces when the input has no workload for them), a pod in another
//! namespace, and the internet. A cluster runtime probes the real CNI against this table.
//!
//! `ipBlock` peers match only endpoints with an address (the API server, the internet):
//! NetworkPolicy leaves ipBlock-versus-pod-IP to the CNI, and the API docs direct ipBlock at
//! cluster-external addresses.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::fleet::{Controller, Fleet, Workload};
use crate::model::{Object, Resource};
use crate::selector::{self, Labels};

/// A port and protocol as policies see it. `name` is the container port's name, which
/// policies may use instead of the number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Port {
    pub number: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub protocol: String,
}

impl Port {
    pub fn tcp(number: u16) -> Port {
        Port {
            number,
            name: None,
            protocol: "TCP".into(),
        }
    }

    pub fn udp(number: u16) -> Port {
        Port {
            number,
            name: None,
            protocol: "UDP".into(),
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number, self.protocol)
    }
}

/// What an endpoint stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Pods of a Job, CronJob or ScaledJob: the agents.
    Agent,
    /// Pods of another workload in the input.
    Workload,
    Gateway,
    Queue,
    Prometheus,
    Dns,
    ApiServer,
    /// A pod in a namespace the fleet has nothing to do with.
    OtherNamespace,
    /// An address on the internet.
    Outside,
}

/// One place a connection can start or end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// `Job agents/agent-batch-run`, `kube-dns`, `outside`, ...
    pub name: String,
    pub role: Role,
    /// Set for pods; `None` for addresses outside the pod network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub labels: Labels,
    /// Set for endpoints outside the pod network (matched by ipBlock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// The destination port; `None` when the pod declares no port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    /// False when the input had no such workload and the endpoint stands in for it.
    pub from_input: bool,
}

impl Endpoint {
    /// `name:port/proto`, for matrix columns.
    pub fn label(&self) -> String {
        match &self.port {
            Some(port) => format!("{}:{port}", self.name),
            None => format!("{}:(no port)", self.name),
        }
    }
}

/// A NetworkPolicy by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PolicyRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The decision for one direction of one connection, with the policy that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Verdict {
    /// No policy selects the pod for this direction.
    NotIsolated,
    /// `policy`'s rule number `rule` (0-based) allows it.
    Allowed { policy: PolicyRef, rule: usize },
    /// The pod is isolated by `policies` and none of their rules allows it.
    Denied { policies: Vec<PolicyRef> },
}

impl Verdict {
    pub fn allows(&self) -> bool {
        !matches!(self, Verdict::Denied { .. })
    }
}

/// One connection's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub allowed: bool,
    pub egress: Verdict,
    pub ingress: Verdict,
}

/// The truth table: `cells[r][c]` is the connection from `rows[r]` to `cols[c]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matrix {
    pub rows: Vec<Endpoint>,
    pub cols: Vec<Endpoint>,
    pub cells: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// One rule's peers (`to`/`from`) and ports.
type RuleParts<'r> = (
    &'r Option<Vec<NetworkPolicyPeer>>,
    &'r Option<Vec<NetworkPolicyPort>>,
);

/// The policies of an input, ready to decide connections.
#[derive(Debug)]
pub struct Network<'a> {
    fleet: &'a Fleet,
    /// Policies by namespace: a policy only ever selects pods of its own namespace.
    policies: std::collections::HashMap<String, Vec<(PolicyRef, &'a NetworkPolicySpec)>>,
    /// Labels per namespace, computed once: peer matching asks for them constantly.
    namespace_labels: std::cell::RefCell<std::collections::HashMap<String, Labels>>,
}

/// Well-known addresses used for endpoints outside the pod network.
pub const API_SERVER_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);
pub const API_SERVER_PORT: u16 = 6443;
/// TEST-NET-3 (RFC 5737): stands for any internet address.
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The namespace of the "another namespace" endpoint.
pub const OTHER_NAMESPACE: &str = "agentfleet-other";

impl<'a> Network<'a> {
    pub fn new(fleet: &'a Fleet) -> Network<'a> {
        let mut policies: std::collections::HashMap<String, Vec<_>> =
            std::collections::HashMap::new();
        let all: Vec<(PolicyRef, &NetworkPolicySpec)> = fleet
            .objects
            .iter()
            .filter_map(|object| match &object.resource {
                Resource::NetworkPolicy(np) => Some((object, np.as_ref())),
                _ => None,
            })
            .filter_map(|(object, np): (&Object, &NetworkPolicy)| {
                let namespace = fleet.namespace_of(object)?.to_owned();
                Some((
                    PolicyRef {
                        namespace,
                        name: object.name.clone(),
                    },
                    np.spec.as_ref()?,
                ))
            })
            .collect();
        for (policy, spec) in all {
            policies
                .entry(policy.namespace.clone())
                .or_default()
                .push((policy, spec));
        }
        Network {
            fleet,
            policies,
            namespace_labels: Default::default(),
        }
    }

    /// Whether `from` may open a connection to `to` (on `to.port`).
    pub fn connect(&self, from: &Endpoint, to: &Endpoint) -> Cell {
        let egress = self.decide(Direction::Egress, from, to);
        let ingress = self.decide(Direction::Ingress, from, to);
        Cell {
            allowed: egress.allows() && ingress.allows(),
            egress,
            ingress,
        }
    }

    /// Egress side only: whether `from`'s policies let it send to `to`.
    pub fn egress(&self, from: &Endpoint, to: &Endpoint) -> Verdict {
        self.decide(Direction::Egress, from, to)
    }

    /// Ingress side only: whether `to`'s policies accept from `from`.
    pub fn ingress(&self, from: &Endpoint, to: &Endpoint) -> Verdict {
        self.decide(Direction::Ingress, from, to)
    }

    /// Policies that select `pod` for a direction (isolate it).
    pub fn isolating(&self, pod: &Endpoint, egress: bool) -> Vec<PolicyRef> {
        let direction = if egress {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        self.selecting(pod, direction)
            .map(|(r, _)| r.clone())
            .collect()
    }

    fn selecting<'s>(
        &'s self,
        pod: &'s Endpoint,
        direction: Direction,
    ) -> impl Iterator<Item = &'s (PolicyRef, &'a NetworkPolicySpec)> {
        let in_namespace = pod
            .namespace
            .as_deref()
            .and_then(|ns| self.policies.get(ns));
        in_namespace.into_iter().flatten().filter(move |(_, spec)| {
            applies_to(spec, direction)
                && spec
                    .pod_selector
                    .as_ref()
                    .is_none_or(|sel| selector::matches(sel, &pod.labels))
        })
    }

    fn decide(&self, direction: Direction, from: &Endpoint, to: &Endpoint) -> Verdict {
        // The pod whose policies decide, and the peer the rules must name.
        let (subject, peer) = match direction {
            Direction::Egress => (from, to),
            Direction::Ingress => (to, from),
        };
        let mut isolating = Vec::new();
        for (policy, spec) in self.selecting(subject, direction) {
            isolating.push(policy.clone());
            let rules: Vec<RuleParts<'_>> = match direction {
                Direction::Egress => spec
                    .egress
                    .iter()
                    .flatten()
                    .map(|r| (&r.to, &r.ports))
                    .collect(),
                Direction::Ingress => spec
                    .ingress
                    .iter()
                    .flatten()
                    .map(|r| (&r.from, &r.ports))
                    .collect(),
            };
            for (index, (peers, ports)) in rules.into_iter().enumerate() {
                let peer_ok = match peers {
                    None => true,
                    Some(list) if list.is_empty() => true,
                    Some(list) => list
                        .iter()
                        .any(|p| self.peer_matches(p, &policy.namespace, peer)),
                };
                if peer_ok && ports_match(ports.as_deref(), to.port.as_ref()) {
                    return Verdict::Allowed {
                        policy: policy.clone(),
                        rule: index,
                    };
                }
            }
        }
        if isolating.is_empty() {
            Verdict::NotIsolated
        } else {
            Verdict::Denied {
                policies: isolating,
            }
        }
    }

    fn peer_matches(
        &self,
        peer: &NetworkPolicyPeer,
        policy_namespace: &str,
        target: &Endpoint,
    ) -> bool {
        if let Some(block) = &peer.ip_block {
            return target.ip.is_some_and(|ip| {
                cidr_contains(&block.cidr, ip)
                    && !block.except.iter().flatten().any(|e| cidr_contains(e, ip))
            });
        }
        if peer.pod_selector.is_none() && peer.namespace_selector.is_none() {
            return false;
        }
        let Some(namespace) = target.namespace.as_deref() else {
            return false;
        };
        let namespace_ok = match &peer.namespace_selector {
            Some(sel) => {
                let mut cache = self.namespace_labels.borrow_mut();
                let labels = cache
                    .entry(namespace.to_owned())
                    .or_insert_with(|| self.fleet.namespace_labels(namespace));
                selector::matches(sel, labels)
            }
            None => namespace == policy_namespace,
        };
        namespace_ok
            && peer
                .pod_selector
                .as_ref()
                .is_none_or(|sel| selector::matches(sel, &target.labels))
    }
}

/// Whether a policy governs a direction: `policyTypes` when given; otherwise Ingress always
/// and Egress when the policy has egress rules.
fn applies_to(spec: &NetworkPolicySpec, direction: Direction) -> bool {
    match &spec.policy_types {
        Some(types) => types.iter().any(|t| match direction {
            Direction::Ingress => t == "Ingress",
            Direction::Egress => t == "Egress",
        }),
        None => match direction {
            Direction::Ingress => true,
            Direction::Egress => spec.egress.is_some(),
        },
    }
}

/// Whether a rule's port list admits the destination port. An empty list admits every port;
/// a destination without a declared port is only admitted by such rules.
fn ports_match(ports: Option<&[NetworkPolicyPort]>, dst: Option<&Port>) -> bool {
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return true;
    };
    let Some(dst) = dst else { return false };
    ports.iter().any(|p| {
        let protocol = p.protocol.as_deref().unwrap_or("TCP");
        protocol == dst.protocol
            && match &p.port {
                None => true,
                Some(IntOrString::Int(n)) => {
                    let end = p.end_port.unwrap_or(*n);
                    i32::from(dst.number) >= *n && i32::from(dst.number) <= end
                }
                Some(IntOrString::String(name)) => dst.name.as_deref() == Some(name.as_str()),
            }
    })
}

/// IPv4 CIDR containment; IPv6 and malformed blocks contain nothing.
pub fn cidr_contains(cidr: &str, ip: Ipv4Addr) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<Ipv4Addr>(), len.parse::<u32>()) else {
        return false;
    };
    if len > 32 {
        return false;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(net) & mask) == (u32::from(ip) & mask)
}

/// Which platform service a workload is, judged by its names and labels.
fn platform_role(workload: &Workload<'_>) -> Option<Role> {
    let labels = workload.labels();
    let mut names: Vec<&str> = vec![workload.object.name.as_str()];
    for key in [
        "app.kubernetes.io/name",
        "app.kubernetes.io/component",
        "app",
    ] {
        if let Some(v) = labels.get(key) {
            names.push(v);
        }
    }
    let any = |needle: &str| names.iter().any(|n| n.contains(needle));
    if any("gateway") {
        Some(Role::Gateway)
    } else if any("rabbitmq") || any("message-queue") {
        Some(Role::Queue)
    } else if any("prometheus") {
        Some(Role::Prometheus)
    } else {
        None
    }
}

/// Endpoints for every pod template in the input (one per declared port), then the
/// well-known ones.
pub fn endpoints(fleet: &Fleet) -> Vec<Endpoint> {
    let mut out = Vec::new();
    let mut seen_roles = BTreeSet::new();
    for workload in fleet.workloads() {
        let role = if workload.controller.runs_jobs() {
            Role::Agent
        } else {
            platform_role(&workload).unwrap_or(Role::Workload)
        };
        seen_roles.insert(role);
        let base = Endpoint {
            name: workload.describe(),
            role,
            namespace: Some(workload.namespace.to_owned()),
            labels: workload.labels(),
            ip: None,
            port: None,
            from_input: true,
        };
        let ports = declared_ports(&workload);
        if ports.is_empty() {
            out.push(base);
        } else {
            out.extend(ports.into_iter().map(|port| Endpoint {
                port: Some(port),
                ..base.clone()
            }));
        }
    }
    let pod = |name: &str, role, namespace: &str, labels: &[(&str, &str)], port| Endpoint {
        name: name.to_owned(),
        role,
        namespace: Some(namespace.to_owned()),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ip: None,
        port: Some(port),
        from_input: false,
    };
    let synthesized = [
        (
            Role::Gateway,
            pod(
                "gateway",
                Role::Gateway,
                "llm-gateway",
                &[("app.kubernetes.io/name", "llm-gateway")],
                Port::tcp(8080),
            ),
        ),
        (
            Role::Queue,
            pod(
                "queue",
                Role::Queue,
                "message-queue",
                &[("app.kubernetes.io/name", "rabbitmq")],
                Port::tcp(5672),
            ),
        ),
        (
            Role::Prometheus,
            pod(
                "prometheus",
                Role::Prometheus,
                "monitoring",
                &[("app.kubernetes.io/name", "prometheus")],
                Port::tcp(9090),
            ),
        ),
    ];
    for (role, endpoint) in synthesized {
        if !seen_roles.contains(&role) {
            out.push(endpoint);
        }
    }
    out.push(pod(
        "kube-dns",
        Role::Dns,
        "kube-system",
        &[("k8s-app", "kube-dns")],
        Port::udp(53),
    ));
    out.push(pod(
        "kube-dns",
        Role::Dns,
        "kube-system",
        &[("k8s-app", "kube-dns")],
        Port::tcp(53),
    ));
    out.push(Endpoint {
        name: "api-server".into(),
        role: Role::ApiServer,
        namespace: None,
        labels: Labels::new(),
        ip: Some(API_SERVER_IP),
        port: Some(Port::tcp(API_SERVER_PORT)),
        from_input: false,
    });
    out.push(pod(
        "other-namespace",
        Role::OtherNamespace,
        OTHER_NAMESPACE,
        &[("app", "other")],
        Port::tcp(8080),
    ));
    out.push(Endpoint {
        name: "outside".into(),
        role: Role::Outside,
        namespace: None,
        labels: Labels::new(),
        ip: Some(OUTSIDE_IP),
        port: Some(Port::tcp(443)),
        from_input: false,
    });
    out
}

/// The container ports a workload declares, de-duplicated.
pub fn declared_ports(workload: &Workload<'_>) -> Vec<Port> {
    let mut ports = BTreeSet::new();
    for container in &workload.spec.containers {
        for p in container.ports.iter().flatten() {
            if let Ok(number) = u16::try_from(p.container_port) {
                ports.insert(Port {
                    number,
                    name: p.name.clone(),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                });
            }
        }
    }
    ports.into_iter().collect()
}

/// The full truth table: every distinct endpoint as a source, every endpoint+port as a
/// destination.
pub fn matrix(fleet: &Fleet) -> Matrix {
    let cols = endpoints(fleet);
    let mut rows: Vec<Endpoint> = Vec::new();
    for endpoint in &cols {
        if !rows.iter().any(|r| r.name == endpoint.name) {
            rows.push(endpoint.clone());
        }
    }
    let network = Network::new(fleet);
    let cells = rows
        .iter()
        .map(|from| cols.iter().map(|to| network.connect(from, to)).collect())
        .collect();
    Matrix { rows, cols, cells }
}

/// Endpoints of one workload (for the lint rules), with the Agent/Workload role.
pub fn workload_endpoint(workload: &Workload<'_>) -> Endpoint {
    Endpoint {
        name: workload.describe(),
        role: if workload.controller == Controller::Pod || !workload.controller.runs_jobs() {
            Role::Workload
        } else {
            Role::Agent
        },
        namespace: Some(workload.namespace.to_owned()),
        labels: workload.labels(),
        ip: None,
        port: declared_ports(workload).into_iter().next(),
        from_input: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_sources;
    use crate::source::{Source, SourceText};

    fn fleet(text: &str) -> Fleet {
        let parsed = parse_sources(&[Source {
            name: "t.yaml".into(),
            text: SourceText::Text(text.into()),
        }]);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        Fleet::new(parsed.objects, "default")
    }

    const AGENT: &str = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: agent, namespace: agents}\nspec:\n  template:\n    metadata: {labels: {app: agent}}\n    spec:\n      restartPolicy: Never\n      containers: [{name: a, image: a:1, ports: [{name: metrics, containerPort: 8080}]}]\n";

    fn find<'m>(m: &'m Matrix, from: &str, to_name: &str, port: &Port) -> &'m Cell {
        let r = m
            .rows
            .iter()
            .position(|e| e.name == from)
            .unwrap_or_else(|| panic!("no row {from}"));
        let c = m
            .cols
            .iter()
            .position(|e| e.name == to_name && e.port.as_ref() == Some(port))
            .unwrap_or_else(|| panic!("no col {to_name} {port}"));
        &m.cells[r][c]
    }

    #[test]
    fn no_policy_means_everything_is_allowed() {
        let m = matrix(&fleet(AGENT));
        assert!(
            m.cells
                .iter()
                .flatten()
                .all(|c| c.allowed && c.egress == Verdict::NotIsolated)
        );
        assert!(
            m.cols
                .iter()
                .any(|e| e.role == Role::Gateway && !e.from_input)
        );
    }

    #[test]
    fn egress_policy_allows_named_peers_and_denies_the_rest() {
        let text = format!(
            "{AGENT}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: iso, namespace: agents}}\nspec:\n  podSelector: {{matchLabels: {{app: agent}}}}\n  policyTypes: [Egress]\n  egress:\n    - to: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: llm-gateway}}}}}}]\n      ports: [{{port: 8080}}]\n    - to: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: kube-system}}}}, podSelector: {{matchLabels: {{k8s-app: kube-dns}}}}}}]\n      ports: [{{port: 53, protocol: UDP}}]\n    - to: [{{ipBlock: {{cidr: 0.0.0.0/0, except: [172.16.0.0/12]}}}}]\n      ports: [{{port: 443}}]\n"
        );
        let m = matrix(&fleet(&text));
        let agent = "Job agents/agent";
        let gw = find(&m, agent, "gateway", &Port::tcp(8080));
        assert!(gw.allowed);
        assert_eq!(
            gw.egress,
            Verdict::Allowed {
                policy: PolicyRef {
                    namespace: "agents".into(),
                    name: "iso".into()
                },
                rule: 0
            }
        );
        assert!(find(&m, agent, "kube-dns", &Port::udp(53)).allowed);
        let tcp_dns = find(&m, agent, "kube-dns", &Port::tcp(53));
        assert!(!tcp_dns.allowed && matches!(tcp_dns.egress, Verdict::Denied { .. }));
        assert!(!find(&m, agent, "queue", &Port::tcp(5672)).allowed);
        assert!(
            find(&m, agent, "outside", &Port::tcp(443)).allowed,
            "0.0.0.0/0 on 443"
        );
        assert!(
            !find(&m, agent, "api-server", &Port::tcp(6443)).allowed,
            "172.16/12 excepted, and wrong port"
        );
        // Ingress is not isolated: anyone may reach the agent's metrics port.
        assert!(
            find(
                &m,
                "outside",
                agent,
                &Port {
                    number: 8080,
                    name: Some("metrics".into()),
                    protocol: "TCP".into()
                }
            )
            .allowed
        );
    }

    #[test]
    fn ingress_isolation_needs_both_sides() {
        let text = format!(
            "{AGENT}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: deny-in, namespace: agents}}\nspec:\n  podSelector: {{}}\n  ingress:\n    - from: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: monitoring}}}}}}]\n      ports: [{{port: metrics}}]\n"
        );
        let m = matrix(&fleet(&text));
        let metrics = Port {
            number: 8080,
            name: Some("metrics".into()),
            protocol: "TCP".into(),
        };
        let cell = find(&m, "prometheus", "Job agents/agent", &metrics);
        assert!(
            cell.allowed,
            "named port and namespace selector match: {cell:?}"
        );
        let cell = find(&m, "other-namespace", "Job agents/agent", &metrics);
        assert!(!cell.allowed);
        assert_eq!(cell.egress, Verdict::NotIsolated);
        assert!(
            matches!(&cell.ingress, Verdict::Denied { policies } if policies[0].name == "deny-in")
        );
    }

    #[test]
    fn cidr_containment() {
        assert!(cidr_contains("0.0.0.0/0", OUTSIDE_IP));
        assert!(cidr_contains("172.16.0.0/12", API_SERVER_IP));
        assert!(!cidr_contains("10.0.0.0/8", API_SERVER_IP));
        assert!(!cidr_contains("::/0", OUTSIDE_IP));
        assert!(!cidr_contains("10.0.0.0/33", OUTSIDE_IP));
    }
}
