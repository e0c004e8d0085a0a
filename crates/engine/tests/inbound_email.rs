//! Inbound email parsing (issue 3, item 4; SPEC §5.3): raw messages in the formats real mail
//! clients and servers produce (fixtures under `tests/fixtures/email/`), automatic replies,
//! delivery status notifications, quote stripping, and bad input that must never panic.

use proptest::prelude::*;
use relentless_engine::inbound_email::{
    InboundEmail, InboundKind, MAX_SIZE, html_to_text, parse, strip_quotes,
};

const OUR_ID: &str = "<relentless.42.abcdef123456@example.com>";

/// What `parse` answers when something inside it panicked (it must never happen).
const PANICKED: &str = "the message could not be parsed";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/email/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parsed(name: &str) -> InboundEmail {
    parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const FIXTURES: &[&str] = &[
    "gmail_reply.eml",
    "outlook_reply.eml",
    "outlook365_html_reply.eml",
    "apple_iphone_reply.eml",
    "apple_mail_mac_reply.eml",
    "gmail_vacation_auto_reply.eml",
    "exchange_out_of_office.eml",
    "postfix_hard_bounce.eml",
    "postfix_delayed_soft_bounce.eml",
    "broken_charset_reply.eml",
];

// ---------------------------------------------------------------------------------------------
// Replies from real clients
// ---------------------------------------------------------------------------------------------

#[test]
fn gmail_reply_multipart_alternative_with_wrapped_attribution() {
    let m = parsed("gmail_reply.eml");
    assert_eq!(m.kind, InboundKind::Reply);
    assert_eq!(m.from.as_deref(), Some("dana.whitfield@gmail.com"));
    assert_eq!(m.from_name.as_deref(), Some("Dana Whitfield"));
    assert_eq!(m.in_reply_to, vec![OUR_ID]);
    assert_eq!(m.references, vec![OUR_ID]);
    assert_eq!(
        m.message_id.as_deref(),
        Some("<CAJx8K3pQ1v+Zr5uT0h9sWq2mEo7YbN4xLc6dFgH1aB2cD3eF4g@mail.gmail.com>")
    );
    assert_eq!(
        m.to,
        vec!["r+7f3c9a2b1e6d4c8f9a0b1c2d3e4f5a6b@replies.example.com"]
    );
    assert_eq!(m.subject, "Re: Your free roof inspection");
    assert_eq!(m.text, "Yes! Saturday at 10 works for us.");
    // The full text is the text/plain part, quotes and all.
    assert!(m.full_text.starts_with("Yes! Saturday at 10 works for us."));
    assert!(
        m.full_text
            .contains("> Thanks for asking about a roof inspection.")
    );
}

#[test]
fn outlook_reply_windows_1252_quoted_printable_original_message() {
    let m = parsed("outlook_reply.eml");
    assert_eq!(m.kind, InboundKind::Reply);
    assert_eq!(m.from.as_deref(), Some("dana.whitfield@contoso.com"));
    assert_eq!(m.from_name.as_deref(), Some("Dana Whitfield"));
    assert_eq!(m.in_reply_to, vec![OUR_ID]);
    assert_eq!(m.subject, "RE: Your free roof inspection");
    assert_eq!(
        m.text,
        "That\u{2019}s great \u{2013} Thursday at 3 works better for us, though. Can your crew come then?\n\nThanks,\nDana"
    );
    assert!(m.full_text.contains("-----Original Message-----"));
}

#[test]
fn outlook_365_html_only_reply_falls_back_to_html() {
    let m = parsed("outlook365_html_reply.eml");
    assert_eq!(m.kind, InboundKind::Reply);
    assert_eq!(m.from.as_deref(), Some("pnatarajan@fabrikam.com"));
    assert_eq!(m.in_reply_to, vec![OUR_ID]);
    assert_eq!(
        m.text,
        "Hi Sam,\n\nCould you come Monday instead? The caf\u{e9} next door is closed & parking is easy then.\n\nPriya"
    );
    // Tags, styles and the head are gone from the converted text; the history is still there.
    assert!(!m.full_text.contains("<div") && !m.full_text.contains("<br"));
    assert!(!m.full_text.contains("margin-top"));
    assert!(m.full_text.contains("From: Sam Carter <sam@example.com>"));
}

#[test]
fn iphone_reply_with_signature_and_quoted_attribution() {
    let m = parsed("apple_iphone_reply.eml");
    assert_eq!(m.kind, InboundKind::Reply);
    assert_eq!(m.from.as_deref(), Some("marcus.lee@icloud.com"));
    assert_eq!(m.in_reply_to, vec![OUR_ID]);
    assert_eq!(
        m.message_id.as_deref(),
        Some("<A1B2C3D4-E5F6-4789-ABCD-EF0123456789@icloud.com>")
    );
    assert_eq!(m.text, "Perfect, see you then. Gate code is 4417 \u{1F44D}");
}

#[test]
fn apple_mail_mac_reply() {
    let m = parsed("apple_mail_mac_reply.eml");
    assert_eq!(m.kind, InboundKind::Reply);
    assert_eq!(m.from.as_deref(), Some("jordan.reyes@me.com"));
    assert_eq!(m.in_reply_to, vec![OUR_ID]);
    assert_eq!(
        m.text,
        "Sounds good. Please call me when you are 10 minutes out.\n\nJordan"
    );
}

#[test]
fn broken_charset_is_decoded_best_effort() {
    let m = parsed("broken_charset_reply.eml");
    assert_eq!(m.kind, InboundKind::Reply);
    assert_eq!(m.from.as_deref(), Some("renee.dubois@example.fr"));
    assert_eq!(m.in_reply_to, vec![OUR_ID]);
    assert_eq!(
        m.references,
        vec!["<relentless.41.0123456789ab@example.com>", OUR_ID]
    );
    // An unknown charset: the 8-bit byte becomes U+FFFD; format=flowed lines are joined.
    assert_eq!(
        m.text,
        "Tuesday works. Ren\u{FFFD}e will be home to let you in. She has the key."
    );
}

// ---------------------------------------------------------------------------------------------
// Automatic replies and bounces: recorded, not answers
// ---------------------------------------------------------------------------------------------

#[test]
fn gmail_vacation_responder_is_an_auto_reply() {
    let m = parsed("gmail_vacation_auto_reply.eml");
    assert_eq!(m.kind, InboundKind::AutoReply);
    assert_eq!(m.from.as_deref(), Some("kelly.obrien@gmail.com"));
    assert_eq!(m.in_reply_to, vec![OUR_ID]);
    // Same subject as a human reply: only Auto-Submitted tells.
    assert_eq!(m.subject, "Re: Your free roof inspection");
}

#[test]
fn exchange_out_of_office_is_an_auto_reply() {
    let m = parsed("exchange_out_of_office.eml");
    assert_eq!(m.kind, InboundKind::AutoReply);
    assert_eq!(m.from.as_deref(), Some("malvarez@northwind.example"));
    assert_eq!(m.in_reply_to, vec![OUR_ID]);
    assert_eq!(
        m.text,
        "I am out of the office until December 2 with no access to email. For urgent matters please call the front desk at 555-0142."
    );
}

#[test]
fn postfix_hard_bounce() {
    let m = parsed("postfix_hard_bounce.eml");
    assert_eq!(
        m.kind,
        InboundKind::Bounce {
            recipient: Some("jordan.reyes@example.net".into()),
            hard: true
        }
    );
    assert_eq!(m.from.as_deref(), Some("mailer-daemon@mail.example.com"));
    // No In-Reply-To on the bounce itself: the returned message's Message-ID stands in.
    assert_eq!(m.in_reply_to, vec![OUR_ID]);
    assert!(
        m.text
            .starts_with("This is the mail system at host mail.example.com.")
    );
}

#[test]
fn postfix_delayed_mail_is_a_soft_bounce() {
    let m = parsed("postfix_delayed_soft_bounce.eml");
    assert_eq!(
        m.kind,
        InboundKind::Bounce {
            recipient: Some("avery.kim@example.org".into()),
            hard: false
        }
    );
    // Taken from the text/rfc822-headers part.
    assert_eq!(m.in_reply_to, vec![OUR_ID]);
}

fn mail(headers: &str, body: &str) -> InboundEmail {
    let raw = format!(
        "From: Lee Park <lee@example.com>\r\nTo: r+abc@replies.example.com\r\nMessage-ID: <x1@example.com>\r\nIn-Reply-To: {OUR_ID}\r\n{headers}\r\n\r\n{body}"
    );
    parse(raw.as_bytes()).unwrap()
}

#[test]
fn auto_reply_signals() {
    for (headers, expected) in [
        (
            "Subject: Out of Office: Re: Your quote",
            InboundKind::AutoReply,
        ),
        (
            "Subject: Automatic reply: Your quote",
            InboundKind::AutoReply,
        ),
        (
            "Subject: AUTO: Lee Park is out of the office",
            InboundKind::AutoReply,
        ),
        ("Subject: Autoreply: Your quote", InboundKind::AutoReply),
        (
            "Subject: Réponse automatique : Your quote",
            InboundKind::AutoReply,
        ),
        (
            "Subject: Re: Your quote\r\nX-Autoreply: yes",
            InboundKind::AutoReply,
        ),
        (
            "Subject: Re: Your quote\r\nX-Autorespond: Lee",
            InboundKind::AutoReply,
        ),
        (
            "Subject: Re: Your quote\r\nPrecedence: bulk",
            InboundKind::AutoReply,
        ),
        (
            "Subject: Re: Your quote\r\nPrecedence: auto_reply",
            InboundKind::AutoReply,
        ),
        (
            "Subject: Re: Your quote\r\nPrecedence: junk",
            InboundKind::AutoReply,
        ),
        (
            "Subject: Re: Your quote\r\nAuto-Submitted: auto-replied (vacation)",
            InboundKind::AutoReply,
        ),
        (
            "Subject: Re: Your quote\r\nX-Auto-Response-Suppress: OOF, DR, RN",
            InboundKind::AutoReply,
        ),
        (
            "Subject: Re: Your quote\r\nReturn-Path: <>",
            InboundKind::AutoReply,
        ),
        // Not automatic:
        (
            "Subject: Re: Your quote\r\nAuto-Submitted: no",
            InboundKind::Reply,
        ),
        ("Subject: Re: Out of office next week?", InboundKind::Reply),
        (
            "Subject: Re: Your quote\r\nPrecedence: first-class",
            InboundKind::Reply,
        ),
        (
            "Subject: Re: Your quote\r\nX-Auto-Response-Suppress: DR, RN",
            InboundKind::Reply,
        ),
    ] {
        assert_eq!(mail(headers, "Yes.\r\n").kind, expected, "{headers}");
    }
}

#[test]
fn read_receipt_is_an_auto_reply() {
    let m = mail(
        "Subject: Read: Your quote\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=\"b\"",
        "--b\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n--b\r\nContent-Type: message/disposition-notification\r\n\r\nFinal-Recipient: rfc822; lee@example.com\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n--b--\r\n",
    );
    assert_eq!(m.kind, InboundKind::AutoReply);
}

#[test]
fn exim_plain_text_bounce_and_dsn_without_report_type() {
    // Exim's classic bounce: plain text from the mailer-daemon, X-Failed-Recipients.
    let raw = "Return-path: <>\r\nX-Failed-Recipients: Lee@Example.com\r\nAuto-Submitted: auto-replied\r\nFrom: Mail Delivery System <Mailer-Daemon@mx.example.org>\r\nTo: sam@example.com\r\nSubject: Mail delivery failed: returning message to sender\r\n\r\nThis message was created automatically by mail delivery software.\r\n\r\nA message that you sent could not be delivered to one or more of its\r\nrecipients. This is a permanent error. The following address(es) failed:\r\n\r\n  lee@example.com\r\n    mailbox is full: retry timeout exceeded\r\n";
    let m = parse(raw.as_bytes()).unwrap();
    assert_eq!(
        m.kind,
        InboundKind::Bounce {
            recipient: Some("lee@example.com".into()),
            hard: true
        }
    );
    // A mailer-daemon message with a DSN part but a bare multipart/mixed (some MTAs).
    let raw = "From: postmaster@example.org\r\nTo: sam@example.com\r\nSubject: Delivery Status Notification (Failure)\r\nContent-Type: multipart/mixed; boundary=\"z\"\r\n\r\n--z\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n--z\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; example.org\r\n\r\nFinal-Recipient: rfc822; <gone@example.com>\r\nAction: failed\r\nStatus: 5.2.1\r\n--z--\r\n";
    assert_eq!(
        parse(raw.as_bytes()).unwrap().kind,
        InboundKind::Bounce {
            recipient: Some("gone@example.com".into()),
            hard: true
        }
    );
    // A base64 delivery-status part, as Exchange and Gmail may send it.
    let raw = "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\nTo: sam@example.com\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"q\"\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nAddress not found\r\n--q\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\nUmVwb3J0aW5nLU1UQTogZG5zOyBnb29nbGVtYWlsLmNvbQoKRmluYWwtUmVjaXBpZW50OiBy\r\nZmM4MjI7IG5vYm9keUBleGFtcGxlLmNvbQpBY3Rpb246IGZhaWxlZApTdGF0dXM6IDUuMS4x\r\nCg==\r\n--q--\r\n";
    assert_eq!(
        parse(raw.as_bytes()).unwrap().kind,
        InboundKind::Bounce {
            recipient: Some("nobody@example.com".into()),
            hard: true
        }
    );
}

#[test]
fn message_ids_always_have_angle_brackets() {
    let m = mail(
        "Subject: Re: x\r\nReferences: relentless.1.aa@example.com",
        "ok",
    );
    assert_eq!(m.message_id.as_deref(), Some("<x1@example.com>"));
    assert_eq!(m.in_reply_to, vec![OUR_ID]);
    assert_eq!(m.references, vec!["<relentless.1.aa@example.com>"]);
    // Old clients' free text in In-Reply-To is not an id.
    let raw = "From: a@example.com\r\nIn-Reply-To: Your message of \"Tue, 24 Nov 2026 09:14:04\"\r\n\r\nok";
    assert!(parse(raw.as_bytes()).unwrap().in_reply_to.is_empty());
}

#[test]
fn blank_text_alternative_falls_back_to_html() {
    let m = mail(
        "Subject: Re: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"a\"",
        "--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n \r\n--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Call me at 5.</p><blockquote>old</blockquote>\r\n--a--\r\n",
    );
    assert_eq!(m.text, "Call me at 5.");
}

#[test]
fn line_endings_do_not_matter() {
    for name in FIXTURES {
        let raw = fixture(name);
        let crlf_free: Vec<u8> = String::from_utf8_lossy(&raw)
            .replace("\r\n", "\n")
            .into_bytes();
        let lf = parse(&crlf_free).unwrap();
        let crlf = parse(
            &String::from_utf8_lossy(&crlf_free)
                .replace('\n', "\r\n")
                .into_bytes(),
        )
        .unwrap();
        assert_eq!(lf.kind, crlf.kind, "{name}");
        assert_eq!(lf.text, crlf.text, "{name}");
        assert_eq!(lf.in_reply_to, crlf.in_reply_to, "{name}");
        let original = parsed(name);
        assert_eq!(original.kind, lf.kind, "{name}");
        assert_eq!(original.in_reply_to, lf.in_reply_to, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Quote stripping and HTML
// ---------------------------------------------------------------------------------------------

#[test]
fn strip_quotes_reply_headers_of_each_client() {
    let cases: &[(&str, &str)] = &[
        // Gmail, attribution on one line.
        (
            "Yes! Saturday at 10 works for us.\n\nOn Tue, Nov 24, 2026 at 9:14 AM Sam Carter <sam@example.com> wrote:\n> Hi Dana,\n",
            "Yes! Saturday at 10 works for us.",
        ),
        // Gmail, attribution wrapped over two lines, history not quoted.
        (
            "Yes.\n\nOn Tue, Nov 24, 2026 at 9:14 AM Sam Carter <\nsam@example.com> wrote:\nHi Dana,\n",
            "Yes.",
        ),
        // Apple Mail, unquoted attribution followed by unquoted history.
        (
            "Sounds good.\n\nOn Nov 24, 2026, at 09:14, Sam Carter <sam@example.com> wrote:\n\nHi Jordan,\nThanks for asking.\n",
            "Sounds good.",
        ),
        // Outlook, -----Original Message-----.
        (
            "Thursday works.\n\n-----Original Message-----\nFrom: Sam Carter <sam@example.com>\nSent: Tuesday, November 24, 2026 9:14 AM\n",
            "Thursday works.",
        ),
        // Outlook, the From/Sent/To/Subject block alone (with bold markers from HTML).
        (
            "Thursday works.\nDana\n\n*From:* Sam Carter <sam@example.com>\n*Sent:* Tuesday, November 24, 2026 9:14 AM\n*To:* Dana <dana@contoso.com>\n*Subject:* Your quote\n\nHi Dana\n",
            "Thursday works.\nDana",
        ),
        // Outlook's separator line.
        (
            "Thursday works.\n\n________________________________\nFrom: Sam Carter <sam@example.com>\n",
            "Thursday works.",
        ),
        // Signatures.
        ("Perfect.\n\nSent from my iPhone\n", "Perfect."),
        (
            "Perfect.\n\nGet Outlook for iOS<https://aka.ms/o0ukef>\n",
            "Perfect.",
        ),
        (
            "Perfect.\nLee\n-- \nLee Park | Park & Sons\n555-0100\n",
            "Perfect.\nLee",
        ),
        // Localized attributions.
        (
            "D'accord.\n\nLe mar. 24 nov. 2026 à 09:14, Sam Carter <sam@example.com> a écrit :\n> Bonjour\n",
            "D'accord.",
        ),
        (
            "Passt.\n\nAm Di., 24. Nov. 2026 um 09:14 Uhr schrieb Sam Carter <sam@example.com>:\n> Hallo\n",
            "Passt.",
        ),
        // Nothing to strip; an "On …" sentence that is not an attribution stays.
        (
            "On Saturday we are away.\nOn Sunday 10 works: my husband wrote down the time.\n",
            "On Saturday we are away.\nOn Sunday 10 works: my husband wrote down the time.",
        ),
        // Blank lines collapsed and trimmed.
        ("\n\nOne.\n\n\n\nTwo.\n\n\n", "One.\n\nTwo."),
        // CRLF.
        ("Yes.\r\n\r\n> old\r\n", "Yes."),
    ];
    for (input, want) in cases {
        assert_eq!(strip_quotes(input), *want, "{input:?}");
    }
}

#[test]
fn strip_quotes_keeps_replies_written_below_or_between_quotes() {
    let bottom = "On Tue, Nov 24, 2026 at 9:14 AM Sam Carter <sam@example.com> wrote:\n> Would Saturday work?\n\nYes, Saturday is fine.\n";
    assert_eq!(strip_quotes(bottom), "Yes, Saturday is fine.");
    let inline = "> Would Saturday work?\nYes.\n> What time?\n10 am.\n";
    assert_eq!(strip_quotes(inline), "Yes.\n10 am.");
    // Only quotes: nothing new.
    assert_eq!(strip_quotes("> a\n> b\n"), "");
}

#[test]
fn html_to_text_of_client_markup() {
    let gmail = "<div dir=\"ltr\">Yes! Saturday at 10 works for us.</div><br><div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">On Tue, Nov 24, 2026 at 9:14 AM Sam Carter &lt;<a href=\"mailto:sam@example.com\">sam@example.com</a>&gt; wrote:<br></div><blockquote class=\"gmail_quote\"><div>Hi Dana,</div></blockquote></div>";
    assert_eq!(
        html_to_text(gmail),
        "Yes! Saturday at 10 works for us.\n\nOn Tue, Nov 24, 2026 at 9:14 AM Sam Carter <sam@example.com> wrote:\n> Hi Dana,"
    );
    assert_eq!(
        strip_quotes(&html_to_text(gmail)),
        "Yes! Saturday at 10 works for us."
    );
    assert_eq!(
        html_to_text(
            "<p>A&nbsp;&amp;&nbsp;B &#8211; &#x2014; &copy; &bogus; &</p><script>x()</script><p>C</p>"
        ),
        "A & B \u{2013} \u{2014} \u{a9} &bogus; &\nC"
    );
    // Unclosed and broken markup.
    assert_eq!(html_to_text("<div>open <b"), "open");
    assert_eq!(html_to_text("<!-- never closed"), "");
    assert_eq!(html_to_text("<style>never closed"), "");
}

// ---------------------------------------------------------------------------------------------
// Bad input: never a panic
// ---------------------------------------------------------------------------------------------

fn no_panic(raw: &[u8]) -> Result<InboundEmail, String> {
    let r = parse(raw);
    assert_ne!(r.as_ref().err().map(String::as_str), Some(PANICKED));
    if let Ok(m) = &r {
        assert!(m.text.len() <= m.full_text.len() + 1);
        assert!(
            m.in_reply_to
                .iter()
                .all(|id| id.starts_with('<') && id.ends_with('>'))
        );
    }
    r
}

#[test]
fn empty_oversized_and_non_email_input() {
    assert!(no_panic(b"").is_err());
    assert!(no_panic(b" \r\n\t\n").is_err());
    let big = vec![b'a'; MAX_SIZE + 1];
    assert_eq!(parse(&big).unwrap_err(), "the message is larger than 10 MB");
    for junk in [
        &b"\x00\x01\x02\x03\xff\xfe"[..],
        b"hello world",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\n",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
        b":\n:\n\n",
        b"From \n",
        b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n",
    ] {
        let _ = no_panic(junk);
    }
}

#[test]
fn mime_bombs_are_bounded() {
    let n = 20_000;
    // Deeply nested multiparts, closed.
    let mut s = String::from(
        "From: a@example.com\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n",
    );
    for i in 1..n {
        s += &format!(
            "--b{}\r\nContent-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n",
            i - 1
        );
    }
    s += &format!("--b{}\r\nContent-Type: text/plain\r\n\r\nhi\r\n", n - 1);
    for i in (0..n).rev() {
        s += &format!("--b{i}--\r\n");
    }
    let _ = no_panic(s.as_bytes());
    // Deeply nested, never closed, one boundary for all.
    let mut s = String::from(
        "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
    );
    for _ in 0..n {
        s += "--b\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n";
    }
    let _ = no_panic(s.as_bytes());
    // Hundreds of thousands of sibling text parts, just under the size cap.
    let mut s = String::from(
        "From: a@example.com\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
    );
    while s.len() < MAX_SIZE - 100 {
        s += "--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n";
    }
    s += "--b--\r\n";
    let m = no_panic(s.as_bytes()).unwrap();
    assert!(
        m.full_text.lines().count() <= 32,
        "only the first text parts are read"
    );
    // Nested message/rfc822, encoded and not.
    let mut s = String::from("From: a@example.com\r\nSubject: x\r\n");
    for _ in 0..n {
        s += "Content-Type: message/rfc822\r\n\r\nFrom: b@example.com\r\n";
    }
    let _ = no_panic(s.as_bytes());
    let mut s = String::from("From: a@example.com\r\n");
    for _ in 0..n {
        s += "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n";
    }
    let _ = no_panic(s.as_bytes());
    // One huge header and one huge line.
    let s = format!(
        "From: a@example.com\r\nSubject: {}\r\nReferences: {}\r\n\r\n{}",
        "x".repeat(3_000_000),
        "<a@b> ".repeat(200_000),
        "y".repeat(3_000_000)
    );
    let m = no_panic(s.as_bytes()).unwrap();
    assert!(m.references.len() <= 100);
    // A huge HTML body full of broken tags and entities.
    let s = format!(
        "From: a@example.com\r\nContent-Type: text/html\r\n\r\n{}",
        "<div><blockquote>&amp;&#99999999999;&nbsp<b <!-- x".repeat(150_000)
    );
    let _ = no_panic(s.as_bytes());
}

/// Random changes to a real message: flip, insert, delete bytes, truncate, splice.
fn mutate(mut raw: Vec<u8>, ops: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(op, at, byte) in ops {
        if raw.is_empty() {
            raw.push(byte);
            continue;
        }
        let at = at % raw.len();
        match op % 6 {
            0 => raw[at] = byte,
            1 => raw.insert(at, byte),
            2 => {
                raw.remove(at);
            }
            3 => raw.truncate(at),
            4 => {
                let tail = raw[at..].to_vec();
                raw.extend_from_slice(&tail[..tail.len().min(4096)]);
            }
            _ => {
                let junk: &[u8] = match byte % 6 {
                    0 => b"\r\n--",
                    1 => b"\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\n",
                    2 => b"=?utf-8?B?",
                    3 => b"<blockquote>",
                    4 => b"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                    _ => b"charset=\"\xff\xfe\"",
                };
                raw.splice(at..at, junk.iter().copied());
            }
        }
    }
    raw
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = no_panic(&raw);
    }

    #[test]
    fn mutated_real_messages_never_panic(
        which in 0..FIXTURES.len(),
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..24),
    ) {
        let raw = mutate(fixture(FIXTURES[which]), &ops);
        let _ = no_panic(&raw);
    }

    #[test]
    fn header_like_noise_never_panics(
        lines in proptest::collection::vec("[A-Za-z-]{0,12}:[ -~]{0,40}|--[a-z0-9]{0,8}(--)?|[ -~]{0,60}", 0..60),
    ) {
        let raw = lines.join("\r\n");
        let _ = no_panic(raw.as_bytes());
    }
}
