//! The delivery queue (operator scope: every tenant's messages).

use axum::Json;
use axum::extract::State as Extract;
use axum::http::StatusCode;

use crate::api_types::*;

use crate::queue::index::{local_match, queue_item};
use crate::queue::spool::Entry;

use super::audit::{Trail, object_trail};
use super::extract::*;
use super::state::*;

pub(super) async fn spool_entries(state: &State) -> Res<Vec<crate::queue::spool::Entry>> {
    let spool = state.shared.spool.clone();
    Ok(tokio::task::spawn_blocking(move || spool.list())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))??)
}

/// By id — oldest first, as trace ids begin with their receipt time —, `limit` at a time; when
/// more messages wait, the answer says where the next page starts (`X-Next-Cursor`, `Link`).
#[utoipa::path(get, path = "/api/v1/queue", params(QueueParams), responses((status = 200, body = Vec<QueueItem>, headers(("X-Next-Cursor" = String, description = "Present when more messages match: the cursor of the next page")))))]
pub(super) async fn list_queue(
    Extract(state): Extract<State>,
    ApiQuery(p): ApiQuery<QueueParams>,
) -> Res<(axum::http::HeaderMap, Json<Vec<QueueItem>>)> {
    let limit = limit(p.limit, 1000).map_err(bad)?;
    let after = p
        .cursor
        .as_deref()
        .map(parse_queue_cursor)
        .transpose()
        .map_err(bad)?;
    let default = state.config.default_route.to_string();
    let node = &state.config.node_name;
    // This node's messages from its spool (current), the other nodes' from the index they
    // publish (a few seconds old at most).
    let mut items: Vec<QueueItem> = spool_entries(&state)
        .await?
        .iter()
        .map(|e| queue_item(e, &default, node))
        .collect();
    for row in state.store.queue_of_other_nodes(node).await? {
        if let Ok(mut item) = serde_json::from_str::<QueueItem>(&row.doc) {
            item.node = Some(row.node);
            items.push(item);
        }
    }
    let mut items: Vec<QueueItem> = items
        .into_iter()
        .filter(|i| after.as_ref().is_none_or(|a| i.id.as_str() > a.as_str()))
        .filter(|i| p.tenant.as_ref().is_none_or(|t| &i.tenant == t))
        .filter(|i| {
            p.destination.as_ref().is_none_or(|d| {
                i.recipients
                    .iter()
                    .any(|r| r.status == "pending" && r.route.starts_with(d.as_str()))
            })
        })
        .collect();
    items.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.node.cmp(&b.node)));
    let headers = next_page(
        &mut items,
        limit,
        |i| i.id.clone(),
        |cursor| {
            let next = QueueParams {
                cursor: Some(cursor),
                ..p
            };
            format!("/api/v1/queue{}", query_string(&next))
        },
    );
    Ok((headers, Json(items)))
}

/// Where a queue id leads: a message of this node's spool, or the other nodes' that hold one.
enum Found {
    Here(Entry),
    Elsewhere(Vec<QueueItem>),
}

/// The message `id` names (the spool entry's name or the id of the `250` reply), here or on
/// another node; 404 when no node holds it, 409 when the id names several entries here.
async fn find(state: &State, id: &str) -> Res<Found> {
    let entries = spool_entries(state).await?;
    match local_match(&entries, id).as_slice() {
        [one] => return Ok(Found::Here((*one).clone())),
        [] => {}
        several => {
            let ids: Vec<&str> = several.iter().map(|e| e.stem.as_str()).collect();
            return Err(ApiErr(
                StatusCode::CONFLICT,
                format!(
                    "{id} is one message for several tenants: name one of {}",
                    ids.join(", ")
                ),
            ));
        }
    }
    let elsewhere: Vec<QueueItem> = state
        .store
        .queue_holders(&state.config.node_name, id)
        .await?
        .into_iter()
        .filter_map(|row| {
            let mut item = serde_json::from_str::<QueueItem>(&row.doc).ok()?;
            item.node = Some(row.node);
            Some(item)
        })
        .collect();
    if elsewhere.is_empty() {
        return Err(ApiErr(
            StatusCode::NOT_FOUND,
            format!("queued message {id} not found"),
        ));
    }
    Ok(Found::Elsewhere(elsewhere))
}

