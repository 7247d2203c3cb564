//! Input-wide checks: duplicates, namespaces, suppressions, kinds not checked.

use std::collections::BTreeMap;

use super::{IGNORE_ANNOTATION, Sink, catalog, suppressed_ids};
use crate::fleet::Fleet;
use crate::model::Resource;
use crate::yaml::Path;

pub(super) fn check(fleet: &Fleet, sink: &mut Sink) {
    let mut first_seen = BTreeMap::new();
    for object in &fleet.objects {
        let key = (
            object.group().to_owned(),
            object.kind.clone(),
            fleet.namespace_of(object).map(str::to_owned),
            object.name.clone(),
        );
        if let Some(first) = first_seen.get(&key) {
            sink.report(
                &catalog::DUPLICATE_OBJECT,
                object,
                &Path::parse("metadata.name"),
                format!(
                    "{} is defined twice; the first definition is at {first}",
                    object.object_ref()
                ),
            );
        } else {
            first_seen.insert(key, object.location(&Path::parse("metadata.name")));
        }
    }

    let used_namespaces: Vec<&str> = fleet
        .objects
        .iter()
        .filter_map(|o| o.namespace.as_deref())
        .collect();
    if let Some(example) = used_namespaces.first() {
        for object in fleet
            .objects
            .iter()
            .filter(|o| o.namespaced && o.namespace.is_none())
        {
            sink.report(
                &catalog::MISSING_NAMESPACE,
                object,
                &Path::parse("metadata"),
                format!(
                    "{} {} has no metadata.namespace while other objects name theirs (e.g. {example}); it is checked as if in `{}`",
                    object.kind, object.name, fleet.default_namespace
                ),
            );
        }
    }

    for object in &fleet.objects {
        for id in suppressed_ids(object) {
            if catalog::find(id).is_none() {
                sink.report(
                    &catalog::UNKNOWN_SUPPRESSION,
                    object,
                    &Path::parse("metadata.annotations").key(IGNORE_ANNOTATION),
                    format!("{IGNORE_ANNOTATION} lists `{id}`, which is not a rule ID"),
                );
            }
        }
        if matches!(object.resource, Resource::Unchecked) {
            sink.report(
                &catalog::UNCHECKED_KIND,
                object,
                &Path::parse("kind"),
                format!(
                    "{} ({}) is not modelled by agentfleet lint; only its metadata was read",
                    object.kind, object.api_version
                ),
            );
        }
    }
}
