//! Turning YAML documents into typed Kubernetes and KEDA objects.
//!
//! Each document is dispatched on its `apiVersion` and `kind` to a k8s-openapi type (or a KEDA
//! type from [`crate::keda`]) and decoded with [`crate::decode`], which reports unknown fields
//! and wrong types with positions. Kinds that the rules look at are kept typed in
//! [`Resource`]; other built-in kinds are validated and kept as [`Resource::Other`]; kinds of
//! API groups the linter does not know (other operators' custom resources) are kept as
//! [`Resource::Unchecked`] with their metadata only.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as networking;
use k8s_openapi::api::policy::v1 as policy;
use k8s_openapi::api::storage::v1 as storage;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;

use crate::decode::{self, SchemaProblems};
use crate::finding::{Finding, Location, ObjectRef};
use crate::keda;
use crate::rules::catalog;
use crate::source::{Source, SourceText};
use crate::yaml::{self, Node, Path, Pos, Value};

/// A typed object, for the kinds the rules inspect.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Job(Box<batch::Job>),
    CronJob(Box<batch::CronJob>),
    Deployment(Box<apps::Deployment>),
    StatefulSet(Box<apps::StatefulSet>),
    DaemonSet(Box<apps::DaemonSet>),
    ReplicaSet(Box<apps::ReplicaSet>),
    Pod(Box<core::Pod>),
    PodDisruptionBudget(Box<policy::PodDisruptionBudget>),
    NetworkPolicy(Box<networking::NetworkPolicy>),
    LimitRange(Box<core::LimitRange>),
    PersistentVolumeClaim(Box<core::PersistentVolumeClaim>),
    Secret(Box<core::Secret>),
    Namespace(Box<core::Namespace>),
    ServiceAccount(Box<core::ServiceAccount>),
    StorageClass(Box<storage::StorageClass>),
    ScaledJob(Box<keda::ScaledJob>),
    TriggerAuthentication(Box<keda::TriggerAuthentication>),
    ClusterTriggerAuthentication(Box<keda::ClusterTriggerAuthentication>),
    /// A built-in kind that was validated against its schema; no rule inspects its spec.
    Other,
    /// A kind of an API group the linter does not model; only metadata was read.
    Unchecked,
}

/// One object of the input with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Name of the source file (as the user spelled it).
    pub file: Arc<str>,
    /// The document's YAML tree, for positions.
    pub root: Node,
    /// Where the object's mapping starts inside `root` (non-empty for items of a `List`).
    pub base: Path,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// `metadata.namespace` as written.
    pub namespace: Option<String>,
    /// False for cluster-scoped kinds (Namespace, StorageClass, ...).
    pub namespaced: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub resource: Resource,
}

impl Object {
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// Position of `path` (relative to the object) in its file; the nearest existing ancestor
    /// when the field is absent.
    pub fn pos(&self, path: &Path) -> Pos {
        let mut full = self.base.clone();
        full.0.extend(path.0.iter().cloned());
        self.root.locate(&full).pos
    }

    pub fn location(&self, path: &Path) -> Location {
        Location::new(&self.file, self.pos(path))
    }

    /// The API group (`""` for core), used to tell `apps/v1 Deployment` from a custom
    /// resource of the same kind.
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }
}

/// Parsed objects and the input problems found while parsing.
#[derive(Debug, Default)]
pub struct Parsed {
    pub objects: Vec<Object>,
    pub problems: Vec<Finding>,
    pub documents: usize,
}

/// Parses every source into objects. Never fails as a whole: each broken document becomes an
/// input finding (AF001-AF004) and the others are still returned.
pub fn parse_sources(sources: &[Source]) -> Parsed {
    let mut parsed = Parsed::default();
    for source in sources {
        let file: Arc<str> = Arc::from(source.name.as_str());
        let text = match &source.text {
            SourceText::Text(text) => text,
            SourceText::NotUtf8 { line, column } => {
                parsed.problems.push(input_problem(
                    &catalog::YAML_SYNTAX,
                    format!("file is not valid UTF-8 (first invalid byte at {line}:{column}); save it as UTF-8"),
                    &file,
                    Pos::new(*line, *column),
                    None,
                ));
                continue;
            }
        };
        match yaml::parse_stream(text) {
            Ok(documents) => {
                for document in documents {
                    parsed.documents += 1;
                    parse_document(&file, document, Path::root(), &mut parsed);
                }
            }
            Err(err) => parsed.problems.push(input_problem(
                &catalog::YAML_SYNTAX,
                err.message,
                &file,
                err.pos.unwrap_or(Pos::new(1, 1)),
                None,
            )),
        }
    }
    parsed
}

