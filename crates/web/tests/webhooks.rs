//! Webhooks and tracking through the real router: Twilio's signed form posts, inbound
//! email, the open pixel, click redirects, unsubscribe and the video page.

mod common;

use common::{TestApp, day_zone};
use relentless_engine::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

const AUTH: &str = "test-auth-token";
const INBOUND: &str = "inbound-secret-token";

async fn app() -> TestApp {
    let config = Config {
        twilio_auth_token: Some(AUTH.into()),
        inbound_email_token: Some(INBOUND.into()),
        ..Config::default()
    };
    TestApp::spawn_with(
        config,
        Arc::new(relentless_engine::channels::Router::outbox()),
    )
    .await
}

/// Posts a form to a Twilio webhook, signed the way Twilio signs (or with `sig` instead).
async fn twilio(
    app: &TestApp,
    path: &str,
    params: &[(&str, &str)],
    sig: Option<&str>,
) -> (StatusCode, String) {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let url = format!("{}{}", app.base, path);
    let signature = sig
        .map(str::to_string)
        .unwrap_or_else(|| relentless_core::twilio::signature(AUTH, &url, &owned));
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(owned.iter())
        .finish();
    let res = app
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

async fn lead(app: &TestApp, body: Value) -> Value {
    let (s, l) = app.post(&app.admin, "/api/v1/leads", body).await;
    assert!(s.is_success(), "{l}");
    l
}

async fn get_lead(app: &TestApp, id: i64) -> Value {
    app.get(&app.admin, &format!("/api/v1/leads/{id}")).await.1
}

async fn timeline_kinds(app: &TestApp, id: i64) -> Vec<String> {
    let (_, t) = app
        .get(
            &app.admin,
            &format!("/api/v1/leads/{id}/timeline?limit=200"),
        )
        .await;
    t["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect()
}

/// An email from the engine's fixtures (`engine/tests/fixtures/email/{name}.eml`).
fn email_fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../engine/tests/fixtures/email/{name}.eml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Posts a raw email to the inbound-email webhook with `token`; the answer's status.
async fn post_inbound(app: &TestApp, token: &str, raw: String) -> StatusCode {
    app.client
        .post(format!("{}/webhooks/email/inbound?token={token}", app.base))
        .body(raw)
        .send()
        .await
        .unwrap()
        .status()
}

/// Mail on a phone, as an open pixel sees it (a person reading, not a privacy prefetch).
const PHONE_MAIL: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";

/// Loads the open pixel of `token` as `ua` does.
async fn open_pixel(app: &TestApp, token: &str, ua: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/t/{token}/o.gif", app.base))
        .header("user-agent", ua)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_refused_and_changes_nothing() {
    let app = app().await;
    let l = lead(&app, json!({"phone": "+15125550180"})).await;
    let params = [
        ("From", "+15125550180"),
        ("Body", "STOP"),
        ("MessageSid", "SM1"),
    ];
    let (s, _) = twilio(
        &app,
        "/webhooks/twilio/sms",
        &params,
        Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let res = app
        .client
        .post(format!("{}/webhooks/twilio/sms", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("From=%2B15125550180&Body=STOP")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        get_lead(&app, l["id"].as_i64().unwrap()).await["sms_opt_out"],
        false
    );
}

#[tokio::test]
async fn stop_opts_out_once_confirms_once_and_start_opts_back_in() {
    let app = app().await;
    let l = lead(
        &app,
        json!({"phone": "+15125550181", "timezone": day_zone()}),
    )
    .await;
    let id = l["id"].as_i64().unwrap();
    let (s, twiml) = twilio(
        &app,
        "/webhooks/twilio/sms",
        &[
            ("From", "+15125550181"),
            ("Body", "  Stop. "),
            ("MessageSid", "SM100"),
        ],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        twiml.contains("<Response><Message>") && twiml.contains("unsubscribed"),
        "{twiml}"
    );
    assert_eq!(get_lead(&app, id).await["sms_opt_out"], true);
    // Twilio retries the same message: handled once, no second confirmation.
    let (_, again) = twilio(
        &app,
        "/webhooks/twilio/sms",
        &[
            ("From", "+15125550181"),
            ("Body", "  Stop. "),
            ("MessageSid", "SM100"),
        ],
        None,
    )
    .await;
    assert!(!again.contains("<Message>"), "{again}");
    assert_eq!(
        timeline_kinds(&app, id)
            .await
            .iter()
            .filter(|k| *k == "opt_out")
            .count(),
        1
    );
    // Later texts are skipped: bring the plan's next text forward and let the dispatcher see it.
    let mut tx = app.engine.store.write().await.unwrap();
    let text = tx
        .touches_for_lead(id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| {
            t.status == relentless_core::types::TouchStatus::Scheduled
                && t.channel == relentless_core::types::Channel::Text
        })
        .unwrap();
    tx.touch_reschedule(text.id, relentless_engine::now_ms() - 1, "test")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    app.engine.wake.notify_one();
    let touches = app
        .wait_touches(id, "text settled", |t| {
            t.iter().any(|t| {
                t["id"] == text.id && t["status"] != "scheduled" && t["status"] != "sending"
            })
        })
        .await;
    let t = touches.iter().find(|t| t["id"] == text.id).unwrap();
    assert!(
        t["status"] == "skipped" || t["channel"] == "email",
        "no text after STOP: {t}"
    );
    let texts_after = app
        .outbox_for(id)
        .await
        .into_iter()
        .filter(|m| m["channel"] == "text" && m["touch_id"] == text.id)
        .count();
    assert_eq!(texts_after, 0);
    let (_, twiml) = twilio(
        &app,
        "/webhooks/twilio/sms",
        &[
            ("From", "+15125550181"),
            ("Body", "START"),
            ("MessageSid", "SM101"),
        ],
        None,
    )
    .await;
    assert!(twiml.contains("<Message>"), "{twiml}");
    assert_eq!(get_lead(&app, id).await["sms_opt_out"], false);
}

#[tokio::test]
async fn help_gets_the_help_reply() {
    let app = app().await;
    let (_, twiml) = twilio(
        &app,
        "/webhooks/twilio/sms",
        &[
            ("From", "+15125550182"),
            ("Body", "help"),
            ("MessageSid", "SM200"),
        ],
        None,
    )
    .await;
    for needle in [
        "Test Team",
        "STOP",
        "Msg &amp; data rates may apply",
        "frequency",
    ] {
        assert!(twiml.contains(needle), "{needle} missing: {twiml}");
    }
}

#[tokio::test]
async fn a_text_from_a_lead_is_an_answer_and_a_polite_stop_is_flagged() {
    let app = app().await;
    let l = lead(
        &app,
        json!({"phone": "+15125550183", "email": "t@example.com"}),
    )
    .await;
    let id = l["id"].as_i64().unwrap();
    let (s, twiml) = twilio(
        &app,
        "/webhooks/twilio/sms",
        &[
            ("From", "(512) 555-0183"),
            ("Body", "please stop texting me"),
            ("MessageSid", "SM300"),
        ],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!twiml.contains("<Message>"));
    let l = get_lead(&app, id).await;
    assert_eq!(l["stage"], "contacted");
    assert_eq!(l["preferred_channel"], "text");
    assert!(
        l["enrollments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["reason"] == "replied")
    );
    assert!(
        timeline_kinds(&app, id)
            .await
            .contains(&"likely_opt_out".to_string())
    );
}

#[tokio::test]
async fn a_text_from_an_unknown_number_becomes_a_lead_with_speed_to_lead() {
    let app = app().await;
    let (s, _) = twilio(
        &app,
        "/webhooks/twilio/sms",
        &[
            ("From", "+15125550184"),
            ("Body", "Is 12 Oak St still available?"),
            ("MessageSid", "SM400"),
        ],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = app.get(&app.admin, "/api/v1/leads?q=5125550184").await;
    let l = &list["items"][0];
    assert_eq!(l["source"], "sms");
    assert!(l["notes"].as_str().unwrap().contains("12 Oak St"));
    assert_eq!(l["enrollments"][0]["plan"], "speed-to-lead");
}

#[tokio::test]
async fn status_callbacks_update_delivery_and_failures_reach_the_timeline() {
    let app = app().await;
    let l = lead(
        &app,
        json!({"phone": "+15125550185", "timezone": day_zone()}),
    )
    .await;
    let id = l["id"].as_i64().unwrap();
    app.wait_touches(id, "sent", |t| t.iter().any(|t| t["status"] == "sent"))
        .await;
    let mut tx = app.engine.store.write().await.unwrap();
    let sent = tx
        .touches_for_lead(id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.status == relentless_core::types::TouchStatus::Sent)
        .unwrap();
    sqlx_set_provider(&mut tx, sent.id, "SMabc").await;
    tx.commit().await.unwrap();
    let (s, _) = twilio(
        &app,
        "/webhooks/twilio/status",
        &[
            ("MessageSid", "SMabc"),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30006"),
        ],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let t = app
        .touches(id)
        .await
        .into_iter()
        .find(|t| t["id"] == sent.id)
        .unwrap();
    assert_eq!(t["delivery"], "undelivered");
    assert_eq!(
        get_lead(&app, id).await["phone_bad"],
        true,
        "30006 is a landline"
    );
    assert!(
        timeline_kinds(&app, id)
            .await
            .contains(&"delivery_failed".to_string())
    );
}

/// The outbox gives no provider id; set one as Twilio would have.
async fn sqlx_set_provider(tx: &mut Box<dyn relentless_store::Tx>, touch_id: i64, sid: &str) {
    let due_at = tx.touch(touch_id).await.unwrap().unwrap().due_at;
    let r = relentless_store::TouchResult {
        touch_id,
        due_at,
        lead_id: 0,
        status: relentless_core::types::TouchStatus::Sent,
        reason: None,
        sent_channel: Some(relentless_core::types::Channel::Text),
        subject: None,
        content: None,
        provider_id: Some(sid.into()),
        attempt: false,
    };
    tx.touches_record(&[r], relentless_engine::now_ms())
        .await
        .unwrap();
}

/// Sends a lead an email (to the outbox) and returns (lead id, touch id, tracking token).
async fn emailed(app: &TestApp, email: &str, phone: &str) -> (i64, i64, String) {
    // Texts are off for this lead, so speed-to-lead answers by email; the phone still takes calls.
    // It lives where it is daytime: at night the text step (and so its email fallback) waits
    // for the morning.
    let l = lead(
        app,
        json!({"first_name": "Dana", "email": email, "phone": phone, "sms_opt_out": true,
               "timezone": day_zone()}),
    )
    .await;
    let id = l["id"].as_i64().unwrap();
    app.wait_touches(id, "email sent", |t| {
        t.iter().any(|t| t["status"] == "sent")
    })
    .await;
    let out = app.outbox_for(id).await;
    let body = out[0]["body"].as_str().unwrap();
    let token = body
        .split("/u/")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect::<String>();
    (id, out[0]["touch_id"].as_i64().unwrap(), token)
}

#[tokio::test]
async fn inbound_email_reply_stops_plans_auto_replies_do_not_and_bounces_mark_the_address() {
    let app = app().await;
    let (id, touch, _) = emailed(&app, "dana.whitfield@gmail.com", "+15125550190").await;
    let mid =
        relentless_engine::channels::email::compose::message_id(touch, &app.base, "localhost");
    let raw =
        email_fixture("gmail_reply").replace("<relentless.42.abcdef123456@example.com>", &mid);
    assert_eq!(
        post_inbound(&app, "wrong", raw.clone()).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_lead(&app, id).await["stage"],
        "attempting",
        "nothing stored for a wrong token"
    );
    let ooo = email_fixture("gmail_vacation_auto_reply")
        .replace("<relentless.42.abcdef123456@example.com>", &mid);
    assert_eq!(
        post_inbound(&app, INBOUND, ooo).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get_lead(&app, id).await["stage"],
        "attempting",
        "an auto-reply is not an answer"
    );
    assert_eq!(
        post_inbound(&app, INBOUND, raw.clone()).await,
        StatusCode::NO_CONTENT
    );
    let l = get_lead(&app, id).await;
    assert_eq!(
        (l["stage"].as_str(), l["preferred_channel"].as_str()),
        (Some("contacted"), Some("email"))
    );
    let (_, tl) = app
        .get(&app.admin, &format!("/api/v1/leads/{id}/timeline"))
        .await;
    let reply = tl["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "reply")
        .unwrap();
    assert!(
        !reply["detail"].as_str().unwrap().contains("wrote:"),
        "quoted history stripped: {reply}"
    );

    let (bid, btouch, _) = emailed(&app, "jordan.reyes@example.net", "+15125550191").await;
    let bmid =
        relentless_engine::channels::email::compose::message_id(btouch, &app.base, "localhost");
    let bounce = email_fixture("postfix_hard_bounce")
        .replace("<relentless.42.abcdef123456@example.com>", &bmid);
    assert_eq!(
        post_inbound(&app, INBOUND, bounce).await,
        StatusCode::NO_CONTENT
    );
    let b = get_lead(&app, bid).await;
    assert_eq!(
        (b["email_bad"].as_bool(), b["stage"].as_str()),
        (Some(true), Some("attempting")),
        "a bounce is not an answer"
    );
}

/// A reply sent from an address the lead does not have (a work account, a spouse's) is still
/// the lead's answer when it cites the Message-ID of the email it answers; one citing that
/// touch with another installation's digest is not.
#[tokio::test]
async fn a_reply_from_another_address_is_matched_by_the_message_id_it_answers() {
    let app = app().await;
    let (id, touch, _) = emailed(&app, "casey.lane@example.org", "+15125550193").await;
    let mid =
        relentless_engine::channels::email::compose::message_id(touch, &app.base, "localhost");
    // (Each reply its own Message-ID: a second email with the same one is a replay.)
    let reply = |cited: &str, own: &str| {
        email_fixture("gmail_reply")
            .replace("<relentless.42.abcdef123456@example.com>", cited)
            .replace("Dana.Whitfield@gmail.com", "casey.at.work@example.com")
            .replace("Message-ID: <", &format!("Message-ID: <{own}."))
    };
    let forged = format!("<relentless.{touch}.000000000000@localhost>");
    assert_eq!(
        post_inbound(&app, INBOUND, reply(&forged, "first")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get_lead(&app, id).await["stage"],
        "attempting",
        "the touch's id with a Message-ID it was not sent with matches nothing"
    );
    assert_eq!(
        post_inbound(&app, INBOUND, reply(&mid, "second")).await,
        StatusCode::NO_CONTENT
    );
    let l = get_lead(&app, id).await;
    assert_eq!(
        (l["stage"].as_str(), l["preferred_channel"].as_str()),
        (Some("contacted"), Some("email")),
        "matched by the Message-ID alone: {l}"
    );
}

#[tokio::test]
async fn a_reply_to_the_reply_address_reaches_its_lead_whoever_sends_it() {
    // With a reply domain, emails carry `Reply-To: r+{tracking token}@{domain}`; a reply that
    // cites none of our Message-IDs, from an address the lead never gave, is still theirs.
    let app = TestApp::spawn_with(
        Config {
            twilio_auth_token: Some(AUTH.into()),
            inbound_email_token: Some(INBOUND.into()),
            reply_domain: Some("replies.example.com".into()),
            ..Config::default()
        },
        Arc::new(relentless_engine::channels::Router::outbox()),
    )
    .await;
    let (id, _, token) = emailed(&app, "morgan.reyes@example.org", "+15125550194").await;
    assert_eq!(token.len(), 44, "{token}");
    // (Each reply its own Message-ID: a second email with the same one is a replay.)
    let reply = |to: &str| {
        email_fixture("gmail_reply")
            .replace(
                "<relentless.42.abcdef123456@example.com>",
                "<CAF1x2y3z4@mail.example.net>",
            )
            .replace("Dana.Whitfield@gmail.com", "m.reyes.home@example.net")
            .replace("r+7f3c9a2b1e6d4c8f9a0b1c2d3e4f5a6b@replies.example.com", to)
            .replace("Message-ID: <", &format!("Message-ID: <{}.", &to[2..10]))
    };
    // A token nobody was given matches nothing.
    let unknown = format!(
        "r+{}@replies.example.com",
        relentless_engine::tracking_token(0)
    );
    assert_eq!(
        post_inbound(&app, INBOUND, reply(&unknown)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(get_lead(&app, id).await["stage"], "attempting");
    let ours = format!("r+{token}@replies.example.com");
    assert_eq!(
        post_inbound(&app, INBOUND, reply(&ours)).await,
        StatusCode::NO_CONTENT
    );
    let l = get_lead(&app, id).await;
    assert_eq!(
        (l["stage"].as_str(), l["preferred_channel"].as_str()),
        (Some("contacted"), Some("email")),
        "matched by the reply address alone: {l}"
    );
}

#[tokio::test]
async fn a_human_open_is_engagement_a_machine_open_is_only_recorded() {
    let app = app().await;
    let (id, _, token) = emailed(&app, "open@example.com", "+15125550192").await;
    // Apple Mail Privacy Protection prefetches with a bare UA.
    let res = open_pixel(&app, &token, "Mozilla/5.0").await;
    assert_eq!(res.headers()["content-type"], "image/gif");
    assert_eq!(
        get_lead(&app, id).await["level"],
        "warm",
        "a machine open raises nothing"
    );
    assert!(
        timeline_kinds(&app, id)
            .await
            .contains(&"open_machine".to_string())
    );
    open_pixel(&app, &token, PHONE_MAIL).await;
    let l = get_lead(&app, id).await;
    assert_eq!(l["level"], "hot");
    let (_, tasks) = app
        .get(
            &app.admin,
            &format!("/api/v1/tasks?assignee=all&lead_id={id}"),
        )
        .await;
    assert_eq!(
        tasks["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == "call" && t["touch_id"].is_null())
            .count(),
        1
    );
    // A second open within the hour does not pile up call tasks.
    open_pixel(&app, &token, PHONE_MAIL).await;
    let (_, tasks) = app
        .get(
            &app.admin,
            &format!("/api/v1/tasks?assignee=all&lead_id={id}"),
        )
        .await;
    assert_eq!(
        tasks["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == "call" && t["touch_id"].is_null())
            .count(),
        1
    );
    // Unknown tokens still get a pixel, and record nothing.
    let res = app
        .client
        .get(format!("{}/t/{}/o.gif", app.base, "0".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_in_the_earlier_format_still_counts_opens_and_clicks() {
    // Emails already in inboxes carry 32-digit tokens (before the time-first format): an open
    // and a click on them must still reach the lead.
    let app = app().await;
    let (id, touch_id, token) = emailed(&app, "legacy@example.com", "+15125550193").await;
    assert_eq!(
        token.len(),
        44,
        "new emails carry the time-first format: {token}"
    );
    let old = relentless_engine::random_token();
    assert_eq!(old.len(), 32);
    let mut tx = app.engine.store.write().await.unwrap();
    tx.tracking_insert(&relentless_store::Tracking {
        token: old.clone(),
        kind: "email".into(),
        lead_id: id,
        touch_id: Some(touch_id),
        links: vec!["https://example.com/listing".into()],
        video_id: None,
        created_at: relentless_engine::now_ms(),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    open_pixel(&app, &old, PHONE_MAIL).await;
    assert_eq!(get_lead(&app, id).await["level"], "hot");
    assert!(timeline_kinds(&app, id).await.contains(&"open".to_string()));
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/t/{old}/c/0", app.base))
        .header("user-agent", PHONE_MAIL)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(res.headers()["location"], "https://example.com/listing");
}

#[tokio::test]
async fn clicks_redirect_only_to_the_stored_link_and_unsubscribe_is_one_click() {
    let app = app().await;
    let (s, _) = app
        .put(&app.admin, "/api/v1/templates/r21-d0-email", json!({"channel": "email", "name": "x", "subject": "Homes", "body": "See https://listings.example.com/123?a=1 and http://example.org/tour."}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let l = lead(&app, json!({"email": "click@example.com"})).await;
    let id = l["id"].as_i64().unwrap();
    // Bring the +1h email forward.
    let mut tx = app.engine.store.write().await.unwrap();
    let e = tx
        .touches_for_lead(id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.template == "r21-d0-email")
        .unwrap();
    tx.touch_reschedule(e.id, relentless_engine::now_ms() - 1, "test")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    app.engine.wake.notify_one();
    app.wait_touches(id, "sent", |t| {
        t.iter().any(|t| t["id"] == e.id && t["status"] == "sent")
    })
    .await;
    let out = app.outbox_for(id).await;
    let m = out.iter().find(|m| m["touch_id"] == e.id).unwrap();
    let token = m["body"]
        .as_str()
        .unwrap()
        .split("/u/")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect::<String>();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
    // A click in the first 2 s is a scanner: it is recorded and raises nothing.
    let res = client
        .get(format!("{}/t/{token}/c/0", app.base))
        .header("user-agent", ua)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection());
    assert_eq!(get_lead(&app, id).await["level"], "warm");
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let res = client
        .get(format!(
            "{}/t/{token}/c/0?url=https://evil.example",
            app.base
        ))
        .header("user-agent", ua)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(
        res.headers()["location"],
        "https://listings.example.com/123?a=1"
    );
    let res = client
        .get(format!("{}/t/{token}/c/1", app.base))
        .header("user-agent", ua)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "http://example.org/tour");
    assert!(
        timeline_kinds(&app, id)
            .await
            .contains(&"click_machine".to_string())
    );
    assert_eq!(
        client
            .get(format!("{}/t/{token}/c/2", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(get_lead(&app, id).await["level"], "hot");
    // GET shows a page and changes nothing; the POST unsubscribes.
    let page = client
        .get(format!("{}/u/{token}", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<form method=\"post\""));
    assert_eq!(get_lead(&app, id).await["email_opt_out"], false);
    let res = client
        .post(format!("{}/u/{token}", app.base))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(get_lead(&app, id).await["email_opt_out"], true);
}

#[tokio::test]
async fn a_personal_video_is_uploaded_sent_streamed_and_a_play_is_engagement() {
    let app = app().await;
    let l = lead(&app, json!({"first_name": "Vic", "phone": "+15125550186"})).await;
    let id = l["id"].as_i64().unwrap();
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let res = app
        .client
        .post(format!("{}/api/v1/leads/{id}/videos", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "video/webm")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    let (s, sent) = app
        .post(
            &app.admin,
            &format!("/api/v1/leads/{id}/videos/{}/send", v["id"]),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{sent}");
    let url = sent["url"].as_str().unwrap().to_string();
    // The link goes out in a text: its token stays 32 digits (an email's carries 12 more).
    let token = url.rsplit('/').next().unwrap();
    assert!(
        token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{url}"
    );
    let out = app.outbox_for(id).await;
    assert!(
        out.iter()
            .any(|m| m["channel"] == "text" && m["body"].as_str().unwrap().contains(&url)),
        "{out:#?}"
    );
    let page = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<video") && page.contains("Hi Vic"), "{page}");
    let res = app
        .client
        .get(format!("{url}/file"))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &bytes[100..200]);
    let res = app
        .client
        .post(format!("{url}/events"))
        .json(&json!({"event": "play"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(get_lead(&app, id).await["level"], "hot");
    assert!(
        timeline_kinds(&app, id)
            .await
            .contains(&"video_view".to_string())
    );
    let res = app
        .client
        .post(format!("{}/api/v1/leads/{id}/videos", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "text/plain")
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_agent_who_opted_in_gets_the_engagement_alert_by_text() {
    let app = app().await;
    let (s, agent) = app
        .post(&app.admin, "/api/v1/users", json!({"email": "alerts@example.com", "name": "Al Ert", "phone": "+15125550199", "notify_sms": true}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{agent}");
    let token = app.engine.create_token("alerts@example.com").await.unwrap();
    let l = lead(&app, json!({"first_name": "Olive", "email": "olive@example.com", "phone": "+15125550193", "sms_opt_out": true, "timezone": day_zone()})).await;
    let id = l["id"].as_i64().unwrap();
    let (s, _) = app
        .patch(
            &app.admin,
            &format!("/api/v1/leads/{id}"),
            json!({"assigned_to": "alerts@example.com"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    app.wait_touches(id, "email sent", |t| {
        t.iter().any(|t| t["status"] == "sent")
    })
    .await;
    let out = app.outbox_for(id).await;
    let token_t = out[0]["body"]
        .as_str()
        .unwrap()
        .split("/u/")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect::<String>();
    open_pixel(&app, &token_t, PHONE_MAIL).await;
    let mut alert = None;
    for _ in 0..100 {
        alert = app
            .outbox_for(id)
            .await
            .into_iter()
            .find(|m| m["to"] == "+15125550199");
        if alert.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let alert = alert.expect("the agent's alert text");
    assert!(alert["body"].as_str().unwrap().contains("Olive"), "{alert}");
    assert_eq!(alert["channel"], "text");
    let kinds = timeline_kinds(&app, id).await;
    assert!(
        kinds.contains(&"agent_alert".to_string()) && !kinds.contains(&"text_sent".to_string()),
        "the timeline says the alert went to the agent: {kinds:?}"
    );
    let _ = token;
}

#[tokio::test]
async fn completing_a_video_task_with_a_video_sends_the_lead_its_page() {
    let app = app().await;
    let l = lead(&app, json!({"first_name": "Val", "phone": "+15125550194"})).await;
    let id = l["id"].as_i64().unwrap();
    let mut tx = app.engine.store.write().await.unwrap();
    let admin = tx
        .user_by_email("admin@example.com")
        .await
        .unwrap()
        .unwrap();
    let task_id = tx
        .task_insert(
            &relentless_store::NewTask {
                lead_id: id,
                touch_id: None,
                assignee_id: Some(admin.id),
                kind: relentless_core::types::TaskKind::Video,
                due_at: 0,
                script: "Record a video".into(),
                voicemail: None,
            },
            0,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let res = app
        .client
        .post(format!("{}/api/v1/leads/{id}/videos", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "video/mp4")
        .body(vec![1u8; 2048])
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    let (s, t) = app
        .post(
            &app.admin,
            &format!("/api/v1/tasks/{task_id}/complete"),
            json!({"outcome": "done", "video_id": v["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["status"], "done");
    let url = t["video_url"].as_str().unwrap();
    assert!(
        app.outbox_for(id)
            .await
            .iter()
            .any(|m| m["body"].as_str().unwrap().contains(url))
    );
    let (_, l) = app.get(&app.admin, &format!("/api/v1/leads/{id}")).await;
    assert!(
        l["attempts"].as_i64().unwrap() >= 1,
        "a completed video task is an attempt"
    );
}
