//! A statement profiler that needs no change to the store: sqlx reports every statement it
//! runs as a `tracing` event (target `sqlx::query`, level DEBUG, with the SQL and
//! `elapsed_secs`, measured on the SQLite worker thread). This layer counts and times them per
//! statement shape (numbers and inlined id lists folded to `N`), which shows how many SQL
//! statements a dispatched touch costs and which ones take the time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Default, Clone)]
pub struct Stat {
    pub calls: u64,
    pub secs: f64,
    pub rows: u64,
}

#[derive(Default)]
pub struct SqlProfile {
    by_sql: Mutex<HashMap<String, Stat>>,
}

impl SqlProfile {
    /// Installs the profiler as the global subscriber (only sqlx's statements are enabled).
    pub fn install() -> Arc<SqlProfile> {
        let p = Arc::new(SqlProfile::default());
        let layer = ProfLayer(p.clone());
        tracing_subscriber::registry().with(layer).init();
        p
    }

    pub fn reset(&self) {
        self.by_sql.lock().unwrap().clear();
    }

    /// (statement shape, stats), most time first.
    pub fn snapshot(&self) -> Vec<(String, Stat)> {
        let mut v: Vec<(String, Stat)> = self
            .by_sql
            .lock()
            .unwrap()
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        v.sort_by(|a, b| b.1.secs.partial_cmp(&a.1.secs).unwrap());
        v
    }
}

struct ProfLayer(Arc<SqlProfile>);

#[derive(Default)]
struct Fields {
    summary: String,
    statement: String,
    secs: f64,
    rows: u64,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_string(),
            "db.statement" => self.statement = value.to_string(),
            _ => {}
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.secs = value;
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        // An UPDATE … RETURNING reports each row as affected and returned: count it once.
        if field.name() == "rows_affected" || field.name() == "rows_returned" {
            self.rows = self.rows.max(value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "summary" if self.summary.is_empty() => self.summary = format!("{value:?}"),
            "db.statement" if self.statement.is_empty() => self.statement = format!("{value:?}"),
            _ => {}
        }
    }
}

/// Collapses whitespace, folds numbers and `1,2,3` lists to `N`, and keeps the first 110
/// characters: one key per statement shape.
pub fn shape(sql: &str) -> String {
    let mut out = String::with_capacity(128);
    let mut chars = sql.chars().peekable();
    let mut space = false;
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        if c.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() || d == ',' {
                    chars.next();
                } else {
                    break;
                }
            }
            continue;
        }
        out.push(c);
        if out.len() > 110 {
            out.push('…');
            break;
        }
    }
    out
}

impl<S: tracing::Subscriber> Layer<S> for ProfLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.target() == "sqlx::query"
    }
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let sql = if f.statement.trim().is_empty() {
            f.summary.trim_end_matches(" …").to_string()
        } else {
            f.statement
        };
        let key = shape(&sql);
        let mut m = self.0.by_sql.lock().unwrap();
        let s = m.entry(key).or_default();
        s.calls += 1;
        s.secs += f.secs;
        s.rows += f.rows;
    }
}
