//! relentless-bench: the SPEC §7 benchmark harness (not a test).
//!
//! `cargo run --release -p relentless-bench -- [--leads N] [--runs R]`
//!
//! Each run builds a fresh SQLite file and runs three phases, each in its own child process
//! (this binary with `--phase`), so that every phase's peak RSS (VmHWM) is its own:
//! 1. load: N leads in `relentless-21` (13N touches), part of them due;
//! 2. dispatch: `Dispatcher::tick()` until nothing is due: fired touches per second;
//! 3. api: the real router + dispatcher (the HTTP client in a further child process, `--phase
//!    client`): POST lead → first touch sent, leads list, searches.
//!
//! The medians over the runs go to stdout as a markdown report and to `bench/out/latest.md`
//! (the raw figures of every run to `bench/out/latest.json`). See bench/README.md.

mod api;
mod data;
mod dispatch;
mod load;
mod micro;
mod sqlprof;
mod sys;

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
}

const USAGE: &str = "relentless-bench [--leads N] [--runs R] [--due D] [--samples S] [--batch B]
                 [--dispatch-batch B] [--dispatch-cap SECS] [--poll-ms MS] [--dir PATH] [--keep] [--out FILE]

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
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other}\n\n{USAGE}")),
        }
    }
    if a.leads == 0 || a.runs == 0 || a.samples == 0 || a.batch == 0 || a.dispatch_batch <= 0 {
        return Err("--leads, --runs, --samples and the batch sizes must be at least 1".into());
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
        other => return Err(format!("unknown phase {other}").into()),
    };
    println!("{v}");
    Ok(())
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
        eprintln!("run {r}: {:.0} fired/s; api", f(&disp, "fired_per_sec"));
        let api = child("api", &db, a)?;
        let db_mb = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
        if !a.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        runs.push(
            json!({"run": r, "load": load, "dispatch": disp, "api": api, "db_mb_after": db_mb}),
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
        "samples": a.samples, "batch": a.batch, "dispatch_batch": a.dispatch_batch}, "runs": runs});
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
                f(&r["api"], "loadavg_after")
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
    let _ = writeln!(
        s,
        "| Peak RSS (VmHWM): load / dispatch / server (router + dispatcher) process | {:.0} / {:.0} / {:.0} MB | server: {} | < 200 MB (serving) | {} |",
        rss_load,
        rss_disp,
        rss_api,
        all(&each(runs, "api.peak_rss_mb"), |x| format!("{x:.0}")),
        yes(rss_disp < 200.0 && rss_api < 200.0),
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
            "{} touches claimed in {} batches in {:.1} s wall ({:.1} CPU-s across all threads): {} sent, {} became tasks, {} skipped, {} held for the window, {} uncertain. Settled by status: {}. Rows written: {} outbox, {} activities. Batch time p50 {} / p99 {} / max {}. Still due afterwards: {}.\n",
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
        let _ = writeln!(
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
        );
    }
    s
}
