//! The only SQL in Portcullis. One schema and one set of queries that run unchanged on SQLite (the
//! embedded default) and PostgreSQL, through sqlx's `Any` driver: `$n` placeholders (SQLite accepts
//! them too), `TEXT`/`BIGINT` columns only, booleans and lists inside JSON documents.
//!
//! Every query that touches tenant data is scoped by tenant (tenant isolation invariant).

mod admin;
mod console_sessions;
mod directory;
mod quarantine;
mod queue;
mod recipients;
pub use directory::{Audited, DirectoryData, DirectoryListener};
mod schema;
mod source_rollup;
mod trace;
mod trace_daily;
mod trace_sources;
mod trace_words;

pub use admin::{AuditEntry, TokenRecord};
pub use console_sessions::ConsoleSession;
pub use quarantine::{QuarantineEntry, QuarantineQuery};
pub use queue::QueueIndexRow;
pub use recipients::RecipientChange;
pub use source_rollup::{Kmv, SourceAgg};
pub use trace::{TraceAuth, TraceEvent, TraceQuery, TraceRecipient, TraceRecord, TraceTls};
pub use trace::{TraceScan, fuzz_trace_doc};
pub use trace_daily::DailyCount;
pub use trace_words::{
    DirectSendOutcome, EventKind, RecipientStatus, TraceAttribution, TraceStatus,
};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// Errors of the store, each with the value that caused it so the admin API can name it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named object does not exist (in that tenant).
    #[error("{0} not found")]
    NotFound(String),
    /// The named object exists already.
    #[error("{0} already exists")]
    Conflict(String),
    /// A stored document could not be decoded (written by a newer version, or edited by hand).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The named domain overlaps another tenant's (the text says why, naming no other tenant).
    #[error("{0}")]
    Overlap(String),
    /// No connection to the database within the time allowed.
    #[error("database unreachable: {0}")]
    Unreachable(String),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// What the pool connects to (with `mode=rwc` added for SQLite).
    url: std::sync::Arc<str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Store {
    /// Connects to `sqlite://path` (created if missing) or `postgres://…` and applies migrations,
    /// giving up after 10 s.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_within(url, std::time::Duration::from_secs(10)).await
    }

    /// As [`Store::connect`], giving up when no connection is made within `timeout`; the error
    /// then names the server (host and port), never the password.
    pub async fn connect_within(url: &str, timeout: std::time::Duration) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Corrupt(format!(
                "unsupported storage url {:?} (expected sqlite://… or postgres://…)",
                redacted(url)
            )));
        };
        let url = match backend {
            // Create the file on first start; the rest of the defaults (foreign keys on, busy
            // timeout) are sqlx's.
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            }
            _ => url.to_string(),
        };
        let max = if backend == Backend::Sqlite { 4 } else { 8 };
        let pool = match AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(timeout)
            .connect(&url)
            .await
        {
            Ok(pool) => pool,
            Err(sqlx::Error::PoolTimedOut) => {
                return Err(StoreError::Unreachable(format!(
                    "no connection to {} within {}",
                    server_of(&url),
                    humantime_secs(timeout)
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let store = Store {
            pool,
            backend,
            url: url.into(),
        };
        schema::migrate(&store).await?;
        Ok(store)
    }

    /// A handle for one background writer (the trace writer): a connection of its own, opened
    /// from the calling thread, whose commits do not wait for the disk. SQLite:
    /// `synchronous = NORMAL` — in WAL mode a commit is on disk at the next checkpoint, or with
    /// the next commit of another connection (those keep `FULL`) — a page cache of up to 128 MiB
    /// and a WAL checkpoint every 64 MiB: the writer inserts into eight B-trees (the trace, its
    /// filter indexes, the rollups), most with random keys, and with 16 MiB and the default
    /// checkpoint it read pages back through the kernel batch after batch (`perf`; 2,466 →
    /// 2,725 records/s over a 400,000-record fill with `trace_fill`). PostgreSQL:
    /// `synchronous_commit = off` (on disk within `wal_writer_delay`). Either way a crash of the
    /// process loses nothing committed; a crash of the host can lose the last moments' commits,
    /// never leave the database inconsistent.
    ///
    /// SQLite runs each connection on a thread of its own, started here: it inherits the calling
    /// thread's scheduling priority (Linux keeps nice values per thread).
    pub async fn background_writer(&self) -> Result<Store> {
        let backend = self.backend;
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    match backend {
                        Backend::Sqlite => {
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA cache_size = -131072").await?;
                            conn.execute("PRAGMA wal_autocheckpoint = 16384").await?;
                        }
                        Backend::Postgres => {
                            conn.execute("SET synchronous_commit = off").await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&self.url)
            .await?;
        Ok(Store {
            pool,
            backend,
            url: self.url.clone(),
        })
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that read first cannot upgrade once another
    /// writer (the trace batcher) committed, and fails with "database is locked" at once instead
    /// of waiting out the busy timeout.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Refreshes the query planner's statistics (SQLite: `ANALYZE` over a bounded sample, a few
    /// ms at any size). Without them SQLite walks the time index of a tenant's whole trace for a
    /// rare message-id or recipient instead of using that filter's own index (0.9 s against
    /// 0.1 ms at a million records). PostgreSQL's autovacuum keeps its own.
    pub async fn refresh_statistics(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            use sqlx::Executor;
            let mut conn = self.pool.acquire().await?;
            conn.execute("PRAGMA analysis_limit = 1000").await?;
            conn.execute("ANALYZE").await?;
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// RFC 3339 UTC with microseconds (`2026-11-29T21:40:53.123456Z`) of a time in microseconds
/// since the epoch: how every stored time is shown, and how the gateway writes `received_at`
/// (so the trace's compact form can leave it to the column). Empty if out of range.
pub fn rfc3339_us(us: i64) -> String {
    // to_rfc3339_opts writes the digits directly; format() parses its pattern on every call
    // (a visible share of a refusal's cost: each trace record renders two or three times).
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// Microseconds since the epoch of an RFC 3339 time (the inverse of [`rfc3339_us`]); `None`
/// if it is not one.
pub fn parse_rfc3339_us(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// A storage URL fit to print: its password, if any, replaced by `***`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The `host:port` (or file) a storage URL names, for errors.
fn server_of(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redacted(url);
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match scheme {
        "sqlite" => rest.split('?').next().unwrap_or(rest).to_string(),
        _ if host.is_empty() => "the default PostgreSQL server".into(),
        _ if host.contains(':') => host.to_string(),
        _ => format!("{host}:5432"),
    }
}

fn humantime_secs(d: std::time::Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("directory values always serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl Store {
    /// Runs one administrative statement (tests create and drop scratch databases with it).
    #[doc(hidden)]
    pub async fn execute_admin(&self, sql: &str) -> Result<()> {
        use sqlx::Executor;
        self.pool
            .execute(sqlx::AssertSqlSafe(sql.to_string()))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_with_microseconds() {
        assert_eq!(super::rfc3339_us(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            super::rfc3339_us(1_796_074_853_123_456),
            "2026-11-30T21:40:53.123456Z"
        );
        assert_eq!(super::rfc3339_us(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(super::rfc3339_us(i64::MAX), "");
    }
}
