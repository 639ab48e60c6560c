//! The HTTP side: the BigBlueButton-style hooks API plus `/health` and `/ready`.
//!
//! Routes are matched as Express matched them for the reference: case-insensitive, trailing slash
//! tolerated, GET and HEAD only. Every answer of the hooks API is XML with HTTP 200 (BigBlueButton
//! clients read `returncode`, not the status), except unknown paths (404) and other methods (405),
//! which still answer XML. This module turns typed errors into those answers; it does not own
//! hooks ([`crate::hooks`]) or checksums' maths ([`checksum`]).

pub mod checksum;
mod handlers;
pub mod xml;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::health::Readiness;
use crate::hooks::HookRegistry;
use crate::metrics::Metrics;

/// Everything a request handler needs.
pub struct ApiContext {
    pub settings: Arc<Settings>,
    /// Set once the hooks are loaded from Redis; until then hook calls answer their error XML.
    pub registry: OnceLock<Arc<HookRegistry>>,
    pub readiness: Readiness,
    pub metrics: Arc<Metrics>,
}

pub fn router(ctx: Arc<ApiContext>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .fallback(handlers::dispatch)
        .with_state(ctx)
}

/// Binds the API address (failing clearly if it is taken); the server is the returned future,
/// which runs until `shutdown` (or fails with the listener's error).
pub async fn serve(
    ctx: Arc<ApiContext>,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>> + Send)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(ctx).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .into_future();
    Ok((local, server))
}

async fn health() -> Response {
    json_answer(
        StatusCode::OK,
        format!(r#"{{"status":"ok","version":"{}"}}"#, crate::VERSION),
    )
}

async fn ready(State(ctx): State<Arc<ApiContext>>) -> Response {
    let h = ctx.readiness.get();
    let ready = h.is_ready();
    let mut hints = match h.failed {
        Some(task) => format!(r#","failed":"{task}""#),
        None => String::new(),
    };
    if let Some(reason) = &h.write_error {
        hints.push_str(&format!(
            r#","writeError":{}"#,
            serde_json::Value::String(reason.clone())
        ));
    }
    if h.dropped_events > 0 {
        hints.push_str(&format!(r#","droppedEvents":{}"#, h.dropped_events));
    }
    json_answer(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        format!(
            r#"{{"ready":{ready},"redis":{},"subscribed":{},"hooksLoaded":{},"writable":{}{hints}}}"#,
            h.redis,
            h.subscribed,
            h.hooks_loaded,
            h.write_error.is_none()
        ),
    )
}

fn json_answer(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// An XML answer with the reference's content type.
fn xml_answer(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The client address as the reference logs it: first `X-Forwarded-For` entry, else
/// `X-Real-IP`, else the socket.
fn client_ip(req: &Request<Body>) -> String {
    let headers = req.headers();
    if let Some(first) = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        return first.to_string();
    }
    if let Some(real) = headers.get("x-real-ip").and_then(|v| v.to_str().ok()) {
        return real.to_string();
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into())
}

fn is_get(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}
