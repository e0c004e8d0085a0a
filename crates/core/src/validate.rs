//! Validation of what people type: slugs, phones, emails, time zones, names, regions.
//!
//! Every function here takes untrusted text and never panics: errors are messages a person
//! can read, naming the bad value. Phone parsing is done by the `phonenumber` crate, which can
//! panic on some malformed input, so its input is pre-filtered and every call into it runs
//! under [`std::panic::catch_unwind`].

use std::str::FromStr;
use std::sync::OnceLock;

use email_address::{EmailAddress, Options};
use phonenumber::country;

/// A slug: lowercase letters, digits and dashes, 1 to 64 characters.
pub fn slug(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "'{s}' is not a slug (lowercase letters, digits and dashes, at most 64)"
        ));
    }
    Ok(())
}

/// Longest phone input accepted, in characters (E.164 is at most 15 digits; this leaves room
/// for spaces, dashes, parentheses and a `00` prefix).
const PHONE_MAX_CHARS: usize = 40;

/// Shortens a value for an error message so that a huge input does not make a huge message.
fn shown(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// The cleaned-up digits of a phone number as typed: `Ok((international, digits))` where
/// `international` says the number was written with `+` or `00` (the `00` is dropped).
fn phone_digits(input: &str) -> Result<(bool, String), String> {
    let t = input.trim();
    if t.is_empty() {
        return Err("phone number is empty".to_string());
    }
    if t.chars().count() > PHONE_MAX_CHARS {
        return Err(format!("phone number '{}' is too long", shown(t)));
    }
    let mut plus = false;
    let mut digits = String::with_capacity(t.len());
    for (i, c) in t.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => plus = true,
            ' ' | '\u{a0}' | '\t' | '-' | '.' | '(' | ')' | '/' => {}
            _ => {
                return Err(format!(
                    "phone number '{}' has a character that is not part of a phone number: '{}'",
                    shown(t),
                    c.escape_default()
                ));
            }
        }
    }
    if digits.is_empty() {
        return Err(format!("phone number '{}' has no digits", shown(t)));
    }
    if !plus && digits.starts_with("00") {
        digits.drain(..2);
        return Ok((true, digits));
    }
    Ok((plus, digits))
}

fn region_id(default_region: &str) -> Result<country::Id, String> {
    let code = region_code(default_region)?;
    country::Id::from_str(&code).map_err(|_| {
        format!(
            "'{}' is not a region known to the phone number metadata",
            shown(default_region)
        )
    })
}

/// Parses with `phonenumber` under `catch_unwind`; returns `(e164, is_valid)`.
fn parse_phone(international: bool, digits: &str, region: country::Id) -> Option<(String, bool)> {
    let text = if international {
        format!("+{digits}")
    } else {
        digits.to_string()
    };
    std::panic::catch_unwind(move || {
        let number = phonenumber::parse(Some(region), &text).ok()?;
        let valid = number.is_valid();
        // Build E.164 ourselves: the crate's Display returns fmt::Error (and `to_string`
        // would panic) for an unknown country code.
        let e164 = format!("+{}{}", number.code().value(), number.national());
        Some((e164, valid))
    })
    .ok()
    .flatten()
}

/// Validates a phone number and returns it in E.164 form (`+15125550134`).
///
/// Accepts national forms for `default_region` (an ISO 3166 country such as `"US"`:
/// `"(512) 555-0134"`, `"512.555.0134"`) and international ones (`"+44 20 7946 0958"`,
/// `"00 44 20 7946 0958"`). Only digits, a leading `+`, spaces, `-`, `.`, `/` and parentheses
/// are allowed. The number must be valid per libphonenumber's metadata, not just parseable.
pub fn phone(input: &str, default_region: &str) -> Result<String, String> {
    let region = region_id(default_region)?;
    let (international, digits) = phone_digits(input)?;
    let t = shown(input.trim());
    if digits.len() < 3 || digits.len() > 17 {
        return Err(format!("phone number '{t}' has the wrong number of digits"));
    }
    match parse_phone(international, &digits, region) {
        // The stored form must validate to itself: a number whose national part has a leading
        // zero the metadata ignores (`+47 0906…`) would otherwise be stored as a different,
        // invalid number (found by the `validate` fuzz target).
        Some((e164, true))
            if parse_phone(true, &e164[1..], region).as_ref() == Some(&(e164.clone(), true)) =>
        {
            Ok(e164)
        }
        Some(_) => Err(format!(
            "phone number '{t}' is not a valid number (region {})",
            region.as_ref()
        )),
        None => Err(format!("'{t}' is not a phone number")),
    }
}

