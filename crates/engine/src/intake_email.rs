//! Lead-notification emails (issue 4, item 2): a raw RFC 5322 message from a lead source
//! (Zillow Premier Agent, Realtor.com, Homes.com, Facebook lead ads through Zapier, an IDX
//! website form, …) turned into lead fields. Pure: no I/O.
//!
//! The parsing is data, not code: a [`Rule`] per source says how to recognise the source's
//! email (`[match]`) and where each of our fields is in it (`[fields]`: a label, a regular
//! expression, or both). Rules are TOML files; the shipped ones are under
//! `plans/intake-rules/` and the format is documented in `docs/intake-rules.md`.
//! [`parse_lead_email`] tries the rules in order; the first that recognises the email
//! extracts the fields. When none does, a generic fallback reads `Label: value` lines (and
//! two-cell HTML table rows, which become `Label: value` lines) with a built-in list of label
//! synonyms, and the result is flagged for review.
//!
//! Values are returned as found, trimmed: the caller validates phones and emails (an invalid
//! one is kept as a note and the lead flagged) and splits `name` when the email gives no
//! separate first and last names.
//!
//! Rule files are read with the `toml` crate into `serde` structs that refuse unknown keys;
//! errors name the key (`fields.phone.regex: …`) or, for TOML syntax, the line. Rule regexes
//! are the `regex` crate's, which runs in time linear in the text whatever the pattern.
//!
//! Bad input never panics: a message over [`MAX_SIZE`] is refused, empty input and bytes that
//! are not an email are an `Err`, only the first [`MAX_TEXT`] bytes of text are read, and a
//! panic inside the MIME library is caught and reported as an `Err`.

use crate::inbound_email::html_to_text;
use mail_parser::{Address, Message, MessageParser, PartType};
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::de::{DeTable, DeValue};

/// Largest raw message accepted, in bytes (the inbound-email limit).
pub const MAX_SIZE: usize = crate::inbound_email::MAX_SIZE;
/// Bytes of text kept in [`ParsedLeadEmail::text`] and searched by the rules.
pub const MAX_TEXT: usize = 256 * 1024;
/// Text bodies joined into [`ParsedLeadEmail::text`].
const MAX_TEXT_PARTS: usize = 16;
/// Characters kept of one extracted value.
const MAX_VALUE: usize = 10_000;
/// Lines a multi-line value may span.
const MAX_VALUE_LINES: usize = 200;
/// Largest rule file, in bytes.
const MAX_RULE_SIZE: usize = 64 * 1024;
/// Longest rule regex, in characters.
const MAX_PATTERN: usize = 2000;
/// The `regex` crate's limits for one rule regex: compiled program and lazy-DFA cache, bytes.
const REGEX_SIZE_LIMIT: usize = 1024 * 1024;

/// Our lead fields, the keys of `[fields]` and of [`ParsedLeadEmail::fields`].
pub const FIELD_NAMES: &[&str] = &[
    "first_name",
    "last_name",
    "name",
    "email",
    "phone",
    "message",
    "property_address",
    "price",
    "source",
    "external_id",
];

/// A lead-notification email, read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedLeadEmail {
    /// Our field names ([`FIELD_NAMES`]) → values as found, trimmed. Fields the email does
    /// not give are absent (never empty strings).
    pub fields: BTreeMap<String, String>,
    /// The name of the rule that recognised the email; `None` when the fallback read it.
    pub rule: Option<String>,
    /// The agent should check this lead: no rule recognised the email, or the rule that did
    /// found neither an email nor a phone (its format may have changed).
    pub flagged_for_review: bool,
    /// The decoded subject (`""` when there is none).
    pub subject: String,
    /// The email as text (text/plain preferred, else HTML converted), at most [`MAX_TEXT`]
    /// bytes: kept on the lead's timeline.
    pub text: String,
}

/// Parses a lead-notification email with `rules` (tried in order; the first that recognises
/// the email is used), else the generic `Label: value` fallback. Never panics.
pub fn parse_lead_email(raw: &[u8], rules: &[Rule]) -> Result<ParsedLeadEmail, String> {
    if raw.len() > MAX_SIZE {
        return Err(format!(
            "the message is larger than {} MB",
            MAX_SIZE / (1024 * 1024)
        ));
    }
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err("the message is empty".into());
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse_inner(raw, rules)))
        .unwrap_or_else(|_| Err("the message could not be parsed".into()))
}

/// The built-in rules (`plans/intake-rules/*.toml`), in the order they are tried. The tests
/// guarantee that every shipped file parses.
pub fn builtin_rules() -> Vec<Rule> {
    relentless_core::builtin::intake_rule_files()
        .iter()
        .map(|f| {
            Rule::from_toml(f.text)
                .unwrap_or_else(|e| panic!("built-in intake rule {}: {e}", f.name))
        })
        .collect()
}

