//! The audit log: every change, who made it from where, with the configuration before and after;
//! a tenant's entries, or all of them for the operator. Newest first, by cursor.

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use portcullis_store::AuditEntry;

use crate::api_types::encode;

use super::layout::{Ctx, pre, time};
use super::session::Session;

#[derive(serde::Deserialize, Default)]
pub(super) struct Cursor {
    #[serde(default)]
    cursor: Option<String>,
}

fn next_query(next: &Option<String>) -> String {
    next.as_deref()
        .map(|c| format!("&cursor={}", encode(c)))
        .unwrap_or_default()
}

/// `GET /t/{t}/audit`.
pub(super) async fn tenant(
    session: Session,
    Path(t): Path<String>,
    Query(c): Query<Cursor>,
) -> Response {
    let path = format!(
        "/api/v1/tenants/{}/audit?limit=50{}",
        encode(&t),
        next_query(&c.cursor)
    );
    let (entries, next) = match session.api.get_page::<Vec<AuditEntry>>(&path).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::tenant(&session, &t, "audit").await;
    let body = entries_table(
        &entries,
        next.as_deref(),
        &format!("/t/{}/audit", encode(&t)),
    );
    super::layout::page(&ctx, "Audit log", body).into_response()
}

/// `GET /operator/audit`: every tenant's entries and the operator's own.
pub(super) async fn all(session: Session, Query(c): Query<Cursor>) -> Response {
    let path = format!("/api/v1/audit?limit=50{}", next_query(&c.cursor));
    let (entries, next) = match session.api.get_page::<Vec<AuditEntry>>(&path).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::operator(&session, "audit-all").await;
    let body = entries_table(&entries, next.as_deref(), "/operator/audit");
    super::layout::page(&ctx, "Audit log of all tenants", body).into_response()
}

fn entries_table(entries: &[AuditEntry], next: Option<&str>, base: &str) -> Markup {
    let json = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
            .unwrap_or_else(|| "—".into())
    };
    html! {
        @if entries.is_empty() {
            div class="empty" { p { "No changes recorded yet. Every change made through the API, the CLI or this console appears here." } }
        } @else {
            div class="scroll" {
                table {
                    caption class="sr" { "Changes, newest first" }
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "From" }
                        th scope="col" { "Tenant" } th scope="col" { "Change" }
                    } }
                    tbody {
                        @for e in entries {
                            tr {
                                td { (time(&e.at)) }
                                td class="addr" { (e.principal) @if let Some(n) = &e.node { br; span class="help" { "on " (n) } } }
                                td { (e.address) }
                                td { (e.tenant.as_deref().unwrap_or("—")) }
                                td {
                                    code { (e.action) }
                                    details {
                                        summary { "before and after" }
                                        div class="cols" {
                                            div { h3 { "Before" } (pre(&json(&e.before))) }
                                            div { h3 { "After" } (pre(&json(&e.after))) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = next {
                p class="more" { a rel="next" href=(format!("{base}?cursor={}", encode(c))) { "Older changes →" } }
            }
        }
    }
}
