//! Email out through an SMTP server (`RELENTLESS_SMTP_URL`), with lettre.
//!
//! The URL is read exactly as lettre's `AsyncSmtpTransport::from_url` reads it:
//! `smtp://host:port` is plain text (no STARTTLS, even when offered), `smtp://…?tls=required`
//! upgrades with STARTTLS or fails, `smtp://…?tls=opportunistic` upgrades when offered,
//! `smtps://host:port` is implicit TLS; `user:pass@` (percent-encoded) authenticates with
//! PLAIN or LOGIN, and a path (`smtp://host/ehlo.name`) sets the EHLO name. Default ports are
//! 25 (`smtp`), 587 (`smtp` with `tls=`) and 465 (`smtps`).
//!
//! The SMTP transaction itself is driven here, one command at a time, over lettre's
//! connection type, instead of through `AsyncSmtpTransport::send`: the transport reports an
//! error without saying at which step it happened, and it has no read timeout on tokio.
//! Knowing the step is what lets a failure be classified safely (SPEC §5.4):
//!
//! | where it failed | result |
//! |---|---|
//! | connecting, greeting, EHLO, STARTTLS/TLS, AUTH (any error) | `Transient` |
//! | `MAIL`/`RCPT`/`DATA` answered 4xx, or the connection failed / timed out before the message was written | `Transient` |
//! | `RCPT` answered 5xx for the mailbox (550/551/553, or enhanced status 5.1.x but 5.1.7/5.1.8, or 5.2.1) | `BadAddress` |
//! | any other 5xx (to `MAIL`, `RCPT`, `DATA` or the message) | `Permanent` |
//! | the message answered 4xx | `Transient` (the server did not take it) |
//! | the message was written and no final reply came (timeout, connection dropped, garbage) | `Unknown` |
//! | a recipient address that cannot be parsed | `BadAddress` |
//!
//! Connections are reused: an idle session is kept for up to a minute and checked with `NOOP`
//! before reuse; a session that saw any error is closed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lettre::address::{Address, Envelope};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, Tls, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::{Response, Severity};
use tokio::time::timeout;

use crate::channels::{Channel, Message, SendError, Sent};

/// Limit for connecting (TCP, greeting, EHLO, TLS, AUTH together) and for each command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Limit for writing the message and reading the server's final reply. Long on purpose
/// (RFC 5321 §4.5.3.2.6 suggests 10 minutes): giving up here makes the touch `uncertain`.
pub const DEFAULT_FINAL_REPLY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long an idle session is kept for reuse.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How many idle sessions are kept.
const MAX_IDLE: usize = 8;
/// How many sessions are open at once unless set otherwise (`RELENTLESS_SMTP_SESSIONS`).
/// Relays limit concurrent sessions per client (Exchange Online: 3); past the limit they
/// answer `421`, which would hold the touch for a minute.
pub const DEFAULT_MAX_SESSIONS: usize = 3;

/// Headers the channel writes itself; `Message::headers` may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Bcc",
    "Sender",
    "Reply-To",
    "Subject",
    "Message-ID",
    "Date",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Return-Path",
];

/// Sends email through one SMTP server. Cheap to share (`Arc`); sessions are pooled inside.
pub struct SmtpChannel {
    server: Server,
    from: Address,
    command_timeout: Duration,
    final_reply_timeout: Duration,
    idle: Mutex<Vec<Parked>>,
    /// One permit per session in use ([`DEFAULT_MAX_SESSIONS`] unless set with
    /// [`SmtpChannel::with_max_sessions`]): the dispatcher sends side by side.
    sessions: tokio::sync::Semaphore,
    max_sessions: usize,
}

struct Server {
    /// Host for the TCP connection (brackets of an IPv6 literal removed).
    host: String,
    port: u16,
    tls: Tls,
    /// The name the server's certificate must be for: the URL's host.
    tls_domain: String,
    /// Roots trusted besides the default store (DER), from
    /// [`SmtpChannel::with_root_certificate`].
    extra_roots: Vec<Vec<u8>>,
    credentials: Option<Credentials>,
    hello_name: ClientId,
}