/// A message of another node: only that node's spool can act on it.
fn held_elsewhere(id: &str, items: &[QueueItem]) -> ApiErr {
    let nodes: Vec<&str> = items.iter().filter_map(|i| i.node.as_deref()).collect();
    ApiErr(
        StatusCode::CONFLICT,
        format!(
            "queued message {id} is held by node {}: send the command to that node's admin API",
            nodes.join(", ")
        ),
    )
}

#[utoipa::path(get, path = "/api/v1/queue/{id}", params(("id" = String, Path, description = "Queue id")), responses((status = 200, body = QueueItem)))]
pub(super) async fn show_queue(
    Extract(state): Extract<State>,
    ApiPath(id): ApiPath<String>,
) -> Res<Json<QueueItem>> {
    match find(&state, &id).await? {
        Found::Here(e) => Ok(Json(queue_item(
            &e,
            &state.config.default_route.to_string(),
            &state.config.node_name,
        ))),
        // Shown as its node last published it (which the answer names).
        Found::Elsewhere(items) if items.len() == 1 => {
            Ok(Json(items.into_iter().next().expect("one")))
        }
        Found::Elsewhere(items) => Err(held_elsewhere(&id, &items)),
    }
}

#[utoipa::path(post, path = "/api/v1/queue/{id}/retry", params(("id" = String, Path, description = "Queue id")), responses((status = 200, body = QueueItem)))]
pub(super) async fn retry_queue_item(
    Extract(state): Extract<State>,
    ApiPath(id): ApiPath<String>,
) -> Res<(Trail, Json<QueueItem>)> {
    let e = match find(&state, &id).await? {
        Found::Here(e) => e,
        Found::Elsewhere(items) => return Err(held_elsewhere(&id, &items)),
    };
    if !state.shared.delivery.retry_now(&e.stem) {
        return Err(ApiErr(
            StatusCode::CONFLICT,
            format!("queued message {id} is being delivered right now"),
        ));
    }
    tracing::info!(id = %e.stem, "queue: retry requested");
    let item = queue_item(
        &e,
        &state.config.default_route.to_string(),
        &state.config.node_name,
    );
    let trail = object_trail(
        Some(&e.envelope.tenant),
        serde_json::json!({ "queued_message": message_facts(&e) }),
        serde_json::json!({ "retry": e.stem }),
    );
    Ok((trail, Json(item)))
}

/// What the audit log names of a queued message.
fn message_facts(e: &crate::queue::spool::Entry) -> serde_json::Value {
    serde_json::json!({
        "id": e.stem,
        "trace_id": e.envelope.trace_id,
        "tenant": e.envelope.tenant,
        "mail_from": e.envelope.mail_from,
        "recipients": e.envelope.recipients,
    })
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RetryAll {
    /// Messages waiting for a retry that were made due now.
    retried: usize,
}

#[utoipa::path(post, path = "/api/v1/queue/retry", responses((status = 200, body = RetryAll)))]
pub(super) async fn retry_queue(Extract(state): Extract<State>) -> (Trail, Json<RetryAll>) {
    let n = state.shared.delivery.retry_all();
    tracing::info!(
        messages = n,
        "queue: retry of every waiting message requested"
    );
    let trail = object_trail(
        None,
        serde_json::Value::Null,
        serde_json::json!({ "retry_all": n, "node": state.config.node_name }),
    );
    (trail, Json(RetryAll { retried: n }))
}

#[utoipa::path(delete, path = "/api/v1/queue/{id}", params(("id" = String, Path, description = "Queue id"), QueueDeleteParams), responses((status = 204, description = "Deleted")))]
pub(super) async fn delete_queue(
    Extract(state): Extract<State>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<QueueDeleteParams>,
) -> Res<(StatusCode, Trail)> {
    let e = match find(&state, &id).await? {
        Found::Here(e) => e,
        Found::Elsewhere(items) => return Err(held_elsewhere(&id, &items)),
    };
    let found = state
        .shared
        .delivery
        .delete(
            &e.stem,
            p.dsn,
            "deleted from the queue by the administrator",
        )
        .await?;
    if !found {
        return Err(ApiErr(
            StatusCode::NOT_FOUND,
            format!("queued message {id} not found"),
        ));
    }
    tracing::info!(id = %e.stem, dsn = p.dsn, "queue: message deleted");
    let trail = object_trail(
        Some(&e.envelope.tenant),
        serde_json::json!({ "queued_message": message_facts(&e) }),
        serde_json::json!({ "deleted": e.stem, "dsn": p.dsn }),
    );
    Ok((StatusCode::NO_CONTENT, trail))
}

/// `POST /queue/{id}/reroute` and `/queue/reroute`: where the message(s) go instead.
#[derive(serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerouteRequest {
    /// A route URL (`smtp://host:port`, `lmtp://…`, `maildir:PATH`, …).
    pub to: String,
    /// `/queue/reroute` only: just the messages with recipients waiting for this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Rerouted {
    /// The spool ids of the messages rerouted (delivered through the new route at once).
    pub rerouted: Vec<String>,
    pub to: String,
}