fn parse_inner(raw: &[u8], rules: &[Rule]) -> Result<ParsedLeadEmail, String> {
    let raw = skip_mbox_line(raw);
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| "not an email message: no headers".to_string())?;
    let subject = clean_text(msg.subject().unwrap_or("")).trim().to_string();
    let mut from = String::new();
    for addr in [msg.from(), msg.sender()]
        .into_iter()
        .flatten()
        .flat_map(Address::iter)
        .take(8)
    {
        from.push_str(addr.name().unwrap_or(""));
        from.push_str(" <");
        from.push_str(addr.address().unwrap_or(""));
        from.push_str(">\n");
    }
    let text = body_text(&msg);
    if from.is_empty() && subject.is_empty() && text.trim().is_empty() && msg.date().is_none() {
        return Err("not an email message: no From, Subject, Date or body".into());
    }
    let doc = Doc::new(&subject, &text);

    let mut out = ParsedLeadEmail {
        subject: subject.clone(),
        ..ParsedLeadEmail::default()
    };
    match rules.iter().find(|r| r.recognises(&from, &subject, &text)) {
        Some(rule) => {
            out.fields = rule.extract(&doc);
            out.rule = Some(rule.name.clone());
            if !out.fields.contains_key("email") && !out.fields.contains_key("phone") {
                // The format may have changed: take what the fallback finds, and ask.
                for (k, v) in fallback(&doc) {
                    out.fields.entry(k).or_insert(v);
                }
                out.flagged_for_review = true;
            }
        }
        None => {
            out.fields = fallback(&doc);
            out.flagged_for_review = true;
        }
    }
    out.text = text;
    Ok(out)
}

/// Drops an mbox `From ` envelope line, which some tools put before the headers.
fn skip_mbox_line(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"From ") {
        match raw.iter().position(|&b| b == b'\n') {
            Some(i) => &raw[i + 1..],
            None => raw,
        }
    } else {
        raw
    }
}

// ---------------------------------------------------------------------------------------------
// Body text
// ---------------------------------------------------------------------------------------------

/// The text bodies (text/plain preferred; HTML converted, table rows as `Label: value`),
/// joined, with `\n` line ends, capped at [`MAX_TEXT`].
fn body_text(msg: &Message) -> String {
    let out = join_bodies(msg, &msg.text_body);
    let out = if out.trim().is_empty() && !msg.html_body.is_empty() {
        join_bodies(msg, &msg.html_body)
    } else {
        out
    };
    let out = clean_text(&out);
    let mut out = out.trim_end().to_string();
    truncate(&mut out, MAX_TEXT);
    out
}

fn join_bodies(msg: &Message, ids: &[u32]) -> String {
    let mut out = String::new();
    for &id in ids.iter().take(MAX_TEXT_PARTS) {
        let Some(part) = msg.parts.get(id as usize) else {
            continue;
        };
        let piece = match &part.body {
            PartType::Text(t) => t.to_string(),
            PartType::Html(h) => lead_html_to_text(h),
            _ => continue,
        };
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&piece);
        if out.len() >= MAX_TEXT * 2 {
            break;
        }
    }
    out
}