/// Best-effort E.164 form of `input` for searching: `"512 555 0134"` → `"+15125550134"`.
///
/// A valid number gives its E.164 form. A number written internationally (`+` or `00`) with 8
/// to 15 digits that is not valid per the metadata still gives `+` and its digits, so a number
/// stored under older metadata can be found. Anything else gives `None`: never an error, never
/// a panic.
pub fn phone_search_key(input: &str, default_region: &str) -> Option<String> {
    if let Ok(e164) = phone(input, default_region) {
        return Some(e164);
    }
    let (international, digits) = phone_digits(input).ok()?;
    (international && (8..=15).contains(&digits.len()) && !digits.starts_with('0'))
        .then(|| format!("+{digits}"))
}

/// Maximum length of an email address (RFC 5321 path limit less the angle brackets).
const EMAIL_MAX: usize = 254;

/// Validates an email address: returns it trimmed with its domain lowercased
/// (`" Ann@Example.COM "` → `"Ann@example.com"`; the local part is kept as written).
///
/// Rejects display-name forms (`"Ann <ann@example.com>"`), domains without a top-level
/// domain (`a@b`), domain literals (`a@[127.0.0.1]`), whitespace anywhere, all-digit
/// top-level domains and addresses longer than 254 characters.
pub fn email(input: &str) -> Result<String, String> {
    let t = input.trim();
    if t.is_empty() {
        return Err("email address is empty".to_string());
    }
    let s = shown(t);
    if t.chars().count() > EMAIL_MAX {
        return Err(format!(
            "email address '{s}' is longer than {EMAIL_MAX} characters"
        ));
    }
    if t.contains('<') || t.contains('>') {
        return Err(format!(
            "email address '{s}' has a display name or angle brackets; give only the address"
        ));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "email address '{s}' contains a space or control character"
        ));
    }
    let options = Options::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    let parsed = EmailAddress::parse_with_options(t, options)
        .map_err(|e| format!("'{s}' is not a valid email address ({e})"))?;
    let local = parsed.local_part();
    let domain = parsed.domain().to_lowercase();
    let tld = domain.rsplit('.').next().unwrap_or("");
    if !domain.contains('.') || tld.is_empty() || tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "email address '{s}' needs a domain with a top-level domain (like example.com)"
        ));
    }
    Ok(format!("{local}@{domain}"))
}

/// Checks an IANA time zone name (`"America/Chicago"`, `"Europe/London"`, `"UTC"`) and
/// returns the zone. Fixed offsets (`"+05:00"`) and POSIX TZ strings are not IANA names and
/// are rejected, as is the empty string.
pub fn timezone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    let t = name.trim();
    if t.is_empty() {
        return Err("time zone is empty".to_string());
    }
    let s = shown(t);
    if t.len() > 64
        || !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'))
        || !t.as_bytes()[0].is_ascii_alphabetic()
    {
        return Err(format!(
            "'{s}' is not an IANA time zone name (like America/Chicago)"
        ));
    }
    jiff::tz::TimeZone::get(t)
        .map_err(|_| format!("'{s}' is not a known IANA time zone name (like America/Chicago)"))
}

/// libphonenumber's prefix → time zone data (see `crates/core/data/README.md`).
const PHONE_TIMEZONES_TSV: &str = include_str!("../data/phone_timezones.tsv");

/// Sorted `(prefix, zone)` pairs; zone `None` marks a prefix with several zones that shadows
/// a shorter single-zone prefix.
fn phone_timezones() -> &'static [(&'static str, Option<&'static str>)] {
    static TABLE: OnceLock<Vec<(&'static str, Option<&'static str>)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut v: Vec<_> = PHONE_TIMEZONES_TSV
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (prefix, zone) = l.split_once('\t')?;
                Some((prefix, (zone != "-").then_some(zone)))
            })
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    })
}

