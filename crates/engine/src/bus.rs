//! The in-process event bus: notifications for agents (engagement, reply, task_due,
//! escalation). Each notification is first stored (so its id survives restarts and a client
//! can resume with Last-Event-ID), then published here for live streams.

use relentless_store::Notification;
use tokio::sync::broadcast;

#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Notification>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new()
    }
}

impl Bus {
    pub fn new() -> Bus {
        let (tx, _) = broadcast::channel(4096);
        Bus { tx }
    }
    pub fn publish(&self, n: Notification) {
        metrics::counter!("relentless_notifications_total", "event" => n.event.clone())
            .increment(1);
        let _ = self.tx.send(n);
    }
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.tx.subscribe()
    }
}
