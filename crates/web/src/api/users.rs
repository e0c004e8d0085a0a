//! `/api/v1/users`, `/api/v1/me` and `/api/v1/team`.

use super::iso;
use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::json::{JsonBody, opt_str, req_str};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use relentless_core::types::*;
use relentless_engine::setup::UserInput;
use relentless_store::User;
use serde::Deserialize;
use serde_json::{Value, json};

pub fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "phone": u.phone,
        "role": u.role,
        "active": u.active,
        "notify_sms": u.notify_sms,
        "notify_email": u.notify_email,
        "created_at": iso(u.created_at),
    })
}

fn user_input(body: &Value, creating: bool) -> ApiResult<UserInput> {
    let role = opt_str(body, "role")?
        .map(|r| {
            r.parse::<Role>()
                .map_err(|e| ApiError::field("role", e.to_string()))
        })
        .transpose()?;
    let bool_field = |f: &str| -> ApiResult<Option<bool>> {
        match body.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::field(f, "must be true or false")),
        }
    };
    Ok(UserInput {
        email: if creating {
            Some(req_str(body, "email")?)
        } else {
            opt_str(body, "email")?
        },
        name: if creating {
            Some(req_str(body, "name")?)
        } else {
            opt_str(body, "name")?
        },
        phone: opt_str(body, "phone")?,
        role,
        password: opt_str(body, "password")?,
        notify_sms: bool_field("notify_sms")?,
        notify_email: bool_field("notify_email")?,
    })
}

pub async fn list(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    user.require_admin()?;
    let mut tx = state.engine.store.read().await?;
    let users = tx.users().await?;
    Ok(Json(
        json!({"items": users.iter().map(user_json).collect::<Vec<_>>(), "next_cursor": null}),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    JsonBody(body): JsonBody,
) -> ApiResult<impl IntoResponse> {
    user.require_admin()?;
    let u = state.engine.add_user(user_input(&body, true)?).await?;
    Ok((StatusCode::CREATED, Json(user_json(&u))))
}

pub async fn patch(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    user.require_admin()?;
    let u = state
        .engine
        .update_user(id, user_input(&body, false)?)
        .await?;
    Ok(Json(user_json(&u)))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    reassign_to: Option<String>,
}

pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<Value>> {
    user.require_admin()?;
    if id == user.0.id {
        return Err(ApiError::field("id", "you cannot deactivate yourself"));
    }
    let (u, leads, tasks) = state
        .engine
        .deactivate_user(id, q.reassign_to.as_deref(), &user.0)
        .await?;
    let mut v = user_json(&u);
    v["reassigned"] = json!({"leads": leads, "tasks": tasks});
    Ok(Json(v))
}

pub async fn me(user: CurrentUser) -> Json<Value> {
    Json(user_json(&user.0))
}

pub async fn team(State(state): State<AppState>, _user: CurrentUser) -> ApiResult<Json<Value>> {
    Ok(Json(state.engine.team_settings().await?))
}

pub async fn patch_team(
    State(state): State<AppState>,
    user: CurrentUser,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    user.require_admin()?;
    state.engine.update_team(&body).await?;
    Ok(Json(state.engine.team_settings().await?))
}
