//! CSV import: any file bytes → decode, quoting check, header mapping, every row read as a
//! lead's fields, then the same validation the importer applies. Must never panic, and every
//! row must carry a line number inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relentless_core::validate;
use relentless_engine::import_csv::{Rows, line_count, prepare};
use relentless_engine::leads::LeadInput;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = prepare(data) else { return };
    let Ok(rows) = Rows::new(&text) else { return };
    let last_line = line_count(&text);
    for (line, row) in rows.take(1000) {
        assert!(
            (2..=last_line + 1).contains(&line),
            "row on line {line} of a {last_line}-line file"
        );
        let Ok(obj) = row else { continue };
        let input = LeadInput::from_json(&obj).expect("a row is a JSON object");
        // What the engine checks for each field (leads::apply_input), without a database.
        for v in [&input.first_name, &input.last_name, &input.name].into_iter().flatten() {
            let _ = validate::name(v);
        }
        if let Some(Some(e)) = &input.email {
            let _ = validate::email(e);
        }
        if let Some(Some(p)) = &input.phone
            && let Ok(e164) = validate::phone(p, "US")
        {
            let _ = validate::timezone_for_phone(&e164);
        }
        if let Some(tz) = &input.timezone {
            let _ = validate::timezone(tz);
        }
    }
});
