//! `/api/v1/leads` and everything under a lead.

use super::{iso, iso_opt, page_limit};
use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::json::{JsonBody, opt_instant, opt_str, req_str};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use relentless_core::types::*;
use relentless_core::validate;
use relentless_engine::leads::{ActivityInput, LeadInput, Origin};
use relentless_store::{Enrollment, Lead, LeadFilter, Tx, User};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// A lead as the API shows it (SPEC §6).
pub fn lead_json(l: &Lead, users: &HashMap<i64, User>, enrollments: &[Enrollment]) -> Value {
    json!({
        "id": l.id,
        "first_name": l.first_name,
        "last_name": l.last_name,
        "email": l.email,
        "phone": l.phone,
        "timezone": l.timezone,
        "region": l.region,
        "source": l.source,
        "level": l.level,
        "stage": l.stage,
        "preferred_channel": l.preferred_channel,
        "assigned_to": l.assigned_to.and_then(|id| users.get(&id)).map(|u| u.email.clone()),
        "external_id": l.external_id,
        "tags": l.tags,
        "notes": l.notes,
        "property_address": l.property_address,
        "sms_opt_out": l.sms_opt_out,
        "email_opt_out": l.email_opt_out,
        "do_not_call": l.do_not_call,
        "email_bad": l.email_bad,
        "phone_bad": l.phone_bad,
        "attempts": l.attempts,
        "created_at": iso(l.created_at),
        "updated_at": iso(l.updated_at),
        "next_touch_at": iso_opt(l.next_touch_at),
        "enrollments": enrollments.iter().filter(|e| e.lead_id == l.id).map(|e| json!({
            "plan": e.plan,
            "state": e.state,
            "reason": e.reason,
            "started_at": iso(e.started_at),
            "next_touch_at": iso_opt(e.next_touch_at),
        })).collect::<Vec<_>>(),
    })
}

async fn users_map(tx: &mut dyn Tx) -> ApiResult<HashMap<i64, User>> {
    Ok(tx.users().await?.into_iter().map(|u| (u.id, u)).collect())
}

async fn render_lead(state: &AppState, lead: &Lead) -> ApiResult<Value> {
    let mut tx = state.engine.store.read().await?;
    let users = users_map(tx.as_mut()).await?;
    let enrollments = tx.enrollments(lead.id).await?;
    Ok(lead_json(lead, &users, &enrollments))
}

