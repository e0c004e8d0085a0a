//! The agent's web app. Each page is a small server-rendered shell (askama: escaped, checked
//! at compile time) that its script fills from the JSON API with the session cookie; sign-in,
//! sign-out and first-start setup are plain HTML forms that work without scripts. Every
//! asset is embedded in the binary: no CDN, works on a LAN with no internet.

pub mod session;

use crate::AppState;
use crate::auth::session_user;
use crate::error::ApiError;
use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use relentless_core::types::Role;
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "assets/"]
struct Assets;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", axum::routing::post(session::logout))
        .route("/setup", get(session::setup_page).post(session::setup))
        .route("/today", get(simple("today", "Today")))
        .route("/leads", get(simple("leads", "Leads")))
        .route("/leads/{id}", get(lead_page))
        .route("/plans", get(simple("plans", "Plans and templates")))
        .route("/plans/{slug}", get(plan_page))
        .route("/templates/{slug}", get(template_page))
        .route("/reports", get(simple("reports", "Reports")))
        .route("/team", get(simple("team", "Team")))
        .route("/assets/{*path}", get(asset))
}

#[derive(Template)]
#[template(path = "app.html")]
struct AppShell<'a> {
    page: &'a str,
    title: &'a str,
    arg: &'a str,
    csrf: &'a str,
    user_id: i64,
    user_name: &'a str,
    user_email: &'a str,
    admin: bool,
}

/// Renders an askama page; a template error is a 500 like any other.
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => {
            let mut res = Html(html).into_response();
            let h = res.headers_mut();
            // Pages hold lead data: never cached by a shared proxy, never framed by another site.
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert("x-frame-options", HeaderValue::from_static("DENY"));
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
                ),
            );
            h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
            res
        }
        Err(e) => ApiError::from(relentless_engine::Error::Internal(e.to_string())).into_response(),
    }
}

/// Where a browser without a session goes: the setup page on an empty database, else sign-in
/// with a way back to the page it asked for.
async fn to_sign_in(state: &AppState, uri: &OriginalUri) -> Response {
    if state.engine.needs_setup().await.unwrap_or(false) {
        return Redirect::to("/setup").into_response();
    }
    let next = uri
        .0
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/today");
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

async fn shell(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    page: &'static str,
    title: &'static str,
    arg: String,
) -> Response {
    match session_user(&headers, &state).await {
        Ok(Some((user, csrf, _))) => render(&AppShell {
            page,
            title,
            arg: &arg,
            csrf: &csrf,
            user_id: user.id,
            user_name: &user.name,
            user_email: &user.email,
            admin: user.role == Role::Admin,
        }),
        Ok(None) => to_sign_in(&state, &uri).await,
        Err(e) => e.into_response(),
    }
}

/// A page with no argument in its path.
fn simple(
    page: &'static str,
    title: &'static str,
) -> impl Fn(
    State<AppState>,
    HeaderMap,
    OriginalUri,
) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move |s, h, u| Box::pin(shell(s, h, u, page, title, String::new()))
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session_user(&headers, &state).await {
        Ok(Some(_)) => Redirect::to("/today").into_response(),
        Ok(None) if state.engine.needs_setup().await.unwrap_or(false) => {
            Redirect::to("/setup").into_response()
        }
        Ok(None) => Redirect::to("/login").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn lead_page(
    state: State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(id): Path<i64>,
) -> Response {
    shell(state, headers, uri, "lead", "Lead", id.to_string()).await
}

async fn plan_page(
    state: State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(slug): Path<String>,
) -> Response {
    shell(state, headers, uri, "plan", "Plan", slug).await
}

async fn template_page(
    state: State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(slug): Path<String>,
) -> Response {
    shell(state, headers, uri, "template", "Template", slug).await
}

/// An embedded asset, with its type and a short cache (assets change with the binary).
async fn asset(Path(path): Path<String>) -> Response {
    let Some(file) = Assets::get(&path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let ty = match path.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("mp3") => "audio/mpeg",
        Some("wav") => "audio/wav",
        _ => "application/octet-stream",
    };
    (
        [
            (header::CONTENT_TYPE, ty),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        file.data.into_owned(),
    )
        .into_response()
}
