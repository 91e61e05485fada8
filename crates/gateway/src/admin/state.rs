//! The admin API's state: the shared runtime state and the token table, with the lookups
//! every handler group uses.

use std::sync::Arc;

use axum::http::StatusCode;
use portcullis_policy::Tenant;
use portcullis_store::Store;

use crate::admin::principals::Tokens;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::directory::Live;

use super::extract::*;

#[derive(Clone)]
pub struct State {
    pub(super) store: Store,
    pub(super) live: Arc<Live>,
    pub(super) config: Arc<Config>,
    pub(super) auth: Arc<Authenticator>,
    pub(super) tokens: Arc<Tokens>,
    /// Spool, delivery and trace, for releasing quarantined messages.
    pub(super) shared: Arc<crate::shared::Shared>,
}

impl State {
    pub fn new(shared: Arc<crate::shared::Shared>) -> anyhow::Result<State> {
        let (store, live, config, auth) = (
            shared.store.clone(),
            shared.directory.clone(),
            shared.config.clone(),
            shared.auth.clone(),
        );
        let path = config.data_dir.join("admin.token");
        let token = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        Ok(State {
            store,
            live,
            config,
            auth,
            tokens: Arc::new(Tokens::new(
                token.trim().to_string(),
                &shared.config.node_name,
                shared.store.clone(),
            )),
            shared,
        })
    }
}

/// The tenant as of the latest snapshot, or 404.
pub(super) fn tenant(state: &State, name: &str) -> Res<Tenant> {
    state
        .live
        .get()
        .tenant(name)
        .map(|e| e.tenant.clone())
        .ok_or_else(|| ApiErr(StatusCode::NOT_FOUND, format!("tenant {name} not found")))
}

pub(super) async fn changed(state: &State) -> Res<()> {
    state.live.refresh(true).await?;
    Ok(())
}
