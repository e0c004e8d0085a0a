//! `/api/v1/tasks`: the agent's call, video, reply and follow-up tasks.

use super::{iso, page_limit};
use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::json::{JsonBody, opt_str, req_str};
use axum::Json;
use axum::extract::State;
use relentless_core::types::*;
use relentless_store::{Task, TaskFilter};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn task_json(t: &Task) -> Value {
    json!({
        "id": t.id,
        "lead_id": t.lead_id,
        "kind": t.kind,
        "due_at": iso(t.due_at),
        "script": t.script,
        "voicemail": t.voicemail,
        "status": t.status,
        "outcome": t.outcome,
        "note": t.note,
        "touch_id": t.touch_id,
        "created_at": iso(t.created_at),
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    assignee: Option<String>,
    status: Option<String>,
    lead_id: Option<i64>,
    limit: Option<i64>,
    cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit);
    let mut f = TaskFilter {
        limit,
        lead_id: q.lead_id,
        ..Default::default()
    };
    f.status = match q.status.as_deref().unwrap_or("open") {
        "all" => None,
        s => Some(
            s.parse::<TaskStatus>()
                .map_err(|e| ApiError::field("status", format!("{e} all")))?,
        ),
    };
    f.assignee_id = match q.assignee.as_deref().unwrap_or("me") {
        "me" => Some(user.0.id),
        "all" => {
            user.require_admin()?;
            None
        }
        key => {
            let mut tx = state.engine.store.read().await?;
            let u = relentless_engine::leads::find_user(tx.as_mut(), key)
                .await?
                .ok_or_else(|| ApiError::field("assignee", format!("no user '{key}'")))?;
            if u.id != user.0.id {
                user.require_admin()?;
            }
            Some(u.id)
        }
    };
    if let Some(c) = &q.cursor {
        let (due, id) = c
            .split_once('_')
            .and_then(|(d, i)| Some((d.parse().ok()?, i.parse().ok()?)))
            .ok_or_else(|| ApiError::field("cursor", "is not a cursor from a previous page"))?;
        f.after = Some((due, id));
    }
    let items = state.engine.tasks(&f).await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|t| format!("{}_{}", t.due_at, t.id)))
        .flatten();
    Ok(Json(
        json!({"items": items.iter().map(task_json).collect::<Vec<_>>(), "next_cursor": next}),
    ))
}

pub async fn complete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let outcome: Outcome = req_str(&body, "outcome")?
        .parse()
        .map_err(|e: UnknownVariant| ApiError::field("outcome", e.to_string()))?;
    let note = opt_str(&body, "note")?;
    // A video task completes with the recorded video: the lead is sent its page at once.
    let video_id =
        match body.get("video_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                ApiError::field("video_id", "must be the id of an uploaded video")
            })?),
        };
    if let Some(v) = video_id {
        let t = state.engine.task(&user.0, id).await?;
        if t.kind != TaskKind::Video {
            return Err(ApiError::field(
                "video_id",
                "only a video task takes a video",
            ));
        }
        let url = state.engine.send_video(&user.0, t.lead_id, v, None).await?;
        let t = state
            .engine
            .complete_task(&user.0, id, outcome, note)
            .await?;
        let mut out = task_json(&t);
        out["video_url"] = json!(url);
        return Ok(Json(out));
    }
    let t = state
        .engine
        .complete_task(&user.0, id, outcome, note)
        .await?;
    Ok(Json(task_json(&t)))
}
