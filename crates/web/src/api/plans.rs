//! `/api/v1/plans` and `/api/v1/templates`: plans and templates are data, editable here.

use super::iso;
use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::json::JsonBody;
use axum::Json;
use axum::extract::State;
use relentless_core::builtin::TemplateSpec;
use relentless_core::plan::{Plan, PlanSpec};
use relentless_engine::FieldError;
use relentless_store::{PlanRow, TemplateRow};
use serde_json::{Value, json};

/// The fields below are filled in by indexing the body, which panics on anything but an
/// object (a `[]` body panicked into a 500): refuse anything else first, naming the field.
fn require_object(body: &Value) -> ApiResult<()> {
    if body.is_object() {
        Ok(())
    } else {
        Err(ApiError::field("body", "must be a JSON object"))
    }
}

/// A plan from a request body: `{"source": "<TOML plan file>"}` or the plan as JSON, where
/// `slug` fills in a missing slug and `not_the_plan` names the request's own fields (a
/// preview's zone) that are not the plan's. Errors name the plan's field.
pub(crate) fn plan_from_body(
    body: &Value,
    slug: Option<&str>,
    not_the_plan: &[&str],
) -> ApiResult<Plan> {
    match body.get("source").and_then(Value::as_str) {
        Some(src) => Plan::from_toml(src),
        None => {
            let mut b = body.clone();
            if let Some(o) = b.as_object_mut() {
                for k in not_the_plan {
                    o.remove(*k);
                }
                if let Some(slug) = slug {
                    o.entry("slug").or_insert_with(|| json!(slug));
                }
            }
            let spec: PlanSpec =
                serde_json::from_value(b).map_err(|e| ApiError::field("plan", e.to_string()))?;
            Plan::from_spec(spec)
        }
    }
    .map_err(|e| ApiError::field(&e.field, e.message))
}

fn plan_json(row: &PlanRow) -> Value {
    let parsed = Plan::from_toml(&row.source).ok();
    json!({
        "slug": row.slug,
        "name": row.name,
        "version": row.version,
        "description": parsed.as_ref().map(|p| p.spec.description.clone()),
        "levels": parsed.as_ref().map(|p| p.spec.levels.clone()),
        "on_complete_level": parsed.as_ref().and_then(|p| p.spec.on_complete_level),
        "steps": parsed.as_ref().map(|p| p.spec.steps.clone()),
        "source": row.source,
        "updated_at": iso(row.updated_at),
    })
}

pub async fn list_plans(
    State(state): State<AppState>,
    _user: CurrentUser,
) -> ApiResult<Json<Value>> {
    let mut tx = state.engine.store.read().await?;
    let plans = tx.plans().await?;
    Ok(Json(
        json!({"items": plans.iter().map(plan_json).collect::<Vec<_>>(), "next_cursor": null}),
    ))
}

pub async fn get_plan(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(slug): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut tx = state.engine.store.read().await?;
    let row = tx.plan(&slug).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(plan_json(&row)))
}

/// Saves a plan: either `{"source": "<TOML plan file>"}` or the plan as JSON
/// (`{name, steps: [...], ...}`). Every step's template must exist.
pub async fn put_plan(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    user.require_admin()?;
    require_object(&body)?;
    let plan = plan_from_body(&body, Some(&slug), &[])?;
    if plan.slug() != slug {
        return Err(ApiError::field(
            "slug",
            format!("the plan says '{}' but the URL says '{slug}'", plan.slug()),
        ));
    }
    let mut tx = state.engine.store.write().await?;
    let mut errors = Vec::new();
    for (i, s) in plan.steps.iter().enumerate() {
        for (field, t) in [
            (format!("steps[{i}].template"), Some(&s.template)),
            (
                format!("steps[{i}].fallback.template"),
                s.fallback.as_ref().map(|f| &f.template),
            ),
        ] {
            if let Some(t) = t
                && tx.template(t).await?.is_none()
            {
                errors.push(FieldError::new(
                    field,
                    format!("there is no template '{t}'"),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let version = tx
        .plan(&slug)
        .await?
        .map(|p| p.version + 1)
        .unwrap_or(plan.spec.version as i64);
    let mut spec = plan.spec.clone();
    spec.version = version as u32;
    let source = Plan::from_spec(spec)
        .map(|p| p.to_toml())
        .map_err(|e| ApiError::field(&e.field, e.message))?;
    let row = PlanRow {
        slug: slug.clone(),
        name: plan.spec.name.clone(),
        version,
        source,
        updated_at: relentless_engine::now_ms(),
    };
    tx.plan_save(&row).await?;
    tx.commit().await?;
    let mut v = plan_json(&row);
    v["warnings"] = json!(plan.warnings());
    Ok(Json(v))
}

fn template_json(t: &TemplateRow) -> Value {
    json!({
        "slug": t.slug,
        "channel": t.channel,
        "name": t.name,
        "subject": t.subject,
        "body": t.body,
        "voicemail": t.voicemail,
        "updated_at": iso(t.updated_at),
    })
}

pub async fn list_templates(
    State(state): State<AppState>,
    _user: CurrentUser,
) -> ApiResult<Json<Value>> {
    let mut tx = state.engine.store.read().await?;
    let items = tx.templates().await?;
    Ok(Json(
        json!({"items": items.iter().map(template_json).collect::<Vec<_>>(), "next_cursor": null}),
    ))
}

pub async fn get_template(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(slug): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut tx = state.engine.store.read().await?;
    let t = tx.template(&slug).await?.ok_or_else(ApiError::not_found)?;
    let mut v = template_json(&t);
    // The editor's merge-field help: every field a template may use.
    v["merge_fields"] = json!(relentless_core::template::FIELDS);
    Ok(Json(v))
}

/// Saves a template; an unknown merge field or bad syntax is refused (`422`, field named).
pub async fn put_template(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(slug): Path<String>,
    JsonBody(mut body): JsonBody,
) -> ApiResult<Json<Value>> {
    user.require_admin()?;
    require_object(&body)?;
    if body.get("slug").is_none() {
        body["slug"] = json!(slug);
    }
    let mut tx = state.engine.store.write().await?;
    if body.get("channel").is_none()
        && let Some(existing) = tx.template(&slug).await?
    {
        body["channel"] = json!(existing.channel);
        if body.get("name").is_none() {
            body["name"] = json!(existing.name);
        }
    }
    let spec: TemplateSpec =
        serde_json::from_value(body).map_err(|e| ApiError::field("template", e.to_string()))?;
    if spec.slug != slug {
        return Err(ApiError::field(
            "slug",
            format!("the body says '{}' but the URL says '{slug}'", spec.slug),
        ));
    }
    relentless_engine::setup::check_template(&spec)?;
    let row = relentless_engine::setup::template_row(spec, relentless_engine::now_ms());
    tx.template_save(&row).await?;
    tx.commit().await?;
    Ok(Json(template_json(&row)))
}
