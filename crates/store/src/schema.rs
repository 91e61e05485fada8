//! Migrations: an ordered list of statements, applied once each and recorded in
//! `schema_migrations`. Plain portable SQL, so one list serves both backends.

use sqlx::Executor;

use crate::{Backend, Result, Store};

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE tenants (
            name TEXT PRIMARY KEY,
            settings TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )",
    ),
    (
        2,
        "CREATE TABLE accepted_domains (
            domain TEXT PRIMARY KEY,
            tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
            doc TEXT NOT NULL
        )",
    ),
    (
        3,
        "CREATE TABLE connectors (
            tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
            name TEXT NOT NULL,
            doc TEXT NOT NULL,
            PRIMARY KEY (tenant, name)
        )",
    ),
    (
        4,
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    ),
    (
        5,
        "INSERT INTO meta (key, value) VALUES ('directory_generation', 1)",
    ),
    (
        6,
        "CREATE TABLE trace (
            tenant TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            client_ip TEXT NOT NULL,
            mail_from TEXT NOT NULL,
            message_id TEXT,
            status TEXT NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (tenant, trace_id)
        )",
    ),
    (
        7,
        "CREATE INDEX trace_by_time ON trace (tenant, received_at)",
    ),
    (
        8,
        "CREATE TABLE trace_recipients (
            tenant TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            address TEXT NOT NULL,
            PRIMARY KEY (tenant, trace_id, address)
        )",
    ),
    (
        9,
        "CREATE INDEX trace_recipients_by_address ON trace_recipients (tenant, address)",
    ),
    (
        10,
        "CREATE TABLE rules (
            tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
            name TEXT NOT NULL,
            doc TEXT NOT NULL,
            PRIMARY KEY (tenant, name)
        )",
    ),
    (
        11,
        // BYTEA: PostgreSQL's binary type; SQLite stores blobs as given under any declared type.
        "CREATE TABLE quarantine (
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            reason TEXT NOT NULL,
            mail_from TEXT NOT NULL,
            released BIGINT NOT NULL,
            doc TEXT NOT NULL,
            message BYTEA NOT NULL,
            PRIMARY KEY (tenant, id)
        )",
    ),
    (
        12,
        "CREATE INDEX quarantine_by_expiry ON quarantine (expires_at)",
    ),
    (
        13,
        "CREATE TABLE quarantine_recipients (
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            address TEXT NOT NULL,
            PRIMARY KEY (tenant, id, address)
        )",
    ),
    (
        14,
        "ALTER TABLE trace ADD COLUMN direct_send BIGINT NOT NULL DEFAULT 0",
    ),
    (
        15,
        "CREATE INDEX trace_direct_send ON trace (tenant, direct_send, received_at, trace_id)",
    ),
    (
        16,
        "CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            tenant TEXT,
            hash TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT,
            revoked BIGINT NOT NULL
        )",
    ),
    (
        17,
        "CREATE TABLE audit (
            at BIGINT NOT NULL,
            seq TEXT NOT NULL,
            principal TEXT NOT NULL,
            address TEXT NOT NULL,
            tenant TEXT,
            action TEXT NOT NULL,
            before TEXT,
            after TEXT,
            PRIMARY KEY (at, seq)
        )",
    ),
    (18, "CREATE INDEX audit_by_tenant ON audit (tenant, at)"),
    // The only recipient (lower case) of a record with one, which then has no trace_recipients
    // row: most records (every refusal at RCPT) have one, and the row cost three B-tree inserts.
    (19, "ALTER TABLE trace ADD COLUMN rcpt TEXT"),
    // Every node's waiting messages, kept current by each node, so `queue` on any node sees all.
    (
        20,
        "CREATE TABLE queue_index (
            node TEXT NOT NULL,
            stem TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            doc TEXT NOT NULL,
            PRIMARY KEY (node, stem)
        )",
    ),
    (
        21,
        "CREATE INDEX queue_index_by_trace ON queue_index (trace_id)",
    ),
    // The node that made an audited change (`[node] name`).
    (22, "ALTER TABLE audit ADD COLUMN node TEXT"),
    // Recipient validation (`list`): a tenant's known addresses (lower case; `@domain` is the
    // domain's catch-all), and a version per tenant that every change bumps, so a node reloads
    // only the lists that changed.
    (
        23,
        "CREATE TABLE recipients (
            tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
            address TEXT NOT NULL,
            PRIMARY KEY (tenant, address)
        )",
    ),
    (
        24,
        "CREATE TABLE recipient_lists (
            tenant TEXT PRIMARY KEY REFERENCES tenants(name) ON DELETE CASCADE,
            version BIGINT NOT NULL
        )",
    ),
    // The Direct Send report's rollups: one aggregate per tenant, UTC day and client address
    // (`source_rollup.rs`), kept by the trace writer. Filled from the records already stored by
    // `build_source_rollups` once (meta `trace_sources_built`).
    (
        25,
        "CREATE TABLE trace_sources (
            tenant TEXT NOT NULL,
            day BIGINT NOT NULL,
            client_ip TEXT NOT NULL,
            doc TEXT NOT NULL,
            PRIMARY KEY (tenant, day, client_ip)
        )",
    ),
    // Each trace filter its own index, newest first within it (the listing's order), so the
    // first page and a cursor's next page read about a page of rows at any trace size.
    (
        26,
        "CREATE INDEX trace_by_sender ON trace (tenant, mail_from, received_at)",
    ),
    (
        27,
        "CREATE INDEX trace_by_client_ip ON trace (tenant, client_ip, received_at)",
    ),
    (
        28,
        "CREATE INDEX trace_by_message_id ON trace (tenant, message_id) WHERE message_id IS NOT NULL",
    ),
    (
        29,
        "CREATE INDEX trace_by_status ON trace (tenant, status, received_at)",
    ),
    (
        30,
        "CREATE INDEX trace_by_rcpt ON trace (tenant, rcpt, received_at) WHERE rcpt IS NOT NULL",
    ),
    (
        31,
        "ALTER TABLE trace_recipients ADD COLUMN received_at BIGINT",
    ),
    (
        32,
        "UPDATE trace_recipients SET received_at = (SELECT t.received_at FROM trace t
            WHERE t.tenant = trace_recipients.tenant AND t.trace_id = trace_recipients.trace_id)",
    ),
    (
        33,
        "CREATE INDEX trace_recipients_by_address_time ON trace_recipients (tenant, address, received_at)",
    ),
    (34, "DROP INDEX trace_recipients_by_address"),
    (
        35,
        "CREATE TABLE console_sessions (
            id_hash TEXT PRIMARY KEY,
            principal TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )",
    ),
    (
        36,
        "CREATE INDEX console_sessions_by_principal ON console_sessions (principal)",
    ),
    // Filled by `upsert_traces`; the records of earlier versions are counted by
    // `build_daily_counts` once (meta `trace_daily_built`).
    (
        37,
        "CREATE TABLE trace_daily (
            tenant TEXT NOT NULL,
            day BIGINT NOT NULL,
            status TEXT NOT NULL,
            outcome TEXT NOT NULL,
            messages BIGINT NOT NULL,
            PRIMARY KEY (tenant, day, status, outcome)
        )",
    ),
];

