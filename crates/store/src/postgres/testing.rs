//! For tests and benchmarks against a real PostgreSQL server: a fresh database per test,
//! dropped when the guard is dropped.

use crate::{Result, StoreError};
use sqlx::{Connection, PgConnection};

/// The server tests use: `RELENTLESS_TEST_POSTGRES`, else the local one with trust auth. It
/// names the maintenance database that `CREATE DATABASE` runs in.
pub fn server_url() -> String {
    std::env::var("RELENTLESS_TEST_POSTGRES")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// A database of its own (`relentless_test_<random>`), dropped (best effort, `WITH (FORCE)`)
/// when this is dropped.
pub struct TestDatabase {
    url: String,
    name: String,
    server: String,
    keep: bool,
}

impl TestDatabase {
    pub async fn create() -> Result<TestDatabase> {
        Self::create_with("template0").await
    }

    /// A copy of another database (a file copy: seconds where seeding took minutes). Nothing
    /// may be connected to `template` meanwhile.
    pub async fn copy_of(template: &str) -> Result<TestDatabase> {
        Self::create_with(&format!("{template} STRATEGY FILE_COPY")).await
    }

    async fn create_with(template: &str) -> Result<TestDatabase> {
        let server = server_url();
        let name = format!(
            "relentless_test_{}_{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let mut conn = PgConnection::connect(&server).await.map_err(|e| {
            StoreError::Config(format!(
                "cannot reach the test PostgreSQL server at {server} (set RELENTLESS_TEST_POSTGRES): {e}"
            ))
        })?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE {template}"
        )))
        .execute(&mut conn)
        .await?;
        let _ = conn.close().await;
        Ok(TestDatabase {
            url: with_database(&server, &name),
            name,
            server,
            keep: std::env::var_os("RELENTLESS_TEST_KEEP_DB").is_some(),
        })
    }

    /// `postgres://…/relentless_test_…`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept test database {}", self.url);
            return;
        }
        let (server, name) = (self.server.clone(), self.name.clone());
        // A runtime of its own on a thread of its own: drop may run inside or outside one.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&server).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        use crate::display_url;
        assert_eq!(
            display_url("postgres://app:s3cr:et@db.example.com:5432/r?sslmode=require"),
            "postgres://app:***@db.example.com:5432/r?sslmode=require"
        );
        assert_eq!(
            display_url("postgres://postgres@127.0.0.1/r"),
            "postgres://postgres@127.0.0.1/r"
        );
        assert_eq!(
            display_url("sqlite://relentless.db"),
            "sqlite://relentless.db"
        );
        assert_eq!(display_url("sqlite:a@b.db"), "sqlite:a@b.db");
    }
}
