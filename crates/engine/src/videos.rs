//! Personal videos (SPEC §1, §6): an agent uploads a recording for a lead; the lead gets a
//! short text (or email) with a `/v/{token}` link; a play on that page is engagement.

use crate::channels::Message;
use crate::{Engine, Error, Result, now_ms, random_token};
use relentless_core::types::{Channel, Role};
use relentless_store::{Tracking, User, Video};

/// The largest upload accepted.
pub const MAX_VIDEO_BYTES: usize = 200 * 1024 * 1024;

impl Engine {
    /// Stores an uploaded video for a lead under `{data_dir}/videos/`.
    pub async fn save_video(
        &self,
        user: &User,
        lead_id: i64,
        bytes: &[u8],
        content_type: &str,
    ) -> Result<Video> {
        let lead = self.lead_for(user, lead_id).await?;
        if !(content_type.starts_with("video/") || content_type == "application/octet-stream") {
            return Err(Error::field(
                "content_type",
                format!("'{content_type}' is not a video type (video/webm, video/mp4, …)"),
            ));
        }
        if bytes.is_empty() {
            return Err(Error::field("body", "the video is empty"));
        }
        if bytes.len() > MAX_VIDEO_BYTES {
            return Err(Error::field(
                "body",
                format!("a video is at most {} MB", MAX_VIDEO_BYTES / 1024 / 1024),
            ));
        }
        let ext = match content_type {
            t if t.contains("mp4") => "mp4",
            t if t.contains("quicktime") => "mov",
            _ => "webm",
        };
        let file = format!("{}.{ext}", random_token());
        let dir = self.config.data_dir.join("videos");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::Internal(format!("cannot create {}: {e}", dir.display())))?;
        // Write to a temporary name, then rename: a reader never sees half a file.
        let tmp = dir.join(format!("{file}.part"));
        tokio::fs::write(&tmp, bytes)
            .await
            .map_err(|e| Error::Internal(format!("cannot write the video: {e}")))?;
        tokio::fs::rename(&tmp, dir.join(&file))
            .await
            .map_err(|e| Error::Internal(format!("cannot store the video: {e}")))?;
        let mut v = Video {
            id: 0,
            lead_id: Some(lead.id),
            user_id: Some(user.id),
            file,
            content_type: content_type.to_string(),
            size: bytes.len() as i64,
            created_at: now_ms(),
        };
        let mut tx = self.store.write().await?;
        v.id = tx.video_insert(&v).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// Sends a lead the link to a video: by text when the lead can be texted, else by email.
    /// Returns the page URL.
    pub async fn send_video(
        &self,
        user: &User,
        lead_id: i64,
        video_id: i64,
        channel: Option<Channel>,
    ) -> Result<String> {
        let lead = self.lead_for(user, lead_id).await?;
        let mut tx = self.store.write().await?;
        let video = tx
            .video(video_id)
            .await?
            .filter(|v| v.lead_id == Some(lead.id))
            .ok_or_else(|| Error::field("video_id", "no such video for this lead"))?;
        if user.role != Role::Admin
            && video.user_id != Some(user.id)
            && lead.assigned_to != Some(user.id)
        {
            return Err(Error::NotFound);
        }
        // 32 digits, not a tracking token's 44: the link goes out in a text, where every
        // character counts toward a segment, and a video is sent one at a time (nothing to
        // gain from tokens that sort by time).
        let token = random_token();
        tx.tracking_insert(&Tracking {
            token: token.clone(),
            kind: "video".into(),
            lead_id: lead.id,
            touch_id: None,
            links: vec![],
            video_id: Some(video.id),
            created_at: now_ms(),
        })
        .await?;
        tx.commit().await?;
        let url = format!("{}/v/{token}", self.config.base());
        let first = if lead.first_name.is_empty() {
            "there".to_string()
        } else {
            lead.first_name.clone()
        };
        let (channel, to) = match channel {
            Some(Channel::Text) if !lead.can_text() => {
                return Err(Error::field("channel", "the lead cannot be texted"));
            }
            Some(Channel::Email) if !lead.can_email() => {
                return Err(Error::field("channel", "the lead cannot be emailed"));
            }
            Some(Channel::Email) => (Channel::Email, lead.email.clone().unwrap_or_default()),
            _ if lead.can_text() => (Channel::Text, lead.phone.clone().unwrap_or_default()),
            _ if lead.can_email() => (Channel::Email, lead.email.clone().unwrap_or_default()),
            _ => return Err(Error::field("lead", "the lead cannot be texted or emailed")),
        };
        let body = format!(
            "Hi {first}, it's {} - I made you a quick video: {url}",
            user.name
        );
        self.send_direct(Message {
            touch_id: None,
            lead_id: lead.id,
            channel,
            to,
            subject: (channel == Channel::Email)
                .then(|| format!("A quick video from {}", user.name)),
            body,
            from_name: user.name.clone(),
            ..Default::default()
        })
        .await?;
        Ok(url)
    }
}
