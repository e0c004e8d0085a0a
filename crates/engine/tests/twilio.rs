//! The Twilio channel against a real HTTP server on loopback that speaks Twilio's Messages
//! API wire format (Basic auth, form-encoded `POST …/Messages.json`, JSON answers) and records
//! what it got. Each test scripts the server's answer and checks how the channel sorts it
//! (SPEC §5.4: transient only when the message provably was not created).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine as _;
use relentless_core::types::Channel as ChannelKind;
use relentless_engine::channels::sms::{TwilioChannel, TwilioConfig};
use relentless_engine::channels::{Channel, Message, SendError};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-auth-token";
const FROM: &str = "+15005550006";

/// What the fake Twilio answers.
#[derive(Clone)]
enum Reply {
    /// `201 Created` with the message resource, like Twilio.
    Created,
    /// A Twilio error: status, optional `Retry-After`, error code and message.
    Error(u16, Option<&'static str>, i64, &'static str),
    /// Take the request, then answer nothing for this long.
    Hang(Duration),
}

/// One request as the fake Twilio received it.
#[derive(Debug, Clone, PartialEq)]
struct Recorded {
    account: String,
    to: Option<String>,
    from: Option<String>,
    body: Option<String>,
    status_callback: Option<String>,
    fields: Vec<(String, String)>,
}

struct Fake {
    reply: Mutex<Reply>,
    requests: Mutex<Vec<Recorded>>,
}

struct Server {
    base: String,
    fake: Arc<Fake>,
}

impl Server {
    async fn start(reply: Reply) -> Server {
        let fake = Arc::new(Fake {
            reply: Mutex::new(reply),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(messages),
            )
            .with_state(fake.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server {
            base: format!("http://{addr}"),
            fake,
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.fake.requests.lock().unwrap().clone()
    }

    fn channel(&self) -> TwilioChannel {
        TwilioChannel::new(config(&self.base))
    }
}

fn config(base: &str) -> TwilioConfig {
    let mut cfg = TwilioConfig::new(SID, TOKEN, FROM);
    cfg.api_base = base.to_string();
    cfg.status_callback = Some("https://relentless.example/webhooks/twilio/status".into());
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.timeout = Duration::from_secs(5);
    cfg
}

fn twilio_error(status: u16, code: i64, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, as Twilio handles it.
async fn messages(
    State(fake): State<Arc<Fake>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    // HTTP Basic auth with the account SID and auth token; Twilio answers 401 / 20003.
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
    );
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str());
    if !authorized {
        return twilio_error(401, 20003, "Authenticate");
    }
    if account != SID {
        return twilio_error(404, 20404, "The requested resource was not found");
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let rec = Recorded {
        account: account.clone(),
        to: field("To"),
        from: field("From"),
        body: field("Body"),
        status_callback: field("StatusCallback"),
        fields: fields.clone(),
    };
    let n = {
        let mut reqs = fake.requests.lock().unwrap();
        reqs.push(rec.clone());
        reqs.len()
    };
    let Some(to) = rec.to else {
        return twilio_error(400, 21604, "A 'To' phone number is required.");
    };
    if rec.body.as_deref().unwrap_or("").is_empty() {
        return twilio_error(400, 21602, "Message body is required.");
    }
    let reply = fake.reply.lock().unwrap().clone();
    match reply {
        Reply::Created => {
            let sid = format!("SM{n:032x}");
            let body = json!({
                "sid": sid,
                "account_sid": account,
                "to": to,
                "from": rec.from,
                "body": rec.body,
                "status": "queued",
                "direction": "outbound-api",
                "num_segments": "1",
                "price": null,
                "error_code": null,
                "error_message": null,
                "api_version": "2010-04-01",
                "uri": format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json"),
            });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Reply::Error(status, retry_after, code, message) => {
            let mut res = twilio_error(status, code, message);
            if let Some(v) = retry_after {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, v.parse().unwrap());
            }
            res
        }
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            StatusCode::REQUEST_TIMEOUT.into_response()
        }
    }
}

fn text(to: &str, body: &str) -> Message {
    Message {
        touch_id: Some(42),
        lead_id: 7,
        channel: ChannelKind::Text,
        to: to.into(),
        body: body.into(),
        ..Message::default()
    }
}

#[tokio::test]
async fn a_text_arrives_with_the_right_fields_and_auth_and_returns_the_sid() {
    let srv = Server::start(Reply::Created).await;
    let ch = srv.channel();
    assert_eq!(ch.name(), "twilio");
    let body = "Hi Dana, it's Sam from Acme Realty — still looking? Reply STOP to opt out. ünïcode & = + %";
    let sent = ch.send(&text("+14155550123", body)).await.unwrap();
    assert_eq!(
        sent.provider_id.as_deref(),
        Some("SM00000000000000000000000000000001")
    );
    assert!(
        sent.outbox.is_none(),
        "a real delivery is not an outbox copy"
    );

    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.account, SID);
    assert_eq!(r.to.as_deref(), Some("+14155550123"));
    assert_eq!(r.from.as_deref(), Some(FROM));
    assert_eq!(r.body.as_deref(), Some(body));
    assert_eq!(
        r.status_callback.as_deref(),
        Some("https://relentless.example/webhooks/twilio/status")
    );
    let names: Vec<&str> = r.fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["To", "From", "Body", "StatusCallback"]);

