//! `GET /api/v1/config` (`portcullis config show`): the running configuration, defaults filled
//! in, secrets redacted. Operator only: it names listeners, files and the database.

use axum::Json;
use axum::extract::State as Extract;

use super::state::*;

#[utoipa::path(get, path = "/api/v1/config", responses((status = 200, description = "The running configuration, as the configuration file's keys", body = Object)))]
pub(super) async fn show_config(Extract(state): Extract<State>) -> Json<serde_json::Value> {
    Json(state.config.effective())
}
