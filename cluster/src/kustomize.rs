//! A small, strict kustomize: enough to render manifests/overlays/kind without a kustomize
//! binary (none is installed here, and kubectl's embedded one would need kubectl).
//!
//! Supported, because the project's kustomizations use exactly this: `resources` (files and
//! directories with a kustomization.yaml), `labels` with `includeSelectors: false` and
//! `includeTemplates: false` (metadata labels only), `configMapGenerator` with `files`, and
//! `patches` that are JSON 6902 operation lists with a `target` (group/version/kind/namespace
//! and a name that is a literal or an alternation of literals `a|b|c`).
//!
//! Deliberate difference from kustomize: generated ConfigMaps keep their plain name (no content
//! hash suffix), so references need no rewriting; instead the pod templates that mount a
//! generated ConfigMap get an `agentfleet.dev/config-hash` annotation with the hash of its data,
//! which rolls the Deployment on a config change just as the suffix would. Anything else in a
//! kustomization (strategic-merge patches, `namespace:`, `images:`, ...) is an error naming the
//! file and the field, never silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The label that config hashes are recorded under on pod templates.
pub const CONFIG_HASH_ANNOTATION: &str = "agentfleet.dev/config-hash";

#[derive(Debug, thiserror::Error)]
pub enum KustomizeError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {reason}")]
    Yaml { path: PathBuf, reason: String },
    #[error("{path}: field `{field}` is not supported by agentfleet's kustomize subset; {hint}")]
    Unsupported {
        path: PathBuf,
        field: String,
        hint: String,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
    #[error("{path}: patch #{index} ({target}) matches no object; fix its target or remove it")]
    PatchMatchesNothing {
        path: PathBuf,
        index: usize,
        target: String,
    },
    #[error("{path}: patch #{index} failed on {object}: {reason}")]
    PatchFailed {
        path: PathBuf,
        index: usize,
        object: String,
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Kustomization {
    #[serde(rename = "apiVersion")]
    _api_version: Option<String>,
    #[serde(rename = "kind")]
    _kind: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    labels: Vec<LabelSet>,
    #[serde(default)]
    config_map_generator: Vec<ConfigMapGenerator>,
    #[serde(default)]
    patches: Vec<PatchEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LabelSet {
    pairs: BTreeMap<String, String>,
    #[serde(default)]
    include_selectors: bool,
    #[serde(default)]
    include_templates: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigMapGenerator {
    name: String,
    namespace: Option<String>,
    #[serde(default)]
    files: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchEntry {
    target: Option<PatchTarget>,
    patch: Option<String>,
    path: Option<String>,
}

/// Which objects a patch applies to.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchTarget {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

impl std::fmt::Display for PatchTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let part =
            |label: &str, value: &Option<String>| value.as_ref().map(|v| format!("{label}={v}"));
        let parts: Vec<String> = [
            part("group", &self.group),
            part("version", &self.version),
            part("kind", &self.kind),
            part("namespace", &self.namespace),
            part("name", &self.name),
        ]
        .into_iter()
        .flatten()
        .collect();
        f.write_str(&parts.join(","))
    }
}

/// A patch that was applied, for the plan.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppliedPatch {
    pub kustomization: PathBuf,
    pub target: String,
    /// `replace /spec/template/spec/containers/0/imagePullPolicy = "Never"`.
    pub operations: Vec<String>,
    /// `Kind namespace/name` of every patched object.
    pub objects: Vec<String>,
}

/// The output of a kustomization: objects in resource order and the patches applied.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rendered {
    pub objects: Vec<Value>,
    pub patches: Vec<AppliedPatch>,
}

/// `Kind namespace/name` (or `Kind name` for cluster-scoped objects).
pub fn describe(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("?");
    let name = object["metadata"]["name"].as_str().unwrap_or("?");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Renders the kustomization in `dir`.
pub fn render(dir: &Path) -> Result<Rendered, KustomizeError> {
    let path = dir.join("kustomization.yaml");
    let text = read(&path)?;
    let kustomization: Kustomization =
        serde_saphyr::from_str(&text).map_err(|e| unsupported_or_yaml(&path, e.to_string()))?;
    let mut rendered = Rendered::default();
    for resource in &kustomization.resources {
        let target = dir.join(resource);
        if target.is_dir() {
            let sub = render(&target)?;
            rendered.objects.extend(sub.objects);
            rendered.patches.extend(sub.patches);
        } else {
            rendered
                .objects
                .extend(parse_documents(&target, &read(&target)?)?);
        }
    }
    for generator in &kustomization.config_map_generator {
        let config_map = generate_config_map(dir, &path, generator)?;
        hash_into_templates(&mut rendered.objects, &config_map);
        rendered.objects.push(config_map);
    }
    for set in &kustomization.labels {
        if set.include_selectors || set.include_templates {
            return Err(KustomizeError::Unsupported {
                path: path.clone(),
                field: "labels[].includeSelectors/includeTemplates".into(),
                hint: "only metadata labels are supported; write selector and template labels in the files".into(),
            });
        }
        for object in &mut rendered.objects {
            let labels = nested_map(object, "metadata", "labels");
            if let Some(labels) = labels {
                for (key, value) in &set.pairs {
                    labels.insert(key.clone(), Value::String(value.clone()));
                }
            }
        }
    }
    for (index, entry) in kustomization.patches.iter().enumerate() {
        rendered
            .patches
            .push(apply_patch(&path, index, entry, &mut rendered.objects)?);
    }
    Ok(rendered)
}

fn read(path: &Path) -> Result<String, KustomizeError> {
    std::fs::read_to_string(path).map_err(|source| KustomizeError::Read {
        path: path.to_owned(),
        source,
    })
}

fn unsupported_or_yaml(path: &Path, reason: String) -> KustomizeError {
    if let Some(field) = reason
        .split("unknown field `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
    {
        return KustomizeError::Unsupported {
            path: path.to_owned(),
            field: field.to_owned(),
            hint: "render this kustomization with `kustomize build` instead, or extend cluster/src/kustomize.rs".into(),
        };
    }
    KustomizeError::Yaml {
        path: path.to_owned(),
        reason,
    }
}

/// The non-empty documents of a multi-document YAML file.
pub fn parse_documents(path: &Path, text: &str) -> Result<Vec<Value>, KustomizeError> {
    let documents: Vec<Value> =
        serde_saphyr::from_str_multiple(text).map_err(|e| KustomizeError::Yaml {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let mut objects = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue;
        }
        if document["kind"].as_str().is_none()
            || document["apiVersion"].as_str().is_none()
            || document["metadata"]["name"].as_str().is_none()
        {
            return Err(KustomizeError::Invalid {
                path: path.to_owned(),
                problem: format!(
                    "document #{index} lacks apiVersion, kind or metadata.name; every document must be a Kubernetes object"
                ),
            });
        }
        objects.push(document);
    }
    Ok(objects)
}

/// The mapping at `value[outer][inner]`, created when absent; `None` when something in the way
/// is not a mapping.
fn nested_map<'a>(
    value: &'a mut Value,
    outer: &str,
    inner: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let outer = value
        .as_object_mut()?
        .entry(outer)
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()?;
    outer
        .entry(inner)
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()
}

fn generate_config_map(
    dir: &Path,
    kustomization: &Path,
    generator: &ConfigMapGenerator,
) -> Result<Value, KustomizeError> {
    let mut data = serde_json::Map::new();
    for file in &generator.files {
        let (key, relative) = match file.split_once('=') {
            Some((key, relative)) => (key.to_owned(), relative),
            None => (
                Path::new(file)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                file.as_str(),
            ),
        };
        if key.is_empty() {
            return Err(KustomizeError::Invalid {
                path: kustomization.to_owned(),
                problem: format!(
                    "configMapGenerator {}: file `{file}` has no name",
                    generator.name
                ),
            });
        }
        data.insert(key, Value::String(read(&dir.join(relative))?));
    }
    let mut metadata = serde_json::json!({"name": generator.name});
    if let Some(namespace) = &generator.namespace {
        metadata["namespace"] = Value::String(namespace.clone());
    }
    Ok(
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}),
    )
}

