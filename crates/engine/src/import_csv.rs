//! CSV import rows (`relentless import FILE.csv`): decoding (UTF-8 with or without a BOM, else
//! Windows-1252 as Excel writes it), quoting checks, common CRM export headers mapped to our
//! fields, and each row read as the lead's fields with its physical line number (the header
//! is line 1). Pure: the CLI creates the leads; the fuzz target `csv_import` drives this.

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
pub fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
    }
}

/// Whether the byte at `i` ends a physical line: a `\n`, or a `\r` not followed by one (old
/// Mac files; the CSV reader ends a record there too, so a row after it is on a new line).
fn ends_line(text: &[u8], i: usize) -> bool {
    match text[i] {
        b'\n' => true,
        b'\r' => text.get(i + 1) != Some(&b'\n'),
        _ => false,
    }
}

/// The number of physical lines of a text, as row line numbers count them.
pub fn line_count(text: &str) -> u64 {
    let b = text.as_bytes();
    (0..b.len()).filter(|&i| ends_line(b, i)).count() as u64 + 1
}

/// The physical line (1-based) of every byte offset: the offsets of the file's `\n` bytes.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &[u8]) -> Lines {
        Lines((0..text.len()).filter(|&i| ends_line(text, i)).collect())
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

/// The rows of a CSV export, read lazily: each is its physical line and either the lead's
/// fields as a JSON object (our field names; unmapped columns appended to `notes`) or why the
/// row cannot be read. Blank rows are skipped. Pure: the fuzz target `csv_import` drives it.
pub struct Rows<'a> {
    text: &'a [u8],
    lines: Lines,
    rdr: csv::Reader<&'a [u8]>,
    headers: csv::StringRecord,
    map: Vec<Option<&'static str>>,
    record: csv::StringRecord,
}

impl<'a> Rows<'a> {
    /// Reads the header. Errors name line 1: an unreadable header, or no Email/Phone column.
    pub fn new(text: &'a str) -> Result<Rows<'a>, String> {
        let text = text.as_bytes();
        let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(text);
        let headers = rdr
            .headers()
            .map_err(|e| format!("line 1: the header cannot be read: {e}"))?
            .clone();
        let map: Vec<Option<&str>> = headers.iter().map(field_for).collect();
        if !map
            .iter()
            .any(|f| matches!(f, Some("email") | Some("phone")))
        {
            return Err(format!(
                "line 1: no Email or Phone column (found: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(Rows {
            text,
            lines: Lines::new(text),
            rdr,
            headers,
            map,
            record: csv::StringRecord::new(),
        })
    }
}

impl Iterator for Rows<'_> {
    type Item = (u64, Result<serde_json::Value, String>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = self
                .lines
                .of(self.text, self.rdr.position().byte() as usize);
            match self.rdr.read_record(&mut self.record) {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => return Some((line, Err(e.to_string().replace('\n', " ")))),
            }
            let line = self
                .record
                .position()
                .map(|p| self.lines.of(self.text, p.byte() as usize))
                .unwrap_or(line);
            if self.record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            if self.record.as_slice().len() > MAX_ROW_BYTES {
                return Some((
                    line,
                    Err(format!(
                        "the row is {} KB; a row is at most {} KB",
                        self.record.as_slice().len() / 1024,
                        MAX_ROW_BYTES / 1024
                    )),
                ));
            }
            let mut obj = serde_json::Map::new();
            let mut extra = Vec::new();
            for (i, value) in self.record.iter().enumerate() {
                let value = value.trim();
                if value.is_empty() {
                    continue;
                }
                match self.map.get(i).copied().flatten() {
                    Some(f) => {
                        obj.insert(f.to_string(), serde_json::Value::String(value.to_string()));
                    }
                    None => extra.push(format!(
                        "{}: {value}",
                        self.headers.get(i).unwrap_or("column")
                    )),
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
            return Some((line, Ok(serde_json::Value::Object(obj))));
        }
    }
}

/// Decodes the file and checks its quoting: the text the importer reads, or why the whole
/// file is refused (naming the line).
pub fn prepare(bytes: &[u8]) -> Result<String, String> {
    let text = decode(bytes);
    if let Some(line) = unterminated_quote(text.as_bytes()) {
        return Err(format!(
            "line {line}: a quoted field starts here and is never closed (a '\"' is missing); nothing was imported"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::{Rows, line_count, prepare};

    /// Found by the `csv_import` fuzz target: a lone `\r` ends a record for the CSV reader,
    /// so the row after it must not be reported on the header's line.
    #[test]
    fn a_lone_carriage_return_starts_a_new_line() {
        let text = prepare(b"Email,Phone\rjo@example.com,\r\nbo@example.com,\n").unwrap();
        let lines: Vec<u64> = Rows::new(&text).unwrap().map(|(l, _)| l).collect();
        assert_eq!(lines, [2, 3]);
        assert_eq!(line_count(&text), 4);
    }

    #[test]
    fn crlf_and_lf_rows_keep_their_physical_lines() {
        let text = prepare(b"Email\r\na@example.com\r\n\r\nb@example.com\n").unwrap();
        let lines: Vec<u64> = Rows::new(&text).unwrap().map(|(l, _)| l).collect();
        assert_eq!(lines, [2, 4]);
    }
}
