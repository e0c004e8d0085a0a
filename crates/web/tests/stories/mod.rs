//! The HTTP stories: driven through the real router over a real database, as a client
//! would. Included by `api.rs` (SQLite) and `api_postgres.rs` (PostgreSQL), each of which
//! defines `BACKEND`: one set of stories, both backends.

mod app;

use super::BACKEND;
use super::common::{TestApp, day_zone, night_zone};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap()
}

#[tokio::test]
async fn new_lead_gets_speed_to_lead_text_at_once_and_relentless_21() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (s, lead) = app.post(&app.admin, "/api/v1/leads", json!({"first_name": "Jo", "last_name": "Doe", "phone": "(512) 555-0134", "email": "Jo@Example.com", "timezone": day_zone()})).await;
    assert_eq!(s, StatusCode::CREATED, "{lead}");
    assert_eq!(lead["phone"], "+15125550134");
    assert_eq!(lead["level"], "warm");
    assert_eq!(lead["stage"], "new");
    assert!(lead["created_at"].as_str().unwrap().ends_with('Z'));
    let plans: Vec<&str> = lead["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["plan"].as_str().unwrap())
        .collect();
    assert_eq!(plans, ["speed-to-lead", "relentless-21"]);
    let touches = app
        .wait_touches(id(&lead), "first text sent", |t| {
            t.iter().any(|t| t["status"] == "sent")
        })
        .await;
    // 2 speed-to-lead touches + relentless-21 without its first two (covered) = 13 touches.
    assert_eq!(touches.len(), 13, "{touches:#?}");
    assert_eq!(
        touches
            .iter()
            .filter(|t| t["plan"] == "relentless-21")
            .count(),
        11
    );
    let first = &touches[0];
    assert_eq!(
        (
            first["plan"].as_str(),
            first["channel"].as_str(),
            first["status"].as_str()
        ),
        (Some("speed-to-lead"), Some("text"), Some("sent"))
    );
    let outbox = app.outbox_for(id(&lead)).await;
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["to"], "+15125550134");
    assert!(
        outbox[0]["body"].as_str().unwrap().contains("Jo"),
        "{}",
        outbox[0]["body"]
    );
    assert_eq!(outbox[0]["status"], "not_delivered");
    // The touch holds the message; its timeline entry says what happened and points at it.
    assert_eq!(first["content"], outbox[0]["body"]);
    let (_, timeline) = app
        .get(&app.admin, &format!("/api/v1/leads/{}/timeline", id(&lead)))
        .await;
    let sent: Vec<&Value> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "touch_sent")
        .collect();
    assert_eq!(sent.len(), 1, "{timeline:#}");
    assert_eq!(sent[0]["detail"], "Text sent to the outbox (not delivered)");
    assert_eq!(sent[0]["data"], json!({"touch_id": first["id"]}));
    let (_, l) = app
        .get(&app.admin, &format!("/api/v1/leads/{}", id(&lead)))
        .await;
    assert_eq!(l["attempts"], 1);
    assert_eq!(l["stage"], "attempting");
    // The video ends relentless-21 on day 21.
    assert_eq!(touches.last().unwrap()["channel"], "video");
}

#[tokio::test]
async fn a_lead_at_night_is_texted_at_the_window_opening_not_now() {
    let app = TestApp::spawn_on(BACKEND).await;
    let zone = night_zone();
    let (s, lead) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"first_name": "Night", "phone": "+15125550135", "timezone": zone}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{lead}");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let touches = app.touches(id(&lead)).await;
    let text = &touches
        .iter()
        .find(|t| t["plan"] == "speed-to-lead" && t["planned_channel"] == "text")
        .unwrap();
    assert_eq!(text["status"], "scheduled", "{text}");
    let due: jiff::Timestamp = text["due_at"].as_str().unwrap().parse().unwrap();
    let local = due.in_tz(&zone).unwrap();
    assert_eq!(
        (local.hour(), local.minute()),
        (8, 0),
        "due {due} in {zone}"
    );
    assert!(
        text["reason"].as_str().unwrap().contains("sending window"),
        "{text}"
    );
    assert!(
        app.outbox_for(id(&lead)).await.is_empty(),
        "nothing is sent at night"
    );
}

