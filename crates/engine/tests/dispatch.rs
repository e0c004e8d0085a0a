//! At most once (SPEC §5.4): racing dispatchers on one database never send a touch twice,
//! and a dispatcher that dies between claim and send leaves `uncertain`, never a resend. Each
//! story runs on SQLite (engines sharing a file) and on PostgreSQL (engines sharing a fresh
//! database, as worker processes would); PostgreSQL workers also wake each other.

use relentless_engine::channels::outbox::Outbox;
use relentless_engine::channels::{Channel, Message, SendError, Sent};
use relentless_engine::dispatch::Dispatcher;
use relentless_engine::leads::{LeadInput, Origin};
use relentless_engine::setup::InitInput;
use relentless_engine::{Config, Engine, now_ms};
use relentless_store::DynStore;
use relentless_store::postgres::PostgresStore;
use relentless_store::postgres::testing::TestDatabase;
use relentless_store::sqlite::SqliteStore;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The database engines share; dropped (and dropped on the server) at the end of a test.
struct Db {
    url: String,
    _dir: tempfile::TempDir,
    _pg: Option<TestDatabase>,
}

impl Db {
    async fn new(backend: Backend) -> Db {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => Db {
                url: format!("sqlite://{}/race.db", dir.path().display()),
                _dir: dir,
                _pg: None,
            },
            Backend::Postgres => {
                let pg = TestDatabase::create().await.unwrap();
                Db {
                    url: pg.url().to_string(),
                    _dir: dir,
                    _pg: Some(pg),
                }
            }
        }
    }

    /// An engine with its own store on this database, as another process would have.
    async fn engine(&self, lease_ms: i64) -> Engine {
        self.engine_with(Config {
            batch: 7,
            lease_ms,
            ..Config::default()
        })
        .await
    }

    async fn engine_with(&self, config: Config) -> Engine {
        self.engine_on(Arc::new(Outbox), config).await
    }

    /// An engine sending through `channel`.
    async fn engine_on(&self, channel: Arc<dyn Channel>, config: Config) -> Engine {
        let s: DynStore = if self.url.starts_with("sqlite:") {
            Arc::new(SqliteStore::open(&self.url).await.unwrap())
        } else {
            Arc::new(PostgresStore::open(&self.url, 3).await.unwrap())
        };
        s.migrate().await.unwrap();
        Engine::new(s, channel, config)
    }
}

/// `n` engines on one fresh database, the team set up.
async fn engines(backend: Backend, n: usize, lease_ms: i64) -> (Db, Vec<Engine>) {
    let db = Db::new(backend).await;
    let mut es = vec![];
    for _ in 0..n {
        es.push(db.engine(lease_ms).await);
    }
    init_team(&es[0]).await;
    (db, es)
}

/// The team set up with its first admin, as `init` does.
async fn init_team(e: &Engine) {
    e.init(InitInput {
        admin_email: "admin@example.com".into(),
        admin_password: None,
        team_name: None,
        address: None,
    })
    .await
    .unwrap();
}

/// Runs each listed `async fn name(backend: Backend)` once per backend.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await
            }
        }
    )*};
}

