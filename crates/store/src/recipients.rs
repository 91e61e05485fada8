//! The recipients of recipient validation (`list`): per tenant, the addresses its mailbox
//! servers accept, lower case; `@domain` is a domain's catch-all. Kept apart from the directory
//! documents — a tenant may have 100,000 — with a version per tenant, bumped by every change in
//! the change's transaction (with the directory generation, so other nodes notice), so a node
//! reloads only the lists that changed.

use crate::directory::{announce, bump};
use crate::{Result, Store, StoreError};

/// Rows per multi-row statement (two bound values each, well under every backend's limit).
const CHUNK: usize = 500;

/// What a change did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecipientChange {
    /// Addresses that were not in the list before.
    pub added: u64,
    /// Addresses that were in the list and are gone.
    pub removed: u64,
    /// The list's size after the change.
    pub total: u64,
}

impl Store {
    /// Every tenant's list version (tenants that never had a list have none).
    pub async fn recipient_versions(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT tenant, version FROM recipient_lists ORDER BY tenant")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// A tenant's whole list, with its version (read together).
    pub async fn load_recipients(&self, tenant: &str) -> Result<(i64, Vec<String>)> {
        let mut tx = self.pool.begin().await?;
        let version: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM recipient_lists WHERE tenant = $1")
                .bind(tenant)
                .fetch_optional(&mut *tx)
                .await?;
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT address FROM recipients WHERE tenant = $1")
                .bind(tenant)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok((
            version.map_or(0, |(v,)| v),
            rows.into_iter().map(|(a,)| a).collect(),
        ))
    }

    /// One page of a tenant's list in address order: at most `limit` addresses after `after`.
    pub async fn list_recipients(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT address FROM recipients WHERE tenant = $1 AND address > $2 ORDER BY address LIMIT $3",
        )
        .bind(tenant)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }

    /// Adds and removes addresses (already validated and lower case) in one transaction;
    /// `replace` empties the list first (an import of the whole directory). All or nothing.
    pub async fn change_recipients(
        &self,
        tenant: &str,
        add: &[String],
        remove: &[String],
        replace: bool,
    ) -> Result<RecipientChange> {
        let mut tx = self.begin_write().await?;
        let exists: Option<(String,)> = sqlx::query_as("SELECT name FROM tenants WHERE name = $1")
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("tenant {tenant}")));
        }
        let count = async |tx: &mut sqlx::Transaction<'static, sqlx::Any>| -> Result<u64> {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM recipients WHERE tenant = $1")
                .bind(tenant)
                .fetch_one(&mut **tx)
                .await?;
            Ok(n as u64)
        };
        let before = count(&mut tx).await?;
        // A replacement's true changes: the addresses both in the old list and in the new one
        // were neither added nor removed.
        let mut kept = 0u64;
        if replace {
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT address FROM recipients WHERE tenant = $1")
                    .bind(tenant)
                    .fetch_all(&mut *tx)
                    .await?;
            let old: std::collections::HashSet<String> = rows.into_iter().map(|(a,)| a).collect();
            let new: std::collections::HashSet<&String> = add.iter().collect();
            kept = new.iter().filter(|a| old.contains(a.as_str())).count() as u64;
        }
        let mut removed = 0;
        if replace {
            removed = sqlx::query("DELETE FROM recipients WHERE tenant = $1")
                .bind(tenant)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        let mut added = 0;
        for chunk in add.chunks(CHUNK) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("($1, ${})", i + 2))
                .collect();
            let sql = format!(
                "INSERT INTO recipients (tenant, address) VALUES {} ON CONFLICT DO NOTHING",
                values.join(", ")
            );
            // Only numbered placeholders are formatted in; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant);
            for a in chunk {
                q = q.bind(a);
            }
            added += q.execute(&mut *tx).await?.rows_affected();
        }
        for chunk in remove.chunks(CHUNK) {
            let params: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "DELETE FROM recipients WHERE tenant = $1 AND address IN ({})",
                params.join(", ")
            );
            // Only numbered placeholders are formatted in; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant);
            for a in chunk {
                q = q.bind(a);
            }
            removed += q.execute(&mut *tx).await?.rows_affected();
        }
        let total = count(&mut tx).await?;
        if replace {
            added = total.saturating_sub(kept);
            removed = before.saturating_sub(kept);
        }
        sqlx::query(
            "INSERT INTO recipient_lists (tenant, version) VALUES ($1, 1)
             ON CONFLICT (tenant) DO UPDATE SET version = recipient_lists.version + 1",
        )
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
        bump(&mut tx).await?;
        announce(self.backend, &mut tx).await?;
        tx.commit().await?;
        Ok(RecipientChange {
            added,
            removed,
            total,
        })
    }
}
