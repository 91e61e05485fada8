//! The queue index: each node's waiting messages (its spool is its own), as the node last
//! published them, so the `queue` commands of any node can list every node's messages and say
//! which node holds one. A node replaces its own rows only.

use sqlx::AssertSqlSafe;

use crate::trace::placeholders;
use crate::{Result, Store};

/// One waiting message as its node published it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueIndexRow {
    pub node: String,
    /// The spool entry's name, `<trace id>.<tenant>`.
    pub stem: String,
    pub trace_id: String,
    /// The message as `queue list` shows it (JSON).
    pub doc: String,
}

impl Store {
    /// Applies a node's changes to its rows in one transaction: `upserts` (stem, trace id,
    /// document) written, `removed` stems deleted; with `replace_all`, the node's other rows go
    /// first (a start, when the node's earlier rows may be stale).
    pub async fn publish_queue(
        &self,
        node: &str,
        upserts: &[(String, String, String)],
        removed: &[String],
        replace_all: bool,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if replace_all {
            sqlx::query("DELETE FROM queue_index WHERE node = $1")
                .bind(node)
                .execute(&mut *tx)
                .await?;
        }
        for stem in removed {
            sqlx::query("DELETE FROM queue_index WHERE node = $1 AND stem = $2")
                .bind(node)
                .bind(stem)
                .execute(&mut *tx)
                .await?;
        }
        for chunk in upserts.chunks(100) {
            let mut sql =
                String::from("INSERT INTO queue_index (node, stem, trace_id, doc) VALUES ");
            sql.push_str(&placeholders(self.backend, chunk.len(), 4));
            sql.push_str(
                " ON CONFLICT (node, stem) DO UPDATE SET trace_id = excluded.trace_id, doc = excluded.doc",
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (stem, trace_id, doc) in chunk {
                q = q.bind(node).bind(stem).bind(trace_id).bind(doc);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The waiting messages of every node but `except`, by node then stem.
    pub async fn queue_of_other_nodes(&self, except: &str) -> Result<Vec<QueueIndexRow>> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT node, stem, trace_id, doc FROM queue_index WHERE node <> $1 ORDER BY node, stem",
        )
        .bind(except)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(node, stem, trace_id, doc)| QueueIndexRow {
                node,
                stem,
                trace_id,
                doc,
            })
            .collect())
    }

    /// The nodes other than `except` holding the message with this stem or trace id.
    pub async fn queue_holders(&self, except: &str, id: &str) -> Result<Vec<QueueIndexRow>> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT node, stem, trace_id, doc FROM queue_index WHERE node <> $1 AND (stem = $2 OR trace_id = $2) ORDER BY node, stem",
        )
        .bind(except)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(node, stem, trace_id, doc)| QueueIndexRow {
                node,
                stem,
                trace_id,
                doc,
            })
            .collect())
    }
}
