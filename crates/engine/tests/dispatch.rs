//! At most once (SPEC §5.4): racing dispatchers on one database never send a touch twice,
//! and a dispatcher that dies between claim and send leaves `uncertain`, never a resend.

use relentless_engine::channels::outbox::Outbox;
use relentless_engine::dispatch::Dispatcher;
use relentless_engine::leads::{LeadInput, Origin};
use relentless_engine::setup::InitInput;
use relentless_engine::{Config, Engine, now_ms};
use relentless_store::Store;
use relentless_store::sqlite::SqliteStore;
use std::collections::HashSet;
use std::sync::Arc;

/// Two engines on the same file, as two processes would be.
async fn engines(dir: &tempfile::TempDir, lease_ms: i64) -> (Engine, Engine) {
    let url = format!("sqlite://{}/race.db", dir.path().display());
    let mk = || async {
        let s = Arc::new(SqliteStore::open(&url).await.unwrap());
        s.migrate().await.unwrap();
        Engine::new(
            s,
            Arc::new(Outbox),
            Config {
                batch: 7,
                lease_ms,
                ..Config::default()
            },
        )
    };
    let a = mk().await;
    let b = mk().await;
    a.init(InitInput {
        admin_email: "admin@example.com".into(),
        admin_password: None,
        team_name: None,
        address: None,
    })
    .await
    .unwrap();
    (a, b)
}

/// Leads in a plan of emails due now (email is never held by the window, so the test does not
/// depend on the time of day).
async fn due_emails(e: &Engine, leads: usize) -> usize {
    let mut tx = e.store.write().await.unwrap();
    tx.plan_save(&relentless_store::PlanRow {
        slug: "burst".into(),
        name: "Burst".into(),
        version: 1,
        source: "slug='burst'\nname='Burst'\n[[steps]]\nafter='+0m'\nchannel='email'\ntemplate='r21-d0-email'\n[[steps]]\nafter='+0m'\nchannel='email'\ntemplate='r21-d2-email'\n".into(),
        updated_at: now_ms(),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_dispatchers_send_each_touch_once() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = engines(&dir, 60_000).await;
    let total = due_emails(&a, 150).await;
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
            }
            n
        })
    };
    let (x, y) = (run(a.clone()), run(b.clone()));
    let (x, y) = (x.await.unwrap(), y.await.unwrap());
    assert_eq!(
        x + y,
        total,
        "every touch sent exactly once between them ({x} + {y})"
    );
    assert!(x > 0 && y > 0, "both dispatchers took part ({x}, {y})");
    let ids = outbox_touch_ids(&a).await;
    assert_eq!(ids.len(), total);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        total,
        "no touch in the outbox twice"
    );
}

#[tokio::test]
async fn killed_between_claim_and_send_becomes_uncertain_not_resent() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = engines(&dir, 200).await;
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
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
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

#[tokio::test]
async fn a_touch_still_within_its_lease_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = engines(&dir, 60_000).await;
    due_emails(&a, 1).await;
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
