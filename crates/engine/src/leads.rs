//! Leads: intake with merge, enrollment in plans, answers (SPEC §5.3), activities, erasure
//! (SPEC §5.8). Every operation here is one transaction.

use crate::error::{Errors, FieldError};
use crate::groups::{Groups, Written};
use crate::{Engine, Error, Result, TeamCtx, load_plan, now_ms, team_ctx, ts};
use relentless_core::plan::Plan;
use relentless_core::rules::suppression_hash;
use relentless_core::schedule::{self, PlanContext, next_open};
use relentless_core::types::*;
use relentless_core::validate;
use relentless_store::*;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Where a lead came from: decides which plans start (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// API, intake webhook or inbound text: `speed-to-lead` then the level's plan.
    Api,
    /// CSV import: no plan unless one is named.
    Import,
    /// Demo data: plans start in the past.
    Demo,
}

/// A lead as a client sends it: every field optional (a PATCH sends only what changes).
#[derive(Debug, Clone, Default)]
pub struct LeadInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub timezone: Option<String>,
    pub region: Option<Option<String>>,
    pub source: Option<String>,
    pub level: Option<String>,
    pub stage: Option<String>,
    pub preferred_channel: Option<Option<String>>,
    pub assigned_to: Option<String>,
    pub external_id: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub notes: Option<String>,
    pub property_address: Option<String>,
    pub sms_opt_out: Option<bool>,
    pub email_opt_out: Option<bool>,
    pub do_not_call: Option<bool>,
    /// Fields that were of the wrong type or unknown, reported with the rest.
    pub parse_errors: Vec<FieldError>,
}

fn opt_string(errs: &mut Errors, m: &Map<String, Value>, k: &str) -> Option<Option<String>> {
    match m.get(k) {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.trim().is_empty() => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(Value::Number(n)) if k == "assigned_to" || k == "external_id" || k == "phone" => {
            Some(Some(n.to_string()))
        }
        Some(other) => {
            errs.add(k, format!("must be a string, not {}", kind_of(other)));
            None
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

const LEAD_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "name",
    "email",
    "phone",
    "timezone",
    "region",
    "source",
    "level",
    "stage",
    "preferred_channel",
    "assigned_to",
    "external_id",
    "tags",
    "notes",
    "property_address",
    "sms_opt_out",
    "email_opt_out",
    "do_not_call",
];
/// Fields of the lead's JSON that a client may echo back but cannot set.
const READ_ONLY: &[&str] = &[
    "id",
    "attempts",
    "created_at",
    "next_touch_at",
    "enrollments",
    "merged",
    "updated_at",
];

impl LeadInput {
    /// Reads a JSON object, naming every field of the wrong type or unknown.
    pub fn from_json(v: &Value) -> Result<LeadInput> {
        let Value::Object(m) = v else {
            return Err(Error::field(
                "body",
                format!("must be a JSON object, not {}", kind_of(v)),
            ));
        };
        let mut errs = Errors::default();
        for k in m.keys() {
            if !LEAD_FIELDS.contains(&k.as_str()) && !READ_ONLY.contains(&k.as_str()) {
                errs.add(k, "is not a field of a lead");
            }
        }
        let s = |errs: &mut Errors, k: &str| opt_string(errs, m, k).map(|o| o.unwrap_or_default());
        let b = |errs: &mut Errors, k: &str| match m.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                errs.add(k, format!("must be true or false, not {}", kind_of(other)));
                None
            }
        };
        let tags = match m.get("tags") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => {
                let mut out = Vec::new();
                for (i, t) in a.iter().enumerate() {
                    match t {
                        Value::String(s) => out.push(s.clone()),
                        other => errs.add(
                            &format!("tags[{i}]"),
                            format!("must be a string, not {}", kind_of(other)),
                        ),
                    }
                }
                Some(out)
            }
            Some(Value::String(s)) => Some(
                s.split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect(),
            ),
            Some(other) => {
                errs.add(
                    "tags",
                    format!("must be a list of strings, not {}", kind_of(other)),
                );
                None
            }
        };
        let input = LeadInput {
            first_name: s(&mut errs, "first_name"),
            last_name: s(&mut errs, "last_name"),
            name: s(&mut errs, "name"),
            email: opt_string(&mut errs, m, "email"),
            phone: opt_string(&mut errs, m, "phone"),
            timezone: s(&mut errs, "timezone"),
            region: opt_string(&mut errs, m, "region"),
            source: s(&mut errs, "source"),
            level: s(&mut errs, "level"),
            stage: s(&mut errs, "stage"),
            preferred_channel: opt_string(&mut errs, m, "preferred_channel"),
            assigned_to: s(&mut errs, "assigned_to"),
            external_id: opt_string(&mut errs, m, "external_id"),
            tags,
            notes: s(&mut errs, "notes"),
            property_address: s(&mut errs, "property_address"),
            sms_opt_out: b(&mut errs, "sms_opt_out"),
            email_opt_out: b(&mut errs, "email_opt_out"),
            do_not_call: b(&mut errs, "do_not_call"),
            parse_errors: vec![],
        };
        Ok(LeadInput {
            parse_errors: errs.0,
            ..input
        })
    }
}

/// Splits "Jordan Rivera" into first and last name.
fn split_name(full: &str) -> (String, String) {
    let full = full.trim();
    match full.rsplit_once(' ') {
        Some((f, l)) => (f.trim().to_string(), l.trim().to_string()),
        None => (full.to_string(), String::new()),
    }
}

