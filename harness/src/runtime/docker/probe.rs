//! Network probes from a given position: a short-lived container attached to exactly the given
//! networks makes one TCP connection (`bash`'s `/dev/tcp` under `timeout`), and a listener the
//! harness owns stands in for "an address outside the agents' networks" without sending any
//! traffic off this machine.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::Scope;
use crate::docker::ContainerSpec;
use crate::runtime::{ProbeOutcome, ProbeTarget, RuntimeError};

/// Seconds a connection attempt may take before it counts as unreachable.
const CONNECT_TIMEOUT_SECS: u32 = 3;
const PROBE_DEADLINE: Duration = Duration::from_secs(30);

/// Connects to `target` from a container attached to exactly `networks` (first one at create).
pub async fn probe_from(
    scope: &Scope,
    toolbox_image: &str,
    networks: &[&str],
    target: &ProbeTarget,
) -> Result<ProbeOutcome, RuntimeError> {
    let script = format!(
        "timeout {CONNECT_TIMEOUT_SECS} bash -c '</dev/tcp/$PROBE_HOST/$PROBE_PORT' && echo connected"
    );
    let mut spec = ContainerSpec::new(
        format!("probe-{}-{}", target.role, counter()),
        toolbox_image,
    )
    .entrypoint(["bash", "-c", script.as_str()])
    .cmd(Vec::<String>::new())
    .env("PROBE_HOST", &target.host)
    .env("PROBE_PORT", target.port.to_string())
    .memory_mib(64);
    for network in networks {
        spec = spec.network(*network, Vec::<String>::new());
    }
    let failed = |e: crate::docker::DockerError| {
        RuntimeError::Probe(format!(
            "{} {}:{}: {e}",
            target.role, target.host, target.port
        ))
    };
    let container = scope.run(spec).await.map_err(failed)?;
    let status = container.wait_exit(PROBE_DEADLINE).await;
    let output = container.logs().await.unwrap_or_default();
    let _ = container.remove().await;
    let status = status.map_err(failed)?;
    let code = status.exit_code.unwrap_or(-1);
    let detail = match code {
        0 => "TCP connection established".to_owned(),
        124 => format!("no answer within {CONNECT_TIMEOUT_SECS} s (timeout)"),
        _ => format!("connection failed (exit {code}): {}", output.trim()),
    };
    Ok(ProbeOutcome {
        target: target.clone(),
        connected: code == 0,
        detail,
    })
}

/// A TCP listener on one of the host's addresses, accepting and dropping connections, so a
/// probe has something that *would* answer if it were routable.
#[derive(Debug)]
pub struct OutsideListener {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl OutsideListener {
    pub async fn bind(ip: IpAddr) -> Result<OutsideListener, RuntimeError> {
        let listener = TcpListener::bind((ip, 0)).await.map_err(|e| {
            RuntimeError::Setup(format!(
                "cannot listen on {ip} for the outside-address probe: {e}"
            ))
        })?;
        let address = listener
            .local_addr()
            .map_err(|e| RuntimeError::Setup(format!("listener on {ip}: {e}")))?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _peer)) = listener.accept().await {
                drop(stream);
            }
        });
        Ok(OutsideListener { address, task })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for OutsideListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn counter() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
