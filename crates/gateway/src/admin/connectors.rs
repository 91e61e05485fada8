//! Inbound connectors.

use axum::Json;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use portcullis_policy::Connector;

use crate::api_types::*;

use super::audit::{Trail, trail};
use super::extract::*;
use super::state::*;

/// Connectors the tenant configured (without the synthesized `service:` ones).
pub(super) fn connectors(state: &State, t: &str) -> Res<Vec<Connector>> {
    tenant(state, t)?;
    let dir = state.live.get();
    Ok(dir
        .tenant(t)
        .map(|e| {
            e.connectors
                .iter()
                .filter(|c| !c.name.starts_with("service:"))
                .cloned()
                .collect()
        })
        .unwrap_or_default())
}

pub(super) fn connector(state: &State, t: &str, name: &str) -> Res<Connector> {
    connectors(state, t)?
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            ApiErr(
                StatusCode::NOT_FOUND,
                format!("connector {name:?} of tenant {t} not found"),
            )
        })
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/connectors", params(("t" = String, Path, description = "Tenant name")), responses((status = 200, body = Vec<Connector>)))]
pub(super) async fn list_connectors(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<Json<Vec<Connector>>> {
    Ok(Json(connectors(&state, &t)?))
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/connectors/{c}", params(("t" = String, Path, description = "Tenant name"), ("c" = String, Path, description = "Connector name")), responses((status = 200, body = Connector)))]
pub(super) async fn show_connector(
    Extract(state): Extract<State>,
    ApiPath((t, c)): ApiPath<(String, String)>,
) -> Res<Json<Connector>> {
    Ok(Json(connector(&state, &t, &c)?))
}

#[utoipa::path(post, path = "/api/v1/tenants/{t}/connectors", params(("t" = String, Path, description = "Tenant name")), request_body = ConnectorPatch, responses((status = 201, body = Connector), (status = 409, description = "The connector exists", body = ApiError)))]
pub(super) async fn add_connector(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(patch): ApiJson<ConnectorPatch>,
) -> Res<(StatusCode, Trail, Json<Connector>)> {
    // The tenant is checked in the write's transaction (a snapshot may lag another node).
    let name = parse_connector_name(patch.name.as_deref().unwrap_or("")).map_err(bad)?;
    let mut c = Connector::new(&t, &name);
    patch.apply(&mut c).map_err(bad)?;
    let change = state.store.put_connector(&c, true).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, connector = %c.name, "connector added");
    warn_broad(&t, &c);
    Ok((StatusCode::CREATED, trail(&change), Json(c)))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{t}/connectors/{c}", params(("t" = String, Path, description = "Tenant name"), ("c" = String, Path, description = "Connector name")), request_body = ConnectorPatch, responses((status = 200, body = Connector)))]
pub(super) async fn set_connector(
    Extract(state): Extract<State>,
    ApiPath((t, name)): ApiPath<(String, String)>,
    ApiJson(patch): ApiJson<ConnectorPatch>,
) -> Res<(Trail, Json<Connector>)> {
    if patch.name.as_deref().is_some_and(|n| n != name) {
        return Err(bad(
            "renaming a connector is not supported; remove and add it".into(),
        ));
    }
    // The patch applies to the connector as it is in the database now, in one transaction:
    // a change made meanwhile (on another node) is kept, never written back over.
    let change = state
        .store
        .modify_connector(&t, &name, |c| patch.apply(c).map_err(bad))
        .await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, connector = %name, "connector changed");
    warn_broad(&t, &change.value);
    Ok((trail(&change), Json(change.value)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{t}/connectors/{c}", params(("t" = String, Path, description = "Tenant name"), ("c" = String, Path, description = "Connector name")), responses((status = 204, description = "Removed")))]
pub(super) async fn remove_connector(
    Extract(state): Extract<State>,
    ApiPath((t, c)): ApiPath<(String, String)>,
) -> Res<(StatusCode, Trail)> {
    let change = state.store.remove_connector(&t, &c).await?;
    changed(&state).await?;
    Ok((StatusCode::NO_CONTENT, trail(&change)))
}

/// A connector that vouches for a broad range (accepted with `allow_broad_range`) is said in the
/// log at warning level: every spoof from that range is attributed.
fn warn_broad(t: &str, c: &Connector) {
    let broad: Vec<String> = c
        .sender_ips
        .iter()
        .chain(&c.skip_ips)
        .filter(|n| is_broad_range(n))
        .map(|n| n.to_string())
        .collect();
    if !broad.is_empty() {
        tracing::warn!(tenant = %t, connector = %c.name, ranges = ?broad, "connector vouches for a broad range (allowed with --allow-broad-range)");
    }
}
