//! Delivery of spooled copies to the tenant's mailbox store. For now the route is the embedded
//! Maildir tree; the queue shape (spool entry in, trace update out, retry on failure) is the one a
//! downstream SMTP/LMTP route will use.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use crate::spool::{Entry, Spool, deliver_maildir};
use crate::trace::{TraceSender, event};

const CONCURRENCY: usize = 8;
const FIRST_RETRY: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Delivery {
    tx: mpsc::UnboundedSender<Entry>,
    limit: Arc<Semaphore>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl Delivery {
    /// Starts the delivery worker. `pending` are entries recovered from the spool at start.
    pub fn start(
        spool: Spool,
        maildir_root: PathBuf,
        hostname: String,
        trace: TraceSender,
        pending: Vec<Entry>,
    ) -> Delivery {
        let (tx, mut rx) = mpsc::unbounded_channel::<Entry>();
        let worker = Arc::new(Worker {
            spool,
            maildir_root,
            hostname,
            trace,
        });
        let limit = Arc::new(Semaphore::new(CONCURRENCY));
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for entry in pending {
            let _ = tx.send(entry);
        }
        let retry_tx = tx.clone();
        let (worker_limit, worker_stopping) = (limit.clone(), stopping.clone());
        tokio::spawn(async move {
            while let Some(entry) = rx.recv().await {
                let Ok(permit) = worker_limit.clone().acquire_owned().await else {
                    break;
                };
                if worker_stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    // Shutting down: the entry stays in the spool for the next start.
                    break;
                }
                let worker = worker.clone();
                let retry_tx = retry_tx.clone();
                tokio::spawn(async move {
                    worker.deliver(entry, retry_tx).await;
                    drop(permit);
                });
            }
        });
        Delivery {
            tx,
            limit,
            stopping,
        }
    }

    /// Stops taking new work and waits (up to `grace`) for deliveries in flight, so their trace
    /// updates are queued before the trace writer is flushed. Unfinished work stays spooled.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let all = u32::try_from(CONCURRENCY).expect("small");
        if tokio::time::timeout(grace, self.limit.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                "deliveries still running at shutdown; they resume from the spool at the next start"
            );
        }
    }

    pub fn submit(&self, entry: Entry) {
        if self.tx.send(entry).is_err() {
            // Still in the spool: the next start delivers it.
            tracing::warn!("delivery worker stopped; message stays spooled");
        }
    }
}

struct Worker {
    spool: Spool,
    maildir_root: PathBuf,
    hostname: String,
    trace: TraceSender,
}

impl Worker {
    async fn deliver(self: Arc<Self>, entry: Entry, retry: mpsc::UnboundedSender<Entry>) {
        let backoff = FIRST_RETRY;
        let me = self.clone();
        let job = entry.clone();
        let result = tokio::task::spawn_blocking(move || {
            let message = me.spool.read_message(&job)?;
            deliver_maildir(&me.maildir_root, &me.hostname, &job.envelope, &message)?;
            me.spool.remove(&job)?;
            anyhow::Ok(())
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("delivery task failed: {e}")));

        let mut record = entry.envelope.trace.clone();
        match result {
            Ok(()) => {
                for r in record
                    .recipients
                    .iter_mut()
                    .filter(|r| r.status == "pending")
                {
                    r.status = "delivered".into();
                    r.reply = "250 2.0.0 delivered to mailbox".into();
                }
                record.status = "delivered".into();
                event(
                    &mut record,
                    "DELIVER",
                    format!("maildir: {} recipient(s)", entry.envelope.recipients.len()),
                );
                self.trace.send(record).await;
            }
            Err(e) => {
                tracing::warn!(trace_id = %record.trace_id, tenant = %record.tenant, "delivery deferred: {e:#}");
                record.status = "deferred".into();
                event(
                    &mut record,
                    "DEFER",
                    format!(
                        "maildir: {e:#}; retry in {}",
                        humantime::format_duration(backoff)
                    ),
                );
                self.trace.send(record).await;
                tokio::spawn(async move {
                    tokio::time::sleep(backoff).await;
                    let _ = retry.send(entry);
                });
            }
        }
    }
}
