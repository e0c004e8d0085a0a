//! The web app's server side, as a browser and the app's scripts use it: sign-in sessions
//! with CSRF protection, first-start setup, the Today queue, messages written by the agent,
//! live previews, pausing a plan and CSV import. Run on both backends.

use super::super::BACKEND;
use super::super::common::{TestApp, day_zone};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

/// A browser without a cookie jar: cookies are handled by hand so the test can see them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn cookie(h: &HeaderMap, name: &str) -> Option<(String, String)> {
    h.get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..].split(';').next().unwrap().to_string();
            (value, v.to_string())
        })
}

/// The sign-in form's token and the cookie it pairs with.
async fn form(c: &reqwest::Client, app: &TestApp, path: &str) -> (String, String) {
    let r = c.get(format!("{}{path}", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (cookie_value, _) = cookie(r.headers(), "rl_form").expect("a form cookie");
    let html = r.text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let token = html[at..].split('"').next().unwrap().to_string();
    (token, cookie_value)
}

async fn add_user(app: &TestApp, email: &str, role: &str) {
    let (s, u) = app
        .post(
            &app.admin,
            "/api/v1/users",
            json!({"email": email, "name": "Pat Doe", "role": role, "password": "long-enough-pw"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
}

/// Signs in through the form; returns the session cookie.
async fn sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let c = browser();
    let (token, form_cookie) = form(&c, app, "/login").await;
    c.post(format!("{}/login", app.base))
        .header("cookie", format!("rl_form={form_cookie}"))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf", &token),
            ("next", "/leads?q=x"),
        ])
        .send()
        .await
        .unwrap()
}

/// The session's CSRF token, as the app's pages carry it.
async fn page_csrf(app: &TestApp, session: &str) -> String {
    let html = browser()
        .get(format!("{}/today", app.base))
        .header("cookie", format!("rl_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let needle = "csrf-token\" content=\"";
    let at = html.find(needle).expect("the page's token") + needle.len();
    html[at..].split('"').next().unwrap().to_string()
}

async fn me(app: &TestApp, session: &str) -> StatusCode {
    browser()
        .get(format!("{}/api/v1/me", app.base))
        .header("cookie", format!("rl_session={session}"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_browser_signs_in_acts_with_its_csrf_token_and_signs_out() {
    let app = TestApp::spawn_on(BACKEND).await;
    add_user(&app, "pat@example.com", "agent").await;

    // A page without a session goes to sign-in, keeping where it was going.
    let r = browser()
        .get(format!("{}/leads", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=%2Fleads");

    // A wrong password: refused, no session, the same words whether or not the email exists.
    let bad = sign_in(&app, "pat@example.com", "wrong-password").await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie(bad.headers(), "rl_session").is_none());
    let bad_text = bad.text().await.unwrap();
    assert!(bad_text.contains("do not match"), "{bad_text}");
    let nobody = sign_in(&app, "nobody@example.com", "wrong-password").await;
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);

    // The right password: an HTTP-only, same-site session cookie, and back to the page.
    let ok = sign_in(&app, "PAT@example.com ", "long-enough-pw").await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()["location"], "/leads?q=x");
    let (session, raw) = cookie(ok.headers(), "rl_session").expect("a session cookie");
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Lax"),
        "{raw}"
    );
    assert!(session.len() >= 32, "at least 128 bits: {session}");
    assert_eq!(me(&app, &session).await, StatusCode::OK);

    // A change with the cookie but without the page's token is refused and changes nothing.
    let lead = json!({"first_name": "Csrf", "phone": "+15125550190", "timezone": day_zone()});
    let r = browser()
        .post(format!("{}/api/v1/leads", app.base))
        .header("cookie", format!("rl_session={session}"))
        .json(&lead)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, found) = app.get(&app.admin, "/api/v1/leads?q=%2B15125550190").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 0);
    let csrf = page_csrf(&app, &session).await;
    let r = browser()
        .post(format!("{}/api/v1/leads", app.base))
        .header("cookie", format!("rl_session={session}"))
        .header("x-csrf-token", &csrf)
        .json(&lead)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["assigned_to"], "pat@example.com");

    // Sign-out needs the token too; after it the cookie is worthless.
    let out = browser()
        .post(format!("{}/logout", app.base))
        .header("cookie", format!("rl_session={session}"))
        .form(&[("csrf", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::FORBIDDEN);
    assert_eq!(me(&app, &session).await, StatusCode::OK);
    let out = browser()
        .post(format!("{}/logout", app.base))
        .header("cookie", format!("rl_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(me(&app, &session).await, StatusCode::UNAUTHORIZED);

    // A new password signs the user out of every browser.
    let again = sign_in(&app, "pat@example.com", "long-enough-pw").await;
    let (session, _) = cookie(again.headers(), "rl_session").unwrap();
    assert_eq!(me(&app, &session).await, StatusCode::OK);
    app.engine
        .set_password("pat@example.com", "another-long-pw".into())
        .await
        .unwrap();
    assert_eq!(me(&app, &session).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_email_and_need_the_form_token() {
    let app = TestApp::spawn_on(BACKEND).await;
    add_user(&app, "pat@example.com", "agent").await;
    // A post without the form's cookie (another site's form) is refused.
    let r = browser()
        .post(format!("{}/login", app.base))
        .form(&[
            ("email", "pat@example.com"),
            ("password", "long-enough-pw"),
            ("csrf", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(cookie(r.headers(), "rl_session").is_none());
    let mut last = StatusCode::OK;
    // Enough attempts that one fixed one-minute window holds more than the limit even when
    // the minute turns during the loop.
    for _ in 0..20 {
        last = sign_in(&app, "pat@example.com", "guessing-wrong")
            .await
            .status();
        if last == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(last, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // Even the right password waits out the limit.
    let r = sign_in(&app, "pat@example.com", "long-enough-pw").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn first_start_shows_setup_which_creates_the_team_once() {
    let app = TestApp::spawn_empty_on(BACKEND).await;
    let r = browser()
        .get(format!("{}/today", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/setup");
    let c = browser();
    let (token, form_cookie) = form(&c, &app, "/setup").await;
    let post = |fields: Vec<(&'static str, String)>| {
        let c = c.clone();
        let url = format!("{}/setup", app.base);
        let cookie = format!("rl_form={form_cookie}");
        async move {
            c.post(url)
                .header("cookie", cookie)
                .form(&fields)
                .send()
                .await
                .unwrap()
        }
    };
    let base = |email: &str, tz: &str| {
        vec![
            ("csrf", token.clone()),
            ("team_name", "Summit Realty".to_string()),
            ("admin_name", "Morgan Lee".to_string()),
            ("admin_email", email.to_string()),
            ("password", "summit-realty-1".to_string()),
            ("timezone", tz.to_string()),
            ("address", "5 Peak Rd, Denver, CO".to_string()),
        ]
    };
    // Bad fields: each error next to its field, nothing created.
    let r = post(base("not-an-email", "Mars/Olympus")).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"admin_email-error\""), "{html}");
    assert!(html.contains("id=\"timezone-error\""), "{html}");
    assert!(app.engine.needs_setup().await.unwrap());
    // Good fields: the team and its admin, signed in.
    let (token2, _) = form(&c, &app, "/setup").await;
    let mut good = base("morgan@example.com", "America/Denver");
    good[0].1 = token2;
    // The form cookie of the second page load is the one that counts now; reuse the first
    // (still valid for an hour) to keep the test to one browser.
    good[0].1 = token.clone();
    let r = post(good).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    assert!(cookie(r.headers(), "rl_session").is_some());
    let token = app.engine.create_token("morgan@example.com").await.unwrap();
    let (_, team) = app.get(&token, "/api/v1/team").await;
    assert_eq!(team["name"], "Summit Realty");
    assert_eq!(team["timezone"], "America/Denver");
    let (_, me) = app.get(&token, "/api/v1/me").await;
    assert_eq!(me["role"], "admin");
    assert_eq!(me["name"], "Morgan Lee");
    // Once set up, the page is closed: it cannot make a second admin.
    let r = browser()
        .get(format!("{}/setup", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login");
    let r = post(base("intruder@example.com", "America/Denver")).await;
    assert_eq!(r.headers()["location"], "/login");
    let (_, users) = app.get(&token, "/api/v1/users").await;
    assert_eq!(users["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn today_lists_the_call_with_its_attempt_and_pins_an_engaging_lead() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, agent) = app.agent("ash@example.com").await;
    let (s, lead) = app
        .post(
            &agent,
            "/api/v1/leads",
            json!({"first_name": "Rae", "phone": "+15125550166", "email": "rae@example.com", "timezone": day_zone(), "level": "hot"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{lead}");
    let lead_id = lead["id"].as_i64().unwrap();
    app.make_speed_to_lead_call_due(lead_id).await;
    let mut today = Value::Null;
    for _ in 0..100 {
        today = app.get(&agent, "/api/v1/today").await.1;
        if today["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let item = today["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["lead_id"] == lead_id && t["kind"] == "call")
        .cloned()
        .unwrap_or_else(|| panic!("the call in Today: {today:#}"));
    assert_eq!(item["group"], "hot_calls");
    assert!(item["attempt"]["n"].as_u64().unwrap() >= 1);
    assert!(item["attempt"]["of"].as_u64().unwrap() >= item["attempt"]["n"].as_u64().unwrap());
    assert!(item["script"].as_str().unwrap().contains("Rae"));
    assert_eq!(item["lead"]["name"], "Rae");
    // The admin's queue is the admin's own: the agent's call is not in it.
    let (_, admin_today) = app.get(&app.admin, "/api/v1/today").await;
    assert!(
        !admin_today["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["lead_id"] == lead_id)
    );
    // An email, opened by a person: the lead is pinned as engaging, and its tasks with it.
    let (s, _) = app
        .post(
            &agent,
            &format!("/api/v1/leads/{lead_id}/messages"),
            json!({"channel": "email", "subject": "Hello", "body": "Hi {{ lead.first_name }}"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let body = app
        .outbox_for(lead_id)
        .await
        .into_iter()
        .find(|m| m["channel"] == "email" && m["subject"] == "Hello")
        .unwrap()["body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(body.starts_with("Hi Rae"), "{body}");
    let at = body.find("/u/").unwrap() + 3;
    let token: String = body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let r = app
        .client
        .get(format!("{}/t/{token}/o.gif", app.base))
        .header("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, today) = app.get(&agent, "/api/v1/today").await;
    let pinned = &today["engaging"][0];
    assert_eq!(pinned["lead"]["id"], lead_id, "{today:#}");
    assert!(pinned["seconds_ago"].as_i64().unwrap() < 60);
    assert_eq!(today["items"][0]["group"], "engaging", "{today:#}");
}

#[tokio::test]
async fn an_agents_message_respects_opt_outs_and_previews_name_the_bad_field() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (s, lead) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"first_name": "Noor", "phone": "+15125550188", "timezone": day_zone()}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = lead["id"].as_i64().unwrap();
    let (s, sent) = app
        .post(&app.admin, &format!("/api/v1/leads/{id}/messages"), json!({"channel": "text", "body": "Hi {{ lead.first_name }}, it's {{ agent.first_name }}."}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sent}");
    assert!(
        sent["body"].as_str().unwrap().starts_with("Hi Noor, it's"),
        "{sent}"
    );
    assert!(
        app.outbox_for(id)
            .await
            .iter()
            .any(|m| m["body"] == sent["body"]),
        "the text went out"
    );
    // No email on file: refused, naming the channel.
    let (s, e) = app
        .post(
            &app.admin,
            &format!("/api/v1/leads/{id}/messages"),
            json!({"channel": "email", "subject": "x", "body": "y"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["errors"][0]["field"], "channel");
    // An unknown merge field: refused before anything is sent, naming the body.
    let (s, e) = app
        .post(
            &app.admin,
            &format!("/api/v1/leads/{id}/messages"),
            json!({"channel": "text", "body": "Hi {{ lead.nickname }}"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["errors"][0]["field"], "body");
    // (The lead's own plan may send its speed-to-lead text meanwhile: only the agent's
    // message is looked for, rendered with a blank where the field was.)
    assert!(
        !app.outbox_for(id)
            .await
            .iter()
            .any(|m| m["body"].as_str().is_some_and(|b| b.trim() == "Hi")),
        "nothing half-rendered was sent"
    );
    // Opted out by STOP: no text, ever, from the app either.
    let mut l = app
        .engine
        .store
        .read()
        .await
        .unwrap()
        .lead(id)
        .await
        .unwrap()
        .unwrap();
    l.sms_opt_out = true;
    let mut tx = app.engine.store.write().await.unwrap();
    tx.lead_save(&l).await.unwrap();
    tx.commit().await.unwrap();
    let (s, e) = app
        .post(
            &app.admin,
            &format!("/api/v1/leads/{id}/messages"),
            json!({"channel": "text", "body": "Still there?"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        !app.outbox_for(id).await.iter().any(|m| m["body"]
            .as_str()
            .is_some_and(|b| b.contains("Still there?"))),
        "no text to an opted-out lead"
    );
    // Previews: for the lead, and for a sample lead; errors name the part.
    let (s, p) = app
        .post(&app.admin, "/api/v1/templates/preview", json!({"lead_id": id, "subject": "For {{ lead.first_name }}", "body": "Hello {{ lead.first_name }}"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["subject"], "For Noor");
    assert_eq!(p["body"], "Hello Noor");
    let (s, p) = app
        .post(
            &app.admin,
            "/api/v1/templates/preview",
            json!({"subject": "{{ lead.first_name }}", "body": "{% if %}"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["errors"][0]["field"], "body");
}

#[tokio::test]
async fn a_paused_plan_holds_its_touches_and_resuming_makes_them_due() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, lead) = app
        .post(&app.admin, "/api/v1/leads", json!({"first_name": "Ivy", "email": "ivy@example.com", "timezone": day_zone(), "level": "cold"}))
        .await;
    let id = lead["id"].as_i64().unwrap();
    let path = format!("/api/v1/leads/{id}/enrollments/cold-8");
    let (s, e) = app
        .patch(&app.admin, &path, json!({"state": "paused"}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{e}");
    let (_, l) = app.get(&app.admin, &format!("/api/v1/leads/{id}")).await;
    let state = |l: &Value| {
        l["enrollments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["plan"] == "cold-8")
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state(&l), "paused");
    // Pausing twice is a clear error; so is an unknown state.
    let (s, e) = app
        .patch(&app.admin, &path, json!({"state": "paused"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (s, _) = app
        .patch(&app.admin, &path, json!({"state": "sleeping"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing of the paused plan is skipped or cancelled; its touches wait.
    let touches = app.touches(id).await;
    assert!(
        touches
            .iter()
            .filter(|t| t["plan"] == "cold-8")
            .all(|t| t["status"] == "scheduled" || t["status"] == "sent"),
        "{touches:#?}"
    );
    let (s, _) = app
        .patch(&app.admin, &path, json!({"state": "active"}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, l) = app.get(&app.admin, &format!("/api/v1/leads/{id}")).await;
    assert_eq!(state(&l), "active");
    let (_, tl) = app
        .get(&app.admin, &format!("/api/v1/leads/{id}/timeline"))
        .await;
    let kinds: Vec<&str> = tl["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"plan_paused") && kinds.contains(&"plan_resumed"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn csv_import_previews_every_bad_row_by_line_then_imports_the_good_ones() {
    let app = TestApp::spawn_on(BACKEND).await;
    let csv = "First Name,Last Name,Email,Phone,Favorite color\n\
               Ana,Lopez,ana@example.com,512-555-0101,blue\n\
               Bo,Ng,not-an-email,,green\n\
               Cy,Park,cy@example.com,,\n";
    let send = |dry: bool| {
        app.client
            .post(format!("{}/api/v1/leads/import?dry_run={dry}", app.base))
            .bearer_auth(&app.admin)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
    };
    let preview: Value = send(true).await.unwrap().json().await.unwrap();
    assert_eq!(preview["imported"], 2, "{preview:#}");
    assert_eq!(preview["rejected"], 1);
    let bad = preview["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ok"] == false)
        .unwrap();
    assert_eq!(bad["line"], 3);
    assert!(bad["error"].as_str().unwrap().contains("email"), "{bad}");
    let (_, none) = app
        .get(&app.admin, "/api/v1/leads?q=ana%40example.com")
        .await;
    assert_eq!(
        none["items"].as_array().unwrap().len(),
        0,
        "a preview imports nothing"
    );
    let done: Value = send(false).await.unwrap().json().await.unwrap();
    assert_eq!(done["imported"], 2, "{done:#}");
    let (_, ana) = app
        .get(&app.admin, "/api/v1/leads?q=ana%40example.com")
        .await;
    assert_eq!(ana["items"][0]["notes"], "Favorite color: blue");
    // A file that cannot be read at all: one error naming the file's problem, nothing imported.
    let r = app
        .client
        .post(format!("{}/api/v1/leads/import", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "text/csv")
        .body("Name,Notes\nZed,hello\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["errors"][0]["field"], "file");
    assert!(
        e["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{e}"
    );
}

#[tokio::test]
async fn plan_preview_puts_every_text_and_call_inside_the_window_in_the_chosen_zone() {
    let app = TestApp::spawn_on(BACKEND).await;
    let (_, plan) = app.get(&app.admin, "/api/v1/plans/relentless-21").await;
    let (s, p) = app
        .post(
            &app.admin,
            "/api/v1/plans/preview",
            json!({"source": plan["source"], "timezone": "Asia/Kolkata", "start_at": "2026-11-27T20:30:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let touches = p["touches"].as_array().unwrap();
    assert_eq!(touches.len(), 13, "{p:#}");
    let tz = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
    for t in touches {
        if t["channel"] == "text" || t["channel"] == "call" {
            let at: jiff::Timestamp = t["due_at"].as_str().unwrap().parse().unwrap();
            let local = tz.to_datetime(at);
            assert!((8..21).contains(&local.hour()), "{t} is at {local}");
        }
    }
    // 02:00 in Kolkata: the first call waits for 08:00 and says so.
    assert!(touches.iter().any(|t| t["moved_by_window"] == true));
    let (s, e) = app
        .post(
            &app.admin,
            "/api/v1/plans/preview",
            json!({"source": plan["source"], "timezone": "Mars/Base"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["errors"][0]["field"], "timezone");
    // The plan as JSON (what the step editor sends) previews the same, zone and start
    // included; a bad step's field is named.
    let json_plan = json!({"slug": "relentless-21", "name": plan["name"], "levels": plan["levels"],
        "steps": plan["steps"], "timezone": "Asia/Kolkata", "start_at": "2026-11-27T20:30:00Z"});
    let (s, j) = app
        .post(&app.admin, "/api/v1/plans/preview", json_plan.clone())
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["touches"], p["touches"]);
    let mut bad = json_plan;
    bad["steps"][4]["at"] = json!("25:00");
    let (s, e) = app.post(&app.admin, "/api/v1/plans/preview", bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["errors"][0]["field"], "steps[4].at", "{e}");
}

/// A report at a million leads takes seconds to compute, so the page is answered from the
/// last summary of its window: within `report_fresh` as is, later the old one at once while
/// a new one is computed behind it. Each says when it was computed.
#[tokio::test]
async fn reports_are_answered_from_the_last_summary_and_recomputed_behind_it() {
    let config = relentless_engine::Config {
        report_fresh: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let app = TestApp::spawn_with_on(
        BACKEND,
        config,
        std::sync::Arc::new(relentless_engine::channels::outbox::Outbox),
    )
    .await;
    let below8 = |r: &Value| r["leads_below_8_attempts"].as_i64().unwrap();
    let (s, first) = app.get(&app.admin, "/api/v1/reports/summary").await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let computed: jiff::Timestamp = first["computed_at"].as_str().unwrap().parse().unwrap();
    assert!((jiff::Timestamp::now() - computed).as_secs().abs() < 5);
    let (s, lead) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"first_name": "Report", "email": "report@example.com", "timezone": day_zone()}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{lead}");
    // At once: the same summary, not a new computation per request.
    let (_, again) = app.get(&app.admin, "/api/v1/reports/summary").await;
    assert_eq!(again["computed_at"], first["computed_at"]);
    assert_eq!(below8(&again), below8(&first));
    // Once stale, the request that finds it so still gets it at once; the new figures follow.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (_, stale) = app.get(&app.admin, "/api/v1/reports/summary").await;
    assert_eq!(stale["computed_at"], first["computed_at"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, r) = app.get(&app.admin, "/api/v1/reports/summary").await;
        if below8(&r) == below8(&first) + 1 {
            assert_ne!(r["computed_at"], first["computed_at"]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recomputed: {r}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