struct Parked {
    conn: AsyncSmtpConnection,
    since: Instant,
}

impl std::fmt::Debug for SmtpChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("SmtpChannel")
            .field("host", &self.server.host)
            .field("port", &self.server.port)
            .field("tls", &tls_mode(&self.server.tls))
            .field("auth", &self.server.credentials.is_some())
            .field("from", &self.from.to_string())
            .finish()
    }
}

fn tls_mode(tls: &Tls) -> &'static str {
    match tls {
        Tls::None => "none",
        Tls::Opportunistic(_) => "opportunistic",
        Tls::Required(_) => "required",
        Tls::Wrapper(_) => "wrapper",
    }
}

/// The step of the SMTP transaction a failure happened in, before the message was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Mail,
    Rcpt,
    Data,
}

impl SmtpChannel {
    /// A channel for `url` (`RELENTLESS_SMTP_URL`, lettre's URL forms, see the module doc)
    /// sending from `from_address` (`RELENTLESS_EMAIL_FROM`, a bare address; `Name <addr>`
    /// is accepted and the name ignored). Nothing is connected yet. Error messages never
    /// contain the URL's password.
    pub fn from_url(url: &str, from_address: &str) -> Result<SmtpChannel, String> {
        // lettre's URL forms, plus `?tls=none`; errors never echo the URL (it has the password).
        let server = parse_url(url)?;
        let from = parse_from(from_address)?;
        Ok(SmtpChannel {
            server,
            from,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            final_reply_timeout: DEFAULT_FINAL_REPLY_TIMEOUT,
            idle: Mutex::new(Vec::new()),
            sessions: tokio::sync::Semaphore::new(DEFAULT_MAX_SESSIONS),
            max_sessions: DEFAULT_MAX_SESSIONS,
        })
    }

    /// At most `n` sessions open at once (at least one): what the relay allows one client.
    pub fn with_max_sessions(mut self, n: usize) -> SmtpChannel {
        self.max_sessions = n.max(1);
        self.sessions = tokio::sync::Semaphore::new(self.max_sessions);
        self
    }

    /// Changes the time limits: `command` for connecting and for each command before the
    /// message, `final_reply` for writing the message and getting the server's answer.
    pub fn with_timeouts(mut self, command: Duration, final_reply: Duration) -> SmtpChannel {
        self.command_timeout = command;
        self.final_reply_timeout = final_reply;
        self
    }

    /// Also trusts `der`, a DER-encoded root certificate, when checking the server's TLS
    /// certificate (a private CA or a self-signed certificate); the default roots stay
    /// trusted. Without TLS in the URL this only checks the certificate.
    pub fn with_root_certificate(mut self, der: Vec<u8>) -> Result<SmtpChannel, String> {
        self.server.extra_roots.push(der);
        let s = &self.server;
        let params = tls_parameters(&s.tls_domain, &s.extra_roots)
            .map_err(|e| format!("invalid root certificate: {e}"))?;
        self.server.tls = match &self.server.tls {
            Tls::None => Tls::None,
            Tls::Opportunistic(_) => Tls::Opportunistic(params),
            Tls::Required(_) => Tls::Required(params),
            Tls::Wrapper(_) => Tls::Wrapper(params),
        };
        Ok(self)
    }

    /// The domain of the sender address (for [`super::compose::message_id`]).
    pub fn from_domain(&self) -> &str {
        self.from.domain()
    }

    /// The sender address, `RELENTLESS_EMAIL_FROM`.
    pub fn from_address(&self) -> &str {
        self.from.as_ref()
    }

    /// Says `QUIT` on every idle session.
    pub async fn shutdown(&self) {
        let parked = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for p in parked {
            let mut conn = p.conn;
            let _ = timeout(Duration::from_secs(5), conn.quit()).await;
        }
    }

