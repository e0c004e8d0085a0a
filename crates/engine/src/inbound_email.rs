//! Inbound email: a raw RFC 5322 message, as posted to `/webhooks/email/inbound`, turned into
//! what the engine needs to apply SPEC §5.3 (stop on answer). Pure: no I/O.
//!
//! [`parse`] reads the message with `mail-parser` and says
//! - who wrote it ([`InboundEmail::from`], lowercased) and to whom;
//! - which of our messages it answers: `In-Reply-To` and `References`, as message ids **with**
//!   angle brackets (`<relentless.42.abc@example.com>`), the form we put in `Message-ID`;
//! - what kind it is ([`InboundKind`]): a reply, an automatic reply (out of office, vacation
//!   responder, read receipt: recorded, not an answer), or a bounce (a delivery status
//!   notification: recorded, not an answer; a hard one marks the address bad);
//! - what the lead wrote: [`InboundEmail::text`] is the new part of the reply, with the quoted
//!   history, the reply header ("On … wrote:", "-----Original Message-----", Outlook's
//!   "From: / Sent:" block) and mobile signatures ("Sent from my iPhone") removed. text/plain
//!   is preferred; an HTML-only message is converted to text.
//!
//! Bad input never panics: a message over [`MAX_SIZE`] is refused, empty input and bytes that
//! are not an email are an `Err`, broken charsets are decoded best-effort (unknown charsets as
//! UTF-8 with replacement characters), and a MIME bomb is bounded: the parser is linear in the
//! input, only the first [`MAX_PARTS`] parts and [`MAX_TEXT_PARTS`] text bodies are looked at,
//! and the text kept is capped at [`MAX_TEXT`] bytes. As a last line of defence a panic inside
//! the MIME library is caught and reported as an `Err`.

use mail_parser::decoders::html::add_html_token;
use mail_parser::{
    Address, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};

/// Largest raw message accepted, in bytes.
pub const MAX_SIZE: usize = 10 * 1024 * 1024;
/// Top-level MIME parts examined (for the delivery-status report and the returned message).
pub const MAX_PARTS: usize = 1000;
/// Text bodies joined into [`InboundEmail::full_text`].
pub const MAX_TEXT_PARTS: usize = 16;
/// Bytes of text kept in [`InboundEmail::full_text`].
pub const MAX_TEXT: usize = 1024 * 1024;
/// Message ids kept per header.
const MAX_IDS: usize = 100;
/// Addresses kept in [`InboundEmail::to`].
const MAX_RECIPIENTS: usize = 100;

/// A parsed inbound email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEmail {
    /// `Message-ID`, with angle brackets.
    pub message_id: Option<String>,
    /// The sender's address (`From`, else `Sender`), lowercased.
    pub from: Option<String>,
    /// The sender's display name.
    pub from_name: Option<String>,
    /// Recipients from `To` and then `Cc`, lowercased, without duplicates.
    pub to: Vec<String>,
    /// The decoded subject (`""` when there is none).
    pub subject: String,
    /// `In-Reply-To` ids, with angle brackets. For a bounce without one, the `Message-ID` of
    /// the returned original message (so the bounce matches the touch that bounced).
    pub in_reply_to: Vec<String>,
    /// `References` ids, with angle brackets, oldest first.
    pub references: Vec<String>,
    /// The new part of the reply: quoted history, reply headers and signatures stripped.
    pub text: String,
    /// The whole text body (text/plain, else HTML converted to text), at most [`MAX_TEXT`].
    pub full_text: String,
    pub kind: InboundKind,
}

/// What an inbound email is (SPEC §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundKind {
    /// Written by the lead: an answer.
    Reply,
    /// Out of office, vacation responder, read receipt or other machine-written answer:
    /// recorded, not an answer.
    AutoReply,
    /// A delivery status notification. `recipient` is the address that failed (lowercased);
    /// `hard` is a permanent failure (`Action: failed` with a 5.x.x status), which marks the
    /// address bad; a delay or a temporary failure (4.x.x) is soft.
    Bounce {
        recipient: Option<String>,
        hard: bool,
    },
}

