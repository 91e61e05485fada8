//! The admin API: JSON over HTTP with a bearer token. Every handler is scoped by the tenant in its
//! path (tenant isolation); every write rebuilds the directory snapshot before answering, so the
//! change applies to the next SMTP transaction. Errors are `{"error": "..."}` naming the value:
//! 400 bad input, 404 unknown object, 409 conflict, 500 server trouble.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, Query, Request, State as Extract};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portcullis_policy::{AcceptedDomain, Connector, OrgSettings, Tenant, names};
use portcullis_store::{Store, StoreError, TraceQuery, TraceRecord};

use crate::api_types::*;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::directory::Live;

#[derive(Clone)]
pub struct State {
    store: Store,
    live: Arc<Live>,
    config: Arc<Config>,
    auth: Arc<Authenticator>,
    token: Arc<str>,
}

impl State {
    pub fn new(
        store: Store,
        live: Arc<Live>,
        config: Arc<Config>,
        auth: Arc<Authenticator>,
    ) -> anyhow::Result<State> {
        let path = config.data_dir.join("admin.token");
        let token = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        Ok(State {
            store,
            live,
            config,
            auth,
            token: token.trim().into(),
        })
    }
}

pub struct ApiErr(StatusCode, String);

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

impl From<StoreError> for ApiErr {
    fn from(e: StoreError) -> ApiErr {
        match e {
            StoreError::NotFound(_) => ApiErr(StatusCode::NOT_FOUND, e.to_string()),
            StoreError::Conflict(_) => ApiErr(StatusCode::CONFLICT, e.to_string()),
            _ => {
                tracing::error!("admin API: {e}");
                ApiErr(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

impl From<anyhow::Error> for ApiErr {
    fn from(e: anyhow::Error) -> ApiErr {
        tracing::error!("admin API: {e:#}");
        ApiErr(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

fn bad(msg: String) -> ApiErr {
    ApiErr(StatusCode::BAD_REQUEST, msg)
}

type Res<T> = Result<T, ApiErr>;

pub fn router(state: State) -> Router {
    let api = Router::new()
        .route("/tenants", get(list_tenants).post(add_tenant))
        .route("/tenants/{t}", get(show_tenant).delete(remove_tenant))
        .route("/tenants/{t}/domains", get(list_domains).post(add_domain))
        .route(
            "/tenants/{t}/domains/{d}",
            axum::routing::delete(remove_domain),
        )
        .route("/tenants/{t}/org", get(show_org).patch(set_org))
        .route(
            "/tenants/{t}/connectors",
            get(list_connectors).post(add_connector),
        )
        .route(
            "/tenants/{t}/connectors/{c}",
            get(show_connector)
                .patch(set_connector)
                .delete(remove_connector),
        )
        .route("/tenants/{t}/trace", get(list_trace))
        .route("/tenants/{t}/trace/{id}", get(show_trace))
        .route("/tenants/{t}/simulate", axum::routing::post(simulate))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state);
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(1024 * 1024))
}

async fn authorize(Extract(state): Extract<State>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(t) if constant_time_eq(t.as_bytes(), state.token.as_bytes()) => next.run(req).await,
        _ => ApiErr(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token".into(),
        )
        .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The tenant as of the latest snapshot, or 404.
fn tenant(state: &State, name: &str) -> Res<Tenant> {
    state
        .live
        .get()
        .tenant(name)
        .map(|e| e.tenant.clone())
        .ok_or_else(|| ApiErr(StatusCode::NOT_FOUND, format!("tenant {name} not found")))
}

async fn changed(state: &State) -> Res<()> {
    state.live.refresh(true).await?;
    Ok(())
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ---- tenants ----

async fn list_tenants(Extract(state): Extract<State>) -> Json<Vec<Tenant>> {
    let dir = state.live.get();
    let mut list: Vec<Tenant> = dir.tenants().map(|e| e.tenant.clone()).collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Json(list)
}

async fn show_tenant(Extract(state): Extract<State>, Path(t): Path<String>) -> Res<Json<Tenant>> {
    Ok(Json(tenant(&state, &t)?))
}

async fn add_tenant(
    Extract(state): Extract<State>,
    Json(body): Json<NewTenant>,
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

async fn remove_tenant(Extract(state): Extract<State>, Path(t): Path<String>) -> Res<StatusCode> {
    state.store.remove_tenant(&t).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, "tenant removed");
    Ok(StatusCode::NO_CONTENT)
}

// ---- accepted domains ----

async fn list_domains(
    Extract(state): Extract<State>,
    Path(t): Path<String>,
) -> Res<Json<Vec<AcceptedDomain>>> {
    tenant(&state, &t)?;
    let dir = state.live.get();
    Ok(Json(
        dir.tenant(&t)
            .map(|e| e.domains.clone())
            .unwrap_or_default(),
    ))
}

async fn add_domain(
    Extract(state): Extract<State>,
    Path(t): Path<String>,
    Json(body): Json<NewDomain>,
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
    };
    state.store.add_domain(&d).await?;
    changed(&state).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

async fn remove_domain(
    Extract(state): Extract<State>,
    Path((t, d)): Path<(String, String)>,
) -> Res<StatusCode> {
    let domain = names::normalize_domain(&d).unwrap_or(d);
    state.store.remove_domain(&t, &domain).await?;
    changed(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- org settings ----

async fn show_org(Extract(state): Extract<State>, Path(t): Path<String>) -> Res<Json<OrgSettings>> {
    Ok(Json(tenant(&state, &t)?.settings))
}

async fn set_org(
    Extract(state): Extract<State>,
    Path(t): Path<String>,
    Json(patch): Json<OrgPatch>,
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
    if state.config.lock_reject_direct_send && settings.reject_direct_send != before {
        return Err(ApiErr(
            StatusCode::FORBIDDEN,
            "reject_direct_send is locked by the operator ([tenants] lock_reject_direct_send)"
                .into(),
        ));
    }
    state.store.set_org_settings(&t, &settings).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, reject_direct_send = ?settings.reject_direct_send, "org settings changed");
    Ok(Json(settings))
}

// ---- connectors ----

/// Connectors the tenant configured (without the synthesized `service:` ones).
fn connectors(state: &State, t: &str) -> Res<Vec<Connector>> {
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

fn connector(state: &State, t: &str, name: &str) -> Res<Connector> {
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

async fn list_connectors(
    Extract(state): Extract<State>,
    Path(t): Path<String>,
) -> Res<Json<Vec<Connector>>> {
    Ok(Json(connectors(&state, &t)?))
}

async fn show_connector(
    Extract(state): Extract<State>,
    Path((t, c)): Path<(String, String)>,
) -> Res<Json<Connector>> {
    Ok(Json(connector(&state, &t, &c)?))
}

async fn add_connector(
    Extract(state): Extract<State>,
    Path(t): Path<String>,
    Json(patch): Json<ConnectorPatch>,
) -> Res<(StatusCode, Json<Connector>)> {
    tenant(&state, &t)?;
    let name = parse_connector_name(patch.name.as_deref().unwrap_or("")).map_err(bad)?;
    let mut c = Connector::new(&t, &name);
    patch.apply(&mut c).map_err(bad)?;
    state.store.put_connector(&c, true).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, connector = %c.name, "connector added");
    Ok((StatusCode::CREATED, Json(c)))
}

async fn set_connector(
    Extract(state): Extract<State>,
    Path((t, name)): Path<(String, String)>,
    Json(patch): Json<ConnectorPatch>,
) -> Res<Json<Connector>> {
    let mut c = connector(&state, &t, &name)?;
    if patch.name.as_deref().is_some_and(|n| n != name) {
        return Err(bad(
            "renaming a connector is not supported; remove and add it".into(),
        ));
    }
    patch.apply(&mut c).map_err(bad)?;
    state.store.put_connector(&c, false).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, connector = %c.name, "connector changed");
    Ok(Json(c))
}

async fn remove_connector(
    Extract(state): Extract<State>,
    Path((t, c)): Path<(String, String)>,
) -> Res<StatusCode> {
    state.store.remove_connector(&t, &c).await?;
    changed(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- trace ----

async fn list_trace(
    Extract(state): Extract<State>,
    Path(t): Path<String>,
    Query(p): Query<TraceParams>,
) -> Res<Json<Vec<TraceRecord>>> {
    tenant(&state, &t)?;
    let q = trace_query(&t, &p).map_err(bad)?;
    Ok(Json(state.store.query_traces(&q).await?))
}

fn trace_query(t: &str, p: &TraceParams) -> Result<TraceQuery, String> {
    let time = |what: &str, s: &str| -> Result<i64, String> {
        humantime::parse_rfc3339_weak(s)
            .map(crate::trace::micros)
            .map_err(|_| {
                format!("invalid {what} time {s:?}: expected RFC 3339, e.g. 2026-11-29T10:00:00Z")
            })
    };
    let mut q = TraceQuery {
        tenant: t.to_string(),
        limit: p.limit.unwrap_or(100),
        ..Default::default()
    };
    q.sender = p.sender.as_ref().map(|s| s.trim().to_lowercase());
    q.recipient = p.recipient.as_ref().map(|s| s.trim().to_lowercase());
    if let Some(ip) = &p.from_ip {
        let parsed: std::net::IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("invalid IP address {ip:?}"))?;
        q.client_ip = Some(parsed.to_canonical().to_string());
    }
    q.message_id = p
        .message_id
        .as_ref()
        .map(|m| m.trim().trim_matches(['<', '>']).to_string());
    if let Some(s) = &p.status {
        if !TRACE_STATUSES.contains(&s.as_str()) {
            return Err(format!(
                "invalid status {s:?}: expected one of {}",
                TRACE_STATUSES.join(", ")
            ));
        }
        q.status = Some(s.clone());
    }
    if let Some(since) = &p.since {
        if p.start.is_some() || p.end.is_some() {
            return Err("--since cannot be combined with --start/--end".into());
        }
        let d = humantime::parse_duration(since)
            .map_err(|_| format!("invalid duration {since:?}: expected e.g. 30m, 2h, 7d"))?;
        let start = SystemTime::now()
            .checked_sub(d)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        q.start_us = Some(crate::trace::micros(start));
    }
    if let Some(s) = &p.start {
        q.start_us = Some(time("start", s)?);
    }
    if let Some(e) = &p.end {
        q.end_us = Some(time("end", e)?);
    }
    Ok(q)
}

async fn show_trace(
    Extract(state): Extract<State>,
    Path((t, id)): Path<(String, String)>,
) -> Res<Json<TraceRecord>> {
    tenant(&state, &t)?;
    state
        .store
        .get_trace(&t, &id)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiErr(
                StatusCode::NOT_FOUND,
                format!("trace {id} not found in tenant {t}"),
            )
        })
}

// ---- simulate ----

async fn simulate(
    Extract(state): Extract<State>,
    Path(t): Path<String>,
    Json(req): Json<SimulateRequest>,
) -> Res<Json<SimulateReport>> {
    tenant(&state, &t)?;
    let dir = state.live.get();
    crate::simulate::run(&dir, &state.auth, &t, &req)
        .await
        .map(Json)
        .map_err(bad)
}
