//! The console's routes and the headers of every answer.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::admin::state::State;

use super::state::Console;
use super::{
    assets, audit, connectors, direct_send, domains, login, operator, overview, quarantine, rules,
    session, settings, trace,
};

/// The console's routes, for the admin listener.
pub(in crate::admin) fn router(state: State, api: Router) -> Router {
    let secure = state.config.admin_tls.is_some();
    let console = Console {
        state,
        api,
        limiter: Arc::default(),
        reports: Arc::default(),
        secure,
    };
    Router::new()
        .route("/", get(login::home))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/switch", get(login::switch))
        .route("/assets/{file}", get(assets::serve))
        .route("/t/{t}/overview", get(overview::show))
        .route("/t/{t}/direct-send", get(direct_send::report))
        .route(
            "/t/{t}/direct-send/connector",
            get(direct_send::confirm).post(direct_send::create),
        )
        .route("/t/{t}/settings", get(settings::show).post(settings::save))
        .route(
            "/t/{t}/connectors",
            get(connectors::list).post(connectors::create),
        )
        .route(
            "/t/{t}/connectors/{c}",
            get(connectors::edit).post(connectors::save),
        )
        .route("/t/{t}/connectors/{c}/remove", post(connectors::remove))
        .route("/t/{t}/domains", get(domains::list).post(domains::add))
        .route("/t/{t}/domains/{d}/verify", post(domains::verify))
        .route("/t/{t}/domains/{d}/remove", post(domains::remove))
        .route("/t/{t}/rules", get(rules::list).post(rules::create))
        .route("/t/{t}/rules/test", post(rules::test))
        .route("/t/{t}/rules/{name}/enabled", post(rules::set_enabled))
        .route("/t/{t}/rules/{name}/priority", post(rules::set_priority))
        .route("/t/{t}/rules/{name}/remove", post(rules::remove))
        .route("/t/{t}/audit", get(audit::tenant))
        .route("/operator/audit", get(audit::all))
        .route(
            "/operator/tenants",
            get(operator::tenants).post(operator::add_tenant),
        )
        .route(
            "/operator/tenants/{t}/remove",
            post(operator::remove_tenant),
        )
        .route(
            "/operator/tokens",
            get(operator::tokens).post(operator::create_token),
        )
        .route("/operator/tokens/{id}/revoke", post(operator::revoke_token))
        .route("/operator/queue", get(operator::queue))
        .route("/operator/queue/{id}/retry", post(operator::retry))
        .route("/operator/queue/{id}/delete", post(operator::delete))
        .route("/t/{t}/trace", get(trace::list))
        .route("/t/{t}/trace/{id}", get(trace::show))
        .route("/t/{t}/quarantine", get(quarantine::list))
        .route("/t/{t}/quarantine/{id}", get(quarantine::show))
        .route("/t/{t}/quarantine/{id}/release", post(quarantine::release))
        .route("/t/{t}/quarantine/{id}/delete", post(quarantine::delete))
        .layer(middleware::from_fn(session::csrf_guard))
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

/// Scripts, styles and images only from the console itself (no inline script or style, so an
/// injected `<script>` or `onerror=` would not run even if escaping failed), no framing, no
/// referrer to other sites; pages are not cached (they show tenants' data), the versioned assets are.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        // Not `no-referrer`: with it Chromium sends `Origin: null` on our own form posts, which
        // the origin check would refuse.
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
