//! Group commit for writes that arrive together (tracking hits, new leads).
//!
//! Each write is answered only once it is committed, but the writes that arrive while a group
//! is being written wait for it and then go together in the next transaction. On SQLite's
//! single writer this shares what every transaction pays once (taking the writer, the commit
//! and its WAL frames) among the whole group. The first write to find nobody writing starts a
//! writer on the writer thread, which writes groups until none is waiting. A group whose
//! transaction fails (or panics) is rolled back whole and its writes are tried one by one, so
//! one bad write costs the others nothing and gets its own error.

use crate::{Engine, Error, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The most writes in one transaction.
const MAX_GROUP: usize = 500;

/// What writing a group gives: the answer of each write, in order, or the error that rolled
/// the whole group back.
pub(crate) type Written<R> = Pin<Box<dyn Future<Output = Result<Vec<Result<R>>>> + Send>>;

/// Writes a group in one transaction.
pub(crate) type WriteGroup<T, R> = fn(Engine, Arc<Vec<T>>) -> Written<R>;

pub(crate) struct Groups<T, R> {
    queue: Mutex<Queue<T, R>>,
    write: WriteGroup<T, R>,
}

struct Queue<T, R> {
    pending: Vec<(T, oneshot::Sender<Result<R>>)>,
    writing: bool,
}

impl<T: Send + Sync + 'static, R: Send + 'static> Groups<T, R> {
    pub(crate) fn new(write: WriteGroup<T, R>) -> Groups<T, R> {
        Groups {
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                writing: false,
            }),
            write,
        }
    }

    /// Writes `item` with whatever else arrives meanwhile; answers once it is committed.
    pub(crate) async fn submit(self: &Arc<Self>, engine: &Engine, item: T) -> Result<R> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.queue.lock().expect("group queue");
            queue.pending.push((item, reply));
            !std::mem::replace(&mut queue.writing, true)
        };
        if start {
            // Spawned: a client that hangs up must not cancel the others' write.
            let (groups, e) = (self.clone(), engine.clone());
            engine.spawn_on_writer(async move { groups.drain(&e).await });
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Error::Internal("the write was dropped".into())))
    }

    /// Writes groups until none is waiting: each is what arrived while the last was written.
    /// On PostgreSQL each write keeps a transaction of its own, as before groups: there is no
    /// single writer to share, and transactions of several processes that each lock many rows
    /// in arrival order could deadlock one another.
    async fn drain(&self, engine: &Engine) {
        let most = if engine.store.single_writer() {
            usize::MAX
        } else {
            1
        };
        loop {
            let group = {
                let mut queue = self.queue.lock().expect("group queue");
                if queue.pending.is_empty() {
                    queue.writing = false;
                    return;
                }
                let n = queue.pending.len().min(most);
                queue.pending.drain(..n).collect::<Vec<_>>()
            };
            self.write_group(engine, group).await;
        }
    }

    /// Writes `group` (tests give it directly, to know what went together).
    pub(crate) async fn write_group(
        &self,
        engine: &Engine,
        mut group: Vec<(T, oneshot::Sender<Result<R>>)>,
    ) {
        while !group.is_empty() {
            let rest = group.split_off(group.len().min(MAX_GROUP));
            let (items, replies): (Vec<T>, Vec<_>) = group.into_iter().unzip();
            let n = items.len();
            match self.attempt(engine, items).await {
                (Ok(answers), _) => {
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(answer);
                    }
                }
                (Err(e), Some(items)) if n > 1 && one_write_may_be_to_blame(&e) => {
                    tracing::warn!(error = %e, writes = n, "a group write failed; writing each alone");
                    for (item, reply) in items.into_iter().zip(replies) {
                        let answer = match self.attempt(engine, vec![item]).await {
                            (Ok(mut answers), _) => answers
                                .pop()
                                .unwrap_or_else(|| Err(Error::Internal("no answer".into()))),
                            (Err(e), _) => Err(e),
                        };
                        let _ = reply.send(answer);
                    }
                }
                (Err(e), _) => {
                    let message = e.to_string();
                    let mut e = Some(e);
                    for reply in replies {
                        let _ = reply.send(Err(e
                            .take()
                            .unwrap_or_else(|| Error::Internal(message.clone()))));
                    }
                }
            }
            group = rest;
        }
    }

    /// One transaction for `items`, a panic in it turned into an error (the transaction is
    /// dropped, so rolled back); the items come back for a retry.
    async fn attempt(
        &self,
        engine: &Engine,
        items: Vec<T>,
    ) -> (Result<Vec<Result<R>>>, Option<Vec<T>>) {
        let items = Arc::new(items);
        let result = tokio::spawn((self.write)(engine.clone(), items.clone()))
            .await
            .unwrap_or_else(|e| Err(Error::Internal(format!("writing a group: {e}"))));
        // The task is over, so its reference to the items is gone.
        (result, Arc::try_unwrap(items).ok())
    }
}

/// Whether a group's error may come from one of its writes (a refusal, a broken rule, a
/// panic), so that writing each alone is worth it; not when the database itself is busy or
/// unreachable, where hundreds of retries one after another would only hold up what queues.
fn one_write_may_be_to_blame(e: &Error) -> bool {
    !matches!(e, Error::Store(s) if s.is_unavailable())
}
