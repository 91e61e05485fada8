//! The page shell (navigation by role, the operator's tenant switcher, the logout form) and the
//! small pieces every page uses: times, status words, notices, error pages. maud escapes every
//! value it renders: subjects, names, headers and rule texts are attacker-controlled.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::api_types::encode;

use super::api::Failure;
use super::assets;
use super::session::Session;

/// What a page is rendered for: who, which tenant, which entry of the navigation.
pub(super) struct Ctx<'a> {
    pub(super) session: &'a Session,
    pub(super) tenant: Option<&'a str>,
    /// The operator's tenants, for the switcher (empty for a tenant role).
    pub(super) tenants: Vec<String>,
    pub(super) section: &'static str,
}

impl<'a> Ctx<'a> {
    /// The context of a tenant's page; the operator's switcher lists the tenants.
    pub(super) async fn tenant(
        session: &'a Session,
        tenant: &'a str,
        section: &'static str,
    ) -> Ctx<'a> {
        let tenants = operator_tenants(session).await;
        Ctx {
            session,
            tenant: Some(tenant),
            tenants,
            section,
        }
    }

    /// The context of an operator page.
    pub(super) async fn operator(session: &'a Session, section: &'static str) -> Ctx<'a> {
        let tenants = operator_tenants(session).await;
        Ctx {
            session,
            tenant: None,
            tenants,
            section,
        }
    }

    /// May the principal call `method template` (the API's role table) for this page's tenant?
    /// Forms for what it may not do are not shown (the API refuses them anyway).
    pub(super) fn may(&self, method: &str, template: &str) -> bool {
        self.session.api.may(method, template, self.tenant)
    }
}

async fn operator_tenants(session: &Session) -> Vec<String> {
    if !session.principal.is_operator() {
        return Vec::new();
    }
    session
        .api
        .get::<Vec<portcullis_policy::Tenant>>("/api/v1/tenants")
        .await
        .map(|ts| ts.into_iter().map(|t| t.name).collect())
        .unwrap_or_default()
}

