//! Message trace: search and one record.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use portcullis_store::{TraceQuery, TraceRecord};

use crate::api_types::*;

use super::extract::*;
use super::state::*;

/// Newest first, `limit` at a time; when more records match, the answer says where the next
/// page starts: `X-Next-Cursor` (pass it as `cursor`) and a `Link: <…>; rel="next"` header.
#[utoipa::path(get, path = "/api/v1/tenants/{t}/trace", params(("t" = String, Path, description = "Tenant name"), TraceParams), responses((status = 200, body = Vec<TraceRecord>, headers(("X-Next-Cursor" = String, description = "Present when more records match: the cursor of the next page")))))]
pub(super) async fn list_trace(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(p): ApiQuery<TraceParams>,
) -> Res<(axum::http::HeaderMap, Json<Vec<TraceRecord>>)> {
    tenant(&state, &t)?;
    let mut q = trace_query(&t, &p).map_err(bad)?;
    let limit = q.limit as usize;
    // One more than asked: whether a next page exists.
    q.limit += 1;
    let mut records = state.store.query_traces(&q).await?;
    let headers = next_page(
        &mut records,
        limit as u32,
        |r| time_cursor(r.received_at_us, &r.trace_id),
        |cursor| {
            let mut next = p.clone();
            next.cursor = Some(cursor);
            format!(
                "/api/v1/tenants/{}/trace{}",
                encode(&t),
                query_string(&next)
            )
        },
    );
    Ok((headers, Json(records)))
}

pub(super) fn trace_query(t: &str, p: &TraceParams) -> Result<TraceQuery, String> {
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
        before: p.cursor.as_deref().map(parse_time_cursor).transpose()?,
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
        q.status = Some(parse_trace_status(s)?.to_string());
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
pub(super) async fn show_trace(
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