/// `\r\n` and `\r` to `\n`, no-break and zero-width spaces to spaces or nothing.
fn clean_text(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace(['\u{a0}', '\u{2007}', '\u{202f}'], " ")
        .replace(['\u{200b}', '\u{200c}', '\u{200d}', '\u{feff}'], "")
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// HTML to text, with every innermost two-cell table row (`<tr><td>Phone</td><td>…</td></tr>`)
/// turned into a `Phone: …` line: a colon is added after the first cell's text when it has
/// none, so the rules and the fallback read tables like `Label: value` lines.
pub fn lead_html_to_text(html: &str) -> String {
    html_to_text(&label_table_rows(html))
}

/// Adds the colon described in [`lead_html_to_text`]. Linear in the input.
fn label_table_rows(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let lb = lower.as_bytes();
    let mut inserts: Vec<usize> = Vec::new();
    let mut next_close = Finder::new(b"</tr");
    let mut next_table = Finder::new(b"<table");
    let mut open = Finder::new(b"<tr");
    let mut pos = 0;
    while let Some(start) = open.tag(lb, pos) {
        let Some(end) = next_close.find(lb, start + 3) else {
            break;
        };
        let inner_tr = open.tag(lb, start + 3);
        let inner_table = next_table.find(lb, start + 3);
        if inner_tr.is_some_and(|p| p < end) || inner_table.is_some_and(|p| p < end) {
            // Not an innermost row: look at the rows inside it.
            pos = start + 3;
            continue;
        }
        if let Some(at) = row_colon(&html[start..end], &lower[start..end]) {
            inserts.push(start + at);
        }
        pos = end + 4;
    }
    if inserts.is_empty() {
        return html.to_string();
    }
    let mut out = String::with_capacity(html.len() + inserts.len());
    let mut last = 0;
    for at in inserts {
        out.push_str(&html[last..at]);
        out.push(':');
        last = at;
    }
    out.push_str(&html[last..]);
    out
}

/// In one innermost `<tr>…` (without `</tr>`), where a colon goes after the first cell's
/// text: the row has exactly two cells, both with text, and the first is a short label
/// without a colon.
fn row_colon(row: &str, lower: &str) -> Option<usize> {
    let lb = lower.as_bytes();
    let mut cells: Vec<usize> = Vec::new();
    let mut td = Finder::new(b"<td");
    let mut th = Finder::new(b"<th");
    let mut p = 0;
    loop {
        let a = td.tag(lb, p);
        let b = th.tag(lb, p);
        let Some(c) = a.into_iter().chain(b).min() else {
            break;
        };
        cells.push(c);
        if cells.len() > 2 {
            return None;
        }
        p = c + 3;
    }
    if cells.len() != 2 {
        return None;
    }
    let content_start = lower[cells[0]..].find('>').map(|i| cells[0] + i + 1)?;
    if content_start > cells[1] {
        return None;
    }
    let first = &row[content_start..cells[1]];
    let first_text = visible_text(first);
    let second_text = visible_text(&row[cells[1]..]);
    if first_text.is_empty()
        || second_text.is_empty()
        || first_text.contains(':')
        || first_text.chars().count() > 40
    {
        return None;
    }
    // After the last visible character of the first cell (not after a closing `</td>` or a
    // `<br>`, which would put the colon on a line of its own).
    let mut in_tag = false;
    let mut after_last = None;
    for (i, c) in first.char_indices() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag && !c.is_whitespace() => after_last = Some(i + c.len_utf8()),
            _ => {}
        }
    }
    after_last.map(|i| content_start + i)
}

/// The text of an HTML fragment, roughly: tags dropped, `&nbsp;` as a space, trimmed.
fn visible_text(fragment: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in fragment.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
        if out.len() > 200 {
            break;
        }
    }
    out.replace("&nbsp;", " ")
        .replace('\u{a0}', " ")
        .trim()
        .to_string()
}

/// Finds the next occurrence of a needle at or after a position, remembering the last answer
/// so that scanning forward stays linear.
struct Finder {
    needle: &'static [u8],
    /// (searched from, found at) of the last search.
    last: Option<(usize, Option<usize>)>,
}

impl Finder {
    fn new(needle: &'static [u8]) -> Finder {
        Finder { needle, last: None }
    }

    fn find(&mut self, hay: &[u8], from: usize) -> Option<usize> {
        if let Some((searched_from, found)) = self.last
            && searched_from <= from
        {
            match found {
                None => return None,
                Some(f) if f >= from => return Some(f),
                Some(_) => {}
            }
        }
        let found = if from >= hay.len() || self.needle.len() > hay.len() - from {
            None
        } else {
            hay[from..]
                .windows(self.needle.len())
                .position(|w| w == self.needle)
                .map(|p| from + p)
        };
        self.last = Some((from, found));
        found
    }

