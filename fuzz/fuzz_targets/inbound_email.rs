//! Inbound MIME email, as the inbound-email webhook receives it: the reply/bounce/auto-reply
//! classifier, and the lead-notification parser with the built-in intake rules. Any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relentless_engine::{inbound_email, intake_email};
use std::sync::OnceLock;

fn rules() -> &'static [intake_email::Rule] {
    static RULES: OnceLock<Vec<intake_email::Rule>> = OnceLock::new();
    RULES.get_or_init(intake_email::builtin_rules)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = inbound_email::parse(data) {
        let _ = inbound_email::strip_quotes(&m.full_text);
    }
    let _ = intake_email::parse_lead_email(data, rules());
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = inbound_email::html_to_text(s);
        let _ = inbound_email::strip_quotes(s);
        let _ = intake_email::lead_html_to_text(s);
        let _ = intake_email::Rule::from_toml(s);
    }
});
