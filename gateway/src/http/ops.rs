//! Health, metrics and the model list.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::answer::MODELS;
use crate::http::error::ApiError;
use crate::metrics::CONTENT_TYPE;
use crate::state::GatewayState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn metrics(State(state): State<Arc<GatewayState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(state.engine.in_flight()),
    )
}

#[derive(Debug, Serialize)]
pub struct ModelList {
    object: &'static str,
    data: Vec<Model>,
}

#[derive(Debug, Serialize)]
struct Model {
    id: &'static str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

pub async fn models() -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: MODELS
            .iter()
            .map(|id| Model {
                id,
                object: "model",
                created: 0,
                owned_by: "agentfleet",
            })
            .collect(),
    })
}

pub async fn not_found() -> ApiError {
    ApiError::not_found(
        "no such endpoint; see POST /v1/chat/completions, GET /v1/models, /admin/faults, /admin/outage, /admin/held, /admin/requests, /metrics, /healthz",
    )
}
