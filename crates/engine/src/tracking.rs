//! Tracking hits (opens, clicks, video plays), written in groups (see [`crate::groups`]):
//! each group in one transaction of a few set-based statements. On SQLite's single writer,
//! one transaction per open capped the rate at about 2,000 opens a second.

use crate::groups::{Groups, Written};
use crate::leads::{Effects, Interest, engagements};
use crate::{Engine, Error, Result, now_ms, team_ctx};
use relentless_core::engagement::{Hit, HitKind, is_machine};
use relentless_store::*;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) type HitGroups = Groups<HitRequest, Option<String>>;

pub(crate) fn hit_groups() -> HitGroups {
    Groups::new(
        |engine: Engine, hits: Arc<Vec<HitRequest>>| -> Written<Option<String>> {
            Box::pin(async move { engine.hits_in_one_tx(&hits).await })
        },
    )
}

pub(crate) struct HitRequest {
    token: String,
    kind: HitKind,
    link: Option<usize>,
    user_agent: String,
}

impl Engine {
    /// Records a hit and answers once it is committed: with the stored link `link` for a click.
    pub(crate) async fn track(
        &self,
        token: &str,
        kind: HitKind,
        link: Option<usize>,
        user_agent: &str,
    ) -> Result<Option<String>> {
        let hit = HitRequest {
            token: token.to_string(),
            kind,
            link,
            user_agent: user_agent.to_string(),
        };
        self.hits.submit(self, hit).await
    }

