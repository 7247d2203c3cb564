//! The input as a whole: objects, their namespaces and the pod templates they run.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};

use crate::model::{Object, Resource};
use crate::selector::Labels;
use crate::yaml::Path;

/// Label every namespace carries automatically (Kubernetes >= 1.21).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// All parsed objects, plus the namespace that namespace-less objects land in.
#[derive(Debug)]
pub struct Fleet {
    pub objects: Vec<Object>,
    /// `--namespace`: where `kubectl apply` without `-n` puts objects that name none.
    pub default_namespace: String,
    /// Indexes into `objects`, built once: cross-object rules look things up per workload,
    /// and linear scans made linting quadratic in the input size.
    by_namespace: HashMap<String, Vec<usize>>,
    by_name: HashMap<String, Vec<usize>>,
    with_pod_template: Vec<usize>,
}

/// What runs a pod template, which decides restart and disruption semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Job,
    CronJob,
    ScaledJob,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Pod,
}

impl Controller {
    /// Pods owned by Jobs: no scale subresource, restartPolicy Never/OnFailure.
    pub fn runs_jobs(self) -> bool {
        matches!(
            self,
            Controller::Job | Controller::CronJob | Controller::ScaledJob
        )
    }
}

/// A pod template in the input, with the object that owns it.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    pub object: &'a Object,
    pub controller: Controller,
    /// Path from the object to the template (`spec.template`), or to the Pod itself.
    pub template_path: &'static str,
    pub template_labels: Option<&'a Labels>,
    pub template_annotations: Option<&'a BTreeMap<String, String>>,
    pub spec: &'a PodSpec,
    /// The Job spec for Jobs, CronJobs' jobTemplate and ScaledJobs' jobTargetRef.
    pub job: Option<&'a JobSpec>,
    pub namespace: &'a str,
}

impl<'a> Workload<'a> {
    /// Path of the pod spec inside the object (`spec.template.spec`).
    pub fn spec_path(&self) -> Path {
        Path::parse(self.template_path).key("spec")
    }

    /// Path of the pod template's metadata inside the object.
    pub fn metadata_path(&self) -> Path {
        Path::parse(self.template_path).key("metadata")
    }

    /// Path of the Job spec inside the object, for job-like workloads.
    pub fn job_path(&self) -> Path {
        Path::parse(match self.controller {
            Controller::Job => "spec",
            Controller::CronJob => "spec.jobTemplate.spec",
            Controller::ScaledJob => "spec.jobTargetRef",
            _ => "spec",
        })
    }

    pub fn labels(&self) -> Labels {
        self.template_labels.cloned().unwrap_or_default()
    }

    pub fn annotation(&self, key: &str) -> Option<&'a str> {
        self.template_annotations
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    /// The restart policy the pods actually get, and whether a controller filled it in.
    /// KEDA fills `OnFailure` into an empty ScaledJob template; the pod default is `Always`.
    pub fn restart_policy(&self) -> (&'a str, bool) {
        match (self.spec.restart_policy.as_deref(), self.controller) {
            (Some(policy), _) => (policy, false),
            (None, Controller::ScaledJob) => ("OnFailure", true),
            (None, _) => ("Always", true),
        }
    }

    /// How many pods the workload runs at once, when the manifest says.
    pub fn pod_count(&self) -> Option<i32> {
        match &self.object.resource {
            Resource::Deployment(d) => Some(d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
            Resource::StatefulSet(s) => Some(s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
            Resource::ReplicaSet(r) => Some(r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
            Resource::Job(_) | Resource::CronJob(_) => {
                Some(self.job.and_then(|j| j.parallelism).unwrap_or(1))
            }
            Resource::Pod(_) => Some(1),
            _ => None,
        }
    }

    /// `Job default/agent-batch-run`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {}/{}",
            self.object.kind, self.namespace, self.object.name
        )
    }
}

fn from_template<'a>(
    object: &'a Object,
    namespace: &'a str,
    controller: Controller,
    template_path: &'static str,
    template: &'a PodTemplateSpec,
    job: Option<&'a JobSpec>,
) -> Option<Workload<'a>> {
    Some(Workload {
        object,
        controller,
        template_path,
        template_labels: template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
        template_annotations: template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref()),
        spec: template.spec.as_ref()?,
        job,
        namespace,
    })
}

