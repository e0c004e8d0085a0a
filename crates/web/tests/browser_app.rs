//! The agent's web app in a real headless Chromium (Debian's `chromium` + `chromium-driver`,
//! driven over WebDriver), against the real router and database: sign in, work the Today
//! queue and log a call without a page reload, see a live alert appear when the lead's open
//! pixel is fetched, record a video with Chromium's fake camera and send it by text, sign
//! out, and as an admin edit a template and see the validation error next to the field.
//!
//! With `RELENTLESS_SCREENSHOTS=1` it also saves the main pages to `docs/screenshots/`.

mod browser;
mod common;

use browser::*;
use common::{TestApp, day_zone};
use fantoccini::{Client, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_works_the_app_in_a_real_browser() {
    with_browser(
        "browser_app",
        "1280,1000",
        &[
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
        ],
        agent_day,
    )
    .await;
}

async fn agent_day(c: Client) {
    let app = TestApp::spawn().await;
    app.add_user("casey@example.com", "Casey Agent", "agent", PASSWORD)
        .await;
    app.add_user("lee@example.com", "Lee Admin", "admin", PASSWORD)
        .await;
    // A new lead in a zone where it is daytime: speed-to-lead gives Casey a call task now.
    let (s, lead) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"first_name": "Dana", "last_name": "<b>Quinn</b>", "phone": "+15125550177",
                   "email": "dana.quinn@example.com", "timezone": day_zone(),
                   "assigned_to": "casey@example.com", "source": "Website"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{lead}");
    let lead_id = lead["id"].as_i64().unwrap();
    app.make_speed_to_lead_call_due(lead_id).await;
    let call = eventually("a call task for the new lead", 20, || async {
        let mut tx = app.engine.store.read().await.ok()?;
        let tasks = tx
            .tasks(&relentless_store::TaskFilter {
                lead_id: Some(lead_id),
                status: Some(relentless_core::types::TaskStatus::Open),
                limit: 10,
                ..Default::default()
            })
            .await
            .ok()?;
        tasks
            .into_iter()
            .find(|t| t.kind == relentless_core::types::TaskKind::Call)
    })
    .await;

    // (1) Sign in; Today shows the call with its script, the attempt count and the lead's
    // name as text (the markup in it is not interpreted).
    sign_in(&c, &app.base, "casey@example.com", "/today").await;
    let card = format!("[data-task='{}']", call.id);
    wait_for(&c, &card).await;
    let text = text_of(&c, &card).await;
    assert!(text.contains("Dana <b>Quinn</b>"), "{text}");
    assert!(text.contains("Attempt "), "{text}");
    assert!(text.contains("Call +15125550177"), "{text}");
    assert!(
        c.find_all(Locator::Css("#view b"))
            .await
            .unwrap()
            .is_empty(),
        "the lead's name was rendered as markup"
    );
    screenshot(&c, "today").await;

    // (2) One click logs the call; the page is not reloaded and the task is done.
    js(&c, "window.__stay = 42; return true;", vec![]).await;
    click(&c, &format!("{card} [data-outcome=no_answer]")).await;
    app.wait_task(lead_id, "done", |t| {
        t["id"] == call.id && t["outcome"] == "no_answer"
    })
    .await;
    assert_eq!(js(&c, "return window.__stay;", vec![]).await, json!(42));

    // (3) An email the agent sends from the API; the lead opening it shows a live alert.
    let casey = app.engine.create_token("casey@example.com").await.unwrap();
    let (s, sent) = app
        .post(
            &casey,
            &format!("/api/v1/leads/{lead_id}/messages"),
            json!({"channel": "email", "subject": "Hi {{ lead.first_name }}", "body": "Quick question about your search."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sent}");
    // The email's unsubscribe link and its open pixel share one token.
    let outbox = app.outbox_for(lead_id).await;
    let body = outbox
        .iter()
        .find(|m| m["channel"] == "email")
        .and_then(|m| m["body"].as_str())
        .expect("the email in the outbox")
        .to_string();
    let pixel = pixel_url(&app, &body);
    let r = app
        .client
        .get(&pixel)
        .header("user-agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    wait_for(&c, ".toast.engagement").await;
    let toast = text_of(&c, ".toast.engagement").await;
    assert!(toast.contains("Dana"), "{toast}");
    // The queue pins the engaging lead first.
    wait_for(&c, &format!(".queue-item.engaging[data-lead='{lead_id}']")).await;

    // (4) Record a video with the fake camera and send it by text.
    c.goto(&format!("{}/leads/{lead_id}", app.base))
        .await
        .unwrap();
    wait_for(&c, "#video-camera").await;
    screenshot(&c, "lead").await;
    click(&c, "#video-camera").await;
    wait_for(&c, "#video-record:not([hidden])").await;
    click(&c, "#video-record").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    click(&c, "#video-stop").await;
    wait_for(&c, "#video-send-text:not([disabled])").await;
    click(&c, "#video-send-text").await;
    let status = eventually("the video sent", 20, || async {
        let t = text_of(&c, "#video-status").await;
        t.contains("Sent by text").then_some(t)
    })
    .await;
    assert!(status.contains("/v/"), "{status}");
    let texts: Vec<Value> = app.outbox_for(lead_id).await;
    assert!(
        texts
            .iter()
            .any(|m| m["channel"] == "text" && m["body"].as_str().unwrap_or("").contains("/v/")),
        "a text with the video link: {texts:#?}"
    );

    // (5) Leads and reports render for the agent.
    c.goto(&format!("{}/leads?q=Dana", app.base)).await.unwrap();
    wait_for(&c, "#leads-table tbody tr").await;
    screenshot(&c, "leads").await;
    c.goto(&format!("{}/reports", app.base)).await.unwrap();
    wait_for(&c, "#chart-attempts .floor").await;
    screenshot(&c, "reports").await;

    // (6) Sign out: the session is gone; then an admin edits a template.
    click(&c, ".signout button").await;
    wait_for(&c, "#password").await;
    c.goto(&format!("{}/today", app.base)).await.unwrap();
    wait_for(&c, "#password").await;
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    // The admin's team page shows each intake with the snippet to paste into a website, and
    // a lead's page shows the consent recorded when it signed up.
    let (s, intake) = app
        .post(&app.admin, "/api/v1/intakes", json!({"source": "Website"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{intake}");
    let webhook = intake["url"].as_str().unwrap().to_string();
    let r = app
        .client
        .post(&webhook)
        .form(&[
            ("first_name", "Kim"),
            ("phone", "+15125550155"),
            ("consent_text", "yes"),
            ("consent_text_wording", "Yes, text me about homes."),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "{}",
        r.status()
    );
    let (_, found) = app.get(&app.admin, "/api/v1/leads?q=%2B15125550155").await;
    let kim = found["items"][0]["id"]
        .as_i64()
        .expect("the lead from the form");
    sign_in(&c, &app.base, "lee@example.com", "/team").await;
    wait_for(&c, "pre.snippet").await;
    let snippet = text_of(&c, "pre.snippet").await;
    assert!(snippet.contains(&webhook), "{snippet}");
    screenshot(&c, "team").await;
    c.goto(&format!("{}/leads/{kim}", app.base)).await.unwrap();
    wait_for(&c, "#contact-h").await;
    let card = text_of(&c, "section[aria-labelledby=contact-h]").await;
    assert!(card.contains("Consent to texts: yes"), "{card}");
    assert!(card.contains("Consent to emails: not recorded"), "{card}");

    c.goto(&format!("{}/templates/r21-d0-text", app.base))
        .await
        .unwrap();
    wait_for(&c, "#tpl-body").await;
    let before = app.get(&app.admin, "/api/v1/templates/r21-d0-text").await.1;
    type_into(&c, "#tpl-body", "Hi {{ lead.nickname }}, still looking?").await;
    click(&c, "#view form button[type=submit]").await;
    let err = eventually("the error next to the body", 15, || async {
        let e = c.find(Locator::Css("#tpl-body-error")).await.ok()?;
        e.text().await.ok()
    })
    .await;
    assert!(err.contains("nickname"), "{err}");
    screenshot(&c, "template").await;
    let after = app.get(&app.admin, "/api/v1/templates/r21-d0-text").await.1;
    assert_eq!(
        before["body"], after["body"],
        "a refused template is not saved"
    );
}

/// The open pixel of a tracked email, from the unsubscribe link in its text.
fn pixel_url(app: &TestApp, body: &str) -> String {
    let at = body
        .find("/u/")
        .unwrap_or_else(|| panic!("no unsubscribe link in: {body}"));
    let token: String = body[at + 3..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{}/t/{token}/o.gif", app.base)
}
