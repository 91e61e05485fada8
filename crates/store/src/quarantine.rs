//! The hosted quarantine: held messages with their metadata, per tenant. The message itself is
//! stored in the database (so every node sharing it can release it); `doc` holds the metadata
//! as the admin API shows it, columns hold what filters and expiry need.

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;

use crate::{Result, Store, from_json, to_json};

/// One quarantined copy (the JSON of `portcullis quarantine list/show`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuarantineEntry {
    pub id: String,
    pub tenant: String,
    pub trace_id: String,
    /// RFC 3339 UTC.
    pub received_at: String,
    pub expires_at: String,
    /// Why: `rule:<name>`, `dmarc-quarantine`, `spoof`, ...
    pub reason: String,
    /// `<>` for the null sender.
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub header_from: Option<String>,
    pub subject: Option<String>,
    pub size: u64,
    /// A direct-send spoof: only an org admin may release it (tenant setting
    /// `admin_only_release_direct_send`).
    pub admin_only_release: bool,
    pub released_at: Option<String>,
    pub released_by: Option<String>,
    pub released_to: Option<Vec<String>>,
    #[serde(skip)]
    pub received_at_us: i64,
    #[serde(skip)]
    pub expires_at_us: i64,
}

#[derive(Clone, Debug, Default)]
pub struct QuarantineQuery {
    pub tenant: String,
    pub reason: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub limit: u32,
    /// Only entries older than this one (`received_at` in µs, id): the page after it.
    pub before: Option<(i64, String)>,
}

impl Store {
    /// Stores a held message; durable once this returns.
    pub async fn put_quarantine(&self, e: &QuarantineEntry, message: &[u8]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO quarantine (tenant, id, received_at, expires_at, reason, mail_from, released, doc, message)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&e.tenant)
        .bind(&e.id)
        .bind(e.received_at_us)
        .bind(e.expires_at_us)
        .bind(&e.reason)
        .bind(e.mail_from.to_lowercase())
        .bind(0_i64)
        .bind(to_json(e))
        .bind(message.to_vec())
        .execute(&mut *tx)
        .await?;
        let mut seen = std::collections::HashSet::new();
        for r in &e.recipients {
            let a = r.to_lowercase();
            if seen.insert(a.clone()) {
                sqlx::query(
                    "INSERT INTO quarantine_recipients (tenant, id, address) VALUES ($1, $2, $3)",
                )
                .bind(&e.tenant)
                .bind(&e.id)
                .bind(a)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Newest first.
    pub async fn list_quarantine(&self, q: &QuarantineQuery) -> Result<Vec<QuarantineEntry>> {
        let mut sql = String::from("SELECT doc, received_at FROM quarantine q WHERE q.tenant = $1");
        let mut binds = vec![q.tenant.clone()];
        if let Some(r) = &q.reason {
            binds.push(r.clone());
            sql.push_str(&format!(" AND q.reason = ${}", binds.len()));
        }
        if let Some(s) = &q.sender {
            binds.push(s.to_lowercase());
            sql.push_str(&format!(" AND q.mail_from = ${}", binds.len()));
        }
        if let Some(r) = &q.recipient {
            binds.push(r.to_lowercase());
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM quarantine_recipients r WHERE r.tenant = q.tenant AND r.id = q.id AND r.address = ${})",
                binds.len()
            ));
        }
        // Keyset paging: strictly after the cursor in (received_at, id) descending order.
        if let Some((us, id)) = &q.before {
            binds.push(id.clone());
            let n = binds.len();
            sql.push_str(&format!(
                " AND (q.received_at < {us} OR (q.received_at = {us} AND q.id < ${n}))"
            ));
        }
        // The caller's limit as given (the API bounds it): no silent cap here.
        let limit = if q.limit == 0 { 100 } else { q.limit };
        sql.push_str(&format!(
            " ORDER BY q.received_at DESC, q.id DESC LIMIT {limit}"
        ));
        let mut query = sqlx::query_as::<_, (String, i64)>(AssertSqlSafe(sql));
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|(doc, at)| {
                let mut e: QuarantineEntry = from_json("quarantine entry", doc)?;
                e.received_at_us = *at;
                Ok(e)
            })
            .collect()
    }

    pub async fn get_quarantine(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<(QuarantineEntry, Vec<u8>)>> {
        let row: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT doc, message FROM quarantine WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(doc, msg)| Ok((from_json("quarantine entry", &doc)?, msg)))
            .transpose()
    }

    /// Marks an entry released, once: `Ok(false)` when it was released before (or is gone).
    pub async fn mark_released(&self, e: &QuarantineEntry) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("UPDATE quarantine SET released = 1, doc = $1 WHERE tenant = $2 AND id = $3 AND released = 0")
            .bind(to_json(e))
            .bind(&e.tenant)
            .bind(&e.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes an entry; `Ok(false)` when there was none.
    pub async fn delete_quarantine(&self, tenant: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM quarantine_recipients WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM quarantine WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes entries that expired before `now_us`; returns how many.
    pub async fn purge_quarantine(&self, now_us: i64) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM quarantine_recipients WHERE EXISTS (SELECT 1 FROM quarantine q WHERE q.tenant = quarantine_recipients.tenant
               AND q.id = quarantine_recipients.id AND q.expires_at < $1)",
        )
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query("DELETE FROM quarantine WHERE expires_at < $1")
            .bind(now_us)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }
}