fn input_problem(
    rule: &'static catalog::Rule,
    message: String,
    file: &str,
    pos: Pos,
    object: Option<ObjectRef>,
) -> Finding {
    Finding {
        rule,
        message,
        location: Location::new(file, pos),
        object,
        suppressed: false,
    }
}

/// Parses one document (or one item of a `List`) found at `base` inside `root`.
fn parse_document(file: &Arc<str>, root: Node, base: Path, parsed: &mut Parsed) {
    let Some(node) = root.node_at(&base) else {
        return;
    };
    let at = |path: &str| {
        let mut full = base.clone();
        full.0.extend(Path::parse(path).0);
        root.locate(&full).pos
    };
    if !matches!(node.value, Value::Map(_)) {
        parsed.problems.push(input_problem(
            &catalog::UNKNOWN_KIND,
            format!("document is {}, not an object: a manifest is a mapping with apiVersion, kind and metadata", node.type_name()),
            file,
            node.pos,
            None,
        ));
        return;
    }
    let text_of = |key: &str| node.get(key).and_then(Node::as_str).map(str::to_owned);
    let raw_ref = ObjectRef {
        kind: text_of("kind").unwrap_or_else(|| "(no kind)".into()),
        namespace: node
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(Node::as_str)
            .map(str::to_owned),
        name: node
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Node::as_str)
            .unwrap_or("(no name)")
            .to_owned(),
    };
    let (api_version, kind) = match (node.get("apiVersion"), node.get("kind")) {
        (Some(a), Some(k)) => match (a.as_str(), k.as_str()) {
            (Some(a), Some(k)) if !a.is_empty() && !k.is_empty() => (a.to_owned(), k.to_owned()),
            (Some(a), _) if !a.is_empty() => {
                let msg = format!("kind must be a non-empty string, found {}", k.type_name());
                parsed.problems.push(input_problem(
                    &catalog::INVALID_VALUE,
                    msg,
                    file,
                    at("kind"),
                    Some(raw_ref),
                ));
                return;
            }
            _ => {
                let msg = format!(
                    "apiVersion must be a non-empty string such as \"batch/v1\", found {}",
                    a.type_name()
                );
                parsed.problems.push(input_problem(
                    &catalog::INVALID_VALUE,
                    msg,
                    file,
                    at("apiVersion"),
                    Some(raw_ref),
                ));
                return;
            }
        },
        (None, kind) => {
            let hint = kind
                .and_then(Node::as_str)
                .and_then(|k| KINDS.iter().find(|d| d.kind == k))
                .map(|d| format!("; {} is served as apiVersion: {}", d.kind, d.api_version))
                .unwrap_or_default();
            let msg = format!("missing apiVersion: every object needs apiVersion and kind{hint}");
            parsed.problems.push(input_problem(
                &catalog::UNKNOWN_KIND,
                msg,
                file,
                node.pos,
                Some(raw_ref),
            ));
            return;
        }
        (Some(_), None) => {
            let msg = "missing kind: every object needs apiVersion and kind".to_owned();
            parsed.problems.push(input_problem(
                &catalog::UNKNOWN_KIND,
                msg,
                file,
                node.pos,
                Some(raw_ref),
            ));
            return;
        }
    };

    if api_version == "v1" && kind == "List" {
        let items = node.get("items");
        match items.map(|i| &i.value) {
            Some(Value::Seq(list)) => {
                for index in 0..list.len() {
                    parse_document(file, root.clone(), base.key("items").index(index), parsed);
                }
            }
            _ => parsed.problems.push(input_problem(
                &catalog::INVALID_VALUE,
                "a v1 List needs `items`, a list of objects".into(),
                file,
                at("items"),
                Some(raw_ref),
            )),
        }
        return;
    }

    let decoded = match KINDS
        .iter()
        .find(|d| d.api_version == api_version && d.kind == kind)
    {
        Some(descriptor) => (descriptor.decode)(node),
        None => {
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let keda_unmodelled =
                group == "keda.sh" && KEDA_UNMODELLED_KINDS.contains(&kind.as_str());
            if KNOWN_GROUPS.contains(&group) && !keda_unmodelled {
                parsed.problems.push(input_problem(
                    &catalog::UNKNOWN_KIND,
                    unknown_kind_message(&api_version, &kind),
                    file,
                    at(if KINDS.iter().any(|d| d.kind == kind) {
                        "apiVersion"
                    } else {
                        "kind"
                    }),
                    Some(raw_ref),
                ));
                return;
            }
            decode_unchecked(node)
        }
    };

    let (resource, metadata, namespaced, unknown) = match decoded {
        Ok(ok) => ok,
        Err(problems) => {
            report_schema_problems(&problems, &kind, &raw_ref, file, &root, &base, parsed);
            return;
        }
    };
    if !unknown.is_empty() {
        report_schema_problems(
            &SchemaProblems {
                unknown,
                invalid: None,
            },
            &kind,
            &raw_ref,
            file,
            &root,
            &base,
            parsed,
        );
        return;
    }
    let Some(name) = metadata.name.clone().filter(|n| !n.is_empty()) else {
        parsed.problems.push(input_problem(
            &catalog::INVALID_VALUE,
            format!("{kind} has no metadata.name (generateName only works with kubectl create, not apply)"),
            file,
            at("metadata"),
            Some(raw_ref),
        ));
        return;
    };
    if let Some((path, message)) = missing_required(&resource) {
        parsed.problems.push(input_problem(
            &catalog::INVALID_VALUE,
            format!("{path}: {message}"),
            file,
            at(&path.to_string()),
            Some(raw_ref),
        ));
        return;
    }
    parsed.objects.push(Object {
        file: file.clone(),
        root,
        base,
        api_version,
        kind,
        name,
        namespace: if namespaced {
            metadata.namespace.clone()
        } else {
            None
        },
        namespaced,
        labels: metadata.labels.clone().unwrap_or_default(),
        annotations: metadata.annotations.clone().unwrap_or_default(),
        resource,
    });
}

