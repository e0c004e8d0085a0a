//! Lead intake (issue 4): webhook tokens that stamp a source and route leads to a named
//! agent, round-robin within a group, or a pond where the first agent to claim takes the
//! lead; off-hours rules; consent records; leads from lead-notification emails.

use crate::error::{Errors, FieldError};
use crate::leads::{Created, Effects, LeadInput, Origin, notify_user};
use crate::{Engine, Error, Result, TeamCtx, now_ms, random_token, team_ctx};
use relentless_core::plan::parse_local_time;
use relentless_core::types::{EventKind, Role, TaskStatus};
use relentless_store::*;
use serde::{Deserialize, Serialize};

/// How an intake assigns its leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    #[serde(default)]
    pub mode: RoutingMode,
    /// The agent (`agent` mode) or the group (`round_robin`, `pond`), by email; an empty
    /// group means every active agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// A pond lead unclaimed this long escalates to the admins and falls back to round-robin.
    #[serde(default = "ten")]
    pub claim_minutes: i64,
    /// Who gets leads at night and at weekends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_hours: Option<OffHours>,
}

fn ten() -> i64 {
    10
}

impl Default for Routing {
    /// Round-robin among every active agent.
    fn default() -> Self {
        Routing {
            mode: RoutingMode::RoundRobin,
            agents: vec![],
            claim_minutes: ten(),
            off_hours: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingMode {
    Agent,
    #[default]
    RoundRobin,
    Pond,
}

/// Outside office hours (team time zone) leads go to `agent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffHours {
    /// Office hours start, e.g. "08:00".
    pub start: String,
    /// Office hours end, e.g. "20:00".
    pub end: String,
    /// Saturdays and Sundays count as off hours.
    #[serde(default)]
    pub weekends: bool,
    pub agent: String,
}

/// What a lead arriving through an intake carries besides its fields.
#[derive(Debug, Clone)]
pub struct IntakeCtx {
    pub intake: Intake,
    pub routing: Routing,
    /// (channel, wording shown) the lead agreed to.
    pub consents: Vec<(String, String)>,
    pub ip: Option<String>,
}

pub enum Routed {
    User(i64),
    Pond { agents: Vec<i64>, minutes: i64 },
    Default,
}

async fn group(tx: &mut dyn Tx, emails: &[String]) -> Result<Vec<User>> {
    let users = tx.users().await?;
    Ok(if emails.is_empty() {
        users
            .into_iter()
            .filter(|u| u.active && u.role == Role::Agent)
            .collect()
    } else {
        emails
            .iter()
            .filter_map(|e| {
                users
                    .iter()
                    .find(|u| u.active && u.email.eq_ignore_ascii_case(e))
                    .cloned()
            })
            .collect()
    })
}

/// Whether `now` is outside office hours in the team's zone.
pub fn is_off_hours(oh: &OffHours, team: &TeamCtx, now: Millis) -> bool {
    let local = crate::ts(now).to_zoned_datetime(team.tz.clone());
    if oh.weekends
        && matches!(
            local.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        )
    {
        return true;
    }
    let (Ok(start), Ok(end)) = (parse_local_time(&oh.start), parse_local_time(&oh.end)) else {
        return false;
    };
    let t = local.time();
    if start <= end {
        !(t >= start && t < end)
    } else {
        t >= end && t < start
    }
}

pub(crate) async fn route(
    tx: &mut dyn Tx,
    team: &TeamCtx,
    ctx: &IntakeCtx,
    now: Millis,
) -> Result<Routed> {
    let r = &ctx.routing;
    if let Some(oh) = &r.off_hours
        && is_off_hours(oh, team, now)
        && let Some(u) = group(tx, std::slice::from_ref(&oh.agent))
            .await?
            .into_iter()
            .next()
    {
        return Ok(Routed::User(u.id));
    }
    let members = group(tx, &r.agents).await?;
    if members.is_empty() {
        return Ok(Routed::Default);
    }
    Ok(match r.mode {
        RoutingMode::Agent => Routed::User(members[0].id),
        RoutingMode::RoundRobin => {
            let n = tx.intake_round_robin_next(ctx.intake.id).await?;
            Routed::User(members[(n - 1).rem_euclid(members.len() as i64) as usize].id)
        }
        RoutingMode::Pond => Routed::Pond {
            agents: members.iter().map(|u| u.id).collect(),
            minutes: r.claim_minutes.max(1),
        },
    })
}

pub(crate) async fn record_consents(
    tx: &mut dyn Tx,
    lead_id: i64,
    ctx: &IntakeCtx,
    now: Millis,
) -> Result<()> {
    for (channel, wording) in &ctx.consents {
        tx.consent_insert(&Consent {
            id: 0,
            lead_id,
            channel: channel.clone(),
            source: ctx.intake.source.clone(),
            wording: wording.clone(),
            ip: ctx.ip.clone(),
            at: now,
        })
        .await?;
        tx.activity_insert(&NewActivity {
            lead_id,
            kind: "consent".into(),
            detail: format!(
                "Agreed to {channel}s ({}): \"{wording}\"",
                ctx.intake.source
            ),
            data: Some(serde_json::json!({"ip": ctx.ip})),
            actor_id: None,
            at: now,
        })
        .await?;
    }
    Ok(())
}

pub(crate) async fn into_pond(
    tx: &mut dyn Tx,
    lead: &Lead,
    ctx: &IntakeCtx,
    agents: Vec<i64>,
    minutes: i64,
    now: Millis,
    fx: &mut Effects,
) -> Result<()> {
    tx.pond_insert(&Pond {
        lead_id: lead.id,
        intake_id: ctx.intake.id,
        agents: agents.clone(),
        expires_at: now + minutes * 60_000,
        created_at: now,
    })
    .await?;
    for a in agents {
        notify_user(
            tx,
            a,
            lead,
            EventKind::TaskDue,
            "pond",
            &format!(
                "New lead in the pond: {} — first to claim gets it",
                display(lead)
            ),
            now,
            fx,
        )
        .await?;
    }
    Ok(())
}

fn display(lead: &Lead) -> String {
    let n = lead.full_name();
    if n.is_empty() {
        lead.phone
            .clone()
            .or(lead.email.clone())
            .unwrap_or_else(|| format!("lead {}", lead.id))
    } else {
        n
    }
}

/// A new intake and the URL of its webhook.
pub struct NewIntake {
    pub source: String,
    pub plan: Option<String>,
    pub routing: Routing,
    pub thank_you_url: Option<String>,
}

impl Engine {
    pub fn intake_url(&self, token: &str) -> String {
        format!("{}/webhooks/leads/{token}", self.config.base())
    }

    pub async fn create_intake(&self, n: NewIntake) -> Result<Intake> {
        let mut errs = Errors::default();
        if n.source.trim().is_empty() || n.source.len() > 100 {
            errs.add("source", "must be 1 to 100 characters");
        }
        if let Some(u) = &n.thank_you_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            errs.add("thank_you_url", "must be an http(s) URL");
        }
        let mut tx = self.store.write().await?;
        if let Some(p) = &n.plan
            && tx.plan(p).await?.is_none()
        {
            errs.add("plan", format!("there is no plan '{p}'"));
        }
        check_routing(tx.as_mut(), &n.routing, &mut errs).await?;
        errs.finish()?;
        let mut i = Intake {
            id: 0,
            token: random_token(),
            source: n.source.trim().to_string(),
            plan: n.plan,
            routing: serde_json::to_string(&n.routing)
                .map_err(|e| Error::Internal(e.to_string()))?,
            thank_you_url: n.thank_you_url,
            active: true,
            created_at: now_ms(),
        };
        i.id = tx.intake_insert(&i).await?;
        tx.commit().await?;
        Ok(i)
    }

    /// A lead posted to an intake webhook (SPEC §6; issue 4).
    pub async fn intake_lead(
        &self,
        token: &str,
        input: LeadInput,
        consents: Vec<(String, String)>,
        ip: Option<String>,
    ) -> Result<(Created, Intake)> {
        let intake = {
            let mut tx = self.store.read().await?;
            tx.intake_by_token(token)
                .await?
                .filter(|i| i.active)
                .ok_or(Error::NotFound)?
        };
        let routing: Routing = serde_json::from_str(&intake.routing).unwrap_or_default();
        let mut input = input;
        if input.source.as_deref().is_none_or(str::is_empty) {
            input.source = Some(intake.source.clone());
        }
        let ctx = IntakeCtx {
            intake: intake.clone(),
            routing,
            consents,
            ip,
        };
        let created = self
            .create_lead_from(None, input, Origin::Api, intake.plan.as_deref(), Some(&ctx))
            .await?;
        Ok((created, intake))
    }

    /// The first agent of the pond to claim the lead takes it, with its open tasks.
    pub async fn claim(&self, user: &User, lead_id: i64) -> Result<Lead> {
        let now = now_ms();
        let mut tx = self.store.write().await?;
        let pond = tx.pond(lead_id).await?;
        let Some(pond) = pond else {
            let lead = tx.lead(lead_id).await?.ok_or(Error::NotFound)?;
            return match lead.assigned_to {
                Some(a) if a == user.id => Ok(lead),
                // Who has another agent's lead is not an agent's business.
                Some(_) if user.role != Role::Admin => {
                    Err(Error::Conflict("already claimed by another agent".into()))
                }
                Some(a) => {
                    let who = tx.user(a).await?.map(|u| u.name).unwrap_or_default();
                    Err(Error::Conflict(format!("already claimed by {who}")))
                }
                None => Err(Error::NotFound),
            };
        };
        if !pond.agents.contains(&user.id) && user.role != Role::Admin {
            return Err(Error::NotFound);
        }
        if !tx.pond_take(lead_id).await? {
            return Err(Error::Conflict("already claimed".into()));
        }
        let mut lead = tx.lead(lead_id).await?.ok_or(Error::NotFound)?;
        lead.assigned_to = Some(user.id);
        lead.updated_at = now;
        tx.lead_save(&lead).await?;
        tx.tasks_claim(lead_id, user.id).await?;
        tx.activity_insert(&NewActivity {
            lead_id,
            kind: "claimed".into(),
            detail: format!("Claimed from the pond by {}", user.name),
            data: None,
            actor_id: Some(user.id),
            at: now,
        })
        .await?;
        tx.commit().await?;
        Ok(lead)
    }

    /// Leads waiting in this user's ponds, with their open tasks.
    pub async fn pond_for(&self, user: &User) -> Result<Vec<(Lead, Vec<Task>)>> {
        let mut tx = self.store.read().await?;
        let mut out = Vec::new();
        for p in tx.ponds_for_user(user.id).await? {
            if let Some(l) = tx.lead(p.lead_id).await? {
                let tasks = tx
                    .tasks(&TaskFilter {
                        lead_id: Some(l.id),
                        status: Some(TaskStatus::Open),
                        limit: 50,
                        ..Default::default()
                    })
                    .await?;
                out.push((l, tasks));
            }
        }
        Ok(out)
    }

    /// Pond leads nobody claimed in time: the admins are told, and the lead falls back to
    /// round-robin within the pond's group.
    pub async fn escalate_ponds(&self, now: Millis) -> Result<usize> {
        let mut tx = self.store.write().await?;
        let expired = tx.ponds_expired(now).await?;
        if expired.is_empty() {
            return Ok(0);
        }
        let admins = crate::leads::admin_ids(tx.as_mut()).await?;
        let mut fx = Effects::default();
        for p in &expired {
            if !tx.pond_take(p.lead_id).await? {
                continue;
            }
            let Some(mut lead) = tx.lead(p.lead_id).await? else {
                continue;
            };
            let agents: Vec<i64> = p.agents.clone();
            let to = if agents.is_empty() {
                admins.first().copied()
            } else {
                let n = tx.intake_round_robin_next(p.intake_id).await?;
                Some(agents[(n - 1).rem_euclid(agents.len() as i64) as usize])
            };
            lead.assigned_to = to;
            lead.updated_at = now;
            tx.lead_save(&lead).await?;
            if let Some(to) = to {
                tx.tasks_claim(lead.id, to).await?;
            }
            let mins = (now - p.created_at) / 60_000;
            for a in &admins {
                notify_user(
                    tx.as_mut(),
                    *a,
                    &lead,
                    EventKind::Escalation,
                    "pond_unclaimed",
                    &format!(
                        "{} sat unclaimed in the pond for {mins} minutes; assigned round-robin",
                        display(&lead)
                    ),
                    now,
                    &mut fx,
                )
                .await?;
            }
            tx.activity_insert(&NewActivity {
                lead_id: lead.id,
                kind: "pond_escalated".into(),
                detail: format!("Unclaimed after {mins} minutes: assigned round-robin"),
                data: None,
                actor_id: None,
                at: now,
            })
            .await?;
        }
        tx.commit().await?;
        self.apply_effects(fx);
        Ok(expired.len())
    }

    pub async fn intakes(&self) -> Result<Vec<Intake>> {
        let mut tx = self.store.read().await?;
        Ok(tx.intakes().await?)
    }

    /// The consents recorded for a lead.
    pub async fn consents(&self, lead_id: i64) -> Result<Vec<Consent>> {
        let mut tx = self.store.read().await?;
        Ok(tx.consents(lead_id).await?)
    }

    /// A lead-notification email sent to an intake (issue 4): parsed by the shipped rules,
    /// else the generic `Label: value` fallback (flagged for review); the email is kept on the
    /// lead's timeline.
    pub async fn intake_email(&self, token: &str, raw: &[u8]) -> Result<Created> {
        // An unknown token is NotFound before anything is read.
        {
            let mut tx = self.store.read().await?;
            tx.intake_by_token(token)
                .await?
                .filter(|i| i.active)
                .ok_or(Error::NotFound)?;
        }
        let parsed =
            crate::intake_email::parse_lead_email(raw, &crate::intake_email::builtin_rules())
                .map_err(|m| Error::field("body", m))?;
        let mut fields: Vec<(String, String)> = parsed.fields.clone().into_iter().collect();
        if parsed.flagged_for_review {
            fields.push(("tags".into(), "needs-review".into()));
        }
        let (input, _) = input_from_fields(&fields, true);
        let (created, _) = self.intake_lead(token, input, vec![], None).await?;
        let mut tx = self.store.write().await?;
        tx.activity_insert(&NewActivity {
            lead_id: created.lead.id,
            kind: "lead_email".into(),
            detail: format!("Lead email: {}\n\n{}", parsed.subject, parsed.text.chars().take(20_000).collect::<String>()),
            data: Some(serde_json::json!({"rule": parsed.rule, "flagged_for_review": parsed.flagged_for_review})),
            actor_id: None,
            at: now_ms(),
        })
        .await?;
        tx.commit().await?;
        Ok(created)
    }
}

async fn check_routing(tx: &mut dyn Tx, r: &Routing, errs: &mut Errors) -> Result<()> {
    let users = tx.users().await?;
    for (i, e) in r.agents.iter().enumerate() {
        if !users
            .iter()
            .any(|u| u.active && u.email.eq_ignore_ascii_case(e))
        {
            errs.add(
                &format!("routing.agents[{i}]"),
                format!("no active user '{e}'"),
            );
        }
    }
    if r.mode == RoutingMode::Agent && r.agents.len() != 1 {
        errs.add("routing.agents", "agent routing names exactly one agent");
    }
    if !(1..=1440).contains(&r.claim_minutes) {
        errs.add("routing.claim_minutes", "must be 1 to 1440 minutes");
    }
    if let Some(oh) = &r.off_hours {
        if parse_local_time(&oh.start).is_err() {
            errs.add(
                "routing.off_hours.start",
                format!("'{}' is not a time like 08:00", oh.start),
            );
        }
        if parse_local_time(&oh.end).is_err() {
            errs.add(
                "routing.off_hours.end",
                format!("'{}' is not a time like 20:00", oh.end),
            );
        }
        if !users
            .iter()
            .any(|u| u.active && u.email.eq_ignore_ascii_case(&oh.agent))
        {
            errs.add(
                "routing.off_hours.agent",
                format!("no active user '{}'", oh.agent),
            );
        }
    }
    Ok(())
}

/// Maps a web form's or a source's field names onto a lead (issue 4 item 1); every other
/// field is kept in the notes. With `lenient` (forms), an invalid phone or email is kept as a
/// note and the lead tagged for review instead of refusing the lead. Returns the input and
/// the consents (`consent_text`, `consent_email` checkboxes with their wording).
pub fn input_from_fields(
    fields: &[(String, String)],
    lenient: bool,
) -> (LeadInput, Vec<(String, String)>) {
    let mut input = LeadInput::default();
    let mut notes: Vec<String> = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    let mut consents = Vec::new();
    let get = |k: &str| {
        fields
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    for (k, v) in fields {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match k.to_ascii_lowercase().as_str() {
            "first_name" | "firstname" => input.first_name = Some(v.into()),
            "last_name" | "lastname" => input.last_name = Some(v.into()),
            "name" | "full_name" | "fullname" => input.name = Some(v.into()),
            "email" | "email_address" => input.email = Some(Some(v.into())),
            "phone" | "phone_number" | "mobile" | "tel" => input.phone = Some(Some(v.into())),
            "message" | "comments" | "comment" => notes.push(format!("Message: {v}")),
            "property_address" | "property" | "address" => input.property_address = Some(v.into()),
            "price" => notes.push(format!("Price: {v}")),
            "source" => input.source = Some(v.into()),
            "external_id" => input.external_id = Some(Some(v.into())),
            "timezone" => input.timezone = Some(v.into()),
            "level" => input.level = Some(v.into()),
            "tags" => tags.extend(
                v.split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty()),
            ),
            "consent_text"
            | "consent_email"
            | "consent_text_wording"
            | "consent_email_wording"
            | "hp_website" => {}
            other => notes.push(format!("{other}: {v}")),
        }
    }
    for ch in ["text", "email"] {
        let agreed = get(&format!("consent_{ch}")).is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "on" | "yes" | "true" | "1")
        });
        if agreed {
            let wording = get(&format!("consent_{ch}_wording"))
                .unwrap_or_else(|| format!("I agree to receive {ch}s about my inquiry."));
            consents.push((ch.to_string(), wording));
        }
    }
    if lenient {
        if let Some(Some(p)) = &input.phone
            && relentless_core::validate::phone(p, "US").is_err()
            && !p.trim_start().starts_with('+')
        {
            notes.push(format!("Phone as entered (not a valid number): {p}"));
            tags.push("needs-review".into());
            input.phone = None;
        }
        if let Some(Some(e)) = &input.email
            && relentless_core::validate::email(e).is_err()
        {
            notes.push(format!("Email as entered (not a valid address): {e}"));
            tags.push("needs-review".into());
            input.email = None;
        }
    }
    if !notes.is_empty() {
        input.notes = Some(notes.join("\n"));
    }
    if !tags.is_empty() {
        input.tags = Some(tags);
    }
    (input, consents)
}

/// A lead needs an email or a phone: the error names both.
pub fn needs_contact(input: &LeadInput) -> Option<Error> {
    let has = |v: &Option<Option<String>>| v.as_ref().is_some_and(|x| x.is_some());
    (!has(&input.email) && !has(&input.phone)).then(|| {
        Error::Invalid(vec![
            FieldError::new("email", "a lead needs an email or a phone"),
            FieldError::new("phone", "a lead needs an email or a phone"),
        ])
    })
}

impl Engine {
    /// Team context for callers outside the engine (the web layer's routing previews).
    pub async fn team_ctx(&self) -> Result<TeamCtx> {
        let mut tx = self.store.read().await?;
        team_ctx(tx.as_mut()).await
    }
}
