//! Bearer-token authentication: the token's SHA-256 is looked up; deactivated users are out.
//! Wrong tokens are counted per client address (see `limits`); the token itself is never logged.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use relentless_core::types::Role;
use relentless_store::User;

/// The signed-in user of a request.
pub struct CurrentUser(pub User);

impl CurrentUser {
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("only an admin can do this"))
        }
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(ApiError::unauthorized)?
            .trim();
        // An address that has presented too many wrong tokens this minute is refused before
        // its token is even looked at: guessing stops there (429, Retry-After).
        let ip = client_ip(parts);
        state
            .limits
            .refuse_failing_ip(&state.engine.store, ip)
            .await?;
        if !token.is_empty()
            && token.len() <= 200
            && let Some(u) = state.engine.authenticate(token).await?
        {
            return Ok(CurrentUser(u));
        }
        state
            .limits
            .failed_credential(&state.engine.store, ip)
            .await;
        Err(ApiError::unauthorized())
    }
}

/// The client's address, when the server was started with connect info.
pub fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The client's address as an extractor (None when unknown).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}
