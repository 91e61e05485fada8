//! The hosted quarantine: list, preview, release once, delete.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use portcullis_store::{EventKind, QuarantineEntry, QuarantineQuery, RecipientStatus, TraceStatus};

use crate::admin::principals::{Principal, Role};
use crate::api_types::*;

use super::audit::{Trail, object_trail};
use super::extract::*;
use super::state::*;

#[utoipa::path(get, path = "/api/v1/tenants/{t}/quarantine", params(("t" = String, Path, description = "Tenant name"), QuarantineParams), responses((status = 200, body = Vec<QuarantineEntry>, headers(("X-Next-Cursor" = String, description = "Present when more entries match: the cursor of the next page")))))]
pub(super) async fn list_quarantine(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(p): ApiQuery<QuarantineParams>,
) -> Res<(axum::http::HeaderMap, Json<Vec<QuarantineEntry>>)> {
    tenant(&state, &t)?;
    let limit = limit(p.limit, 100).map_err(bad)?;
    let q = QuarantineQuery {
        tenant: t.clone(),
        reason: p.reason.clone(),
        sender: p.sender.as_ref().map(|s| s.trim().to_lowercase()),
        recipient: p.recipient.as_ref().map(|s| s.trim().to_lowercase()),
        // One more than asked: whether more match.
        limit: limit + 1,
        before: p
            .cursor
            .as_deref()
            .map(parse_time_cursor)
            .transpose()
            .map_err(bad)?,
    };
    let mut entries = state.store.list_quarantine(&q).await?;
    let headers = next_page(
        &mut entries,
        limit,
        |e| time_cursor(e.received_at_us, &e.id),
        |cursor| {
            let next = QuarantineParams {
                cursor: Some(cursor),
                ..p
            };
            format!(
                "/api/v1/tenants/{}/quarantine{}",
                encode(&t),
                query_string(&next)
            )
        },
    );
    Ok((headers, Json(entries)))
}

pub(super) async fn quarantined(
    state: &State,
    t: &str,
    id: &str,
) -> Res<(QuarantineEntry, Vec<u8>)> {
    tenant(state, t)?;
    state.store.get_quarantine(t, id).await?.ok_or_else(|| {
        ApiErr(
            StatusCode::NOT_FOUND,
            format!("quarantined message {id} not found in tenant {t}"),
        )
    })
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/quarantine/{id}", params(("t" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Quarantine id")), responses((status = 200, body = QuarantineDetail)))]
pub(super) async fn show_quarantine(
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
pub(super) async fn delete_quarantine(
    Extract(state): Extract<State>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> Res<(StatusCode, Trail)> {
    tenant(&state, &t)?;
    let (entry, _) = quarantined(&state, &t, &id).await?;
    if state.store.delete_quarantine(&t, &id).await? {
        tracing::info!(tenant = %t, id, "quarantined message deleted");
        let trail = object_trail(
            Some(&t),
            serde_json::json!({ "quarantined_message": entry_facts(&entry) }),
            serde_json::json!({ "deleted": id }),
        );
        Ok((StatusCode::NO_CONTENT, trail))
    } else {
        Err(ApiErr(
            StatusCode::NOT_FOUND,
            format!("quarantined message {id} not found in tenant {t}"),
        ))
    }
}

/// Delivers a quarantined message once, through the normal spool and delivery path.
#[utoipa::path(post, path = "/api/v1/tenants/{t}/quarantine/{id}/release", params(("t" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Quarantine id")), request_body = Option<ReleaseRequest>, responses((status = 200, body = QuarantineEntry), (status = 409, description = "Already released", body = ApiError)))]
pub(super) async fn release_quarantine(
    Extract(state): Extract<State>,
    axum::Extension(who): axum::Extension<Principal>,
    ApiPath((t, id)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> Res<(Trail, Json<QuarantineEntry>)> {
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
    // Who released it, as the audit log names them (`bootstrap@NODE` or `token:NAME (ID)`), and
    // on which node.
    let by = who.on_node(&state.config.node_name);
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
        EventKind::Release,
        format!("released by {by} to {}", to.join(", ")),
    );
    record.status = TraceStatus::Pending;
    for r in record
        .recipients
        .iter_mut()
        .filter(|r| r.status == RecipientStatus::Quarantined)
    {
        r.status = RecipientStatus::Pending;
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
            let trail = object_trail(
                Some(&t),
                serde_json::json!({ "quarantined_message": entry_facts(&entry) }),
                serde_json::json!({
                    "released": entry.id,
                    "to": entry.released_to,
                    "by": entry.released_by,
                }),
            );
            Ok((trail, Json(entry)))
        }
        Err(e) => Err(ApiErr(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("release of {id} failed: {e:#}"),
        )),
    }
}

/// What the audit log names of a quarantined message.
fn entry_facts(e: &QuarantineEntry) -> serde_json::Value {
    serde_json::json!({
        "id": e.id,
        "trace_id": e.trace_id,
        "reason": e.reason,
        "mail_from": e.mail_from,
        "recipients": e.recipients,
        "subject": e.subject,
    })
}
