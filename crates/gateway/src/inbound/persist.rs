//! Making a message's accepted copies durable before the `250`: quarantined ones in the store,
//! the others in the spool — all of them or none.

use portcullis_store::QuarantineEntry;

use super::connection::Conn;
use crate::queue::envelope::Envelope;
use crate::queue::spool::Entry;

impl Conn {
    /// Makes every accepted copy durable — quarantined ones in the store, the others in the spool —
    /// or none of them: on any failure what was written is removed and the client gets a 4xx.
    pub(super) async fn persist(
        &self,
        to_quarantine: Vec<(QuarantineEntry, Vec<u8>)>,
        to_store: Vec<(Envelope, Vec<u8>)>,
    ) -> anyhow::Result<Vec<Entry>> {
        let store = &self.shared.store;
        let mut held: Vec<&QuarantineEntry> = Vec::new();
        let mut failure = None;
        for (entry, message) in &to_quarantine {
            match store.put_quarantine(entry, message).await {
                Ok(()) => held.push(entry),
                Err(e) => {
                    failure = Some(anyhow::Error::from(e));
                    break;
                }
            }
        }
        if failure.is_none() && !to_store.is_empty() {
            let spool = self.shared.spool.clone();
            let stored = tokio::task::spawn_blocking(move || {
                let mut done = Vec::new();
                for (env, msg) in &to_store {
                    match spool.store(env, msg) {
                        Ok(entry) => done.push(entry),
                        Err(e) => {
                            for entry in &done {
                                let _ = spool.remove(entry);
                            }
                            return Err(e);
                        }
                    }
                }
                Ok(done)
            })
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("spool task failed: {e}")));
            match stored {
                Ok(entries) => return Ok(entries),
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            None => Ok(Vec::new()),
            Some(e) => {
                for entry in held {
                    let _ = store.delete_quarantine(&entry.tenant, &entry.id).await;
                }
                Err(e)
            }
        }
    }
}
