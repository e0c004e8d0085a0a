//! Limits (issue 7, item 7): body sizes, failed-credential rate limits per address (API tokens,
//! Twilio signatures, inbound-email tokens) with `429` + `Retry-After`, slow clients cut off
//! (headers, a stalled body, a trickling body), and at most 8 notification streams per user.
//! Intake rate limits per token and per address: tests/intake.rs
//! (`a_flood_from_one_address_gets_429_with_retry_after`).

mod common;

use common::TestApp;
use relentless_engine::Config;
use relentless_web::limits::Limits;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client whose requests come from `ip` (any 127.x.y.z address is this machine).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_and_change_nothing() {
    let app = TestApp::spawn().await;
    let big = json!({"first_name": "Big", "email": "big@example.com", "notes": "x".repeat(relentless_web::BODY_LIMIT + 1)});
    let (s, _) = app.post(&app.admin, "/api/v1/leads", big).await;
    assert_eq!(s, 413);
    let (_, intake) = app
        .post(&app.admin, "/api/v1/intakes", json!({"source": "web"}))
        .await;
    let res = app
        .client
        .post(intake["url"].as_str().unwrap())
        .json(&json!({"email": "big@example.com", "message": "x".repeat(70 * 1024)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let (_, leads) = app.get(&app.admin, "/api/v1/leads").await;
    assert_eq!(leads["items"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_guessing_api_tokens_gets_429_with_retry_after_and_others_are_not_affected() {
    let app = TestApp::spawn().await;
    let guesser = client_from([127, 0, 0, 2]);
    let get = |c: &reqwest::Client, token: String| {
        let req = c
            .get(format!("{}/api/v1/leads", app.base))
            .bearer_auth(token)
            .send();
        async move { req.await.unwrap() }
    };
    let limit = Limits::default().auth_failures_per_ip;
    for i in 0..limit {
        let res = get(&guesser, format!("rl_{i:064}")).await;
        assert_eq!(res.status(), 401, "guess {i}");
    }
    let res = get(&guesser, format!("rl_{:064}", 999)).await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "a problem document"
    );
    // Even a right token from that address waits: guessing cannot go on.
    assert_eq!(get(&guesser, app.admin.clone()).await.status(), 429);
    // Everyone else is served.
    let other = client_from([127, 0, 0, 3]);
    assert_eq!(get(&other, app.admin.clone()).await.status(), 200);
    assert_eq!(
        get(&other, "rl_wrong".into()).await.status(),
        401,
        "another address has its own count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_twilio_signatures_and_inbound_email_tokens_count_as_failed_credentials() {
    let config = Config {
        twilio_auth_token: Some("limits-twilio".into()),
        inbound_email_token: Some("limits-inbound-token".into()),
        ..Config::default()
    };
    let limits = Limits {
        auth_failures_per_ip: 4,
        ..Default::default()
    };
    let app = TestApp::spawn_limited(config, limits).await;
    let c = client_from([127, 0, 0, 4]);
    let url = format!("{}/webhooks/twilio/sms", app.base);
    let params = [("From", "+15125550100"), ("Body", "hi")];
    for _ in 0..2 {
        let res = c
            .post(&url)
            .header("X-Twilio-Signature", "bad")
            .form(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        let res = c
            .post(format!("{}/webhooks/email/inbound?token=guess", app.base))
            .body("From: a@example.com\r\n\r\nhi")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    let res = c
        .post(&url)
        .header("X-Twilio-Signature", "bad")
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let res = c
        .post(format!(
            "{}/webhooks/email/inbound?token=limits-inbound-token",
            app.base
        ))
        .body("From: a@example.com\r\n\r\nhi")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "the right token waits too");
}

/// Reads what the server sends until it closes the connection (or `max` passes).
async fn read_until_closed(s: &mut tokio::net::TcpStream, max: Duration) -> (String, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + max;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&buf).into(), true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (String::from_utf8_lossy(&buf).into(), false),
        }
    }
}

fn short_limits() -> Limits {
    Limits {
        header_read: Duration::from_secs(1),
        body_idle: Duration::from_secs(1),
        body_deadline: Duration::from_secs(2),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_its_headers_slowly_is_cut_off() {
    let app = TestApp::spawn_limited(Config::default(), short_limits()).await;
    let addr = app.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // ...and never the blank line that ends the headers.
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(closed, "the connection is closed");
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got}");
    // The server still serves everyone else.
    let (st, _) = app.get(&app.admin, "/api/v1/me").await;
    assert_eq!(st, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_or_trickles_its_body_is_cut_off_and_nothing_is_stored() {
    let app = TestApp::spawn_limited(Config::default(), short_limits()).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let body = br#"{"first_name": "Slow", "email": "slow@example.com", "notes": "........................................................................................................................................................................................................................................................................................."}"#;
    let head = format!(
        "POST /api/v1/leads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.admin,
        body.len()
    );
    // 1. Stalls after a few bytes.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..10]).await.unwrap();
    let (got, _) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(
        got.starts_with("HTTP/1.1 4"),
        "a stalled body is answered with an error: {got:?}"
    );
    // 2. Trickles a byte every 300 ms: never idle for 1 s, but over the 2 s deadline.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answered = String::new();
    for b in body.iter() {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        let mut chunk = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(300), s.read(&mut chunk)).await
        {
            answered.push_str(&String::from_utf8_lossy(&chunk[..n]));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never cut off");
    }
    assert!(
        answered.is_empty() || answered.starts_with("HTTP/1.1 4"),
        "{answered}"
    );
    assert!(
        answered.starts_with("HTTP/1.1 4") || started.elapsed() < Duration::from_secs(20),
        "cut off before the whole body was sent"
    );
    let (_, leads) = app.get(&app.admin, "/api/v1/leads").await;
    assert_eq!(
        leads["items"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_gets_eight_notification_streams_and_the_ninth_is_refused_with_429() {
    let app = TestApp::spawn().await;
    let (_, agent) = app.agent("sse@example.com").await;
    let open = |token: String| {
        let req = app
            .client
            .get(format!("{}/api/v1/notifications/stream", app.base))
            .bearer_auth(token)
            .send();
        async move { req.await.unwrap() }
    };
    let mut streams = Vec::new();
    for i in 0..Limits::default().sse_per_user {
        let res = open(app.admin.clone()).await;
        assert_eq!(res.status(), 200, "stream {i}");
        streams.push(res);
    }
    let ninth = open(app.admin.clone()).await;
    assert_eq!(ninth.status(), 429);
    assert!(ninth.headers().contains_key("retry-after"));
    // Another user has their own eight.
    assert_eq!(open(agent.clone()).await.status(), 200);
    // Closing one gives its slot back.
    drop(streams.pop());
    let mut ok = false;
    for _ in 0..100 {
        let res = open(app.admin.clone()).await;
        if res.status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "a closed stream's slot is given back");
}