/// Required fields that k8s-openapi silently defaults (it decodes a missing `containers` as an
/// empty list), checked the way the API server would reject them.
fn missing_required(resource: &Resource) -> Option<(Path, String)> {
    fn pod(spec: Option<&core::PodSpec>, base: &str) -> Option<(Path, String)> {
        let base = Path::parse(base);
        let Some(spec) = spec else {
            return Some((base, "the pod template needs a spec".into()));
        };
        if spec.containers.is_empty() {
            return Some((
                base.key("containers"),
                "at least one container is required".into(),
            ));
        }
        for (i, c) in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .enumerate()
        {
            let field = if i < spec.containers.len() {
                format!("containers[{i}]")
            } else {
                format!("initContainers[{}]", i - spec.containers.len())
            };
            if c.name.is_empty() {
                return Some((
                    base.join(&field).key("name"),
                    "every container needs a name".into(),
                ));
            }
            if c.image.as_deref().is_none_or(str::is_empty) {
                return Some((
                    base.join(&field).key("image"),
                    format!("container {} needs an image", c.name),
                ));
            }
        }
        None
    }
    let need_spec = || Some((Path::parse("spec"), "spec is required".to_owned()));
    match resource {
        Resource::Job(job) => job.spec.as_ref().map_or_else(need_spec, |s| {
            pod(s.template.spec.as_ref(), "spec.template.spec")
        }),
        Resource::CronJob(cron) => match cron.spec.as_ref() {
            None => need_spec(),
            Some(s) => match s.job_template.spec.as_ref() {
                None => Some((
                    Path::parse("spec.jobTemplate.spec"),
                    "the job template needs a spec".into(),
                )),
                Some(job) => pod(
                    job.template.spec.as_ref(),
                    "spec.jobTemplate.spec.template.spec",
                ),
            },
        },
        Resource::ScaledJob(sj) => pod(
            sj.spec.job_target_ref.template.spec.as_ref(),
            "spec.jobTargetRef.template.spec",
        )
        .or_else(|| {
            sj.spec.triggers.is_empty().then(|| {
                (
                    Path::parse("spec.triggers"),
                    "a ScaledJob needs at least one trigger".into(),
                )
            })
        }),
        Resource::Deployment(d) => d.spec.as_ref().map_or_else(need_spec, |s| {
            pod(s.template.spec.as_ref(), "spec.template.spec")
        }),
        Resource::StatefulSet(d) => d.spec.as_ref().map_or_else(need_spec, |s| {
            pod(s.template.spec.as_ref(), "spec.template.spec")
        }),
        Resource::DaemonSet(d) => d.spec.as_ref().map_or_else(need_spec, |s| {
            pod(s.template.spec.as_ref(), "spec.template.spec")
        }),
        Resource::Pod(p) => pod(p.spec.as_ref(), "spec"),
        Resource::PodDisruptionBudget(pdb) => pdb.spec.as_ref().and_then(|s| {
            (s.min_available.is_some() && s.max_unavailable.is_some()).then(|| {
                (
                    Path::parse("spec.maxUnavailable"),
                    "minAvailable and maxUnavailable are mutually exclusive; set one".into(),
                )
            })
        }),
        _ => None,
    }
}

