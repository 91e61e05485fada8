//! The `trace_daily` rollup: per tenant and UTC day, how many records have each status and
//! direct-send outcome — the console's overview charts, at any trace size. Kept by
//! [`Store::upsert_traces`] in the transaction that writes the records: a record counts once, under
//! its current status (a later state moves it from its old status to its new one), so the rollup
//! always equals a `GROUP BY` over the records; dropped with the days the purge empties.

use std::collections::{BTreeMap, HashMap};

use sqlx::AssertSqlSafe;

use crate::source_rollup::SourceAgg;
use crate::trace::{TRACE_COLUMNS, TraceRow, decode, placeholders};
use crate::{Backend, Result, Store, TraceRecord};

/// One cell of the rollup.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct DailyCount {
    /// UTC days since the epoch.
    pub day: i64,
    pub status: String,
    /// The direct-send outcome of direct-send records (`allowed`, `exempted`, `audited`,
    /// `refused`); empty for the others.
    pub outcome: String,
    pub messages: i64,
}

/// What a record was counted as: its status and direct-send outcome (`""` when not direct send).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Counted {
    pub(crate) status: String,
    pub(crate) outcome: String,
    pub(crate) direct_send: bool,
    pub(crate) day: i64,
}

impl Counted {
    pub(crate) fn of(r: &TraceRecord) -> Counted {
        Counted {
            status: r.status.as_str().to_string(),
            outcome: match (&r.direct_send, &r.direct_send_outcome) {
                (true, Some(o)) => o.as_str().to_string(),
                (true, None) => "allowed".to_string(),
                (false, _) => String::new(),
            },
            direct_send: r.direct_send,
            day: SourceAgg::day_of(r.received_at_us),
        }
    }
}

/// `(tenant, day, status, outcome)`: one cell of the rollup.
pub(crate) type Cell = (String, i64, String, String);

/// Cell → change of its count.
pub(crate) type Deltas = BTreeMap<Cell, i64>;

/// [`TRACE_COLUMNS`], the document only of direct-send rows (their outcome is in it): the writer
/// looks up every record it updates, and most updates are deliveries of mail that is not direct
/// send, whose document it need not read.
const STORED_STATE_COLUMNS: &str = "t.tenant, t.trace_id, t.received_at, t.client_ip, t.message_id, t.status, t.direct_send, \
     CASE WHEN t.direct_send = 1 THEN t.record ELSE '' END";

/// Rows read or written per statement.
const CHUNK: usize = 100;

impl Store {
    /// What these records (about to be written) are stored as now, by `(tenant, trace_id)`;
    /// absent: not stored yet. Run in the writing transaction, before the write; on PostgreSQL the
    /// rows are locked, so two nodes writing states of one record count it once.
    async fn stored_states(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        records: &[&TraceRecord],
    ) -> Result<HashMap<(String, String), Counted>> {
        let mut by_tenant: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in records {
            by_tenant.entry(&r.tenant).or_default().push(&r.trace_id);
        }
        let mut out = HashMap::new();
        for (tenant, mut ids) in by_tenant {
            // Locked in one order (tenant, then id) by every writer: two nodes writing states
            // of the same records wait for each other instead of deadlocking.
            ids.sort_unstable();
            for part in ids.chunks(CHUNK) {
                // Per tenant, `trace_id IN (…)`: a primary-key lookup per id (SQLite, without
                // statistics, would prefer another index and read all of the tenant's entries).
                let sql = format!(
                    "SELECT {STORED_STATE_COLUMNS} FROM trace t{} WHERE t.trace_id IN {} AND t.tenant = {} ORDER BY t.trace_id{}",
                    match self.backend {
                        Backend::Sqlite => " INDEXED BY sqlite_autoindex_trace_1",
                        Backend::Postgres => "",
                    },
                    placeholders(self.backend, 1, part.len()),
                    self.next_param(part.len()),
                    match self.backend {
                        Backend::Postgres => " FOR UPDATE",
                        Backend::Sqlite => "",
                    }
                );
                let mut q = sqlx::query_as::<_, TraceRow>(AssertSqlSafe(sql));
                for id in part {
                    q = q.bind(*id);
                }
                for row in q.bind(tenant).fetch_all(&mut **tx).await? {
                    let id = row.1.clone();
                    // Only a direct-send record's document is read (its outcome is in it).
                    let counted = if row.6 != 0 {
                        Counted::of(&decode(row)?)
                    } else {
                        Counted {
                            day: SourceAgg::day_of(row.2),
                            status: row.5,
                            outcome: String::new(),
                            direct_send: false,
                        }
                    };
                    out.insert((tenant.to_string(), id), counted);
                }
            }
        }
        Ok(out)
    }

