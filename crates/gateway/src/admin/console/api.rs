//! The console's calls of the admin API, in process: every page reads and every form writes
//! through the same router, role table, tenant check and audit log as a bearer-token client;
//! the console adds no way around them.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::admin::authorize::InProcess;
use crate::admin::extract::Peer;
use crate::admin::principals::{self, Principal};

/// The API as the logged-in principal calls it.
#[derive(Clone)]
pub(super) struct Api {
    pub(super) router: Router,
    pub(super) principal: Principal,
    /// The browser's address, for the audit log.
    pub(super) peer: Option<Peer>,
}

/// An API answer that was not a success: its status and its `{"error": ...}` text.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

impl Failure {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl Api {
    /// May the principal call `method template` for `tenant`, by the API's role table (what
    /// `authorize` will decide)? Pages leave out the forms it may not use.
    pub(super) fn may(&self, method: &str, template: &str, tenant: Option<&str>) -> bool {
        let Ok(method) = method.parse::<Method>() else {
            return false;
        };
        principals::need(&method, template)
            .is_some_and(|n| principals::allows(&self.principal, n, tenant))
    }

    /// `GET path` (with its query), the body decoded as `T`.
    pub(super) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        let (_, body) = self.call(Method::GET, path, None).await?;
        decode(&body)
    }

    /// `GET path`, with the answer's headers (the paging cursor).
    pub(super) async fn get_page<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(T, Option<String>), Failure> {
        let (headers, body) = self.call(Method::GET, path, None).await?;
        let next = headers
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((decode(&body)?, next))
    }

    /// A change: `method path` with a JSON body; the answer's body (empty for 204).
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Vec<u8>, Failure> {
        self.call(method, path, body).await.map(|(_, b)| b)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(HeaderMap, Vec<u8>), Failure> {
        let mut req = Request::builder().method(method).uri(path);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let mut req = req
            .body(body)
            .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("{path}: {e}")))?;
        req.extensions_mut()
            .insert(InProcess(self.principal.clone()));
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        let resp = match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        // The API's own answers are small but for listings the console asks of a page size.
        let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024)
            .await
            .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if status.is_success() {
            return Ok((headers, bytes.to_vec()));
        }
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(Failure { status, message })
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the API's answer: {e}"),
        )
    })
}
