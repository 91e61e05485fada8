//! The Direct Send report: who sends as the tenant's domains without a connector, per day and per
//! source with a verdict, the readiness assessment, samples in the trace, and "create a connector
//! for this source" behind a confirmation that shows exactly what will be created.

use axum::Form;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::api_types::{ConnectorPatch, ReportSource, SuggestRequest, SuggestResponse, encode};

use super::api::Failure;
use super::charts;
use super::layout::{Ctx, badge, csrf, notice, page, time};
use super::session::Session;
use super::state::Console;

/// The periods offered (the API takes any humantime duration).
const PERIODS: &[&str] = &["1d", "7d", "30d", "90d"];

#[derive(serde::Deserialize, Default)]
pub(super) struct Period {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    done: Option<String>,
    /// The page of the sources table, from 1.
    #[serde(default)]
    page: Option<usize>,
}

impl Period {
    fn since(&self) -> &str {
        self.since
            .as_deref()
            .filter(|s| PERIODS.contains(s))
            .unwrap_or("30d")
    }
}

/// Sources per page of the table.
const SOURCES_PER_PAGE: usize = 25;

/// `GET /t/{t}/direct-send`.
pub(super) async fn report(
    Extract(console): Extract<Console>,
    session: Session,
    Path(t): Path<String>,
    Query(p): Query<Period>,
) -> Response {
    let since = p.since();
    let computed = match console.reports.get(&session.api, &t, since).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let (report, readiness) = (&*computed.report, computed.readiness.as_deref());
    let pages = report.sources.len().div_ceil(SOURCES_PER_PAGE).max(1);
    let at_page = p.page.unwrap_or(1).clamp(1, pages);
    let shown = report
        .sources
        .iter()
        .skip((at_page - 1) * SOURCES_PER_PAGE)
        .take(SOURCES_PER_PAGE);
    let page_link = |n: usize| format!("/t/{}/direct-send?since={since}&page={n}", encode(&t));
    let ctx = Ctx::tenant(&session, &t, "direct-send").await;
    let may_create = ctx.may("POST", "/api/v1/tenants/{t}/reports/direct-send/suggest")
        && ctx.may("POST", "/api/v1/tenants/{t}/connectors");
    let s = &report.summary;
    let body = html! {
        @if p.done.as_deref() == Some("created") {
            (notice(true, "The connector was created: mail from that source is now attributed to it."))
        }
        (charts::period(PERIODS, since, html! { "Reject direct send is " (badge(&report.mode)) " for this tenant." }))
        p class="help" {
            "Computed " (time(&crate::sys::clock::rfc3339(computed.at)))
            "; recomputed in the background when older than a minute."
        }
        div class="cards" {
            (charts::card("Direct-send messages", s.messages))
            (charts::card("Sources", s.sources))
            (charts::card("Would be refused", s.would_refuse))
            (charts::card("Delivered (off)", s.delivered))
            (charts::card("Accepted in audit", s.audited))
            (charts::card("Refused", s.refused))
        }
        @if s.messages == 0 {
            div class="empty" {
                p { "No direct-send traffic in this period: nobody sent mail as this tenant's domains from outside a connector." }
                p { "If that is expected, turning reject direct send on changes nothing for legitimate mail. Otherwise widen the period." }
            }
        } @else {
            section {
                h2 { "Per day (UTC)" }
                (charts::daily(&[("Direct-send messages", &charts::every_day(&report.since, &report.until, &s.daily))]))
            }
        }
        @if let Some(r) = readiness {
            section {
                h2 { "Readiness" }
                p { (r.assessment) }
            }
        }
        @if !report.sources.is_empty() {
            section {
                h2 { "Sources" }
                div class="scroll" {
                    table {
                        caption class="sr" { "Sources of direct-send traffic, most messages first" }
                        thead { tr {
                            th scope="col" { "Source" }
                            th scope="col" class="num" { "Messages" }
                            th scope="col" { "Verdict" }
                            th scope="col" { "Authentication" }
                            th scope="col" { "Seen" }
                            th scope="col" { "Samples" }
                            @if may_create { th scope="col" { "Action" } }
                        } }
                        tbody {
                            @for src in shown { (source_row(&t, src, may_create)) }
                        }
                    }
                }
                @if pages > 1 {
                    p class="more" {
                        "Sources " ((at_page - 1) * SOURCES_PER_PAGE + 1) "–"
                        ((at_page * SOURCES_PER_PAGE).min(report.sources.len())) " of " (report.sources.len()) ". "
                        @if at_page > 1 { a rel="prev" href=(page_link(at_page - 1)) { "← Busier sources" } " " }
                        @if at_page < pages { a rel="next" href=(page_link(at_page + 1)) { "Quieter sources →" } }
                    }
                }
            }
        }
    };
    page(&ctx, "Direct Send report", body).into_response()
}

