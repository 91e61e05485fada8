//! Message trace records (SPEC §6). The JSON form of [`TraceRecord`] is the user-facing contract.
//! The table holds the filterable fields in columns and the rest in `record`, a compact JSON
//! document ([`StoredRecord`]: nothing the columns hold, no empty values), since a flood of
//! refusals writes one record each and their size is most of the cost. Rows written by earlier
//! versions hold the whole record in `record`; both read back the same. The recipient filter
//! finds a record's only recipient in the `rcpt` column and several in `trace_recipients`
//! (a row there costs three B-tree inserts; most records, every refusal at RCPT among them,
//! have one recipient).

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;

use crate::trace_words::{
    DirectSendOutcome, EventKind, RecipientStatus, TraceAttribution, TraceStatus,
};
use crate::{Result, Store, from_json, rfc3339_us, to_json};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceTls {
    pub version: String,
    pub cipher: String,
    pub client_cert_subject: Option<String>,
    pub client_cert_trusted: bool,
    /// Names (CN, DNS SANs) of a trusted client certificate: what attribution compared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_cert_names: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceAuth {
    pub spf: Option<String>,
    pub dkim: Option<String>,
    pub dmarc: Option<String>,
    pub arc: Option<String>,
    pub compauth: Option<String>,
    /// Beyond SPEC §6's summary: what the report and `simulate replay` need to re-decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compauth_reason: Option<u16>,
    /// Signing domains of the passing DKIM signatures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dkim_pass_domains: Vec<String>,
    /// Domain of the newest ARC seal of a passing chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arc_sealer: Option<String>,
    /// `none`, `quarantine`, `reject`, or absent without a DMARC record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmarc_policy: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceRecipient {
    pub address: String,
    #[schema(value_type = String)]
    pub status: RecipientStatus,
    pub reply: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceEvent {
    /// RFC 3339 UTC.
    pub at: String,
    #[schema(value_type = String)]
    pub event: EventKind,
    pub detail: String,
}

/// One record per transaction and tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct TraceRecord {
    pub trace_id: String,
    pub tenant: String,
    /// RFC 3339 UTC.
    pub received_at: String,
    pub client_ip: String,
    /// The load balancer the connection came through, when a PROXY header named the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_ip: Option<String>,
    /// The original client recovered from the `Received:` chain behind a filtering service
    /// (the connector's `skip_ips` / `skip_last_ip`); `client_ip` is the service's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_client_ip: Option<String>,
    pub helo: Option<String>,
    pub tls: Option<TraceTls>,
    /// `<>` for the null sender.
    pub mail_from: String,
    pub header_from: Option<String>,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub size: u64,
    /// `anonymous` or `connector`.
    #[schema(value_type = String)]
    pub attribution: TraceAttribution,
    pub connector: Option<String>,
    pub direct_send: bool,
    pub auth: TraceAuth,
    /// pending | delivered | quarantined | rejected | deferred | failed
    #[schema(value_type = String)]
    pub status: TraceStatus,
    pub recipients: Vec<TraceRecipient>,
    pub events: Vec<TraceEvent>,
    /// What the direct-send rule did to this copy (a direct-send copy only): what the Direct
    /// Send report counts by. Not yet in the published schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub direct_send_outcome: Option<DirectSendOutcome>,
    /// Receive time in microseconds since the epoch: the indexed form of `received_at`.
    #[serde(skip)]
    pub received_at_us: i64,
}

/// The stored document of a record: the fields without a column of their own, empty ones left
/// out (the default of each field is its empty value when read back).
#[derive(Serialize)]
struct StoredRecord<'a> {
    /// Only when it is not the rendering of the `received_at` column (it always is for records
    /// made by the gateway).
    #[serde(skip_serializing_if = "Option::is_none")]
    received_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_client_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    helo: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<&'a TraceTls>,
    /// As received; the column holds it in lower case for the sender filter.
    mail_from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "is_zero")]
    size: u64,
    attribution: &'a TraceAttribution,
    #[serde(skip_serializing_if = "Option::is_none")]
    connector: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direct_send_outcome: Option<&'a DirectSendOutcome>,
    #[serde(skip_serializing_if = "is_empty_auth")]
    auth: &'a TraceAuth,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    recipients: &'a [TraceRecipient],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    events: &'a [TraceEvent],
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_empty_auth(a: &&TraceAuth) -> bool {
    **a == TraceAuth::default()
}

