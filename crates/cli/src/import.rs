//! `relentless import FILE.csv`: maps common CRM export headers, reports every bad row by its
//! physical line number (the header is line 1), imports the good rows. Exit status 0 when
//! every row was imported, 2 when some were rejected, 1 on a fatal error.

use indicatif::{ProgressBar, ProgressStyle};
use relentless_engine::Engine;
use relentless_engine::leads::{LeadInput, Origin, field_errors};
use std::process::ExitCode;

/// The largest CSV file `import` reads (it is read whole into memory): 256 MiB, about a
/// million leads with notes. Split a bigger export into several files.
pub const MAX_CSV_BYTES: u64 = 256 * 1024 * 1024;
/// The longest row: a longer one is reported as a bad row and skipped.
pub const MAX_ROW_BYTES: usize = 64 * 1024;

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

/// The physical line (1-based) of every byte offset: the offsets of the file's `\n` bytes.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &[u8]) -> Lines {
        Lines(
            text.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// The line a record starting at `byte` is on. The CSV reader ends a record at the `\r` of
    /// a `\r\n` and starts the next one at the `\n`, so line ends before the first real byte
    /// are skipped: counting the reader's own line numbers is off by one per CRLF file.
    fn of(&self, text: &[u8], byte: usize) -> u64 {
        let mut b = byte;
        while matches!(text.get(b), Some(b'\r' | b'\n')) {
            b += 1;
        }
        self.0.partition_point(|&nl| nl < b) as u64 + 1
    }
}

/// The line of a quoted field that is never closed, if any. The CSV reader would silently take
/// the rest of the file as that one field (and import it into a lead's notes), so the whole
/// file is refused instead. Follows the reader's rules: a quote opens a quoted field only at
/// the start of a field; inside one, `""` is a literal quote and a lone `"` closes it.
fn unterminated_quote(text: &[u8]) -> Option<u64> {
    let (mut line, mut opened_on) = (1u64, 0u64);
    let (mut field_start, mut quoted) = (true, false);
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if quoted {
            if c == b'"' {
                if text.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    quoted = false;
                    field_start = false;
                }
            } else if c == b'\n' {
                line += 1;
            }
        } else {
            match c {
                b'"' if field_start => {
                    quoted = true;
                    opened_on = line;
                }
                b',' | b'\r' => field_start = true,
                b'\n' => {
                    line += 1;
                    field_start = true;
                }
                _ => field_start = false,
            }
        }
        i += 1;
    }
    quoted.then_some(opened_on)
}

pub async fn run(
    engine: &Engine,
    file: &str,
    plan: Option<&str>,
    dry_run: bool,
) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    let size = std::fs::metadata(file)
        .map_err(|e| format!("cannot read {file}: {e}"))?
        .len();
    if size > MAX_CSV_BYTES {
        return Err(format!(
            "{file} is {} MiB; an import reads at most {} MiB: split the file; nothing was imported",
            size / 1024 / 1024,
            MAX_CSV_BYTES / 1024 / 1024
        )
        .into());
    }
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let text = decode(&bytes);
    if let Some(line) = unterminated_quote(text.as_bytes()) {
        return Err(format!(
            "{file}: line {line}: a quoted field starts here and is never closed (a '\"' is missing); nothing was imported"
        )
        .into());
    }
    {
        let mut tx = engine.store.read().await?;
        if tx.team().await?.is_none() {
            return Err("the team is not set up yet: run `relentless init` first".into());
        }
        if let Some(p) = plan
            && tx.plan(p).await?.is_none()
        {
            return Err(format!("plan: there is no plan '{p}'; nothing was imported").into());
        }
    }
    let lines = Lines::new(text.as_bytes());
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
        let line = lines.of(text.as_bytes(), rdr.position().byte() as usize);
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
        let line = record
            .position()
            .map(|p| lines.of(text.as_bytes(), p.byte() as usize))
            .unwrap_or(line);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if record.as_slice().len() > MAX_ROW_BYTES {
            bad += 1;
            bar.suspend(|| {
                eprintln!(
                    "line {line}: the row is {} KB; a row is at most {} KB",
                    record.as_slice().len() / 1024,
                    MAX_ROW_BYTES / 1024
                )
            });
            bar.inc(1);
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
                    .join("; ")
                    .replace('\r', "\\r")
                    .replace('\n', "\\n");
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
