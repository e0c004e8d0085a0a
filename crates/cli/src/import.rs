//! `relentless import FILE.csv`: maps common CRM export headers, reports every bad row by its
//! physical line number (the header is line 1), imports the good rows. Exit status 0 when
//! every row was imported, 2 when some were rejected, 1 on a fatal error.

use indicatif::{ProgressBar, ProgressStyle};
use relentless_engine::Engine;
use relentless_engine::leads::{LeadInput, Origin, field_errors};
use std::process::ExitCode;

/// Our field for a CSV header, after lowercasing and dropping everything but letters/digits.
fn field_for(header: &str) -> Option<&'static str> {
    let h: String = header
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    Some(match h.as_str() {
        "firstname" | "first" | "givenname" => "first_name",
        "lastname" | "last" | "surname" | "familyname" => "last_name",
        "name" | "fullname" | "contactname" => "name",
        "email" | "emailaddress" | "email1" | "primaryemail" | "emailaddress1" => "email",
        "phone" | "phonenumber" | "mobile" | "mobilephone" | "cell" | "cellphone" | "phone1"
        | "primaryphone" => "phone",
        "source" | "leadsource" => "source",
        "tags" | "tag" | "labels" => "tags",
        "notes" | "note" | "comments" | "message" | "description" => "notes",
        "timezone" | "tz" | "timezonename" => "timezone",
        "level" | "temperature" | "rating" => "level",
        "stage" | "status" => "stage",
        "assignedto" | "agent" | "owner" | "assignedagent" => "assigned_to",
        "externalid" | "id" | "leadid" | "contactid" => "external_id",
        "propertyaddress" | "address" | "property" => "property_address",
        "state" | "region" => "region",
        _ => return None,
    })
}

/// Decodes UTF-8 (a BOM is dropped), else Windows-1252 as Excel writes it.
fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
    }
}

pub async fn run(
    engine: &Engine,
    file: &str,
    plan: Option<&str>,
    dry_run: bool,
) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let text = decode(&bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| format!("{file}: line 1: the header cannot be read: {e}"))?
        .clone();
    let map: Vec<Option<&str>> = headers.iter().map(field_for).collect();
    if !map
        .iter()
        .any(|f| matches!(f, Some("email") | Some("phone")))
    {
        return Err(format!(
            "{file}: line 1: no Email or Phone column (found: {})",
            headers.iter().collect::<Vec<_>>().join(", ")
        )
        .into());
    }
    let total = text.lines().count().saturating_sub(1) as u64;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows {msg}").expect("static template"),
    );
    let (mut ok, mut bad, mut merged) = (0u64, 0u64, 0u64);
    let mut record = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                bad += 1;
                bar.suspend(|| eprintln!("line {line}: {}", e.to_string().replace('\n', " ")));
                bar.inc(1);
                continue;
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(line);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let mut obj = serde_json::Map::new();
        let mut extra = Vec::new();
        for (i, value) in record.iter().enumerate() {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match map.get(i).copied().flatten() {
                Some(f) => {
                    obj.insert(f.to_string(), serde_json::Value::String(value.to_string()));
                }
                None => extra.push(format!("{}: {value}", headers.get(i).unwrap_or("column"))),
            }
        }
        if !extra.is_empty() {
            let notes = obj
                .get("notes")
                .and_then(|n| n.as_str())
                .map(|n| format!("{n}\n"))
                .unwrap_or_default();
            obj.insert(
                "notes".into(),
                serde_json::Value::String(format!("{notes}{}", extra.join("\n"))),
            );
        }
        let result = match LeadInput::from_json(&serde_json::Value::Object(obj)) {
            Err(e) => Err(e),
            Ok(input) if dry_run => engine.check_lead(&input).await.map(|_| false),
            Ok(input) => engine
                .create_lead(None, input, Origin::Import, plan)
                .await
                .map(|c| c.merged),
        };
        match result {
            Ok(was_merged) => {
                ok += 1;
                merged += was_merged as u64;
            }
            Err(e) => {
                bad += 1;
                let why = field_errors(&e)
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                bar.suspend(|| eprintln!("line {line}: {why}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let verb = if dry_run { "would import" } else { "imported" };
    println!("{verb} {ok} rows ({merged} merged into existing leads), rejected {bad}");
    Ok(if bad > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
