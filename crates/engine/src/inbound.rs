//! What comes back: inbound texts (keywords, replies, new leads), delivery callbacks, inbound
//! email (replies, auto-replies, bounces), and tracking hits (opens, clicks, unsubscribes,
//! video views). Each is one transaction (tracking hits are grouped, see `tracking.rs`);
//! notifications go out after the commit.

use crate::channels::{Message, SendError};
use crate::leads::{Effects, LeadInput, Origin, answer, notify};
use crate::{Engine, Error, Result, now_ms, team_ctx};
use relentless_core::engagement::HitKind;
use relentless_core::rules::{self, SmsKeyword};
use relentless_core::types::*;
use relentless_core::validate;
use relentless_store::*;

/// What the Twilio webhook should answer with (TwiML `<Message>` body), if anything.
pub type SmsReply = Option<String>;

/// A tracking hit as the web layer saw it.
pub struct HitInfo<'a> {
    pub user_agent: &'a str,
}

impl Engine {
    /// An inbound text (SPEC §5.2, §5.3). Returns the reply to send back through TwiML.
    pub async fn inbound_sms(&self, from: &str, body: &str, sid: &str) -> Result<SmsReply> {
        let now = now_ms();
        let mut tx = self.store.write().await?;
        if !sid.is_empty() && !tx.inbound_first_time(&format!("twilio:{sid}"), now).await? {
            return Ok(None); // a replay: handled once
        }
        let team = team_ctx(tx.as_mut()).await?;
        let phone =
            validate::phone(from, &team.team.country).map_err(|m| Error::field("From", m))?;
        let lead = tx.lead_match(None, None, Some(&phone)).await?;
        let app_replies = self.config.app_confirms_opt_out;
        let mut fx = Effects::default();
        let reply = match (rules::sms_keyword(body), lead) {
            (Some(SmsKeyword::Stop), lead) => {
                if let Some(mut l) = lead {
                    l.sms_opt_out = true;
                    l.updated_at = now;
                    tx.lead_save(&l).await?;
                    activity(
                        tx.as_mut(),
                        l.id,
                        "opt_out",
                        &format!("Opted out of texts by replying \"{}\"", body.trim()),
                    )
                    .await?;
                } else {
                    // Someone not in the database: remember the number stays opted out.
                    tx.suppress(&rules::suppression_hash("phone", &phone), "phone", now)
                        .await?;
                }
                app_replies.then(|| rules::stop_confirmation(&team.team.name))
            }
            (Some(SmsKeyword::Start), lead) => {
                if let Some(mut l) = lead {
                    l.sms_opt_out = false;
                    l.updated_at = now;
                    tx.lead_save(&l).await?;
                    activity(
                        tx.as_mut(),
                        l.id,
                        "opt_in",
                        "Opted back in to texts (START)",
                    )
                    .await?;
                }
                app_replies.then(|| rules::start_confirmation(&team.team.name))
            }
            (Some(SmsKeyword::Help), _) => {
                let contact = if team.team.support_contact.is_empty() {
                    team.team.name.clone()
                } else {
                    team.team.support_contact.clone()
                };
                app_replies.then(|| rules::help_reply(&team.team.name, &contact))
            }
            (None, Some(mut l)) => {
                activity(
                    tx.as_mut(),
                    l.id,
                    "reply",
                    &format!("Text from the lead: {}", body.trim()),
                )
                .await?;
                if rules::looks_like_stop_request(body) {
                    activity(tx.as_mut(), l.id, "likely_opt_out", "This reply reads like a request to stop texting: check it and set the opt-out").await?;
                    notify(
                        tx.as_mut(),
                        &l,
                        EventKind::Reply,
                        "likely_opt_out",
                        &format!("Likely opt-out: \"{}\"", body.trim()),
                        now,
                        &mut fx,
                    )
                    .await?;
                }
                answer(
                    tx.as_mut(),
                    &team,
                    &mut l,
                    Channel::Text,
                    body.trim(),
                    now,
                    &mut fx,
                )
                .await?;
                tx.leads_refresh_next(&[l.id]).await?;
                None
            }
            (None, None) => {
                // A new lead texted the team's number: it gets speed-to-lead like any new lead.
                tx.commit().await?;
                let input = LeadInput {
                    phone: Some(Some(phone.clone())),
                    source: Some("sms".into()),
                    notes: Some(format!("First text: {}", body.trim())),
                    ..Default::default()
                };
                let created = self.create_lead(None, input, Origin::Api, None).await?;
                let mut tx = self.store.write().await?;
                activity(
                    tx.as_mut(),
                    created.lead.id,
                    "inbound_text",
                    &format!("Texted in: {}", body.trim()),
                )
                .await?;
                tx.commit().await?;
                return Ok(None);
            }
        };
        tx.commit().await?;
        self.apply_effects(fx);
        Ok(reply)
    }

