//! Probes and metrics: `/readyz` and `/metrics`.

use axum::extract::State as Extract;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::state::*;

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub(super) async fn metrics(Extract(state): Extract<State>) -> Response {
    let body = crate::telemetry::render(state.shared.spool.len());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Ready when the database answers, the spool accepts a durable write, new mail is not being
/// refused for a local cause (queue full, disk nearly full) and DNS answers; otherwise 503 with
/// the reason (`degraded: …` for the last two).
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "Ready", content_type = "text/plain", body = String), (status = 503, description = "Database or spool unavailable, mail refused for a local cause, or DNS failing", content_type = "text/plain", body = String)))]
pub(super) async fn readyz(Extract(state): Extract<State>) -> Response {
    if let Err(e) = state.store.directory_generation().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}\n")).into_response();
    }
    if let Some(why) = state.shared.overloaded() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("degraded: new mail is refused (452): {why}\n"),
        )
            .into_response();
    }
    if let Some(failing) = state.auth.dns_health.failing_for()
        && failing >= state.config.dns_unhealthy_after
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "degraded: DNS lookups have failed for {} s (anonymous mail is deferred)\n",
                failing.as_secs()
            ),
        )
            .into_response();
    }
    let spool = state.shared.spool.clone();
    match tokio::task::spawn_blocking(move || spool.probe()).await {
        Ok(Ok(())) => "ready\n".into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("spool: {e:#}\n")).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("spool: {e}\n")).into_response(),
    }
}