#[tokio::test]
async fn same_email_merges_and_counts_as_engagement() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, a) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"first_name": "Ann", "email": "ann@example.com", "tags": ["zillow"]}),
        )
        .await;
    let (s, b) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"email": "ANN@example.com", "phone": "+15125550136", "tags": ["open-house"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["merged"], true);
    assert_eq!(id(&a), id(&b));
    assert_eq!(b["phone"], "+15125550136");
    assert_eq!(b["tags"], json!(["zillow", "open-house"]));
    assert_eq!(b["level"], "hot");
    // Not restarted: still one speed-to-lead enrollment.
    assert_eq!(
        b["enrollments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["plan"] == "speed-to-lead")
            .count(),
        1
    );
    let (_, tasks) = app.get(&app.admin, "/api/v1/tasks?assignee=all").await;
    assert!(
        tasks["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["lead_id"] == id(&a) && t["kind"] == "call" && t["touch_id"].is_null())
    );
}

#[tokio::test]
async fn invalid_input_lists_every_bad_field_and_writes_nothing() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (s, p) = app.post(&app.admin, "/api/v1/leads", json!({"phone": "12", "email": "not-an-email", "timezone": "Mars/Olympus", "level": "lukewarm", "tags": "a", "bogus": 1})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in ["phone", "email", "timezone", "level", "bogus"] {
        assert!(fields.contains(&f), "{f} missing from {p}");
    }
    let (s, p) = app
        .post(&app.admin, "/api/v1/leads", json!({"first_name": "Nobody"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let (s, p) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"first_name": 5, "email": "ok@example.com"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["errors"][0]["field"], "first_name");
    let (s, p) = app
        .post(
            &app.admin,
            "/api/v1/leads?plan=no-such-plan",
            json!({"email": "ok@example.com"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["errors"][0]["field"], "plan");
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-plan"),
        "{p}"
    );
    let (_, list) = app.get(&app.admin, "/api/v1/leads").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn malformed_wrong_type_and_oversize_bodies_get_problems() {
    let app = TestApp::spawn_on(BACKEND).await;
    let res = app
        .client
        .post(format!("{}/api/v1/leads", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = app
        .client
        .post(format!("{}/api/v1/leads", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!("{{\"notes\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let res = app
        .client
        .post(format!("{}/api/v1/leads", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let res = app
        .client
        .get(format!("{}/api/v1/leads", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .client
        .get(format!("{}/api/v1/leads", app.base))
        .bearer_auth("rl_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn agents_see_only_their_own_leads() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, alice) = app.agent("alice@example.com").await;
    let (_, bob) = app.agent("bob@example.com").await;
    let (s, lead) = app
        .post(
            &alice,
            "/api/v1/leads",
            json!({"email": "lead@example.com"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        lead["assigned_to"], "alice@example.com",
        "the creating agent owns it"
    );
    let path = format!("/api/v1/leads/{}", id(&lead));
    assert_eq!(app.get(&bob, &path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&bob, &format!("{path}/touches")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.patch(&bob, &path, json!({"stage": "lost"})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.delete(&bob, &path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&alice, &path).await.0, StatusCode::OK);
    assert_eq!(app.get(&app.admin, &path).await.0, StatusCode::OK);
    let (_, list) = app.get(&bob, "/api/v1/leads").await;
    assert!(list["items"].as_array().unwrap().is_empty());
    assert_eq!(
        app.get(&bob, "/api/v1/users").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.put(&bob, "/api/v1/templates/x", json!({})).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn admin_created_leads_go_round_robin_among_agents() {
    let app = TestApp::spawn_on(BACKEND).await;
    app.agent("a1@example.com").await;
    app.agent("a2@example.com").await;
    let mut owners = Vec::new();
    for i in 0..4 {
        let (_, l) = app
            .post(
                &app.admin,
                "/api/v1/leads",
                json!({"email": format!("rr{i}@example.com")}),
            )
            .await;
        owners.push(l["assigned_to"].as_str().unwrap().to_string());
    }
    assert_ne!(owners[0], owners[1]);
    assert_eq!(owners[0], owners[2]);
    assert_eq!(owners[1], owners[3]);
}

#[tokio::test]
async fn connected_call_stops_plans_and_gives_a_reply_task() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, lead) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"first_name": "Cal", "phone": "+15125550137", "email": "cal@example.com"}),
        )
        .await;
    let lid = id(&lead);
    let (s, a) = app
        .post(
            &app.admin,
            &format!("/api/v1/leads/{lid}/activities"),
            json!({"kind": "call", "outcome": "connected", "note": "wants a tour"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let (_, l) = app.get(&app.admin, &format!("/api/v1/leads/{lid}")).await;
    assert_eq!(l["stage"], "contacted");
    assert_eq!(
        l["preferred_channel"], "call",
        "learned from the first answer"
    );
    for e in l["enrollments"].as_array().unwrap() {
        assert_eq!(
            (e["state"].as_str(), e["reason"].as_str()),
            (Some("stopped"), Some("replied")),
            "{e}"
        );
    }
    // A touch the dispatcher was sending at that moment (shown `scheduled` until it is
    // recorded) settles on its own; every other is cancelled at once.
    let touches = app
        .wait_touches(lid, "no touch left scheduled", |t| {
            t.iter().all(|t| t["status"] != "scheduled")
        })
        .await;
    assert!(touches.iter().any(|t| t["status"] == "cancelled"));
    let (_, tasks) = app
        .get(
            &app.admin,
            &format!("/api/v1/tasks?assignee=all&lead_id={lid}"),
        )
        .await;
    assert!(
        tasks["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"] == "reply" && t["status"] == "open"),
        "{tasks}"
    );
}

#[tokio::test]
async fn opted_out_text_falls_back_to_email_or_is_skipped_with_a_reason() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, both) = app.post(&app.admin, "/api/v1/leads", json!({"phone": "+15125550138", "email": "both@example.com", "sms_opt_out": true, "timezone": day_zone()})).await;
    let t = app
        .wait_touches(id(&both), "fallback email", |t| {
            t.iter().any(|t| t["status"] == "sent")
        })
        .await;
    assert_eq!(t[0]["channel"], "email", "{:#?}", t[0]);
    let out = app.outbox_for(id(&both)).await;
    assert!(
        out.iter().all(|m| m["channel"] == "email"),
        "no text to an opted-out number: {out:#?}"
    );
    assert!(
        out[0]["body"]
            .as_str()
            .unwrap()
            .contains("1 Main St, Austin, TX"),
        "postal address in the footer"
    );

    let (_, phone_only) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"phone": "+15125550139", "sms_opt_out": true, "timezone": day_zone()}),
        )
        .await;
    let t = app
        .wait_touches(id(&phone_only), "skip", |t| {
            t.iter().any(|t| t["status"] == "skipped")
        })
        .await;
    assert!(
        t[0]["reason"]
            .as_str()
            .unwrap()
            .contains("opted out of texts"),
        "{:#?}",
        t[0]
    );
    assert!(app.outbox_for(id(&phone_only)).await.is_empty());
}

#[tokio::test]
async fn a_lead_with_every_channel_blocked_leaves_its_plans() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, lead) = app.post(&app.admin, "/api/v1/leads", json!({"phone": "+15125550140", "sms_opt_out": true, "do_not_call": true, "timezone": day_zone()})).await;
    app.wait_touches(id(&lead), "all settled", |t| {
        t.iter().all(|t| t["status"] != "scheduled")
    })
    .await;
    let (_, l) = app
        .get(&app.admin, &format!("/api/v1/leads/{}", id(&lead)))
        .await;
    assert!(
        l["enrollments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["state"] == "stopped" && e["reason"] == "every channel is blocked"),
        "{l}"
    );
}

#[tokio::test]
async fn erased_lead_stays_opted_out_when_it_comes_back() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, lead) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"phone": "+15125550141", "email": "gone@example.com"}),
        )
        .await;
    assert_eq!(
        app.delete(&app.admin, &format!("/api/v1/leads/{}", id(&lead)))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&app.admin, &format!("/api/v1/leads/{}", id(&lead)))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert!(
        app.outbox_for(id(&lead)).await.is_empty(),
        "erased: no copy of its messages remains"
    );
    let (s, again) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"phone": "(512) 555-0141", "email": "Gone@example.com"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        (
            again["sms_opt_out"].as_bool(),
            again["email_opt_out"].as_bool(),
            again["do_not_call"].as_bool()
        ),
        (Some(true), Some(true), Some(true))
    );
    // Back by phone with a new email, where it is night: its texts are off, so its plans are
    // laid out for email and speed-to-lead answers by email at once, not in the morning.
    let zone = night_zone();
    let (_, first) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"phone": "+15125550143", "email": "first@example.com", "timezone": zone}),
        )
        .await;
    app.delete(&app.admin, &format!("/api/v1/leads/{}", id(&first)))
        .await;
    let (s, back) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"phone": "+15125550143", "email": "new@example.com", "timezone": zone}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{back}");
    assert_eq!(
        (
            back["sms_opt_out"].as_bool(),
            back["email_opt_out"].as_bool()
        ),
        (Some(true), Some(false))
    );
    app.wait_touches(id(&back), "speed-to-lead email sent at night", |t| {
        t.iter().any(|t| t["status"] == "sent")
    })
    .await;
    let out = app.outbox_for(id(&back)).await;
    assert_eq!(out[0]["to"], "new@example.com", "{out:?}");
}

#[tokio::test]
async fn plans_ending_below_eight_attempts_continue_in_nurture() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (s, p) = app
        .put(
            &app.admin,
            "/api/v1/plans/quick-two",
            json!({"name": "Quick two", "steps": [
                {"after": "+0m", "channel": "email", "template": "r21-d0-email"},
                {"after": "+0m", "channel": "email", "template": "r21-d2-email"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let (_, lead) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"email": "floor@example.com"}),
        )
        .await;
    let lid = id(&lead);
    for plan in ["speed-to-lead", "relentless-21"] {
        assert_eq!(
            app.delete(
                &app.admin,
                &format!("/api/v1/leads/{lid}/enrollments/{plan}")
            )
            .await
            .0,
            StatusCode::NO_CONTENT
        );
    }
    let (s, _) = app
        .post(
            &app.admin,
            &format!("/api/v1/leads/{lid}/enrollments"),
            json!({"plan": "quick-two"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    for _ in 0..200 {
        let (_, l) = app.get(&app.admin, &format!("/api/v1/leads/{lid}")).await;
        if l["enrollments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["plan"] == "nurture" && e["state"] == "active")
        {
            assert!(l["attempts"].as_i64().unwrap() < 8);
            assert!(
                l["enrollments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["plan"] == "quick-two" && e["state"] == "completed")
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("nurture never started");
}

#[tokio::test]
async fn saving_a_short_level_plan_warns_and_bad_plans_are_refused() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (s, p) = app.put(&app.admin, "/api/v1/plans/short-cold", json!({"name": "Short", "levels": ["cold"], "steps": [{"day": 1, "at": "10:00", "channel": "call", "template": "r21-d1-call"}]})).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert!(p["warnings"][0].as_str().unwrap().contains("8"), "{p}");
    let (s, p) = app.put(&app.admin, "/api/v1/plans/bad", json!({"name": "Bad", "steps": [{"day": 1, "at": "25:00", "channel": "call", "template": "r21-d1-call"}]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["errors"][0]["field"], "steps[0].at");
    let (s, p) = app.put(&app.admin, "/api/v1/plans/bad", json!({"name": "Bad", "steps": [{"after": "+5m", "channel": "text", "template": "no-such-template"}]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["errors"][0]["field"], "steps[0].template");
}

#[tokio::test]
async fn templates_with_unknown_fields_or_bad_syntax_are_refused() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (s, p) = app
        .put(
            &app.admin,
            "/api/v1/templates/my-text",
            json!({"channel": "text", "name": "Mine", "body": "Hi {{ lead.favourite_colour }}"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["errors"][0]["field"], "body");
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("lead.favourite_colour")
    );
    let (s, p) = app.put(&app.admin, "/api/v1/templates/my-email", json!({"channel": "email", "name": "Mine", "subject": "Hi {{ lead.first_name", "body": "ok"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["errors"][0]["field"], "subject");
    let (s, p) = app
        .put(
            &app.admin,
            "/api/v1/templates/my-text",
            json!({"channel": "text", "name": "Mine", "body": "Hi {{ lead.first_name }}"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(
        app.get(&app.admin, "/api/v1/templates/my-text").await.1["body"],
        "Hi {{ lead.first_name }}"
    );
}

#[tokio::test]
async fn meeting_starts_follow_up_with_thank_you_at_nine_next_day() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, lead) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"email": "met@example.com", "timezone": "America/Chicago"}),
        )
        .await;
    let lid = id(&lead);
    let at = "2030-03-09T20:30:00Z"; // Saturday 14:30 in Chicago, the day before DST starts
    let (s, _) = app
        .post(
            &app.admin,
            &format!("/api/v1/leads/{lid}/activities"),
            json!({"kind": "meeting", "at": at, "promised_reply_by": "2030-03-11T17:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let touches = app.touches(lid).await;
    let mf: Vec<&Value> = touches
        .iter()
        .filter(|t| t["plan"] == "meeting-follow-up")
        .collect();
    let email = mf.iter().find(|t| t["planned_channel"] == "email").unwrap();
    assert_eq!(
        email["due_at"], "2030-03-10T14:00:00Z",
        "09:00 CDT on the next calendar day"
    );
    let call = mf.iter().find(|t| t["planned_channel"] == "call").unwrap();
    assert_eq!(call["due_at"], "2030-03-10T19:00:00Z", "14:00 CDT");
    let promised = mf.iter().find(|t| t["planned_channel"] == "task").unwrap();
    assert_eq!(promised["due_at"], "2030-03-11T17:00:00Z");
    let (_, l) = app.get(&app.admin, &format!("/api/v1/leads/{lid}")).await;
    assert_eq!(l["stage"], "appointment");
}

#[tokio::test]
async fn call_task_outcome_is_an_attempt_and_settles_the_touch() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, lead) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"phone": "+15125550142", "timezone": day_zone()}),
        )
        .await;
    let lid = id(&lead);
    // Bring the +5m call forward so the dispatcher turns it into a task now.
    let mut tx = app.engine.store.write().await.unwrap();
    let call = tx
        .touches_for_lead(lid)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.plan == "speed-to-lead" && t.step == 1)
        .unwrap();
    tx.touch_reschedule(call.id, relentless_engine::now_ms() - 1, "test")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    app.engine.wake.notify_one();
    let mut task = Value::Null;
    for _ in 0..200 {
        let (_, tasks) = app.get(&app.admin, "/api/v1/tasks?assignee=all").await;
        if let Some(t) = tasks["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["lead_id"] == lid && t["kind"] == "call")
        {
            task = t.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        task["script"].as_str().unwrap().len() > 20,
        "a word-for-word script: {task}"
    );
    assert!(task["voicemail"].is_string());
    let (_, before) = app.get(&app.admin, &format!("/api/v1/leads/{lid}")).await;
    let (s, done) = app
        .post(
            &app.admin,
            &format!("/api/v1/tasks/{}/complete", id(&task)),
            json!({"outcome": "voicemail"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "done");
    let (_, after) = app.get(&app.admin, &format!("/api/v1/leads/{lid}")).await;
    assert_eq!(
        after["attempts"].as_i64().unwrap(),
        before["attempts"].as_i64().unwrap() + 1
    );
    let t = app
        .touches(lid)
        .await
        .into_iter()
        .find(|t| t["id"] == call.id)
        .unwrap();
    assert_eq!(t["status"], "done");
    let (s, _) = app
        .post(
            &app.admin,
            &format!("/api/v1/tasks/{}/complete", id(&task)),
            json!({"outcome": "voicemail"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "a task is completed once");
    let (s, p) = app
        .post(
            &app.admin,
            &format!("/api/v1/tasks/{}/complete", id(&task)),
            json!({"outcome": "maybe"}),
        )
        .await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("outcome"))
    );
}

#[tokio::test]
async fn search_pagination_and_filters() {
    let app = TestApp::spawn_on(BACKEND).await;
    for (i, (f, l)) in [
        ("Maria", "Gonzalez"),
        ("Mario", "Rossi"),
        ("Lee", "Park"),
        ("Ana", "Maria"),
        ("Zed", "Zulu"),
    ]
    .iter()
    .enumerate()
    {
        let (s, _) = app
            .post(&app.admin, "/api/v1/leads", json!({"first_name": f, "last_name": l, "phone": format!("+1512555{:04}", 150 + i), "email": format!("{}@example.com", f.to_lowercase()), "level": if i % 2 == 0 {"hot"} else {"cold"}}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["first_name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, r) = app.get(&app.admin, "/api/v1/leads?q=mari").await;
    let mut n = names(&r);
    n.sort();
    assert_eq!(
        n,
        ["Ana", "Maria", "Mario"],
        "prefix search over first and last names"
    );
    let (_, r) = app
        .get(&app.admin, "/api/v1/leads?q=(512)%20555-0152")
        .await;
    assert_eq!(names(&r), ["Lee"], "phone in any format");
    let (_, r) = app.get(&app.admin, "/api/v1/leads?q=ZED@example.com").await;
    assert_eq!(names(&r), ["Zed"]);
    let (_, r) = app.get(&app.admin, "/api/v1/leads?level=cold").await;
    assert_eq!(names(&r).len(), 2);
    let (s, p) = app.get(&app.admin, "/api/v1/leads?level=boiling").await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("level"))
    );
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/leads?limit=2&cursor={c}"),
            None => "/api/v1/leads?limit=2".into(),
        };
        let (_, page) = app.get(&app.admin, &path).await;
        seen.extend(names(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["Zed", "Ana", "Lee", "Mario", "Maria"],
        "newest first, each once"
    );
}

#[tokio::test]
async fn reply_reaches_the_agents_stream_and_resumes_with_last_event_id() {
    use futures::StreamExt;
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, agent) = app.agent("ag@example.com").await;
    let (_, lead) = app
        .post(
            &agent,
            "/api/v1/leads",
            json!({"first_name": "Rita", "email": "rita@example.com"}),
        )
        .await;
    let res = app
        .client
        .get(format!("{}/api/v1/notifications/stream", app.base))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.bytes_stream();
    app.engine
        .record_reply(
            id(&lead),
            relentless_core::types::Channel::Text,
            "Yes, call me after 5",
        )
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: reply"), "{text}");
    assert!(text.contains("\"lead_name\":\"Rita\""), "{text}");
    let event_id: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Reconnecting from before that id replays it.
    let res = app
        .client
        .get(format!("{}/api/v1/notifications/stream", app.base))
        .bearer_auth(&agent)
        .header("Last-Event-ID", (event_id - 1).to_string())
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&chunk).contains(&format!("id: {event_id}")));
}

#[tokio::test]
async fn deactivating_an_agent_reassigns_leads_and_open_tasks() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (aid, agent) = app.agent("leaving@example.com").await;
    app.agent("staying@example.com").await;
    let (_, lead) = app
        .post(
            &agent,
            "/api/v1/leads",
            json!({"email": "kept@example.com"}),
        )
        .await;
    let (s, u) = app
        .delete(
            &app.admin,
            &format!("/api/v1/users/{aid}?reassign_to=staying@example.com"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["active"], false);
    let (_, l) = app
        .get(&app.admin, &format!("/api/v1/leads/{}", id(&lead)))
        .await;
    assert_eq!(l["assigned_to"], "staying@example.com");
    assert_eq!(
        app.get(&agent, "/api/v1/me").await.0,
        StatusCode::UNAUTHORIZED,
        "a deactivated user's token stops working"
    );
}

#[tokio::test]
async fn team_settings_validate_and_save() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (s, t) = app.patch(&app.admin, "/api/v1/team", json!({"sending_window": {"start": "09:00", "end": "20:00"}, "holidays": ["2026-12-25"], "state_windows": {"FL": {"start": "08:00", "end": "20:00"}}, "escalation_minutes": 30})).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["sending_window"]["start"], "09:00");
    assert_eq!(t["holidays"], json!(["2026-12-25"]));
    let (s, p) = app.patch(&app.admin, "/api/v1/team", json!({"sending_window": {"start": "21:00", "end": "08:00"}, "timezone": "Nowhere/Land", "escalation_minutes": -1})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"sending_window")
            && fields.contains(&"timezone")
            && fields.contains(&"escalation_minutes"),
        "{p}"
    );
    assert_eq!(
        app.get(&app.admin, "/api/v1/team").await.1["sending_window"]["start"],
        "09:00",
        "nothing half-written"
    );
}

#[tokio::test]
async fn reports_openapi_health_and_metrics() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, lead) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"phone": "+15125550160", "timezone": day_zone()}),
        )
        .await;
    app.wait_touches(id(&lead), "sent", |t| {
        t.iter().any(|t| t["status"] == "sent")
    })
    .await;
    let (s, r) = app.get(&app.admin, "/api/v1/reports/summary").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["speed_to_lead"]["count"], 1);
    assert!(r["speed_to_lead"]["p50_seconds"].as_i64().unwrap() < 5);
    assert_eq!(r["leads_below_8_attempts"], 1);
    for k in [
        "speed_to_call",
        "attempts_before_contact",
        "answer_rate_by_channel",
        "answer_rate_by_step",
        "overdue_tasks_by_agent",
    ] {
        assert!(r.get(k).is_some(), "{k}");
    }
    let (s, doc) = app.get(&app.admin, "/api/v1/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/leads/{id}/touches"]["get"].is_object());
    let res = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The text sent above went through a dispatch batch: where its time went is on show.
    let text = res.text().await.unwrap();
    for part in ["claim_write", "claim_commit"] {
        let count = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "relentless_dispatch_seconds_count{{part=\"{part}\"}} "
                ))
            })
            .unwrap_or_else(|| panic!("no {part} timing in /metrics:\n{text}"));
        assert!(
            count.trim().parse::<f64>().unwrap() >= 1.0,
            "{part}: {count}"
        );
    }
}

