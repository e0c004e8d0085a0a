//! Lead intake through the real router: web forms and sources posting the way they post,
//! routing (named agent, round-robin, pond with first-to-claim, off hours), spam defences,
//! consent records, and lead-notification emails.

mod common;

use common::{TestApp, day_zone};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn intake(app: &TestApp, body: Value) -> (String, String) {
    let (s, i) = app.post(&app.admin, "/api/v1/intakes", body).await;
    assert_eq!(s, StatusCode::CREATED, "{i}");
    (
        i["url"].as_str().unwrap().to_string(),
        i["email_token"].as_str().unwrap().to_string(),
    )
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn leads(app: &TestApp) -> Vec<Value> {
    app.get(&app.admin, "/api/v1/leads?limit=200").await.1["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_web_form_posts_straight_to_the_intake_and_is_redirected() {
    let app = TestApp::spawn().await;
    let (url, _) = intake(
        &app,
        json!({"source": "website", "thank_you_url": "https://example.com/thanks"}),
    )
    .await;
    let (s, _) = app
        .post(
            &app.admin,
            "/api/v1/intakes",
            json!({"source": "x", "plan": "nope"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let form = [
        ("full_name", "Pat Morgan"),
        ("email", "pat@example.com"),
        ("phone_number", "512-555-0140"),
        ("message", "Is the house on Elm still open?"),
        ("property_address", "12 Elm St"),
        ("price", "$450,000"),
        ("utm_campaign", "spring"),
    ];
    let res = no_redirects().post(&url).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "https://example.com/thanks");
    let l = &leads(&app).await[0];
    assert_eq!(
        (
            l["first_name"].as_str(),
            l["last_name"].as_str(),
            l["phone"].as_str()
        ),
        (Some("Pat"), Some("Morgan"), Some("+15125550140"))
    );
    assert_eq!(l["source"], "website");
    assert_eq!(l["property_address"], "12 Elm St");
    let notes = l["notes"].as_str().unwrap();
    assert!(
        notes.contains("Is the house on Elm still open?")
            && notes.contains("$450,000")
            && notes.contains("utm_campaign: spring"),
        "{notes}"
    );
    let plans: Vec<&str> = l["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["plan"].as_str().unwrap())
        .collect();
    assert_eq!(plans, ["speed-to-lead", "relentless-21"]);
}

#[tokio::test]
async fn a_source_posts_json_and_a_known_lead_is_merged_as_engagement() {
    let app = TestApp::spawn().await;
    let (url, _) = intake(&app, json!({"source": "zillow", "plan": "cold-8"})).await;
    let res = app.client.post(&url).json(&json!({"first_name": "Lee", "last_name": "Ng", "email": "lee@example.com", "external_id": "z-1"})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let (_, l) = app.get(&app.admin, &format!("/api/v1/leads/{id}")).await;
    assert_eq!(
        l["enrollments"][1]["plan"], "cold-8",
        "the intake's plan replaces the level's plan"
    );
    let res = app
        .client
        .post(&url)
        .json(&json!({"email": "LEE@example.com", "message": "Still interested"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["merged"], true);
    let (_, l) = app.get(&app.admin, &format!("/api/v1/leads/{id}")).await;
    assert_eq!(l["level"], "hot", "inquiring again is engagement");
    assert_eq!(
        l["enrollments"].as_array().unwrap().len(),
        2,
        "not restarted"
    );
}

#[tokio::test]
async fn bad_posts_change_nothing_and_say_why() {
    let app = TestApp::spawn().await;
    let (url, _) = intake(&app, json!({"source": "website"})).await;
    let unknown = url.replace(&url[url.len() - 32..], &"0".repeat(32));
    let res = app
        .client
        .post(&unknown)
        .json(&json!({"email": "a@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body("email=a@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let res = app
        .client
        .post(&url)
        .json(&json!({"name": "No Contact"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let p: Value = res.json().await.unwrap();
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "phone"]);
    let res = app
        .client
        .post(&url)
        .json(&json!({"email": "spam@example.com", "hp_website": "http://spam.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("spam"));
    let res = app
        .client
        .post(&url)
        .json(&json!({"email": "ok@example.com", "phone": "12"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a source posting JSON gets a clear error"
    );
    let big = "x".repeat(100 * 1024);
    let res = app
        .client
        .post(&url)
        .json(&json!({"email": "big@example.com", "message": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(leads(&app).await.is_empty(), "nothing stored");
    // A person's typo on a form is kept as a note and flagged, not dropped.
    let res = no_redirects()
        .post(&url)
        .form(&[
            ("name", "Typo Tom"),
            ("email", "tom@example.com"),
            ("phone", "555-12"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let l = &leads(&app).await[0];
    assert!(l["phone"].is_null());
    assert!(l["notes"].as_str().unwrap().contains("555-12"));
    assert!(
        l["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("needs-review"))
    );
}

#[tokio::test]
async fn a_flood_from_one_address_gets_429_with_retry_after() {
    let app = TestApp::spawn().await;
    let (url, _) = intake(&app, json!({"source": "website"})).await;
    // Limits count per wall-clock minute: start well inside one.
    let into = relentless_engine::now_ms().rem_euclid(60_000);
    if into > 50_000 {
        tokio::time::sleep(std::time::Duration::from_millis(
            (60_000 - into + 200) as u64,
        ))
        .await;
    }
    let mut last = StatusCode::OK;
    let mut retry = None;
    for i in 0..35 {
        let res = app
            .client
            .post(&url)
            .json(&json!({"email": format!("flood{i}@example.com")}))
            .send()
            .await
            .unwrap();
        last = res.status();
        if last == StatusCode::TOO_MANY_REQUESTS {
            retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            break;
        }
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(
        leads(&app).await.len(),
        30,
        "the refused post stored nothing"
    );
}

#[tokio::test]
async fn round_robin_and_named_agent_routing() {
    let app = TestApp::spawn().await;
    app.agent("a@example.com").await;
    app.agent("b@example.com").await;
    app.agent("c@example.com").await;
    let (rr, _) = intake(&app, json!({"source": "rr", "routing": {"mode": "round_robin", "agents": ["a@example.com", "b@example.com"]}})).await;
    let mut owners = vec![];
    for i in 0..4 {
        let res = app
            .client
            .post(&rr)
            .json(&json!({"email": format!("rr{i}@example.com")}))
            .send()
            .await
            .unwrap();
        let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        owners.push(
            app.get(&app.admin, &format!("/api/v1/leads/{id}")).await.1["assigned_to"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        owners,
        [
            "a@example.com",
            "b@example.com",
            "a@example.com",
            "b@example.com"
        ]
    );
    let (named, _) = intake(
        &app,
        json!({"source": "named", "routing": {"mode": "agent", "agents": ["c@example.com"]}}),
    )
    .await;
    let res = app
        .client
        .post(&named)
        .json(&json!({"email": "named@example.com"}))
        .send()
        .await
        .unwrap();
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(
        app.get(&app.admin, &format!("/api/v1/leads/{id}")).await.1["assigned_to"],
        "c@example.com"
    );
    let (s, p) = app
        .post(
            &app.admin,
            "/api/v1/intakes",
            json!({"source": "x", "routing": {"mode": "agent", "agents": ["ghost@example.com"]}}),
        )
        .await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("routing.agents[0]"))
    );
}

#[tokio::test]
async fn off_hours_leads_go_to_the_night_agent() {
    let app = TestApp::spawn().await;
    app.agent("day@example.com").await;
    app.agent("night@example.com").await;
    // Office hours of one minute a day: now is (all but certainly) off hours.
    let now = jiff::Timestamp::now().in_tz("America/New_York").unwrap();
    let start = now
        .checked_add(jiff::SignedDuration::from_hours(2))
        .unwrap();
    let end = start
        .checked_add(jiff::SignedDuration::from_mins(1))
        .unwrap();
    let routing = json!({"mode": "agent", "agents": ["day@example.com"], "off_hours": {"start": start.strftime("%H:%M").to_string(), "end": end.strftime("%H:%M").to_string(), "agent": "night@example.com"}});
    let (url, _) = intake(&app, json!({"source": "web", "routing": routing})).await;
    let res = app
        .client
        .post(&url)
        .json(&json!({"email": "late@example.com"}))
        .send()
        .await
        .unwrap();
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(
        app.get(&app.admin, &format!("/api/v1/leads/{id}")).await.1["assigned_to"],
        "night@example.com"
    );
}

#[tokio::test]
async fn a_pond_lead_goes_to_the_first_of_two_racing_agents_with_its_tasks() {
    let app = TestApp::spawn().await;
    let (_, t1) = app.agent("p1@example.com").await;
    let (_, t2) = app.agent("p2@example.com").await;
    let (_, outsider) = app.agent("p3@example.com").await;
    let (url, _) = intake(&app, json!({"source": "pond", "routing": {"mode": "pond", "agents": ["p1@example.com", "p2@example.com"], "claim_minutes": 5}})).await;
    let res = app
        .client
        .post(&url)
        .json(&json!({"first_name": "Poppy", "phone": "+15125550150", "timezone": day_zone()}))
        .send()
        .await
        .unwrap();
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    // The speed-to-lead call task is due now; it waits in the pond unassigned.
    let mut tx = app.engine.store.write().await.unwrap();
    let call = tx
        .touches_for_lead(id)
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
    let mut pond = Value::Null;
    for _ in 0..100 {
        pond = app.get(&t1, "/api/v1/pond").await.1;
        if pond["items"][0]["tasks"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(pond["items"][0]["lead_name"], "Poppy");
    assert_eq!(pond["items"][0]["tasks"][0]["kind"], "call", "{pond}");
    assert!(
        app.get(&outsider, "/api/v1/pond").await.1["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.get(&t2, &format!("/api/v1/leads/{id}")).await.0,
        StatusCode::OK,
        "pond agents see the lead"
    );
    // Both click "claim" at once.
    let claim = format!("/api/v1/leads/{id}/claim");
    let (a, b) = tokio::join!(
        app.post(&t1, &claim, json!({})),
        app.post(&t2, &claim, json!({}))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let (winner_token, winner) = if a.0 == StatusCode::OK {
        (&t1, "p1@example.com")
    } else {
        (&t2, "p2@example.com")
    };
    let l = app.get(&app.admin, &format!("/api/v1/leads/{id}")).await.1;
    assert_eq!(l["assigned_to"], winner);
    let (_, tasks) = app.get(winner_token, "/api/v1/tasks").await;
    assert!(
        tasks["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["lead_id"] == id && t["kind"] == "call"),
        "the claim takes the tasks: {tasks}"
    );
    assert_eq!(
        app.post(&outsider, &format!("/api/v1/leads/{id}/claim"), json!({}))
            .await
            .0,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn an_unclaimed_pond_lead_escalates_and_falls_back_to_round_robin() {
    let app = TestApp::spawn().await;
    app.agent("q1@example.com").await;
    app.agent("q2@example.com").await;
    let (url, _) = intake(&app, json!({"source": "pond", "routing": {"mode": "pond", "agents": ["q1@example.com", "q2@example.com"], "claim_minutes": 1}})).await;
    let res = app
        .client
        .post(&url)
        .json(&json!({"first_name": "Quinn", "email": "quinn@example.com"}))
        .send()
        .await
        .unwrap();
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(
        app.engine
            .escalate_ponds(relentless_engine::now_ms())
            .await
            .unwrap(),
        0,
        "not yet"
    );
    assert_eq!(
        app.engine
            .escalate_ponds(relentless_engine::now_ms() + 61_000)
            .await
            .unwrap(),
        1
    );
    let l = app.get(&app.admin, &format!("/api/v1/leads/{id}")).await.1;
    assert!(
        ["q1@example.com", "q2@example.com"].contains(&l["assigned_to"].as_str().unwrap()),
        "{l}"
    );
    let mut tx = app.engine.store.read().await.unwrap();
    let admin = tx
        .user_by_email("admin@example.com")
        .await
        .unwrap()
        .unwrap();
    let notes = tx.notifications_after(admin.id, 0, 10).await.unwrap();
    assert!(
        notes.iter().any(|n| n.event == "escalation"
            && n.kind == "pond_unclaimed"
            && n.lead_id == Some(id)),
        "{notes:?}"
    );
}

#[tokio::test]
async fn consent_is_recorded_and_required_consent_turns_texts_into_email() {
    let app = TestApp::spawn().await;
    let (url, _) = intake(&app, json!({"source": "open-house"})).await;
    let (s, _) = app
        .patch(
            &app.admin,
            "/api/v1/team",
            json!({"require_text_consent": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let wording = "Yes, text me about this home. Reply STOP to opt out.";
    let form = [
        ("name", "Cora Sent"),
        ("phone", "+15125550160"),
        ("email", "cora@example.com"),
        ("consent_text", "yes"),
        ("consent_text_wording", wording),
        ("timezone", &day_zone()),
    ];
    no_redirects().post(&url).form(&form).send().await.unwrap();
    let form = [
        ("name", "Nora None"),
        ("phone", "+15125550161"),
        ("email", "nora@example.com"),
        ("timezone", &day_zone()),
    ];
    no_redirects().post(&url).form(&form).send().await.unwrap();
    let all = leads(&app).await;
    let cora = all.iter().find(|l| l["first_name"] == "Cora").unwrap()["id"]
        .as_i64()
        .unwrap();
    let nora = all.iter().find(|l| l["first_name"] == "Nora").unwrap()["id"]
        .as_i64()
        .unwrap();
    let (_, c) = app
        .get(&app.admin, &format!("/api/v1/leads/{cora}/consents"))
        .await;
    assert_eq!(c["items"][0]["channel"], "text");
    assert_eq!(c["items"][0]["wording"], wording);
    assert_eq!(c["items"][0]["source"], "open-house");
    assert_eq!(c["items"][0]["ip"], "127.0.0.1");
    let t = app
        .wait_touches(cora, "sent", |t| t.iter().any(|t| t["status"] == "sent"))
        .await;
    assert_eq!(t[0]["channel"], "text", "consented: texted");
    let t = app
        .wait_touches(nora, "sent", |t| t.iter().any(|t| t["status"] == "sent"))
        .await;
    assert_eq!(
        t[0]["channel"], "email",
        "no recorded consent: the text goes as email"
    );
    assert!(
        app.outbox_for(nora)
            .await
            .iter()
            .all(|m| m["channel"] != "text")
    );
}

#[tokio::test]
async fn a_lead_notification_email_becomes_a_lead_with_the_email_on_its_timeline() {
    let app = TestApp::spawn().await;
    let (_, token) = intake(&app, json!({"source": "zillow-email"})).await;
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../engine/tests/fixtures/lead-emails/zillow_new_contact.eml"
    ))
    .unwrap();
    let res = app
        .client
        .post(format!("{}/webhooks/email/inbound?token={token}", app.base))
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let l = &leads(&app).await[0];
    assert!(
        l["email"].as_str().is_some() || l["phone"].as_str().is_some(),
        "{l}"
    );
    let id = l["id"].as_i64().unwrap();
    let (_, tl) = app
        .get(&app.admin, &format!("/api/v1/leads/{id}/timeline"))
        .await;
    assert!(
        tl["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "lead_email")
    );
    let res = app
        .client
        .post(format!(
            "{}/webhooks/email/inbound?token={}",
            app.base,
            "f".repeat(32)
        ))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_open_house_page_is_served_for_a_live_intake_only() {
    let app = TestApp::spawn().await;
    let (_, token) = intake(&app, json!({"source": "open-house"})).await;
    let page = app
        .client
        .get(format!("{}/signin/{token}", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Please sign in")
            && page.contains("Reply STOP to opt out")
            && page.contains("localStorage")
    );
    assert_eq!(
        app.client
            .get(format!("{}/signin/{}", app.base, "0".repeat(32)))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}