/// Parses a raw RFC 5322 message. Never panics; see the module documentation for the limits.
pub fn parse(raw: &[u8]) -> Result<InboundEmail, String> {
    if raw.len() > MAX_SIZE {
        return Err(format!(
            "the message is larger than {} MB",
            MAX_SIZE / (1024 * 1024)
        ));
    }
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err("the message is empty".into());
    }
    std::panic::catch_unwind(|| parse_inner(raw))
        .unwrap_or_else(|_| Err("the message could not be parsed".into()))
}

fn parse_inner(raw: &[u8]) -> Result<InboundEmail, String> {
    let raw = skip_mbox_line(raw);
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| "not an email message: no headers".to_string())?;

    let message_id = msg.message_id().and_then(bracket_id);
    let sender = msg
        .from()
        .and_then(|a| a.first())
        .filter(|a| a.address.is_some())
        .or_else(|| msg.sender().and_then(|a| a.first()));
    let from = sender
        .and_then(|a| a.address())
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty());
    let from_name = sender
        .and_then(|a| a.name())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    let mut to: Vec<String> = Vec::new();
    for addr in [msg.to(), msg.cc()]
        .into_iter()
        .flatten()
        .flat_map(Address::iter)
    {
        if let Some(a) = addr.address().map(|a| a.trim().to_lowercase())
            && !a.is_empty()
            && !to.contains(&a)
            && to.len() < MAX_RECIPIENTS
        {
            to.push(a);
        }
    }
    let subject = msg.subject().unwrap_or("").trim().to_string();
    let mut in_reply_to = ids(msg.in_reply_to());
    let references = ids(msg.references());

    if from.is_none()
        && message_id.is_none()
        && to.is_empty()
        && subject.is_empty()
        && msg.date().is_none()
    {
        return Err("not an email message: no From, To, Subject, Date or Message-ID".into());
    }

    let full_text = body_text(&msg);
    let headers = top_headers(&msg);

    let kind = if let Some(b) = bounce(&msg, &headers, from.as_deref(), from_name.as_deref()) {
        if in_reply_to.is_empty()
            && let Some(id) = b.original_id
        {
            in_reply_to.push(id);
        }
        InboundKind::Bounce {
            recipient: b.recipient,
            hard: b.hard,
        }
    } else if is_auto_reply(&msg, &headers, &subject) {
        InboundKind::AutoReply
    } else {
        InboundKind::Reply
    };

    Ok(InboundEmail {
        message_id,
        from,
        from_name,
        to,
        subject,
        in_reply_to,
        references,
        text: strip_quotes(&full_text),
        full_text,
        kind,
    })
}

/// Drops an mbox `From ` envelope line, which some tools put before the headers.
fn skip_mbox_line(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"From ") {
        match raw.iter().position(|&b| b == b'\n') {
            Some(i) => &raw[i + 1..],
            None => raw,
        }
    } else {
        raw
    }
}

/// `abc@x`, `<abc@x>` or ` <abc@x> ` → `<abc@x>`. Text that cannot be an id (it has white
/// space or angle brackets inside, as old clients' `In-Reply-To: Your message of …`) is `None`.
fn bracket_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    let valid = !id.is_empty() && !id.contains(|c: char| c.is_whitespace() || c == '<' || c == '>');
    valid.then(|| format!("<{id}>"))
}

fn ids(v: &HeaderValue) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let list: Vec<&str> = match v {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.as_ref()).collect(),
        _ => Vec::new(),
    };
    for id in list.into_iter().filter_map(bracket_id) {
        if !out.contains(&id) && out.len() < MAX_IDS {
            out.push(id);
        }
    }
    out
}

/// The top-level headers as (lowercase name, trimmed raw value).
fn top_headers(msg: &Message) -> Vec<(String, String)> {
    msg.headers_raw()
        .map(|(n, v)| (n.to_ascii_lowercase(), unfold(v)))
        .collect()
}

