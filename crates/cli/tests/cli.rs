//! End-to-end tests of the `relentless` binary (SPEC §6 "Command line"): every test runs the
//! real executable in a fresh temporary directory against its own SQLite file, and checks what
//! a user sees (exit status, stdout, stderr) and what ended up in the database.
//!
//! The database is inspected with the `sqlite3` command-line shell (Debian package `sqlite3`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_relentless");

/// A temporary working directory with its own database.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn db(&self) -> PathBuf {
        self.path("r.db")
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.db().display())
    }

    /// The binary with the sandbox as working directory and no `RELENTLESS_*` variables from
    /// the environment the tests run in.
    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RELENTLESS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("RELENTLESS_LOG", "warn");
        cmd
    }

    /// Runs the binary with `args` and `--database-url` pointing at the sandbox's database.
    fn run(&self, args: &[&str]) -> Run {
        let out = self
            .command()
            .args(args)
            .arg("--database-url")
            .arg(self.url())
            .output()
            .expect("run relentless");
        Run::new(args, out)
    }

    fn init(&self) -> String {
        let r = self.run(&["init", "--admin-email", "a@example.com", "--team-name", "T"]);
        r.success();
        r.token()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write file");
        p
    }

    fn import(&self, file: &Path, extra: &[&str]) -> Run {
        let file = file.to_str().expect("utf-8 path");
        let mut args = vec!["import", file];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn sql(&self, query: &str) -> String {
        sql(&self.db(), query)
    }

    fn lead_count(&self) -> i64 {
        self.sql("select count(*) from leads")
            .parse()
            .expect("count")
    }
}