fn report_schema_problems(
    problems: &SchemaProblems,
    kind: &str,
    object: &ObjectRef,
    file: &Arc<str>,
    root: &Node,
    base: &Path,
    parsed: &mut Parsed,
) {
    for unknown in &problems.unknown {
        let parent = if unknown.parent.0.len() > base.0.len() {
            Path(unknown.parent.0[base.0.len()..].to_vec()).to_string()
        } else {
            "the top level".to_owned()
        };
        let suggestion = unknown
            .suggestion
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        parsed.problems.push(input_problem(
            &catalog::UNKNOWN_FIELD,
            format!(
                "unknown field `{}` in {parent} of {kind}{suggestion}",
                unknown.key
            ),
            file,
            unknown.pos,
            Some(object.clone()),
        ));
    }
    if let Some(invalid) = &problems.invalid {
        let relative = if invalid.path.0.len() >= base.0.len() {
            Path(invalid.path.0[base.0.len()..].to_vec())
        } else {
            invalid.path.clone()
        };
        let hint = root
            .node_at(&invalid.path)
            .map(|n| type_hint(&invalid.message, n))
            .unwrap_or_default();
        let field = if relative.0.is_empty() {
            kind.to_owned()
        } else {
            relative.to_string()
        };
        parsed.problems.push(input_problem(
            &catalog::INVALID_VALUE,
            format!("{field}: {}{hint}", invalid.message),
            file,
            invalid.pos,
            Some(object.clone()),
        ));
    }
}

/// A fix for the most common type mistakes: numbers quoted as strings, and numbers or
/// booleans where Kubernetes wants a string (labels, annotations, env values).
fn type_hint(message: &str, node: &Node) -> String {
    let wants_string =
        message.contains("expected a string") || message.contains("expected a borrowed string");
    let wants_number = [
        "expected i32",
        "expected i64",
        "expected u32",
        "expected u16",
        "expected f64",
    ]
    .iter()
    .any(|e| message.contains(e));
    match &node.value {
        Value::Int(_) | Value::UInt(_) | Value::Float(_) | Value::Bool(_) if wants_string => {
            " (quote the value: YAML reads it as a number or boolean)".to_owned()
        }
        Value::Str(s) if wants_number && s.trim().parse::<f64>().is_ok() => {
            " (write the number without quotes)".to_owned()
        }
        _ => String::new(),
    }
}

fn unknown_kind_message(api_version: &str, kind: &str) -> String {
    if let Some(served) = KINDS.iter().find(|d| d.kind == kind) {
        return format!(
            "{kind} is not served as {api_version}; use apiVersion: {}",
            served.api_version
        );
    }
    let in_group: Vec<&str> = KINDS
        .iter()
        .filter(|d| d.api_version == api_version)
        .map(|d| d.kind)
        .collect();
    let suggestion = decode::closest(kind, &in_group)
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    if in_group.is_empty() {
        format!(
            "unknown kind `{kind}` in {api_version} (this API version is not served by Kubernetes 1.34)"
        )
    } else {
        format!(
            "unknown kind `{kind}` in {api_version}{suggestion} (known: {})",
            in_group.join(", ")
        )
    }
}