impl Fleet {
    pub fn new(objects: Vec<Object>, default_namespace: impl Into<String>) -> Fleet {
        let mut fleet = Fleet {
            objects,
            default_namespace: default_namespace.into(),
            by_namespace: HashMap::new(),
            by_name: HashMap::new(),
            with_pod_template: Vec::new(),
        };
        for (index, object) in fleet.objects.iter().enumerate() {
            if let Some(namespace) = fleet.namespace_of(object) {
                fleet
                    .by_namespace
                    .entry(namespace.to_owned())
                    .or_default()
                    .push(index);
            }
            fleet
                .by_name
                .entry(object.name.clone())
                .or_default()
                .push(index);
            let has_template = matches!(
                object.resource,
                Resource::Job(_)
                    | Resource::CronJob(_)
                    | Resource::ScaledJob(_)
                    | Resource::Deployment(_)
                    | Resource::StatefulSet(_)
                    | Resource::DaemonSet(_)
                    | Resource::ReplicaSet(_)
                    | Resource::Pod(_)
            );
            if has_template {
                fleet.with_pod_template.push(index);
            }
        }
        fleet
    }

    /// Objects in one namespace (namespaced kinds only).
    pub fn in_namespace<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Object> {
        self.by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .map(|&i| &self.objects[i])
    }

    /// Objects with this name, of any kind and namespace.
    pub fn named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Object> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| &self.objects[i])
    }

    /// Whether an object of a kind exists under `namespace/name`.
    pub fn contains(&self, kind: fn(&Resource) -> bool, namespace: &str, name: &str) -> bool {
        self.named(name)
            .any(|o| kind(&o.resource) && self.namespace_of(o) == Some(namespace))
    }

    /// Pod templates in one namespace.
    pub fn workloads_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = Workload<'a>> {
        self.workloads().filter(move |w| w.namespace == namespace)
    }

    /// The namespace an object lives in once applied; `None` for cluster-scoped objects.
    pub fn namespace_of<'a>(&'a self, object: &'a Object) -> Option<&'a str> {
        object.namespaced.then(|| {
            object
                .namespace
                .as_deref()
                .unwrap_or(&self.default_namespace)
        })
    }

    /// Every pod template in the input.
    pub fn workloads(&self) -> impl Iterator<Item = Workload<'_>> {
        self.with_pod_template
            .iter()
            .map(|&i| &self.objects[i])
            .filter_map(move |object| {
                let namespace = self.namespace_of(object)?;
                let from_template = |controller, template_path, template, job| {
                    from_template(object, namespace, controller, template_path, template, job)
                };
                match &object.resource {
                    Resource::Job(job) => {
                        let spec = job.spec.as_ref()?;
                        from_template(Controller::Job, "spec.template", &spec.template, Some(spec))
                    }
                    Resource::CronJob(cron) => {
                        let spec = cron.spec.as_ref()?.job_template.spec.as_ref()?;
                        from_template(
                            Controller::CronJob,
                            "spec.jobTemplate.spec.template",
                            &spec.template,
                            Some(spec),
                        )
                    }
                    Resource::ScaledJob(sj) => {
                        let spec = &sj.spec.job_target_ref;
                        from_template(
                            Controller::ScaledJob,
                            "spec.jobTargetRef.template",
                            &spec.template,
                            Some(spec),
                        )
                    }
                    Resource::Deployment(d) => from_template(
                        Controller::Deployment,
                        "spec.template",
                        &d.spec.as_ref()?.template,
                        None,
                    ),
                    Resource::StatefulSet(s) => from_template(
                        Controller::StatefulSet,
                        "spec.template",
                        &s.spec.as_ref()?.template,
                        None,
                    ),
                    Resource::DaemonSet(d) => from_template(
                        Controller::DaemonSet,
                        "spec.template",
                        &d.spec.as_ref()?.template,
                        None,
                    ),
                    Resource::ReplicaSet(r) => from_template(
                        Controller::ReplicaSet,
                        "spec.template",
                        r.spec.as_ref()?.template.as_ref()?,
                        None,
                    ),
                    Resource::Pod(pod) => Some(Workload {
                        object,
                        controller: Controller::Pod,
                        template_path: "",
                        template_labels: pod.metadata.labels.as_ref(),
                        template_annotations: pod.metadata.annotations.as_ref(),
                        spec: pod.spec.as_ref()?,
                        job: None,
                        namespace,
                    }),
                    _ => None,
                }
            })
    }

    /// Labels of a namespace as the cluster will have them: the automatic
    /// `kubernetes.io/metadata.name` plus those of a Namespace object in the input.
    pub fn namespace_labels(&self, namespace: &str) -> Labels {
        let mut labels = Labels::new();
        labels.insert(NAMESPACE_NAME_LABEL.to_owned(), namespace.to_owned());
        for object in self.named(namespace) {
            if matches!(object.resource, Resource::Namespace(_)) {
                labels.extend(object.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        labels
    }

    /// Objects of one kind, for rules that look things up.
    pub fn objects_of(&self, pick: fn(&Resource) -> bool) -> impl Iterator<Item = &Object> {
        self.objects.iter().filter(move |o| pick(&o.resource))
    }
}
