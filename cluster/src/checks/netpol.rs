//! NetworkPolicy enforcement: the observed reachability matrix against the one the policies
//! imply (`agentfleet_lint::netpol::matrix`).
//!
//! kind's CNI enforces NetworkPolicy but fails open, so a canary comes first: a probe selected
//! by a deny-all egress policy. If it still connects, the CNI does not enforce, and the check is
//! Skipped with that reason (an "everything reachable" result would otherwise look like a
//! policy bug, or worse, a pass). Policies take a moment to be programmed, so the canary is
//! retried a few times (each attempt is a pod round trip) before concluding.
//!
//! Only cells that can be probed from the cluster are filled: rows that are agents (the probe
//! pod is labelled like one) and TCP columns that `resolve` maps to a host and port. The rest
//! stay "not probed" and are shown as such, never counted as agreeing.

use std::time::Duration;

use agentfleet_lint::netpol::{Endpoint, Matrix, Role};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use serde::Serialize;

use super::Verdict;
use crate::FIELD_MANAGER;
use crate::probe::{ProbeError, ProbeOutcome, ProbeSpec, run_probe};

/// Label of the canary probe, selected by the deny-all policy.
pub const CANARY_LABEL: &str = "agentfleet.dev/canary";
/// Name of the deny-all canary policy.
pub const CANARY_POLICY: &str = "agentfleet-canary-deny-all";

/// Where a probe connects to for one matrix column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

/// Whether the CNI enforces NetworkPolicy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "canary", rename_all = "kebab-case")]
pub enum Canary {
    Enforced,
    /// The probe connected through a deny-all policy on every attempt.
    NotEnforced {
        attempts: u32,
    },
}

/// Observed outcomes, `cells[r][c]` aligned with the expected matrix; `None` = not probed.
#[derive(Debug, Clone, Serialize)]
pub struct Observed {
    pub cells: Vec<Vec<Option<ProbeOutcome>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum NetpolError {
    #[error("cannot apply the canary NetworkPolicy {CANARY_POLICY} in {namespace}: {source}")]
    Policy {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

/// The deny-all egress policy for the canary.
pub fn canary_policy(namespace: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(CANARY_POLICY.into()),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some([(CANARY_LABEL.to_owned(), "true".to_owned())].into()),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Egress".into()]),
            egress: None,
            ingress: None,
        }),
    }
}

/// Applies the deny-all policy, probes `target` through it up to `attempts` times, removes it.
pub async fn run_canary(
    client: Client,
    namespace: &str,
    target: &Target,
    attempts: u32,
    probe_timeout: Duration,
) -> Result<Canary, NetpolError> {
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    policies
        .patch(
            CANARY_POLICY,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&canary_policy(namespace)),
        )
        .await
        .map_err(|source| NetpolError::Policy {
            namespace: namespace.into(),
            source,
        })?;
    let mut spec = ProbeSpec::as_agent(target.host.clone(), target.port);
    spec.labels = [(CANARY_LABEL.to_owned(), "true".to_owned())].into();
    let mut result = Ok(Canary::NotEnforced { attempts });
    for _ in 0..attempts {
        match run_probe(client.clone(), namespace, &spec, probe_timeout).await {
            Ok(ProbeOutcome::Reachable) => continue,
            Ok(ProbeOutcome::Unreachable { .. }) => {
                result = Ok(Canary::Enforced);
                break;
            }
            Err(error) => {
                result = Err(error.into());
                break;
            }
        }
    }
    if let Err(error) = policies
        .delete(CANARY_POLICY, &DeleteParams::default())
        .await
    {
        tracing::debug!(%error, "deleting the canary policy failed; the namespace cleanup removes it");
    }
    result
}

/// Cells the cluster can probe: agent rows x TCP columns that `resolve` maps to a target.
pub fn probeable(
    expected: &Matrix,
    resolve: &dyn Fn(&Endpoint) -> Option<Target>,
) -> Vec<(usize, usize, Target)> {
    let mut cells = Vec::new();
    for (r, row) in expected.rows.iter().enumerate() {
        if row.role != Role::Agent {
            continue;
        }
        for (c, col) in expected.cols.iter().enumerate() {
            if col.port.as_ref().is_some_and(|p| p.protocol == "TCP")
                && let Some(target) = resolve(col)
            {
                cells.push((r, c, target));
            }
        }
    }
    cells
}

