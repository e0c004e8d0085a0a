//! `GET /api/v1/openapi.json`, built from the route table below so it lists exactly the
//! routes `api::routes` serves (a test walks both).

use axum::Json;
use serde_json::{Map, Value, json};

/// (method, path, summary, success status, body?)
pub const ROUTES: &[(&str, &str, &str, u16, bool)] = &[
    (
        "post",
        "/leads",
        "Create a lead, or merge it into a matching one (200, merged: true)",
        201,
        true,
    ),
    (
        "get",
        "/leads",
        "List leads: q, level, stage, source, assigned_to, limit, cursor",
        200,
        false,
    ),
    ("get", "/leads/{id}", "One lead", 200, false),
    ("patch", "/leads/{id}", "Change a lead's fields", 200, true),
    (
        "delete",
        "/leads/{id}",
        "Erase a lead's personal data",
        204,
        false,
    ),
    (
        "get",
        "/leads/{id}/timeline",
        "The lead's activities, newest first",
        200,
        false,
    ),
    (
        "get",
        "/leads/{id}/touches",
        "Every touch of the lead",
        200,
        false,
    ),
    (
        "post",
        "/leads/{id}/enrollments",
        "Start a plan: {plan}",
        201,
        true,
    ),
    (
        "delete",
        "/leads/{id}/enrollments/{plan}",
        "Stop a plan",
        204,
        false,
    ),
    (
        "patch",
        "/leads/{id}/enrollments/{plan}",
        "Pause or resume a plan: {state: paused|active}",
        204,
        true,
    ),
    (
        "post",
        "/leads/{id}/messages",
        "Send the lead a text or email now: {channel, template?, subject?, body?}",
        201,
        true,
    ),
    (
        "post",
        "/templates/preview",
        "Render a template for a lead or a sample lead: {subject?, body, lead_id?}",
        200,
        true,
    ),
    (
        "post",
        "/plans/preview",
        "When each step of a plan falls for a sample lead: {source, timezone?, start_at?}",
        200,
        true,
    ),
    (
        "get",
        "/today",
        "The agent's queue in the order to work it",
        200,
        false,
    ),
    (
        "post",
        "/leads/import",
        "Import a CSV file (body: the file); dry_run=true previews it with every bad row",
        200,
        true,
    ),
    (
        "post",
        "/leads/{id}/activities",
        "Log a call, meeting or note",
        201,
        true,
    ),
    (
        "get",
        "/tasks",
        "Tasks: assignee=me|EMAIL|all, status=open|done|all",
        200,
        false,
    ),
    (
        "post",
        "/tasks/{id}/complete",
        "Complete a task with an outcome",
        200,
        true,
    ),
    ("get", "/plans", "Plans", 200, false),
    ("get", "/plans/{slug}", "One plan", 200, false),
    ("put", "/plans/{slug}", "Save a plan (admins)", 200, true),
    ("get", "/templates", "Templates", 200, false),
    ("get", "/templates/{slug}", "One template", 200, false),
    (
        "put",
        "/templates/{slug}",
        "Save a template (admins); unknown merge fields are refused",
        200,
        true,
    ),
    ("get", "/users", "Users (admins)", 200, false),
    ("post", "/users", "Add a user (admins)", 201, true),
    ("patch", "/users/{id}", "Change a user (admins)", 200, true),
    (
        "delete",
        "/users/{id}",
        "Deactivate a user and reassign their leads (admins)",
        200,
        false,
    ),
    ("get", "/me", "The token's user", 200, false),
    ("get", "/team", "Team settings", 200, false),
    ("patch", "/team", "Change team settings (admins)", 200, true),
    (
        "get",
        "/outbox",
        "Messages recorded instead of delivered",
        200,
        false,
    ),
    (
        "get",
        "/reports/summary",
        "Speed to lead, attempts, answer rates",
        200,
        false,
    ),
    (
        "get",
        "/notifications/stream",
        "Server-Sent Events: engagement, reply, task_due, escalation",
        200,
        false,
    ),
    ("get", "/openapi.json", "This document", 200, false),
];

pub fn document_value() -> Value {
    let problem = json!({"description": "Problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let mut paths = Map::new();
    for (method, path, summary, ok, body) in ROUTES {
        let entry = paths
            .entry(format!("/api/v1{path}"))
            .or_insert_with(|| json!({}));
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": if name == "id" || name == "video" {"integer"} else {"string"}}}))
            .collect();
        let mut responses = json!({
            ok.to_string(): {"description": "OK"},
            "401": problem, "404": problem, "422": problem
        });
        if *path != "/openapi.json" {
            responses["400"] = problem.clone();
        }
        let mut op = json!({"summary": summary, "parameters": params, "responses": responses, "security": [{"bearer": []}]});
        if *body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Relentless API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": {"type": "object", "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}
            }}}
        }
    })
}

pub async fn document() -> Json<Value> {
    Json(document_value())
}