fn unfold(v: &str) -> String {
    v.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------------
// Kind: bounces and automatic replies
// ---------------------------------------------------------------------------------------------

struct BounceInfo {
    recipient: Option<String>,
    hard: bool,
    original_id: Option<String>,
}

fn is_mailer_daemon(from: Option<&str>, from_name: Option<&str>) -> bool {
    let local = from
        .and_then(|f| f.split('@').next())
        .unwrap_or("")
        .to_ascii_lowercase();
    let name = from_name.unwrap_or("").to_ascii_lowercase();
    matches!(
        local.as_str(),
        "mailer-daemon" | "mailer_daemon" | "maildaemon" | "mail-daemon" | "postmaster"
    ) || name == "mail delivery system"
        || name == "mail delivery subsystem"
}

/// A delivery status notification: `multipart/report; report-type=delivery-status`, or a
/// mailer-daemon sender with a `message/delivery-status` part. A mailer-daemon message without
/// one (a plain-text bounce, as Exim or qmail send) is a bounce too: hard when it names the
/// failed address in `X-Failed-Recipients` (Exim sends it for permanent failures only).
fn bounce(
    msg: &Message,
    headers: &[(String, String)],
    from: Option<&str>,
    from_name: Option<&str>,
) -> Option<BounceInfo> {
    let ct = msg.root_part().content_type();
    let is_dsn_report = ct.is_some_and(|ct| {
        ct.ctype() == "multipart"
            && ct.subtype() == Some("report")
            && ct
                .attribute("report-type")
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("delivery-status"))
    });
    let parts = &msg.parts[..msg.parts.len().min(MAX_PARTS)];
    let status_part = parts.iter().find(|p| {
        p.content_type().is_some_and(|ct| {
            ct.ctype() == "message"
                && matches!(
                    ct.subtype(),
                    Some("delivery-status" | "global-delivery-status")
                )
        })
    });
    let daemon = is_mailer_daemon(from, from_name);
    if !is_dsn_report && !daemon {
        return None;
    }
    let original_id = parts.iter().find_map(original_message_id);
    if let Some(part) = status_part {
        let (recipient, hard) = parse_dsn(part.contents());
        return Some(BounceInfo {
            recipient: recipient.or_else(|| failed_recipient_header(headers)),
            hard,
            original_id,
        });
    }
    let failed = failed_recipient_header(headers);
    Some(BounceInfo {
        hard: failed.is_some(),
        recipient: failed,
        original_id,
    })
}

fn failed_recipient_header(headers: &[(String, String)]) -> Option<String> {
    header(headers, "x-failed-recipients")
        .and_then(|v| v.split(',').next())
        .map(clean_address)
        .filter(|a| !a.is_empty())
}

/// `rfc822; <Jo@Example.net>` → `jo@example.net`.
fn clean_address(v: &str) -> String {
    let v = v.split_once(';').map_or(v, |(_, a)| a);
    v.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_lowercase()
}

/// The `Message-ID` of the returned original in a bounce (`message/rfc822` or
/// `text/rfc822-headers`).
fn original_message_id(part: &MessagePart) -> Option<String> {
    match &part.body {
        PartType::Message(m) => m.message_id().and_then(bracket_id),
        _ => {
            let ct = part.content_type()?;
            let sub = ct.subtype().unwrap_or("");
            let headers_only = (ct.ctype() == "text" || ct.ctype() == "message")
                && (sub == "rfc822-headers" || sub == "global-headers" || sub == "rfc822");
            if !headers_only {
                return None;
            }
            let bytes = part.contents();
            MessageParser::default()
                .parse_headers(bytes)
                .and_then(|m| m.message_id().and_then(bracket_id))
        }
    }
}

struct DsnRecipient {
    recipient: Option<String>,
    action: String,
    status: String,
    diagnostic: String,
}

