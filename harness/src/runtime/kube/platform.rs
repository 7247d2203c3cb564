//! Where the platform lives in the cluster and how the fleet's objects are moved into a
//! scenario's namespace. The names match manifests/platform (Services and Deployments) and
//! manifests/base (namespace `agents`, Job `agent-batch`).

use serde_json::Value;

use super::port_forward::ForwardTarget;
use crate::runtime::ProbeTarget;

/// The namespace the reference fleet is written for.
pub const FLEET_NAMESPACE: &str = "agents";

/// Kinds of the fleet a session does not apply: the workloads (the session starts its own Jobs)
/// and the ScaledJob's TriggerAuthentication, a KEDA kind that would make opening a session on a
/// cluster without KEDA fail for an object no session uses.
const NOT_APPLIED_KINDS: [&str; 3] = ["Job", "ScaledJob", "TriggerAuthentication"];

pub fn rabbitmq_amqp() -> ForwardTarget {
    ForwardTarget {
        what: "RabbitMQ AMQP".into(),
        namespace: "message-queue".into(),
        selector: "app.kubernetes.io/name=rabbitmq".into(),
        port: 5672,
    }
}

/// The management API: queue counters (unacked included) for the timeline.
pub fn rabbitmq_management() -> ForwardTarget {
    ForwardTarget {
        what: "RabbitMQ management API".into(),
        port: 15672,
        ..rabbitmq_amqp()
    }
}

pub fn gateway_http() -> ForwardTarget {
    ForwardTarget {
        what: "gateway admin API".into(),
        namespace: "llm-gateway".into(),
        selector: "app.kubernetes.io/name=gateway".into(),
        port: 8080,
    }
}

pub fn prometheus_http() -> ForwardTarget {
    ForwardTarget {
        what: "Prometheus HTTP API".into(),
        namespace: "monitoring".into(),
        selector: "app.kubernetes.io/name=prometheus".into(),
        port: 9090,
    }
}

/// What the agents must reach: their two egress peers, by Service DNS name.
pub fn reachable() -> Vec<ProbeTarget> {
    vec![
        target("queue", "rabbitmq.message-queue.svc", 5672),
        target("gateway", "gateway.llm-gateway.svc", 8080),
    ]
}

/// Live in-cluster services the fleet's NetworkPolicy does not let agents reach: Prometheus (it
/// scrapes the agents, never the other way round) and the API server.
pub fn unreachable() -> Vec<ProbeTarget> {
    vec![
        target("canary", "prometheus.monitoring.svc", 9090),
        target("outside", "kubernetes.default.svc", 443),
    ]
}

fn target(role: &str, host: &str, port: u16) -> ProbeTarget {
    ProbeTarget {
        role: role.into(),
        host: host.into(),
        port,
    }
}

/// The fleet's supporting objects (ServiceAccount, LimitRange, PDB, NetworkPolicies, PVC,
/// Secret), retargeted into `namespace`; the Namespace `agents` and the
/// workloads are left out.
pub fn fleet_objects(rendered: &[Value], namespace: &str) -> Vec<Value> {
    let fleet: Vec<Value> = rendered
        .iter()
        .filter(|o| {
            o["metadata"]["namespace"] == FLEET_NAMESPACE
                || (o["kind"] == "Namespace" && o["metadata"]["name"] == FLEET_NAMESPACE)
        })
        .filter(|o| !NOT_APPLIED_KINDS.iter().any(|k| o["kind"] == *k))
        .cloned()
        .collect();
    agentfleet_cluster::fleet::retarget(fleet, FLEET_NAMESPACE, namespace)
}

/// `scheme://user:password@host:port/vhost` with the authority's host and port replaced by
/// `local` (the port-forward). The result holds the password: never print it.
pub fn url_through(url: &str, local: std::net::SocketAddr) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let userinfo = authority.rfind('@').map_or("", |at| &authority[..=at]);
    Some(format!("{scheme}://{userinfo}{local}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_fleet_moves_without_its_workloads_or_the_platform() {
        let rendered = vec![
            json!({"kind": "Namespace", "metadata": {"name": "agents"}}),
            json!({"kind": "Secret", "metadata": {"name": "agent-secrets", "namespace": "agents"}}),
            json!({"kind": "Job", "metadata": {"name": "agent-batch", "namespace": "agents"}}),
            json!({"kind": "ScaledJob", "metadata": {"name": "agent-scaledjob", "namespace": "agents"}}),
            json!({"kind": "TriggerAuthentication", "metadata": {"name": "rabbitmq-auth", "namespace": "agents"}}),
            json!({"kind": "Deployment", "metadata": {"name": "rabbitmq", "namespace": "message-queue"}}),
        ];
        let moved = fleet_objects(&rendered, "af-oom-abc123");
        assert_eq!(moved.len(), 1, "{moved:#?}");
        assert_eq!(moved[0]["kind"], "Secret");
        assert_eq!(moved[0]["metadata"]["namespace"], "af-oom-abc123");
    }

    #[test]
    fn the_broker_url_goes_through_the_forward_keeping_credentials_and_vhost() {
        let url = "amqp://agentfleet:pw@rabbitmq.message-queue.svc:5672/%2f";
        let local = "127.0.0.1:40123".parse().unwrap();
        assert_eq!(
            url_through(url, local).as_deref(),
            Some("amqp://agentfleet:pw@127.0.0.1:40123/%2f")
        );
        assert_eq!(url_through("not a url", local), None);
    }
}
