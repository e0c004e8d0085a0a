//! relentless-bench: the SPEC §7 benchmark harness (not a test).
//!
//! `cargo run --release -p relentless-bench -- [--leads N] [--runs R]`
//!
//! Each run builds a fresh SQLite file and runs three phases, each in its own child process
//! (this binary with `--phase`), so that every phase's peak RSS (VmHWM) is its own:
//! 1. load: N leads in `relentless-21` (13N touches), part of them due;
//! 2. dispatch: `Dispatcher::tick()` until nothing is due: fired touches per second;
//! 3. api: the real router + dispatcher (the HTTP client in a further child process, `--phase
//!    client`): POST lead → first touch sent, leads list, searches;
//! 4. paths: the product paths of issues 3 and 4, router + dispatcher with the real Twilio
//!    channel pointed at a Twilio-speaking server in the client process (`--phase
//!    paths-client`): intake POST → first text at the provider, open pixel → SSE event, pixel
//!    requests per second.
//!
//! The medians over the runs go to stdout as a markdown report and to `bench/out/latest.md`
//! (the raw figures of every run to `bench/out/latest.json`). See bench/README.md.

mod api;
mod data;
mod dispatch;
mod load;
mod micro;
mod paths;
mod sqlprof;
mod sys;

/// The product binary's allocator (`crates/cli/src/main.rs`), so that the figures are its.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use load::BoxErr;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

struct Args {
    leads: u64,
    runs: usize,
    due: u64,
    samples: usize,
    batch: u64,
    dispatch_batch: i64,
    dispatch_cap: u64,
    no_profile: bool,
    keep_indexes: bool,
    poll_ms: u64,
    dir: Option<PathBuf>,
    keep: bool,
    out: Option<PathBuf>,
    phase: Option<String>,
    db: Option<PathBuf>,
    only: Option<String>,
    pixel_secs: u64,
    pixel_conns: usize,
    loadgen: String,
    steady_rate: u64,
    steady_secs: u64,
}

