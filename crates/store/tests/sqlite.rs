//! The SQLite backend against a real file: migrations, constraints, search, claims, and the
//! query plans that keep the hot paths off full-table scans at a million leads.

use relentless_core::types::*;
use relentless_store::sqlite::SqliteStore;
use relentless_store::*;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&format!("sqlite://{}/s.db", dir.path().display()))
        .await
        .unwrap();
    s.migrate().await.unwrap();
    s.migrate().await.unwrap(); // idempotent
    (dir, s)
}

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

#[tokio::test]
async fn leads_round_trip_and_match_by_email_phone_or_external_id() {
    let (_d, s) = store().await;
    let mut tx = s.write().await.unwrap();
    let mut l = lead("José", "Núñez", "Jose@Example.com", "+15125550100");
    l.external_id = Some("crm-1".into());
    let id = tx.lead_insert(&l).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.read().await.unwrap();
    let got = tx.lead(id).await.unwrap().unwrap();
    assert_eq!(
        (got.first_name.as_str(), got.tags.clone()),
        ("José", vec!["a".to_string()])
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
}

#[tokio::test]
async fn a_duplicate_external_id_is_a_conflict_and_a_rolled_back_tx_leaves_nothing() {
    let (_d, s) = store().await;
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

#[tokio::test]
async fn names_are_found_through_full_text_search_with_prefixes_and_accents() {
    let (_d, s) = store().await;
    let mut tx = s.write().await.unwrap();
    for (f, l) in [
        ("José", "Núñez"),
        ("Joseph", "Smith"),
        ("Ann", "Joseph"),
        ("Zoe", "Quinn"),
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
    assert_eq!(tx.leads_page(&find("zoe quinn")).await.unwrap().len(), 1);
    assert_eq!(
        tx.leads_page(&find("\"); DROP TABLE leads; --"))
            .await
            .unwrap()
            .len(),
        0,
        "hostile input is just words"
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

/// The plan SQLite picks for a query, as text.
async fn plan(s: &SqliteStore, sql: &str) -> String {
    let url = s.url();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
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
async fn hot_paths_use_indexes_not_table_scans() {
    let (_d, s) = store().await;
    let due = plan(&s, "SELECT id FROM touches WHERE status = 'scheduled' AND task_id IS NULL AND due_at <= 5 ORDER BY due_at LIMIT 500").await;
    assert!(due.contains("touches_due"), "due-touch query: {due}");
    let first_page = plan(
        &s,
        "SELECT id FROM leads l WHERE 1 = 1 ORDER BY l.id DESC LIMIT 50",
    )
    .await;
    assert!(
        !first_page.contains("TEMP B-TREE"),
        "leads list first page walks the primary key: {first_page}"
    );
    let agent_page = plan(
        &s,
        "SELECT id FROM leads l WHERE l.assigned_to = 3 AND l.id < 100 ORDER BY l.id DESC LIMIT 50",
    )
    .await;
    assert!(agent_page.contains("leads_assigned"), "{agent_page}");
    let email = plan(&s, "SELECT id FROM leads WHERE email_key = 'a@example.com'").await;
    assert!(email.contains("leads_email"), "{email}");
    let phone = plan(&s, "SELECT id FROM leads WHERE phone = '+15125550100'").await;
    assert!(phone.contains("leads_phone"), "{phone}");
    let name = plan(&s, "SELECT l.id FROM leads l JOIN leads_fts ON leads_fts.rowid = l.id AND leads_fts MATCH 'jo*' ORDER BY l.id DESC LIMIT 50").await;
    assert!(
        name.contains("VIRTUAL TABLE INDEX"),
        "name search goes through FTS5: {name}"
    );
}

#[tokio::test]
async fn claims_are_exclusive_and_settings_are_on() {
    let (_d, s) = store().await;
    let mut tx = s.write().await.unwrap();
    tx.team_save(
        &Team {
            name: "T".into(),
            country: "US".into(),
            timezone: "UTC".into(),
            sending_window: "{}".into(),
            state_windows: "{}".into(),
            holidays: "[]".into(),
            postal_address: String::new(),
            support_contact: String::new(),
            escalation_minutes: 60,
        },
        0,
    )
    .await
    .unwrap();
    let id = tx
        .lead_insert(&lead("A", "B", "a@example.com", "+15125550104"))
        .await
        .unwrap();
    let touches: Vec<NewTouch> = (0..5)
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
    let mut tx = s.write().await.unwrap();
    let a = tx.claim_due(10, 3, "a", 1000).await.unwrap();
    let b = tx.claim_due(10, 3, "b", 1000).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((a.len(), b.len()), (3, 2));
    assert!(a.iter().all(|t| !b.iter().any(|u| u.id == t.id)));
    assert!(a.iter().chain(&b).all(|t| t.status == TouchStatus::Sending));
    let mut tx = s.write().await.unwrap();
    assert!(tx.claim_due(10, 3, "c", 1000).await.unwrap().is_empty());
    assert!(
        tx.touches_expire_sending(999).await.unwrap().is_empty(),
        "leases still running"
    );
    assert_eq!(tx.touches_expire_sending(1001).await.unwrap().len(), 5);
    tx.commit().await.unwrap();
    let pool = sqlx::SqlitePool::connect(&s.url()).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    // Foreign keys are enforced on the store's own connections.
    let mut tx = s.write().await.unwrap();
    assert!(
        tx.enrollment_insert(9999, "p", 1, 0, &[]).await.is_err(),
        "an enrollment for a missing lead is refused"
    );
}

#[tokio::test]
async fn backup_is_a_consistent_copy() {
    let (d, s) = store().await;
    let mut tx = s.write().await.unwrap();
    tx.lead_insert(&lead("A", "B", "a@example.com", "+15125550105"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let path = d.path().join("copy.db");
    s.backup(path.to_str().unwrap()).await.unwrap();
    let copy = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
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
}
