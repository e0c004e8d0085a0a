//! Tracking and the lead-facing pages: the open pixel, click redirects (only ever to the link
//! stored for that message), one-click unsubscribe (RFC 8058) and the personal-video page.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use relentless_engine::inbound::HitInfo;
use tower::ServiceExt;

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/t/{token}/o.gif", get(open))
        .route("/t/{token}/c/{n}", get(click))
        .route("/u/{token}", get(unsubscribe_page).post(unsubscribe))
        .route("/v/{token}", get(video_page))
        .route("/v/{token}/file", get(video_file))
        .route("/v/{token}/events", axum::routing::post(video_event))
}

fn ua(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// 44 hex digits ([`relentless_engine::tracking_token`]), or 32 for a token made before
/// that format (in emails already sent).
fn valid_token(t: &str) -> bool {
    (t.len() == 44 || t.len() == 32) && t.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn open(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let token = token.trim_end_matches(".gif").to_string();
    if valid_token(&token)
        && let Err(e) = state
            .engine
            .track_open(
                &token,
                HitInfo {
                    user_agent: ua(&headers),
                },
            )
            .await
    {
        tracing::debug!(error = %e, "open not recorded");
    }
    // The pixel is served whatever happened: a mail client shows no broken image.
    (
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store, max-age=0"),
        ],
        PIXEL,
    )
        .into_response()
}

async fn click(
    State(state): State<AppState>,
    Path((token, n)): Path<(String, usize)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !valid_token(&token) {
        return Err(ApiError::not_found());
    }
    let url = state
        .engine
        .track_click(
            &token,
            n,
            HitInfo {
                user_agent: ua(&headers),
            },
        )
        .await?;
    // Only http(s) links that were stored when the message was sent.
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(ApiError::not_found());
    }
    Ok(Redirect::to(&url).into_response())
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{title}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}}button{{font-size:1.1rem;padding:.7rem 1.2rem;border-radius:.5rem;border:0;background:#1f4fd1;color:#fff}}video{{width:100%;border-radius:.5rem;background:#000}}</style></head><body>{body}</body></html>"
    ))
}

async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Html<String>> {
    // GET never unsubscribes: link scanners fetch every URL. The button (or the one-click POST
    // of RFC 8058 from the mail client) does.
    let mut tx = state.engine.store.read().await?;
    tx.tracking(&token).await?.ok_or_else(ApiError::not_found)?;
    Ok(page(
        "Unsubscribe",
        &format!(
            "<h1>Unsubscribe</h1><p>Stop receiving these emails?</p><form method=\"post\" action=\"/u/{token}\"><button type=\"submit\">Unsubscribe</button></form>"
        ),
    ))
}

async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Html<String>> {
    state.engine.unsubscribe(&token).await?;
    Ok(page(
        "Unsubscribed",
        "<h1>You are unsubscribed</h1><p>You will not receive these emails any more.</p>",
    ))
}

async fn video_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Html<String>> {
    let mut tx = state.engine.store.read().await?;
    let t = tx
        .tracking(&token)
        .await?
        .filter(|t| t.kind == "video")
        .ok_or_else(ApiError::not_found)?;
    let lead = tx.lead(t.lead_id).await?.ok_or_else(ApiError::not_found)?;
    let agent = match lead.assigned_to {
        Some(id) => tx.user(id).await?,
        None => None,
    };
    let name = agent.as_ref().map(|a| a.name.clone()).unwrap_or_default();
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let first = esc(&lead.first_name);
    Ok(page(
        "A video for you",
        &format!(
            "<h1>Hi {first}, a quick video from {agent}</h1><video id=\"v\" controls playsinline preload=\"metadata\" src=\"/v/{token}/file\"></video>\
<script>(function(){{var v=document.getElementById('v'),sent={{}};function s(e){{if(sent[e])return;sent[e]=1;fetch('/v/{token}/events',{{method:'POST',headers:{{'content-type':'application/json'}},body:JSON.stringify({{event:e}})}});}}\
v.addEventListener('play',function(){{s('play')}});v.addEventListener('ended',function(){{s('ended')}});v.addEventListener('timeupdate',function(){{if(v.duration&&v.currentTime/v.duration>0.5)s('progress')}});}})();</script>",
            agent = esc(&name)
        ),
    ))
}

async fn video_file(
    State(state): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let mut tx = state.engine.store.read().await?;
    let t = tx
        .tracking(&token)
        .await?
        .filter(|t| t.kind == "video")
        .ok_or_else(ApiError::not_found)?;
    let video = tx
        .video(t.video_id.ok_or_else(ApiError::not_found)?)
        .await?
        .ok_or_else(ApiError::not_found)?;
    drop(tx);
    let path = state
        .engine
        .config
        .data_dir
        .join("videos")
        .join(&video.file);
    // ServeFile answers Range requests (206) so phones can seek and stream.
    // The file's extension (.webm, .mp4, .mov) gives its content type.
    let res = tower_http::services::ServeFile::new(path)
        .oneshot(req)
        .await
        .map_err(|_| ApiError::not_found())?;
    Ok(res.map(Body::new))
}

async fn video_event(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("send {\"event\": \"play\"}"))?;
    let event = v.get("event").and_then(|e| e.as_str()).unwrap_or("");
    if !matches!(event, "play" | "progress" | "ended") {
        return Err(ApiError::field("event", "must be play, progress or ended"));
    }
    state
        .engine
        .track_video(
            &token,
            event,
            HitInfo {
                user_agent: ua(&headers),
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
