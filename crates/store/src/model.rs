//! Rows as the store reads and writes them. Instants are epoch milliseconds (UTC).

use relentless_core::types::*;
use serde::{Deserialize, Serialize};

/// Epoch milliseconds, UTC.
pub type Millis = i64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Team {
    pub name: String,
    pub country: String,
    pub timezone: String,
    /// JSON of `relentless_core::schedule::Window`.
    pub sending_window: String,
    /// JSON map of region → Window.
    pub state_windows: String,
    /// JSON list of dates.
    pub holidays: String,
    pub postal_address: String,
    pub support_contact: String,
    pub escalation_minutes: i64,
    /// When on, leads without recorded text consent get no automatic texts (SPEC §5.2).
    #[sqlx(default)]
    pub require_text_consent: bool,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub password_hash: Option<String>,
    pub active: bool,
    pub notify_sms: bool,
    pub notify_email: bool,
    pub created_at: Millis,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    pub role: Role,
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PlanRow {
    pub slug: String,
    pub name: String,
    pub version: i64,
    pub source: String,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TemplateRow {
    pub slug: String,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    pub name: String,
    pub subject: Option<String>,
    pub body: String,
    pub voicemail: Option<String>,
    pub updated_at: Millis,
}

/// A lead. `email_key` is the lowercased email used for matching.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Lead {
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub timezone: String,
    pub region: Option<String>,
    pub source: String,
    #[sqlx(try_from = "String")]
    pub level: Level,
    #[sqlx(try_from = "String")]
    pub stage: Stage,
    pub preferred_channel: Option<String>,
    pub assigned_to: Option<i64>,
    pub external_id: Option<String>,
    #[sqlx(json)]
    pub tags: Vec<String>,
    pub notes: String,
    pub property_address: String,
    pub sms_opt_out: bool,
    pub email_opt_out: bool,
    pub do_not_call: bool,
    pub email_bad: bool,
    pub phone_bad: bool,
    pub attempts: i64,
    pub first_attempt_at: Option<Millis>,
    pub first_call_at: Option<Millis>,
    pub answered_at: Option<Millis>,
    pub answered_on: Option<String>,
    pub attempts_at_answer: Option<i64>,
    pub last_touch_at: Option<Millis>,
    pub next_touch_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Lead {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }
    pub fn preferred(&self) -> Option<Channel> {
        self.preferred_channel
            .as_deref()
            .and_then(|c| c.parse().ok())
    }
    /// Whether the lead can be texted at all.
    pub fn can_text(&self) -> bool {
        self.phone.is_some() && !self.sms_opt_out && !self.phone_bad
    }
    pub fn can_email(&self) -> bool {
        self.email.is_some() && !self.email_opt_out && !self.email_bad
    }
    pub fn can_call(&self) -> bool {
        self.phone.is_some() && !self.do_not_call && !self.phone_bad
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Enrollment {
    pub id: i64,
    pub lead_id: i64,
    pub plan: String,
    pub plan_version: i64,
    #[sqlx(try_from = "String")]
    pub state: EnrollmentState,
    pub reason: Option<String>,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    /// Computed: the next scheduled touch of this enrollment.
    #[sqlx(default)]
    pub next_touch_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTouch {
    pub step: i64,
    pub channel: Channel,
    pub template: String,
    pub planned_at: Millis,
    pub due_at: Millis,
    /// Why the due instant differs from the planned one (sending window).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Touch {
    pub id: i64,
    pub enrollment_id: i64,
    pub lead_id: i64,
    pub plan: String,
    pub step: i64,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    pub template: String,
    pub planned_at: Millis,
    pub due_at: Millis,
    #[sqlx(try_from = "String")]
    pub status: TouchStatus,
    pub reason: Option<String>,
    pub attempt: Option<i64>,
    pub sent_channel: Option<String>,
    pub subject: Option<String>,
    pub content: Option<String>,
    pub provider_id: Option<String>,
    pub delivery: Option<String>,
    pub task_id: Option<i64>,
    pub settled_at: Option<Millis>,
}

/// What the dispatcher decided for one claimed touch.
#[derive(Debug, Clone, PartialEq)]
pub struct TouchResult {
    pub touch_id: i64,
    /// The touch's `due_at` as claimed: with the id, its key on SQLite (migration 0016), so
    /// its row is found without a lookup in the id index.
    pub due_at: Millis,
    pub lead_id: i64,
    pub status: TouchStatus,
    pub reason: Option<String>,
    pub sent_channel: Option<Channel>,
    pub subject: Option<String>,
    pub content: Option<String>,
    pub provider_id: Option<String>,
    /// Counts as an attempt (a message handed to the provider).
    pub attempt: bool,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Task {
    pub id: i64,
    pub lead_id: i64,
    pub touch_id: Option<i64>,
    pub assignee_id: Option<i64>,
    #[sqlx(try_from = "String")]
    pub kind: TaskKind,
    pub due_at: Millis,
    pub script: String,
    pub voicemail: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: TaskStatus,
    pub outcome: Option<String>,
    pub note: Option<String>,
    pub escalated_at: Option<Millis>,
    pub created_at: Millis,
    pub completed_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub lead_id: i64,
    pub touch_id: Option<i64>,
    pub assignee_id: Option<i64>,
    pub kind: TaskKind,
    pub due_at: Millis,
    pub script: String,
    pub voicemail: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// None: every assignee.
    pub assignee_id: Option<i64>,
    /// None: every status.
    pub status: Option<TaskStatus>,
    pub lead_id: Option<i64>,
    /// Keyset: tasks ordered by (due_at, id) after this pair.
    pub after: Option<(Millis, i64)>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Activity {
    pub id: i64,
    pub lead_id: i64,
    pub kind: String,
    pub detail: String,
    pub data: Option<String>,
    pub actor_id: Option<i64>,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewActivity {
    pub lead_id: i64,
    pub kind: String,
    pub detail: String,
    pub data: Option<serde_json::Value>,
    pub actor_id: Option<i64>,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxMessage {
    pub id: i64,
    pub channel: String,
    pub to_addr: String,
    pub subject: Option<String>,
    pub body: String,
    pub status: String,
    pub lead_id: Option<i64>,
    pub touch_id: Option<i64>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewOutbox {
    pub channel: Channel,
    pub to_addr: String,
    pub subject: Option<String>,
    pub body: String,
    pub lead_id: Option<i64>,
    pub touch_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Notification {
    pub id: i64,
    pub user_id: i64,
    pub event: String,
    pub lead_id: Option<i64>,
    pub lead_name: String,
    pub kind: String,
    pub at: Millis,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub user_id: i64,
    pub event: EventKind,
    pub lead_id: Option<i64>,
    pub lead_name: String,
    pub kind: String,
    pub at: Millis,
    pub detail: String,
}

/// Filters and keyset cursor for the leads list (newest first).
#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    /// Words matched against names through full-text search.
    pub name_query: Option<String>,
    /// An exact lowercased email.
    pub email_key: Option<String>,
    /// An E.164 phone.
    pub phone: Option<String>,
    pub level: Option<Level>,
    pub stage: Option<Stage>,
    pub source: Option<String>,
    pub assigned_to: Option<i64>,
    pub below_attempts: Option<i64>,
    /// Only leads with no touch (or, never touched, created) before this instant.
    pub no_touch_since: Option<Millis>,
    /// Only leads whose id is below this (the cursor).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Raw figures the reports summary is computed from: the report tables' rows of the window
/// (kept by triggers, see migration 0008), the live count of leads below the floor and the
/// overdue tasks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReportRows {
    /// (metric, hour the leads came in as an instant, value, leads): `lead` = seconds to the
    /// first attempt, `call` = seconds to the first call (both bucketed, see the migration),
    /// `attempts` = attempts made before the lead answered.
    pub lead_values: Vec<(String, Millis, i64, i64)>,
    /// (plan, step, channel used, sent, answered after it)
    pub touches: Vec<(String, i64, String, i64, i64)>,
    /// (agent email, overdue open tasks)
    pub overdue_by_agent: Vec<(String, i64)>,
    pub leads_below_8: i64,
}

/// A tracking token: the open pixel, click links and unsubscribe of one email, or a video page.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Tracking {
    pub token: String,
    pub kind: String,
    pub lead_id: i64,
    pub touch_id: Option<i64>,
    #[sqlx(json)]
    pub links: Vec<String>,
    pub video_id: Option<i64>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Video {
    pub id: i64,
    pub lead_id: Option<i64>,
    pub user_id: Option<i64>,
    pub file: String,
    pub content_type: String,
    pub size: i64,
    pub created_at: Millis,
}

/// A lead-intake webhook: its secret token, the source it stamps, and how it routes leads.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Intake {
    pub id: i64,
    pub token: String,
    pub source: String,
    pub plan: Option<String>,
    /// JSON routing rules (engine::intake::Routing).
    pub routing: String,
    pub thank_you_url: Option<String>,
    pub active: bool,
    pub created_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Consent {
    pub id: i64,
    pub lead_id: i64,
    pub channel: String,
    pub source: String,
    pub wording: String,
    pub ip: Option<String>,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Pond {
    pub lead_id: i64,
    pub intake_id: i64,
    #[sqlx(json)]
    pub agents: Vec<i64>,
    pub expires_at: Millis,
    pub created_at: Millis,
}

/// An enrollment to write with its touches.
#[derive(Debug, Clone, Copy)]
pub struct NewEnrollment<'a> {
    pub lead_id: i64,
    pub plan: &'a str,
    pub version: i64,
    pub started_at: Millis,
    pub touches: &'a [NewTouch],
}
