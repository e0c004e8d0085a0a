//! One suite for both backends, each against the real thing: a SQLite file in a temp dir and a
//! fresh database on the PostgreSQL server (`RELENTLESS_TEST_POSTGRES`, default the local one).
//! Every test in `both!` runs twice (`name::sqlite`, `name::postgres`); what only makes sense on
//! one backend (query plans, pragmas, LISTEN/NOTIFY, SKIP LOCKED, advisory locks) is below.

use relentless_core::types::*;
use relentless_store::postgres::PostgresStore;
use relentless_store::postgres::testing::TestDatabase;
use relentless_store::sqlite::SqliteStore;
use relentless_store::*;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated store of one backend; the database goes away with it.
struct TestStore {
    s: DynStore,
    sqlite: Option<Arc<SqliteStore>>,
    pg: Option<Arc<PostgresStore>>,
    dir: tempfile::TempDir,
    db: Option<TestDatabase>,
}

impl std::ops::Deref for TestStore {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        self.s.as_ref()
    }
}

impl TestStore {
    async fn new(backend: Backend) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let t = match backend {
            Backend::Sqlite => {
                let s = Arc::new(
                    SqliteStore::open(&format!("sqlite://{}/s.db", dir.path().display()))
                        .await
                        .unwrap(),
                );
                TestStore {
                    s: s.clone(),
                    sqlite: Some(s),
                    pg: None,
                    dir,
                    db: None,
                }
            }
            Backend::Postgres => {
                let db = TestDatabase::create().await.unwrap();
                let s = Arc::new(PostgresStore::open(db.url(), 4).await.unwrap());
                TestStore {
                    s: s.clone(),
                    sqlite: None,
                    pg: Some(s),
                    dir,
                    db: Some(db),
                }
            }
        };
        t.migrate().await.unwrap();
        t.migrate().await.unwrap(); // idempotent
        t
    }

    /// Another store on the same database, as another process would open it.
    async fn another(&self) -> Arc<PostgresStore> {
        Arc::new(
            PostgresStore::open(self.db.as_ref().unwrap().url(), 4)
                .await
                .unwrap(),
        )
    }
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
    a_touch_made_a_task_leaves_the_due_queue_and_one_out_for_sending_is_scheduled_again,
    leads_round_trip_and_match_by_email_phone_or_external_id,
    a_duplicate_external_id_is_a_conflict_and_a_rolled_back_tx_leaves_nothing,
    a_users_email_is_unique_whatever_its_case,
    names_are_found_through_full_text_search_with_prefixes_and_accents,
    claims_are_exclusive_and_leases_expire,
    foreign_keys_are_enforced,
    notifications_are_read_back_in_order_per_user,
    notifications_stored_together_get_new_ids_in_order_even_after_the_newest_was_erased,
    a_leads_attempts_in_one_batch_are_numbered_in_batch_order_after_its_earlier_ones,
    backup_is_a_consistent_copy,
    speed_to_lead_is_claimed_before_a_backlog,
    batches_of_activities_and_outbox_copies_round_trip,
    report_figures_follow_sends_answers_and_erasure,
    a_match_prefers_the_external_id_then_the_email_then_the_phone_then_the_oldest,
    making_leads_hot_changes_only_their_level,
    due_touches_are_read_once_speed_to_lead_first_and_only_marked_ones_are_sending,
    recorded_messages_read_back_and_a_first_attempt_moves_only_new_leads,
    touches_passed_over_are_not_read_and_do_not_count_against_the_limit,
    a_plan_completes_only_when_none_of_its_own_touches_is_left,
    a_touch_is_found_by_its_id_and_its_own_message_id,
    a_text_is_found_by_its_providers_id_and_an_email_is_not,
    an_outcome_is_recorded_even_when_its_touch_moved_after_the_claim,
    touches_get_ids_of_their_own_in_order_whatever_their_due_time,
    a_leads_next_touch_is_worked_out_when_read_not_written_per_fired_touch,
    a_lead_aged_for_the_demo_keeps_its_next_touch,
);

fn lead(first: &str, last: &str, email: &str, phone: &str) -> Lead {
    Lead {
        id: 0,
        first_name: first.into(),
        last_name: last.into(),
        email: Some(email.into()),
        phone: Some(phone.into()),
        timezone: "America/Chicago".into(),
        region: None,
        source: "test".into(),
        level: Level::Warm,
        stage: Stage::New,
        preferred_channel: None,
        assigned_to: None,
        external_id: None,
        tags: vec!["a".into()],
        notes: String::new(),
        property_address: String::new(),
        sms_opt_out: false,
        email_opt_out: false,
        do_not_call: false,
        email_bad: false,
        phone_bad: false,
        attempts: 0,
        first_attempt_at: None,
        first_call_at: None,
        answered_at: None,
        answered_on: None,
        attempts_at_answer: None,
        last_touch_at: None,
        next_touch_at: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn team() -> Team {
    Team {
        name: "T".into(),
        country: "US".into(),
        timezone: "UTC".into(),
        sending_window: "{}".into(),
        state_windows: "{}".into(),
        holidays: "[]".into(),
        postal_address: String::new(),
        support_contact: String::new(),
        escalation_minutes: 60,
        require_text_consent: false,
    }
}

fn user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        name: "U".into(),
        phone: None,
        role: Role::Agent,
        password_hash: None,
    }
}

/// A lead with `n` email touches due at 0..n (email is never held by the sending window).
async fn lead_with_due_touches(s: &dyn Store, email: &str, n: i64) -> i64 {
    let mut tx = s.write().await.unwrap();
    if tx.team().await.unwrap().is_none() {
        tx.team_save(&team(), 0).await.unwrap();
    }
    let id = tx
        .lead_insert(&lead("A", "B", email, "+15125550104"))
        .await
        .unwrap();
    let touches: Vec<NewTouch> = (0..n)
        .map(|i| NewTouch {
            step: i,
            channel: Channel::Email,
            template: "t".into(),
            planned_at: i,
            due_at: i,
            reason: None,
        })
        .collect();
    tx.enrollment_insert(id, "p", 1, 0, &touches).await.unwrap();
    tx.commit().await.unwrap();
    id
}

async fn leads_round_trip_and_match_by_email_phone_or_external_id(b: Backend) {
    let s = TestStore::new(b).await;
    let mut tx = s.write().await.unwrap();
    let mut l = lead("José", "Núñez", "Jose@Example.com", "+15125550100");
    l.external_id = Some("crm-1".into());
    l.tags = vec!["a".into(), "b c".into()];
    let id = tx.lead_insert(&l).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    let got = tx.lead(id).await.unwrap().unwrap();
    assert_eq!(
        (got.first_name.as_str(), got.tags.clone()),
        ("José", vec!["a".to_string(), "b c".to_string()])
    );
    assert_eq!(
        got,
        Lead { id, ..l.clone() },
        "every field comes back as written"
    );
    assert_eq!(
        tx.lead_match(None, Some("jose@example.com"), None)
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );
    assert_eq!(
        tx.lead_match(None, None, Some("+15125550100"))
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );
    assert_eq!(
        tx.lead_match(Some("crm-1"), None, None)
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );
    assert!(
        tx.lead_match(Some("crm-2"), Some("x@example.com"), Some("+15125550199"))
            .await
            .unwrap()
            .is_none()
    );
    drop(tx);
    // The same in a write transaction (which locks what it matches on PostgreSQL).
    let mut tx = s.write().await.unwrap();
    let mut m = tx
        .lead_match(Some("crm-1"), Some("jose@example.com"), None)
        .await
        .unwrap()
        .unwrap();
    m.tags.push("merged".into());
    m.sms_opt_out = true;
    tx.lead_save(&m).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    let got = tx.lead(id).await.unwrap().unwrap();
    assert_eq!(got.tags, ["a", "b c", "merged"]);
    assert!(got.sms_opt_out);
}

async fn a_duplicate_external_id_is_a_conflict_and_a_rolled_back_tx_leaves_nothing(b: Backend) {
    let s = TestStore::new(b).await;
    let mut l = lead("A", "B", "a@example.com", "+15125550101");
    l.external_id = Some("x".into());
    let mut tx = s.write().await.unwrap();
    tx.lead_insert(&l).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    tx.lead_insert(&lead("C", "D", "c@example.com", "+15125550102"))
        .await
        .unwrap();
    let err = tx.lead_insert(&l).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref f) if f == "external_id"),
        "{err}"
    );
    drop(tx); // not committed: the first insert of this tx is gone too
    let mut tx = s.read().await.unwrap();
    assert_eq!(
        tx.leads_page(&LeadFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        1
    );
}

async fn a_users_email_is_unique_whatever_its_case(b: Backend) {
    let s = TestStore::new(b).await;
    let mut tx = s.write().await.unwrap();
    let id = tx.user_insert(&user("Sam@Example.com"), 1).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    let err = tx
        .user_insert(&user("sam@example.COM"), 2)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref f) if f == "email"),
        "{err}"
    );
    drop(tx);
    let mut tx = s.write().await.unwrap();
    let other = tx.user_insert(&user("riley@example.com"), 3).await.unwrap();
    let mut u = tx.user(other).await.unwrap().unwrap();
    u.email = "SAM@example.com".into();
    let err = tx.user_save(&u).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref f) if f == "email"),
        "{err}"
    );
    drop(tx);
    let mut tx = s.read().await.unwrap();
    let found = tx.user_by_email("SAM@EXAMPLE.COM").await.unwrap().unwrap();
    assert_eq!((found.id, found.email.as_str()), (id, "Sam@Example.com"));
    assert!(found.active && !found.notify_sms);
}