const USAGE: &str = "relentless-bench [--leads N] [--runs R] [--due D] [--samples S] [--batch B]
                 [--dispatch-batch B] [--dispatch-cap SECS] [--poll-ms MS] [--only api|paths]
                 [--pixel-secs S] [--pixel-conns C] [--loadgen auto|wrk|tokio]
                 [--steady-rate R] [--steady-secs S]
                 [--dir PATH] [--keep] [--out FILE]

  --leads N           leads to load, each in relentless-21 (13 touches)    [1000000]
  --runs R            fresh database + all phases, R times; medians reported  [3]
  --due D             touches due (unsent) after loading: the dispatch backlog [200000]
  --samples S         requests per API latency figure                         [200]
  --batch B           leads per write transaction while loading               [10000]
  --dispatch-batch B  touches claimed per dispatcher batch (engine Config)    [500]
  --dispatch-cap SECS stop the dispatch phase after this long                 [600]
  --no-profile        do not count and time SQL statements while dispatching
  --keep-indexes      load with the indexes and the FTS trigger in place (default: drop them
                      while loading and rebuild them afterwards, from sqlite_master's SQL)
  --poll-ms MS        poll interval while waiting for a lead's first touch    [2]
  --only api|paths    after load and dispatch, run only the API phase or only the
                      product-path phase (issues 3 and 4)                     [both]
  --pixel-secs S      pixel load test duration                               [15]
  --pixel-conns C     pixel load test connections                            [16]
  --loadgen L         pixel load generator: auto (wrk if installed, else a tokio
                      client loop), wrk or tokio                              [auto]
  --steady-rate R     product paths: leads a second posted to POST /api/v1/leads on
                      a fixed schedule, timed to their first text (issue 8)      [200]
  --steady-secs S     for this long                                              [30]
  --dir PATH          where the databases go (default: the system temp dir)
  --keep              keep the database files
  --out FILE          the markdown report (default: bench/out/latest.md)";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        leads: 1_000_000,
        runs: 3,
        due: 200_000,
        samples: 200,
        batch: 10_000,
        dispatch_batch: Config::default().batch,
        dispatch_cap: 600,
        no_profile: false,
        keep_indexes: false,
        poll_ms: 2,
        dir: None,
        keep: false,
        out: None,
        phase: None,
        db: None,
        only: None,
        pixel_secs: 15,
        pixel_conns: 16,
        loadgen: "auto".into(),
        steady_rate: 200,
        steady_secs: 30,
    };
    let mut it = std::env::args().skip(1);
    fn num<T: FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.replace('_', "")
            .parse()
            .map_err(|_| format!("{flag}: '{v}' is not a number"))
    }
    while let Some(f) = it.next() {
        match f.as_str() {
            "--leads" => a.leads = num(&f, it.next())?,
            "--runs" => a.runs = num(&f, it.next())?,
            "--due" => a.due = num(&f, it.next())?,
            "--samples" => a.samples = num(&f, it.next())?,
            "--batch" => a.batch = num(&f, it.next())?,
            "--dispatch-batch" => a.dispatch_batch = num(&f, it.next())?,
            "--dispatch-cap" => a.dispatch_cap = num(&f, it.next())?,
            "--poll-ms" => a.poll_ms = num(&f, it.next())?,
            "--dir" => a.dir = it.next().map(PathBuf::from),
            "--keep" => a.keep = true,
            "--no-profile" => a.no_profile = true,
            "--keep-indexes" => a.keep_indexes = true,
            "--out" => a.out = it.next().map(PathBuf::from),
            "--phase" => a.phase = it.next(),
            "--db" => a.db = it.next().map(PathBuf::from),
            "--only" => a.only = it.next(),
            "--pixel-secs" => a.pixel_secs = num(&f, it.next())?,
            "--pixel-conns" => a.pixel_conns = num(&f, it.next())?,
            "--loadgen" => a.loadgen = it.next().ok_or("--loadgen needs a value")?,
            "--steady-rate" => a.steady_rate = num(&f, it.next())?,
            "--steady-secs" => a.steady_secs = num(&f, it.next())?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other}\n\n{USAGE}")),
        }
    }
    if a.leads == 0 || a.runs == 0 || a.samples == 0 || a.batch == 0 || a.dispatch_batch <= 0 {
        return Err("--leads, --runs, --samples and the batch sizes must be at least 1".into());
    }
    if !matches!(a.only.as_deref(), None | Some("api" | "paths")) {
        return Err(format!("--only: 'api' or 'paths'\n\n{USAGE}"));
    }
    if !matches!(a.loadgen.as_str(), "auto" | "wrk" | "tokio") {
        return Err(format!("--loadgen: 'auto', 'wrk' or 'tokio'\n\n{USAGE}"));
    }
    if a.pixel_secs == 0 || a.pixel_conns == 0 || a.steady_rate == 0 || a.steady_secs == 0 {
        return Err(
            "--pixel-secs, --pixel-conns, --steady-rate and --steady-secs must be at least 1"
                .into(),
        );
    }
    Ok(a)
}

use relentless_engine::Config;

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(m) => {
            eprintln!("{m}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let r = rt.block_on(async {
        match args.phase.as_deref() {
            Some(p) => phase(p, &args).await,
            None => orchestrate(&args).await,
        }
    });
    if let Err(e) = r {
        eprintln!("relentless-bench: {e}");
        std::process::exit(1);
    }
}

/// A child process: one phase, its result as one JSON line on stdout.
async fn phase(p: &str, a: &Args) -> Result<(), BoxErr> {
    let db = a.db.as_deref().ok_or("--phase needs --db")?;
    let v = match p {
        "load" => {
            load::run(
                db,
                &load::LoadArgs {
                    leads: a.leads,
                    due: a.due,
                    batch: a.batch,
                    drop_indexes: !a.keep_indexes,
                },
            )
            .await?
        }
        "dispatch" => {
            dispatch::run(
                db,
                &dispatch::DispatchArgs {
                    cap: Duration::from_secs(a.dispatch_cap),
                    batch: a.dispatch_batch,
                    profile: !a.no_profile,
                },
            )
            .await?
        }
        "api" => {
            api::run(
                db,
                &api::ApiArgs {
                    samples: a.samples,
                    leads: a.leads,
                    poll: Duration::from_millis(a.poll_ms),
                },
            )
            .await?
        }
        "client" => {
            api::client(&api::ApiArgs {
                samples: a.samples,
                leads: a.leads,
                poll: Duration::from_millis(a.poll_ms),
            })
            .await?
        }
        "paths" => paths::run(db, &paths_args(a)).await?,
        "paths-client" => paths::client(db, &paths_args(a)).await?,
        other => return Err(format!("unknown phase {other}").into()),
    };
    println!("{v}");
    Ok(())
}

