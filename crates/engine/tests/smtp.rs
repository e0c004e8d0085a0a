//! The SMTP channel against real SMTP servers on loopback: mailin-embedded (a real SMTP server
//! library) receives and records the messages, which are then read back with mail-parser; a
//! few faults that mailin-embedded cannot produce (a connection dropped or a server gone
//! silent after the message, AUTH) come from a small scripted SMTP server on a tokio socket.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use mailin_embedded::{Handler, Response, Server, response};
use relentless_core::types::Channel as ChannelKind;
use relentless_engine::channels::email::SmtpChannel;
use relentless_engine::channels::email::compose::{
    Footer, compose, list_unsubscribe_headers, message_id,
};
use relentless_engine::channels::{Channel, Message, SendError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const FROM: &str = "team@mail.example.com";

/// One received message: envelope sender, envelope recipients, raw RFC 5322 bytes.
#[derive(Debug, Clone)]
struct Received {
    mail_from: String,
    rcpt_to: Vec<String>,
    raw: Vec<u8>,
}

/// A mailin-embedded handler that records messages and can refuse a step.
#[derive(Clone, Default)]
struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
    sessions: Arc<AtomicUsize>,
    mail_reply: Option<(u16, &'static str)>,
    rcpt_reply: Option<(u16, &'static str)>,
    data_end_reply: Option<(u16, &'static str)>,
    current: Option<Received>,
}

impl Handler for Recorder {
    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        self.sessions.fetch_add(1, Ordering::SeqCst);
        response::OK
    }
    fn mail(&mut self, _ip: IpAddr, _domain: &str, _from: &str) -> Response {
        reply(self.mail_reply)
    }
    fn rcpt(&mut self, _to: &str) -> Response {
        reply(self.rcpt_reply)
    }
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Some(Received {
            mail_from: from.to_string(),
            rcpt_to: to.to_vec(),
            raw: Vec::new(),
        });
        response::OK
    }
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(c) = self.current.as_mut() {
            c.raw.extend_from_slice(buf);
        }
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        let current = self.current.take();
        if self.data_end_reply.is_some() {
            return reply(self.data_end_reply);
        }
        if let Some(c) = current {
            self.received.lock().unwrap().push(c);
        }
        response::OK
    }
}

fn reply(custom: Option<(u16, &'static str)>) -> Response {
    match custom {
        Some((code, text)) => Response::custom(code, text.to_string()),
        None => response::OK,
    }
}

/// Starts mailin-embedded on 127.0.0.1, port 0, in its own thread; returns the port.
fn start_mailin(handler: Recorder) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut server = Server::new(handler);
    server
        .with_name("mx.test.local")
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    port
}

fn channel(port: u16) -> SmtpChannel {
    SmtpChannel::from_url(&format!("smtp://127.0.0.1:{port}"), FROM).unwrap()
}

fn simple_message(to: &str) -> Message {
    Message {
        touch_id: Some(1),
        lead_id: 1,
        channel: ChannelKind::Email,
        to: to.to_string(),
        subject: Some("Hello".into()),
        body: "Hi".into(),
        html: None,
        from_name: "Bob".into(),
        reply_to: None,
        message_id: None,
        headers: vec![],
    }
}

const FOOTER: Footer<'static> = Footer {
    team_name: "Acme Realty",
    postal_address: "1 Main St, Springfield, IL 62701",
    unsubscribe_url: "https://app.example.com/u/UNSUBTOKEN",
};

/// The message the dispatcher would send for touch 42.
fn tracked_message() -> Message {
    let body = "Hi Ann,\n\nHere is the listing: https://homes.example.com/listing/77?ref=a&b=c.\n\
Or call me.\n\nP.S. <script>alert(1)</script>";
    let composed = compose(body, &FOOTER, Some("https://app.example.com/t/TOKEN"));
    Message {
        touch_id: Some(42),
        lead_id: 9,
        channel: ChannelKind::Email,
        to: "ann.lead@example.org".into(),
        subject: Some("Café tour — Saturday?".into()),
        body: composed.text,
        html: Some(composed.html),
        from_name: "Zoë \"Z\" Agent".into(),
        reply_to: Some("r+REPLYTOKEN@reply.example.com".into()),
        message_id: Some(message_id(42, "touch-42-seed", "mail.example.com")),
        headers: list_unsubscribe_headers(FOOTER.unsubscribe_url),
    }
}

