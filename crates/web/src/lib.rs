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
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
pub async fn launch_with_tcp_listener(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Other processes' notifications reach this process's streams (PostgreSQL).
    if let Err(e) = state.engine.start_listening().await {
        tracing::warn!(error = %e, "cannot listen for other processes' notifications");
    }
    let engine = state.engine.clone();
    let app = router(state);
    // On shutdown: stop accepting, end the notification streams, let requests in flight
    // finish; whatever is still open after the grace period is dropped.
    let (began_tx, began) = tokio::sync::oneshot::channel::<()>();
    // Connect info gives handlers the client address (per-IP rate limits, consent records).
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        engine.close();
        let _ = began_tx.send(());
    })
    .into_future();
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => r,
        _ = async {
            match began.await {
                Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
                Err(_) => std::future::pending::<()>().await,
            }
        } => {
            tracing::warn!("requests still open {SHUTDOWN_GRACE:?} after shutdown began; closing them");
            Ok(())
        }
    }
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
