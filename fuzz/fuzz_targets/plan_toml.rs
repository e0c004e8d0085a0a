//! Plan files (`Plan::from_toml`), as saved through the API or shipped in plans/. A plan that
//! parses must write back to TOML that parses to the same plan.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relentless_core::plan::Plan;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(plan) = Plan::from_toml(s) else { return };
    let _ = plan.warnings();
    let _ = plan.template_slugs().count();
    let text = plan.to_toml();
    let again = Plan::from_toml(&text)
        .unwrap_or_else(|e| panic!("a parsed plan does not read back: {e:?}\n{text}"));
    assert_eq!(again.to_toml(), text, "round trip changed the plan");
});
