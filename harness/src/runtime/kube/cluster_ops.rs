//! [`ClusterOps`] on Kubernetes: the fleet's ScaledJob applied into the session namespace, the
//! Jobs KEDA creates folded from the session's watches, the PodDisruptionBudget's answer to
//! evictions, and the NetworkPolicy truth table probed from agent-labelled pods.
//!
//! The KEDA samples, the rollout fold and the DisruptionTarget reasons come from the session's
//! one merged watch ([`ClusterHistory`] keeps what it delivered), so they see exactly the events
//! the timeline shows; the budget waits on a PDB watch of its own, Job failures are read from
//! the Job's status, and the policy matrix runs probe pods.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agentfleet_cluster::checks::Verdict as CheckVerdict;
use agentfleet_cluster::checks::disruption::{self, EvictionAttempt};
use agentfleet_cluster::checks::keda_formula::{JobRecorder, Sample, ScalerSpec};
use agentfleet_cluster::checks::netpol::{self, Canary};
use agentfleet_cluster::checks::rollout::{RolloutObservation, RolloutRecorder};
use agentfleet_cluster::events::{ClusterEvent, ClusterEventKind};
use agentfleet_cluster::fleet::{Fleet, scaled_job_resource};
use agentfleet_cluster::namespace::LiveNamespaces;
use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject};
use serde_json::Value;

use super::job::{FLEET_LABEL, name_part};
use super::{Timeouts, run_cni_canary};
use crate::runtime::{AgentRef, AgentSet, ClusterOps, DisruptionBudget, RuntimeError};

/// Every cluster event the session's watch delivered, and where a fleet change was marked.
#[derive(Debug, Clone, Default)]
pub struct ClusterHistory(Arc<Mutex<HistoryInner>>);

#[derive(Debug, Default)]
struct HistoryInner {
    events: Vec<ClusterEvent>,
    fleet_change_at: Option<usize>,
}

impl ClusterHistory {
    pub fn record(&self, event: &ClusterEvent) {
        self.lock().events.push(event.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HistoryInner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last status seen of pod `name`.
    fn last_pod(&self, name: &str) -> Option<agentfleet_cluster::pod_status::AgentStatus> {
        self.lock().events.iter().rev().find_map(|e| match &e.kind {
            ClusterEventKind::Pod(status) if status.name == name => Some(status.clone()),
            _ => None,
        })
    }
}

/// The fleet's KEDA objects, rendered from the manifests and retargeted into the session.
#[derive(Debug, Clone)]
pub struct KedaObjects {
    pub scaled_job: Value,
    pub trigger_authentication: Option<Value>,
}

/// The Kubernetes side of [`ClusterOps`] for one session.
pub struct KubeCluster {
    /// The session namespace, and the client to reach it.
    fleet: Fleet,
    keda: Option<KedaObjects>,
    history: ClusterHistory,
    /// The runtime's CNI canary verdict, shared by every session (run once, on demand).
    canary: Arc<tokio::sync::Mutex<Option<Canary>>>,
    live: LiveNamespaces,
    /// Manifests whose NetworkPolicies give the expected matrix.
    policy_sources: Vec<PathBuf>,
    timeouts: Timeouts,
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster")
            .field("namespace", &self.fleet.namespace())
            .finish_non_exhaustive()
    }
}

fn other(what: &str) -> impl Fn(String) -> RuntimeError + '_ {
    move |e| RuntimeError::Other(format!("{what}: {e}"))
}

/// Sets `name` in a container's JSON `env` list, replacing a `valueFrom` of the same name.
fn set_env(container: &mut Value, name: &str, value: &str) {
    let var = serde_json::json!({ "name": name, "value": value });
    let env = container["env"].as_array_mut();
    match env {
        Some(env) => match env.iter_mut().find(|v| v["name"] == name) {
            Some(existing) => *existing = var,
            None => env.push(var),
        },
        None => container["env"] = Value::Array(vec![var]),
    }
}

/// The ScaledJob with the set's environment on its agent container, its fleet label on the pod
/// template (so Prometheus and the timeline can tell its agents apart) and `maxReplicaCount`
/// replaced when given.
pub fn scaled_job_for(
    scaled_job: &Value,
    set: &AgentSet,
    max_replica_count: Option<u32>,
) -> Result<Value, RuntimeError> {
    let mut object = scaled_job.clone();
    if let Some(max) = max_replica_count {
        object["spec"]["maxReplicaCount"] = Value::from(max);
    }
    let template = &mut object["spec"]["jobTargetRef"]["template"];
    if !template.is_object() {
        return Err(RuntimeError::Setup(
            "ScaledJob: spec.jobTargetRef.template is missing (manifests/base/scaledjob.yaml)"
                .into(),
        ));
    }
    template["metadata"]["labels"][FLEET_LABEL] = Value::String(name_part(&set.fleet));
    let container = template["spec"]["containers"]
        .get_mut(0)
        .ok_or_else(|| {
            RuntimeError::Setup(
                "ScaledJob: spec.jobTargetRef.template.spec.containers is empty (manifests/base/scaledjob.yaml)"
                    .into(),
            )
        })?;
    for (name, value) in &set.env {
        set_env(container, name, value);
    }
    if let Ok(image) = std::env::var(crate::images::AGENT_IMAGE_ENV)
        && !image.trim().is_empty()
    {
        container["image"] = Value::String(image);
    }
    Ok(object)
}

