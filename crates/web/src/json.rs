//! JSON bodies read as `serde_json::Value` first, so a malformed body gets a clear 400 and
//! a wrong type gets a 422 naming the field (serde's own messages name neither).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::Value;

pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !ct.starts_with("application/json") && !ct.contains("+json") {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "Payload too large",
                    "the body is larger than the limit",
                )
            } else {
                ApiError::bad_request(e.body_text())
            }
        })?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        Ok(JsonBody(v))
    }
}

/// Reads an optional string field, naming it when it has the wrong type.
pub fn opt_str(v: &Value, field: &str) -> Result<Option<String>, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::field(field, "must be a string")),
    }
}

pub fn req_str(v: &Value, field: &str) -> Result<String, ApiError> {
    opt_str(v, field)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::field(field, "is required"))
}

/// An RFC 3339 instant field, as epoch ms.
pub fn opt_instant(v: &Value, field: &str) -> Result<Option<i64>, ApiError> {
    match opt_str(v, field)? {
        None => Ok(None),
        Some(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| Some(t.as_millisecond()))
            .map_err(|_| {
                ApiError::field(
                    field,
                    format!("'{s}' is not an RFC 3339 instant like 2026-11-27T15:00:00Z"),
                )
            }),
    }
}