#[derive(Deserialize)]
pub struct CreateQuery {
    plan: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<CreateQuery>,
    JsonBody(body): JsonBody,
) -> ApiResult<impl IntoResponse> {
    let input = LeadInput::from_json(&body)?;
    let plan = q.plan.or(opt_str(&body, "plan").ok().flatten());
    let created = state
        .engine
        .create_lead(Some(&user.0), input, Origin::Api, plan.as_deref())
        .await?;
    let mut v = render_lead(&state, &created.lead).await?;
    v["merged"] = json!(created.merged);
    Ok((
        if created.merged {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(v),
    ))
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    level: Option<String>,
    stage: Option<String>,
    source: Option<String>,
    assigned_to: Option<String>,
    below_attempts: Option<i64>,
    /// Only leads with no touch in this many days.
    no_touch_days: Option<i64>,
    limit: Option<i64>,
    cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit);
    let mut f = LeadFilter {
        limit,
        ..Default::default()
    };
    let mut tx = state.engine.store.read().await?;
    let team = tx
        .team()
        .await?
        .map(|t| t.country)
        .unwrap_or_else(|| "US".into());
    if let Some(s) = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        // An email, a phone in any format, or words of a name.
        if s.contains('@') {
            f.email_key = Some(s.to_lowercase());
        } else if s.chars().filter(|c| c.is_ascii_digit()).count() >= 7
            && s.chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            f.phone = Some(validate::phone_search_key(s, &team).unwrap_or_else(|| s.to_string()));
        } else {
            f.name_query = Some(s.to_string());
        }
    }
    if let Some(l) = &q.level {
        f.level = Some(
            l.parse()
                .map_err(|e: UnknownVariant| ApiError::field("level", e.to_string()))?,
        );
    }
    if let Some(s) = &q.stage {
        f.stage = Some(
            s.parse()
                .map_err(|e: UnknownVariant| ApiError::field("stage", e.to_string()))?,
        );
    }
    f.source = q.source.clone();
    f.below_attempts = q.below_attempts;
    if let Some(d) = q.no_touch_days {
        if !(1..=3650).contains(&d) {
            return Err(ApiError::field(
                "no_touch_days",
                "must be between 1 and 3650",
            ));
        }
        f.no_touch_since = Some(relentless_engine::now_ms() - d * 86_400_000);
    }
    if let Some(c) = &q.cursor {
        f.before_id = Some(
            c.parse()
                .map_err(|_| ApiError::field("cursor", "is not a cursor from a previous page"))?,
        );
    }
    match q.assigned_to.as_deref() {
        Some("me") => f.assigned_to = Some(user.0.id),
        Some(key) => {
            let u = relentless_engine::leads::find_user(tx.as_mut(), key)
                .await?
                .ok_or_else(|| ApiError::field("assigned_to", format!("no user '{key}'")))?;
            f.assigned_to = Some(u.id);
        }
        None => {}
    }
    // Agents see their own leads only.
    if !user.is_admin() {
        if f.assigned_to.is_some_and(|a| a != user.0.id) {
            return Ok(Json(json!({"items": [], "next_cursor": null})));
        }
        f.assigned_to = Some(user.0.id);
    }
    let leads = tx.leads_page(&f).await?;
    let users = users_map(tx.as_mut()).await?;
    let ids: Vec<i64> = leads.iter().map(|l| l.id).collect();
    let enrollments = tx.enrollments_for_leads(&ids).await?;
    let next = (leads.len() as i64 == limit)
        .then(|| leads.last().map(|l| l.id.to_string()))
        .flatten();
    Ok(Json(json!({
        "items": leads.iter().map(|l| lead_json(l, &users, &enrollments)).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

pub async fn get(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let lead = state.engine.lead_for(&user.0, id).await?;
    Ok(Json(render_lead(&state, &lead).await?))
}

pub async fn patch(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let input = LeadInput::from_json(&body)?;
    let lead = state.engine.update_lead(&user.0, id, input).await?;
    Ok(Json(render_lead(&state, &lead).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state.engine.erase_lead(&user.0, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

fn cursor(c: &Option<String>) -> ApiResult<Option<i64>> {
    c.as_ref()
        .map(|c| {
            c.parse()
                .map_err(|_| ApiError::field("cursor", "is not a cursor from a previous page"))
        })
        .transpose()
}

pub async fn timeline(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    state.engine.lead_for(&user.0, id).await?;
    let limit = page_limit(q.limit);
    let mut tx = state.engine.store.read().await?;
    let items = tx.timeline(id, cursor(&q.cursor)?, limit).await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|a| a.id.to_string()))
        .flatten();
    Ok(Json(json!({
        "items": items.iter().map(|a| json!({
            "id": a.id,
            "kind": a.kind,
            "detail": a.detail,
            "data": a.data.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
            "at": iso(a.at),
        })).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

pub async fn touches(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    state.engine.lead_for(&user.0, id).await?;
    let mut tx = state.engine.store.read().await?;
    let items = tx.touches_for_lead(id).await?;
    Ok(Json(json!({
        "items": items.iter().map(|t| json!({
            "id": t.id,
            "plan": t.plan,
            "step": t.step + 1,
            "channel": t.sent_channel.clone().unwrap_or_else(|| t.channel.to_string()),
            "planned_channel": t.channel,
            "template": t.template,
            "due_at": iso(t.due_at),
            "planned_at": iso(t.planned_at),
            // `sending` lasts only while a send is in flight; to clients it is still scheduled.
            "status": if t.status == TouchStatus::Sending { TouchStatus::Scheduled } else { t.status },
            "reason": t.reason,
            "attempt": t.attempt,
            "subject": t.subject,
            "content": t.content,
            "provider_id": t.provider_id,
            "delivery": t.delivery,
            "task_id": t.task_id,
        })).collect::<Vec<_>>(),
        "next_cursor": null,
    })))
}

pub async fn enroll(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody,
) -> ApiResult<impl IntoResponse> {
    let plan = req_str(&body, "plan")?;
    let e = state.engine.enroll(&user.0, id, &plan).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"plan": e.plan, "state": e.state, "reason": e.reason, "started_at": iso(e.started_at), "next_touch_at": iso_opt(e.next_touch_at)}),
        ),
    ))
}

pub async fn unenroll(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, plan)): Path<(i64, String)>,
) -> ApiResult<StatusCode> {
    state.engine.unenroll(&user.0, id, &plan).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn activity(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody,
) -> ApiResult<impl IntoResponse> {
    let kind: ActivityKind = req_str(&body, "kind")?
        .parse()
        .map_err(|e: UnknownVariant| ApiError::field("kind", e.to_string()))?;
    let outcome = opt_str(&body, "outcome")?
        .map(|o| {
            o.parse::<Outcome>()
                .map_err(|e| ApiError::field("outcome", e.to_string()))
        })
        .transpose()?;
    let input = ActivityInput {
        kind,
        outcome,
        note: opt_str(&body, "note")?,
        at: opt_instant(&body, "at")?,
        promised_reply_by: opt_instant(&body, "promised_reply_by")?,
    };
    if input.kind != ActivityKind::Call && input.outcome.is_some() {
        return Err(ApiError::field("outcome", "only a call has an outcome"));
    }
    let a = state.engine.log_activity(&user.0, id, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": a.id, "lead_id": a.lead_id, "kind": a.kind, "detail": a.detail, "at": iso(a.at)}),
        ),
    ))
}

/// Uploads a personal video for a lead: the body is the video itself (`video/webm`, `video/mp4`).
pub async fn upload_video(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let v = state.engine.save_video(&user.0, id, &body, &ct).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": v.id, "lead_id": v.lead_id, "content_type": v.content_type, "size": v.size, "created_at": iso(v.created_at)}),
        ),
    ))
}

/// Sends the lead a link to the video's page, by text (or email when it cannot be texted).
pub async fn send_video(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, video)): Path<(i64, i64)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    // An optional `{channel: text|email}`; without it, a text when the lead can be texted.
    let channel = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        match crate::json::opt_str(&v, "channel")?.as_deref() {
            None => None,
            Some("text") => Some(Channel::Text),
            Some("email") => Some(Channel::Email),
            Some(_) => return Err(ApiError::field("channel", "must be text or email")),
        }
    };
    let url = state.engine.send_video(&user.0, id, video, channel).await?;
    Ok(Json(json!({"url": url})))
}
