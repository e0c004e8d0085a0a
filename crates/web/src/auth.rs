//! Bearer-token authentication: the token's SHA-256 is looked up; deactivated users are out.

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
        if token.is_empty() || token.len() > 200 {
            return Err(ApiError::unauthorized());
        }
        match state.engine.authenticate(token).await? {
            Some(u) => Ok(CurrentUser(u)),
            None => Err(ApiError::unauthorized()),
        }
    }
}
