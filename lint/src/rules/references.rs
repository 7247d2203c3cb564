//! Secrets in plain env values, and references to Secrets and claims that are not in the input.

use std::collections::BTreeSet;

use super::keda::url_has_password;
use super::{Sink, catalog};
use crate::fleet::Fleet;
use crate::model::{Object, Resource};
use crate::yaml::Path;

/// Env var name fragments that mark a secret.
const SECRET_NAME_PARTS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
    "ACCESS_KEY",
];

pub(super) fn check(fleet: &Fleet, sink: &mut Sink) {
    let in_input = |kind: fn(&Resource) -> bool, namespace: &str, name: &str| {
        fleet.contains(kind, namespace, name)
    };
    let is_pvc = |r: &Resource| matches!(r, Resource::PersistentVolumeClaim(_));

    for workload in fleet.workloads() {
        let object = workload.object;
        let spec_path = workload.spec_path();
        let mut secrets: Vec<(String, Path)> = Vec::new();
        for (ci, container) in workload
            .spec
            .containers
            .iter()
            .chain(workload.spec.init_containers.iter().flatten())
            .enumerate()
        {
            let field = if ci < workload.spec.containers.len() {
                format!("containers[{ci}]")
            } else {
                format!("initContainers[{}]", ci - workload.spec.containers.len())
            };
            for (ei, env) in container.env.iter().flatten().enumerate() {
                let env_path = spec_path.join(&format!("{field}.env[{ei}]"));
                if let Some(value) = env.value.as_deref().filter(|v| !v.is_empty()) {
                    let upper = env.name.to_ascii_uppercase();
                    if url_has_password(value) {
                        sink.report(
                            &catalog::SECRET_IN_ENV,
                            object,
                            &env_path.key("value"),
                            format!("env {} is a URL with user:password in plain text", env.name),
                        );
                    } else if SECRET_NAME_PARTS.iter().any(|p| upper.contains(p))
                        && !value.starts_with("$(")
                    {
                        sink.report(
                            &catalog::SECRET_IN_ENV,
                            object,
                            &env_path.key("value"),
                            format!(
                                "env {} looks like a secret and is set in plain text",
                                env.name
                            ),
                        );
                    }
                }
                if let Some(r) = env
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref())
                    && r.optional != Some(true)
                {
                    secrets.push((r.name.clone(), env_path.join("valueFrom.secretKeyRef.name")));
                }
            }
            for (ei, from) in container.env_from.iter().flatten().enumerate() {
                if let Some(r) = from
                    .secret_ref
                    .as_ref()
                    .filter(|r| r.optional != Some(true))
                {
                    secrets.push((
                        r.name.clone(),
                        spec_path.join(&format!("{field}.envFrom[{ei}].secretRef.name")),
                    ));
                }
            }
        }
        for (vi, volume) in workload.spec.volumes.iter().flatten().enumerate() {
            let volume_path = spec_path.key("volumes").index(vi);
            if let Some(secret) = volume.secret.as_ref().filter(|s| s.optional != Some(true))
                && let Some(name) = &secret.secret_name
            {
                secrets.push((name.clone(), volume_path.join("secret.secretName")));
            }
            if let Some(claim) = &volume.persistent_volume_claim
                && !in_input(is_pvc, workload.namespace, &claim.claim_name)
            {
                let elsewhere = elsewhere(fleet, is_pvc, &claim.claim_name, workload.namespace);
                sink.report(
                    &catalog::PVC_NOT_IN_INPUT,
                    object,
                    &volume_path.join("persistentVolumeClaim.claimName"),
                    format!(
                        "volume {} claims {}, which is not in namespace {} of the input{elsewhere}",
                        volume.name, claim.claim_name, workload.namespace
                    ),
                );
            }
        }
        report_missing_secrets(fleet, object, workload.namespace, secrets, sink);
    }

    for object in &fleet.objects {
        let spec = match &object.resource {
            Resource::TriggerAuthentication(ta) => &ta.spec,
            _ => continue,
        };
        let Some(namespace) = fleet.namespace_of(object) else {
            continue;
        };
        let secrets = spec
            .secret_target_ref
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    r.name.clone(),
                    Path::parse("spec.secretTargetRef").index(i).key("name"),
                )
            })
            .collect();
        report_missing_secrets(fleet, object, namespace, secrets, sink);
    }
}

fn report_missing_secrets(
    fleet: &Fleet,
    object: &Object,
    namespace: &str,
    secrets: Vec<(String, Path)>,
    sink: &mut Sink,
) {
    let is_secret = |r: &Resource| matches!(r, Resource::Secret(_));
    let mut reported = BTreeSet::new();
    for (name, path) in secrets {
        if fleet.contains(is_secret, namespace, &name) || !reported.insert(name.clone()) {
            continue;
        }
        let elsewhere = elsewhere(fleet, is_secret, &name, namespace);
        sink.report(
            &catalog::SECRET_NOT_IN_INPUT,
            object,
            &path,
            format!("Secret {name} is referenced but not in namespace {namespace} of the input{elsewhere}; create it before the pods start"),
        );
    }
}

/// " (there is one in namespace agents)" when the object exists under another namespace.
fn elsewhere(fleet: &Fleet, kind: fn(&Resource) -> bool, name: &str, namespace: &str) -> String {
    fleet
        .named(name)
        .filter(|o| kind(&o.resource))
        .filter_map(|o| fleet.namespace_of(o))
        .find(|ns| *ns != namespace)
        .map(|ns| format!(" (there is one in namespace {ns})"))
        .unwrap_or_default()
}