fn paths_args(a: &Args) -> paths::PathsArgs {
    paths::PathsArgs {
        samples: a.samples,
        steady_rate: a.steady_rate,
        steady_secs: a.steady_secs,
        pixel_secs: a.pixel_secs,
        pixel_conns: a.pixel_conns,
        loadgen: a.loadgen.clone(),
    }
}

fn child(p: &str, db: &Path, a: &Args) -> Result<Value, BoxErr> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["--phase", p, "--db"])
        .arg(db)
        .args(["--leads", &a.leads.to_string()])
        .args(["--due", &a.due.to_string()])
        .args(["--samples", &a.samples.to_string()])
        .args(["--batch", &a.batch.to_string()])
        .args(["--dispatch-batch", &a.dispatch_batch.to_string()])
        .args(["--dispatch-cap", &a.dispatch_cap.to_string()])
        .args(["--poll-ms", &a.poll_ms.to_string()])
        .args(["--pixel-secs", &a.pixel_secs.to_string()])
        .args(["--pixel-conns", &a.pixel_conns.to_string()])
        .args(["--loadgen", &a.loadgen])
        .args(["--steady-rate", &a.steady_rate.to_string()])
        .args(["--steady-secs", &a.steady_secs.to_string()])
        .args(if a.no_profile {
            &["--no-profile"][..]
        } else {
            &[][..]
        })
        .args(if a.keep_indexes {
            &["--keep-indexes"][..]
        } else {
            &[][..]
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let load_before = sys::loadavg();
    let out = cmd.spawn()?.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("phase {p} failed ({})", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().ok_or("phase printed nothing")?;
    let mut v: Value = serde_json::from_str(line)?;
    v["loadavg_before"] = json!(load_before);
    v["loadavg_after"] = json!(sys::loadavg());
    Ok(v)
}

async fn sqlite_version() -> String {
    use sqlx::ConnectOptions;
    let Ok(opts) = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:") else {
        return "unknown".into();
    };
    match opts.connect().await {
        Ok(mut c) => sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
            .fetch_one(&mut c)
            .await
            .unwrap_or_else(|_| "unknown".into()),
        Err(_) => "unknown".into(),
    }
}

async fn orchestrate(a: &Args) -> Result<(), BoxErr> {
    let machine = sys::machine(&sqlite_version().await);
    eprintln!(
        "relentless-bench: {} leads, {} run(s), machine {machine}",
        a.leads, a.runs
    );
    let base = a
        .dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("relentless-bench-{}", std::process::id()));
    let mut runs = Vec::new();
    for r in 1..=a.runs {
        let dir = base.join(format!("run-{r}"));
        std::fs::create_dir_all(&dir)?;
        let db = dir.join("bench.db");
        eprintln!("run {r}/{}: load", a.runs);
        let load = child("load", &db, a)?;
        eprintln!(
            "run {r}: loaded in {:.1} s; dispatch ({} touches due)",
            f(&load, "load_secs"),
            load["due_touches"]
        );
        let disp = child("dispatch", &db, a)?;
        eprintln!("run {r}: {:.0} fired/s", f(&disp, "fired_per_sec"));
        let api = if a.only.as_deref() != Some("paths") {
            eprintln!("run {r}: api");
            child("api", &db, a)?
        } else {
            Value::Null
        };
        let paths = if a.only.as_deref() != Some("api") {
            eprintln!("run {r}: product paths (issues 3 and 4)");
            child("paths", &db, a)?
        } else {
            Value::Null
        };
        let db_mb = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
        if !a.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        runs.push(
            json!({"run": r, "load": load, "dispatch": disp, "api": api, "paths": paths, "db_mb_after": db_mb}),
        );
    }
    if !a.keep {
        let _ = std::fs::remove_dir(&base);
    }
    let report = render(a, &machine, &runs);
    println!("{report}");
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("out/latest.md"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, &report)?;
    let raw = json!({"machine": machine, "args": {"leads": a.leads, "runs": a.runs, "due": a.due,
        "samples": a.samples, "batch": a.batch, "dispatch_batch": a.dispatch_batch, "only": a.only,
        "pixel_secs": a.pixel_secs, "pixel_conns": a.pixel_conns, "loadgen": a.loadgen,
        "steady_rate": a.steady_rate, "steady_secs": a.steady_secs}, "runs": runs});
    std::fs::write(
        out.with_extension("json"),
        serde_json::to_string_pretty(&raw)?,
    )?;
    eprintln!("written: {}", out.display());
    Ok(())
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

/// A figure at a JSON path ("api.first_touch.p99_ms") of every run.
fn each(runs: &[Value], path: &str) -> Vec<f64> {
    runs.iter()
        .map(|r| {
            path.split('.')
                .fold(r, |v, k| &v[k])
                .as_f64()
                .unwrap_or(f64::NAN)
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt_n(x: f64) -> String {
    let s = format!("{:.0}", x);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2} ms")
    } else {
        format!("{x:.1} ms")
    }
}

fn all(v: &[f64], fmt: impl Fn(f64) -> String) -> String {
    v.iter().map(|x| fmt(*x)).collect::<Vec<_>>().join(" / ")
}

fn render(a: &Args, machine: &Value, runs: &[Value]) -> String {
    let m = |p: &str| median(each(runs, p));
    let yes = |ok: bool| if ok { "met" } else { "**missed**" };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# relentless-bench: {} leads, {} run(s)\n",
        fmt_n(a.leads as f64),
        runs.len()
    );
    let _ = writeln!(
        s,
        "Machine: {} × {} ({} MHz), {} GiB RAM, {}; {}; SQLite {}; {} build.",
        machine["nproc"],
        machine["cpu"].as_str().unwrap_or("?"),
        machine["cpu_mhz"].as_str().unwrap_or("?"),
        machine["mem_gib"],
        machine["kernel"].as_str().unwrap_or("?"),
        machine["rustc"].as_str().unwrap_or("?"),
        machine["sqlite"].as_str().unwrap_or("?"),
        machine["profile"].as_str().unwrap_or("?"),
    );
    let loads: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{:.1}→{:.1}",
                f(&r["load"], "loadavg_before"),
                if r["paths"].is_null() {
                    f(&r["api"], "loadavg_after")
                } else {
                    f(&r["paths"], "loadavg_after")
                }
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "Load average (1 min) before→after each run: {} (anything above ~0 means other work shared the 2 cores).\n",
        loads.join(", ")
    );
    let _ = writeln!(
        s,
        "Date: {}. Medians of {} run(s); every run starts from a fresh database file.\n",
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC"),
        runs.len()
    );

    let has_api = runs.iter().all(|r| !r["api"].is_null());
    let has_paths = runs.iter().all(|r| !r["paths"].is_null());
    let fired = m("dispatch.fired_per_sec");
    let ft99 = m("api.first_touch.p99_ms");
    let rss_load = m("load.peak_rss_mb");
    let rss_disp = m("dispatch.peak_rss_mb");
    let rss_api = m("api.peak_rss_mb");
    let _ = writeln!(s, "| Figure | Median | Each run | SPEC §7 target | |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    let _ = writeln!(
        s,
        "| Load: {} leads + {} enrollments + {} touches | {:.1} s ({} leads/s, {} rows/s) | {} | — | |",
        fmt_n(m("load.leads")),
        fmt_n(m("load.enrollments")),
        fmt_n(m("load.touches")),
        m("load.load_secs"),
        fmt_n(m("load.leads_per_sec")),
        fmt_n(m("load.rows_per_sec")),
        all(&each(runs, "load.load_secs"), |x| format!("{x:.1} s")),
    );
    let _ = writeln!(
        s,
        "| Database file after load | {:.0} MB | {} | — | |",
        m("load.db_mb"),
        all(&each(runs, "load.db_mb"), |x| format!("{x:.0}")),
    );
    let _ = writeln!(
        s,
        "| Due touches fired per second ({} due, batches of {}) | {} /s | {} | ≥ 20,000/s (\"tens of thousands\") | {} |",
        fmt_n(m("dispatch.due_before")),
        a.dispatch_batch,
        fmt_n(fired),
        all(&each(runs, "dispatch.fired_per_sec"), fmt_n),
        yes(fired >= 20_000.0),
    );
    if has_api {
        let _ = writeln!(
            s,
            "| POST lead → first touch sent, p50 / p99 (n = {}) | {} / {} | p99: {} | p99 < 1 s | {} |",
            a.samples,
            ms(m("api.first_touch.p50_ms")),
            ms(ft99),
            all(&each(runs, "api.first_touch.p99_ms"), ms),
            yes(ft99 < 1000.0),
        );
        let _ = writeln!(
            s,
            "| POST /api/v1/leads alone, p50 / p99 | {} / {} | p99: {} | — | |",
            ms(m("api.post_lead.p50_ms")),
            ms(m("api.post_lead.p99_ms")),
            all(&each(runs, "api.post_lead.p99_ms"), ms),
        );
        for (label, key, target) in [
            (
                "Leads list first page, admin (all leads), p50 / p99",
                "list_admin",
                true,
            ),
            (
                "Leads list first page, agent (own leads), p50 / p99",
                "list_agent",
                true,
            ),
            (
                "Search `q=` last name, p50 / p99",
                "search_last_name",
                false,
            ),
            (
                "Search `q=` first + last name, p50 / p99",
                "search_full_name",
                false,
            ),
            ("Search `q=` phone, p50 / p99", "search_phone", false),
            ("Search `q=` email, p50 / p99", "search_email", false),
        ] {
            let p99 = m(&format!("api.{key}.p99_ms"));
            let _ = writeln!(
                s,
                "| {label} | {} / {} | p99: {} | {} | {} |",
                ms(m(&format!("api.{key}.p50_ms"))),
                ms(p99),
                all(&each(runs, &format!("api.{key}.p99_ms")), ms),
                if target {
                    "< 50 ms"
                } else {
                    "(< 50 ms, same page)"
                },
                yes(p99 < 50.0),
            );
        }
    }
    if has_api && runs.iter().all(|r| !r["api"]["pages"].is_null()) {
        for page in ["today", "leads", "lead", "plans", "plan", "reports", "team"] {
            let p99 = m(&format!("api.pages.{page}.p99_ms"));
            let _ = writeln!(
                s,
                "| Page `{page}`: its API requests one after another, p50 / p99 (first visit) | {} / {} ({}) | p99: {} | < 200 ms (issue 6) | {} |",
                ms(m(&format!("api.pages.{page}.p50_ms"))),
                ms(p99),
                ms(m(&format!("api.pages.{page}.first_visit_ms"))),
                all(&each(runs, &format!("api.pages.{page}.p99_ms")), ms),
                yes(p99 < 200.0),
            );
        }
    }
    if has_paths {
        let it99 = m("paths.intake.first_text.p99_ms");
        let _ = writeln!(
            s,
            "| Intake POST → first text at the provider (Twilio-speaking server), p50 / p99 (n = {}) | {} / {} | p99: {} | p99 < 1 s (issue 4) | {} |",
            a.samples,
            ms(m("paths.intake.first_text.p50_ms")),
            ms(it99),
            all(&each(runs, "paths.intake.first_text.p99_ms"), ms),
            yes(it99 < 1000.0),
        );
        let _ = writeln!(
            s,
            "| Intake POST alone (`POST /webhooks/leads/{{token}}`, JSON), p50 / p99 | {} / {} | p99: {} | — | |",
            ms(m("paths.intake.post.p50_ms")),
            ms(m("paths.intake.post.p99_ms")),
            all(&each(runs, "paths.intake.post.p99_ms"), ms),
        );
        let st99 = m("paths.steady.first_text.p99_ms");
        let _ = writeln!(
            s,
            "| `POST /api/v1/leads` → first text at the provider under a steady {} leads/s for {} s (open loop, from each lead's scheduled instant), p50 / p99 (timeouts) | {} / {} ({}) | p99: {} | p99 < 1 s (issue 8) | {} |",
            a.steady_rate,
            a.steady_secs,
            ms(m("paths.steady.first_text.p50_ms")),
            ms(st99),
            fmt_n(m("paths.steady.timeouts")),
            all(&each(runs, "paths.steady.first_text.p99_ms"), ms),
            yes(st99 < 1000.0 && m("paths.steady.timeouts") == 0.0),
        );
        let _ = writeln!(
            s,
            "| `POST /api/v1/leads` alone at that rate, p50 / p99 | {} / {} | p99: {} | — | |",
            ms(m("paths.steady.post.p50_ms")),
            ms(m("paths.steady.post.p99_ms")),
            all(&each(runs, "paths.steady.post.p99_ms"), ms),
        );
        let px99 = m("paths.pixel.to_event.p99_ms");
        let _ = writeln!(
            s,
            "| Open pixel → `engagement` event on the agent's SSE stream, p50 / p99 (n = {}) | {} / {} | p99: {} | p99 < 100 ms (issue 3) | {} |",
            a.samples,
            ms(m("paths.pixel.to_event.p50_ms")),
            ms(px99),
            all(&each(runs, "paths.pixel.to_event.p99_ms"), ms),
            yes(px99 < 100.0),
        );
        let _ = writeln!(
            s,
            "| Pixel GET alone (first open of each email), p50 / p99 | {} / {} | p99: {} | — | |",
            ms(m("paths.pixel.pixel_get.p50_ms")),
            ms(m("paths.pixel.pixel_get.p99_ms")),
            all(&each(runs, "paths.pixel.pixel_get.p99_ms"), ms),
        );
        let tool = runs
            .last()
            .and_then(|r| r["paths"]["pixel"]["throughput"]["tool"].as_str())
            .unwrap_or("?");
        let _ = writeln!(
            s,
            "| Pixel requests per second, one pixel URL ({tool}, {} connections, {} s); latency p50 / p99 | {} /s; {} / {} | {} /s | — | |",
            a.pixel_conns,
            a.pixel_secs,
            fmt_n(m("paths.pixel.throughput.requests_per_sec")),
            ms(m("paths.pixel.throughput.p50_ms")),
            ms(m("paths.pixel.throughput.p99_ms")),
            all(
                &each(runs, "paths.pixel.throughput.requests_per_sec"),
                fmt_n
            ),
        );
        let pl99 = m("paths.pixel.to_event_under_load.p99_ms");
        let _ = writeln!(
            s,
            "| Open pixel → `engagement` event while that load runs, p50 / p99 (n) | {} / {} ({}) | p99: {} | p99 < 100 ms (issue 8) | {} |",
            ms(m("paths.pixel.to_event_under_load.p50_ms")),
            ms(pl99),
            fmt_n(m("paths.pixel.to_event_under_load.n")),
            all(&each(runs, "paths.pixel.to_event_under_load.p99_ms"), ms),
            yes(pl99 < 100.0),
        );
    }
    let rss_paths = m("paths.peak_rss_mb");
    let servers = match (has_api, has_paths) {
        (true, true) => format!(
            "{:.0} / {:.0} / {:.0} (API) / {:.0} (paths) MB",
            rss_load, rss_disp, rss_api, rss_paths
        ),
        (true, false) => format!("{rss_load:.0} / {rss_disp:.0} / {rss_api:.0} MB"),
        (false, _) => format!("{rss_load:.0} / {rss_disp:.0} / {rss_paths:.0} (paths) MB"),
    };
    let server_max = [has_api.then_some(rss_api), has_paths.then_some(rss_paths)]
        .into_iter()
        .flatten()
        .fold(0.0, f64::max);
    let _ = writeln!(
        s,
        "| Peak RSS (VmHWM): load / dispatch / server (router + dispatcher) process | {servers} | server: {} | < 200 MB (serving) | {} |",
        all(
            &each(
                runs,
                if has_api {
                    "api.peak_rss_mb"
                } else {
                    "paths.peak_rss_mb"
                }
            ),
            |x| format!("{x:.0}")
        ),
        yes(rss_disp < 200.0 && server_max < 200.0),
    );
    let _ = writeln!(s);

    // Details of the last run.
    if let Some(last) = runs.last() {
        let l = &last["load"];
        let _ = writeln!(s, "## Load detail (run {})\n", last["run"]);
        let _ = writeln!(
            s,
            "{:.1} s in all: {:.1} s in SQLite inserting (batches of {} leads, one transaction each), {:.1} s rebuilding {} indexes and the FTS index, {:.1} s computing touch instants and building rows ({} `plan_for` calls, cached per zone and start minute). {} backlog leads; {} touches due at the end of the load (zones open now: {}). Loader peak RSS {:.0} MB (1 GiB SQLite page cache of its own).\n",
            f(l, "load_secs"),
            f(l, "sql_secs"),
            a.batch,
            f(l, "index_secs"),
            if l["dropped_indexes"].as_bool() == Some(true) {
                "the secondary"
            } else {
                "no"
            },
            f(l, "generate_secs"),
            fmt_n(f(l, "plan_for_calls")),
            fmt_n(f(l, "backlog_leads")),
            fmt_n(f(l, "due_touches")),
            l["zones_open_now"]
                .as_array()
                .map(|z| z
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            f(l, "peak_rss_mb"),
        );
        let d = &last["dispatch"];
        let _ = writeln!(s, "## Dispatch detail (run {})\n", last["run"]);
        let _ = writeln!(
            s,
            "{} touches claimed in {} batches in {:.1} s wall ({:.1} CPU-s across all threads): {} sent, {} became tasks, {} skipped, {} held for the window, {} uncertain. Settled by status: {}. Rows written: {} outbox, {} activities. Batch time p50 {} / p99 {} / max {}. Still due afterwards: {}. I/O per fired touch (`/proc/self/io`): {:.1} KiB written in {:.1} calls, {:.1} KiB read in {:.1} calls.\n",
            fmt_n(f(d, "claimed")),
            d["batches"],
            f(d, "secs"),
            f(d, "cpu_secs"),
            fmt_n(f(d, "sent")),
            fmt_n(f(d, "tasks")),
            fmt_n(f(d, "skipped")),
            fmt_n(f(d, "held")),
            fmt_n(f(d, "uncertain")),
            d["settled_by_status"]
                .as_array()
                .map(|v| v
                    .iter()
                    .map(|x| format!(
                        "{} {}",
                        x["status"].as_str().unwrap_or("?"),
                        fmt_n(f(x, "count"))
                    ))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            fmt_n(f(d, "outbox_rows")),
            fmt_n(f(d, "activity_rows")),
            ms(f(d, "tick_ms_p50")),
            ms(f(d, "tick_ms_p99")),
            ms(f(d, "tick_ms_max")),
            fmt_n(f(d, "due_after")),
            f(d, "kib_written_per_fired"),
            f(d, "write_calls_per_fired"),
            f(d, "kib_read_per_fired"),
            f(d, "read_calls_per_fired"),
        );
        if d["profiled"].as_bool() == Some(true) {
            let _ = writeln!(
                s,
                "Where the time goes: {} SQL statements ({:.1} per claimed touch) took {:.1} s of SQLite time ({:.0} % of the wall time); the other {:.1} s is the engine's own work outside SQLite (deciding, rendering templates, JSON, building rows) and the hand-offs between the async runtime and sqlx's SQLite worker thread. Statements by shape (numbers folded to N; ≥ 0.5 % of the wall time):\n",
                fmt_n(f(d, "sql_statements")),
                f(d, "sql_statements_per_claimed_touch"),
                f(d, "sql_secs"),
                100.0 * f(d, "sql_secs") / f(d, "secs").max(1e-9),
                f(d, "outside_sql_secs"),
            );
            let _ = writeln!(
                s,
                "| Statement | Calls | Per claimed touch | Rows | SQLite time | Share of wall | µs per claimed touch |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|");
            for op in d["profile"].as_array().into_iter().flatten() {
                if f(op, "share") < 0.005 {
                    continue;
                }
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {:.2} | {} | {:.2} s | {:.1} % | {:.1} |",
                    op["sql"].as_str().unwrap_or("?").replace('|', "\\|"),
                    fmt_n(f(op, "calls")),
                    f(op, "calls_per_claimed_touch"),
                    fmt_n(f(op, "rows")),
                    f(op, "total_secs"),
                    100.0 * f(op, "share"),
                    f(op, "us_per_claimed_touch"),
                );
            }
            let _ = writeln!(s);
        }
        let mc = &d["micro"];
        let _ = writeln!(
            s,
            "Unit costs measured right after (same process, same file): one sqlx round trip `SELECT 1` {:.1} µs, a primary-key lookup {:.1} µs, one `template::render` of a {}-byte text template {:.1} µs.\n",
            f(mc, "sqlx_select1_us"),
            f(mc, "sqlx_pk_lookup_us"),
            mc["template_len"],
            f(mc, "template_render_us"),
        );
        let api = &last["api"];
        let _ = has_api && writeln!(
            s,
            "API phase (run {}): new leads in {} with the dispatcher running; first touch detected by polling `GET /leads/{{id}}/touches` every {} ms ({} polls); {} timeouts. Server process RSS: {:.0} MB once started, {:.0} MB at the end, {:.0} MB peak (the HTTP client runs in its own process: {:.0} MB).",
            last["run"],
            api["zone"].as_str().unwrap_or("?"),
            f(api, "poll_ms"),
            fmt_n(f(api, "touch_polls")),
            api["first_touch_timeouts"],
            f(api, "rss_idle_mb"),
            f(api, "rss_end_mb"),
            f(api, "peak_rss_mb"),
            f(api, "client_peak_rss_mb"),
        )
        .is_ok();
        let p = &last["paths"];
        if has_paths {
            let t = &p["pixel"]["throughput"];
            let _ = writeln!(
                s,
                "\nProduct paths (run {}; load average {:.1}→{:.1} during the phase): router + dispatcher with the real Twilio channel (`api_base` = a Twilio-speaking server in the client process, {} texts received there, {} of them to loaded leads whose touches came due meanwhile, {} malformed). Intake: {} leads posted one after another as JSON to {} intake(s) from {} loopback source addresses ({}–{}, ≤ {} posts each: the webhook allows 30 a minute per address and 120 per intake), zone {}; {} timeouts; the last lead's touch kept the provider id `{}`. Steady: {} leads posted to `POST /api/v1/leads` at {} /s (scheduled over {:.1} s; the client started a POST at most {:.1} ms after its instant), each with a new phone, {} of them without a text at the provider within 30 s. Pixel: 2 × {} email-only leads assigned to {}, their speed-to-lead email sent through the outbox channel, each pixel fetched once with an iPhone Safari user agent while the agent's stream was open, the first half on an otherwise idle server ({} timeouts), the second half while the load below ran ({} opens timed under it, {} timeouts). Throughput: `{}` on one pixel URL: {} requests ({} errors/non-2xx), the server recorded {} opens and the stream delivered {} `engagement` events for that lead. Server process RSS: {:.0} MB once started, {:.0} MB at the end, {:.0} MB peak (client: {:.0} MB).",
                last["run"],
                f(p, "loadavg_before"),
                f(p, "loadavg_after"),
                p["provider_texts"],
                p["provider_other_texts"],
                p["provider_malformed"],
                fmt_n(a.samples as f64 + 3.0),
                p["intake"]["intakes"],
                p["intake"]["source_addresses"],
                p["intake"]["first_source_address"].as_str().unwrap_or("?"),
                p["intake"]["last_source_address"].as_str().unwrap_or("?"),
                25,
                p["zone"].as_str().unwrap_or("?"),
                p["intake"]["timeouts"],
                p["intake"]["last_lead_provider_id"]
                    .as_str()
                    .unwrap_or("none"),
                fmt_n(f(&p["steady"], "leads")),
                p["steady"]["rate"],
                f(&p["steady"], "offered_over_secs"),
                f(&p["steady"], "client_max_start_late_ms"),
                p["steady"]["timeouts"],
                fmt_n(a.samples as f64 + 3.0),
                crate::load::AGENTS[0].0,
                p["pixel"]["timeouts"],
                fmt_n(f(&p["pixel"]["to_event_under_load"], "n")),
                p["pixel"]["timeouts_under_load"],
                t["tool"].as_str().unwrap_or("?"),
                fmt_n(f(t, "requests")),
                fmt_n(f(t, "errors") + f(t, "non_2xx")),
                fmt_n(f(&p["pixel"], "throughput_opens_recorded")),
                fmt_n(f(&p["pixel"], "throughput_events_delivered")),
                f(p, "rss_idle_mb"),
                f(p, "rss_end_mb"),
                f(p, "peak_rss_mb"),
                f(p, "client_peak_rss_mb"),
            );
        }
    }
    s
}
