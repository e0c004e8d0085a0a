//! The scheduler: claim → send → record, at most once (SPEC §5.4).
//!
//! 1. One transaction claims a batch of due touches and resolves each one (preferred channel,
//!    fallbacks, opt-outs, the sending window). What stays in the process (tasks, skips,
//!    holds, the built-in outbox) is settled in it; what goes to an outside provider is
//!    marked `sending` under this worker's lease, and the transaction commits.
//! 2. Those messages are handed to their channel, outside any transaction, leads side by side
//!    (at most [`Config::send_concurrency`](crate::Config) at once), one lead's messages in
//!    order. A message not started within half the lease is not started: it goes back to
//!    `scheduled` and the next batch decides it again. Until their outcomes are recorded,
//!    the worker renews their lease (every third of it), however long a provider takes.
//! 3. One transaction records every outcome, the outbox copies, tasks, timeline entries and
//!    notifications, and completes finished enrollments.
//!
//! A process killed between 1 and 3 leaves touches `sending`; when their lease runs out they
//! become `uncertain` and are shown, never resent. The loop sleeps until the next due instant
//! or until [`Engine::wake`] is rung (a touch was created), not on a fixed poll.

use crate::channels::{Message, SendError, Sent};
use crate::leads::{
    Effects, lead_tz, leads_map, new_notification, notify_user, settle_enrollments, stop_all,
    store_notifications,
};
use crate::messages::tracked_email;
use crate::{Engine, Result, TeamCtx, now_ms, team_ctx, ts};
use futures::StreamExt;
use relentless_core::schedule::{is_open, next_open};
use relentless_core::template::{self, AgentFields, LeadFields, MergeContext, TeamFields};
use relentless_core::types::*;
use relentless_store::*;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

/// What to do with one claimed touch.
#[allow(clippy::large_enum_variant)] // one per claimed touch, short-lived: no need to box
enum Action {
    Send {
        msg: Message,
        channel: Channel,
        tracking: Option<Tracking>,
    },
    Task {
        task: NewTask,
        channel: Channel,
    },
    Skip(String),
    Fail(String),
    Hold {
        due: Millis,
        reason: String,
    },
}

pub struct Dispatcher {
    engine: Engine,
    worker: String,
    last_escalation_check: Millis,
    /// Set once the current batch's claiming transaction has committed (see [`Dispatcher::tick`]).
    claim_committed: bool,
    /// The next batch, decided while the last one was written (SQLite).
    ahead: Option<Ahead>,
    /// How many batches were taken as decided ahead.
    ahead_used: u64,
}

/// How old a batch decided ahead may be when taken: its decisions (the sending window above
/// all) were made at its `decided_at`. A batch written as it was decided takes ~50 ms; one
/// that sent to a provider takes seconds, and the next is then read again.
const AHEAD_MAX_AGE_MS: Millis = 1_000;

/// A batch read and decided, not yet written.
struct Decided {
    /// The instant it was decided as of.
    decided_at: Millis,
    team: TeamCtx,
    claimed: Vec<Touch>,
    leads: HashMap<i64, Lead>,
    /// What to do with each claimed touch (its index in `claimed`).
    actions: Vec<(usize, Action)>,
}

/// A batch decided on a reader while the one before was written: taken as it is only if the
/// database's [`WriteMark`] is `valid_at` when the next batch holds the write lock, i.e.
/// nothing but that batch's own commits came in between.
struct Ahead {
    decided: Decided,
    valid_at: WriteMark,
}

/// Counts of one batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub claimed: usize,
    pub sent: usize,
    pub tasks: usize,
    pub skipped: usize,
    pub uncertain: usize,
    /// Messages not started before the send deadline (half the lease), `scheduled` again.
    pub released: usize,
}

fn blocked_reason(lead: &Lead, ch: Channel) -> Option<&'static str> {
    match ch {
        Channel::Text if lead.phone.is_none() => Some("no phone number"),
        Channel::Text if lead.sms_opt_out => Some("the lead opted out of texts"),
        Channel::Text if lead.phone_bad => Some("the phone number is marked bad"),
        Channel::Email if lead.email.is_none() => Some("no email address"),
        Channel::Email if lead.email_opt_out => Some("the lead opted out of emails"),
        Channel::Email if lead.email_bad => Some("the email address is marked bad"),
        Channel::Call if lead.phone.is_none() => Some("no phone number"),
        Channel::Call if lead.do_not_call => Some("the lead is on do-not-call"),
        Channel::Call if lead.phone_bad => Some("the phone number is marked bad"),
        Channel::Video if !lead.can_text() && !lead.can_email() => {
            Some("the lead cannot be texted or emailed a video")
        }
        _ => None,
    }
}

/// The concrete channel for a `preferred` step: the lead's preference, else text, email, call.
fn resolve_preferred(lead: &Lead) -> Channel {
    if let Some(p) = lead.preferred()
        && blocked_reason(lead, p).is_none()
    {
        return p;
    }
    [Channel::Text, Channel::Email, Channel::Call]
        .into_iter()
        .find(|c| blocked_reason(lead, *c).is_none())
        .unwrap_or(Channel::Text)
}

pub fn merge_context(team: &TeamCtx, lead: &Lead, agent: Option<&User>) -> MergeContext {
    let agent_name = agent
        .map(|a| a.name.clone())
        .unwrap_or_else(|| team.team.name.clone());
    MergeContext {
        lead: LeadFields {
            first_name: lead.first_name.clone(),
            last_name: lead.last_name.clone(),
            full_name: lead.full_name(),
            email: lead.email.clone().unwrap_or_default(),
            phone: lead.phone.clone().unwrap_or_default(),
            source: lead.source.clone(),
            property_address: lead.property_address.clone(),
        },
        agent: AgentFields {
            first_name: agent_name
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string(),
            name: agent_name,
            phone: agent.and_then(|a| a.phone.clone()).unwrap_or_default(),
            email: agent.map(|a| a.email.clone()).unwrap_or_default(),
        },
        team: TeamFields {
            name: team.team.name.clone(),
            address: team.team.postal_address.clone(),
        },
    }
}

