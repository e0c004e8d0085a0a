//! Channels deliver automatic touches. Each channel is one folder; the built-in outbox
//! records messages in the database and delivers nothing.

pub mod outbox;

use async_trait::async_trait;
use relentless_core::types::Channel as ChannelKind;
use relentless_store::NewOutbox;

/// A rendered message ready to go.
#[derive(Debug, Clone)]
pub struct Message {
    pub touch_id: Option<i64>,
    pub lead_id: i64,
    pub channel: ChannelKind,
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
}

/// What a channel did with a message.
#[derive(Debug, Clone)]
pub struct Sent {
    pub provider_id: Option<String>,
    /// A copy to keep in the outbox, written in the same transaction as the touch's status.
    pub outbox: Option<NewOutbox>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The provider never took the message; it may be tried again later.
    #[error("not sent, will retry: {0}")]
    Transient(String),
    /// The provider refused it for good.
    #[error("refused: {0}")]
    Permanent(String),
    /// The request went out and no answer came: the message may have been sent.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

#[async_trait]
pub trait Channel: Send + Sync + 'static {
    async fn send(&self, msg: &Message) -> Result<Sent, SendError>;
    /// Shown in logs and the outbox.
    fn name(&self) -> &'static str;
}