/// The IANA time zone of an E.164 number (`"+12125550100"` → `"America/New_York"`), where
/// libphonenumber's time-zone metadata maps the number's longest matching prefix to exactly
/// one zone; `None` when that prefix has several zones (much of the US at country level,
/// split area codes), when no prefix matches, or when `e164` is not `+` and 2 to 15 digits.
pub fn timezone_for_phone(e164: &str) -> Option<&'static str> {
    let digits = e164.trim().strip_prefix('+')?;
    if digits.len() < 2 || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let table = phone_timezones();
    // Data prefixes are at most 9 digits; try the longest first.
    for len in (1..=digits.len().min(12)).rev() {
        let prefix = &digits[..len];
        if let Ok(i) = table.binary_search_by(|(p, _)| (*p).cmp(prefix)) {
            return table[i].1;
        }
    }
    None
}

/// Longest name accepted, in characters.
const NAME_MAX: usize = 200;

/// Validates a name field (a person's, team's or plan's name): returns it trimmed.
/// It must not be empty, must be at most 200 characters and must have no control characters
/// (tabs and new lines included). Optional name fields should skip this when blank.
pub fn name(field_value: &str) -> Result<String, String> {
    let t = field_value.trim();
    if t.is_empty() {
        return Err("name is empty".to_string());
    }
    let s = shown(t);
    if t.chars().count() > NAME_MAX {
        return Err(format!("name '{s}' is longer than {NAME_MAX} characters"));
    }
    if t.chars().any(char::is_control) {
        return Err(format!(
            "name '{}' contains a control character",
            s.escape_default()
        ));
    }
    Ok(t.to_string())
}

