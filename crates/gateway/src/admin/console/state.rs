//! What the console's handlers share.

use std::sync::Arc;

use axum::Router;

use crate::admin::state::State;

use super::login_limit::LoginLimiter;
use super::report_cache::ReportCache;

#[derive(Clone)]
pub(super) struct Console {
    pub(super) state: State,
    /// The admin API's router (bearer routes), called in process.
    pub(super) api: Router,
    pub(super) limiter: Arc<LoginLimiter>,
    /// The Direct Send reports shown recently.
    pub(super) reports: Arc<ReportCache>,
    /// Served over TLS: cookies are `Secure`.
    pub(super) secure: bool,
}
