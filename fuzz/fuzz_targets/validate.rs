//! Phone, email, time-zone, name, region and slug validation on arbitrary text. Besides never
//! panicking: whatever a validator accepts and normalises, it accepts again unchanged (a
//! stored value re-validates), and a zone inferred from a phone number is a valid zone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relentless_core::validate;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    // The first two characters, when present, also serve as a caller-chosen region.
    let own: String = s.chars().take(2).collect();
    for region in ["US", "GB", "DE", "IN", "BR", own.as_str()] {
        if let Ok(e164) = validate::phone(s, region) {
            assert!(e164.starts_with('+') && e164[1..].bytes().all(|b| b.is_ascii_digit()), "{e164}");
            assert_eq!(validate::phone(&e164, region).as_deref(), Ok(e164.as_str()), "{s:?} in {region}");
            if let Some(zone) = validate::timezone_for_phone(&e164) {
                assert!(validate::timezone(zone).is_ok(), "{zone}");
            }
        }
        let _ = validate::phone_search_key(s, region);
    }
    let _ = validate::timezone_for_phone(s);
    if let Ok(e) = validate::email(s) {
        assert_eq!(validate::email(&e).as_deref(), Ok(e.as_str()), "{s:?}");
    }
    let _ = validate::timezone(s);
    if let Ok(n) = validate::name(s) {
        assert_eq!(validate::name(&n).as_deref(), Ok(n.as_str()));
    }
    if let Ok(r) = validate::region_code(s) {
        assert!(validate::phone("+15125550134", &r).is_ok(), "{r}");
    }
    let _ = validate::slug(s);
});
