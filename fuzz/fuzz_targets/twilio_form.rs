//! Twilio webhooks: a form body as the SMS and status webhooks parse it, its signature
//! computed and checked, the header value checked as sent, and the inbound text run through
//! the keyword rules (STOP/START/HELP, "please stop texting me").
//! Input: `signature header \n URL \n form body`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relentless_core::{rules, twilio};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(header), Some(url), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Ok(header), Ok(url)) = (std::str::from_utf8(header), std::str::from_utf8(url)) else {
        return;
    };
    let Some(params) = twilio::parse_form(body) else { return };
    let token = "fuzz-auth-token";
    let _ = twilio::verify(token, url, &params, header);
    // Our own signature always verifies, and not under another token.
    let sig = twilio::signature(token, url, &params);
    assert!(twilio::verify(token, url, &params, &sig), "{url:?} {params:?}");
    assert!(!twilio::verify("another-token", url, &params, &sig));
    // Parameter order does not matter to Twilio's scheme.
    let mut reversed = params.clone();
    reversed.reverse();
    assert_eq!(twilio::signature(token, url, &reversed), sig);
    for (name, value) in &params {
        if name == "Body" {
            let _ = rules::sms_keyword(value);
            let _ = rules::looks_like_stop_request(value);
        }
    }
});
