//! Unit costs that explain the dispatch figure: one sqlx round trip to SQLite (the engine runs
//! every statement through sqlx's per-connection worker thread), and one template render
//! (`relentless_core::template::render`, as the dispatcher calls it for every message).

use crate::load::{BoxErr, url};
use relentless_core::template::{MergeContext, render};
use serde_json::{Value, json};
use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

pub async fn run(db: &Path) -> Result<Value, BoxErr> {
    let mut c = SqliteConnectOptions::from_str(&url(db))?
        .read_only(true)
        .connect()
        .await?;
    let n = 3_000;
    // Warm the statement cache.
    for _ in 0..100 {
        let _: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&mut c).await?;
    }
    let t = Instant::now();
    for _ in 0..n {
        let _: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&mut c).await?;
    }
    let select1_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let max_id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM leads")
        .fetch_one(&mut c)
        .await?;
    let t = Instant::now();
    for i in 0..n {
        let id = 1 + (i as i64 * 7919) % max_id.max(1);
        let _: Option<String> = sqlx::query_scalar("SELECT first_name FROM leads WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut c)
            .await?;
    }
    let lookup_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let body: String = sqlx::query_scalar(
        "SELECT body FROM templates WHERE channel = 'text' ORDER BY length(body) DESC LIMIT 1",
    )
    .fetch_one(&mut c)
    .await?;
    let ctx = MergeContext::sample();
    let t = Instant::now();
    for _ in 0..n {
        render(&body, &ctx, false).map_err(|e| e.message)?;
    }
    let render_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    Ok(json!({
        "sqlx_select1_us": select1_us,
        "sqlx_pk_lookup_us": lookup_us,
        "template_render_us": render_us,
        "template_len": body.len(),
    }))
}
