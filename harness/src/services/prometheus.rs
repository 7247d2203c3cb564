//! Prometheus as a container on the agents' network, scraping every agent, and its query API.
//!
//! The offline image is Debian's prometheus 2.42, built without Kubernetes discovery, so the
//! pod-annotation convention of the manifests cannot be used. Instead the harness keeps a
//! `file_sd` target list inside the container up to date (one entry per agent instance, with
//! `fleet` and `agent_index` labels) and Prometheus re-reads it within a second.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{ServiceError, http_client, percent_encode, wait_ready};
use crate::Scope;
use crate::docker::{Container, ContainerSpec, DockerError};

pub const PORT: u16 = 9090;
pub const ALIAS: &str = "prometheus";
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Scrape often: agents are short-lived and the scenarios compare final counter values.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);
const TARGETS_FILE: &str = "/tmp/targets/agents.json";

/// The configuration: one job reading the target file. Written by the entrypoint script from
/// an environment variable because the image's config path is not writable by its user.
fn config() -> String {
    format!(
        "global:\n  scrape_interval: {interval}ms\n  scrape_timeout: {timeout}ms\n\
         scrape_configs:\n  - job_name: agents\n    file_sd_configs:\n      - files: [{TARGETS_FILE}]\n        refresh_interval: 1s\n",
        interval = SCRAPE_INTERVAL.as_millis(),
        timeout = SCRAPE_INTERVAL.as_millis() * 8 / 10,
    )
}

const ENTRYPOINT: &str = r#"set -e
mkdir -p /tmp/targets
printf '%s' "$PROM_CONFIG" > /tmp/prometheus.yml
printf '[]' > /tmp/targets/agents.json
exec /usr/bin/prometheus --config.file=/tmp/prometheus.yml --storage.tsdb.path=/prometheus \
  --web.listen-address=:9090 --log.level=warn"#;

/// One scrape target: `host:port` plus labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub address: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct TargetGroup<'a> {
    targets: [&'a str; 1],
    labels: &'a BTreeMap<String, String>,
}

/// Renders the `file_sd` JSON.
pub fn targets_json(targets: &[Target]) -> String {
    let groups: Vec<TargetGroup<'_>> = targets
        .iter()
        .map(|t| TargetGroup {
            targets: [t.address.as_str()],
            labels: &t.labels,
        })
        .collect();
    serde_json::to_string(&groups).expect("target groups always serialize")
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    container: Container,
    api: PrometheusApi,
}