/// A query through the `sqlite3` shell; the output trimmed.
fn sql(db: &Path, query: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(query)
        .output()
        .expect("the sqlite3 command-line shell is needed (Debian package `sqlite3`)");
    assert!(
        out.status.success(),
        "sqlite3 {query:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// One finished run of the binary.
struct Run {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn new(args: &[&str], out: Output) -> Run {
        Run {
            what: format!("relentless {}", args.join(" ")),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn context(&self) -> String {
        format!(
            "{} exited {:?}\n--- stdout\n{}--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }

    fn success(&self) -> &Run {
        assert_eq!(self.code, Some(0), "{}", self.context());
        self
    }

    fn exit(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "{}", self.context());
        assert!(
            !self.stderr.contains("panicked"),
            "the binary panicked\n{}",
            self.context()
        );
        self
    }

    fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr should mention {needle:?}\n{}",
            self.context()
        );
        self
    }

    fn stderr_lacks(&self, needle: &str) -> &Run {
        assert!(
            !self.stderr.contains(needle),
            "stderr should not mention {needle:?}\n{}",
            self.context()
        );
        self
    }

    /// The stderr line that reports `line N:` of an import.
    fn import_error(&self, line: u64) -> &str {
        let prefix = format!("line {line}:");
        self.stderr
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no error reported for line {line}\n{}", self.context()))
    }

    /// The API token alone on the last line of stdout.
    fn token(&self) -> String {
        let last = self.stdout.lines().last().unwrap_or("");
        assert!(
            last.starts_with("rl_") && !last.contains(char::is_whitespace) && last.len() > 20,
            "the last line of stdout should be a token alone\n{}",
            self.context()
        );
        last.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// init, token, user

#[test]
fn init_prints_a_token_on_the_last_line_and_a_rerun_changes_nothing() {
    let s = Sandbox::new();
    let first = s.init();
    assert_eq!(s.sql("select name from team"), "T");

    let again = s.run(&[
        "init",
        "--admin-email",
        "a@example.com",
        "--team-name",
        "Other",
    ]);
    let second = again.success().token();
    assert_ne!(first, second, "a rerun prints a new token");
    assert_eq!(
        s.sql("select name from team"),
        "T",
        "a rerun keeps the team"
    );
    assert_eq!(
        s.sql("select email || ' ' || role from users"),
        "a@example.com admin",
        "a rerun adds no user"
    );
    // Both tokens stay valid: two tokens stored for the admin.
    assert_eq!(s.sql("select count(*) from api_tokens"), "2");
}

#[test]
fn init_rejects_an_invalid_admin_email() {
    let s = Sandbox::new();
    s.run(&["init", "--admin-email", "not-an-email"])
        .exit(1)
        .stderr_has("email")
        .stderr_has("not-an-email");
}

#[test]
fn token_create_prints_a_token_alone_on_the_last_line() {
    let s = Sandbox::new();
    let init = s.init();
    let r = s.run(&["token", "create", "--email", "a@example.com"]);
    let token = r.success().token();
    assert_ne!(token, init);

    s.run(&["token", "create", "--email", "nobody@example.com"])
        .exit(1)
        .stderr_has("nobody@example.com");
}

#[test]
fn user_add_validates_email_role_and_phone() {
    let s = Sandbox::new();
    s.init();
    let add = |email: &str, role: &str, phone: &str| {
        s.run(&[
            "user", "add", "--email", email, "--name", "B Agent", "--role", role, "--phone", phone,
        ])
    };
    add("b@example.com", "agent", "(512) 555-0134").success();
    assert_eq!(
        s.sql(
            "select name || '|' || role || '|' || phone from users where email = 'b@example.com'"
        ),
        "B Agent|agent|+15125550134",
        "the phone is stored in E.164"
    );

    add("b@example.com", "agent", "(512) 555-0135")
        .exit(1)
        .stderr_has("email")
        .stderr_has("already taken");
    add("c@example.com", "boss", "(512) 555-0136")
        .exit(1)
        .stderr_has("role")
        .stderr_has("boss");
    add("d@example.com", "agent", "555-01")
        .exit(1)
        .stderr_has("phone");
    assert_eq!(
        s.sql("select count(*) from users"),
        "2",
        "rejected users are not stored"
    );
}

#[test]
fn init_with_an_existing_agents_email_does_not_promote_or_call_it_admin() {
    let s = Sandbox::new();
    s.init();
    s.run(&[
        "user",
        "add",
        "--email",
        "b@example.com",
        "--name",
        "B Agent",
    ])
    .success();
    let r = s.run(&["init", "--admin-email", "b@example.com"]);
    r.success().token();
    assert!(!r.stdout.contains("admin"), "{}", r.context());
    assert_eq!(
        s.sql("select role from users where email = 'b@example.com'"),
        "agent"
    );
}

#[test]

fn user_add_treats_emails_case_insensitively() {
    let s = Sandbox::new();
    s.init();
    s.run(&["user", "add", "--email", "b@example.com", "--name", "B"])
        .success();
    s.run(&["user", "add", "--email", "B@Example.com", "--name", "B2"])
        .exit(1)
        .stderr_has("already taken");
}

// ---------------------------------------------------------------------------------------------
// import

/// Five data rows. The first has a quoted field with an embedded newline (physical lines 2–3),
/// so the bad rows — an invalid email and a row with neither email nor phone — are records 2
/// and 4 but physical lines 4 and 6.
const MIXED: &str = "First Name,Last Name,Email,Phone,Source,Tags,Favorite Color\n\
Ann,Lee,ann@example.com,(512) 555-0101,zillow,buyer,\"dark\nblue\"\n\
Bob,Bad,not-an-email,,zillow,,red\n\
Cara,Kay,cara@example.com,,open house,\"seller,vip\",green\n\
Dan,Nobody,,,zillow,,\n\
Eve,Ok,,512-555-0105,,,\n";

fn assert_mixed_errors(r: &Run) {
    r.exit(2);
    let bad_email = r.import_error(4);
    assert!(
        bad_email.contains("email") && bad_email.contains("not-an-email"),
        "{}",
        r.context()
    );
    let no_contact = r.import_error(6);
    assert!(
        no_contact.contains("email") || no_contact.contains("phone"),
        "{}",
        r.context()
    );
    for good in [2, 3, 5, 7] {
        r.stderr_lacks(&format!("line {good}:"));
    }
}

#[test]
fn import_reports_bad_rows_by_physical_line_and_imports_the_good_ones() {
    let s = Sandbox::new();
    s.init();
    let file = s.write("leads.csv", MIXED.as_bytes());
    let r = s.import(&file, &[]);
    assert_mixed_errors(&r);

    assert_eq!(s.lead_count(), 3);
    assert_eq!(
        s.sql("select group_concat(first_name || ' ' || last_name, ',') from (select * from leads order by first_name)"),
        "Ann Lee,Cara Kay,Eve Ok"
    );
    assert_eq!(
        s.sql("select phone from leads where first_name = 'Eve'"),
        "+15125550105"
    );
    // The unknown column ends up in the notes, embedded newline and all.
    assert_eq!(
        s.sql("select notes from leads where email = 'ann@example.com'"),
        "Favorite Color: dark\nblue"
    );
    assert!(
        s.sql("select notes from leads where email = 'cara@example.com'")
            .contains("Favorite Color: green")
    );
    assert_eq!(
        s.sql("select source from leads where email = 'cara@example.com'"),
        "open house"
    );
    // A CSV import starts no plan unless --plan names one (SPEC §4).
    assert_eq!(s.sql("select count(*) from enrollments"), "0");
    assert_eq!(s.sql("select count(*) from touches"), "0");
}

#[test]
fn import_counts_lines_the_same_with_crlf_line_ends() {
    let s = Sandbox::new();
    s.init();
    let file = s.write("leads.csv", MIXED.replace('\n', "\r\n").as_bytes());
    assert_mixed_errors(&s.import(&file, &[]));
    assert_eq!(s.lead_count(), 3);
}

#[test]
fn import_dry_run_writes_nothing_and_reports_the_same_lines() {
    let s = Sandbox::new();
    s.init();
    let file = s.write("leads.csv", MIXED.as_bytes());
    assert_mixed_errors(&s.import(&file, &["--dry-run"]));
    assert_eq!(s.lead_count(), 0);
    assert_eq!(s.sql("select count(*) from activities"), "0");
}

#[test]
fn import_with_a_plan_enrolls_every_imported_lead() {
    let s = Sandbox::new();
    s.init();
    let file = s.write("leads.csv", MIXED.as_bytes());
    s.import(&file, &["--plan", "relentless-21"]).exit(2);
    assert_eq!(s.lead_count(), 3);
    assert_eq!(
        s.sql(
            "select count(*) from leads l where exists (select 1 from enrollments e \
             where e.lead_id = l.id and e.plan = 'relentless-21' and e.state = 'active')"
        ),
        "3"
    );
    assert!(
        s.sql("select count(*) from touches")
            .parse::<i64>()
            .unwrap()
            > 0
    );
}

#[test]
fn import_with_an_unknown_plan_is_refused_before_anything_is_written() {
    let s = Sandbox::new();
    s.init();
    let file = s.write("leads.csv", MIXED.as_bytes());
    s.import(&file, &["--plan", "no-such-plan"])
        .exit(1)
        .stderr_has("no-such-plan");
    assert_eq!(s.lead_count(), 0);
    s.import(&file, &["--plan", "no-such-plan", "--dry-run"])
        .exit(1)
        .stderr_has("no-such-plan");
}

#[test]
fn import_of_good_rows_exits_zero() {
    let s = Sandbox::new();
    s.init();
    let file = s.write(
        "good.csv",
        b"Name,E-mail Address,Mobile Phone\nAl Smith,al@example.com,\nBea Jones,,+1 512 555 0177\n",
    );
    let r = s.import(&file, &[]);
    r.success();
    assert!(r.stdout.contains('2'), "{}", r.context());
    assert_eq!(s.lead_count(), 2);
    // Importing the same file again merges instead of duplicating.
    s.import(&file, &[]).success();
    assert_eq!(s.lead_count(), 2);
}

#[test]
fn import_decodes_windows_1252() {
    let s = Sandbox::new();
    s.init();
    let file = s.write(
        "excel.csv",
        b"First Name,Last Name,Email\nRen\xe9,Fran\xe7ois,rene@example.com\n",
    );
    s.import(&file, &[]).success();
    assert_eq!(
        s.sql("select first_name || ' ' || last_name from leads"),
        "René François"
    );
}

#[test]
fn import_drops_a_utf8_byte_order_mark() {
    let s = Sandbox::new();
    s.init();
    let file = s.write(
        "bom.csv",
        "\u{feff}Email,First Name\nzoë@example.com,Zoë\n".as_bytes(),
    );
    s.import(&file, &[]).success();
    assert_eq!(s.sql("select first_name from leads"), "Zoë");
}

#[test]
fn import_refuses_an_unterminated_quote_naming_its_line() {
    let s = Sandbox::new();
    s.init();
    // Without the check, the rest of the file would silently become Bo's notes.
    let file = s.write(
        "broken.csv",
        b"First Name,Email,Notes\n\
Al,al@example.com,fine\n\
Bo,bo@example.com,\"this note never ends\n\
Cy,cy@example.com,ok\n\
Di,di@example.com,ok\n",
    );
    s.import(&file, &[])
        .exit(1)
        .stderr_has("line 3")
        .stderr_has("quote");
    assert_eq!(s.lead_count(), 0, "nothing half-imported");
}

#[test]
fn import_fatal_errors_exit_1() {
    let s = Sandbox::new();
    s.init();
    s.import(&s.path("missing.csv"), &[])
        .exit(1)
        .stderr_has("missing.csv");

    let file = s.write("nocontact.csv", b"First Name,Company\nAl,Acme\n");
    s.import(&file, &[])
        .exit(1)
        .stderr_has("line 1")
        .stderr_has("Email");
    assert_eq!(s.lead_count(), 0);
}

#[test]
fn import_refuses_a_file_over_the_size_limit_and_a_row_over_the_row_limit() {
    let s = Sandbox::new();
    s.init();
    // A sparse file of 257 MiB: refused from its size, before it is read.
    let big = s.path("huge.csv");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(257 * 1024 * 1024).unwrap();
    drop(f);
    s.import(&big, &[])
        .exit(1)
        .stderr_has("256 MiB")
        .stderr_has("nothing was imported");
    assert_eq!(s.lead_count(), 0);
    std::fs::remove_file(&big).unwrap();
    // A 100 KB row is a bad row by its line; the others are imported.
    let csv = format!(
        "Email,Notes\nok1@example.com,hi\nlong@example.com,{}\nok2@example.com,bye\n",
        "x".repeat(100 * 1024)
    );
    let file = s.write("long.csv", csv.as_bytes());
    s.import(&file, &[])
        .exit(2)
        .stderr_has("line 3: the row is 100 KB");
    assert_eq!(s.lead_count(), 2);
}

#[test]
fn import_before_init_is_a_fatal_error() {
    let s = Sandbox::new();
    let file = s.write("leads.csv", MIXED.as_bytes());
    s.import(&file, &[]).exit(1).stderr_has("init");
}

// ---------------------------------------------------------------------------------------------
// backup, migrate, environment

#[test]
fn backup_writes_a_consistent_copy_and_never_overwrites() {
    let s = Sandbox::new();
    s.init();
    let file = s.write("leads.csv", MIXED.as_bytes());
    s.import(&file, &[]).exit(2);

    let copy = s.path("copy.db");
    let copy_arg = copy.to_str().unwrap();
    s.run(&["backup", copy_arg]).success();
    assert_eq!(sql(&copy, "pragma integrity_check"), "ok");
    assert_eq!(sql(&copy, "select count(*) from leads"), "3");

    let before = std::fs::read(&copy).unwrap();
    s.run(&["backup", copy_arg]).exit(1).stderr_has("copy.db");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        before,
        "the old backup is intact"
    );
}

#[test]
fn backup_of_a_missing_database_fails_instead_of_copying_an_empty_one() {
    let s = Sandbox::new();
    let copy = s.path("copy.db");
    s.run(&["backup", copy.to_str().unwrap()])
        .exit(1)
        .stderr_has("r.db");
    assert!(!copy.exists());
    assert!(!s.db().exists());
}

#[test]
fn migrate_creates_a_fresh_database() {
    let s = Sandbox::new();
    assert!(!s.db().exists());
    s.run(&["migrate"]).success();
    assert!(s.db().exists());
    assert_eq!(s.sql("select count(*) from leads"), "0");
    // Running it again is harmless.
    s.run(&["migrate"]).success();
}

#[test]
fn the_database_url_is_read_from_the_environment() {
    let s = Sandbox::new();
    let env_db = s.path("env.db");
    let out = s
        .command()
        .args(["init", "--admin-email", "a@example.com"])
        .env(
            "RELENTLESS_DATABASE_URL",
            format!("sqlite://{}", env_db.display()),
        )
        .output()
        .unwrap();
    Run::new(&["init"], out).success().token();
    assert!(env_db.exists());
    assert!(
        !s.path("relentless.db").exists(),
        "the default was not used"
    );
    assert_eq!(sql(&env_db, "select email from users"), "a@example.com");
}

/// The dispatcher's settings from the environment: a value out of range is refused before
/// anything starts, with the variable named (`migrate` reads the settings as every command
/// that opens the database does, and ends, where `worker` would run on).
#[test]
fn unreadable_scheduler_settings_are_refused_naming_the_variable() {
    let s = Sandbox::new();
    s.init();
    s.command()
        .args(["migrate"])
        .env("RELENTLESS_SEND_CONCURRENCY", "4")
        .env("RELENTLESS_SMTP_SESSIONS", "5")
        .output()
        .map(|o| Run::new(&["migrate"], o))
        .unwrap()
        .success();
    for (var, value) in [
        ("RELENTLESS_SEND_CONCURRENCY", "0"),
        ("RELENTLESS_SEND_CONCURRENCY", "many"),
        ("RELENTLESS_BATCH", "-5"),
        ("RELENTLESS_SMTP_SESSIONS", "0"),
        ("RELENTLESS_SEND_LEASE_SECS", "0"),
    ] {
        let out = s
            .command()
            .args(["migrate"])
            .env(var, value)
            .output()
            .unwrap();
        let r = Run::new(&["migrate"], out);
        assert_ne!(r.code, Some(0), "{var}={value} {}", r.context());
        r.stderr_has(match var {
            "RELENTLESS_SMTP_SESSIONS" => "--smtp-sessions",
            "RELENTLESS_SEND_LEASE_SECS" => "--send-lease-secs",
            _ => var,
        });
    }
}

#[test]
fn the_default_database_is_relentless_db_in_the_working_directory() {
    let s = Sandbox::new();
    let out = s
        .command()
        .args(["init", "--admin-email", "a@example.com"])
        .output()
        .unwrap();
    Run::new(&["init"], out).success().token();
    assert!(s.path("relentless.db").exists());
}

// ---------------------------------------------------------------------------------------------
// serve --demo

/// Kills the server when the test ends, passing or failing.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_demo_answers_the_api_with_demo_leads_and_outbox_messages() {
    let s = Sandbox::new();
    let mut server = Server(
        s.command()
            .args([
                "serve",
                "--demo",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
            ])
            .arg(s.url())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start relentless serve"),
    );
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (mut base, mut token) = (None, None);
    while base.is_none() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("`Relentless is running at` within 20 s");
        if let Some(t) = line.strip_prefix("Admin API token: ") {
            token = Some(t.trim().to_string());
        }
        if let Some(a) = line.strip_prefix("Relentless is running at ") {
            base = Some(a.trim().to_string());
        }
    }
    let base = base.unwrap();
    let token = token.expect("an `Admin API token:` line before the server starts");
    assert!(token.starts_with("rl_"));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);

        let get = |path: &str| {
            let req = client
                .get(format!("{base}{path}"))
                .bearer_auth(&token)
                .send();
            async move {
                let resp = req.await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.json::<serde_json::Value>().await.unwrap()
            }
        };
        let leads = get("/api/v1/leads?limit=100").await;
        let items = leads["items"].as_array().expect("items");
        assert!(
            (30..=100).contains(&items.len()),
            "a few dozen demo leads, got {}",
            items.len()
        );
        for lead in items {
            if let Some(email) = lead["email"].as_str() {
                assert!(email.ends_with("@example.com"), "demo email {email}");
            }
            if let Some(phone) = lead["phone"].as_str() {
                assert!(phone.starts_with("+1512555"), "demo phone {phone}");
            }
        }
        assert!(items.iter().any(|l| l["phone"].is_string()));

        // The scheduler sends the demo's due texts and emails moments after the start; with no
        // SMTP or Twilio settings they land in the outbox, marked as not delivered.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let messages = loop {
            let outbox = get("/api/v1/outbox").await;
            let messages = outbox["items"].as_array().expect("outbox items").clone();
            if !messages.is_empty() || std::time::Instant::now() > deadline {
                break messages;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(
            !messages.is_empty(),
            "demo messages reach the outbox within 15 s"
        );
        for m in &messages {
            let to = m["to"].as_str().unwrap_or_default();
            assert!(
                to.starts_with("+1512555") || to.ends_with("@example.com"),
                "a demo message went to {to}"
            );
        }

        // Without a token the API refuses.
        let anon = client
            .get(format!("{base}/api/v1/leads"))
            .send()
            .await
            .unwrap();
        assert_eq!(anon.status(), 401);
    });
    drop(server);
}

#[test]
fn intake_create_prints_the_webhook_url_alone_on_the_last_line() {
    let s = Sandbox::new();
    s.init();
    let r = s.run(&[
        "intake", "create", "--source", "website", "--plan", "cold-8",
    ]);
    r.success();
    let last = r.stdout.lines().last().unwrap_or_default().to_string();
    let token = last
        .strip_prefix("http://127.0.0.1:8080/webhooks/leads/")
        .unwrap_or_else(|| panic!("{last}"));
    assert_eq!(token.len(), 32, "128 random bits in hex: {token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        s.sql("select source || ' ' || plan from intakes"),
        "website cold-8"
    );
    let again = s.run(&["intake", "create", "--source", "website"]);
    assert_ne!(
        again.stdout.lines().last(),
        Some(last.as_str()),
        "each intake has its own token"
    );
    s.run(&[
        "intake",
        "create",
        "--source",
        "x",
        "--plan",
        "no-such-plan",
    ])
    .exit(1)
    .stderr_has("no-such-plan");
    s.run(&[
        "intake",
        "create",
        "--source",
        "x",
        "--routing",
        "{\"mode\":\"sideways\"}",
    ])
    .exit(1)
    .stderr_has("routing");
}
