//! `POST /v1/chat/completions`: fault injection, then a deterministic answer.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use agentfleet_protocol::gateway::{
    AGENT_INDEX_HEADER, ChatRequest, ChatResponse, RequestRecord, TASK_ID_HEADER,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::answer::answer;
use crate::engine::Admission;
use crate::http::error::ApiError;
use crate::state::GatewayState;

pub async fn chat_completions(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let at_ms = unix_millis(SystemTime::now());
    let agent_index = header_str(&headers, AGENT_INDEX_HEADER).and_then(|v| v.parse().ok());
    let task_id = header_str(&headers, TASK_ID_HEADER).map(str::to_owned);
    // Served on its own task so a client that gives up mid-latency (its LLM timeout) neither
    // cancels the bookkeeping nor frees the capacity slot early: a real LLM keeps computing
    // after the caller hangs up, and the request log must still show the request.
    let served = tokio::spawn(async move {
        let outcome = serve(&state, &body, arrived, task_id.as_deref()).await;
        let (status, retry_after_secs) = match &outcome {
            Ok(_) => (200, None),
            Err(error) => (error.status.as_u16(), error.retry_after_secs),
        };
        let took = arrived.elapsed();
        state.record(
            RequestRecord {
                at_ms,
                agent_index,
                task_id,
                status,
                retry_after_secs,
                latency_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            },
            took,
        );
        outcome
    })
    .await;
    match served {
        Ok(Ok(response)) => Json(response).into_response(),
        Ok(Err(error)) => error.into_response(),
        Err(join_error) => {
            ApiError::internal(format!("the gateway failed while answering: {join_error}"))
                .into_response()
        }
    }
}

async fn serve(
    state: &GatewayState,
    body: &[u8],
    arrived: Instant,
    task_id: Option<&str>,
) -> Result<ChatResponse, ApiError> {
    // A malformed request is the caller's bug whatever the fault profile says, so it is reported
    // before the dice are rolled (and consumes none of a seeded sequence).
    let request = parse_request(body)?;
    let latency = match state.engine.admit(arrived, task_id) {
        Admission::Rejected(rejection) => return Err(ApiError::from_rejection(rejection)),
        Admission::Admitted { latency, guard } => {
            tokio::time::sleep(latency).await;
            drop(guard);
            latency
        }
        // Answered at once when released, outside the next profile's faults: its caller may be
        // long gone (killed while it waited), and deciding it again would count it as an answer
        // of a new hang and draw from a seeded profile's dice at an unpredictable moment.
        Admission::Held(held) => {
            tracing::debug!(task_id, "request held by a hang");
            let waited = arrived.elapsed();
            held.released().await;
            waited
        }
    };
    tracing::debug!(
        latency_ms = latency.as_millis() as u64,
        "answering chat request"
    );
    let response = answer(&request, unix_millis(SystemTime::now()) / 1000);
    state.metrics.add_tokens(response.usage.total_tokens);
    Ok(response)
}

fn parse_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let request: ChatRequest = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(
            format!(
                "the request body is not a valid chat completion request ({error}); send JSON like {{\"model\": \"...\", \"messages\": [{{\"role\": \"user\", \"content\": \"...\"}}]}}"
            ),
            None,
        )
    })?;
    if request.model.trim().is_empty() {
        return Err(ApiError::bad_request(
            "model: must not be empty",
            Some("model".to_owned()),
        ));
    }
    if request.messages.is_empty() {
        return Err(ApiError::bad_request(
            "messages: must contain at least one message",
            Some("messages".to_owned()),
        ));
    }
    Ok(request)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn unix_millis(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