/// Reads the per-recipient fields of a `message/delivery-status` body (RFC 3464) and returns
/// the failed recipient and whether the failure is permanent. The first `Action: failed`
/// recipient wins, then the first `delayed` one, then any.
fn parse_dsn(body: &[u8]) -> (Option<String>, bool) {
    let text = String::from_utf8_lossy(&body[..body.len().min(256 * 1024)]);
    let text = text.replace("\r\n", "\n");
    let mut blocks: Vec<DsnRecipient> = Vec::new();
    for block in text.split("\n\n").take(MAX_PARTS) {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in block.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = fields.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            } else if let Some((n, v)) = line.split_once(':') {
                fields.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let recipient = get("final-recipient")
            .or_else(|| get("original-recipient"))
            .map(clean_address)
            .filter(|a| !a.is_empty());
        let action = get("action").unwrap_or("").trim().to_ascii_lowercase();
        if recipient.is_none() && action.is_empty() {
            continue;
        }
        blocks.push(DsnRecipient {
            recipient,
            action,
            status: get("status").unwrap_or("").trim().to_string(),
            diagnostic: get("diagnostic-code").unwrap_or("").to_string(),
        });
    }
    let chosen = blocks
        .iter()
        .find(|b| b.action == "failed")
        .or_else(|| blocks.iter().find(|b| b.action == "delayed"))
        .or_else(|| blocks.first());
    let Some(b) = chosen else {
        return (None, false);
    };
    let hard = b.action == "failed"
        && match b.status.chars().next() {
            Some('5') => true,
            Some('4') | Some('2') => false,
            _ => smtp_code_class(&b.diagnostic).is_none_or(|c| c == '5'),
        };
    (b.recipient.clone(), hard)
}

/// The class digit of the SMTP reply code in `smtp; 550 5.1.1 …`.
fn smtp_code_class(diag: &str) -> Option<char> {
    let rest = diag.split_once(';').map_or(diag, |(_, r)| r).trim();
    let code: String = rest.chars().take(3).collect();
    (code.len() == 3 && code.chars().all(|c| c.is_ascii_digit()))
        .then(|| code.chars().next())
        .flatten()
}

/// Subjects that automatic replies start with (lowercase).
const AUTO_SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "automatic reply",
    "auto:",
    "autoreply",
    "auto reply",
    "auto-reply",
    "auto response",
    "autoresponse",
    "auto-response",
    "abwesenheitsnotiz",
    "automatische antwort",
    "réponse automatique",
    "respuesta automática",
    "risposta automatica",
    "resposta automática",
    "automatisch antwoord",
];

/// An automatic reply (RFC 3834 and what real responders send):
/// - `Auto-Submitted` with any value but `no` (Gmail's vacation responder: `auto-replied`,
///   Exchange: `auto-generated`);
/// - `X-Autoreply`, `X-Autorespond`, `X-Autoresponder`, `X-Autoreply-From`,
///   `X-Mail-Autoreply` present, or `X-Autogenerated: Reply`;
/// - `Precedence: auto_reply`, `bulk` or `junk`;
/// - `X-Auto-Response-Suppress` naming `OOF`, `AutoReply` or `All` (Exchange out-of-office
///   replies and other automatic senders);
/// - a null `Return-Path: <>` (RFC 3834 asks responders to use one; people's mail never has one);
/// - a report that is not a delivery-status one (read receipts: `disposition-notification`);
/// - a subject starting with "Out of Office", "Automatic reply", "Auto:", "Autoreply" and the
///   like (also in German, French, Spanish, Italian, Portuguese and Dutch).
fn is_auto_reply(msg: &Message, headers: &[(String, String)], subject: &str) -> bool {
    let no = |v: &str| {
        let v = v.split(';').next().unwrap_or("").trim();
        v.eq_ignore_ascii_case("no") || v.eq_ignore_ascii_case("false")
    };
    for (name, value) in headers {
        let hit = match name.as_str() {
            "auto-submitted" => !value.trim().is_empty() && !no(value),
            "x-autoreply" | "x-autorespond" | "x-autoresponder" | "x-autoreply-from"
            | "x-mail-autoreply" => !no(value),
            "x-autogenerated" => value.trim().eq_ignore_ascii_case("reply"),
            "precedence" => matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "auto_reply" | "bulk" | "junk"
            ),
            "x-auto-response-suppress" => value.split([',', ' ', '\t']).any(|t| {
                ["oof", "autoreply", "all"].contains(&t.trim().to_ascii_lowercase().as_str())
            }),
            "return-path" => value.trim() == "<>",
            _ => false,
        };
        if hit {
            return true;
        }
    }
    if msg
        .root_part()
        .content_type()
        .is_some_and(|ct| ct.ctype() == "multipart" && ct.subtype() == Some("report"))
    {
        return true;
    }
    let s = subject.trim().to_lowercase();
    AUTO_SUBJECTS.iter().any(|p| s.starts_with(p))
}

