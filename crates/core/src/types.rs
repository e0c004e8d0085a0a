//! The vocabulary of Relentless: the enums every layer shares, with their exact wire names
//! (SPEC §3). Each parses from and prints as its snake_case name.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An unknown enum value, naming what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not one of: {expected}")]
pub struct UnknownVariant {
    pub value: String,
    pub expected: &'static str,
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const EXPECTED: &'static str = concat!($($wire, " "),+);
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl TryFrom<String> for $name {
            type Error = UnknownVariant;
            fn try_from(s: String) -> Result<Self, Self::Error> { s.parse() }
        }
        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { value: s.to_string(), expected: $name::EXPECTED.trim_end() }),
                }
            }
        }
    };
}

wire_enum!(
    /// How warm a lead is; picks the plan that follows `speed-to-lead`.
    Level { Hot => "hot", Warm => "warm", Cold => "cold", Nurture => "nurture" }
);
wire_enum!(
    /// Where the lead is in the pipeline.
    Stage { New => "new", Attempting => "attempting", Contacted => "contacted",
            Appointment => "appointment", Client => "client", Closed => "closed", Lost => "lost" }
);
wire_enum!(
    /// A way to reach a lead. `Preferred` in a plan step resolves to the lead's preferred channel.
    Channel { Call => "call", Text => "text", Email => "email", Video => "video", Task => "task", Preferred => "preferred" }
);
wire_enum!(
    /// The state of a lead in one plan.
    EnrollmentState { Active => "active", Paused => "paused", Completed => "completed", Stopped => "stopped" }
);
wire_enum!(
    /// SPEC §3 touch statuses. `Sending` exists only while a send is in flight.
    TouchStatus { Scheduled => "scheduled", Sending => "sending", Sent => "sent", Done => "done",
                  Skipped => "skipped", Cancelled => "cancelled", Failed => "failed", Uncertain => "uncertain" }
);
wire_enum!(
    /// The provider's word on a sent message.
    Delivery { Queued => "queued", Delivered => "delivered", Undelivered => "undelivered", Failed => "failed" }
);
wire_enum!(
    TaskKind { Call => "call", Video => "video", Reply => "reply", PromisedAnswer => "promised_answer", Task => "task" }
);
wire_enum!(
    TaskStatus { Open => "open", Done => "done", Cancelled => "cancelled" }
);
wire_enum!(
    /// How a task ended. `Connected` on a call is an answer (SPEC §5.3).
    Outcome { Connected => "connected", Voicemail => "voicemail", NoAnswer => "no_answer", BadNumber => "bad_number", Done => "done" }
);
wire_enum!(
    Role { Agent => "agent", Admin => "admin" }
);
wire_enum!(
    /// What an agent logs by hand on a lead.
    ActivityKind { Call => "call", Meeting => "meeting", Note => "note" }
);
wire_enum!(
    /// Events on the notification stream (SSE `event:` names).
    EventKind { Engagement => "engagement", Reply => "reply", TaskDue => "task_due", Escalation => "escalation" }
);

#[allow(clippy::derivable_impls)] // the enum comes from `wire_enum!`
impl Default for Channel {
    fn default() -> Self {
        Channel::Text
    }
}

impl Channel {
    /// Text and email are sent by the engine; the rest become tasks for the agent.
    pub fn is_automatic(self) -> bool {
        matches!(self, Channel::Text | Channel::Email)
    }
    /// The preferred-channel values a lead may carry.
    pub fn is_lead_preference(self) -> bool {
        matches!(
            self,
            Channel::Call | Channel::Text | Channel::Email | Channel::Video
        )
    }
    /// Whether the sending window (SPEC §5.1) applies: everything that reaches the lead's
    /// phone (texts, calls, video texts, call-like tasks). Email lands in an inbox and is read
    /// when the lead chooses, so it is not held back; plans still schedule it at sensible times.
    pub fn is_windowed(self) -> bool {
        !matches!(self, Channel::Email)
    }
    /// The task kind a non-automatic step creates.
    pub fn task_kind(self) -> TaskKind {
        match self {
            Channel::Call => TaskKind::Call,
            Channel::Video => TaskKind::Video,
            _ => TaskKind::Task,
        }
    }
}

impl Level {
    /// The plan that follows `speed-to-lead` for a lead at this level (SPEC §4).
    pub fn plan_slug(self) -> &'static str {
        match self {
            Level::Hot | Level::Warm => "relentless-21",
            Level::Cold => "cold-8",
            Level::Nurture => "nurture",
        }
    }
}

impl TouchStatus {
    /// Statuses a touch never leaves.
    pub fn is_settled(self) -> bool {
        !matches!(self, TouchStatus::Scheduled | TouchStatus::Sending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for s in TouchStatus::ALL {
            assert_eq!(s.as_str().parse::<TouchStatus>().unwrap(), *s);
            assert_eq!(
                serde_json::to_string(s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(
            "promised_answer".parse::<TaskKind>().unwrap(),
            TaskKind::PromisedAnswer
        );
        assert_eq!(" HOT ".parse::<Level>().unwrap(), Level::Hot);
    }

    #[test]
    fn unknown_value_names_the_choices() {
        let e = "lukewarm".parse::<Level>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "'lukewarm' is not one of: hot warm cold nurture"
        );
    }
}