    /// The next occurrence that is a whole tag name (`<tr` but not `<track`).
    fn tag(&mut self, hay: &[u8], mut from: usize) -> Option<usize> {
        loop {
            let at = self.find(hay, from)?;
            let after = hay.get(at + self.needle.len()).copied();
            if after.is_none_or(|b| b == b'>' || b == b'/' || b.is_ascii_whitespace()) {
                return Some(at);
            }
            from = at + 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

/// How a source's notification email is recognised and read. See `docs/intake-rules.md`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name (`zillow`), reported in [`ParsedLeadEmail::rule`].
    pub name: String,
    pub description: String,
    /// The fixed `source` given to the leads this rule reads (unless a `[fields] source`
    /// entry finds one in the email).
    pub source: Option<String>,
    /// `true`: every listed test of `[match]` must hold; `false` (`mode = "any"`): one.
    match_all: bool,
    from_contains: Vec<String>,
    subject_contains: Vec<String>,
    body_contains: Vec<String>,
    fields: Vec<(String, FieldRule)>,
}

/// Where one field is: labels first, then regexes over the body, then over the subject.
#[derive(Debug, Clone, Default)]
struct FieldRule {
    labels: Vec<String>,
    regexes: Vec<Regex>,
    subject_regexes: Vec<Regex>,
    /// A labelled value continues on the following lines, up to a blank line or a label line.
    multiline: bool,
    /// A labelled value continues on the following lines, blank ones included, up to a line
    /// starting with one of these (or a label line).
    until: Vec<String>,
    /// What joins the lines of a multi-line value.
    join: String,
}

/// A rule file as written (`docs/intake-rules.md`); [`Rule::from_toml`] checks it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: Option<String>,
    description: Option<String>,
    source: Option<String>,
    #[serde(rename = "match")]
    match_table: Option<MatchFile>,
    fields: Option<BTreeMap<String, FieldFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([match])")]
struct MatchFile {
    mode: Option<String>,
    from_contains: Option<Texts>,
    subject_contains: Option<Texts>,
    body_contains: Option<Texts>,
}

/// A `[fields]` entry: a label (`phone = "Phone"`) or a table (`phone = { label = … }`).
/// Deserialized by hand rather than `#[serde(untagged)]`, which would replace an error
/// inside the table (`fields.phone.multiline: …`) with "no variant matched".
enum FieldFile {
    Label(String),
    Table(FieldTable),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FieldTable {
    label: Option<Texts>,
    regex: Option<Texts>,
    subject_regex: Option<Texts>,
    #[serde(default)]
    multiline: bool,
    until: Option<Texts>,
    join: Option<String>,
}

/// A string or an array of strings.
#[derive(Deserialize)]
#[serde(untagged, expecting = "must be a string or an array of strings")]
enum Texts {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for FieldFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FieldFile, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FieldFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a label ("Phone") or a table ({ label = "Phone" })"#)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<FieldFile, E> {
                Ok(FieldFile::Label(s.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<FieldFile, A::Error> {
                let table = serde::de::value::MapAccessDeserializer::new(map);
                FieldTable::deserialize(table).map(FieldFile::Table)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The strings of an optional string-or-array.
fn texts(t: Option<Texts>) -> Vec<String> {
    match t {
        None => Vec::new(),
        Some(Texts::One(s)) => vec![s],
        Some(Texts::Many(v)) => v,
    }
}

impl Rule {
    /// Reads a rule file. Errors name the field (`fields.phone.regex: …`) or, for TOML
    /// syntax, the line (`line 7: …`).
    pub fn from_toml(text: &str) -> Result<Rule, String> {
        if text.len() > MAX_RULE_SIZE {
            return Err(format!(
                "the rule is larger than {} KB",
                MAX_RULE_SIZE / 1024
            ));
        }
        let doc = DeTable::parse(text).map_err(|e| toml_error(text, &e))?;
        let file = RuleFile::deserialize(toml::de::Deserializer::from(doc))
            .map_err(|e| toml_error(text, &e))?;

        let name = file
            .name
            .ok_or_else(|| "name: missing (the rule's name, such as \"zillow\")".to_string())?;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(format!(
                "name: '{name}' must be 1 to 64 lowercase letters, digits, '-' or '_'"
            ));
        }
        if let Some(s) = &file.source
            && (s.trim().is_empty() || s.len() > 100)
        {
            return Err("source: must be 1 to 100 characters".into());
        }

        let m = file.match_table.ok_or_else(|| {
            "match: missing: a [match] table says how to recognise the email".to_string()
        })?;
        let match_all = match m.mode.as_deref() {
            None | Some("all") => true,
            Some("any") => false,
            Some(other) => {
                return Err(format!("match.mode: '{other}' must be \"all\" or \"any\""));
            }
        };
        let from_contains = texts(m.from_contains);
        let subject_contains = texts(m.subject_contains);
        let body_contains = texts(m.body_contains);
        for (key, list) in [
            ("from_contains", &from_contains),
            ("subject_contains", &subject_contains),
            ("body_contains", &body_contains),
        ] {
            if list.iter().any(|s| s.trim().is_empty()) {
                return Err(format!("match.{key}: an empty text matches every email"));
            }
        }
        if from_contains.is_empty() && subject_contains.is_empty() && body_contains.is_empty() {
            return Err(
                "match: give at least one of from_contains, subject_contains, body_contains".into(),
            );
        }

        let fields_table = file.fields.ok_or_else(|| {
            "fields: missing: a [fields] table says where each field is".to_string()
        })?;
        let mut fields = Vec::new();
        for (key, value) in fields_table {
            let path = format!("fields.{key}");
            if !FIELD_NAMES.contains(&key.as_str()) {
                return Err(format!(
                    "{path}: unknown field; the fields are {}",
                    FIELD_NAMES.join(", ")
                ));
            }
            fields.push((key, field_rule(value, &path)?));
        }
        if fields.is_empty() {
            return Err("fields: the rule extracts no field".into());
        }
        Ok(Rule {
            name,
            description: file.description.unwrap_or_default(),
            source: file.source.map(|s| s.trim().to_string()),
            match_all,
            from_contains,
            subject_contains,
            body_contains,
            fields,
        })
    }

    /// Whether this rule recognises an email with this sender (`From` and `Sender`, display
    /// names and addresses), subject and body text. Texts are compared ignoring case.
    pub fn recognises(&self, from: &str, subject: &str, body: &str) -> bool {
        let from = from.to_lowercase();
        let subject = subject.to_lowercase();
        let tests = [
            (&self.from_contains, from),
            (&self.subject_contains, subject),
            (&self.body_contains, {
                if self.body_contains.is_empty() {
                    String::new()
                } else {
                    body.to_lowercase()
                }
            }),
        ];
        let mut results = tests
            .iter()
            .filter(|(list, _)| !list.is_empty())
            .map(|(list, hay)| list.iter().any(|n| hay.contains(&n.to_lowercase())));
        if self.match_all {
            results.all(|r| r)
        } else {
            results.any(|r| r)
        }
    }

    /// The fields this rule finds in an email (subject and body text).
    fn extract(&self, doc: &Doc) -> BTreeMap<String, String> {
        let mut stop_labels: Vec<&str> = GENERIC
            .iter()
            .flat_map(|(_, labels, _)| labels.iter().copied())
            .collect();
        for (_, f) in &self.fields {
            stop_labels.extend(f.labels.iter().map(String::as_str));
        }
        let mut out = BTreeMap::new();
        for (key, f) in &self.fields {
            if let Some(v) = f.find(doc, &stop_labels, key) {
                out.insert(key.clone(), v);
            }
        }
        if let Some(s) = &self.source {
            out.entry("source".to_string()).or_insert_with(|| s.clone());
        }
        out
    }
}

/// A TOML error as `path: message` (the key whose key or value it points at, such as
/// `match.from`), else `line N: message`.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.message().to_string();
    };
    let mut best: Option<(usize, String)> = None;
    if let Ok(doc) = DeTable::parse(text) {
        key_at(doc.get_ref(), span.start, "", &mut best);
    }
    match best {
        Some((_, path)) => format!("{path}: {}", e.message()),
        None => {
            let line = text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            format!("line {line}: {}", e.message())
        }
    }
}

/// The dotted path of the narrowest key, or value of a key, that spans byte `at`.
fn key_at(table: &DeTable, at: usize, prefix: &str, best: &mut Option<(usize, String)>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        for span in [k.span(), v.span()] {
            if span.contains(&at) && best.as_ref().is_none_or(|(len, _)| span.len() < *len) {
                *best = Some((span.len(), path.clone()));
            }
        }
        if let DeValue::Table(t) = v.get_ref() {
            key_at(t, at, &path, best);
        }
    }
}

fn field_rule(value: FieldFile, path: &str) -> Result<FieldRule, String> {
    let t = match value {
        FieldFile::Label(label) => FieldTable {
            label: Some(Texts::One(label)),
            ..FieldTable::default()
        },
        FieldFile::Table(t) => t,
    };
    let labels = texts(t.label);
    for l in &labels {
        let l = l.trim();
        if l.is_empty() || l.ends_with(':') || l.chars().count() > 60 {
            return Err(format!(
                "{path}.label: '{l}' must be 1 to 60 characters, without the colon"
            ));
        }
    }
    let compile = |list: Option<Texts>, key: &str| -> Result<Vec<Regex>, String> {
        texts(list)
            .iter()
            .map(|p| regex(p).map_err(|e| format!("{path}.{key}: {e}")))
            .collect()
    };
    let regexes = compile(t.regex, "regex")?;
    let subject_regexes = compile(t.subject_regex, "subject_regex")?;
    let until = texts(t.until);
    if until.iter().any(|u| u.trim().is_empty()) {
        return Err(format!("{path}.until: an empty text would end every value"));
    }
    let join = t.join.unwrap_or_else(|| "\n".into());
    if join.len() > 10 {
        return Err(format!("{path}.join: at most 10 characters"));
    }
    if labels.is_empty() && regexes.is_empty() && subject_regexes.is_empty() {
        return Err(format!(
            "{path}: give a label, a regex or a subject_regex to find the value"
        ));
    }
    if (t.multiline || !until.is_empty()) && labels.is_empty() {
        return Err(format!(
            "{path}: multiline and until apply to a label; give a label"
        ));
    }
    Ok(FieldRule {
        labels: labels.into_iter().map(|l| l.trim().to_string()).collect(),
        regexes,
        subject_regexes,
        multiline: t.multiline,
        until: until.into_iter().map(|u| u.trim().to_lowercase()).collect(),
        join,
    })
}

/// Compiles a rule's regex, which must have exactly one (unnamed) capture group: the value.
/// The `regex` crate runs in time linear in the text; the size limits bound the compiled
/// program and the lazy DFA's cache.
fn regex(pattern: &str) -> Result<Regex, String> {
    if pattern.chars().count() > MAX_PATTERN {
        return Err(format!("the regex is longer than {MAX_PATTERN} characters"));
    }
    let re = RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())?;
    let groups = re.captures_len() - 1;
    if groups != 1 {
        return Err(format!(
            "the regex needs exactly one capture group (…) around the value, it has {groups} \
             (use (?:…) to group without capturing) in {pattern:?}"
        ));
    }
    if re.capture_names().flatten().next().is_some() {
        return Err(format!(
            "named groups aren't supported, use (…) in {pattern:?}"
        ));
    }
    Ok(re)
}

// ---------------------------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------------------------

/// An email to read: its subject and its text, as lines.
struct Doc<'a> {
    subject: &'a str,
    text: &'a str,
    lines: Vec<&'a str>,
}

impl<'a> Doc<'a> {
    fn new(subject: &'a str, text: &'a str) -> Doc<'a> {
        Doc {
            subject,
            text,
            lines: text.lines().collect(),
        }
    }
}