// ---------------------------------------------------------------------------------------------
// Body text
// ---------------------------------------------------------------------------------------------

/// The text bodies (text/plain preferred; HTML-only bodies converted), joined, capped. When
/// the text/plain alternative is blank (some clients send an empty one), the HTML is used.
fn body_text(msg: &Message) -> String {
    let out = join_bodies(msg, &msg.text_body);
    let out = if out.trim().is_empty() && !msg.html_body.is_empty() {
        join_bodies(msg, &msg.html_body)
    } else {
        out
    };
    let out = out.replace("\r\n", "\n").replace('\r', "\n");
    out.trim_end().to_string()
}

fn join_bodies(msg: &Message, ids: &[u32]) -> String {
    let mut out = String::new();
    for &id in ids.iter().take(MAX_TEXT_PARTS) {
        let Some(part) = msg.parts.get(id as usize) else {
            continue;
        };
        let piece = match &part.body {
            PartType::Text(t) => match part.content_type() {
                Some(ct)
                    if ct
                        .attribute("format")
                        .is_some_and(|f| f.trim().eq_ignore_ascii_case("flowed")) =>
                {
                    let delsp = ct
                        .attribute("delsp")
                        .is_some_and(|d| d.trim().eq_ignore_ascii_case("yes"));
                    unflow(t, delsp)
                }
                _ => t.to_string(),
            },
            PartType::Html(h) => html_to_text(h),
            _ => continue,
        };
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&piece);
        if out.len() >= MAX_TEXT {
            let mut end = MAX_TEXT;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
            break;
        }
    }
    out
}

/// Undoes `format=flowed` (RFC 3676): a line ending in a space continues on the next line of
/// the same quote depth; a leading space is stuffing.
fn unflow(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open: Option<usize> = None; // quote depth of a flowed line being continued
    for line in text.lines() {
        let depth = line.chars().take_while(|&c| c == '>').count();
        let mut content = &line[depth..];
        content = content.strip_prefix(' ').unwrap_or(content);
        if open.is_some_and(|d| d != depth) {
            out.push('\n');
            open = None;
        }
        if open.is_none() && depth > 0 {
            out.push_str(&">".repeat(depth));
            out.push(' ');
        }
        let flowed = content.ends_with(' ') && content != "-- ";
        if flowed {
            let c = if delsp {
                &content[..content.len() - 1]
            } else {
                content
            };
            out.push_str(c);
            open = Some(depth);
        } else {
            out.push_str(content);
            out.push('\n');
            open = None;
        }
    }
    out
}