/// A whole page: head, header with navigation, the content.
pub(super) fn page(ctx: &Ctx, title: &str, content: Markup) -> Markup {
    let p = &ctx.session.principal;
    let nav_link = |href: String, label: &str, key: &str| {
        html! {
            @if ctx.section == key {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(ctx.session.csrf);
                // htmx without inline styles or eval (the CSP allows neither: not even the
                // `style` attribute its settling copies between elements of the same id), and
                // with error answers swapped in like the server-rendered page they are.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"historyCacheSize":0,"attributesToSettle":["class","width","height"],"responseHandling":[{"code":"204","swap":false},{"code":"...","swap":true}]}"#;
                title { (title) " · Portcullis" }
                // No favicon request (a 404 in every page's console).
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(assets::url("console.css"));
                link rel="stylesheet" href=(assets::url("uPlot.min.css"));
                // On every page (cached for a year): htmx does not run scripts of swapped pages.
                script src=(assets::url("uPlot.min.js")) defer {}
                script src=(assets::url("htmx.min.js")) defer {}
                script src=(assets::url("console.js")) defer {}
            }
            body hx-boost="true" {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/" { "Portcullis" }
                    @if !ctx.tenants.is_empty() || p.is_operator() {
                        form class="switch" method="get" action="/switch" {
                            label for="tenant-switch" { "Tenant" }
                            select id="tenant-switch" name="tenant" {
                                @if ctx.tenant.is_none() {
                                    option value="" selected { "—" }
                                }
                                @for t in &ctx.tenants {
                                    @if Some(t.as_str()) == ctx.tenant {
                                        option value=(t) selected { (t) }
                                    } @else {
                                        option value=(t) { (t) }
                                    }
                                }
                            }
                            button type="submit" { "Switch" }
                        }
                    }
                    span class="who" title=(p.name) {
                        (p.role.as_str())
                        @if let Some(t) = &p.tenant { " of " (t) }
                    }
                    form method="post" action="/logout" class="logout" {
                        input type="hidden" name="csrf" value=(ctx.session.csrf);
                        button type="submit" { "Log out" }
                    }
                }
                nav aria-label="Sections" {
                    @if let Some(t) = ctx.tenant {
                        @let base = format!("/t/{}", encode(t));
                        (nav_link(format!("{base}/overview"), "Overview", "overview"))
                        (nav_link(format!("{base}/direct-send"), "Direct Send", "direct-send"))
                        (nav_link(format!("{base}/trace"), "Message trace", "trace"))
                        @if ctx.may("GET", "/api/v1/tenants/{t}/quarantine") {
                            (nav_link(format!("{base}/quarantine"), "Quarantine", "quarantine"))
                        }
                        (nav_link(format!("{base}/settings"), "Settings", "settings"))
                        (nav_link(format!("{base}/domains"), "Domains", "domains"))
                        (nav_link(format!("{base}/connectors"), "Connectors", "connectors"))
                        (nav_link(format!("{base}/rules"), "Rules", "rules"))
                        @if ctx.may("GET", "/api/v1/tenants/{t}/audit") {
                            (nav_link(format!("{base}/audit"), "Audit log", "audit"))
                        }
                    }
                    @if p.is_operator() {
                        span class="sep" aria-hidden="true" {}
                        (nav_link("/operator/tenants".into(), "Tenants", "tenants"))
                        (nav_link("/operator/tokens".into(), "Tokens", "tokens"))
                        (nav_link("/operator/queue".into(), "Queue", "queue"))
                        (nav_link("/operator/audit".into(), "All changes", "audit-all"))
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// A time as the API gives it (RFC 3339, UTC): shown in UTC, turned into the browser's zone by
/// the script, UTC on hover either way.
pub(super) fn time(rfc3339: &str) -> Markup {
    let utc = utc_text(rfc3339);
    html! { time datetime=(rfc3339) title=(utc) { (utc) } }
}

/// `2026-12-08 10:00:00 UTC` from `2026-12-08T10:00:00.123456Z`.
pub(super) fn utc_text(rfc3339: &str) -> String {
    let s = rfc3339.replacen('T', " ", 1);
    let s = match s.find('.') {
        Some(dot) => s[..dot].to_string(),
        None => s.trim_end_matches('Z').to_string(),
    };
    format!("{} UTC", s.trim_end_matches('Z'))
}

/// The wire word of a setting's value (`off`, `envelope-and-header`, `partner`): its serde
/// name.
pub(super) fn word(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A status word as a badge (`delivered`, `rejected`, …); the word itself says it, the class
/// only colours it.
pub(super) fn badge(word: &str) -> Markup {
    let class = match word {
        "delivered" | "pass" | "likely-legitimate" | "allowed" | "on" => "badge ok",
        "rejected" | "refused" | "failed" | "fail" | "likely-spoofing" => "badge bad",
        "quarantined" | "deferred" | "audited" | "audit" | "would-refuse" | "softfail" => {
            "badge warn"
        }
        _ => "badge",
    };
    html! { span class=(class) { (word) } }
}

/// A notice above a page's content: what an action did, or why it did not.
pub(super) fn notice(ok: bool, text: &str) -> Markup {
    html! {
        @if ok {
            p class="notice ok" role="status" { (text) }
        } @else {
            p class="notice bad" role="alert" { (text) }
        }
    }
}

/// The hidden CSRF field of a form.
pub(super) fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A standalone page (errors, the login form): no navigation, no session.
pub(super) fn bare(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Portcullis" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(assets::url("console.css"));
            }
            body class="bare" {
                main id="main" {
                    p class="brand" { "Portcullis" }
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        let body = bare(
            title,
            html! {
                p class="notice bad" role="alert" { (self.message) }
                p { a href="/" { "Back to the console" } }
            },
        );
        (self.status, body).into_response()
    }
}

/// Plain text with line breaks kept (message previews, header blocks) — escaped like the rest.
pub(super) fn pre(text: &str) -> Markup {
    html! { pre { (text) } }
}
