//! Inbound connectors: the list, a form to create or edit one (with the API's validation shown
//! beside the field it concerns), removal behind a confirmation.

use axum::Form;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use portcullis_policy::Connector;

use crate::api_types::{ConnectorPatch, encode};

use super::api::Failure;
use super::forms::{
    self, Confirm, Done, checkbox, error_beside, form_refusal, lines, select, text,
};
use super::layout::{Ctx, badge, csrf, notice, page, word};
use super::session::Session;
use super::state::Console;

fn done_text(done: Option<&str>) -> Option<(bool, String)> {
    let text = match done? {
        "created" => "The connector was created.",
        "saved" => "The connector was saved.",
        "removed" => "The connector was removed.",
        _ => return None,
    };
    Some((
        true,
        format!("{text} The change applies to the next message."),
    ))
}

/// `GET /t/{t}/connectors`.
pub(super) async fn list(
    session: Session,
    Path(t): Path<String>,
    Query(d): Query<Done>,
) -> Response {
    render_list(
        &session,
        &t,
        None,
        done_text(d.done.as_deref()),
        StatusCode::OK,
    )
    .await
}

async fn render_list(
    session: &Session,
    t: &str,
    typed: Option<&ConnectorForm>,
    message: Option<(bool, String)>,
    status: StatusCode,
) -> Response {
    let path = format!("/api/v1/tenants/{}/connectors", encode(t));
    let connectors = match session.api.get::<Vec<Connector>>(&path).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::tenant(session, t, "connectors").await;
    let may = ctx.may("POST", "/api/v1/tenants/{t}/connectors");
    let error = message
        .as_ref()
        .filter(|(ok, _)| !ok)
        .map(|(_, m)| m.as_str());
    let base = format!("/t/{}/connectors", encode(t));
    let body = html! {
        @if let Some((ok, text)) = &message { (notice(*ok, text)) }
        @if connectors.is_empty() {
            div class="empty" {
                p { "No connectors yet: all mail to this tenant is anonymous." }
                p { "A connector vouches for a partner or your own servers, by source IP or TLS client certificate. The Direct Send report proposes connectors for the sources it sees." }
            }
        } @else {
            div class="scroll" {
                table {
                    caption class="sr" { "Inbound connectors" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Sender IPs" }
                        th scope="col" { "Certificate names" } th scope="col" { "Sender domains" } th scope="col" { "State" }
                    } }
                    tbody {
                        @for c in &connectors {
                            tr {
                                td { a href=(format!("{base}/{}", encode(&c.name))) { (c.name) } }
                                td { (word(&c.connector_type)) }
                                td class="addr" { (c.sender_ips.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")) }
                                td class="addr" { (c.tls_cert_names.join(", ")) }
                                td class="addr" { (c.sender_domains.join(", ")) }
                                td { @if c.enabled { (badge("on")) } @else { (badge("off")) } @if c.require_tls { " TLS required" } }
                            }
                        }
                    }
                }
            }
        }
        @if may {
            section class="panel" {
                h2 { "New connector" }
                (form(session, &base, None, typed, error))
            }
        }
    };
    (status, page(&ctx, "Connectors", body)).into_response()
}

/// The form of a new connector (`existing` none) or of an existing one, filled with what was
/// typed when the API refused it.
fn form(
    session: &Session,
    action: &str,
    existing: Option<&Connector>,
    typed: Option<&ConnectorForm>,
    error: Option<&str>,
) -> Markup {
    let nets = |v: &[ipnet::IpNet]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let pick = |typed_v: Option<Vec<String>>, stored: Vec<String>| typed_v.unwrap_or(stored);
    let name = typed.map_or_else(
        || existing.map(|c| c.name.clone()).unwrap_or_default(),
        |f| f.name.clone().unwrap_or_default(),
    );
    let kind = typed.map_or_else(
        || existing.map_or("partner".to_string(), |c| word(&c.connector_type)),
        |f| f.connector_type.clone(),
    );
    let ips = pick(
        typed.map(|f| forms::items(&f.sender_ips)),
        existing.map_or(Vec::new(), |c| nets(&c.sender_ips)),
    );
    let names = pick(
        typed.map(|f| forms::items(&f.tls_cert_names)),
        existing.map_or(Vec::new(), |c| c.tls_cert_names.clone()),
    );
    let domains = pick(
        typed.map(|f| forms::items(&f.sender_domains)),
        existing.map_or(vec!["*".into()], |c| c.sender_domains.clone()),
    );
    let skip = pick(
        typed.map(|f| forms::items(&f.skip_ips)),
        existing.map_or(Vec::new(), |c| nets(&c.skip_ips)),
    );
    let flag =
        |typed_v: Option<&Option<String>>, stored: bool| typed_v.map_or(stored, forms::checked);
    html! {
        form method="post" class="stack" action=(action) {
            (csrf(session))
            @if existing.is_none() {
                (text("name", "Name", &name, Some("Letters, digits, '-' and '_'; unique within the tenant."), error_beside(error, "name", std::slice::from_ref(&name))))
            }
            (select("type", "Type", &[("partner", "partner"), ("on-premises", "on-premises (your own servers)")], &kind, None))
            (lines("sender_ips", "Sender IPs", &ips, Some("Addresses or networks (CIDR), one per line."), error_beside(error, "sender_ips", &ips)))
            (lines("tls_cert_names", "TLS certificate names", &names, Some("Names of a trusted client certificate (CN or DNS name), one per line."), error_beside(error, "tls_cert_names", &names)))
            (lines("sender_domains", "Sender domains", &domains, Some("The sender domains it vouches for: * for all, *.example.com with subdomains."), error_beside(error, "sender_domains", &domains)))
            (checkbox("require_tls", "Require TLS", flag(typed.map(|f| &f.require_tls), existing.is_some_and(|c| c.require_tls)), None))
            (checkbox("restrict_domains_to_ip", "Its sender domains only from its IPs", flag(typed.map(|f| &f.restrict_domains_to_ip), existing.is_some_and(|c| c.restrict_domains_to_ip)), None))
            (checkbox("restrict_domains_to_cert", "Its sender domains only with its certificate", flag(typed.map(|f| &f.restrict_domains_to_cert), existing.is_some_and(|c| c.restrict_domains_to_cert)), None))
            (checkbox("enabled", "Enabled", flag(typed.map(|f| &f.enabled), existing.is_none_or(|c| c.enabled)), None))
            details {
                summary { "A filtering service in front of the gateway" }
                (lines("skip_ips", "Skip these hosts in the Received: chain", &skip, None, error_beside(error, "skip_ips", &skip)))
                (checkbox("skip_last_ip", "Skip only the last hop", flag(typed.map(|f| &f.skip_last_ip), existing.is_some_and(|c| c.skip_last_ip)), None))
            }
            (checkbox("allow_broad_range", "Allow a range broader than /16 (IPv4) or /32 (IPv6)", flag(typed.map(|f| &f.allow_broad_range), false), Some("Such a range vouches for a large part of the internet.")))
            div class="actions" {
                button type="submit" { @if existing.is_some() { "Save connector" } @else { "Create connector" } }
            }
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ConnectorForm {
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type")]
    connector_type: String,
    #[serde(default)]
    sender_ips: String,
    #[serde(default)]
    tls_cert_names: String,
    #[serde(default)]
    sender_domains: String,
    #[serde(default)]
    require_tls: Option<String>,
    #[serde(default)]
    restrict_domains_to_ip: Option<String>,
    #[serde(default)]
    restrict_domains_to_cert: Option<String>,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    skip_ips: String,
    #[serde(default)]
    skip_last_ip: Option<String>,
    #[serde(default)]
    allow_broad_range: Option<String>,
}

impl ConnectorForm {
    fn patch(&self, name: Option<String>) -> ConnectorPatch {
        ConnectorPatch {
            name,
            connector_type: Some(self.connector_type.clone()),
            sender_ips: Some(forms::items(&self.sender_ips)),
            tls_cert_names: Some(forms::items(&self.tls_cert_names)),
            sender_domains: Some(forms::items(&self.sender_domains)),
            require_tls: Some(forms::checked(&self.require_tls)),
            restrict_domains_to_ip: Some(forms::checked(&self.restrict_domains_to_ip)),
            restrict_domains_to_cert: Some(forms::checked(&self.restrict_domains_to_cert)),
            enabled: Some(forms::checked(&self.enabled)),
            skip_ips: Some(forms::items(&self.skip_ips)),
            skip_last_ip: Some(forms::checked(&self.skip_last_ip)),
            allow_broad_range: forms::checked(&self.allow_broad_range),
        }
    }
}

/// `POST /t/{t}/connectors`: a new connector.
pub(super) async fn create(
    Extract(console): Extract<Console>,
    session: Session,
    Path(t): Path<String>,
    Form(f): Form<ConnectorForm>,
) -> Response {
    let patch = f.patch(Some(f.name.clone().unwrap_or_default().trim().to_string()));
    let path = format!("/api/v1/tenants/{}/connectors", encode(&t));
    match session
        .api
        .send(Method::POST, &path, serde_json::to_value(&patch).ok())
        .await
    {
        Ok(_) => {
            console.reports.forget(&t);
            Redirect::to(&format!("/t/{}/connectors?done=created", encode(&t))).into_response()
        }
        Err(Failure { status, message }) if form_refusal(status) => {
            render_list(&session, &t, Some(&f), Some((false, message)), status).await
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /t/{t}/connectors/{c}`: the edit form and the removal.
pub(super) async fn edit(session: Session, Path((t, c)): Path<(String, String)>) -> Response {
    render_edit(&session, &t, &c, None, None, StatusCode::OK).await
}

async fn render_edit(
    session: &Session,
    t: &str,
    c: &str,
    typed: Option<&ConnectorForm>,
    message: Option<(bool, String)>,
    status: StatusCode,
) -> Response {
    let path = format!("/api/v1/tenants/{}/connectors/{}", encode(t), encode(c));
    let connector = match session.api.get::<Connector>(&path).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::tenant(session, t, "connectors").await;
    let may = ctx.may("PATCH", "/api/v1/tenants/{t}/connectors/{c}");
    let error = message
        .as_ref()
        .filter(|(ok, _)| !ok)
        .map(|(_, m)| m.as_str());
    let base = format!("/t/{}/connectors/{}", encode(t), encode(c));
    let body = html! {
        @if let Some((ok, text)) = &message { (notice(*ok, text)) }
        @if may {
            (form(session, &base, Some(&connector), typed, error))
            section class="panel" {
                h2 { "Remove" }
                p { "Mail this connector vouches for becomes anonymous again: with reject direct send on, mail from it as the tenant's domains is refused." }
                form method="post" action=(format!("{base}/remove")) class="actions danger" {
                    (csrf(session))
                    label { input type="checkbox" name="confirm" value="yes" required; " Remove connector " (connector.name) }
                    button type="submit" { "Remove" }
                }
            }
        } @else {
            pre { (serde_json::to_string_pretty(&connector).unwrap_or_default()) }
        }
        p { a href=(format!("/t/{}/connectors", encode(t))) { "All connectors" } }
    };
    (
        status,
        page(&ctx, &format!("Connector {}", connector.name), body),
    )
        .into_response()
}

/// `POST /t/{t}/connectors/{c}`: saves the form (`PATCH`).
pub(super) async fn save(
    Extract(console): Extract<Console>,
    session: Session,
    Path((t, c)): Path<(String, String)>,
    Form(f): Form<ConnectorForm>,
) -> Response {
    let path = format!("/api/v1/tenants/{}/connectors/{}", encode(&t), encode(&c));
    match session
        .api
        .send(
            Method::PATCH,
            &path,
            serde_json::to_value(f.patch(None)).ok(),
        )
        .await
    {
        Ok(_) => {
            console.reports.forget(&t);
            Redirect::to(&format!("/t/{}/connectors?done=saved", encode(&t))).into_response()
        }
        Err(Failure { status, message }) if form_refusal(status) => {
            render_edit(&session, &t, &c, Some(&f), Some((false, message)), status).await
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /t/{t}/connectors/{c}/remove` (confirmed).
pub(super) async fn remove(
    Extract(console): Extract<Console>,
    session: Session,
    Path((t, c)): Path<(String, String)>,
    Form(k): Form<Confirm>,
) -> Response {
    if !k.given() {
        let msg = "Tick the box to confirm the removal.".to_string();
        return render_edit(
            &session,
            &t,
            &c,
            None,
            Some((false, msg)),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let path = format!("/api/v1/tenants/{}/connectors/{}", encode(&t), encode(&c));
    match session.api.send(Method::DELETE, &path, None).await {
        Ok(_) => {
            console.reports.forget(&t);
            Redirect::to(&format!("/t/{}/connectors?done=removed", encode(&t))).into_response()
        }
        Err(e) => e.into_response(),
    }
}
