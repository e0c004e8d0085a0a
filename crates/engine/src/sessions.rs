//! Web app sign-in: first-start setup, email + password sign-in, sessions shared by every
//! process on the database. The cookie holds 256 random bits; only their SHA-256 is stored.

use crate::setup::{InitInput, check_password, token_hash, verify_password};
use crate::{Engine, Error, Result, now_ms};
use relentless_core::validate;
use relentless_store::User;

/// How long a session lasts without signing in again.
pub const SESSION_DAYS: i64 = 14;

/// A signed-in browser: the cookie value and the CSRF token its forms carry.
pub struct SignedIn {
    pub user: User,
    pub session: String,
    pub csrf: String,
}

/// What the first-start setup page asks for.
pub struct SetupInput {
    pub team_name: String,
    pub admin_name: String,
    pub admin_email: String,
    pub password: String,
    pub address: String,
    pub timezone: String,
}

/// A password check that costs the same whether or not the email exists, so that sign-in
/// time does not tell an attacker which emails have accounts.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3Wf1TPjZcNA2zDTBBX6Is+4P5DuXK/6ZyZ4lQh1U7lU";

impl Engine {
    /// True until a first user exists: the app then shows its setup page.
    pub async fn needs_setup(&self) -> Result<bool> {
        let mut tx = self.store.read().await?;
        Ok(tx.users().await?.is_empty())
    }

    /// Creates the team and its first admin from the setup page and signs them in. Refused
    /// once any user exists, so the page cannot be used to take over a running team.
    pub async fn setup_team(&self, input: SetupInput) -> Result<SignedIn> {
        let mut errs = crate::error::Errors::default();
        if input.team_name.trim().is_empty() {
            errs.add("team_name", "must not be empty");
        }
        errs.check("admin_name", validate::name(&input.admin_name));
        errs.check("admin_email", validate::email(&input.admin_email));
        errs.check("password", check_password(&input.password));
        errs.check("timezone", validate::timezone(&input.timezone));
        errs.finish()?;
        if !self.needs_setup().await? {
            return Err(Error::Conflict(
                "this team is already set up; sign in".into(),
            ));
        }
        let (mut user, _token) = self
            .init(InitInput {
                admin_email: input.admin_email.clone(),
                admin_password: Some(input.password.clone()),
                team_name: Some(input.team_name.trim().to_string()),
                address: Some(input.address.trim().to_string()),
            })
            .await?;
        // The rest of what the page asked for, in one more transaction.
        let mut tx = self.store.write().await?;
        if let Some(mut team) = tx.team().await? {
            team.timezone = input.timezone.trim().to_string();
            tx.team_save(&team, now_ms()).await?;
        }
        user.name = input.admin_name.trim().to_string();
        tx.user_save(&user).await?;
        tx.commit().await?;
        self.start_session(user).await
    }

    /// Signs in with email and password; `None` when either is wrong (never which one).
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<Option<SignedIn>> {
        let user = {
            let mut tx = self.store.read().await?;
            tx.user_by_email(email.trim()).await?
        };
        let hash = user
            .as_ref()
            .filter(|u| u.active)
            .and_then(|u| u.password_hash.clone());
        let ok = verify_password(
            password.to_string(),
            hash.clone().unwrap_or_else(|| DUMMY_HASH.into()),
        )
        .await;
        match (user, hash.is_some() && ok) {
            (Some(u), true) => Ok(Some(self.start_session(u).await?)),
            _ => Ok(None),
        }
    }

    async fn start_session(&self, user: User) -> Result<SignedIn> {
        // A new id at every sign-in: a session id planted before sign-in is worthless.
        let session = crate::setup::new_token();
        let csrf = crate::random_token();
        let now = now_ms();
        let mut tx = self.store.write().await?;
        // Expired sessions go as new ones start, so the table never grows without bound.
        tx.sessions_delete_for(None, now).await?;
        tx.session_insert(
            &token_hash(&session),
            user.id,
            &csrf,
            now,
            now + SESSION_DAYS * 86_400_000,
        )
        .await?;
        tx.commit().await?;
        Ok(SignedIn {
            user,
            session,
            csrf,
        })
    }

    /// The active user of a session cookie, and the session's CSRF token.
    pub async fn session(&self, session: &str) -> Result<Option<(User, String)>> {
        let mut tx = self.store.read().await?;
        Ok(tx.session_user(&token_hash(session), now_ms()).await?)
    }

    pub async fn sign_out(&self, session: &str) -> Result<()> {
        let mut tx = self.store.write().await?;
        tx.session_delete(&token_hash(session)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of a user (password changed, deactivated).
    pub(crate) async fn end_sessions(
        tx: &mut dyn relentless_store::Tx,
        user_id: i64,
    ) -> Result<()> {
        tx.sessions_delete_for(Some(user_id), now_ms()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dummy_hash_is_a_valid_argon2_hash() {
        // If it did not parse, a sign-in with an unknown email would skip the hashing work.
        assert!(argon2::password_hash::phc::PasswordHash::new(super::DUMMY_HASH).is_ok());
    }
}
