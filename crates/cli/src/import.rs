//! `relentless import FILE.csv`: reads rows with `relentless_engine::import_csv`, reports every
//! bad row by its physical line number (the header is line 1), imports the good rows. Exit
//! status 0 when every row was imported, 2 when some were rejected, 1 on a fatal error.

use indicatif::{ProgressBar, ProgressStyle};
use relentless_engine::Engine;
use relentless_engine::import_csv::{Rows, prepare};
use relentless_engine::leads::{LeadInput, Origin, field_errors};
use std::process::ExitCode;

pub async fn run(
    engine: &Engine,
    file: &str,
    plan: Option<&str>,
    dry_run: bool,
) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let text = prepare(&bytes).map_err(|e| format!("{file}: {e}"))?;
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
    let rows = Rows::new(&text).map_err(|e| format!("{file}: {e}"))?;
    let total = text.lines().count().saturating_sub(1) as u64;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows {msg}").expect("static template"),
    );
    let (mut ok, mut bad, mut merged) = (0u64, 0u64, 0u64);
    for (line, row) in rows {
        let result = match row {
            Err(e) => {
                bad += 1;
                bar.suspend(|| eprintln!("line {line}: {e}"));
                bar.inc(1);
                continue;
            }
            Ok(obj) => match LeadInput::from_json(&obj) {
                Err(e) => Err(e),
                Ok(input) if dry_run => engine.check_lead(&input).await.map(|_| false),
                Ok(input) => engine
                    .create_lead(None, input, Origin::Import, plan)
                    .await
                    .map(|c| c.merged),
            },
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
