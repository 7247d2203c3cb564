//! KEDA ScaledJobs and their triggers.

use super::{Sink, catalog};
use crate::fleet::Fleet;
use crate::keda::{DEFAULT_MAX_REPLICA_COUNT, ScaleTrigger, TriggerAuthenticationSpec};
use crate::model::{Object, Resource};
use crate::yaml::Path;

pub(super) fn check(fleet: &Fleet, sink: &mut Sink) {
    for object in &fleet.objects {
        let Resource::ScaledJob(sj) = &object.resource else {
            continue;
        };
        let spec = &sj.spec;
        let namespace = fleet.namespace_of(object).unwrap_or_default();

        let gradual = spec.rollout.as_ref().and_then(|r| r.strategy.as_deref()) == Some("gradual")
            || spec.rollout_strategy.as_deref() == Some("gradual");
        if !gradual {
            let path = if spec.rollout.is_some() {
                Path::parse("spec.rollout")
            } else {
                Path::parse("spec")
            };
            sink.report(
                &catalog::SCALEDJOB_DEFAULT_ROLLOUT,
                object,
                &path,
                "rollout strategy is `default`: changing this ScaledJob deletes its running Jobs and the agents' work in flight",
            );
        }

        if spec.max_replica_count.is_none() {
            sink.report(
                &catalog::SCALEDJOB_MAX_REPLICAS_DEFAULT,
                object,
                &Path::parse("spec"),
                format!("maxReplicaCount is unset, so KEDA may start up to {DEFAULT_MAX_REPLICA_COUNT} Jobs per poll regardless of downstream capacity"),
            );
        }

        let accurate = spec
            .scaling_strategy
            .as_ref()
            .and_then(|s| s.strategy.as_deref())
            == Some("accurate");
        for (index, trigger) in spec.triggers.iter().enumerate() {
            let base = Path::parse("spec.triggers").index(index);
            let auth = resolve_auth(fleet, namespace, object, trigger, &base, sink);
            inline_credentials(object, trigger, &base, sink);
            if trigger.type_ != "rabbitmq" {
                continue;
            }
            rabbitmq_complete(object, trigger, auth, &base, sink);
            let protocol = trigger
                .metadata
                .get("protocol")
                .map_or("auto", String::as_str);
            let host = trigger.metadata.get("host").map(String::as_str);
            let amqp = match protocol {
                "amqp" => Some("protocol: amqp"),
                "http" => None,
                _ => match host {
                    Some(h) if h.starts_with("http") => None,
                    Some(_) => Some("protocol auto with an amqp host"),
                    None => Some(
                        "protocol auto; the host comes from the TriggerAuthentication and is assumed to be amqp://",
                    ),
                },
            };
            let mode = trigger
                .metadata
                .get("mode")
                .map_or("QueueLength", String::as_str);
            if let (Some(why), "QueueLength", false) = (amqp, mode, accurate) {
                sink.report(
                    &catalog::AMQP_QUEUE_LENGTH_NOT_ACCURATE,
                    object,
                    &base.key("metadata"),
                    format!("RabbitMQ QueueLength over AMQP ({why}) counts ready messages only, but scalingStrategy is {}: running agents' unacked messages are not counted and the default strategy subtracts them anyway", spec.scaling_strategy.as_ref().and_then(|s| s.strategy.as_deref()).unwrap_or("default")),
                );
            }
        }
    }
}

/// Finds the TriggerAuthentication a trigger references; reports AF034 when it is missing.
fn resolve_auth<'a>(
    fleet: &'a Fleet,
    namespace: &str,
    object: &Object,
    trigger: &ScaleTrigger,
    base: &Path,
    sink: &mut Sink,
) -> Option<&'a TriggerAuthenticationSpec> {
    let reference = trigger.authentication_ref.as_ref()?;
    let cluster = reference.kind.as_deref() == Some("ClusterTriggerAuthentication");
    let found = fleet
        .named(&reference.name)
        .find_map(|o| match &o.resource {
            Resource::TriggerAuthentication(ta)
                if !cluster
                    && o.name == reference.name
                    && fleet.namespace_of(o) == Some(namespace) =>
            {
                Some(&ta.spec)
            }
            Resource::ClusterTriggerAuthentication(cta) if cluster && o.name == reference.name => {
                Some(&cta.0.spec)
            }
            _ => None,
        });
    if found.is_none() {
        let kind = if cluster {
            "ClusterTriggerAuthentication".to_owned()
        } else {
            format!("TriggerAuthentication in namespace {namespace}")
        };
        sink.report(
            &catalog::TRIGGER_AUTH_NOT_IN_INPUT,
            object,
            &base.join("authenticationRef.name"),
            format!(
                "trigger {} references {kind} `{}`, which is not in the input",
                trigger.type_, reference.name
            ),
        );
    }
    found
}