fn stored_json(r: &TraceRecord) -> String {
    let received_at =
        (r.received_at != rfc3339_us(receipt_us(r))).then_some(r.received_at.as_str());
    to_json(&StoredRecord {
        received_at,
        proxy_ip: r.proxy_ip.as_deref(),
        original_client_ip: r.original_client_ip.as_deref(),
        helo: r.helo.as_deref(),
        tls: r.tls.as_ref(),
        mail_from: &r.mail_from,
        header_from: r.header_from.as_deref(),
        subject: r.subject.as_deref(),
        size: r.size,
        attribution: &r.attribution,
        connector: r.connector.as_deref(),
        direct_send_outcome: r.direct_send_outcome.as_ref(),
        auth: &r.auth,
        recipients: &r.recipients,
        events: &r.events,
    })
}

/// A record's receipt time: set once, when it is first written, and never changed by a later
/// state (the conflict clause leaves the column alone). A record that lost its microseconds
/// on the way (one read back from an earlier version's spool file) has them from its text.
fn receipt_us(r: &TraceRecord) -> i64 {
    match r.received_at_us {
        0 => crate::parse_rfc3339_us(&r.received_at).unwrap_or(0),
        us => us,
    }
}

/// The columns every read selects, in [`TraceRow`]'s order (`t` is the trace table).
pub(crate) const TRACE_COLUMNS: &str = "t.tenant, t.trace_id, t.received_at, t.client_ip, t.message_id, t.status, t.direct_send, t.record";
pub(crate) type TraceRow = (
    String,
    String,
    i64,
    String,
    Option<String>,
    String,
    i64,
    String,
);

/// A record from its row: the document (compact, or whole from an earlier version) completed by
/// the columns.
pub(crate) fn decode(
    (tenant, trace_id, at, client_ip, message_id, status, direct_send, doc): TraceRow,
) -> Result<TraceRecord> {
    let mut r: TraceRecord = from_json("trace record", &doc)?;
    if r.received_at.is_empty() {
        r.received_at = rfc3339_us(at);
    }
    r.received_at_us = at;
    r.tenant = tenant;
    r.trace_id = trace_id;
    r.client_ip = client_ip;
    r.message_id = message_id;
    r.status = TraceStatus::parse(&status);
    r.direct_send = direct_send != 0;
    if r.direct_send && r.direct_send_outcome.is_none() {
        r.direct_send_outcome = Some(legacy_direct_send_outcome(&r));
    }
    Ok(r)
}

/// The direct-send outcome of a record written before records named it, from the reply and
/// event texts those versions wrote (frozen: no version writes them without the outcome now).
fn legacy_direct_send_outcome(r: &TraceRecord) -> DirectSendOutcome {
    let event = |kind: EventKind, prefix: &str| {
        r.events
            .iter()
            .any(|e| e.event == kind && e.detail.starts_with(prefix))
    };
    if r.recipients
        .iter()
        .any(|x| x.reply.starts_with("550 5.7.68"))
    {
        DirectSendOutcome::Refused
    } else if event(EventKind::Audit, "would reject") {
        DirectSendOutcome::Audited
    } else if event(EventKind::Audit, "direct send exempted") {
        DirectSendOutcome::Exempted
    } else {
        DirectSendOutcome::Allowed
    }
}

/// Filters of `portcullis trace`. All optional except the tenant.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceQuery {
    pub tenant: String,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub client_ip: Option<String>,
    pub message_id: Option<String>,
    pub status: Option<String>,
    /// Inclusive lower and exclusive upper bound, microseconds since the epoch.
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
    pub limit: u32,
    /// Keyset cursor of the newest-first listing: only records older than this
    /// `(received_at_us, trace_id)` (the last of the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<(i64, String)>,
}

