//! `GET /api/v1/openapi.json`: the API as it is, per field. Hand-maintained next to the
//! handlers; tests walk every operation against the real router, and CI fuzzes the API from
//! this document with schemathesis (`scripts/schemathesis.sh`), which fails on any response
//! whose status, content type or body the document does not allow.
//!
//! Errors are `application/problem+json` (RFC 9457): 400 for a body or parameter that cannot
//! be read, 401 without a valid token, 403 for what only admins may do, 404 for what does not
//! exist or is not the user's, 409 for a conflict with the current state, 413/415 for bodies
//! that are too large or not JSON, 422 with `errors: [{field, message}]` for invalid fields.

use axum::Json;
use serde_json::{Map, Value, json};

/// One documented operation.
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Success status and its body schema (`None`: no body).
    pub ok: (u16, Option<Value>),
    /// A JSON request body's schema.
    pub body: Option<Value>,
    pub query: Vec<(&'static str, Value, &'static str)>,
    /// Error statuses besides 400 and 401 (every operation has those).
    pub errors: &'static [u16],
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}
fn s() -> Value {
    json!({"type": "string"})
}
fn ns() -> Value {
    json!({"type": ["string", "null"]})
}
fn int() -> Value {
    json!({"type": "integer"})
}
fn nint() -> Value {
    json!({"type": ["integer", "null"]})
}
fn b() -> Value {
    json!({"type": "boolean"})
}
fn instant() -> Value {
    json!({"type": "string", "format": "date-time"})
}
fn ninstant() -> Value {
    json!({"type": ["string", "null"], "format": "date-time"})
}
fn en(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}
fn nen(values: &[&str]) -> Value {
    let mut v: Vec<Value> = values.iter().map(|v| json!(v)).collect();
    v.push(Value::Null);
    json!({"type": ["string", "null"], "enum": v})
}
/// An object with exactly these properties, all present in responses.
fn obj(props: &[(&str, Value)]) -> Value {
    let required: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
    json!({"type": "object", "properties": props.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Map<_, _>>(), "required": required})
}
/// A request object: these properties, `required` of them mandatory, nothing else.
fn input(props: &[(&str, Value)], required: &[&str]) -> Value {
    json!({"type": "object", "properties": props.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Map<_, _>>(), "required": required, "additionalProperties": false})
}
fn page(item: &str) -> Value {
    obj(&[
        ("items", json!({"type": "array", "items": r(item)})),
        ("next_cursor", ns()),
    ])
}

const LEVELS: &[&str] = &["hot", "warm", "cold", "nurture"];
const STAGES: &[&str] = &[
    "new",
    "attempting",
    "contacted",
    "appointment",
    "client",
    "closed",
    "lost",
];
const CHANNELS: &[&str] = &["call", "text", "email", "video"];
const STEP_CHANNELS: &[&str] = &["call", "text", "email", "video", "task", "preferred"];
const OUTCOMES: &[&str] = &["connected", "voicemail", "no_answer", "bad_number", "done"];