#[tokio::test]
async fn delivers_a_complete_tracked_email_and_a_retry_is_the_same_message() {
    let recorder = Recorder::default();
    let received = recorder.received.clone();
    let sessions = recorder.sessions.clone();
    let port = start_mailin(recorder);
    let smtp = channel(port);
    assert_eq!(smtp.name(), "smtp");

    let msg = tracked_message();
    let expected_id = msg.message_id.clone().unwrap();
    let first = smtp.send(&msg).await.expect("first send");
    let second = smtp
        .send(&msg)
        .await
        .expect("second send (a retry of the same touch)");
    assert_eq!(first.provider_id.as_deref(), Some(expected_id.as_str()));
    assert_eq!(second.provider_id, first.provider_id);
    assert!(first.outbox.is_none());
    // The second message went over the same SMTP session (connection reuse).
    assert_eq!(sessions.load(Ordering::SeqCst), 1);

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    let mut ids = Vec::new();
    for r in &received {
        assert_eq!(r.mail_from, FROM);
        assert_eq!(r.rcpt_to, vec!["ann.lead@example.org".to_string()]);
        let raw = String::from_utf8(r.raw.clone()).expect("ASCII on the wire");
        let parsed = MessageParser::default().parse(&r.raw).expect("parses");

        // multipart/alternative with a text and an HTML part.
        let ct = parsed.content_type().unwrap();
        assert_eq!(
            (ct.ctype(), ct.subtype()),
            ("multipart", Some("alternative"))
        );
        let leaf_types: Vec<String> = parsed.parts[1..]
            .iter()
            .map(|p| {
                let ct = p.content_type().unwrap();
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
            })
            .collect();
        assert_eq!(leaf_types, ["text/plain", "text/html"]);

        let from = parsed.from().unwrap().first().unwrap();
        assert_eq!(from.name(), Some("Zoë \"Z\" Agent"));
        assert_eq!(from.address(), Some(FROM));
        let to = parsed.to().unwrap().first().unwrap();
        assert_eq!(to.address(), Some("ann.lead@example.org"));
        assert_eq!(parsed.subject(), Some("Café tour — Saturday?"));
        let reply_to = parsed.reply_to().unwrap().first().unwrap();
        assert_eq!(reply_to.address(), Some("r+REPLYTOKEN@reply.example.com"));
        assert!(parsed.date().is_some());

        // Message-ID exactly as given.
        assert!(
            raw.contains(&format!("Message-ID: {expected_id}\r\n")),
            "{raw}"
        );
        assert_eq!(
            parsed.message_id(),
            Some(expected_id.trim_matches(['<', '>']))
        );
        ids.push(parsed.message_id().unwrap().to_string());

        // RFC 8058 headers.
        assert_eq!(
            parsed.header_raw("List-Unsubscribe").map(str::trim),
            Some("<https://app.example.com/u/UNSUBTOKEN>")
        );
        assert_eq!(
            parsed.header_raw("List-Unsubscribe-Post").map(str::trim),
            Some("List-Unsubscribe=One-Click")
        );

        // HTML: rewritten link, pixel, escaped lead text, unsubscribe link kept.
        let html = parsed.body_html(0).unwrap();
        assert!(
            html.contains("href=\"https://app.example.com/t/TOKEN/c/0\""),
            "{html}"
        );
        assert!(!html.contains("href=\"https://homes.example.com"));
        assert!(html.contains(
            "<img src=\"https://app.example.com/t/TOKEN/o.gif\" width=\"1\" height=\"1\" alt=\"\">"
        ));
        assert!(html.contains("href=\"https://app.example.com/u/UNSUBTOKEN\""));
        assert!(html.contains("1 Main St, Springfield, IL 62701"));
        assert!(!html.contains("<script"));
        assert!(html.contains("&lt;script&gt;"));

        // Text: the real link and the footer.
        let text = parsed.body_text(0).unwrap().replace("\r\n", "\n");
        assert!(text.contains("https://homes.example.com/listing/77?ref=a&b=c."));
        assert!(text.contains("\n-- \n"), "{text}");
        assert!(text.contains("Acme Realty"));
        assert!(text.contains("1 Main St, Springfield, IL 62701"));
        assert!(text.contains("Unsubscribe: https://app.example.com/u/UNSUBTOKEN"));
        assert!(!text.contains("/t/TOKEN"));
    }
    assert_eq!(ids[0], ids[1]);
}