impl Prometheus {
    /// Starts Prometheus on the agents' network (to scrape them) and the edge network (for the
    /// host-side API) and waits until it is ready.
    pub async fn start(
        scope: &Scope,
        image: &str,
        timeout: Duration,
    ) -> Result<Prometheus, ServiceError> {
        scope.engine().require_image(image).await?;
        let spec = ContainerSpec::new("prometheus", image)
            .entrypoint(["sh", "-c", ENTRYPOINT])
            .cmd(Vec::<String>::new())
            .env("PROM_CONFIG", config())
            .network(scope.edge_network(), [ALIAS])
            .network(scope.agents_network(), [ALIAS])
            .publish(PORT)
            .memory_mib(512)
            .stop_timeout(Duration::from_secs(5));
        let container = scope.run(spec).await?;
        let port = container.host_port(PORT).await?;
        let prometheus = Prometheus {
            api: PrometheusApi::new(format!("http://127.0.0.1:{port}")),
            container,
        };
        wait_ready(
            "Prometheus",
            &prometheus.container,
            "Prometheus /-/ready",
            timeout,
            Duration::from_millis(250),
            || async {
                match prometheus
                    .api
                    .http
                    .get(format!("{}/-/ready", prometheus.api.base))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
        Ok(prometheus)
    }

    pub fn api(&self) -> &PrometheusApi {
        &self.api
    }

    pub fn container(&self) -> &Container {
        &self.container
    }

    /// Replaces the target list (atomically: temp file + rename, so Prometheus never reads half).
    pub async fn set_targets(&self, scope: &Scope, targets: &[Target]) -> Result<(), DockerError> {
        let script = format!(
            "printf '%s' \"$TARGETS\" > {TARGETS_FILE}.tmp && mv {TARGETS_FILE}.tmp {TARGETS_FILE}"
        );
        let config = ExecConfig {
            cmd: Some(vec!["sh".into(), "-c".into(), script]),
            env: Some(vec![format!("TARGETS={}", targets_json(targets))]),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let docker = scope.engine().raw();
        let name = self.container.name();
        let exec = docker
            .create_exec(self.container.id(), config)
            .await
            .map_err(DockerError::api("create exec in", name))?;
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut stream, ..
        } = docker
            .start_exec(&exec.id, None)
            .await
            .map_err(DockerError::api("start exec in", name))?
        {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(DockerError::api("read exec output of", name))?;
                output.push_str(&chunk.to_string());
            }
        }
        let inspect = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(DockerError::api("inspect exec in", name))?;
        match inspect.exit_code {
            Some(0) => Ok(()),
            code => Err(DockerError::HelperFailed {
                container: format!("{name} (writing the file_sd target list)"),
                exit_code: code.unwrap_or(-1),
                output,
            }),
        }
    }
}

/// One series of an instant-query answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Deserialize)]
struct QueryAnswer {
    status: String,
    #[serde(default)]
    data: Option<QueryData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<VectorItem>,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// Prometheus' HTTP API (instant queries).
#[derive(Debug, Clone)]
pub struct PrometheusApi {
    base: String,
    http: reqwest::Client,
}

impl PrometheusApi {
    pub fn new(base: impl Into<String>) -> PrometheusApi {
        PrometheusApi {
            base: base.into(),
            http: http_client(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Runs an instant query that must return a vector.
    pub async fn query(&self, promql: &str) -> Result<Vec<Series>, ServiceError> {
        let url = format!("{}/api/v1/query", self.base);
        let http_error = |source| ServiceError::Http {
            service: "Prometheus",
            method: "GET",
            url: url.clone(),
            source,
        };
        let response = self
            .http
            .get(format!("{url}?query={}", percent_encode(promql)))
            .send()
            .await
            .map_err(http_error)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(http_error)?;
        let bad = |problem: String| ServiceError::Status {
            service: "Prometheus",
            method: "GET",
            url: format!("{url}?query={promql}"),
            status,
            body: problem,
        };
        let answer: QueryAnswer =
            serde_json::from_str(&body).map_err(|e| bad(format!("{e}: {body}")))?;
        if answer.status != "success" {
            return Err(bad(answer.error.unwrap_or(body)));
        }
        let data = answer
            .data
            .ok_or_else(|| bad("no data in a successful answer".into()))?;
        if data.result_type != "vector" {
            return Err(bad(format!("expected a vector, got {}", data.result_type)));
        }
        let mut series = Vec::with_capacity(data.result.len());
        for item in data.result {
            let value = item
                .value
                .1
                .parse::<f64>()
                .map_err(|e| bad(format!("value `{}`: {e}", item.value.1)))?;
            series.push(Series {
                labels: item.metric,
                value,
            });
        }
        Ok(series)
    }

    /// The single value of a query like `sum(...)`; 0 when the vector is empty.
    pub async fn scalar(&self, promql: &str) -> Result<f64, ServiceError> {
        Ok(self.query(promql).await?.first().map_or(0.0, |s| s.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_list_is_file_sd_json() {
        let targets = [Target {
            address: "agent-0:8080".into(),
            labels: BTreeMap::from([("fleet".to_owned(), "four".to_owned())]),
        }];
        assert_eq!(
            targets_json(&targets),
            r#"[{"targets":["agent-0:8080"],"labels":{"fleet":"four"}}]"#
        );
        assert_eq!(targets_json(&[]), "[]");
    }

    #[test]
    fn promql_is_query_encoded() {
        assert_eq!(
            percent_encode(r#"sum(a{b="c"})"#),
            "sum%28a%7Bb%3D%22c%22%7D%29"
        );
    }

    #[test]
    fn config_scrapes_the_file_every_second() {
        let c = config();
        assert!(
            c.contains("scrape_interval: 1000ms") && c.contains("file_sd_configs"),
            "{c}"
        );
    }
}
