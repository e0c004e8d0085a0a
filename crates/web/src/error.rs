//! One error type for every handler: logs the detail, shows the client a clean
//! `application/problem+json` (RFC 9457) with an `errors: [{field, message}]` list for
//! validation failures.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use relentless_engine::{Error, FieldError};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            title,
            detail: detail.into(),
            errors: vec![],
            retry_after: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "Bad request", detail)
    }
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "a valid bearer token is required",
        )
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "Forbidden", detail)
    }
    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Not found", "no such resource")
    }
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            title: "Invalid input",
            detail,
            errors,
            retry_after: None,
        }
    }
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::invalid(vec![FieldError::new(field, message)])
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(errors) => ApiError::invalid(errors),
            Error::NotFound => ApiError::not_found(),
            Error::Forbidden => ApiError::forbidden("you may not do this"),
            Error::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "Conflict", m),
            // A full disk or a read-only database: say so plainly; the transaction was rolled
            // back, nothing was saved (issue 7).
            Error::Store(s) if s.is_disk_full() => {
                tracing::error!(error = %s, "the database's disk is full");
                let mut e = ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "Disk full",
                    "the server's disk is full: nothing was saved; free some space and try again",
                );
                e.retry_after = Some(60);
                e
            }
            Error::Store(s) if s.is_read_only() => {
                tracing::error!(error = %s, "the database is read-only");
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Database read-only",
                    "the database cannot be written (read-only file or file system): nothing was saved",
                );
                e.retry_after = Some(60);
                e
            }
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error",
                    "something went wrong on our side; it has been logged",
                )
            }
        }
    }
}

impl From<relentless_store::StoreError> for ApiError {
    fn from(e: relentless_store::StoreError) -> Self {
        Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = serde_json::to_value(&self.errors).unwrap_or_default();
        }
        let mut res = (self.status, body.to_string()).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
