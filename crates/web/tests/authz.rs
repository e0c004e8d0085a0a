//! Authorization matrix (issue 7, item 3): every API route tried as anonymous, with a wrong
//! token, as an agent on another agent's lead, as an agent on their own lead and as an admin
//! (on another agent's lead), each answer checked, and every refusal shown to change nothing
//! an admin can see. The webhooks and lead-facing pages are tried with bad and good
//! credentials the same way. Plus: tokens never reach the logs, tracking and intake tokens
//! carry 128 bits, a tracked link redirects only to its stored target, and a lead named
//! `<script>` is text in emails and pages.
//!
//! The rules (RELIABILITY.md, "Authorization"):
//! - Every `/api/v1` route but `openapi.json` needs a bearer token: none or a wrong one → 401.
//! - An agent sees and acts on the leads assigned to them (and pond leads offered to them);
//!   another agent's lead is `404` (as if it did not exist), on every lead route.
//! - An agent re-submitting another agent's lead (same email/phone/external id) gets `409`
//!   and nothing is merged or shown; an admin's re-submission merges (`200`).
//! - Team settings, users, intakes, plans and template edits are admin-only (`403`); plans,
//!   templates, the team's settings and the team report are readable by every user.
//! - Lists (leads, tasks, outbox) hold only the agent's own items; `assignee=`/`assigned_to=`
//!   another agent is `403` for tasks and an empty page for leads.

mod common;

use common::{TestApp, day_zone};
use relentless_engine::Config;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Actor {
    Anonymous,
    WrongToken,
    /// Agent A on agent B's lead (and B's task, video, email).
    OtherAgent,
    /// Agent A on their own lead.
    OwnAgent,
    /// The admin on agent B's lead.
    Admin,
}

const ACTORS: [Actor; 5] = [
    Actor::Anonymous,
    Actor::WrongToken,
    Actor::OtherAgent,
    Actor::OwnAgent,
    Actor::Admin,
];

