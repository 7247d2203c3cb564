//! Removal of everything a scope created, by label: containers first (they hold networks and
//! volumes), then networks, then volumes.

use std::collections::HashMap;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};

use crate::docker::{DockerError, Engine};

/// Label every agentfleet resource carries; its value is the owning scope's id.
pub const SCOPE_LABEL: &str = "agentfleet.scope";

/// Which resources to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sweep {
    /// Everything labelled by one scope.
    Scope(String),
    /// Everything any scope left behind (crashed runs, `AGENTFLEET_KEEP`). Do not run it while
    /// other agentfleet tests are running: their resources carry the same label key.
    All,
}

impl Sweep {
    fn label_filter(&self) -> String {
        match self {
            Sweep::Scope(id) => format!("{SCOPE_LABEL}={id}"),
            Sweep::All => SCOPE_LABEL.to_owned(),
        }
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl Swept {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

/// Removes the containers, networks and volumes selected by `what`. Keeps going past individual
/// failures (a resource removed concurrently is not one) and reports the first real error after
/// trying everything, so one stuck object does not leak all the others.
pub async fn sweep(engine: &Engine, what: &Sweep) -> Result<Swept, DockerError> {
    let docker = engine.raw();
    let filters = HashMap::from([("label", vec![what.label_filter()])]);
    let mut swept = Swept::default();
    let mut first_error = None;
    let mut note = |result: Result<(), bollard::errors::Error>, action, object: &str| match result {
        Ok(()) => true,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => false,
        Err(source) => {
            first_error.get_or_insert(DockerError::Api {
                action,
                object: object.to_owned(),
                source,
            });
            false
        }
    };

    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(DockerError::api(
            "list containers labelled",
            what.label_filter(),
        ))?;
    for c in containers {
        let Some(id) = c.id else { continue };
        let name = c
            .names
            .and_then(|n| n.into_iter().next())
            .unwrap_or_else(|| id.clone());
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        if note(
            docker.remove_container(&id, Some(options)).await,
            "remove container",
            &name,
        ) {
            swept
                .containers
                .push(name.trim_start_matches('/').to_owned());
        }
    }

    let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
    let networks = docker
        .list_networks(Some(options))
        .await
        .map_err(DockerError::api(
            "list networks labelled",
            what.label_filter(),
        ))?;
    for n in networks {
        let Some(name) = n.name else { continue };
        if note(docker.remove_network(&name).await, "remove network", &name) {
            swept.networks.push(name);
        }
    }

    let options = ListVolumesOptionsBuilder::new().filters(&filters).build();
    let volumes = docker
        .list_volumes(Some(options))
        .await
        .map_err(DockerError::api(
            "list volumes labelled",
            what.label_filter(),
        ))?;
    for v in volumes.volumes.unwrap_or_default() {
        let options = RemoveVolumeOptionsBuilder::new().force(true).build();
        if note(
            docker.remove_volume(&v.name, Some(options)).await,
            "remove volume",
            &v.name,
        ) {
            swept.volumes.push(v.name);
        }
    }

    match first_error {
        Some(error) => Err(error),
        None => Ok(swept),
    }
}
