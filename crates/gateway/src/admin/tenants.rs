//! Tenants, accepted domains, org settings and delivery routes.

use axum::Json;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use portcullis_policy::{AcceptedDomain, OrgSettings, Tenant, names};

use crate::admin::principals::Principal;
use crate::api_types::*;
use crate::sys::clock::now_unix;

use super::extract::*;
use super::state::*;

#[utoipa::path(get, path = "/api/v1/tenants", responses((status = 200, body = Vec<Tenant>)))]
pub(super) async fn list_tenants(Extract(state): Extract<State>) -> Json<Vec<Tenant>> {
    let dir = state.live.get();
    let mut list: Vec<Tenant> = dir.tenants().map(|e| e.tenant.clone()).collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Json(list)
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}", params(("t" = String, Path, description = "Tenant name")), responses((status = 200, body = Tenant)))]
pub(super) async fn show_tenant(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<Json<Tenant>> {
    Ok(Json(tenant(&state, &t)?))
}

#[utoipa::path(post, path = "/api/v1/tenants", request_body = NewTenant, responses((status = 201, body = Tenant), (status = 409, description = "The tenant exists", body = ApiError)))]
pub(super) async fn add_tenant(
    Extract(state): Extract<State>,
    ApiJson(body): ApiJson<NewTenant>,
) -> Res<(StatusCode, Json<Tenant>)> {
    let name = parse_tenant_name(&body.name).map_err(bad)?;
    let settings = OrgSettings {
        reject_direct_send: state.config.default_reject_direct_send,
        ..Default::default()
    };
    let t = Tenant { name, settings };
    state.store.add_tenant(&t, now_unix()).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t.name, "tenant added");
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{t}", params(("t" = String, Path, description = "Tenant name")), responses((status = 204, description = "Removed with its domains, connectors and rules")))]
pub(super) async fn remove_tenant(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<StatusCode> {
    state.store.remove_tenant(&t).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, "tenant removed");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/domains", params(("t" = String, Path, description = "Tenant name")), responses((status = 200, body = Vec<AcceptedDomain>)))]
pub(super) async fn list_domains(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<Json<Vec<AcceptedDomain>>> {
    tenant(&state, &t)?;
    let dir = state.live.get();
    Ok(Json(
        dir.tenant(&t)
            .map(|e| e.domains.clone())
            .unwrap_or_default(),
    ))
}

#[utoipa::path(post, path = "/api/v1/tenants/{t}/domains", params(("t" = String, Path, description = "Tenant name")), request_body = NewDomain, responses((status = 201, body = AcceptedDomain), (status = 409, description = "The domain belongs to a tenant", body = ApiError)))]
pub(super) async fn add_domain(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(body): ApiJson<NewDomain>,
) -> Res<(StatusCode, Json<AcceptedDomain>)> {
    tenant(&state, &t)?;
    let d = AcceptedDomain {
        domain: parse_domain(&body.domain).map_err(bad)?,
        tenant: t,
        domain_type: match &body.domain_type {
            Some(s) => parse_domain_type(s).map_err(bad)?,
            None => Default::default(),
        },
        match_subdomains: body.match_subdomains,
        route: None,
    };
    state.store.add_domain(&d).await?;
    changed(&state).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{t}/domains/{d}", params(("t" = String, Path, description = "Tenant name"), ("d" = String, Path, description = "Accepted domain")), responses((status = 204, description = "Removed")))]
pub(super) async fn remove_domain(
    Extract(state): Extract<State>,
    ApiPath((t, d)): ApiPath<(String, String)>,
) -> Res<StatusCode> {
    let domain = names::normalize_domain(&d).unwrap_or(d);
    state.store.remove_domain(&t, &domain).await?;
    changed(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/org", params(("t" = String, Path, description = "Tenant name")), responses((status = 200, body = OrgSettings)))]
pub(super) async fn show_org(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<Json<OrgSettings>> {
    Ok(Json(tenant(&state, &t)?.settings))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{t}/org", params(("t" = String, Path, description = "Tenant name")), request_body = OrgPatch, responses((status = 200, body = OrgSettings)))]
pub(super) async fn set_org(
    Extract(state): Extract<State>,
    axum::Extension(who): axum::Extension<Principal>,
    ApiPath(t): ApiPath<String>,
    ApiJson(patch): ApiJson<OrgPatch>,
) -> Res<Json<OrgSettings>> {
    let mut settings = tenant(&state, &t)?.settings;
    let before = settings.reject_direct_send;
    let services: Vec<String> = state
        .config
        .services
        .iter()
        .map(|s| s.name.clone())
        .collect();
    patch.apply(&mut settings, &services).map_err(bad)?;
    // The lock binds tenant roles; the operator who set it may still change the setting.
    if state.config.lock_reject_direct_send
        && settings.reject_direct_send != before
        && !who.is_operator()
    {
        return Err(ApiErr(
            StatusCode::FORBIDDEN,
            "reject_direct_send is locked by the operator ([tenants] lock_reject_direct_send)"
                .into(),
        ));
    }
    state.store.set_org_settings(&t, &settings).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, reject_direct_send = ?settings.reject_direct_send, principal = %who.name, "org settings changed");
    if settings.reject_direct_send != before
        && settings.reject_direct_send == portcullis_policy::RejectDirectSend::Off
    {
        tracing::warn!(tenant = %t, principal = %who.name, "reject direct send turned OFF: anonymous mail from the tenant's own domains is accepted again");
    }
    Ok(Json(settings))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{t}", params(("t" = String, Path, description = "Tenant name")), request_body = RoutePatch, responses((status = 200, body = Tenant)))]
pub(super) async fn set_tenant_route(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(body): ApiJson<RoutePatch>,
) -> Res<Json<Tenant>> {
    let mut tenant = tenant(&state, &t)?;
    tenant.settings.route = match &body.route {
        Some(r) => parse_route_opt(r).map_err(bad)?,
        None => None,
    };
    state.store.set_org_settings(&t, &tenant.settings).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, route = ?tenant.settings.route, "tenant route changed");
    Ok(Json(tenant))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{t}/domains/{d}", params(("t" = String, Path, description = "Tenant name"), ("d" = String, Path, description = "Accepted domain")), request_body = RoutePatch, responses((status = 200, body = AcceptedDomain)))]
pub(super) async fn set_domain_route(
    Extract(state): Extract<State>,
    ApiPath((t, d)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RoutePatch>,
) -> Res<Json<AcceptedDomain>> {
    tenant(&state, &t)?;
    let domain = names::normalize_domain(&d).unwrap_or(d);
    let dir = state.live.get();
    let mut accepted = dir
        .tenant(&t)
        .and_then(|e| e.domains.iter().find(|x| x.domain == domain).cloned())
        .ok_or_else(|| {
            ApiErr(
                StatusCode::NOT_FOUND,
                format!("accepted domain {domain} of tenant {t} not found"),
            )
        })?;
    accepted.route = match &body.route {
        Some(r) => parse_route_opt(r).map_err(bad)?,
        None => None,
    };
    state.store.update_domain(&accepted).await?;
    changed(&state).await?;
    Ok(Json(accepted))
}
