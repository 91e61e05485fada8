//! Quarantine: the list, a message's preview (its headers and text as plain text: the message's
//! HTML is never rendered and nothing remote is loaded), release once, delete.

use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use portcullis_store::QuarantineEntry;

use crate::api_types::{QuarantineDetail, QuarantineParams, encode, query_string};

use super::api::Failure;
use super::forms::Confirm;
use super::layout::{Ctx, csrf, notice, page, pre, time};
use super::session::Session;

#[derive(serde::Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    cursor: Option<String>,
    /// What the last action did (a fixed word: the page says it in its own words).
    #[serde(default)]
    done: Option<String>,
}

/// `GET /t/{t}/quarantine`.
pub(super) async fn list(
    session: Session,
    Path(t): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let params = QuarantineParams {
        limit: Some(50),
        cursor: q.cursor.clone().filter(|c| !c.is_empty()),
        ..Default::default()
    };
    let path = format!(
        "/api/v1/tenants/{}/quarantine{}",
        encode(&t),
        query_string(&params)
    );
    let (entries, next) = match session.api.get_page::<Vec<QuarantineEntry>>(&path).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::tenant(&session, &t, "quarantine").await;
    let base = format!("/t/{}/quarantine", encode(&t));
    let body = html! {
        @if q.done.as_deref() == Some("deleted") { (notice(true, "The message was deleted.")) }
        @if entries.is_empty() {
            div class="empty" {
                p { "Nothing is in quarantine." }
                p { "Messages held by a mail-flow rule, a DMARC quarantine policy or the spoof action appear here, with the reason, until they expire." }
            }
        } @else {
            div class="scroll" {
                table {
                    caption class="sr" { "Quarantined messages, newest first" }
                    thead { tr {
                        th scope="col" { "Received" }
                        th scope="col" { "From" }
                        th scope="col" { "Recipients" }
                        th scope="col" { "Subject" }
                        th scope="col" { "Reason" }
                        th scope="col" { "Released" }
                    } }
                    tbody {
                        @for e in &entries {
                            tr {
                                td { a href=(format!("{base}/{}", encode(&e.id))) { (time(&e.received_at)) } }
                                td class="addr" { (e.header_from.as_deref().unwrap_or(&e.mail_from)) }
                                td class="addr" { (e.recipients.join(", ")) }
                                td { (e.subject.as_deref().unwrap_or("")) }
                                td { (e.reason) }
                                td { @if let Some(at) = &e.released_at { (time(at)) } @else { "no" } }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = next {
                p class="more" { a rel="next" href=(format!("{base}?cursor={}", encode(&c))) { "Older messages →" } }
            }
        }
    };
    page(&ctx, "Quarantine", body).into_response()
}

#[derive(serde::Deserialize, Default)]
pub(super) struct ShowQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /t/{t}/quarantine/{id}`.
pub(super) async fn show(
    session: Session,
    Path((t, id)): Path<(String, String)>,
    Query(q): Query<ShowQuery>,
) -> Response {
    let message = match q.done.as_deref() {
        Some("released") => Some((true, "The message was released to its recipients.".into())),
        _ => None,
    };
    render(&session, &t, &id, message, StatusCode::OK).await
}

async fn render(
    session: &Session,
    t: &str,
    id: &str,
    message: Option<(bool, String)>,
    status: StatusCode,
) -> Response {
    let path = format!("/api/v1/tenants/{}/quarantine/{}", encode(t), encode(id));
    let d = match session.api.get::<QuarantineDetail>(&path).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::tenant(session, t, "quarantine").await;
    let title = match &d.entry.subject {
        Some(s) if !s.is_empty() => format!("Quarantined: {s}"),
        _ => "Quarantined message".into(),
    };
    let body = html! {
        @if let Some((ok, text)) = &message { (notice(*ok, text)) }
        (facts(&d.entry, t))
        (actions(&ctx, session, t, &d.entry))
        section {
            h2 { "Headers" }
            (pre(&d.headers))
        }
        section {
            h2 { "Text" }
            p class="help" { "The message's text as plain text: its HTML is not rendered and nothing it links to is loaded." }
            (pre(&d.preview))
            @if !d.attachments.is_empty() {
                h3 { "Attachments" }
                ul { @for a in &d.attachments { li { (a) } } }
            }
        }
    };
    (status, page(&ctx, &title, body)).into_response()
}

fn facts(e: &QuarantineEntry, t: &str) -> Markup {
    html! {
        table class="facts" {
            tr { th scope="row" { "Received" } td { (time(&e.received_at)) } }
            tr { th scope="row" { "Expires" } td { (time(&e.expires_at)) } }
            tr { th scope="row" { "Reason" } td { (e.reason) } }
            tr { th scope="row" { "Envelope sender" } td { (e.mail_from) } }
            tr { th scope="row" { "From header" } td { (e.header_from.as_deref().unwrap_or("—")) } }
            tr { th scope="row" { "Recipients" } td { (e.recipients.join(", ")) } }
            tr { th scope="row" { "Size" } td { (e.size) " bytes" } }
            tr { th scope="row" { "Trace" } td { a href=(format!("/t/{}/trace/{}", encode(t), encode(&e.trace_id))) { (e.trace_id) } } }
            @if let Some(at) = &e.released_at {
                tr { th scope="row" { "Released" } td {
                    (time(at))
                    @if let Some(by) = &e.released_by { " by " (by) }
                    @if let Some(to) = &e.released_to { " to " (to.join(", ")) }
                } }
            }
        }
    }
}

fn actions(ctx: &Ctx, session: &Session, t: &str, e: &QuarantineEntry) -> Markup {
    let base = format!("/t/{}/quarantine/{}", encode(t), encode(&e.id));
    let release = ctx.may("POST", "/api/v1/tenants/{t}/quarantine/{id}/release");
    let delete = ctx.may("DELETE", "/api/v1/tenants/{t}/quarantine/{id}");
    html! {
        @if release || delete {
            div class="actions" {
                @if release && e.released_at.is_none() {
                    form method="post" action=(format!("{base}/release")) {
                        (csrf(session))
                        button type="submit" { "Release to its recipients" }
                    }
                }
                @if delete {
                    form method="post" action=(format!("{base}/delete")) class="danger" {
                        (csrf(session))
                        label { input type="checkbox" name="confirm" value="yes" required; " I want to delete this message for good" }
                        button type="submit" { "Delete" }
                    }
                }
            }
        }
    }
}

/// `POST /t/{t}/quarantine/{id}/release`: released once; a second release says when the first
/// was.
pub(super) async fn release(session: Session, Path((t, id)): Path<(String, String)>) -> Response {
    let path = format!(
        "/api/v1/tenants/{}/quarantine/{}/release",
        encode(&t),
        encode(&id)
    );
    match session.api.send(Method::POST, &path, None).await {
        Ok(_) => Redirect::to(&format!(
            "/t/{}/quarantine/{}?done=released",
            encode(&t),
            encode(&id)
        ))
        .into_response(),
        Err(Failure { status, message }) if status != StatusCode::NOT_FOUND => {
            render(&session, &t, &id, Some((false, message)), status).await
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /t/{t}/quarantine/{id}/delete` (with the confirmation box ticked).
pub(super) async fn delete(
    session: Session,
    Path((t, id)): Path<(String, String)>,
    axum::Form(c): axum::Form<Confirm>,
) -> Response {
    if !c.given() {
        return render(
            &session,
            &t,
            &id,
            Some((false, "Tick the box to confirm the deletion.".into())),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let path = format!("/api/v1/tenants/{}/quarantine/{}", encode(&t), encode(&id));
    match session.api.send(Method::DELETE, &path, None).await {
        Ok(_) => {
            Redirect::to(&format!("/t/{}/quarantine?done=deleted", encode(&t))).into_response()
        }
        Err(Failure { status, message }) if status != StatusCode::NOT_FOUND => {
            render(&session, &t, &id, Some((false, message)), status).await
        }
        Err(e) => e.into_response(),
    }
}
