//! Webhooks: each authenticated its own way, none with a bearer token.
//! - Twilio (`/webhooks/twilio/sms`, `/webhooks/twilio/status`): `X-Twilio-Signature` over the
//!   public URL and the form parameters; a bad signature gets 403 and changes nothing.
//! - Inbound email (`/webhooks/email/inbound?token=`): the reply token, else 404.

use crate::AppState;
use crate::auth::ClientIp;
use crate::error::{ApiError, ApiResult};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

pub mod intake;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/leads/{token}", post(intake::post_lead))
        .route(
            "/webhooks/leads/{token}/thanks",
            axum::routing::get(intake::thanks),
        )
        .route("/webhooks/twilio/sms", post(twilio_sms))
        .route("/webhooks/twilio/status", post(twilio_status))
        .route("/webhooks/email/inbound", post(email_inbound))
}

/// Parses a form body and checks Twilio's signature against the configured public URL. An
/// address that sent too many bad signatures this minute is refused (429) before the check;
/// each bad signature counts.
async fn twilio_form(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Vec<(String, String)>> {
    state
        .limits
        .refuse_failing_ip(&state.engine.store, ip)
        .await?;
    let params: Vec<(String, String)> = relentless_core::twilio::parse_form(body)
        .ok_or_else(|| ApiError::bad_request("the body is not form data"))?;
    let Some(auth) = state.engine.config.twilio_auth_token.as_deref() else {
        return Err(ApiError::forbidden(
            "Twilio webhooks are off: RELENTLESS_TWILIO_AUTH_TOKEN is not set",
        ));
    };
    let url = format!(
        "{}{}",
        state.engine.config.base(),
        uri.path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(uri.path())
    );
    let sig = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !relentless_core::twilio::verify(auth, &url, &params, sig) {
        tracing::warn!("Twilio webhook with a missing or wrong signature refused");
        state
            .limits
            .failed_credential(&state.engine.store, ip)
            .await;
        return Err(ApiError::forbidden("bad X-Twilio-Signature"));
    }
    Ok(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn twiml(message: Option<String>) -> Response {
    let body = match message {
        Some(m) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            xml_escape(&m)
        ),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".to_string(),
    };
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

async fn twilio_sms(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let params = twilio_form(&state, ip, &uri, &headers, &body).await?;
    let from = param(&params, "From").ok_or_else(|| ApiError::field("From", "is required"))?;
    let text = param(&params, "Body").unwrap_or("");
    let sid = param(&params, "MessageSid")
        .or_else(|| param(&params, "SmsSid"))
        .unwrap_or("");
    let reply = state.engine.inbound_sms(from, text, sid).await?;
    Ok(twiml(reply))
}

async fn twilio_status(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let params = twilio_form(&state, ip, &uri, &headers, &body).await?;
    let sid =
        param(&params, "MessageSid").ok_or_else(|| ApiError::field("MessageSid", "is required"))?;
    let status = param(&params, "MessageStatus")
        .or_else(|| param(&params, "SmsStatus"))
        .unwrap_or("");
    state
        .engine
        .sms_status(sid, status, param(&params, "ErrorCode"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn email_inbound(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(q): Query<TokenQuery>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    state
        .limits
        .refuse_failing_ip(&state.engine.store, ip)
        .await?;
    let expected = state.engine.config.inbound_email_token.as_deref();
    let given = q.token.as_deref().unwrap_or("");
    // Constant-time comparison: the token is the only thing guarding this webhook.
    let ok = expected.is_some_and(|e| {
        e.len() == given.len()
            && e.bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        state.engine.inbound_email(&body).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    // Else it may be an intake's token: a lead-notification email.
    if given.len() == 32 && given.bytes().all(|b| b.is_ascii_hexdigit()) {
        state
            .limits
            .check(&state.engine.store, &format!("intake:{given}"), 120)
            .await?;
        match state.engine.intake_email(given, &body).await {
            Ok(_) => return Ok(StatusCode::NO_CONTENT),
            Err(relentless_engine::Error::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    state
        .limits
        .failed_credential(&state.engine.store, ip)
        .await;
    Err(ApiError::not_found())
}