/// Validates a team country / phone region: two ASCII letters (ISO 3166-1 alpha-2), returned
/// uppercased (`"us"` → `"US"`). It must also be a region the phone number metadata knows, since
/// it is the default region for numbers written without `+`.
pub fn region_code(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.len() != 2 || !t.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!(
            "'{}' is not a country code (two letters, like US)",
            shown(t)
        ));
    }
    let up = t.to_ascii_uppercase();
    if country::Id::from_str(&up).is_err() {
        return Err(format!("'{up}' is not a known country code"));
    }
    Ok(up)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_valid_phone_revalidates_unchanged() {
        // Found by the `validate` fuzz target: accepted, then refused in its stored form.
        for (input, region) in [
            ("+4 7 0906 09049", "BR"),
            ("+47 90609049", "US"),
            ("(512) 555-0134", "US"),
        ] {
            if let Ok(e164) = phone(input, region) {
                assert_eq!(
                    phone(&e164, region),
                    Ok(e164.clone()),
                    "{input} in {region}"
                );
            }
        }
        assert_eq!(phone("+47 90609049", "US"), Ok("+4790609049".to_string()));
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slugs() {
        assert!(slug("new-lead-7").is_ok());
        assert!(slug("").is_err());
        assert!(slug("Has Caps").is_err());
        assert!(slug(&"a".repeat(65)).is_err());
    }

    #[test]
    fn phone_us_forms() {
        for input in [
            "(512) 555-0134",
            "512.555.0134",
            "512-555-0134",
            "5125550134",
            "1 512 555 0134",
            "+1 512 555 0134",
            "+15125550134",
            "  +1 (512) 555-0134 ",
            "001 512 555 0134",
            "011 1 512 555 0134",
        ] {
            assert_eq!(phone(input, "US").as_deref(), Ok("+15125550134"), "{input}");
        }
        assert_eq!(phone("212 555 0100", "US").as_deref(), Ok("+12125550100"));
        // Region given in lowercase is fine.
        assert_eq!(phone("512 555 0134", "us").as_deref(), Ok("+15125550134"));
    }

    #[test]
    fn phone_international_forms() {
        assert_eq!(
            phone("+44 20 7946 0958", "US").as_deref(),
            Ok("+442079460958")
        );
        assert_eq!(
            phone("00 44 20 7946 0958", "US").as_deref(),
            Ok("+442079460958")
        );
        assert_eq!(phone("020 7946 0958", "GB").as_deref(), Ok("+442079460958"));
        assert_eq!(phone("+49 30 901820", "US").as_deref(), Ok("+4930901820"));
        assert_eq!(phone("06 12 34 56 78", "FR").as_deref(), Ok("+33612345678"));
        // Italian numbers keep their leading zero.
        assert_eq!(
            phone("+39 06 6982 1234", "US").as_deref(),
            Ok("+390669821234")
        );
    }

    #[test]
    fn phone_rejects() {
        for (input, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("555-0134", "555-0134"),
            ("123", "123"),
            ("(000) 555-0134", "(000) 555-0134"),
            ("512 555 01345678901234", "512 555 01345678901234"),
            ("call me", "call me"),
            ("512-555-0134 ext 5", "512-555-0134 ext 5"),
            ("+1 512 +555 0134", "+1 512 +555 0134"),
            ("()-.", "no digits"),
            ("+999 1234 5678", "+999 1234 5678"),
        ] {
            let err = phone(input, "US").expect_err(input);
            assert!(err.contains(needle), "{input}: {err}");
        }
        let err = phone("512 555 0134", "XX").unwrap_err();
        assert!(err.contains("XX"), "{err}");
        let err = phone("512 555 0134", "USA").unwrap_err();
        assert!(err.contains("USA"), "{err}");
    }

    #[test]
    fn phone_known_panic_inputs_are_errors() {
        // Inputs that made the phonenumber crate panic in the past (its issues #32 and #43).
        assert!(phone("  2 22#:", "US").is_err());
        assert!(phone("003-836-4618x3001", "CH").is_err());
        let _ = phone("003-836-4618", "CH");
        let _ = phone_search_key("003-836-4618", "CH");
    }

    #[test]
    fn phone_search_keys() {
        assert_eq!(
            phone_search_key("512 555 0134", "US").as_deref(),
            Some("+15125550134")
        );
        assert_eq!(
            phone_search_key("+1 (512) 555-0134", "US").as_deref(),
            Some("+15125550134")
        );
        assert_eq!(
            phone_search_key("+44 20 7946 0958", "US").as_deref(),
            Some("+442079460958")
        );
        // Not valid, but written internationally: searched as typed.
        assert_eq!(
            phone_search_key("+1 999 555 0134", "US").as_deref(),
            Some("+19995550134")
        );
        // Not valid in national form: nothing to search for.
        assert_eq!(phone_search_key("555-0134", "US"), None);
        assert_eq!(phone_search_key("+1 512", "US"), None);
        assert_eq!(phone_search_key("ann", "US"), None);
        assert_eq!(phone_search_key("0134", "US"), None);
        assert_eq!(phone_search_key("", "US"), None);
        assert_eq!(phone_search_key("512 555 0134", "??"), None);
    }

    #[test]
    fn emails() {
        assert_eq!(
            email("  Ann.Lee@Example.COM ").as_deref(),
            Ok("Ann.Lee@example.com")
        );
        assert_eq!(
            email("a+tag@mail.example.co.uk").as_deref(),
            Ok("a+tag@mail.example.co.uk")
        );
        assert_eq!(email("ann@BÜCHER.de").as_deref(), Ok("ann@bücher.de"));
        assert!(
            email("Ann <ann@example.com>")
                .unwrap_err()
                .contains("display name")
        );
        for bad in [
            "",
            "a@b",
            "ann",
            "ann@",
            "@example.com",
            "Ann <ann@example.com>",
            "<ann@example.com>",
            "ann lee@example.com",
            "ann@exa mple.com",
            "ann@[127.0.0.1]",
            "ann@1.2.3.4",
            "ann@@example.com",
            "ann@example..com",
        ] {
            let err = email(bad).expect_err(bad);
            if !bad.trim().is_empty() {
                assert!(err.contains(bad.trim()), "{bad}: {err}");
            }
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(200));
        assert!(email(&long).unwrap_err().contains("254"));
    }

    #[test]
    fn timezones() {
        assert_eq!(
            timezone("America/Chicago").unwrap().iana_name(),
            Some("America/Chicago")
        );
        assert!(timezone("Europe/London").is_ok());
        assert!(timezone("UTC").is_ok());
        for bad in [
            "",
            "  ",
            "+05:00",
            "-0500",
            "EST5EDT,M3.2.0,M11.1.0",
            "Mars/Olympus",
            "America/Chicago ",
        ] {
            if bad == "America/Chicago " {
                // Surrounding spaces are trimmed.
                assert!(timezone(bad).is_ok());
                continue;
            }
            let err = timezone(bad).expect_err(bad);
            if !bad.trim().is_empty() {
                assert!(err.contains(bad.trim()), "{bad}: {err}");
            }
        }
    }

    #[test]
    fn timezones_for_phones() {
        assert_eq!(timezone_for_phone("+12125550100"), Some("America/New_York"));
        assert_eq!(timezone_for_phone("+15125550134"), Some("America/Chicago"));
        assert_eq!(
            timezone_for_phone("+14155550100"),
            Some("America/Los_Angeles")
        );
        assert_eq!(timezone_for_phone("+442079460958"), Some("Europe/London"));
        assert_eq!(timezone_for_phone("+33612345678"), Some("Europe/Paris"));
        // Toll-free: the prefix maps to every NANP zone.
        assert_eq!(timezone_for_phone("+18005550100"), None);
        // A split area code: 208 (Idaho) has a prefix under it with two zones.
        // A split area code: 1208-30 has two zones, shadowing 1208-3's one.
        assert_eq!(timezone_for_phone("+12083001234"), None);
        assert_eq!(timezone_for_phone("+12083312345"), Some("America/Denver"));
        assert_eq!(timezone_for_phone(""), None);
        assert_eq!(timezone_for_phone("12125550100"), None);
        assert_eq!(timezone_for_phone("+1212abc"), None);
        assert_eq!(timezone_for_phone("+"), None);
    }

    #[test]
    fn phone_timezone_table_is_sound() {
        let t = phone_timezones();
        assert!(t.len() > 2000);
        assert!(
            t.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no duplicates"
        );
        for (prefix, zone) in t {
            assert!(!prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()));
            if let Some(z) = zone {
                assert!(z.contains('/') || *z == "UTC", "{prefix} {z}");
            }
        }
        // Every shadowing multi-zone marker wins over its shorter single-zone prefix.
        for (prefix, zone) in t.iter().filter(|(_, z)| z.is_none()) {
            assert_eq!(timezone_for_phone(&format!("+{prefix}")), None, "{prefix}");
            let _ = zone;
        }
    }

    #[test]
    fn every_phone_zone_is_known_to_jiff() {
        let mut seen = std::collections::BTreeSet::new();
        for (_, zone) in phone_timezones() {
            if let Some(z) = zone {
                seen.insert(*z);
            }
        }
        let unknown: Vec<_> = seen.into_iter().filter(|z| timezone(z).is_err()).collect();
        assert!(unknown.is_empty(), "unknown zones: {unknown:?}");
    }

    #[test]
    fn names() {
        assert_eq!(name("  Ann Lee ").as_deref(), Ok("Ann Lee"));
        assert_eq!(
            name("José Núñez-O'Brien").as_deref(),
            Ok("José Núñez-O'Brien")
        );
        assert!(name("").is_err());
        assert!(name(" \t ").is_err());
        assert!(name("Ann\nLee").unwrap_err().contains("control"));
        assert!(name("Ann\u{7}").is_err());
        assert!(name(&"é".repeat(200)).is_ok());
        assert!(name(&"é".repeat(201)).unwrap_err().contains("200"));
    }

    #[test]
    fn region_codes() {
        assert_eq!(region_code("us").as_deref(), Ok("US"));
        assert_eq!(region_code(" GB ").as_deref(), Ok("GB"));
        for bad in ["", "U", "USA", "1A", "ÜS", "XX"] {
            let err = region_code(bad).expect_err(bad);
            if !bad.is_empty() {
                assert!(
                    err.contains(bad) || err.contains(&bad.to_uppercase()),
                    "{bad}: {err}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn phone_never_panics_on_any_string(s in any::<String>(), r in "[A-Za-z]{0,3}") {
            let _ = phone(&s, &r);
            let _ = phone(&s, "US");
            let _ = phone_search_key(&s, "US");
        }

        #[test]
        fn phone_never_panics_on_phone_like_strings(s in "[+0-9 ().\\-/]{0,40}", r in "(US|GB|DE|FR|IT|IN|BR|AU|JP|001|ZZ)") {
            let r1 = phone(&s, &r);
            let _ = phone_search_key(&s, &r);
            if let Ok(e) = r1 {
                prop_assert!(e.starts_with('+'));
                prop_assert!(e[1..].bytes().all(|b| b.is_ascii_digit()));
                let _ = timezone_for_phone(&e);
                // Idempotent on its own output.
                prop_assert_eq!(phone(&e, &r), Ok(e.clone()));
            }
        }

        #[test]
        fn email_never_panics(s in any::<String>()) {
            if let Ok(e) = email(&s) {
                prop_assert_eq!(email(&e), Ok(e.clone()));
            }
        }

        #[test]
        fn email_never_panics_on_email_like(s in "[a-zA-Z0-9.@+<> \\[\\]\"-]{0,40}") {
            let _ = email(&s);
        }

        #[test]
        fn others_never_panic(s in any::<String>()) {
            let _ = timezone(&s);
            let _ = timezone_for_phone(&s);
            let _ = name(&s);
            let _ = region_code(&s);
        }
    }
}