/// Converts HTML to plain text: drops `head`, `style`, `script`, `title` and comments, ends a
/// line at block elements and `<br>`, marks `<blockquote>` content with `> ` (so it is stripped
/// like quoted plain text), renders `<hr>` as Outlook's `____` separator, collapses white
/// space and decodes character references.
pub fn html_to_text(html: &str) -> String {
    const SKIP: &[&str] = &["head", "style", "script", "title", "template"];
    const BLOCK: &[&str] = &[
        "p", "div", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
        "section", "article", "header", "footer", "center", "dd", "dt", "dl", "address", "form",
    ];
    let b = html.as_bytes();
    let lower_all = html.to_ascii_lowercase();
    let lb = lower_all.as_bytes();
    let mut out = Line::default();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => {
                if lb[i..].starts_with(b"<!--") {
                    i = find(lb, i + 4, b"-->").map_or(b.len(), |e| e + 3);
                    continue;
                }
                let end = find(lb, i + 1, b">").unwrap_or(b.len());
                let inner = &lower_all[i + 1..end.min(b.len())];
                let close = inner.starts_with('/');
                let name: String = inner
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                i = end + 1;
                if name.is_empty() {
                    continue;
                }
                if !close && SKIP.contains(&name.as_str()) {
                    let closing = format!("</{name}");
                    i = find(lb, i, closing.as_bytes())
                        .and_then(|s| find(lb, s, b">"))
                        .map_or(b.len(), |e| e + 1);
                    continue;
                }
                match name.as_str() {
                    "br" => out.newline(true),
                    "hr" => {
                        out.newline(false);
                        out.text("________________________________");
                        out.newline(false);
                    }
                    "blockquote" => {
                        out.newline(false);
                        if close {
                            out.depth = out.depth.saturating_sub(1);
                        } else {
                            out.depth = (out.depth + 1).min(32);
                        }
                    }
                    "td" | "th" if close => out.space(),
                    n if BLOCK.contains(&n) => out.newline(false),
                    _ => {}
                }
            }
            b'&' => {
                let end = b[i + 1..]
                    .iter()
                    .take(32)
                    .position(|&c| !(c.is_ascii_alphanumeric() || c == b'#'))
                    .map(|p| i + 1 + p);
                match end {
                    Some(e) if b[e] == b';' && e > i + 1 => {
                        let mut s = String::new();
                        add_html_token(&mut s, &b[i..=e], false);
                        let s = s.replace('\u{a0}', " ");
                        if s.trim().is_empty() {
                            out.nbsp();
                        } else {
                            out.text(&s);
                        }
                        i = e + 1;
                    }
                    _ => {
                        out.text("&");
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_whitespace() => {
                out.space();
                i += 1;
            }
            _ => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'<' || c == b'&' || c.is_ascii_whitespace())
                    .map_or(b.len(), |p| i + p);
                let t = html[i..end].replace('\u{a0}', " ");
                out.text(&t);
                i = end;
            }
        }
    }
    out.finish()
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Line builder for [`html_to_text`].
#[derive(Default)]
struct Line {
    out: String,
    /// Characters written on the current line (after any quote marks).
    line_len: usize,
    pending_space: bool,
    /// The current line exists (text or `&nbsp;`), so a block end terminates it.
    started: bool,
    depth: usize,
}

