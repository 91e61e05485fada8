//! The admin API: JSON over HTTP with a bearer token. Every handler is scoped by the tenant in its
//! path (tenant isolation); every write rebuilds the directory snapshot before answering, so the
//! change applies to the next SMTP transaction. Errors are `{"error": "..."}` naming the value:
//! 400 bad input, 404 unknown object, 409 conflict, 500 server trouble.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{
    FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State as Extract,
};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portcullis_policy::rules::Rule;
use portcullis_policy::{AcceptedDomain, Connector, OrgSettings, Tenant, names};
use portcullis_store::{
    AuditEntry, QuarantineEntry, QuarantineQuery, Store, StoreError, TokenRecord, TraceQuery,
    TraceRecord,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::principals::{self, Principal, Role, Tokens};
use crate::api_types::*;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::directory::Live;
use crate::sys::clock::now_unix;

#[derive(Clone)]
pub struct State {
    store: Store,
    live: Arc<Live>,
    config: Arc<Config>,
    auth: Arc<Authenticator>,
    tokens: Arc<Tokens>,
    /// Spool, delivery and trace, for releasing quarantined messages.
    shared: Arc<crate::shared::Shared>,
}

impl State {
    pub fn new(shared: Arc<crate::shared::Shared>) -> anyhow::Result<State> {
        let (store, live, config, auth) = (
            shared.store.clone(),
            shared.directory.clone(),
            shared.config.clone(),
            shared.auth.clone(),
        );
        let path = config.data_dir.join("admin.token");
        let token = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        Ok(State {
            store,
            live,
            config,
            auth,
            tokens: Arc::new(Tokens::new(token.trim().to_string(), shared.store.clone())),
            shared,
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

impl From<JsonRejection> for ApiErr {
    fn from(r: JsonRejection) -> ApiErr {
        ApiErr(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiErr {
    fn from(r: QueryRejection) -> ApiErr {
        ApiErr(r.status(), r.body_text())
    }
}

impl From<PathRejection> for ApiErr {
    fn from(r: PathRejection) -> ApiErr {
        ApiErr(r.status(), r.body_text())
    }
}

/// The client's address, over plain TCP or TLS (`ConnectInfo<Peer>`), for the audit log.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// A JSON request body: an object (serde would also build a struct from an array), whose
/// rejections (syntax, unknown field, wrong type or content type) answer in the API's own
/// `{"error": ...}` form, like every other error.
struct ApiJson<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiErr;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiErr> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        object_body(value).map(ApiJson)
    }
}

/// `T` from a request body that must be a JSON object; 422 naming the problem otherwise.
fn object_body<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Res<T> {
    if !value.is_object() {
        return Err(ApiErr(
            StatusCode::UNPROCESSABLE_ENTITY,
            "request body: expected a JSON object".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        ApiErr(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("request body: {e}"),
        )
    })
}

/// Query parameters, rejected as `{"error": ...}`.
#[derive(FromRequestParts)]
#[from_request(via(Query), rejection(ApiErr))]
struct ApiQuery<T>(T);

/// Path parameters, rejected as `{"error": ...}`.
#[derive(FromRequestParts)]
#[from_request(via(Path), rejection(ApiErr))]
struct ApiPath<T>(T);

fn bad(msg: String) -> ApiErr {
    ApiErr(StatusCode::BAD_REQUEST, msg)
}

type Res<T> = Result<T, ApiErr>;

/// The admin API. Routes and their OpenAPI description come from the same handler annotations
/// (`#[utoipa::path]`), so the served description cannot drift from what the router answers;
/// [`openapi`] adds the roles of [`principals::ROUTES`] and the error responses every route shares.
pub fn router(state: State) -> Router {
    let (api, doc) = routes().split_for_parts();
    let doc = Arc::new(openapi(doc));
    let api = api
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state.clone());
    let probes = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/api/v1/openapi.json",
            get(move || async move { Json(doc.as_ref().clone()) }),
        )
        .with_state(state);
    api.merge(probes)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(1024 * 1024))
}

/// Every route behind the bearer token, with its documentation.
fn routes() -> OpenApiRouter<State> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, add_tenant))
        .routes(routes!(show_tenant, remove_tenant, set_tenant_route))
        .routes(routes!(list_domains, add_domain))
        .routes(routes!(remove_domain, set_domain_route))
        .routes(routes!(show_org, set_org))
        .routes(routes!(list_connectors, add_connector))
        .routes(routes!(show_connector, set_connector, remove_connector))
        .routes(routes!(list_trace))
        .routes(routes!(show_trace))
        .routes(routes!(simulate))
        .routes(routes!(replay))
        .routes(routes!(direct_send_report))
        .routes(routes!(suggest_connectors))
        .routes(routes!(readiness))
        .routes(routes!(list_rules, add_rule))
        .routes(routes!(show_rule, put_rule, remove_rule))
        .routes(routes!(list_quarantine))
        .routes(routes!(show_quarantine, delete_quarantine))
        .routes(routes!(release_quarantine))
        .routes(routes!(tenant_audit))
        .routes(routes!(all_audit))
        .routes(routes!(list_queue))
        .routes(routes!(retry_queue))
        .routes(routes!(show_queue, delete_queue))
        .routes(routes!(retry_queue_item))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(list_routes))
        // Metrics name tenants: behind the operator's token.
        .routes(routes!(metrics))
}

