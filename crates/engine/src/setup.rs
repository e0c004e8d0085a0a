//! Setting up a team: `init`, users, API tokens, and installing the built-in plans and
//! templates. Passwords are hashed with Argon2id off the async runtime.

use crate::{Engine, Error, Result, now_ms};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rand::RngCore;
use relentless_core::builtin::{self, TemplateSpec};
use relentless_core::plan::Plan;
use relentless_core::schedule::Window;
use relentless_core::types::Role;
use relentless_core::{template, validate};
use relentless_store::{NewUser, PlanRow, Team, TemplateRow, Tx, User};
use sha2::{Digest, Sha256};

/// A fresh API token: 256 random bits, shown once; only its SHA-256 is stored.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("rl_{}", hex::encode(b))
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        Argon2::default()
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(e.to_string()))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

pub fn check_password(p: &str) -> Result<(), String> {
    if p.chars().count() < 8 {
        return Err("must be at least 8 characters".into());
    }
    if p.len() > 1024 {
        return Err("must be at most 1024 bytes".into());
    }
    Ok(())
}

/// What `relentless init` is given.
pub struct InitInput {
    pub admin_email: String,
    pub admin_password: Option<String>,
    pub team_name: Option<String>,
    pub address: Option<String>,
}

impl Engine {
    /// Creates the team and first admin if missing, installs built-in plans and templates that
    /// are missing, and returns a new token for the admin. A rerun changes nothing that exists.
    pub async fn init(&self, input: InitInput) -> Result<(User, String)> {
        let email =
            validate::email(&input.admin_email).map_err(|m| Error::field("admin_email", m))?;
        if let Some(p) = &input.admin_password {
            check_password(p).map_err(|m| Error::field("admin_password", m))?;
        }
        let hash = match input.admin_password.clone() {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let now = now_ms();
        let mut tx = self.store.write().await?;
        if tx.team().await?.is_none() {
            let team = Team {
                name: input.team_name.clone().unwrap_or_else(|| "My Team".into()),
                country: "US".into(),
                timezone: "America/New_York".into(),
                sending_window: serde_json::to_string(&Window::standard())
                    .expect("window serializes"),
                state_windows: "{}".into(),
                holidays: "[]".into(),
                postal_address: input.address.clone().unwrap_or_default(),
                support_contact: email.clone(),
                escalation_minutes: 60,
                require_text_consent: false,
            };
            tx.team_save(&team, now).await?;
        }
        install_builtins(tx.as_mut(), now).await?;
        let user = match tx.user_by_email(&email).await? {
            Some(u) => u,
            None => {
                let name = email.split('@').next().unwrap_or("Admin").to_string();
                let id = tx
                    .user_insert(
                        &NewUser {
                            email: email.clone(),
                            name,
                            phone: None,
                            role: Role::Admin,
                            password_hash: hash,
                        },
                        now,
                    )
                    .await?;
                tx.user(id).await?.ok_or(Error::NotFound)?
            }
        };
        let token = new_token();
        tx.token_insert(user.id, &token_hash(&token), now).await?;
        tx.commit().await?;
        Ok((user, token))
    }

    /// A new API token for a user.
    pub async fn create_token(&self, email: &str) -> Result<String> {
        let mut tx = self.store.write().await?;
        let user = tx
            .user_by_email(email.trim())
            .await?
            .ok_or_else(|| Error::field("email", format!("no user has the email {email}")))?;
        let token = new_token();
        tx.token_insert(user.id, &token_hash(&token), now_ms())
            .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The active user a bearer token belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>> {
        let mut tx = self.store.read().await?;
        Ok(tx.user_by_token(&token_hash(token)).await?)
    }
}

/// Installs every built-in plan and template that is not in the database yet; edits made in
/// the app are kept.
pub async fn install_builtins(tx: &mut dyn Tx, now: i64) -> Result<()> {
    for f in builtin::template_files() {
        let spec = TemplateSpec::from_toml(f.text)
            .map_err(|e| Error::Internal(format!("built-in template {}: {e}", f.name)))?;
        if tx.template(&spec.slug).await?.is_none() {
            tx.template_save(&template_row(spec, now)).await?;
        }
    }
    for f in builtin::plan_files() {
        let plan = Plan::from_toml(f.text)
            .map_err(|e| Error::Internal(format!("built-in plan {}: {e}", f.name)))?;
        if tx.plan(plan.slug()).await?.is_none() {
            tx.plan_save(&PlanRow {
                slug: plan.slug().to_string(),
                name: plan.spec.name.clone(),
                version: plan.spec.version as i64,
                source: f.text.to_string(),
                updated_at: now,
            })
            .await?;
        }
    }
    Ok(())
}

pub fn template_row(spec: TemplateSpec, now: i64) -> TemplateRow {
    TemplateRow {
        slug: spec.slug,
        channel: spec.channel,
        name: spec.name,
        subject: spec.subject,
        body: spec.body,
        voicemail: spec.voicemail,
        updated_at: now,
    }
}

/// Checks a template before it is saved: every part renders, every field is known.
pub fn check_template(spec: &TemplateSpec) -> Result<()> {
    let mut errs = crate::error::Errors::default();
    if let Err(m) = validate::slug(&spec.slug) {
        errs.add("slug", m);
    }
    if spec.name.trim().is_empty() {
        errs.add("name", "must not be empty");
    }
    if let Err(e) = template::check(&spec.body) {
        errs.add("body", e.message);
    }
    match (&spec.subject, spec.channel) {
        (None, relentless_core::types::Channel::Email) => {
            errs.add("subject", "an email template needs a subject")
        }
        (Some(s), _) => {
            if let Err(e) = template::check(s) {
                errs.add("subject", e.message);
            }
        }
        _ => {}
    }
    if let Some(v) = &spec.voicemail
        && let Err(e) = template::check(v)
    {
        errs.add("voicemail", e.message);
    }
    if spec.channel == relentless_core::types::Channel::Preferred {
        errs.add("channel", "a template is for one concrete channel");
    }
    errs.finish()
}

/// A user as an admin sends it; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct UserInput {
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub role: Option<Role>,
    pub password: Option<String>,
    pub notify_sms: Option<bool>,
    pub notify_email: Option<bool>,
}

impl Engine {
    async fn checked_user_fields(
        &self,
        input: &UserInput,
        country: &str,
    ) -> Result<(
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    )> {
        let mut errs = crate::error::Errors::default();
        let email = input
            .email
            .as_deref()
            .and_then(|e| errs.check("email", validate::email(e)));
        let name = input
            .name
            .as_deref()
            .and_then(|n| errs.check("name", validate::name(n)));
        let phone = input
            .phone
            .as_deref()
            .filter(|p| !p.trim().is_empty())
            .and_then(|p| errs.check("phone", validate::phone(p, country)));
        if let Some(p) = &input.password {
            errs.check("password", check_password(p));
        }
        errs.finish()?;
        let hash = match input.password.clone() {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        Ok((email, name, phone, hash))
    }

    pub async fn add_user(&self, input: UserInput) -> Result<User> {
        let country = self.country().await?;
        let (email, name, phone, hash) = self.checked_user_fields(&input, &country).await?;
        let mut tx = self.store.write().await?;
        let id = tx
            .user_insert(
                &NewUser {
                    email: email.ok_or_else(|| Error::field("email", "is required"))?,
                    name: name.ok_or_else(|| Error::field("name", "is required"))?,
                    phone,
                    role: input.role.unwrap_or(Role::Agent),
                    password_hash: hash,
                },
                now_ms(),
            )
            .await?;
        let mut u = tx.user(id).await?.ok_or(Error::NotFound)?;
        if input.notify_sms.is_some() || input.notify_email.is_some() {
            u.notify_sms = input.notify_sms.unwrap_or(false);
            u.notify_email = input.notify_email.unwrap_or(false);
            tx.user_save(&u).await?;
        }
        tx.commit().await?;
        Ok(u)
    }

    pub async fn update_user(&self, id: i64, input: UserInput) -> Result<User> {
        let country = self.country().await?;
        let (email, name, phone, hash) = self.checked_user_fields(&input, &country).await?;
        let mut tx = self.store.write().await?;
        let mut u = tx.user(id).await?.ok_or(Error::NotFound)?;
        if let Some(e) = email {
            u.email = e;
        }
        if let Some(n) = name {
            u.name = n;
        }
        if input.phone.is_some() {
            u.phone = phone;
        }
        if let Some(r) = input.role {
            u.role = r;
        }
        if hash.is_some() {
            u.password_hash = hash;
            // A new password signs the user out of every browser.
            Engine::end_sessions(tx.as_mut(), u.id).await?;
        }
        if let Some(v) = input.notify_sms {
            u.notify_sms = v;
        }
        if let Some(v) = input.notify_email {
            u.notify_email = v;
        }
        tx.user_save(&u).await?;
        tx.commit().await?;
        Ok(u)
    }

    /// Deactivates a user; their leads and open tasks move to `reassign_to` (an email), else to
    /// `fallback` (the admin doing it). Returns the user and the counts moved.
    pub async fn deactivate_user(
        &self,
        id: i64,
        reassign_to: Option<&str>,
        fallback: &User,
    ) -> Result<(User, u64, u64)> {
        let mut tx = self.store.write().await?;
        let mut u = tx.user(id).await?.ok_or(Error::NotFound)?;
        let to = match reassign_to {
            Some(e) => crate::leads::find_user(tx.as_mut(), e)
                .await?
                .filter(|t| t.active && t.id != id)
                .ok_or_else(|| Error::field("reassign_to", format!("no active user '{e}'")))?,
            None => fallback.clone(),
        };
        u.active = false;
        tx.user_save(&u).await?;
        Engine::end_sessions(tx.as_mut(), u.id).await?;
        let (leads, tasks) = tx.reassign_all(id, to.id).await?;
        tx.commit().await?;
        Ok((u, leads, tasks))
    }

    pub async fn set_password(&self, email: &str, password: String) -> Result<()> {
        check_password(&password).map_err(|m| Error::field("password", m))?;
        let hash = hash_password(password).await?;
        let mut tx = self.store.write().await?;
        let mut u = tx
            .user_by_email(email)
            .await?
            .ok_or_else(|| Error::field("email", format!("no user has the email {email}")))?;
        u.password_hash = Some(hash);
        tx.user_save(&u).await?;
        Engine::end_sessions(tx.as_mut(), u.id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn country(&self) -> Result<String> {
        let mut tx = self.store.read().await?;
        Ok(tx
            .team()
            .await?
            .map(|t| t.country)
            .unwrap_or_else(|| "US".into()))
    }

    /// The team's settings as the API shows them.
    pub async fn team_settings(&self) -> Result<serde_json::Value> {
        let mut tx = self.store.read().await?;
        let t = tx.team().await?.ok_or(Error::NotFound)?;
        let rules = crate::team_rules(&t)?;
        Ok(serde_json::json!({
            "name": t.name,
            "country": t.country,
            "timezone": t.timezone,
            "sending_window": rules.window,
            "state_windows": rules.state_windows,
            "holidays": rules.holidays,
            "postal_address": t.postal_address,
            "support_contact": t.support_contact,
            "escalation_minutes": t.escalation_minutes,
            "require_text_consent": t.require_text_consent,
        }))
    }

    /// PATCH /team: validates every given field, then saves them together.
    pub async fn update_team(&self, body: &serde_json::Value) -> Result<()> {
        use relentless_core::schedule::{TeamRules, Window};
        let obj = body
            .as_object()
            .ok_or_else(|| Error::field("body", "must be a JSON object"))?;
        let mut tx = self.store.write().await?;
        let mut t = tx.team().await?.ok_or(Error::NotFound)?;
        let mut rules = crate::team_rules(&t)?;
        let mut errs = crate::error::Errors::default();
        let s = |k: &str| obj.get(k).and_then(|v| v.as_str()).map(str::to_string);
        for (k, v) in obj {
            match k.as_str() {
                "name" => match s(k) {
                    Some(n) if !n.trim().is_empty() => t.name = n.trim().to_string(),
                    _ => errs.add(k, "must be a non-empty string"),
                },
                "country" => {
                    if let Some(c) = errs.check(
                        k,
                        s(k).ok_or_else(|| "must be a string".to_string())
                            .and_then(|c| validate::region_code(&c)),
                    ) {
                        t.country = c;
                    }
                }
                "timezone" => {
                    let tz = s(k).unwrap_or_default();
                    if errs.check(k, validate::timezone(&tz)).is_some() {
                        t.timezone = tz.trim().to_string();
                    }
                }
                "sending_window" => match serde_json::from_value::<Window>(v.clone()) {
                    Ok(w) => rules.window = w,
                    Err(e) => errs.add(k, e.to_string()),
                },
                "state_windows" => match serde_json::from_value(v.clone()) {
                    Ok(w) => rules.state_windows = w,
                    Err(e) => errs.add(k, e.to_string()),
                },
                "holidays" => match serde_json::from_value(v.clone()) {
                    Ok(h) => rules.holidays = h,
                    Err(e) => errs.add(k, format!("a list of dates like 2026-12-25: {e}")),
                },
                "postal_address" => match s(k) {
                    Some(a) => t.postal_address = a,
                    None => errs.add(k, "must be a string"),
                },
                "support_contact" => match s(k) {
                    Some(a) => t.support_contact = a,
                    None => errs.add(k, "must be a string"),
                },
                "require_text_consent" => match v.as_bool() {
                    Some(b) => t.require_text_consent = b,
                    None => errs.add(k, "must be true or false"),
                },
                "escalation_minutes" => match v.as_i64() {
                    Some(m) if (1..=10_080).contains(&m) => t.escalation_minutes = m,
                    _ => errs.add(k, "must be a whole number of minutes from 1 to 10080"),
                },
                other => errs.add(other, "is not a team setting"),
            }
        }
        if let Err(m) = rules.validate() {
            errs.add("sending_window", m);
        }
        errs.finish()?;
        let TeamRules {
            window,
            state_windows,
            holidays,
        } = rules;
        t.sending_window =
            serde_json::to_string(&window).map_err(|e| Error::Internal(e.to_string()))?;
        t.state_windows =
            serde_json::to_string(&state_windows).map_err(|e| Error::Internal(e.to_string()))?;
        t.holidays =
            serde_json::to_string(&holidays).map_err(|e| Error::Internal(e.to_string()))?;
        tx.team_save(&t, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }
}
