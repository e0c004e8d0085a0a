//! Texts (the `text` channel) through a real SMS provider.
//!
//! [`TwilioChannel`] sends through Twilio's Messages REST API (SPEC §6 delivery settings:
//! `RELENTLESS_TWILIO_ACCOUNT_SID`, `RELENTLESS_TWILIO_AUTH_TOKEN`, `RELENTLESS_TWILIO_FROM`,
//! `RELENTLESS_TWILIO_API_BASE`) and sorts every provider answer into the four
//! [`SendError`](super::SendError) kinds so that a message that may have gone out is never
//! resent (SPEC §5.4). The signature check for Twilio's webhooks is pure and lives in
//! [`relentless_core::twilio`]. With no Twilio settings, texts go to the built-in
//! [`outbox`](super::outbox).

pub mod twilio;

pub use twilio::{TwilioChannel, TwilioConfig};
