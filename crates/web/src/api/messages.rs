//! What the web app's quick actions need beyond the core resources: a text or email written
//! by the agent, live previews of templates and plans, and pausing a plan.

use super::iso;
use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::json::{JsonBody, opt_instant, opt_str, req_str};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use relentless_core::types::Channel;
use relentless_engine::messages::{ManualMessage, sample_lead};
use serde_json::{Value, json};

/// `POST /leads/{id}/messages {channel: text|email, template?, subject?, body?}`.
pub async fn send(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let channel: Channel = req_str(&body, "channel")?
        .parse()
        .map_err(|_| ApiError::field("channel", "must be text or email"))?;
    let m = ManualMessage {
        channel,
        template: opt_str(&body, "template")?.filter(|s| !s.is_empty()),
        subject: opt_str(&body, "subject")?,
        body: opt_str(&body, "body")?,
    };
    let sent = state.engine.send_message(&user.0, id, m).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "channel": sent.channel,
            "to": sent.to,
            "subject": sent.subject,
            "body": sent.body,
        })),
    ))
}

/// `POST /templates/preview {subject?, body, lead_id?}`: the template rendered for the lead
/// (or a sample lead); `422` naming `subject` or `body` when it cannot be.
pub async fn preview_template(
    State(state): State<AppState>,
    user: CurrentUser,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let lead_id = match body.get("lead_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| ApiError::field("lead_id", "must be a lead's id"))?,
        ),
    };
    let subject = opt_str(&body, "subject")?;
    let text = opt_str(&body, "body")?.unwrap_or_default();
    let (subject, text) = state
        .engine
        .preview(&user.0, lead_id, subject.as_deref(), &text)
        .await?;
    Ok(Json(json!({"subject": subject, "body": text})))
}

/// `POST /plans/preview {source | plan JSON, timezone?, start_at?}`: when each step of the
/// plan would fall for a sample lead in that zone, with the sending window applied.
pub async fn preview_plan(
    State(state): State<AppState>,
    _user: CurrentUser,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let plan = super::plans::plan_from_body(&body, None, &["timezone", "start_at"])?;
    let team = state.engine.team_ctx().await?;
    let mut lead = sample_lead(&team);
    if let Some(tz) = opt_str(&body, "timezone")? {
        relentless_core::validate::timezone(&tz).map_err(|m| ApiError::field("timezone", m))?;
        lead.timezone = tz;
    }
    let start = opt_instant(&body, "start_at")?.unwrap_or_else(relentless_engine::now_ms);
    let touches = relentless_engine::leads::plan_for(&plan, &team, &lead, start, None, &[]);
    Ok(Json(json!({
        "timezone": lead.timezone,
        "start_at": iso(start),
        "warnings": plan.warnings(),
        "touches": touches.iter().map(|t| json!({
            "step": t.step,
            "channel": t.channel,
            "template": t.template,
            "planned_at": iso(t.planned_at),
            "due_at": iso(t.due_at),
            "moved_by_window": t.due_at != t.planned_at,
        })).collect::<Vec<_>>(),
    })))
}

/// `PATCH /leads/{id}/enrollments/{plan} {state: paused|active}`.
pub async fn set_enrollment(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, plan)): Path<(i64, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let paused = match req_str(&body, "state")?.as_str() {
        "paused" => true,
        "active" => false,
        _ => return Err(ApiError::field("state", "must be paused or active")),
    };
    state.engine.pause(&user.0, id, &plan, paused).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The largest CSV file the app takes (the CLI has no limit).
pub const IMPORT_LIMIT: usize = 20 * 1024 * 1024;
/// How many rows an import answer lists (every rejected row is always listed).
const IMPORT_ROWS_SHOWN: usize = 200;

#[derive(serde::Deserialize)]
pub struct ImportQuery {
    plan: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

/// `POST /leads/import?plan=&dry_run=` with the CSV file as the body: with `dry_run` a preview
/// of what would be imported and every bad row by line, else the import itself.
pub async fn import(
    State(state): State<AppState>,
    user: CurrentUser,
    crate::extract::Query(q): crate::extract::Query<ImportQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    if body.is_empty() {
        return Err(ApiError::field("file", "the file is empty"));
    }
    // An agent's imported leads are theirs; an admin's are assigned by the usual rules.
    let owner = (!user.is_admin()).then_some(&user.0);
    let mut rows = vec![];
    let report = state
        .engine
        .import_csv(
            owner,
            &body,
            q.plan.as_deref().filter(|p| !p.is_empty()),
            q.dry_run,
            |r| {
                if r.result.is_err() || rows.len() < IMPORT_ROWS_SHOWN {
                    rows.push(json!({
                        "line": r.line,
                        "name": r.name,
                        "ok": r.result.is_ok(),
                        "merged": r.result.as_ref().ok().copied().unwrap_or(false),
                        "error": r.result.as_ref().err(),
                    }));
                }
            },
        )
        .await
        .map_err(|f| ApiError::field("file", f.to_string()))?;
    Ok(Json(json!({
        "dry_run": q.dry_run,
        "imported": report.imported,
        "merged": report.merged,
        "rejected": report.rejected,
        "rows": rows,
    })))
}