fn schemas() -> Value {
    let lead_fields = || {
        vec![
            ("first_name", s()),
            ("last_name", s()),
            ("name", s()),
            ("email", ns()),
            ("phone", ns()),
            ("timezone", s()),
            ("region", ns()),
            ("source", s()),
            ("level", en(LEVELS)),
            ("stage", en(STAGES)),
            ("preferred_channel", nen(CHANNELS)),
            ("assigned_to", s()),
            ("external_id", ns()),
            (
                "tags",
                json!({"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}),
            ),
            ("notes", s()),
            ("property_address", s()),
            ("sms_opt_out", b()),
            ("email_opt_out", b()),
            ("do_not_call", b()),
        ]
    };
    let mut create = lead_fields();
    create.push(("plan", s()));
    let enrollment = obj(&[
        ("plan", s()),
        ("state", en(&["active", "paused", "completed", "stopped"])),
        ("reason", ns()),
        ("started_at", instant()),
        ("next_touch_at", ninstant()),
    ]);
    let lead_props = |merged: bool| {
        let mut p = vec![
            ("id", int()),
            ("first_name", s()),
            ("last_name", s()),
            ("email", ns()),
            ("phone", ns()),
            ("timezone", s()),
            ("region", ns()),
            ("source", s()),
            ("level", en(LEVELS)),
            ("stage", en(STAGES)),
            ("preferred_channel", ns()),
            ("assigned_to", ns()),
            ("external_id", ns()),
            (
                "tags",
                json!({"type": "array", "items": {"type": "string"}}),
            ),
            ("notes", s()),
            ("property_address", s()),
            ("sms_opt_out", b()),
            ("email_opt_out", b()),
            ("do_not_call", b()),
            ("email_bad", b()),
            ("phone_bad", b()),
            ("attempts", int()),
            ("created_at", instant()),
            ("updated_at", instant()),
            ("next_touch_at", ninstant()),
            (
                "enrollments",
                json!({"type": "array", "items": r("Enrollment")}),
            ),
        ];
        if merged {
            p.push(("merged", b()));
        }
        obj(&p)
    };
    let task = obj(&[
        ("id", int()),
        ("lead_id", int()),
        (
            "kind",
            en(&["call", "video", "reply", "promised_answer", "task"]),
        ),
        ("due_at", instant()),
        ("script", s()),
        ("voicemail", ns()),
        ("status", en(&["open", "done", "cancelled"])),
        ("outcome", ns()),
        ("note", ns()),
        ("touch_id", nint()),
        ("created_at", instant()),
    ]);
    let mut completed = task.clone();
    completed["properties"]["video_url"] = s();
    let step = input(
        &[
            ("day", json!({"type": "integer", "minimum": 0})),
            ("at", s()),
            ("after", s()),
            ("channel", en(STEP_CHANNELS)),
            ("template", s()),
            (
                "fallback",
                input(
                    &[("channel", en(STEP_CHANNELS)), ("template", s())],
                    &["channel", "template"],
                ),
            ),
            ("covered_by", s()),
            ("unless_answered", b()),
        ],
        &["channel", "template"],
    );
    let plan = obj(&[
        ("slug", s()),
        ("name", s()),
        ("version", int()),
        ("description", ns()),
        (
            "levels",
            json!({"type": ["array", "null"], "items": en(LEVELS)}),
        ),
        ("on_complete_level", nen(LEVELS)),
        (
            "steps",
            json!({"type": ["array", "null"], "items": r("PlanStep")}),
        ),
        ("source", s()),
        ("updated_at", instant()),
    ]);
    let mut saved_plan = plan.clone();
    saved_plan["properties"]["warnings"] = json!({"type": "array", "items": s()});
    saved_plan["required"]
        .as_array_mut()
        .unwrap()
        .push(json!("warnings"));
    let template = obj(&[
        ("slug", s()),
        ("channel", en(STEP_CHANNELS)),
        ("name", s()),
        ("subject", ns()),
        ("body", s()),
        ("voicemail", ns()),
        ("updated_at", instant()),
    ]);
    let user = obj(&[
        ("id", int()),
        ("email", s()),
        ("name", s()),
        ("phone", ns()),
        ("role", en(&["agent", "admin"])),
        ("active", b()),
        ("notify_sms", b()),
        ("notify_email", b()),
        ("created_at", instant()),
    ]);
    let mut deactivated = user.clone();
    deactivated["properties"]["reassigned"] = obj(&[("leads", int()), ("tasks", int())]);
    let user_fields = |creating: bool| {
        input(
            &[
                ("email", s()),
                ("name", s()),
                ("phone", ns()),
                ("role", en(&["agent", "admin"])),
                ("password", ns()),
                ("notify_sms", b()),
                ("notify_email", b()),
            ],
            if creating { &["email", "name"] } else { &[] },
        )
    };
    let window = json!({"type": "object"});
    let team = obj(&[
        ("name", s()),
        ("country", s()),
        ("timezone", s()),
        ("sending_window", window.clone()),
        (
            "state_windows",
            json!({"type": "object", "additionalProperties": window}),
        ),
        (
            "holidays",
            json!({"type": "array", "items": {"type": "string", "format": "date"}}),
        ),
        ("postal_address", s()),
        ("support_contact", s()),
        ("escalation_minutes", int()),
        ("require_text_consent", b()),
    ]);
    let team_patch = input(
        &[
            ("name", s()),
            ("country", s()),
            ("timezone", s()),
            ("sending_window", json!({"type": "object"})),
            ("state_windows", json!({"type": "object"})),
            ("holidays", json!({"type": "array", "items": s()})),
            ("postal_address", s()),
            ("support_contact", s()),
            (
                "escalation_minutes",
                json!({"type": "integer", "minimum": 1, "maximum": 10080}),
            ),
            ("require_text_consent", b()),
        ],
        &[],
    );
    let pct = obj(&[
        ("p50_seconds", nint()),
        ("p90_seconds", nint()),
        ("count", int()),
    ]);
    let rate = obj(&[
        ("sent", int()),
        ("answered", int()),
        ("rate", json!({"type": "number"})),
    ]);
    let summary = obj(&[
        ("since", s()),
        ("computed_at", s()),
        ("speed_to_lead", pct.clone()),
        ("speed_to_call", pct.clone()),
        (
            "speed_to_lead_by_day",
            json!({"type": "object", "additionalProperties": pct}),
        ),
        (
            "attempts_before_contact",
            json!({"type": "object", "additionalProperties": int()}),
        ),
        (
            "answer_rate_by_channel",
            json!({"type": "object", "additionalProperties": rate.clone()}),
        ),
        (
            "answer_rate_by_step",
            json!({"type": "object", "additionalProperties": rate}),
        ),
        (
            "overdue_tasks_by_agent",
            json!({"type": "object", "additionalProperties": int()}),
        ),
        ("leads_below_8_attempts", int()),
    ]);
    let routing = input(
        &[
            ("mode", en(&["agent", "round_robin", "pond"])),
            ("agents", json!({"type": "array", "items": s()})),
            ("claim_minutes", int()),
            ("off_hours", json!({"type": "object"})),
        ],
        &[],
    );
    let intake = obj(&[
        ("id", int()),
        ("source", s()),
        ("plan", ns()),
        ("routing", json!({"type": "object"})),
        ("thank_you_url", ns()),
        ("active", b()),
        ("url", s()),
        ("signin_url", s()),
        ("email_token", s()),
        ("snippet", s()),
        ("created_at", instant()),
    ]);
    json!({
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "properties": {
                "type": s(), "title": s(), "status": int(), "detail": s(),
                "errors": {"type": "array", "items": r("FieldError")}
            },
            "required": ["type", "title", "status", "detail"]
        },
        "ValidationProblem": {
            "allOf": [r("Problem")],
            "description": "422: every invalid field, by name",
            "required": ["errors"]
        },
        "FieldError": obj(&[("field", s()), ("message", s())]),
        "Lead": lead_props(false),
        "CreatedLead": lead_props(true),
        "LeadPage": page("Lead"),
        "LeadCreate": input(&create, &[]),
        "LeadPatch": input(&lead_fields(), &[]),
        "Enrollment": enrollment,
        "EnrollmentCreate": input(&[("plan", s())], &["plan"]),
        "TimelineItem": obj(&[("id", int()), ("kind", s()), ("detail", s()), ("data", json!({})), ("at", instant())]),
        "TimelinePage": page("TimelineItem"),
        "Touch": obj(&[
            ("id", int()), ("plan", s()), ("step", int()), ("channel", s()),
            ("planned_channel", en(STEP_CHANNELS)), ("template", s()), ("due_at", instant()),
            ("planned_at", instant()),
            ("status", en(&["scheduled", "sent", "done", "skipped", "cancelled", "failed", "uncertain"])),
            ("reason", ns()), ("attempt", nint()), ("subject", ns()), ("content", ns()),
            ("provider_id", ns()), ("delivery", ns()), ("task_id", nint()),
        ]),
        "TouchPage": page("Touch"),
        "ActivityCreate": input(&[
            ("kind", en(&["call", "meeting", "note"])),
            ("outcome", en(OUTCOMES)),
            ("note", ns()),
            ("at", json!({"type": ["string", "null"], "format": "date-time"})),
            ("promised_reply_by", json!({"type": ["string", "null"], "format": "date-time"})),
        ], &["kind"]),
        "Activity": obj(&[("id", int()), ("lead_id", int()), ("kind", s()), ("detail", s()), ("at", instant())]),
        "Video": obj(&[("id", int()), ("lead_id", nint()), ("content_type", s()), ("size", int()), ("created_at", instant())]),
        "VideoLink": obj(&[("url", s())]),
        "Claimed": obj(&[("id", int()), ("assigned_to", s())]),
        "Consent": obj(&[("channel", s()), ("source", s()), ("wording", s()), ("ip", ns()), ("at", instant())]),
        "ConsentPage": page("Consent"),
        "PondLead": obj(&[("lead_id", int()), ("lead_name", s()), ("source", s()), ("created_at", instant()), ("tasks", json!({"type": "array", "items": r("Task")}))]),
        "PondPage": page("PondLead"),
        "Intake": intake,
        "IntakePage": page("Intake"),
        "IntakeCreate": input(&[("source", s()), ("plan", ns()), ("routing", routing), ("thank_you_url", ns())], &["source"]),
        "Task": task,
        "LeadCard": obj(&[
            ("id", int()), ("name", s()), ("phone", ns()), ("email", ns()), ("level", en(LEVELS)),
            ("stage", en(STAGES)), ("source", s()), ("timezone", s()), ("attempts", int()),
            ("created_at", instant()), ("do_not_call", b()), ("phone_bad", b()),
        ]),
        "TodayItem": {"allOf": [r("Task"), {
            "type": "object",
            "properties": {
                "group": en(&["engaging", "overdue", "hot_calls", "calls", "other"]),
                "lead": r("LeadCard"),
                "overdue_seconds": int(),
                "attempt": obj(&[("n", int()), ("of", int()), ("plan", s())]),
            },
            "required": ["group", "lead", "overdue_seconds"],
        }]},
        "Today": obj(&[
            ("now", instant()),
            ("engaging", json!({"type": "array", "items": obj(&[
                ("lead", r("LeadCard")), ("kind", s()), ("detail", s()), ("at", instant()), ("seconds_ago", int()),
            ])})),
            ("items", json!({"type": "array", "items": r("TodayItem")})),
        ]),
        "EnrollmentState": input(&[("state", en(&["paused", "active"]))], &["state"]),
        "MessageCreate": input(
            &[("channel", en(&["text", "email"])), ("template", ns()), ("subject", ns()), ("body", ns())],
            &["channel"],
        ),
        "Message": obj(&[("channel", en(&["text", "email"])), ("to", s()), ("subject", ns()), ("body", s())]),
        "TemplatePreviewRequest": input(&[("subject", ns()), ("body", ns()), ("lead_id", nint())], &[]),
        "TemplatePreview": obj(&[("subject", ns()), ("body", s())]),
        "PlanPreviewRequest": input(&[("source", s()), ("timezone", ns()), ("start_at", ninstant())], &["source"]),
        "PlanPreview": obj(&[
            ("timezone", s()), ("start_at", instant()),
            ("warnings", json!({"type": "array", "items": s()})),
            ("touches", json!({"type": "array", "items": obj(&[
                ("step", int()), ("channel", en(STEP_CHANNELS)), ("template", s()),
                ("planned_at", instant()), ("due_at", instant()), ("moved_by_window", b()),
            ])})),
        ]),
        "ImportReport": obj(&[
            ("dry_run", b()), ("imported", int()), ("merged", int()), ("rejected", int()),
            ("rows", json!({"type": "array", "items": obj(&[
                ("line", int()), ("name", s()), ("ok", b()), ("merged", b()), ("error", ns()),
            ])})),
        ]),
        "CompletedTask": completed,
        "TaskPage": page("Task"),
        "TaskComplete": input(&[("outcome", en(OUTCOMES)), ("note", ns()), ("video_id", nint())], &["outcome"]),
        "PlanStep": step,
        "Plan": plan,
        "SavedPlan": saved_plan,
        "PlanPage": page("Plan"),
        "PlanPut": {
            "description": "The plan file as TOML in `source`, or the plan as JSON",
            "oneOf": [
                input(&[("source", s())], &["source"]),
                input(&[
                    ("slug", s()), ("name", s()), ("description", s()),
                    ("version", json!({"type": "integer", "minimum": 0})),
                    ("levels", json!({"type": "array", "items": en(LEVELS)})),
                    ("on_complete_level", en(LEVELS)),
                    ("steps", json!({"type": "array", "items": r("PlanStep")})),
                ], &["name", "steps"]),
            ]
        },
        "Template": template,
        "TemplatePage": page("Template"),
        "TemplatePut": input(&[
            ("slug", s()), ("channel", en(STEP_CHANNELS)), ("name", s()), ("subject", ns()),
            ("body", s()), ("voicemail", ns()),
        ], &["body"]),
        "User": user,
        "DeactivatedUser": deactivated,
        "UserPage": page("User"),
        "UserCreate": user_fields(true),
        "UserPatch": user_fields(false),
        "Team": team,
        "TeamPatch": team_patch,
        "OutboxMessage": obj(&[
            ("id", int()), ("channel", s()), ("to", s()), ("subject", ns()), ("body", s()),
            ("status", s()), ("lead_id", nint()), ("touch_id", nint()), ("created_at", instant()),
        ]),
        "OutboxPage": page("OutboxMessage"),
        "Summary": summary,
    })
}

fn q(
    name: &'static str,
    schema: Value,
    about: &'static str,
) -> (&'static str, Value, &'static str) {
    (name, schema, about)
}

fn paging() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        q("limit", int(), "page size, 1 to 200 (default 50)"),
        q("cursor", s(), "`next_cursor` of the previous page"),
    ]
}

