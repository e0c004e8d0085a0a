//! Channels deliver automatic touches. Each channel is one folder; the built-in outbox
//! records messages in the database and delivers nothing.

pub mod email;
pub mod outbox;
pub mod sms;

use async_trait::async_trait;
use relentless_core::types::Channel as ChannelKind;
use relentless_store::NewOutbox;

/// A rendered message ready to go.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub touch_id: Option<i64>,
    pub lead_id: i64,
    pub channel: ChannelKind,
    /// E.164 phone for a text, address for an email.
    pub to: String,
    pub subject: Option<String>,
    /// The plain-text body (for email: with the footer and unsubscribe link).
    pub body: String,
    /// Email only: the HTML body (tracked links, open pixel).
    pub html: Option<String>,
    /// Email only: the display name in `From: "{from_name}" <EMAIL_FROM>` (the agent).
    pub from_name: String,
    /// Email only: `Reply-To` (`r+{token}@{reply domain}` or the agent's own address).
    pub reply_to: Option<String>,
    /// Email only: the `Message-ID`, derived from the touch so a retry is the same message.
    pub message_id: Option<String>,
    /// Extra headers, e.g. `List-Unsubscribe` and `List-Unsubscribe-Post`.
    pub headers: Vec<(String, String)>,
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
    /// The address itself is bad (an invalid or unreachable number, a mailbox that does not
    /// exist): the lead's phone or email is flagged bad and the touch fails.
    #[error("bad address: {0}")]
    BadAddress(String),
    /// The request went out and no answer came: the message may have been sent.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

#[async_trait]
pub trait Channel: Send + Sync + 'static {
    async fn send(&self, msg: &Message) -> Result<Sent, SendError>;
    /// Shown in logs and the outbox.
    fn name(&self) -> &'static str;
    /// Whether messages of this kind only ever land in the database (the built-in outbox):
    /// the dispatcher then records them in the transaction that claims them, since nothing
    /// outside the database can have happened if that transaction rolls back.
    fn is_local(&self, _kind: ChannelKind) -> bool {
        false
    }
    /// How many messages of this kind the channel has in flight at once, when it limits them
    /// itself (the SMTP channel's sessions): the dispatcher waits for room before it starts
    /// a message, so that a message queued behind the limit is not started after its send
    /// deadline. `None`: no limit of its own.
    fn max_in_flight(&self, _kind: ChannelKind) -> Option<usize> {
        None
    }
}

/// Routes each message to the channel for its kind: texts to `sms`, emails to `email`.
pub struct Router {
    pub email: std::sync::Arc<dyn Channel>,
    pub sms: std::sync::Arc<dyn Channel>,
}

impl Router {
    /// Both kinds to the built-in outbox.
    pub fn outbox() -> Router {
        Router {
            email: std::sync::Arc::new(outbox::Outbox),
            sms: std::sync::Arc::new(outbox::Outbox),
        }
    }
}

#[async_trait]
impl Channel for Router {
    async fn send(&self, msg: &Message) -> Result<Sent, SendError> {
        match msg.channel {
            ChannelKind::Email => self.email.send(msg).await,
            _ => self.sms.send(msg).await,
        }
    }
    fn is_local(&self, kind: ChannelKind) -> bool {
        match kind {
            ChannelKind::Email => self.email.is_local(kind),
            _ => self.sms.is_local(kind),
        }
    }
    fn max_in_flight(&self, kind: ChannelKind) -> Option<usize> {
        match kind {
            ChannelKind::Email => self.email.max_in_flight(kind),
            _ => self.sms.max_in_flight(kind),
        }
    }
    fn name(&self) -> &'static str {
        "router"
    }
}
