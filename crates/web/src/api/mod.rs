//! The JSON API under `/api/v1`, one file per resource.

pub mod intakes;
pub mod leads;
pub mod messages;
pub mod misc;
pub mod notifications;
pub mod plans;
pub mod tasks;
pub mod today;
pub mod users;

use crate::AppState;
use axum::Router;
use axum::routing::{get, post};
use relentless_store::Millis;

/// RFC 3339 UTC with `Z`.
pub fn iso(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub fn iso_opt(ms: Option<Millis>) -> Option<String> {
    ms.map(iso)
}

/// Page size: `limit` clamped to 1..=200, default 50.
pub fn page_limit(limit: Option<i64>) -> i64 {
    limit.unwrap_or(50).clamp(1, 200)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/leads", post(leads::create).get(leads::list))
        .route(
            "/leads/{id}",
            get(leads::get).patch(leads::patch).delete(leads::delete),
        )
        .route("/leads/{id}/timeline", get(leads::timeline))
        .route("/leads/{id}/touches", get(leads::touches))
        .route("/leads/{id}/enrollments", post(leads::enroll))
        .route(
            "/leads/{id}/enrollments/{plan}",
            axum::routing::delete(leads::unenroll).patch(messages::set_enrollment),
        )
        .route("/leads/{id}/messages", post(messages::send))
        .route(
            "/leads/import",
            post(messages::import)
                .layer(axum::extract::DefaultBodyLimit::max(messages::IMPORT_LIMIT)),
        )
        .route("/templates/preview", post(messages::preview_template))
        .route("/plans/preview", post(messages::preview_plan))
        .route("/leads/{id}/activities", post(leads::activity))
        .route(
            "/leads/{id}/videos",
            post(leads::upload_video).layer(axum::extract::DefaultBodyLimit::max(
                relentless_engine::videos::MAX_VIDEO_BYTES,
            )),
        )
        .route("/leads/{id}/videos/{video}/send", post(leads::send_video))
        .route("/leads/{id}/claim", post(intakes::claim))
        .route("/leads/{id}/consents", get(intakes::consents))
        .route("/pond", get(intakes::pond))
        .route("/intakes", get(intakes::list).post(intakes::create))
        .route("/tasks", get(tasks::list))
        .route("/today", get(today::today))
        .route("/tasks/{id}/complete", post(tasks::complete))
        .route("/plans", get(plans::list_plans))
        .route("/plans/{slug}", get(plans::get_plan).put(plans::put_plan))
        .route("/templates", get(plans::list_templates))
        .route(
            "/templates/{slug}",
            get(plans::get_template).put(plans::put_template),
        )
        .route("/users", get(users::list).post(users::create))
        .route(
            "/users/{id}",
            axum::routing::patch(users::patch).delete(users::delete),
        )
        .route("/me", get(users::me))
        .route("/team", get(users::team).patch(users::patch_team))
        .route("/outbox", get(misc::outbox))
        .route("/reports/summary", get(misc::summary))
        .route("/notifications/stream", get(notifications::stream))
        .route("/openapi.json", get(crate::openapi::document))
}