/// Every operation of `/api/v1`.
pub fn operations() -> Vec<Op> {
    let op = |method, path, summary, ok: (u16, Option<Value>), body: Option<Value>, errors| Op {
        method,
        path,
        summary,
        ok,
        body,
        query: vec![],
        errors,
    };
    let ops = vec![
        Op {
            query: vec![q("plan", s(), "run this plan instead of the level's plan")],
            ..op(
                "post",
                "/leads",
                "Create a lead, or merge it into a matching one (200, merged: true)",
                (201, Some(r("CreatedLead"))),
                Some(r("LeadCreate")),
                &[200, 413, 415, 422],
            )
        },
        Op {
            query: [
                vec![
                    q("q", s(), "an email, a phone number or words of a name"),
                    q("level", en(LEVELS), ""),
                    q("stage", en(STAGES), ""),
                    q("source", s(), ""),
                    q("assigned_to", s(), "`me`, or a user's email or id"),
                    q("below_attempts", int(), "only leads with fewer attempts"),
                ],
                paging(),
            ]
            .concat(),
            ..op(
                "get",
                "/leads",
                "List leads, newest first",
                (200, Some(r("LeadPage"))),
                None,
                &[422],
            )
        },
        op(
            "get",
            "/leads/{id}",
            "One lead",
            (200, Some(r("Lead"))),
            None,
            &[404],
        ),
        op(
            "patch",
            "/leads/{id}",
            "Change a lead's fields",
            (200, Some(r("Lead"))),
            Some(r("LeadPatch")),
            &[404, 413, 415, 422],
        ),
        op(
            "delete",
            "/leads/{id}",
            "Erase a lead's personal data",
            (204, None),
            None,
            &[404],
        ),
        Op {
            query: paging(),
            ..op(
                "get",
                "/leads/{id}/timeline",
                "The lead's activities, newest first",
                (200, Some(r("TimelinePage"))),
                None,
                &[404, 422],
            )
        },
        op(
            "get",
            "/leads/{id}/touches",
            "Every touch of the lead",
            (200, Some(r("TouchPage"))),
            None,
            &[404],
        ),
        op(
            "post",
            "/leads/{id}/enrollments",
            "Start a plan",
            (201, Some(r("Enrollment"))),
            Some(r("EnrollmentCreate")),
            &[404, 409, 413, 415, 422],
        ),
        op(
            "delete",
            "/leads/{id}/enrollments/{plan}",
            "Stop a plan",
            (204, None),
            None,
            &[404],
        ),
        op(
            "patch",
            "/leads/{id}/enrollments/{plan}",
            "Pause or resume a plan: a paused plan's touches wait, resuming makes them due",
            (204, None),
            Some(r("EnrollmentState")),
            &[404, 413, 415, 422],
        ),
        op(
            "post",
            "/leads/{id}/messages",
            "Send the lead a text or email now (opt-outs respected; merge fields filled in)",
            (201, Some(r("Message"))),
            Some(r("MessageCreate")),
            &[404, 413, 415, 422],
        ),
        Op {
            query: vec![
                q("plan", s(), "start this plan for every imported lead"),
                q(
                    "dry_run",
                    b(),
                    "only check: every row's outcome, nothing imported",
                ),
            ],
            ..op(
                "post",
                "/leads/import",
                "Import a CSV file (the body); every rejected row by its line number",
                (200, Some(r("ImportReport"))),
                None,
                &[413, 422],
            )
        },
        op(
            "get",
            "/today",
            "The signed-in user's queue: engaging leads pinned, then overdue, hot calls, calls, the rest",
            (200, Some(r("Today"))),
            None,
            &[],
        ),
        op(
            "post",
            "/templates/preview",
            "Render a subject and body for a lead (or a sample lead); 422 names the bad part",
            (200, Some(r("TemplatePreview"))),
            Some(r("TemplatePreviewRequest")),
            &[404, 413, 415, 422],
        ),
        op(
            "post",
            "/plans/preview",
            "When each step of a plan falls for a sample lead in a time zone, window applied",
            (200, Some(r("PlanPreview"))),
            Some(r("PlanPreviewRequest")),
            &[413, 415, 422],
        ),
        op(
            "post",
            "/leads/{id}/activities",
            "Log a call, meeting or note",
            (201, Some(r("Activity"))),
            Some(r("ActivityCreate")),
            &[404, 413, 415, 422],
        ),
        op(
            "post",
            "/leads/{id}/videos",
            "Upload a personal video for the lead: the body is the video (video/webm or video/mp4)",
            (201, Some(r("Video"))),
            None,
            &[404, 413, 415, 422],
        ),
        op(
            "post",
            "/leads/{id}/videos/{video}/send",
            "Send the lead a personal video's page",
            (200, Some(r("VideoLink"))),
            None,
            &[404, 409, 422],
        ),
        op(
            "post",
            "/leads/{id}/claim",
            "Claim a lead waiting in a pond: first to claim wins",
            (200, Some(r("Claimed"))),
            None,
            &[404, 409],
        ),
        op(
            "get",
            "/leads/{id}/consents",
            "The lead's recorded consents",
            (200, Some(r("ConsentPage"))),
            None,
            &[404],
        ),
        op(
            "get",
            "/pond",
            "Leads waiting in the user's ponds",
            (200, Some(r("PondPage"))),
            None,
            &[],
        ),
        op(
            "get",
            "/intakes",
            "Lead-intake webhooks (admins)",
            (200, Some(r("IntakePage"))),
            None,
            &[403],
        ),
        op(
            "post",
            "/intakes",
            "Add a lead-intake webhook (admins)",
            (201, Some(r("Intake"))),
            Some(r("IntakeCreate")),
            &[403, 413, 415, 422],
        ),
        Op {
            query: [
                vec![
                    q(
                        "assignee",
                        s(),
                        "`me` (default), `all` (admins), or a user's email or id",
                    ),
                    q(
                        "status",
                        en(&["open", "done", "cancelled", "all"]),
                        "default `open`",
                    ),
                    q("lead_id", int(), ""),
                ],
                paging(),
            ]
            .concat(),
            ..op(
                "get",
                "/tasks",
                "Tasks, soonest due first",
                (200, Some(r("TaskPage"))),
                None,
                &[403, 422],
            )
        },
        op(
            "post",
            "/tasks/{id}/complete",
            "Complete a task with an outcome",
            (200, Some(r("CompletedTask"))),
            Some(r("TaskComplete")),
            &[404, 409, 413, 415, 422],
        ),
        op(
            "get",
            "/plans",
            "Plans",
            (200, Some(r("PlanPage"))),
            None,
            &[],
        ),
        op(
            "get",
            "/plans/{slug}",
            "One plan",
            (200, Some(r("Plan"))),
            None,
            &[404],
        ),
        op(
            "put",
            "/plans/{slug}",
            "Save a plan (admins)",
            (200, Some(r("SavedPlan"))),
            Some(r("PlanPut")),
            &[403, 413, 415, 422],
        ),
        op(
            "get",
            "/templates",
            "Templates",
            (200, Some(r("TemplatePage"))),
            None,
            &[],
        ),
        op(
            "get",
            "/templates/{slug}",
            "One template",
            (200, Some(r("Template"))),
            None,
            &[404],
        ),
        op(
            "put",
            "/templates/{slug}",
            "Save a template (admins); unknown merge fields are refused",
            (200, Some(r("Template"))),
            Some(r("TemplatePut")),
            &[403, 413, 415, 422],
        ),
        op(
            "get",
            "/users",
            "Users (admins)",
            (200, Some(r("UserPage"))),
            None,
            &[403],
        ),
        op(
            "post",
            "/users",
            "Add a user (admins)",
            (201, Some(r("User"))),
            Some(r("UserCreate")),
            &[403, 413, 415, 422],
        ),
        op(
            "patch",
            "/users/{id}",
            "Change a user (admins)",
            (200, Some(r("User"))),
            Some(r("UserPatch")),
            &[403, 404, 413, 415, 422],
        ),
        Op {
            query: vec![q(
                "reassign_to",
                s(),
                "the user who takes over their leads and tasks",
            )],
            ..op(
                "delete",
                "/users/{id}",
                "Deactivate a user and reassign their leads (admins)",
                (200, Some(r("DeactivatedUser"))),
                None,
                &[403, 404, 422],
            )
        },
        op(
            "get",
            "/me",
            "The token's user",
            (200, Some(r("User"))),
            None,
            &[],
        ),
        op(
            "get",
            "/team",
            "Team settings",
            (200, Some(r("Team"))),
            None,
            &[],
        ),
        op(
            "patch",
            "/team",
            "Change team settings (admins)",
            (200, Some(r("Team"))),
            Some(r("TeamPatch")),
            &[403, 413, 415, 422],
        ),
        Op {
            query: paging(),
            ..op(
                "get",
                "/outbox",
                "Messages recorded instead of delivered",
                (200, Some(r("OutboxPage"))),
                None,
                &[422],
            )
        },
        Op {
            query: vec![q(
                "since",
                s(),
                "an instant or a date (default 30 days ago)",
            )],
            ..op(
                "get",
                "/reports/summary",
                "Speed to lead, attempts, answer rates",
                (200, Some(r("Summary"))),
                None,
                &[422],
            )
        },
        op(
            "get",
            "/notifications/stream",
            "Server-Sent Events: engagement, reply, task_due, escalation",
            (200, None),
            None,
            &[],
        ),
        op(
            "get",
            "/openapi.json",
            "This document",
            (200, Some(json!({"type": "object"}))),
            None,
            &[],
        ),
    ];
    ops
}

