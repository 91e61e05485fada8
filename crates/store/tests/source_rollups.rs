//! The rollups (`trace_sources` of the Direct Send report, `trace_daily` of the console's overview)
//! equal what a full scan of the records gives,
//! on random traffic written the way the trace writer writes it (batches of any size, later
//! states of the same records, a record twice in one batch), after the one-time build from
//! records stored before the rollups existed, and after a retention purge. SQLite file and, where
//! reachable, the local PostgreSQL server.

mod common;

use std::collections::BTreeMap;

use portcullis_store::{
    DirectSendOutcome, SourceAgg, Store, TraceAuth, TraceRecipient, TraceRecord, TraceScan,
    TraceTls,
};

const DAY_US: i64 = 86_400_000_000;
const START_US: i64 = 1_796_000_000_000_000;

/// xorshift64*: reproducible random data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn random_record(rng: &mut Rng, n: usize) -> TraceRecord {
    let tenant = rng.pick(&["contoso", "fabrikam", "tailspin"]);
    let at = START_US + rng.below(6 * DAY_US as u64) as i64;
    let results = ["pass", "fail", "softfail", "neutral", "none", "temperror"];
    let recipients = (0..1 + rng.below(3))
        .map(|_| TraceRecipient {
            address: format!("User{}@{tenant}.example", rng.below(90)),
            ..Default::default()
        })
        .collect();
    TraceRecord {
        trace_id: format!("T{n:06}"),
        tenant: tenant.into(),
        received_at: portcullis_store::rfc3339_us(at),
        received_at_us: at,
        client_ip: format!("192.0.2.{}", rng.below(14)),
        helo: Some(format!("host{}.example", rng.below(5))),
        mail_from: format!("{}@{tenant}.example", rng.pick(&["a", "b", "scanner"])),
        header_from: Some(format!(
            "x@{}",
            rng.pick(&["contoso.example", "other.example"])
        )),
        auth: TraceAuth {
            spf: Some(rng.pick(&results).into()),
            dkim: Some(rng.pick(&results).into()),
            dmarc: Some(rng.pick(&results).into()),
            arc: Some(rng.pick(&["none", "pass", "fail"]).into()),
            arc_sealer: (rng.below(5) == 0).then(|| "sealer.example".into()),
            dkim_pass_domains: (rng.below(3) == 0)
                .then(|| vec![format!("mail.{tenant}.example")])
                .unwrap_or_default(),
            ..Default::default()
        },
        tls: (rng.below(2) == 0).then(|| TraceTls {
            client_cert_names: (rng.below(3) == 0)
                .then(|| vec!["printer.example".to_string()])
                .unwrap_or_default(),
            ..Default::default()
        }),
        recipients,
        direct_send: rng.below(10) < 7,
        direct_send_outcome: Some(match rng.below(4) {
            0 => DirectSendOutcome::Refused,
            1 => DirectSendOutcome::Audited,
            2 => DirectSendOutcome::Exempted,
            _ => DirectSendOutcome::Allowed,
        }),
        status: "pending".into(),
        ..Default::default()
    }
}

/// What adding every stored direct-send record gives, per (day, address).
async fn scanned(store: &Store, tenant: &str) -> BTreeMap<(i64, String), SourceAgg> {
    let mut out: BTreeMap<(i64, String), SourceAgg> = BTreeMap::new();
    let scan = TraceScan {
        tenant: tenant.into(),
        since_us: 0,
        until_us: None,
        direct_send_only: true,
    };
    let mut after = None;
    loop {
        let page = store.scan_traces(&scan, after.clone(), 100).await.unwrap();
        for r in &page {
            out.entry((SourceAgg::day_of(r.received_at_us), r.client_ip.clone()))
                .or_default()
                .add(r);
        }
        match page.last() {
            Some(last) if page.len() == 100 => {
                after = Some((last.received_at_us, last.trace_id.clone()))
            }
            _ => return out,
        }
    }
}

async fn rolled_up(store: &Store, tenant: &str) -> BTreeMap<(i64, String), SourceAgg> {
    store
        .source_rollups(tenant, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|(day, ip, agg)| ((day, ip), agg))
        .collect()
}

