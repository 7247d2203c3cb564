//! Operations only a Kubernetes cluster has: a KEDA ScaledJob, a PodDisruptionBudget and its
//! Eviction API, NetworkPolicies enforced by a CNI.
//!
//! The scenarios reach them through [`Session::cluster`](super::Session::cluster). A runtime
//! without them (Docker) answers with the reason, which the scenario records as a *skipped*
//! check (never a passed one) while the rest of the scenario runs as usual. The checks
//! themselves are pure functions in `agentfleet_cluster::checks`; what is here only drives the
//! fleet and hands back observations, so each scenario's logic still exists once.

use std::future::Future;
use std::time::Duration;

use agentfleet_cluster::checks::Verdict as CheckVerdict;
use agentfleet_cluster::checks::disruption::EvictionAttempt;
use agentfleet_cluster::checks::keda_formula::{Sample, ScalerSpec};
use agentfleet_cluster::checks::rollout::RolloutObservation;

use super::{AgentRef, AgentSet, RuntimeError};

/// What the fleet's PodDisruptionBudget allows for a number of healthy agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisruptionBudget {
    /// Healthy agents the budget keeps: the largest integer `minAvailable`; None when a budget
    /// uses a form that cannot budget Job pods (`maxUnavailable`, a percentage), which then
    /// refuses every eviction.
    pub min_available: Option<u32>,
    /// Evictions it admits for the healthy agents counted, per the spec.
    pub allowed: u32,
}

/// Cluster-only operations of a session.
pub trait ClusterOps: Send + Sync {
    /// The fleet's ScaledJob as KEDA reads it (trigger value, maxReplicaCount, polling
    /// interval, scaling strategy).
    fn scaler_spec(&self) -> Result<ScalerSpec, RuntimeError>;

    /// Applies the fleet's ScaledJob (and its TriggerAuthentication) into the session, its pod
    /// template carrying `set.env` and the `set.fleet` label, and `maxReplicaCount` replaced
    /// when given. Applying it again with other values is a fleet change, which KEDA's rollout
    /// strategy handles.
    fn apply_scaled_job(
        &self,
        set: &AgentSet,
        max_replica_count: Option<u32>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Deletes the ScaledJob: KEDA stops creating Jobs.
    fn delete_scaled_job(&self) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// The ScaledJob's Jobs as the session's watches see them now, with `ready_messages` read
    /// from the broker, as one sample of the KEDA formula check.
    fn scaling_sample(&self, t: Duration, ready_messages: u64) -> Sample;

    /// Marks a fleet change (the ScaledJob is about to be re-applied): the Jobs running now
    /// must survive it.
    fn mark_fleet_change(&self);

    /// What happened to the Jobs running at the marked fleet change.
    fn rollout_observation(&self) -> RolloutObservation;

    /// Waits until the disruption controller has counted `healthy` agents, and returns what
    /// the fleet's budget allows for them.
    fn disruption_budget(
        &self,
        healthy: u32,
        timeout: Duration,
    ) -> impl Future<Output = Result<DisruptionBudget, RuntimeError>> + Send;

    /// One Eviction API call, no waiting or retrying: the answer the budget gives right now.
    fn evict_once(
        &self,
        agent: &AgentRef,
    ) -> impl Future<Output = Result<EvictionAttempt, RuntimeError>> + Send;

    /// `status.failed` of the agent's Job (what `backoffLimit` counts).
    fn job_failures(
        &self,
        agent: &AgentRef,
    ) -> impl Future<Output = Result<i32, RuntimeError>> + Send;

    /// The reason of the agent pod's `DisruptionTarget` condition as last seen by the watches.
    fn disruption_condition(&self, agent: &AgentRef) -> Option<String>;

    /// The NetworkPolicy check: the CNI canary, then probes for every cell of the expected
    /// reachability matrix (`agentfleet netpol`) that can be probed, compared with it.
    fn policy_matrix(&self) -> impl Future<Output = Result<CheckVerdict, RuntimeError>> + Send;
}

/// The cluster of a runtime that has none: no value of this type exists, so its operations
/// can never be called, and [`Session::cluster`](super::Session::cluster) returns the reason.
#[derive(Debug)]
pub enum NoCluster {}

impl ClusterOps for NoCluster {
    fn scaler_spec(&self) -> Result<ScalerSpec, RuntimeError> {
        match *self {}
    }

    async fn apply_scaled_job(
        &self,
        _set: &AgentSet,
        _max_replica_count: Option<u32>,
    ) -> Result<(), RuntimeError> {
        match *self {}
    }

    async fn delete_scaled_job(&self) -> Result<(), RuntimeError> {
        match *self {}
    }

    fn scaling_sample(&self, _t: Duration, _ready_messages: u64) -> Sample {
        match *self {}
    }

    fn mark_fleet_change(&self) {
        match *self {}
    }

    fn rollout_observation(&self) -> RolloutObservation {
        match *self {}
    }

    async fn disruption_budget(
        &self,
        _healthy: u32,
        _timeout: Duration,
    ) -> Result<DisruptionBudget, RuntimeError> {
        match *self {}
    }

    async fn evict_once(&self, _agent: &AgentRef) -> Result<EvictionAttempt, RuntimeError> {
        match *self {}
    }

    async fn job_failures(&self, _agent: &AgentRef) -> Result<i32, RuntimeError> {
        match *self {}
    }

    fn disruption_condition(&self, _agent: &AgentRef) -> Option<String> {
        match *self {}
    }

    async fn policy_matrix(&self) -> Result<CheckVerdict, RuntimeError> {
        match *self {}
    }
}