impl Dispatcher {
    pub fn new(engine: Engine) -> Dispatcher {
        let worker = format!("{}-{}", std::process::id(), rand::random::<u32>());
        Dispatcher {
            engine,
            worker,
            last_escalation_check: 0,
            claim_committed: false,
            ahead: None,
            ahead_used: 0,
        }
    }

    /// How many batches this dispatcher took as decided ahead, on a reader, while the batch
    /// before was written (SQLite, under a backlog).
    pub fn batches_decided_ahead(&self) -> u64 {
        self.ahead_used
    }

    /// Runs until `shutdown` resolves. Shutdown is checked between batches only: a batch in
    /// flight (claimed, being sent) is always finished and recorded before returning, so a
    /// SIGTERM leaves no touch `sending`. Also listens for other processes' wake-ups
    /// ([`Engine::start_listening`]) where the store has any.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        // Poll it once now: a signal handler inside is installed before the first batch.
        if poll_once(&mut shutdown).await {
            return;
        }
        if let Err(e) = self.engine.start_listening().await {
            tracing::warn!(error = %e, "cannot listen for other processes; polling only");
        }
        loop {
            let (full, failed) = match self.tick().await {
                Ok(r) => (r.claimed as i64 >= self.engine.config.batch, false),
                Err(e) => {
                    tracing::error!(error = %e, "dispatch failed; retrying shortly");
                    (false, true)
                }
            };
            if full {
                // More is due at once: straight on, unless asked to stop.
                if poll_once(&mut shutdown).await {
                    break;
                }
                continue;
            }
            let wait = if failed {
                Duration::from_secs(1)
            } else {
                self.until_next_due().await
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.engine.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn until_next_due(&self) -> Duration {
        let now = now_ms();
        // Also wake for lease expiry and escalation checks at least every 30 s (every lease,
        // when leases are shorter: a dead worker's touches are declared uncertain on time).
        let cap = self.engine.config.lease_ms.clamp(250, 30_000);
        let next = async {
            let mut tx = self.engine.store.read().await?;
            Ok::<_, crate::Error>(tx.next_due_at().await?)
        }
        .await
        .ok()
        .flatten();
        let ms = next.map(|n| (n - now).clamp(0, cap)).unwrap_or(cap);
        Duration::from_millis(ms as u64 + if ms > 0 { 5 } else { 0 })
    }

    /// One batch: expire stale leases, claim, send, record. Tried again when the database broke
    /// a deadlock (PostgreSQL, workers whose batches share leads) before the claim committed:
    /// that transaction rolled back whole, so its touches are due again and nothing of it went
    /// out. A failure after it (recording what went to a provider, itself retried) is
    /// returned: those touches are out and stay `sending` until their lease makes them
    /// `uncertain`; claiming afresh would hide that.
    pub async fn tick(&mut self) -> Result<BatchReport> {
        let mut tries = 0;
        loop {
            self.claim_committed = false;
            match self.tick_once().await {
                Err(crate::Error::Store(StoreError::Busy))
                    if tries < 3 && !self.claim_committed =>
                {
                    tries += 1;
                    tracing::warn!(tries, "a dispatch batch hit a busy database; retrying");
                    tokio::time::sleep(Duration::from_millis(20 * tries)).await;
                }
                r => return r,
            }
        }
    }

    async fn tick_once(&mut self) -> Result<BatchReport> {
        let e = &self.engine;
        let mut report = BatchReport::default();

        // Before claiming: a failure here must not strand claimed touches in `sending`.
        let now = now_ms();
        if now - self.last_escalation_check >= 60_000 {
            self.last_escalation_check = now;
            self.escalate(now).await?;
            self.engine.escalate_ponds(now).await?;
            let mut tx = self.engine.store.write().await?;
            tx.rate_prune(now - 3_600_000).await?;
            tx.commit().await?;
        }
        // The lease and the send deadline run from here.
        let now = now_ms();
        let started = std::time::Instant::now();

        // 1. claim (and declare touches left `sending` by a dead process uncertain), read what
        // deciding needs and store the tracking tokens, all in one write transaction: one
        // commit instead of three, the reads go through the writer's warm page cache, and a
        // failure before the commit puts the claimed touches back instead of stranding them
        // in `sending` (they would become `uncertain` when the lease runs out).
        let mut tx = e.store.write().await?;
        let mark = tx.write_mark().await?;
        let expired = tx.touches_expire_sending(now).await?;
        if !expired.is_empty() {
            let acts: Vec<NewActivity> = expired
                .iter()
                .map(|t| NewActivity {
                    lead_id: t.lead_id,
                    kind: "touch_uncertain".into(),
                    detail: format!("{} step {} of {}: it may or may not have been sent (the sender stopped mid-send); not resent", t.channel, t.step + 1, t.plan),
                    data: Some(serde_json::json!({"touch_id": t.id})),
                    actor_id: None,
                    at: now,
                })
                .collect();
            tx.activities_insert(&acts).await?;
        }
        report.uncertain = expired.len();
        // With one writer (SQLite) this transaction is the only claimer until it commits: the
        // due touches are read, and only those handed to an outside provider are marked
        // `sending` below. Where workers claim side by side (PostgreSQL) they are marked now.
        // A batch decided ahead on a reader (below) is taken as it is when nothing but this
        // dispatcher's own batch has committed since its snapshot: then it is what reading
        // now would decide.
        let single_writer = e.store.single_writer();
        let lease_until = now + e.config.lease_ms;
        let ahead = self.ahead.take().filter(|a| {
            mark.is_some_and(|m| m == a.valid_at) && now - a.decided.decided_at < AHEAD_MAX_AGE_MS
        });
        let decided = match ahead {
            Some(a) => {
                self.ahead_used += 1;
                a.decided
            }
            None => {
                let claimed = if single_writer {
                    tx.touches_due(now, e.config.batch, &[]).await?
                } else {
                    tx.claim_due(now, e.config.batch, &self.worker, lease_until)
                        .await?
                };
                if claimed.is_empty() {
                    tx.commit().await?;
                    return Ok(report);
                }
                decide_batch(tx.as_mut(), claimed, now, &e.config).await?
            }
        };
        report.claimed = decided.claimed.len();

        // The next batch, decided on a reader while this one is written (SQLite, a full
        // batch: more is due at once). Its snapshot starts after `mark` was read under this
        // transaction's write lock, so it holds everything committed before; it leaves out
        // this batch's leads (their rows change here). `valid_at` is the mark once this
        // batch's own commits are in: anything else committed meanwhile and it is dropped.
        let next = match mark {
            Some(m) if single_writer && report.claimed as i64 >= e.config.batch => {
                let skip: HashSet<i64> = decided.leads.keys().copied().collect();
                let writing: Vec<i64> = decided.claimed.iter().map(|t| t.id).collect();
                Some((m, skip, writing))
            }
            _ => None,
        };
        // A task of its own, so that its reading and deciding (CPU on the async side) run on
        // another thread than the one issuing this batch's writes: awaited side by side on
        // one thread they took turns, and gained nothing (BENCHMARKS.md). None at all when
        // there is no next batch to decide (PostgreSQL, a batch that was not full).
        let decide_next = next.as_ref().map(|(_, skip, writing)| {
            let skip = skip.clone();
            let mut passed = writing.clone();
            let engine = e.clone();
            e.spawn_beside_writer(async move {
                let e = engine;
                let started = std::time::Instant::now();
                let ahead: Result<Option<Decided>> = async {
                    let mut rtx = e.store.read().await?;
                    let now = now_ms();
                    // The touches due next, passing over (unread) those being written and
                    // leaving out this batch's leads, until a full batch or none left.
                    let batch = e.config.batch as usize;
                    let mut claimed: Vec<Touch> = Vec::with_capacity(batch);
                    loop {
                        let want = batch - claimed.len();
                        let due = rtx.touches_due(now, want as i64, &passed).await?;
                        let more = due.len() == want;
                        for t in due {
                            passed.push(t.id);
                            if !skip.contains(&t.lead_id) {
                                claimed.push(t);
                            }
                        }
                        if claimed.len() >= batch || !more {
                            break;
                        }
                    }
                    if claimed.is_empty() {
                        return Ok(None);
                    }
                    Ok(Some(
                        decide_batch(rtx.as_mut(), claimed, now, &e.config).await?,
                    ))
                }
                .await;
                time_part("decide_ahead", started);
                // Only a head start: on failure the next batch reads for itself.
                ahead.ok().flatten()
            })
        });
        let decide_next = async move { decide_next?.await.ok().flatten() };
        let Decided {
            team,
            claimed,
            leads,
            actions,
            ..
        } = decided;
        let write_this = self.write_claimed(
            tx,
            &team,
            &claimed,
            &leads,
            actions,
            now,
            lease_until,
            &mut report,
        );
        let (written, ahead) = tokio::join!(write_this, decide_next);
        let remote = written?;
        self.claim_committed = true;
        // Kept only once every commit of this batch is in (here, or after recording what
        // went to a provider): a batch that fails after its claim leaves none, since the
        // count of its own commits would be wrong.
        let ahead = match (next, ahead) {
            // (A batch with messages out long enough for a lease renewal commits more than
            // twice: then the batch decided ahead does not match and is read again.)
            (Some((m, _, _)), Some(ahead)) => {
                let own = if remote.is_empty() { 1 } else { 2 };
                Some(Ahead {
                    decided: ahead,
                    valid_at: m.after_own(own),
                })
            }
            _ => None,
        };
        let remote: Vec<(&Touch, &Lead, Action)> = remote
            .into_iter()
            .filter_map(|(i, a)| {
                let t = &claimed[i];
                Some((t, leads.get(&t.lead_id)?, a))
            })
            .collect();
        if remote.is_empty() {
            self.ahead = ahead;
            return Ok(report);
        }

        // 2. send. A provider's API takes a tenth of a second or more per message: one at a
        // time, a batch of 500 texts would take a minute or more and outlive its lease, so
        // leads are served side by side, at most `send_concurrency` at once, and a slow
        // answer holds up only its own lead. One lead's messages (a backlog may hold two of
        // its steps) go out one after the other, in batch order, so they arrive in order.
        // Outcomes are noted in batch order (a lead's attempts are numbered in that order).
        // A message not started within half the lease (slow provider answers ahead of it) is
        // not started at all: it was decided at the claim, and a lead who answered or opted
        // out since must not get it; it goes back to `scheduled` and the next batch decides
        // it again. (Half: a message is never started late in its lease, when a renewal that
        // failed could let it run out before the answer.)
        // (Loops of async blocks rather than `iter().map(|…| async …)`: a closure over
        // borrowed items makes the dispatcher's future fail to prove `Send`.)
        let send_by = started + Duration::from_millis((e.config.lease_ms / 2).max(0) as u64);
        // While messages are with a provider, and until their outcomes are recorded, this
        // worker renews their lease every third of it (counted from the claim): an answer may
        // take longer than the lease (SMTP waits up to 5 minutes for its final reply), and
        // another worker must not declare this live batch `uncertain` (its never-started
        // messages too, which would then never go out). A worker that dies stops renewing,
        // and its touches become `uncertain` a lease later, as before.
        let ids: Vec<i64> = remote.iter().map(|(t, _, _)| t.id).collect();
        let renew = async {
            let every = Duration::from_millis((e.config.lease_ms / 3).max(10) as u64);
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::from_std(started) + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let renewed = e
                    .store
                    .renew_lease(&ids, &self.worker, now_ms() + e.config.lease_ms)
                    .await;
                // (How many rows it renewed says little: rows the record holds are skipped.)
                if let Err(err) = renewed {
                    tracing::warn!(
                        %err,
                        "could not renew the lease of messages being sent; trying again"
                    );
                }
            }
        };
        let send_and_record = async {
            let sent = self.send_remote(remote, send_by, now, &mut report).await;
            let fx = self.record_sent(&sent, &team, &leads, now).await?;
            Ok::<_, crate::Error>((sent, fx))
        };
        // `renew` never ends: this waits for the sends and their record.
        let (sent, fx) = tokio::select! {
            r = send_and_record => r?,
            _ = renew => unreachable!("the renewal loop never ends"),
        };
        sent.count_sent();
        e.apply_effects(fx);
        self.ahead = ahead;
        Ok(report)
    }

    /// Hands the batch's messages for outside providers to their channel (leads side by side,
    /// one lead's messages in order, none started after `send_by`) and notes the outcomes;
    /// those not started are noted as released.
    async fn send_remote(
        &self,
        remote: Vec<(&Touch, &Lead, Action)>,
        send_by: std::time::Instant,
        now: Millis,
        report: &mut BatchReport,
    ) -> Outcomes {
        let e = &self.engine;
        let channel = &e.channel;
        let mut per_lead: Vec<Vec<(usize, &Message)>> = Vec::new();
        let mut lead_slot: HashMap<i64, usize> = HashMap::new();
        for (i, (t, _, action)) in remote.iter().enumerate() {
            if let Action::Send { msg, .. } = action {
                let k = *lead_slot.entry(t.lead_id).or_insert_with(|| {
                    per_lead.push(Vec::new());
                    per_lead.len() - 1
                });
                per_lead[k].push((i, msg));
            }
        }
        // A channel that limits its messages in flight (SMTP sessions) would queue ours inside
        // its `send`, past the deadline check: room is waited for here, before the check.
        let room: HashMap<Channel, tokio::sync::Semaphore> = [Channel::Text, Channel::Email]
            .into_iter()
            .filter_map(|k| Some((k, tokio::sync::Semaphore::new(channel.max_in_flight(k)?))))
            .collect();
        let room = &room;
        let mut pending = Vec::with_capacity(per_lead.len());
        for msgs in per_lead {
            pending.push(async move {
                let mut answers = Vec::with_capacity(msgs.len());
                for (i, msg) in msgs {
                    let _room = match room.get(&msg.channel) {
                        Some(r) => r.acquire().await.ok(),
                        None => None,
                    };
                    if std::time::Instant::now() >= send_by {
                        break;
                    }
                    answers.push((i, channel.send(msg).await));
                }
                answers
            });
        }
        // `None`: not started.
        let mut sends: Vec<Option<std::result::Result<Sent, SendError>>> = vec![None; remote.len()];
        let mut answered =
            futures::stream::iter(pending).buffer_unordered(e.config.send_concurrency.max(1));
        while let Some(answers) = answered.next().await {
            for (i, answer) in answers {
                sends[i] = Some(answer);
            }
        }
        drop(answered);
        let mut sent = Outcomes::default();
        for ((t, lead, action), outcome) in remote.into_iter().zip(sends) {
            match outcome {
                Some(outcome) => self.note(t, lead, action, Some(outcome), now, &mut sent, report),
                None => {
                    sent.released.push(t.id);
                    report.released += 1;
                }
            }
        }
        sent
    }

    /// Records what became of the messages sent (step 3), in one transaction.
    async fn record_sent(
        &self,
        sent: &Outcomes,
        team: &TeamCtx,
        leads: &HashMap<i64, Lead>,
        now: Millis,
    ) -> Result<Effects> {
        let e = &self.engine;
        // 3. record. Retried when the database broke a deadlock (PostgreSQL, workers
        // sharing leads): the failed attempt rolled back whole and what was sent is known,
        // so recording it again is safe, while giving up would leave sent touches
        // `uncertain`. Should the renewals have failed for a whole lease (the database
        // out of reach), another worker may have declared these touches `uncertain`
        // meanwhile; an answer is recorded over that: the outcome is known now, and
        // `uncertain` touches are never claimed again.
        let mut tries = 0;
        let started = std::time::Instant::now();
        let fx = loop {
            let recorded: Result<Effects> = async {
                let mut tx = e.store.write().await?;
                let fx = record(tx.as_mut(), sent, team, leads, now).await?;
                tx.commit().await?;
                Ok(fx)
            }
            .await;
            match recorded {
                Err(crate::Error::Store(StoreError::Busy)) if tries < 3 => {
                    tries += 1;
                    tracing::warn!(tries, "recording a batch hit a busy database; retrying");
                    tokio::time::sleep(Duration::from_millis(20 * tries)).await;
                }
                r => break r,
            }
        };
        // Timed whether it succeeded or not, as `decide_ahead` is.
        time_part("record_sent", started);
        fx
    }

    /// The claiming transaction's writes: tracking tokens, `sending` marks, and everything
    /// that never leaves the database carried out and recorded; then the commit. Returns the
    /// messages for outside providers (index into `claimed`), now `sending`.
    #[allow(clippy::too_many_arguments)]
    async fn write_claimed(
        &self,
        mut tx: Box<dyn Tx>,
        team: &TeamCtx,
        claimed: &[Touch],
        leads: &HashMap<i64, Lead>,
        actions: Vec<(usize, Action)>,
        now: Millis,
        lease_until: Millis,
        report: &mut BatchReport,
    ) -> Result<Vec<(usize, Action)>> {
        let e = &self.engine;
        let started = std::time::Instant::now();
        // Tracking tokens and Message-IDs are stored before the message leaves (this
        // transaction commits before any send), so an open or a reply that comes back at once
        // finds them.
        let mut tracking: Vec<Tracking> = Vec::new();
        let mut message_ids: Vec<(i64, Millis, String)> = Vec::new();
        for (i, a) in &actions {
            if let Action::Send {
                tracking: Some(tr),
                msg,
                ..
            } = a
            {
                tracking.push(tr.clone());
                if let (Some(touch_id), Some(mid)) = (tr.touch_id, &msg.message_id) {
                    message_ids.push((touch_id, claimed[*i].due_at, mid.clone()));
                }
            }
        }
        tx.tracking_insert_many(&tracking).await?;
        tx.touches_set_message_ids(&message_ids).await?;
        drop(tracking);

        // What never leaves the process (tasks, skips, holds, and messages to a channel that
        // only writes to the database, like the built-in outbox) is carried out and recorded
        // in this same transaction: such a touch goes from `scheduled` to settled in one
        // commit, and at-most-once holds because nothing happened outside the database.
        // Only messages for an outside provider stay `sending` across the commit (SPEC §5.4).
        let (local, remote): (Vec<_>, Vec<_>) = actions.into_iter().partition(|(_, a)| match a {
            Action::Send { msg, .. } => e.channel.is_local(msg.channel),
            _ => true,
        });
        if e.store.single_writer() {
            let leaving: Vec<i64> = remote.iter().map(|(i, _)| claimed[*i].id).collect();
            tx.touches_mark_sending(&leaving, &self.worker, lease_until)
                .await?;
        }
        let mut done = Outcomes::default();
        for (i, action) in local {
            let t = &claimed[i];
            let Some(lead) = leads.get(&t.lead_id) else {
                continue;
            };
            self.carry_out(t, lead, action, now, &mut done, report)
                .await;
        }
        let fx = record(tx.as_mut(), &done, team, leads, now).await?;
        // Local outcomes written, nothing committed: a test makes the process fail here.
        e.config.fault_point("dispatch:before_claim_commit");
        time_part("claim_write", started);
        let committing = std::time::Instant::now();
        tx.commit().await?;
        time_part("claim_commit", committing);
        done.count_sent();
        e.apply_effects(fx);
        Ok(remote)
    }

    /// Hands one decided touch to its channel (for a message) and notes what became of it.
    async fn carry_out(
        &self,
        t: &Touch,
        lead: &Lead,
        action: Action,
        now: Millis,
        out: &mut Outcomes,
        report: &mut BatchReport,
    ) {
        let outcome = match &action {
            Action::Send { msg, .. } => Some(self.engine.channel.send(msg).await),
            _ => None,
        };
        self.note(t, lead, action, outcome, now, out, report);
    }

    /// Notes what became of one decided touch; `outcome` is its channel's answer when it was
    /// a message.
    #[allow(clippy::too_many_arguments)]
    fn note(
        &self,
        t: &Touch,
        lead: &Lead,
        action: Action,
        outcome: Option<std::result::Result<Sent, SendError>>,
        now: Millis,
        out: &mut Outcomes,
        report: &mut BatchReport,
    ) {
        out.enrollments.insert((t.enrollment_id, t.lead_id));
        let mut result = TouchResult {
            touch_id: t.id,
            due_at: t.due_at,
            lead_id: t.lead_id,
            status: TouchStatus::Skipped,
            reason: None,
            sent_channel: None,
            subject: None,
            content: None,
            provider_id: None,
            attempt: false,
        };
        match action {
            Action::Send { msg, channel, .. } => {
                result.sent_channel = Some(channel);
                result.subject = msg.subject.clone();
                result.content = Some(msg.body.clone());
                // A message always comes with its channel's answer; were one missing, the
                // touch is in doubt, never resent.
                let outcome = outcome.unwrap_or_else(|| {
                    Err(SendError::Unknown("no answer from the channel".into()))
                });
                match outcome {
                    Ok(sent) => {
                        result.status = TouchStatus::Sent;
                        result.provider_id = sent.provider_id;
                        result.attempt = true;
                        out.outbox.extend(sent.outbox);
                        out.sent_channels.push(channel);
                        report.sent += 1;
                    }
                    Err(SendError::Transient(why)) => {
                        out.holds.push((
                            t.id,
                            now + 60_000,
                            format!("not sent yet: {why}; retrying"),
                        ));
                        return;
                    }
                    Err(SendError::Permanent(why)) => {
                        result.status = TouchStatus::Failed;
                        result.reason = Some(why);
                    }
                    Err(SendError::BadAddress(why)) => {
                        result.status = TouchStatus::Failed;
                        result.reason = Some(why);
                        out.bad_addresses.push((lead.id, channel));
                    }
                    Err(SendError::Unknown(why)) => {
                        result.status = TouchStatus::Uncertain;
                        result.reason =
                            Some(format!("{why}; it may have been sent, so it is not resent"));
                        report.uncertain += 1;
                    }
                }
            }
            Action::Task { task, channel } => {
                out.tasks.push((task, channel));
                report.tasks += 1;
                return;
            }
            Action::Skip(reason) => {
                if !lead.can_text() && !lead.can_email() && !lead.can_call() {
                    out.blocked_leads.insert(lead.id);
                }
                result.reason = Some(reason);
                report.skipped += 1;
            }
            Action::Fail(reason) => {
                result.status = TouchStatus::Failed;
                result.reason = Some(reason);
            }
            Action::Hold { due, reason } => {
                out.holds.push((t.id, due, reason));
                return;
            }
        }
        out.results.push(result);
    }

    /// Call tasks on hot leads overdue past the team's threshold notify the admins (SPEC §5.6).
    async fn escalate(&self, now: Millis) -> Result<()> {
        let e = &self.engine;
        let mut tx = e.store.write().await?;
        let Some(team) = tx.team().await? else {
            return Ok(());
        };
        let overdue = tx.tasks_to_escalate(now, team.escalation_minutes).await?;
        if overdue.is_empty() {
            return Ok(());
        }
        let admins = crate::leads::admin_ids(tx.as_mut()).await?;
        let mut fx = Effects::default();
        for t in overdue {
            tx.task_mark_escalated(t.id, now).await?;
            let Some(lead) = tx.lead(t.lead_id).await? else {
                continue;
            };
            let mins = (now - t.due_at) / 60_000;
            for a in &admins {
                notify_user(
                    tx.as_mut(),
                    *a,
                    &lead,
                    EventKind::Escalation,
                    "overdue_call",
                    &format!(
                        "Call to hot lead {} is {mins} minutes overdue",
                        lead.full_name()
                    ),
                    now,
                    &mut fx,
                )
                .await?;
            }
        }
        tx.commit().await?;
        e.apply_effects(fx);
        Ok(())
    }
}

/// Records how long one part of a dispatch batch took, as `relentless_dispatch_seconds{part}`
/// on `/metrics`: `claim_write` (the claiming transaction's writes, local outcomes included),
/// `claim_commit` (its COMMIT), `record_sent` (recording what went to a provider, its own
/// transaction) and `decide_ahead` (the next batch read and decided on a reader while this one
/// is written; SQLite, under a backlog). Where a batch's time goes, without a special build
/// (BENCHMARKS.md: the write half is the dispatcher's critical path at 1,000,000 leads).
fn time_part(part: &'static str, since: std::time::Instant) {
    metrics::histogram!("relentless_dispatch_seconds", "part" => part)
        .record(since.elapsed().as_secs_f64());
}

/// What became of some claimed touches, to be written in one transaction by [`record`].
#[derive(Default)]
struct Outcomes {
    results: Vec<TouchResult>,
    outbox: Vec<NewOutbox>,
    tasks: Vec<(NewTask, Channel)>,
    holds: Vec<(i64, Millis, String)>,
    blocked_leads: std::collections::BTreeSet<i64>,
    bad_addresses: Vec<(i64, Channel)>,
    /// `(enrollment, lead)` of every touch noted.
    enrollments: HashSet<(i64, i64)>,
    /// The channel of each message sent, counted once the outcomes are committed (a claim
    /// that rolls back after an outbox "send" sent nothing).
    sent_channels: Vec<Channel>,
    /// Touches whose message was not started before the send deadline: `scheduled` again.
    released: Vec<i64>,
}

impl Outcomes {
    fn count_sent(&self) {
        for channel in &self.sent_channels {
            metrics::counter!("relentless_touches_sent_total", "channel" => channel.as_str())
                .increment(1);
        }
    }
}

/// Writes `out`: every outcome, the outbox copies, timeline entries, tasks and their
/// notifications, then completes finished enrollments. A few statements for the whole batch,
/// not a few per touch. The leads' next touch is not written: a touch that settles or is held
/// later leaves the stored lower bound true, and a lead read back works it out from there
/// (`Tx::leads_refresh_next`; only a lead moved to nurture, which gets new touches, has it
/// written, by `enroll_in`); writing it cost every fired touch its lead's row.
async fn record(
    tx: &mut dyn Tx,
    out: &Outcomes,
    team: &TeamCtx,
    leads: &HashMap<i64, Lead>,
    now: Millis,
) -> Result<Effects> {
    let mut fx = Effects::default();
    for id in &out.released {
        tx.touch_release(*id).await?;
    }
    if out.enrollments.is_empty() {
        return Ok(fx);
    }
    tx.touches_record(&out.results, now).await?;
    tx.outbox_insert_many(&out.outbox, now).await?;
    let in_outbox: HashSet<i64> = out.outbox.iter().filter_map(|m| m.touch_id).collect();
    let acts: Vec<NewActivity> = out
        .results
        .iter()
        .map(|r| {
            let detail = match (r.status, r.sent_channel) {
                (TouchStatus::Sent, Some(ch)) => format!(
                    "{} sent{}",
                    crate::capital(ch.as_str()),
                    if in_outbox.contains(&r.touch_id) {
                        " to the outbox (not delivered)"
                    } else {
                        ""
                    }
                ),
                (s, _) => format!("Touch {s}: {}", r.reason.clone().unwrap_or_default()),
            };
            NewActivity {
                lead_id: r.lead_id,
                kind: format!("touch_{}", r.status),
                detail,
                // The message itself is the touch's (`GET …/touches`, stored once in
                // `touch_bodies`); a copy here was a third one, with the outbox's, and most of
                // the timeline's size (60 → 11 MB per 200,000 fired touches, BENCHMARKS.md
                // 2026-12-07).
                data: Some(serde_json::json!({"touch_id": r.touch_id})),
                actor_id: None,
                at: now,
            }
        })
        .collect();
    tx.activities_insert(&acts).await?;
    // Every task and its agent's `task_due` notification, in a few statements.
    let tasks: Vec<NewTask> = out.tasks.iter().map(|(t, _)| t.clone()).collect();
    tx.touch_tasks_insert(&tasks, now).await?;
    let due_alerts: Vec<NewNotification> = out
        .tasks
        .iter()
        .filter_map(|(task, channel)| {
            let user_id = task.assignee_id?;
            let lead = leads.get(&task.lead_id)?;
            let what = match channel {
                Channel::Video => "record and send a personal video",
                Channel::Call => "call",
                _ => "follow up",
            };
            Some(new_notification(
                user_id,
                lead,
                EventKind::TaskDue,
                task.kind.as_str(),
                &format!("Time to {what}: {}", lead.full_name()),
                now,
            ))
        })
        .collect();
    store_notifications(tx, due_alerts, &mut fx).await?;
    for (id, due, reason) in &out.holds {
        tx.touch_reschedule(*id, *due, reason).await?;
    }
    for (lead_id, channel) in &out.bad_addresses {
        if let Some(mut l) = tx.lead(*lead_id).await? {
            match channel {
                Channel::Email => l.email_bad = true,
                _ => l.phone_bad = true,
            }
            l.updated_at = now;
            tx.lead_save(&l).await?;
        }
    }
    for lead_id in &out.blocked_leads {
        if stop_all(tx, *lead_id, "every channel is blocked", now).await? > 0 {
            tx.activity_insert(&NewActivity {
                lead_id: *lead_id,
                kind: "plans_left".into(),
                detail: "Every channel is blocked (opted out, do-not-call or bad contact details): the lead left its plans".into(),
                data: None,
                actor_id: None,
                at: now,
            })
            .await?;
        }
    }
    let enrollments: Vec<(i64, i64)> = out.enrollments.iter().copied().collect();
    settle_enrollments(tx, team, &enrollments, now).await?;
    Ok(fx)
}

/// Whether `f` is ready now, without waiting.
async fn poll_once<F: Future<Output = ()>>(f: &mut std::pin::Pin<&mut F>) -> bool {
    tokio::select! {
        biased;
        _ = f.as_mut() => true,
        _ = std::future::ready(()) => false,
    }
}

/// What the plan file says about a claimed touch's step beyond its channel and template.
#[derive(Default)]
struct StepExtra {
    fallback: Option<(Channel, String)>,
    unless_answered: bool,
}

async fn step_extras(tx: &mut dyn Tx, touches: &[Touch]) -> Result<HashMap<i64, StepExtra>> {
    let mut plans: HashMap<String, Option<relentless_core::plan::Plan>> = HashMap::new();
    let mut out = HashMap::new();
    for t in touches {
        if !plans.contains_key(&t.plan) {
            let p = tx
                .plan(&t.plan)
                .await?
                .and_then(|r| relentless_core::plan::Plan::from_toml(&r.source).ok());
            plans.insert(t.plan.clone(), p);
        }
        if let Some(step) = plans
            .get(&t.plan)
            .and_then(|p| p.as_ref())
            .and_then(|p| p.steps.get(t.step as usize))
        {
            out.insert(
                t.id,
                StepExtra {
                    fallback: step
                        .fallback
                        .as_ref()
                        .map(|f| (f.channel, f.template.clone())),
                    unless_answered: step.unless_answered,
                },
            );
        }
    }
    Ok(out)
}

/// How long a paused plan's touch waits before it is looked at again (resuming makes it due
/// at once).
const PAUSED_RECHECK_MS: i64 = 24 * 3_600_000;

/// Reads what deciding `claimed` needs (team, leads, enrollments, agents, templates, plan
/// steps, consent) through `tx` and decides each touch as of `now`. Reads only: `tx` is the
/// claiming transaction, or a reader deciding the next batch ahead.
async fn decide_batch(
    tx: &mut dyn Tx,
    claimed: Vec<Touch>,
    now: Millis,
    config: &crate::Config,
) -> Result<Decided> {
    let team = team_ctx(tx).await?;
    let lead_ids: Vec<i64> = claimed
        .iter()
        .map(|t| t.lead_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let leads = leads_map(tx, &lead_ids).await?;
    let enrollments: HashMap<i64, Enrollment> = tx
        .enrollments_by_ids(
            &lead_ids,
            &claimed
                .iter()
                .map(|t| t.enrollment_id)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect::<Vec<_>>(),
        )
        .await?
        .into_iter()
        .map(|en| (en.id, en))
        .collect();
    let users: HashMap<i64, User> = tx.users().await?.into_iter().map(|u| (u.id, u)).collect();
    let mut templates: HashMap<String, Option<TemplateRow>> = HashMap::new();
    for t in &claimed {
        if !templates.contains_key(&t.template) {
            templates.insert(t.template.clone(), tx.template(&t.template).await?);
        }
    }
    let extras = step_extras(tx, &claimed).await?;
    let consented: HashSet<i64> = if team.team.require_text_consent {
        tx.leads_with_text_consent(&lead_ids)
            .await?
            .into_iter()
            .collect()
    } else {
        HashSet::new()
    };
    for (_, slug) in extras.values().filter_map(|x| x.fallback.as_ref()) {
        if !templates.contains_key(slug) {
            templates.insert(slug.clone(), tx.template(slug).await?);
        }
    }

    let mut actions: Vec<(usize, Action)> = Vec::with_capacity(claimed.len());
    {
        let mut renderer = template::Renderer::default();
        for (i, t) in claimed.iter().enumerate() {
            let Some(lead) = leads.get(&t.lead_id) else {
                continue;
            };
            let agent = lead.assigned_to.and_then(|id| users.get(&id));
            let enrollment = enrollments.get(&t.enrollment_id);
            let action = decide(
                &team,
                t,
                lead,
                agent,
                enrollment,
                &templates,
                extras.get(&t.id),
                now,
                config,
                consented.contains(&lead.id),
                &mut renderer,
            );
            actions.push((i, action));
        }
    }
    Ok(Decided {
        decided_at: now,
        team,
        claimed,
        leads,
        actions,
    })
}

#[allow(clippy::too_many_arguments)]
fn decide<'a>(
    team: &TeamCtx,
    t: &Touch,
    lead: &Lead,
    agent: Option<&User>,
    enrollment: Option<&Enrollment>,
    templates: &'a HashMap<String, Option<TemplateRow>>,
    extra: Option<&StepExtra>,
    now: Millis,
    cfg: &crate::Config,
    text_consent: bool,
    renderer: &mut template::Renderer<'a>,
) -> Action {
    let fallback = extra.and_then(|x| x.fallback.as_ref());
    if let Some(en) = enrollment {
        // A paused plan's touches wait for it to be resumed (which makes them due again).
        if en.state == EnrollmentState::Paused {
            return Action::Hold {
                due: now + PAUSED_RECHECK_MS,
                reason: "held: the plan is paused".into(),
            };
        }
        if en.state != EnrollmentState::Active {
            return Action::Skip(format!("the plan is {}", en.state));
        }
        if lead.answered_at.is_some_and(|a| a >= en.started_at)
            && extra.is_some_and(|x| x.unless_answered)
        {
            return Action::Skip("the lead has answered".into());
        }
    }
    let mut channel = if t.channel == Channel::Preferred {
        resolve_preferred(lead)
    } else {
        t.channel
    };
    let mut template_slug = t.template.as_str();
    // A team that requires recorded consent for automatic texts: a lead without it gets the
    // step's email fallback, else a call task with the text as talking points.
    let mut consent_call = false;
    if channel == Channel::Text
        && team.team.require_text_consent
        && !text_consent
        && lead.can_text()
    {
        match fallback {
            Some((fc, fslug)) if blocked_reason(lead, *fc).is_none() => {
                channel = *fc;
                template_slug = fslug;
            }
            _ if lead.can_call() => {
                channel = Channel::Call;
                consent_call = true;
            }
            _ => return Action::Skip("text skipped: no recorded consent for texts".into()),
        }
    }
    if let Some(why) = blocked_reason(lead, channel) {
        match fallback {
            Some((fc, fslug)) if blocked_reason(lead, *fc).is_none() => {
                channel = *fc;
                template_slug = fslug;
            }
            _ => return Action::Skip(format!("{channel} skipped: {why}")),
        }
    }
    // The window is checked again at send time: a touch claimed late (the server was down
    // overnight) waits for the next opening instead of going out at night.
    if channel.is_windowed() {
        let tz = lead_tz(lead);
        let rules = team.rules.for_region(lead.region.as_deref());
        if !is_open(ts(now), &tz, &rules) {
            let due = next_open(ts(now), &tz, &rules).as_millisecond();
            return Action::Hold {
                due,
                reason: "held for the sending window (lead's local time)".into(),
            };
        }
    }
    let Some(Some(tpl)) = templates.get(template_slug) else {
        return Action::Fail(format!("the template '{template_slug}' does not exist"));
    };
    let ctx = merge_context(team, lead, agent);
    let mut render = |s: &'a str| {
        renderer.render(s, &ctx).map_err(|e| {
            format!(
                "template '{template_slug}' could not be rendered: {}",
                e.message
            )
        })
    };
    let body = match render(&tpl.body) {
        Ok(b) => b,
        Err(m) => return Action::Fail(m),
    };
    match channel {
        Channel::Text | Channel::Email => {
            let subject = match (&tpl.subject, channel) {
                (Some(s), Channel::Email) => match render(s) {
                    Ok(s) => Some(s),
                    Err(m) => return Action::Fail(m),
                },
                (None, Channel::Email) => Some(format!("A note from {}", ctx.agent.name)),
                _ => None,
            };
            if channel == Channel::Text {
                let msg = Message {
                    touch_id: Some(t.id),
                    lead_id: lead.id,
                    channel,
                    to: lead.phone.clone().unwrap_or_default(),
                    body,
                    from_name: ctx.agent.name.clone(),
                    ..Default::default()
                };
                return Action::Send {
                    msg,
                    channel,
                    tracking: None,
                };
            }
            let (mut msg, tracking) =
                tracked_email(team, cfg, lead, agent, Some(t.id), subject, &body, now);
            // With no agent assigned, the merge context's agent (the team) signs it.
            msg.from_name = ctx.agent.name.clone();
            Action::Send {
                msg,
                channel,
                tracking: Some(tracking),
            }
        }
        _ => {
            let voicemail = tpl.voicemail.as_deref().and_then(|v| render(v).ok());
            let body = if consent_call {
                format!(
                    "No recorded consent for texts, so call instead of texting. What the text would have said:\n\n{body}"
                )
            } else {
                body
            };
            Action::Task {
                task: NewTask {
                    lead_id: lead.id,
                    touch_id: Some(t.id),
                    assignee_id: lead.assigned_to,
                    kind: channel.task_kind(),
                    due_at: t.due_at,
                    script: body,
                    voicemail,
                },
                channel,
            }
        }
    }
}