/// Probes every probeable cell from an agent-labelled pod in `namespace`.
pub async fn record(
    client: Client,
    namespace: &str,
    expected: &Matrix,
    resolve: &(dyn Fn(&Endpoint) -> Option<Target> + Sync),
    probe_timeout: Duration,
) -> Result<Observed, NetpolError> {
    let mut cells = vec![vec![None; expected.cols.len()]; expected.rows.len()];
    for (r, c, target) in probeable(expected, resolve) {
        let mut spec = ProbeSpec::as_agent(target.host.clone(), target.port);
        spec.labels = expected.rows[r]
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        cells[r][c] = Some(run_probe(client.clone(), namespace, &spec, probe_timeout).await?);
    }
    Ok(Observed { cells })
}

/// The expected matrix of the manifests under `paths` (files or directories), exactly what
/// `agentfleet netpol <paths>` prints. An input error names the file and the problem: a truth
/// table from half-read policies would be wrong.
pub fn expected(paths: &[std::path::PathBuf]) -> Result<Matrix, String> {
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let sources = agentfleet_lint::source::load(&paths, &mut std::io::empty())
        .map_err(|e| format!("reading {}: {e}", paths.join(", ")))?;
    let (fleet, problems) = agentfleet_lint::load_fleet(&sources, "default");
    let errors: Vec<String> = problems
        .iter()
        .filter(|p| p.is_input_error())
        .map(|p| format!("{}: {}", p.location, p.message))
        .collect();
    if !errors.is_empty() {
        return Err(format!(
            "the manifests have input errors, so the expected reachability cannot be computed: {}",
            errors.join("; ")
        ));
    }
    Ok(agentfleet_lint::netpol::matrix(&fleet))
}

/// Where a probe inside the cluster reaches a column of the matrix: the platform's Deployments
/// through their Services (named like the Deployment, as in manifests/platform), cluster DNS
/// over TCP, and the API server's Service. Agent pods (no stable address), other namespaces and
/// the internet stay unprobed.
pub fn in_cluster_target(endpoint: &Endpoint) -> Option<Target> {
    let port = endpoint.port.as_ref()?;
    if port.protocol != "TCP" {
        return None;
    }
    let host = match endpoint.role {
        Role::Queue | Role::Gateway | Role::Prometheus => {
            let namespace = endpoint.namespace.as_deref()?;
            let (_, name) = endpoint.name.rsplit_once('/')?;
            format!("{name}.{namespace}.svc")
        }
        Role::Dns => "kube-dns.kube-system.svc".to_owned(),
        // The stand-in names the API server's port (6443); its Service answers on 443.
        Role::ApiServer => {
            return Some(Target {
                host: "kubernetes.default.svc".into(),
                port: 443,
            });
        }
        _ => return None,
    };
    Some(Target {
        host,
        port: port.number,
    })
}

/// The command that re-runs one probe by hand.
pub fn reproduce_command(namespace: &str, from: &Endpoint, target: &Target) -> String {
    let labels: Vec<String> = from
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "agentfleet probe --namespace {namespace} --labels {} --target {}:{}",
        labels.join(","),
        target.host,
        target.port
    )
}

fn render(expected: &Matrix, cell: impl Fn(usize, usize) -> &'static str) -> String {
    let width = expected
        .rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (c, col) in expected.cols.iter().enumerate() {
        out.push_str(&format!("{:>width$}  [{c}] {}\n", "", col.label()));
    }
    out.push_str(&format!("{:>width$} ", ""));
    for c in 0..expected.cols.len() {
        out.push_str(&format!(" {c:>5}"));
    }
    out.push('\n');
    for (r, row) in expected.rows.iter().enumerate() {
        out.push_str(&format!("{:>width$} ", row.name));
        for c in 0..expected.cols.len() {
            out.push_str(&format!(" {:>5}", cell(r, c)));
        }
        out.push('\n');
    }
    out
}

fn word(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}

