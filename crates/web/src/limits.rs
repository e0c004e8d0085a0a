//! Limits that keep one client from hurting the others (issue 7):
//! - fixed-window rate limits per key (intake token, client address, failed sign-ins), counted
//!   in the database so every process behind a load balancer shares them; a refused request
//!   gets `429` with `Retry-After`;
//! - slow clients: headers must arrive within [`Limits::header_read`], a body may not stall for
//!   more than [`Limits::body_idle`] nor take longer than [`Limits::body_deadline`] in all;
//! - at most [`Limits::sse_per_user`] notification streams per user in one process.

use crate::error::ApiError;
use axum::http::StatusCode;
use relentless_store::DynStore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The window every rate limit counts in.
pub const WINDOW_MS: i64 = 60_000;

/// The limits one server applies; `Default` is what `relentless serve` uses.
pub struct Limits {
    /// Requests with a wrong API token (or a bad webhook credential) per client address per
    /// minute; past it, every request from that address needing one is refused with 429 until
    /// the window ends — even with a right token, so guessing cannot go on.
    pub auth_failures_per_ip: u32,
    /// Notification streams (SSE) open at once per user, in this process.
    pub sse_per_user: usize,
    /// Time for a client to send the request line and headers.
    pub header_read: Duration,
    /// Longest pause while a request body is being sent.
    pub body_idle: Duration,
    /// Longest time for a whole request body (video uploads: [`Limits::upload_deadline`]).
    pub body_deadline: Duration,
    /// Longest time for a video upload's body.
    pub upload_deadline: Duration,
    /// The streams open now, per user (leave it `Default`).
    pub streams: OpenStreams,
}

/// Notification streams open per user in this process.
#[derive(Default)]
pub struct OpenStreams(Mutex<HashMap<i64, usize>>);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            auth_failures_per_ip: 20,
            sse_per_user: 8,
            header_read: Duration::from_secs(10),
            body_idle: Duration::from_secs(10),
            body_deadline: Duration::from_secs(30),
            upload_deadline: Duration::from_secs(600),
            streams: OpenStreams::default(),
        }
    }
}

fn window(now: i64) -> (i64, u64) {
    let start = now - now.rem_euclid(WINDOW_MS);
    (start, ((start + WINDOW_MS - now) / 1000).max(1) as u64)
}

fn too_many(retry: u64) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        format!("slow down: try again in {retry} s"),
    );
    e.retry_after = Some(retry);
    e
}

/// One open notification stream; the count goes down when it is dropped.
pub struct StreamSlot {
    limits: Arc<Limits>,
    user: i64,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut m = self
            .limits
            .streams
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

impl Limits {
    /// Counts a hit on `key`; refuses past `per_window` hits in the current minute.
    pub async fn check(
        &self,
        store: &DynStore,
        key: &str,
        per_window: u32,
    ) -> Result<(), ApiError> {
        let (start, retry) = window(relentless_engine::now_ms());
        let mut tx = store.write().await?;
        let hits = tx.rate_hit(key, start).await?;
        tx.commit().await?;
        if hits > per_window as i64 {
            return Err(too_many(retry));
        }
        Ok(())
    }

    /// Refuses (429) when `key` already has `per_window` hits this minute; counts nothing.
    pub async fn refuse_if_over(
        &self,
        store: &DynStore,
        key: &str,
        per_window: u32,
    ) -> Result<(), ApiError> {
        let (start, retry) = window(relentless_engine::now_ms());
        let mut tx = store.read().await?;
        if tx.rate_count(key, start).await? >= per_window as i64 {
            return Err(too_many(retry));
        }
        Ok(())
    }

    /// Counts a hit on `key` without refusing anything (a failure to remember).
    pub async fn count(&self, store: &DynStore, key: &str) -> Result<(), ApiError> {
        let (start, _) = window(relentless_engine::now_ms());
        let mut tx = store.write().await?;
        tx.rate_hit(key, start).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The key failed credentials are counted under for a client address.
    pub fn auth_key(ip: Option<std::net::IpAddr>) -> String {
        match ip {
            Some(ip) => format!("auth-fail-ip:{ip}"),
            None => "auth-fail-ip:unknown".into(),
        }
    }

    /// Refuses a request from an address that has failed too many credentials this minute.
    pub async fn refuse_failing_ip(
        &self,
        store: &DynStore,
        ip: Option<std::net::IpAddr>,
    ) -> Result<(), ApiError> {
        self.refuse_if_over(store, &Self::auth_key(ip), self.auth_failures_per_ip)
            .await
    }

    /// Remembers a failed credential from an address.
    pub async fn failed_credential(&self, store: &DynStore, ip: Option<std::net::IpAddr>) {
        if let Err(e) = self.count(store, &Self::auth_key(ip)).await {
            tracing::warn!(error = ?e.detail, "failed credential not counted");
        }
    }

    /// Takes one of the user's notification-stream slots, or 429 when all are taken.
    pub fn open_stream(self: &Arc<Self>, user: i64) -> Result<StreamSlot, ApiError> {
        let mut m = self.streams.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(user).or_insert(0);
        if *n >= self.sse_per_user {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                format!(
                    "at most {} notification streams per user are open at once; close one",
                    self.sse_per_user
                ),
            );
            e.retry_after = Some(5);
            return Err(e);
        }
        *n += 1;
        Ok(StreamSlot {
            limits: self.clone(),
            user,
        })
    }
}
