//! relentless-web: the axum router — JSON API, SSE notifications, health and metrics.
//! Handlers are thin: they check who is asking, then call the engine.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "512"]

pub mod api;
pub mod auth;
pub mod error;
pub mod extract;
pub mod json;
pub mod limits;
pub mod openapi;
pub mod pages;
pub mod signin;
pub mod tracking;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use relentless_engine::Engine;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub limits: std::sync::Arc<limits::Limits>,
}

impl AppState {
    pub fn new(engine: Engine) -> AppState {
        AppState {
            engine,
            metrics: install_metrics(),
            limits: Default::default(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let (idle, deadline, upload) = (
        state.limits.body_idle,
        state.limits.body_deadline,
        state.limits.upload_deadline,
    );
    Router::new()
        .nest("/api/v1", api::routes())
        .merge(webhooks::routes())
        .merge(tracking::routes())
        .route("/signin/{token}", get(signin::page))
        .merge(pages::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            error::ApiError::new(StatusCode::NOT_FOUND, "Not found", "no such route")
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // A panic in a handler is a 500 problem; its transaction was never committed.
        .layer(CatchPanicLayer::custom(|_| {
            error::ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "something went wrong on our side; it has been logged",
            )
            .into_response()
        }))
        // Slow bodies are cut off: no pause longer than `body_idle`, and the whole body within
        // `body_deadline` (a video upload within `upload_deadline`).
        .layer(axum::middleware::map_request(
            move |req: axum::extract::Request| async move {
                let long = req.method() == axum::http::Method::POST
                    && req.uri().path().ends_with("/videos");
                let (parts, body) = req.into_parts();
                let body = tower_http::timeout::TimeoutBody::new(idle, body);
                let body = tower_http::timeout::DeadlineBody::new(
                    if long { upload } else { deadline },
                    body,
                );
                axum::extract::Request::from_parts(parts, axum::body::Body::new(body))
            },
        ))
        // Request spans carry the method and path only (never headers: tokens stay out of logs).
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                tracing::debug_span!(
                    "request",
                    method = %req.method(),
                    path = %redacted_path(req.uri().path()),
                )
            }),
        )
        .with_state(state)
}

/// A request path fit for logs: every path segment that could be a secret (a tracking, intake
/// or sign-in token: long, or hex of 16+ characters) is replaced by `{token}`, and the query
/// string (the inbound-email webhook's `?token=`) is left out.
pub fn redacted_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let secret = seg.len() > 40
                || (seg.len() >= 16
                    && seg
                        .trim_end_matches(".gif")
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit()));
            if secret { "{token}" } else { seg }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    match state.engine.store.read().await {
        Ok(mut tx) => match tx.team().await {
            Ok(_) => (
                StatusCode::OK,
                axum::Json(
                    serde_json::json!({"status": "ok", "database": state.engine.store.backend()}),
                ),
            ),
            Err(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "database unavailable"})),
            ),
        },
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "database unavailable"})),
        ),
    }
}

async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

/// Serves the app on `listener` until `shutdown` resolves (tests pass a port-0 listener).
///
/// One HTTP/1.1 connection per task (hyper), so that slow clients are cut off: the request
/// line and headers must arrive within `Limits::header_read` (else the connection is closed
/// with `408`), and bodies obey `Limits::body_idle` / `body_deadline` (see [`router`]).
pub async fn launch_with_tcp_listener(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    // Other processes' notifications reach this process's streams (PostgreSQL).
    if let Err(e) = state.engine.start_listening().await {
        tracing::warn!(error = %e, "cannot listen for other processes' notifications");
    }
    let engine = state.engine.clone();
    let header_read = state.limits.header_read;
    let app = router(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read)
        .keep_alive(true);
    // Each connection holds a sender: when every one is gone, every connection has ended.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // Connect info gives handlers the client address (per-IP rate limits, consents).
        let svc = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(addr));
                req
            },
        );
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let conn = http
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades();
        let mut stop = stop_rx.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let _open = open;
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    // On shutdown: stop accepting, end the notification streams, let requests in flight
    // finish; whatever is still open after the grace period is dropped.
    drop(listener);
    engine.close();
    let _ = stop_tx.send(true);
    drop(open_tx);
    if tokio::time::timeout(SHUTDOWN_GRACE, open_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("requests still open {SHUTDOWN_GRACE:?} after shutdown began; closing them");
    }
    Ok(())
}

/// How long a graceful shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Installs the Prometheus recorder once per process.
pub fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .clone()
}

pub const SSE_KEEPALIVE: Duration = Duration::from_secs(15);
