//! The LLM gateway simulator in a container (`gateway:8080` for agents, a published port for the
//! host) and a typed client for its admin API.

use std::time::Duration;

use agentfleet_protocol::gateway::{FaultProfile, HeldRequests, RequestRecord};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ServiceError, http_client, require_success, wait_ready};
use crate::Scope;
use crate::docker::{Container, ContainerSpec};
use crate::metrics::{Metrics, scrape};
use crate::wait::{Probe, WaitTimeout, until};

/// DNS name of the gateway on the agents' network.
pub const ALIAS: &str = "gateway";
pub const PORT: u16 = 8080;
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// The gateway's variable for its initial fault profile (inline JSON).
const FAULTS_ENV: &str = "GATEWAY_FAULTS";

/// The base URL agents use.
pub fn agent_url() -> String {
    format!("http://{ALIAS}:{PORT}")
}

pub fn spec(scope: &Scope, image: &str) -> ContainerSpec {
    ContainerSpec::new("gateway", image)
        .network(scope.edge_network(), [ALIAS])
        .network(scope.agents_network(), [ALIAS])
        .publish(PORT)
        .memory_mib(256)
        .read_only_rootfs()
        .stop_timeout(Duration::from_secs(5))
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    container: Container,
    admin: GatewayAdmin,
}

impl Gateway {
    /// Starts the gateway with `faults` as its initial profile and returns once `/healthz`
    /// answers from the host.
    pub async fn start(
        scope: &Scope,
        image: &str,
        faults: &FaultProfile,
    ) -> Result<Gateway, ServiceError> {
        scope.engine().require_image(image).await?;
        let faults_json = serde_json::to_string(faults).expect("a FaultProfile always serializes");
        let container = scope
            .run(spec(scope, image).env(FAULTS_ENV, faults_json))
            .await?;
        let port = container.host_port(PORT).await?;
        let gateway = Gateway {
            admin: GatewayAdmin::new(format!("http://127.0.0.1:{port}")),
            container,
        };
        gateway.wait_ready(DEFAULT_START_TIMEOUT).await?;
        Ok(gateway)
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), ServiceError> {
        let url = format!("{}/healthz", self.admin.base);
        wait_ready(
            "gateway",
            &self.container,
            "the gateway's /healthz",
            timeout,
            Duration::from_millis(100),
            || async {
                match self.admin.http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("/healthz answered {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await
    }

    pub fn admin(&self) -> &GatewayAdmin {
        &self.admin
    }

    pub fn container(&self) -> &Container {
        &self.container
    }
}

/// The gateway's admin API.
#[derive(Debug, Clone)]
pub struct GatewayAdmin {
    base: String,
    http: reqwest::Client,
}

#[derive(Serialize)]
struct OutageRequest {
    duration_ms: u64,
    status: u16,
}

impl GatewayAdmin {
    /// A client for a gateway at `base` (e.g. `http://127.0.0.1:49160`).
    pub fn new(base: impl Into<String>) -> GatewayAdmin {
        GatewayAdmin {
            base: base.into(),
            http: http_client(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Replaces the fault profile; its outage windows start counting now.
    pub async fn set_faults(&self, faults: &FaultProfile) -> Result<(), ServiceError> {
        self.send("PUT", "/admin/faults", Some(faults))
            .await
            .map(drop)
    }

    pub async fn faults(&self) -> Result<FaultProfile, ServiceError> {
        self.get_json("/admin/faults").await
    }

    /// Starts an outage now: every request for `duration` is answered `status`.
    pub async fn start_outage(&self, duration: Duration, status: u16) -> Result<(), ServiceError> {
        let body = OutageRequest {
            duration_ms: duration.as_millis() as u64,
            status,
        };
        self.send("POST", "/admin/outage", Some(&body))
            .await
            .map(drop)
    }

    /// The requests held open by the profile's hangs right now, by task id.
    pub async fn held(&self) -> Result<HeldRequests, ServiceError> {
        self.get_json("/admin/held").await
    }

    /// Waits until a call of one of `task_ids` is held by a hang, and returns that task's id.
    /// With [`FaultProfile::hanging`] this is the moment an agent is frozen between two steps:
    /// the steps before are answered (and, by the contract, checkpointed), the next one cannot
    /// finish, however slow or fast the machine is.
    pub async fn wait_held(
        &self,
        task_ids: &[&str],
        timeout: Duration,
    ) -> Result<String, WaitTimeout> {
        until(
            format!("an LLM call of {task_ids:?} held by the gateway's hang"),
            timeout,
            Duration::from_millis(50),
            || async {
                match self.held().await {
                    Ok(held) => match task_ids.iter().find(|id| held.contains_key(**id)) {
                        Some(id) => Probe::Ready((*id).to_owned()),
                        None => Probe::NotYet(format!("held: {held:?}")),
                    },
                    Err(e) => Probe::NotYet(e.to_string()),
                }
            },
        )
        .await
    }

    /// The whole request log, oldest first.
    pub async fn requests(&self) -> Result<Vec<RequestRecord>, ServiceError> {
        self.get_json("/admin/requests").await
    }

    /// Requests that arrived at or after `since_ms` (Unix milliseconds).
    pub async fn requests_since(&self, since_ms: u64) -> Result<Vec<RequestRecord>, ServiceError> {
        self.get_json(&format!("/admin/requests?since_ms={since_ms}"))
            .await
    }

    pub async fn clear_requests(&self) -> Result<(), ServiceError> {
        self.send::<()>("DELETE", "/admin/requests", None)
            .await
            .map(drop)
    }

    pub async fn metrics(&self) -> Result<Metrics, ServiceError> {
        Ok(scrape(&self.http, &format!("{}/metrics", self.base)).await?)
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ServiceError> {
        let url = format!("{}{path}", self.base);
        let response = self.send::<()>("GET", path, None).await?;
        response.json().await.map_err(|source| ServiceError::Http {
            service: "gateway",
            method: "GET",
            url,
            source,
        })
    }

    async fn send<B: Serialize>(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&B>,
    ) -> Result<reqwest::Response, ServiceError> {
        let url = format!("{}{path}", self.base);
        let http_method =
            reqwest::Method::from_bytes(method.as_bytes()).expect("methods here are valid");
        let mut request = self.http.request(http_method, &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|source| ServiceError::Http {
            service: "gateway",
            method,
            url: url.clone(),
            source,
        })?;
        require_success("gateway", method, url, response).await
    }
}
