//! Fixed-window rate limits per key (intake token, client address), counted in the database so
//! every process behind a load balancer shares them. A refused request gets `429` with
//! `Retry-After`.

use crate::error::ApiError;
use axum::http::StatusCode;
use relentless_store::DynStore;

/// The window every limit counts in.
pub const WINDOW_MS: i64 = 60_000;

#[derive(Default)]
pub struct Limits;

impl Limits {
    /// Counts a hit on `key`; refuses past `per_window` hits in the current minute.
    pub async fn check(
        &self,
        store: &DynStore,
        key: &str,
        per_window: u32,
    ) -> Result<(), ApiError> {
        let now = relentless_engine::now_ms();
        let window_start = now - now.rem_euclid(WINDOW_MS);
        let mut tx = store.write().await?;
        let hits = tx.rate_hit(key, window_start).await?;
        tx.commit().await?;
        if hits > per_window as i64 {
            let retry = ((window_start + WINDOW_MS - now) / 1000).max(1) as u64;
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                format!("slow down: try again in {retry} s"),
            );
            e.retry_after = Some(retry);
            return Err(e);
        }
        Ok(())
    }
}

/// The client's address, when the server was started with connect info (always, outside of
/// router-only tests): the key of per-address limits.
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}
