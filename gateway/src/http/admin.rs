//! The admin API the harness drives: read and replace the fault profile, start an outage now,
//! list the requests a hang holds, read and clear the request log.

use std::sync::Arc;
use std::time::Instant;

use agentfleet_protocol::gateway::{FaultProfile, HeldRequests, RequestRecord};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::http::error::ApiError;
use crate::state::GatewayState;

/// Response header of `GET /admin/requests`: records dropped since start because the log was
/// full. Non-zero means the array is missing the oldest requests.
pub const REQUEST_LOG_DROPPED_HEADER: &str = "x-request-log-dropped";

/// Body of `POST /admin/outage`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageRequest {
    pub duration_ms: u64,
    #[serde(default = "OutageRequest::default_status")]
    pub status: u16,
}

impl OutageRequest {
    fn default_status() -> u16 {
        503
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    /// Only records that arrived at or after this Unix time in milliseconds.
    #[serde(default)]
    since_ms: u64,
}

pub async fn get_faults(State(state): State<Arc<GatewayState>>) -> Json<FaultProfile> {
    Json(state.engine.profile())
}

pub async fn put_faults(
    State(state): State<Arc<GatewayState>>,
    body: Bytes,
) -> Result<Json<FaultProfile>, ApiError> {
    let profile: FaultProfile = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(
            format!("the body is not a valid FaultProfile JSON object: {error}"),
            None,
        )
    })?;
    state
        .engine
        .replace(profile.clone(), Instant::now())
        .map_err(|error| ApiError::invalid_profile("invalid fault profile", error))?;
    tracing::info!(profile = %to_json(&profile), "fault profile replaced");
    Ok(Json(profile))
}

pub async fn post_outage(
    State(state): State<Arc<GatewayState>>,
    body: Bytes,
) -> Result<Json<FaultProfile>, ApiError> {
    let request: OutageRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(
            format!(
                "the body is not a valid outage request ({error}); send {{\"duration_ms\": 5000, \"status\": 503}}"
            ),
            None,
        )
    })?;
    let profile = state
        .engine
        .start_outage(request.duration_ms, request.status, Instant::now())
        .map_err(|error| ApiError::invalid_profile("invalid outage", error))?;
    tracing::info!(
        duration_ms = request.duration_ms,
        status = request.status,
        "outage started"
    );
    Ok(Json(profile))
}

/// The requests held open by the profile's hangs right now, by task id: how a test knows an
/// agent has reached the call it wanted to freeze.
pub async fn get_held(State(state): State<Arc<GatewayState>>) -> Json<HeldRequests> {
    Json(state.engine.held())
}

pub async fn get_requests(
    State(state): State<Arc<GatewayState>>,
    query: Result<Query<RequestsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(
            format!("invalid query ({rejection}); the only parameter is since_ms=<unix millis>"),
            Some("since_ms".to_owned()),
        )
    })?;
    let records: Vec<RequestRecord> = state.request_log.since(query.since_ms);
    let mut response = Json(records).into_response();
    response.headers_mut().insert(
        HeaderName::from_static(REQUEST_LOG_DROPPED_HEADER),
        HeaderValue::from(state.request_log.dropped()),
    );
    Ok(response)
}

pub async fn delete_requests(State(state): State<Arc<GatewayState>>) -> StatusCode {
    state.request_log.clear();
    tracing::info!("request log cleared");
    StatusCode::NO_CONTENT
}

fn to_json(profile: &FaultProfile) -> String {
    serde_json::to_string(profile).expect("a FaultProfile always serializes")
}
