//! `POST /webhooks/leads/{intake_token}`: a lead from a web form (form-encoded, then a
//! redirect to the intake's thank-you page) or from a lead source (JSON). The token is the
//! authentication; unknown or revoked tokens get 404 and nothing is stored. A honeypot field,
//! per-token and per-IP rate limits and a size limit keep spam out; a rejected post changes
//! nothing and says why.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use relentless_engine::intake::{input_from_fields, needs_contact};
use serde_json::{Value, json};
use std::net::SocketAddr;

/// The largest intake post.
pub const INTAKE_BODY_LIMIT: usize = 64 * 1024;
/// A field real people never fill: bots do.
pub const HONEYPOT: &str = "hp_website";

pub async fn post_lead(
    State(state): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let is_form = ct.starts_with("application/x-www-form-urlencoded");
    if !is_form && !ct.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            "post the lead as application/json or application/x-www-form-urlencoded",
        ));
    }
    // Limits before any work: per token, then per address.
    if let Some(ip) = &ip {
        state
            .limits
            .check(&state.engine.store, &format!("intake-ip:{ip}"), 30)
            .await?;
    }
    state
        .limits
        .check(&state.engine.store, &format!("intake:{token}"), 120)
        .await?;
    let body = axum::body::to_bytes(req.into_body(), INTAKE_BODY_LIMIT)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload too large",
                format!("an intake post is at most {} KB", INTAKE_BODY_LIMIT / 1024),
            )
        })?;
    let fields = parse_fields(&body, is_form)?;
    if fields
        .iter()
        .any(|(k, v)| k == HONEYPOT && !v.trim().is_empty())
    {
        return Err(ApiError::field(
            HONEYPOT,
            "rejected as spam: this field is hidden from people and must stay empty",
        ));
    }
    // A form keeps what a person typed even when it is invalid (as a note, flagged); a source
    // posting JSON gets a clear error instead.
    let (input, consents) = input_from_fields(&fields, is_form);
    if let Some(e) = needs_contact(&input) {
        return Err(e.into());
    }
    let (created, intake) = state
        .engine
        .intake_lead(&token, input, consents, ip)
        .await?;
    if is_form {
        let to = intake
            .thank_you_url
            .clone()
            .unwrap_or_else(|| format!("/webhooks/leads/{token}/thanks"));
        return Ok(Redirect::to(&to).into_response());
    }
    let status = if created.merged {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        axum::Json(json!({"id": created.lead.id, "merged": created.merged})),
    )
        .into_response())
}

fn parse_fields(body: &Bytes, is_form: bool) -> ApiResult<Vec<(String, String)>> {
    if is_form {
        let s = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the form body is not UTF-8"))?;
        return Ok(url::form_urlencoded::parse(s.as_bytes())
            .into_owned()
            .collect());
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(m) = v else {
        return Err(ApiError::field("body", "must be a JSON object"));
    };
    Ok(m.into_iter()
        .filter_map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                Value::Null => return None,
                other => other.to_string(),
            };
            Some((k, s))
        })
        .collect())
}

pub async fn thanks() -> Html<&'static str> {
    Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Thank you</title></head><body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem\"><h1>Thank you!</h1><p>We got your message and will be in touch in a few minutes.</p></body></html>",
    )
}

/// The HTML snippet a team pastes into its website: a plain form posting to the intake.
pub fn snippet(url: &str) -> String {
    format!(
        r#"<form method="post" action="{url}">
  <label>Name <input name="name" autocomplete="name" required></label>
  <label>Email <input name="email" type="email" autocomplete="email"></label>
  <label>Phone <input name="phone" type="tel" autocomplete="tel"></label>
  <label>Message <textarea name="message"></textarea></label>
  <label><input type="checkbox" name="consent_text" value="yes"> Text me about my inquiry. Msg &amp; data rates may apply. Reply STOP to opt out.</label>
  <input type="hidden" name="consent_text_wording" value="Text me about my inquiry. Msg &amp; data rates may apply. Reply STOP to opt out.">
  <div style="position:absolute;left:-10000px" aria-hidden="true"><input name="{HONEYPOT}" tabindex="-1" autocomplete="off"></div>
  <button type="submit">Send</button>
</form>"#
    )
}
