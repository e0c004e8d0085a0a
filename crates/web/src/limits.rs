//! Fixed-window rate limits per key (intake token, client address, sign-in), in memory.
//! A refused request gets `429` with `Retry-After`.

use crate::error::ApiError;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Limits {
    window: Duration,
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: Duration::from_secs(60),
            hits: Mutex::new(HashMap::new()),
        }
    }
}

impl Limits {
    /// Counts a hit on `key`; refuses past `per_window` hits in the current window.
    pub fn check(&self, key: &str, per_window: u32) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if hits.len() > 100_000 {
            hits.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = hits.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > per_window {
            let retry = self
                .window
                .saturating_sub(now.duration_since(entry.0))
                .as_secs()
                .max(1);
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
