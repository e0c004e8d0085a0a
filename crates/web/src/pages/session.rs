//! Sign-in, sign-out and first-start setup: plain HTML forms. Before a session exists the
//! forms are protected by a double-submit CSRF cookie; attempts are rate-limited per client
//! address and per email in the database, so every process counts them together.

use super::render;
use crate::AppState;
use crate::auth::ClientIp;
use crate::auth::{SESSION_COOKIE, cookie, same_secret, session_user};
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use relentless_engine::sessions::{SESSION_DAYS, SetupInput, SignedIn};
use serde::Deserialize;

/// The cookie that pairs with the `csrf` field of the sign-in and setup forms.
const FORM_COOKIE: &str = "rl_form";
/// Sign-in attempts allowed per minute from one address, and for one email.
pub const LOGINS_PER_IP: u32 = 20;
pub const LOGINS_PER_EMAIL: u32 = 8;

fn secure(state: &AppState) -> &'static str {
    if state.engine.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn set_cookie(res: &mut Response, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A page with a fresh form token in the page and in a cookie.
fn with_form_token(state: &AppState, res: impl FnOnce(&str) -> Response) -> Response {
    let token = relentless_engine::random_token();
    let mut r = res(&token);
    set_cookie(
        &mut r,
        format!(
            "{FORM_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600{}",
            secure(state)
        ),
    );
    r
}

fn form_token_ok(headers: &HeaderMap, sent: &str) -> bool {
    cookie(headers, FORM_COOKIE).is_some_and(|c| !c.is_empty() && same_secret(c, sent))
}

/// Signs the browser in: the session cookie, and on to the page it wanted.
fn signed_in(state: &AppState, s: SignedIn, next: &str) -> Response {
    let mut res = Redirect::to(safe_next(next)).into_response();
    set_cookie(
        &mut res,
        format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            s.session,
            SESSION_DAYS * 86_400,
            secure(state)
        ),
    );
    set_cookie(&mut res, format!("{FORM_COOKIE}=; Path=/; Max-Age=0"));
    res
}

/// Only a path on this site: `next` must never send a browser elsewhere after sign-in.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/today"
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct Login<'a> {
    csrf: &'a str,
    next: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    if let Ok(Some(_)) = session_user(&headers, &state).await {
        return Redirect::to(safe_next(q.next.as_deref().unwrap_or("/today"))).into_response();
    }
    if state.engine.needs_setup().await.unwrap_or(false) {
        return Redirect::to("/setup").into_response();
    }
    let next = q.next.unwrap_or_else(|| "/today".into());
    with_form_token(&state, |t| {
        render(&Login {
            csrf: t,
            next: &next,
            email: "",
            error: None,
        })
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(f): Form<LoginForm>,
) -> Response {
    let again = |state: &AppState, status: axum::http::StatusCode, msg: &str| {
        let mut r = with_form_token(state, |t| {
            render(&Login {
                csrf: t,
                next: &f.next,
                email: &f.email,
                error: Some(msg),
            })
        });
        *r.status_mut() = status;
        r
    };
    if !form_token_ok(&headers, &f.csrf) {
        return again(
            &state,
            axum::http::StatusCode::FORBIDDEN,
            "This form expired. Please sign in again.",
        );
    }
    let ip = ip.map(|i| i.to_string()).unwrap_or_default();
    let email_key = f.email.trim().to_lowercase();
    for (key, n) in [
        (format!("login-ip:{ip}"), LOGINS_PER_IP),
        (format!("login-email:{email_key}"), LOGINS_PER_EMAIL),
    ] {
        if let Err(e) = state.limits.check(&state.engine.store, &key, n).await {
            let mut r = again(
                &state,
                e.status,
                "Too many sign-in attempts. Wait a minute and try again.",
            );
            if let Some(s) = e.retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            return r;
        }
    }
    match state.engine.sign_in(&f.email, &f.password).await {
        Ok(Some(s)) => signed_in(&state, s, &f.next),
        Ok(None) => again(
            &state,
            axum::http::StatusCode::UNAUTHORIZED,
            "That email and password do not match an active account.",
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    if let Ok(Some((_, csrf, id))) = session_user(&headers, &state).await {
        if !same_secret(&f.csrf, &csrf) {
            return ApiError::forbidden("sign-out needs the page's CSRF token").into_response();
        }
        if let Err(e) = state.engine.sign_out(&id).await {
            return ApiError::from(e).into_response();
        }
    }
    let mut res = Redirect::to("/login").into_response();
    set_cookie(
        &mut res,
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    res
}

pub struct Field {
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    autocomplete: &'static str,
    required: bool,
    value: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "setup.html")]
struct Setup<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
    fields: Vec<Field>,
}

#[derive(Deserialize, Default)]
pub struct SetupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    team_name: String,
    #[serde(default)]
    admin_name: String,
    #[serde(default)]
    admin_email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    address: String,
}

fn setup_fields(f: &SetupForm, errors: &[relentless_engine::FieldError]) -> Vec<Field> {
    let err = |name: &str| {
        errors
            .iter()
            .find(|e| e.field == name)
            .map(|e| e.message.clone())
    };
    let field = |name, label, kind, autocomplete, required, value: &str| Field {
        name,
        label,
        kind,
        autocomplete,
        required,
        value: value.to_string(),
        error: err(name),
    };
    vec![
        field(
            "team_name",
            "Team name",
            "text",
            "organization",
            true,
            &f.team_name,
        ),
        field(
            "admin_name",
            "Your name",
            "text",
            "name",
            true,
            &f.admin_name,
        ),
        field(
            "admin_email",
            "Your email",
            "email",
            "email",
            true,
            &f.admin_email,
        ),
        field(
            "password",
            "Password (8 characters or more)",
            "password",
            "new-password",
            true,
            "",
        ),
        field(
            "timezone",
            "Team time zone",
            "text",
            "off",
            true,
            if f.timezone.is_empty() {
                "America/New_York"
            } else {
                &f.timezone
            },
        ),
        field(
            "address",
            "Postal address (shown in every email's footer)",
            "text",
            "street-address",
            false,
            &f.address,
        ),
    ]
}

pub async fn setup_page(State(state): State<AppState>) -> Response {
    if !state.engine.needs_setup().await.unwrap_or(false) {
        return Redirect::to("/login").into_response();
    }
    with_form_token(&state, |t| {
        render(&Setup {
            csrf: t,
            error: None,
            fields: setup_fields(&SetupForm::default(), &[]),
        })
    })
}

pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SetupForm>,
) -> Response {
    let again =
        |state: &AppState, status, error: Option<&str>, errs: &[relentless_engine::FieldError]| {
            let mut r = with_form_token(state, |t| {
                render(&Setup {
                    csrf: t,
                    error,
                    fields: setup_fields(&f, errs),
                })
            });
            *r.status_mut() = status;
            r
        };
    if !form_token_ok(&headers, &f.csrf) {
        return again(
            &state,
            axum::http::StatusCode::FORBIDDEN,
            Some("This form expired. Please try again."),
            &[],
        );
    }
    let input = SetupInput {
        team_name: f.team_name.clone(),
        admin_name: f.admin_name.clone(),
        admin_email: f.admin_email.clone(),
        password: f.password.clone(),
        address: f.address.clone(),
        timezone: f.timezone.clone(),
    };
    match state.engine.setup_team(input).await {
        Ok(s) => signed_in(&state, s, "/today"),
        Err(relentless_engine::Error::Invalid(errs)) => again(
            &state,
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            Some("Please correct the fields marked below."),
            &errs,
        ),
        Err(relentless_engine::Error::Conflict(_)) => Redirect::to("/login").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
