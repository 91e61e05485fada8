//! The one middleware: the bearer token, the route's role, the tenant in the path, and the audit
//! entry of every successful change.

use std::time::SystemTime;

use axum::extract::{MatchedPath, Request, State as Extract};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::admin::principals::{self};

use super::audit::AuditTrail;
use super::extract::*;
use super::state::*;

/// Authenticates the bearer token, checks the route's role in [`principals::ROUTES`] (routes not
/// in the table are refused) and the tenant in the path, and writes an audit entry for every
/// successful change, with the tenant's configuration before and after.
pub(super) async fn authorize(
    Extract(state): Extract<State>,
    mut req: Request,
    next: Next,
) -> Response {
    // The console calls the API in process for its logged-in principal (an extension no
    // client can set): the same role table, tenant check and audit as a bearer token.
    let in_process = req.extensions_mut().remove::<InProcess>().map(|p| p.0);
    let principal = match in_process {
        Some(p) => Some(p),
        None => {
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .unwrap_or("");
            state.tokens.authenticate(presented).await
        }
    };
    let Some(principal) = principal else {
        let e = ApiErr(
            StatusCode::UNAUTHORIZED,
            "missing, wrong, expired or revoked API token".into(),
        );
        return refuse(req, e).await;
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
        let e = ApiErr(
            StatusCode::FORBIDDEN,
            format!("{method} {template} is not permitted"),
        );
        return refuse(req, e).await;
    };
    if !principals::allows(&principal, need, tenant.as_deref()) {
        let scope = match &principal.tenant {
            Some(t) => format!("{} of tenant {t}", principal.role.as_str()),
            None => principal.role.as_str().to_string(),
        };
        let e = ApiErr(
            StatusCode::FORBIDDEN,
            format!("{} ({scope}) may not {method} {path}", principal.name),
        );
        return refuse(req, e).await;
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
    // A read-only route that changed something after all (suggestions applied) says so with
    // its trail.
    let audited = audited || resp.extensions().get::<AuditTrail>().is_some();
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
        // A change that names its before and after (read in its own transaction) is recorded
        // as the database saw it, not by comparing snapshots another node's change could fall
        // between.
        let mut before = before;
        if let Some(trail) = resp.extensions_mut().remove::<AuditTrail>() {
            before = trail.before;
            after = trail.after;
            if trail.tenant.is_some() {
                tenant = trail.tenant;
            }
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
            node: Some(state.config.node_name.clone()),
            ..Default::default()
        };
        if let Err(e) = state.store.add_audit(&entry).await {
            tracing::error!("audit log: {e}");
        }
        tracing::info!(principal = %principal.name, action = %entry.action, tenant = ?tenant, "admin change");
    }
    resp
}

/// The principal of a request the console makes to the API router in process.
#[derive(Clone, Debug)]
pub struct InProcess(pub principals::Principal);

/// The `{t}` segment of a request path, by its position in the route template.
pub(super) fn path_tenant(template: &str, path: &str) -> Option<String> {
    let pos = template.split('/').position(|s| s == "{t}")?;
    // Tenant names are plain ASCII names; an encoded one matches no tenant and is refused.
    path.split('/').nth(pos).map(str::to_string)
}

/// A tenant's whole configuration as JSON, for the audit log.
pub(super) fn tenant_snapshot(state: &State, t: &str) -> Option<serde_json::Value> {
    let dir = state.live.get();
    let e = dir.tenant(t)?;
    Some(serde_json::json!({
        "tenant": e.tenant,
        "domains": e.domains,
        "connectors": e.connectors,
        "rules": e.rules.iter().map(|r| &r.rule).collect::<Vec<_>>(),
    }))
}

/// A refusal before the handler: the request's body (at most the 1 MiB limit) is read first,
/// so the connection stays usable for the client's next request. Answered with the body
/// unread, the server closes the connection, and a client that reuses it (HTTP keep-alive)
/// sees it closed under its next request.
async fn refuse(req: Request, e: ApiErr) -> Response {
    let _ = axum::body::to_bytes(req.into_body(), 1024 * 1024).await;
    e.into_response()
}
