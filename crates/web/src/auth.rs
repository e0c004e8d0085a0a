//! Who is asking. The API takes a bearer token (its SHA-256 is looked up); the web app's
//! pages and scripts send the session cookie instead, and every request that changes
//! something with a cookie must carry the session's CSRF token in `X-CSRF-Token` (forms: a
//! `csrf` field), so another site cannot make a signed-in browser act. Deactivated users are out.
//! Wrong tokens are counted per client address (see `limits`); a token is never logged.

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
            let header = header.to_str().unwrap_or("");
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .unwrap_or("")
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
            return Err(ApiError::unauthorized());
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
