//! The built-in outbox: messages are recorded, shown in the app and at `GET /api/v1/outbox`,
//! and clearly marked as not delivered. The default when no provider is configured, and the
//! only channel demo data ever uses.

use super::{Channel, Message, SendError, Sent};
use async_trait::async_trait;
use relentless_store::NewOutbox;

pub struct Outbox;

#[async_trait]
impl Channel for Outbox {
    async fn send(&self, m: &Message) -> Result<Sent, SendError> {
        Ok(Sent {
            provider_id: None,
            outbox: Some(NewOutbox {
                channel: m.channel,
                to_addr: m.to.clone(),
                subject: m.subject.clone(),
                body: m.body.clone(),
                lead_id: Some(m.lead_id),
                touch_id: m.touch_id,
            }),
        })
    }
    fn name(&self) -> &'static str {
        "outbox"
    }
    fn is_local(&self, _kind: relentless_core::types::Channel) -> bool {
        true
    }
}