/// Applies input onto a lead (new or existing), validating every field; all errors at once.
async fn apply_input(
    tx: &mut dyn Tx,
    team: &TeamCtx,
    lead: &mut Lead,
    input: &LeadInput,
    creating: bool,
) -> Result<()> {
    let mut errs = Errors(input.parse_errors.clone());
    if let Some(n) = &input.name
        && input.first_name.is_none()
        && input.last_name.is_none()
        && let Some(n) = errs.check("name", validate::name(n))
    {
        (lead.first_name, lead.last_name) = split_name(&n);
    }
    if let Some(v) = &input.first_name
        && let Some(v) = errs.check("first_name", validate::name(v))
    {
        lead.first_name = v;
    }
    if let Some(v) = &input.last_name
        && let Some(v) = errs.check("last_name", validate::name(v))
    {
        lead.last_name = v;
    }
    if let Some(v) = &input.email {
        lead.email = match v {
            None => None,
            Some(e) => errs.check("email", validate::email(e)),
        };
    }
    let mut phone_changed = false;
    if let Some(v) = &input.phone {
        phone_changed = true;
        lead.phone = match v {
            None => None,
            Some(p) => errs.check("phone", validate::phone(p, &team.team.country)),
        };
        lead.phone_bad = false;
    }
    match &input.timezone {
        Some(tz) if !tz.is_empty() && errs.check("timezone", validate::timezone(tz)).is_some() => {
            lead.timezone = tz.trim().to_string();
        }
        _ if creating || (phone_changed && input.timezone.is_none()) => {
            // Explicit zone, else the one zone the phone number's prefix maps to, else the team's.
            lead.timezone = lead
                .phone
                .as_deref()
                .and_then(validate::timezone_for_phone)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    if creating {
                        team.team.timezone.clone()
                    } else {
                        lead.timezone.clone()
                    }
                });
        }
        _ => {}
    }
    if let Some(v) = &input.region {
        lead.region = match v {
            None => None,
            Some(r) => Some(r.trim().to_ascii_uppercase()).filter(|r| {
                r.len() <= 10 && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }),
        };
        if v.is_some() && lead.region.is_none() {
            errs.add("region", "must be a state or province code like TX");
        }
    }
    if let Some(v) = &input.source {
        if v.len() > 200 {
            errs.add("source", "must be at most 200 characters");
        } else {
            lead.source = v.trim().to_string();
        }
    }
    if let Some(v) = &input.level
        && let Some(l) = errs.check("level", v.parse::<Level>().map_err(|e| e.to_string()))
    {
        lead.level = l;
    }
    if let Some(v) = &input.stage
        && let Some(s) = errs.check("stage", v.parse::<Stage>().map_err(|e| e.to_string()))
    {
        lead.stage = s;
    }
    if let Some(v) = &input.preferred_channel {
        lead.preferred_channel = match v {
            None => None,
            Some(c) => match c.parse::<Channel>() {
                Ok(c) if c.is_lead_preference() => Some(c.as_str().to_string()),
                _ => {
                    errs.add(
                        "preferred_channel",
                        format!("'{c}' is not one of: call text email video"),
                    );
                    None
                }
            },
        };
    }
    if let Some(v) = &input.assigned_to {
        match find_user(tx, v).await? {
            Some(u) if u.active => lead.assigned_to = Some(u.id),
            Some(_) => errs.add("assigned_to", format!("{v} is deactivated")),
            None => errs.add("assigned_to", format!("no user '{v}'")),
        }
    }
    if let Some(v) = &input.external_id {
        lead.external_id = v.as_ref().map(|s| s.trim().to_string());
        if lead.external_id.as_ref().is_some_and(|s| s.len() > 200) {
            errs.add("external_id", "must be at most 200 characters");
        }
    }
    if let Some(tags) = &input.tags {
        if tags.len() > 50 || tags.iter().any(|t| t.len() > 100) {
            errs.add("tags", "at most 50 tags of at most 100 characters");
        } else {
            lead.tags = tags
                .iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
        }
    }
    if let Some(v) = &input.notes {
        if v.len() > 20_000 {
            errs.add("notes", "must be at most 20000 characters");
        } else {
            lead.notes = v.clone();
        }
    }
    if let Some(v) = &input.property_address {
        lead.property_address = v.trim().chars().take(500).collect();
    }
    if let Some(v) = input.sms_opt_out {
        lead.sms_opt_out = v;
    }
    if let Some(v) = input.email_opt_out {
        lead.email_opt_out = v;
    }
    if let Some(v) = input.do_not_call {
        lead.do_not_call = v;
    }
    if creating
        && lead.email.is_none()
        && lead.phone.is_none()
        && errs
            .0
            .iter()
            .all(|e| e.field != "email" && e.field != "phone")
        && input.email.is_none()
        && input.phone.is_none()
    {
        errs.add("email", "a lead needs an email or a phone");
        errs.add("phone", "a lead needs an email or a phone");
    }
    errs.finish()
}

/// A user named by email or id.
pub async fn find_user(tx: &mut dyn Tx, key: &str) -> Result<Option<User>> {
    let key = key.trim();
    if key.eq_ignore_ascii_case("me") {
        return Ok(None);
    }
    if let Ok(id) = key.parse::<i64>() {
        return Ok(tx.user(id).await?);
    }
    Ok(tx.user_by_email(key).await?)
}

/// The result of creating a lead.
pub struct Created {
    pub lead: Lead,
    pub merged: bool,
}

/// What a change to leads should wake or tell.
#[derive(Default)]
pub(crate) struct Effects {
    pub notifications: Vec<Notification>,
    pub wake: bool,
    /// Texts or emails to agents who asked to be alerted that way, sent after the commit.
    pub alerts: Vec<crate::channels::Message>,
}

