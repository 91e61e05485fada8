//! Message trace: search and one record.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use portcullis_store::{TraceQuery, TraceRecord};

use crate::api_types::*;

use super::extract::*;
use super::state::*;

#[utoipa::path(get, path = "/api/v1/tenants/{t}/trace", params(("t" = String, Path, description = "Tenant name"), TraceParams), responses((status = 200, body = Vec<TraceRecord>)))]
pub(super) async fn list_trace(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(p): ApiQuery<TraceParams>,
) -> Res<Json<Vec<TraceRecord>>> {
    tenant(&state, &t)?;
    let q = trace_query(&t, &p).map_err(bad)?;
    Ok(Json(state.store.query_traces(&q).await?))
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
