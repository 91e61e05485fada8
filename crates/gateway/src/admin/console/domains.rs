//! Accepted domains: the list (a pending domain with the TXT record to publish), adding one,
//! checking a pending one's proof, removing one behind a confirmation.

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use portcullis_policy::AcceptedDomain;

use crate::api_types::{NewDomain, encode};

use super::api::Failure;
use super::forms::{self, Confirm, Done, checkbox, error_for, form_refusal, select, text};
use super::layout::{Ctx, badge, csrf, notice, page, word};
use super::session::Session;

/// `GET /t/{t}/domains`.
pub(super) async fn list(
    session: Session,
    Path(t): Path<String>,
    Query(d): Query<Done>,
) -> Response {
    let message = match d.done.as_deref() {
        Some("added") => Some((true, "The domain was added.".to_string())),
        Some("verified") => Some((
            true,
            "The domain is verified: it receives mail now.".to_string(),
        )),
        Some("removed") => Some((true, "The domain was removed.".to_string())),
        _ => None,
    };
    render(&session, &t, None, message, StatusCode::OK).await
}

async fn render(
    session: &Session,
    t: &str,
    typed: Option<&DomainForm>,
    message: Option<(bool, String)>,
    status: StatusCode,
) -> Response {
    let path = format!("/api/v1/tenants/{}/domains", encode(t));
    let domains = match session.api.get::<Vec<AcceptedDomain>>(&path).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::tenant(session, t, "domains").await;
    let may_add = ctx.may("POST", "/api/v1/tenants/{t}/domains");
    let may_remove = ctx.may("DELETE", "/api/v1/tenants/{t}/domains/{d}");
    let may_verify = ctx.may("POST", "/api/v1/tenants/{t}/domains/{d}/verify");
    let error = message
        .as_ref()
        .filter(|(ok, _)| !ok)
        .map(|(_, m)| m.as_str());
    let base = format!("/t/{}/domains", encode(t));
    let body = html! {
        @if let Some((ok, text)) = &message { (notice(*ok, text)) }
        @if domains.is_empty() {
            div class="empty" {
                p { "No accepted domains yet: the tenant receives no mail." }
                p { "Add the domains whose MX points at this gateway." }
            }
        } @else {
            div class="scroll" {
                table {
                    caption class="sr" { "Accepted domains" }
                    thead { tr {
                        th scope="col" { "Domain" } th scope="col" { "Type" } th scope="col" { "Subdomains" }
                        th scope="col" { "State" } th scope="col" { "Route" }
                        @if may_remove || may_verify { th scope="col" { "Actions" } }
                    } }
                    tbody {
                        @for d in &domains {
                            tr {
                                td class="addr" { (d.domain) }
                                td { (word(&d.domain_type)) }
                                td { @if d.match_subdomains { "yes" } @else { "no" } }
                                td {
                                    @match &d.verification {
                                        None => (badge("active")),
                                        Some(txt) => {
                                            (badge("pending")) br;
                                            span class="help" { "Publish TXT " code { (txt) } " at " (d.domain) }
                                        }
                                    }
                                }
                                td { (d.route.as_deref().unwrap_or("the tenant's")) }
                                @if may_remove || may_verify {
                                    td {
                                        div class="actions" {
                                            @if may_verify && d.verification.is_some() {
                                                form method="post" action=(format!("{base}/{}/verify", encode(&d.domain))) {
                                                    (csrf(session))
                                                    button type="submit" class="secondary" { "Check the TXT record" }
                                                }
                                            }
                                            @if may_remove {
                                                form method="post" action=(format!("{base}/{}/remove", encode(&d.domain))) class="danger" {
                                                    (csrf(session))
                                                    label { input type="checkbox" name="confirm" value="yes" required; " remove" }
                                                    button type="submit" { "Remove" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if may_add {
            section class="panel" {
                h2 { "Add a domain" }
                form method="post" class="stack" action=(base) {
                    (csrf(session))
                    (text("domain", "Domain", typed.map_or("", |f| f.domain.as_str()), None, error_for(error, "domain")))
                    (select("type", "Type", &[("authoritative", "authoritative: its mailboxes are the tenant's"), ("internal-relay", "internal relay: some mailboxes are elsewhere")],
                        typed.map_or("authoritative", |f| f.domain_type.as_str()), None))
                    (checkbox("match_subdomains", "Also its subdomains", typed.is_some_and(|f| forms::checked(&f.match_subdomains)), None))
                    div class="actions" { button type="submit" { "Add domain" } }
                }
            }
        }
    };
    (status, page(&ctx, "Accepted domains", body)).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct DomainForm {
    domain: String,
    #[serde(rename = "type")]
    domain_type: String,
    #[serde(default)]
    match_subdomains: Option<String>,
}

/// `POST /t/{t}/domains`.
pub(super) async fn add(
    session: Session,
    Path(t): Path<String>,
    Form(f): Form<DomainForm>,
) -> Response {
    let body = NewDomain {
        domain: f.domain.trim().to_string(),
        domain_type: Some(f.domain_type.clone()),
        match_subdomains: forms::checked(&f.match_subdomains),
    };
    let path = format!("/api/v1/tenants/{}/domains", encode(&t));
    match session
        .api
        .send(Method::POST, &path, serde_json::to_value(&body).ok())
        .await
    {
        Ok(_) => Redirect::to(&format!("/t/{}/domains?done=added", encode(&t))).into_response(),
        Err(Failure { status, message }) if form_refusal(status) => {
            render(&session, &t, Some(&f), Some((false, message)), status).await
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /t/{t}/domains/{d}/verify`.
pub(super) async fn verify(session: Session, Path((t, d)): Path<(String, String)>) -> Response {
    let path = format!(
        "/api/v1/tenants/{}/domains/{}/verify",
        encode(&t),
        encode(&d)
    );
    match session.api.send(Method::POST, &path, None).await {
        Ok(_) => Redirect::to(&format!("/t/{}/domains?done=verified", encode(&t))).into_response(),
        Err(Failure { status, message })
            if status != StatusCode::FORBIDDEN && status != StatusCode::NOT_FOUND =>
        {
            render(&session, &t, None, Some((false, message)), status).await
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /t/{t}/domains/{d}/remove` (confirmed).
pub(super) async fn remove(
    session: Session,
    Path((t, d)): Path<(String, String)>,
    Form(k): Form<Confirm>,
) -> Response {
    if !k.given() {
        let msg = "Tick the box to confirm the removal.".to_string();
        return render(
            &session,
            &t,
            None,
            Some((false, msg)),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let path = format!("/api/v1/tenants/{}/domains/{}", encode(&t), encode(&d));
    match session.api.send(Method::DELETE, &path, None).await {
        Ok(_) => Redirect::to(&format!("/t/{}/domains?done=removed", encode(&t))).into_response(),
        Err(e) => e.into_response(),
    }
}
