//! `/api/v1/outbox` and `/api/v1/reports/summary`.

use super::{iso, page_limit};
use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
pub struct OutboxQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Messages recorded instead of delivered (no provider configured, or demo data).
pub async fn outbox(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<OutboxQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit);
    let before = q
        .cursor
        .as_ref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::field("cursor", "is not a cursor from a previous page"))
        })
        .transpose()?;
    let mut tx = state.engine.store.read().await?;
    let items = tx
        .outbox((!user.is_admin()).then_some(user.0.id), before, limit)
        .await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|m| m.id.to_string()))
        .flatten();
    Ok(Json(json!({
        "items": items.iter().map(|m| json!({
            "id": m.id,
            "channel": m.channel,
            "to": m.to_addr,
            "subject": m.subject,
            "body": m.body,
            "status": m.status,
            "lead_id": m.lead_id,
            "touch_id": m.touch_id,
            "created_at": iso(m.created_at),
        })).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

#[derive(Deserialize)]
pub struct SummaryQuery {
    since: Option<String>,
}

pub async fn summary(
    State(state): State<AppState>,
    _user: CurrentUser,
    Query(q): Query<SummaryQuery>,
) -> ApiResult<Json<Value>> {
    let since = match q.since.as_deref() {
        None | Some("") => relentless_engine::now_ms() - 30 * 86_400_000,
        Some(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond())
            .or_else(|_| s.parse::<jiff::civil::Date>().map(|d| d.to_zoned_datetime(jiff::tz::TimeZone::UTC).map(|z| z.timestamp().as_millisecond()).unwrap_or(0)))
            .map_err(|_| ApiError::field("since", format!("'{s}' is not an instant like 2026-11-01T00:00:00Z or a date like 2026-11-01")))?,
    };
    Ok(Json(
        serde_json::to_value(&*state.engine.report_summary(since).await?).unwrap_or_default(),
    ))
}
