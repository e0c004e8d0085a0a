//! TestApp: the real router on port 0 over a real database (a SQLite file in a temp dir, or
//! a fresh database on the PostgreSQL server), with the dispatcher running, driven over HTTP
//! as a client would.

#![allow(dead_code)]

use relentless_engine::dispatch::Dispatcher;
use relentless_engine::setup::InitInput;
use relentless_engine::{Config, Engine};
use relentless_store::DynStore;
use relentless_store::postgres::PostgresStore;
use relentless_store::postgres::testing::TestDatabase;
use relentless_store::sqlite::SqliteStore;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The database a TestApp runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// A fresh database per app on `RELENTLESS_TEST_POSTGRES` (default the local server).
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub engine: Engine,
    pub admin: String,
    pub backend: Backend,
    /// The database's URL, for another process (see [`TestApp::peer`]).
    pub db_url: String,
    _stop: tokio::sync::watch::Sender<bool>,
    _db: Option<Arc<TestDatabase>>,
    _dir: Arc<tempfile::TempDir>,
}

impl Backend {
    /// `RELENTLESS_TEST_BACKEND=postgres` runs every test that does not choose on PostgreSQL.
    pub fn from_env() -> Backend {
        match std::env::var("RELENTLESS_TEST_BACKEND").as_deref() {
            Ok("postgres") => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_on(Backend::from_env()).await
    }

    pub async fn spawn_on(backend: Backend) -> TestApp {
        Self::spawn_with_on(
            backend,
            Config::default(),
            Arc::new(relentless_engine::channels::Router::outbox()),
        )
        .await
    }

    /// With settings and a channel of the test's choosing; the public URL is the server's own.
    pub async fn spawn_with(
        config: Config,
        channel: Arc<dyn relentless_engine::channels::Channel>,
    ) -> TestApp {
        Self::spawn_with_on(Backend::from_env(), config, channel).await
    }

    /// A server on a database with no team yet: what a first start looks like.
    pub async fn spawn_empty_on(backend: Backend) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let (url, db) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/test.db", dir.path().display()), None),
            Backend::Postgres => {
                let db = TestDatabase::create().await.unwrap();
                (db.url().to_string(), Some(Arc::new(db)))
            }
        };
        Self::start(
            backend,
            url,
            db,
            dir,
            Config::default(),
            Arc::new(relentless_engine::channels::Router::outbox()),
            Default::default(),
        )
        .await
    }

    pub async fn spawn_with_on(
        backend: Backend,
        config: Config,
        channel: Arc<dyn relentless_engine::channels::Channel>,
    ) -> TestApp {
        Self::spawn_full(backend, config, channel, Default::default()).await
    }

    /// With limits of the test's choosing (short timeouts, a higher failure allowance).
    pub async fn spawn_limited(config: Config, limits: relentless_web::limits::Limits) -> TestApp {
        Self::spawn_full(
            Backend::from_env(),
            config,
            Arc::new(relentless_engine::channels::Router::outbox()),
            limits,
        )
        .await
    }

    pub async fn spawn_full(
        backend: Backend,
        config: Config,
        channel: Arc<dyn relentless_engine::channels::Channel>,
        limits: relentless_web::limits::Limits,
    ) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let (url, db) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/test.db", dir.path().display()), None),
            Backend::Postgres => {
                let db = TestDatabase::create().await.unwrap();
                (db.url().to_string(), Some(Arc::new(db)))
            }
        };
        let app = Self::start(backend, url, db, dir, config, channel, limits).await;
        let (_, admin) = app
            .engine
            .init(InitInput {
                admin_email: "admin@example.com".into(),
                admin_password: None,
                team_name: Some("Test Team".into()),
                address: Some("1 Main St, Austin, TX".into()),
            })
            .await
            .unwrap();
        TestApp { admin, ..app }
    }

    /// Another process on the same database and data folder (PostgreSQL): its own store,
    /// engine, dispatcher and HTTP server, as a second `relentless serve` behind a load
    /// balancer would be. The admin's token works on both.
    pub async fn peer(&self) -> TestApp {
        assert_eq!(
            self.backend,
            Backend::Postgres,
            "one process per SQLite file"
        );
        let app = Self::start(
            self.backend,
            self.db_url.clone(),
            self._db.clone(),
            self._dir.clone(),
            (*self.engine.config).clone(),
            self.engine.channel.clone(),
            Default::default(),
        )
        .await;
        TestApp {
            admin: self.admin.clone(),
            ..app
        }
    }

    async fn start(
        backend: Backend,
        url: String,
        db: Option<Arc<TestDatabase>>,
        dir: Arc<tempfile::TempDir>,
        mut config: Config,
        channel: Arc<dyn relentless_engine::channels::Channel>,
        limits: relentless_web::limits::Limits,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        config.public_url = base.clone();
        config.data_dir = dir.path().join("data");
        let store: DynStore = match backend {
            Backend::Sqlite => Arc::new(SqliteStore::open(&url).await.unwrap()),
            Backend::Postgres => Arc::new(PostgresStore::open(&url, 4).await.unwrap()),
        };
        store.migrate().await.unwrap();
        let engine = Engine::new(store, channel, config);
        // Hearing other processes from the first request on (a no-op on SQLite).
        engine.start_listening().await.unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let mut r1 = rx.clone();
        tokio::spawn(Dispatcher::new(engine.clone()).run(async move {
            let _ = r1.wait_for(|s| *s).await;
        }));
        let mut state = relentless_web::AppState::new(engine.clone());
        state.limits = Arc::new(limits);
        let mut r2 = rx;
        tokio::spawn(relentless_web::launch_with_tcp_listener(
            listener,
            state,
            async move {
                let _ = r2.wait_for(|s| *s).await;
            },
        ));
        TestApp {
            base,
            client: reqwest::Client::new(),
            engine,
            admin: String::new(),
            backend,
            db_url: url,
            _stop: stop,
            _db: db,
            _dir: dir,
        }
    }

    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.call(token, Method::GET, path, None).await
    }
    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(token, Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(token, Method::PATCH, path, Some(body)).await
    }
    pub async fn put(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(token, Method::PUT, path, Some(body)).await
    }
    pub async fn delete(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.call(token, Method::DELETE, path, None).await
    }

    /// Makes the lead six minutes old (it came in then) and wakes the dispatcher: its
    /// speed-to-lead call, five minutes in, is due now.
    pub async fn make_speed_to_lead_call_due(&self, lead: i64) {
        let mut tx = self.engine.store.write().await.unwrap();
        tx.shift_lead_back(lead, 6 * 60_000).await.unwrap();
        tx.commit().await.unwrap();
        self.engine.wake.notify_one();
    }

    /// Waits (up to 20 s) for a task of the lead's with this status that `pick` chooses.
    pub async fn wait_task(&self, lead: i64, status: &str, pick: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (_, t) = self
                .get(
                    &self.admin,
                    &format!("/api/v1/tasks?assignee=all&status={status}&lead_id={lead}"),
                )
                .await;
            if let Some(task) = t["items"]
                .as_array()
                .and_then(|i| i.iter().find(|x| pick(x)))
            {
                return task.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {status} task of lead {lead} as wanted: {t}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Adds a user who can sign in to the app with `password`.
    pub async fn add_user(&self, email: &str, name: &str, role: &str, password: &str) {
        let (s, u) = self
            .post(
                &self.admin,
                "/api/v1/users",
                serde_json::json!({"email": email, "name": name, "role": role, "password": password}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
    }

    /// Adds an agent and returns (id, token).
    pub async fn agent(&self, email: &str) -> (i64, String) {
        let (s, u) = self
            .post(
                &self.admin,
                "/api/v1/users",
                serde_json::json!({"email": email, "name": "Agent Smith", "role": "agent"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        (
            u["id"].as_i64().unwrap(),
            self.engine.create_token(email).await.unwrap(),
        )
    }

    pub async fn touches(&self, lead: i64) -> Vec<Value> {
        let (s, v) = self
            .get(&self.admin, &format!("/api/v1/leads/{lead}/touches"))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["items"].as_array().unwrap().clone()
    }

    /// Waits (up to 10 s) until `f` holds for the lead's touches.
    pub async fn wait_touches(
        &self,
        lead: i64,
        what: &str,
        f: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        for _ in 0..200 {
            let t = self.touches(lead).await;
            if f(&t) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for: {what}; touches: {:#?}",
            self.touches(lead).await
        );
    }

    pub async fn outbox_for(&self, lead: i64) -> Vec<Value> {
        let (_, v) = self.get(&self.admin, "/api/v1/outbox?limit=200").await;
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["lead_id"] == lead)
            .cloned()
            .collect()
    }
}

/// A zone where it is now between 01:00 and 06:59 local: outside every sending window.
pub fn night_zone() -> String {
    relentless_core::schedule::zone_with_local_hour(jiff::Timestamp::now(), 1..=6)
        .expect("some zone is at night")
}

/// A zone where it is now between 10:00 and 18:59 local: inside the default window.
pub fn day_zone() -> String {
    relentless_core::schedule::zone_with_local_hour(jiff::Timestamp::now(), 10..=18)
        .expect("some zone is in the day")
}
