//! The operator's pages: tenants (add, remove behind a confirmation), API tokens (create — the
//! token is shown once —, revoke) and the delivery queue (retry, delete).

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use portcullis_policy::Tenant;
use portcullis_store::TokenRecord;

use crate::api_types::{QueueItem, encode};

use super::api::Failure;
use super::forms::{Confirm, error_for, form_refusal, select, text};
use super::layout::{Ctx, badge, csrf, notice, page, time, word};
use super::session::Session;

#[derive(serde::Deserialize, Default)]
pub(super) struct Done {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /operator/tenants`.
pub(super) async fn tenants(session: Session, Query(d): Query<Done>) -> Response {
    let message = match d.done.as_deref() {
        Some("added") => Some((
            true,
            "The tenant was added. Add its domains next.".to_string(),
        )),
        Some("removed") => Some((
            true,
            "The tenant was removed with its domains, connectors and rules.".to_string(),
        )),
        _ => None,
    };
    render_tenants(&session, None, message, StatusCode::OK).await
}

async fn render_tenants(
    session: &Session,
    typed: Option<&str>,
    message: Option<(bool, String)>,
    status: StatusCode,
) -> Response {
    let tenants = match session.api.get::<Vec<Tenant>>("/api/v1/tenants").await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::operator(session, "tenants").await;
    let error = message
        .as_ref()
        .filter(|(ok, _)| !ok)
        .map(|(_, m)| m.as_str());
    let body = html! {
        @if let Some((ok, text)) = &message { (notice(*ok, text)) }
        @if tenants.is_empty() {
            div class="empty" { p { "No tenants yet. Add the first organization below, then its domains." } }
        } @else {
            table {
                caption class="sr" { "Tenants" }
                thead { tr { th scope="col" { "Tenant" } th scope="col" { "Reject direct send" } th scope="col" { "Remove" } } }
                tbody {
                    @for t in &tenants {
                        tr {
                            td { a href=(format!("/t/{}/overview", encode(&t.name))) { (t.name) } }
                            td { (badge(&word(&t.settings.reject_direct_send))) }
                            td {
                                form method="post" action=(format!("/operator/tenants/{}/remove", encode(&t.name))) class="actions danger" {
                                    (csrf(session))
                                    label { input type="checkbox" name="confirm" value="yes" required; " remove " (t.name) " and all it has" }
                                    button type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section class="panel" {
            h2 { "Add a tenant" }
            form method="post" class="stack" action="/operator/tenants" {
                (csrf(session))
                (text("name", "Name", typed.unwrap_or(""), Some("Lower-case letters, digits and '-'."), error_for(error, "name").or(error_for(error, "tenant"))))
                div class="actions" { button type="submit" { "Add tenant" } }
            }
        }
    };
    (status, page(&ctx, "Tenants", body)).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct NewTenant {
    name: String,
}

/// `POST /operator/tenants`.
pub(super) async fn add_tenant(session: Session, Form(f): Form<NewTenant>) -> Response {
    let body = serde_json::json!({ "name": f.name.trim() });
    match session
        .api
        .send(Method::POST, "/api/v1/tenants", Some(body))
        .await
    {
        Ok(_) => Redirect::to("/operator/tenants?done=added").into_response(),
        Err(Failure { status, message }) if form_refusal(status) => {
            render_tenants(&session, Some(&f.name), Some((false, message)), status).await
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /operator/tenants/{t}/remove` (confirmed).
pub(super) async fn remove_tenant(
    session: Session,
    Path(t): Path<String>,
    Form(k): Form<Confirm>,
) -> Response {
    if !k.given() {
        let m = "Tick the box to confirm the removal.".to_string();
        return render_tenants(&session, None, Some((false, m)), StatusCode::BAD_REQUEST).await;
    }
    match session
        .api
        .send(
            Method::DELETE,
            &format!("/api/v1/tenants/{}", encode(&t)),
            None,
        )
        .await
    {
        Ok(_) => Redirect::to("/operator/tenants?done=removed").into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /operator/tokens`.
pub(super) async fn tokens(session: Session, Query(d): Query<Done>) -> Response {
    let message = (d.done.as_deref() == Some("revoked")).then(|| {
        (
            true,
            "The token was revoked: its API calls and console sessions end now, on every node."
                .to_string(),
        )
    });
    render_tokens(&session, None, None, message, StatusCode::OK).await
}

async fn render_tokens(
    session: &Session,
    created: Option<&serde_json::Value>,
    typed: Option<&NewToken>,
    message: Option<(bool, String)>,
    status: StatusCode,
) -> Response {
    let tokens = match session.api.get::<Vec<TokenRecord>>("/api/v1/tokens").await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::operator(session, "tokens").await;
    let error = message
        .as_ref()
        .filter(|(ok, _)| !ok)
        .map(|(_, m)| m.as_str());
    let mut tenant_choices: Vec<(&str, &str)> = vec![("", "— (operator)")];
    tenant_choices.extend(ctx.tenants.iter().map(|t| (t.as_str(), t.as_str())));
    let unix = |s: i64| {
        chrono::DateTime::from_timestamp(s, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    let body = html! {
        @if let Some((ok, text)) = &message { (notice(*ok, text)) }
        @if let Some(c) = created {
            section class="panel" role="status" {
                h2 { "Token " (c["name"].as_str().unwrap_or("")) " created" }
                p { "Copy it now: it is shown this once and stored only as a hash." }
                p class="token" id="new-token" { (c["token"].as_str().unwrap_or("")) }
            }
        }
        table {
            caption class="sr" { "API tokens" }
            thead { tr {
                th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Role" } th scope="col" { "Tenant" }
                th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "State" }
            } }
            tbody {
                @for t in &tokens {
                    tr {
                        td { (t.name) }
                        td { code { (t.id) } }
                        td { (t.role) }
                        td { (t.tenant.as_deref().unwrap_or("all")) }
                        td { (time(&unix(t.created_at))) }
                        td { @if let Some(e) = t.expires_at { (time(&unix(e))) } @else { "never" } }
                        td {
                            @if t.revoked { (badge("revoked")) } @else {
                                form method="post" action=(format!("/operator/tokens/{}/revoke", encode(&t.id))) class="actions danger" {
                                    (csrf(session))
                                    label { input type="checkbox" name="confirm" value="yes" required; " revoke" }
                                    button type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section class="panel" {
            h2 { "Create a token" }
            form method="post" class="stack" action="/operator/tokens" {
                (csrf(session))
                (text("name", "Name", typed.map_or("", |f| f.name.as_str()), Some("Who or what uses it, e.g. ci-deploy."), error_for(error, "name")))
                (select("role", "Role", &[
                    ("viewer", "viewer: reads trace and reports"),
                    ("quarantine-admin", "quarantine-admin: the quarantine"),
                    ("mail-flow", "mail-flow: connectors, domains, rules"),
                    ("org-config", "org-config: tenant settings"),
                    ("org-admin", "org-admin: everything in its tenant"),
                    ("operator", "operator: every tenant, tokens, queue"),
                ], typed.map_or("viewer", |f| f.role.as_str()), None))
                (select("tenant", "Tenant (for a tenant role)", &tenant_choices, typed.map_or("", |f| f.tenant.as_str()), None))
                (text("expires", "Expires after", typed.map_or("90d", |f| f.expires.as_str()), Some("e.g. 90d; empty: until revoked."), error_for(error, "expires")))
                div class="actions" { button type="submit" { "Create token" } }
            }
        }
    };
    (status, page(&ctx, "API tokens", body)).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct NewToken {
    name: String,
    role: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    expires: String,
}

/// `POST /operator/tokens`: the new token is shown once, in this answer (never in a URL).
pub(super) async fn create_token(session: Session, Form(f): Form<NewToken>) -> Response {
    let body = serde_json::json!({
        "name": f.name.trim(),
        "role": f.role,
        "tenant": (!f.tenant.is_empty()).then_some(&f.tenant),
        "expires": (!f.expires.trim().is_empty()).then(|| f.expires.trim()),
    });
    match session
        .api
        .send(Method::POST, "/api/v1/tokens", Some(body))
        .await
    {
        Ok(b) => {
            let created: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
            render_tokens(&session, Some(&created), None, None, StatusCode::CREATED).await
        }
        Err(Failure { status, message }) if form_refusal(status) => {
            render_tokens(&session, None, Some(&f), Some((false, message)), status).await
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /operator/tokens/{id}/revoke` (confirmed).
pub(super) async fn revoke_token(
    session: Session,
    Path(id): Path<String>,
    Form(k): Form<Confirm>,
) -> Response {
    if !k.given() {
        let m = "Tick the box to confirm the revocation.".to_string();
        return render_tokens(
            &session,
            None,
            None,
            Some((false, m)),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    match session
        .api
        .send(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", encode(&id)),
            None,
        )
        .await
    {
        Ok(_) => Redirect::to("/operator/tokens?done=revoked").into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /operator/queue`.
pub(super) async fn queue(session: Session, Query(d): Query<Done>) -> Response {
    let message = match d.done.as_deref() {
        Some("retried") => Some((true, "Delivery will be tried again now.".to_string())),
        Some("deleted") => Some((true, "The message was removed from the queue.".to_string())),
        _ => None,
    };
    let path = format!(
        "/api/v1/queue?limit=100{}",
        d.cursor
            .as_deref()
            .map(|c| format!("&cursor={}", encode(c)))
            .unwrap_or_default()
    );
    let (items, next) = match session.api.get_page::<Vec<QueueItem>>(&path).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::operator(&session, "queue").await;
    let body = html! {
        @if let Some((ok, text)) = &message { (notice(*ok, text)) }
        @if items.is_empty() {
            div class="empty" { p { "The queue is empty: every accepted message has been delivered." } }
        } @else {
            div class="scroll" {
                table {
                    caption class="sr" { "Messages waiting for delivery, oldest first" }
                    thead { tr {
                        th scope="col" { "Message" } th scope="col" { "Tenant" } th scope="col" { "Sender" }
                        th scope="col" { "Recipients" } th scope="col" class="num" { "Attempts" } th scope="col" { "Next attempt" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for q in &items {
                            tr {
                                td { a href=(format!("/t/{}/trace/{}", encode(&q.tenant), encode(&q.trace_id))) { code { (q.trace_id) } } }
                                td { (q.tenant) }
                                td class="addr" { (q.mail_from) }
                                td class="addr" {
                                    @for r in &q.recipients {
                                        (r.address) " " (badge(&r.status)) br;
                                        @if !r.reply.is_empty() { span class="help" { (r.reply) } br; }
                                    }
                                }
                                td class="num" { (q.attempts) }
                                td { @if let Some(n) = &q.next_attempt { (time(n)) } }
                                td {
                                    div class="actions" {
                                        form method="post" action=(format!("/operator/queue/{}/retry", encode(&q.id))) {
                                            (csrf(&session))
                                            button type="submit" class="secondary" { "Retry now" }
                                        }
                                        form method="post" action=(format!("/operator/queue/{}/delete", encode(&q.id))) class="danger" {
                                            (csrf(&session))
                                            label { input type="checkbox" name="confirm" value="yes" required; " delete" }
                                            button type="submit" { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = next {
                p class="more" { a rel="next" href=(format!("/operator/queue?cursor={}", encode(&c))) { "More →" } }
            }
        }
    };
    page(&ctx, "Delivery queue", body).into_response()
}

/// `POST /operator/queue/{id}/retry`.
pub(super) async fn retry(session: Session, Path(id): Path<String>) -> Response {
    match session
        .api
        .send(
            Method::POST,
            &format!("/api/v1/queue/{}/retry", encode(&id)),
            None,
        )
        .await
    {
        Ok(_) => Redirect::to("/operator/queue?done=retried").into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /operator/queue/{id}/delete` (confirmed).
pub(super) async fn delete(
    session: Session,
    Path(id): Path<String>,
    Form(k): Form<Confirm>,
) -> Response {
    if !k.given() {
        return Failure::new(
            StatusCode::BAD_REQUEST,
            "Tick the box to confirm the deletion.",
        )
        .into_response();
    }
    match session
        .api
        .send(
            Method::DELETE,
            &format!("/api/v1/queue/{}", encode(&id)),
            None,
        )
        .await
    {
        Ok(_) => Redirect::to("/operator/queue?done=deleted").into_response(),
        Err(e) => e.into_response(),
    }
}