    /// Before a chunk of records is written: reads what they are stored as now, adds their
    /// changes of the daily counts to `daily` (a record moves from its old status and outcome to
    /// its new ones), and returns the direct-send records not yet stored as direct send — those
    /// whose contribution to the source rollups is still to be added.
    pub(crate) async fn count_chunk<'r>(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        chunk: &[&'r TraceRecord],
        daily: &mut Deltas,
    ) -> Result<Vec<&'r TraceRecord>> {
        let stored = self.stored_states(tx, chunk).await?;
        let mut first_direct_send = Vec::new();
        for r in chunk {
            let new = Counted::of(r);
            let old = stored.get(&(r.tenant.clone(), r.trace_id.clone()));
            if r.direct_send && !old.is_some_and(|o| o.direct_send) {
                first_direct_send.push(*r);
            }
            if old == Some(&new) {
                continue;
            }
            if let Some(o) = old {
                *daily
                    .entry((r.tenant.clone(), o.day, o.status.clone(), o.outcome.clone()))
                    .or_default() -= 1;
            }
            *daily
                .entry((r.tenant.clone(), new.day, new.status, new.outcome))
                .or_default() += 1;
        }
        Ok(first_direct_send)
    }

    /// Adds the changes of counts, in the writing transaction (`messages = messages + n`: no
    /// update of another node is lost).
    pub(crate) async fn count_daily(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        deltas: &Deltas,
    ) -> Result<()> {
        let changes: Vec<(&Cell, &i64)> = deltas.iter().filter(|(_, n)| **n != 0).collect();
        for part in changes.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO trace_daily (tenant, day, status, outcome, messages) VALUES {} \
                 ON CONFLICT (tenant, day, status, outcome) DO UPDATE SET messages = trace_daily.messages + excluded.messages",
                placeholders(self.backend, part.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((tenant, day, status, outcome), n) in part {
                q = q
                    .bind(tenant)
                    .bind(*day)
                    .bind(status)
                    .bind(outcome)
                    .bind(**n);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// A tenant's counts from `from_day` (UTC days since the epoch) on, by day.
    pub async fn daily_counts(&self, tenant: &str, from_day: i64) -> Result<Vec<DailyCount>> {
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT day, status, outcome, messages FROM trace_daily
             WHERE tenant = $1 AND day >= $2 AND messages <> 0 ORDER BY day, status, outcome",
        )
        .bind(tenant)
        .bind(from_day)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(day, status, outcome, messages)| DailyCount {
                day,
                status,
                outcome,
                messages,
            })
            .collect())
    }

    /// Counts the records stored before the rollup existed (once, under the migration lock).
    pub(crate) async fn build_daily_counts(&self) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // Records that are not direct send by SQL; direct-send ones need their outcome, which
        // is in the document.
        sqlx::query(
            "INSERT INTO trace_daily (tenant, day, status, outcome, messages)
             SELECT tenant, received_at / 86400000000, status, '', COUNT(*) FROM trace
             WHERE direct_send = 0 AND received_at >= 0 GROUP BY tenant, received_at / 86400000000, status",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut after: (String, String) = (String::new(), String::new());
        loop {
            let page: Vec<TraceRow> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {TRACE_COLUMNS} FROM trace t WHERE t.direct_send = 1 AND (t.tenant > $1 OR (t.tenant = $1 AND t.trace_id > $2))
                 ORDER BY t.tenant, t.trace_id LIMIT 2000",
            )))
            .bind(&after.0)
            .bind(&after.1)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = (last.0.clone(), last.1.clone());
            let mut deltas = Deltas::new();
            for row in page {
                let r = decode(row)?;
                let c = Counted::of(&r);
                *deltas
                    .entry((r.tenant, c.day, c.status, c.outcome))
                    .or_default() += 1;
            }
            let mut tx = self.begin_write().await?;
            self.count_daily(&mut tx, &deltas).await?;
            tx.commit().await?;
        }
    }
}
