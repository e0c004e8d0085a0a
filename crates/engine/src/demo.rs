//! `serve --demo`: a believable team in flight on an empty database. Demo leads use
//! reserved 555-01xx numbers and example.com addresses, and demo messages only ever reach
//! the built-in outbox (the caller wires the outbox channel whenever `--demo` is given).

use crate::leads::{ActivityInput, LeadInput, Origin};
use crate::setup::{InitInput, hash_password};
use crate::{Engine, Result, now_ms};
use relentless_core::types::*;
use relentless_store::NewUser;

const FIRST: &[&str] = &[
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Mateo", "Isabella", "Lucas",
    "Mia", "Levi", "Amelia", "Ezra", "Harper", "Asher", "Evelyn", "James", "Luna", "Leo", "Camila",
    "Aiden", "Gianna", "Kai", "Aria",
];
const LAST: &[&str] = &[
    "Nguyen", "Patel", "Garcia", "Johnson", "Okafor", "Kim", "Martinez", "Brown", "Cohen", "Rossi",
    "Silva", "Walker", "Haddad", "Fischer", "Lopez", "Moreau", "Singh", "Tanaka", "Clarke",
    "Ortiz",
];
const SOURCES: &[&str] = &[
    "zillow",
    "website",
    "open-house",
    "facebook-ads",
    "realtor.com",
    "referral",
];
const STREETS: &[&str] = &[
    "Maple Ave",
    "Barton Springs Rd",
    "Elm St",
    "Congress Ave",
    "Riverside Dr",
    "Cedar Ln",
];
const ZONES: &[&str] = &[
    "America/Chicago",
    "America/New_York",
    "America/Denver",
    "America/Los_Angeles",
];

impl Engine {
    /// Fills an empty database with a team, an admin, two agents and ~50 leads at different
    /// points of their plans. Does nothing when the database already has a team.
    pub async fn seed_demo(&self) -> Result<Option<String>> {
        {
            let mut tx = self.store.read().await?;
            if tx.team().await?.is_some() {
                return Ok(None);
            }
        }
        let (admin, token) = self
            .init(InitInput {
                admin_email: "admin@example.com".into(),
                admin_password: Some("relentless-demo".into()),
                team_name: Some("Carter Home Team".into()),
                address: Some("100 Congress Ave, Suite 200, Austin, TX 78701".into()),
            })
            .await?;
        let now = now_ms();
        let hash = hash_password("relentless-demo".into()).await?;
        let mut agents = Vec::new();
        {
            let mut tx = self.store.write().await?;
            for (email, name, phone) in [
                ("sam@example.com", "Sam Carter", "+15125550101"),
                ("riley@example.com", "Riley Chen", "+15125550102"),
            ] {
                let id = tx
                    .user_insert(
                        &NewUser {
                            email: email.into(),
                            name: name.into(),
                            phone: Some(phone.into()),
                            role: Role::Agent,
                            password_hash: Some(hash.clone()),
                        },
                        now,
                    )
                    .await?;
                agents.push(tx.user(id).await?.expect("just inserted"));
            }
            let mut team = tx.team().await?.expect("init made it");
            team.timezone = "America/Chicago".into();
            tx.team_save(&team, now).await?;
            tx.commit().await?;
        }
        let levels = [
            Level::Hot,
            Level::Warm,
            Level::Warm,
            Level::Cold,
            Level::Nurture,
        ];
        for i in 0..50usize {
            let agent = &agents[i % 2];
            let first = FIRST[i % FIRST.len()];
            let last = LAST[(i * 7) % LAST.len()];
            let input = LeadInput {
                first_name: Some(first.into()),
                last_name: Some(last.into()),
                email: Some(Some(format!(
                    "{}.{}{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    i
                ))),
                // 555-0100..0199 are reserved for fiction.
                phone: Some(Some(format!("+1512555{:04}", 103 + i))),
                timezone: Some(ZONES[i % ZONES.len()].into()),
                source: Some(SOURCES[i % SOURCES.len()].into()),
                level: Some(levels[i % levels.len()].as_str().into()),
                property_address: Some(if i % 3 == 0 {
                    format!("{} {}", 100 + i * 17, STREETS[i % STREETS.len()])
                } else {
                    String::new()
                }),
                tags: Some(vec!["demo".into()]),
                ..Default::default()
            };
            let created = self
                .create_lead(Some(agent), input, Origin::Demo, None)
                .await?
                .lead;
            // Age the lead: pretend it came in up to 20 days ago by moving its plan back.
            let age_days = (i as i64 * 37) % 21;
            if age_days > 0 {
                self.age_lead(
                    created.id,
                    age_days * 86_400_000 + (i as i64 % 5) * 3_600_000,
                )
                .await?;
            }
            match i % 10 {
                3 => {
                    self.log_activity(
                        agent,
                        created.id,
                        ActivityInput {
                            kind: ActivityKind::Call,
                            outcome: Some(Outcome::Connected),
                            note: Some("Wants to see homes near the park".into()),
                            at: None,
                            promised_reply_by: None,
                        },
                    )
                    .await?;
                }
                6 => {
                    self.log_activity(
                        agent,
                        created.id,
                        ActivityInput {
                            kind: ActivityKind::Meeting,
                            outcome: None,
                            note: Some("Coffee at the office".into()),
                            at: None,
                            promised_reply_by: Some(now + 2 * 86_400_000),
                        },
                    )
                    .await?;
                }
                _ => {}
            }
        }
        let _ = admin;
        self.wake.notify_one();
        Ok(Some(token))
    }

    /// Shifts a lead's history back in time so demo data looks lived-in.
    async fn age_lead(&self, lead_id: i64, by_ms: i64) -> Result<()> {
        let mut tx = self.store.write().await?;
        tx.shift_lead_back(lead_id, by_ms).await?;
        tx.commit().await?;
        Ok(())
    }
}
