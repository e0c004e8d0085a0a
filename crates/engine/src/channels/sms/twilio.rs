//! Texts through Twilio's Messages REST API.
//!
//! One `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json` per message, HTTP
//! Basic auth (account SID, auth token), form fields `To`, `From`, `Body` and, when
//! configured, `StatusCallback`. Twilio answers `201 Created` with the message resource as
//! JSON; its `sid` (`SM…`) is kept as the touch's provider id so that status callbacks
//! (`/webhooks/twilio/status`) can find the touch.
//!
//! # How answers are classified (SPEC §5.4: never resend a message that may have gone out)
//!
//! | what happened | result |
//! |---|---|
//! | `200`/`201` (any `2xx`) | [`Sent`] with the `sid` from the JSON body |
//! | the connection was never made: refused, DNS failure, connect timeout, TLS handshake failure (the request was provably never written) | [`SendError::Transient`] |
//! | `429 Too Many Requests` | [`SendError::Transient`] |
//! | `503` **with** a `Retry-After` header | [`SendError::Transient`] |
//! | `4xx` with Twilio error 21211 (invalid `To`), 21612 (`To` not reachable by SMS), 21614 (not a mobile number) | [`SendError::BadAddress`]: the lead's phone is flagged bad |
//! | `4xx` with Twilio error 21610 (recipient unsubscribed) | [`SendError::Permanent`], see below |
//! | any other `4xx` (bad credentials, wrong account, unverified `From`, body too long, …) | [`SendError::Permanent`] with Twilio's code and message |
//! | any other `5xx` (including `503` without `Retry-After`), a timeout after the connection was made, a connection dropped before the answer, an unreadable answer | [`SendError::Unknown`]: the touch becomes `uncertain`, never resent |
//! | a `3xx` (redirects are not followed: Twilio never sends one, so `api_base` is wrong) | [`SendError::Permanent`] |
//!
//! Error 21610 means the recipient replied `STOP` to our Twilio number and **the carrier /
//! Twilio** now blocks every message to them until they reply `START`. The number is valid,
//! so it is not a bad address (flagging it `bad_number` would be wrong and would survive the
//! lead's `START`); the touch fails with a reason saying the recipient opted out at the
//! carrier. Recording the opt-out itself is the inbound webhook's job (SPEC §5.2).

use crate::channels::{Channel, Message, SendError, Sent};
use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// Twilio's production API, the default for `RELENTLESS_TWILIO_API_BASE`.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";
/// Default limit on establishing the connection (TCP + TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default limit on the whole request, connection through the last byte of the answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest answer body read from Twilio (its JSON answers are about 1 KiB).
const MAX_BODY: usize = 64 * 1024;

/// Twilio error codes that mean the `To` number itself is unusable for texts.
const BAD_ADDRESS_CODES: [i64; 3] = [
    21211, // Invalid 'To' phone number
    21612, // The 'To' phone number is not currently reachable via SMS
    21614, // 'To' number is not a valid mobile number
];
/// Attempt to send to an unsubscribed recipient (the recipient replied STOP at the carrier).
const OPTED_OUT_CODE: i64 = 21610;

/// Twilio settings (SPEC §6 delivery settings).
#[derive(Clone)]
pub struct TwilioConfig {
    /// `RELENTLESS_TWILIO_ACCOUNT_SID` (`AC…`).
    pub account_sid: String,
    /// `RELENTLESS_TWILIO_AUTH_TOKEN`; never printed (see the `Debug` impl).
    pub auth_token: String,
    /// `RELENTLESS_TWILIO_FROM`: the sending number in E.164 (or a messaging service SID).
    pub from: String,
    /// `RELENTLESS_TWILIO_API_BASE`, default [`DEFAULT_API_BASE`]; a trailing `/` is ignored.
    pub api_base: String,
    /// The public URL of `/webhooks/twilio/status`, sent as `StatusCallback` when set.
    pub status_callback: Option<String>,
    /// Limit on establishing the connection, default [`DEFAULT_CONNECT_TIMEOUT`]. A connect
    /// timeout is transient: nothing was sent.
    pub connect_timeout: Duration,
    /// Limit on the whole request, default [`DEFAULT_TIMEOUT`]. Running out of it after the
    /// connection was made is an unknown outcome: the message may have been created.
    pub timeout: Duration,
}

impl TwilioConfig {
    /// Settings with the default API base, no status callback and the default timeouts.
    pub fn new(
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
        from: impl Into<String>,
    ) -> TwilioConfig {
        TwilioConfig {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            from: from.into(),
            api_base: DEFAULT_API_BASE.to_string(),
            status_callback: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The Messages resource: `{api_base}/2010-04-01/Accounts/{account_sid}/Messages.json`.
    pub fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base.trim_end_matches('/'),
            self.account_sid
        )
    }
}

impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("from", &self.from)
            .field("api_base", &self.api_base)
            .field("status_callback", &self.status_callback)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The `text` channel through Twilio. One HTTP client (connection pool) per channel.
pub struct TwilioChannel {
    cfg: TwilioConfig,
    url: String,
    client: reqwest::Client,
}

impl fmt::Debug for TwilioChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioChannel")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl TwilioChannel {
    /// A channel with one HTTP client for all its sends.
    ///
    /// # Panics
    /// If the HTTP client cannot be built (its TLS backend fails to initialise); use
    /// [`TwilioChannel::try_new`] to handle that.
    pub fn new(cfg: TwilioConfig) -> TwilioChannel {
        TwilioChannel::try_new(cfg).expect("building the HTTP client for Twilio")
    }

    /// Like [`TwilioChannel::new`], returning the error if the HTTP client cannot be built.
    pub fn try_new(cfg: TwilioConfig) -> Result<TwilioChannel, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            // Twilio never redirects; following one would turn the POST into a GET elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("relentless/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(TwilioChannel {
            url: cfg.messages_url(),
            cfg,
            client,
        })
    }

    pub fn config(&self) -> &TwilioConfig {
        &self.cfg
    }
}

#[async_trait]
impl Channel for TwilioChannel {
    async fn send(&self, msg: &Message) -> Result<Sent, SendError> {
        let mut form: Vec<(&str, &str)> = vec![
            ("To", msg.to.as_str()),
            ("From", self.cfg.from.as_str()),
            ("Body", msg.body.as_str()),
        ];
        if let Some(cb) = &self.cfg.status_callback {
            form.push(("StatusCallback", cb.as_str()));
        }
        let sent = self
            .client
            .post(&self.url)
            .basic_auth(&self.cfg.account_sid, Some(&self.cfg.auth_token))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await;
        let res = match sent {
            Ok(res) => res,
            Err(e) => {
                let err = classify_error(&e, self.cfg.timeout);
                tracing::warn!(touch_id = ?msg.touch_id, error = %err, "twilio send failed");
                return Err(err);
            }
        };
        let status = res.status();
        let retry_after = res
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string());
        let body = read_body(res).await;
        let outcome = match body {
            Ok(body) => classify(status, retry_after.as_deref(), &body),
            // The status line arrived but the body did not (timeout, dropped connection).
            Err(e) if status.is_success() => {
                tracing::warn!(touch_id = ?msg.touch_id, error = %chain(&e),
                    "twilio accepted the message but its answer could not be read");
                Ok(None)
            }
            Err(_) => classify(status, retry_after.as_deref(), b""),
        };
        match outcome {
            Ok(sid) => {
                tracing::debug!(touch_id = ?msg.touch_id, sid = ?sid, "twilio accepted the message");
                Ok(Sent {
                    provider_id: sid,
                    outbox: None,
                })
            }
            Err(err) => {
                tracing::warn!(touch_id = ?msg.touch_id, status = status.as_u16(), error = %err,
                    "twilio refused the message");
                Err(err)
            }
        }
    }

    fn name(&self) -> &'static str {
        "twilio"
    }
}

/// Reads at most [`MAX_BODY`] bytes of the answer.
async fn read_body(mut res: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await? {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body)
}

/// A failure before any HTTP answer arrived.
fn classify_error(e: &reqwest::Error, timeout: Duration) -> SendError {
    if e.is_connect() {
        // Connection refused, DNS failure, connect timeout, TLS handshake failure: hyper had
        // no connection to write the request on, so Twilio cannot have created a message.
        SendError::Transient(format!("could not connect to Twilio: {}", chain(e)))
    } else if e.is_builder() {
        // The request could not even be built (e.g. an unusable API base URL); nothing sent.
        SendError::Permanent(format!("invalid Twilio request: {}", chain(e)))
    } else if e.is_timeout() {
        SendError::Unknown(format!(
            "no answer from Twilio within {} ms after the request was sent",
            timeout.as_millis()
        ))
    } else {
        SendError::Unknown(format!(
            "the connection to Twilio failed after the request was sent: {}",
            chain(e)
        ))
    }
}

/// An error with its causes, `outer: inner: innermost`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

#[derive(Deserialize)]
struct Created {
    sid: Option<String>,
}

#[derive(Deserialize, Default)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

