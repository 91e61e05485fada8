//! The queue index: this node publishes its waiting messages to the database every few
//! seconds (changes only), so the `queue` commands of every node sharing it can list them and
//! say which node holds one. The spool stays the truth; the index is a view of it.

use std::collections::HashMap;
use std::time::Duration;

use crate::api_types::{QueueItem, QueueRecipient};
use crate::queue::spool::{Entry, Spool};

/// A spooled entry as `queue list/show` show it, naming the node that holds it.
pub fn queue_item(e: &Entry, default_route: &str, node: &str) -> QueueItem {
    let env = &e.envelope;
    let ts = |us: i64| {
        (us > 0).then(|| {
            crate::sys::clock::rfc3339(
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(us as u64),
            )
        })
    };
    let recipients = if env.state.is_empty() {
        env.recipients
            .iter()
            .map(|a| QueueRecipient {
                address: a.clone(),
                route: default_route.into(),
                status: "pending".into(),
                reply: String::new(),
            })
            .collect()
    } else {
        env.state
            .iter()
            .map(|s| QueueRecipient {
                address: s.address.clone(),
                route: s.route.clone(),
                status: s.status.clone(),
                reply: s.reply.clone(),
            })
            .collect()
    };
    QueueItem {
        id: e.stem.clone(),
        trace_id: env.trace_id.clone(),
        tenant: env.tenant.clone(),
        mail_from: env.mail_from.clone(),
        attempts: env.attempts,
        first_attempt: ts(env.first_attempt_us),
        next_attempt: ts(env.next_attempt_us),
        size: env.trace.size,
        recipients,
        node: Some(node.to_string()),
    }
}

/// How often the index is brought up to date.
const EVERY: Duration = Duration::from_secs(2);

/// Publishes this node's queue until aborted: all of it at start (replacing what an earlier run
/// left), then what changed.
pub fn spawn_publisher(
    store: portcullis_store::Store,
    spool: Spool,
    node: String,
    default_route: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut published: HashMap<String, String> = HashMap::new();
        let mut first = true;
        // The spool's change counter at the last publication: an unchanged spool (an idle
        // queue, or a backlog between retries) is not read again.
        let mut seen = None;
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let changes = spool.changes();
            if seen == Some(changes) {
                continue;
            }
            let spool = spool.clone();
            let entries = match tokio::task::spawn_blocking(move || spool.list()).await {
                Ok(Ok(entries)) => entries,
                Ok(Err(e)) => {
                    tracing::warn!("queue index: cannot list the spool: {e:#}");
                    continue;
                }
                Err(_) => continue,
            };
            let mut now: HashMap<String, (String, String)> = HashMap::new();
            for e in &entries {
                let item = queue_item(e, &default_route, &node);
                let doc = serde_json::to_string(&item).unwrap_or_default();
                now.insert(e.stem.clone(), (e.envelope.trace_id.clone(), doc));
            }
            let upserts: Vec<(String, String, String)> = now
                .iter()
                .filter(|(stem, (_, doc))| published.get(*stem) != Some(doc))
                .map(|(stem, (trace_id, doc))| (stem.clone(), trace_id.clone(), doc.clone()))
                .collect();
            let removed: Vec<String> = published
                .keys()
                .filter(|stem| !now.contains_key(*stem))
                .cloned()
                .collect();
            if !first && upserts.is_empty() && removed.is_empty() {
                seen = Some(changes);
                continue;
            }
            match store.publish_queue(&node, &upserts, &removed, first).await {
                Ok(()) => {
                    first = false;
                    seen = Some(changes);
                    published = now.into_iter().map(|(s, (_, d))| (s, d)).collect();
                }
                Err(e) => tracing::warn!("queue index: cannot publish: {e}"),
            }
        }
    })
}

/// The message a queue id names here: the spool entry's name, or the id of the `250` reply
/// when one entry has it (a message for several tenants has one entry each).
pub fn local_match<'e>(entries: &'e [Entry], id: &str) -> Vec<&'e Entry> {
    match entries.iter().find(|e| e.stem == id) {
        Some(e) => vec![e],
        None => entries
            .iter()
            .filter(|e| e.envelope.trace_id == id)
            .collect(),
    }
}
