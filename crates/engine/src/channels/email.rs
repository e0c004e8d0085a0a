//! Email over SMTP (being written).
