//! CSV import, shared by `relentless import FILE.csv` and the web app: maps common CRM export
//! headers, reports every bad row by its physical line number (the header is line 1), imports
//! the good rows one by one (each lead is its own transaction, so a bad row never undoes a
//! good one), and refuses the whole file before importing anything when it cannot be read.

use crate::Engine;
use crate::leads::{LeadInput, Origin, field_errors};
use relentless_store::User;

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

/// What happened to one data row.
#[derive(Debug, Clone)]
pub struct RowOutcome {
    /// The physical line the row starts on.
    pub line: u64,
    /// The row's name (or email/phone) as read, for a preview.
    pub name: String,
    /// `Ok(merged)` or the reason it was rejected.
    pub result: Result<bool, String>,
}

/// The totals of an import.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub imported: u64,
    pub merged: u64,
    pub rejected: u64,
}

/// A file that cannot be imported at all; `line` when a place in the file is to blame.
#[derive(Debug, Clone)]
pub struct Fatal {
    pub line: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn fatal(line: Option<u64>, message: impl Into<String>) -> Fatal {
    Fatal {
        line,
        message: message.into(),
    }
}

/// The number of data rows a file seems to have (for a progress bar).
pub fn approx_rows(bytes: &[u8]) -> u64 {
    decode(bytes).lines().count().saturating_sub(1) as u64
}

impl Engine {
    /// Imports (or with `dry_run` only checks) every row of a CSV file; `each` hears about
    /// every row as it is done. Leads go to `user` when given (an agent importing), else by
    /// the usual assignment rules.
    pub async fn import_csv(
        &self,
        user: Option<&User>,
        bytes: &[u8],
        plan: Option<&str>,
        dry_run: bool,
        mut each: impl FnMut(&RowOutcome),
    ) -> Result<ImportReport, Fatal> {
        let internal = |e: crate::Error| fatal(None, e.to_string());
        let text = decode(bytes);
        if let Some(line) = unterminated_quote(text.as_bytes()) {
            return Err(fatal(
                Some(line),
                "a quoted field starts here and is never closed (a '\"' is missing); nothing was imported",
            ));
        }
        {
            let mut tx = self.store.read().await.map_err(|e| internal(e.into()))?;
            if tx.team().await.map_err(|e| internal(e.into()))?.is_none() {
                return Err(fatal(
                    None,
                    "the team is not set up yet: run `relentless init` first",
                ));
            }
            if let Some(p) = plan
                && tx.plan(p).await.map_err(|e| internal(e.into()))?.is_none()
            {
                return Err(fatal(
                    None,
                    format!("plan: there is no plan '{p}'; nothing was imported"),
                ));
            }
        }
        let lines = Lines::new(text.as_bytes());
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers = rdr
            .headers()
            .map_err(|e| fatal(Some(1), format!("the header cannot be read: {e}")))?
            .clone();
        let map: Vec<Option<&str>> = headers.iter().map(field_for).collect();
        if !map
            .iter()
            .any(|f| matches!(f, Some("email") | Some("phone")))
        {
            return Err(fatal(
                Some(1),
                format!(
                    "no Email or Phone column (found: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let mut report = ImportReport::default();
        let mut record = csv::StringRecord::new();
        loop {
            let line = lines.of(text.as_bytes(), rdr.position().byte() as usize);
            match rdr.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    report.rejected += 1;
                    each(&RowOutcome {
                        line,
                        name: String::new(),
                        result: Err(e.to_string().replace('\n', " ")),
                    });
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
            let s = |k: &str| obj.get(k).and_then(|v| v.as_str()).unwrap_or("");
            let name = [s("name"), s("first_name"), s("last_name")]
                .iter()
                .filter(|x| !x.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            let name = if name.is_empty() {
                [s("email"), s("phone")]
                    .iter()
                    .find(|x| !x.is_empty())
                    .copied()
                    .unwrap_or("")
                    .to_string()
            } else {
                name
            };
            let result = match LeadInput::from_json(&serde_json::Value::Object(obj)) {
                Err(e) => Err(e),
                Ok(input) if dry_run => self.check_lead(&input).await.map(|_| false),
                Ok(input) => self
                    .create_lead(user, input, Origin::Import, plan)
                    .await
                    .map(|c| c.merged),
            };
            let result = match result {
                Ok(was_merged) => {
                    report.imported += 1;
                    report.merged += was_merged as u64;
                    Ok(was_merged)
                }
                Err(e) => {
                    report.rejected += 1;
                    Err(field_errors(&e)
                        .iter()
                        .map(|f| format!("{}: {}", f.field, f.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                        .replace('\r', "\\r")
                        .replace('\n', "\\n"))
                }
            };
            each(&RowOutcome { line, name, result });
        }
        Ok(report)
    }
}