enum Body {
    None,
    Json(&'static str),
    Video,
    /// A CSV file.
    Csv(&'static str),
    /// The nurture plan as saved (PUT it back).
    Plan,
    /// A template as saved (PUT it back).
    Template,
}

struct Route {
    method: Method,
    path: &'static str,
    body: Body,
    /// Expected status per actor, in the order of [`ACTORS`].
    expect: [u16; 5],
}

fn r(method: Method, path: &'static str, body: Body, expect: [u16; 5]) -> Route {
    Route {
        method,
        path,
        body,
        expect,
    }
}

/// Every route under /api/v1 (see api/mod.rs) and the public ones beside it.
fn routes() -> Vec<Route> {
    use Body::*;
    use Method as M;
    vec![
        r(M::GET, "/api/v1/leads", None, [401, 401, 200, 200, 200]),
        r(
            M::GET,
            "/api/v1/leads?assigned_to={agent}",
            None,
            [401, 401, 200, 200, 200],
        ),
        r(
            M::GET,
            "/api/v1/leads?q={lead_email}",
            None,
            [401, 401, 200, 200, 200],
        ),
        r(
            M::POST,
            "/api/v1/leads",
            Json(r#"{"first_name": "Again", "email": "{lead_email}"}"#),
            [401, 401, 409, 200, 200],
        ),
        r(
            M::POST,
            "/api/v1/leads",
            Json(r#"{"first_name": "New", "email": "new-{new}@example.com"}"#),
            [401, 401, 201, 201, 201],
        ),
        r(
            M::GET,
            "/api/v1/leads/{lead}",
            None,
            [401, 401, 404, 200, 200],
        ),
        r(
            M::PATCH,
            "/api/v1/leads/{lead}",
            Json(r#"{"notes": "changed {new}"}"#),
            [401, 401, 404, 200, 200],
        ),
        r(
            M::PATCH,
            "/api/v1/leads/{lead}",
            Json(r#"{"assigned_to": "{user_email}"}"#),
            [401, 401, 404, 422, 200],
        ),
        r(
            M::DELETE,
            "/api/v1/leads/{lead}",
            None,
            [401, 401, 404, 204, 204],
        ),
        r(
            M::GET,
            "/api/v1/leads/{lead}/timeline",
            None,
            [401, 401, 404, 200, 200],
        ),
        r(
            M::GET,
            "/api/v1/leads/{lead}/touches",
            None,
            [401, 401, 404, 200, 200],
        ),
        r(
            M::POST,
            "/api/v1/leads/{lead}/enrollments",
            Json(r#"{"plan": "nurture"}"#),
            [401, 401, 404, 201, 201],
        ),
        r(
            M::PATCH,
            "/api/v1/leads/{lead}/enrollments/relentless-21",
            Json(r#"{"state": "paused"}"#),
            [401, 401, 404, 204, 204],
        ),
        r(
            M::POST,
            "/api/v1/leads/{lead}/messages",
            Json(r#"{"channel": "text", "body": "Hi {{ lead.first_name }}, {new}"}"#),
            [401, 401, 404, 201, 201],
        ),
        r(
            M::POST,
            "/api/v1/templates/preview",
            Json(r#"{"body": "Hi {{ lead.first_name }}", "lead_id": {lead}}"#),
            [401, 401, 404, 200, 200],
        ),
        r(
            M::POST,
            "/api/v1/plans/preview",
            Plan,
            [401, 401, 200, 200, 200],
        ),
        r(M::GET, "/api/v1/today", None, [401, 401, 200, 200, 200]),
        r(
            M::POST,
            "/api/v1/leads/import?dry_run=true",
            Csv("Email\nimport-{new}@example.com\n"),
            [401, 401, 200, 200, 200],
        ),
        r(
            M::DELETE,
            "/api/v1/leads/{lead}/enrollments/relentless-21",
            None,
            [401, 401, 404, 204, 204],
        ),
        r(
            M::POST,
            "/api/v1/leads/{lead}/activities",
            Json(r#"{"kind": "note", "note": "hello {new}"}"#),
            [401, 401, 404, 201, 201],
        ),
        r(
            M::POST,
            "/api/v1/leads/{lead}/activities",
            Json(r#"{"kind": "call", "outcome": "connected"}"#),
            [401, 401, 404, 201, 201],
        ),
        r(
            M::POST,
            "/api/v1/leads/{lead}/videos",
            Video,
            [401, 401, 404, 201, 201],
        ),
        r(
            M::POST,
            "/api/v1/leads/{lead}/videos/{video}/send",
            None,
            [401, 401, 404, 200, 200],
        ),
        r(
            M::POST,
            "/api/v1/leads/{lead}/claim",
            None,
            [401, 401, 409, 200, 409],
        ),
        r(
            M::GET,
            "/api/v1/leads/{lead}/consents",
            None,
            [401, 401, 404, 200, 200],
        ),
        r(M::GET, "/api/v1/pond", None, [401, 401, 200, 200, 200]),
        r(M::GET, "/api/v1/intakes", None, [401, 401, 403, 403, 200]),
        r(
            M::POST,
            "/api/v1/intakes",
            Json(r#"{"source": "authz-{new}"}"#),
            [401, 401, 403, 403, 201],
        ),
        r(M::GET, "/api/v1/tasks", None, [401, 401, 200, 200, 200]),
        r(
            M::GET,
            "/api/v1/tasks?assignee={agent}&status=all",
            None,
            [401, 401, 403, 200, 200],
        ),
        r(
            M::GET,
            "/api/v1/tasks?assignee=all",
            None,
            [401, 401, 403, 403, 200],
        ),
        r(
            M::GET,
            "/api/v1/tasks?lead_id={lead}&status=all",
            None,
            [401, 401, 200, 200, 200],
        ),
        r(
            M::POST,
            "/api/v1/tasks/{task}/complete",
            Json(r#"{"outcome": "voicemail"}"#),
            [401, 401, 404, 200, 200],
        ),
        r(M::GET, "/api/v1/plans", None, [401, 401, 200, 200, 200]),
        r(
            M::GET,
            "/api/v1/plans/nurture",
            None,
            [401, 401, 200, 200, 200],
        ),
        r(
            M::PUT,
            "/api/v1/plans/nurture",
            Plan,
            [401, 401, 403, 403, 200],
        ),
        r(M::GET, "/api/v1/templates", None, [401, 401, 200, 200, 200]),
        r(
            M::GET,
            "/api/v1/templates/{template}",
            None,
            [401, 401, 200, 200, 200],
        ),
        r(
            M::PUT,
            "/api/v1/templates/{template}",
            Template,
            [401, 401, 403, 403, 200],
        ),
        r(M::GET, "/api/v1/users", None, [401, 401, 403, 403, 200]),
        r(
            M::POST,
            "/api/v1/users",
            Json(r#"{"email": "u-{new}@example.com", "name": "U", "role": "admin"}"#),
            [401, 401, 403, 403, 201],
        ),
        r(
            M::PATCH,
            "/api/v1/users/{user}",
            Json(r#"{"role": "admin"}"#),
            [401, 401, 403, 403, 200],
        ),
        r(
            M::DELETE,
            "/api/v1/users/{user}",
            None,
            [401, 401, 403, 403, 200],
        ),
        r(M::GET, "/api/v1/me", None, [401, 401, 200, 200, 200]),
        r(M::GET, "/api/v1/team", None, [401, 401, 200, 200, 200]),
        r(
            M::PATCH,
            "/api/v1/team",
            Json(r#"{"escalation_minutes": 61}"#),
            [401, 401, 403, 403, 200],
        ),
        r(M::GET, "/api/v1/outbox", None, [401, 401, 200, 200, 200]),
        r(
            M::GET,
            "/api/v1/reports/summary",
            None,
            [401, 401, 200, 200, 200],
        ),
        r(
            M::GET,
            "/api/v1/notifications/stream",
            None,
            [401, 401, 200, 200, 200],
        ),
        r(
            M::GET,
            "/api/v1/openapi.json",
            None,
            [200, 200, 200, 200, 200],
        ),
        r(M::GET, "/healthz", None, [200, 200, 200, 200, 200]),
        r(M::GET, "/metrics", None, [200, 200, 200, 200, 200]),
    ]
}

/// Per route: two fresh leads (A's and B's), each with an open task and a video, and a spare
/// agent for the user routes.
struct Fixture {
    leads: [i64; 2],
    emails: [String; 2],
    tasks: [i64; 2],
    videos: [i64; 2],
    user: i64,
    user_email: String,
}

struct World {
    app: TestApp,
    a: String,
    b: String,
    plan_source: String,
    template: Value,
}

impl World {
    async fn new() -> World {
        let limits = relentless_web::limits::Limits {
            // This test presents ~50 wrong tokens from one address on purpose.
            auth_failures_per_ip: 100_000,
            ..Default::default()
        };
        let app = TestApp::spawn_limited(Config::default(), limits).await;
        let (_, a) = app.agent("a@example.com").await;
        let (_, b) = app.agent("b@example.com").await;
        let (_, plan) = app.get(&app.admin, "/api/v1/plans/nurture").await;
        let (_, templates) = app.get(&app.admin, "/api/v1/templates").await;
        let template = templates["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["channel"] == "email")
            .unwrap()
            .clone();
        World {
            plan_source: plan["source"].as_str().unwrap().to_string(),
            template,
            app,
            a,
            b,
        }
    }

    async fn fixture(&self, n: usize) -> Fixture {
        let app = &self.app;
        let mut leads = [0; 2];
        let mut emails = [String::new(), String::new()];
        let mut tasks = [0; 2];
        let mut videos = [0; 2];
        for (i, (token, name)) in [(&self.a, "Own"), (&self.b, "Secret")]
            .into_iter()
            .enumerate()
        {
            let email = format!("{}{n}@example.com", name.to_lowercase());
            let (s, l) = app
                .post(
                    token,
                    "/api/v1/leads",
                    json!({"first_name": format!("{name}{n}"), "last_name": "Lead", "email": email,
                           "phone": format!("+1512555{:04}", n * 2 + i)}),
                )
                .await;
            assert_eq!(s, 201, "{l}");
            leads[i] = l["id"].as_i64().unwrap();
            // The admin re-submits it: an inquiry is engagement, a call task due now.
            let (s, _) = app
                .post(&app.admin, "/api/v1/leads", json!({"email": email}))
                .await;
            assert_eq!(s, 200);
            let (_, t) = app
                .get(
                    &app.admin,
                    &format!("/api/v1/tasks?assignee=all&lead_id={}", leads[i]),
                )
                .await;
            tasks[i] = t["items"][0]["id"].as_i64().expect("an open task");
            let res = app
                .client
                .post(format!("{}/api/v1/leads/{}/videos", app.base, leads[i]))
                .bearer_auth(&app.admin)
                .header("content-type", "video/webm")
                .body(b"\x1aE\xdf\xa3 not really a video".to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            videos[i] = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
            emails[i] = email;
        }
        let user_email = format!("c{n}@example.com");
        let (s, u) = app
            .post(
                &app.admin,
                "/api/v1/users",
                json!({"email": user_email, "name": "Spare", "role": "agent"}),
            )
            .await;
        assert_eq!(s, 201, "{u}");
        for id in leads {
            // What is due now (the speed-to-lead email) is sent before the matrix runs.
            let now = jiff::Timestamp::now().to_string();
            app.wait_touches(id, "due touches settled", |t| {
                !t.iter().any(|t| {
                    t["status"] == "scheduled" && t["due_at"].as_str().unwrap() <= now.as_str()
                })
            })
            .await;
        }
        Fixture {
            leads,
            emails,
            tasks,
            videos,
            user: u["id"].as_i64().unwrap(),
            user_email,
        }
    }

    /// Everything an admin can see that a request could change.
    async fn snapshot(&self, f: &Fixture) -> String {
        let mut out = String::new();
        let mut paths = vec![
            "/api/v1/leads?limit=200".to_string(),
            "/api/v1/tasks?assignee=all&status=all&limit=200".into(),
            "/api/v1/outbox?limit=200".into(),
            "/api/v1/users".into(),
            "/api/v1/team".into(),
            "/api/v1/plans".into(),
            "/api/v1/templates".into(),
            "/api/v1/intakes".into(),
        ];
        for id in f.leads {
            paths.push(format!("/api/v1/leads/{id}/timeline?limit=200"));
            paths.push(format!("/api/v1/leads/{id}/touches"));
            paths.push(format!("/api/v1/leads/{id}/consents"));
        }
        for p in paths {
            let (_, v) = self.app.get(&self.app.admin, &p).await;
            out.push_str(&p);
            out.push_str(&v.to_string());
            out.push('\n');
        }
        out
    }
}

fn fill(s: &str, actor: Actor, f: &Fixture, n: usize, w: &World) -> String {
    // Anonymous and wrong-token requests aim at agent A's lead; the others as named.
    let i = match actor {
        Actor::OtherAgent | Actor::Admin => 1,
        _ => 0,
    };
    s.replace("{lead}", &f.leads[i].to_string())
        .replace("{lead_email}", &f.emails[i])
        .replace("{task}", &f.tasks[i].to_string())
        .replace("{video}", &f.videos[i].to_string())
        .replace(
            "{agent}",
            if i == 0 {
                "a@example.com"
            } else {
                "b@example.com"
            },
        )
        .replace("{user}", &f.user.to_string())
        .replace("{user_email}", &f.user_email)
        .replace("{template}", w.template["slug"].as_str().unwrap())
        .replace("{new}", &format!("{n}-{actor:?}").to_lowercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_kind_of_caller_as_the_rules_say() {
    let w = World::new().await;
    let app = &w.app;
    let mut failures = Vec::new();
    let mut requests = 0;
    for (n, route) in routes().into_iter().enumerate() {
        let f = w.fixture(n).await;
        for (actor, expect) in ACTORS.into_iter().zip(route.expect) {
            let path = fill(route.path, actor, &f, n, &w);
            let mut req = app
                .client
                .request(route.method.clone(), format!("{}{path}", app.base));
            req = match actor {
                Actor::Anonymous => req,
                Actor::WrongToken => req.bearer_auth(format!("rl_{}", "0".repeat(64))),
                Actor::OtherAgent | Actor::OwnAgent => req.bearer_auth(&w.a),
                Actor::Admin => req.bearer_auth(&app.admin),
            };
            req = match &route.body {
                Body::None => req,
                Body::Json(t) => req
                    .header("content-type", "application/json")
                    .body(fill(t, actor, &f, n, &w)),
                Body::Video => req.header("content-type", "video/webm").body(&b"webm"[..]),
                Body::Csv(t) => req
                    .header("content-type", "text/csv")
                    .body(fill(t, actor, &f, n, &w)),
                Body::Plan => req.json(&json!({"source": w.plan_source})),
                Body::Template => req.json(&json!({
                    "subject": w.template["subject"],
                    "body": w.template["body"],
                })),
            };
            let refusal = expect >= 400;
            let before = if refusal || route.method == Method::GET {
                Some(w.snapshot(&f).await)
            } else {
                None
            };
            let res = req.send().await.unwrap();
            requests += 1;
            let status = res.status().as_u16();
            // The notification stream never ends: read what is there within a moment.
            let body = tokio::time::timeout(Duration::from_millis(300), res.text())
                .await
                .map(|r| r.unwrap_or_default())
                .unwrap_or_default();
            let what = format!("{} {} as {actor:?}", route.method, route.path);
            if status != expect {
                failures.push(format!("{what}: {status}, expected {expect}: {body}"));
            }
            // Agent A never sees a thing of agent B's lead.
            if matches!(actor, Actor::OtherAgent | Actor::OwnAgent)
                && (body.contains(&f.emails[1]) || body.contains(&format!("Secret{n}")))
            {
                failures.push(format!("{what}: leaks agent B's lead: {body}"));
            }
            if let Some(before) = before {
                let after = w.snapshot(&f).await;
                if before != after {
                    failures.push(format!("{what}: answered {status} and changed something"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {requests} answers break the rules:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("authorization matrix: {requests} requests, all as the rules say");
}

/// The tracking token in an email sent to `lead` (from the outbox copy's links). The lead must
/// be in a zone where it is daytime (`day_zone`): at night its speed-to-lead text (and with no
/// phone, its email fallback) waits for the morning.
async fn tracking_token(app: &TestApp, lead: i64) -> String {
    for _ in 0..200 {
        if let Some(m) = app
            .outbox_for(lead)
            .await
            .into_iter()
            .find(|m| m["channel"] == "email")
        {
            let body = m["body"].as_str().unwrap();
            let t = body
                .split("/u/")
                .nth(1)
                .expect("an unsubscribe link")
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect::<String>();
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no email for lead {lead}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_pages_refuse_bad_credentials_and_change_nothing() {
    const AUTH: &str = "authz-twilio-token";
    let config = Config {
        twilio_auth_token: Some(AUTH.into()),
        inbound_email_token: Some("inbound-secret-token-0123456789abcdef".into()),
        ..Config::default()
    };
    let limits = relentless_web::limits::Limits {
        auth_failures_per_ip: 100_000,
        ..Default::default()
    };
    let app = TestApp::spawn_limited(config, limits).await;
    let (s, lead) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"first_name": "Pat", "email": "pat@example.com", "timezone": day_zone()}),
        )
        .await;
    assert_eq!(s, 201);
    let id = lead["id"].as_i64().unwrap();
    let token = tracking_token(&app, id).await;
    let (_, intake) = app
        .post(&app.admin, "/api/v1/intakes", json!({"source": "web"}))
        .await;
    let intake_token = intake["email_token"].as_str().unwrap().to_string();
    let bad = "0123456789abcdef0123456789abcdef";
    let snapshot = || async {
        let mut s = String::new();
        for p in [
            "/api/v1/leads?limit=200".to_string(),
            format!("/api/v1/leads/{id}/timeline?limit=200"),
            format!("/api/v1/leads/{id}/touches"),
            "/api/v1/tasks?assignee=all&status=all".into(),
            "/api/v1/outbox".into(),
        ] {
            s.push_str(&app.get(&app.admin, &p).await.1.to_string());
        }
        s
    };
    let sms_url = format!("{}/webhooks/twilio/sms", app.base);
    let params = vec![
        ("From".to_string(), "+15125550199".to_string()),
        (
            "Body".to_string(),
            "Hi, is the house still for sale?".to_string(),
        ),
        ("MessageSid".to_string(), "SMauthz1".to_string()),
    ];
    // (what, request, expected status); each must change nothing.
    let c = &app.client;
    let b = &app.base;
    let refused: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "intake, unknown token",
            c.post(format!("{b}/webhooks/leads/{bad}"))
                .json(&json!({"email": "x@example.com"})),
            404,
        ),
        (
            "intake, not a token",
            c.post(format!("{b}/webhooks/leads/..%2F..%2Fapi"))
                .json(&json!({"email": "x@example.com"})),
            404,
        ),
        (
            "twilio sms, no signature",
            c.post(&sms_url).form(&params),
            403,
        ),
        (
            "twilio sms, wrong signature",
            c.post(&sms_url)
                .header("X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
                .form(&params),
            403,
        ),
        (
            "twilio sms, signed with another key",
            c.post(&sms_url)
                .header(
                    "X-Twilio-Signature",
                    relentless_core::twilio::signature("other", &sms_url, &params),
                )
                .form(&params),
            403,
        ),
        (
            "twilio status, no signature",
            c.post(format!("{b}/webhooks/twilio/status"))
                .form(&[("MessageSid", "SM1"), ("MessageStatus", "delivered")]),
            403,
        ),
        (
            "inbound email, no token",
            c.post(format!("{b}/webhooks/email/inbound"))
                .body("From: pat@example.com\r\n\r\nhi"),
            404,
        ),
        (
            "inbound email, wrong token",
            c.post(format!("{b}/webhooks/email/inbound?token={bad}"))
                .body("From: pat@example.com\r\n\r\nhi"),
            404,
        ),
        (
            "click, unknown token",
            c.get(format!("{b}/t/{bad}/c/0")),
            404,
        ),
        (
            "click, link number out of range",
            c.get(format!("{b}/t/{token}/c/999")),
            404,
        ),
        (
            "unsubscribe page, unknown token",
            c.get(format!("{b}/u/{bad}")),
            404,
        ),
        (
            "unsubscribe, unknown token",
            c.post(format!("{b}/u/{bad}")),
            404,
        ),
        (
            "video page, unknown token",
            c.get(format!("{b}/v/{bad}")),
            404,
        ),
        (
            "video page, an email's token",
            c.get(format!("{b}/v/{token}")),
            404,
        ),
        (
            "video file, unknown token",
            c.get(format!("{b}/v/{bad}/file")),
            404,
        ),
        (
            "video event, unknown token",
            c.post(format!("{b}/v/{bad}/events"))
                .json(&json!({"event": "play"})),
            404,
        ),
        (
            "sign-in page, unknown token",
            c.get(format!("{b}/signin/{bad}")),
            404,
        ),
        (
            "open pixel, unknown token",
            c.get(format!("{b}/t/{bad}/o.gif")),
            200,
        ),
    ];
    let mut failures = Vec::new();
    for (what, req, expect) in refused {
        let before = snapshot().await;
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        if status != expect {
            failures.push(format!("{what}: {status}, expected {expect}"));
        }
        if snapshot().await != before {
            failures.push(format!("{what}: changed something"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The same edges with good credentials do their work.
    let sig = relentless_core::twilio::signature(AUTH, &sms_url, &params);
    let res = c
        .post(&sms_url)
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = c
        .post(format!("{b}/webhooks/leads/{intake_token}"))
        .json(&json!({"email": "form@example.com", "name": "Form Lead"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(
        c.get(format!("{b}/u/{token}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{b}/signin/{intake_token}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_intake_and_api_tokens_carry_at_least_128_random_bits() {
    let app = TestApp::spawn().await;
    let mut seen = std::collections::HashSet::new();
    for i in 0..20 {
        let (_, intake) = app
            .post(
                &app.admin,
                "/api/v1/intakes",
                json!({"source": format!("s{i}")}),
            )
            .await;
        let t = intake["email_token"].as_str().unwrap().to_string();
        assert!(intake["url"].as_str().unwrap().ends_with(&t));
        // 32 hex digits = 128 bits, each token different.
        assert_eq!(t.len(), 32, "{t}");
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
        assert!(seen.insert(t));
    }
    // Tracking tokens: the instant they were made (12 hex digits of milliseconds, so that
    // one batch's tokens sit together in the index that finds them), then 128 random bits.
    let mut made = Vec::new();
    for i in 0..5 {
        let before = relentless_engine::now_ms();
        let (_, l) = app
            .post(
                &app.admin,
                "/api/v1/leads",
                json!({"first_name": "T", "email": format!("t{i}@example.com"), "timezone": day_zone()}),
            )
            .await;
        let t = tracking_token(&app, l["id"].as_i64().unwrap()).await;
        let after = relentless_engine::now_ms();
        assert_eq!(t.len(), 44, "{t}");
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
        let at = i64::from_str_radix(&t[..12], 16).unwrap();
        assert!(
            (before..=after).contains(&at),
            "{t}: made at {at}, not in {before}..={after}"
        );
        assert!(
            seen.insert(t[12..].to_string()),
            "random part repeated: {t}"
        );
        made.push(t);
    }
    let mut sorted = made.clone();
    sorted.sort();
    assert_eq!(made, sorted, "tokens made later sort after earlier ones");
    // API tokens: rl_ + 64 hex digits (256 bits).
    let api = app.engine.create_token("admin@example.com").await.unwrap();
    assert_eq!(api.len(), 3 + 64);
    assert!(api[3..].bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracked_link_redirects_only_to_the_link_stored_for_that_message() {
    let (app, mails) = smtp_app().await;
    // A template whose email carries one link.
    let (s, v) = app
        .put(
            &app.admin,
            "/api/v1/templates/authz-link",
            json!({"channel": "email", "name": "Link", "subject": "A home for you",
                   "body": "Hi {{ lead.first_name }}, see https://homes.example.com/listing/42 today."}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = app.put(&app.admin, "/api/v1/plans/authz-link", json!({"source": "slug='authz-link'\nname='Link'\n[[steps]]\nafter='+0m'\nchannel='email'\ntemplate='authz-link'\n"})).await;
    assert_eq!(s, 200, "{v}");
    let (_, l) = app
        .post(
            &app.admin,
            "/api/v1/leads?plan=authz-link",
            json!({"first_name": "Robin", "email": "robin@example.com"}),
        )
        .await;
    assert!(l["id"].is_i64(), "{l}");
    let body = email_html(&mails, Some("A home for you")).await;
    assert!(
        !body.contains("href=\"https://homes.example.com"),
        "the link points at the tracker; the target stays server-side: {body}"
    );
    let click = body
        .split(&format!("{}/t/", app.base))
        .find_map(|s| s.split_once("/c/").map(|(t, n)| (t.to_string(), n)))
        .map(|(t, n)| {
            let n: String = n.chars().take_while(char::is_ascii_digit).collect();
            (t, n)
        })
        .expect("a rewritten link");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirects
        .get(format!("{}/t/{}/c/{}", app.base, click.0, click.1))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(
        res.headers()["location"],
        "https://homes.example.com/listing/42"
    );
    // Nothing in the request can choose the target: query strings, other numbers, encoded
    // URLs in the path are all refused or ignored.
    for path in [
        format!("/t/{}/c/{}?url=https://evil.example.net", click.0, click.1),
        format!("/t/{}/c/{}?next=//evil.example.net", click.0, click.1),
    ] {
        let res = no_redirects
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers()["location"],
            "https://homes.example.com/listing/42",
            "{path}"
        );
    }
    for path in [
        format!("/t/{}/c/7", click.0),
        format!("/t/{}/c/https%3A%2F%2Fevil.example.net", click.0),
        format!("/t/{}/c/-1", click.0),
        "/t/https%3A%2F%2Fevil.example.net/c/0".to_string(),
        "/t/..%2F..%2Fevil/c/0".to_string(),
    ] {
        let res = no_redirects
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_client_error(),
            "{path}: {} {:?}",
            res.status(),
            res.headers().get("location")
        );
        assert!(res.headers().get("location").is_none(), "{path}");
    }
}

/// Everything the app logs, at every level, while the test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_reach_the_logs_even_at_trace_level() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    // This binary's only subscriber: set for the whole process, other tests log here too.
    let _ = tracing::subscriber::set_global_default(subscriber);
    let config = Config {
        inbound_email_token: Some("inbound-secret-token-fedcba9876543210".into()),
        twilio_auth_token: Some("twilio-secret-auth-token".into()),
        ..Config::default()
    };
    let app = TestApp::spawn_limited(config, Default::default()).await;
    let (_, l) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"first_name": "Logan", "email": "logan@example.com", "timezone": day_zone()}),
        )
        .await;
    let tracking = tracking_token(&app, l["id"].as_i64().unwrap()).await;
    let (_, intake) = app
        .post(&app.admin, "/api/v1/intakes", json!({"source": "web"}))
        .await;
    let intake_token = intake["email_token"].as_str().unwrap().to_string();
    let wrong = format!("rl_{}", "7".repeat(64));
    let c = &app.client;
    let b = &app.base;
    app.get(&wrong, "/api/v1/leads").await;
    app.get(&app.admin, "/api/v1/leads/999999").await;
    c.get(format!("{b}/t/{tracking}/o.gif"))
        .send()
        .await
        .unwrap();
    c.get(format!("{b}/t/{tracking}/c/5")).send().await.unwrap();
    c.get(format!("{b}/u/{tracking}")).send().await.unwrap();
    c.get(format!("{b}/v/{tracking}")).send().await.unwrap();
    c.post(format!("{b}/webhooks/leads/{intake_token}"))
        .json(&json!({"email": "not an email"}))
        .send()
        .await
        .unwrap();
    c.get(format!("{b}/signin/{intake_token}"))
        .send()
        .await
        .unwrap();
    c.post(format!(
        "{b}/webhooks/email/inbound?token=inbound-secret-token-fedcba9876543210"
    ))
    .body("not a message")
    .send()
    .await
    .unwrap();
    c.post(format!("{b}/webhooks/twilio/sms"))
        .header("X-Twilio-Signature", "c2lnbmF0dXJlLXNlY3JldA==")
        .form(&[("From", "+15125550100"), ("Body", "hi")])
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert!(
        text.contains("/api/v1/leads"),
        "requests are logged at trace level: {}",
        &text[..text.len().min(2000)]
    );
    for (name, secret) in [
        ("admin API token", app.admin.as_str()),
        ("admin API token (hex)", &app.admin[3..]),
        ("wrong API token", wrong.as_str()),
        ("tracking token", tracking.as_str()),
        ("intake token", intake_token.as_str()),
        (
            "inbound email token",
            "inbound-secret-token-fedcba9876543210",
        ),
        ("Twilio auth token", "twilio-secret-auth-token"),
        ("Twilio signature", "c2lnbmF0dXJlLXNlY3JldA=="),
    ] {
        if let Some(at) = text.find(secret) {
            let from = text[..at].rfind('\n').unwrap_or(0);
            panic!(
                "the {name} is in the logs: {}",
                &text[from..(at + secret.len() + 200).min(text.len())]
            );
        }
    }
}

/// A loopback SMTP server that keeps every message.
#[derive(Clone, Default)]
struct Smtp {
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    current: Vec<u8>,
}

impl mailin_embedded::Handler for Smtp {
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> mailin_embedded::Response {
        self.received
            .lock()
            .unwrap()
            .push(std::mem::take(&mut self.current));
        mailin_embedded::response::OK
    }
}

/// An app whose emails go to a loopback SMTP server; the messages it got.
async fn smtp_app() -> (TestApp, Arc<Mutex<Vec<Vec<u8>>>>) {
    let smtp = Smtp::default();
    let mails = smtp.received.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut server = mailin_embedded::Server::new(smtp);
    server
        .with_name("mx.test.local")
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    let router = relentless_engine::channels::Router {
        email: Arc::new(
            relentless_engine::channels::email::SmtpChannel::from_url(
                &format!("smtp://127.0.0.1:{port}"),
                "team@mail.example.com",
            )
            .unwrap(),
        ),
        sms: Arc::new(relentless_engine::channels::outbox::Outbox),
    };
    (
        TestApp::spawn_with(Config::default(), Arc::new(router)).await,
        mails,
    )
}

/// The HTML part of the first email the SMTP server got with `subject` (any, when None).
async fn email_html(mails: &Arc<Mutex<Vec<Vec<u8>>>>, subject: Option<&str>) -> String {
    for _ in 0..200 {
        for raw in mails.lock().unwrap().iter() {
            let msg = mail_parser::MessageParser::default().parse(raw).unwrap();
            if subject.is_none_or(|s| msg.subject() == Some(s)) {
                return msg.body_html(0).expect("an HTML part").to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no email {subject:?} at the SMTP server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_named_script_is_text_in_the_email_and_the_video_and_unsubscribe_pages() {
    let (app, mails) = smtp_app().await;
    let evil = "<script>alert(1)</script>";
    let (s, l) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"first_name": evil, "last_name": "<img src=x onerror=alert(2)>", "email": "evil@example.com",
                   "timezone": day_zone()}),
        )
        .await;
    assert_eq!(s, 201, "{l}");
    let id = l["id"].as_i64().unwrap();
    // The API gives the name back as it was typed (JSON is not HTML).
    assert_eq!(l["first_name"], evil);

    // The speed-to-lead email, as the SMTP server got it.
    let html = email_html(&mails, None).await;
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    let token: String = html
        .split("/t/")
        .nth(1)
        .expect("a tracking link")
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();

    let unsubscribe = app
        .client
        .get(format!("{}/u/{token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unsubscribe.status(), 200);
    let unsubscribe = unsubscribe.text().await.unwrap();
    let res = app
        .client
        .post(format!("{}/api/v1/leads/{id}/videos", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "video/mp4")
        .body(&b"mp4"[..])
        .send()
        .await
        .unwrap();
    let v = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let (_, sent) = app
        .post(
            &app.admin,
            &format!("/api/v1/leads/{id}/videos/{v}/send"),
            json!({}),
        )
        .await;
    let video = app
        .client
        .get(sent["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        video.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the name shows as text: {video}"
    );
    for page in [&unsubscribe, &video] {
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img src=x"), "{page}");
    }
}
