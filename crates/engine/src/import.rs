//! CSV import, shared by `relentless import FILE.csv` and the web app: the rows read by
//! [`crate::import_csv`] become leads one by one (each its own transaction, so a bad row never
//! undoes a good one); a file that cannot be read at all is refused before anything is imported.

use crate::Engine;
use crate::import_csv::{Rows, decode, prepare};
use crate::leads::{LeadInput, Origin, field_errors};
use relentless_store::User;

/// What happened to one data row.
#[derive(Debug, Clone)]
pub struct RowOutcome {
    /// The physical line the row starts on (the header is line 1).
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

/// A file that cannot be imported at all. `in_file` when the file's content is to blame
/// (the message then names the line), not the team or the plan asked for.
#[derive(Debug, Clone)]
pub struct Fatal {
    pub in_file: bool,
    pub message: String,
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The number of data rows a file seems to have (for a progress bar).
pub fn approx_rows(bytes: &[u8]) -> u64 {
    decode(bytes).lines().count().saturating_sub(1) as u64
}

/// A row's name for a preview: its name fields, else its email or phone.
fn row_name(obj: &serde_json::Value) -> String {
    let s = |k: &str| obj.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let name = [s("name"), s("first_name"), s("last_name")]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        [s("email"), s("phone")]
            .into_iter()
            .find(|x| !x.is_empty())
            .unwrap_or("")
            .to_string()
    } else {
        name
    }
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
        let in_file = |message: String| Fatal {
            in_file: true,
            message,
        };
        let other = |message: String| Fatal {
            in_file: false,
            message,
        };
        let text = prepare(bytes).map_err(in_file)?;
        {
            let mut tx = self.store.read().await.map_err(|e| other(e.to_string()))?;
            if tx.team().await.map_err(|e| other(e.to_string()))?.is_none() {
                return Err(other(
                    "the team is not set up yet: run `relentless init` first".into(),
                ));
            }
            if let Some(p) = plan
                && tx
                    .plan(p)
                    .await
                    .map_err(|e| other(e.to_string()))?
                    .is_none()
            {
                return Err(other(format!(
                    "plan: there is no plan '{p}'; nothing was imported"
                )));
            }
        }
        let rows = Rows::new(&text).map_err(in_file)?;
        let mut report = ImportReport::default();
        for (line, row) in rows {
            let (name, result) = match row {
                Err(e) => (String::new(), Err(e)),
                Ok(obj) => {
                    let name = row_name(&obj);
                    let result = match LeadInput::from_json(&obj) {
                        Err(e) => Err(e),
                        Ok(input) if dry_run => self.check_lead(&input).await.map(|_| false),
                        Ok(input) => self
                            .create_lead(user, input, Origin::Import, plan)
                            .await
                            .map(|c| c.merged),
                    };
                    let result = result.map_err(|e| {
                        field_errors(&e)
                            .iter()
                            .map(|f| format!("{}: {}", f.field, f.message))
                            .collect::<Vec<_>>()
                            .join("; ")
                            .replace('\r', "\\r")
                            .replace('\n', "\\n")
                    });
                    (name, result)
                }
            };
            match &result {
                Ok(merged) => {
                    report.imported += 1;
                    report.merged += *merged as u64;
                }
                Err(_) => report.rejected += 1,
            }
            each(&RowOutcome { line, name, result });
        }
        Ok(report)
    }
}