impl FieldRule {
    fn find(&self, doc: &Doc, stop_labels: &[&str], field: &str) -> Option<String> {
        if !self.labels.is_empty()
            && let Some(v) = self.find_label(doc, stop_labels, field)
        {
            return Some(v);
        }
        let body = self.regexes.iter().map(|r| (r, doc.text));
        let subject = self.subject_regexes.iter().map(|r| (r, doc.subject));
        body.chain(subject).find_map(|(r, hay)| {
            let value = r.captures(hay)?.get(1)?.as_str();
            finish(value, &self.join, field)
        })
    }

    fn find_label(&self, doc: &Doc, stop_labels: &[&str], field: &str) -> Option<String> {
        let lines = &doc.lines;
        for (i, line) in lines.iter().enumerate() {
            let line = clean_line(line);
            let Some(rest) = self.labels.iter().find_map(|l| after_label(line, l)) else {
                continue;
            };
            // The value follows the colon, or is on the next non-blank line.
            let (first, next) = if rest.is_empty() {
                let Some(j) =
                    (i + 1..lines.len().min(i + 4)).find(|&j| !lines[j].trim().is_empty())
                else {
                    continue;
                };
                let l = clean_line(lines[j]);
                if is_label_line(l, stop_labels) {
                    continue;
                }
                (l, j + 1)
            } else {
                (rest, i + 1)
            };
            let mut value = String::from(first);
            if self.multiline || !self.until.is_empty() {
                let following = lines.iter().skip(next).take(MAX_VALUE_LINES - 1);
                for l in following.copied().map(clean_line) {
                    if is_label_line(l, stop_labels) {
                        break;
                    }
                    if self.until.is_empty() {
                        if l.is_empty() {
                            break;
                        }
                    } else {
                        let lower = l.to_lowercase();
                        if self.until.iter().any(|u| lower.starts_with(u.as_str())) {
                            break;
                        }
                    }
                    value.push('\n');
                    value.push_str(l);
                    if value.len() > MAX_VALUE * 4 {
                        break;
                    }
                }
            }
            if let Some(v) = finish(&value, &self.join, field) {
                return Some(v);
            }
        }
        None
    }
}