type Decoded = Result<(Resource, ObjectMeta, bool, Vec<decode::UnknownField>), SchemaProblems>;

/// How to decode one apiVersion/kind pair.
struct KindDescriptor {
    api_version: &'static str,
    kind: &'static str,
    decode: fn(&Node) -> Decoded,
}

trait Scope {
    const NAMESPACED: bool;
}

impl Scope for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl Scope for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// Decodes a kind that rules inspect.
fn typed<T>(node: &Node, wrap: fn(T) -> Resource, meta: fn(&T) -> &ObjectMeta) -> Decoded
where
    T: DeserializeOwned + k8s_openapi::Resource,
    T::Scope: Scope,
{
    let (value, unknown) = decode::decode::<T>(node)?;
    let metadata = meta(&value).clone();
    Ok((
        wrap(value),
        metadata,
        <T::Scope as Scope>::NAMESPACED,
        unknown,
    ))
}

/// Decodes a kind only to validate it.
fn validated<T>(node: &Node) -> Decoded
where
    T: DeserializeOwned + k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
    T::Scope: Scope,
{
    let (value, unknown) = decode::decode::<T>(node)?;
    Ok((
        Resource::Other,
        value.metadata().clone(),
        <T::Scope as Scope>::NAMESPACED,
        unknown,
    ))
}

/// Custom resources of unknown groups: metadata only. They are assumed namespaced unless they
/// carry no namespace, which is the best a linter without the CRD can do.
fn decode_unchecked(node: &Node) -> Decoded {
    let metadata = match node.get("metadata") {
        Some(meta) => {
            let problems_at = |mut p: SchemaProblems| {
                if let Some(invalid) = &mut p.invalid {
                    invalid.path = Path::parse("metadata").join(&invalid.path.to_string());
                }
                p
            };
            let (meta, _) = decode::decode::<ObjectMeta>(meta).map_err(problems_at)?;
            meta
        }
        None => ObjectMeta::default(),
    };
    Ok((Resource::Unchecked, metadata, true, Vec::new()))
}

macro_rules! kinds {
    (
        typed { $($ty:ty => $variant:ident),* $(,)? }
        validated { $($vty:ty),* $(,)? }
    ) => {
        static KINDS: &[KindDescriptor] = &[
            $(KindDescriptor {
                api_version: <$ty as k8s_openapi::Resource>::API_VERSION,
                kind: <$ty as k8s_openapi::Resource>::KIND,
                decode: |node| typed::<$ty>(node, |v| Resource::$variant(Box::new(v)), kinds!(@meta $variant)),
            },)*
            $(KindDescriptor {
                api_version: <$vty as k8s_openapi::Resource>::API_VERSION,
                kind: <$vty as k8s_openapi::Resource>::KIND,
                decode: validated::<$vty>,
            },)*
        ];
    };
    (@meta ClusterTriggerAuthentication) => { |v: &keda::ClusterTriggerAuthentication| &v.0.metadata };
    (@meta $variant:ident) => { |v| &v.metadata };
}

kinds! {
    typed {
        batch::Job => Job,
        batch::CronJob => CronJob,
        apps::Deployment => Deployment,
        apps::StatefulSet => StatefulSet,
        apps::DaemonSet => DaemonSet,
        apps::ReplicaSet => ReplicaSet,
        core::Pod => Pod,
        policy::PodDisruptionBudget => PodDisruptionBudget,
        networking::NetworkPolicy => NetworkPolicy,
        core::LimitRange => LimitRange,
        core::PersistentVolumeClaim => PersistentVolumeClaim,
        core::Secret => Secret,
        core::Namespace => Namespace,
        core::ServiceAccount => ServiceAccount,
        storage::StorageClass => StorageClass,
        keda::ScaledJob => ScaledJob,
        keda::TriggerAuthentication => TriggerAuthentication,
        keda::ClusterTriggerAuthentication => ClusterTriggerAuthentication,
    }
    validated {
        core::ConfigMap,
        core::Service,
        core::Endpoints,
        core::PersistentVolume,
        core::ResourceQuota,
        core::ReplicationController,
        core::PodTemplate,
        apps::ControllerRevision,
        networking::Ingress,
        networking::IngressClass,
        k8s_openapi::api::rbac::v1::Role,
        k8s_openapi::api::rbac::v1::RoleBinding,
        k8s_openapi::api::rbac::v1::ClusterRole,
        k8s_openapi::api::rbac::v1::ClusterRoleBinding,
        k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler,
        k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
        k8s_openapi::api::scheduling::v1::PriorityClass,
        k8s_openapi::api::coordination::v1::Lease,
        k8s_openapi::api::node::v1::RuntimeClass,
        k8s_openapi::api::discovery::v1::EndpointSlice,
        k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
        k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
        storage::CSIDriver,
        storage::VolumeAttachment,
    }
}

