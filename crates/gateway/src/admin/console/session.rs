//! Logging in and out, the session every page runs under, and the checks of every
//! state-changing request (CSRF token, origin). A session stands for the token it was opened
//! with, re-read on every request: revoking the token (on any node) ends it at once.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use portcullis_store::ConsoleSession;

use crate::admin::extract::Peer;
use crate::admin::principals::{Principal, constant_time_eq, sha256_hex};

use super::api::{Api, Failure};
use super::state::Console;

/// The session cookie: a random id, never an API token (the API reads only `Authorization`).
pub(super) const SESSION_COOKIE: &str = "portcullis_session";
/// The login form's double-submit cookie (there is no session to bind its CSRF token to yet).
const LOGIN_COOKIE: &str = "portcullis_login";
/// A session ends this long after the login (or earlier, with its token).
pub(super) const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// The logged-in principal of a request, with its CSRF token and its way to the API.
pub(super) struct Session {
    pub(super) principal: Principal,
    pub(super) csrf: String,
    pub(super) api: Api,
    id_hash: String,
}

impl FromRequestParts<Console> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Session, Response> {
        let login = || {
            let next = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let to = format!("/login?next={}", crate::api_types::encode(&next));
            // A boosted link or form (htmx) would follow a 303 inside the page and swap the
            // login form into it; `HX-Redirect` on a 200 makes htmx navigate to it instead.
            let htmx = parts.headers.get("hx-request").is_some_and(|v| v == "true");
            if htmx && let Ok(v) = HeaderValue::from_str(&to) {
                return ([("hx-redirect", v)], "").into_response();
            }
            Redirect::to(&to).into_response()
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(login());
        };
        let id_hash = sha256_hex(id.as_bytes());
        let now = crate::sys::clock::now_unix();
        let stored = console
            .state
            .store
            .console_session(&id_hash, now)
            .await
            .map_err(|e| {
                Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
            })?;
        let Some(stored) = stored else {
            return Err(login());
        };
        let Some(principal) = console
            .state
            .tokens
            .session_principal(&stored.principal)
            .await
        else {
            // Its token was revoked or expired: the session goes with it.
            let _ = console.state.store.remove_console_session(&id_hash).await;
            return Err(login());
        };
        let peer = parts.extensions.get::<ConnectInfo<Peer>>().map(|c| c.0);
        Ok(Session {
            csrf: csrf_of(id),
            api: Api {
                router: console.api.clone(),
                principal: principal.clone(),
                peer,
            },
            principal,
            id_hash,
        })
    }
}

/// The CSRF token of a session: derived from its id (which only the browser holds; the store has
/// a different hash of it), so it needs no storage of its own.
fn csrf_of(session_id: &str) -> String {
    sha256_hex(format!("csrf:{session_id}").as_bytes())
}

/// A cookie's value from the request's `Cookie` headers.
pub(super) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn set_cookie(console: &Console, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    let secure = if console.secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie text is ASCII")
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// The login form's token, set as a cookie when the form is shown.
pub(super) fn login_form_token(console: &Console) -> (String, HeaderValue) {
    let token = random_hex(16);
    let cookie = set_cookie(console, LOGIN_COOKIE, &token, "/login", 3600);
    (token, cookie)
}

/// Opens a session for `presented`, an API token; `Err` says why not (shown on the form).
pub(super) async fn log_in(
    console: &Console,
    address: Option<IpAddr>,
    presented: &str,
) -> Result<HeaderValue, Failure> {
    if let Some(wait) = address.and_then(|a| console.limiter.blocked(a)) {
        return Err(Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed logins from this address: try again in {} minutes.",
                wait.as_secs().div_ceil(60)
            ),
        ));
    }
    let presented = presented.trim();
    if console.state.tokens.authenticate(presented).await.is_none() {
        if let Some(a) = address {
            console.limiter.failed(a);
        }
        tracing::warn!(address = ?address, "console login refused: wrong, expired or revoked token");
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "That token is not valid: it is wrong, expired or revoked.",
        ));
    }
    let id = format!("s_{}", random_hex(32));
    let now = crate::sys::clock::now_unix();
    let session = ConsoleSession {
        id_hash: sha256_hex(id.as_bytes()),
        principal: console.state.tokens.session_key(presented),
        created_at: now,
        expires_at: now + SESSION_LIFETIME.as_secs() as i64,
    };
    console
        .state
        .store
        .add_console_session(&session)
        .await
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    tracing::info!(address = ?address, principal = %session.principal, "console login");
    Ok(set_cookie(
        console,
        SESSION_COOKIE,
        &id,
        "/",
        SESSION_LIFETIME.as_secs(),
    ))
}

/// Ends the session; the cookie that clears it in the browser.
pub(super) async fn log_out(console: &Console, session: &Session) -> HeaderValue {
    if let Err(e) = console
        .state
        .store
        .remove_console_session(&session.id_hash)
        .await
    {
        tracing::error!("console logout: {e}");
    }
    set_cookie(console, SESSION_COOKIE, "", "/", 0)
}

/// Every request that is not a GET must come from our own pages: from this origin (when the
/// browser names one) and with the CSRF token of its session — the hidden `csrf` field of a form
/// or the `X-CSRF-Token` header of an htmx request; the login form with its double-submit token.
/// Refused with 403 otherwise, before any handler runs.
pub(super) async fn csrf_guard(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let refuse = |why: &str| {
        tracing::warn!(path = %req.uri().path(), "console request refused: {why}");
        Failure::new(StatusCode::FORBIDDEN, why.to_string()).into_response()
    };
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, h)| h);
        if host.is_none() || origin_host != host {
            return refuse("This request came from another site and was refused.");
        }
    }
    let expected = if req.uri().path() == "/login" {
        cookie(req.headers(), LOGIN_COOKIE).map(str::to_string)
    } else {
        cookie(req.headers(), SESSION_COOKIE).map(csrf_of)
    };
    let header_token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1024 * 1024).await else {
        return Failure::new(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")
            .into_response();
    };
    let presented = header_token.or_else(|| {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v)
    });
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    match (expected, presented) {
        (Some(e), Some(p)) if constant_time_eq(e.as_bytes(), p.as_bytes()) => next.run(req).await,
        _ => {
            let _ = req;
            Failure::new(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this console: reload the page and try again.",
            )
            .into_response()
        }
    }
}