both!(
    racing_dispatchers_send_each_touch_once,
    killed_between_claim_and_send_becomes_uncertain_not_resent,
    a_touch_still_within_its_lease_is_left_alone,
    one_batch_records_each_touch_by_its_own_rules,
    a_batch_that_fails_before_its_claim_commits_sends_nothing_and_then_each_touch_once,
    two_plans_ending_in_one_batch_complete_both_and_start_one_nurture,
    a_finished_plan_moves_on_only_the_leads_it_should,
    a_message_out_to_a_provider_is_sending_and_no_other_dispatcher_takes_it,
    plans_ending_together_move_a_lead_on_by_the_last_of_them,
    messages_to_a_provider_go_out_side_by_side,
    a_message_not_started_in_half_its_lease_is_decided_again,
    a_message_queued_behind_a_channels_limit_is_not_started_late,
    a_provider_slower_than_the_lease_leaves_the_batch_to_its_worker,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_record_held_up_past_the_lease_keeps_it() {
    a_record_held_up_past_the_lease_keeps_it().await
}

mod decided_ahead {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn is_taken_when_nothing_else_was_written() {
        super::ahead_is_taken_when_nothing_else_was_written().await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn is_full_when_leads_have_several_touches_due() {
        super::ahead_is_full_when_leads_have_several_touches_due().await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn is_dropped_when_older_than_a_second() {
        super::ahead_is_dropped_when_old().await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn is_dropped_after_a_write_in_this_process() {
        super::ahead_is_dropped_after_a_reply(false).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn is_dropped_after_a_write_by_another_process() {
        super::ahead_is_dropped_after_a_reply(true).await
    }
}

/// Saves plan `slug` from its TOML `source`.
async fn save_plan(e: &Engine, slug: &str, source: &str) {
    let mut tx = e.store.write().await.unwrap();
    tx.plan_save(&relentless_store::PlanRow {
        slug: slug.into(),
        name: slug.into(),
        version: 1,
        source: source.into(),
        updated_at: now_ms(),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Leads in a plan of emails due now (email is never held by the window, so the test does not
/// depend on the time of day).
async fn due_emails(e: &Engine, leads: usize) -> usize {
    save_plan(e, "burst", "slug='burst'\nname='Burst'\n[[steps]]\nafter='+0m'\nchannel='email'\ntemplate='r21-d0-email'\n[[steps]]\nafter='+0m'\nchannel='email'\ntemplate='r21-d2-email'\n").await;
    for i in 0..leads {
        let input = LeadInput {
            email: Some(Some(format!("race{i}@example.com"))),
            ..Default::default()
        };
        e.create_lead(None, input, Origin::Import, Some("burst"))
            .await
            .unwrap();
    }
    leads * 2
}

async fn outbox_touch_ids(e: &Engine) -> Vec<i64> {
    let mut tx = e.store.read().await.unwrap();
    tx.outbox(None, None, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.touch_id)
        .collect()
}

async fn racing_dispatchers_send_each_touch_once(backend: Backend) {
    // Two processes on a SQLite file; three workers on PostgreSQL.
    let n = match backend {
        Backend::Sqlite => 2,
        Backend::Postgres => 3,
    };
    let (_db, es) = engines(backend, n, 60_000).await;
    let total = due_emails(&es[0], 150).await;
    let run = |e: Engine| {
        tokio::spawn(async move {
            let mut d = Dispatcher::new(e);
            let mut n = 0;
            for _ in 0..500 {
                let r = d.tick().await.unwrap();
                n += r.sent;
                if r.claimed == 0 {
                    break;
                }
                // A pause between batches, as a real dispatcher has while it sends: without
                // it one SQLite process can take the write lock back every time and the
                // other's busy handler never gets a turn, so no race would be tested.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            n
        })
    };
    let handles: Vec<_> = es.iter().map(|e| run(e.clone())).collect();
    let mut sent = vec![];
    for h in handles {
        sent.push(h.await.unwrap());
    }
    assert_eq!(
        sent.iter().sum::<usize>(),
        total,
        "every touch sent exactly once between them ({sent:?})"
    );
    assert!(
        sent.iter().all(|n| *n > 0),
        "every dispatcher took part ({sent:?})"
    );
    let ids = outbox_touch_ids(&es[0]).await;
    assert_eq!(ids.len(), total);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        total,
        "no touch in the outbox twice"
    );
}

async fn killed_between_claim_and_send_becomes_uncertain_not_resent(backend: Backend) {
    let (_db, mut es) = engines(backend, 2, 200).await;
    let (b, a) = (es.pop().unwrap(), es.pop().unwrap());
    due_emails(&a, 3).await;
    // "Process A" claims a batch and dies before sending: exactly the state a kill -9 leaves.
    let mut tx = a.store.write().await.unwrap();
    let now = now_ms();
    let claimed = tx
        .claim_due(now, 2, "dead-worker", now + 200)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(claimed.len(), 2);
    drop(a);
    // "Process B" starts after the lease ran out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut d = Dispatcher::new(b.clone());
    let mut total = relentless_engine::dispatch::BatchReport::default();
    loop {
        let r = d.tick().await.unwrap();
        total.uncertain += r.uncertain;
        total.sent += r.sent;
        if r.claimed == 0 {
            break;
        }
    }
    assert_eq!(total.uncertain, 2);
    assert_eq!(total.sent, 4, "the other touches go out");
    let mut tx = b.store.read().await.unwrap();
    for t in &claimed {
        let t = tx.touch(t.id).await.unwrap().unwrap();
        assert_eq!(t.status, relentless_core::types::TouchStatus::Uncertain);
        assert!(t.reason.unwrap().contains("not resent"));
        let timeline = tx.timeline(t.lead_id, None, 50).await.unwrap();
        assert!(
            timeline.iter().any(|a| a.kind == "touch_uncertain"),
            "shown to the agent on the timeline"
        );
    }
    drop(tx);
    let ids = outbox_touch_ids(&b).await;
    assert!(
        claimed.iter().all(|t| !ids.contains(&t.id)),
        "an uncertain touch is never sent blindly"
    );
}

async fn a_touch_still_within_its_lease_is_left_alone(backend: Backend) {
    let (_db, es) = engines(backend, 2, 60_000).await;
    let (a, b) = (&es[0], &es[1]);
    due_emails(a, 1).await;
    let mut tx = a.store.write().await.unwrap();
    let now = now_ms();
    let claimed = tx
        .claim_due(now, 1, "busy-worker", now + 60_000)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let r = Dispatcher::new(b.clone()).tick().await.unwrap();
    assert_eq!(
        (r.claimed, r.uncertain),
        (1, 0),
        "only the other touch is claimed; the leased one is not touched"
    );
    let mut tx = b.store.read().await.unwrap();
    assert_eq!(
        tx.touch(claimed[0].id).await.unwrap().unwrap().status,
        relentless_core::types::TouchStatus::Sending
    );
}

/// A web process creates touches; an idle worker in another process (sleeping up to 30 s
/// between polls) is woken by NOTIFY and sends them at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_worker_in_another_process_wakes_when_touches_are_created() {
    let (_db, es) = engines(Backend::Postgres, 2, 60_000).await;
    let (web, worker) = (es[0].clone(), es[1].clone());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut r = rx.clone();
    let running = tokio::spawn(Dispatcher::new(worker.clone()).run(async move {
        let _ = r.wait_for(|s| *s).await;
    }));
    // Idle: nothing is due, so without a wake-up it would sleep 30 s.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(worker.start_listening().await.unwrap(), "listening");
    let started = std::time::Instant::now();
    let total = due_emails(&web, 2).await;
    let mut sent = 0;
    while sent < total && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        sent = outbox_touch_ids(&web).await.len();
    }
    assert_eq!(sent, total, "sent by the other process's worker");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken, not polled: {:?}",
        started.elapsed()
    );
    // SIGTERM-like stop: the worker finishes and returns.
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the dispatcher stops between batches")
        .unwrap();
}

/// A stop requested while batches keep coming (a backlog: every batch is full) is honoured
/// between batches, and no touch is left `sending`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_with_a_backlog_stops_between_batches() {
    let (_db, es) = engines(Backend::Sqlite, 1, 60_000).await;
    let e = es[0].clone();
    let total = due_emails(&e, 300).await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut r = rx.clone();
    stop.send(true).unwrap(); // asked to stop before it even starts: not one batch
    Dispatcher::new(e.clone())
        .run(async move {
            let _ = r.wait_for(|s| *s).await;
        })
        .await;
    assert!(outbox_touch_ids(&e).await.is_empty());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut r = rx.clone();
    let running = tokio::spawn(Dispatcher::new(e.clone()).run(async move {
        let _ = r.wait_for(|s| *s).await;
    }));
    while outbox_touch_ids(&e).await.is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops with a backlog")
        .unwrap();
    let sent = outbox_touch_ids(&e).await.len();
    let mut tx = e.store.write().await.unwrap(); // not committed
    assert_eq!(
        tx.claim_due(now_ms(), 10_000, "probe", now_ms())
            .await
            .unwrap()
            .len(),
        total - sent,
        "the rest is still due, none of it stranded in `sending`"
    );
}

/// A plan of `steps` steps, all due at the start, on `channel` with `template`.
async fn plan_of(e: &Engine, slug: &str, channel: &str, template: &str, steps: usize) {
    let step = format!("[[steps]]\nafter='+0m'\nchannel='{channel}'\ntemplate='{template}'\n");
    let mut tx = e.store.write().await.unwrap();
    tx.plan_save(&relentless_store::PlanRow {
        slug: slug.into(),
        name: slug.into(),
        version: 1,
        source: format!("slug='{slug}'\nname='{slug}'\n{}", step.repeat(steps)),
        updated_at: now_ms(),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// A fixed-offset zone whose local hour now is in `hours` (offsets span 25 hours, so one
/// always exists for a range of 3 hours or more).
fn zone_where(hours: std::ops::RangeInclusive<i8>) -> String {
    (-14..=12)
        .map(|h: i32| match h {
            0 => "Etc/GMT".to_string(),
            h if h < 0 => format!("Etc/GMT{h}"),
            h => format!("Etc/GMT+{h}"),
        })
        .find(|z| hours.contains(&jiff::Timestamp::now().in_tz(z).unwrap().hour()))
        .unwrap()
}

/// One batch mixing every outcome: each touch is recorded by its own lead's rules, whatever
/// the others in the batch do (texts sent and numbered, a text held for the window, a text to
/// a lead who opted out after it was planned, an email with its tracking, a call task with its
/// agent's notification).
async fn one_batch_records_each_touch_by_its_own_rules(backend: Backend) {
    use relentless_core::types::{EventKind, TouchStatus};
    let (_db, es) = engines(backend, 1, 60_000).await;
    let e = &es[0];
    plan_of(e, "two-texts", "text", "r21-d1-text", 2).await;
    plan_of(e, "one-text", "text", "r21-d1-text", 1).await;
    plan_of(e, "one-email", "email", "r21-d2-email", 1).await;
    plan_of(e, "one-call", "call", "r21-d1-call", 1).await;
    let day = zone_where(10..=17);
    let night = zone_where(1..=5);
    let lead = |phone: &str, email: Option<&str>, zone: &str| LeadInput {
        phone: Some(Some(phone.into())),
        email: Some(email.map(String::from)),
        timezone: Some(zone.into()),
        ..Default::default()
    };
    let mut ids = vec![];
    for (input, plan) in [
        (lead("+15125550101", None, &day), "two-texts"),
        (lead("+15125550102", None, &night), "one-text"),
        (lead("+15125550103", None, &day), "one-text"),
        (
            lead("+15125550104", Some("mail@example.com"), &day),
            "one-email",
        ),
        (lead("+15125550105", None, &day), "one-call"),
    ] {
        let l = e
            .create_lead(None, input, Origin::Import, Some(plan))
            .await
            .unwrap()
            .lead;
        ids.push(l.id);
    }
    let [texted, sleeping, opted_out, mailed, called] = ids[..] else {
        unreachable!()
    };
    let mut tx = e.store.write().await.unwrap();
    // The night lead's text was laid out at the next window opening: make it due now, as a
    // touch claimed late would be (the server was down overnight).
    let t = tx
        .touches_for_lead(sleeping)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.plan != "nurture")
        .unwrap();
    tx.touch_reschedule(t.id, now_ms() - 1_000, "")
        .await
        .unwrap();
    // The lead opts out of texts after its text was planned, before it is sent.
    let mut l = tx.lead(opted_out).await.unwrap().unwrap();
    l.sms_opt_out = true;
    tx.lead_save(&l).await.unwrap();
    tx.commit().await.unwrap();

    let report = Dispatcher::new(e.clone()).tick().await.unwrap();
    assert_eq!(
        report.claimed, 6,
        "every due touch in one batch: {report:?}"
    );
    assert_eq!(
        (report.sent, report.tasks, report.skipped),
        (3, 1, 1),
        "{report:?}"
    );

    let mut tx = e.store.read().await.unwrap();
    let outbox = tx.outbox(None, None, 100).await.unwrap();
    let sent_to = |lead: i64| outbox.iter().filter(|m| m.lead_id == Some(lead)).count();

    // The plan ran out below 8 attempts, so nurture continues (SPEC §5.6): look at the plan's
    // own touches.
    let all = tx.touches_for_lead(texted).await.unwrap();
    assert!(
        all.iter().any(|t| t.plan == "nurture"),
        "the floor keeps going"
    );
    let two: Vec<_> = all.into_iter().filter(|t| t.plan == "two-texts").collect();
    assert!(two.iter().all(|t| t.status == TouchStatus::Sent), "{two:?}");
    let mut attempts: Vec<_> = two.iter().map(|t| t.attempt).collect();
    attempts.sort();
    assert_eq!(attempts, vec![Some(1), Some(2)], "numbered in order");
    assert_eq!(tx.lead(texted).await.unwrap().unwrap().attempts, 2);
    assert_eq!(sent_to(texted), 2);

    let held = tx
        .touches_for_lead(sleeping)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.plan != "nurture")
        .unwrap();
    assert_eq!(held.status, TouchStatus::Scheduled, "{held:?}");
    assert!(
        held.due_at > now_ms(),
        "moved to the window's next opening: {held:?}"
    );
    assert!(
        held.reason
            .as_deref()
            .unwrap_or("")
            .contains("sending window"),
        "{held:?}"
    );
    assert_eq!(sent_to(sleeping), 0, "nothing texted at night");
    assert_eq!(tx.lead(sleeping).await.unwrap().unwrap().attempts, 0);

    let skipped = tx
        .touches_for_lead(opted_out)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.plan != "nurture")
        .unwrap();
    assert_eq!(skipped.status, TouchStatus::Skipped, "{skipped:?}");
    assert!(
        skipped
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("opted out"),
        "{skipped:?}"
    );
    assert_eq!(sent_to(opted_out), 0, "no text after an opt-out");
    assert_eq!(tx.lead(opted_out).await.unwrap().unwrap().attempts, 0);

    let mail = tx
        .touches_for_lead(mailed)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.plan != "nurture")
        .unwrap();
    assert_eq!(mail.status, TouchStatus::Sent, "{mail:?}");
    assert_eq!(mail.attempt, Some(1));
    assert_eq!(sent_to(mailed), 1);
    let domain = e
        .config
        .email_from
        .rsplit_once('@')
        .unwrap()
        .1
        .trim_end_matches('>');
    let mid = relentless_engine::channels::email::compose::message_id(
        mail.id,
        &e.config.public_url,
        domain,
    );
    assert_eq!(
        tx.touch_by_message_id(mail.id, &mid)
            .await
            .unwrap()
            .map(|t| t.id),
        Some(mail.id),
        "a reply to the email finds its touch"
    );
    let body = &outbox
        .iter()
        .find(|m| m.lead_id == Some(mailed))
        .unwrap()
        .body;
    let token = body
        .split("/u/")
        .nth(1)
        .and_then(|r| {
            r.split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
                .next()
        })
        .expect("an unsubscribe link in the email");
    assert_eq!(
        tx.tracking(token).await.unwrap().map(|t| t.touch_id),
        Some(Some(mail.id)),
        "its tracking token was stored"
    );

    let call = tx
        .touches_for_lead(called)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.plan != "nurture")
        .unwrap();
    assert_eq!(
        call.status,
        TouchStatus::Scheduled,
        "a task step waits for its task"
    );
    let task = tx
        .task(call.task_id.expect("linked to its task"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((task.lead_id, task.touch_id), (called, Some(call.id)));
    let agent = tx.lead(called).await.unwrap().unwrap().assigned_to.unwrap();
    assert_eq!(task.assignee_id, Some(agent));
    let alerts = tx.notifications_after(agent, 0, 100).await.unwrap();
    assert!(
        alerts
            .iter()
            .any(|n| n.event == EventKind::TaskDue.as_str() && n.lead_id == Some(called)),
        "the agent is told the call is due: {alerts:?}"
    );
    assert_eq!(sent_to(called), 0);
}

/// SPEC §5.4 for what never leaves the database: outbox messages are "sent" and recorded in the
/// transaction that claims them. A process failing before that commit leaves every touch due
/// and nothing in the outbox; the next batch sends each touch once.
async fn a_batch_that_fails_before_its_claim_commits_sends_nothing_and_then_each_touch_once(
    backend: Backend,
) {
    use relentless_engine::FaultHook;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (db, es) = engines(backend, 1, 60_000).await;
    let total = due_emails(&es[0], 3).await;
    let failing = Arc::new(AtomicBool::new(true));
    let f = failing.clone();
    let e = db
        .engine_with(Config {
            fault_hook: Some(FaultHook(Arc::new(move |point| {
                if point == "dispatch:before_claim_commit" && f.load(Ordering::SeqCst) {
                    panic!("injected fault at {point}");
                }
            }))),
            ..Config::default()
        })
        .await;
    let crashed = tokio::spawn({
        let e = e.clone();
        async move { Dispatcher::new(e).tick().await }
    })
    .await;
    assert!(crashed.is_err(), "the injected fault fired");
    assert!(outbox_touch_ids(&e).await.is_empty(), "nothing was sent");
    let mut tx = e.store.read().await.unwrap();
    let leads = tx
        .leads_page(&relentless_store::LeadFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut statuses = vec![];
    for l in leads {
        statuses.extend(
            tx.touches_for_lead(l.id)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.status),
        );
    }
    assert!(
        statuses.len() == total
            && statuses
                .iter()
                .all(|s| *s == relentless_core::types::TouchStatus::Scheduled),
        "every touch is due again, none left `sending`: {statuses:?}"
    );
    drop(tx);

    failing.store(false, Ordering::SeqCst);
    let mut d = Dispatcher::new(e.clone());
    // On PostgreSQL the failed batch's connection rolls back when the pool next uses it; until
    // then its row locks make the next claim skip those touches, so batches go on a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while outbox_touch_ids(&e).await.len() < total && std::time::Instant::now() < deadline {
        if d.tick().await.unwrap().claimed == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    d.tick().await.unwrap();
    let mut sent = outbox_touch_ids(&e).await;
    sent.sort_unstable();
    let distinct: HashSet<i64> = sent.iter().copied().collect();
    assert_eq!(
        (sent.len(), distinct.len()),
        (total, total),
        "each touch sent once"
    );
}

/// A lead whose two plans run out in the same batch, below 8 attempts: both plans complete and
/// nurture starts once (SPEC §5.6), not once per plan.
async fn two_plans_ending_in_one_batch_complete_both_and_start_one_nurture(backend: Backend) {
    use relentless_core::types::EnrollmentState;
    let (_db, es) = engines(backend, 1, 60_000).await;
    let e = &es[0];
    plan_of(e, "one-email", "email", "r21-d2-email", 1).await;
    plan_of(e, "other-email", "email", "r21-d0-email", 1).await;
    let lead = email_lead(e, "both@example.com", "one-email").await;
    let admin = {
        let mut tx = e.store.read().await.unwrap();
        tx.users().await.unwrap().remove(0)
    };
    e.enroll(&admin, lead.id, "other-email").await.unwrap();

    let report = Dispatcher::new(e.clone()).tick().await.unwrap();
    assert_eq!((report.claimed, report.sent), (2, 2), "{report:?}");

    let mut tx = e.store.read().await.unwrap();
    let ens = tx.enrollments(lead.id).await.unwrap();
    let state = |plan: &str| {
        ens.iter()
            .filter(|en| en.plan == plan)
            .map(|en| en.state)
            .collect::<Vec<_>>()
    };
    assert_eq!(state("one-email"), [EnrollmentState::Completed], "{ens:?}");
    assert_eq!(
        state("other-email"),
        [EnrollmentState::Completed],
        "{ens:?}"
    );
    assert_eq!(state("nurture"), [EnrollmentState::Active], "{ens:?}");
    let timeline = tx.timeline(lead.id, None, 100).await.unwrap();
    assert_eq!(
        timeline.iter().filter(|a| a.kind == "nurture").count(),
        1,
        "{timeline:?}"
    );
}

/// Past the attempt floor, a finished plan moves a lead on only when the plan says so
/// (`on_complete_level`), and never a lead that has answered; all three in one batch.
async fn a_finished_plan_moves_on_only_the_leads_it_should(backend: Backend) {
    use relentless_core::types::{EnrollmentState, Level};
    let (_db, es) = engines(backend, 1, 60_000).await;
    let e = &es[0];
    plan_of(e, "plain-email", "email", "r21-d2-email", 1).await;
    leveling_plan(e, "leveling-email", "nurture").await;
    let mut ids = vec![];
    for (email, plan) in [
        ("moves@example.com", "leveling-email"),
        ("stays@example.com", "plain-email"),
        ("answered@example.com", "leveling-email"),
    ] {
        ids.push(email_lead(e, email, plan).await.id);
    }
    let [moves, stays, answered] = ids[..] else {
        unreachable!()
    };
    {
        // Past the floor already, so only the plan's own level can move them.
        let mut tx = e.store.write().await.unwrap();
        for id in [moves, stays, answered] {
            let mut l = tx.lead(id).await.unwrap().unwrap();
            l.attempts = 9;
            if id == answered {
                l.answered_at = Some(now_ms() - 60_000);
            }
            tx.lead_save(&l).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    let report = Dispatcher::new(e.clone()).tick().await.unwrap();
    assert_eq!(report.sent, 3, "{report:?}");

    let mut tx = e.store.read().await.unwrap();
    let nurture = |ens: &[relentless_store::Enrollment]| {
        ens.iter()
            .filter(|en| en.plan == "nurture" && en.state == EnrollmentState::Active)
            .count()
    };
    for id in [moves, stays, answered] {
        let ens = tx.enrollments(id).await.unwrap();
        assert!(
            ens.iter()
                .filter(|en| en.plan != "nurture")
                .all(|en| en.state == EnrollmentState::Completed),
            "{ens:?}"
        );
        let lead = tx.lead(id).await.unwrap().unwrap();
        let moved = id == moves;
        assert_eq!(nurture(&ens), usize::from(moved), "lead {id}: {ens:?}");
        assert_eq!(lead.level == Level::Nurture, moved, "lead {id}: {lead:?}");
    }
}

/// An outside provider that holds every message until the test lets it go.
struct Gate {
    entered: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
    sent: std::sync::atomic::AtomicUsize,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            entered: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
            sent: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl Channel for Gate {
    async fn send(&self, _m: &Message) -> Result<Sent, SendError> {
        self.entered.notify_one();
        self.release.acquire().await.unwrap().forget();
        self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Sent {
            provider_id: None,
            outbox: None,
        })
    }
    fn name(&self) -> &'static str {
        "gate"
    }
}

/// SPEC §5.4 on the path to an outside provider: while a batch's messages are with the
/// provider, their touches are `sending` (committed before the first send), so another
/// dispatcher — another process — finds nothing due, and nothing goes out twice.
async fn a_message_out_to_a_provider_is_sending_and_no_other_dispatcher_takes_it(backend: Backend) {
    use relentless_core::types::TouchStatus;
    let (db, es) = engines(backend, 1, 60_000).await;
    let total = due_emails(&es[0], 1).await;
    let gate = Arc::new(Gate::default());
    let gated = db
        .engine_on(
            gate.clone(),
            Config {
                lease_ms: 60_000,
                ..Config::default()
            },
        )
        .await;
    let first = tokio::spawn(async move { Dispatcher::new(gated).tick().await.unwrap() });
    tokio::time::timeout(Duration::from_secs(10), gate.entered.notified())
        .await
        .expect("the first message reached the provider");

    let statuses = |e: Engine| async move {
        let mut tx = e.store.read().await.unwrap();
        let lead = tx
            .lead_match(None, Some("race0@example.com"), None)
            .await
            .unwrap()
            .unwrap();
        tx.touches_for_lead(lead.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.plan == "burst")
            .map(|t| t.status)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        statuses(es[0].clone()).await,
        vec![TouchStatus::Sending; total],
        "marked before the first send"
    );
    let other = Dispatcher::new(es[0].clone()).tick().await.unwrap();
    assert_eq!(
        other.claimed, 0,
        "nothing is due for another dispatcher: {other:?}"
    );
    assert!(outbox_touch_ids(&es[0]).await.is_empty());

    gate.release.add_permits(total);
    let report = first.await.unwrap();
    assert_eq!(report.sent, total, "{report:?}");
    assert_eq!(gate.sent.load(std::sync::atomic::Ordering::SeqCst), total);
    assert_eq!(
        statuses(es[0].clone()).await,
        vec![TouchStatus::Sent; total]
    );
}

/// A provider that answers only when `n` messages are with it at once, and notes whether a
/// message reached it while another one to the same address was still with it.
struct Rendezvous {
    together: tokio::sync::Barrier,
    with_it: std::sync::Mutex<HashMap<String, usize>>,
    overlapped: std::sync::atomic::AtomicBool,
    sent: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Channel for Rendezvous {
    async fn send(&self, m: &Message) -> Result<Sent, SendError> {
        {
            let mut with_it = self.with_it.lock().unwrap();
            let n = with_it.entry(m.to.clone()).or_default();
            if *n > 0 {
                self.overlapped
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            *n += 1;
        }
        self.together.wait().await;
        *self.with_it.lock().unwrap().get_mut(&m.to).unwrap() -= 1;
        self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Sent {
            provider_id: None,
            outbox: None,
        })
    }
    fn name(&self) -> &'static str {
        "rendezvous"
    }
}

/// A batch's messages to an outside provider are with it side by side, one lead beside the
/// other, not one message after the other: a provider's API takes a tenth of a second or
/// more a message, and one at a time a batch of 500 texts would outlive its lease. Sent one
/// by one, the first message here would wait forever for the other lead's. One lead's two
/// messages go out in order, the second after the first was answered.
async fn messages_to_a_provider_go_out_side_by_side(backend: Backend) {
    use relentless_core::types::TouchStatus;
    let (db, es) = engines(backend, 1, 60_000).await;
    let leads = 2;
    let total = due_emails(&es[0], leads).await;
    let provider = Arc::new(Rendezvous {
        together: tokio::sync::Barrier::new(leads),
        with_it: Default::default(),
        overlapped: Default::default(),
        sent: Default::default(),
    });
    let e = db
        .engine_on(
            provider.clone(),
            Config {
                lease_ms: 60_000,
                ..Config::default()
            },
        )
        .await;
    let report = tokio::time::timeout(Duration::from_secs(30), Dispatcher::new(e.clone()).tick())
        .await
        .expect("the leads' messages reached the provider side by side")
        .unwrap();
    assert_eq!(report.sent, total, "{report:?}");
    assert_eq!(
        provider.sent.load(std::sync::atomic::Ordering::SeqCst),
        total
    );
    assert!(
        !provider
            .overlapped
            .load(std::sync::atomic::Ordering::SeqCst),
        "a lead's second message went out while its first was still with the provider"
    );
    let mut tx = e.store.read().await.unwrap();
    for i in 0..leads {
        let lead = tx
            .lead_match(None, Some(&format!("race{i}@example.com")), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lead.attempts, 2);
        let mut attempts: Vec<_> = tx
            .touches_for_lead(lead.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.plan == "burst")
            .map(|t| (t.status, t.attempt))
            .collect();
        attempts.sort_by_key(|(_, a)| *a);
        assert_eq!(
            attempts,
            vec![(TouchStatus::Sent, Some(1)), (TouchStatus::Sent, Some(2))]
        );
    }
}

/// A provider that takes `each` to answer and notes who each message went to; rings
/// `first` when the first message reaches it.
struct Slow {
    each: Duration,
    to: std::sync::Mutex<Vec<String>>,
    first: tokio::sync::Notify,
    /// When set, the provider takes one message at a time and says so (`max_in_flight`), as
    /// the SMTP channel does with its sessions: the others wait inside `send`.
    one_at_a_time: Option<tokio::sync::Semaphore>,
}

#[async_trait::async_trait]
impl Channel for Slow {
    async fn send(&self, m: &Message) -> Result<Sent, SendError> {
        let _turn = match &self.one_at_a_time {
            Some(s) => Some(s.acquire().await.unwrap()),
            None => None,
        };
        let first = {
            let mut to = self.to.lock().unwrap();
            to.push(m.to.clone());
            to.len() == 1
        };
        if first {
            self.first.notify_one();
        }
        tokio::time::sleep(self.each).await;
        Ok(Sent {
            provider_id: None,
            outbox: None,
        })
    }
    fn name(&self) -> &'static str {
        "slow"
    }
    fn max_in_flight(&self, _kind: relentless_core::types::Channel) -> Option<usize> {
        self.one_at_a_time.as_ref().map(|_| 1)
    }
}

/// An engine on `db` sending through a provider that takes `each` to answer, and one batch
/// ticking on it in a task of its own; returned once its first message reached the provider.
async fn slow_batch(
    db: &Db,
    each: Duration,
    one_at_a_time: bool,
    config: Config,
) -> (
    Arc<Slow>,
    Engine,
    tokio::task::JoinHandle<relentless_engine::dispatch::BatchReport>,
) {
    let provider = Arc::new(Slow {
        each,
        to: Default::default(),
        first: Default::default(),
        one_at_a_time: one_at_a_time.then(|| tokio::sync::Semaphore::new(1)),
    });
    let e = db.engine_on(provider.clone(), config).await;
    let batch = tokio::spawn({
        let e = e.clone();
        async move { Dispatcher::new(e).tick().await.unwrap() }
    });
    tokio::time::timeout(Duration::from_secs(10), provider.first.notified())
        .await
        .expect("the first message reached the provider");
    (provider, e, batch)
}

/// A batch's messages were decided when it was claimed; one held up behind slow provider
/// answers must not go out long after, to a lead who has answered since (SPEC §5.3). A
/// message not started within half its lease goes back to `scheduled` and the next batch
/// decides it again: here the provider takes 0.6 s an answer, one lead at a time, with a
/// 1 s lease, so only the first message of the batch goes out in it; the other leads answer
/// meanwhile and get nothing, the first lead (who did not answer) gets its second message
/// in the next batch. Nothing is `uncertain`, nothing twice.
async fn a_message_not_started_in_half_its_lease_is_decided_again(backend: Backend) {
    not_started_late(backend, false).await
}

/// The same when the dispatcher would have many messages out at once but the channel takes
/// one at a time (the SMTP channel and its sessions): a message waiting for the channel's
/// room is not started once the deadline passed. Waiting inside the channel's `send`, past
/// the dispatcher's check, all of them would go out, the last ~2 s after its claim.
async fn a_message_queued_behind_a_channels_limit_is_not_started_late(backend: Backend) {
    not_started_late(backend, true).await
}

async fn not_started_late(backend: Backend, channel_limits_itself: bool) {
    use relentless_core::types::TouchStatus;
    let (db, es) = engines(backend, 1, 60_000).await;
    let leads = 4;
    due_emails(&es[0], leads).await;
    let (provider, e, first) = slow_batch(
        &db,
        Duration::from_millis(600),
        channel_limits_itself,
        Config {
            lease_ms: 1_000,
            send_concurrency: if channel_limits_itself { 16 } else { 1 },
            ..Config::default()
        },
    )
    .await;
    let first_to = provider.to.lock().unwrap()[0].clone();
    let mut answered = vec![];
    for i in 0..leads {
        let email = format!("race{i}@example.com");
        if email == first_to {
            continue;
        }
        let lead = {
            let mut tx = e.store.read().await.unwrap();
            tx.lead_match(None, Some(&email), None)
                .await
                .unwrap()
                .unwrap()
        };
        e.record_reply(
            lead.id,
            relentless_core::types::Channel::Email,
            "Yes, call me",
        )
        .await
        .unwrap();
        answered.push(lead.id);
    }
    let report = first.await.unwrap();
    assert_eq!(report.claimed, leads * 2, "{report:?}");
    assert_eq!(
        (report.sent, report.released, report.uncertain),
        (1, leads * 2 - 1, 0),
        "one message started within half the lease, the rest went back: {report:?}"
    );
    let mut d = Dispatcher::new(e.clone());
    for _ in 0..10 {
        if d.tick().await.unwrap().claimed == 0 {
            break;
        }
    }
    assert_eq!(
        *provider.to.lock().unwrap(),
        vec![first_to.clone(), first_to.clone()],
        "only the lead who did not answer got messages, each once"
    );
    let mut tx = e.store.read().await.unwrap();
    for id in answered {
        let statuses: Vec<_> = tx
            .touches_for_lead(id)
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.plan == "burst")
            .map(|t| t.status)
            .collect();
        assert!(
            statuses
                .iter()
                .all(|s| matches!(s, TouchStatus::Cancelled | TouchStatus::Skipped)),
            "{statuses:?}"
        );
    }
}

/// A provider may take longer to answer than the lease (SMTP waits up to five minutes for
/// its final reply). The worker renews the lease while its messages are out, so another
/// worker expiring leases meanwhile leaves the batch alone: the slow message is recorded
/// `sent`, the ones not started in time go back to `scheduled` and then out, each once.
/// Without the renewal the other worker declares all four `uncertain` after one lease, and
/// the three that never started are never sent.
async fn a_provider_slower_than_the_lease_leaves_the_batch_to_its_worker(backend: Backend) {
    use relentless_core::types::TouchStatus;
    let lease_ms = 2_000;
    let (db, es) = engines(backend, 1, lease_ms).await;
    let other = &es[0];
    due_emails(other, 2).await;
    let (provider, e, slow) = slow_batch(
        &db,
        Duration::from_millis(2 * lease_ms as u64),
        false,
        Config {
            lease_ms,
            send_concurrency: 1,
            ..Config::default()
        },
    )
    .await;
    // Another worker, expiring leases (and finding nothing of its own to claim) while the
    // provider takes two leases to answer.
    let mut d = Dispatcher::new(other.clone());
    let mut expired = 0;
    while !slow.is_finished() {
        expired += d.tick().await.unwrap().uncertain;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = slow.await.unwrap();
    assert_eq!(
        (report.claimed, report.sent, report.released, expired),
        (4, 1, 3, 0),
        "the batch stayed with its worker: {report:?}"
    );
    // The rest go out through the other worker's outbox, each once.
    for _ in 0..10 {
        if d.tick().await.unwrap().claimed == 0 {
            break;
        }
    }
    let mut tx = e.store.read().await.unwrap();
    let mut statuses = vec![];
    for i in 0..2 {
        let lead = tx
            .lead_match(None, Some(&format!("race{i}@example.com")), None)
            .await
            .unwrap()
            .unwrap();
        statuses.extend(
            tx.touches_for_lead(lead.id)
                .await
                .unwrap()
                .into_iter()
                .filter(|t| t.plan == "burst")
                .map(|t| t.status),
        );
    }
    drop(tx);
    assert_eq!(statuses, vec![TouchStatus::Sent; 4]);
    assert_eq!(provider.to.lock().unwrap().len(), 1);
    assert_eq!(outbox_touch_ids(other).await.len(), 3);
}

/// The lease is renewed until the outcomes are recorded, not only while the provider answers:
/// on PostgreSQL the record waits for its leads' row locks (here another transaction holds
/// them for two leases, as a long edit or a stuck statement would), holding the touches it
/// released meanwhile. Another worker expiring leases meanwhile leaves the batch alone: the
/// two messages sent are recorded `sent`, the two never started go back to `scheduled`.
/// (On SQLite one write lock orders the record, the renewal and the other worker's expiry,
/// so none of them gets ahead of the record.)
async fn a_record_held_up_past_the_lease_keeps_it() {
    let lease_ms: i64 = 4_000;
    let (db, es) = engines(Backend::Postgres, 1, lease_ms).await;
    let other = es[0].clone();
    due_emails(&other, 2).await;
    // A third process, to hold the leads' rows (one process's writes take turns).
    let third = db.engine(lease_ms).await;
    // One lead at a time, a second an answer: the first lead's two messages go out within
    // half the lease, the second lead's are not started.
    let (provider, _, slow) = slow_batch(
        &db,
        Duration::from_millis(lease_ms as u64 / 4),
        false,
        Config {
            lease_ms,
            send_concurrency: 1,
            ..Config::default()
        },
    )
    .await;
    let mut blocker = third.store.write().await.unwrap();
    for i in 0..2 {
        let lead = blocker
            .lead_match(None, Some(&format!("race{i}@example.com")), None)
            .await
            .unwrap()
            .unwrap();
        blocker.lead_save(&lead).await.unwrap();
    }
    // Another worker's first step, expiring leases, for two leases (its timeline entries
    // would wait for the locked leads; it may itself wait for rows the record holds).
    let expiring = tokio::spawn(async move {
        let mut expired = 0;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(2 * lease_ms as u64) {
            let mut tx = other.store.write().await.unwrap();
            expired += tx.touches_expire_sending(now_ms()).await.unwrap().len();
            tx.commit().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        expired
    });
    tokio::time::sleep(Duration::from_millis(2 * lease_ms as u64 + 500)).await;
    assert!(!slow.is_finished(), "the record waited for the leads");
    drop(blocker);
    let report = slow.await.unwrap();
    let expired = expiring.await.unwrap();
    assert_eq!(
        (report.sent, report.released, report.uncertain, expired),
        (2, 2, 0, 0),
        "the batch stayed with its worker while it waited to record: {report:?}"
    );
    assert_eq!(provider.to.lock().unwrap().len(), 2);
}

/// On SQLite, while a full batch is written, the next one is read and decided on a reader.
/// Under a backlog and nothing else writing, every batch after the first is taken as decided
/// ahead, and each touch still goes out once, its lead's attempts counted and its finished
/// plan followed by `nurture`.
async fn ahead_is_taken_when_nothing_else_was_written() {
    let (_db, e) = sqlite_batches_of_4().await;
    let leads = one_email_each(&e, 20).await;
    let mut d = Dispatcher::new(e.clone());
    let mut sent = 0;
    let mut batches = 0;
    loop {
        let r = d.tick().await.unwrap();
        if r.claimed == 0 {
            break;
        }
        sent += r.sent;
        batches += 1;
    }
    assert_eq!((sent, batches), (20, 5));
    assert_eq!(
        d.batches_decided_ahead(),
        4,
        "every batch after the first was decided while the one before was written"
    );
    let ids = outbox_touch_ids(&e).await;
    assert_eq!(ids.len(), 20);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        20,
        "each touch once"
    );
    let mut tx = e.store.read().await.unwrap();
    for id in leads {
        let lead = tx.lead(id).await.unwrap().unwrap();
        assert_eq!(lead.attempts, 1, "{lead:?}");
        // Below 8 attempts a finished plan moves on to `nurture` (SPEC §5.6).
        let ens = tx.enrollments(id).await.unwrap();
        assert!(ens.iter().any(|en| en.plan == "nurture"), "{ens:?}");
    }
}

/// A batch decided ahead leaves out the leads being written, and still fills up: the touches
/// due after the batch being written are read until there are enough of other leads. Here
/// each lead has three emails due at once and a batch holds 4, so a lead's touches straddle
/// two batches: the one decided ahead passes over the rest of a lead being written (it goes
/// out in a later batch) and reads on to fill up. Had it stopped at the first 4 + (leads
/// written) due touches, it would have come out short, been taken as not full, and the batch
/// after it decided by the writer again; had it kept a lead being written, that lead would
/// be in two batches in a row, decided on what it was before the first was written.
async fn ahead_is_full_when_leads_have_several_touches_due() {
    let (_db, e) = sqlite_batches_of_4().await;
    let step = "[[steps]]\nafter='+0m'\nchannel='email'\ntemplate='r21-d0-email'\n";
    save_plan(
        &e,
        "three",
        &format!("slug='three'\nname='Three'\n{}", step.repeat(3)),
    )
    .await;
    for i in 0..10 {
        email_lead(&e, &format!("three{i}@example.com"), "three").await;
    }
    let mut d = Dispatcher::new(e.clone());
    let mut claimed = vec![];
    let mut batches: Vec<HashSet<i64>> = vec![];
    let mut seen = 0;
    loop {
        let r = d.tick().await.unwrap();
        if r.claimed == 0 {
            break;
        }
        claimed.push(r.claimed);
        let mut tx = e.store.read().await.unwrap();
        let out = tx.outbox(None, None, 100_000).await.unwrap();
        batches.push(
            out[..out.len() - seen]
                .iter()
                .filter_map(|m| m.lead_id)
                .collect(),
        );
        seen = out.len();
    }
    assert_eq!(claimed, [4, 4, 4, 4, 4, 4, 4, 2], "full batches");
    // The last batch holds only the rest of a lead written in the one before: none was left
    // to decide ahead, so the writer read it afresh.
    assert_eq!(d.batches_decided_ahead(), 6, "{batches:?}");
    for pair in batches[..batches.len() - 1].windows(2) {
        assert!(
            pair[0].is_disjoint(&pair[1]),
            "a lead in two batches in a row: {batches:?}"
        );
    }
    let ids = outbox_touch_ids(&e).await;
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        30,
        "each touch once"
    );
}

/// A batch decided ahead was decided as of its time (the sending window above all): one
/// older than a second when the next batch starts is read again.
async fn ahead_is_dropped_when_old() {
    let (_db, e) = sqlite_batches_of_4().await;
    one_email_each(&e, 8).await;
    let mut d = Dispatcher::new(e.clone());
    assert_eq!(d.tick().await.unwrap().sent, 4);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(d.tick().await.unwrap().sent, 4);
    assert_eq!(d.batches_decided_ahead(), 0);
    assert_eq!(outbox_touch_ids(&e).await.len(), 8);
}

/// A fresh SQLite file with the team set up, and an engine claiming 4 touches per batch.
async fn sqlite_batches_of_4() -> (Db, Engine) {
    let db = Db::new(Backend::Sqlite).await;
    let e = db
        .engine_with(Config {
            batch: 4,
            ..Config::default()
        })
        .await;
    init_team(&e).await;
    (db, e)
}

/// `n` leads with an email address, each in a plan of one email due now.
async fn one_email_each(e: &Engine, n: usize) -> Vec<i64> {
    save_plan(e, "one", "slug='one'\nname='One'\n[[steps]]\nafter='+0m'\nchannel='email'\ntemplate='r21-d0-email'\n").await;
    let mut leads = vec![];
    for i in 0..n {
        leads.push(
            email_lead(e, &format!("ahead{i}@example.com"), "one")
                .await
                .id,
        );
    }
    leads
}

/// A batch decided ahead is dropped when anything else committed after its snapshot: here
/// every lead not yet written to answers between two batches (through this engine, or
/// through another process's on the same file), and the next batch, read afresh, sends them
/// nothing (SPEC §5.3). Taken as decided, it would have.
async fn ahead_is_dropped_after_a_reply(other_process: bool) {
    use relentless_core::types::TouchStatus;
    let (db, e) = sqlite_batches_of_4().await;
    // One email each, so the first batch leaves other leads' touches for the next.
    let leads = one_email_each(&e, 8).await;
    let mut d = Dispatcher::new(e.clone());
    let first = d.tick().await.unwrap();
    assert_eq!((first.claimed, first.sent), (4, 4), "{first:?}");
    let written: HashSet<i64> = {
        let mut tx = e.store.read().await.unwrap();
        let mut w = HashSet::new();
        for id in &leads {
            if tx.lead(*id).await.unwrap().unwrap().attempts > 0 {
                w.insert(*id);
            }
        }
        w
    };
    assert_eq!(written.len(), 4);
    let replier = if other_process {
        db.engine_with(Config::default()).await
    } else {
        e.clone()
    };
    for id in leads.iter().filter(|id| !written.contains(id)) {
        replier
            .record_reply(*id, relentless_core::types::Channel::Email, "Call me")
            .await
            .unwrap();
    }
    let second = d.tick().await.unwrap();
    assert_eq!(
        d.batches_decided_ahead(),
        0,
        "the batch decided ahead was dropped"
    );
    assert_eq!(second.sent, 0, "{second:?}");
    assert_eq!(outbox_touch_ids(&e).await.len(), 4);
    let mut tx = e.store.read().await.unwrap();
    for id in leads.iter().filter(|id| !written.contains(id)) {
        let statuses: Vec<_> = tx
            .touches_for_lead(*id)
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.plan == "one")
            .map(|t| t.status)
            .collect();
        assert_eq!(statuses, vec![TouchStatus::Cancelled], "lead {id}");
    }
}

/// A one-email plan that moves the lead to `level` when it ends.
async fn leveling_plan(e: &Engine, slug: &str, level: &str) {
    save_plan(e, slug, &format!("slug='{slug}'\nname='{slug}'\non_complete_level='{level}'\n[[steps]]\nafter='+0m'\nchannel='email'\ntemplate='r21-d2-email'\n")).await;
}

/// Two plans of one lead end in the same batch: the lead goes where the later one says (here:
/// hot, so no nurture), as if they had ended one after the other.
async fn plans_ending_together_move_a_lead_on_by_the_last_of_them(backend: Backend) {
    use relentless_core::types::{EnrollmentState, Level};
    let (_db, es) = engines(backend, 1, 60_000).await;
    let e = &es[0];
    leveling_plan(e, "to-nurture", "nurture").await;
    leveling_plan(e, "to-hot", "hot").await;
    let lead = email_lead(e, "two-ways@example.com", "to-nurture").await;
    let admin = {
        let mut tx = e.store.write().await.unwrap();
        let mut l = tx.lead(lead.id).await.unwrap().unwrap();
        l.attempts = 9;
        tx.lead_save(&l).await.unwrap();
        let admin = tx.users().await.unwrap().remove(0);
        tx.commit().await.unwrap();
        admin
    };
    e.enroll(&admin, lead.id, "to-hot").await.unwrap();

    let report = Dispatcher::new(e.clone()).tick().await.unwrap();
    assert_eq!(report.sent, 2, "{report:?}");
    let mut tx = e.store.read().await.unwrap();
    let ens = tx.enrollments(lead.id).await.unwrap();
    assert!(
        !ens.iter()
            .any(|en| en.plan == "nurture" && en.state == EnrollmentState::Active),
        "{ens:?}"
    );
    assert_eq!(tx.lead(lead.id).await.unwrap().unwrap().level, Level::Hot);
}

/// A lead with only an email address, started in `plan`.
async fn email_lead(e: &Engine, email: &str, plan: &str) -> relentless_store::Lead {
    e.create_lead(
        None,
        LeadInput {
            email: Some(Some(email.into())),
            ..Default::default()
        },
        Origin::Import,
        Some(plan),
    )
    .await
    .unwrap()
    .lead
}