#[utoipa::path(post, path = "/api/v1/queue/{id}/reroute", params(("id" = String, Path, description = "Queue id")), request_body = RerouteRequest, responses((status = 200, body = Rerouted)))]
pub(super) async fn reroute_queue_item(
    Extract(state): Extract<State>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RerouteRequest>,
) -> Res<(Trail, Json<Rerouted>)> {
    let route = portcullis_policy::route::Route::parse(&req.to).map_err(bad)?;
    let e = match find(&state, &id).await? {
        Found::Here(e) => e,
        Found::Elsewhere(items) => return Err(held_elsewhere(&id, &items)),
    };
    if !state.shared.delivery.reroute(&e.stem, &route) {
        return Err(ApiErr(
            StatusCode::NOT_FOUND,
            format!("queued message {id} not found"),
        ));
    }
    tracing::info!(id = %e.stem, to = %route, "queue: message rerouted");
    let trail = object_trail(
        Some(&e.envelope.tenant),
        serde_json::json!({ "queued_message": message_facts(&e) }),
        serde_json::json!({ "rerouted": e.stem, "to": route.to_string() }),
    );
    Ok((
        trail,
        Json(Rerouted {
            rerouted: vec![e.stem.clone()],
            to: route.to_string(),
        }),
    ))
}

#[utoipa::path(post, path = "/api/v1/queue/reroute", request_body = RerouteRequest, responses((status = 200, body = Rerouted)))]
pub(super) async fn reroute_queue(
    Extract(state): Extract<State>,
    ApiJson(req): ApiJson<RerouteRequest>,
) -> Res<(Trail, Json<Rerouted>)> {
    let route = portcullis_policy::route::Route::parse(&req.to).map_err(bad)?;
    let from = req
        .destination
        .as_deref()
        .map(portcullis_policy::route::Route::parse)
        .transpose()
        .map_err(bad)?
        .map(|r| r.to_string());
    let mut rerouted = Vec::new();
    for e in spool_entries(&state).await? {
        let waits_for = |r: &str| {
            e.envelope
                .state
                .iter()
                .any(|s| s.status == "pending" && s.route == r)
        };
        if from.as_deref().is_some_and(|f| !waits_for(f)) {
            continue;
        }
        if state.shared.delivery.reroute(&e.stem, &route) {
            rerouted.push(e.stem.clone());
        }
    }
    tracing::info!(count = rerouted.len(), to = %route, "queue: messages rerouted");
    let trail = object_trail(
        None,
        serde_json::json!({ "destination": from }),
        serde_json::json!({ "rerouted": rerouted, "to": route.to_string(), "node": state.config.node_name }),
    );
    Ok((
        trail,
        Json(Rerouted {
            rerouted,
            to: route.to_string(),
        }),
    ))
}