/// Trigger metadata keys that hold secrets when given inline.
const SECRET_KEYS: &[&str] = &[
    "password",
    "connectionString",
    "connection",
    "apiKey",
    "token",
    "accessKey",
    "secretKey",
    "sasToken",
];

fn inline_credentials(object: &Object, trigger: &ScaleTrigger, base: &Path, sink: &mut Sink) {
    for (key, value) in &trigger.metadata {
        let path = base.key("metadata").key(key);
        if url_has_password(value) {
            sink.report(
                &catalog::TRIGGER_INLINE_CREDENTIALS,
                object,
                &path,
                format!("trigger metadata `{key}` is a URL with user:password; the credentials are readable by anyone who can read this ScaledJob"),
            );
        } else if SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) && !value.is_empty() {
            sink.report(
                &catalog::TRIGGER_INLINE_CREDENTIALS,
                object,
                &path,
                format!("trigger metadata `{key}` holds a credential inline"),
            );
        }
    }
}

/// `scheme://user:password@host`: a URL that carries a password in its userinfo.
pub(super) fn url_has_password(value: &str) -> bool {
    let Some((_, rest)) = value.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.rsplit_once('@').is_some_and(|(userinfo, _)| {
        userinfo
            .split_once(':')
            .is_some_and(|(_, pw)| !pw.is_empty())
    })
}

fn rabbitmq_complete(
    object: &Object,
    trigger: &ScaleTrigger,
    auth: Option<&TriggerAuthenticationSpec>,
    base: &Path,
    sink: &mut Sink,
) {
    let meta = &trigger.metadata;
    let mut problems = Vec::new();
    if meta.get("queueName").is_none_or(String::is_empty) {
        problems.push("no queueName".to_owned());
    }
    let host_inline = meta.contains_key("host") || meta.contains_key("hostFromEnv");
    let host_from_auth =
        auth.is_some_and(|a| a.parameters().any(|p| p == "host") || a.has_opaque_provider());
    if !host_inline && !host_from_auth {
        problems.push(match (&trigger.authentication_ref, auth) {
            (Some(r), Some(_)) => format!("TriggerAuthentication `{}` provides no `host` parameter, and the metadata has no host", r.name),
            (Some(_), None) => String::new(), // already reported as not in the input
            (None, _) => "no connection: set `host`/`hostFromEnv`, or an authenticationRef providing `host`".to_owned(),
        });
    }
    match meta.get("mode").map(String::as_str) {
        None | Some("QueueLength") | Some("MessageRate") => {}
        Some(other) => problems.push(format!("mode `{other}` is not QueueLength or MessageRate")),
    }
    match meta.get("value").map(|v| v.trim().parse::<f64>()) {
        Some(Ok(v)) if v > 0.0 => {}
        Some(_) => problems.push(format!(
            "value `{}` is not a positive number",
            meta.get("value").map_or("", String::as_str)
        )),
        None if meta.contains_key("queueLength") => {}
        None => problems.push("no target `value`".to_owned()),
    }
    problems.retain(|p| !p.is_empty());
    if !problems.is_empty() {
        sink.report(
            &catalog::RABBITMQ_TRIGGER_INCOMPLETE,
            object,
            &base.key("metadata"),
            format!("RabbitMQ trigger: {}", problems.join("; ")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::url_has_password;

    #[test]
    fn recognises_passwords_in_urls() {
        assert!(url_has_password("amqp://guest:guest@rabbitmq:5672/"));
        assert!(!url_has_password("amqp://rabbitmq:5672/"));
        assert!(!url_has_password("amqp://user@rabbitmq/"));
        assert!(!url_has_password("http://host/path?x=a:b@c"));
        assert!(!url_has_password("not a url"));
    }
}