    /// Writes a group of hits in one transaction; the answer of each (an unknown token or link
    /// is `NotFound` and changes nothing), or the error that rolled the whole group back.
    async fn hits_in_one_tx(&self, hits: &[HitRequest]) -> Result<Vec<Result<Option<String>>>> {
        let now = now_ms();
        let mut tx = self.store.write().await?;
        let mut tokens: Vec<String> = hits.iter().map(|h| h.token.clone()).collect();
        tokens.sort_unstable();
        tokens.dedup();
        let known: HashMap<String, Tracking> = tx
            .trackings(&tokens)
            .await?
            .into_iter()
            .map(|t| (t.token.clone(), t))
            .collect();
        let mut answers = Vec::with_capacity(hits.len());
        let mut valid = Vec::with_capacity(hits.len());
        for h in hits {
            let Some(t) = known.get(&h.token) else {
                answers.push(Err(Error::NotFound));
                continue;
            };
            let url = match h.link {
                Some(n) => match t.links.get(n) {
                    Some(u) => Some(u.clone()),
                    None => {
                        answers.push(Err(Error::NotFound));
                        continue;
                    }
                },
                None => None,
            };
            answers.push(Ok(url));
            valid.push((h, t));
        }
        let mut lead_ids: Vec<i64> = valid.iter().map(|(_, t)| t.lead_id).collect();
        lead_ids.sort_unstable();
        lead_ids.dedup();
        let mut leads = crate::leads::leads_map(tx.as_mut(), &lead_ids).await?;
        let mut activities = Vec::with_capacity(valid.len());
        let mut shown = Vec::new();
        for (h, t) in valid {
            let others = match h.link {
                Some(n) => tx.click_record(&h.token, n as i64, now, 5_000).await? as usize,
                None => 0,
            };
            let Some(lead) = leads.get(&t.lead_id) else {
                continue; // erased since the message went out
            };
            let video = t.kind == "video";
            let hit = Hit {
                user_agent: &h.user_agent,
                seconds_since_sent: (now - t.created_at) / 1000,
                kind: h.kind,
                other_links_clicked_within_5s: others,
            };
            let (label, verb) = match (video, h.kind) {
                (true, _) => ("video_view", "watched your video"),
                (false, HitKind::Click) => ("click", "clicked a link in your email"),
                (false, HitKind::Open) => ("open", "opened your email"),
            };
            let (kind, detail) = match is_machine(&hit).filter(|_| !video) {
                Some(why) => (
                    format!("{label}_machine"),
                    format!(
                        "{} by a machine ({why}); not counted as engagement",
                        crate::capital(label)
                    ),
                ),
                None => {
                    shown.push(Interest {
                        lead_id: lead.id,
                        kind: label.into(),
                        detail: verb.into(),
                    });
                    (label.to_string(), format!("{} {verb}", lead.full_name()))
                }
            };
            activities.push(NewActivity {
                lead_id: lead.id,
                kind,
                detail,
                data: None,
                actor_id: None,
                at: now,
            });
        }
        tx.activities_insert(&activities).await?;
        let mut fx = Effects::default();
        if !shown.is_empty() {
            let team = team_ctx(tx.as_mut()).await?;
            engagements(tx.as_mut(), &team, &mut leads, &shown, now, &mut fx).await?;
        }
        self.config.fault_point("tracking:before_commit");
        tx.commit().await?;
        self.apply_effects(fx);
        for s in &shown {
            metrics::counter!("relentless_engagements_total", "kind" => s.kind.clone())
                .increment(1);
        }
        Ok(answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leads::{LeadInput, Origin};
    use crate::{Config, FaultHook};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

    type Queued = (HitRequest, oneshot::Sender<Result<Option<String>>>);

    const PHONE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";

    /// An engine on a fresh SQLite file whose `tracking:before_commit` panics `failures` times.
    async fn engine(dir: &tempfile::TempDir, failures: usize) -> Engine {
        let left = Arc::new(AtomicUsize::new(failures));
        let config = Config {
            fault_hook: Some(FaultHook(Arc::new(move |point| {
                if point == "tracking:before_commit"
                    && left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                {
                    panic!("injected fault at {point}");
                }
            }))),
            ..Config::default()
        };
        crate::test_engine(dir, config).await
    }

    /// A lead (assigned to the admin) with an email tracking token.
    async fn tracked_lead(e: &Engine, email: &str, phone: &str) -> (i64, String) {
        let lead = e
            .create_lead(
                None,
                LeadInput {
                    email: Some(Some(email.into())),
                    phone: Some(Some(phone.into())),
                    ..Default::default()
                },
                Origin::Import,
                Some("nurture"),
            )
            .await
            .unwrap()
            .lead;
        let token = crate::random_token();
        let mut tx = e.store.write().await.unwrap();
        tx.tracking_insert(&Tracking {
            token: token.clone(),
            kind: "email".into(),
            lead_id: lead.id,
            touch_id: None,
            links: vec!["https://example.com/listing".into()],
            video_id: None,
            created_at: now_ms() - 3_600_000,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        (lead.id, token)
    }

    fn queued(
        token: &str,
        link: Option<usize>,
    ) -> (Queued, oneshot::Receiver<Result<Option<String>>>) {
        let (reply, answer) = oneshot::channel();
        let hit = HitRequest {
            token: token.into(),
            kind: if link.is_some() {
                HitKind::Click
            } else {
                HitKind::Open
            },
            link,
            user_agent: PHONE_UA.into(),
        };
        ((hit, reply), answer)
    }

    async fn count(e: &Engine, lead: i64, kind: &str) -> usize {
        let mut tx = e.store.read().await.unwrap();
        tx.timeline(lead, None, 500)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.kind == kind)
            .count()
    }

    /// A group is written whole: each hit answered with its own result (an unknown token or link
    /// is not found and changes nothing), each open counted, one call task per lead.
    #[tokio::test]
    async fn a_group_of_hits_is_recorded_hit_by_hit_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, 0).await;
        let (a, ta) = tracked_lead(&e, "a@example.com", "+15125550150").await;
        let (b, tb) = tracked_lead(&e, "b@example.com", "+15125550151").await;
        let mut group = vec![];
        let mut answers = vec![];
        for (token, link) in [
            (ta.as_str(), None),
            (tb.as_str(), None),
            (ta.as_str(), None),
            ("0123456789abcdef0123456789abcdef", None),
            (ta.as_str(), Some(0)),
            (tb.as_str(), Some(7)),
        ] {
            let (p, r) = queued(token, link);
            group.push(p);
            answers.push(r);
        }
        e.hits.write_group(&e, group).await;
        let mut got = vec![];
        for r in answers {
            got.push(match r.await.unwrap() {
                Ok(url) => Ok(url),
                Err(Error::NotFound) => Err("not found"),
                Err(other) => panic!("{other}"),
            });
        }
        assert_eq!(
            got,
            [
                Ok(None),
                Ok(None),
                Ok(None),
                Err("not found"),
                Ok(Some("https://example.com/listing".to_string())),
                Err("not found"),
            ]
        );
        let mut tx = e.store.read().await.unwrap();
        for (lead, opens, clicks) in [(a, 2, 1), (b, 1, 0)] {
            let l = tx.lead(lead).await.unwrap().unwrap();
            assert_eq!(l.level, relentless_core::types::Level::Hot);
            let calls = tx
                .tasks(&TaskFilter {
                    lead_id: Some(lead),
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .filter(|t| t.touch_id.is_none())
                .count();
            assert_eq!(calls, 1, "one call-now task per lead, however many hits");
            let notes = tx
                .notifications_after(l.assigned_to.unwrap(), 0, 100)
                .await
                .unwrap()
                .into_iter()
                .filter(|n| n.lead_id == Some(lead) && n.event == "engagement")
                .count();
            assert_eq!(notes, opens + clicks, "the agent hears of every hit");
        }
        drop(tx);
        assert_eq!(count(&e, a, "open").await, 2);
        assert_eq!(count(&e, a, "click").await, 1);
        assert_eq!(count(&e, b, "open").await, 1);
    }

    /// A group that fails before its commit leaves nothing of itself behind, and its hits are
    /// then recorded one by one: each counted once.
    #[tokio::test]
    async fn a_group_that_fails_is_rolled_back_and_each_hit_recorded_alone() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, 1).await;
        let (a, ta) = tracked_lead(&e, "a@example.com", "+15125550150").await;
        let (b, tb) = tracked_lead(&e, "b@example.com", "+15125550151").await;
        let mut group = vec![];
        let mut answers = vec![];
        for token in [&ta, &tb, &ta] {
            let (p, r) = queued(token, None);
            group.push(p);
            answers.push(r);
        }
        e.hits.write_group(&e, group).await;
        for r in answers {
            assert!(r.await.unwrap().is_ok(), "each hit recorded on its own");
        }
        assert_eq!(count(&e, a, "open").await, 2);
        assert_eq!(count(&e, b, "open").await, 1);
        assert_eq!(
            count(&e, b, "click").await,
            0,
            "a link out of range counts nothing"
        );
    }
}
