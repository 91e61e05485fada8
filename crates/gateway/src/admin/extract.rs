//! Request extraction and error answers: every rejection is `{"error": ...}` naming the value.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_store::StoreError;

use crate::api_types::*;

pub struct ApiErr(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

impl From<StoreError> for ApiErr {
    fn from(e: StoreError) -> ApiErr {
        match e {
            StoreError::NotFound(_) => ApiErr(StatusCode::NOT_FOUND, e.to_string()),
            StoreError::Conflict(_) | StoreError::Overlap(_) => {
                ApiErr(StatusCode::CONFLICT, e.to_string())
            }
            _ => {
                tracing::error!("admin API: {e}");
                ApiErr(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

impl From<anyhow::Error> for ApiErr {
    fn from(e: anyhow::Error) -> ApiErr {
        tracing::error!("admin API: {e:#}");
        ApiErr(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl From<JsonRejection> for ApiErr {
    fn from(r: JsonRejection) -> ApiErr {
        ApiErr(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiErr {
    fn from(r: QueryRejection) -> ApiErr {
        ApiErr(r.status(), r.body_text())
    }
}

impl From<PathRejection> for ApiErr {
    fn from(r: PathRejection) -> ApiErr {
        ApiErr(r.status(), r.body_text())
    }
}

/// The client's address, over plain TCP or TLS (`ConnectInfo<Peer>`), for the audit log.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// A JSON request body: an object (serde would also build a struct from an array), whose
/// rejections (syntax, unknown field, wrong type or content type) answer in the API's own
/// `{"error": ...}` form, like every other error.
pub(super) struct ApiJson<T>(pub(super) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiErr;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiErr> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        object_body(value).map(ApiJson)
    }
}

/// `T` from a request body that must be a JSON object; 422 naming the problem otherwise.
pub(super) fn object_body<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Res<T> {
    if !value.is_object() {
        return Err(ApiErr(
            StatusCode::UNPROCESSABLE_ENTITY,
            "request body: expected a JSON object".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        ApiErr(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("request body: {e}"),
        )
    })
}

/// Query parameters, rejected as `{"error": ...}`.
#[derive(FromRequestParts)]
#[from_request(via(Query), rejection(ApiErr))]
pub(super) struct ApiQuery<T>(pub(super) T);

/// Path parameters, rejected as `{"error": ...}`.
#[derive(FromRequestParts)]
#[from_request(via(Path), rejection(ApiErr))]
pub(super) struct ApiPath<T>(pub(super) T);

pub(super) fn bad(msg: String) -> ApiErr {
    ApiErr(StatusCode::BAD_REQUEST, msg)
}

pub(super) type Res<T> = Result<T, ApiErr>;

/// A page of a listing fetched with one more than `limit`: when the extra item is there, the
/// page is cut to `limit` and the answer says where the next one starts — `X-Next-Cursor` (the
/// cursor of the last item kept, to pass as `cursor`), `Link: <url>; rel="next"` (the same
/// request with that cursor, built by `next_url`) and `X-More-Records: true`. No listing stops
/// silently.
pub fn next_page<T>(
    items: &mut Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
    next_url: impl FnOnce(String) -> String,
) -> axum::http::HeaderMap {
    let mut headers = axum::http::HeaderMap::new();
    if items.len() <= limit as usize {
        return headers;
    }
    items.truncate(limit as usize);
    headers.insert(
        "x-more-records",
        axum::http::HeaderValue::from_static("true"),
    );
    if let Some(last) = items.last() {
        let cursor = cursor_of(last);
        let link = format!("<{}>; rel=\"next\"", next_url(cursor.clone()));
        if let (Ok(c), Ok(l)) = (cursor.parse(), link.parse()) {
            headers.insert("x-next-cursor", c);
            headers.insert(axum::http::header::LINK, l);
        }
    }
    headers
}
