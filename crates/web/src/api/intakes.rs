//! `/api/v1/intakes` (admins): lead-intake webhooks with their routing and form snippet;
//! `/api/v1/pond` and `/api/v1/leads/{id}/claim`: first to claim wins.

use super::iso;
use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::json::{JsonBody, opt_str, req_str};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use relentless_engine::intake::{NewIntake, Routing};
use relentless_store::Intake;
use serde_json::{Value, json};

pub fn intake_json(state: &AppState, i: &Intake) -> Value {
    let url = state.engine.intake_url(&i.token);
    json!({
        "id": i.id,
        "source": i.source,
        "plan": i.plan,
        "routing": serde_json::from_str::<Value>(&i.routing).unwrap_or(json!({})),
        "thank_you_url": i.thank_you_url,
        "active": i.active,
        "url": url,
        "signin_url": format!("{}/signin/{}", state.engine.config.base(), i.token),
        "email_token": i.token,
        "snippet": crate::webhooks::intake::snippet(&url),
        "created_at": iso(i.created_at),
    })
}

pub async fn list(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    user.require_admin()?;
    let items = state.engine.intakes().await?;
    Ok(Json(
        json!({"items": items.iter().map(|i| intake_json(&state, i)).collect::<Vec<_>>(), "next_cursor": null}),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    JsonBody(body): JsonBody,
) -> ApiResult<impl IntoResponse> {
    user.require_admin()?;
    let routing: Routing = match body.get("routing") {
        None | Some(Value::Null) => Routing::default(),
        Some(r) => serde_json::from_value(r.clone())
            .map_err(|e| ApiError::field("routing", e.to_string()))?,
    };
    let i = state
        .engine
        .create_intake(NewIntake {
            source: req_str(&body, "source")?,
            plan: opt_str(&body, "plan")?,
            routing,
            thank_you_url: opt_str(&body, "thank_you_url")?,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(intake_json(&state, &i))))
}

pub async fn pond(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let items = state.engine.pond_for(&user.0).await?;
    Ok(Json(json!({
        "items": items.iter().map(|(l, tasks)| json!({
            "lead_id": l.id,
            "lead_name": l.full_name(),
            "source": l.source,
            "created_at": iso(l.created_at),
            "tasks": tasks.iter().map(super::tasks::task_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "next_cursor": null,
    })))
}

pub async fn claim(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let lead = state.engine.claim(&user.0, id).await?;
    Ok(Json(json!({"id": lead.id, "assigned_to": user.0.email})))
}

pub async fn consents(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    state.engine.lead_for(&user.0, id).await?;
    let items = state.engine.consents(id).await?;
    Ok(Json(json!({
        "items": items.iter().map(|c| json!({"channel": c.channel, "source": c.source, "wording": c.wording, "ip": c.ip, "at": iso(c.at)})).collect::<Vec<_>>(),
        "next_cursor": null,
    })))
}