    /// A Twilio status callback: the delivery state of a sent text.
    pub async fn sms_status(
        &self,
        sid: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> Result<()> {
        let delivery = match status {
            "delivered" => Delivery::Delivered,
            "undelivered" => Delivery::Undelivered,
            "failed" => Delivery::Failed,
            _ => Delivery::Queued,
        };
        let mut tx = self.store.write().await?;
        let Some(touch) = tx.text_by_provider_id(sid).await? else {
            return Ok(());
        };
        let reason = error_code.map(|c| format!("provider error {c}"));
        tx.touch_set_delivery(touch.id, delivery.as_str(), reason.as_deref())
            .await?;
        if matches!(delivery, Delivery::Undelivered | Delivery::Failed) {
            activity(
                tx.as_mut(),
                touch.lead_id,
                "delivery_failed",
                &format!(
                    "Text {}{}",
                    delivery,
                    error_code
                        .map(|c| format!(" (Twilio error {c})"))
                        .unwrap_or_default()
                ),
            )
            .await?;
            // Unknown, unreachable or landline numbers will never take a text.
            if matches!(error_code, Some("30003" | "30005" | "30006"))
                && let Some(mut l) = tx.lead(touch.lead_id).await?
            {
                l.phone_bad = true;
                tx.lead_save(&l).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A raw inbound email addressed to the reply webhook (SPEC §5.3).
    pub async fn inbound_email(&self, raw: &[u8]) -> Result<()> {
        let mail = crate::inbound_email::parse(raw).map_err(|m| Error::field("body", m))?;
        let now = now_ms();
        let mut tx = self.store.write().await?;
        if let Some(id) = &mail.message_id
            && !tx.inbound_first_time(&format!("email:{id}"), now).await?
        {
            return Ok(());
        }
        let team = team_ctx(tx.as_mut()).await?;
        // Match by our Message-ID in In-Reply-To/References, then the r+token address, then the sender.
        let mut lead = None;
        for id in mail.in_reply_to.iter().chain(mail.references.iter()) {
            let Some(touch_id) = crate::channels::email::compose::touch_of_message_id(id) else {
                continue;
            };
            if let Some(t) = tx.touch_by_message_id(touch_id, id).await? {
                lead = tx.lead(t.lead_id).await?;
                break;
            }
        }
        if lead.is_none() {
            for to in &mail.to {
                if let Some(token) = to
                    .split('@')
                    .next()
                    .and_then(|local| local.strip_prefix("r+"))
                    && let Some(t) = tx.tracking(token).await?
                {
                    lead = tx.lead(t.lead_id).await?;
                    break;
                }
            }
        }
        let bounce_recipient = match &mail.kind {
            crate::inbound_email::InboundKind::Bounce { recipient, .. } => recipient.clone(),
            _ => None,
        };
        if lead.is_none() {
            let addr = bounce_recipient.clone().or_else(|| mail.from.clone());
            if let Some(a) = addr {
                lead = tx.lead_match(None, Some(&a.to_lowercase()), None).await?;
            }
        }
        let Some(mut lead) = lead else {
            tracing::info!("inbound email matched no lead; ignored");
            return Ok(());
        };
        let mut fx = Effects::default();
        match mail.kind {
            crate::inbound_email::InboundKind::Reply => {
                activity(
                    tx.as_mut(),
                    lead.id,
                    "reply",
                    &format!("Email from the lead: {}", mail.text.trim()),
                )
                .await?;
                answer(
                    tx.as_mut(),
                    &team,
                    &mut lead,
                    Channel::Email,
                    mail.text.trim(),
                    now,
                    &mut fx,
                )
                .await?;
                tx.leads_refresh_next(&[lead.id]).await?;
            }
            crate::inbound_email::InboundKind::AutoReply => {
                activity(
                    tx.as_mut(),
                    lead.id,
                    "auto_reply",
                    &format!("Automatic reply (not an answer): {}", mail.subject),
                )
                .await?;
            }
            crate::inbound_email::InboundKind::Bounce { hard, .. } => {
                if hard {
                    lead.email_bad = true;
                    lead.updated_at = now;
                    tx.lead_save(&lead).await?;
                }
                let what = if hard {
                    "Email bounced: the address is marked bad"
                } else {
                    "Email delayed (soft bounce)"
                };
                activity(tx.as_mut(), lead.id, "bounce", what).await?;
            }
        }
        tx.commit().await?;
        self.apply_effects(fx);
        Ok(())
    }

    /// The open pixel was fetched.
    pub async fn track_open(&self, token: &str, hit: HitInfo<'_>) -> Result<()> {
        self.track(token, HitKind::Open, None, hit.user_agent)
            .await
            .map(|_| ())
    }

    /// A tracked link was clicked: the stored link `n`, never a URL from the request.
    pub async fn track_click(&self, token: &str, n: usize, hit: HitInfo<'_>) -> Result<String> {
        self.track(token, HitKind::Click, Some(n), hit.user_agent)
            .await?
            .ok_or(Error::NotFound)
    }

    /// The video page reported play, progress or ended. A play is a view.
    pub async fn track_video(&self, token: &str, event: &str, hit: HitInfo<'_>) -> Result<()> {
        if event == "play" {
            self.track(token, HitKind::Open, None, hit.user_agent)
                .await
                .map(|_| ())
        } else {
            let mut tx = self.store.write().await?;
            let t = tx
                .tracking(token)
                .await?
                .filter(|t| t.kind == "video")
                .ok_or(Error::NotFound)?;
            activity(
                tx.as_mut(),
                t.lead_id,
                "video_progress",
                &format!("Video {event}"),
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
    }

    /// One-click unsubscribe (RFC 8058) from an email's link or header.
    pub async fn unsubscribe(&self, token: &str) -> Result<()> {
        let mut tx = self.store.write().await?;
        let t = tx.tracking(token).await?.ok_or(Error::NotFound)?;
        if let Some(mut l) = tx.lead(t.lead_id).await?
            && !l.email_opt_out
        {
            l.email_opt_out = true;
            l.updated_at = now_ms();
            tx.lead_save(&l).await?;
            activity(tx.as_mut(), l.id, "opt_out", "Unsubscribed from emails").await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sends one message now, outside any plan (a confirmation, a video link, a quick text).
    pub async fn send_direct(&self, msg: Message) -> Result<()> {
        let lead_id = msg.lead_id;
        let sent = self.channel.send(&msg).await;
        let mut tx = self.store.write().await?;
        match sent {
            Ok(s) => {
                if let Some(o) = &s.outbox {
                    tx.outbox_insert(o, now_ms()).await?;
                }
                // A message to someone other than the lead (an agent's alert) says so.
                let to_lead = tx.lead(lead_id).await?.is_some_and(|l| {
                    l.phone.as_deref() == Some(msg.to.as_str())
                        || l.email
                            .as_deref()
                            .is_some_and(|e| e.eq_ignore_ascii_case(&msg.to))
                });
                let (kind, what) = if to_lead {
                    (
                        format!("{}_sent", msg.channel),
                        format!("{} sent", crate::capital(msg.channel.as_str())),
                    )
                } else {
                    (
                        "agent_alert".to_string(),
                        format!("Alert {} to the agent", msg.channel),
                    )
                };
                activity(
                    tx.as_mut(),
                    lead_id,
                    &kind,
                    &format!("{what}: {}", msg.body.lines().next().unwrap_or("")),
                )
                .await?;
            }
            Err(e) => {
                activity(
                    tx.as_mut(),
                    lead_id,
                    "send_failed",
                    &format!("{} not sent: {e}", crate::capital(msg.channel.as_str())),
                )
                .await?;
                tx.commit().await?;
                return Err(match e {
                    SendError::Transient(m)
                    | SendError::Unknown(m)
                    | SendError::Permanent(m)
                    | SendError::BadAddress(m) => Error::Conflict(m),
                });
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

pub(crate) async fn activity(
    tx: &mut dyn Tx,
    lead_id: i64,
    kind: &str,
    detail: &str,
) -> Result<()> {
    tx.activity_insert(&NewActivity {
        lead_id,
        kind: kind.into(),
        detail: detail.into(),
        data: None,
        actor_id: None,
        at: now_ms(),
    })
    .await?;
    Ok(())
}