/// `(day, status, outcome)` → records, counted from every stored record.
async fn scanned_daily(store: &Store, tenant: &str) -> BTreeMap<(i64, String, String), i64> {
    let mut out = BTreeMap::new();
    let scan = TraceScan {
        tenant: tenant.into(),
        since_us: 0,
        until_us: None,
        direct_send_only: false,
    };
    let mut after = None;
    loop {
        let page = store.scan_traces(&scan, after.clone(), 100).await.unwrap();
        for r in &page {
            let outcome = match (r.direct_send, &r.direct_send_outcome) {
                (true, Some(o)) => o.as_str().to_string(),
                (true, None) => "allowed".into(),
                (false, _) => String::new(),
            };
            *out.entry((
                SourceAgg::day_of(r.received_at_us),
                r.status.as_str().to_string(),
                outcome,
            ))
            .or_default() += 1;
        }
        match page.last() {
            Some(last) if page.len() == 100 => {
                after = Some((last.received_at_us, last.trace_id.clone()))
            }
            _ => return out,
        }
    }
}

async fn assert_equal(store: &Store, when: &str) {
    for tenant in ["contoso", "fabrikam", "tailspin"] {
        let daily: BTreeMap<(i64, String, String), i64> = store
            .daily_counts(tenant, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|c| ((c.day, c.status, c.outcome), c.messages))
            .collect();
        assert_eq!(
            daily,
            scanned_daily(store, tenant).await,
            "{when}: {tenant}: daily counts"
        );
        let (want, got) = (scanned(store, tenant).await, rolled_up(store, tenant).await);
        assert!(!want.is_empty(), "{when}: {tenant} has direct-send traffic");
        assert_eq!(got.len(), want.len(), "{when}: {tenant}: sources per day");
        for (key, agg) in &want {
            assert_eq!(got.get(key), Some(agg), "{when}: {tenant} {key:?}");
        }
    }
}

async fn scenario(url: &str, store: Store) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let records: Vec<TraceRecord> = (0..700).map(|n| random_record(&mut rng, n)).collect();
    // Batches of 1 to 60 in order of arrival; a third of the records written again later with a
    // new state; some twice in one batch.
    let mut pending: Vec<TraceRecord> = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let size = 1 + rng.below(60) as usize;
        let mut batch: Vec<TraceRecord> = records[i..(i + size).min(records.len())].to_vec();
        i += size;
        if rng.below(3) == 0
            && let Some(r) = batch.first().cloned()
        {
            let mut again = r;
            again.status = "delivered".into();
            batch.push(again);
        }
        batch.extend(pending.drain(..));
        for r in &batch {
            if rng.below(3) != 0 {
                continue;
            }
            let mut later = r.clone();
            // Delivery's outcomes (the daily counts move the record to its new status).
            later.status = rng
                .pick(&["deferred", "delivered", "failed", "quarantined"])
                .into();
            pending.push(later);
        }
        store.upsert_traces(&batch).await.unwrap();
    }
    store.upsert_traces(&pending).await.unwrap();
    assert_equal(&store, "as written").await;

    // Records stored before the rollups existed: built once at the next start.
    store
        .execute_admin("DELETE FROM trace_sources")
        .await
        .unwrap();
    store
        .execute_admin("DELETE FROM meta WHERE key = 'trace_sources_built'")
        .await
        .unwrap();
    store
        .execute_admin("DELETE FROM trace_daily")
        .await
        .unwrap();
    store
        .execute_admin("DELETE FROM meta WHERE key = 'trace_daily_built'")
        .await
        .unwrap();
    store.close().await;
    let store = Store::connect(url).await.unwrap();
    assert_equal(&store, "built from the records").await;

    // A purge of the first two days takes their rollups with them.
    store
        .purge_traces(START_US - START_US % DAY_US + 2 * DAY_US)
        .await
        .unwrap();
    assert_equal(&store, "after the purge").await;
    store.close().await;
}

#[tokio::test]
async fn rollups_equal_a_full_scan_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let store = Store::connect(&url).await.unwrap();
    scenario(&url, store).await;
}

#[tokio::test]
async fn rollups_equal_a_full_scan_on_postgres() {
    let Some((admin, url)) = common::scratch_postgres("rollups").await else {
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    scenario(&url, store).await;
    common::drop_postgres(&admin, &url).await;
}