/// The OpenAPI 3.1 description: the annotated routes, the bearer scheme, the roles each route
/// admits (from [`principals::ROUTES`]), the `{"error": ...}` answers they share, and the open
/// probes.
pub fn openapi(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    use utoipa::{OpenApi as _, PartialSchema, ToSchema};

    #[derive(utoipa::OpenApi)]
    #[openapi(
        info(
            title = "Portcullis admin API",
            description = "Tenants, accepted domains, connectors, mail-flow rules, quarantine, trace, reports, tokens and the audit log of a Portcullis gateway. Authenticate with `Authorization: Bearer <token>`; each operation names the roles it admits.",
            license(name = "Apache-2.0", identifier = "Apache-2.0")
        ),
        paths(readyz)
    )]
    struct Base;

    let mut base = Base::openapi();
    base.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.info = base.info.clone();
    let mut components = doc.components.take().unwrap_or_default();
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API token (`portcullis token create`) or the bootstrap token in admin.token"))
                .build(),
        ),
    );
    components
        .schemas
        .insert(ApiError::name().into_owned(), ApiError::schema());
    doc.components = Some(components);
    let error = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ApiError::name())))
                    .build(),
            )
            .build()
    };
    let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            ("GET", item.get.as_mut()),
            ("POST", item.post.as_mut()),
            ("PUT", item.put.as_mut()),
            ("PATCH", item.patch.as_mut()),
            ("DELETE", item.delete.as_mut()),
        ] {
            let Some(op) = op else { continue };
            let roles = match principals::need(&method.parse().expect("a method"), path) {
                Some(principals::Need::Operator) => "operator".to_string(),
                Some(principals::Need::Tenant(roles)) => {
                    let mut r: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                    r.push("operator");
                    r.join(", ")
                }
                // Not in the table: the router refuses it; the consistency test fails first.
                None => "none (refused)".to_string(),
            };
            let note = format!("Roles: {roles}.");
            op.description = Some(match op.description.take() {
                Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
                _ => note,
            });
            op.security = Some(vec![bearer.clone()]);
            let responses = &mut op.responses.responses;
            let has_input =
                op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            if has_input {
                responses
                    .entry("400".into())
                    .or_insert_with(|| error("Bad input, naming the value").into());
            }
            if op.request_body.is_some() {
                responses.entry("413".into()).or_insert_with(|| {
                    ResponseBuilder::new()
                        .description("The body exceeds 1 MiB")
                        .build()
                        .into()
                });
                responses
                    .entry("415".into())
                    .or_insert_with(|| error("The body is not application/json").into());
                responses.entry("422".into()).or_insert_with(|| {
                    error("A field is unknown, missing or of the wrong type").into()
                });
            }
            responses
                .entry("401".into())
                .or_insert_with(|| error("No token, or not a valid one").into());
            responses
                .entry("403".into())
                .or_insert_with(|| error("The token's role or tenant does not admit this").into());
            if path.contains('{') {
                responses
                    .entry("404".into())
                    .or_insert_with(|| error("No such object").into());
            }
            responses
                .entry("default".into())
                .or_insert_with(|| error("Server trouble (database, spool)").into());
        }
    }
    doc.merge(base);
    doc
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
async fn metrics(Extract(state): Extract<State>) -> Response {
    let body = crate::telemetry::render(state.shared.spool.len());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Ready when the database answers and the spool accepts a durable write.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "Ready", content_type = "text/plain", body = String), (status = 503, description = "Database or spool unavailable", content_type = "text/plain", body = String)))]
async fn readyz(Extract(state): Extract<State>) -> Response {
    if let Err(e) = state.store.directory_generation().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}\n")).into_response();
    }
    let spool = state.shared.spool.clone();
    match tokio::task::spawn_blocking(move || spool.probe()).await {
        Ok(Ok(())) => "ready\n".into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("spool: {e:#}\n")).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("spool: {e}\n")).into_response(),
    }
}