    /// The RFC 5322 message for `msg`.
    fn build(&self, msg: &Message) -> Result<lettre::Message, SendError> {
        let to: Address = msg.to.trim().parse().map_err(|e| {
            SendError::BadAddress(format!("not an email address: {:?} ({e})", msg.to))
        })?;
        // lettre panics on a display name with a line break: control characters become
        // spaces.
        let name = one_line(&msg.from_name);
        let from = Mailbox::new((!name.is_empty()).then_some(name), self.from.clone());
        let mut b = lettre::Message::builder()
            .from(from)
            .to(Mailbox::new(None, to))
            .message_id(msg.message_id.clone());
        if let Some(subject) = &msg.subject {
            b = b.subject(one_line(subject));
        }
        if let Some(reply_to) = &msg.reply_to {
            let mailbox = reply_to
                .trim()
                .parse::<Mailbox>()
                .map_err(|e| e.to_string())
                .and_then(|m| match m.name.as_deref() {
                    Some(n) if n.contains(char::is_control) => {
                        Err("control character in the name".to_string())
                    }
                    _ => Ok(m),
                })
                .map_err(|e| {
                    SendError::Permanent(format!("invalid Reply-To {reply_to:?} ({e})"))
                })?;
            b = b.reply_to(mailbox);
        }
        for (name, value) in &msg.headers {
            b = b.raw_header(raw_header(name, value)?);
        }
        let built = match &msg.html {
            Some(html) => b.multipart(MultiPart::alternative_plain_html(
                msg.body.clone(),
                html.clone(),
            )),
            None => b.singlepart(SinglePart::plain(msg.body.clone())),
        };
        built.map_err(|e| SendError::Permanent(format!("could not build the message: {e}")))
    }

    /// An open session: an idle one that still answers `NOOP`, else a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let parked = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(parked) = parked else { break };
            let mut conn = parked.conn;
            if parked.since.elapsed() < IDLE_TIMEOUT
                && matches!(
                    timeout(self.command_timeout, conn.test_connected()).await,
                    Ok(true)
                )
            {
                return Ok(conn);
            }
            discard(conn);
        }
        match timeout(self.command_timeout, self.connect()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(SendError::Transient(format!(
                "could not open an SMTP session with {}:{}: {e}",
                self.server.host, self.server.port
            ))),
            Err(_) => Err(SendError::Transient(format!(
                "timed out opening an SMTP session with {}:{}",
                self.server.host, self.server.port
            ))),
        }
    }

    /// Connects, greets, upgrades to TLS as configured and authenticates.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let s = &self.server;
        let wrapper = match &s.tls {
            Tls::Wrapper(params) => Some(params.clone()),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (s.host.as_str(), s.port),
            Some(self.command_timeout),
            &s.hello_name,
            wrapper,
            None,
        )
        .await?;
        match &s.tls {
            Tls::Opportunistic(params) if conn.can_starttls() => {
                conn.starttls(params.clone(), &s.hello_name).await?;
            }
            Tls::Required(params) => conn.starttls(params.clone(), &s.hello_name).await?,
            _ => {}
        }
        if let Some(credentials) = &s.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }

    /// Keeps a session that ended a transaction cleanly for the next message.
    fn checkin(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return discard(conn);
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Parked {
                conn,
                since: Instant::now(),
            });
        } else {
            drop(idle);
            discard(conn);
        }
    }

    /// `MAIL`, `RCPT`, `DATA`, the message: each step classified on failure.
    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        email: &[u8],
    ) -> Result<Response, SendError> {
        let mut mail_options = Vec::new();
        let non_ascii_address = envelope
            .to()
            .iter()
            .chain(envelope.from())
            .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii_address {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(SendError::Permanent(
                    "the address is not ASCII and the server does not support SMTPUTF8".into(),
                ));
            }
            mail_options.push(MailParameter::SmtpUtfEight);
        }
        if !email.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err(SendError::Permanent(
                    "the message is not ASCII and the server does not support 8BITMIME".into(),
                ));
            }
            mail_options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }

        let t = self.command_timeout;
        let mail = Mail::new(envelope.from().cloned(), mail_options);
        step(Step::Mail, t, conn.command(mail)).await?;
        for to in envelope.to() {
            step(Step::Rcpt, t, conn.command(Rcpt::new(to.clone(), vec![]))).await?;
        }
        step(Step::Data, t, conn.command(Data)).await?;

        // From here on the server may have the message.
        match timeout(self.final_reply_timeout, conn.message(email)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(after_data(&e)),
            Err(_) => Err(SendError::Unknown(
                "the message was sent and no final reply came in time".into(),
            )),
        }
    }
}