/// Sorts an HTTP answer from Twilio: `Ok(sid)` if the message was accepted.
fn classify(
    status: StatusCode,
    retry_after: Option<&str>,
    body: &[u8],
) -> Result<Option<String>, SendError> {
    if status.is_success() {
        let sid = serde_json::from_slice::<Created>(body)
            .ok()
            .and_then(|c| c.sid);
        if sid.is_none() {
            tracing::warn!(
                status = status.as_u16(),
                "twilio accepted the message without a readable sid"
            );
        }
        return Ok(sid);
    }
    let err: TwilioError = serde_json::from_slice(body).unwrap_or_default();
    let detail = describe(status, &err);
    let code = status.as_u16();
    if code == 429 {
        return Err(SendError::Transient(format!(
            "Twilio is rate limiting{}: {detail}",
            retry_note(retry_after)
        )));
    }
    if code == 503 && retry_after.is_some() {
        return Err(SendError::Transient(format!(
            "Twilio is unavailable{}: {detail}",
            retry_note(retry_after)
        )));
    }
    if status.is_client_error() {
        return Err(match err.code {
            Some(OPTED_OUT_CODE) => SendError::Permanent(format!(
                "the recipient opted out at the carrier (replied STOP to this number; \
                 texts are blocked until they reply START): {detail}"
            )),
            Some(c) if BAD_ADDRESS_CODES.contains(&c) => SendError::BadAddress(detail),
            _ => SendError::Permanent(detail),
        });
    }
    if status.is_server_error() {
        return Err(SendError::Unknown(format!(
            "Twilio failed after receiving the message: {detail}"
        )));
    }
    Err(SendError::Permanent(format!(
        "unexpected answer from the Twilio API (is RELENTLESS_TWILIO_API_BASE right?): {detail}"
    )))
}

/// `Twilio error 21211 (HTTP 400): The 'To' number … is not a valid phone number.`
fn describe(status: StatusCode, err: &TwilioError) -> String {
    let mut s = match err.code {
        Some(c) => format!("Twilio error {c} (HTTP {})", status.as_u16()),
        None => format!("HTTP {}", status),
    };
    if let Some(m) = err.message.as_deref().filter(|m| !m.is_empty()) {
        s.push_str(": ");
        s.push_str(m);
    }
    s
}

fn retry_note(retry_after: Option<&str>) -> String {
    match retry_after {
        Some(v) => format!(" (Retry-After: {v})"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: i64, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "code": code, "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": 400
        }))
        .unwrap()
    }

    fn st(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[test]
    fn created_gives_the_sid() {
        let body = br#"{"sid":"SM0123","status":"queued"}"#;
        assert_eq!(
            classify(st(201), None, body).unwrap(),
            Some("SM0123".to_string())
        );
        assert_eq!(
            classify(st(200), None, body).unwrap(),
            Some("SM0123".to_string())
        );
        // Accepted but unreadable: still sent, never retried.
        assert_eq!(classify(st(201), None, b"<html>").unwrap(), None);
    }

    #[test]
    fn bad_numbers_are_bad_addresses() {
        for code in [21211, 21612, 21614] {
            match classify(st(400), None, &err(code, "nope")) {
                Err(SendError::BadAddress(m)) => {
                    assert!(m.contains(&code.to_string()) && m.contains("nope"), "{m}")
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn carrier_opt_out_is_permanent_not_bad_address() {
        match classify(
            st(400),
            None,
            &err(21610, "Attempt to send to unsubscribed recipient"),
        ) {
            Err(SendError::Permanent(m)) => {
                assert!(
                    m.contains("opted out at the carrier") && m.contains("21610"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_client_errors_are_permanent() {
        for (status, code) in [(400, 21602), (401, 20003), (404, 20404), (400, 21606)] {
            match classify(st(status), None, &err(code, "x")) {
                Err(SendError::Permanent(m)) => assert!(m.contains(&code.to_string()), "{m}"),
                other => panic!("{status}/{code}: {other:?}"),
            }
        }
        assert!(matches!(
            classify(st(403), None, b""),
            Err(SendError::Permanent(m)) if m.contains("403")
        ));
        assert!(matches!(
            classify(st(302), None, b""),
            Err(SendError::Permanent(_))
        ));
    }

    #[test]
    fn only_provably_unsent_answers_are_transient() {
        assert!(matches!(
            classify(st(429), None, &err(20429, "Too Many Requests")),
            Err(SendError::Transient(_))
        ));
        assert!(matches!(
            classify(st(503), Some("30"), b""),
            Err(SendError::Transient(m)) if m.contains("Retry-After: 30")
        ));
        for status in [500, 502, 503, 504] {
            assert!(
                matches!(classify(st(status), None, b""), Err(SendError::Unknown(_))),
                "{status}"
            );
        }
    }

    #[test]
    fn messages_url_and_debug() {
        let mut cfg = TwilioConfig::new("AC1", "secret-token", "+15005550006");
        assert_eq!(
            cfg.messages_url(),
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
        );
        cfg.api_base = "http://127.0.0.1:9/".into();
        assert_eq!(
            cfg.messages_url(),
            "http://127.0.0.1:9/2010-04-01/Accounts/AC1/Messages.json"
        );
        assert!(!format!("{cfg:?}").contains("secret-token"));
    }
}
