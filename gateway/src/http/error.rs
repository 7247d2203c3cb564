//! Error answers in the OpenAI shape (`{"error": {"message", "type", "param", "code"}}`), so an
//! agent's real OpenAI client parses them the same way it would in production.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::decision::{RejectReason, Rejection};
use crate::validate::InvalidProfile;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'a str>,
    code: Option<&'static str>,
}

impl ApiError {
    /// 400 for a request the client must fix.
    pub fn bad_request(message: impl Into<String>, param: Option<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param,
            retry_after_secs: None,
        }
    }

    /// 400 for a fault profile or outage that parsed but failed validation.
    pub fn invalid_profile(context: &str, error: InvalidProfile) -> Self {
        Self::bad_request(format!("{context}: {error}"), Some(error.field))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            param: None,
            retry_after_secs: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            param: None,
            retry_after_secs: None,
        }
    }

    /// The answer to a request refused by fault injection.
    pub fn from_rejection(rejection: Rejection) -> Self {
        let message = match rejection.reason {
            RejectReason::Outage => "simulated outage: the LLM gateway is unavailable",
            RejectReason::Capacity => "simulated capacity limit: too many requests in flight",
            RejectReason::Injected => "simulated fault injected by the gateway's fault profile",
        };
        Self {
            // Validation keeps statuses within 400..=599, so this cannot fail in practice.
            status: StatusCode::from_u16(rejection.status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            message: message.to_owned(),
            param: None,
            retry_after_secs: rejection.retry_after_secs,
        }
    }

    fn kind_and_code(&self) -> (&'static str, Option<&'static str>) {
        match self.status {
            StatusCode::TOO_MANY_REQUESTS => ("rate_limit_error", Some("rate_limit_exceeded")),
            StatusCode::NOT_FOUND => ("invalid_request_error", Some("not_found")),
            status if status.is_server_error() => ("server_error", None),
            _ => ("invalid_request_error", None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (kind, code) = self.kind_and_code();
        let body = ErrorBody {
            error: ErrorDetail {
                message: &self.message,
                kind,
                param: self.param.as_deref(),
                code,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