/// Authenticates the bearer token, checks the route's role in [`principals::ROUTES`] (routes not
/// in the table are refused) and the tenant in the path, and writes an audit entry for every
/// successful change, with the tenant's configuration before and after.
async fn authorize(Extract(state): Extract<State>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    let Some(principal) = state.tokens.authenticate(presented).await else {
        return ApiErr(
            StatusCode::UNAUTHORIZED,
            "missing, wrong, expired or revoked API token".into(),
        )
        .into_response();
    };
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let method = req.method().clone();
    // Inside the nested router the URI lacks `/api/v1`; the template and the original URI have it.
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.path().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let tenant = path_tenant(&template, &path);
    let Some(need) = principals::need(&method, &template) else {
        tracing::error!(%method, route = %template, "admin API route missing from the role table; refused");
        return ApiErr(
            StatusCode::FORBIDDEN,
            format!("{method} {template} is not permitted"),
        )
        .into_response();
    };
    if !principals::allows(&principal, need, tenant.as_deref()) {
        let scope = match &principal.tenant {
            Some(t) => format!("{} of tenant {t}", principal.role.as_str()),
            None => principal.role.as_str().to_string(),
        };
        return ApiErr(
            StatusCode::FORBIDDEN,
            format!("{} ({scope}) may not {method} {path}", principal.name),
        )
        .into_response();
    }
    let address = req
        .extensions()
        .get::<axum::extract::ConnectInfo<Peer>>()
        .map(|c| c.0.0.ip().to_string())
        .unwrap_or_default();
    let audited = method != axum::http::Method::GET
        && !template.ends_with("/simulate")
        && !template.ends_with("/simulate/replay")
        && !template.ends_with("/suggest");
    let before = if audited {
        tenant.as_deref().and_then(|t| tenant_snapshot(&state, t))
    } else {
        None
    };
    req.extensions_mut().insert(principal.clone());
    let mut resp = next.run(req).await;
    if audited && resp.status().is_success() {
        let mut tenant = tenant;
        let mut after = tenant.as_deref().and_then(|t| tenant_snapshot(&state, t));
        // Routes without `{t}` name their object in the answer: the created tenant (whose audit
        // log then starts with its creation) and tokens (shown in the log of the tenant they
        // grant, without the secret). Revocations name the token id.
        if method == axum::http::Method::POST
            && (template == "/api/v1/tenants" || template == "/api/v1/tokens")
        {
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, 1024 * 1024)
                .await
                .unwrap_or_default();
            let created: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if template == "/api/v1/tenants" {
                tenant = created["name"].as_str().map(str::to_string);
                after = tenant.as_deref().and_then(|t| tenant_snapshot(&state, t));
            } else {
                tenant = created["tenant"].as_str().map(str::to_string);
                let mut token = created;
                if let Some(o) = token.as_object_mut() {
                    o.remove("token");
                }
                after = Some(serde_json::json!({ "token": token }));
            }
            resp = Response::from_parts(parts, axum::body::Body::from(bytes));
        } else if template == "/api/v1/tokens/{id}" {
            let id = path.rsplit('/').next().unwrap_or_default();
            after = Some(serde_json::json!({ "revoked_token": id }));
        }
        let now = SystemTime::now();
        let entry = portcullis_store::AuditEntry {
            at: crate::sys::clock::rfc3339(now),
            at_us: crate::sys::clock::micros(now),
            principal: principal.name.clone(),
            address,
            tenant: tenant.clone(),
            action: format!("{method} {template}"),
            before,
            after,
        };
        if let Err(e) = state.store.add_audit(&entry).await {
            tracing::error!("audit log: {e}");
        }
        tracing::info!(principal = %principal.name, action = %entry.action, tenant = ?tenant, "admin change");
    }
    resp
}

/// The `{t}` segment of a request path, by its position in the route template.
fn path_tenant(template: &str, path: &str) -> Option<String> {
    let pos = template.split('/').position(|s| s == "{t}")?;
    // Tenant names are plain ASCII names; an encoded one matches no tenant and is refused.
    path.split('/').nth(pos).map(str::to_string)
}

/// A tenant's whole configuration as JSON, for the audit log.
fn tenant_snapshot(state: &State, t: &str) -> Option<serde_json::Value> {
    let dir = state.live.get();
    let e = dir.tenant(t)?;
    Some(serde_json::json!({
        "tenant": e.tenant,
        "domains": e.domains,
        "connectors": e.connectors,
        "rules": e.rules.iter().map(|r| &r.rule).collect::<Vec<_>>(),
    }))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries at or after this time (RFC 3339, or an age such as `24h`).
    since: Option<String>,
    /// At most this many (1 to 100000; default 1000).
    #[param(minimum = 1, maximum = 100000)]
    limit: Option<u32>,
}

