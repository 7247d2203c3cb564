//! `gateway`: the LLM gateway simulator binary. See the library docs for what it simulates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use agentfleet_gateway::profile_source::{FAULTS_ENV, FAULTS_FILE_ENV, ProfileSource};
use agentfleet_gateway::{DEFAULT_REQUEST_LOG_CAPACITY, GatewayState, serve};
use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// OpenAI-compatible LLM gateway simulator with fault injection.
#[derive(Debug, Parser)]
#[command(name = "gateway", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,

    /// JSON file with the initial fault profile.
    #[arg(long = "faults", env = FAULTS_FILE_ENV, value_name = "FILE", conflicts_with = "faults_json")]
    faults_file: Option<PathBuf>,

    /// Initial fault profile as inline JSON.
    #[arg(long = "faults-json", env = FAULTS_ENV, value_name = "JSON")]
    faults_json: Option<String>,

    /// Request log bound; past it the oldest records are dropped (and counted).
    #[arg(
        long,
        env = "GATEWAY_REQUEST_LOG_CAPACITY",
        default_value_t = DEFAULT_REQUEST_LOG_CAPACITY as u64,
        value_parser = clap::value_parser!(u64).range(1..),
    )]
    request_log_capacity: u64,

    /// Log filter (e.g. `info`, `agentfleet_gateway=debug`).
    #[arg(long, env = "GATEWAY_LOG", default_value = "info")]
    log: String,
}

impl Args {
    fn profile_source(&self) -> ProfileSource {
        match (&self.faults_file, &self.faults_json) {
            (Some(path), _) => ProfileSource::File(path.clone()),
            (None, Some(json)) => ProfileSource::Inline(json.clone()),
            (None, None) => ProfileSource::Default,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_new(&args.log)
        .with_context(|| format!("invalid log filter {:?} (--log / GATEWAY_LOG)", args.log))?;
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .init();

    let profile = args.profile_source().load()?;
    let capacity = usize::try_from(args.request_log_capacity)
        .context("--request-log-capacity does not fit in memory on this platform")?;
    let state = Arc::new(GatewayState::new(profile.clone(), capacity)?);
    let listener = TcpListener::bind(args.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (--listen / GATEWAY_LISTEN)",
            args.listen
        )
    })?;
    tracing::info!(
        listen = %listener.local_addr()?,
        request_log_capacity = capacity,
        profile = %serde_json::to_string(&profile)?,
        "gateway started"
    );
    let terminate =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    serve(listener, state, shutdown_signal(terminate)).await?;
    tracing::info!("gateway stopped");
    Ok(())
}

/// Resolves on SIGTERM (Kubernetes, `docker stop`) or SIGINT (Ctrl-C). The SIGTERM handler is
/// installed by the caller, before serving, so a failure to install it stops start-up instead
/// of leaving a gateway that ignores `docker stop` until SIGKILL.
async fn shutdown_signal(mut terminate: Signal) {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot watch SIGINT; only SIGTERM stops the gateway gracefully");
            std::future::pending::<()>().await;
        }
    };
    let signal = tokio::select! {
        () = interrupt => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    };
    tracing::info!(signal, "shutting down");
}
