//! Email out over SMTP. [`compose`] turns a rendered plain-text email into its text and HTML
//! parts (footer with the team's postal address and unsubscribe link, tracked links, open
//! pixel), its `Message-ID` and its RFC 8058 unsubscribe headers; [`SmtpChannel`] sends the
//! result through any SMTP server named by `RELENTLESS_SMTP_URL` and classifies failures so
//! that a message that may have gone out is never sent again (SPEC §5.4).

pub mod compose;
pub mod smtp;

pub use smtp::SmtpChannel;