/// Key of the PostgreSQL advisory lock that serializes migrations of nodes starting together.
const MIGRATION_LOCK: i64 = 0x706f_7274_6375;

pub(crate) async fn migrate(store: &Store) -> Result<()> {
    let mut conn = store.pool.acquire().await?;
    match store.backend {
        // WAL lets trace batches and directory reads proceed without blocking each other.
        Backend::Sqlite => {
            conn.execute("PRAGMA journal_mode = WAL").await?;
        }
        Backend::Postgres => {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
    }
    let mut result = apply(&mut conn).await;
    if result.is_ok() {
        result = build_rollups_once(store).await;
    }
    if result.is_ok() {
        result = store.refresh_statistics().await;
    }
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    result
}

/// Fills the rollups from the records stored before they existed, once (under the migration
/// lock: a node of this version writes records only after its own migration, so nothing is
/// counted twice).
async fn build_rollups_once(store: &Store) -> Result<()> {
    let done: Option<(i64,)> =
        sqlx::query_as("SELECT value FROM meta WHERE key = 'trace_sources_built'")
            .fetch_optional(&store.pool)
            .await?;
    if done.is_none() {
        let records = store.build_source_rollups().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ('trace_sources_built', $1)")
            .bind(records as i64)
            .execute(&store.pool)
            .await?;
    }
    let done: Option<(i64,)> =
        sqlx::query_as("SELECT value FROM meta WHERE key = 'trace_daily_built'")
            .fetch_optional(&store.pool)
            .await?;
    if done.is_none() {
        store.build_daily_counts().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ('trace_daily_built', 1)")
            .execute(&store.pool)
            .await?;
    }
    Ok(())
}

async fn apply(conn: &mut sqlx::AnyConnection) -> Result<()> {
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
        .await?;
    for (version, sql) in MIGRATIONS {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let done: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_none() {
            tx.execute(*sql).await?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(*version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}