/// API groups whose kinds the linter knows: an unknown kind there is a typo, not a custom
/// resource.
const KNOWN_GROUPS: &[&str] = &[
    "",
    "keda.sh",
    "apps",
    "batch",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "autoscaling",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "admissionregistration.k8s.io",
];

/// KEDA kinds that exist but that a fleet of Jobs does not use: read as unchecked objects.
const KEDA_UNMODELLED_KINDS: &[&str] = &[
    "ScaledObject",
    "CloudEventSource",
    "ClusterCloudEventSource",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Parsed {
        parse_sources(&[Source {
            name: "in.yaml".into(),
            text: SourceText::Text(text.into()),
        }])
    }

    #[test]
    fn dispatches_on_api_version_and_kind() {
        let parsed = parse(concat!(
            "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p, namespace: agents}\nspec: {minAvailable: 1}\n",
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
            "---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: s}\nspec: {anything: goes}\n",
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: agents, namespace: ignored}\n",
        ));
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let kinds: Vec<_> = parsed
            .objects
            .iter()
            .map(|o| (o.kind.as_str(), o.namespace.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("PodDisruptionBudget", Some("agents")),
                ("ConfigMap", None),
                ("ServiceMonitor", None),
                ("Namespace", None)
            ]
        );
        assert!(matches!(
            parsed.objects[0].resource,
            Resource::PodDisruptionBudget(_)
        ));
        assert!(matches!(parsed.objects[1].resource, Resource::Other));
        assert!(matches!(parsed.objects[2].resource, Resource::Unchecked));
        assert!(!parsed.objects[3].namespaced);
    }

    #[test]
    fn unknown_kinds_and_versions_of_known_groups_are_errors_with_hints() {
        let parsed = parse(
            "apiVersion: batch/v1\nkind: Jb\nmetadata: {name: a}\n---\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: p}\n---\nkind: Job\nmetadata: {name: j}\n",
        );
        let msgs: Vec<_> = parsed
            .problems
            .iter()
            .map(|p| (p.rule.id, p.location.line, p.message.as_str()))
            .collect();
        assert_eq!(msgs[0].0, "AF004");
        assert!(msgs[0].2.contains("did you mean `Job`"), "{}", msgs[0].2);
        assert_eq!(msgs[0].1, 2);
        assert!(
            msgs[1].2.contains("use apiVersion: policy/v1"),
            "{}",
            msgs[1].2
        );
        assert!(
            msgs[2].2.contains("missing apiVersion") && msgs[2].2.contains("batch/v1"),
            "{}",
            msgs[2].2
        );
    }

    #[test]
    fn list_items_are_objects_with_their_own_positions() {
        let parsed = parse(
            "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Secret\n    metadata: {name: s}\n  - apiVersion: v1\n    kind: Secret\n    metadata: {name: t}\n    strinData: {}\n",
        );
        assert_eq!(parsed.objects.len(), 1);
        assert_eq!(parsed.objects[0].name, "s");
        assert_eq!(parsed.problems.len(), 1);
        let p = &parsed.problems[0];
        assert_eq!(
            (p.rule.id, p.location.line, p.location.column),
            ("AF002", 10, 5)
        );
        assert!(
            p.message.contains("did you mean `stringData`"),
            "{}",
            p.message
        );
    }
}