/// Annotates the pod templates that mount `config_map` with the hash of its data.
fn hash_into_templates(objects: &mut [Value], config_map: &Value) {
    let name = config_map["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = config_map["metadata"]["namespace"].as_str();
    let hash = crate::download::sha256_hex(config_map["data"].to_string().as_bytes());
    for object in objects.iter_mut() {
        if namespace.is_some() && object["metadata"]["namespace"].as_str() != namespace {
            continue;
        }
        // `get_mut`, not `[]`: indexing a Value mutably inserts missing keys.
        let Some(template) = object
            .get_mut("spec")
            .and_then(|s| s.get_mut("template"))
            .filter(|t| t.is_object())
        else {
            continue;
        };
        if !mounts_config_map(&template["spec"]["volumes"], name) {
            continue;
        }
        if let Some(annotations) = nested_map(template, "metadata", "annotations") {
            let key = format!("{CONFIG_HASH_ANNOTATION}.{name}");
            annotations.insert(key, Value::String(hash[..16].to_owned()));
        }
    }
}

fn mounts_config_map(volumes: &Value, name: &str) -> bool {
    volumes.as_array().is_some_and(|volumes| {
        volumes.iter().any(|volume| {
            volume["configMap"]["name"].as_str() == Some(name)
                || volume["projected"]["sources"]
                    .as_array()
                    .is_some_and(|sources| {
                        sources
                            .iter()
                            .any(|s| s["configMap"]["name"].as_str() == Some(name))
                    })
        })
    })
}

/// kustomize treats target names as anchored regular expressions; we accept literals and
/// alternations of literals, which is all the overlays use.
fn name_matches(pattern: &str, name: &str, kustomization: &Path) -> Result<bool, KustomizeError> {
    if pattern
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '|'))
    {
        return Err(KustomizeError::Unsupported {
            path: kustomization.to_owned(),
            field: format!("patches[].target.name `{pattern}`"),
            hint: "only literal names and alternations `a|b` are supported".into(),
        });
    }
    Ok(pattern.split('|').any(|alternative| alternative == name))
}

