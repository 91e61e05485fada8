//! The Direct Send report, readiness, connector suggestions, `simulate` and `simulate replay`.

use axum::Json;
use axum::extract::State as Extract;
use portcullis_policy::Connector;

use crate::api_types::*;

use super::audit::{Trail, object_trail};
use super::connectors::connectors;
use super::extract::*;
use super::state::*;

#[utoipa::path(post, path = "/api/v1/tenants/{t}/simulate", params(("t" = String, Path, description = "Tenant name")), request_body = SimulateRequest, responses((status = 200, body = SimulateReport)))]
pub(super) async fn simulate(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(req): ApiJson<SimulateRequest>,
) -> Res<Json<SimulateReport>> {
    tenant(&state, &t)?;
    let dir = state.live.get();
    crate::admin::simulate::run(&dir, &state.auth, &state.shared.verifier, &t, &req)
        .await
        .map(Json)
        .map_err(bad)
}

pub(super) async fn report_for(
    state: &State,
    t: &str,
    since: Option<&str>,
) -> Res<(
    DirectSendReport,
    Vec<crate::admin::report::advice::SourceExtra>,
)> {
    tenant(state, t)?;
    if let Some(s) = since {
        crate::admin::report::scan::since(Some(s), "30d").map_err(bad)?;
    }
    let dir = state.live.get();
    Ok(
        crate::admin::report::sources::direct_send(&state.store, &dir, &state.auth, t, since)
            .await?,
    )
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/reports/direct-send", params(("t" = String, Path, description = "Tenant name"), ReportParams), responses((status = 200, body = DirectSendReport)))]
pub(super) async fn direct_send_report(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> Res<Json<DirectSendReport>> {
    Ok(Json(report_for(&state, &t, p.since.as_deref()).await?.0))
}

/// Messages per day by status and direct-send outcome, over `since` (default 30d, at most 400d).
#[utoipa::path(get, path = "/api/v1/tenants/{t}/reports/daily", params(("t" = String, Path, description = "Tenant name"), ReportParams), responses((status = 200, body = DailyReport)))]
pub(super) async fn daily_report(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> Res<Json<DailyReport>> {
    tenant(&state, &t)?;
    let (start, _) = crate::admin::report::scan::since(p.since.as_deref(), "30d").map_err(bad)?;
    let day = |t: std::time::SystemTime| {
        portcullis_store::SourceAgg::day_of(crate::sys::clock::micros(t))
    };
    let now = std::time::SystemTime::now();
    let (first, last) = (day(start), day(now));
    if last - first > 400 {
        return Err(bad(format!(
            "since {:?}: at most 400 days (the trace keeps 90 by default)",
            p.since.unwrap_or_default()
        )));
    }
    let date = |d: i64| {
        chrono::DateTime::from_timestamp(d * 86_400, 0)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    let mut days: Vec<DailyRow> = (first..=last)
        .map(|d| DailyRow {
            date: date(d),
            ..Default::default()
        })
        .collect();
    let mut totals = DailyTotals::default();
    for c in state.store.daily_counts(&t, first).await? {
        let Some(row) = days.get_mut((c.day - first) as usize) else {
            continue;
        };
        let n = c.messages.max(0) as u64;
        *row.statuses.entry(c.status.clone()).or_default() += n;
        *totals.statuses.entry(c.status).or_default() += n;
        if !c.outcome.is_empty() {
            *row.direct_send.entry(c.outcome.clone()).or_default() += n;
            *totals.direct_send.entry(c.outcome).or_default() += n;
        }
    }
    Ok(Json(DailyReport {
        tenant: t,
        since: date(first),
        until: date(last),
        days,
        totals,
    }))
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/readiness", params(("t" = String, Path, description = "Tenant name"), ReportParams), responses((status = 200, body = Readiness)))]
pub(super) async fn readiness(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> Res<Json<Readiness>> {
    let (report, extra) = report_for(&state, &t, p.since.as_deref()).await?;
    let plan = crate::admin::report::advice::suggest(&report, &extra, &connectors(&state, &t)?);
    Ok(Json(crate::admin::report::advice::readiness(
        &report, &plan,
    )))
}

#[utoipa::path(post, path = "/api/v1/tenants/{t}/reports/direct-send/suggest", params(("t" = String, Path, description = "Tenant name")), request_body = SuggestRequest, responses((status = 200, body = SuggestResponse)))]
pub(super) async fn suggest_connectors(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(req): ApiJson<SuggestRequest>,
) -> Res<(Option<Trail>, Json<SuggestResponse>)> {
    let source = req
        .source
        .as_deref()
        .map(|s| parse_cidr(s).map_err(|e| bad(format!("source: {e}"))))
        .transpose()?;
    let (report, extra) = report_for(&state, &t, req.since.as_deref()).await?;
    let existing = connectors(&state, &t)?;
    let mut plan = match source {
        Some(net) => {
            crate::admin::report::advice::suggest_for_source(&report, &extra, &existing, net)
        }
        None => crate::admin::report::advice::suggest(&report, &extra, &existing),
    };
    let mut created = Vec::new();
    if req.apply {
        for s in &plan.connectors {
            let patch = ConnectorPatch {
                sender_ips: (!s.sender_ips.is_empty()).then(|| s.sender_ips.clone()),
                tls_cert_names: (!s.tls_cert_names.is_empty()).then(|| s.tls_cert_names.clone()),
                // Trust only for the tenant's own domains these sources used.
                sender_domains: (!s.sender_domains.is_empty()).then(|| s.sender_domains.clone()),
                ..Default::default()
            };
            let mut c = Connector::new(&t, &s.name);
            patch.apply(&mut c).map_err(bad)?;
            state.store.put_connector(&c, true).await?;
            plan.applied.push(c.name.clone());
            tracing::info!(tenant = %t, connector = %c.name, "suggested connector created");
            created.push(c);
        }
        changed(&state).await?;
    }
    // Applied suggestions are audited (the route is read-only otherwise), naming what was created.
    let trail = req.apply.then(|| {
        object_trail(
            Some(&t),
            serde_json::Value::Null,
            serde_json::json!({ "connectors_created": created }),
        )
    });
    Ok((trail, Json(plan)))
}

#[utoipa::path(post, path = "/api/v1/tenants/{t}/simulate/replay", params(("t" = String, Path, description = "Tenant name")), request_body = ReplayRequest, responses((status = 200, body = ReplayReport)))]
pub(super) async fn replay(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(req): ApiJson<ReplayRequest>,
) -> Res<Json<ReplayReport>> {
    tenant(&state, &t)?;
    if let Some(s) = &req.since {
        crate::admin::report::scan::since(Some(s), "7d").map_err(bad)?;
    }
    let data = state.store.load_directory().await?;
    let services: Vec<String> = state
        .config
        .services
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let proposed_data =
        crate::admin::report::replay::proposed(data.clone(), &t, &req, &services).map_err(bad)?;
    let current = crate::directory::build(None, data, &state.config.services);
    let proposed = crate::directory::build(Some(&current), proposed_data, &state.config.services);
    Ok(Json(
        crate::admin::report::replay::replay(
            &state.store,
            &current,
            &proposed,
            &t,
            req.since.as_deref(),
        )
        .await?,
    ))
}
