//! Messages an agent writes: a text or email to one lead from the lead page, with or without a
//! template, previewed live while typing. Opt-outs and bad addresses are respected exactly as
//! for automatic touches; the sending window is not applied, because a person is choosing to
//! send it now (SPEC §5.1 governs automatic texts). Emails carry the same footer, unsubscribe
//! headers and open tracking as a plan's emails, so an open alerts the agent.

use crate::channels::Message;
use crate::channels::email::compose::{Footer, compose, list_unsubscribe_headers, message_id};
use crate::dispatch::merge_context;
use crate::{Config, Engine, Error, Result, TeamCtx, now_ms};
use relentless_core::template;
use relentless_core::types::Channel;
use relentless_store::{Lead, Tracking, User};

/// An email with the team's footer, an unsubscribe link, one-click unsubscribe headers and
/// tracked links and open pixel; the tracking row to store with it.
#[allow(clippy::too_many_arguments)]
pub fn tracked_email(
    team: &TeamCtx,
    cfg: &Config,
    lead: &Lead,
    agent: Option<&User>,
    touch_id: Option<i64>,
    subject: Option<String>,
    body: &str,
    now: i64,
) -> (Message, Tracking) {
    let token = crate::tracking_token(now);
    let base = cfg.base();
    let unsubscribe_url = format!("{base}/u/{token}");
    let footer = Footer {
        team_name: &team.team.name,
        postal_address: &team.team.postal_address,
        unsubscribe_url: &unsubscribe_url,
    };
    let composed = compose(body, &footer, Some(&format!("{base}/t/{token}")));
    let domain = cfg
        .email_from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>'))
        .unwrap_or("localhost");
    let reply_to = match &cfg.reply_domain {
        Some(d) => Some(format!("r+{token}@{d}")),
        None => agent.map(|a| a.email.clone()),
    };
    // A touch's Message-ID is derived from the touch, so a retry is the same message; a
    // one-off message has no retry and takes its own token as the seed.
    let mid = match touch_id {
        Some(id) => message_id(id, &cfg.public_url, domain),
        None => message_id(0, &token, domain),
    };
    let msg = Message {
        touch_id,
        lead_id: lead.id,
        channel: Channel::Email,
        to: lead.email.clone().unwrap_or_default(),
        subject,
        body: composed.text,
        html: Some(composed.html),
        from_name: agent.map(|a| a.name.clone()).unwrap_or_default(),
        reply_to,
        message_id: Some(mid),
        headers: list_unsubscribe_headers(&unsubscribe_url),
    };
    let tracking = Tracking {
        token,
        kind: "email".into(),
        lead_id: lead.id,
        touch_id,
        links: composed.links,
        video_id: None,
        created_at: now,
    };
    (msg, tracking)
}

/// The lead a template or plan is previewed for when no real lead is chosen.
pub fn sample_lead(team: &TeamCtx) -> Lead {
    let mut l = crate::leads::blank_lead(team, now_ms());
    l.first_name = "Jordan".into();
    l.last_name = "Rivera".into();
    l.email = Some("jordan.rivera@example.com".into());
    l.phone = Some("+15555550123".into());
    l.property_address = "12 Oak Lane".into();
    l.source = "Website".into();
    l
}

/// What an agent sends from the lead page.
#[derive(Debug, Clone)]
pub struct ManualMessage {
    pub channel: Channel,
    /// A template's slug: its subject and body are used where none is given.
    pub template: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
}

impl Engine {
    /// Renders a subject and body for a lead (or a sample lead) as it would be sent; an
    /// unknown merge field or bad syntax is an error naming the part.
    pub async fn preview(
        &self,
        user: &User,
        lead_id: Option<i64>,
        subject: Option<&str>,
        body: &str,
    ) -> Result<(Option<String>, String)> {
        let team = self.team_ctx().await?;
        let lead = match lead_id {
            Some(id) => self.lead_for(user, id).await?,
            None => sample_lead(&team),
        };
        let ctx = merge_context(&team, &lead, Some(user));
        let mut errs = crate::error::Errors::default();
        let subject = subject.and_then(|s| {
            errs.check(
                "subject",
                template::render(s, &ctx, false).map_err(|e| e.message),
            )
        });
        let body = errs.check(
            "body",
            template::render(body, &ctx, false).map_err(|e| e.message),
        );
        errs.finish()?;
        Ok((subject, body.unwrap_or_default()))
    }

    /// Sends a text or an email to a lead now; returns what was sent.
    pub async fn send_message(
        &self,
        user: &User,
        lead_id: i64,
        m: ManualMessage,
    ) -> Result<Message> {
        let lead = self.lead_for(user, lead_id).await?;
        match m.channel {
            Channel::Text if !lead.can_text() => {
                return Err(Error::field(
                    "channel",
                    "this lead cannot be texted (no valid phone, or opted out of texts)",
                ));
            }
            Channel::Email if !lead.can_email() => {
                return Err(Error::field(
                    "channel",
                    "this lead cannot be emailed (no valid email, or unsubscribed)",
                ));
            }
            Channel::Text | Channel::Email => {}
            _ => return Err(Error::field("channel", "must be text or email")),
        }
        let (tpl_subject, tpl_body) = match &m.template {
            Some(slug) => {
                let mut tx = self.store.read().await?;
                let t = tx
                    .template(slug)
                    .await?
                    .ok_or_else(|| Error::field("template", format!("no template '{slug}'")))?;
                (t.subject, Some(t.body))
            }
            None => (None, None),
        };
        let body = m
            .body
            .filter(|b| !b.trim().is_empty())
            .or(tpl_body)
            .ok_or_else(|| Error::field("body", "write a message or pick a template"))?;
        let subject = m.subject.filter(|s| !s.trim().is_empty()).or(tpl_subject);
        if m.channel == Channel::Email && subject.is_none() {
            return Err(Error::field("subject", "an email needs a subject"));
        }
        let subject = subject.filter(|_| m.channel == Channel::Email);
        let (subject, body) = self
            .preview(user, Some(lead_id), subject.as_deref(), &body)
            .await?;
        let team = self.team_ctx().await?;
        let now = now_ms();
        let msg = if m.channel == Channel::Email {
            let (msg, tracking) = tracked_email(
                &team,
                &self.config,
                &lead,
                Some(user),
                None,
                subject,
                &body,
                now,
            );
            let mut tx = self.store.write().await?;
            tx.tracking_insert(&tracking).await?;
            tx.commit().await?;
            msg
        } else {
            Message {
                lead_id: lead.id,
                channel: Channel::Text,
                to: lead.phone.clone().unwrap_or_default(),
                body,
                from_name: user.name.clone(),
                ..Default::default()
            }
        };
        self.send_direct(msg.clone()).await?;
        Ok(msg)
    }
}
