//! Logging in with an API token, logging out, the start page and the operator's tenant switch.

use axum::Form;
use axum::extract::{ConnectInfo, Query, State as Extract};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::admin::extract::Peer;
use crate::api_types::encode;

use super::api::Failure;
use super::layout::{bare, notice};
use super::session::{self, Session};
use super::state::Console;

#[derive(serde::Deserialize, Default)]
pub(super) struct Next {
    #[serde(default)]
    next: Option<String>,
}

/// Where to go after the login: a path of ours only, never another site (`//host`, `/\\host`,
/// or `/<tab>/host`, which browsers read as `//host` once they drop the tab).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.into()
        }
        _ => "/".into(),
    }
}

/// `GET /login`.
pub(super) async fn form(Extract(console): Extract<Console>, Query(q): Query<Next>) -> Response {
    render_form(&console, q.next.as_deref(), None, StatusCode::OK)
}

fn render_form(
    console: &Console,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (token, cookie) = session::login_form_token(console);
    let next = safe_next(next);
    let body = bare(
        "Log in",
        html! {
            @if let Some(e) = error { (notice(false, e)) }
            form method="post" action="/login" class="login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input id="token" name="token" type="password" autocomplete="off" required autofocus
                    aria-describedby="token-help";
                p id="token-help" class="help" {
                    "A token from " code { "portcullis token create" } ", or the bootstrap token in "
                    code { "admin.token" } " of the data directory. The console never shows it again."
                }
                button type="submit" { "Log in" }
            }
        },
    );
    let mut resp = (status, body).into_response();
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

#[derive(serde::Deserialize)]
pub(super) struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: a session for a valid token; the form again, saying why, otherwise.
pub(super) async fn submit(
    Extract(console): Extract<Console>,
    peer: Option<axum::Extension<ConnectInfo<Peer>>>,
    Form(f): Form<LoginForm>,
) -> Response {
    let address = peer.map(|p| p.0.0.0.ip());
    match session::log_in(&console, address, &f.token).await {
        Ok(cookie) => {
            let mut resp = Redirect::to(&safe_next(f.next.as_deref())).into_response();
            resp.headers_mut().append(header::SET_COOKIE, cookie);
            resp
        }
        Err(Failure { status, message }) => {
            render_form(&console, f.next.as_deref(), Some(&message), status)
        }
    }
}

/// `POST /logout`.
pub(super) async fn logout(Extract(console): Extract<Console>, session: Session) -> Response {
    let cookie = session::log_out(&console, &session).await;
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

/// `GET /`: the tenant's overview; the operator's first tenant, or the tenant list when there
/// is none.
pub(super) async fn home(session: Session) -> Response {
    if let Some(t) = &session.principal.tenant {
        return Redirect::to(&format!("/t/{}/overview", encode(t))).into_response();
    }
    match session
        .api
        .get::<Vec<portcullis_policy::Tenant>>("/api/v1/tenants")
        .await
    {
        Ok(ts) => match ts.first() {
            Some(t) => Redirect::to(&format!("/t/{}/overview", encode(&t.name))).into_response(),
            None => Redirect::to("/operator/tenants").into_response(),
        },
        Err(e) => e.into_response(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct Switch {
    #[serde(default)]
    tenant: String,
}

/// `GET /switch?tenant=T`: the operator's tenant switcher (a plain form: works without script).
pub(super) async fn switch(_session: Session, Query(s): Query<Switch>) -> Response {
    if s.tenant.is_empty() {
        return Redirect::to("/").into_response();
    }
    Redirect::to(&format!("/t/{}/overview", encode(&s.tenant))).into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn the_login_goes_on_to_our_own_paths_only() {
        for (next, want) in [
            (
                Some("/t/contoso/trace?sender=a%40b.example"),
                "/t/contoso/trace?sender=a%40b.example",
            ),
            (None, "/"),
            (Some("https://evil.example/"), "/"),
            (Some("//evil.example/"), "/"),
            (Some("/\\evil.example/"), "/"),
            (Some("/\t/evil.example/"), "/"),
            (Some("/ /evil.example/"), "/"),
            (Some(""), "/"),
        ] {
            assert_eq!(safe_next(next), want, "{next:?}");
        }
    }
}