/// A line for label matching: trimmed, without quote marks (`> `), bullets or `*bold*`
/// markers at its start.
fn clean_line(line: &str) -> &str {
    let mut l = line.trim();
    loop {
        let before = l.len();
        l = l.trim_start_matches(['>', '*', '•', '·', '|']).trim_start();
        if let Some(rest) = l.strip_prefix("- ") {
            l = rest.trim_start();
        }
        if l.len() == before {
            break;
        }
    }
    l.trim_end_matches(['*', '|']).trim_end()
}

/// When `line` starts with `label` (ignoring case) followed by a colon, the text after the
/// colon, trimmed; when the line is the label alone (with or without a colon), `""`.
fn after_label<'l>(line: &'l str, label: &str) -> Option<&'l str> {
    let mut chars = line.char_indices();
    for lc in label.chars() {
        let (_, c) = chars.next()?;
        if !chars_eq_ignore_case(c, lc) {
            return None;
        }
    }
    let rest = match chars.next() {
        None => return Some(""),
        Some((i, _)) => &line[i..],
    };
    let rest = rest.trim_start_matches([' ', '\t', '*']);
    if rest.is_empty() {
        return Some("");
    }
    let rest = rest.strip_prefix(':').or_else(|| rest.strip_prefix('：'))?;
    Some(rest.trim_start_matches([' ', '\t', '*']).trim())
}

fn chars_eq_ignore_case(a: char, b: char) -> bool {
    a == b || a.to_lowercase().eq(b.to_lowercase())
}

/// A line that is a label with a colon (`Phone: …`, `Email:`) or a label alone (`Phone`).
fn is_label_line(line: &str, labels: &[&str]) -> bool {
    !line.is_empty() && labels.iter().any(|l| after_label(line, l).is_some())
}