fn counts(c: &crate::api_types::Counts) -> String {
    c.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn source_row(t: &str, s: &ReportSource, may_create: bool) -> Markup {
    html! {
        tr {
            td class="addr" {
                strong { (s.source) }
                @if let Some(r) = &s.rdns { br; span class="help" { (r) } }
                @if !s.helo.is_empty() { br; span class="help" { "HELO " (s.helo.join(", ")) } }
                @if !s.p1_domains.is_empty() { br; span class="help" { "as " (s.p1_domains.join(", ")) } }
            }
            td class="num" { (s.messages) }
            td {
                (badge(&s.verdict))
                @if !s.evidence.is_empty() {
                    details {
                        summary { "why" }
                        ul { @for e in &s.evidence { li { (e.detail) " (" (e.weight) ")" } } }
                    }
                }
            }
            td class="help" {
                "SPF: " (counts(&s.spf)) br;
                "DKIM: " (counts(&s.dkim)) br;
                "DMARC: " (counts(&s.dmarc))
            }
            td { (time(&s.first_seen)) br; (time(&s.last_seen)) }
            td {
                @for (i, id) in s.sample_trace_ids.iter().enumerate() {
                    a href=(format!("/t/{}/trace/{}", encode(t), encode(id))) { "#" (i + 1) } " "
                }
            }
            @if may_create {
                td {
                    a href=(format!("/t/{}/direct-send/connector?source={}", encode(t), encode(&s.source))) {
                        "Create a connector…"
                    }
                }
            }
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct SourceQuery {
    source: String,
}

/// `GET /t/{t}/direct-send/connector?source=X`: what a connector for this source would be, and
/// whether the report recommends it; the form that creates exactly that.
pub(super) async fn confirm(
    session: Session,
    Path(t): Path<String>,
    Query(q): Query<SourceQuery>,
) -> Response {
    let req = SuggestRequest {
        source: Some(q.source.clone()),
        ..Default::default()
    };
    let path = format!("/api/v1/tenants/{}/reports/direct-send/suggest", encode(&t));
    let plan = match session
        .api
        .send(Method::POST, &path, serde_json::to_value(&req).ok())
        .await
        .and_then(|b| {
            serde_json::from_slice::<SuggestResponse>(&b)
                .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::tenant(&session, &t, "direct-send").await;
    let Some(c) = plan.connectors.first() else {
        let body = html! {
            (notice(false, "There is no connector to propose for this source."))
            @if let Some(a) = &plan.assessment { ul { @for r in &a.reasons { li { (r) } } } }
            p { a href=(format!("/t/{}/direct-send", encode(&t))) { "Back to the report" } }
        };
        return (StatusCode::OK, page(&ctx, "Create a connector", body)).into_response();
    };
    let body = html! {
        @if let Some(a) = &plan.assessment {
            @if a.recommended {
                (notice(true, "The report recommends this connector."))
            } @else {
                (notice(false, "The report does not recommend this connector: read why before creating it."))
            }
            ul { @for r in &a.reasons { li { (r) } } }
        }
        h2 { "This will be created" }
        table class="facts" {
            tr { th scope="row" { "Name" } td { (c.name) } }
            tr { th scope="row" { "Type" } td { "partner" } }
            tr { th scope="row" { "Sender IPs" } td { (list(&c.sender_ips)) } }
            tr { th scope="row" { "TLS certificate names" } td { (list(&c.tls_cert_names)) } }
            tr { th scope="row" { "Sender domains" } td { (list(&c.sender_domains)) } }
            tr { th scope="row" { "Covers" } td { (c.covers.join(", ")) " (" (c.messages) " messages)" } }
            tr { th scope="row" { "Same as" } td { code { (c.command) } } }
        }
        form method="post" action=(format!("/t/{}/direct-send/connector", encode(&t))) class="actions" {
            (csrf(&session))
            input type="hidden" name="name" value=(c.name);
            input type="hidden" name="sender_ips" value=(c.sender_ips.join(" "));
            input type="hidden" name="tls_cert_names" value=(c.tls_cert_names.join(" "));
            input type="hidden" name="sender_domains" value=(c.sender_domains.join(" "));
            button type="submit" { "Create connector " (c.name) }
            a href=(format!("/t/{}/direct-send", encode(&t))) { "Cancel" }
        }
    };
    page(&ctx, "Create a connector", body).into_response()
}

fn list(items: &[String]) -> Markup {
    html! { @if items.is_empty() { "—" } @else { (items.join(", ")) } }
}

#[derive(serde::Deserialize)]
pub(super) struct Create {
    name: String,
    #[serde(default)]
    sender_ips: String,
    #[serde(default)]
    tls_cert_names: String,
    #[serde(default)]
    sender_domains: String,
}

fn words(s: &str) -> Option<Vec<String>> {
    Some(super::forms::items(s)).filter(|v| !v.is_empty())
}

/// `POST /t/{t}/direct-send/connector`: creates the connector the confirmation showed.
pub(super) async fn create(
    Extract(console): Extract<Console>,
    session: Session,
    Path(t): Path<String>,
    Form(f): Form<Create>,
) -> Response {
    let patch = ConnectorPatch {
        name: Some(f.name.clone()),
        sender_ips: words(&f.sender_ips),
        tls_cert_names: words(&f.tls_cert_names),
        sender_domains: words(&f.sender_domains),
        ..Default::default()
    };
    let path = format!("/api/v1/tenants/{}/connectors", encode(&t));
    match session
        .api
        .send(Method::POST, &path, serde_json::to_value(&patch).ok())
        .await
    {
        Ok(_) => {
            console.reports.forget(&t);
            Redirect::to(&format!("/t/{}/direct-send?done=created", encode(&t))).into_response()
        }
        Err(e) => e.into_response(),
    }
}
