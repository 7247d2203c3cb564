//! The subset of KEDA's `keda.sh/v1alpha1` API that a fleet uses: ScaledJob,
//! TriggerAuthentication and ClusterTriggerAuthentication.
//!
//! `deny_unknown_fields` everywhere: the linter's decoder reports every field not listed here
//! as unknown (with a suggestion), which is how a typo like `maxReplicaCont` is caught. Secret
//! store providers that the fleet does not use (Vault, cloud key vaults) are kept as opaque
//! JSON so that valid objects using them still decode.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "keda.sh/v1alpha1";

/// `ScaledJob`: KEDA creates Jobs from `jobTargetRef` while its triggers are active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaledJob {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: ScaledJobSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaledJobSpec {
    pub job_target_ref: JobSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling_interval: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_jobs_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_jobs_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_source_container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replica_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replica_count: Option<i32>,
    /// Deprecated spelling of `rollout.strategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_strategy: Option<ScalingStrategy>,
    #[serde(default)]
    pub triggers: Vec<ScaleTrigger>,
}

/// KEDA's default ScaledJob maxReplicaCount.
pub const DEFAULT_MAX_REPLICA_COUNT: i32 = 100;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    /// `default` (delete running Jobs on spec change) or `gradual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// `background` (default) or `foreground`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation_policy: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScalingStrategy {
    /// `default`, `custom`, `accurate` or `eager`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_scaling_queue_length_deduction: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_scaling_running_job_percentage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_pod_conditions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple_scalers_calculation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleTrigger {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_cached_metrics: Option<bool>,
    /// Scaler parameters. KEDA reads them as strings: `value: 5` unquoted is a type error.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_ref: Option<AuthenticationRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticationRef {
    pub name: String,
    /// `TriggerAuthentication` (default) or `ClusterTriggerAuthentication`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `TriggerAuthentication` and `ClusterTriggerAuthentication` share this shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerAuthentication {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: TriggerAuthenticationSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerAuthenticationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<PodIdentity>,
    #[serde(default)]
    pub secret_target_ref: Vec<SecretTargetRef>,
    #[serde(default)]
    pub env: Vec<EnvTargetRef>,
    #[serde(default)]
    pub config_map_target_ref: Vec<ConfigMapTargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_service_account_token: Option<Vec<BoundServiceAccountToken>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashi_corp_vault: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_key_vault: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secret_manager: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_secret_manager: Option<serde_json::Value>,
}

impl TriggerAuthenticationSpec {
    /// Trigger parameters this authentication provides (`host`, `password`, ...).
    pub fn parameters(&self) -> impl Iterator<Item = &str> {
        self.secret_target_ref
            .iter()
            .map(|r| r.parameter.as_str())
            .chain(self.env.iter().map(|r| r.parameter.as_str()))
            .chain(
                self.config_map_target_ref
                    .iter()
                    .map(|r| r.parameter.as_str()),
            )
    }

    /// Providers whose parameters cannot be listed statically (Vault, cloud secret stores).
    pub fn has_opaque_provider(&self) -> bool {
        self.hashi_corp_vault.is_some()
            || self.azure_key_vault.is_some()
            || self.aws_secret_manager.is_some()
            || self.gcp_secret_manager.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodIdentity {
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_authority_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretTargetRef {
    pub parameter: String,
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvTargetRef {
    pub parameter: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapTargetRef {
    pub parameter: String,
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BoundServiceAccountToken {
    pub parameter: String,
    pub service_account_name: String,
}

/// Lets the object table treat KEDA kinds like k8s-openapi's.
macro_rules! keda_resource {
    ($ty:ty, $kind:literal, $plural:literal, $scope:ty) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = API_VERSION;
            const GROUP: &'static str = "keda.sh";
            const KIND: &'static str = $kind;
            const VERSION: &'static str = "v1alpha1";
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = $scope;
        }
    };
}

keda_resource!(
    ScaledJob,
    "ScaledJob",
    "scaledjobs",
    k8s_openapi::NamespaceResourceScope
);
keda_resource!(
    TriggerAuthentication,
    "TriggerAuthentication",
    "triggerauthentications",
    k8s_openapi::NamespaceResourceScope
);

/// `ClusterTriggerAuthentication`: the same shape as [`TriggerAuthentication`], cluster-scoped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClusterTriggerAuthentication(pub TriggerAuthentication);

keda_resource!(
    ClusterTriggerAuthentication,
    "ClusterTriggerAuthentication",
    "clustertriggerauthentications",
    k8s_openapi::ClusterResourceScope
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::yaml::parse_stream;

    #[test]
    fn scaledjob_typos_are_unknown_fields_with_suggestions() {
        let node = parse_stream(concat!(
            "apiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata: {name: s}\n",
            "spec:\n  maxReplicaCont: 5\n  jobTargetRef:\n    template:\n      spec:\n        containers: []\n",
            "  triggers:\n    - type: rabbitmq\n      metadata: {queueName: q}\n      authenticationRef: {name: a, knd: x}\n",
        ))
        .unwrap()
        .remove(0);
        let (sj, unknown) = decode::<ScaledJob>(&node).unwrap();
        assert_eq!(sj.spec.triggers[0].metadata["queueName"], "q");
        let keys: Vec<_> = unknown
            .iter()
            .map(|u| (u.key.as_str(), u.suggestion))
            .collect();
        assert_eq!(
            keys,
            [
                ("maxReplicaCont", Some("maxReplicaCount")),
                ("knd", Some("kind"))
            ]
        );
    }

    #[test]
    fn trigger_values_must_be_strings() {
        let node = parse_stream(
            "apiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata: {name: s}\nspec:\n  jobTargetRef: {template: {}}\n  triggers:\n    - type: rabbitmq\n      metadata:\n        value: 5\n",
        )
        .unwrap()
        .remove(0);
        let invalid = decode::<ScaledJob>(&node).unwrap_err().invalid.unwrap();
        assert_eq!(invalid.path.to_string(), "spec.triggers[0].metadata.value");
        assert!(
            invalid.message.contains("expected a string"),
            "{}",
            invalid.message
        );
    }
}
