//! Persistent volume claims that cannot be provisioned as written.

use super::{Sink, catalog};
use crate::fleet::Fleet;
use crate::model::Resource;
use crate::yaml::Path;

pub(super) fn check(fleet: &Fleet, sink: &mut Sink) {
    for object in &fleet.objects {
        let Resource::PersistentVolumeClaim(pvc) = &object.resource else {
            continue;
        };
        let Some(spec) = &pvc.spec else { continue };
        if !spec
            .access_modes
            .iter()
            .flatten()
            .any(|m| m == "ReadWriteMany")
        {
            continue;
        }
        match spec.storage_class_name.as_deref() {
            // "" means "bind a pre-provisioned PersistentVolume": no class to judge.
            Some("") => {}
            None => sink.report(
                &catalog::RWX_STORAGE_CLASS,
                object,
                &Path::parse("spec.accessModes"),
                "ReadWriteMany with no storageClassName uses the cluster's default class, which usually cannot provision RWX (the claim stays Pending)",
            ),
            Some(class) => {
                let defined = fleet.named(class).any(|o| matches!(o.resource, Resource::StorageClass(_)));
                if !defined {
                    sink.report(
                        &catalog::RWX_STORAGE_CLASS,
                        object,
                        &Path::parse("spec.storageClassName"),
                        format!("ReadWriteMany on storage class `{class}`, which is not in the input: unless the target cluster has it with an RWX-capable provisioner, the claim stays Pending"),
                    );
                }
            }
        }
    }
}
