//! Sessions of the web console: a browser that logged in with an API token holds a random
//! session id in a cookie; the store keeps only its SHA-256 (reading the database does not give
//! a session) with the principal it stands for and its expiry. Shared by every node, so a
//! session made on one is valid on the others, and ended everywhere by logging out or by
//! revoking its token.

use crate::{Result, Store};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsoleSession {
    /// Hex SHA-256 of the session id the cookie holds.
    pub id_hash: String,
    /// `token:<id>` for an API token, `bootstrap:<hex SHA-256 of the token>` for a node's
    /// bootstrap token (valid on the nodes that share that token file).
    pub principal: String,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: i64,
}

impl Store {
    /// Stores a new session, and drops the expired ones (sessions end by time without a
    /// sweeper of their own).
    pub async fn add_console_session(&self, s: &ConsoleSession) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(s.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, principal, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&s.id_hash)
        .bind(&s.principal)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session, unless it is unknown or expired at `now` (Unix seconds).
    pub async fn console_session(&self, id_hash: &str, now: i64) -> Result<Option<ConsoleSession>> {
        let row: Option<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT id_hash, principal, created_at, expires_at FROM console_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(id_hash, principal, created_at, expires_at)| ConsoleSession {
                id_hash,
                principal,
                created_at,
                expires_at,
            },
        ))
    }

    /// Ends one session (logging out).
    pub async fn remove_console_session(&self, id_hash: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of a principal (its token was revoked); returns how many.
    pub async fn remove_console_sessions_of(&self, principal: &str) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM console_sessions WHERE principal = $1")
            .bind(principal)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }
}