impl KubeCluster {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        namespace: &str,
        keda: Option<KedaObjects>,
        history: ClusterHistory,
        canary: Arc<tokio::sync::Mutex<Option<Canary>>>,
        live: LiveNamespaces,
        policy_sources: Vec<PathBuf>,
        timeouts: Timeouts,
    ) -> KubeCluster {
        KubeCluster {
            fleet: Fleet::new(client, namespace),
            keda,
            history,
            canary,
            live,
            policy_sources,
            timeouts,
        }
    }

    fn keda(&self) -> Result<&KedaObjects, RuntimeError> {
        self.keda.as_ref().ok_or_else(|| {
            RuntimeError::Setup(
                "the manifests define no ScaledJob in namespace agents (expected manifests/base/scaledjob.yaml)"
                    .into(),
            )
        })
    }

    fn scaled_job_name(&self) -> String {
        self.keda
            .as_ref()
            .and_then(|k| k.scaled_job["metadata"]["name"].as_str())
            .unwrap_or("agent-scaledjob")
            .to_owned()
    }

    /// The Job that ran `agent`, as the watches last saw its pod.
    fn job_of(&self, agent: &AgentRef) -> Result<String, RuntimeError> {
        self.history
            .last_pod(&agent.name)
            .and_then(|p| p.job)
            .ok_or_else(|| RuntimeError::Agent {
                agent: agent.name.clone(),
                problem: "no Job owns this pod as far as the watches saw".into(),
            })
    }
}

impl ClusterOps for KubeCluster {
    fn scaler_spec(&self) -> Result<ScalerSpec, RuntimeError> {
        ScalerSpec::from_scaled_job(&self.keda()?.scaled_job)
            .map_err(|e| RuntimeError::Setup(format!("ScaledJob {}: {e}", self.scaled_job_name())))
    }

    async fn apply_scaled_job(
        &self,
        set: &AgentSet,
        max_replica_count: Option<u32>,
    ) -> Result<(), RuntimeError> {
        let keda = self.keda()?;
        if let Some(auth) = &keda.trigger_authentication {
            let mut auth = auth.clone();
            auth["metadata"]["namespace"] = Value::String(self.fleet.namespace().to_owned());
            agentfleet_cluster::apply::Applier::new(self.fleet.client().clone())
                .apply(&auth)
                .await
                .map_err(|e| {
                    RuntimeError::Setup(format!(
                        "applying the TriggerAuthentication: {e} (is KEDA installed? `agentfleet cluster up` installs it)"
                    ))
                })?;
        }
        self.fleet
            .apply_scaled_job(&scaled_job_for(&keda.scaled_job, set, max_replica_count)?)
            .await
            .map_err(|e| other("applying the ScaledJob")(e.to_string()))?;
        Ok(())
    }

