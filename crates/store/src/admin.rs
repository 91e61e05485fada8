//! Principals of the admin plane (API tokens, stored as argon2 hashes — the store never sees a
//! token itself) and the audit log of every change.

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;

use crate::{Result, Store, StoreError, rfc3339_us};

/// A token's record (never the secret).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    /// `operator`, or per tenant `org-admin`, `org-config`, `mail-flow`, `quarantine-admin`, `viewer`.
    pub role: String,
    pub tenant: Option<String>,
    #[serde(skip)]
    pub hash: String,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked: bool,
}

/// One change made through the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// RFC 3339 UTC.
    pub at: String,
    #[serde(skip)]
    pub at_us: i64,
    /// Tells apart entries of the same microsecond (the listing's cursor holds it).
    #[serde(skip)]
    pub seq: String,
    /// The token's name and id, or `bootstrap` for admin.token.
    pub principal: String,
    /// The client address of the request.
    pub address: String,
    pub tenant: Option<String>,
    /// `METHOD /path`.
    pub action: String,
    /// The node whose API took the change (`[node] name`; absent in entries of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// JSON of the tenant's configuration before and after (null where there is none).
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// id, name, role, tenant, hash, created_at, expires_at, revoked.
type TokenRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    i64,
);
/// The same without the hash.
type TokenListRow = (
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    i64,
);

impl Store {
    pub async fn add_token(&self, t: &TokenRecord) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO tokens (id, name, role, tenant, hash, created_at, expires_at, revoked) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.role)
        .bind(t.tenant.as_deref())
        .bind(&t.hash)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT id, name, role, tenant, hash, created_at, expires_at, revoked FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(id, name, role, tenant, hash, created_at, expires_at, revoked)| TokenRecord {
                id,
                name,
                role,
                tenant,
                hash,
                created_at,
                expires_at,
                revoked: revoked != 0,
            },
        ))
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows: Vec<TokenListRow> = sqlx::query_as(
            "SELECT id, name, role, tenant, created_at, expires_at, revoked FROM tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, name, role, tenant, created_at, expires_at, revoked)| TokenRecord {
                    id,
                    name,
                    role,
                    tenant,
                    hash: String::new(),
                    created_at,
                    expires_at,
                    revoked: revoked != 0,
                },
            )
            .collect())
    }

    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("UPDATE tokens SET revoked = 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("token {id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_audit(&self, e: &AuditEntry) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO audit (at, seq, principal, address, tenant, action, before, after, node) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(e.at_us)
        .bind(format!("{:08x}", rand_seq()))
        .bind(&e.principal)
        .bind(&e.address)
        .bind(e.tenant.as_deref())
        .bind(&e.action)
        .bind(e.before.as_ref().map(|v| v.to_string()))
        .bind(e.after.as_ref().map(|v| v.to_string()))
        .bind(e.node.as_deref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Newest first; `tenant = None`: every entry (operator view). `before` (`at` in µs, seq)
    /// continues after a previous page's last entry.
    pub async fn list_audit(
        &self,
        tenant: Option<&str>,
        since_us: i64,
        before: Option<(i64, String)>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        // The caller's limit as given (the API bounds it to 1..=100000, and asks one more to
        // learn whether more entries exist).
        let limit = if limit == 0 { 1000 } else { limit };
        let mut sql = String::from(
            "SELECT at, seq, principal, address, tenant, action, before, after, node FROM audit WHERE at >= $1",
        );
        let mut n = 1;
        if tenant.is_some() {
            n += 1;
            sql.push_str(&format!(" AND tenant = ${n}"));
        }
        if let Some((us, _)) = &before {
            n += 1;
            sql.push_str(&format!(" AND (at < {us} OR (at = {us} AND seq < ${n}))"));
        }
        sql.push_str(&format!(" ORDER BY at DESC, seq DESC LIMIT {limit}"));
        let mut q = sqlx::query_as::<_, AuditRow>(AssertSqlSafe(sql)).bind(since_us);
        if let Some(t) = tenant {
            q = q.bind(t.to_string());
        }
        if let Some((_, seq)) = before {
            q = q.bind(seq);
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(
                |(at, seq, principal, address, tenant, action, before, after, node)| AuditEntry {
                    at: rfc3339_us(at),
                    at_us: at,
                    seq,
                    principal,
                    address,
                    tenant,
                    action,
                    before: before.and_then(|s| serde_json::from_str(&s).ok()),
                    after: after.and_then(|s| serde_json::from_str(&s).ok()),
                    node,
                },
            )
            .collect())
    }
}

/// at, seq, principal, address, tenant, action, before, after, node.
type AuditRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn rand_seq() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed) ^ std::process::id().rotate_left(16)
}
