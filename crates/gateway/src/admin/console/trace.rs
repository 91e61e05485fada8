//! Message trace: the search form (sender, recipient, message-id, client IP, status, time range),
//! pages by cursor, and one record as a timeline of its events.

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use portcullis_store::{TraceRecord, TraceStatus};

use crate::api_types::{TraceParams, encode, query_string};

use super::layout::{Ctx, badge, page, time};
use super::session::Session;

/// Records per page.
const PAGE: u32 = 50;

/// The form's fields as typed; empty fields are no filter. Times are UTC (`YYYY-MM-DDTHH:MM`
/// from a `datetime-local` field, or RFC 3339).
#[derive(serde::Deserialize, serde::Serialize, Default, Clone)]
pub(super) struct Search {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sender: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    recipient: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    message_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    from_ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    start: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    end: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    cursor: String,
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// A `datetime-local` value (`2026-12-08T10:00`) as RFC 3339 UTC; anything else as typed (the
/// API names it if it is not a time).
fn utc(s: &str) -> Option<String> {
    let s = some(s)?;
    let complete = s.len() == 16 && s.as_bytes().get(10) == Some(&b'T');
    Some(if complete { format!("{s}:00Z") } else { s })
}

impl Search {
    fn params(&self) -> TraceParams {
        TraceParams {
            sender: some(&self.sender),
            recipient: some(&self.recipient),
            from_ip: some(&self.from_ip),
            message_id: some(&self.message_id),
            status: some(&self.status),
            start: utc(&self.start),
            end: utc(&self.end),
            limit: Some(PAGE),
            cursor: some(&self.cursor),
            since: None,
        }
    }

    fn is_empty(&self) -> bool {
        [
            &self.sender,
            &self.recipient,
            &self.message_id,
            &self.from_ip,
            &self.status,
            &self.start,
            &self.end,
        ]
        .iter()
        .all(|f| f.trim().is_empty())
    }
}

/// `GET /t/{t}/trace`.
pub(super) async fn list(
    session: Session,
    Path(t): Path<String>,
    Query(search): Query<Search>,
) -> Response {
    let path = format!(
        "/api/v1/tenants/{}/trace{}",
        encode(&t),
        query_string(&search.params())
    );
    let result = session.api.get_page::<Vec<TraceRecord>>(&path).await;
    let ctx = Ctx::tenant(&session, &t, "trace").await;
    let results = match &result {
        Ok((records, next)) => table(&t, &search, records, next.as_deref()),
        Err(e) => {
            if e.status == axum::http::StatusCode::FORBIDDEN
                || e.status == axum::http::StatusCode::NOT_FOUND
            {
                return super::api::Failure::new(e.status, e.message.clone()).into_response();
            }
            html! { p class="notice bad" role="alert" { (e.message) } }
        }
    };
    let status = match &result {
        Err(e) => e.status,
        Ok(_) => axum::http::StatusCode::OK,
    };
    let body = html! {
        (form(&t, &search))
        section id="results" aria-live="polite" { (results) }
    };
    (status, page(&ctx, "Message trace", body)).into_response()
}

fn form(t: &str, s: &Search) -> Markup {
    let field = |id: &str, label: &str, value: &str, kind: &str, hint: &str| {
        html! {
            div class="field" {
                label for=(id) { (label) }
                input id=(id) name=(id) type=(kind) value=(value) placeholder=(hint);
            }
        }
    };
    html! {
        form class="search" method="get" action=(format!("/t/{}/trace", encode(t))) role="search" {
            (field("sender", "Sender", &s.sender, "text", "user@example.com"))
            (field("recipient", "Recipient", &s.recipient, "text", "user@example.com"))
            (field("message_id", "Message-ID", &s.message_id, "text", "id@host"))
            (field("from_ip", "Client IP", &s.from_ip, "text", "192.0.2.1"))
            div class="field" {
                label for="status" { "Status" }
                select id="status" name="status" {
                    option value="" { "any" }
                    @for st in TraceStatus::ALL {
                        @if s.status == st.as_str() {
                            option value=(st.as_str()) selected { (st.as_str()) }
                        } @else {
                            option value=(st.as_str()) { (st.as_str()) }
                        }
                    }
                }
            }
            (field("start", "From (UTC)", &s.start, "datetime-local", ""))
            (field("end", "Until (UTC)", &s.end, "datetime-local", ""))
            div class="actions" {
                button type="submit" { "Search" }
                a href=(format!("/t/{}/trace", encode(t))) { "Clear" }
            }
        }
    }
}

fn table(t: &str, s: &Search, records: &[TraceRecord], next: Option<&str>) -> Markup {
    if records.is_empty() {
        return html! {
            div class="empty" {
                @if s.is_empty() && s.cursor.is_empty() {
                    p { "No mail has been traced for this tenant yet." }
                    p { "Every transaction the gateway answers — accepted, refused or deferred — appears here within a second. Send a test message to one of the tenant's domains to see it." }
                } @else {
                    p { "No messages match this search." }
                    p { "Widen the time range or clear a filter." }
                }
            }
        };
    }
    html! {
        div class="scroll" {
            table {
                caption class="sr" { "Matching messages, newest first" }
                thead { tr {
                    th scope="col" { "Received" }
                    th scope="col" { "Sender" }
                    th scope="col" { "Recipients" }
                    th scope="col" { "Subject" }
                    th scope="col" { "Client IP" }
                    th scope="col" { "Status" }
                } }
                tbody {
                    @for r in records {
                        tr {
                            td { a href=(format!("/t/{}/trace/{}", encode(t), encode(&r.trace_id))) { (time(&r.received_at)) } }
                            td class="addr" { (r.mail_from) }
                            td class="addr" {
                                @for (i, rc) in r.recipients.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    (rc.address)
                                }
                            }
                            td { (r.subject.as_deref().unwrap_or("")) }
                            td { (r.client_ip) }
                            td { (badge(r.status.as_str())) }
                        }
                    }
                }
            }
        }
        @if let Some(cursor) = next {
            @let more = Search { cursor: cursor.to_string(), ..s.clone() };
            p class="more" {
                a href=(format!("/t/{}/trace{}", encode(t), query_string(&more))) rel="next" { "Older messages →" }
            }
        }
    }
}