    async fn delete_scaled_job(&self) -> Result<(), RuntimeError> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.fleet.client().clone(),
            self.fleet.namespace(),
            &scaled_job_resource(),
        );
        match api
            .delete(&self.scaled_job_name(), &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(other("deleting the ScaledJob")(e.to_string())),
        }
    }

    fn scaling_sample(&self, t: Duration, ready_messages: u64) -> Sample {
        let mut recorder = JobRecorder::new(self.scaled_job_name());
        for event in &self.history.lock().events {
            recorder.observe(event);
        }
        recorder.sample(t, ready_messages)
    }

    fn mark_fleet_change(&self) {
        let mut inner = self.history.lock();
        inner.fleet_change_at = Some(inner.events.len());
    }

    fn rollout_observation(&self) -> RolloutObservation {
        let strategy = self.keda.as_ref().and_then(|k| {
            k.scaled_job["spec"]["rollout"]["strategy"]
                .as_str()
                .map(str::to_owned)
        });
        let mut recorder = RolloutRecorder::new(self.scaled_job_name());
        let inner = self.history.lock();
        let marked = inner.fleet_change_at.unwrap_or(inner.events.len());
        for (i, event) in inner.events.iter().enumerate() {
            if i == marked {
                recorder.mark_edit();
            }
            recorder.observe(event);
        }
        if marked >= inner.events.len() && inner.fleet_change_at.is_some() {
            recorder.mark_edit();
        }
        recorder.finish(strategy)
    }

    async fn disruption_budget(
        &self,
        healthy: u32,
        timeout: Duration,
    ) -> Result<DisruptionBudget, RuntimeError> {
        let healthy_i32 = i32::try_from(healthy).unwrap_or(i32::MAX);
        let budgets = disruption::wait_budgets(
            self.fleet.client().clone(),
            self.fleet.namespace(),
            &format!("status.currentHealthy >= {healthy}"),
            // A budget that cannot budget Job pods never counts them healthy (the controller's
            // fail-safe); it is reported as such, not waited for.
            |pdb| {
                disruption::integer_min_available(pdb).is_none()
                    || pdb
                        .status
                        .as_ref()
                        .is_some_and(|s| s.current_healthy >= healthy_i32)
            },
            timeout,
        )
        .await
        .map_err(|e| RuntimeError::Other(e.to_string()))?;
        // Several budgets over the same pods: the tightest one decides.
        let allowed = budgets
            .iter()
            .map(|pdb| disruption::budgeted_evictions(pdb, healthy))
            .min()
            .unwrap_or(0);
        let min_available = budgets
            .iter()
            .map(disruption::integer_min_available)
            .try_fold(0, |most, n| n.map(|n| most.max(n)));
        Ok(DisruptionBudget {
            min_available,
            allowed,
        })
    }

    async fn evict_once(&self, agent: &AgentRef) -> Result<EvictionAttempt, RuntimeError> {
        let outcome =
            self.fleet
                .evict(&agent.name, None)
                .await
                .map_err(|e| RuntimeError::Agent {
                    agent: agent.name.clone(),
                    problem: e.to_string(),
                })?;
        Ok(EvictionAttempt {
            pod: agent.name.clone(),
            outcome,
        })
    }

    async fn job_failures(&self, agent: &AgentRef) -> Result<i32, RuntimeError> {
        let job = self.job_of(agent)?;
        let jobs: Api<Job> = Api::namespaced(self.fleet.client().clone(), self.fleet.namespace());
        disruption::failed_count(&jobs, &job)
            .await
            .map_err(|e| other(&format!("reading Job {job}"))(e.to_string()))
    }

    fn disruption_condition(&self, agent: &AgentRef) -> Option<String> {
        self.history
            .last_pod(&agent.name)
            .and_then(|p| p.disruption_target)
    }

    async fn policy_matrix(&self) -> Result<CheckVerdict, RuntimeError> {
        let canary = {
            let mut cached = self.canary.lock().await;
            match cached.clone() {
                Some(canary) => canary,
                None => {
                    let canary =
                        run_cni_canary(self.fleet.client(), &self.live, self.timeouts.probe)
                            .await?;
                    *cached = Some(canary.clone());
                    canary
                }
            }
        };
        let expected = netpol::expected(&self.policy_sources).map_err(RuntimeError::Setup)?;
        if let Canary::NotEnforced { .. } = canary {
            let empty = netpol::Observed { cells: Vec::new() };
            return Ok(netpol::check(
                &canary,
                &expected,
                &empty,
                self.fleet.namespace(),
                &netpol::in_cluster_target,
            ));
        }
        let observed = netpol::record(
            self.fleet.client().clone(),
            self.fleet.namespace(),
            &expected,
            &netpol::in_cluster_target,
            self.timeouts.probe,
        )
        .await
        .map_err(|e| RuntimeError::Probe(e.to_string()))?;
        Ok(netpol::check(
            &canary,
            &expected,
            &observed,
            self.fleet.namespace(),
            &netpol::in_cluster_target,
        ))
    }
}

/// Finds the fleet's KEDA objects among the rendered manifests, retargeted into `namespace`.
pub fn keda_objects(rendered: &[Value], namespace: &str) -> Option<KedaObjects> {
    let in_fleet = |kind: &str| {
        rendered
            .iter()
            .find(|o| {
                o["kind"] == kind && o["metadata"]["namespace"] == super::platform::FLEET_NAMESPACE
            })
            .cloned()
    };
    let retarget = |mut o: Value| {
        o["metadata"]["namespace"] = Value::String(namespace.to_owned());
        o
    };
    let scaled_job = retarget(in_fleet("ScaledJob")?);
    // The trigger's authenticationRef names it; only that one is applied.
    let auth_name = scaled_job["spec"]["triggers"][0]["authenticationRef"]["name"].clone();
    let trigger_authentication = rendered
        .iter()
        .find(|o| {
            o["kind"] == "TriggerAuthentication"
                && o["metadata"]["namespace"] == super::platform::FLEET_NAMESPACE
                && o["metadata"]["name"] == auth_name
        })
        .cloned()
        .map(retarget);
    Some(KedaObjects {
        scaled_job,
        trigger_authentication,
    })
}
