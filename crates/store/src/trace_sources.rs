//! The `trace_sources` rollups: one [`SourceAgg`] per tenant, UTC day and client address of
//! direct-send traffic, kept by [`Store::upsert_traces`] in the transaction that writes the
//! records (a record counts once: when it is first stored as direct send), read by the Direct
//! Send report, dropped with the days the retention purge empties.

use std::collections::BTreeMap;

use sqlx::AssertSqlSafe;

use crate::source_rollup::SourceAgg;
use crate::trace::placeholders;
use crate::{Backend, Result, Store, TraceRecord};

/// `(tenant, day, client_ip)`.
type Key = (String, i64, String);

/// Rows read or written per statement.
const CHUNK: usize = 100;

impl Store {
    /// The placeholder after `n` others: `?` (SQLite binds by position) or `$n+1`.
    pub(crate) fn next_param(&self, n: usize) -> String {
        match self.backend {
            Backend::Sqlite => "?".into(),
            Backend::Postgres => format!("${}", n + 1),
        }
    }

    /// Adds records to the rollups, in the writing transaction. Rows are locked in key order
    /// (PostgreSQL: created empty if missing, then `FOR UPDATE`), so two nodes adding to the same
    /// source wait for each other instead of losing an update.
    pub(crate) async fn roll_up_sources(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        records: &[&TraceRecord],
    ) -> Result<()> {
        let mut deltas: BTreeMap<Key, SourceAgg> = BTreeMap::new();
        for r in records {
            let key = (
                r.tenant.clone(),
                SourceAgg::day_of(r.received_at_us),
                r.client_ip.clone(),
            );
            deltas.entry(key).or_default().add(r);
        }
        let keys: Vec<&Key> = deltas.keys().collect();
        for part in keys.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO trace_sources (tenant, day, client_ip, doc) VALUES {} ON CONFLICT DO NOTHING",
                placeholders(self.backend, part.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (tenant, day, ip) in part {
                q = q.bind(tenant).bind(*day).bind(ip).bind("");
            }
            q.execute(&mut **tx).await?;
        }
        // Per tenant and day, `client_ip IN (…)` (an index lookup each), in key order.
        let mut merged: Vec<(&Key, String)> = Vec::with_capacity(keys.len());
        let mut groups: BTreeMap<(&str, i64), Vec<&Key>> = BTreeMap::new();
        for key in &keys {
            groups.entry((&key.0, key.1)).or_default().push(key);
        }
        for ((tenant, day), group) in groups {
            for part in group.chunks(CHUNK) {
                let sql = format!(
                    "SELECT client_ip, doc FROM trace_sources WHERE client_ip IN {} AND tenant = {} AND day = {} ORDER BY client_ip{}",
                    placeholders(self.backend, 1, part.len()),
                    self.next_param(part.len()),
                    self.next_param(part.len() + 1),
                    match self.backend {
                        Backend::Postgres => " FOR UPDATE",
                        Backend::Sqlite => "",
                    }
                );
                let mut q = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql));
                for (_, _, ip) in part {
                    q = q.bind(ip);
                }
                let stored: BTreeMap<String, String> = q
                    .bind(tenant)
                    .bind(day)
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .collect();
                for key in part {
                    let mut agg = match stored.get(&key.2).map(String::as_str) {
                        Some(doc) if !doc.is_empty() => {
                            crate::from_json::<SourceAgg>("source rollup", doc)?
                        }
                        _ => SourceAgg::default(),
                    };
                    agg.merge(deltas[*key].clone());
                    merged.push((*key, crate::to_json(&agg)));
                }
            }
        }
        for part in merged.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO trace_sources (tenant, day, client_ip, doc) VALUES {} \
                 ON CONFLICT (tenant, day, client_ip) DO UPDATE SET doc = excluded.doc",
                placeholders(self.backend, part.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((tenant, day, ip), doc) in part {
                q = q.bind(tenant).bind(*day).bind(ip).bind(doc);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Calls `f` with each of a tenant's rollups from `from_day` (UTC days since the epoch) on:
    /// `(day, client_ip, agg)`, streamed (a long period of a busy tenant is many rows).
    pub async fn each_source_rollup(
        &self,
        tenant: &str,
        from_day: i64,
        mut f: impl FnMut(i64, &str, SourceAgg),
    ) -> Result<()> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query_as::<_, (i64, String, String)>(
            "SELECT day, client_ip, doc FROM trace_sources WHERE tenant = $1 AND day >= $2 AND doc <> ''",
        )
        .bind(tenant)
        .bind(from_day)
        .fetch(&self.pool);
        while let Some((day, ip, doc)) = rows.try_next().await? {
            f(day, &ip, crate::from_json("source rollup", &doc)?);
        }
        Ok(())
    }

    /// A tenant's rollups from `from_day` on, collected (tests compare them with a scan).
    pub async fn source_rollups(
        &self,
        tenant: &str,
        from_day: i64,
    ) -> Result<Vec<(i64, String, SourceAgg)>> {
        let mut out = Vec::new();
        self.each_source_rollup(tenant, from_day, |day, ip, agg| {
            out.push((day, ip.to_string(), agg))
        })
        .await?;
        Ok(out)
    }

    /// Builds the rollups of the records stored before they existed (once, at the first start of
    /// a version that has them, under the migration lock).
    pub(crate) async fn build_source_rollups(&self) -> Result<u64> {
        let mut after: (String, String) = (String::new(), String::new());
        let mut counted = 0u64;
        loop {
            let page: Vec<crate::trace::TraceRow> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {} FROM trace t WHERE t.direct_send = 1 AND (t.tenant > $1 OR (t.tenant = $1 AND t.trace_id > $2))
                 ORDER BY t.tenant, t.trace_id LIMIT 2000",
                crate::trace::TRACE_COLUMNS
            )))
            .bind(&after.0)
            .bind(&after.1)
            .fetch_all(&self.pool)
            .await?;
            let records: Vec<TraceRecord> = page
                .into_iter()
                .map(crate::trace::decode)
                .collect::<Result<_>>()?;
            let Some(last) = records.last() else {
                return Ok(counted);
            };
            after = (last.tenant.clone(), last.trace_id.clone());
            let refs: Vec<&TraceRecord> = records.iter().collect();
            let mut tx = self.begin_write().await?;
            self.roll_up_sources(&mut tx, &refs).await?;
            tx.commit().await?;
            counted += records.len() as u64;
        }
    }
}