#[async_trait]
impl Channel for SmtpChannel {
    async fn send(&self, msg: &Message) -> Result<Sent, SendError> {
        let email = self.build(msg)?;
        let message_id = email.headers().get_raw("Message-ID").map(str::to_string);
        let envelope = email.envelope().clone();
        let bytes = email.formatted();

        // One of the sessions allowed at once, held until this message is done. (The semaphore is never
        // closed, so acquiring cannot fail.)
        let _session = self
            .sessions
            .acquire()
            .await
            .map_err(|_| SendError::Transient("the SMTP channel is shutting down".into()))?;
        let mut conn = self.checkout().await?;
        let result = self.transaction(&mut conn, &envelope, &bytes).await;
        match result {
            Ok(response) => {
                self.checkin(conn);
                let reply = response.message().collect::<Vec<_>>().join(" ");
                tracing::debug!(touch_id = ?msg.touch_id, %reply, "email accepted by the SMTP server");
                Ok(Sent {
                    provider_id: message_id.or(Some(reply)),
                    outbox: None,
                })
            }
            Err(e) => {
                discard(conn);
                tracing::debug!(touch_id = ?msg.touch_id, error = %e, "email not sent");
                Err(e)
            }
        }
    }

    fn max_in_flight(&self, _kind: relentless_core::types::Channel) -> Option<usize> {
        Some(self.max_sessions)
    }
    fn name(&self) -> &'static str {
        "smtp"
    }
}

/// Runs one command before the message with a time limit; any failure means the server
/// does not have the message.
async fn step(
    step: Step,
    limit: Duration,
    fut: impl Future<Output = Result<Response, SmtpError>>,
) -> Result<Response, SendError> {
    match timeout(limit, fut).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => Err(before_data(step, &e)),
        Err(_) => Err(SendError::Transient(format!(
            "{} timed out",
            step_name(step)
        ))),
    }
}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::Mail => "MAIL FROM",
        Step::Rcpt => "RCPT TO",
        Step::Data => "DATA",
    }
}

/// A failure before the message was written: the server does not have it.
fn before_data(step: Step, e: &SmtpError) -> SendError {
    let what = format!("{} failed: {e}", step_name(step));
    match e.status() {
        Some(code) if code.severity == Severity::PermanentNegativeCompletion => {
            if step == Step::Rcpt && is_bad_mailbox(code.into(), &reply_text(e)) {
                SendError::BadAddress(what)
            } else {
                SendError::Permanent(what)
            }
        }
        // 4xx, or no reply at all (connection lost, timeout, unreadable reply).
        _ => SendError::Transient(what),
    }
}

/// A failure once the message was written: only a reply says what happened.
fn after_data(e: &SmtpError) -> SendError {
    match e.status().map(|c| c.severity) {
        Some(Severity::TransientNegativeCompletion) => {
            SendError::Transient(format!("message refused for now: {e}"))
        }
        Some(Severity::PermanentNegativeCompletion) => {
            SendError::Permanent(format!("message refused: {e}"))
        }
        _ => SendError::Unknown(format!("the message was sent and no final reply came: {e}")),
    }
}