#[tokio::test]
async fn openapi_lists_exactly_the_routes_that_are_served() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, doc) = app.get(&app.admin, "/api/v1/openapi.json").await;
    let paths = doc["paths"].as_object().unwrap();
    let mut count = 0;
    for (path, ops) in paths {
        for (method, _) in ops.as_object().unwrap() {
            count += 1;
            let url = path
                .replace("{id}", "999999")
                .replace("{slug}", "no-such")
                .replace("{plan}", "no-such")
                .replace("{video}", "999999");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = app
                .client
                .request(m, format!("{}{}", app.base, url))
                .bearer_auth(&app.admin);
            if matches!(method.as_str(), "post" | "put" | "patch") {
                req = req.json(&json!({}));
            }
            if path.ends_with("/stream") {
                continue; // an endless stream; covered by its own test
            }
            let res = req.send().await.unwrap();
            let status = res.status();
            let body = res.text().await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !body.contains("no such route"),
                "{method} {path} is documented but not served"
            );
            assert!(status.as_u16() < 500, "{method} {path}: {status} {body}");
        }
    }
    assert_eq!(count, relentless_web::openapi::operations().len());
    let (s, p) = app.get(&app.admin, "/api/v1/nope").await;
    assert_eq!(
        (s, p["detail"].as_str()),
        (StatusCode::NOT_FOUND, Some("no such route"))
    );
}

