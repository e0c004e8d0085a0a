//! Lead-notification emails (issue 4, item 2): raw notification emails from lead sources
//! (fixtures under `tests/fixtures/lead-emails/`, made-up people with example.com addresses
//! and 555-01xx numbers) read by the shipped rules (`plans/intake-rules/`), the generic
//! `Label: value` fallback, rule files a team writes, and bad input that must never panic.

use proptest::prelude::*;
use relentless_engine::intake_email::{
    FIELD_NAMES, MAX_SIZE, ParsedLeadEmail, Rule, builtin_rules, lead_html_to_text,
    parse_lead_email,
};
use std::collections::BTreeMap;

/// What `parse_lead_email` answers when something inside it panicked (it must never happen).
const PANICKED: &str = "the message could not be parsed";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/lead-emails/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parsed(name: &str) -> ParsedLeadEmail {
    parse_lead_email(&fixture(name), &builtin_rules()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const FIXTURES: &[&str] = &[
    "zillow_new_contact.eml",
    "zillow_invalid_phone.eml",
    "realtor_com_lead.eml",
    "homes_com_lead.eml",
    "facebook_zapier_lead.eml",
    "unknown_idx_form.eml",
    "unknown_html_table.eml",
];

/// A minimal email around a text/plain body.
fn email(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: intake@leads.example.com\r\nSubject: {subject}\r\n\
         Date: Sat, 12 Apr 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{}",
        body.replace('\n', "\r\n")
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------
// The shipped rules, on the sources' emails
// ---------------------------------------------------------------------------------------------

#[test]
fn zillow_new_contact_label_above_value_layout() {
    let p = parsed("zillow_new_contact.eml");
    assert_eq!(p.rule.as_deref(), Some("zillow"));
    assert!(!p.flagged_for_review);
    assert_eq!(
        p.subject,
        "New Contact: Jordan Whitfield is requesting information about 4127 Larkspur Ln, \
         Austin, TX 78745"
    );
    assert_eq!(
        p.fields,
        fields(&[
            ("name", "Jordan Whitfield"),
            ("phone", "(512) 555-0142"),
            ("email", "jordan.whitfield@example.com"),
            ("property_address", "4127 Larkspur Ln, Austin, TX 78745"),
            ("price", "$485,000"),
            (
                "message",
                "Hi, I'd like to tour this home this Saturday morning if it's still available. \
                 We're pre-approved and relocating from Denver in June."
            ),
            ("external_id", "7c1e9a52-4b7d-4f0e-9d2a-3b58e1f0a6c4"),
            ("source", "zillow"),
        ])
    );
    // The text/plain alternative is the text kept on the timeline, decoded.
    assert!(
        p.text
            .starts_with("New Contact\n\nJordan Whitfield is requesting")
    );
    assert!(p.text.contains("Zillow, Inc. | 1301 Second Avenue"));
    assert!(!p.text.contains('\r') && !p.text.contains("=20"));
}

#[test]
fn zillow_html_alternative_reads_the_same() {
    // The same email without its text/plain part: the HTML (div label, div value) is read.
    let raw = String::from_utf8(fixture("zillow_new_contact.eml")).unwrap();
    let boundary = raw
        .split("boundary=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let marker = format!("--{boundary}");
    let parts: Vec<&str> = raw.split(marker.as_str()).collect();
    assert_eq!(parts.len(), 4, "headers, text, html, closing");
    assert!(parts[2].contains("text/html"));
    let html_only = [parts[0], parts[2], parts[3]].join(marker.as_str());
    let p = parse_lead_email(html_only.as_bytes(), &builtin_rules()).unwrap();
    assert_eq!(p.rule.as_deref(), Some("zillow"));
    assert!(!p.flagged_for_review);
    // The HTML has the contact id only in a link, which text does not keep.
    assert_eq!(
        p.fields,
        fields(&[
            ("name", "Jordan Whitfield"),
            ("phone", "(512) 555-0142"),
            ("email", "jordan.whitfield@example.com"),
            ("property_address", "4127 Larkspur Ln, Austin, TX 78745"),
            ("price", "$485,000"),
            // In curly quotes here, and no blank line after it.
            (
                "message",
                "Hi, I'd like to tour this home this Saturday morning if it's still available. \
                 We're pre-approved and relocating from Denver in June."
            ),
            ("source", "zillow"),
        ])
    );
    assert!(!p.text.contains('<'), "{}", p.text);
}

#[test]
fn zillow_with_an_invalid_phone_returns_it_as_found() {
    // HTML only, from the lead's @convo.zillow.com relay address; the phone is two digits
    // short. The parser returns it as written: the caller keeps it as a note and flags it.
    let p = parsed("zillow_invalid_phone.eml");
    assert_eq!(p.rule.as_deref(), Some("zillow"));
    assert!(!p.flagged_for_review);
    assert_eq!(
        p.fields,
        fields(&[
            ("name", "Sam Okafor"),
            ("phone", "(512) 555-01"),
            ("email", "sam.okafor@example.com"),
            (
                "property_address",
                "9 Birch Hollow Ct, Pflugerville, TX 78660"
            ),
            ("price", "$362,500"),
            ("message", "Can we see it Tuesday after 5?"),
            ("source", "zillow"),
        ])
    );
}

#[test]
fn realtor_com_lead_with_separate_names_and_a_two_line_address() {
    let p = parsed("realtor_com_lead.eml");
    assert_eq!(p.rule.as_deref(), Some("realtor-com"));
    assert!(!p.flagged_for_review);
    assert_eq!(p.subject, "New realtor.com lead - Priya Raman");
    assert_eq!(
        p.fields,
        fields(&[
            ("first_name", "Priya"),
            ("last_name", "Raman"),
            ("name", "Priya Raman"),
            // The text/plain part writes the link as `… <mailto:…>`: removed.
            ("email", "priya.raman@example.com"),
            ("phone", "(303) 555-0178"),
            ("property_address", "2250 Alder Creek Dr, Denver, CO 80211"),
            ("price", "$615,000"),
            (
                "message",
                "I'm interested in 2250 Alder Creek Dr. Could you send me the HOA fees and let \
                 me know if there have been any offers?"
            ),
            ("external_id", "4f8e2c1a-77b3-4d29-a6c0-5e1b9d3f2a87"),
            ("source", "realtor.com"),
        ])
    );
}

#[test]
fn homes_com_html_table_base64() {
    let p = parsed("homes_com_lead.eml");
    assert_eq!(p.rule.as_deref(), Some("homes-com"));
    assert!(!p.flagged_for_review);
    assert_eq!(
        p.fields,
        fields(&[
            ("name", "Marcus Bell"),
            ("email", "marcus.bell@example.com"),
            ("phone", "(210) 555-0116"),
            (
                "property_address",
                "118 Cedar Bluff Rd, San Antonio, TX 78232"
            ),
            ("price", "$429,900"),
            (
                "message",
                "Is the seller open to offers below asking? We'd also like to know the age of \
                 the roof."
            ),
            ("external_id", "HC-20250414-558812"),
            ("source", "homes.com"),
        ])
    );
    // The HTML is kept as text, the table rows as `Label: value` lines.
    assert!(p.text.contains("Phone: (210) 555-0116"), "{}", p.text);
    assert!(!p.text.contains("<td"));
}

#[test]
fn facebook_lead_ad_through_zapier() {
    let p = parsed("facebook_zapier_lead.eml");
    assert_eq!(p.rule.as_deref(), Some("facebook-zapier"));
    assert!(!p.flagged_for_review);
    assert_eq!(
        p.fields,
        fields(&[
            ("name", "Dana Ortiz"),
            ("email", "dana.ortiz@example.com"),
            ("phone", "+15125550163"),
            ("external_id", "1187342209987713"),
            ("source", "facebook"),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// The fallback
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_format_is_read_by_the_fallback_and_flagged() {
    let p = parsed("unknown_idx_form.eml");
    assert_eq!(p.rule, None);
    assert!(p.flagged_for_review);
    assert_eq!(p.subject, "Website inquiry: 77 Ridgeview Ct");
    assert_eq!(
        p.fields,
        fields(&[
            ("name", "Leah Chen"),
            ("email", "leah.chen@example.com"),
            ("phone", "512-555-0199"),
            ("property_address", "77 Ridgeview Ct, Round Rock, TX 78664"),
            ("price", "$540,000"),
            (
                "message",
                "We'd love to see this on Saturday morning.\nWe're flexible after 11 too."
            ),
        ])
    );
    assert!(p.text.contains("Submitted from 203.0.113.24"));
}

#[test]
fn unknown_html_table_is_read_by_the_fallback() {
    let p = parsed("unknown_html_table.eml");
    assert_eq!(p.rule, None);
    assert!(p.flagged_for_review);
    assert_eq!(
        p.fields,
        fields(&[
            ("first_name", "Omar"),
            ("last_name", "Haddad"),
            ("email", "omar.haddad@example.com"),
            ("phone", "(737) 555-0107"),
            ("property_address", "5 Quarry Oaks Dr, Austin, TX 78731"),
            ("message", "Does the HOA allow short-term rentals?"),
        ])
    );
}

#[test]
fn fallback_synonyms_and_layouts() {
    let body = "Hello,\n\n\
                *Full Name:* Ana Lima\n\
                E-mail Address : ana.lima@example.com <mailto:ana.lima@example.com>\n\
                Mobile Number\n\
                \n\
                (415) 555-0104\n\
                > Listing: 12 Elm St\n\
                Asking Price: $1,250,000\n\
                Lead Source: Open house sign-in\n\
                Lead ID: OH-77\n\
                Question: First line\n\
                second line\n\
                Notes: not ours\n";
    let p = parse_lead_email(
        &email("Forms <forms@example.com>", "Lead", body),
        &builtin_rules(),
    )
    .unwrap();
    assert_eq!(p.rule, None);
    assert!(p.flagged_for_review);
    assert_eq!(
        p.fields,
        fields(&[
            ("name", "Ana Lima"),
            ("email", "ana.lima@example.com"),
            ("phone", "(415) 555-0104"),
            ("property_address", "12 Elm St"),
            ("price", "$1,250,000"),
            ("source", "Open house sign-in"),
            ("external_id", "OH-77"),
            ("message", "First line\nsecond line\nNotes: not ours"),
        ])
    );
}

#[test]
fn fallback_label_without_a_value_takes_nothing() {
    // `Phone:` is empty; the next line is another label, not the phone.
    let body = "Name: Bo Park\nPhone:\nEmail: bo.park@example.com\n";
    let p = parse_lead_email(&email("x@example.com", "Hi", body), &[]).unwrap();
    assert_eq!(
        p.fields,
        fields(&[("name", "Bo Park"), ("email", "bo.park@example.com")])
    );
}

#[test]
fn email_with_no_fields_is_kept_flagged() {
    let p = parse_lead_email(
        &email("x@example.com", "Hello", "Please call me back."),
        &builtin_rules(),
    )
    .unwrap();
    assert!(p.fields.is_empty());
    assert!(p.flagged_for_review);
    assert_eq!(p.rule, None);
    assert_eq!(p.text, "Please call me back.");
}

#[test]
fn a_rule_that_finds_no_contact_falls_back_and_flags() {
    // Zillow changed its layout: the rule recognises the email but finds no email or phone;
    // the fallback fills what the rule missed, and the agent is asked to check.
    let body =
        "Jordan Whitfield says:\n\"Is it available?\"\n\nContact: Jordan\nE-mail: j@example.com\n";
    let p = parse_lead_email(
        &email(
            "Zillow <no-reply@mail.zillow.com>",
            "Jordan Whitfield is requesting information about 1 Main St",
            body,
        ),
        &builtin_rules(),
    )
    .unwrap();
    assert_eq!(p.rule.as_deref(), Some("zillow"));
    assert!(p.flagged_for_review);
    assert_eq!(
        p.fields,
        fields(&[
            ("name", "Jordan Whitfield"),
            ("property_address", "1 Main St"),
            ("message", "Is it available?"),
            ("email", "j@example.com"),
            ("source", "zillow"),
        ])
    );
}

#[test]
fn a_zillow_address_without_a_lead_subject_is_not_a_zillow_lead() {
    // `mode = "all"`: the sender matches, the subject does not.
    let body = "Name: Kim Diaz\nEmail: kim.diaz@example.com\n";
    let p = parse_lead_email(
        &email(
            "Zillow <no-reply@mail.zillow.com>",
            "Your weekly market report",
            body,
        ),
        &builtin_rules(),
    )
    .unwrap();
    assert_eq!(p.rule, None);
    assert!(p.flagged_for_review);
}

// ---------------------------------------------------------------------------------------------
// Rules a team writes
// ---------------------------------------------------------------------------------------------

const TEAM_RULE: &str = r#"
# Our IDX website's "New Lead" form, also when an agent forwards it by hand.
name = "cedar-idx"
description = "Cedar Park Homes IDX website"
source = "website"

[match]
mode = "any"
from_contains = "cedarparkhomes.example.com"
body_contains = ["Powered by Cedar Park Homes IDX"]

[fields]
name = "Full Name"
email = { label = ["E-mail", "Email"] }
phone = { label = "Cell", regex = '(?i)call me at ([0-9() .+-]{7,})' }
property_address = { label = "Property Address" }
message = { label = "Comments", until = ["Submitted from"] }
external_id = { regex = '(?m)^Submitted from (\d+\.\d+\.\d+\.\d+)' }
"#;

#[test]
fn a_team_rule_comes_first_and_reads_its_fields() {
    let team = Rule::from_toml(TEAM_RULE).unwrap();
    assert_eq!(team.name, "cedar-idx");
    assert_eq!(team.source.as_deref(), Some("website"));
    let mut rules = vec![team];
    rules.extend(builtin_rules());
    let p = parse_lead_email(&fixture("unknown_idx_form.eml"), &rules).unwrap();
    assert_eq!(p.rule.as_deref(), Some("cedar-idx"));
    assert!(!p.flagged_for_review);
    assert_eq!(
        p.fields,
        fields(&[
            ("name", "Leah Chen"),
            ("email", "leah.chen@example.com"),
            ("phone", "512-555-0199"),
            ("property_address", "77 Ridgeview Ct, Round Rock, TX 78664"),
            // `until`: blank lines are kept as a paragraph break, up to "Submitted from".
            (
                "message",
                "We'd love to see this on Saturday morning.\nWe're flexible after 11 too."
            ),
            ("external_id", "203.0.113.24"),
            ("source", "website"),
        ])
    );
}

#[test]
fn a_team_rule_in_any_mode_recognises_a_forwarded_email() {
    let rule = Rule::from_toml(TEAM_RULE).unwrap();
    let body = "---------- Forwarded message ---------\n\
                From: Cedar Park Homes Website <forms@cedarparkhomes.example.com>\n\n\
                > Full Name: Noor Aziz\n\
                > Comments: Please call me at (512) 555-0188 after 6.\n\
                >\n\
                > Thanks!\n\
                > Powered by Cedar Park Homes IDX\n";
    assert!(rule.recognises("Sam Carter <sam@agents.example.com>", "Fwd: inquiry", body));
    let p = parse_lead_email(
        &email("Sam Carter <sam@agents.example.com>", "Fwd: inquiry", body),
        &[rule],
    )
    .unwrap();
    assert_eq!(p.rule.as_deref(), Some("cedar-idx"));
    assert!(!p.flagged_for_review);
    assert_eq!(
        p.fields,
        fields(&[
            ("name", "Noor Aziz"),
            // No Cell label: the regex alternative finds it in the message.
            ("phone", "(512) 555-0188"),
            (
                "message",
                "Please call me at (512) 555-0188 after 6.\n\nThanks!\nPowered by Cedar Park Homes IDX"
            ),
            ("source", "website"),
        ])
    );
}

#[test]
fn match_semantics() {
    let rule = Rule::from_toml(
        "name = 'r'\n[match]\nfrom_contains = ['Portal.example']\n\
         subject_contains = ['new lead', 'inquiry']\n[fields]\nemail = 'Email'\n",
    )
    .unwrap();
    // All lists must hold; within a list one text is enough; case is ignored.
    assert!(rule.recognises("<leads@portal.EXAMPLE.com>", "NEW LEAD: Jo", ""));
    assert!(rule.recognises("Portal.example <x@y>", "An inquiry", ""));
    assert!(!rule.recognises("<leads@portal.example.com>", "Newsletter", ""));
    assert!(!rule.recognises("<leads@other.example.com>", "New lead", ""));
    let any = Rule::from_toml(
        "name = 'r'\n[match]\nmode = 'any'\nfrom_contains = 'portal.example'\n\
         body_contains = 'Lead ID'\n[fields]\nemail = 'Email'\n",
    )
    .unwrap();
    assert!(any.recognises("x@other.example", "", "lead id: 7"));
    assert!(any.recognises("x@portal.example", "", ""));
    assert!(!any.recognises("x@other.example", "", "hello"));
}

#[test]
fn from_toml_errors_name_the_field() {
    let ok = "name = 'r'\n[match]\nfrom_contains = ['a.example']\n[fields]\nemail = 'Email'\n";
    assert!(Rule::from_toml(ok).is_ok());
    let cases: &[(&str, &str)] = &[
        (
            "[match]\nfrom_contains = 'a'\n[fields]\nemail = 'Email'\n",
            "name:",
        ),
        (
            "name = 'Zillow Leads'\n[match]\nfrom_contains = 'a'\n[fields]\nemail = 'Email'\n",
            "name:",
        ),
        ("name = 'r'\n[fields]\nemail = 'Email'\n", "match:"),
        ("name = 'r'\n[match]\n[fields]\nemail = 'Email'\n", "match:"),
        (
            "name = 'r'\n[match]\nfrom_contains = ''\n[fields]\nemail = 'Email'\n",
            "match.from_contains:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = [1]\n[fields]\nemail = 'Email'\n",
            "match.from_contains:",
        ),
        (
            "name = 'r'\n[match]\nmode = 'most'\nfrom_contains = 'a'\n[fields]\nemail = 'Email'\n",
            "match.mode:",
        ),
        (
            "name = 'r'\n[match]\nfrom = 'a'\nfrom_contains = 'a'\n[fields]\nemail = 'Email'\n",
            "match.from:",
        ),
        ("name = 'r'\n[match]\nfrom_contains = 'a'\n", "fields:"),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\n",
            "fields:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nmobile = 'Mobile'\n",
            "fields.mobile:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nphone = {}\n",
            "fields.phone:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nphone = 5\n",
            "fields.phone:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nphone = { label = 'Phone:' }\n",
            "fields.phone.label:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nphone = { regex = 'Phone: \\d+' }\n",
            "fields.phone.regex:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nphone = { regex = '(a)(b)' }\n",
            "fields.phone.regex:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nphone = { regex = '(a' }\n",
            "fields.phone.regex:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nname = { subject_regex = '(?<n>.+)' }\n",
            "fields.name.subject_regex:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nmessage = { regex = '(.+)', multiline = true }\n",
            "fields.message:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nmessage = { label = 'M', multiline = 'yes' }\n",
            "fields.message.multiline:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nmessage = { label = 'M', until = [''] }\n",
            "fields.message.until:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nphone = { label = 'P', colour = 'red' }\n",
            "fields.phone.colour:",
        ),
        (
            "name = 'r'\nsource = ''\n[match]\nfrom_contains = 'a'\n[fields]\nemail = 'Email'\n",
            "source:",
        ),
        (
            "name = 'r'\npriority = 1\n[match]\nfrom_contains = 'a'\n[fields]\nemail = 'Email'\n",
            "priority:",
        ),
        (
            "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\nphone = \"\\d\"\n",
            "line 5:",
        ),
        ("name = 'r'\nname = 's'\n", "line 2:"),
        ("name = 'r\n", "line 1:"),
    ];
    for (text, prefix) in cases {
        let e = Rule::from_toml(text).expect_err(text);
        assert!(e.starts_with(prefix), "{text:?}: {e}");
    }
}

#[test]
fn html_table_rows_become_label_lines() {
    let html = "<table><tr><td>Name</td><td><b>Jo Ann</b></td></tr>\
                <tr><th>Phone&nbsp;</th><td>(512) 555-0100</td></tr>\
                <tr><td>Email:</td><td>jo@example.com</td></tr></table>";
    assert_eq!(
        lead_html_to_text(html),
        "Name: Jo Ann\nPhone : (512) 555-0100\nEmail: jo@example.com"
    );
}

// ---------------------------------------------------------------------------------------------
// The shipped files
// ---------------------------------------------------------------------------------------------

#[test]
fn builtin_rules_parse_and_cover_the_sources() {
    let files = relentless_core::builtin::intake_rule_files();
    let rules = builtin_rules();
    assert_eq!(rules.len(), files.len());
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["zillow", "realtor-com", "homes-com", "facebook-zapier"]
    );
    for (f, r) in files.iter().zip(&rules) {
        assert_eq!(f.name, format!("intake-rules/{}.toml", r.name));
        assert!(r.source.is_some(), "{} has a source", r.name);
        assert!(!r.description.is_empty(), "{} has a description", r.name);
    }
    // Every fixture from a source is read by that source's rule, and only by it.
    for (fixture_name, rule) in [
        ("zillow_new_contact.eml", Some("zillow")),
        ("zillow_invalid_phone.eml", Some("zillow")),
        ("realtor_com_lead.eml", Some("realtor-com")),
        ("homes_com_lead.eml", Some("homes-com")),
        ("facebook_zapier_lead.eml", Some("facebook-zapier")),
        ("unknown_idx_form.eml", None),
        ("unknown_html_table.eml", None),
    ] {
        let p = parsed(fixture_name);
        assert_eq!(p.rule.as_deref(), rule, "{fixture_name}");
        for k in p.fields.keys() {
            assert!(FIELD_NAMES.contains(&k.as_str()), "{fixture_name}: {k}");
        }
        for v in p.fields.values() {
            assert!(!v.is_empty() && v.trim() == v, "{fixture_name}: {v:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let rules = builtin_rules();
    assert!(parse_lead_email(b"", &rules).is_err());
    assert!(parse_lead_email(b" \r\n\t ", &rules).is_err());
    let big = vec![b'a'; MAX_SIZE + 1];
    assert!(
        parse_lead_email(&big, &rules)
            .unwrap_err()
            .contains("larger")
    );
    for raw in [
        &b"\xff\xfe\x00garbage"[..],
        b"Subject: only a subject",
        b"From: \r\n\r\n",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x--",
        b"Content-Type: text/html\r\nSubject: s\r\n\r\n<tr><td>Name<td>Jo</tr><tr",
    ] {
        if let Err(e) = parse_lead_email(raw, &rules) {
            assert_ne!(e, PANICKED, "{raw:?}");
        }
    }
}

#[test]
fn a_huge_body_is_capped() {
    let body = format!("Name: Jo\n{}", "x".repeat(400 * 1024));
    let p = parse_lead_email(&email("a@example.com", "s", &body), &builtin_rules()).unwrap();
    assert!(p.text.len() <= relentless_engine::intake_email::MAX_TEXT);
    assert_eq!(p.fields.get("name").map(String::as_str), Some("Jo"));
}

fn no_panic(raw: &[u8], rules: &[Rule]) {
    if let Err(e) = parse_lead_email(raw, rules) {
        assert_ne!(e, PANICKED);
    }
}

fn mutate(mut raw: Vec<u8>, ops: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(op, at, byte) in ops {
        if raw.is_empty() {
            break;
        }
        let at = at % raw.len();
        match op % 3 {
            0 => raw[at] = byte,
            1 => raw.insert(at, byte),
            _ => {
                raw.remove(at);
            }
        }
    }
    raw
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        no_panic(&raw, &builtin_rules());
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0..FIXTURES.len(),
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..24),
    ) {
        no_panic(&mutate(fixture(FIXTURES[which]), &ops), &builtin_rules());
    }

    #[test]
    fn label_like_noise_never_panics(
        lines in proptest::collection::vec(
            "(Name|Phone|E-mail|Comments|Property|<td>|<tr>|>|\\*)?[ :]{0,2}[ -~]{0,40}", 0..60),
    ) {
        let body = lines.join("\n");
        no_panic(&email("Zillow <x@zillow.com>", "New Contact", &body), &builtin_rules());
        no_panic(&email("x@example.com", "s", &body), &[]);
        let html = format!("Content-Type: text/html\r\nSubject: s\r\n\r\n{body}");
        no_panic(html.as_bytes(), &builtin_rules());
    }

    #[test]
    fn random_rule_files_never_panic(text in "[ -~\n]{0,300}") {
        let _ = Rule::from_toml(&text);
    }

    #[test]
    fn random_regexes_never_panic_and_stay_bounded(
        pattern in "[a-c()|*+?{}0-9,.^$\\\\\\[\\]dwsbn:-]{0,24}",
        text in "[a-c0-9 \n:]{0,200}",
    ) {
        let rule = format!(
            "name = 'r'\n[match]\nfrom_contains = 'x'\n[fields]\nmessage = {{ regex = '''({pattern})''' }}\n"
        );
        if let Ok(rule) = Rule::from_toml(&rule) {
            no_panic(&email("x@example.com", "s", &text), &[rule]);
        }
    }

    #[test]
    fn fallback_returns_label_values_as_written(
        name in "[A-Za-z][A-Za-z .'-]{0,30}[A-Za-z]",
        phone in "[0-9+() .-]{3,20}[0-9]",
        email_addr in "[a-z0-9._]{1,12}@example\\.com",
    ) {
        let body = format!("Name: {name}\nPhone Number:  {phone} \nEmail:\n{email_addr}\n");
        let p = parse_lead_email(&email("x@example.com", "s", &body), &[]).unwrap();
        prop_assert!(p.flagged_for_review);
        prop_assert_eq!(p.fields.get("name").map(String::as_str), Some(name.trim()));
        prop_assert_eq!(p.fields.get("phone").map(String::as_str), Some(phone.trim()));
        prop_assert_eq!(p.fields.get("email").map(String::as_str), Some(email_addr.as_str()));
    }
}
