//! The delivery queue (operator scope: every tenant's messages).

use axum::Json;
use axum::extract::State as Extract;
use axum::http::StatusCode;

use crate::api_types::*;

use super::extract::*;
use super::state::*;

pub(super) fn queue_item(e: &crate::queue::spool::Entry, default_route: &str) -> QueueItem {
    let env = &e.envelope;
    let ts = |us: i64| {
        (us > 0).then(|| {
            crate::sys::clock::rfc3339(
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(us as u64),
            )
        })
    };
    let recipients = if env.state.is_empty() {
        env.recipients
            .iter()
            .map(|a| QueueRecipient {
                address: a.clone(),
                route: default_route.into(),
                status: "pending".into(),
                reply: String::new(),
            })
            .collect()
    } else {
        env.state
            .iter()
            .map(|s| QueueRecipient {
                address: s.address.clone(),
                route: s.route.clone(),
                status: s.status.clone(),
                reply: s.reply.clone(),
            })
            .collect()
    };
    QueueItem {
        id: e.stem.clone(),
        trace_id: env.trace_id.clone(),
        tenant: env.tenant.clone(),
        mail_from: env.mail_from.clone(),
        attempts: env.attempts,
        first_attempt: ts(env.first_attempt_us),
        next_attempt: ts(env.next_attempt_us),
        size: env.trace.size,
        recipients,
    }
}

pub(super) async fn spool_entries(state: &State) -> Res<Vec<crate::queue::spool::Entry>> {
    let spool = state.shared.spool.clone();
    Ok(tokio::task::spawn_blocking(move || spool.list())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))??)
}

#[utoipa::path(get, path = "/api/v1/queue", params(QueueParams), responses((status = 200, body = Vec<QueueItem>)))]
pub(super) async fn list_queue(
    Extract(state): Extract<State>,
    ApiQuery(p): ApiQuery<QueueParams>,
) -> Res<Json<Vec<QueueItem>>> {
    let default = state.config.default_route.to_string();
    let items = spool_entries(&state)
        .await?
        .iter()
        .map(|e| queue_item(e, &default))
        .filter(|i| p.tenant.as_ref().is_none_or(|t| &i.tenant == t))
        .filter(|i| {
            p.destination.as_ref().is_none_or(|d| {
                i.recipients
                    .iter()
                    .any(|r| r.status == "pending" && r.route.starts_with(d.as_str()))
            })
        })
        .collect();
    Ok(Json(items))
}

pub(super) async fn queued(state: &State, id: &str) -> Res<crate::queue::spool::Entry> {
    let spool = state.shared.spool.clone();
    let key = id.to_string();
    tokio::task::spawn_blocking(move || spool.get(&key))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))??
        .ok_or_else(|| {
            ApiErr(
                StatusCode::NOT_FOUND,
                format!("queued message {id} not found"),
            )
        })
}

#[utoipa::path(get, path = "/api/v1/queue/{id}", params(("id" = String, Path, description = "Queue id")), responses((status = 200, body = QueueItem)))]
pub(super) async fn show_queue(
    Extract(state): Extract<State>,
    ApiPath(id): ApiPath<String>,
) -> Res<Json<QueueItem>> {
    let e = queued(&state, &id).await?;
    Ok(Json(queue_item(
        &e,
        &state.config.default_route.to_string(),
    )))
}

#[utoipa::path(post, path = "/api/v1/queue/{id}/retry", params(("id" = String, Path, description = "Queue id")), responses((status = 200, body = QueueItem)))]
pub(super) async fn retry_queue_item(
    Extract(state): Extract<State>,
    ApiPath(id): ApiPath<String>,
) -> Res<Json<QueueItem>> {
    let e = queued(&state, &id).await?;
    if !state.shared.delivery.retry_now(&id) {
        return Err(ApiErr(
            StatusCode::CONFLICT,
            format!("queued message {id} is being delivered right now"),
        ));
    }
    tracing::info!(id, "queue: retry requested");
    Ok(Json(queue_item(
        &e,
        &state.config.default_route.to_string(),
    )))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RetryAll {
    /// Messages waiting for a retry that were made due now.
    retried: usize,
}

#[utoipa::path(post, path = "/api/v1/queue/retry", responses((status = 200, body = RetryAll)))]
pub(super) async fn retry_queue(Extract(state): Extract<State>) -> Json<RetryAll> {
    let n = state.shared.delivery.retry_all();
    tracing::info!(
        messages = n,
        "queue: retry of every waiting message requested"
    );
    Json(RetryAll { retried: n })
}

#[utoipa::path(delete, path = "/api/v1/queue/{id}", params(("id" = String, Path, description = "Queue id"), QueueDeleteParams), responses((status = 204, description = "Deleted")))]
pub(super) async fn delete_queue(
    Extract(state): Extract<State>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<QueueDeleteParams>,
) -> Res<StatusCode> {
    let found = state
        .shared
        .delivery
        .delete(&id, p.dsn, "deleted from the queue by the administrator")
        .await?;
    if !found {
        return Err(ApiErr(
            StatusCode::NOT_FOUND,
            format!("queued message {id} not found"),
        ));
    }
    tracing::info!(id, dsn = p.dsn, "queue: message deleted");
    Ok(StatusCode::NO_CONTENT)
}