/// The text of a negative reply (lettre keeps it as the error's source).
fn reply_text(e: &SmtpError) -> String {
    std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// Whether a 5xx reply to `RCPT` says the mailbox itself is bad (rather than a policy,
/// relay or server problem). An enhanced status code (RFC 3463) decides when present:
/// 5.1.x (addressing; 5.1.7 and 5.1.8 are about the sender) and 5.2.1 (mailbox disabled).
/// Without one: 550 (mailbox unavailable), 551 (user not local), 553 (mailbox name not
/// allowed).
fn is_bad_mailbox(code: u16, text: &str) -> bool {
    if let Some((class, subject, detail)) = enhanced_status(text) {
        return class == 5
            && ((subject == 1 && !matches!(detail, 7 | 8)) || (subject, detail) == (2, 1));
    }
    matches!(code, 550 | 551 | 553)
}

/// `5.1.1` at the start of a reply text.
fn enhanced_status(text: &str) -> Option<(u16, u16, u16)> {
    let word = text.split_whitespace().next()?;
    let mut parts = word.split('.');
    let mut num = |max_len: usize| -> Option<u16> {
        let p = parts.next()?;
        if p.is_empty() || p.len() > max_len || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let status = (num(1)?, num(3)?, num(3)?);
    if parts.next().is_some() || !matches!(status.0, 2 | 4 | 5) {
        return None;
    }
    Some(status)
}

/// Closes a session in the background (`QUIT`, bounded), without holding up the caller.
fn discard(mut conn: AsyncSmtpConnection) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let _ = timeout(Duration::from_secs(5), conn.abort()).await;
        });
    }
}

/// `s` on one line: runs of white space and control characters become one space.
fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks one extra header: a valid name, not one the channel writes, no line breaks.
fn raw_header(name: &str, value: &str) -> Result<HeaderValue, SendError> {
    if RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        return Err(SendError::Permanent(format!(
            "header {name} is written by the SMTP channel"
        )));
    }
    // RFC 5322 field name: printable ASCII except ':'.
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(SendError::Permanent(format!(
            "invalid header name {name:?}"
        )));
    }
    if value.contains(['\r', '\n']) {
        return Err(SendError::Permanent(format!(
            "header {name} contains a line break"
        )));
    }
    let header_name = HeaderName::new_from_ascii(name.to_string())
        .map_err(|_| SendError::Permanent(format!("invalid header name {name:?}")))?;
    Ok(HeaderValue::new(header_name, value.to_string()))
}

/// The server settings of a URL that lettre accepted, read the way lettre reads them.
fn parse_url(url: &str) -> Result<Server, String> {
    let u = url::Url::parse(url).map_err(|e| format!("invalid SMTP URL: {e}"))?;
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("invalid SMTP URL: no host")?;
    let tls_param = u
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let tls_params = || tls_parameters(host, &[]).map_err(|e| format!("invalid SMTP URL: {e}"));
    // A password is never sent in the clear: `smtp://user:pass@host:587` (SPEC §6's example)
    // means STARTTLS required unless the URL says `?tls=none` (a local relay).
    let has_credentials = u.password().is_some();
    let (default_port, tls) = match (u.scheme(), tls_param.as_deref()) {
        ("smtp", None) if has_credentials => (587, Tls::Required(tls_params()?)),
        ("smtp", None | Some("none")) => (25, Tls::None),
        ("smtp", Some("required")) => (587, Tls::Required(tls_params()?)),
        ("smtp", Some("opportunistic")) => (587, Tls::Opportunistic(tls_params()?)),
        ("smtps", _) => (465, Tls::Wrapper(tls_params()?)),
        (scheme, tls) => {
            return Err(format!(
                "invalid SMTP URL: scheme {scheme:?} with tls={tls:?} (use smtp://, \
smtp://…?tls=required, smtp://…?tls=opportunistic or smtps://)"
            ));
        }
    };
    let hello_name = if u.path().len() > 1 {
        ClientId::Domain(u.path().trim_matches('/').to_string())
    } else {
        ClientId::default()
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "invalid SMTP URL: the user name or password is not UTF-8".to_string())
    };
    let credentials = match u.password() {
        Some(password) => Some(Credentials::new(decode(u.username())?, decode(password)?)),
        None => None,
    };
    Ok(Server {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: u.port().unwrap_or(default_port),
        tls,
        tls_domain: host.to_string(),
        extra_roots: Vec::new(),
        credentials,
        hello_name,
    })
}

/// TLS settings checking the certificate for `domain` against the default roots and
/// `extra_roots` (DER).
fn tls_parameters(domain: &str, extra_roots: &[Vec<u8>]) -> Result<TlsParameters, SmtpError> {
    let mut builder = TlsParameters::builder(domain.to_string());
    for der in extra_roots {
        builder = builder.add_root_certificate(Certificate::from_der(der.clone())?);
    }
    builder.build()
}