fn problem(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json": {"schema": r(schema)}}})
}

fn error_response(status: u16) -> Value {
    match status {
        400 => problem("The body or a parameter cannot be read", "Problem"),
        401 => problem("No valid bearer token", "Problem"),
        403 => problem("Only an admin may do this", "Problem"),
        404 => problem("No such resource, or not yours", "Problem"),
        409 => problem("Conflicts with the current state", "Problem"),
        413 => problem("The body is larger than the limit", "Problem"),
        415 => problem("The body is not application/json", "Problem"),
        422 => problem(
            "Invalid fields, each named in `errors`",
            "ValidationProblem",
        ),
        429 => problem("Too many requests; see Retry-After", "Problem"),
        _ => problem("Error", "Problem"),
    }
}

pub fn document_value() -> Value {
    let mut paths = Map::new();
    for o in operations() {
        let entry = paths
            .entry(format!("/api/v1{}", o.path))
            .or_insert_with(|| json!({}));
        let mut params: Vec<Value> = o
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let schema = if name == "id" || name == "video" {
                    json!({"type": "integer", "format": "int64"})
                } else {
                    json!({"type": "string"})
                };
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .collect();
        for (name, schema, about) in &o.query {
            params.push(json!({"name": name, "in": "query", "required": false, "schema": schema, "description": about}));
        }
        let mut responses = Map::new();
        let ok = match (o.path, &o.ok.1) {
            ("/notifications/stream", _) => {
                json!({"description": "An endless event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}})
            }
            (_, Some(schema)) => {
                json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
            }
            (_, None) => json!({"description": "Done; no body"}),
        };
        responses.insert(o.ok.0.to_string(), ok);
        for status in [400, 401].iter().chain(o.errors) {
            if *status == 200 {
                // `POST /leads`: 200 is a merge into an existing lead.
                responses.insert(
                    "200".into(),
                    json!({"description": "Merged into an existing lead", "content": {"application/json": {"schema": r("CreatedLead")}}}),
                );
            } else {
                responses.insert(status.to_string(), error_response(*status));
            }
        }
        let mut op = json!({
            "summary": o.summary,
            "operationId": format!("{}{}", o.method, o.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": responses,
            "security": [{"bearer": []}],
        });
        if o.path == "/leads/import" {
            op["requestBody"] =
                json!({"required": true, "content": {"text/csv": {"schema": {"type": "string"}}}});
        }
        if o.path == "/leads/{id}/videos" {
            let video = json!({"schema": {"type": "string", "format": "binary"}});
            op["requestBody"] =
                json!({"required": true, "content": {"video/webm": video, "video/mp4": video}});
        }
        if let Some(body) = o.body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": body}}});
        }
        if o.path == "/openapi.json" {
            op["security"] = json!([{"bearer": []}, {}]);
        }
        entry[o.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Relentless API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        }
    })
}

pub async fn document() -> Json<Value> {
    Json(document_value())
}