async fn names_are_found_through_full_text_search_with_prefixes_and_accents(b: Backend) {
    let s = TestStore::new(b).await;
    let mut tx = s.write().await.unwrap();
    for (f, l) in [
        ("José", "Núñez"),
        ("Joseph", "Smith"),
        ("Ann", "Joseph"),
        ("Zoe", "Quinn"),
        ("Mary-Jane", "O'Brien"),
        ("J.R.", "Ewing"),
    ] {
        tx.lead_insert(&lead(f, l, &format!("{f}@example.com"), "+15125550103"))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    let find = |q: &str| LeadFilter {
        name_query: Some(q.into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        tx.leads_page(&find("jose")).await.unwrap().len(),
        3,
        "José, Joseph, Ann Joseph"
    );
    assert_eq!(
        tx.leads_page(&find("nunez")).await.unwrap().len(),
        1,
        "diacritics folded"
    );
    assert_eq!(
        tx.leads_page(&find("NÚÑ")).await.unwrap().len(),
        1,
        "case and accents in the query too"
    );
    assert_eq!(tx.leads_page(&find("zoe quinn")).await.unwrap().len(), 1);
    assert_eq!(tx.leads_page(&find("zoe smith")).await.unwrap().len(), 0);
    assert_eq!(tx.leads_page(&find("quin")).await.unwrap().len(), 1);
    assert_eq!(tx.leads_page(&find("uinn")).await.unwrap().len(), 0);
    assert_eq!(tx.leads_page(&find("o'brien")).await.unwrap().len(), 1);
    assert_eq!(tx.leads_page(&find("brien jane")).await.unwrap().len(), 1);
    assert_eq!(tx.leads_page(&find("j ewing")).await.unwrap().len(), 1);
    assert_eq!(
        tx.leads_page(&find("\"); DROP TABLE leads; --"))
            .await
            .unwrap()
            .len(),
        0,
        "hostile input is just words"
    );
    assert_eq!(
        tx.leads_page(&find(" !!! ")).await.unwrap().len(),
        0,
        "no words: nothing, not an error"
    );
    // Renames are indexed too.
    drop(tx);
    let mut tx = s.write().await.unwrap();
    let mut z = tx.leads_page(&find("zoe")).await.unwrap().remove(0);
    z.first_name = "Zelda".into();
    tx.lead_save(&z).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    assert_eq!(tx.leads_page(&find("zoe")).await.unwrap().len(), 0);
    assert_eq!(tx.leads_page(&find("zelda")).await.unwrap().len(), 1);
}

async fn claims_are_exclusive_and_leases_expire(b: Backend) {
    let s = TestStore::new(b).await;
    let lead_id = lead_with_due_touches(&*s, "a@example.com", 5).await;
    let mut tx = s.write().await.unwrap();
    assert_eq!(tx.next_due_at().await.unwrap(), Some(0));
    let a = tx.claim_due(10, 3, "a", 1000).await.unwrap();
    let b2 = tx.claim_due(10, 3, "b", 1000).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((a.len(), b2.len()), (3, 2));
    assert_eq!(
        a.iter().map(|t| t.due_at).collect::<Vec<_>>(),
        [0, 1, 2],
        "oldest first"
    );
    assert!(a.iter().all(|t| !b2.iter().any(|u| u.id == t.id)));
    assert!(
        a.iter()
            .chain(&b2)
            .all(|t| t.status == TouchStatus::Sending)
    );
    let mut tx = s.write().await.unwrap();
    assert!(tx.claim_due(10, 3, "c", 1000).await.unwrap().is_empty());
    assert_eq!(tx.next_due_at().await.unwrap(), None);
    // A released touch can be claimed again; a rescheduled one when it falls due.
    tx.touch_release(a[0].id).await.unwrap();
    tx.touch_reschedule(a[1].id, 50, "held").await.unwrap();
    assert_eq!(tx.claim_due(10, 5, "d", 1000).await.unwrap().len(), 1);
    assert_eq!(tx.next_due_at().await.unwrap(), Some(50));
    assert!(
        tx.touches_expire_sending(999).await.unwrap().is_empty(),
        "leases still running"
    );
    // A worker renews its own leases only: b's two run on, a's and d's expire.
    tx.commit().await.unwrap();
    let all: Vec<i64> = a.iter().chain(&b2).map(|t| t.id).collect();
    assert_eq!(s.renew_lease(&all, "b", 1500).await.unwrap(), 2);
    let mut tx = s.write().await.unwrap();
    let expired = tx.touches_expire_sending(1001).await.unwrap();
    assert_eq!(expired.len(), 2);
    assert!(expired.iter().all(|t| !b2.iter().any(|u| u.id == t.id)));
    let expired = tx.touches_expire_sending(1501).await.unwrap();
    assert_eq!(expired.len(), 2);
    assert!(expired.iter().all(|t| t.status == TouchStatus::Uncertain));
    tx.commit().await.unwrap();
    assert_eq!(
        s.renew_lease(&all, "b", 9000).await.unwrap(),
        0,
        "an uncertain touch stays uncertain"
    );
    let mut tx = s.write().await.unwrap();
    // The outcome of a claimed touch: an attempt for the lead.
    let c = tx.claim_due(60, 5, "e", 2000).await.unwrap();
    assert_eq!(c.len(), 1);
    tx.touches_record(
        &[TouchResult {
            touch_id: c[0].id,
            due_at: c[0].due_at,
            lead_id,
            status: TouchStatus::Sent,
            reason: None,
            sent_channel: Some(Channel::Email),
            subject: Some("Hi".into()),
            content: Some("Body".into()),
            provider_id: Some("p-1".into()),
            attempt: true,
        }],
        70,
    )
    .await
    .unwrap();
    tx.leads_refresh_next(&[lead_id]).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    let t = tx.touch(c[0].id).await.unwrap().unwrap();
    assert_eq!(
        (
            t.status,
            t.attempt,
            t.delivery.as_deref(),
            t.settled_at,
            t.reason.as_deref()
        ),
        (
            TouchStatus::Sent,
            Some(1),
            Some("queued"),
            Some(70),
            Some("held")
        )
    );
    assert_eq!(
        tx.text_by_provider_id("p-1").await.unwrap(),
        None,
        "an email's provider id is not a text's"
    );
    let l = tx.lead(lead_id).await.unwrap().unwrap();
    assert_eq!(
        (l.attempts, l.stage, l.first_attempt_at, l.next_touch_at),
        (1, Stage::Attempting, Some(70), None)
    );
    let statuses: Vec<TouchStatus> = tx
        .touches_for_lead(lead_id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.status)
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == TouchStatus::Uncertain)
            .count(),
        4
    );
}

async fn foreign_keys_are_enforced(b: Backend) {
    let s = TestStore::new(b).await;
    let mut tx = s.write().await.unwrap();
    assert!(
        tx.enrollment_insert(9999, "p", 1, 0, &[]).await.is_err(),
        "an enrollment for a missing lead is refused"
    );
}

async fn notifications_are_read_back_in_order_per_user(b: Backend) {
    let s = TestStore::new(b).await;
    let mut tx = s.write().await.unwrap();
    let u1 = tx.user_insert(&user("u1@example.com"), 1).await.unwrap();
    let u2 = tx.user_insert(&user("u2@example.com"), 1).await.unwrap();
    let mut ids = vec![];
    for (i, u) in [u1, u2, u1, u1].into_iter().enumerate() {
        ids.push(
            tx.notification_insert(&NewNotification {
                user_id: u,
                event: EventKind::Engagement,
                lead_id: None,
                lead_name: format!("L{i}"),
                kind: "open".into(),
                at: i as i64,
                detail: String::new(),
            })
            .await
            .unwrap(),
        );
    }
    tx.commit().await.unwrap();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let mut tx = s.read().await.unwrap();
    let mine = tx.notifications_after(u1, ids[0], 10).await.unwrap();
    assert_eq!(
        mine.iter().map(|n| n.id).collect::<Vec<_>>(),
        [ids[2], ids[3]]
    );
    assert_eq!(mine[0].event, "engagement");
}