fn target_matches(
    target: &PatchTarget,
    object: &Value,
    kustomization: &Path,
) -> Result<bool, KustomizeError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let checks = [
        (&target.group, group),
        (&target.version, version),
        (&target.kind, object["kind"].as_str().unwrap_or_default()),
        (
            &target.namespace,
            object["metadata"]["namespace"].as_str().unwrap_or_default(),
        ),
    ];
    if checks
        .iter()
        .any(|(want, have)| want.as_deref().is_some_and(|w| w != *have))
    {
        return Ok(false);
    }
    match &target.name {
        Some(pattern) => name_matches(
            pattern,
            object["metadata"]["name"].as_str().unwrap_or_default(),
            kustomization,
        ),
        None => Ok(true),
    }
}

fn apply_patch(
    kustomization: &Path,
    index: usize,
    entry: &PatchEntry,
    objects: &mut [Value],
) -> Result<AppliedPatch, KustomizeError> {
    let unsupported = |field: &str, hint: &str| KustomizeError::Unsupported {
        path: kustomization.to_owned(),
        field: field.into(),
        hint: hint.into(),
    };
    if entry.path.is_some() {
        return Err(unsupported(
            "patches[].path",
            "inline the patch with `patch: |-`",
        ));
    }
    let target = entry
        .target
        .clone()
        .ok_or_else(|| unsupported("patches[] without target", "give every patch a target"))?;
    let text = entry.patch.as_deref().ok_or_else(|| {
        unsupported(
            "patches[] without patch",
            "inline a JSON 6902 list with `patch: |-`",
        )
    })?;
    let operations: Value = serde_saphyr::from_str(text).map_err(|e| KustomizeError::Yaml {
        path: kustomization.to_owned(),
        reason: format!("patch #{index}: {e}"),
    })?;
    if !operations.is_array() {
        return Err(unsupported(
            "patches[] strategic-merge patch",
            "write the patch as a JSON 6902 operation list",
        ));
    }
    let described: Vec<String> = operations
        .as_array()
        .into_iter()
        .flatten()
        .map(|op| {
            let value = if op.get("value").is_some() {
                format!(" = {}", op["value"])
            } else {
                String::new()
            };
            format!(
                "{} {}{value}",
                op["op"].as_str().unwrap_or("?"),
                op["path"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let patch: json_patch::Patch =
        serde_json::from_value(operations).map_err(|e| KustomizeError::Invalid {
            path: kustomization.to_owned(),
            problem: format!("patch #{index} is not a JSON 6902 operation list: {e}"),
        })?;
    let mut patched = Vec::new();
    for object in objects.iter_mut() {
        if !target_matches(&target, object, kustomization)? {
            continue;
        }
        let name = describe(object);
        json_patch::patch(object, &patch.0).map_err(|e| KustomizeError::PatchFailed {
            path: kustomization.to_owned(),
            index,
            object: name.clone(),
            reason: e.to_string(),
        })?;
        patched.push(name);
    }
    if patched.is_empty() {
        return Err(KustomizeError::PatchMatchesNothing {
            path: kustomization.to_owned(),
            index,
            target: target.to_string(),
        });
    }
    Ok(AppliedPatch {
        kustomization: kustomization.to_owned(),
        target: target.to_string(),
        operations: described,
        objects: patched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
    }

    const CONFIG_MAP_A: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";

    /// Renders a kustomization made of `files` (name, content) in a fresh directory.
    fn render_files(files: &[(&str, &str)]) -> Result<Rendered, KustomizeError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        render(dir.path())
    }

    fn find<'a>(rendered: &'a Rendered, kind: &str, name: &str) -> &'a Value {
        rendered
            .objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| {
                panic!(
                    "{kind} {name} not rendered; have {:?}",
                    rendered.objects.iter().map(describe).collect::<Vec<_>>()
                )
            })
    }

    #[test]
    fn kind_overlay_renders_with_its_patches() {
        let rendered = render(&manifests().join("overlays/kind")).unwrap();
        let pvc = find(&rendered, "PersistentVolumeClaim", "agent-checkpoints");
        assert_eq!(pvc["spec"]["storageClassName"], "standard");
        assert_eq!(
            pvc["spec"]["accessModes"],
            serde_json::json!(["ReadWriteOnce"])
        );
        let job = find(&rendered, "Job", "agent-batch");
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Never"
        );
        let scaled = find(&rendered, "ScaledJob", "agent-scaledjob");
        assert_eq!(
            scaled["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Never"
        );
        for name in ["rabbitmq", "gateway", "prometheus"] {
            let deployment = find(&rendered, "Deployment", name);
            assert_eq!(
                deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Never",
                "{name}"
            );
        }
        assert_eq!(rendered.patches.len(), 4);
        assert_eq!(
            rendered.patches[3].objects.len(),
            3,
            "{:?}",
            rendered.patches[3]
        );
    }

    #[test]
    fn metadata_labels_are_added_but_selectors_are_untouched() {
        let rendered = render(&manifests().join("overlays/kind")).unwrap();
        let deployment = find(&rendered, "Deployment", "gateway");
        assert_eq!(
            deployment["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "agentfleet"
        );
        assert!(
            deployment["spec"]["selector"]["matchLabels"]
                .get("app.kubernetes.io/part-of")
                .is_none()
        );
    }

    #[test]
    fn generated_config_maps_keep_their_name_and_roll_their_deployment() {
        let rendered = render(&manifests().join("overlays/kind")).unwrap();
        let config = find(&rendered, "ConfigMap", "rabbitmq-config");
        assert_eq!(config["metadata"]["namespace"], "message-queue");
        assert!(
            config["data"]["rabbitmq.conf"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );
        let deployment = find(&rendered, "Deployment", "rabbitmq");
        let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        assert!(
            annotations
                .get(format!("{CONFIG_HASH_ANNOTATION}.rabbitmq-config"))
                .is_some(),
            "{annotations}"
        );
    }

    #[test]
    fn objects_without_a_pod_template_are_not_touched() {
        let rendered = render(&manifests().join("overlays/kind")).unwrap();
        for object in &rendered.objects {
            if object["kind"] != "Deployment"
                && object["kind"] != "Job"
                && object["kind"] != "ScaledJob"
            {
                assert!(
                    object["spec"].get("template").is_none(),
                    "{}",
                    describe(object)
                );
            }
        }
        let namespace = find(&rendered, "Namespace", "agents");
        assert!(namespace.get("spec").is_none(), "{namespace}");
    }

    #[test]
    fn unsupported_fields_are_named() {
        let error = render_files(&[("kustomization.yaml", "resources: []\nnamespace: x\n")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("kustomization.yaml") && error.contains("`namespace`"),
            "{error}"
        );
    }

    #[test]
    fn a_patch_that_matches_nothing_fails() {
        let error = render_files(&[
            ("a.yaml", CONFIG_MAP_A),
            (
                "kustomization.yaml",
                "resources: [a.yaml]\npatches:\n  - target: {kind: ConfigMap, name: b}\n    patch: |-\n      - op: add\n        path: /data\n        value: {}\n",
            ),
        ])
        .unwrap_err();
        assert!(
            matches!(error, KustomizeError::PatchMatchesNothing { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_replace_of_a_missing_path_fails_loudly() {
        let error = render_files(&[
            ("a.yaml", CONFIG_MAP_A),
            (
                "kustomization.yaml",
                "resources: [a.yaml]\npatches:\n  - target: {kind: ConfigMap, name: a}\n    patch: |-\n      - op: replace\n        path: /data/x\n        value: y\n",
            ),
        ])
        .unwrap_err();
        assert!(
            matches!(error, KustomizeError::PatchFailed { .. }),
            "{error}"
        );
    }
}
