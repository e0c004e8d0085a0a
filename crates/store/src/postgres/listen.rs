//! `LISTEN relentless_wake, relentless_events` on a connection of its own, turned into
//! [`Signal`]s for every receiver in this process.
//!
//! A NOTIFY is delivered when its transaction commits, so a signal never announces something
//! other processes cannot read yet. Payloads carry the sending store's origin; this store's
//! own are skipped (it already woke and published in-process). If the connection drops,
//! notifications sent meanwhile are lost: on reconnecting the listener wakes the dispatcher
//! anyway and publishes the notifications stored since the last one it saw.

use super::{EVENTS_CHANNEL, NOTIFICATION_COLS, WAKE_CHANNEL};
use crate::{Notification, Result, Signal};
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgNotification, PgPoolOptions};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub(super) struct Listener {
    tx: broadcast::Sender<Signal>,
    task: JoinHandle<()>,
}

impl Listener {
    /// Listens before returning: whatever commits after this call is heard.
    pub(super) async fn start(url: &str, pool: PgPool, origin: String) -> Result<Listener> {
        // One connection, kept open; the pool only reconnects it.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy(url)?;
        let mut listener = PgListener::connect_with(&listen_pool).await?;
        listener.listen_all([WAKE_CHANNEL, EVENTS_CHANNEL]).await?;
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM notifications")
            .fetch_one(&pool)
            .await?;
        let (tx, _) = broadcast::channel(4096);
        let task = tokio::spawn(run(
            listener,
            Loader {
                pool,
                origin,
                tx: tx.clone(),
                last,
            },
        ));
        Ok(Listener { tx, task })
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.tx.subscribe()
    }

    /// Ends the task; receivers then see the channel closed.
    pub(super) fn stop(self) {
        self.task.abort();
    }
}

struct Loader {
    pool: PgPool,
    origin: String,
    tx: broadcast::Sender<Signal>,
    /// The highest notification id heard of (ours included).
    last: i64,
}

async fn run(mut listener: PgListener, mut loader: Loader) {
    loop {
        match listener.try_recv().await {
            Ok(Some(first)) => {
                let mut batch = vec![first];
                while let Some(n) = listener.next_buffered() {
                    batch.push(n);
                }
                loader.handle(batch).await;
            }
            Ok(None) => {
                tracing::warn!("lost the PostgreSQL LISTEN connection; reconnected");
                loader.catch_up().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "PostgreSQL LISTEN failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                loader.catch_up().await;
            }
        }
    }
}

impl Loader {
    async fn handle(&mut self, batch: Vec<PgNotification>) {
        let mut wake = false;
        let mut ids = Vec::new();
        for n in &batch {
            match n.channel() {
                WAKE_CHANNEL => wake |= n.payload() != self.origin,
                EVENTS_CHANNEL => {
                    let Some((origin, id)) = n
                        .payload()
                        .rsplit_once(':')
                        .and_then(|(o, id)| Some((o, id.parse::<i64>().ok()?)))
                    else {
                        continue;
                    };
                    self.last = self.last.max(id);
                    if origin != self.origin {
                        ids.push(id);
                    }
                }
                _ => {}
            }
        }
        if wake {
            let _ = self.tx.send(Signal::Wake);
        }
        if ids.is_empty() {
            return;
        }
        let found: Result<Vec<Notification>, sqlx::Error> = sqlx::query_as(sqlx::AssertSqlSafe(
            format!("SELECT {NOTIFICATION_COLS} FROM notifications WHERE id = ANY($1) ORDER BY id"),
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await;
        match found {
            Ok(ns) => {
                for n in ns {
                    let _ = self.tx.send(Signal::Notification(n));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not load notifications from other processes")
            }
        }
    }

    /// After a gap: wake (touches may have been created) and publish what was stored since.
    async fn catch_up(&mut self) {
        let _ = self.tx.send(Signal::Wake);
        let missed: Result<Vec<Notification>, sqlx::Error> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {NOTIFICATION_COLS} FROM notifications WHERE id > $1 ORDER BY id LIMIT 1000"
            )))
            .bind(self.last)
            .fetch_all(&self.pool)
            .await;
        if let Ok(ns) = missed {
            for n in ns {
                self.last = self.last.max(n.id);
                let _ = self.tx.send(Signal::Notification(n));
            }
        }
    }
}
