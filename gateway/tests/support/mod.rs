//! An in-process gateway on 127.0.0.1:0 and a plain HTTP client, shared by the HTTP tests.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentfleet_gateway::GatewayState;
use agentfleet_protocol::gateway::FaultProfile;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct TestGateway {
    pub base: String,
    pub state: Arc<GatewayState>,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestGateway {
    pub async fn start() -> Self {
        Self::start_with(FaultProfile::default(), 1_000).await
    }

    pub async fn start_with(profile: FaultProfile, request_log_capacity: usize) -> Self {
        // reqwest is built with `rustls-no-provider`; it needs a provider even for http://.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let state =
            Arc::new(GatewayState::new(profile, request_log_capacity).expect("valid test profile"));
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(agentfleet_gateway::serve(
            listener,
            Arc::clone(&state),
            async move {
                let _ = shutdown_rx.await;
            },
        ));
        Self {
            base,
            state,
            client: reqwest::Client::new(),
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a chat request with `content` as the single user message.
    pub async fn chat(&self, content: &str) -> reqwest::Response {
        self.chat_with_headers(content, &[]).await
    }

    pub async fn chat_with_headers(
        &self,
        content: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/v1/chat/completions"))
            .json(&chat_body("agentfleet-sim-small", &[content]));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .send()
            .await
            .expect("chat request reaches the gateway")
    }

    pub async fn put_faults(&self, profile: Value) -> reqwest::Response {
        self.client
            .put(self.url("/admin/faults"))
            .json(&profile)
            .send()
            .await
            .expect("PUT /admin/faults reaches the gateway")
    }

    pub async fn put_faults_ok(&self, profile: Value) {
        let response = self.put_faults(profile.clone()).await;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "PUT /admin/faults {profile} answered {body}");
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let status = response.status().as_u16();
        (status, response.text().await.expect("response body"))
    }

    pub async fn metrics(&self) -> String {
        let (status, text) = self.get_text("/metrics").await;
        assert_eq!(status, 200, "GET /metrics answered {text}");
        text
    }

    /// Stops the server gracefully and waits for `serve` to return.
    pub async fn shutdown(mut self) {
        self.shutdown_now().await;
    }

    async fn shutdown_now(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            within(Duration::from_secs(10), "the server to stop", server)
                .await
                .expect("server task did not panic")
                .expect("serve returned without an I/O error");
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

pub fn chat_body(model: &str, contents: &[&str]) -> Value {
    json!({
        "model": model,
        "messages": contents
            .iter()
            .map(|content| json!({"role": "user", "content": content}))
            .collect::<Vec<_>>(),
    })
}

/// Awaits `future`, failing the test with `what` if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Polls `probe` every few milliseconds until it returns `Some`, failing with the last
/// observation after `limit`.
pub async fn wait_for<T, O, Fut>(limit: Duration, what: &str, mut probe: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Result<T, O>>,
    O: std::fmt::Debug,
{
    let deadline = Instant::now() + limit;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(observed) if Instant::now() >= deadline => {
                panic!("timed out after {limit:?} waiting for {what}; last observed: {observed:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}
