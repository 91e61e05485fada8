//! The trace writer: SMTP sessions hand records to a channel and never wait on the database;
//! one thread of its own writes them in batches (one transaction per batch). Its own thread, not
//! a task of the sessions' runtime: a batch is milliseconds of serialization and database round
//! trips, which as a task queued every session of its worker behind it (and itself behind them,
//! so the channel filled and sessions waited on the trace under a flood of refusals). Records of
//! one transaction are sent in order (received → delivered), so a later state never gets
//! overwritten by an earlier.

use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::sys::clock::{micros, rfc3339};
use portcullis_store::{EventKind, Store, TraceEvent, TraceRecord};
use tokio::sync::mpsc;

const BATCH: usize = 256;
/// How long a batch waits for more records after its first.
const LINGER: Duration = Duration::from_millis(50);
/// While a batch lingers, the writer looks for new records at this interval instead of waiting
/// on the channel: a waiting receiver is woken by every record sent (a futex wake on the
/// session's worker and a context switch each — under a flood of refusals, tens of thousands a
/// second), a sleeping one by nothing but its timer.
const LINGER_TICK: Duration = Duration::from_millis(2);

enum Msg {
    Record(Box<TraceRecord>),
    /// A record whose sender waits until its batch is committed (`true`) or dropped (`false`).
    Durable(Box<TraceRecord>, tokio::sync::oneshot::Sender<bool>),
    /// Ends the writer once everything queued before it is written.
    Stop,
}

#[derive(Clone)]
pub struct TraceSender {
    tx: mpsc::Sender<Msg>,
    thread: std::sync::Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl TraceSender {
    /// Queues a record. Waits only if the writer is thousands of records behind (back-pressure
    /// instead of unbounded memory).
    pub async fn send(&self, record: TraceRecord) {
        if self.tx.send(Msg::Record(Box::new(record))).await.is_err() {
            tracing::error!("trace writer stopped; record dropped");
        }
    }

    /// Queues a record and waits until it is in the database: for the final state of a message
    /// before its spool entry goes, so a crash in between cannot leave the record behind the
    /// mail. `false` if it could not be written (logged).
    pub async fn send_durable(&self, record: TraceRecord) -> bool {
        let (ack, written) = tokio::sync::oneshot::channel();
        if self
            .tx
            .send(Msg::Durable(Box::new(record), ack))
            .await
            .is_err()
        {
            tracing::error!("trace writer stopped; record dropped");
            return false;
        }
        written.await.unwrap_or(false)
    }

    /// Writes every record queued so far and ends the writer thread, waiting for both (at
    /// shutdown, so no thread is left writing while the process exits). Records sent later are
    /// not written.
    pub async fn stop(&self) {
        let _ = self.tx.send(Msg::Stop).await;
        let thread = self.thread.lock().expect("not poisoned").take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Starts the writer thread; it ends (after writing everything queued) at [`TraceSender::stop`]
/// or when every sender is dropped.
///
/// The thread runs at background priority with a database connection of its own
/// ([`Store::background_writer`]: commits that do not wait for the disk, and SQLite's worker
/// thread started from here, so at the same priority): nobody waits for a trace batch, while
/// every SMTP reply waits for the sessions' workers it would otherwise take turns with. A record
/// that a host crash loses was either a refusal or is in the spool with the message, and its
/// delivery writes it again.
pub async fn start(store: &Store) -> anyhow::Result<TraceSender> {
    let (tx, mut rx) = mpsc::channel::<Msg>(8192);
    let store = store.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let writer = async move {
        crate::sys::priority::background_priority();
        let store = match store.background_writer().await {
            Ok(store) => {
                let _ = ready_tx.send(Ok(()));
                store
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let mut batch = Vec::with_capacity(BATCH);
        let mut acks = Vec::new();
        let mut stopping = false;
        while !stopping {
            match rx.recv().await {
                None | Some(Msg::Stop) => stopping = true,
                Some(Msg::Record(r)) => batch.push(*r),
                Some(Msg::Durable(r, ack)) => {
                    batch.push(*r);
                    acks.push(ack);
                }
            }
            let deadline = tokio::time::Instant::now() + LINGER;
            'linger: while batch.len() < BATCH && !stopping {
                loop {
                    match rx.try_recv() {
                        Ok(Msg::Record(r)) => {
                            batch.push(*r);
                            if batch.len() == BATCH {
                                break 'linger;
                            }
                        }
                        Ok(Msg::Durable(r, ack)) => {
                            batch.push(*r);
                            acks.push(ack);
                            if batch.len() == BATCH {
                                break 'linger;
                            }
                        }
                        Ok(Msg::Stop) | Err(mpsc::error::TryRecvError::Disconnected) => {
                            stopping = true;
                            break 'linger;
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                    }
                }
                // Somebody waits for this batch (a delivery before it removes its spool entry):
                // no lingering; what arrived meanwhile shares the commit.
                if !acks.is_empty() {
                    break;
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    break;
                }
                tokio::time::sleep_until(deadline.min(now + LINGER_TICK)).await;
            }
            let mut attempt = 0;
            let mut written = true;
            while !batch.is_empty()
                && let Err(e) = store.upsert_traces(&batch).await
            {
                attempt += 1;
                tracing::warn!(attempt, records = batch.len(), "trace batch failed: {e}");
                if attempt >= 5 {
                    tracing::error!(
                        records = batch.len(),
                        "trace batch dropped after 5 attempts"
                    );
                    written = false;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            batch.clear();
            for ack in acks.drain(..) {
                let _ = ack.send(written);
            }
        }
        // Its connection (and SQLite's thread for it) ends with the writer, before it is joined.
        store.close().await;
    };
    let thread = std::thread::Builder::new()
        .name("trace-writer".into())
        .spawn(move || runtime.block_on(writer))?;
    ready
        .await
        .context("the trace writer ended while starting")?
        .context("connecting the trace writer to the database")?;
    Ok(TraceSender {
        tx,
        thread: std::sync::Arc::new(std::sync::Mutex::new(Some(thread))),
    })
}

/// This process's `[node] name`, set once at start: the events that say what a node did name
/// it, so an operator of several nodes knows which one to look at.
static NODE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the node name the events carry (once, at start).
pub fn set_node(name: &str) {
    let _ = NODE.set(format!(" [node {name}]"));
}

/// Appends an event of `kind`, stamped now; receipt, refusal, delivery, deferral, failure and
/// release name the node that did it.
pub fn event(record: &mut TraceRecord, kind: EventKind, detail: impl Into<String>) {
    let mut detail = detail.into();
    if matches!(
        kind,
        EventKind::Receive
            | EventKind::Reject
            | EventKind::Deliver
            | EventKind::Defer
            | EventKind::Fail
            | EventKind::Release
    ) && let Some(node) = NODE.get()
    {
        detail.push_str(node);
    }
    record.events.push(TraceEvent {
        at: rfc3339(SystemTime::now()),
        event: kind,
        detail,
    });
}

/// Sortable, unique, filename- and URL-safe: 13 hex digits of microseconds + 8 random.
pub fn new_trace_id() -> String {
    let us = micros(SystemTime::now()) as u64;
    format!("{us:013X}{:08X}", rand::random::<u32>())
}
