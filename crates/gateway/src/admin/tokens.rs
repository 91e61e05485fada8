//! API tokens and the route table as the caller's role sees it.

use axum::Json;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use portcullis_store::TokenRecord;

use crate::admin::principals::{self, Principal, Role};

use super::extract::*;
use super::state::*;

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    role: String,
    tenant: Option<String>,
    /// Lifetime, e.g. `90d`; none: until revoked.
    expires: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    record: portcullis_store::TokenRecord,
    /// The token itself: shown once, stored only as a hash.
    token: String,
}

#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewToken, responses((status = 201, body = CreatedToken)))]
pub(super) async fn create_token(
    Extract(state): Extract<State>,
    ApiJson(body): ApiJson<NewToken>,
) -> Res<(StatusCode, Json<CreatedToken>)> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(bad(format!("name {name:?}: expected 1 to 100 characters")));
    }
    let role = Role::parse(&body.role).ok_or_else(|| {
        bad(format!(
            "role {:?}: expected operator, org-admin, org-config, mail-flow, quarantine-admin or viewer",
            body.role
        ))
    })?;
    let tenant = match (role, body.tenant) {
        (Role::Operator, None) => None,
        (Role::Operator, Some(t)) => {
            return Err(bad(format!(
                "tenant {t:?}: an operator token spans all tenants; omit the tenant"
            )));
        }
        (_, None) => {
            return Err(bad(format!(
                "role {}: a tenant role needs a tenant",
                role.as_str()
            )));
        }
        (_, Some(t)) => Some(tenant(&state, &t)?.name),
    };
    let expires = body
        .expires
        .as_deref()
        .map(|e| {
            humantime::parse_duration(e)
                .map_err(|_| bad(format!("expires {e:?}: expected a duration such as 90d")))
        })
        .transpose()?;
    let (record, token) = state.tokens.create(name, role, tenant, expires).await?;
    tracing::info!(id = %record.id, name = %record.name, role = %record.role, tenant = ?record.tenant, "API token created");
    Ok((StatusCode::CREATED, Json(CreatedToken { record, token })))
}

#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = Vec<TokenRecord>)))]
pub(super) async fn list_tokens(
    Extract(state): Extract<State>,
) -> Res<Json<Vec<portcullis_store::TokenRecord>>> {
    Ok(Json(state.store.list_tokens().await?))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = String, Path, description = "Token id")), responses((status = 204, description = "Revoked")))]
pub(super) async fn revoke_token(
    Extract(state): Extract<State>,
    ApiPath(id): ApiPath<String>,
) -> Res<StatusCode> {
    state.tokens.revoke(&id).await?;
    tracing::info!(%id, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RouteInfo {
    method: &'static str,
    path: &'static str,
    /// `operator`, or the tenant roles allowed (the operator always is).
    roles: Vec<&'static str>,
}

/// Every route with the roles it admits: the table the API enforces.
#[utoipa::path(get, path = "/api/v1/routes", responses((status = 200, body = Vec<RouteInfo>)))]
pub(super) async fn list_routes(_p: axum::Extension<Principal>) -> Json<Vec<RouteInfo>> {
    Json(
        principals::ROUTES
            .iter()
            .map(|(m, p, n)| RouteInfo {
                method: m,
                path: p,
                roles: match n {
                    principals::Need::Operator => vec!["operator"],
                    principals::Need::Tenant(r) => r.iter().map(|r| r.as_str()).collect(),
                },
            })
            .collect(),
    )
}