impl Engine {
    pub(crate) fn apply_effects(&self, fx: Effects) {
        for n in fx.notifications {
            self.bus.publish(n);
        }
        if fx.wake {
            self.wake.notify_one();
        }
        for alert in fx.alerts {
            let engine = self.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.send_direct(alert).await {
                    tracing::warn!(error = %e, "agent alert not sent");
                }
            });
        }
    }

    /// Creates a lead, or merges it into the lead with the same external id, email or phone.
    /// A new lead starts `speed-to-lead` and its level's plan (or `plan` instead of the
    /// level's plan); an import starts only `plan`. A merge counts as engagement (SPEC §4).
    pub async fn create_lead(
        &self,
        actor: Option<&User>,
        input: LeadInput,
        origin: Origin,
        plan: Option<&str>,
    ) -> Result<Created> {
        self.create_lead_from(actor, input, origin, plan, None)
            .await
    }

    /// `create_lead` for a lead that came through an intake: its routing decides the agent
    /// (or the pond), and the consents it recorded are kept with the lead.
    pub async fn create_lead_from(
        &self,
        actor: Option<&User>,
        input: LeadInput,
        origin: Origin,
        plan: Option<&str>,
        intake: Option<&crate::intake::IntakeCtx>,
    ) -> Result<Created> {
        let new = self.new_lead(actor, input, origin, plan, intake).await?;
        self.new_leads.submit(self, new).await
    }

    /// The read half of [`Engine::create_lead_from`].
    async fn new_lead(
        &self,
        actor: Option<&User>,
        input: LeadInput,
        origin: Origin,
        plan: Option<&str>,
        intake: Option<&crate::intake::IntakeCtx>,
    ) -> Result<NewLead> {
        let now = now_ms();
        // What needs no lock is read and worked out first, on a reader: the team, the input's
        // validation (phone parsing included) and the plans. Only what must be decided under
        // the single SQLite writer is left for the write transaction (lead creations per
        // second, issue 7). Reading the team or a plan a moment before the write is as if the
        // lead had come in that moment earlier.
        let mut rtx = self.store.read().await?;
        let team = team_ctx(rtx.as_mut()).await?;
        let mut lead = blank_lead(&team, now);
        apply_input(rtx.as_mut(), &team, &mut lead, &input, true).await?;
        let mut slugs: Vec<String> = Vec::new();
        match origin {
            Origin::Api | Origin::Demo => {
                slugs.push("speed-to-lead".into());
                slugs.push(
                    plan.map(str::to_string)
                        .unwrap_or_else(|| lead.level.plan_slug().to_string()),
                );
            }
            Origin::Import => slugs.extend(plan.map(str::to_string)),
        }
        // A plan that does not exist is refused here (`load_plan`: field `plan`).
        let mut plans = Vec::with_capacity(slugs.len());
        for slug in &slugs {
            let (plan, version) = load_plan(rtx.as_mut(), slug).await?;
            plans.push((plan, version));
        }
        drop(rtx);
        let layouts = lay_out(&slugs, &plans, &team, &lead, now);
        Ok(NewLead {
            actor: actor.cloned(),
            input,
            origin,
            intake: intake.cloned(),
            team,
            lead,
            slugs,
            plans,
            layouts,
            now,
        })
    }

    /// The write half of [`Engine::create_lead_from`], inside a group's transaction (see
    /// [`lead_groups`]): everything that must be decided under the database's writer (a match
    /// to merge into, suppressions, assignment) and the writes.
    async fn lead_written(
        &self,
        tx: &mut dyn Tx,
        new: &NewLead,
        group: &mut LeadGroupWrites,
        fx: &mut Effects,
    ) -> Result<Created> {
        let NewLead {
            actor,
            input,
            origin,
            intake,
            team,
            lead,
            slugs,
            plans,
            layouts,
            now,
        } = new;
        let (actor, intake, origin, now) = (actor.as_ref(), intake.as_ref(), *origin, *now);
        let (mut lead, mut layouts) = (lead.clone(), layouts.clone());
        // A user named in the input may have been deactivated since it was read.
        if input.assigned_to.is_some()
            && let Some(id) = lead.assigned_to
            && !tx.user(id).await?.is_some_and(|u| u.active)
        {
            return Err(Error::field(
                "assigned_to",
                format!(
                    "{} is deactivated",
                    input.assigned_to.as_deref().unwrap_or_default()
                ),
            ));
        }
        let email_key = lead.email.as_ref().map(|e| e.to_lowercase());
        if let Some(mut existing) = tx
            .lead_match(
                lead.external_id.as_deref(),
                email_key.as_deref(),
                lead.phone.as_deref(),
            )
            .await?
        {
            // An agent may not reach another agent's lead by re-submitting its email or
            // phone: nothing is merged, nothing about that lead is shown (issue 7).
            if let Some(a) = actor
                && a.role != Role::Admin
                && existing.assigned_to != Some(a.id)
            {
                return Err(Error::Conflict(
                    "a lead with this external id, email or phone already exists and is not \
                     yours; ask an admin to reassign it"
                        .into(),
                ));
            }
            merge_into(&mut existing, &lead, input);
            existing.updated_at = now;
            tx.lead_save(&existing).await?;
            if let Some(ctx) = intake {
                crate::intake::record_consents(tx, existing.id, ctx, now).await?;
            }
            // With the group's other timeline entries, so it follows a "created" of the same
            // group written in the same millisecond.
            group.activities.push(NewActivity {
                lead_id: existing.id,
                kind: "inquiry".into(),
                detail: format!(
                    "Inquired again{}",
                    if lead.source.is_empty() {
                        String::new()
                    } else {
                        format!(" via {}", lead.source)
                    }
                ),
                data: None,
                actor_id: actor.map(|a| a.id),
                at: now,
            });
            if origin != Origin::Import {
                engagement(
                    tx,
                    team,
                    &mut existing,
                    "inquiry",
                    "inquired again",
                    now,
                    fx,
                )
                .await?;
            }
            let lead = tx.lead(existing.id).await?.ok_or(Error::NotFound)?;
            return Ok(Created { lead, merged: true });
        }
        // Erased leads stay opted out (SPEC §5.8).
        let phone_hash = lead.phone.as_ref().map(|p| suppression_hash("phone", p));
        let email_hash = email_key.as_ref().map(|e| suppression_hash("email", e));
        let hashes: Vec<String> = phone_hash.iter().chain(&email_hash).cloned().collect();
        let suppressed = tx.suppressed_among(&hashes).await?;
        if !suppressed.is_empty() {
            if phone_hash.is_some_and(|h| suppressed.contains(&h)) {
                lead.sms_opt_out = true;
                lead.do_not_call = true;
            }
            if email_hash.is_some_and(|h| suppressed.contains(&h)) {
                lead.email_opt_out = true;
            }
            // Channels the lead cannot be reached on change how its plans are laid out.
            layouts = lay_out(slugs, plans, team, &lead, now);
        }
        let mut pond = None;
        if let (None, Some(ctx)) = (lead.assigned_to, intake) {
            match crate::intake::route(tx, team, ctx, now).await? {
                crate::intake::Routed::User(id) => lead.assigned_to = Some(id),
                crate::intake::Routed::Pond { agents, minutes } => pond = Some((agents, minutes)),
                crate::intake::Routed::Default => {}
            }
        }
        if lead.assigned_to.is_none() && pond.is_none() {
            lead.assigned_to = assign(tx, actor, &mut group.users).await?;
        }
        lead.next_touch_at = layouts.iter().flatten().map(|t| t.due_at).min();
        let id = tx.lead_insert(&lead).await?;
        lead.id = id;
        if let Some(ctx) = intake {
            crate::intake::record_consents(tx, id, ctx, now).await?;
        }
        if let (Some((agents, minutes)), Some(ctx)) = (pond, intake) {
            crate::intake::into_pond(tx, &lead, ctx, agents, minutes, now, fx).await?;
        }
        group.activities.push(NewActivity {
            lead_id: id,
            kind: "created".into(),
            detail: format!(
                "Lead created{}",
                if lead.source.is_empty() {
                    String::new()
                } else {
                    format!(" from {}", lead.source)
                }
            ),
            data: None,
            actor_id: actor.map(|a| a.id),
            at: now,
        });
        for ((slug, (plan, version)), touches) in slugs.iter().zip(plans.iter()).zip(layouts) {
            let steps = touches.len();
            group
                .activities
                .push(plan_started(id, slug, &plan.spec.name, steps, now));
            group
                .enrollments
                .push((id, slug.clone(), *version, now, touches));
        }
        fx.wake = true;
        Ok(Created {
            lead,
            merged: false,
        })
    }

    /// A lead the user may see: agents see their own and those waiting in a pond of theirs,
    /// admins all; anything else is NotFound.
    pub async fn lead_for(&self, user: &User, id: i64) -> Result<Lead> {
        let mut tx = self.store.read().await?;
        let lead = tx.lead(id).await?;
        if let Some(l) = &lead
            && l.assigned_to.is_none()
            && tx
                .pond(l.id)
                .await?
                .is_some_and(|p| p.agents.contains(&user.id))
        {
            return Ok(l.clone());
        }
        visible(lead, user)
    }

    /// PATCH: changes the given fields. A stage of client/closed/lost ends active plans.
    pub async fn update_lead(&self, user: &User, id: i64, input: LeadInput) -> Result<Lead> {
        let now = now_ms();
        let mut tx = self.store.write().await?;
        let team = team_ctx(tx.as_mut()).await?;
        let mut lead = visible(tx.lead(id).await?, user)?;
        let before = lead.clone();
        if input.assigned_to.is_some() && user.role != Role::Admin {
            return Err(Error::field(
                "assigned_to",
                "only an admin can reassign a lead",
            ));
        }
        apply_input(tx.as_mut(), &team, &mut lead, &input, false).await?;
        lead.updated_at = now;
        tx.lead_save(&lead).await?;
        let mut changes = Vec::new();
        if before.stage != lead.stage {
            changes.push(format!("stage {} → {}", before.stage, lead.stage));
        }
        if before.level != lead.level {
            changes.push(format!("level {} → {}", before.level, lead.level));
        }
        for (name, was, is) in [
            ("texts", before.sms_opt_out, lead.sms_opt_out),
            ("emails", before.email_opt_out, lead.email_opt_out),
            ("calls", before.do_not_call, lead.do_not_call),
        ] {
            if was != is {
                changes.push(if is {
                    format!("opted out of {name}")
                } else {
                    format!("opted back in to {name}")
                });
            }
        }
        if before.assigned_to != lead.assigned_to {
            if let Some(to) = lead.assigned_to {
                // Open tasks follow the lead.
                sqlx_free_reassign_tasks(tx.as_mut(), lead.id, to).await?;
            }
            changes.push("reassigned".into());
        }
        if !changes.is_empty() {
            tx.activity_insert(&NewActivity {
                lead_id: id,
                kind: "updated".into(),
                detail: changes.join("; "),
                data: None,
                actor_id: Some(user.id),
                at: now,
            })
            .await?;
        }
        if before.stage != lead.stage
            && matches!(lead.stage, Stage::Client | Stage::Closed | Stage::Lost)
        {
            stop_all(tx.as_mut(), id, &format!("stage {}", lead.stage), now).await?;
        }
        tx.leads_refresh_next(&[id]).await?;
        let lead = tx.lead(id).await?.ok_or(Error::NotFound)?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(lead)
    }

    /// Erases a lead's personal data, keeping one-way hashes of its phone and email so a
    /// re-submitted lead stays opted out (SPEC §5.8).
    pub async fn erase_lead(&self, user: &User, id: i64) -> Result<()> {
        let now = now_ms();
        let mut tx = self.store.write().await?;
        let lead = visible(tx.lead(id).await?, user)?;
        if let Some(p) = &lead.phone {
            tx.suppress(&suppression_hash("phone", p), "phone", now)
                .await?;
        }
        if let Some(e) = &lead.email {
            tx.suppress(&suppression_hash("email", &e.to_lowercase()), "email", now)
                .await?;
        }
        tx.lead_delete(id).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Starts a plan for a lead now.
    pub async fn enroll(&self, user: &User, lead_id: i64, plan: &str) -> Result<Enrollment> {
        let now = now_ms();
        let mut tx = self.store.write().await?;
        let team = team_ctx(tx.as_mut()).await?;
        let lead = visible(tx.lead(lead_id).await?, user)?;
        if tx
            .enrollments(lead_id)
            .await?
            .iter()
            .any(|e| e.plan == plan && e.state == EnrollmentState::Active)
        {
            return Err(Error::Conflict(format!(
                "the lead is already in the plan '{plan}'"
            )));
        }
        let eid = enroll_in(tx.as_mut(), &team, &lead, plan, now, None, &[]).await?;
        let e = tx
            .enrollments(lead_id)
            .await?
            .into_iter()
            .find(|e| e.id == eid)
            .ok_or(Error::NotFound)?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(e)
    }

    /// Pauses or resumes a plan for a lead. While paused its touches are held, not skipped;
    /// on resume each is due at its planned time, or now when that has passed.
    pub async fn pause(&self, user: &User, lead_id: i64, plan: &str, paused: bool) -> Result<()> {
        let now = now_ms();
        let mut tx = self.store.write().await?;
        visible(tx.lead(lead_id).await?, user)?;
        let from = if paused {
            EnrollmentState::Active
        } else {
            EnrollmentState::Paused
        };
        let found: Vec<Enrollment> = tx
            .enrollments(lead_id)
            .await?
            .into_iter()
            .filter(|e| e.plan == plan && e.state == from)
            .collect();
        if found.is_empty() {
            return Err(Error::field(
                "state",
                format!("the lead has no {from} enrollment in '{plan}'"),
            ));
        }
        for e in found {
            tx.enrollment_pause(e.id, paused, now).await?;
            tx.activity_insert(&NewActivity {
                lead_id,
                kind: if paused {
                    "plan_paused"
                } else {
                    "plan_resumed"
                }
                .into(),
                detail: format!("Plan {plan} {}", if paused { "paused" } else { "resumed" }),
                data: None,
                actor_id: Some(user.id),
                at: now,
            })
            .await?;
        }
        tx.leads_refresh_next(&[lead_id]).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Stops a plan for a lead; its scheduled touches are cancelled.
    pub async fn unenroll(&self, user: &User, lead_id: i64, plan: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.store.write().await?;
        visible(tx.lead(lead_id).await?, user)?;
        let active: Vec<Enrollment> = tx
            .enrollments(lead_id)
            .await?
            .into_iter()
            .filter(|e| e.plan == plan && e.state == EnrollmentState::Active)
            .collect();
        if active.is_empty() {
            return Err(Error::NotFound);
        }
        for e in active {
            tx.enrollment_cancel_touches(e.id, "stopped by the agent", now)
                .await?;
            tx.enrollment_end(
                e.id,
                EnrollmentState::Stopped,
                Some("stopped by the agent"),
                now,
            )
            .await?;
            tx.activity_insert(&NewActivity {
                lead_id,
                kind: "plan_stopped".into(),
                detail: format!("Plan {plan} stopped"),
                data: None,
                actor_id: Some(user.id),
                at: now,
            })
            .await?;
        }
        tx.leads_refresh_next(&[lead_id]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The agent logs a call, a meeting or a note. A call is an attempt; `connected` is an
    /// answer (SPEC §5.3). A meeting starts `meeting-follow-up` from its time.
    pub async fn log_activity(
        &self,
        user: &User,
        lead_id: i64,
        a: ActivityInput,
    ) -> Result<Activity> {
        let now = now_ms();
        let at = a.at.unwrap_or(now);
        let mut tx = self.store.write().await?;
        let team = team_ctx(tx.as_mut()).await?;
        let mut lead = visible(tx.lead(lead_id).await?, user)?;
        let mut fx = Effects::default();
        let detail = match a.kind {
            ActivityKind::Call => {
                let outcome = a.outcome.unwrap_or(Outcome::Done);
                count_attempt(&mut lead, at, true);
                if outcome == Outcome::BadNumber {
                    lead.phone_bad = true;
                }
                lead.updated_at = now;
                tx.lead_save(&lead).await?;
                format!("Call logged: {}", outcome.as_str().replace('_', " "))
            }
            ActivityKind::Meeting => "Meeting".to_string(),
            ActivityKind::Note => "Note".to_string(),
        };
        let id = tx
            .activity_insert(&NewActivity {
                lead_id,
                kind: a.kind.as_str().into(),
                detail: match &a.note {
                    Some(n) if !n.is_empty() => format!("{detail}: {n}"),
                    _ => detail,
                },
                data: Some(serde_json::json!({"outcome": a.outcome.map(|o| o.as_str()), "promised_reply_by": a.promised_reply_by.map(|p| ts(p).to_string())})),
                actor_id: Some(user.id),
                at,
            })
            .await?;
        match a.kind {
            ActivityKind::Call if a.outcome == Some(Outcome::Connected) => {
                answer(
                    tx.as_mut(),
                    &team,
                    &mut lead,
                    Channel::Call,
                    "Connected on a call",
                    at.max(now),
                    &mut fx,
                )
                .await?;
            }
            ActivityKind::Meeting => {
                // A lead you have met gets the meeting follow-up, not more "just checking in".
                stop_all(tx.as_mut(), lead_id, "meeting", now).await?;
                let mut lead = tx.lead(lead_id).await?.ok_or(Error::NotFound)?;
                if matches!(
                    lead.stage,
                    Stage::New | Stage::Attempting | Stage::Contacted
                ) {
                    lead.stage = Stage::Appointment;
                }
                lead.updated_at = now;
                tx.lead_save(&lead).await?;
                enroll_in(
                    tx.as_mut(),
                    &team,
                    &lead,
                    "meeting-follow-up",
                    at,
                    a.promised_reply_by,
                    &[],
                )
                .await?;
            }
            _ => {}
        }
        tx.leads_refresh_next(&[lead_id]).await?;
        let act = tx
            .timeline(lead_id, Some(id + 1), 1)
            .await?
            .into_iter()
            .next()
            .ok_or(Error::NotFound)?;
        tx.commit().await?;
        fx.wake = true;
        self.apply_effects(fx);
        Ok(act)
    }

    /// An answer from the lead arrived (inbound text or email): SPEC §5.3.
    pub async fn record_reply(&self, lead_id: i64, channel: Channel, detail: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.store.write().await?;
        let team = team_ctx(tx.as_mut()).await?;
        let mut lead = tx.lead(lead_id).await?.ok_or(Error::NotFound)?;
        let mut fx = Effects::default();
        tx.activity_insert(&NewActivity {
            lead_id,
            kind: "reply".into(),
            detail: detail.to_string(),
            data: None,
            actor_id: None,
            at: now,
        })
        .await?;
        answer(tx.as_mut(), &team, &mut lead, channel, detail, now, &mut fx).await?;
        tx.leads_refresh_next(&[lead_id]).await?;
        tx.commit().await?;
        self.apply_effects(fx);
        Ok(())
    }

    /// An open, click or video view by a person (SPEC §5.5).
    pub async fn record_engagement(&self, lead_id: i64, kind: &str, detail: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.store.write().await?;
        let team = team_ctx(tx.as_mut()).await?;
        let mut lead = tx.lead(lead_id).await?.ok_or(Error::NotFound)?;
        let mut fx = Effects::default();
        tx.activity_insert(&NewActivity {
            lead_id,
            kind: kind.into(),
            detail: detail.to_string(),
            data: None,
            actor_id: None,
            at: now,
        })
        .await?;
        engagement(tx.as_mut(), &team, &mut lead, kind, detail, now, &mut fx).await?;
        tx.commit().await?;
        self.apply_effects(fx);
        Ok(())
    }
}

pub(crate) type LeadGroups = Groups<NewLead, Created>;

/// New leads are written in groups (see [`crate::groups`]): those that arrive together share
/// one transaction and one commit. A lead that fails rolls its group back; each is then
/// written alone and the failing one gets its own error.
pub(crate) fn lead_groups() -> LeadGroups {
    Groups::new(
        |engine: Engine, news: Arc<Vec<NewLead>>| -> Written<Created> {
            Box::pin(async move {
                let mut tx = engine.store.write().await?;
                let mut fx = Effects::default();
                let mut group = LeadGroupWrites::default();
                let mut created = Vec::with_capacity(news.len());
                for new in news.iter() {
                    let c = engine.lead_written(tx.as_mut(), new, &mut group, &mut fx);
                    created.push(c.await?);
                }
                group.write(tx.as_mut()).await?;
                // Every row of the new leads is written but not committed.
                engine.config.fault_point("create_lead:before_commit");
                tx.commit().await?;
                engine.apply_effects(fx);
                let new = created.iter().filter(|c| !c.merged).count();
                metrics::counter!("relentless_leads_created_total").increment(new as u64);
                Ok(created.into_iter().map(Ok).collect())
            })
        },
    )
}

/// What a group of new leads writes once for all just before its commit, because nothing in
/// the group reads it back (each lead's plans with their touches, timeline entries); and the
/// team's users, read once.
#[derive(Default)]
pub(crate) struct LeadGroupWrites {
    /// (lead, plan, version, started at, touches)
    enrollments: Vec<(i64, String, i64, Millis, Vec<NewTouch>)>,
    activities: Vec<NewActivity>,
    users: Option<Vec<User>>,
}

impl LeadGroupWrites {
    async fn write(&self, tx: &mut dyn Tx) -> Result<()> {
        let rows: Vec<NewEnrollment> = self
            .enrollments
            .iter()
            .map(
                |(lead_id, plan, version, started_at, touches)| NewEnrollment {
                    lead_id: *lead_id,
                    plan,
                    version: *version,
                    started_at: *started_at,
                    touches,
                },
            )
            .collect();
        tx.enrollments_insert(&rows).await?;
        tx.activities_insert(&self.activities).await?;
        Ok(())
    }
}

/// A new lead, validated and laid out, on its way to the writer.
pub(crate) struct NewLead {
    actor: Option<User>,
    input: LeadInput,
    origin: Origin,
    intake: Option<crate::intake::IntakeCtx>,
    team: TeamCtx,
    lead: Lead,
    slugs: Vec<String>,
    plans: Vec<(Plan, i64)>,
    layouts: Vec<Vec<NewTouch>>,
    now: Millis,
}

/// The touches of each of a new lead's plans, started together at `now`.
fn lay_out(
    slugs: &[String],
    plans: &[(Plan, i64)],
    team: &TeamCtx,
    lead: &Lead,
    now: Millis,
) -> Vec<Vec<NewTouch>> {
    let started: Vec<&str> = slugs.iter().map(String::as_str).collect();
    plans
        .iter()
        .map(|(plan, _)| plan_for(plan, team, lead, now, None, &started))
        .collect()
}

/// An activity the agent logs.
#[derive(Debug, Clone)]
pub struct ActivityInput {
    pub kind: ActivityKind,
    pub outcome: Option<Outcome>,
    pub note: Option<String>,
    pub at: Option<Millis>,
    pub promised_reply_by: Option<Millis>,
}

pub(crate) fn blank_lead(team: &TeamCtx, now: Millis) -> Lead {
    Lead {
        id: 0,
        first_name: String::new(),
        last_name: String::new(),
        email: None,
        phone: None,
        timezone: team.team.timezone.clone(),
        region: None,
        source: String::new(),
        level: Level::Warm,
        stage: Stage::New,
        preferred_channel: None,
        assigned_to: None,
        external_id: None,
        tags: vec![],
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
        created_at: now,
        updated_at: now,
    }
}

/// Fills what the existing lead lacks from the new submission; never drops what it had.
fn merge_into(existing: &mut Lead, new: &Lead, input: &LeadInput) {
    if existing.first_name.is_empty() {
        existing.first_name = new.first_name.clone();
    }
    if existing.last_name.is_empty() {
        existing.last_name = new.last_name.clone();
    }
    if existing.email.is_none() {
        existing.email = new.email.clone();
    }
    if existing.phone.is_none() {
        existing.phone = new.phone.clone();
    }
    if existing.external_id.is_none() {
        existing.external_id = new.external_id.clone();
    }
    if existing.property_address.is_empty() {
        existing.property_address = new.property_address.clone();
    }
    for t in &new.tags {
        if !existing.tags.contains(t) {
            existing.tags.push(t.clone());
        }
    }
    if input.notes.as_ref().is_some_and(|n| !n.trim().is_empty())
        && !existing.notes.contains(new.notes.trim())
    {
        existing.notes = if existing.notes.is_empty() {
            new.notes.clone()
        } else {
            format!("{}\n\n{}", existing.notes, new.notes)
        };
    }
}

fn visible(lead: Option<Lead>, user: &User) -> Result<Lead> {
    match lead {
        Some(l) if user.role == Role::Admin || l.assigned_to == Some(user.id) => Ok(l),
        _ => Err(Error::NotFound),
    }
}

/// SPEC §6: the creating agent, else round-robin among active agents, else an admin.
/// `users`: the team's users, read once per group of new leads.
async fn assign(
    tx: &mut dyn Tx,
    actor: Option<&User>,
    users: &mut Option<Vec<User>>,
) -> Result<Option<i64>> {
    if let Some(a) = actor
        && a.role == Role::Agent
    {
        return Ok(Some(a.id));
    }
    if users.is_none() {
        *users = Some(tx.users().await?);
    }
    let users = users.as_deref().unwrap_or_default();
    let agents: Vec<&User> = users
        .iter()
        .filter(|u| u.active && u.role == Role::Agent)
        .collect();
    if agents.is_empty() {
        return Ok(actor.map(|a| a.id).or_else(|| {
            users
                .iter()
                .find(|u| u.active && u.role == Role::Admin)
                .map(|u| u.id)
        }));
    }
    let n = tx.round_robin_next().await?;
    Ok(Some(
        agents[(n.rem_euclid(agents.len() as i64)) as usize].id,
    ))
}

async fn sqlx_free_reassign_tasks(tx: &mut dyn Tx, lead_id: i64, to: i64) -> Result<()> {
    let open = tx
        .tasks(&TaskFilter {
            lead_id: Some(lead_id),
            status: Some(TaskStatus::Open),
            limit: 10_000,
            ..Default::default()
        })
        .await?;
    if open.is_empty() {
        return Ok(());
    }
    // Reuse the bulk move only for this lead's tasks: update each.
    for t in open {
        if t.assignee_id != Some(to) {
            crate::tasks::set_assignee(tx, t.id, to).await?;
        }
    }
    Ok(())
}

pub(crate) fn lead_tz(lead: &Lead) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(&lead.timezone).unwrap_or(jiff::tz::TimeZone::UTC)
}

/// "Now" for a task that means calling or texting the lead: the window's next opening when
/// the lead's local time is outside it (SPEC §5.5).
pub(crate) fn due_now_in_window(team: &TeamCtx, lead: &Lead, now: Millis) -> Millis {
    let rules = team.rules.for_region(lead.region.as_deref());
    next_open(ts(now), &lead_tz(lead), &rules).as_millisecond()
}

/// Enrolls a lead in a plan starting at `start`, writing every touch and the lead's next-touch
/// bound (`Tx::leads_refresh_next`).
pub(crate) async fn enroll_in(
    tx: &mut dyn Tx,
    team: &TeamCtx,
    lead: &Lead,
    slug: &str,
    start: Millis,
    promised: Option<Millis>,
    started_with: &[&str],
) -> Result<i64> {
    let (plan, version) = load_plan(tx, slug).await?;
    let touches = plan_for(&plan, team, lead, start, promised, started_with);
    let id = tx
        .enrollment_insert(lead.id, slug, version, start, &touches)
        .await?;
    tx.activity_insert(&plan_started(
        lead.id,
        slug,
        &plan.spec.name,
        touches.len(),
        start,
    ))
    .await?;
    // New touches: the lead's stored next-touch bound must not be above any of them (a step at
    // a time of day on the day the plan starts can fall due before now).
    tx.leads_refresh_next(&[lead.id]).await?;
    Ok(id)
}

/// The timeline entry of a plan that started.
fn plan_started(lead_id: i64, slug: &str, name: &str, touches: usize, at: Millis) -> NewActivity {
    NewActivity {
        lead_id,
        kind: "plan_started".into(),
        detail: format!("Plan {name} started ({touches} touches)"),
        data: Some(serde_json::json!({"plan": slug})),
        actor_id: None,
        at,
    }
}

/// The touches of a plan for a lead, in the lead's zone and sending window.
pub fn plan_for(
    plan: &Plan,
    team: &TeamCtx,
    lead: &Lead,
    start: Millis,
    promised: Option<Millis>,
    started_with: &[&str],
) -> Vec<NewTouch> {
    let tz = lead_tz(lead);
    let rules = team.rules.for_region(lead.region.as_deref());
    let blocked: Vec<Channel> = [
        (Channel::Text, lead.can_text()),
        (Channel::Email, lead.can_email()),
        (Channel::Call, lead.can_call()),
    ]
    .into_iter()
    .filter(|(_, reachable)| !reachable)
    .map(|(c, _)| c)
    .collect();
    let ctx = PlanContext {
        start: ts(start),
        tz: &tz,
        rules: &rules,
        promised: promised.map(ts),
        started_with,
        blocked: &blocked,
    };
    schedule::plan_touches(plan, &ctx)
        .into_iter()
        .map(|p| {
            let reason = p.moved().then(|| {
                format!(
                    "moved into the sending window: planned for {} lead's time, due {}",
                    p.planned_at
                        .to_zoned_datetime(tz.clone())
                        .strftime("%a %b %-d %H:%M"),
                    p.due_at
                        .to_zoned_datetime(tz.clone())
                        .strftime("%a %b %-d %H:%M")
                )
            });
            NewTouch {
                step: p.step as i64,
                channel: p.channel,
                template: p.template,
                planned_at: p.planned_at.as_millisecond(),
                due_at: p.due_at.as_millisecond(),
                reason,
            }
        })
        .collect()
}

/// Ends every active enrollment of a lead.
pub(crate) async fn stop_all(
    tx: &mut dyn Tx,
    lead_id: i64,
    reason: &str,
    now: Millis,
) -> Result<u64> {
    let mut n = 0;
    for e in tx.enrollments(lead_id).await? {
        if e.state == EnrollmentState::Active || e.state == EnrollmentState::Paused {
            n += tx.enrollment_cancel_touches(e.id, reason, now).await?;
            tx.enrollment_end(e.id, EnrollmentState::Stopped, Some(reason), now)
                .await?;
        }
    }
    Ok(n)
}

pub(crate) fn count_attempt(lead: &mut Lead, at: Millis, call: bool) {
    lead.attempts += 1;
    lead.last_touch_at = Some(at);
    lead.first_attempt_at.get_or_insert(at);
    if call {
        lead.first_call_at.get_or_insert(at);
    }
    if lead.stage == Stage::New {
        lead.stage = Stage::Attempting;
    }
}

/// Stop on answer (SPEC §5.3): every active plan stops (`replied`), stage `contacted`, the
/// preferred channel is learned, and the agent gets a `reply` task due now.
pub(crate) async fn answer(
    tx: &mut dyn Tx,
    team: &TeamCtx,
    lead: &mut Lead,
    channel: Channel,
    detail: &str,
    now: Millis,
    fx: &mut Effects,
) -> Result<()> {
    stop_all(tx, lead.id, "replied", now).await?;
    // Refresh: stop_all may have touched tasks, not the lead row.
    if let Some(l) = tx.lead(lead.id).await? {
        *lead = l;
    }
    if lead.answered_at.is_none() {
        lead.answered_at = Some(now);
        lead.answered_on = Some(channel.as_str().to_string());
        lead.attempts_at_answer = Some(lead.attempts);
        tx.touch_mark_answered(lead.id).await?;
    }
    if lead.preferred_channel.is_none() && channel.is_lead_preference() {
        lead.preferred_channel = Some(channel.as_str().to_string());
    }
    if matches!(lead.stage, Stage::New | Stage::Attempting) {
        lead.stage = Stage::Contacted;
    }
    lead.updated_at = now;
    tx.lead_save(lead).await?;
    let due = due_now_in_window(team, lead, now);
    tx.task_insert(
        &NewTask {
            lead_id: lead.id,
            touch_id: None,
            assignee_id: lead.assigned_to,
            kind: TaskKind::Reply,
            due_at: due,
            script: format!("{} answered by {}: {}", lead.full_name(), channel, detail),
            voicemail: None,
        },
        now,
    )
    .await?;
    notify(
        tx,
        lead,
        EventKind::Reply,
        channel.as_str(),
        detail,
        now,
        fx,
    )
    .await?;
    Ok(())
}

/// Engagement (SPEC §5.5): the agent is told at once, the lead becomes hot, and a call task is
/// due now (at most one open engagement call per lead per hour).
pub(crate) async fn engagement(
    tx: &mut dyn Tx,
    team: &TeamCtx,
    lead: &mut Lead,
    kind: &str,
    detail: &str,
    now: Millis,
    fx: &mut Effects,
) -> Result<()> {
    let mut leads = HashMap::from([(lead.id, lead.clone())]);
    let shown = [Interest {
        lead_id: lead.id,
        kind: kind.into(),
        detail: detail.into(),
    }];
    engagements(tx, team, &mut leads, &shown, now, fx).await?;
    if let Some(l) = leads.remove(&lead.id) {
        *lead = l;
    }
    Ok(())
}

/// A lead showed interest (an open, a click, a video view, an inquiry): what and how to say it.
pub(crate) struct Interest {
    pub lead_id: i64,
    pub kind: String,
    pub detail: String,
}

/// Engagement for many leads at once (SPEC §5.5), in a few statements whatever their number:
/// each lead becomes hot; a lead that can be called gets one "call now" task unless one from
/// the last hour is still open; the assigned agent is notified of each (and alerted by text or
/// email if they asked). `leads` holds every lead named in `shown` and is updated in place.
pub(crate) async fn engagements(
    tx: &mut dyn Tx,
    team: &TeamCtx,
    leads: &mut HashMap<i64, Lead>,
    shown: &[Interest],
    now: Millis,
    fx: &mut Effects,
) -> Result<()> {
    let mut ids: Vec<i64> = shown.iter().map(|s| s.lead_id).collect();
    ids.sort_unstable();
    ids.dedup();
    // Only the level is written: the leads were read without a lock (PostgreSQL), and saving
    // them whole could undo a change made meanwhile, an opt-out above all.
    let mut raised = Vec::new();
    for id in &ids {
        if let Some(lead) = leads.get_mut(id)
            && lead.level != Level::Hot
        {
            lead.level = Level::Hot;
            lead.updated_at = now;
            raised.push(*id);
        }
    }
    tx.leads_make_hot(&raised, now).await?;
    let mut has_task: HashSet<i64> = tx
        .leads_with_recent_call_task(&ids, now - 3_600_000)
        .await?
        .into_iter()
        .collect();
    let mut agents: HashMap<i64, Option<User>> = HashMap::new();
    let mut notes = Vec::new();
    for s in shown {
        let Some(lead) = leads.get(&s.lead_id) else {
            continue;
        };
        if lead.can_call() && has_task.insert(lead.id) {
            tx.task_insert(
                &NewTask {
                    lead_id: lead.id,
                    touch_id: None,
                    assignee_id: lead.assigned_to,
                    kind: TaskKind::Call,
                    due_at: due_now_in_window(team, lead, now),
                    script: format!(
                        "{} just {}. Call now while they are looking.",
                        lead.full_name(),
                        s.detail
                    ),
                    voicemail: None,
                },
                now,
            )
            .await?;
        }
        let Some(agent_id) = lead.assigned_to else {
            continue;
        };
        notes.push(new_notification(
            agent_id,
            lead,
            EventKind::Engagement,
            &s.kind,
            &s.detail,
            now,
        ));
        // Agents who opted in also get the alert by text or email, so they can call at once.
        let agent = match agents.get(&agent_id) {
            Some(a) => a,
            None => {
                let a = tx.user(agent_id).await?;
                agents.entry(agent_id).or_insert(a)
            }
        };
        if let Some(agent) = agent {
            engagement_alerts(team, lead, agent, &s.detail, fx);
        }
    }
    store_notifications(tx, notes, fx).await
}

/// The texts or emails an agent who opted in gets when their lead engages.
fn engagement_alerts(team: &TeamCtx, lead: &Lead, agent: &User, detail: &str, fx: &mut Effects) {
    let phone = lead.phone.clone().unwrap_or_default();
    let body = format!(
        "Relentless: {} just {detail}. Call now{}",
        lead.full_name(),
        if phone.is_empty() {
            String::new()
        } else {
            format!(": {phone}")
        }
    );
    if agent.notify_sms
        && let Some(p) = &agent.phone
    {
        fx.alerts.push(crate::channels::Message {
            lead_id: lead.id,
            channel: Channel::Text,
            to: p.clone(),
            body: body.clone(),
            from_name: team.team.name.clone(),
            ..Default::default()
        });
    }
    if agent.notify_email {
        fx.alerts.push(crate::channels::Message {
            lead_id: lead.id,
            channel: Channel::Email,
            to: agent.email.clone(),
            subject: Some(format!("{} is looking right now", lead.full_name())),
            body,
            from_name: "Relentless".into(),
            ..Default::default()
        });
    }
}

/// Stores a notification for the lead's agent and queues it for the live stream.
pub(crate) async fn notify(
    tx: &mut dyn Tx,
    lead: &Lead,
    event: EventKind,
    kind: &str,
    detail: &str,
    now: Millis,
    fx: &mut Effects,
) -> Result<()> {
    let Some(user_id) = lead.assigned_to else {
        return Ok(());
    };
    notify_user(tx, user_id, lead, event, kind, detail, now, fx).await
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn notify_user(
    tx: &mut dyn Tx,
    user_id: i64,
    lead: &Lead,
    event: EventKind,
    kind: &str,
    detail: &str,
    now: Millis,
    fx: &mut Effects,
) -> Result<()> {
    let n = new_notification(user_id, lead, event, kind, detail, now);
    store_notifications(tx, vec![n], fx).await
}

pub(crate) fn new_notification(
    user_id: i64,
    lead: &Lead,
    event: EventKind,
    kind: &str,
    detail: &str,
    now: Millis,
) -> NewNotification {
    NewNotification {
        user_id,
        event,
        lead_id: Some(lead.id),
        lead_name: lead.full_name(),
        kind: kind.into(),
        at: now,
        detail: detail.into(),
    }
}

/// Stores notifications (in one statement) and queues them for the live stream.
pub(crate) async fn store_notifications(
    tx: &mut dyn Tx,
    notes: Vec<NewNotification>,
    fx: &mut Effects,
) -> Result<()> {
    if notes.is_empty() {
        return Ok(());
    }
    let ids = tx.notifications_insert(&notes).await?;
    fx.notifications
        .extend(notes.into_iter().zip(ids).map(|(n, id)| Notification {
            id,
            user_id: n.user_id,
            event: n.event.as_str().into(),
            lead_id: n.lead_id,
            lead_name: n.lead_name,
            kind: n.kind,
            at: n.at,
            detail: n.detail,
        }));
    Ok(())
}

/// These leads by id (one statement), without their next touch (`next_touch_at` is `None`):
/// what the dispatcher, engagement and the settling of plans read, none of which shows it.
pub(crate) async fn leads_map(tx: &mut dyn Tx, ids: &[i64]) -> Result<HashMap<i64, Lead>> {
    Ok(tx
        .leads_by_ids_unplanned(ids)
        .await?
        .into_iter()
        .map(|l| (l.id, l))
        .collect())
}

/// After touches settle: enrollments with nothing left complete; a lead that finishes a plan
/// without answering moves on (`on_complete_level`), and a lead whose plans ran out below 8
/// attempts continues in `nurture` (SPEC §5.6).
pub(crate) async fn settle_enrollments(
    tx: &mut dyn Tx,
    team: &TeamCtx,
    enrollments: &[(i64, i64)],
    now: Millis,
) -> Result<()> {
    // A few statements for a whole dispatch batch (each of its touches may finish a plan).
    let finished = tx.enrollments_complete_finished(enrollments, now).await?;
    let moving: Vec<&Enrollment> = finished.iter().filter(|e| e.plan != "nurture").collect();
    if moving.is_empty() {
        return Ok(());
    }
    let mut plans: HashMap<String, Option<Plan>> = HashMap::new();
    for e in &moving {
        if !plans.contains_key(&e.plan) {
            let plan = load_plan(tx, &e.plan).await.ok().map(|(p, _)| p);
            plans.insert(e.plan.clone(), plan);
        }
    }
    // Only a lead that has not answered moves on, and only to a new level (its plan says so)
    // or to nurture (below the attempt floor): three columns tell which leads can, and only
    // those are read whole. Most finished plans in a batch change nothing.
    let levels: HashSet<i64> = moving
        .iter()
        .filter(|e| {
            plans
                .get(&e.plan)
                .and_then(Option::as_ref)
                .is_some_and(|p| p.spec.on_complete_level.is_some())
        })
        .map(|e| e.lead_id)
        .collect();
    let mut lead_ids: Vec<i64> = moving.iter().map(|e| e.lead_id).collect();
    lead_ids.sort_unstable();
    lead_ids.dedup();
    let lead_ids: Vec<i64> = tx
        .leads_progress(&lead_ids)
        .await?
        .into_iter()
        .filter(|(id, attempts, answered)| {
            !answered
                && (levels.contains(id)
                    || (*attempts as usize) < relentless_core::plan::ATTEMPT_FLOOR)
        })
        .map(|(id, _, _)| id)
        .collect();
    if lead_ids.is_empty() {
        return Ok(());
    }
    let mut leads = leads_map(tx, &lead_ids).await?;
    // Leads with a plan still running (those finished here are completed already); a lead
    // moved to nurture below counts too, so two plans ending together give one nurture.
    let mut active: HashSet<i64> = tx
        .enrollments_for_leads(&lead_ids)
        .await?
        .iter()
        .filter(|o| o.state == EnrollmentState::Active)
        .map(|o| o.lead_id)
        .collect();
    // A lead whose plans end together goes on (to nurture or not) by the last of them, in id
    // order, as when they ended one by one; each may set its level first.
    let last: HashMap<i64, i64> = moving.iter().map(|e| (e.lead_id, e.id)).collect();
    for e in moving {
        let Some(lead) = leads.get_mut(&e.lead_id) else {
            continue;
        };
        if lead.answered_at.is_some() {
            continue;
        }
        let Some(plan) = plans.get(&e.plan).and_then(Option::as_ref) else {
            continue;
        };
        let still_active = active.contains(&lead.id);
        let reachable = lead.can_text() || lead.can_email() || lead.can_call();
        let mut to_nurture = false;
        if let Some(level) = plan.spec.on_complete_level {
            if lead.level != level {
                lead.level = level;
                lead.updated_at = now;
                tx.lead_save(lead).await?;
            }
            to_nurture = level == Level::Nurture;
        }
        let below_floor = (lead.attempts as usize) < relentless_core::plan::ATTEMPT_FLOOR;
        if last.get(&lead.id) == Some(&e.id)
            && !still_active
            && reachable
            && (to_nurture || below_floor)
        {
            enroll_in(tx, team, lead, "nurture", now, None, &[]).await?;
            active.insert(lead.id);
            tx.activity_insert(&NewActivity {
                lead_id: lead.id,
                kind: "nurture".into(),
                detail: if below_floor {
                    format!(
                        "{} finished with {} attempts, below 8: nurture continues",
                        plan.spec.name, lead.attempts
                    )
                } else {
                    format!(
                        "{} finished without an answer: moved to nurture",
                        plan.spec.name
                    )
                },
                data: None,
                actor_id: None,
                at: now,
            })
            .await?;
        }
    }
    Ok(())
}

/// Field errors as a list, for callers that report them elsewhere (CSV import).
pub fn field_errors(e: &Error) -> Vec<FieldError> {
    match e {
        Error::Invalid(v) => v.clone(),
        other => vec![FieldError::new("lead", other.to_string())],
    }
}

impl Engine {
    /// Checks a lead as `create_lead` would, writing nothing (`import --dry-run`).
    pub async fn check_lead(&self, input: &LeadInput) -> Result<()> {
        let mut tx = self.store.read().await?;
        let team = team_ctx(tx.as_mut()).await?;
        let mut lead = blank_lead(&team, now_ms());
        apply_input(tx.as_mut(), &team, &mut lead, input, true).await
    }
}

/// The ids of the team's active admins (who get escalations).
pub(crate) async fn admin_ids(tx: &mut dyn Tx) -> Result<Vec<i64>> {
    Ok(tx
        .users()
        .await?
        .into_iter()
        .filter(|u| u.active && u.role == Role::Admin)
        .map(|u| u.id)
        .collect())
}

#[cfg(test)]
mod group_tests {
    use super::*;
    use crate::setup::UserInput;
    use tokio::sync::oneshot;

    fn email(e: &str) -> LeadInput {
        LeadInput {
            email: Some(Some(e.into())),
            ..Default::default()
        }
    }

    /// Leads that arrive together are written in one transaction, one after another: a second
    /// submission of the same email merges into the first of the group; an agent's submission
    /// that may not merge is refused with its own error, and the others are still written.
    #[tokio::test]
    async fn leads_written_together_merge_within_the_group_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let e = crate::test_engine(&dir, crate::Config::default()).await;
        let mut agents = vec![];
        for a in ["ann@example.com", "ben@example.com"] {
            agents.push(
                e.add_user(UserInput {
                    email: Some(a.into()),
                    name: Some(a.into()),
                    role: Some(Role::Agent),
                    ..Default::default()
                })
                .await
                .unwrap(),
            );
        }
        let anns = e
            .create_lead(
                Some(&agents[0]),
                email("theirs@example.com"),
                Origin::Api,
                None,
            )
            .await
            .unwrap()
            .lead;
        // Two groups: the first written whole, the second rolled back by its refused lead and
        // then written lead by lead.
        let mut got = vec![];
        for group_inputs in [
            vec![
                (None, email("one@example.com")),
                (None, email("One@Example.com")),
            ],
            vec![
                (Some(&agents[1]), email("theirs@example.com")),
                (None, email("four@example.com")),
            ],
        ] {
            let mut group = vec![];
            let mut answers = vec![];
            for (actor, input) in group_inputs {
                let new = e
                    .new_lead(actor, input, Origin::Api, None, None)
                    .await
                    .unwrap();
                let (reply, answer) = oneshot::channel();
                group.push((new, reply));
                answers.push(answer);
            }
            e.new_leads.write_group(&e, group).await;
            for a in answers {
                got.push(match a.await.unwrap() {
                    Ok(c) => Ok((c.lead.id, c.merged)),
                    Err(Error::Conflict(_)) => Err("conflict"),
                    Err(other) => panic!("{other}"),
                });
            }
        }
        let one = got[0].unwrap().0;
        let four = got[3].unwrap().0;
        assert_eq!(
            got,
            [
                Ok((one, false)),
                Ok((one, true)),
                Err("conflict"),
                Ok((four, false))
            ]
        );
        let mut tx = e.store.read().await.unwrap();
        let all: Vec<i64> = tx
            .leads_page(&LeadFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(all.len(), 3, "Ann's lead, one and four: {all:?}");
        assert!(all.contains(&anns.id) && all.contains(&one) && all.contains(&four));
        let kinds: Vec<String> = tx
            .timeline(one, None, 50)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.kind)
            .collect();
        assert!(kinds.contains(&"inquiry".to_string()), "{kinds:?}");
        assert_eq!(
            tx.enrollments(four).await.unwrap().len(),
            2,
            "four's plans started"
        );
    }

    /// Several new leads in one transaction each get their own plans, touches, timeline and
    /// next touch, and round-robin assignment goes on from lead to lead.
    #[tokio::test]
    async fn leads_written_in_one_group_each_get_their_own_plans_and_agent() {
        let dir = tempfile::tempdir().unwrap();
        let e = crate::test_engine(&dir, crate::Config::default()).await;
        for a in ["ann@example.com", "ben@example.com"] {
            e.add_user(UserInput {
                email: Some(a.into()),
                name: Some(a.into()),
                role: Some(Role::Agent),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let mut group = vec![];
        let mut answers = vec![];
        for address in ["a@example.com", "b@example.com", "c@example.com"] {
            let new = e
                .new_lead(None, email(address), Origin::Api, None, None)
                .await
                .unwrap();
            let (reply, answer) = oneshot::channel();
            group.push((new, reply));
            answers.push(answer);
        }
        e.new_leads.write_group(&e, group).await;
        let mut leads = vec![];
        for a in answers {
            let c = a.await.unwrap().unwrap();
            assert!(!c.merged);
            leads.push(c.lead);
        }
        let agents: Vec<Option<i64>> = leads.iter().map(|l| l.assigned_to).collect();
        assert!(
            agents.iter().all(Option::is_some) && agents[0] != agents[1] && agents[1] != agents[2],
            "round robin from lead to lead: {agents:?}"
        );
        let mut tx = e.store.read().await.unwrap();
        for l in &leads {
            let plans: Vec<(i64, String)> = tx
                .enrollments(l.id)
                .await
                .unwrap()
                .into_iter()
                .map(|en| (en.lead_id, en.plan))
                .collect();
            assert_eq!(
                plans,
                [
                    (l.id, "speed-to-lead".to_string()),
                    (l.id, "relentless-21".to_string())
                ]
            );
            let touches = tx.touches_for_lead(l.id).await.unwrap();
            assert!(touches.len() >= 10 && touches.iter().all(|t| t.lead_id == l.id));
            let stored = tx.lead(l.id).await.unwrap().unwrap();
            assert_eq!(stored.next_touch_at, touches.iter().map(|t| t.due_at).min());
            let kinds: Vec<String> = tx
                .timeline(l.id, None, 50)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.kind)
                .collect();
            assert_eq!(kinds.iter().filter(|k| *k == "plan_started").count(), 2);
            assert!(kinds.contains(&"created".to_string()), "{kinds:?}");
        }
    }
}
