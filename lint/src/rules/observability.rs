//! Prometheus scrape annotations: on the right object, naming a real port.

use super::{Sink, catalog};
use crate::fleet::{Controller, Fleet, Workload};
use crate::netpol::declared_ports;
use crate::yaml::Path;

const PREFIX: &str = "prometheus.io/";

pub(super) fn check(fleet: &Fleet, sink: &mut Sink) {
    for workload in fleet.workloads() {
        let object = workload.object;
        let on_workload = workload.controller != Controller::Pod
            && object.annotations.keys().any(|k| k.starts_with(PREFIX));
        if on_workload {
            for key in object.annotations.keys().filter(|k| k.starts_with(PREFIX)) {
                sink.report(
                    &catalog::SCRAPE_ANNOTATIONS_WRONG_OBJECT,
                    object,
                    &Path::parse("metadata.annotations").key(key),
                    format!("{key} is on the {} itself; pods only get {}.metadata.annotations, so Prometheus never sees it", object.kind, workload.template_path),
                );
            }
            port_check(
                &workload,
                object
                    .annotations
                    .get("prometheus.io/port")
                    .map(String::as_str),
                Path::parse("metadata.annotations").key("prometheus.io/port"),
                sink,
            );
        }
        let template_port = workload.annotation("prometheus.io/port");
        let template_path = workload
            .metadata_path()
            .key("annotations")
            .key("prometheus.io/port");
        if template_port.is_some() || workload.annotation("prometheus.io/scrape") == Some("true") {
            port_check(&workload, template_port, template_path, sink);
        }
    }
}

fn port_check(workload: &Workload<'_>, port: Option<&str>, path: Path, sink: &mut Sink) {
    let declared = declared_ports(workload);
    let list = if declared.is_empty() {
        "none".to_owned()
    } else {
        declared
            .iter()
            .map(|p| p.number.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match port {
        Some(value) => match value.trim().parse::<u16>() {
            Ok(number) if declared.iter().any(|p| p.number == number) => {}
            Ok(number) => sink.report(
                &catalog::SCRAPE_PORT_UNDECLARED,
                workload.object,
                &path,
                format!("prometheus.io/port is {number}, but the containers of {} declare port(s): {list}", workload.describe()),
            ),
            Err(_) => sink.report(
                &catalog::SCRAPE_PORT_UNDECLARED,
                workload.object,
                &path,
                format!("prometheus.io/port is \"{value}\", not a port number (declared: {list})"),
            ),
        },
        None if declared.is_empty() => sink.report(
            &catalog::SCRAPE_PORT_UNDECLARED,
            workload.object,
            &path,
            format!("{} asks to be scraped but declares no containerPort and no prometheus.io/port", workload.describe()),
        ),
        None => {}
    }
}
