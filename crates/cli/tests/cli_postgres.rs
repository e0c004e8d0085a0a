//! The `relentless` binary on PostgreSQL: `--database-url postgres://…` selects the backend,
//! `migrate` and `init` create the schema and the team, `backup` writes a `pg_dump` archive,
//! and a database URL's password never appears in what the binary prints.

use relentless_store::postgres::testing::TestDatabase;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_relentless");

fn run(dir: &std::path::Path, url: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("RELENTLESS_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("RELENTLESS_LOG", "warn")
        .args(args)
        .arg("--database-url")
        .arg(url)
        .output()
        .expect("run relentless")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn migrate_init_tokens_and_backup_on_postgres() {
    let db = TestDatabase::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = db.url();
    let m = run(dir.path(), url, &["migrate"]);
    assert!(m.status.success(), "{}", stderr(&m));
    assert!(stdout(&m).contains("up to date"));
    let init = run(
        dir.path(),
        url,
        &[
            "init",
            "--admin-email",
            "boss@example.com",
            "--team-name",
            "Big",
        ],
    );
    assert!(init.status.success(), "{}", stderr(&init));
    let token = stdout(&init).lines().last().unwrap().trim().to_string();
    assert!(
        token.len() >= 32 && !token.contains(' '),
        "the token alone on the last line: {}",
        stdout(&init)
    );
    let add = run(
        dir.path(),
        url,
        &["user", "add", "--email", "Sam@Example.com", "--name", "Sam"],
    );
    assert!(add.status.success(), "{}", stderr(&add));
    let again = run(
        dir.path(),
        url,
        &["user", "add", "--email", "sam@example.com", "--name", "Sam"],
    );
    assert!(
        !again.status.success(),
        "emails are unique whatever their case"
    );
    assert!(stderr(&again).contains("email"), "{}", stderr(&again));
    let t = run(
        dir.path(),
        url,
        &["token", "create", "--email", "sam@example.com"],
    );
    assert!(t.status.success(), "{}", stderr(&t));
    // What the CLI wrote is in the database the server would use.
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(users, 2);
    pool.close().await;
    let b = run(dir.path(), url, &["backup", "copy.dump"]);
    assert!(b.status.success(), "{}", stderr(&b));
    assert!(
        std::fs::metadata(dir.path().join("copy.dump"))
            .unwrap()
            .len()
            > 0,
        "a pg_dump archive"
    );
    let b = run(dir.path(), url, &["backup", "copy.dump"]);
    assert!(!b.status.success(), "a backup never overwrites a file");
}

#[test]
fn a_bad_url_or_server_is_one_clear_line_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), "mysql://localhost/x", &["migrate"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("postgres://"),
        "says what is supported: {}",
        stderr(&o)
    );
    // Nothing listens on port 1.
    let o = run(
        dir.path(),
        "postgres://app:s3cret-pw@127.0.0.1:1/r",
        &["migrate"],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(err.contains("app:***@127.0.0.1:1"), "{err}");
    assert!(
        !err.contains("s3cret-pw"),
        "the password is never printed: {err}"
    );
}

/// `serve` on PostgreSQL with a browser's notification stream open: SIGTERM ends the stream
/// (the client would reconnect to another process), lets the dispatcher finish, and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_on_sigterm_with_a_notification_stream_open() {
    use std::io::BufRead;
    let db = TestDatabase::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let init = run(
        dir.path(),
        db.url(),
        &["init", "--admin-email", "a@example.com"],
    );
    assert!(init.status.success(), "{}", stderr(&init));
    let token = stdout(&init).lines().last().unwrap().trim().to_string();
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("RELENTLESS_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .current_dir(dir.path())
        .env("RELENTLESS_LOG", "warn")
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            db.url(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("running at") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "serve exited early");
    }
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    let res = reqwest::Client::new()
        .get(format!("{base}/api/v1/notifications/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let stream = tokio::spawn(async move {
        let mut res = res;
        while let Ok(Some(_)) = res.chunk().await {}
    });
    let started = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(8),
            "serve did not stop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    tokio::time::timeout(std::time::Duration::from_secs(2), stream)
        .await
        .expect("the stream was ended, not left hanging")
        .unwrap();
}

/// A table whose autovacuum is disabled makes claims slower the longer the dispatcher runs:
/// `migrate` (and `serve`, `worker`) says which, and what to do, and still succeeds.
#[tokio::test]
async fn a_table_without_autovacuum_is_named_when_the_database_is_opened() {
    let db = TestDatabase::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = db.url();
    let m = run(dir.path(), url, &["migrate"]);
    assert!(m.status.success(), "{}", stderr(&m));
    assert!(!stderr(&m).contains("autovacuum_enabled"), "{}", stderr(&m));
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    // (Spelled as PostgreSQL also accepts it: a prefix of `false`.)
    sqlx::query("ALTER TABLE touches SET (autovacuum_enabled = 'fa')")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let again = run(dir.path(), url, &["migrate"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let err = stderr(&again);
    assert!(
        err.contains("autovacuum is disabled for touches")
            && err.contains("RESET (autovacuum_enabled)"),
        "{err}"
    );
    assert!(stdout(&again).contains("up to date"));
}
