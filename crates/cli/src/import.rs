//! `relentless import FILE.csv`: the engine's CSV import with a progress bar and every
//! rejected row on standard error by its physical line number. Exit status 0 when every row
//! was imported, 2 when some were rejected, 1 on a fatal error.

use indicatif::{ProgressBar, ProgressStyle};
use relentless_engine::Engine;
use relentless_engine::import::approx_rows;
use std::process::ExitCode;

/// The largest CSV file `import` reads (it is read whole into memory): 256 MiB, about a
/// million leads with notes. Split a bigger export into several files.
pub const MAX_CSV_BYTES: u64 = 256 * 1024 * 1024;

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
    let bar = ProgressBar::new(approx_rows(&bytes)).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows {msg}").expect("static template"),
    );
    let report = engine
        .import_csv(None, &bytes, plan, dry_run, |row| {
            if let Err(why) = &row.result {
                bar.suspend(|| eprintln!("line {}: {why}", row.line));
            }
            bar.inc(1);
        })
        .await
        // A problem in the file's content names the file; the others stand alone.
        .map_err(|f| {
            if f.in_file {
                format!("{file}: {f}")
            } else {
                f.to_string()
            }
        })?;
    bar.finish_and_clear();
    let verb = if dry_run { "would import" } else { "imported" };
    println!(
        "{verb} {} rows ({} merged into existing leads), rejected {}",
        report.imported, report.merged, report.rejected
    );
    Ok(if report.rejected > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