/// Compares the observed matrix with the expected one, after the canary.
pub fn check(
    canary: &Canary,
    expected: &Matrix,
    observed: &Observed,
    namespace: &str,
    resolve: &dyn Fn(&Endpoint) -> Option<Target>,
) -> Verdict {
    if let Canary::NotEnforced { attempts } = canary {
        return Verdict::Skipped {
            reason: format!(
                "the CNI does not enforce NetworkPolicy: a probe behind a deny-all egress policy connected on {attempts} attempt(s); install a CNI that enforces policies (kind >= v0.24 with kindnet, Calico, Cilium)"
            ),
        };
    }
    let mut reasons = Vec::new();
    let mut probed = 0;
    for (r, c, target) in probeable(expected, resolve) {
        let Some(outcome) = observed
            .cells
            .get(r)
            .and_then(|row| row.get(c))
            .and_then(Option::as_ref)
        else {
            continue;
        };
        probed += 1;
        let want = expected.cells[r][c].allowed;
        if outcome.reachable() != want {
            reasons.push(format!(
                "{} -> {}: expected {}, observed {} ({:?}); reproduce: {}",
                expected.rows[r].name,
                expected.cols[c].label(),
                word(want),
                word(outcome.reachable()),
                outcome,
                reproduce_command(namespace, &expected.rows[r], &target)
            ));
        }
    }
    if probed == 0 {
        return Verdict::Skipped {
            reason:
                "no cell of the matrix could be probed (no agent rows or no resolvable TCP columns)"
                    .into(),
        };
    }
    if !reasons.is_empty() {
        let want = render(expected, |r, c| word(expected.cells[r][c].allowed));
        let got = render(expected, |r, c| {
            match observed
                .cells
                .get(r)
                .and_then(|row| row.get(c))
                .and_then(Option::as_ref)
            {
                Some(outcome) => word(outcome.reachable()),
                None => "-",
            }
        });
        reasons.push(format!(
            "expected (from the NetworkPolicies):\n{want}observed (probes; - = not probed):\n{got}"
        ));
    }
    Verdict::from_reasons(
        reasons,
        format!("{probed} probed connection(s) match the NetworkPolicy truth table"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock;
    use agentfleet_lint::netpol::{Cell, Port, Verdict as Decision};
    use serde_json::json;

    fn endpoint(name: &str, role: Role, port: Option<Port>) -> Endpoint {
        Endpoint {
            name: name.into(),
            role,
            namespace: Some("agents".into()),
            labels: [("app".to_owned(), "ai-agent".to_owned())]
                .into_iter()
                .collect(),
            ip: None,
            port,
            from_input: true,
        }
    }

    fn cell(allowed: bool) -> Cell {
        let verdict = if allowed {
            Decision::NotIsolated
        } else {
            Decision::Denied { policies: vec![] }
        };
        Cell {
            allowed,
            egress: verdict.clone(),
            ingress: verdict,
        }
    }

    /// Agent -> queue allowed, agent -> outside denied, DNS over UDP not probeable.
    fn expected() -> Matrix {
        let agent = endpoint("Job agents/agent-batch", Role::Agent, Some(Port::tcp(8080)));
        let queue = endpoint("queue", Role::Queue, Some(Port::tcp(5672)));
        let outside = endpoint("outside", Role::Outside, Some(Port::tcp(443)));
        let dns = endpoint("kube-dns", Role::Dns, Some(Port::udp(53)));
        Matrix {
            rows: vec![agent.clone(), queue.clone()],
            cols: vec![queue, outside, dns],
            cells: vec![
                vec![cell(true), cell(false), cell(true)],
                vec![cell(true), cell(true), cell(true)],
            ],
        }
    }

    fn resolve(endpoint: &Endpoint) -> Option<Target> {
        match endpoint.role {
            Role::Queue => Some(Target {
                host: "rabbitmq.message-queue.svc".into(),
                port: 5672,
            }),
            Role::Outside => Some(Target {
                host: "203.0.113.10".into(),
                port: 443,
            }),
            _ => None,
        }
    }

    fn observed(queue: bool, outside: bool) -> Observed {
        let outcome = |ok| {
            if ok {
                ProbeOutcome::Reachable
            } else {
                ProbeOutcome::Unreachable {
                    detail: "dropped".into(),
                }
            }
        };
        Observed {
            cells: vec![
                vec![Some(outcome(queue)), Some(outcome(outside)), None],
                vec![None, None, None],
            ],
        }
    }

    #[test]
    fn only_agent_rows_and_resolvable_tcp_columns_are_probed() {
        let cells = probeable(&expected(), &resolve);
        assert_eq!(
            cells.iter().map(|(r, c, _)| (*r, *c)).collect::<Vec<_>>(),
            [(0, 0), (0, 1)]
        );
    }

    #[test]
    fn matching_observations_pass() {
        let verdict = check(
            &Canary::Enforced,
            &expected(),
            &observed(true, false),
            "af-net-a",
            &resolve,
        );
        assert!(verdict.passed(), "{verdict:?}");
    }

    #[test]
    fn a_wrong_cell_fails_with_both_matrices_and_a_reproduce_command() {
        let verdict = check(
            &Canary::Enforced,
            &expected(),
            &observed(true, true),
            "af-net-a",
            &resolve,
        );
        let Verdict::Failed { reasons } = verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            reasons[0].contains("outside:443/TCP: expected deny, observed allow"),
            "{}",
            reasons[0]
        );
        assert!(reasons[0].contains("agentfleet probe --namespace af-net-a --labels app=ai-agent --target 203.0.113.10:443"), "{}", reasons[0]);
        assert!(
            reasons[1].contains("expected (from the NetworkPolicies)")
                && reasons[1].contains("observed (probes"),
            "{}",
            reasons[1]
        );
    }

    #[test]
    fn a_cni_that_does_not_enforce_skips_the_check() {
        let verdict = check(
            &Canary::NotEnforced { attempts: 3 },
            &expected(),
            &observed(true, true),
            "af-net-a",
            &resolve,
        );
        assert!(
            matches!(verdict, Verdict::Skipped { ref reason } if reason.contains("does not enforce")),
            "{verdict:?}"
        );
    }

    #[test]
    fn the_reference_manifests_give_a_probeable_matrix() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base");
        let paths: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path().display().to_string())
            .filter(|p| p.ends_with(".yaml"))
            .collect();
        let sources = agentfleet_lint::source::load(&paths, &mut std::io::empty()).unwrap();
        let (fleet, _) = agentfleet_lint::load_fleet(&sources, "agents");
        let matrix = agentfleet_lint::netpol::matrix(&fleet);
        let resolve_all = |e: &Endpoint| {
            e.port.as_ref().map(|p| Target {
                host: e.name.clone(),
                port: p.number,
            })
        };
        assert!(!probeable(&matrix, &resolve_all).is_empty());
    }

    #[test]
    fn in_cluster_probes_of_the_reference_fleet_expect_queue_gateway_and_dns_only() {
        let manifests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let matrix =
            super::expected(&[manifests.join("base"), manifests.join("platform")]).unwrap();
        let mut cells: Vec<String> = probeable(&matrix, &in_cluster_target)
            .into_iter()
            .map(|(r, c, t)| {
                format!(
                    "{} -> {}:{} {}",
                    matrix.rows[r].name,
                    t.host,
                    t.port,
                    word(matrix.cells[r][c].allowed)
                )
            })
            .filter(|line| line.starts_with("Job "))
            .collect();
        cells.sort();
        assert_eq!(
            cells,
            [
                "Job agents/agent-batch -> gateway.llm-gateway.svc:8080 allow",
                "Job agents/agent-batch -> kube-dns.kube-system.svc:53 allow",
                "Job agents/agent-batch -> kubernetes.default.svc:443 deny",
                "Job agents/agent-batch -> prometheus.monitoring.svc:9090 deny",
                "Job agents/agent-batch -> rabbitmq.message-queue.svc:15672 deny",
                "Job agents/agent-batch -> rabbitmq.message-queue.svc:15692 deny",
                "Job agents/agent-batch -> rabbitmq.message-queue.svc:5672 allow",
            ]
        );
    }

    #[test]
    fn expected_matrix_of_unreadable_manifests_names_the_path() {
        let error = super::expected(&["/nonexistent/manifests".into()]).unwrap_err();
        assert!(error.contains("/nonexistent/manifests"), "{error}");
    }

    #[tokio::test]
    async fn mock_canary_that_connects_through_deny_all_reports_not_enforced() {
        let (client, mut handle) = mock::client();
        let server = tokio::spawn(async move {
            let (request, respond) = mock::next(&mut handle, "canary policy PATCH").await;
            assert_eq!(
                request.uri().path(),
                format!(
                    "/apis/networking.k8s.io/v1/namespaces/af-net-a/networkpolicies/{CANARY_POLICY}"
                )
            );
            assert_eq!(
                request.headers()["content-type"],
                "application/apply-patch+yaml"
            );
            let body = mock::json_body(request).await;
            assert_eq!(body["spec"]["policyTypes"], json!(["Egress"]));
            assert!(
                body["spec"].get("egress").is_none(),
                "deny-all has no egress rules: {body}"
            );
            respond.send_response(mock::json(200, body));

            let (request, respond) = mock::next(&mut handle, "canary probe POST").await;
            assert_eq!(
                mock::json_body(request).await["metadata"]["labels"][CANARY_LABEL],
                "true"
            );
            let pod = |phase: &str| {
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent-probe-c", "resourceVersion": "1"}, "status": {"phase": phase,
                "containerStatuses": [{"name": "probe", "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}]}})
            };
            respond.send_response(mock::json(201, pod("Pending")));
            let (_, respond) = mock::next(&mut handle, "canary probe LIST").await;
            respond.send_response(mock::list("PodList", "v1", "1", vec![pod("Succeeded")]));
            let (_, respond) = mock::next(&mut handle, "canary probe DELETE").await;
            respond.send_response(mock::json(200, pod("Succeeded")));
            let (request, respond) = mock::next(&mut handle, "canary policy DELETE").await;
            assert_eq!(request.method(), http::Method::DELETE);
            assert!(request.uri().path().ends_with(CANARY_POLICY));
            respond.send_response(mock::json(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ));
        });
        let target = Target {
            host: "rabbitmq.message-queue.svc".into(),
            port: 5672,
        };
        let canary = run_canary(client, "af-net-a", &target, 1, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(canary, Canary::NotEnforced { attempts: 1 });
        server.await.unwrap();
    }
}