/// The ids of notifications stored in one statement (a dispatch batch's task alerts) are the
/// SSE ids the app resumes from (`Last-Event-ID`): they come in the order given, and past every
/// id handed out before, even when the newest notification went with its lead's erasure.
async fn notifications_stored_together_get_new_ids_in_order_even_after_the_newest_was_erased(
    b: Backend,
) {
    let s = TestStore::new(b).await;
    let gone = lead_with_due_touches(&*s, "gone@example.com", 1).await;
    let mut tx = s.write().await.unwrap();
    let u = tx.user_insert(&user("u@example.com"), 1).await.unwrap();
    let note = |lead_id: Option<i64>, name: &str| NewNotification {
        user_id: u,
        event: EventKind::TaskDue,
        lead_id,
        lead_name: name.into(),
        kind: "call".into(),
        at: 5,
        detail: String::new(),
    };
    let first = tx
        .notifications_insert(&[note(None, "Kept"), note(Some(gone), "Gone")])
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0] < first[1], "{first:?}");
    tx.lead_delete(gone).await.unwrap();
    let names = ["N1", "N2", "N3"];
    let next = tx
        .notifications_insert(&names.map(|n| note(None, n)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(
        next.windows(2).all(|w| w[0] < w[1]) && next[0] > first[1],
        "new ids, in order, past the erased one: {first:?} then {next:?}"
    );
    let mut r = s.read().await.unwrap();
    let after = r.notifications_after(u, first[0], 10).await.unwrap();
    assert_eq!(
        after
            .iter()
            .map(|n| (n.id, n.lead_name.as_str()))
            .collect::<Vec<_>>(),
        next.iter().copied().zip(names).collect::<Vec<_>>(),
        "each id is its own notification's"
    );
}

/// "Attempt 5 of 13": a lead's attempts recorded in one batch take the numbers after its
/// earlier ones, in batch order; a touch that was no attempt gets none.
async fn a_leads_attempts_in_one_batch_are_numbered_in_batch_order_after_its_earlier_ones(
    b: Backend,
) {
    let s = TestStore::new(b).await;
    let lead = lead_with_due_touches(&*s, "n@example.com", 4).await;
    let other = lead_with_due_touches(&*s, "o@example.com", 1).await;
    let mut tx = s.write().await.unwrap();
    let mut due = tx.claim_due(10, 10, "w", 60_000).await.unwrap();
    due.sort_by_key(|t| (t.lead_id, t.step));
    let mine: Vec<&Touch> = due.iter().filter(|t| t.lead_id == lead).collect();
    let theirs = due.iter().find(|t| t.lead_id == other).unwrap();
    tx.touches_record(&[sent(mine[0], TouchStatus::Sent, Channel::Email)], 20)
        .await
        .unwrap();
    tx.touches_record(
        &[
            sent(mine[1], TouchStatus::Sent, Channel::Email),
            sent(theirs, TouchStatus::Sent, Channel::Email),
            sent(mine[2], TouchStatus::Skipped, Channel::Email),
            sent(mine[3], TouchStatus::Sent, Channel::Email),
        ],
        30,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut r = s.read().await.unwrap();
    let mut numbers = vec![];
    for t in &mine {
        numbers.push(r.touch(t.id).await.unwrap().unwrap().attempt);
    }
    assert_eq!(numbers, [Some(1), Some(2), None, Some(3)]);
    assert_eq!(r.touch(theirs.id).await.unwrap().unwrap().attempt, Some(1));
    let l = r.lead(lead).await.unwrap().unwrap();
    assert_eq!(
        (l.attempts, l.first_attempt_at, l.last_touch_at),
        (3, Some(20), Some(30))
    );
}

async fn backup_is_a_consistent_copy(b: Backend) {
    let s = TestStore::new(b).await;
    let mut tx = s.write().await.unwrap();
    tx.lead_insert(&lead("A", "B", "a@example.com", "+15125550105"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let path = s.dir.path().join("copy.db");
    s.backup(path.to_str().unwrap()).await.unwrap();
    let mut restored = None;
    let copy: DynStore = match b {
        Backend::Sqlite => Arc::new(
            SqliteStore::open(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
        ),
        Backend::Postgres => {
            // pg_dump's custom format, restored with pg_restore into another database.
            let db = TestDatabase::create().await.unwrap();
            let out = std::process::Command::new("pg_restore")
                .arg("--dbname")
                .arg(db.url())
                .arg(&path)
                .output()
                .expect("pg_restore on the PATH");
            assert!(out.status.success(), "{out:?}");
            let copy = Arc::new(PostgresStore::open(db.url(), 2).await.unwrap());
            restored = Some(db);
            copy
        }
    };
    let mut tx = copy.read().await.unwrap();
    assert_eq!(
        tx.leads_page(&LeadFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        1
    );
    assert!(
        s.backup(path.to_str().unwrap()).await.is_err(),
        "never overwrites an existing file"
    );
    drop((tx, copy, restored));
}

/// A lead with `n` touches due at 0, 1, … and a new lead whose speed-to-lead email is due at 100.
async fn backlog_and_new_lead(s: &dyn Store, n: i64) -> (i64, i64) {
    let backlog = lead_with_due_touches(s, "old@example.com", n).await;
    let mut tx = s.write().await.unwrap();
    let new = tx
        .lead_insert(&lead("N", "L", "new@example.com", "+15125550106"))
        .await
        .unwrap();
    tx.enrollment_insert(
        new,
        "speed-to-lead",
        1,
        100,
        &[NewTouch {
            step: 0,
            channel: Channel::Email,
            template: "t".into(),
            planned_at: 100,
            due_at: 100,
            reason: None,
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (backlog, new)
}

async fn speed_to_lead_is_claimed_before_a_backlog(b: Backend) {
    let s = TestStore::new(b).await;
    let (backlog, new) = backlog_and_new_lead(&*s, 5).await;
    let mut tx = s.write().await.unwrap();
    let first = tx.claim_due(200, 3, "w", 1000).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        first
            .iter()
            .map(|t| (t.lead_id, t.due_at))
            .collect::<Vec<_>>(),
        [(new, 100), (backlog, 0), (backlog, 1)],
        "the new lead first, then the backlog oldest first"
    );
    let mut tx = s.read().await.unwrap();
    let ens = tx
        .enrollments_by_ids(&[new, backlog], &[first[0].enrollment_id])
        .await
        .unwrap();
    assert_eq!(ens.len(), 1);
    assert_eq!(
        (ens[0].lead_id, ens[0].plan.as_str()),
        (new, "speed-to-lead")
    );
}

async fn due_touches_are_read_once_speed_to_lead_first_and_only_marked_ones_are_sending(
    b: Backend,
) {
    let s = TestStore::new(b).await;
    let (backlog, new) = backlog_and_new_lead(&*s, 4).await;
    let mut tx = s.write().await.unwrap();
    let due = tx.touches_due(200, 3, &[]).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|t| (t.lead_id, t.due_at))
            .collect::<Vec<_>>(),
        [(new, 100), (backlog, 0), (backlog, 1)],
        "the new lead first, then the backlog oldest first, each touch once"
    );
    assert!(due.iter().all(|t| t.status == TouchStatus::Scheduled));
    assert_eq!(
        tx.touches_due(200, 10, &[]).await.unwrap().len(),
        5,
        "every due touch, none twice"
    );
    assert!(
        tx.touches_due(0, 10, &[])
            .await
            .unwrap()
            .iter()
            .all(|t| t.due_at <= 0)
    );
    tx.touches_mark_sending(&[due[1].id], "w", 5_000)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = s.write().await.unwrap();
    assert_eq!(
        tx.touch(due[1].id).await.unwrap().unwrap().status,
        TouchStatus::Sending
    );
    assert_eq!(
        tx.touch(due[0].id).await.unwrap().unwrap().status,
        TouchStatus::Scheduled,
        "read, not marked"
    );
    assert!(
        !tx.touches_due(200, 10, &[])
            .await
            .unwrap()
            .iter()
            .any(|t| t.id == due[1].id),
        "a touch out for sending is not due again"
    );
    assert!(
        tx.touches_expire_sending(4_999).await.unwrap().is_empty(),
        "its lease runs until 5,000"
    );
    assert_eq!(tx.touches_expire_sending(5_001).await.unwrap().len(), 1);
}

/// A call or video step becomes a task: its touch is linked to the task and leaves the due
/// queue, `scheduled` until the task is done; one that had been marked `sending` goes back to
/// `scheduled` with no lease.
async fn a_touch_made_a_task_leaves_the_due_queue_and_one_out_for_sending_is_scheduled_again(
    b: Backend,
) {
    let s = TestStore::new(b).await;
    let lead = lead_with_due_touches(&*s, "task@example.com", 3).await;
    let mut tx = s.write().await.unwrap();
    let due = tx.touches_due(200, 10, &[]).await.unwrap();
    assert_eq!(due.len(), 3);
    tx.touches_mark_sending(&[due[1].id], "w", 5_000)
        .await
        .unwrap();
    // The first task is due when its touch was (as the dispatcher makes them), the second
    // later: its touch is found by id, not by the key that due time would name.
    let tasks: Vec<NewTask> = due[..2]
        .iter()
        .enumerate()
        .map(|(i, t)| NewTask {
            lead_id: lead,
            touch_id: Some(t.id),
            assignee_id: None,
            kind: TaskKind::Call,
            due_at: t.due_at + i as i64 * 60_000,
            script: "Call".into(),
            voicemail: None,
        })
        .collect();
    let task_ids = tx.touch_tasks_insert(&tasks, 100).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = s.write().await.unwrap();
    for (t, task_id) in due[..2].iter().zip(&task_ids) {
        let now = tx.touch(t.id).await.unwrap().unwrap();
        assert_eq!(now.task_id, Some(*task_id), "linked to its own task");
        let task = tx.task(*task_id).await.unwrap().unwrap();
        assert_eq!(
            (task.touch_id, task.lead_id),
            (Some(t.id), lead),
            "the id given is that task's own"
        );
        assert_eq!(
            now.status,
            TouchStatus::Scheduled,
            "touch {} is scheduled",
            t.step
        );
    }
    assert_eq!(
        tx.touches_due(200, 10, &[])
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        [due[2].id],
        "the touches made tasks are not due again"
    );
    assert!(
        tx.touches_expire_sending(i64::MAX)
            .await
            .unwrap()
            .is_empty(),
        "no lease left to run out: the touch out for sending is a task now"
    );
}

/// The dispatcher deciding its next batch ahead passes over the batch being written: those
/// touches are left out and the limit counts only what is returned, urgent ones first still.
async fn touches_passed_over_are_not_read_and_do_not_count_against_the_limit(b: Backend) {
    let s = TestStore::new(b).await;
    let (backlog, new) = backlog_and_new_lead(&*s, 5).await;
    let mut tx = s.write().await.unwrap();
    let all = tx.touches_due(200, 10, &[]).await.unwrap();
    let at = |lead: i64, due: i64| {
        all.iter()
            .find(|t| (t.lead_id, t.due_at) == (lead, due))
            .unwrap()
            .id
    };
    let next = tx
        .touches_due(200, 2, &[at(backlog, 0), at(backlog, 2)])
        .await
        .unwrap();
    assert_eq!(
        next.iter()
            .map(|t| (t.lead_id, t.due_at))
            .collect::<Vec<_>>(),
        [(new, 100), (backlog, 1)],
        "speed-to-lead first, then the oldest not passed over"
    );
    let rest = tx
        .touches_due(200, 10, &[at(new, 100), at(backlog, 1), at(backlog, 3)])
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|t| t.due_at).collect::<Vec<_>>(), [0, 2, 4]);
}

/// Completing finished plans looks for touches still to go among the lead's touches: an
/// enrollment with a touch `scheduled` or `sending` goes on, another plan of the same lead that
/// has nothing left completes, and only those completed are returned.
async fn a_plan_completes_only_when_none_of_its_own_touches_is_left(b: Backend) {
    let s = TestStore::new(b).await;
    let lead_id = lead_with_due_touches(&*s, "a@example.com", 2).await;
    let mut tx = s.write().await.unwrap();
    let first = tx.enrollments(lead_id).await.unwrap()[0].id;
    let one = |due| NewTouch {
        step: 0,
        channel: Channel::Email,
        template: "t".into(),
        planned_at: due,
        due_at: due,
        reason: None,
    };
    let second = tx
        .enrollment_insert(lead_id, "q", 1, 0, &[one(50)])
        .await
        .unwrap();
    let touches = tx.touches_for_lead(lead_id).await.unwrap();
    let of = |en: i64| -> Vec<i64> {
        touches
            .iter()
            .filter(|t| t.enrollment_id == en)
            .map(|t| t.id)
            .collect()
    };
    let pairs = [(first, lead_id), (second, lead_id)];
    tx.touch_settle(of(first)[0], TouchStatus::Sent, None, Some(1), 10)
        .await
        .unwrap();
    assert!(
        tx.enrollments_complete_finished(&pairs, 10)
            .await
            .unwrap()
            .is_empty(),
        "each plan has a touch scheduled"
    );
    // A pair naming another lead than its enrollment's is refused on SQLite (whose search for
    // a touch still to go trusts the pair's lead) and ignored on PostgreSQL: either way the
    // plan, whose touch is still scheduled, goes on.
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    let wrong = tx
        .enrollments_complete_finished(&[(first, lead_id + 1000)], 10)
        .await;
    assert!(
        wrong.as_ref().map_or(true, |done| done.is_empty()),
        "a pair naming another lead completes nothing: {wrong:?}"
    );
    drop(tx);
    let mut tx = s.write().await.unwrap();
    assert_eq!(
        tx.enrollments(lead_id).await.unwrap()[0].state,
        EnrollmentState::Active
    );
    tx.touch_settle(of(first)[1], TouchStatus::Skipped, None, None, 20)
        .await
        .unwrap();
    tx.touches_mark_sending(&of(second), "w", 1_000)
        .await
        .unwrap();
    let done = tx.enrollments_complete_finished(&pairs, 20).await.unwrap();
    assert_eq!(
        done.iter().map(|e| (e.id, e.state)).collect::<Vec<_>>(),
        [(first, EnrollmentState::Completed)],
        "the plan whose touch is out for sending goes on"
    );
    tx.touch_settle(of(second)[0], TouchStatus::Sent, None, Some(2), 30)
        .await
        .unwrap();
    let done = tx.enrollments_complete_finished(&pairs, 30).await.unwrap();
    assert_eq!(
        done.iter().map(|e| e.id).collect::<Vec<_>>(),
        [second],
        "a completed plan is not completed again"
    );
    assert_eq!(done[0].ended_at, Some(30));
}

async fn batches_of_activities_and_outbox_copies_round_trip(b: Backend) {
    let s = TestStore::new(b).await;
    let lead_id = lead_with_due_touches(&*s, "a@example.com", 2).await;
    let mut tx = s.write().await.unwrap();
    let acts: Vec<NewActivity> = (0..3)
        .map(|i| NewActivity {
            lead_id,
            kind: format!("k{i}"),
            detail: format!("d{i}"),
            data: (i == 1).then(|| serde_json::json!({"i": i})),
            actor_id: None,
            at: 10 + i,
        })
        .collect();
    tx.activities_insert(&acts).await.unwrap();
    tx.activities_insert(&[]).await.unwrap();
    let copies: Vec<NewOutbox> = (0..2)
        .map(|i| NewOutbox {
            channel: Channel::Email,
            to_addr: "a@example.com".into(),
            subject: (i == 0).then(|| "Hi".to_string()),
            body: format!("body {i}"),
            lead_id: Some(lead_id),
            touch_id: None,
        })
        .collect();
    tx.outbox_insert_many(&copies, 7).await.unwrap();
    tx.outbox_insert_many(&[], 7).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    let timeline = tx.timeline(lead_id, None, 10).await.unwrap();
    assert_eq!(
        timeline.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(),
        ["k2", "k1", "k0"]
    );
    assert_eq!(timeline[1].data.as_deref(), Some(r#"{"i":1}"#));
    let out = tx.outbox(None, None, 10).await.unwrap();
    assert_eq!(
        out.iter()
            .map(|m| (m.body.as_str(), m.subject.as_deref(), m.created_at))
            .collect::<Vec<_>>(),
        [("body 1", None, 7), ("body 0", Some("Hi"), 7)]
    );
}

// ---------------------------------------------------------------------------------------
// SQLite only

/// The plan SQLite picks for a query, as text.
async fn sqlite_plan(s: &SqliteStore, sql: &str) -> String {
    let pool = sqlx::SqlitePool::connect(&s.url()).await.unwrap();
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .fetch_all(&pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|r| r.3)
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test]
async fn sqlite_hot_paths_use_indexes_not_table_scans() {
    let t = TestStore::new(Backend::Sqlite).await;
    let s = t.sqlite.as_ref().unwrap();
    let due = sqlite_plan(s, "SELECT id FROM touches WHERE status = 'scheduled' AND task_id IS NULL AND due_at <= 5 ORDER BY due_at LIMIT 500").await;
    assert!(due.contains("touches_due"), "due-touch query: {due}");
    // Touches are stored by `(due_at, id)` (migration 0016): found by id through their own
    // index, and an outcome (which names both) straight by the key.
    let by_id = sqlite_plan(s, "SELECT status FROM touches WHERE id = 5").await;
    assert!(by_id.contains("touches_id"), "{by_id}");
    let outcome = sqlite_plan(
        s,
        "WITH v(id, due_at, status) AS (VALUES (1, 2, 'sent')) UPDATE touches INDEXED BY sqlite_autoindex_touches_1
         SET status = v.status FROM v WHERE touches.id = v.id AND touches.due_at = v.due_at",
    )
    .await;
    assert!(
        outcome.contains("PRIMARY KEY (due_at=? AND id=?)"),
        "{outcome}"
    );
    let of_lead = sqlite_plan(
        s,
        "SELECT id FROM touches WHERE lead_id = 3 ORDER BY due_at, id",
    )
    .await;
    assert!(
        of_lead.contains("touches_lead") && !of_lead.contains("TEMP B-TREE"),
        "{of_lead}"
    );
    // A lead's next touch, worked out when the lead is read: from the bound its row keeps,
    // along the lead's entries in `touches_lead`, in order (the shape of `LEAD_COLS`).
    let next = sqlite_plan(
        s,
        "SELECT (SELECT t.due_at FROM touches t INDEXED BY touches_lead
           WHERE t.lead_id = l.id AND t.due_at >= l.next_touch_at AND t.status = 'scheduled'
           ORDER BY t.due_at LIMIT 1) FROM leads l WHERE l.id = 1",
    )
    .await;
    assert!(
        next.contains("touches_lead (lead_id=? AND due_at>?)") && !next.contains("TEMP B-TREE"),
        "{next}"
    );
    // A plan's touch still to go, looked for latest first along the lead's touches.
    let to_go = sqlite_plan(
        s,
        "SELECT (SELECT 1 FROM touches t WHERE t.lead_id = 3 AND +t.enrollment_id = 4
           AND t.status IN ('scheduled', 'sending') ORDER BY t.due_at DESC LIMIT 1) IS NULL",
    )
    .await;
    assert!(
        to_go.contains("touches_lead (lead_id=?)") && !to_go.contains("TEMP B-TREE"),
        "{to_go}"
    );
    let first_page = sqlite_plan(
        s,
        "SELECT id FROM leads l WHERE 1 = 1 ORDER BY l.id DESC LIMIT 50",
    )
    .await;
    assert!(
        !first_page.contains("TEMP B-TREE"),
        "leads list first page walks the primary key: {first_page}"
    );
    let agent_page = sqlite_plan(
        s,
        "SELECT id FROM leads l WHERE l.assigned_to = 3 AND l.id < 100 ORDER BY l.id DESC LIMIT 50",
    )
    .await;
    assert!(agent_page.contains("leads_assigned"), "{agent_page}");
    let email = sqlite_plan(s, "SELECT id FROM leads WHERE email_key = 'a@example.com'").await;
    assert!(email.contains("leads_email"), "{email}");
    let phone = sqlite_plan(s, "SELECT id FROM leads WHERE phone = '+15125550100'").await;
    assert!(phone.contains("leads_phone"), "{phone}");
    let sid = sqlite_plan(
        s,
        "SELECT id FROM touches WHERE provider_id = 'SM1' AND sent_channel = 'text'",
    )
    .await;
    assert!(sid.contains("touches_provider_id"), "{sid}");
    let any = sqlite_plan(s, "SELECT id FROM touches WHERE provider_id = 'SM1'").await;
    assert!(
        !any.contains("touches_provider_id"),
        "only texts' provider ids are indexed: {any}"
    );
    let name = sqlite_plan(s, "SELECT l.id FROM leads l JOIN leads_fts ON leads_fts.rowid = l.id AND leads_fts MATCH 'jo*' ORDER BY l.id DESC LIMIT 50").await;
    assert!(
        name.contains("VIRTUAL TABLE INDEX"),
        "name search goes through FTS5: {name}"
    );
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_and_listens_to_no_one() {
    let t = TestStore::new(Backend::Sqlite).await;
    let pool = sqlx::SqlitePool::connect(&t.sqlite.as_ref().unwrap().url())
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(t.listen().await.unwrap().is_none(), "one process per file");
    assert_eq!(t.backend(), "sqlite");
}

/// Commits leave their pages in the WAL; the store's checkpointer copies them into the
/// database file soon after, without another commit (SQLite's own checkpoint would wait for
/// 256 MB of WAL, and then make a commit pay for it).
#[tokio::test]
async fn sqlite_writes_reach_the_database_file_without_a_commit_paying_for_it() {
    let t = TestStore::new(Backend::Sqlite).await;
    let file = t.dir.path().join("s.db");
    let before = std::fs::metadata(&file).unwrap().len();
    let mut tx = t.write().await.unwrap();
    for i in 0..300 {
        let mut l = lead("A", "B", &format!("a{i}@example.com"), "+15125550104");
        l.notes = "n".repeat(2000);
        tx.lead_insert(&l).await.unwrap();
    }
    tx.commit().await.unwrap();
    let wal = file.with_extension("db-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 600_000,
        "the commit wrote its pages to the WAL"
    );
    let mut grown = 0;
    for _ in 0..100 {
        grown = std::fs::metadata(&file).unwrap().len();
        if grown > before + 600_000 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the database file is still {grown} bytes (was {before}): nothing was checkpointed");
}

/// Saving a lead re-indexes its name for search only when the name changed: every
/// engagement, answer or edit saves the whole lead.
#[tokio::test]
async fn sqlite_reindexes_a_name_only_when_it_changes() {
    let t = TestStore::new(Backend::Sqlite).await;
    let pool = sqlx::SqlitePool::connect(&t.sqlite.as_ref().unwrap().url())
        .await
        .unwrap();
    let fts_rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM leads_fts_data")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let mut tx = t.write().await.unwrap();
    let id = tx
        .lead_insert(&lead("Quinn", "Ashby", "q@example.com", "+15125550160"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let before = fts_rows().await;
    let mut tx = t.write().await.unwrap();
    let mut l = tx.lead(id).await.unwrap().unwrap();
    l.level = Level::Hot;
    tx.lead_save(&l).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        fts_rows().await,
        before,
        "a save that keeps the name leaves the index alone"
    );
    let mut tx = t.write().await.unwrap();
    l.last_name = "Brook".into();
    tx.lead_save(&l).await.unwrap();
    tx.commit().await.unwrap();
    let find = |q: &str| {
        let q = q.to_string();
        let t = &t;
        async move {
            t.read()
                .await
                .unwrap()
                .leads_page(&LeadFilter {
                    name_query: Some(q),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(find("brook").await, 1, "the new name is found");
    assert_eq!(find("ashby").await, 0, "the old name is not");
}

// ---------------------------------------------------------------------------------------
// PostgreSQL only

/// The plan PostgreSQL picks for a query, as text.
async fn pg_plan(s: &PostgresStore, sql: &str) -> String {
    let rows: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN (COSTS OFF) {sql}")))
            .fetch_all(s.pool())
            .await
            .unwrap();
    rows.join(" | ")
}

#[tokio::test]
async fn postgres_hot_paths_use_indexes_not_table_scans() {
    let t = TestStore::new(Backend::Postgres).await;
    let s = t.pg.as_ref().unwrap();
    // Enough rows, and statistics, that a sequential scan is not simply the cheapest.
    sqlx::query(
        "INSERT INTO leads (first_name, last_name, email, email_key, phone, timezone, created_at, updated_at, assigned_to)
         SELECT (ARRAY['John', 'Mary', 'Jose', 'Ann', 'Zoe', 'Liam', 'Emma', 'Noah', 'Olivia', 'Ava'])[1 + i % 10] || (i % 997),
                'Smith' || (i % 5003), 'e' || i || '@example.com', 'e' || i || '@example.com', '+1512' || (2000000 + i), 'UTC', i, i, NULL
         FROM generate_series(1, 20000) AS i",
    )
    .execute(s.pool())
    .await
    .unwrap();
    sqlx::query("INSERT INTO enrollments (lead_id, plan, plan_version, state, started_at) SELECT id, 'p', 1, 'active', 0 FROM leads")
        .execute(s.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO touches (enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, status, created_at)
         SELECT e.id, e.lead_id, 'p', s, 'email', 't', e.lead_id * 1000 + s, e.lead_id * 1000 + s,
                CASE WHEN s < 3 THEN 'sent' ELSE 'scheduled' END, 0
         FROM enrollments e, generate_series(0, 4) AS s",
    )
    .execute(s.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO users (email, name, role, created_at) SELECT 'u' || i || '@example.com', 'U', 'agent', 0 FROM generate_series(1, 2000) AS i",
    )
    .execute(s.pool())
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(s.pool()).await.unwrap();

    let due = pg_plan(s, "SELECT id FROM touches WHERE status = 'scheduled' AND task_id IS NULL AND due_at <= 5000 ORDER BY due_at LIMIT 500").await;
    assert!(due.contains("touches_due"), "due-touch query: {due}");
    let claim = pg_plan(
        s,
        "UPDATE touches SET status = 'sending' WHERE id IN (SELECT id FROM touches WHERE status = 'scheduled' AND task_id IS NULL AND due_at <= 5000 ORDER BY due_at LIMIT 500 FOR UPDATE SKIP LOCKED)",
    )
    .await;
    assert!(
        claim.contains("touches_due") && claim.contains("touches_pkey"),
        "the claim walks the due index and updates by primary key: {claim}"
    );
    let urgent = pg_plan(s, "SELECT id FROM touches WHERE status = 'scheduled' AND task_id IS NULL AND plan = 'speed-to-lead' AND due_at <= 5000 ORDER BY due_at LIMIT 500").await;
    assert!(
        urgent.contains("touches_due_urgent"),
        "speed-to-lead first: {urgent}"
    );
    let email = pg_plan(
        s,
        "SELECT id FROM leads WHERE email_key = 'e5@example.com' ORDER BY id LIMIT 1",
    )
    .await;
    assert!(email.contains("leads_email"), "{email}");
    let phone = pg_plan(
        s,
        "SELECT id FROM leads WHERE phone = '+15122000005' ORDER BY id LIMIT 1",
    )
    .await;
    assert!(phone.contains("leads_phone"), "{phone}");
    let user = pg_plan(
        s,
        "SELECT id FROM users WHERE lower(email) = lower('A@example.com')",
    )
    .await;
    assert!(user.contains("users_email_nocase"), "{user}");
    let sid = pg_plan(
        s,
        "SELECT id FROM touches WHERE provider_id = 'SM1' AND sent_channel = 'text'",
    )
    .await;
    assert!(sid.contains("touches_provider_id"), "{sid}");
    let any = pg_plan(s, "SELECT id FROM touches WHERE provider_id = 'SM1'").await;
    assert!(
        !any.contains("touches_provider_id"),
        "only texts' provider ids are indexed: {any}"
    );
    let first_page = pg_plan(s, "SELECT id FROM leads l ORDER BY l.id DESC LIMIT 50").await;
    assert!(
        first_page.contains("leads_pkey") && !first_page.contains("Sort"),
        "leads list first page walks the primary key: {first_page}"
    );
    let name = pg_plan(
        s,
        "SELECT l.id FROM leads l WHERE l.name_search @@ to_tsquery('simple', relentless_fold('''smith1234'':*')) ORDER BY l.id DESC LIMIT 50",
    )
    .await;
    assert!(
        name.contains("leads_name_search"),
        "name search goes through the GIN index: {name}"
    );
}

/// The report trigger on leads (migration 0011) buckets two durations per changed lead with
/// `report_bucket`. Written so PostgreSQL could not inline it, each call went through the
/// SQL-function executor and a 500-lead dispatch batch spent ~65 ms per lead update in it
/// (migration 0012). Its values are the report's: a second below 2 minutes, 10 s below 20, a
/// minute below 2 hours, 10 minutes below a day, an hour beyond; negative counts as 0.
#[tokio::test]
async fn postgres_report_buckets_are_exact_and_inlined_into_the_trigger() {
    let t = TestStore::new(Backend::Postgres).await;
    let s = t.pg.as_ref().unwrap();
    let seconds: Vec<Option<i64>> = [-5, 0, 119, 120, 125, 1205, 7199, 7300, 86_399, 90_000]
        .into_iter()
        .map(Some)
        .chain([None])
        .collect();
    let got: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT report_bucket(s) FROM unnest($1::BIGINT[]) WITH ORDINALITY AS v(s, o) ORDER BY o",
    )
    .bind(&seconds)
    .fetch_all(s.pool())
    .await
    .unwrap();
    let want = [0, 0, 119, 120, 120, 1200, 7140, 7200, 85_800, 90_000]
        .into_iter()
        .map(Some)
        .chain([None])
        .collect::<Vec<_>>();
    assert_eq!(got, want);
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (VERBOSE, COSTS OFF) SELECT report_bucket(s) FROM generate_series(1::BIGINT, 3) AS s",
    )
    .fetch_all(s.pool())
    .await
    .unwrap();
    let plan = plan.join(" | ");
    assert!(
        !plan.contains("report_bucket"),
        "the bucket is an expression in the caller's plan, not a function called per row: {plan}"
    );
}

#[tokio::test]
async fn postgres_connections_carry_the_timeouts() {
    let t = TestStore::new(Backend::Postgres).await;
    let s = t.pg.as_ref().unwrap();
    let (statement, idle): (String, String) = sqlx::query_as(
        "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')",
    )
    .fetch_one(s.pool())
    .await
    .unwrap();
    assert_eq!((statement.as_str(), idle.as_str()), ("30s", "2min"));
    assert_eq!(t.backend(), "postgres");
    // A statement past the timeout is cancelled, and that is "busy", not a broken database.
    let short = PostgresStore::open_with(
        t.db.as_ref().unwrap().url(),
        &relentless_store::postgres::Settings {
            pool_size: 1,
            statement_timeout: Duration::from_millis(50),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let err = sqlx::query("SELECT pg_sleep(1)")
        .execute(short.pool())
        .await
        .map_err(StoreError::from)
        .unwrap_err();
    assert!(matches!(err, StoreError::Busy), "{err:?}");
}

#[tokio::test]
async fn postgres_concurrent_claims_skip_each_others_rows_instead_of_waiting() {
    let t = TestStore::new(Backend::Postgres).await;
    lead_with_due_touches(&*t, "a@example.com", 6).await;
    let other = t.another().await;
    // Process A claims and has not committed yet.
    let mut a = t.write().await.unwrap();
    let mine = a.claim_due(100, 4, "a", 10_000).await.unwrap();
    assert_eq!(mine.len(), 4);
    // Process B does not wait for A: it takes what A has not locked.
    let mut b = tokio::time::timeout(Duration::from_secs(5), async {
        let mut b = other.write().await.unwrap();
        let theirs = b.claim_due(100, 4, "b", 10_000).await.unwrap();
        (b, theirs)
    })
    .await
    .expect("a claim never waits for another");
    assert_eq!(b.1.len(), 2);
    assert!(b.1.iter().all(|x| !mine.iter().any(|m| m.id == x.id)));
    // A rolls back: its touches are due again and B (or anyone) can take them.
    // The rollback of a dropped transaction reaches the server when its connection goes back
    // to the pool, a moment later: until then A's rows are still locked and skipped.
    drop(a);
    let mut again = vec![];
    for _ in 0..100 {
        again = b.0.claim_due(100, 10, "b", 10_000).await.unwrap();
        if !again.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(again.len(), 4);
    b.0.commit().await.unwrap();
}

#[tokio::test]
async fn postgres_the_same_new_lead_in_two_processes_becomes_one_lead() {
    let t = TestStore::new(Backend::Postgres).await;
    let other = t.another().await;
    // A sees no match and inserts, but has not committed.
    let mut a = t.write().await.unwrap();
    assert!(
        a.lead_match(None, Some("new@example.com"), Some("+15125550111"))
            .await
            .unwrap()
            .is_none()
    );
    let id = a
        .lead_insert(&lead("N", "L", "new@example.com", "+15125550111"))
        .await
        .unwrap();
    // B looks for the same person: it waits for A instead of inserting a duplicate...
    let b = tokio::spawn(async move {
        let mut b = other.write().await.unwrap();
        let found = b
            .lead_match(None, Some("new@example.com"), None)
            .await
            .unwrap();
        b.commit().await.unwrap();
        found
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b.is_finished(), "B waits while A holds the email");
    a.commit().await.unwrap();
    // ...and then finds A's lead.
    assert_eq!(b.await.unwrap().map(|l| l.id), Some(id));
}

#[tokio::test]
async fn postgres_other_processes_hear_of_touches_and_notifications_at_commit() {
    use tokio::sync::broadcast::error::TryRecvError;
    let t = TestStore::new(Backend::Postgres).await;
    let other = t.another().await;
    let mut theirs = other.listen().await.unwrap().expect("postgres listens");
    let mut ours = t.listen().await.unwrap().unwrap();
    let mut tx = t.write().await.unwrap();
    let u = tx.user_insert(&user("a@example.com"), 1).await.unwrap();
    tx.commit().await.unwrap();

    // Touches created: the other process is woken, at commit and not before.
    let mut tx = t.write().await.unwrap();
    tx.team_save(&team(), 0).await.unwrap();
    let lead_id = tx
        .lead_insert(&lead("A", "B", "x@example.com", "+15125550109"))
        .await
        .unwrap();
    tx.enrollment_insert(
        lead_id,
        "p",
        1,
        0,
        &[NewTouch {
            step: 0,
            channel: Channel::Email,
            template: "t".into(),
            planned_at: 0,
            due_at: 0,
            reason: None,
        }],
    )
    .await
    .unwrap();
    let n = tx
        .notification_insert(&NewNotification {
            user_id: u,
            event: EventKind::Engagement,
            lead_id: Some(lead_id),
            lead_name: "A B".into(),
            kind: "email_open".into(),
            at: 5,
            detail: "opened".into(),
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        theirs.try_recv().unwrap_err(),
        TryRecvError::Empty,
        "nothing before commit"
    );
    let started = std::time::Instant::now();
    tx.commit().await.unwrap();
    let mut got = vec![];
    while got.len() < 2 {
        got.push(
            tokio::time::timeout(Duration::from_secs(5), theirs.recv())
                .await
                .expect("heard within 5 s")
                .unwrap(),
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "within the 100 ms budget: {:?}",
        started.elapsed()
    );
    assert!(got.contains(&Signal::Wake), "{got:?}");
    let Some(Signal::Notification(heard)) = got
        .iter()
        .find(|s| matches!(s, Signal::Notification(_)))
        .cloned()
    else {
        panic!("no notification in {got:?}");
    };
    assert_eq!(
        (
            heard.id,
            heard.user_id,
            heard.event.as_str(),
            heard.detail.as_str()
        ),
        (n, u, "engagement", "opened")
    );
    // A process does not hear its own (it already woke and published in-process).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ours.try_recv().unwrap_err(), TryRecvError::Empty);
    // A rolled-back transaction tells no one.
    let mut tx = t.write().await.unwrap();
    let touch = tx.touches_for_lead(lead_id).await.unwrap().remove(0);
    tx.touch_reschedule(touch.id, 10, "x").await.unwrap();
    drop(tx);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(theirs.try_recv().unwrap_err(), TryRecvError::Empty);
    // The store going away closes its listeners' streams.
    drop(other);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = theirs.recv().await {
                    break;
                }
            }
        })
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn postgres_settings_come_from_the_environment_and_bad_urls_are_refused() {
    let s = relentless_store::postgres::Settings::default();
    assert_eq!(s.pool_size, 10);
    let err = relentless_store::open("mysql://localhost/x")
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, StoreError::Config(ref m) if m.contains("postgres://")),
        "{err}"
    );
    let db = TestDatabase::create().await.unwrap();
    let s = relentless_store::open(db.url()).await.unwrap();
    assert_eq!(s.backend(), "postgres");
    let pg = db.url().replacen("postgres://", "postgresql://", 1);
    assert_eq!(
        relentless_store::open(&pg).await.unwrap().backend(),
        "postgres"
    );
}

fn sent(touch: &Touch, status: TouchStatus, channel: Channel) -> TouchResult {
    TouchResult {
        touch_id: touch.id,
        due_at: touch.due_at,
        lead_id: touch.lead_id,
        status,
        reason: None,
        sent_channel: Some(channel),
        subject: None,
        content: Some("hi".into()),
        provider_id: None,
        attempt: status == TouchStatus::Sent,
    }
}

/// What the dispatcher records is what a user then reads: a touch's message (kept in
/// `touch_bodies` on SQLite, migration 0013), its replacement when a touch is recorded again,
/// and the stage a first attempt moves a `new` lead to (a lead past `new` keeps its stage).
/// On SQLite, a touch's message goes with the touch: erasure leaves no body behind.
async fn recorded_messages_read_back_and_a_first_attempt_moves_only_new_leads(b: Backend) {
    let s = TestStore::new(b).await;
    let a = lead_with_due_touches(&*s, "a@example.com", 2).await;
    let c = lead_with_due_touches(&*s, "c@example.com", 1).await;
    let mut tx = s.write().await.unwrap();
    let mut lc = tx.lead(c).await.unwrap().unwrap();
    lc.stage = Stage::Contacted;
    tx.lead_save(&lc).await.unwrap();
    let claimed = tx.claim_due(10, 10, "w", 60_000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let of = |lead: i64, step: i64| {
        claimed
            .iter()
            .find(|t| t.lead_id == lead && t.step == step)
            .unwrap()
            .clone()
    };
    let (a0, a1, c0) = (of(a, 0), of(a, 1), of(c, 0));
    let mut first = sent(&a0, TouchStatus::Sent, Channel::Email);
    first.subject = Some("Your tour on Saturday".into());
    first.content = Some("Hi Ana, it was great to meet you.".into());
    let mut skipped = sent(&a1, TouchStatus::Skipped, Channel::Email);
    skipped.content = None;
    skipped.reason = Some("opted out".into());
    let mut other = sent(&c0, TouchStatus::Sent, Channel::Email);
    other.content = Some("Hi Cal".into());
    tx.touches_record(&[first.clone(), skipped, other], 20)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut r = s.read().await.unwrap();
    let t = r.touch(a0.id).await.unwrap().unwrap();
    assert_eq!(t.subject.as_deref(), Some("Your tour on Saturday"));
    assert_eq!(
        t.content.as_deref(),
        Some("Hi Ana, it was great to meet you.")
    );
    let listed = r.touches_for_lead(a).await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.content.clone()).collect::<Vec<_>>(),
        vec![Some("Hi Ana, it was great to meet you.".to_string()), None],
        "the lead's touches carry their messages; a skipped one has none"
    );
    assert_eq!(
        r.touch(c0.id).await.unwrap().unwrap().content.as_deref(),
        Some("Hi Cal")
    );
    let (la, lc) = (
        r.lead(a).await.unwrap().unwrap(),
        r.lead(c).await.unwrap().unwrap(),
    );
    assert_eq!(
        (la.stage, la.attempts),
        (Stage::Attempting, 1),
        "a new lead's first attempt"
    );
    assert_eq!(
        (lc.stage, lc.attempts),
        (Stage::Contacted, 1),
        "a lead past `new` keeps its stage"
    );
    drop(r);

    // Recorded again (a late outcome), the touch shows its new message only.
    let mut tx = s.write().await.unwrap();
    first.status = TouchStatus::Failed;
    first.attempt = false;
    first.content = Some("Second version".into());
    tx.touches_record(&[first], 30).await.unwrap();
    tx.commit().await.unwrap();
    let t = s.read().await.unwrap().touch(a0.id).await.unwrap().unwrap();
    assert_eq!(
        (t.status, t.content.as_deref()),
        (TouchStatus::Failed, Some("Second version"))
    );

    if let Some(sq) = &s.sqlite {
        let pool = sqlx::SqlitePool::connect(&sq.url()).await.unwrap();
        let bodies = || async {
            sqlx::query_scalar::<_, String>("SELECT content FROM touch_bodies ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap()
        };
        assert_eq!(
            bodies().await,
            ["Hi Cal", "Second version"],
            "the replaced body is gone"
        );
        let mut tx = s.write().await.unwrap();
        tx.lead_delete(a).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            bodies().await,
            ["Hi Cal"],
            "erasing a lead erases its messages"
        );
    }
}

/// An outcome names its touch's id and the `due_at` it was claimed with (SQLite finds the row
/// by both, migration 0016). Were the touch moved in between, the outcome must still land on
/// it, once: its status, its message, the lead's attempt and the report's count.
async fn an_outcome_is_recorded_even_when_its_touch_moved_after_the_claim(b: Backend) {
    let s = TestStore::new(b).await;
    let id = lead_with_due_touches(&*s, "moved@example.com", 2).await;
    let mut tx = s.write().await.unwrap();
    let claimed = tx.claim_due(10, 10, "w", 1_000).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let mut stale = sent(&claimed[0], TouchStatus::Sent, Channel::Email);
    stale.due_at += 777; // not the touch's due time
    tx.touches_record(
        &[stale, sent(&claimed[1], TouchStatus::Sent, Channel::Email)],
        20,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut r = s.read().await.unwrap();
    let touches = r.touches_for_lead(id).await.unwrap();
    assert_eq!(
        touches
            .iter()
            .map(|t| (t.id, t.status, t.attempt, t.content.as_deref()))
            .collect::<Vec<_>>(),
        [
            (claimed[0].id, TouchStatus::Sent, Some(1), Some("hi")),
            (claimed[1].id, TouchStatus::Sent, Some(2), Some("hi")),
        ]
    );
    assert_eq!(r.lead(id).await.unwrap().unwrap().attempts, 2);
    let mut rows = r.report_rows(0, 20).await.unwrap();
    rows.touches.sort();
    assert_eq!(
        rows.touches,
        [
            ("p".to_string(), 0, "email".to_string(), 1, 0),
            ("p".to_string(), 1, "email".to_string(), 1, 0),
        ]
    );
}

/// Touches are stored by when they fall due on SQLite (migration 0016), where the store gives
/// their ids: each touch still gets an id of its own, in the order it was planned, after every
/// id before it, and keeps it when rescheduled.
async fn touches_get_ids_of_their_own_in_order_whatever_their_due_time(b: Backend) {
    let s = TestStore::new(b).await;
    let mut tx = s.write().await.unwrap();
    tx.team_save(&team(), 0).await.unwrap();
    let mut ids = vec![];
    for (email, phone) in [
        ("late@example.com", "+15125550110"),
        ("early@example.com", "+15125550111"),
    ] {
        let lead = tx.lead_insert(&lead("A", "B", email, phone)).await.unwrap();
        // The first lead's touches fall due after the second's, and out of step order.
        let base = if ids.is_empty() { 5_000 } else { 0 };
        let touches: Vec<NewTouch> = [300, 100, 200]
            .iter()
            .enumerate()
            .map(|(i, at)| NewTouch {
                step: i as i64,
                channel: Channel::Text,
                template: "t".into(),
                planned_at: base + at,
                due_at: base + at,
                reason: None,
            })
            .collect();
        tx.enrollment_insert(lead, "p", 1, 0, &touches)
            .await
            .unwrap();
        ids.push(lead);
    }
    tx.commit().await.unwrap();
    let mut r = s.read().await.unwrap();
    let mut all = vec![];
    for lead in &ids {
        let mut t = r.touches_for_lead(*lead).await.unwrap();
        t.sort_by_key(|t| t.step);
        all.extend(t.into_iter().map(|t| (t.id, t.due_at)));
    }
    drop(r);
    let first = all[0].0;
    assert_eq!(
        all,
        [
            (first, 5_300),
            (first + 1, 5_100),
            (first + 2, 5_200),
            (first + 3, 300),
            (first + 4, 100),
            (first + 5, 200),
        ],
        "ids in the order the touches were planned"
    );
    let mut tx = s.write().await.unwrap();
    tx.touch_reschedule(first, 50, "moved").await.unwrap();
    tx.commit().await.unwrap();
    let mut r = s.read().await.unwrap();
    let moved = r.touch(first).await.unwrap().unwrap();
    assert_eq!((moved.due_at, moved.lead_id), (50, ids[0]));
    assert_eq!(r.touches_for_lead(ids[0]).await.unwrap().len(), 3);
}

/// A new SQLite file in `dir` as an earlier release left it (only the migrations numbered
/// below `version` applied, then `rows` written), opened and migrated by this version; and
/// its URL.
async fn sqlite_upgraded_from(
    dir: &tempfile::TempDir,
    version: i64,
    rows: &[&str],
) -> (SqliteStore, String) {
    let url = format!("sqlite://{}/old.db?mode=rwc", dir.path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut old = sqlx::migrate::Migrator::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite"),
    )
    .await
    .unwrap();
    old.migrations = old
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    old.run(&pool).await.unwrap();
    for sql in rows {
        sqlx::query(sqlx::AssertSqlSafe(*sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let s = SqliteStore::open(&url).await.unwrap();
    s.migrate().await.unwrap();
    (s, url)
}

/// A file written before migration 0013 (messages inside the touch rows) keeps every message
/// when it is opened by this version: they move to `touch_bodies` and read back the same.
#[tokio::test]
async fn sqlite_messages_written_before_touch_bodies_survive_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = sqlite_upgraded_from(
        &dir,
        13,
        &[
        "INSERT INTO leads (id, first_name, last_name, timezone, created_at, updated_at) VALUES (1, 'Ana', 'Ruiz', 'America/Chicago', 0, 0)",
        "INSERT INTO enrollments (id, lead_id, plan, plan_version, state, started_at) VALUES (1, 1, 'p', 1, 'active', 0)",
        "INSERT INTO touches (id, enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, status, subject, content, created_at)
         VALUES (1, 1, 1, 'p', 0, 'email', 't', 0, 0, 'sent', 'Welcome', 'Hi Ana', 0),
                (2, 1, 1, 'p', 1, 'text', 't', 0, 0, 'scheduled', NULL, NULL, 0)",
        ],
    )
    .await;
    let mut r = s.read().await.unwrap();
    let t = r.touch(1).await.unwrap().unwrap();
    assert_eq!(
        (t.subject.as_deref(), t.content.as_deref()),
        (Some("Welcome"), Some("Hi Ana"))
    );
    let t = r.touch(2).await.unwrap().unwrap();
    assert_eq!((t.subject.as_deref(), t.content.as_deref()), (None, None));
    drop(r);
    // The next body takes an id after the moved ones (body 1 is touch 1's): recording another
    // touch keeps the old message and adds its own.
    let mut tx = s.write().await.unwrap();
    let mut next = sent(&t, TouchStatus::Sent, Channel::Text);
    next.content = Some("See you at 10".into());
    tx.touches_record(&[next], 5).await.unwrap();
    tx.commit().await.unwrap();
    let mut r = s.read().await.unwrap();
    assert_eq!(
        r.touch(1).await.unwrap().unwrap().content.as_deref(),
        Some("Hi Ana")
    );
    assert_eq!(
        r.touch(2).await.unwrap().unwrap().content.as_deref(),
        Some("See you at 10")
    );
}

/// A file written before migration 0016 (touches stored by id) reads back the same after it:
/// every touch with its id, status, attempt and message, the report's counts; new touches
/// take ids after the old ones, the old due touch is still fired, and erasure still takes a
/// lead's touches and messages.
#[tokio::test]
async fn sqlite_touches_written_before_they_were_stored_by_due_time_survive_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let (s, url) = sqlite_upgraded_from(
        &dir,
        16,
        &[
        "INSERT INTO leads (id, first_name, last_name, timezone, attempts, created_at, updated_at) VALUES (1, 'Ana', 'Ruiz', 'America/Chicago', 1, 0, 0)",
        "INSERT INTO enrollments (id, lead_id, plan, plan_version, state, started_at) VALUES (1, 1, 'p', 1, 'active', 0)",
        "INSERT INTO touch_bodies (id, subject, content) VALUES (1, 'Welcome', 'Hi Ana')",
        // Ids out of due order, as a lead's touches were written together.
        "INSERT INTO touches (id, enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, status, attempt, sent_channel, settled_at, body_id, created_at)
         VALUES (7, 1, 1, 'p', 0, 'email', 't', 0, 0, 'sent', 1, 'email', 10, 1, 0),
                (8, 1, 1, 'p', 1, 'text', 't', 900000, 900000, 'scheduled', NULL, NULL, NULL, NULL, 0),
                (9, 1, 1, 'p', 2, 'text', 't', 50, 50, 'scheduled', NULL, NULL, NULL, NULL, 0)",
        ],
    )
    .await;
    let mut r = s.read().await.unwrap();
    let read = r.touches_for_lead(1).await.unwrap();
    assert_eq!(
        read.iter()
            .map(|t| (t.id, t.due_at, t.status, t.attempt, t.content.as_deref()))
            .collect::<Vec<_>>(),
        [
            (7, 0, TouchStatus::Sent, Some(1), Some("Hi Ana")),
            (9, 50, TouchStatus::Scheduled, None, None),
            (8, 900000, TouchStatus::Scheduled, None, None),
        ]
    );
    assert_eq!(
        r.report_rows(0, 100).await.unwrap().touches,
        [("p".to_string(), 0, "email".to_string(), 1, 0)]
    );
    drop(r);

    // The touch due before 100 is fired and recorded, under its old id.
    let mut tx = s.write().await.unwrap();
    let due = tx.claim_due(100, 10, "w", 1_000).await.unwrap();
    assert_eq!(due.iter().map(|t| t.id).collect::<Vec<_>>(), [9]);
    tx.touches_record(&[sent(&due[0], TouchStatus::Sent, Channel::Text)], 100)
        .await
        .unwrap();
    // A new plan's touches take ids after the old ones.
    tx.enrollment_insert(
        1,
        "q",
        1,
        100,
        &[NewTouch {
            step: 0,
            channel: Channel::Email,
            template: "t".into(),
            planned_at: 20,
            due_at: 20,
            reason: None,
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut r = s.read().await.unwrap();
    let read = r.touches_for_lead(1).await.unwrap();
    assert_eq!(
        read.iter()
            .map(|t| (t.id, t.status, t.attempt))
            .collect::<Vec<_>>(),
        [
            (7, TouchStatus::Sent, Some(1)),
            (10, TouchStatus::Scheduled, None),
            (9, TouchStatus::Sent, Some(2)),
            (8, TouchStatus::Scheduled, None),
        ]
    );
    drop(r);

    let mut tx = s.write().await.unwrap();
    tx.lead_delete(1).await.unwrap();
    tx.commit().await.unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM touches), (SELECT COUNT(*) FROM touch_bodies)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        left,
        (0, 0),
        "erasure takes the lead's touches and messages"
    );
}

/// The summary's figures come from tables that triggers keep (migration 0008), not from
/// reading every touch: each change a user can cause must move them, and only real changes.
async fn report_figures_follow_sends_answers_and_erasure(b: Backend) {
    let s = TestStore::new(b).await;
    let hour = 3_600_000;
    let now = 500 * hour + 10_000; // settled in hour 500
    let a = lead_with_due_touches(&*s, "a@example.com", 3).await;
    let b_id = lead_with_due_touches(&*s, "b@example.com", 2).await;
    let mut tx = s.write().await.unwrap();
    let claimed = tx.claim_due(now, 10, "w", now + 60_000).await.unwrap();
    assert_eq!(claimed.len(), 5);
    let of = |lead: i64, step: i64| {
        claimed
            .iter()
            .find(|t| t.lead_id == lead && t.step == step)
            .unwrap()
    };
    tx.touches_record(
        &[
            sent(of(a, 0), TouchStatus::Sent, Channel::Email),
            sent(of(a, 1), TouchStatus::Sent, Channel::Text), // a fallback: counted as text
            sent(of(b_id, 0), TouchStatus::Sent, Channel::Email),
            sent(of(b_id, 1), TouchStatus::Failed, Channel::Email), // not sent: not counted
        ],
        now,
    )
    .await
    .unwrap();
    // Lead A answers after its second touch, after 2 attempts.
    tx.touch_mark_answered(a).await.unwrap();
    let mut la = tx.lead(a).await.unwrap().unwrap();
    la.answered_at = Some(now + 1);
    la.attempts_at_answer = Some(la.attempts);
    tx.lead_save(&la).await.unwrap();
    // Saving a lead again without a change moves nothing.
    tx.lead_save(&la).await.unwrap();
    tx.commit().await.unwrap();

    let rows = s.read().await.unwrap().report_rows(0, now).await.unwrap();
    let mut touches = rows.touches.clone();
    touches.sort();
    assert_eq!(
        touches,
        [
            ("p".to_string(), 0, "email".to_string(), 2, 0),
            ("p".to_string(), 1, "text".to_string(), 1, 1),
        ]
    );
    let mut leads = rows.lead_values.clone();
    leads.sort();
    // Both leads came in at instant 1 (hour 0) and were first attempted at `now`: 1,800,010 s
    // later, kept to the hour.
    let secs = (now - 1) / 1000;
    assert_eq!(
        leads,
        [
            ("attempts".to_string(), 0, 2, 1),
            ("lead".to_string(), 0, secs - secs % 3600, 2),
        ]
    );
    // A window that starts after the hour they came in has no leads, and one that starts
    // after the hour the touches settled has no touches.
    let later = s
        .read()
        .await
        .unwrap()
        .report_rows(hour, now)
        .await
        .unwrap();
    assert!(later.lead_values.is_empty() && later.touches.len() == 2);
    let after = s
        .read()
        .await
        .unwrap()
        .report_rows(501 * hour, now)
        .await
        .unwrap();
    assert!(after.touches.is_empty());

    // Erasing lead B takes its sent email and its first attempt out of the figures.
    let mut tx = s.write().await.unwrap();
    tx.lead_delete(b_id).await.unwrap();
    tx.commit().await.unwrap();
    let rows = s.read().await.unwrap().report_rows(0, now).await.unwrap();
    let mut touches = rows.touches;
    touches.sort();
    assert_eq!(
        touches,
        [
            ("p".to_string(), 0, "email".to_string(), 1, 0),
            ("p".to_string(), 1, "text".to_string(), 1, 1),
        ]
    );
    let mut leads = rows.lead_values;
    leads.sort();
    assert_eq!(
        leads,
        [
            ("attempts".to_string(), 0, 2, 1),
            ("lead".to_string(), 0, secs - secs % 3600, 1),
        ]
    );
}

/// A new submission that matches several leads merges into one: the one with its external id,
/// else its email, else its phone; among leads equal on that, the oldest.
async fn a_match_prefers_the_external_id_then_the_email_then_the_phone_then_the_oldest(b: Backend) {
    let s = TestStore::new(b).await;
    let mut tx = s.write().await.unwrap();
    let mut by_phone = lead("Old", "Phone", "p1@example.com", "+15125550111");
    let phone_old = tx.lead_insert(&by_phone).await.unwrap();
    by_phone.email = Some("p2@example.com".into());
    let _phone_new = tx.lead_insert(&by_phone).await.unwrap();
    let by_email = tx
        .lead_insert(&lead("By", "Email", "e@example.com", "+15125550112"))
        .await
        .unwrap();
    let mut x = lead("By", "External", "x@example.com", "+15125550113");
    x.external_id = Some("crm-7".into());
    let by_external = tx.lead_insert(&x).await.unwrap();
    let mut matched = vec![];
    for (ext, email, phone) in [
        (Some("crm-7"), Some("e@example.com"), Some("+15125550111")),
        (Some("crm-0"), Some("e@example.com"), Some("+15125550111")),
        (None, Some("nobody@example.com"), Some("+15125550111")),
        (None, None, Some("+15125550199")),
    ] {
        matched.push(
            tx.lead_match(ext, email, phone)
                .await
                .unwrap()
                .map(|l| l.id),
        );
    }
    assert_eq!(
        matched,
        [Some(by_external), Some(by_email), Some(phone_old), None]
    );
}

/// Engagement raises leads read earlier without a lock: an opt-out saved meanwhile survives.
async fn making_leads_hot_changes_only_their_level(b: Backend) {
    let s = TestStore::new(b).await;
    let mut tx = s.write().await.unwrap();
    let id = tx
        .lead_insert(&lead("Hal", "Hot", "hal@example.com", "+15125550121"))
        .await
        .unwrap();
    let other = tx
        .lead_insert(&lead("Cole", "Cold", "cole@example.com", "+15125550122"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    let mut l = tx.lead(id).await.unwrap().unwrap();
    l.sms_opt_out = true;
    tx.lead_save(&l).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.write().await.unwrap();
    tx.leads_make_hot(&[id], 42).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    let l = tx.lead(id).await.unwrap().unwrap();
    assert_eq!(
        (l.level, l.sms_opt_out, l.updated_at),
        (Level::Hot, true, 42)
    );
    assert_eq!(tx.lead(other).await.unwrap().unwrap().level, Level::Warm);
}

/// A reply finds the touch it answers by the touch id and the Message-ID stored for it: the
/// same id with another Message-ID, or the Message-ID with another touch's id, finds nothing.
async fn a_touch_is_found_by_its_id_and_its_own_message_id(b: Backend) {
    let s = TestStore::new(b).await;
    let lead = lead_with_due_touches(&*s, "reply@example.com", 2).await;
    let mut tx = s.write().await.unwrap();
    let due = tx.touches_due(200, 10, &[]).await.unwrap();
    assert_eq!(due.len(), 2);
    let mid = format!("<relentless.{}.abcdef012345@mail.example.com>", due[0].id);
    // The second touch's due time is given wrong (as if it had moved): it is found by id.
    let mid_1 = format!("<relentless.{}.abcdef012346@mail.example.com>", due[1].id);
    tx.touches_set_message_ids(&[
        (due[0].id, due[0].due_at, mid.clone()),
        (due[1].id, due[1].due_at + 1, mid_1.clone()),
    ])
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = s.read().await.unwrap();
    let found = tx.touch_by_message_id(due[0].id, &mid).await.unwrap();
    assert_eq!(found.map(|t| (t.id, t.lead_id)), Some((due[0].id, lead)));
    let found = tx.touch_by_message_id(due[1].id, &mid_1).await.unwrap();
    assert_eq!(found.map(|t| t.id), Some(due[1].id));
    assert_eq!(
        tx.touch_by_message_id(due[1].id, &mid).await.unwrap(),
        None,
        "another touch of the same lead, with no Message-ID of its own"
    );
    let other = format!("<relentless.{}.000000000000@mail.example.com>", due[0].id);
    assert_eq!(
        tx.touch_by_message_id(due[0].id, &other).await.unwrap(),
        None
    );
}

/// A Twilio status callback finds its text by the message SID the provider answered; an
/// email's provider id (the SMTP Message-ID) is never looked up, and is not indexed (0015),
/// so the same string on an email finds nothing.
async fn a_text_is_found_by_its_providers_id_and_an_email_is_not(b: Backend) {
    let s = TestStore::new(b).await;
    let lead = lead_with_due_touches(&*s, "sid@example.com", 2).await;
    let mut tx = s.write().await.unwrap();
    let due = tx.claim_due(10, 2, "w", 1000).await.unwrap();
    assert_eq!(due.len(), 2);
    let mut text = sent(&due[0], TouchStatus::Sent, Channel::Text);
    text.provider_id = Some("SM0001".into());
    let mut email = sent(&due[1], TouchStatus::Sent, Channel::Email);
    email.provider_id = Some("<m.1@mail.example.com>".into());
    tx.touches_record(&[text, email], 20).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = s.read().await.unwrap();
    let found = tx.text_by_provider_id("SM0001").await.unwrap();
    assert_eq!(found.map(|t| (t.id, t.lead_id)), Some((due[0].id, lead)));
    assert_eq!(
        tx.text_by_provider_id("<m.1@mail.example.com>")
            .await
            .unwrap(),
        None,
        "an email is not found as a text"
    );
    assert_eq!(tx.text_by_provider_id("SM0002").await.unwrap(), None);
}

/// A lead's next touch on every path that reads a lead, and the batch read without it.
async fn next_touch_everywhere(s: &dyn Store, lead_id: i64) -> Vec<Option<Millis>> {
    let mut tx = s.read().await.unwrap();
    let one = tx.lead(lead_id).await.unwrap().unwrap().next_touch_at;
    let many = tx.leads_by_ids(&[lead_id]).await.unwrap()[0].next_touch_at;
    let page = tx
        .leads_page(&LeadFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .next_touch_at;
    let matched = tx
        .lead_match(None, Some("a@example.com"), None)
        .await
        .unwrap()
        .unwrap()
        .next_touch_at;
    let unplanned = tx.leads_by_ids_unplanned(&[lead_id]).await.unwrap();
    assert_eq!(unplanned.len(), 1);
    assert_eq!(unplanned[0].next_touch_at, None, "not worked out there");
    vec![one, many, page, matched]
}

/// Claims the only touch due at `now` and records it sent at `at`, as the dispatcher does.
async fn send_the_due_touch(s: &dyn Store, now: Millis, at: Millis) {
    let mut tx = s.write().await.unwrap();
    let c = tx.claim_due(now, 5, "w", 1000).await.unwrap();
    assert_eq!(c.len(), 1, "one touch due");
    tx.touches_record(&[sent(&c[0], TouchStatus::Sent, Channel::Email)], at)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// The dispatcher settles touches without writing their lead's row (a random page per fired
/// touch at 1,000,000 leads): what the row keeps is a lower bound that `leads_refresh_next`
/// writes, and a lead read back works its next touch out from it. A touch out for sending
/// while the bound is written still counts (it may come back); one held later is found later.
async fn a_leads_next_touch_is_worked_out_when_read_not_written_per_fired_touch(b: Backend) {
    let s = TestStore::new(b).await;
    let lead_id = lead_with_due_touches(&*s, "a@example.com", 3).await;
    let mut tx = s.write().await.unwrap();
    tx.leads_refresh_next(&[lead_id]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(next_touch_everywhere(&*s, lead_id).await, [Some(0); 4]);

    // The first touch is sent; nothing writes the lead's next touch.
    let mut tx = s.write().await.unwrap();
    let c = tx.claim_due(10, 1, "w", 1000).await.unwrap();
    tx.touches_record(&[sent(&c[0], TouchStatus::Sent, Channel::Email)], 5)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(next_touch_everywhere(&*s, lead_id).await, [Some(1); 4]);

    // The second is out for sending when another path writes the bound, then comes back.
    let mut tx = s.write().await.unwrap();
    let c = tx.claim_due(10, 1, "w", 1000).await.unwrap();
    assert_eq!(c[0].due_at, 1);
    tx.leads_refresh_next(&[lead_id]).await.unwrap();
    tx.touch_release(c[0].id).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(next_touch_everywhere(&*s, lead_id).await, [Some(1); 4]);

    // Held until 50 (outside the sending window): the third is next, then the held one.
    let mut tx = s.write().await.unwrap();
    let c = tx.claim_due(10, 1, "w", 1000).await.unwrap();
    tx.touch_reschedule(c[0].id, 50, "held").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(next_touch_everywhere(&*s, lead_id).await, [Some(2); 4]);
    send_the_due_touch(&*s, 10, 12).await;
    assert_eq!(next_touch_everywhere(&*s, lead_id).await, [Some(50); 4]);

    // None left.
    send_the_due_touch(&*s, 60, 61).await;
    assert_eq!(next_touch_everywhere(&*s, lead_id).await, [None; 4]);
}

/// `serve --demo` ages its leads by moving their history back: the next touch moves with
/// the touches (the stored bound with them), rather than pointing past the first of them.
async fn a_lead_aged_for_the_demo_keeps_its_next_touch(b: Backend) {
    let s = TestStore::new(b).await;
    let lead_id = lead_with_due_touches(&*s, "a@example.com", 0).await;
    let mut tx = s.write().await.unwrap();
    let touches: Vec<NewTouch> = [1_000, 2_000]
        .into_iter()
        .enumerate()
        .map(|(i, at)| NewTouch {
            step: i as i64,
            channel: Channel::Email,
            template: "t".into(),
            planned_at: at,
            due_at: at,
            reason: None,
        })
        .collect();
    tx.enrollment_insert(lead_id, "q", 1, 0, &touches)
        .await
        .unwrap();
    tx.leads_refresh_next(&[lead_id]).await.unwrap();
    tx.shift_lead_back(lead_id, 600).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(next_touch_everywhere(&*s, lead_id).await, [Some(400); 4]);
}
