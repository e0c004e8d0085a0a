//! `GET /api/v1/notifications/stream`: Server-Sent Events for the token's user. Every
//! notification is stored before it is published, so its id increases per user, survives
//! restarts, and a client that reconnects with `Last-Event-ID` gets what it missed. A user
//! may have `Limits::sse_per_user` streams open at once (8); one more gets 429.

use crate::AppState;
use crate::auth::CurrentUser;
use crate::extract::Query;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use relentless_store::Notification;
use std::convert::Infallible;
use std::time::Duration;
use tokio_stream::wrappers::BroadcastStream;

fn event(n: &Notification) -> Event {
    let data = serde_json::json!({
        "lead_id": n.lead_id,
        "lead_name": n.lead_name,
        "kind": n.kind,
        "at": super::iso(n.at),
        "detail": n.detail,
    });
    Event::default()
        .event(n.event.clone())
        .id(n.id.to_string())
        .data(data.to_string())
}

#[derive(serde::Deserialize)]
pub struct StreamQuery {
    last_event_id: Option<i64>,
}

pub async fn stream(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<axum::response::Response, crate::error::ApiError> {
    let user_id = user.0.id;
    // At most `sse_per_user` streams per user: the slot is given back when the stream ends.
    let slot = state.limits.open_stream(user_id)?;
    // The header is what a reconnecting EventSource sends; the query parameter lets the web
    // app resume where the previous page left off when the agent moves between pages.
    let last: i64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(q.last_event_id)
        .unwrap_or(-1);
    // Subscribe first, then read the backlog: nothing published in between is lost, and
    // anything seen twice is dropped by id.
    let live = BroadcastStream::new(state.engine.bus.subscribe());
    let backlog = if last >= 0 {
        match state.engine.store.read().await {
            Ok(mut tx) => tx
                .notifications_after(user_id, last, 1000)
                .await
                .unwrap_or_default(),
            Err(_) => vec![],
        }
    } else {
        vec![]
    };
    let mut high = backlog.last().map(|n| n.id).unwrap_or(last);
    let s: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> = Box::pin(
        stream::iter(backlog.into_iter().map(|n| Ok(event(&n))))
            .chain(live.filter_map(move |m| {
                let out = match m {
                    Ok(n) if n.user_id == user_id && n.id > high => {
                        high = n.id;
                        Some(Ok(event(&n)))
                    }
                    _ => None,
                };
                async move { out }
            }))
            // The stream ends when the process shuts down; the client reconnects elsewhere with
            // Last-Event-ID and loses nothing.
            .take_until(state.engine.closed())
            .map(move |e| {
                let _held = &slot;
                e
            }),
    );
    let mut res = Sse::new(s)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    res.headers_mut()
        .insert("x-accel-buffering", "no".parse().expect("static header"));
    Ok(res)
}