fn parse_from(from_address: &str) -> Result<Address, String> {
    let s = from_address.trim();
    s.parse::<Address>()
        .or_else(|_| s.parse::<Mailbox>().map(|m| m.email))
        .map_err(|e| format!("invalid sender address {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relentless_core::types::Channel as ChannelKind;

    fn channel() -> SmtpChannel {
        SmtpChannel::from_url("smtp://127.0.0.1:2525", "team@mail.example.com").unwrap()
    }

    fn message() -> Message {
        Message {
            touch_id: Some(7),
            lead_id: 1,
            channel: ChannelKind::Email,
            to: "ann@example.org".into(),
            subject: Some("Your home search".into()),
            body: "Hi Ann".into(),
            html: Some("<p>Hi Ann</p>".into()),
            from_name: "Bob Agent".into(),
            reply_to: Some("r+tok@reply.example.com".into()),
            message_id: Some("<relentless.7.abc@mail.example.com>".into()),
            headers: vec![("List-Unsubscribe".into(), "<https://a.example/u/x>".into())],
        }
    }

    fn formatted(m: &Message) -> String {
        String::from_utf8(channel().build(m).unwrap().formatted()).unwrap()
    }

    fn formatted_or_err(m: &Message) -> String {
        match channel().build(m) {
            Ok(built) => String::from_utf8(built.formatted()).unwrap(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn url_forms_follow_lettre() {
        let c = SmtpChannel::from_url("smtp://mail.example.com", "a@example.com").unwrap();
        assert_eq!((c.server.port, tls_mode(&c.server.tls)), (25, "none"));
        assert!(c.server.credentials.is_none());

        let c = SmtpChannel::from_url(
            "smtp://us%40er:p%3Ass%20w@mail.example.com?tls=required",
            "a@example.com",
        )
        .unwrap();
        assert_eq!((c.server.port, tls_mode(&c.server.tls)), (587, "required"));
        assert_eq!(
            c.server.credentials,
            Some(Credentials::new("us@er".into(), "p:ss w".into()))
        );

        let c = SmtpChannel::from_url("smtp://h:2587?tls=opportunistic", "a@example.com").unwrap();
        assert_eq!(
            (c.server.port, tls_mode(&c.server.tls)),
            (2587, "opportunistic")
        );

        let c = SmtpChannel::from_url("smtps://u:p@mail.example.com", "a@example.com").unwrap();
        assert_eq!((c.server.port, tls_mode(&c.server.tls)), (465, "wrapper"));

        let c = SmtpChannel::from_url("smtp://[::1]:2525/client.example", "a@example.com").unwrap();
        assert_eq!((c.server.host.as_str(), c.server.port), ("::1", 2525));
        assert_eq!(
            c.server.hello_name,
            ClientId::Domain("client.example".into())
        );
    }

    #[test]
    fn bad_urls_and_senders_are_refused_without_echoing_the_password() {
        for url in [
            "http://u:secret@h",
            "smtp://u:secret@h?tls=bogus",
            "not a url secret",
            "smtp://u:secret@",
        ] {
            let err = SmtpChannel::from_url(url, "a@example.com").unwrap_err();
            assert!(!err.contains("secret"), "{url}: {err}");
        }
        assert!(SmtpChannel::from_url("smtp://h", "not an address").is_err());
        let c = SmtpChannel::from_url("smtp://h", "Team <team@x.example>").unwrap();
        assert_eq!(c.from_address(), "team@x.example");
        assert_eq!(c.from_domain(), "x.example");
        let debug = format!(
            "{:?}",
            SmtpChannel::from_url("smtp://u:secret@h", "a@example.com").unwrap()
        );
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn message_has_the_headers() {
        let raw = formatted(&message());
        assert!(
            raw.contains("From: \"Bob Agent\" <team@mail.example.com>\r\n"),
            "{raw}"
        );
        assert!(raw.contains("To: ann@example.org\r\n"));
        assert!(raw.contains("Reply-To: r+tok@reply.example.com\r\n"));
        assert!(raw.contains("Message-ID: <relentless.7.abc@mail.example.com>\r\n"));
        assert!(raw.contains("List-Unsubscribe: <https://a.example/u/x>\r\n"));
        assert!(raw.contains("multipart/alternative"));
    }

    #[test]
    fn without_html_the_message_is_plain_text_and_gets_a_message_id() {
        let mut m = message();
        m.html = None;
        m.message_id = None;
        m.reply_to = None;
        let raw = formatted(&m);
        assert!(raw.contains("Content-Type: text/plain"));
        assert!(!raw.contains("multipart"));
        assert!(raw.contains("Message-ID: <"));
        assert!(!raw.contains("Reply-To"));
    }

    #[test]
    fn header_injection_is_impossible() {
        let mut m = message();
        m.subject = Some("Hi\r\nBcc: victim@example.net".into());
        m.from_name = "Bob\r\nBcc: victim@example.net".into();
        let raw = formatted(&m);
        assert!(!raw.contains("\r\nBcc:"), "{raw}");

        let built = channel().build(&m).unwrap();
        let headers = built.headers();
        assert_eq!(
            headers.get_raw("From"),
            Some("\"Bob Bcc: victim@example.net\" <team@mail.example.com>")
        );
        assert_eq!(
            headers.get_raw("Subject"),
            Some("Hi Bcc: victim@example.net")
        );

        let mut m = message();
        m.reply_to = Some("\"Evil\r\nBcc: victim@example.net\" <r@x.example>".into());
        assert!(!formatted_or_err(&m).contains("\r\nBcc:"));
        m.reply_to = Some("r@x.example\r\nBcc: victim@example.net".into());
        assert!(!formatted_or_err(&m).contains("\r\nBcc:"));

        for (name, value) in [
            ("X-Ok", "a\r\nBcc: victim@example.net"),
            ("X-Bad\r\nBcc", "x"),
            ("X Bad", "x"),
            ("X:Bad", "x"),
            ("", "x"),
            ("message-id", "<other@x>"),
            ("BCC", "victim@example.net"),
        ] {
            let mut m = message();
            m.headers = vec![(name.into(), value.into())];
            assert!(
                matches!(channel().build(&m), Err(SendError::Permanent(_))),
                "{name:?}"
            );
        }
    }

    #[test]
    fn unparseable_recipient_is_a_bad_address() {
        for to in [
            "",
            "ann",
            "ann@",
            "@example.org",
            "ann@exa mple.org",
            "a\r\nb@x.org",
        ] {
            let mut m = message();
            m.to = to.into();
            assert!(
                matches!(channel().build(&m), Err(SendError::BadAddress(_))),
                "{to:?}"
            );
        }
    }

    #[test]
    fn rcpt_rejections_are_told_apart() {
        assert!(is_bad_mailbox(550, "Mailbox unavailable"));
        assert!(is_bad_mailbox(
            550,
            "5.1.1 <ann@x.org>: Recipient address rejected: User unknown"
        ));
        assert!(is_bad_mailbox(553, "Mailbox name not allowed"));
        assert!(is_bad_mailbox(551, "User not local"));
        assert!(is_bad_mailbox(
            550,
            "5.2.1 The email account that you tried to reach is disabled"
        ));
        assert!(is_bad_mailbox(554, "5.1.10 Recipient address has null MX"));
        assert!(!is_bad_mailbox(550, "5.7.1 Relaying denied"));
        assert!(!is_bad_mailbox(
            554,
            "5.7.1 Service unavailable; client host blocked"
        ));
        assert!(!is_bad_mailbox(550, "5.1.8 Sender address rejected"));
        assert!(!is_bad_mailbox(
            552,
            "Requested mail action aborted: exceeded storage"
        ));
        assert!(!is_bad_mailbox(554, "Transaction failed"));
        assert!(!is_bad_mailbox(530, "5.7.0 Authentication required"));
        assert_eq!(enhanced_status("5.1.1 no"), Some((5, 1, 1)));
        assert_eq!(enhanced_status("5.1.1.1 no"), None);
        assert_eq!(enhanced_status("5.1 no"), None);
        assert_eq!(enhanced_status("1.2.3"), None);
        assert_eq!(enhanced_status(""), None);
    }
}