/// "No panic reaches a request": a handler that panics with its transaction open (the engine's
/// fault hook fires after every row of a new lead is written, before the commit) answers a
/// clean 500 problem, leaks nothing of the panic, and leaves no row behind; the server and
/// its database writer keep working.
#[tokio::test]
async fn a_panic_mid_transaction_is_a_500_problem_and_writes_nothing() {
    use relentless_engine::{Config, FaultHook};
    use std::sync::Arc;
    let config = Config {
        fault_hook: Some(FaultHook(Arc::new(|point| {
            if point == "create_lead:before_commit" {
                panic!("injected fault at {point}");
            }
        }))),
        ..Config::default()
    };
    let app = TestApp::spawn_with_on(
        BACKEND,
        config,
        Arc::new(relentless_engine::channels::Router::outbox()),
    )
    .await;
    let res = app
        .client
        .post(format!("{}/api/v1/leads", app.base))
        .bearer_auth(&app.admin)
        .json(&json!({"first_name": "Pat", "phone": "+15125550199", "email": "pat@example.com", "timezone": day_zone()}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body = res.text().await.unwrap();
    assert!(
        !body.contains("injected"),
        "the panic's message leaked: {body}"
    );
    let p: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (p["status"].as_i64(), p["title"].as_str()),
        (Some(500), Some("Internal error"))
    );
    // Nothing half-written: no lead, no activity, no touch, no task, nothing sent.
    let mut tx = app.engine.store.read().await.unwrap();
    let leads = tx
        .leads_page(&relentless_store::LeadFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(leads.is_empty(), "{leads:?}");
    drop(tx);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.get(&app.admin, "/api/v1/outbox").await.1["items"],
        json!([])
    );
    let (_, tasks) = app
        .get(&app.admin, "/api/v1/tasks?assignee=all&status=all")
        .await;
    assert_eq!(tasks["items"], json!([]));
    // The unwound transaction released the writer: the next write goes through.
    let (s, u) = app
        .post(
            &app.admin,
            "/api/v1/users",
            json!({"email": "after-panic@example.com", "name": "After Panic"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
}

/// Regression: a plan or template body that is JSON but not an object (`[]`, `"x"`, `3`) was
/// indexed as one and panicked (500); it is a 422 naming the body, and nothing is saved.
#[tokio::test]
async fn a_plan_or_template_body_that_is_not_an_object_is_a_422() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, before) = app.get(&app.admin, "/api/v1/templates/cold-d0-email").await;
    for body in [
        json!([]),
        json!(["x"]),
        json!("text"),
        json!(3),
        json!(true),
    ] {
        for path in [
            "/api/v1/templates/cold-d0-email",
            "/api/v1/templates/new-one",
            "/api/v1/plans/cold-8",
            "/api/v1/plans/new-one",
        ] {
            let (s, p) = app.put(&app.admin, path, body.clone()).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path} {body}: {p}");
            assert_eq!(p["errors"][0]["field"], "body", "{p}");
        }
    }
    assert_eq!(
        app.get(&app.admin, "/api/v1/templates/cold-d0-email")
            .await
            .1,
        before
    );
}

/// A path or query parameter that does not parse is a problem+json 400, like every other
/// error (axum's own rejection is plain text, which the OpenAPI document does not allow).
#[tokio::test]
async fn unreadable_path_and_query_parameters_are_problem_json() {
    let app = TestApp::spawn_on(BACKEND).await;
    for path in [
        "/api/v1/leads/abc",
        "/api/v1/leads/99999999999999999999999",
        "/api/v1/leads?limit=many",
        "/api/v1/tasks?lead_id=x",
        "/api/v1/outbox?limit=1.5",
    ] {
        let res = app
            .client
            .get(format!("{}{}", app.base, path))
            .bearer_auth(&app.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "application/problem+json",
            "{path}"
        );
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["status"], 400, "{p}");
    }
}

