//! Tenants, accepted domains, org settings and delivery routes.

use axum::Json;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use portcullis_policy::{AcceptedDomain, OrgSettings, Tenant, names};

use crate::admin::principals::Principal;
use crate::api_types::*;
use crate::sys::clock::now_unix;

use super::audit::{Trail, trail};
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

#[utoipa::path(get, path = "/api/v1/tenants/{t}/summary", params(("t" = String, Path, description = "Tenant name")), responses((status = 200, body = TenantSummary)))]
pub(super) async fn tenant_summary(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<Json<TenantSummary>> {
    let tenant = tenant(&state, &t)?;
    let dir = state.live.get();
    let entry = dir.tenant(&t);
    Ok(Json(TenantSummary {
        route: tenant
            .settings
            .route
            .clone()
            .unwrap_or_else(|| state.config.default_route.to_string()),
        tenant,
        domains: entry.map(|e| e.domains.clone()).unwrap_or_default(),
        connectors: crate::admin::connectors::connectors(&state, &t)?,
        rules: entry.map_or(0, |e| e.rules.len() as u64),
        recipients: dir.recipient_lists().get(&t).map_or(0, |l| l.len() as u64),
    }))
}

#[utoipa::path(post, path = "/api/v1/tenants", request_body = NewTenant, responses((status = 201, body = Tenant), (status = 409, description = "The tenant exists", body = ApiError)))]
pub(super) async fn add_tenant(
    Extract(state): Extract<State>,
    ApiJson(body): ApiJson<NewTenant>,
) -> Res<(StatusCode, Trail, Json<Tenant>)> {
    let name = parse_tenant_name(&body.name).map_err(bad)?;
    let settings = OrgSettings {
        reject_direct_send: state.config.default_reject_direct_send,
        ..Default::default()
    };
    let t = Tenant { name, settings };
    let change = state.store.add_tenant(&t, now_unix()).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t.name, "tenant added");
    Ok((StatusCode::CREATED, trail(&change), Json(t)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{t}", params(("t" = String, Path, description = "Tenant name")), responses((status = 204, description = "Removed with its domains, connectors and rules")))]

pub(super) async fn remove_tenant(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<(StatusCode, Trail)> {
    let change = state.store.remove_tenant(&t).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, "tenant removed");
    Ok((StatusCode::NO_CONTENT, trail(&change)))
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
    axum::Extension(who): axum::Extension<Principal>,
    ApiPath(t): ApiPath<String>,
    ApiJson(body): ApiJson<NewDomain>,
) -> Res<(StatusCode, Trail, Json<AcceptedDomain>)> {
    // The tenant is checked in the write's transaction (a snapshot may lag another node).
    let operator = who.is_operator();
    let d = AcceptedDomain {
        domain: parse_domain(&body.domain).map_err(bad)?,
        tenant: t,
        domain_type: match &body.domain_type {
            Some(s) => parse_domain_type(s).map_err(bad)?,
            None => Default::default(),
        },
        match_subdomains: body.match_subdomains,
        route: None,
        // A tenant role proves control of a new domain before it receives mail (as Microsoft
        // 365 asks for a TXT record); the operator's domains are verified at once.
        verification: (!operator).then(verification_token),
        recipient_validation: None,
    };
    let change = state.store.add_domain_as(&d, operator).await?;
    changed(&state).await?;
    if !change.value.is_empty() {
        tracing::warn!(domain = %d.domain, tenant = %d.tenant, overlaps = ?change.value, principal = %who.name, "accepted domain overlaps other tenants' domains (added by the operator)");
    }
    Ok((StatusCode::CREATED, trail(&change), Json(d)))
}

/// The TXT value a tenant publishes at its domain to prove control of it.
fn verification_token() -> String {
    format!(
        "portcullis-verification={:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

#[utoipa::path(post, path = "/api/v1/tenants/{t}/domains/{d}/verify", params(("t" = String, Path, description = "Tenant name"), ("d" = String, Path, description = "Accepted domain")), request_body = VerifyDomain, responses((status = 200, body = AcceptedDomain), (status = 409, description = "The verification TXT record was not found", body = ApiError)))]
pub(super) async fn verify_domain(
    Extract(state): Extract<State>,
    ApiPath((t, d)): ApiPath<(String, String)>,
    ApiJson(_wish): ApiJson<VerifyDomain>,
) -> Res<(Trail, Json<AcceptedDomain>)> {
    let domain = names::normalize_domain(&d).unwrap_or(d);
    let pending = state
        .store
        .load_directory()
        .await?
        .domains
        .into_iter()
        .find(|x| x.tenant == t && x.domain == domain)
        .ok_or_else(|| {
            ApiErr(
                StatusCode::NOT_FOUND,
                format!("accepted domain {domain} of tenant {t} not found"),
            )
        })?;
    let Some(token) = pending.verification.clone() else {
        return Err(ApiErr(
            StatusCode::CONFLICT,
            format!("accepted domain {domain} is verified already"),
        ));
    };
    let found = state.auth.txt_values(&domain).await.map_err(|e| {
        ApiErr(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot look up TXT records of {domain} now: {e}"),
        )
    })?;
    if !found.iter().any(|v| v.trim() == token) {
        return Err(ApiErr(
            StatusCode::CONFLICT,
            format!("no TXT record \"{token}\" at {domain} yet"),
        ));
    }
    let change = state
        .store
        .modify_domain(&t, &domain, |x| {
            x.verification = None;
            Ok::<(), ApiErr>(())
        })
        .await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, domain = %domain, "accepted domain verified");
    Ok((trail(&change), Json(change.value.clone())))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{t}/domains/{d}", params(("t" = String, Path, description = "Tenant name"), ("d" = String, Path, description = "Accepted domain")), responses((status = 204, description = "Removed")))]
pub(super) async fn remove_domain(
    Extract(state): Extract<State>,
    ApiPath((t, d)): ApiPath<(String, String)>,
) -> Res<(StatusCode, Trail)> {
    let domain = names::normalize_domain(&d).unwrap_or(d);
    let change = state.store.remove_domain(&t, &domain).await?;
    changed(&state).await?;
    Ok((StatusCode::NO_CONTENT, trail(&change)))
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
) -> Res<(Trail, Json<OrgSettings>)> {
    let services: Vec<String> = state
        .config
        .services
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let lock = state.config.lock_reject_direct_send && !who.is_operator();
    // The patch applies to the settings as they are in the database now, in one transaction:
    // a change made meanwhile (on another node) is kept, never written back over.
    let mut before = None;
    let change = state
        .store
        .modify_org_settings(&t, |settings| {
            before = Some(settings.reject_direct_send);
            let was = settings.reject_direct_send;
            patch.apply(settings, &services).map_err(bad)?;
            // The lock binds tenant roles; the operator who set it may still change it.
            if lock && settings.reject_direct_send != was {
                return Err(ApiErr(
                    StatusCode::FORBIDDEN,
                    "reject_direct_send is locked by the operator ([tenants] lock_reject_direct_send)"
                        .into(),
                ));
            }
            Ok(())
        })
        .await?;
    changed(&state).await?;
    let settings = &change.value;
    tracing::info!(tenant = %t, reject_direct_send = ?settings.reject_direct_send, principal = %who.name, "org settings changed");
    if before.is_some_and(|b| b != settings.reject_direct_send)
        && settings.reject_direct_send == portcullis_policy::RejectDirectSend::Off
    {
        tracing::warn!(tenant = %t, principal = %who.name, "reject direct send turned OFF: anonymous mail from the tenant's own domains is accepted again");
    }
    Ok((trail(&change), Json(change.value.clone())))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{t}", params(("t" = String, Path, description = "Tenant name")), request_body = RoutePatch, responses((status = 200, body = Tenant)))]
pub(super) async fn set_tenant_route(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(body): ApiJson<RoutePatch>,
) -> Res<(Trail, Json<Tenant>)> {
    let route = match &body.route {
        Some(r) => parse_route_opt(r).map_err(bad)?,
        None => None,
    };
    let change = state
        .store
        .modify_org_settings(&t, |settings| {
            settings.route = route.clone();
            Ok::<(), ApiErr>(())
        })
        .await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, route = ?route, "tenant route changed");
    let tenant = Tenant {
        name: t,
        settings: change.value.clone(),
    };
    Ok((trail(&change), Json(tenant)))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{t}/domains/{d}", params(("t" = String, Path, description = "Tenant name"), ("d" = String, Path, description = "Accepted domain")), request_body = DomainPatch, responses((status = 200, body = AcceptedDomain)))]
pub(super) async fn set_domain_route(
    Extract(state): Extract<State>,
    ApiPath((t, d)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<DomainPatch>,
) -> Res<(Trail, Json<AcceptedDomain>)> {
    let domain = names::normalize_domain(&d).unwrap_or(d);
    // A bad value is refused inside the change's transaction: nothing is written.
    let change = state
        .store
        .modify_domain(&t, &domain, |accepted| body.apply(accepted).map_err(bad))
        .await?;
    changed(&state).await?;
    Ok((trail(&change), Json(change.value.clone())))
}
