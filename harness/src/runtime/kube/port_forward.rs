//! A local TCP port forwarded to a port of a platform pod, with kube-rs' port-forward
//! subresource (no `kubectl`).
//!
//! The harness' AMQP client and HTTP clients only know `host:port`; this listens on
//! `127.0.0.1:0` and, for each accepted connection, opens a port-forward stream to a running pod
//! matching the selector and copies bytes both ways. The pod is looked up per connection, so a
//! restarted RabbitMQ pod is picked up by the next connection.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum PortForwardError {
    #[error(
        "no running pod matches {selector} in namespace {namespace} ({what}); is the platform installed? run `agentfleet cluster up` (kind) or apply manifests/platform"
    )]
    NoPod {
        what: String,
        namespace: String,
        selector: String,
    },
    #[error("listing pods {selector} in namespace {namespace} ({what}): {source}")]
    List {
        what: String,
        namespace: String,
        selector: String,
        #[source]
        source: kube::Error,
    },
    #[error("port-forward to {namespace}/{pod}:{port} ({what}): {problem}")]
    Forward {
        what: String,
        namespace: String,
        pod: String,
        port: u16,
        problem: String,
    },
    #[error("cannot listen on 127.0.0.1 for the {what} port-forward: {source}")]
    Bind {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where to forward to.
#[derive(Debug, Clone)]
pub struct ForwardTarget {
    /// For messages: `RabbitMQ AMQP`, `gateway admin`.
    pub what: String,
    pub namespace: String,
    pub selector: String,
    pub port: u16,
}

/// A listening forward; dropping it stops accepting and closes open connections.
#[derive(Debug)]
pub struct PortForward {
    local: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl PortForward {
    /// Checks that a pod to forward to exists, then starts listening.
    pub async fn start(
        client: Client,
        target: ForwardTarget,
    ) -> Result<PortForward, PortForwardError> {
        running_pod(&client, &target).await?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| PortForwardError::Bind {
                what: target.what.clone(),
                source,
            })?;
        let local = listener
            .local_addr()
            .map_err(|source| PortForwardError::Bind {
                what: target.what.clone(),
                source,
            })?;
        let accept = tokio::spawn(accept_loop(listener, client, target));
        Ok(PortForward { local, accept })
    }

    /// `127.0.0.1:<port>`.
    pub fn local(&self) -> SocketAddr {
        self.local
    }
}

async fn accept_loop(listener: TcpListener, client: Client, target: ForwardTarget) {
    loop {
        let connection = match listener.accept().await {
            Ok((connection, _)) => connection,
            Err(error) => {
                tracing::warn!(what = %target.what, %error, "port-forward accept failed");
                continue;
            }
        };
        let (client, target) = (client.clone(), target.clone());
        tokio::spawn(async move {
            if let Err(error) = forward(connection, &client, &target).await {
                tracing::warn!(%error, "port-forward connection failed");
            }
        });
    }
}

async fn forward(
    mut connection: TcpStream,
    client: &Client,
    target: &ForwardTarget,
) -> Result<(), PortForwardError> {
    let pod = running_pod(client, target).await?;
    let failed = |problem: String| PortForwardError::Forward {
        what: target.what.clone(),
        namespace: target.namespace.clone(),
        pod: pod.clone(),
        port: target.port,
        problem,
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let mut forwarder = api
        .portforward(&pod, &[target.port])
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut upstream = forwarder
        .take_stream(target.port)
        .ok_or_else(|| failed("the forwarder returned no stream for the port".into()))?;
    let copied = tokio::io::copy_bidirectional(&mut connection, &mut upstream).await;
    drop(upstream);
    forwarder.abort();
    // A peer closing its side mid-stream is the normal end of an AMQP or HTTP connection.
    if let Err(error) = copied {
        tracing::debug!(%error, pod = %pod, "port-forward connection ended");
    }
    Ok(())
}

/// A running pod matching the target's selector.
async fn running_pod(client: &Client, target: &ForwardTarget) -> Result<String, PortForwardError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let pods = api
        .list(&ListParams::default().labels(&target.selector))
        .await
        .map_err(|source| PortForwardError::List {
            what: target.what.clone(),
            namespace: target.namespace.clone(),
            selector: target.selector.clone(),
            source,
        })?;
    pods.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .and_then(|p| p.metadata.name.clone())
        .ok_or_else(|| PortForwardError::NoPod {
            what: target.what.clone(),
            namespace: target.namespace.clone(),
            selector: target.selector.clone(),
        })
}
