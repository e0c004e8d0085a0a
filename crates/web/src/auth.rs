//! Who is asking. The API takes a bearer token (its SHA-256 is looked up); the web app's
//! pages and scripts send the session cookie instead, and every request that changes
//! something with a cookie must carry the session's CSRF token in `X-CSRF-Token` (forms: a
//! `csrf` field), so another site cannot make a signed-in browser act. Deactivated users are out.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use relentless_core::types::Role;
use relentless_store::User;

/// The web app's session cookie: HTTP-only, same-site, secure when served over https.
pub const SESSION_COOKIE: &str = "rl_session";
/// The header the app's scripts send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

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

/// The value of one cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Compares secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A session cookie's user and CSRF token, if the cookie names a live session.
pub async fn session_user(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<(User, String, String)>, ApiError> {
    let Some(id) = cookie(headers, SESSION_COOKIE).filter(|v| !v.is_empty() && v.len() <= 200)
    else {
        return Ok(None);
    };
    Ok(state
        .engine
        .session(id)
        .await?
        .map(|(u, csrf)| (u, csrf, id.to_string())))
}

fn changes_something(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) {
            let header = header.to_str().map_err(|_| ApiError::unauthorized())?;
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .ok_or_else(ApiError::unauthorized)?
                .trim();
            if token.is_empty() || token.len() > 200 {
                return Err(ApiError::unauthorized());
            }
            return match state.engine.authenticate(token).await? {
                Some(u) => Ok(CurrentUser(u)),
                None => Err(ApiError::unauthorized()),
            };
        }
        let Some((user, csrf, _)) = session_user(&parts.headers, state).await? else {
            return Err(ApiError::unauthorized());
        };
        if changes_something(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if !same_secret(sent, &csrf) {
                return Err(ApiError::forbidden(
                    "this request needs the page's CSRF token (reload the page and try again)",
                ));
            }
        }
        Ok(CurrentUser(user))
    }
}