/// A found value, cleaned: lines trimmed, blank runs collapsed (kept as paragraph breaks when
/// `join` is a newline, else dropped), joined with `join`, link annotations
/// (` <mailto:…>`, ` <https://…>`) removed, capped at [`MAX_VALUE`] characters. `None` when
/// nothing is left.
fn finish(value: &str, join: &str, field: &str) -> Option<String> {
    let mut lines: Vec<&str> = Vec::new();
    for l in value.lines().map(str::trim) {
        if l.is_empty() && (lines.is_empty() || lines.last().is_some_and(|p| p.is_empty())) {
            continue;
        }
        lines.push(l);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let joined = if join == "\n" {
        lines.join("\n")
    } else {
        lines
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(join)
    };
    let mut v = strip_link_annotations(&joined);
    if matches!(field, "email" | "phone") {
        for prefix in ["mailto:", "tel:"] {
            if let Some(rest) = v
                .get(..prefix.len())
                .filter(|head| head.eq_ignore_ascii_case(prefix))
                .and_then(|_| v.get(prefix.len()..))
            {
                v = rest.to_string();
            }
        }
    }
    let v = v.trim().trim_matches('*').trim();
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_string();
    if v.chars().count() > MAX_VALUE {
        v = v.chars().take(MAX_VALUE).collect();
    }
    Some(v)
}

/// Drops `<mailto:…>`, `<tel:…>`, `<http://…>` and `<https://…>` (as text/plain versions of
/// HTML emails write links), and a `[mailto:…]` after an address.
fn strip_link_annotations(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['<', '[']) {
        let close = if rest[i..].starts_with('<') { '>' } else { ']' };
        let inner_start = i + 1;
        let lower_head: String = rest[inner_start..]
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let is_link = ["mailto:", "tel:", "http://", "https://"]
            .iter()
            .any(|p| lower_head.starts_with(p));
        match rest[inner_start..].find(close) {
            Some(j) if is_link && !rest[inner_start..inner_start + j].contains('\n') => {
                out.push_str(rest[..i].trim_end_matches([' ', '\t']));
                rest = &rest[inner_start + j + 1..];
            }
            _ => {
                out.push_str(&rest[..inner_start]);
                rest = &rest[inner_start..];
            }
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Generic fallback
// ---------------------------------------------------------------------------------------------

/// The fallback's labels per field, and whether the value may span lines.
const GENERIC: &[(&str, &[&str], bool)] = &[
    (
        "name",
        &[
            "Name",
            "Full Name",
            "Contact Name",
            "Your Name",
            "Lead Name",
            "Client Name",
            "Buyer Name",
        ],
        false,
    ),
    (
        "first_name",
        &["First Name", "First", "FirstName", "Given Name"],
        false,
    ),
    (
        "last_name",
        &["Last Name", "Last", "LastName", "Surname", "Family Name"],
        false,
    ),
    (
        "email",
        &[
            "Email",
            "E-mail",
            "Email Address",
            "E-mail Address",
            "Your Email",
            "Contact Email",
        ],
        false,
    ),
    (
        "phone",
        &[
            "Phone",
            "Phone Number",
            "Mobile",
            "Mobile Phone",
            "Mobile Number",
            "Cell",
            "Cell Phone",
            "Telephone",
            "Tel",
            "Your Phone",
            "Contact Phone",
        ],
        false,
    ),
    (
        "message",
        &[
            "Message",
            "Comments",
            "Comment",
            "Question",
            "Questions",
            "Inquiry",
            "Your Message",
        ],
        true,
    ),
    (
        "property_address",
        &[
            "Property",
            "Property Address",
            "Listing",
            "Listing Address",
            "Address",
            "Street Address",
        ],
        false,
    ),
    (
        "price",
        &["Price", "List Price", "Listing Price", "Asking Price"],
        false,
    ),
    ("source", &["Source", "Lead Source"], false),
    ("external_id", &["Lead ID", "Lead Id", "Inquiry ID"], false),
];

/// The generic fallback: `Label: value` lines (and a label alone on its line with the value
/// on the next) with the label synonyms of [`GENERIC`].
fn fallback(doc: &Doc) -> BTreeMap<String, String> {
    let stop_labels: Vec<&str> = GENERIC
        .iter()
        .flat_map(|(_, labels, _)| labels.iter().copied())
        .collect();
    let mut out = BTreeMap::new();
    for (field, labels, multiline) in GENERIC {
        let rule = FieldRule {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            multiline: *multiline,
            join: "\n".into(),
            ..FieldRule::default()
        };
        if let Some(v) = rule.find_label(doc, &stop_labels, field) {
            out.insert(field.to_string(), v);
        }
    }
    out
}

/// The labels the generic fallback knows, per field: for documentation and the app.
pub fn fallback_labels() -> Vec<(&'static str, &'static [&'static str])> {
    GENERIC.iter().map(|(f, l, _)| (*f, *l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_regexes_have_one_unnamed_group_and_bounded_size() {
        let group = |p: &str, t: &'static str| regex(p).unwrap().captures(t)?.get(1);
        assert_eq!(
            group(r"(?i)phone:\s*(\d+)", "PHONE: 42").map(|m| m.as_str()),
            Some("42")
        );
        for bad in [
            "abc",
            "(a)(b)",
            "(?<n>a)",
            "(?P<n>a)",
            "(a",
            r"\1(a)",
            "(a{1000}){1000}",
        ] {
            assert!(regex(bad).is_err(), "{bad}");
        }
        assert!(regex(&format!("({})", "a".repeat(MAX_PATTERN))).is_err());
    }

    #[test]
    fn toml_errors_name_the_key_or_the_line() {
        let err = |t: &str| Rule::from_toml(t).unwrap_err();
        let head = "name = 'r'\n[match]\nfrom_contains = 'a'\n[fields]\n";
        assert!(
            err(&format!("{head}phone = {{ label = 'P', multiline = 1 }}\n"))
                .starts_with("fields.phone.multiline: invalid type")
        );
        assert!(
            err(&format!("{head}phone = {{ label = [true] }}\n"))
                .starts_with("fields.phone.label: must be a string or an array")
        );
        assert!(err(&format!("{head}phone = 5\n")).contains(r#"a label ("Phone")"#));
        assert!(err("name = 'r'\nmatch = 1\n").starts_with("match: invalid type"));
        assert!(err("name = 'r'\n[match]\nmode = 'any'\nfrom = 'a'\n").starts_with("match.from:"));
        assert!(err("name = 'r'\n\nname = 's'\n").starts_with("line 3:"));
    }

    #[test]
    fn labels() {
        assert_eq!(after_label("Phone: 555", "phone"), Some("555"));
        assert_eq!(after_label("PHONE :  555 ", "Phone"), Some("555"));
        assert_eq!(after_label("Phone", "Phone"), Some(""));
        assert_eq!(after_label("Phone:", "Phone"), Some(""));
        assert_eq!(after_label("Phone Number: 555", "Phone"), None);
        assert_eq!(after_label("Phones: 555", "Phone"), None);
        assert_eq!(after_label("*Email:* a@example.com", "Email"), None);
        assert_eq!(
            after_label(clean_line("*Email:* a@example.com"), "Email"),
            Some("a@example.com")
        );
        assert_eq!(clean_line("> • Name: Jo"), "Name: Jo");
    }

    #[test]
    fn link_annotations_are_dropped() {
        assert_eq!(
            finish("jo@example.com <mailto:jo@example.com>", "\n", "email").as_deref(),
            Some("jo@example.com")
        );
        assert_eq!(
            finish("jo@example.com[mailto:jo@example.com]", "\n", "email").as_deref(),
            Some("jo@example.com")
        );
        assert_eq!(
            finish("tel:+15125550100", "\n", "phone").as_deref(),
            Some("+15125550100")
        );
        assert_eq!(
            finish("a <b> c", "\n", "message").as_deref(),
            Some("a <b> c")
        );
        assert_eq!(
            finish(" \n a \n\n\n b \n", "\n", "message").as_deref(),
            Some("a\n\nb")
        );
        assert_eq!(
            finish("1 Main St\n\nAustin", ", ", "x").as_deref(),
            Some("1 Main St, Austin")
        );
        assert_eq!(finish("  ", "\n", "x"), None);
    }

    #[test]
    fn table_rows_get_colons() {
        let html = "<table><tr><td><b>Phone</b></td><td>(512) 555-0100</td></tr>\
                    <tr><td>Email:</td><td>a@example.com</td></tr>\
                    <tr><td>Spacer</td><td>&nbsp;</td></tr>\
                    <tr><td>a</td><td>b</td><td>c</td></tr></table>";
        let text = lead_html_to_text(html);
        assert!(text.contains("Phone: (512) 555-0100"), "{text}");
        assert!(text.contains("Email: a@example.com"), "{text}");
        assert!(!text.contains("Spacer:"), "{text}");
        assert!(!text.contains("a:"), "{text}");
        // Nested layout tables: only the innermost rows.
        let nested = "<table><tr><td><table><tr><th>Name</th><td>Jo</td></tr></table></td><td>x</td></tr></table>";
        assert!(lead_html_to_text(nested).contains("Name: Jo"));
        // Unclosed and odd markup does not panic.
        for odd in [
            "<tr",
            "<tr><td>a<td>b",
            "<tr><td>é</td><td>ü</td></tr",
            "<tr><td>x</td><td>y</td></tr><track>",
        ] {
            let _ = lead_html_to_text(odd);
        }
    }
}