fn since_us(q: &AuditQuery) -> Res<i64> {
    match q.since.as_deref() {
        None => Ok(0),
        Some(s) => parse_since_time(s)
            .map(crate::sys::clock::micros)
            .map_err(|e| bad(format!("since {s:?}: {e}"))),
    }
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/audit", params(("t" = String, Path, description = "Tenant name"), AuditQuery), responses((status = 200, body = Vec<AuditEntry>)))]
async fn tenant_audit(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Res<Json<Vec<portcullis_store::AuditEntry>>> {
    audit(&state, Some(&t), &q).await
}

#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), responses((status = 200, body = Vec<AuditEntry>)))]
async fn all_audit(
    Extract(state): Extract<State>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Res<Json<Vec<portcullis_store::AuditEntry>>> {
    audit(&state, None, &q).await
}

/// The audit entries of one tenant, or of all (`None`), as the query asks.
async fn audit(
    state: &State,
    tenant: Option<&str>,
    q: &AuditQuery,
) -> Res<Json<Vec<portcullis_store::AuditEntry>>> {
    let since = since_us(q)?;
    let limit = limit(q.limit, 1000).map_err(bad)?;
    Ok(Json(state.store.list_audit(tenant, since, limit).await?))
}

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
async fn create_token(
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
async fn list_tokens(
    Extract(state): Extract<State>,
) -> Res<Json<Vec<portcullis_store::TokenRecord>>> {
    Ok(Json(state.store.list_tokens().await?))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = String, Path, description = "Token id")), responses((status = 204, description = "Revoked")))]
async fn revoke_token(
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
async fn list_routes(_p: axum::Extension<Principal>) -> Json<Vec<RouteInfo>> {
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

// ---- tenants ----

#[utoipa::path(get, path = "/api/v1/tenants", responses((status = 200, body = Vec<Tenant>)))]
async fn list_tenants(Extract(state): Extract<State>) -> Json<Vec<Tenant>> {
    let dir = state.live.get();
    let mut list: Vec<Tenant> = dir.tenants().map(|e| e.tenant.clone()).collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Json(list)
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}", params(("t" = String, Path, description = "Tenant name")), responses((status = 200, body = Tenant)))]
async fn show_tenant(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<Json<Tenant>> {
    Ok(Json(tenant(&state, &t)?))
}

#[utoipa::path(post, path = "/api/v1/tenants", request_body = NewTenant, responses((status = 201, body = Tenant), (status = 409, description = "The tenant exists", body = ApiError)))]
async fn add_tenant(
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
async fn remove_tenant(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<StatusCode> {
    state.store.remove_tenant(&t).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, "tenant removed");
    Ok(StatusCode::NO_CONTENT)
}

// ---- accepted domains ----

#[utoipa::path(get, path = "/api/v1/tenants/{t}/domains", params(("t" = String, Path, description = "Tenant name")), responses((status = 200, body = Vec<AcceptedDomain>)))]
async fn list_domains(
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
async fn add_domain(
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
async fn remove_domain(
    Extract(state): Extract<State>,
    ApiPath((t, d)): ApiPath<(String, String)>,
) -> Res<StatusCode> {
    let domain = names::normalize_domain(&d).unwrap_or(d);
    state.store.remove_domain(&t, &domain).await?;
    changed(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- org settings ----

#[utoipa::path(get, path = "/api/v1/tenants/{t}/org", params(("t" = String, Path, description = "Tenant name")), responses((status = 200, body = OrgSettings)))]
async fn show_org(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<Json<OrgSettings>> {
    Ok(Json(tenant(&state, &t)?.settings))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{t}/org", params(("t" = String, Path, description = "Tenant name")), request_body = OrgPatch, responses((status = 200, body = OrgSettings)))]
async fn set_org(
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

#[utoipa::path(get, path = "/api/v1/tenants/{t}/connectors", params(("t" = String, Path, description = "Tenant name")), responses((status = 200, body = Vec<Connector>)))]
async fn list_connectors(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<Json<Vec<Connector>>> {
    Ok(Json(connectors(&state, &t)?))
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/connectors/{c}", params(("t" = String, Path, description = "Tenant name"), ("c" = String, Path, description = "Connector name")), responses((status = 200, body = Connector)))]
async fn show_connector(
    Extract(state): Extract<State>,
    ApiPath((t, c)): ApiPath<(String, String)>,
) -> Res<Json<Connector>> {
    Ok(Json(connector(&state, &t, &c)?))
}

#[utoipa::path(post, path = "/api/v1/tenants/{t}/connectors", params(("t" = String, Path, description = "Tenant name")), request_body = ConnectorPatch, responses((status = 201, body = Connector), (status = 409, description = "The connector exists", body = ApiError)))]
async fn add_connector(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(patch): ApiJson<ConnectorPatch>,
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

#[utoipa::path(patch, path = "/api/v1/tenants/{t}/connectors/{c}", params(("t" = String, Path, description = "Tenant name"), ("c" = String, Path, description = "Connector name")), request_body = ConnectorPatch, responses((status = 200, body = Connector)))]
async fn set_connector(
    Extract(state): Extract<State>,
    ApiPath((t, name)): ApiPath<(String, String)>,
    ApiJson(patch): ApiJson<ConnectorPatch>,
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

#[utoipa::path(delete, path = "/api/v1/tenants/{t}/connectors/{c}", params(("t" = String, Path, description = "Tenant name"), ("c" = String, Path, description = "Connector name")), responses((status = 204, description = "Removed")))]
async fn remove_connector(
    Extract(state): Extract<State>,
    ApiPath((t, c)): ApiPath<(String, String)>,
) -> Res<StatusCode> {
    state.store.remove_connector(&t, &c).await?;
    changed(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- trace ----

#[utoipa::path(get, path = "/api/v1/tenants/{t}/trace", params(("t" = String, Path, description = "Tenant name"), TraceParams), responses((status = 200, body = Vec<TraceRecord>)))]
async fn list_trace(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(p): ApiQuery<TraceParams>,
) -> Res<Json<Vec<TraceRecord>>> {
    tenant(&state, &t)?;
    let q = trace_query(&t, &p).map_err(bad)?;
    Ok(Json(state.store.query_traces(&q).await?))
}

fn trace_query(t: &str, p: &TraceParams) -> Result<TraceQuery, String> {
    let time = |what: &str, s: &str| -> Result<i64, String> {
        humantime::parse_rfc3339_weak(s)
            .map(crate::sys::clock::micros)
            .map_err(|_| {
                format!("invalid {what} time {s:?}: expected RFC 3339, e.g. 2026-11-29T10:00:00Z")
            })
    };
    let mut q = TraceQuery {
        tenant: t.to_string(),
        limit: limit(p.limit, 100)?,
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
        q.start_us = Some(crate::sys::clock::micros(start));
    }
    if let Some(s) = &p.start {
        q.start_us = Some(time("start", s)?);
    }
    if let Some(e) = &p.end {
        q.end_us = Some(time("end", e)?);
    }
    Ok(q)
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/trace/{id}", params(("t" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Trace id")), responses((status = 200, body = TraceRecord)))]
async fn show_trace(
    Extract(state): Extract<State>,
    ApiPath((t, id)): ApiPath<(String, String)>,
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

#[utoipa::path(post, path = "/api/v1/tenants/{t}/simulate", params(("t" = String, Path, description = "Tenant name")), request_body = SimulateRequest, responses((status = 200, body = SimulateReport)))]
async fn simulate(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(req): ApiJson<SimulateRequest>,
) -> Res<Json<SimulateReport>> {
    tenant(&state, &t)?;
    let dir = state.live.get();
    crate::admin::simulate::run(&dir, &state.auth, &t, &req)
        .await
        .map(Json)
        .map_err(bad)
}

// ---- mail-flow rules ----

fn rules_of(state: &State, t: &str) -> Res<Vec<Rule>> {
    tenant(state, t)?;
    let dir = state.live.get();
    Ok(dir
        .tenant(t)
        .map(|e| e.rules.iter().map(|c| c.rule.clone()).collect())
        .unwrap_or_default())
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/rules", params(("t" = String, Path, description = "Tenant name")), responses((status = 200, body = Vec<Rule>)))]
async fn list_rules(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<Json<Vec<Rule>>> {
    Ok(Json(rules_of(&state, &t)?))
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/rules/{name}", params(("t" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Rule name")), responses((status = 200, body = Rule)))]
async fn show_rule(
    Extract(state): Extract<State>,
    ApiPath((t, name)): ApiPath<(String, String)>,
) -> Res<Json<Rule>> {
    rules_of(&state, &t)?
        .into_iter()
        .find(|r| r.name == name)
        .map(Json)
        .ok_or_else(|| {
            ApiErr(
                StatusCode::NOT_FOUND,
                format!("rule {name:?} of tenant {t} not found"),
            )
        })
}

#[utoipa::path(post, path = "/api/v1/tenants/{t}/rules", params(("t" = String, Path, description = "Tenant name")), request_body = Rule, responses((status = 201, body = Rule), (status = 409, description = "A rule of that name exists", body = ApiError)))]
async fn add_rule(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(mut rule): ApiJson<Rule>,
) -> Res<(StatusCode, Json<Rule>)> {
    tenant(&state, &t)?;
    validate_rule(&mut rule, &t).map_err(bad)?;
    state.store.put_rule(&rule, true).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, rule = %rule.name, "rule added");
    Ok((StatusCode::CREATED, Json(rule)))
}

#[utoipa::path(put, path = "/api/v1/tenants/{t}/rules/{name}", params(("t" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Rule name")), request_body = Rule, responses((status = 200, body = Rule)))]
async fn put_rule(
    Extract(state): Extract<State>,
    ApiPath((t, name)): ApiPath<(String, String)>,
    ApiJson(mut rule): ApiJson<Rule>,
) -> Res<Json<Rule>> {
    tenant(&state, &t)?;
    if rule.name != name {
        return Err(bad(
            "renaming a rule is not supported; remove and add it".into()
        ));
    }
    validate_rule(&mut rule, &t).map_err(bad)?;
    state.store.put_rule(&rule, false).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, rule = %rule.name, "rule changed");
    Ok(Json(rule))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{t}/rules/{name}", params(("t" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Rule name")), responses((status = 204, description = "Removed")))]
async fn remove_rule(
    Extract(state): Extract<State>,
    ApiPath((t, name)): ApiPath<(String, String)>,
) -> Res<StatusCode> {
    state.store.remove_rule(&t, &name).await?;
    changed(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- quarantine ----

#[utoipa::path(get, path = "/api/v1/tenants/{t}/quarantine", params(("t" = String, Path, description = "Tenant name"), QuarantineParams), responses((status = 200, body = Vec<QuarantineEntry>)))]
async fn list_quarantine(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(p): ApiQuery<QuarantineParams>,
) -> Res<Json<Vec<QuarantineEntry>>> {
    tenant(&state, &t)?;
    let q = QuarantineQuery {
        tenant: t,
        reason: p.reason,
        sender: p.sender.map(|s| s.trim().to_lowercase()),
        recipient: p.recipient.map(|s| s.trim().to_lowercase()),
        limit: limit(p.limit, 100).map_err(bad)?,
    };
    Ok(Json(state.store.list_quarantine(&q).await?))
}

async fn quarantined(state: &State, t: &str, id: &str) -> Res<(QuarantineEntry, Vec<u8>)> {
    tenant(state, t)?;
    state.store.get_quarantine(t, id).await?.ok_or_else(|| {
        ApiErr(
            StatusCode::NOT_FOUND,
            format!("quarantined message {id} not found in tenant {t}"),
        )
    })
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/quarantine/{id}", params(("t" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Quarantine id")), responses((status = 200, body = QuarantineDetail)))]
async fn show_quarantine(
    Extract(state): Extract<State>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> Res<Json<QuarantineDetail>> {
    let (entry, message) = quarantined(&state, &t, &id).await?;
    let (headers, preview, attachments) = crate::message::preview(&message);
    Ok(Json(QuarantineDetail {
        entry,
        headers,
        preview,
        attachments,
    }))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{t}/quarantine/{id}", params(("t" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Quarantine id")), responses((status = 204, description = "Deleted")))]
async fn delete_quarantine(
    Extract(state): Extract<State>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> Res<StatusCode> {
    tenant(&state, &t)?;
    if state.store.delete_quarantine(&t, &id).await? {
        tracing::info!(tenant = %t, id, "quarantined message deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiErr(
            StatusCode::NOT_FOUND,
            format!("quarantined message {id} not found in tenant {t}"),
        ))
    }
}

/// Delivers a quarantined message once, through the normal spool and delivery path.
#[utoipa::path(post, path = "/api/v1/tenants/{t}/quarantine/{id}/release", params(("t" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Quarantine id")), request_body = Option<ReleaseRequest>, responses((status = 200, body = QuarantineEntry), (status = 409, description = "Already released", body = ApiError)))]
async fn release_quarantine(
    Extract(state): Extract<State>,
    axum::Extension(who): axum::Extension<Principal>,
    ApiPath((t, id)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> Res<Json<QuarantineEntry>> {
    // The body is optional: none, `null` or `{}` releases to the original recipients.
    let body: ReleaseRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReleaseRequest::default()
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| bad(format!("request body: {e}")))?
        {
            serde_json::Value::Null => ReleaseRequest::default(),
            value => object_body(value)?,
        }
    };
    let (mut entry, message) = quarantined(&state, &t, &id).await?;
    // admin_only_release_direct_send: a spoof of the tenant's own domain is released only by an
    // org-admin (or the operator), not by every quarantine-admin.
    if entry.admin_only_release && !(who.is_operator() || who.role == Role::OrgAdmin) {
        return Err(ApiErr(
            StatusCode::FORBIDDEN,
            format!(
                "quarantined message {id} is direct send with the tenant's own domain: only an org-admin may release it (admin_only_release_direct_send)"
            ),
        ));
    }
    if let Some(at) = &entry.released_at {
        return Err(ApiErr(
            StatusCode::CONFLICT,
            format!("quarantined message {id} was already released at {at}"),
        ));
    }
    let to = match body.to.filter(|to| !to.is_empty()) {
        Some(to) => to
            .iter()
            .map(|a| {
                portcullis_smtp::Address::parse(a.trim())
                    .map(|a| a.to_string())
                    .ok_or_else(|| bad(format!("invalid address {a:?}")))
            })
            .collect::<Res<Vec<_>>>()?,
        None => entry.recipients.clone(),
    };
    let now = SystemTime::now();
    // Who released it, as the audit log names them: `bootstrap` or `token:NAME (ID)`.
    let by = who.name.clone();
    entry.released_at = Some(crate::sys::clock::rfc3339(now));
    entry.released_by = Some(by.clone());
    entry.released_to = Some(to.clone());
    // Claim the release first: of two concurrent releases only one gets past this.
    if !state.store.mark_released(&entry).await? {
        return Err(ApiErr(
            StatusCode::CONFLICT,
            format!("quarantined message {id} was already released"),
        ));
    }
    let mut record = state
        .store
        .get_trace(&t, &entry.trace_id)
        .await?
        .unwrap_or_else(|| portcullis_store::TraceRecord {
            trace_id: entry.trace_id.clone(),
            tenant: t.clone(),
            received_at: entry.received_at.clone(),
            received_at_us: entry.received_at_us,
            mail_from: entry.mail_from.clone(),
            subject: entry.subject.clone(),
            size: entry.size,
            ..Default::default()
        });
    crate::trace::event(
        &mut record,
        "RELEASE",
        format!("released by {by} to {}", to.join(", ")),
    );
    record.status = "pending".into();
    for r in record
        .recipients
        .iter_mut()
        .filter(|r| r.status == "quarantined")
    {
        r.status = "pending".into();
    }
    let mut released = format!(
        "X-Portcullis-Released-By: {}\r\n",
        crate::message::header_value(&by)
    )
    .into_bytes();
    released.extend_from_slice(&message);
    let envelope = crate::queue::envelope::Envelope {
        trace_id: entry.trace_id.clone(),
        tenant: t.clone(),
        mail_from: entry.mail_from.clone(),
        recipients: to,
        trace: record.clone(),
        state: Vec::new(),
        attempts: 0,
        first_attempt_us: 0,
        is_dsn: false,
        next_attempt_us: 0,
    };
    let spool = state.shared.spool.clone();
    let stored = tokio::task::spawn_blocking(move || spool.store(&envelope, &released))
        .await
        .map_err(|e| anyhow::anyhow!("spool task failed: {e}"))?;
    match stored {
        Ok(spooled) => {
            state.shared.trace.send(record).await;
            state.shared.delivery.submit(spooled);
            tracing::info!(tenant = %t, id, "quarantined message released");
            Ok(Json(entry))
        }
        Err(e) => Err(ApiErr(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("release of {id} failed: {e:#}"),
        )),
    }
}

// ---- Direct Send report, readiness, suggestions, replay ----

async fn report_for(
    state: &State,
    t: &str,
    since: Option<&str>,
) -> Res<(DirectSendReport, Vec<crate::admin::report::SourceExtra>)> {
    tenant(state, t)?;
    if let Some(s) = since {
        crate::admin::report::since(Some(s), "30d").map_err(bad)?;
    }
    let dir = state.live.get();
    Ok(crate::admin::report::direct_send(&state.store, &dir, &state.auth, t, since).await?)
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/reports/direct-send", params(("t" = String, Path, description = "Tenant name"), ReportParams), responses((status = 200, body = DirectSendReport)))]
async fn direct_send_report(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> Res<Json<DirectSendReport>> {
    Ok(Json(report_for(&state, &t, p.since.as_deref()).await?.0))
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/readiness", params(("t" = String, Path, description = "Tenant name"), ReportParams), responses((status = 200, body = Readiness)))]
async fn readiness(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> Res<Json<Readiness>> {
    let (report, extra) = report_for(&state, &t, p.since.as_deref()).await?;
    let plan = crate::admin::report::suggest(&report, &extra, &connectors(&state, &t)?);
    Ok(Json(crate::admin::report::readiness(&report, &plan)))
}

#[utoipa::path(post, path = "/api/v1/tenants/{t}/reports/direct-send/suggest", params(("t" = String, Path, description = "Tenant name")), request_body = SuggestRequest, responses((status = 200, body = SuggestResponse)))]
async fn suggest_connectors(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(req): ApiJson<SuggestRequest>,
) -> Res<Json<SuggestResponse>> {
    let (report, extra) = report_for(&state, &t, req.since.as_deref()).await?;
    let mut plan = crate::admin::report::suggest(&report, &extra, &connectors(&state, &t)?);
    if req.apply {
        for s in &plan.connectors {
            let patch = ConnectorPatch {
                sender_ips: (!s.sender_ips.is_empty()).then(|| s.sender_ips.clone()),
                tls_cert_names: (!s.tls_cert_names.is_empty()).then(|| s.tls_cert_names.clone()),
                ..Default::default()
            };
            let mut c = Connector::new(&t, &s.name);
            patch.apply(&mut c).map_err(bad)?;
            // Trust only for the tenant's own domains these sources used.
            let domains: Vec<String> = report
                .sources
                .iter()
                .filter(|r| s.covers.contains(&r.source))
                .flat_map(|r| r.p1_domains.iter().cloned())
                .collect();
            if !domains.is_empty() {
                c.sender_domains = domains;
                c.sender_domains.sort();
                c.sender_domains.dedup();
            }
            state.store.put_connector(&c, true).await?;
            plan.applied.push(c.name.clone());
            tracing::info!(tenant = %t, connector = %c.name, "suggested connector created");
        }
        changed(&state).await?;
    }
    Ok(Json(plan))
}

#[utoipa::path(post, path = "/api/v1/tenants/{t}/simulate/replay", params(("t" = String, Path, description = "Tenant name")), request_body = ReplayRequest, responses((status = 200, body = ReplayReport)))]
async fn replay(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(req): ApiJson<ReplayRequest>,
) -> Res<Json<ReplayReport>> {
    tenant(&state, &t)?;
    if let Some(s) = &req.since {
        crate::admin::report::since(Some(s), "7d").map_err(bad)?;
    }
    let data = state.store.load_directory().await?;
    let services: Vec<String> = state
        .config
        .services
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let proposed_data =
        crate::admin::report::proposed(data.clone(), &t, &req, &services).map_err(bad)?;
    let current = crate::directory::build(None, data, &state.config.services);
    let proposed = crate::directory::build(Some(&current), proposed_data, &state.config.services);
    Ok(Json(
        crate::admin::report::replay(&state.store, &current, &proposed, &t, req.since.as_deref())
            .await?,
    ))
}

// ---- delivery routes ----

#[utoipa::path(patch, path = "/api/v1/tenants/{t}", params(("t" = String, Path, description = "Tenant name")), request_body = RoutePatch, responses((status = 200, body = Tenant)))]
async fn set_tenant_route(
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
async fn set_domain_route(
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

// ---- delivery queue (operator scope: every tenant's messages) ----

fn queue_item(e: &crate::queue::spool::Entry, default_route: &str) -> QueueItem {
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

async fn spool_entries(state: &State) -> Res<Vec<crate::queue::spool::Entry>> {
    let spool = state.shared.spool.clone();
    Ok(tokio::task::spawn_blocking(move || spool.list())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))??)
}

#[utoipa::path(get, path = "/api/v1/queue", params(QueueParams), responses((status = 200, body = Vec<QueueItem>)))]
async fn list_queue(
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

async fn queued(state: &State, id: &str) -> Res<crate::queue::spool::Entry> {
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
async fn show_queue(
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
async fn retry_queue_item(
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
async fn retry_queue(Extract(state): Extract<State>) -> Json<RetryAll> {
    let n = state.shared.delivery.retry_all();
    tracing::info!(
        messages = n,
        "queue: retry of every waiting message requested"
    );
    Json(RetryAll { retried: n })
}

#[utoipa::path(delete, path = "/api/v1/queue/{id}", params(("id" = String, Path, description = "Queue id"), QueueDeleteParams), responses((status = 204, description = "Deleted")))]
async fn delete_queue(
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
