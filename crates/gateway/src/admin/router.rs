//! The admin API: JSON over HTTP with a bearer token. Every handler is scoped by the tenant in its
//! path (tenant isolation); every write rebuilds the directory snapshot before answering, so the
//! change applies to the next SMTP transaction. Errors are `{"error": "..."}` naming the value:
//! 400 bad input, 404 unknown object, 409 conflict, 500 server trouble.

use std::sync::Arc;

use axum::middleware::{self};
use axum::routing::get;
use axum::{Json, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authorize::authorize;
use super::health::readyz;
use super::openapi::openapi;
use super::state::State;
use super::{
    audit, config, connectors, health, quarantine, queue, recipients, reports, rules, tenants,
    tokens, trace, unknown_recipients,
};

/// The admin API. Routes and their OpenAPI description come from the same handler annotations
/// (`#[utoipa::path]`), so the served description cannot drift from what the router answers;
/// [`openapi`] adds the roles of [`principals::ROUTES`] and the error responses every route shares.
pub fn router(state: State) -> Router {
    let (api, doc) = routes().split_for_parts();
    let doc = Arc::new(openapi(doc));
    let api = api
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state.clone());
    // The web console calls these routes in process (the same role table and audit).
    let console = super::console::router(state.clone(), api.clone());
    let probes = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/api/v1/openapi.json",
            get(move || async move { Json(doc.as_ref().clone()) }),
        )
        .with_state(state);
    api.merge(probes).merge(console)
}

/// Request bodies: 1 MiB, but a recipient list import (100,000 addresses, all or nothing).
const BODY_LIMIT: usize = 1024 * 1024;
pub(super) const IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Every route behind the bearer token, with its documentation.
pub(super) fn routes() -> OpenApiRouter<State> {
    let imports = OpenApiRouter::new()
        .routes(routes!(
            recipients::list_recipients,
            recipients::change_recipients
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            IMPORT_BODY_LIMIT,
        ))
        // axum's own limit for extractors (2 MB) follows the route's.
        .layer(axum::extract::DefaultBodyLimit::max(IMPORT_BODY_LIMIT));
    small_routes()
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        .merge(imports)
}

fn small_routes() -> OpenApiRouter<State> {
    OpenApiRouter::new()
        .routes(routes!(tenants::list_tenants, tenants::add_tenant))
        .routes(routes!(
            tenants::show_tenant,
            tenants::remove_tenant,
            tenants::set_tenant_route
        ))
        .routes(routes!(tenants::tenant_summary))
        .routes(routes!(tenants::list_domains, tenants::add_domain))
        .routes(routes!(tenants::remove_domain, tenants::set_domain_route))
        .routes(routes!(tenants::verify_domain))
        .routes(routes!(tenants::show_org, tenants::set_org))
        .routes(routes!(
            connectors::list_connectors,
            connectors::add_connector
        ))
        .routes(routes!(
            connectors::show_connector,
            connectors::set_connector,
            connectors::remove_connector
        ))
        .routes(routes!(trace::list_trace))
        .routes(routes!(trace::show_trace))
        .routes(routes!(reports::simulate))
        .routes(routes!(reports::replay))
        .routes(routes!(reports::direct_send_report))
        .routes(routes!(reports::daily_report))
        .routes(routes!(unknown_recipients::unknown_recipients_report))
        .routes(routes!(reports::suggest_connectors))
        .routes(routes!(reports::readiness))
        .routes(routes!(rules::list_rules, rules::add_rule))
        .routes(routes!(
            rules::show_rule,
            rules::put_rule,
            rules::remove_rule
        ))
        .routes(routes!(quarantine::list_quarantine))
        .routes(routes!(
            quarantine::show_quarantine,
            quarantine::delete_quarantine
        ))
        .routes(routes!(quarantine::release_quarantine))
        .routes(routes!(audit::tenant_audit))
        .routes(routes!(audit::all_audit))
        .routes(routes!(queue::list_queue))
        .routes(routes!(queue::retry_queue))
        .routes(routes!(queue::show_queue, queue::delete_queue))
        .routes(routes!(queue::retry_queue_item))
        .routes(routes!(queue::reroute_queue_item))
        .routes(routes!(queue::reroute_queue))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(tokens::list_routes))
        // Metrics name tenants: behind the operator's token.
        .routes(routes!(health::metrics))
        .routes(routes!(config::show_config))
}