/// `GET /t/{t}/trace/{id}`.
pub(super) async fn show(session: Session, Path((t, id)): Path<(String, String)>) -> Response {
    let path = format!("/api/v1/tenants/{}/trace/{}", encode(&t), encode(&id));
    let r = match session.api.get::<TraceRecord>(&path).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::tenant(&session, &t, "trace").await;
    let title = match &r.subject {
        Some(s) if !s.is_empty() => format!("Message: {s}"),
        _ => "Message".to_string(),
    };
    page(&ctx, &title, detail(&r)).into_response()
}

fn detail(r: &TraceRecord) -> Markup {
    let row = |k: &str, v: Markup| html! { tr { th scope="row" { (k) } td { (v) } } };
    let text = |v: &str| html! { (v) };
    let opt = |v: &Option<String>| html! { (v.as_deref().unwrap_or("—")) };
    let a = &r.auth;
    html! {
        div class="cols" {
            section {
                h2 { "Envelope and connection" }
                table class="facts" {
                    (row("Received", time(&r.received_at)))
                    (row("Status", badge(r.status.as_str())))
                    (row("Trace id", text(&r.trace_id)))
                    (row("Client IP", text(&r.client_ip)))
                    @if let Some(p) = &r.proxy_ip { (row("Through balancer", text(p))) }
                    @if let Some(o) = &r.original_client_ip { (row("Original client", text(o))) }
                    (row("HELO", opt(&r.helo)))
                    (row("TLS", match &r.tls {
                        Some(t) => html! { (t.version) " " (t.cipher)
                            @if let Some(s) = &t.client_cert_subject {
                                br; "client certificate: " (s)
                                @if t.client_cert_trusted { " (trusted)" } @else { " (not trusted)" }
                            } },
                        None => html! { "none" },
                    }))
                    (row("Envelope sender", text(&r.mail_from)))
                    (row("From header", opt(&r.header_from)))
                    (row("Subject", opt(&r.subject)))
                    (row("Message-ID", opt(&r.message_id)))
                    (row("Size", text(&format!("{} bytes", r.size))))
                    (row("Attribution", html! { (r.attribution.as_str())
                        @if let Some(c) = &r.connector { " — connector " (c) } }))
                    @if r.direct_send {
                        (row("Direct send", html! { "yes"
                            @if let Some(o) = &r.direct_send_outcome { " — " (badge(o.as_str())) } }))
                    }
                }
            }
            section {
                h2 { "Authentication" }
                table class="facts" {
                    (row("SPF", opt(&a.spf)))
                    (row("DKIM", opt(&a.dkim)))
                    (row("DMARC", opt(&a.dmarc)))
                    (row("ARC", opt(&a.arc)))
                    (row("compauth", opt(&a.compauth)))
                }
                h2 { "Recipients" }
                table {
                    thead { tr { th scope="col" { "Address" } th scope="col" { "Status" } th scope="col" { "Reply" } } }
                    tbody {
                        @for rc in &r.recipients {
                            tr { td class="addr" { (rc.address) } td { (badge(rc.status.as_str())) } td { code { (rc.reply) } } }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Timeline" }
            @if r.events.is_empty() {
                p class="empty" { "No events recorded." }
            } @else {
                ol class="timeline" {
                    @for e in &r.events {
                        li {
                            (time(&e.at))
                            " "
                            strong { (e.event.as_str()) }
                            p { (e.detail) }
                        }
                    }
                }
            }
        }
    }
}
