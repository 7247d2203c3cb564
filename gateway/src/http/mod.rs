//! The HTTP surface: OpenAI-compatible API, admin API, metrics and health.

mod admin;
mod chat;
mod error;
mod ops;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::state::GatewayState;

pub use admin::{OutageRequest, REQUEST_LOG_DROPPED_HEADER};
pub use error::ApiError;

/// All routes, bound to `state`.
pub fn router(state: Arc<GatewayState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/models", get(ops::models))
        .route(
            "/admin/faults",
            get(admin::get_faults).put(admin::put_faults),
        )
        .route("/admin/outage", post(admin::post_outage))
        .route("/admin/held", get(admin::get_held))
        .route(
            "/admin/requests",
            get(admin::get_requests).delete(admin::delete_requests),
        )
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .fallback(ops::not_found)
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
/// Requests held by a hang are answered then too: a graceful shutdown that waited for them
/// would wait until the process is killed.
pub async fn serve(
    listener: TcpListener,
    state: Arc<GatewayState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let engine_state = Arc::clone(&state);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            engine_state.engine.stop_holding();
        })
        .await
}
