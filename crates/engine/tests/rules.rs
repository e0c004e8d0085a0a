//! SPEC §5 rules exercised on the engine with a real SQLite file.

use relentless_core::types::*;
use relentless_engine::channels::outbox::Outbox;
use relentless_engine::dispatch::Dispatcher;
use relentless_engine::leads::{LeadInput, Origin};
use relentless_engine::setup::{InitInput, UserInput};
use relentless_engine::{Config, Engine, now_ms};
use relentless_store::sqlite::SqliteStore;
use relentless_store::*;
use std::sync::Arc;

async fn engine(dir: &tempfile::TempDir) -> (Engine, User) {
    let s = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/r.db", dir.path().display()))
            .await
            .unwrap(),
    );
    s.migrate().await.unwrap();
    let e = Engine::new(s, Arc::new(Outbox), Config::default());
    let (admin, _) = e
        .init(InitInput {
            admin_email: "boss@example.com".into(),
            admin_password: None,
            team_name: None,
            address: None,
        })
        .await
        .unwrap();
    (e, admin)
}

#[tokio::test]
async fn an_hour_overdue_call_on_a_hot_lead_notifies_the_admins() {
    let dir = tempfile::tempdir().unwrap();
    let (e, admin) = engine(&dir).await;
    let agent = e
        .add_user(UserInput {
            email: Some("a@example.com".into()),
            name: Some("A".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let input = LeadInput {
        email: Some(Some("hot@example.com".into())),
        level: Some("hot".into()),
        ..Default::default()
    };
    let lead = e
        .create_lead(Some(&agent), input, Origin::Import, None)
        .await
        .unwrap()
        .lead;
    let cold = LeadInput {
        email: Some(Some("cold@example.com".into())),
        level: Some("cold".into()),
        ..Default::default()
    };
    let cold = e
        .create_lead(Some(&agent), cold, Origin::Import, None)
        .await
        .unwrap()
        .lead;
    let mut tx = e.store.write().await.unwrap();
    let now = now_ms();
    for (l, overdue_min) in [(lead.id, 61), (lead.id, 30), (cold.id, 120)] {
        let t = NewTask {
            lead_id: l,
            touch_id: None,
            assignee_id: Some(agent.id),
            kind: TaskKind::Call,
            due_at: now - overdue_min * 60_000,
            script: "call".into(),
            voicemail: None,
        };
        tx.task_insert(&t, now).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut live = e.bus.subscribe();
    let mut d = Dispatcher::new(e.clone());
    d.tick().await.unwrap();
    let mut tx = e.store.read().await.unwrap();
    let notes = tx.notifications_after(admin.id, 0, 10).await.unwrap();
    assert_eq!(
        notes.len(),
        1,
        "only the hot lead's call over 60 minutes: {notes:?}"
    );
    assert_eq!(
        (notes[0].event.as_str(), notes[0].lead_id),
        ("escalation", Some(lead.id))
    );
    assert!(
        notes[0].detail.contains("61 minutes overdue"),
        "{}",
        notes[0].detail
    );
    assert_eq!(
        live.try_recv().unwrap().event,
        "escalation",
        "published live too"
    );
    drop(tx);
    // Escalated once, not every minute.
    Dispatcher::new(e.clone()).tick().await.unwrap();
    let mut tx = e.store.read().await.unwrap();
    assert_eq!(
        tx.notifications_after(admin.id, 0, 10).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_reply_stops_every_plan_and_learns_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _admin) = engine(&dir).await;
    let input = LeadInput {
        email: Some(Some("r@example.com".into())),
        phone: Some(Some("+15125550170".into())),
        ..Default::default()
    };
    let lead = e
        .create_lead(None, input, Origin::Api, None)
        .await
        .unwrap()
        .lead;
    e.record_reply(lead.id, Channel::Email, "Sounds good, what times work?")
        .await
        .unwrap();
    let mut tx = e.store.read().await.unwrap();
    let l = tx.lead(lead.id).await.unwrap().unwrap();
    assert_eq!(
        (l.stage, l.preferred_channel.as_deref(), l.next_touch_at),
        (Stage::Contacted, Some("email"), None)
    );
    for en in tx.enrollments(lead.id).await.unwrap() {
        assert_eq!(
            (en.state, en.reason.as_deref()),
            (EnrollmentState::Stopped, Some("replied"))
        );
    }
    let tasks = tx
        .tasks(&TaskFilter {
            lead_id: Some(lead.id),
            status: Some(TaskStatus::Open),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        tasks
            .iter()
            .any(|t| t.kind == TaskKind::Reply && t.script.contains("what times work")),
        "{tasks:?}"
    );
}

#[tokio::test]
async fn a_due_call_step_becomes_a_task_for_the_agent_who_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _) = engine(&dir).await;
    let agent = e
        .add_user(UserInput {
            email: Some("caller@example.com".into()),
            name: Some("Cal Caller".into()),
            phone: Some("+15125550171".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut tx = e.store.write().await.unwrap();
    tx.plan_save(&PlanRow { slug: "call-now".into(), name: "Call now".into(), version: 1, source: "slug='call-now'\nname='Call now'\n[[steps]]\nafter='+0m'\nchannel='task'\ntemplate='meeting-promised-answer'\n".into(), updated_at: 0 }).await.unwrap();
    tx.commit().await.unwrap();
    let zone = day_zone();
    let input = LeadInput {
        first_name: Some("Tia".into()),
        email: Some(Some("tia@example.com".into())),
        timezone: Some(zone),
        ..Default::default()
    };
    let lead = e
        .create_lead(Some(&agent), input, Origin::Import, Some("call-now"))
        .await
        .unwrap()
        .lead;
    let r = Dispatcher::new(e.clone()).tick().await.unwrap();
    assert_eq!(r.tasks, 1);
    let mut tx = e.store.read().await.unwrap();
    let tasks = tx
        .tasks(&TaskFilter {
            assignee_id: Some(agent.id),
            status: Some(TaskStatus::Open),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert!(
        tasks[0].script.contains("Hi Tia, it's Cal"),
        "rendered word-for-word script: {}",
        tasks[0].script
    );
    let touch = tx.touches_for_lead(lead.id).await.unwrap().remove(0);
    assert_eq!(
        (touch.status, touch.task_id),
        (TouchStatus::Scheduled, Some(tasks[0].id)),
        "an open task is not an attempt yet"
    );
    assert_eq!(tx.lead(lead.id).await.unwrap().unwrap().attempts, 0);
    let notes = tx.notifications_after(agent.id, 0, 10).await.unwrap();
    assert_eq!(notes[0].event, "task_due");
    // A second tick does not create a second task for the same touch.
    drop(tx);
    assert_eq!(Dispatcher::new(e.clone()).tick().await.unwrap().claimed, 0);
}

/// A zone where it is daytime now: a text, call or task step there is due at once, whatever
/// time the tests run (at night the sending window holds it until the morning).
fn day_zone() -> String {
    relentless_core::schedule::zone_with_local_hour(jiff::Timestamp::now(), 10..=17).unwrap()
}

/// A zone where it is night now (01:00–05:59): outside every sending window.
fn night_zone() -> String {
    relentless_core::schedule::zone_with_local_hour(jiff::Timestamp::now(), 1..=5).unwrap()
}

/// SPEC §4: speed-to-lead answers every new lead at once, by text or, when the lead cannot be
/// texted, by email. Email is not held by the sending window, so a web lead with only an email
/// address that comes in at night gets its answer then, not at 08:00.
#[tokio::test]
async fn an_email_only_lead_at_night_gets_the_speed_to_lead_email_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _) = engine(&dir).await;
    let input = LeadInput {
        first_name: Some("Nia".into()),
        email: Some(Some("nia@example.com".into())),
        timezone: Some(night_zone()),
        ..Default::default()
    };
    let lead = e
        .create_lead(None, input, Origin::Api, None)
        .await
        .unwrap()
        .lead;
    Dispatcher::new(e.clone()).tick().await.unwrap();
    let mut tx = e.store.read().await.unwrap();
    let first = tx
        .touches_for_lead(lead.id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.plan == "speed-to-lead" && t.step == 0)
        .unwrap();
    assert_eq!(
        (first.status, first.sent_channel.as_deref()),
        (TouchStatus::Sent, Some("email")),
        "{first:?}"
    );
}

/// Saves the plan `slug` with these steps (TOML `[[steps]]` tables), as a new version.
async fn save_plan(e: &Engine, slug: &str, version: i64, steps: &str) {
    let mut tx = e.store.write().await.unwrap();
    tx.plan_save(&PlanRow {
        slug: slug.into(),
        name: slug.into(),
        version,
        source: format!("slug='{slug}'\nname='{slug}'\n{steps}"),
        updated_at: 0,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn one_step_plan(e: &Engine, slug: &str, channel: &str, template: &str) {
    let steps = format!("[[steps]]\nafter='+0m'\nchannel='{channel}'\ntemplate='{template}'\n");
    save_plan(e, slug, 1, &steps).await;
}

#[tokio::test]
async fn a_preferred_step_uses_the_channel_the_lead_prefers() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _) = engine(&dir).await;
    one_step_plan(&e, "pref", "preferred", "r21-d0-email").await;
    let input = LeadInput {
        email: Some(Some("p@example.com".into())),
        phone: Some(Some("+15125550172".into())),
        preferred_channel: Some(Some("email".into())),
        // A `preferred` step is laid out in the sending window (it may become a text).
        timezone: Some(day_zone()),
        ..Default::default()
    };
    let lead = e
        .create_lead(None, input, Origin::Import, Some("pref"))
        .await
        .unwrap()
        .lead;
    Dispatcher::new(e.clone()).tick().await.unwrap();
    let mut tx = e.store.read().await.unwrap();
    let t = tx.touches_for_lead(lead.id).await.unwrap().remove(0);
    assert_eq!(
        (t.status, t.sent_channel.as_deref()),
        (TouchStatus::Sent, Some("email")),
        "the lead prefers email: {t:?}"
    );
}

#[tokio::test]
async fn an_smtp_server_that_is_down_leaves_the_touch_due_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/down.db", dir.path().display()))
            .await
            .unwrap(),
    );
    s.migrate().await.unwrap();
    // A port nothing listens on: the connection is refused before anything is sent.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let smtp = relentless_engine::channels::email::SmtpChannel::from_url(
        &format!("smtp://127.0.0.1:{closed}"),
        "team@example.com",
    )
    .unwrap();
    let router = relentless_engine::channels::Router {
        email: Arc::new(smtp),
        sms: Arc::new(Outbox),
    };
    let e = Engine::new(s, Arc::new(router), Config::default());
    e.init(InitInput {
        admin_email: "boss@example.com".into(),
        admin_password: None,
        team_name: None,
        address: None,
    })
    .await
    .unwrap();
    one_step_plan(&e, "mail", "email", "r21-d0-email").await;
    let lead = e
        .create_lead(
            None,
            LeadInput {
                email: Some(Some("down@example.com".into())),
                ..Default::default()
            },
            Origin::Import,
            Some("mail"),
        )
        .await
        .unwrap()
        .lead;
    let before = now_ms();
    let r = Dispatcher::new(e.clone()).tick().await.unwrap();
    assert_eq!((r.claimed, r.sent, r.uncertain), (1, 0, 0));
    let mut tx = e.store.read().await.unwrap();
    let t = tx.touches_for_lead(lead.id).await.unwrap().remove(0);
    assert_eq!(t.status, TouchStatus::Scheduled, "still due: {t:?}");
    assert!(
        t.due_at >= before + 30_000,
        "retried later, not in a tight loop: {t:?}"
    );
    assert!(
        t.reason.as_deref().unwrap_or("").contains("not sent yet"),
        "{t:?}"
    );
    assert_eq!(
        tx.lead(lead.id).await.unwrap().unwrap().attempts,
        0,
        "nothing counted as sent"
    );
    assert!(tx.outbox(None, None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_invalid_number_at_twilio_fails_the_touch_and_flags_the_phone() {
    // A loopback server answering like Twilio does for an invalid 'To' number.
    let app = axum::Router::new().route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        axum::routing::post(|| async { (axum::http::StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}))) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/bad.db", dir.path().display()))
            .await
            .unwrap(),
    );
    s.migrate().await.unwrap();
    let mut cfg =
        relentless_engine::channels::sms::TwilioConfig::new("AC1", "token", "+15125550100");
    cfg.api_base = base;
    let router = relentless_engine::channels::Router {
        email: Arc::new(Outbox),
        sms: Arc::new(relentless_engine::channels::sms::TwilioChannel::new(cfg)),
    };
    let e = Engine::new(s, Arc::new(router), Config::default());
    e.init(InitInput {
        admin_email: "boss@example.com".into(),
        admin_password: None,
        team_name: None,
        address: None,
    })
    .await
    .unwrap();
    let zone = day_zone();
    one_step_plan(&e, "txt", "text", "r21-d1-text").await;
    let input = LeadInput {
        phone: Some(Some("+15125550173".into())),
        timezone: Some(zone),
        ..Default::default()
    };
    let lead = e
        .create_lead(None, input, Origin::Import, Some("txt"))
        .await
        .unwrap()
        .lead;
    Dispatcher::new(e.clone()).tick().await.unwrap();
    let mut tx = e.store.read().await.unwrap();
    let t = tx.touches_for_lead(lead.id).await.unwrap().remove(0);
    assert_eq!(t.status, TouchStatus::Failed, "{t:?}");
    assert!(t.reason.as_deref().unwrap_or("").contains("21211"), "{t:?}");
    assert!(
        tx.lead(lead.id).await.unwrap().unwrap().phone_bad,
        "the lead's phone is flagged bad"
    );
}

/// A lead's next touch is worked out from a bound its row keeps, which the dispatcher leaves
/// alone when touches only settle. A plan that runs out below 8 attempts moves the lead to
/// nurture in the dispatcher's own batch, and new touches can fall due before the bound (a
/// step at a time of day on the day it starts, here 00:00 local: earlier than now): the lead
/// still shows its earliest touch to go, not a later one.
#[tokio::test]
async fn a_lead_moved_to_nurture_by_the_dispatcher_shows_its_earliest_touch_next() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _) = engine(&dir).await;
    one_step_plan(&e, "once", "email", "r21-d0-email").await;
    save_plan(
        &e,
        "nurture",
        2,
        "[[steps]]\nday=0\nat='00:00'\nchannel='call'\ntemplate='r21-d10-call'\n\
         [[steps]]\nday=30\nat='10:00'\nchannel='email'\ntemplate='r21-d0-email'\n",
    )
    .await;
    let input = LeadInput {
        email: Some(Some("n@example.com".into())),
        phone: Some(Some("+15125550173".into())),
        timezone: Some(day_zone()),
        ..Default::default()
    };
    let lead = e
        .create_lead(None, input, Origin::Import, Some("once"))
        .await
        .unwrap()
        .lead;
    Dispatcher::new(e.clone()).tick().await.unwrap();
    let mut tx = e.store.read().await.unwrap();
    let touches = tx.touches_for_lead(lead.id).await.unwrap();
    assert!(
        touches.iter().any(|t| t.plan == "nurture"),
        "the plan ran out below 8 attempts: nurture goes on: {touches:?}"
    );
    let earliest = touches
        .iter()
        .filter(|t| t.status == TouchStatus::Scheduled)
        .map(|t| t.due_at)
        .min()
        .unwrap();
    assert!(earliest < now_ms(), "the call step falls due before now");
    assert_eq!(
        tx.lead(lead.id).await.unwrap().unwrap().next_touch_at,
        Some(earliest)
    );
}