/// The dispatcher sends side by side; the channel opens at most the sessions it is allowed
/// at once (`RELENTLESS_SMTP_SESSIONS`, default 3: relays refuse more with `421`) and reuses
/// them, so ten messages at once still go over at most that many, and every one is
/// delivered.
#[tokio::test]
async fn messages_sent_at_once_share_a_few_sessions() {
    for max in [
        relentless_engine::channels::email::smtp::DEFAULT_MAX_SESSIONS,
        2,
    ] {
        ten_at_once_over_at_most(max).await;
    }
}

async fn ten_at_once_over_at_most(max: usize) {
    let recorder = Recorder::default();
    let received = recorder.received.clone();
    let sessions = recorder.sessions.clone();
    let port = start_mailin(recorder);
    let smtp = channel(port).with_max_sessions(max);
    let messages: Vec<Message> = (0..10)
        .map(|i| simple_message(&format!("lead{i}@example.com")))
        .collect();
    let results = futures::future::join_all(messages.iter().map(|m| smtp.send(m))).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(received.lock().unwrap().len(), 10);
    let opened = sessions.load(Ordering::SeqCst);
    assert!(
        (1..=max).contains(&opened),
        "{opened} sessions for 10 messages at once, allowed {max}"
    );
}

#[tokio::test]
async fn plain_text_only_without_html() {
    let recorder = Recorder::default();
    let received = recorder.received.clone();
    let smtp = channel(start_mailin(recorder));
    smtp.send(&simple_message("lead@example.org"))
        .await
        .unwrap();
    let received = received.lock().unwrap().clone();
    let parsed = MessageParser::default().parse(&received[0].raw).unwrap();
    let ct = parsed.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")));
    assert_eq!(parsed.body_text(0).unwrap().trim_end(), "Hi");
    assert!(parsed.message_id().is_some(), "a Message-ID is always set");
    assert!(parsed.reply_to().is_none());
}

