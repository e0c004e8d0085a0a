//! Message templates: `check` (as on save) on any body, then `render` in text and HTML mode
//! with hostile merge values (markup, template syntax, control characters, long strings).
//! Input: `template body \0 merge value \0 merge value ...`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relentless_core::template::{self, MergeContext};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let mut parts = s.split('\0');
    let body = parts.next().unwrap_or("");
    let values: Vec<&str> = parts.collect();
    let v = |i: usize| values.get(i).copied().unwrap_or("{{ lead.first_name }}<b>&\"'").to_string();
    let mut ctx = MergeContext::sample();
    ctx.lead.first_name = v(0);
    ctx.lead.last_name = v(1);
    ctx.lead.full_name = format!("{} {}", v(0), v(1));
    ctx.lead.email = v(2);
    ctx.lead.source = v(3);
    ctx.lead.property_address = v(4);
    ctx.agent.name = v(5);
    ctx.team.name = v(6);
    let checked = template::check(body);
    let text = template::render(body, &ctx, false);
    let html = template::render(body, &ctx, true);
    if checked.is_ok() {
        // A merge value is data, never template code: `{{ lead.first_name }}` alone renders
        // the value verbatim, and escaped in HTML.
        if body == "{{ lead.first_name }}" {
            assert_eq!(text.as_deref(), Ok(ctx.lead.first_name.as_str()));
            assert!(!html.as_deref().unwrap_or("").contains('<'));
        }
    }
});