/// Opens that arrive together are written together (tracking.rs) and each is still counted:
/// 30 pixels fetched at once for two leads' emails, and a few for tokens that do not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_arriving_together_are_each_counted_once() {
    let app = TestApp::spawn_on(BACKEND).await;
    let mut leads = vec![];
    for (email, phone) in [
        ("ana@example.com", "+15125550171"),
        ("bo@example.com", "+15125550172"),
    ] {
        // Texts off and daytime: speed-to-lead answers by email at once.
        let (s, l) = app
            .post(
                &app.admin,
                "/api/v1/leads",
                json!({"email": email, "phone": phone, "sms_opt_out": true, "timezone": day_zone()}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{l}");
        app.wait_touches(id(&l), "email sent", |t| {
            t.iter().any(|t| t["status"] == "sent")
        })
        .await;
        let body = app.outbox_for(id(&l)).await[0]["body"]
            .as_str()
            .unwrap()
            .to_string();
        let at = body.find("/u/").unwrap() + 3;
        let token: String = body[at..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        leads.push((id(&l), token));
    }
    let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";
    let mut urls = vec![];
    for i in 0..30 {
        urls.push(format!("{}/t/{}/o.gif", app.base, leads[i % 3 % 2].1));
    }
    urls.extend((0..4).map(|i| format!("{}/t/{:032x}/o.gif", app.base, i)));
    let answers = futures::future::join_all(
        urls.iter()
            .map(|u| app.client.get(u).header("user-agent", ua).send()),
    )
    .await;
    for a in answers {
        let a = a.unwrap();
        assert_eq!(a.status(), StatusCode::OK);
        assert_eq!(a.headers()["content-type"], "image/gif");
    }
    // leads[0] got i % 3 ∈ {0, 2}: 20 opens; leads[1] got i % 3 == 1: 10 opens.
    for ((lead, _), opens) in leads.iter().zip([20, 10]) {
        let (_, t) = app
            .get(
                &app.admin,
                &format!("/api/v1/leads/{lead}/timeline?limit=200"),
            )
            .await;
        let kinds: Vec<&str> = t["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "open").count(),
            opens,
            "{kinds:?}"
        );
        let (_, l) = app.get(&app.admin, &format!("/api/v1/leads/{lead}")).await;
        assert_eq!(l["level"], "hot");
        let (_, tasks) = app
            .get(
                &app.admin,
                &format!("/api/v1/tasks?assignee=all&lead_id={lead}"),
            )
            .await;
        let calls = tasks["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == "call" && t["touch_id"].is_null())
            .count();
        assert_eq!(calls, 1, "one call-now task, however many opens");
    }
}
