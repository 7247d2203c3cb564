//! `--dry-run`: everything a kind run would do, computed from the files alone. Touches
//! nothing: no Docker, no kind, no API server, no network, no writes.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::apply::order_for_apply;
use crate::keda::{
    KEDA_VERSION, is_fleet_workload, keda_cache_path, keda_url, render_kind_overlay,
};
use crate::kind::{CgroupVersion, EffectiveConfig, KindError, effective_config};
use crate::kustomize::{AppliedPatch, KustomizeError};

/// What the plan is computed from.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// kind-config/kind.yaml
    pub kind_config: PathBuf,
    /// Where the effective config would be written (target/agentfleet/kind-config.yaml).
    pub effective_config_path: PathBuf,
    pub cgroup: CgroupVersion,
    pub node_image_override: Option<String>,
    /// manifests/ (the kind overlay is rendered from it).
    pub manifests: PathBuf,
    /// Local images `kind load docker-image` would copy into the nodes.
    pub images: Vec<String>,
    /// target/agentfleet/cache
    pub cache_dir: PathBuf,
    pub scenarios: Vec<ScenarioPlan>,
}

/// A scenario and its steps, as the harness describes them.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioPlan {
    pub name: String,
    pub steps: Vec<String>,
}

/// One object that would be applied.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlannedObject {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// The KEDA install.
#[derive(Debug, Clone, Serialize)]
pub struct KedaPlan {
    pub version: String,
    pub url: String,
    pub cache_path: PathBuf,
    /// Already in the cache (no download needed).
    pub cached: bool,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub cluster: EffectiveConfig,
    pub effective_config_path: PathBuf,
    pub images_to_load: Vec<String>,
    pub keda: KedaPlan,
    /// Platform and fleet objects in apply order (after KEDA).
    pub objects: Vec<PlannedObject>,
    /// The fleet's workloads, rendered but not applied: each scenario starts its own agents in
    /// its own namespace (see `keda::is_fleet_workload`).
    pub left_out: Vec<PlannedObject>,
    pub patches: Vec<AppliedPatch>,
    pub scenarios: Vec<ScenarioPlan>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Kind(#[from] KindError),
    #[error(transparent)]
    Manifests(#[from] KustomizeError),
}

/// Computes the plan.
pub fn build(input: &PlanInput) -> Result<Plan, PlanError> {
    let source =
        std::fs::read_to_string(&input.kind_config).map_err(|source| KindError::ReadConfig {
            path: input.kind_config.clone(),
            source,
        })?;
    let cluster = effective_config(
        &input.kind_config,
        &source,
        input.cgroup,
        input.node_image_override.as_deref(),
    )?;
    let mut rendered = render_kind_overlay(&input.manifests)?;
    order_for_apply(&mut rendered.objects);
    let planned = |o: &serde_json::Value| PlannedObject {
        kind: o["kind"].as_str().unwrap_or_default().to_owned(),
        namespace: o["metadata"]["namespace"].as_str().map(str::to_owned),
        name: o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    let (left_out, applied): (Vec<_>, Vec<_>) =
        rendered.objects.iter().partition(|o| is_fleet_workload(o));
    let objects = applied.into_iter().map(planned).collect();
    let left_out = left_out.into_iter().map(planned).collect();
    let cache_path = keda_cache_path(&input.cache_dir, KEDA_VERSION);
    Ok(Plan {
        cluster,
        effective_config_path: input.effective_config_path.clone(),
        images_to_load: input.images.clone(),
        keda: KedaPlan {
            version: KEDA_VERSION.into(),
            url: keda_url(KEDA_VERSION),
            cached: cache_path.is_file(),
            cache_path,
        },
        objects,
        left_out,
        patches: rendered.patches,
        scenarios: input.scenarios.clone(),
    })
}

impl Plan {
    /// The plan for people.
    pub fn to_human(&self) -> String {
        let mut out = String::new();
        let cluster = &self.cluster;
        out.push_str(&format!(
            "kind cluster `{}` ({} host)\n",
            cluster.cluster_name, cluster.cgroup
        ));
        out.push_str(&format!(
            "  effective config -> {}\n",
            self.effective_config_path.display()
        ));
        for (index, image) in cluster.node_images.iter().enumerate() {
            out.push_str(&format!("  node {index}: {image}\n"));
        }
        for adjustment in &cluster.adjustments {
            out.push_str(&format!("  adjusted: {adjustment}\n"));
        }
        out.push_str("images to load (kind load docker-image):\n");
        for image in &self.images_to_load {
            out.push_str(&format!("  {image}\n"));
        }
        let source = if self.keda.cached {
            format!("cached at {}", self.keda.cache_path.display())
        } else {
            format!("download {}", self.keda.url)
        };
        out.push_str(&format!(
            "KEDA {} ({source}), server-side apply, wait for CRDs and Deployments\n",
            self.keda.version
        ));
        out.push_str(&format!(
            "manifests (overlays/kind, {} objects, server-side apply as `agentfleet`):\n",
            self.objects.len()
        ));
        let line = |object: &PlannedObject| match &object.namespace {
            Some(ns) => format!("  {} {ns}/{}\n", object.kind, object.name),
            None => format!("  {} {}\n", object.kind, object.name),
        };
        for object in &self.objects {
            out.push_str(&line(object));
        }
        out.push_str(
            "not applied (the fleet's workloads would take the scenarios' tasks; each scenario starts its own agents in its own namespace):\n",
        );
        for object in &self.left_out {
            out.push_str(&line(object));
        }
        out.push_str("overlay patches:\n");
        for patch in &self.patches {
            out.push_str(&format!(
                "  [{}] on {}\n",
                patch.target,
                patch.objects.join(", ")
            ));
            for operation in &patch.operations {
                out.push_str(&format!("      {operation}\n"));
            }
        }
        out.push_str("scenarios:\n");
        for scenario in &self.scenarios {
            out.push_str(&format!("  {}\n", scenario.name));
            for (index, step) in scenario.steps.iter().enumerate() {
                out.push_str(&format!("    {}. {step}\n", index + 1));
            }
        }
        out
    }

    /// The plan for machines.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(
            |e| serde_json::json!({"error": format!("plan does not serialise: {e}")}),
        )
    }
}

/// Convenience for the common layout: `<workspace>/kind-config/kind.yaml`, `<workspace>/manifests`,
/// `<workspace>/target/agentfleet/...`.
pub fn input_for_workspace(
    workspace: &Path,
    cgroup: CgroupVersion,
    images: Vec<String>,
    scenarios: Vec<ScenarioPlan>,
) -> PlanInput {
    let target = workspace.join("target/agentfleet");
    PlanInput {
        kind_config: workspace.join("kind-config/kind.yaml"),
        effective_config_path: target.join("kind-config.yaml"),
        cgroup,
        node_image_override: None,
        manifests: workspace.join("manifests"),
        images,
        cache_dir: target.join("cache"),
        scenarios,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let scenarios = vec![ScenarioPlan {
            name: "eviction-resume".into(),
            steps: vec!["apply Job agent-batch".into(), "evict one agent".into()],
        }];
        build(&input_for_workspace(
            &workspace,
            CgroupVersion::V1,
            vec!["agentfleet/agent:0.1.0".into()],
            scenarios,
        ))
        .unwrap()
    }

    #[test]
    fn plan_lists_cluster_images_objects_patches_and_steps() {
        let plan = plan();
        assert_eq!(plan.cluster.cluster_name, "agentfleet");
        assert_eq!(plan.objects[0].kind, "Namespace");
        assert!(
            !plan
                .objects
                .iter()
                .any(|o| o.kind == "ScaledJob" || o.kind == "Job"),
            "cluster up applies no fleet workload"
        );
        assert!(
            plan.left_out
                .iter()
                .any(|o| o.kind == "ScaledJob" && o.namespace.as_deref() == Some("agents"))
        );
        let text = plan.to_human();
        for needle in [
            "kind cluster `agentfleet` (cgroup v1 host)",
            "agentfleet/agent:0.1.0",
            "replace /spec/template/spec/containers/0/imagePullPolicy = \"Never\"",
            "2. evict one agent",
            "not applied (the fleet's workloads",
            "KEDA 2.16.1",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
        }
        let json = plan.to_json();
        assert_eq!(json["cluster"]["cgroup"], "v1");
        assert_eq!(json["patches"].as_array().map(Vec::len), Some(4));
    }

    #[test]
    fn plan_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut input = input_for_workspace(&workspace, CgroupVersion::V1, vec![], vec![]);
        input.effective_config_path = dir.path().join("kind-config.yaml");
        input.cache_dir = dir.path().join("cache");
        build(&input).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