    // A second send reuses the client and gets its own sid.
    let sent = ch.send(&text("+14155550124", "again")).await.unwrap();
    assert_eq!(
        sent.provider_id.as_deref(),
        Some("SM00000000000000000000000000000002")
    );
}

#[tokio::test]
async fn no_status_callback_field_when_unset_and_trailing_slash_in_base() {
    let srv = Server::start(Reply::Created).await;
    let mut cfg = config(&format!("{}/", srv.base));
    cfg.status_callback = None;
    let sent = TwilioChannel::new(cfg)
        .send(&text("+14155550123", "hello"))
        .await
        .unwrap();
    assert!(sent.provider_id.unwrap().starts_with("SM"));
    let r = &srv.requests()[0];
    assert_eq!(r.status_callback, None);
    assert_eq!(r.fields.len(), 3);
}

#[tokio::test]
async fn wrong_credentials_are_permanent() {
    let srv = Server::start(Reply::Created).await;
    let mut cfg = config(&srv.base);
    cfg.auth_token = "wrong".into();
    match TwilioChannel::new(cfg)
        .send(&text("+14155550123", "hello"))
        .await
    {
        Err(SendError::Permanent(m)) => assert!(m.contains("20003"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(srv.requests().is_empty());
}

#[tokio::test]
async fn invalid_to_21211_is_a_bad_address() {
    let srv = Server::start(Reply::Error(
        400,
        None,
        21211,
        "The 'To' number +1555 is not a valid phone number.",
    ))
    .await;
    match srv.channel().send(&text("+1555", "hello")).await {
        Err(SendError::BadAddress(m)) => {
            assert!(m.contains("21211"), "{m}");
            assert!(m.contains("not a valid phone number"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(srv.requests().len(), 1);
}

#[tokio::test]
async fn not_a_mobile_number_21614_is_a_bad_address() {
    let srv = Server::start(Reply::Error(
        400,
        None,
        21614,
        "'To' number is not a valid mobile number",
    ))
    .await;
    assert!(matches!(
        srv.channel().send(&text("+14155550100", "hello")).await,
        Err(SendError::BadAddress(m)) if m.contains("21614")
    ));
}

#[tokio::test]
async fn carrier_opt_out_21610_is_permanent_with_the_reason() {
    let srv = Server::start(Reply::Error(
        400,
        None,
        21610,
        "Attempt to send to unsubscribed recipient",
    ))
    .await;
    match srv.channel().send(&text("+14155550123", "hello")).await {
        Err(SendError::Permanent(m)) => {
            assert!(m.contains("opted out at the carrier"), "{m}");
            assert!(m.contains("21610"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn another_400_is_permanent() {
    let srv = Server::start(Reply::Error(
        400,
        None,
        21606,
        "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination/account",
    ))
    .await;
    match srv.channel().send(&text("+14155550123", "hello")).await {
        Err(SendError::Permanent(m)) => {
            assert!(m.contains("21606"), "{m}");
            assert!(m.contains("not a valid message-capable"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_empty_body_is_refused_by_twilio_and_permanent() {
    let srv = Server::start(Reply::Created).await;
    assert!(matches!(
        srv.channel().send(&text("+14155550123", "")).await,
        Err(SendError::Permanent(m)) if m.contains("21602")
    ));
}

#[tokio::test]
async fn too_many_requests_429_is_transient() {
    let srv = Server::start(Reply::Error(429, None, 20429, "Too Many Requests")).await;
    assert!(matches!(
        srv.channel().send(&text("+14155550123", "hello")).await,
        Err(SendError::Transient(m)) if m.contains("20429")
    ));
}

#[tokio::test]
async fn unavailable_503_with_retry_after_is_transient() {
    let srv = Server::start(Reply::Error(503, Some("30"), 20503, "Service Unavailable")).await;
    assert!(matches!(
        srv.channel().send(&text("+14155550123", "hello")).await,
        Err(SendError::Transient(m)) if m.contains("Retry-After: 30")
    ));
}

#[tokio::test]
async fn unavailable_503_without_retry_after_is_unknown() {
    let srv = Server::start(Reply::Error(503, None, 20503, "Service Unavailable")).await;
    assert!(matches!(
        srv.channel().send(&text("+14155550123", "hello")).await,
        Err(SendError::Unknown(_))
    ));
}

#[tokio::test]
async fn internal_error_500_is_unknown() {
    let srv = Server::start(Reply::Error(500, None, 20500, "Internal Server Error")).await;
    match srv.channel().send(&text("+14155550123", "hello")).await {
        Err(SendError::Unknown(m)) => assert!(m.contains("20500"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(srv.requests().len(), 1, "sent once, never retried");
}

#[tokio::test]
async fn no_answer_after_the_request_was_taken_is_unknown() {
    let srv = Server::start(Reply::Hang(Duration::from_secs(30))).await;
    let mut cfg = config(&srv.base);
    cfg.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    match TwilioChannel::new(cfg)
        .send(&text("+14155550123", "hello"))
        .await
    {
        Err(SendError::Unknown(m)) => assert!(m.contains("no answer"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The server did get the message: this is exactly why it must not be retried.
    assert_eq!(srv.requests().len(), 1);
}

#[tokio::test]
async fn a_connection_dropped_after_the_request_is_unknown() {
    // A raw server that reads the whole request, then closes without answering.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(String::new()));
    let got2 = got.clone();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let s = String::from_utf8_lossy(&buf);
            if n == 0 || s.contains("Body=hello") {
                break;
            }
        }
        *got2.lock().unwrap() = String::from_utf8_lossy(&buf).into_owned();
        sock.shutdown().await.ok();
        drop(sock);
    });
    let ch = TwilioChannel::new(config(&format!("http://{addr}")));
    match ch.send(&text("+14155550123", "hello")).await {
        Err(SendError::Unknown(m)) => assert!(m.contains("after the request was sent"), "{m}"),
        other => panic!("{other:?}"),
    }
    let raw = got.lock().unwrap().clone();
    assert!(raw.starts_with(&format!(
        "POST /2010-04-01/Accounts/{SID}/Messages.json HTTP/1.1\r\n"
    )));
    assert!(
        raw.to_ascii_lowercase()
            .contains("content-type: application/x-www-form-urlencoded")
    );
}

#[tokio::test]
async fn nothing_listening_is_transient() {
    // Take a free port, then close it: connecting is refused before any request is written.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    match TwilioChannel::new(config(&format!("http://{addr}")))
        .send(&text("+14155550123", "hello"))
        .await
    {
        Err(SendError::Transient(m)) => assert!(m.contains("could not connect"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unresolvable_host_is_transient() {
    match TwilioChannel::new(config("http://twilio-test.invalid"))
        .send(&text("+14155550123", "hello"))
        .await
    {
        Err(SendError::Transient(m)) => assert!(m.contains("could not connect"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// The webhook side: Twilio's published example signature, and a tampered inbound form fails.
#[test]
fn webhook_signature_matches_twilio_and_rejects_a_tampered_body() {
    use relentless_core::twilio::{signature, verify};
    let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let example = p(&[
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]);
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    assert_eq!(
        signature("12345", url, &example),
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    );
    assert!(verify(
        "12345",
        url,
        &example,
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    ));

    // An inbound SMS as Twilio posts it to our public webhook URL.
    let hook = "https://relentless.example/webhooks/twilio/sms";
    let inbound = p(&[
        ("MessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
        ("AccountSid", SID),
        ("From", "+14155550123"),
        ("To", FROM),
        ("Body", "Yes, call me tomorrow"),
        ("NumMedia", "0"),
    ]);
    let sig = signature(TOKEN, hook, &inbound);
    assert!(verify(TOKEN, hook, &inbound, &sig));
    let mut tampered = inbound.clone();
    tampered[4].1 = "STOP".into();
    assert!(!verify(TOKEN, hook, &tampered, &sig));
    assert!(!verify("other-token", hook, &inbound, &sig));
    assert!(!verify(
        TOKEN,
        "http://127.0.0.1:8080/webhooks/twilio/sms",
        &inbound,
        &sig
    ));
}

#[tokio::test]
async fn a_failed_tls_handshake_is_transient_and_nothing_is_recorded() {
    // `https://` to a plain-HTTP server: the TLS handshake fails before any request is written.
    let srv = Server::start(Reply::Created).await;
    let base = srv.base.replace("http://", "https://");
    match TwilioChannel::new(config(&base))
        .send(&text("+14155550123", "hello"))
        .await
    {
        Err(SendError::Transient(m)) => assert!(m.contains("could not connect"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(srv.requests().is_empty());
}