#[tokio::test]
async fn rcpt_refused_for_the_mailbox_is_a_bad_address() {
    for (code, text) in [
        (550, "Mailbox unavailable"),
        (
            550,
            "5.1.1 <lead@example.org>: Recipient address rejected: User unknown",
        ),
        (553, "Mailbox name not allowed"),
    ] {
        let recorder = Recorder {
            rcpt_reply: Some((code, text)),
            ..Recorder::default()
        };
        let received = recorder.received.clone();
        let smtp = channel(start_mailin(recorder));
        let err = smtp
            .send(&simple_message("lead@example.org"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SendError::BadAddress(_)),
            "{code} {text}: {err:?}"
        );
        assert!(received.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn other_permanent_refusals_are_permanent() {
    let cases = [
        Recorder {
            rcpt_reply: Some((550, "5.7.1 Relaying denied")),
            ..Recorder::default()
        },
        Recorder {
            mail_reply: Some((550, "Sender rejected")),
            ..Recorder::default()
        },
        Recorder {
            data_end_reply: Some((554, "5.7.1 Message rejected as spam")),
            ..Recorder::default()
        },
    ];
    for recorder in cases {
        let smtp = channel(start_mailin(recorder));
        let err = smtp
            .send(&simple_message("lead@example.org"))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    }
}

#[tokio::test]
async fn temporary_refusals_are_transient() {
    let cases = [
        Recorder {
            mail_reply: Some((451, "Try again later")),
            ..Recorder::default()
        },
        Recorder {
            rcpt_reply: Some((451, "4.7.1 Greylisted, try again later")),
            ..Recorder::default()
        },
        Recorder {
            rcpt_reply: Some((450, "4.2.1 Mailbox busy")),
            ..Recorder::default()
        },
        Recorder {
            data_end_reply: Some((451, "Aborted: local error in processing")),
            ..Recorder::default()
        },
    ];
    for recorder in cases {
        let received = recorder.received.clone();
        let smtp = channel(start_mailin(recorder));
        let err = smtp
            .send(&simple_message("lead@example.org"))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Transient(_)), "{err:?}");
        assert!(received.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_failed_send_does_not_spoil_the_next_one() {
    // 550 for one address, OK for the other, on the same channel.
    #[derive(Clone, Default)]
    struct Picky(Recorder);
    impl Handler for Picky {
        fn helo(&mut self, ip: IpAddr, domain: &str) -> Response {
            self.0.helo(ip, domain)
        }
        fn rcpt(&mut self, to: &str) -> Response {
            if to.contains("nobody") {
                response::NO_MAILBOX
            } else {
                response::OK
            }
        }
        fn data_start(&mut self, d: &str, f: &str, b: bool, to: &[String]) -> Response {
            self.0.data_start(d, f, b, to)
        }
        fn data(&mut self, buf: &[u8]) -> io::Result<()> {
            self.0.data(buf)
        }
        fn data_end(&mut self) -> Response {
            self.0.data_end()
        }
    }
    let picky = Picky::default();
    let received = picky.0.received.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut server = Server::new(picky);
    server.with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    let smtp = channel(port);
    let bad = smtp.send(&simple_message("nobody@example.org")).await;
    assert!(matches!(bad, Err(SendError::BadAddress(_))), "{bad:?}");
    smtp.send(&simple_message("somebody@example.org"))
        .await
        .unwrap();
    smtp.send(&simple_message("somebody@example.org"))
        .await
        .unwrap();
    assert_eq!(received.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn unparseable_recipient_is_a_bad_address_without_connecting() {
    // Nothing listens there: a connection attempt would give Transient.
    let smtp = channel(free_port());
    for to in ["not an address", "ann@", "ann@exa mple.org"] {
        let err = smtp.send(&simple_message(to)).await.unwrap_err();
        assert!(matches!(err, SendError::BadAddress(_)), "{to}: {err:?}");
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn nothing_listening_is_transient() {
    // A socket bound to the port but not listening: the port stays ours and connecting is
    // refused.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let smtp = channel(socket.local_addr().unwrap().port());
    let err = smtp
        .send(&simple_message("lead@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn starttls_required_but_not_offered_is_transient() {
    // mailin-embedded without TLS does not offer STARTTLS.
    let recorder = Recorder::default();
    let received = recorder.received.clone();
    let port = start_mailin(recorder);
    let smtp =
        SmtpChannel::from_url(&format!("smtp://127.0.0.1:{port}?tls=required"), FROM).unwrap();
    let err = smtp
        .send(&simple_message("lead@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert!(received.lock().unwrap().is_empty());
}

// ---- A scripted SMTP server for faults mailin-embedded cannot produce. ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    None,
    Greeting421,
    DropAfterRcpt,
    DropAfterMessage,
    SilentAfterMessage,
    /// Replies 250 to the message, then closes the session.
    CloseAfterMessage,
}

/// Speaks SMTP on 127.0.0.1:0: greeting, EHLO (offering `AUTH PLAIN LOGIN` when
/// `auth` is set), AUTH, MAIL, RCPT, DATA, NOOP, RSET, QUIT; `fault` breaks one step.
/// Returns the port and the transcript of client lines.
async fn scripted(fault: Fault, auth: Option<&'static str>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let transcript = Arc::new(Mutex::new(Vec::new()));
    let log = transcript.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read);
                let greeting: &[u8] = if fault == Fault::Greeting421 {
                    b"421 4.3.2 busy, try later\r\n"
                } else {
                    b"220 scripted.test ESMTP\r\n"
                };
                if write.write_all(greeting).await.is_err() || fault == Fault::Greeting421 {
                    return;
                }
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    log.lock().unwrap().push(line.trim_end().to_string());
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let answer: String = match verb.as_str() {
                        "EHLO" => match auth {
                            Some(_) => {
                                "250-scripted.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
                                    .into()
                            }
                            None => "250-scripted.test\r\n250 8BITMIME\r\n".into(),
                        },
                        "AUTH" => {
                            let given = line.split_whitespace().nth(2).unwrap_or("");
                            if Some(given) == auth {
                                "235 2.7.0 Authentication successful\r\n".into()
                            } else {
                                "535 5.7.8 Authentication credentials invalid\r\n".into()
                            }
                        }
                        "RCPT" if fault == Fault::DropAfterRcpt => return,
                        "MAIL" | "RCPT" | "NOOP" | "RSET" => "250 2.0.0 OK\r\n".into(),
                        "DATA" => {
                            if write
                                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                                .await
                                .is_err()
                            {
                                return;
                            }
                            let mut body = String::new();
                            loop {
                                body.clear();
                                if lines.read_line(&mut body).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if body == ".\r\n" {
                                    break;
                                }
                            }
                            match fault {
                                Fault::DropAfterMessage => return,
                                Fault::SilentAfterMessage => {
                                    tokio::time::sleep(Duration::from_secs(3600)).await;
                                    return;
                                }
                                Fault::CloseAfterMessage => {
                                    let _ = write.write_all(b"250 2.0.0 Ok: queued\r\n").await;
                                    return;
                                }
                                _ => "250 2.0.0 Ok: queued as ABC123\r\n".into(),
                            }
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 2.0.0 Bye\r\n").await;
                            return;
                        }
                        _ => "502 5.5.2 Command not recognized\r\n".into(),
                    };
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, transcript)
}

#[tokio::test]
async fn connection_dropped_after_the_message_is_unknown() {
    let (port, transcript) = scripted(Fault::DropAfterMessage, None).await;
    let err = channel(port)
        .send(&simple_message("lead@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Unknown(_)), "{err:?}");
    assert!(transcript.lock().unwrap().iter().any(|l| l == "DATA"));
}

#[tokio::test]
async fn no_final_reply_in_time_is_unknown() {
    let (port, _) = scripted(Fault::SilentAfterMessage, None).await;
    let smtp = channel(port).with_timeouts(Duration::from_secs(5), Duration::from_millis(500));
    let started = std::time::Instant::now();
    let err = smtp
        .send(&simple_message("lead@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Unknown(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn connection_dropped_before_data_is_transient() {
    let (port, transcript) = scripted(Fault::DropAfterRcpt, None).await;
    let err = channel(port)
        .send(&simple_message("lead@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert!(!transcript.lock().unwrap().iter().any(|l| l == "DATA"));
}

#[tokio::test]
async fn greeting_421_is_transient() {
    let (port, _) = scripted(Fault::Greeting421, None).await;
    let err = channel(port)
        .send(&simple_message("lead@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn credentials_in_the_url_authenticate() {
    // base64("\0us@er\0p:ss w"): user "us@er", password "p:ss w", percent-encoded in the URL.
    let expected = "AHVzQGVyAHA6c3Mgdw==";
    let (port, transcript) = scripted(Fault::None, Some(expected)).await;
    // `?tls=none`: a local relay; without it a URL with a password requires STARTTLS.
    let smtp = SmtpChannel::from_url(
        &format!("smtp://us%40er:p%3Ass%20w@127.0.0.1:{port}?tls=none"),
        FROM,
    )
    .unwrap();
    let no_tls =
        SmtpChannel::from_url(&format!("smtp://us%40er:p%3Ass%20w@127.0.0.1:{port}"), FROM)
            .unwrap();
    assert!(
        matches!(no_tls.send(&simple_message("lead@example.org")).await, Err(SendError::Transient(ref m)) if m.contains("STARTTLS")),
        "a password is never sent over a plain connection"
    );
    let sent = smtp
        .send(&simple_message("lead@example.org"))
        .await
        .unwrap();
    assert!(sent.provider_id.unwrap().starts_with('<'));
    let lines = transcript.lock().unwrap().clone();
    assert!(
        lines.contains(&format!("AUTH PLAIN {expected}")),
        "{lines:?}"
    );
    let auth = lines.iter().position(|l| l.starts_with("AUTH")).unwrap();
    let mail = lines
        .iter()
        .position(|l| l.starts_with("MAIL FROM"))
        .unwrap();
    assert!(auth < mail);

    // Wrong password: refused before any mail command, so the touch can be retried.
    let (port, transcript) = scripted(Fault::None, Some(expected)).await;
    let smtp =
        SmtpChannel::from_url(&format!("smtp://us%40er:wrong@127.0.0.1:{port}"), FROM).unwrap();
    let err = smtp
        .send(&simple_message("lead@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert!(!err.to_string().contains("wrong"));
    assert!(
        !transcript
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("MAIL"))
    );
}

#[tokio::test]
async fn sessions_are_reused_and_shutdown_closes_them() {
    let (port, transcript) = scripted(Fault::None, None).await;
    let smtp = channel(port);
    smtp.send(&simple_message("a@example.org")).await.unwrap();
    smtp.send(&simple_message("b@example.org")).await.unwrap();
    let ehlos = |t: &Arc<Mutex<Vec<String>>>| {
        t.lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("EHLO"))
            .count()
    };
    assert_eq!(ehlos(&transcript), 1, "the session was reused");
    assert!(transcript.lock().unwrap().iter().any(|l| l == "NOOP"));
    smtp.shutdown().await;
    assert!(transcript.lock().unwrap().iter().any(|l| l == "QUIT"));
    // After shutdown the next send opens a new session.
    smtp.send(&simple_message("c@example.org")).await.unwrap();
    assert_eq!(ehlos(&transcript), 2);
}

#[tokio::test]
async fn a_session_closed_by_the_server_while_idle_is_replaced() {
    let (port, transcript) = scripted(Fault::CloseAfterMessage, None).await;
    let smtp = channel(port);
    smtp.send(&simple_message("a@example.org")).await.unwrap();
    smtp.send(&simple_message("b@example.org")).await.unwrap();
    let lines = transcript.lock().unwrap().clone();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("EHLO")).count(),
        2,
        "{lines:?}"
    );
    assert_eq!(lines.iter().filter(|l| *l == "DATA").count(), 2);
}

// ---- TLS: a real handshake on loopback with a certificate made for the test. ----

/// base64("\0user\0pass"): the credentials of `smtp://user:pass@…`.
const USER_PASS_PLAIN: &str = "AHVzZXIAcGFzcw==";
/// Written to the transcript when the server's TLS handshake completes.
const TLS_UP: &str = "<tls established>";
/// Written to the transcript when the server's TLS handshake fails.
const TLS_FAILED: &str = "<tls failed>";

/// How a session of the TLS server ended.
enum SessionEnd<S> {
    Closed,
    /// The client asked for STARTTLS and was told to go ahead: the plain stream.
    StartTls(S),
}

/// A scripted SMTP server with TLS on 127.0.0.1:0, certificate for `localhost`.
struct TlsServer {
    port: u16,
    /// The self-signed certificate (DER) the server presents.
    root_der: Vec<u8>,
    transcript: Arc<Mutex<Vec<String>>>,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Starts the TLS server: `implicit` handshakes first (`smtps://`), otherwise the session
/// starts in plain text offering `STARTTLS` and refusing AUTH and mail until upgraded.
async fn tls_server(implicit: bool) -> TlsServer {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::PrivatePkcs8KeyDer;

    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivatePkcs8KeyDer::from(signing_key.serialize_der()).into(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let transcript = Arc::new(Mutex::new(Vec::new()));
    let received = Arc::new(Mutex::new(Vec::new()));
    let (log, inbox) = (transcript.clone(), received.clone());
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, log, inbox) = (acceptor.clone(), log.clone(), inbox.clone());
            tokio::spawn(async move {
                let plain = if implicit {
                    socket
                } else {
                    match smtp_session(socket, true, false, &log, &inbox).await {
                        SessionEnd::StartTls(socket) => socket,
                        SessionEnd::Closed => return,
                    }
                };
                let tls = match acceptor.accept(plain).await {
                    Ok(tls) => tls,
                    Err(_) => {
                        log.lock().unwrap().push(TLS_FAILED.to_string());
                        return;
                    }
                };
                log.lock().unwrap().push(TLS_UP.to_string());
                // After STARTTLS the client speaks first (EHLO); with implicit TLS the
                // server greets.
                smtp_session(tls, implicit, true, &log, &inbox).await;
            });
        }
    });
    TlsServer {
        port,
        root_der: cert.der().to_vec(),
        transcript,
        received,
    }
}

/// One SMTP session over `stream`; `secure` says whether it is inside TLS. Outside TLS it
/// offers STARTTLS and refuses AUTH and MAIL.
async fn smtp_session<S>(
    stream: S,
    greet: bool,
    secure: bool,
    log: &Mutex<Vec<String>>,
    inbox: &Mutex<Vec<Vec<u8>>>,
) -> SessionEnd<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut stream = BufReader::new(stream);
    if greet
        && stream
            .get_mut()
            .write_all(b"220 localhost ESMTP\r\n")
            .await
            .is_err()
    {
        return SessionEnd::Closed;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return SessionEnd::Closed;
        }
        log.lock().unwrap().push(line.trim_end().to_string());
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let answer: String = match verb.as_str() {
            "EHLO" if secure => "250-localhost\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n".into(),
            "EHLO" => "250-localhost\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n".into(),
            "STARTTLS" if !secure => {
                if stream.get_mut().write_all(b"220 ready\r\n").await.is_err() {
                    return SessionEnd::Closed;
                }
                return SessionEnd::StartTls(stream.into_inner());
            }
            "AUTH" | "MAIL" if !secure => {
                "530 5.7.0 Must issue a STARTTLS command first\r\n".into()
            }
            "AUTH" => {
                if line.split_whitespace().nth(2) == Some(USER_PASS_PLAIN) {
                    "235 2.7.0 Authentication successful\r\n".into()
                } else {
                    "535 5.7.8 Authentication credentials invalid\r\n".into()
                }
            }
            "MAIL" | "RCPT" | "NOOP" | "RSET" => "250 2.0.0 OK\r\n".into(),
            "DATA" => {
                if stream
                    .get_mut()
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await
                    .is_err()
                {
                    return SessionEnd::Closed;
                }
                let mut raw = Vec::new();
                let mut body = String::new();
                loop {
                    body.clear();
                    if stream.read_line(&mut body).await.unwrap_or(0) == 0 {
                        return SessionEnd::Closed;
                    }
                    if body == ".\r\n" {
                        break;
                    }
                    raw.extend_from_slice(body.as_bytes());
                }
                inbox.lock().unwrap().push(raw);
                "250 2.0.0 Ok: queued as TLS123\r\n".into()
            }
            "QUIT" => {
                let _ = stream.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                return SessionEnd::Closed;
            }
            _ => "502 5.5.2 Command not recognized\r\n".into(),
        };
        if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return SessionEnd::Closed;
        }
    }
}

/// The message arrived, with its subject, and the client authenticated inside TLS only.
fn assert_delivered_over_tls(server: &TlsServer) {
    let received = server.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let parsed = MessageParser::default()
        .parse(&received[0])
        .expect("parses");
    assert_eq!(parsed.subject(), Some("Hello"));
    assert_eq!(
        parsed.to().unwrap().first().unwrap().address(),
        Some("lead@example.org")
    );
    let lines = server.transcript.lock().unwrap().clone();
    let tls = lines
        .iter()
        .position(|l| l == TLS_UP)
        .expect("TLS handshake");
    let auth: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("AUTH"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(auth.len(), 1, "{lines:?}");
    assert!(auth[0] > tls, "AUTH only after TLS: {lines:?}");
    assert_eq!(lines[auth[0]], format!("AUTH PLAIN {USER_PASS_PLAIN}"));
    let mail = lines
        .iter()
        .position(|l| l.starts_with("MAIL FROM"))
        .unwrap();
    assert!(mail > auth[0], "{lines:?}");
}

/// An untrusted certificate: nothing authenticated, nothing sent, the touch can be retried.
async fn assert_untrusted_is_transient(server: &TlsServer, url: &str) {
    let smtp = SmtpChannel::from_url(url, FROM).unwrap();
    let err = smtp
        .send(&simple_message("lead@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert!(!err.to_string().contains("pass@"), "{err}");
    assert!(server.received.lock().unwrap().is_empty());
    // The server sees the refused handshake a moment after the client gives up.
    let refused = async {
        while !server
            .transcript
            .lock()
            .unwrap()
            .iter()
            .any(|l| l == TLS_FAILED)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), refused)
        .await
        .expect("the server saw the handshake fail");
    let lines = server.transcript.lock().unwrap().clone();
    assert!(
        !lines
            .iter()
            .any(|l| l == TLS_UP || l.starts_with("AUTH") || l.starts_with("MAIL")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn starttls_upgrades_before_authenticating_and_delivers() {
    let server = tls_server(false).await;
    // No `tls=`: STARTTLS is required because the URL has a password.
    let url = format!("smtp://user:pass@localhost:{}", server.port);

    assert_untrusted_is_transient(&server, &url).await;
    server.transcript.lock().unwrap().clear();

    let smtp = SmtpChannel::from_url(&url, FROM)
        .unwrap()
        .with_root_certificate(server.root_der.clone())
        .unwrap();
    let sent = smtp
        .send(&simple_message("lead@example.org"))
        .await
        .unwrap();
    assert!(sent.provider_id.unwrap().starts_with('<'));
    assert_delivered_over_tls(&server);
    let lines = server.transcript.lock().unwrap().clone();
    let starttls = lines.iter().position(|l| l == "STARTTLS").unwrap();
    assert!(lines[..starttls].iter().any(|l| l.starts_with("EHLO")));
    let tls = lines.iter().position(|l| l == TLS_UP).unwrap();
    assert!(starttls < tls);
    assert!(
        lines[tls..].iter().any(|l| l.starts_with("EHLO")),
        "EHLO again inside TLS: {lines:?}"
    );
}

#[tokio::test]
async fn smtps_is_tls_from_the_start_and_delivers() {
    let server = tls_server(true).await;
    let url = format!("smtps://user:pass@localhost:{}", server.port);

    assert_untrusted_is_transient(&server, &url).await;
    assert!(
        server
            .transcript
            .lock()
            .unwrap()
            .iter()
            .all(|l| l == TLS_FAILED),
        "nothing in the clear"
    );
    server.transcript.lock().unwrap().clear();

    let smtp = SmtpChannel::from_url(&url, FROM)
        .unwrap()
        .with_root_certificate(server.root_der.clone())
        .unwrap();
    smtp.send(&simple_message("lead@example.org"))
        .await
        .unwrap();
    assert_delivered_over_tls(&server);
    let lines = server.transcript.lock().unwrap().clone();
    assert_eq!(lines[0], TLS_UP, "{lines:?}");
    assert!(!lines.iter().any(|l| l == "STARTTLS"));
}

#[test]
fn a_root_certificate_that_is_not_der_is_refused() {
    let err = SmtpChannel::from_url("smtps://u:secret@localhost", FROM)
        .unwrap()
        .with_root_certificate(b"not a certificate".to_vec())
        .unwrap_err();
    assert!(!err.contains("secret"), "{err}");
}
