//! Pod and container security context, service account tokens, image tags.

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, SecurityContext};

use super::{Sink, catalog};
use crate::fleet::{Fleet, Workload};
use crate::model::Resource;
use crate::yaml::Path;

pub(super) fn check(fleet: &Fleet, sink: &mut Sink) {
    for workload in fleet.workloads() {
        let spec = workload.spec;
        let pod_sc = spec.security_context.as_ref();
        let spec_path = workload.spec_path();
        for (field, enabled) in [
            ("hostNetwork", spec.host_network),
            ("hostPID", spec.host_pid),
            ("hostIPC", spec.host_ipc),
        ] {
            if enabled == Some(true) {
                sink.report(
                    &catalog::PRIVILEGED,
                    workload.object,
                    &spec_path.key(field),
                    format!("{field}: true shares the node's namespace with the pod"),
                );
            }
        }
        token_automount(fleet, &workload, sink);
        let groups: [(&str, &[Container]); 2] = [
            ("containers", &spec.containers),
            (
                "initContainers",
                spec.init_containers.as_deref().unwrap_or_default(),
            ),
        ];
        for (field, containers) in groups {
            for (index, container) in containers.iter().enumerate() {
                let path = spec_path.key(field).index(index);
                container_checks(&workload, container, pod_sc, &path, sink);
            }
        }
    }
}

fn container_checks(
    workload: &Workload<'_>,
    container: &Container,
    pod_sc: Option<&PodSecurityContext>,
    path: &Path,
    sink: &mut Sink,
) {
    let sc: Option<&SecurityContext> = container.security_context.as_ref();
    let sc_path = path.key("securityContext");
    let name = &container.name;
    let object = workload.object;

    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|p| p.run_as_non_root))
        == Some(true)
        || sc
            .and_then(|s| s.run_as_user)
            .or(pod_sc.and_then(|p| p.run_as_user))
            .is_some_and(|uid| uid > 0);
    if !non_root {
        sink.report(&catalog::RUN_AS_ROOT, object, &sc_path, format!("container {name} sets neither runAsNonRoot: true nor a non-zero runAsUser (pod or container)"));
    }
    if sc.and_then(|s| s.read_only_root_filesystem) != Some(true) {
        sink.report(
            &catalog::WRITABLE_ROOT_FS,
            object,
            &sc_path,
            format!("container {name} does not set readOnlyRootFilesystem: true"),
        );
    }
    if sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
        sink.report(
            &catalog::PRIVILEGE_ESCALATION,
            object,
            &sc_path,
            format!("container {name} does not set allowPrivilegeEscalation: false"),
        );
    }
    let drops_all = sc
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.drop.as_ref())
        .is_some_and(|d| d.iter().any(|c| c == "ALL"));
    if !drops_all {
        sink.report(
            &catalog::CAPABILITIES_NOT_DROPPED,
            object,
            &sc_path,
            format!("container {name} does not drop ALL capabilities"),
        );
    }
    let seccomp = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or(pod_sc.and_then(|p| p.seccomp_profile.as_ref()));
    if !seccomp.is_some_and(|p| p.type_ == "RuntimeDefault" || p.type_ == "Localhost") {
        let what = seccomp.map_or_else(
            || "no seccomp profile".to_owned(),
            |p| format!("seccomp profile {}", p.type_),
        );
        sink.report(
            &catalog::NO_SECCOMP,
            object,
            &sc_path,
            format!("container {name} runs with {what}"),
        );
    }
    if sc.and_then(|s| s.privileged) == Some(true) {
        sink.report(
            &catalog::PRIVILEGED,
            object,
            &sc_path.key("privileged"),
            format!("container {name} is privileged"),
        );
    }
    match container.image.as_deref() {
        None => {}
        Some(image) => {
            if let Some(problem) = image_tag_problem(image) {
                sink.report(
                    &catalog::IMAGE_TAG,
                    object,
                    &path.key("image"),
                    format!("container {name}: image {image} {problem}"),
                );
            }
        }
    }
}

/// Why an image reference is not pinned, if it is not.
pub(super) fn image_tag_problem(image: &str) -> Option<&'static str> {
    if image.contains('@') {
        return None; // pinned by digest
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => Some("has no tag, which means latest"),
        Some((_, "latest")) => Some("uses the latest tag"),
        Some((_, "")) => Some("has an empty tag"),
        Some(_) => None,
    }
}

fn token_automount(fleet: &Fleet, workload: &Workload<'_>, sink: &mut Sink) {
    match workload.spec.automount_service_account_token {
        Some(false) => return,
        Some(true) => {
            sink.report(
                &catalog::SA_TOKEN_AUTOMOUNT,
                workload.object,
                &workload.spec_path().key("automountServiceAccountToken"),
                format!(
                    "{} mounts its service account token explicitly",
                    workload.describe()
                ),
            );
            return;
        }
        None => {}
    }
    let account = workload
        .spec
        .service_account_name
        .as_deref()
        .unwrap_or("default");
    let account_opts_out = fleet.named(account).any(|o| match &o.resource {
        Resource::ServiceAccount(sa) => {
            fleet.namespace_of(o) == Some(workload.namespace)
                && sa.automount_service_account_token == Some(false)
        }
        _ => false,
    });
    if !account_opts_out {
        sink.report(
            &catalog::SA_TOKEN_AUTOMOUNT,
            workload.object,
            &workload.spec_path(),
            format!("{} gets the token of service account {account} mounted (automountServiceAccountToken is not false on the pod or the ServiceAccount)", workload.describe()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::image_tag_problem;

    #[test]
    fn image_tags() {
        assert_eq!(image_tag_problem("your-registry/ai-agent:1.4.2"), None);
        assert_eq!(image_tag_problem("localhost:5000/agent:0.1"), None);
        assert_eq!(image_tag_problem("agent@sha256:abc"), None);
        assert!(
            image_tag_problem("localhost:5000/agent").is_some(),
            "the port is not a tag"
        );
        assert!(image_tag_problem("agent:latest").is_some());
        assert!(image_tag_problem("agent").is_some());
    }
}
