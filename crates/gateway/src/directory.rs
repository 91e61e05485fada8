//! The live directory: the current immutable `policy::Directory` behind an atomic pointer.
//! Admin API writes rebuild it before answering, so a change applies to the very next SMTP
//! transaction; other nodes sharing a PostgreSQL database apply it when its `NOTIFY` arrives,
//! with a poller of the generation as the fallback.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use portcullis_policy::{Connector, ConnectorType, Directory, RecipientList};
use portcullis_store::{DirectoryData, Store};

use crate::config::Service;

pub struct Live {
    current: ArcSwap<Directory>,
    store: Store,
    services: Vec<Service>,
    reload: tokio::sync::Mutex<()>,
}

impl Live {
    pub async fn load(store: Store, services: Vec<Service>) -> anyhow::Result<Arc<Live>> {
        let data = store.load_directory().await?;
        let lists = recipient_lists(&store, None).await?;
        let dir = build(None, data, &services).with_recipients(lists);
        Ok(Arc::new(Live {
            current: ArcSwap::from_pointee(dir),
            store,
            services,
            reload: Default::default(),
        }))
    }

    /// The snapshot to decide with (cheap; hold it for one decision or one transaction).
    pub fn get(&self) -> Arc<Directory> {
        self.current.load_full()
    }

    /// Rebuilds from the store if the generation moved (or always with `force`).
    pub async fn refresh(&self, force: bool) -> anyhow::Result<()> {
        let _guard = self.reload.lock().await;
        if !force && self.store.directory_generation().await? == self.get().version {
            return Ok(());
        }
        let data = self.store.load_directory().await?;
        let previous = self.get();
        let lists = recipient_lists(&self.store, Some(&previous)).await?;
        self.current.store(Arc::new(
            build(Some(&previous), data, &self.services).with_recipients(lists),
        ));
        Ok(())
    }

    /// Applies the changes other nodes announce (PostgreSQL `LISTEN`) as they commit; the poller
    /// stays as the fallback for a listener that dropped. Ends at once on SQLite.
    pub fn spawn_listener(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let live = self.clone();
        tokio::spawn(async move {
            loop {
                match live.store.listen_directory().await {
                    Ok(None) => return,
                    Ok(Some(mut listener)) => {
                        // What changed while nobody listened.
                        let _ = live.refresh(false).await;
                        while listener.changed().await.is_ok() {
                            if let Err(e) = live.refresh(false).await {
                                tracing::warn!("directory refresh failed: {e}");
                            }
                        }
                        tracing::warn!(
                            "directory listener dropped; listening again (polling meanwhile)"
                        );
                    }
                    Err(e) => tracing::warn!("cannot listen for directory changes: {e}"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    /// Polls for changes made by other nodes.
    pub fn spawn_poller(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let live = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = live.refresh(false).await {
                    tracing::warn!("directory refresh failed: {e}");
                }
            }
        })
    }
}

/// Every tenant's recipient list: the previous snapshot's where its version is unchanged, read
/// from the store where it changed (a change to one list of 100,000 addresses reloads that one).
async fn recipient_lists(
    store: &Store,
    previous: Option<&Directory>,
) -> anyhow::Result<HashMap<String, Arc<RecipientList>>> {
    let mut lists = HashMap::new();
    for (tenant, version) in store.recipient_versions().await? {
        let kept = previous
            .and_then(|p| p.recipient_lists().get(&tenant))
            .filter(|l| l.version == version);
        let list = match kept {
            Some(l) => l.clone(),
            None => {
                let (version, entries) = store.load_recipients(&tenant).await?;
                Arc::new(RecipientList::new(version, entries))
            }
        };
        lists.insert(tenant, list);
    }
    Ok(lists)
}

/// Builds the snapshot; trusted services a tenant opted into become connectors named
/// `service:NAME`, so attribution treats them like any other connector.
pub fn build(previous: Option<&Directory>, data: DirectoryData, services: &[Service]) -> Directory {
    let mut connectors = data.connectors;
    for t in &data.tenants {
        for name in &t.settings.trust_services {
            if let Some(s) = services.iter().find(|s| &s.name == name) {
                let mut c = Connector::new(&t.name, &format!("service:{}", s.name));
                c.connector_type = ConnectorType::TrustedService;
                c.sender_ips = s.sender_ips.clone();
                c.tls_cert_names = s.tls_cert_names.clone();
                connectors.push(c);
            }
        }
    }
    Directory::rebuild(
        previous,
        data.generation,
        data.tenants,
        data.domains,
        connectors,
        data.rules,
    )
}
