//! Texts through Twilio (being written).