impl Line {
    fn start(&mut self) {
        if !self.started {
            for _ in 0..self.depth {
                self.out.push('>');
            }
            if self.depth > 0 {
                self.out.push(' ');
            }
            self.started = true;
        }
    }
    fn text(&mut self, t: &str) {
        if t.is_empty() {
            return;
        }
        self.start();
        if self.pending_space && self.line_len > 0 {
            self.out.push(' ');
            self.line_len += 1;
        }
        self.pending_space = false;
        self.out.push_str(t);
        self.line_len += t.len();
    }
    fn nbsp(&mut self) {
        self.start();
        self.pending_space = true;
    }
    fn space(&mut self) {
        self.pending_space = true;
    }
    /// Ends the current line; `always` (for `<br>`) also makes an empty line.
    fn newline(&mut self, always: bool) {
        if always || self.started {
            self.start();
            self.out.push('\n');
        }
        self.started = false;
        self.line_len = 0;
        self.pending_space = false;
    }
    fn finish(mut self) -> String {
        self.newline(false);
        let mut lines: Vec<&str> = Vec::new();
        for l in self.out.lines().map(str::trim_end) {
            if l.is_empty() && lines.last().is_some_and(|p| p.is_empty()) {
                continue;
            }
            lines.push(l);
        }
        lines.join("\n").trim_matches('\n').to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Quote stripping
// ---------------------------------------------------------------------------------------------

/// Attribution line openings and endings ("On <date>, <name> wrote:"), lowercase.
const ATTR_PREFIXES: &[&str] = &["on ", "le ", "am ", "el ", "il ", "em ", "op ", "den "];
/// Verbs of an attribution line, which ends with `:` ("wrote:", "schrieb Sam <sam@x>:").
const ATTR_VERBS: &[&str] = &[
    " wrote",
    " schrieb",
    " a écrit",
    " escribió",
    " ha scritto",
    " escreveu",
    " schreef",
    " skrev",
    " napisał",
];
const FROM_PREFIXES: &[&str] = &["from:", "von:", "de:", "de :"];
const DATE_PREFIXES: &[&str] = &[
    "sent:",
    "date:",
    "gesendet:",
    "envoyé :",
    "envoyé:",
    "enviado:",
    "fecha:",
];
const TO_PREFIXES: &[&str] = &[
    "to:", "subject:", "an:", "betreff:", "à :", "à:", "objet :", "objet:", "para:", "asunto:",
];
const SIGNATURES: &[&str] = &[
    "sent from my ",
    "sent from outlook",
    "sent from mail for windows",
    "sent from yahoo mail",
    "sent from the all new aol app",
    "sent with proton mail",
    "get outlook for ",
    "envoyé de mon ",
    "von meinem iphone gesendet",
    "enviado desde mi ",
];

/// A line for matching: trimmed, Outlook's `*bold*` markers removed, lowercase.
fn norm(line: &str) -> String {
    line.trim().trim_matches('*').trim().to_lowercase()
}

/// How many lines (1–3) starting at `i` form an attribution line ("On … wrote:"), if they do.
fn attribution_len(lines: &[&str], i: usize) -> Option<usize> {
    let first = norm(lines[i]);
    if !ATTR_PREFIXES.iter().any(|p| first.starts_with(p)) {
        return None;
    }
    let mut joined = first;
    for n in 1..=3 {
        if joined.len() > 400 {
            return None;
        }
        if joined.ends_with(':')
            && ATTR_VERBS.iter().any(|v| joined.contains(v))
            && joined.chars().any(|c| c.is_ascii_digit())
        {
            return Some(n);
        }
        let next = lines.get(i + n)?;
        let next = norm(next);
        if next.is_empty() || next.starts_with('>') {
            return None;
        }
        joined.push(' ');
        joined.push_str(&next);
    }
    None
}

/// Outlook's header block: `From:` followed within five lines by a date line and a `To:` or
/// `Subject:` line.
fn is_outlook_block(lines: &[&str], i: usize) -> bool {
    let first = norm(lines[i]);
    if !FROM_PREFIXES.iter().any(|p| first.starts_with(p)) {
        return false;
    }
    let next: Vec<String> = lines[i + 1..].iter().take(5).map(|l| norm(l)).collect();
    next.iter()
        .any(|l| DATE_PREFIXES.iter().any(|p| l.starts_with(p)))
        && next
            .iter()
            .any(|l| TO_PREFIXES.iter().any(|p| l.starts_with(p)))
}

/// A line after which everything is history or signature.
fn is_cut(lines: &[&str], i: usize) -> bool {
    let raw = lines[i];
    let t = norm(raw);
    if raw.trim_end() == "--" {
        return true; // the signature separator "-- "
    }
    if t.len() >= 10 && t.chars().all(|c| c == '_') {
        return true; // Outlook's separator
    }
    if t.starts_with("----") && t.ends_with("----") && t.chars().any(char::is_alphabetic) {
        return true; // -----Original Message-----, ---------- Forwarded message ---------
    }
    if t.starts_with("begin forwarded message") {
        return true;
    }
    if t.split_whitespace().count() <= 7 && SIGNATURES.iter().any(|s| t.starts_with(s)) {
        return true;
    }
    is_outlook_block(lines, i)
}

/// The new part of a reply: drops lines quoted with `>`, and everything from the first reply
/// header (Gmail's and Apple Mail's "On … wrote:", possibly wrapped over up to three lines,
/// "-----Original Message-----", Outlook's "From: … Sent: … To: … Subject:" block or
/// "________________________________" separator, "Begin forwarded message:") or signature
/// ("-- ", "Sent from my iPhone", "Get Outlook for iOS", …) on. An "On … wrote:" line with
/// nothing written above it (a reply written below or between the quotes) is skipped instead
/// of cutting there. Blank lines are trimmed at both ends and runs of them collapsed to one.
pub fn strip_quotes(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut has_content = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.trim_start().starts_with('>') {
            i += 1;
            continue;
        }
        if let Some(n) = attribution_len(&lines, i) {
            if !has_content {
                i += n;
                continue;
            }
            break;
        }
        if is_cut(&lines, i) {
            break;
        }
        has_content |= !line.trim().is_empty();
        kept.push(line);
        i += 1;
    }
    let mut out: Vec<&str> = Vec::new();
    for l in kept {
        if l.trim().is_empty() {
            if out.last().is_some_and(|p: &&str| !p.is_empty()) {
                out.push("");
            }
        } else {
            out.push(l);
        }
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_get_brackets() {
        assert_eq!(bracket_id("abc@x").as_deref(), Some("<abc@x>"));
        assert_eq!(bracket_id(" <abc@x> ").as_deref(), Some("<abc@x>"));
        assert_eq!(bracket_id("<>"), None);
        assert_eq!(bracket_id("Your message of Tue, 24 Nov"), None);
    }

    #[test]
    fn dsn_fields() {
        let body = b"Reporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; <Jo@Example.NET>\r\nAction: failed\r\nStatus: 5.1.1\r\n";
        assert_eq!(parse_dsn(body), (Some("jo@example.net".into()), true));
        let body = b"Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822;a@b.c\nAction: delayed\nStatus: 4.4.1\n";
        assert_eq!(parse_dsn(body), (Some("a@b.c".into()), false));
        let body = b"Final-Recipient: rfc822;a@b.c\nAction: failed\nStatus: 4.4.7\n";
        assert_eq!(parse_dsn(body), (Some("a@b.c".into()), false));
        let body =
            b"Final-Recipient: rfc822;a@b.c\nAction: failed\nDiagnostic-Code: smtp; 550 no\n";
        assert_eq!(parse_dsn(body), (Some("a@b.c".into()), true));
        let body =
            b"Final-Recipient: rfc822;a@b.c\nAction: failed\nDiagnostic-Code: smtp; 452 full\n";
        assert_eq!(parse_dsn(body), (Some("a@b.c".into()), false));
        assert_eq!(parse_dsn(b""), (None, false));
    }

    #[test]
    fn flowed_text_is_joined() {
        let t = "This is a long line that \nwas wrapped.\n> quoted and \n> wrapped\n-- \nsig\n";
        assert_eq!(
            unflow(t, false),
            "This is a long line that was wrapped.\n> quoted and wrapped\n-- \nsig\n"
        );
        assert_eq!(unflow("a \nb\n", true), "ab\n");
    }

    #[test]
    fn html_blocks_quotes_and_entities() {
        let h = "<html><head><style>p{color:red}</style></head><body>\
                 <div dir=\"ltr\">Tom &amp; Jerry&rsquo;s&nbsp;plan<br>line&#39;2</div>\
                 <p>&nbsp;</p><blockquote><div>old</div></blockquote><!-- c --><p>after</p></body></html>";
        assert_eq!(
            html_to_text(h),
            "Tom & Jerry\u{2019}s plan\nline'2\n\n> old\nafter"
        );
    }
}
