//! The admin audit log.

use axum::Json;
use axum::extract::State as Extract;
use portcullis_store::AuditEntry;

use crate::api_types::*;

use super::extract::*;
use super::state::*;

#[derive(Clone, serde::Deserialize, serde::Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries at or after this time (RFC 3339, or an age such as `24h`).
    since: Option<String>,
    /// At most this many (1 to 100000; default 1000).
    #[param(minimum = 1, maximum = 100000)]
    limit: Option<u32>,
    /// Continue after the previous page: the `X-Next-Cursor` of its answer.
    cursor: Option<String>,
}

pub(super) fn since_us(q: &AuditQuery) -> Res<i64> {
    match q.since.as_deref() {
        None => Ok(0),
        Some(s) => parse_since_time(s)
            .map(crate::sys::clock::micros)
            .map_err(|e| bad(format!("since {s:?}: {e}"))),
    }
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/audit", params(("t" = String, Path, description = "Tenant name"), AuditQuery), responses((status = 200, body = Vec<AuditEntry>, headers(("X-Next-Cursor" = String, description = "Present when more entries match: the cursor of the next page")))))]
pub(super) async fn tenant_audit(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Res<(
    axum::http::HeaderMap,
    Json<Vec<portcullis_store::AuditEntry>>,
)> {
    audit(&state, Some(&t), &q).await
}

#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), responses((status = 200, body = Vec<AuditEntry>, headers(("X-Next-Cursor" = String, description = "Present when more entries match: the cursor of the next page")))))]
pub(super) async fn all_audit(
    Extract(state): Extract<State>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Res<(
    axum::http::HeaderMap,
    Json<Vec<portcullis_store::AuditEntry>>,
)> {
    audit(&state, None, &q).await
}

/// The audit entries of one tenant, or of all (`None`), as the query asks.
pub(super) async fn audit(
    state: &State,
    tenant: Option<&str>,
    q: &AuditQuery,
) -> Res<(
    axum::http::HeaderMap,
    Json<Vec<portcullis_store::AuditEntry>>,
)> {
    let since = since_us(q)?;
    let limit = limit(q.limit, 1000).map_err(bad)?;
    let before = q
        .cursor
        .as_deref()
        .map(parse_time_cursor)
        .transpose()
        .map_err(bad)?;
    let mut entries = state
        .store
        .list_audit(tenant, since, before, limit + 1)
        .await?;
    let headers = next_page(
        &mut entries,
        limit,
        |e| time_cursor(e.at_us, &e.seq),
        |cursor| {
            let next = AuditQuery {
                cursor: Some(cursor),
                ..q.clone()
            };
            let base = match tenant {
                Some(t) => format!("/api/v1/tenants/{}/audit", encode(t)),
                None => "/api/v1/audit".to_string(),
            };
            format!("{base}{}", query_string(&next))
        },
    );
    Ok((headers, Json(entries)))
}

/// The tenant's configuration before and after a change, as the database had it inside the
/// change's transaction. A handler puts it into its answer; the middleware writes it to the
/// audit log (instead of comparing snapshots, which another node's change could fall between).
#[derive(Clone, Debug)]
pub(super) struct AuditTrail {
    pub(super) before: Option<serde_json::Value>,
    pub(super) after: Option<serde_json::Value>,
    /// The tenant of the object acted on, for routes whose path names none (the queue).
    pub(super) tenant: Option<String>,
}

/// The trail of an action on one object (a queued or quarantined message): what it was and
/// what became of it, with its tenant.
pub(super) fn object_trail(
    tenant: Option<&str>,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Trail {
    axum::Extension(AuditTrail {
        before: Some(before),
        after: Some(after),
        tenant: tenant.map(str::to_string),
    })
}

/// The trail of a change, as an answer part.
pub(super) fn trail<T>(change: &portcullis_store::Audited<T>) -> axum::Extension<AuditTrail> {
    axum::Extension(AuditTrail {
        before: change.before.clone(),
        after: change.after.clone(),
        tenant: None,
    })
}

/// The answer part of [`trail`].
pub(super) type Trail = axum::Extension<AuditTrail>;