impl Store {
    /// Inserts or replaces a batch of records in one transaction (the trace writer's unit of work).
    pub async fn upsert_traces(&self, records: &[TraceRecord]) -> Result<()> {
        // Multi-row upserts, a chunk of records at a time: a statement per record costs a
        // round trip to the database (SQLite: to its worker thread) each, and a trace batch
        // of refusals is hundreds of records.
        const CHUNK: usize = 50;
        let latest = latest_states(records);
        let mut tx = self.begin_write().await?;
        let mut to_roll_up: Vec<&TraceRecord> = Vec::new();
        // Count changes of the daily rollup, `(tenant, day, status, outcome)` → n.
        let mut daily = Default::default();
        for chunk in latest.chunks(CHUNK) {
            // Before the chunk is written: what its records were counted as (a direct-send
            // record enters the source rollups once; the daily counts follow its status).
            to_roll_up.extend(self.count_chunk(&mut tx, chunk, &mut daily).await?);
            // Each record's recipients, lower case, once each.
            let addresses: Vec<Vec<String>> = chunk
                .iter()
                .map(|r| {
                    let mut seen: Vec<String> = Vec::with_capacity(r.recipients.len());
                    for rcpt in &r.recipients {
                        let a = rcpt.address.to_lowercase();
                        if !seen.contains(&a) {
                            seen.push(a);
                        }
                    }
                    seen
                })
                .collect();
            let mut sql = String::from(
                "INSERT INTO trace (tenant, trace_id, received_at, client_ip, mail_from, message_id, status, record, direct_send, rcpt) VALUES ",
            );
            sql.push_str(&placeholders(self.backend, chunk.len(), 10));
            // A later state of a transaction has the recipients of the earlier ones (delivery
            // adds, never removes), so one with several never needs the earlier single one from
            // the column: its rows hold them all. COALESCE keeps it anyway.
            sql.push_str(
                " ON CONFLICT (tenant, trace_id) DO UPDATE SET \
                 client_ip = excluded.client_ip, mail_from = excluded.mail_from, \
                 message_id = excluded.message_id, status = excluded.status, \
                 record = excluded.record, direct_send = excluded.direct_send, \
                 rcpt = COALESCE(excluded.rcpt, trace.rcpt)",
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (r, addresses) in chunk.iter().zip(&addresses) {
                let only = match addresses.as_slice() {
                    [one] => Some(one.as_str()),
                    _ => None,
                };
                q = q
                    .bind(&r.tenant)
                    .bind(&r.trace_id)
                    .bind(receipt_us(r))
                    .bind(&r.client_ip)
                    .bind(r.mail_from.to_lowercase())
                    .bind(r.message_id.as_deref())
                    .bind(r.status.as_str())
                    .bind(stored_json(r))
                    .bind(i64::from(r.direct_send))
                    .bind(only);
            }
            q.execute(&mut *tx).await?;
            // Rows only for records with several recipients (one is in the `rcpt` column).
            let rows: Vec<(&str, &str, &str, i64)> = chunk
                .iter()
                .zip(&addresses)
                .filter(|(_, addresses)| addresses.len() > 1)
                .flat_map(|(r, addresses)| {
                    let at = receipt_us(r);
                    addresses
                        .iter()
                        .map(move |a| (r.tenant.as_str(), r.trace_id.as_str(), a.as_str(), at))
                })
                .collect();
            for part in rows.chunks(3 * CHUNK) {
                // The recipient index holds every address a transaction ever had (a later
                // state never removes one), so an update only adds rows. The receipt time is
                // there for the recipient filter's time range and order.
                let sql = format!(
                    "INSERT INTO trace_recipients (tenant, trace_id, address, received_at) VALUES {} ON CONFLICT DO NOTHING",
                    placeholders(self.backend, part.len(), 4)
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for (t, id, a, at) in part {
                    q = q.bind(*t).bind(*id).bind(*a).bind(*at);
                }
                q.execute(&mut *tx).await?;
            }
        }
        if !to_roll_up.is_empty() {
            self.roll_up_sources(&mut tx, &to_roll_up).await?;
        }
        self.count_daily(&mut tx, &daily).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Newest first.
    pub async fn query_traces(&self, q: &TraceQuery) -> Result<Vec<TraceRecord>> {
        let mut sql = format!("SELECT {TRACE_COLUMNS} FROM trace t WHERE t.tenant = $1");
        let mut binds: Vec<Bind> = vec![Bind::Text(q.tenant.clone())];
        let mut push = |cond: &str, v: Bind, sql: &mut String| {
            binds.push(v);
            sql.push_str(&cond.replace("$?", &format!("${}", binds.len())));
        };
        if let Some(s) = &q.sender {
            push(
                " AND t.mail_from = $?",
                Bind::Text(s.to_lowercase()),
                &mut sql,
            );
        }
        if let Some(r) = &q.recipient {
            // The single recipient in its column, several in trace_recipients: each found by
            // its own index on (tenant, address, time), within the time range.
            let mut range = String::new();
            if let Some(s) = q.start_us {
                range.push_str(&format!(" AND received_at >= {s}"));
            }
            if let Some(e) = q.end_us {
                range.push_str(&format!(" AND received_at < {e}"));
            }
            push(
                &format!(
                    " AND t.trace_id IN (SELECT trace_id FROM trace WHERE tenant = $1 AND rcpt = $?{range} \
                     UNION SELECT trace_id FROM trace_recipients WHERE tenant = $1 AND address = $?{range})"
                ),
                Bind::Text(r.to_lowercase()),
                &mut sql,
            );
        }
        if let Some(ip) = &q.client_ip {
            push(" AND t.client_ip = $?", Bind::Text(ip.clone()), &mut sql);
        }
        if let Some(m) = &q.message_id {
            push(" AND t.message_id = $?", Bind::Text(m.clone()), &mut sql);
        }
        if let Some(s) = &q.status {
            push(" AND t.status = $?", Bind::Text(s.clone()), &mut sql);
        }
        if let Some(s) = q.start_us {
            push(" AND t.received_at >= $?", Bind::Int(s), &mut sql);
        }
        if let Some(e) = q.end_us {
            push(" AND t.received_at < $?", Bind::Int(e), &mut sql);
        }
        if let Some((us, id)) = &q.before {
            binds.push(Bind::Int(*us));
            let a = binds.len();
            binds.push(Bind::Text(id.clone()));
            let b = binds.len();
            // The first condition lets an index on (…, received_at) seek to the cursor.
            sql.push_str(&format!(
                " AND t.received_at <= ${a} AND (t.received_at < ${a} OR (t.received_at = ${a} AND t.trace_id < ${b}))"
            ));
        }
        // The caller's limit as given (the API bounds it): no silent cap here.
        let limit = if q.limit == 0 { 100 } else { q.limit };
        sql.push_str(&format!(
            " ORDER BY t.received_at DESC, t.trace_id DESC LIMIT {limit}"
        ));
        let mut query = sqlx::query_as::<_, TraceRow>(AssertSqlSafe(sql));
        for b in binds {
            query = match b {
                Bind::Text(s) => query.bind(s),
                Bind::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.into_iter().map(decode).collect()
    }

    pub async fn get_trace(&self, tenant: &str, trace_id: &str) -> Result<Option<TraceRecord>> {
        let sql =
            format!("SELECT {TRACE_COLUMNS} FROM trace t WHERE t.tenant = $1 AND t.trace_id = $2");
        let row: Option<TraceRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(trace_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(decode).transpose()
    }

    /// Deletes records received before `before_us`; returns how many.
    pub async fn purge_traces(&self, before_us: i64) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM trace_recipients WHERE EXISTS (SELECT 1 FROM trace t WHERE t.tenant = trace_recipients.tenant
               AND t.trace_id = trace_recipients.trace_id AND t.received_at < $1)",
        )
        .bind(before_us)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query("DELETE FROM trace WHERE received_at < $1")
            .bind(before_us)
            .execute(&mut *tx)
            .await?;
        // Rollups go by whole days: a day's row goes when the purge has taken all of the day.
        for table in ["trace_sources", "trace_daily"] {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE day < $1")))
                .bind(crate::SourceAgg::day_of(before_us))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected())
    }
}

/// Each record once, in its latest state: a record written twice in one batch (received, then
/// delivered) is the later one.
fn latest_states(records: &[TraceRecord]) -> Vec<&TraceRecord> {
    let mut latest: Vec<&TraceRecord> = Vec::with_capacity(records.len());
    let mut at: std::collections::HashMap<(&str, &str), usize> = Default::default();
    for r in records {
        match at.entry((r.tenant.as_str(), r.trace_id.as_str())) {
            std::collections::hash_map::Entry::Occupied(e) => latest[*e.get()] = r,
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(latest.len());
                latest.push(r);
            }
        }
    }
    latest
}

/// Filters of a streamed trace scan (report, replay).
#[derive(Clone, Debug, Default)]
pub struct TraceScan {
    pub tenant: String,
    pub since_us: i64,
    /// Records received before this time only.
    pub until_us: Option<i64>,
    pub direct_send_only: bool,
}

impl Store {
    /// One page of a scan in receive order; pass the last record's `(received_at_us, trace_id)`
    /// as `after` for the next page. Keyset pagination: memory stays bounded by the page size
    /// however large the trace is.
    pub async fn scan_traces(
        &self,
        scan: &TraceScan,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> Result<Vec<TraceRecord>> {
        let (after_us, after_id) = after.unwrap_or((i64::MIN, String::new()));
        let sql = format!(
            "SELECT {TRACE_COLUMNS} FROM trace t WHERE t.tenant = $1 {} AND t.received_at >= $2
               AND t.received_at < $6
               AND (t.received_at > $3 OR (t.received_at = $3 AND t.trace_id > $4))
             ORDER BY t.received_at, t.trace_id LIMIT $5",
            if scan.direct_send_only {
                "AND t.direct_send = 1"
            } else {
                ""
            }
        );
        let rows: Vec<TraceRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(&scan.tenant)
            .bind(scan.since_us)
            .bind(after_us)
            .bind(after_id)
            .bind(i64::from(limit))
            .bind(scan.until_us.unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(decode).collect()
    }
}

/// `($1, $2), ($3, $4)` for `rows` rows of `cols` values; `(?, ?), (?, ?)` on SQLite, where
/// numbered parameters cost a lookup of each one's name by number, which grows with their count.
pub(crate) fn placeholders(backend: crate::Backend, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            match backend {
                crate::Backend::Sqlite => s.push('?'),
                crate::Backend::Postgres => s.push_str(&format!("${}", r * cols + c + 1)),
            }
        }
        s.push(')');
    }
    s
}

enum Bind {
    Text(String),
    Int(i64),
}

/// For the `trace_json` fuzz target: a stored document read back (as [`Store::query_traces`]
/// reads it) either fails to parse or gives a record that writes back to a document reading
/// back the same record — what the trace shows survives a round trip through the database.
#[doc(hidden)]
pub fn fuzz_trace_doc(doc: &str) {
    let row = |doc: String| -> TraceRow {
        (
            "t".into(),
            "0000000000001AB".into(),
            1_800_000_000_000_000,
            "192.0.2.1".into(),
            None,
            "delivered".into(),
            1,
            doc,
        )
    };
    let Ok(first) = decode(row(doc.to_string())) else {
        return;
    };
    let again = decode(row(stored_json(&first))).expect("a written document reads back");
    assert_eq!(
        first, again,
        "a record changed on its way through the database"
    );
}
