//! The same scenarios against a real SQLite file and, where reachable, the local PostgreSQL server
//! (`PORTCULLIS_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`); each PostgreSQL
//! run gets a database of its own.

mod common;

use portcullis_policy::{
    AcceptedDomain, Connector, DomainType, OrgSettings, RejectDirectSend, Tenant,
};
use portcullis_store::{
    DirectSendOutcome, QuarantineEntry, QuarantineQuery, Store, StoreError, TraceAuth, TraceEvent,
    TraceQuery, TraceRecipient, TraceRecord, TraceTls,
};

/// A later state of a record (a retry, a recovery: its receipt microseconds lost on the way
/// through the spool) never changes its receipt time, and a retention purge goes by receipt.
async fn retried_records_keep_their_receipt_time(store: &Store) {
    let received_us = 1_795_988_453_000_000;
    let first = TraceRecord {
        trace_id: "R1".into(),
        tenant: "retain".into(),
        received_at: portcullis_store::rfc3339_us(received_us),
        received_at_us: received_us,
        client_ip: "127.0.0.1".into(),
        mail_from: "a@x.example".into(),
        status: "pending".into(),
        ..Default::default()
    };
    store.upsert_traces(&[first.clone()]).await.unwrap();
    let mut later = first.clone();
    later.received_at_us = 0;
    later.status = "deferred".into();
    later.events.push(TraceEvent {
        at: portcullis_store::rfc3339_us(received_us + 60_000_000),
        event: "DEFER".into(),
        detail: "attempt 1 failed".into(),
    });
    store.upsert_traces(&[later]).await.unwrap();
    // A purge of what is older than a day before the receipt keeps it.
    store
        .purge_traces(received_us - 86_400_000_000)
        .await
        .unwrap();
    let got = store
        .get_trace("retain", "R1")
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(got.received_at_us, received_us);
    assert_eq!(got.received_at, first.received_at);
    assert_eq!(got.status, "deferred");
    // A purge past its receipt removes it.
    store.purge_traces(received_us + 1).await.unwrap();
    assert!(store.get_trace("retain", "R1").await.unwrap().is_none());
}

async fn scenario(store: &Store) {
    retried_records_keep_their_receipt_time(store).await;
    let g0 = store.directory_generation().await.unwrap();
    let t = Tenant {
        name: "contoso".into(),
        settings: OrgSettings::default(),
    };
    store.add_tenant(&t, 1).await.unwrap();
    assert!(matches!(
        store.add_tenant(&t, 1).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .add_tenant(
            &Tenant {
                name: "fabrikam".into(),
                settings: OrgSettings::default(),
            },
            1,
        )
        .await
        .unwrap();

    let d = AcceptedDomain {
        domain: "contoso.com".into(),
        tenant: "contoso".into(),
        domain_type: DomainType::Authoritative,
        match_subdomains: true,
        route: None,
        verification: None,
        recipient_validation: None,
    };
    store.add_domain(&d).await.unwrap();
    let mut other = d.clone();
    other.tenant = "fabrikam".into();
    assert!(
        matches!(store.add_domain(&other).await, Err(StoreError::Conflict(_))),
        "one owner per domain"
    );
    let mut ghost = d.clone();
    ghost.tenant = "nobody".into();
    ghost.domain = "ghost.com".into();
    assert!(matches!(
        store.add_domain(&ghost).await,
        Err(StoreError::NotFound(_))
    ));

    let mut c = Connector::new("contoso", "onprem");
    c.sender_ips = vec![
        "192.0.2.0/24".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
    ];
    store.put_connector(&c, true).await.unwrap();
    assert!(matches!(
        store.put_connector(&c, true).await,
        Err(StoreError::Conflict(_))
    ));
    c.require_tls = true;
    store.put_connector(&c, false).await.unwrap();
    // Tenant isolation: fabrikam cannot touch contoso's connector.
    assert!(matches!(
        store.remove_connector("fabrikam", "onprem").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.remove_domain("fabrikam", "contoso.com").await,
        Err(StoreError::NotFound(_))
    ));

    let s = OrgSettings {
        reject_direct_send: RejectDirectSend::On,
        ..Default::default()
    };
    store.set_org_settings("contoso", &s).await.unwrap();

    let dir = store.load_directory().await.unwrap();
    assert!(dir.generation > g0);
    assert_eq!(dir.tenants.len(), 2);
    assert_eq!(
        dir.tenants[0].settings.reject_direct_send,
        RejectDirectSend::On
    );
    assert_eq!(dir.domains, vec![d.clone()]);
    assert_eq!(dir.connectors, vec![c.clone()]);

    // Trace: upsert, filters, replace, tenant scoping, purge.
    let rec = |id: &str, tenant: &str, at: i64, rcpt: &str, status: &str| TraceRecord {
        trace_id: id.into(),
        tenant: tenant.into(),
        received_at: "2026-01-01T00:00:00Z".into(),
        received_at_us: at,
        client_ip: "127.0.0.1".into(),
        mail_from: "Alice@Contoso.com".into(),
        status: status.into(),
        attribution: "anonymous".into(),
        recipients: vec![TraceRecipient {
            address: rcpt.into(),
            status: status.into(),
            reply: "250".into(),
        }],
        ..Default::default()
    };
    store
        .upsert_traces(&[
            rec("T1", "contoso", 100, "bob@contoso.com", "rejected"),
            rec("T2", "contoso", 200, "carol@contoso.com", "pending"),
            rec("T2", "fabrikam", 200, "dave@fabrikam.com", "pending"),
        ])
        .await
        .unwrap();
    store
        .upsert_traces(&[rec("T2", "contoso", 200, "carol@contoso.com", "delivered")])
        .await
        .unwrap();
    let q = |f: &dyn Fn(&mut TraceQuery)| {
        let mut q = TraceQuery {
            tenant: "contoso".into(),
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let all = store.query_traces(&q(&|_| {})).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.trace_id.as_str()).collect::<Vec<_>>(),
        ["T2", "T1"]
    );
    assert_eq!(all[0].status, "delivered");
    // One batch larger than a statement chunk, with a record twice (the later state wins) and
    // several recipients per record: every record and recipient is findable, once.
    let mut big: Vec<TraceRecord> = (0..250)
        .map(|i| {
            let mut r = rec(
                &format!("B{i:03}"),
                "bulk",
                1000 + i,
                "x@bulk.example",
                "rejected",
            );
            r.recipients.push(TraceRecipient {
                address: format!("r{i}@bulk.example"),
                status: "rejected".into(),
                reply: "550".into(),
            });
            r
        })
        .collect();
    big.push(rec("B007", "bulk", 1007, "x@bulk.example", "delivered"));
    store.upsert_traces(&big).await.unwrap();
    let bulk = |f: &dyn Fn(&mut TraceQuery)| {
        let mut q = TraceQuery {
            tenant: "bulk".into(),
            limit: 1000,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let got = store.query_traces(&bulk(&|_| {})).await.unwrap();
    assert_eq!(got.len(), 250);
    let b7 = got.iter().find(|r| r.trace_id == "B007").unwrap();
    assert_eq!(b7.status, "delivered");
    // The recipient filter finds a record by any of its recipients (the second ones live in
    // trace_recipients), within the time range only; the sender filter pages by cursor.
    let by_rcpt = |rcpt: &str, start: i64, end: i64| {
        let rcpt = rcpt.to_string();
        bulk(&move |q| {
            q.recipient = Some(rcpt.clone());
            q.start_us = Some(start);
            q.end_us = Some(end);
        })
    };
    let found = store
        .query_traces(&by_rcpt("R8@bulk.example", 1000, 1009))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].trace_id, "B008");
    assert!(
        store
            .query_traces(&by_rcpt("r8@bulk.example", 1009, 2000))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .query_traces(&by_rcpt("x@bulk.example", 1100, 1150))
            .await
            .unwrap()
            .len(),
        50
    );
    let page = |before: Option<(i64, String)>| {
        bulk(&move |q| {
            q.sender = Some("alice@contoso.com".into());
            q.limit = 100;
            q.before = before.clone();
        })
    };
    let first = store.query_traces(&page(None)).await.unwrap();
    let last = first.last().unwrap();
    let second = store
        .query_traces(&page(Some((last.received_at_us, last.trace_id.clone()))))
        .await
        .unwrap();
    assert_eq!((first.len(), second.len()), (100, 100));
    assert_eq!(first[0].trace_id, "B249");
    assert_eq!(second[0].trace_id, "B149");
    // Every field survives the stored form (columns plus a compact document), whether empty or
    // filled, and so does a row of an earlier version that kept the whole record as JSON.
    let full = TraceRecord {
        trace_id: "F1".into(),
        tenant: "full".into(),
        received_at: "2026-11-29T21:40:53.123456Z".into(),
        received_at_us: 1_795_988_453_123_456,
        client_ip: "2001:db8::7".into(),
        proxy_ip: Some("10.0.0.5".into()),
        original_client_ip: Some("198.51.100.7".into()),
        helo: Some("mx.partner.example".into()),
        tls: Some(TraceTls {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
            client_cert_subject: Some("CN=mx.partner.example".into()),
            client_cert_trusted: true,
            client_cert_names: vec!["mx.partner.example".into()],
        }),
        mail_from: "Ann@Partner.example".into(),
        header_from: Some("ann@partner.example".into()),
        message_id: Some("<m1@partner.example>".into()),
        subject: Some("Quarterly \"numbers\"".into()),
        size: 5120,
        attribution: "connector".into(),
        connector: Some("partner".into()),
        direct_send: true,
        direct_send_outcome: Some(DirectSendOutcome::Audited),
        auth: TraceAuth {
            spf: Some("pass".into()),
            dkim: Some("pass".into()),
            dmarc: Some("pass".into()),
            arc: Some("none".into()),
            compauth: Some("pass".into()),
            compauth_reason: Some(100),
            dkim_pass_domains: vec!["partner.example".into()],
            arc_sealer: None,
            dmarc_policy: Some("reject".into()),
        },
        status: "delivered".into(),
        recipients: vec![TraceRecipient {
            address: "Bob@Contoso.com".into(),
            status: "delivered".into(),
            reply: "250 2.0.0 ok".into(),
        }],
        events: vec![TraceEvent {
            at: "2026-11-29T21:40:53.200000Z".into(),
            event: "DELIVER".into(),
            detail: "to smtp://127.0.0.1:2525".into(),
        }],
    };
    let empty = TraceRecord {
        trace_id: "F2".into(),
        tenant: "full".into(),
        received_at: "2026-11-29T21:40:54Z".into(),
        received_at_us: 1_795_988_454_000_000,
        client_ip: "127.0.0.1".into(),
        mail_from: "<>".into(),
        status: "rejected".into(),
        ..Default::default()
    };
    store
        .upsert_traces(&[full.clone(), empty.clone()])
        .await
        .unwrap();
    store
        .execute_admin(&format!(
            "INSERT INTO trace (tenant, trace_id, received_at, client_ip, mail_from, message_id, status, record, direct_send)
             VALUES ('full', 'F0', 1795988452000000, '127.0.0.9', 'old@example.org', NULL, 'delivered', '{}', 0)",
            serde_json::to_string(&TraceRecord {
                trace_id: "F0".into(),
                tenant: "full".into(),
                received_at: "2026-11-29T21:40:52Z".into(),
                received_at_us: 1_795_988_452_000_000,
                client_ip: "127.0.0.9".into(),
                mail_from: "old@example.org".into(),
                status: "delivered".into(),
                attribution: "anonymous".into(),
                ..Default::default()
            })
            .unwrap()
        ))
        .await
        .unwrap();
    let got = store
        .query_traces(&TraceQuery {
            tenant: "full".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], empty);
    assert_eq!(got[1], full);
    assert_eq!(got[2].trace_id, "F0");
    assert_eq!(got[2].received_at, "2026-11-29T21:40:52Z");
    assert_eq!(got[2].attribution, "anonymous");
    assert_eq!(
        store.get_trace("full", "F1").await.unwrap(),
        Some(full.clone())
    );
    // B007's earlier state in the same batch is never written (r7 was only in that one).
    for (rcpt, n) in [
        ("x@bulk.example", 250),
        ("r249@bulk.example", 1),
        ("r7@bulk.example", 0),
    ] {
        let found = store
            .query_traces(&bulk(&|q| q.recipient = Some(rcpt.into())))
            .await
            .unwrap();
        assert_eq!(found.len(), n, "{rcpt}");
    }
    let by_rcpt = store
        .query_traces(&q(&|q| q.recipient = Some("BOB@contoso.com".into())))
        .await
        .unwrap();
    assert_eq!(by_rcpt.len(), 1);
    let by_sender = store
        .query_traces(&q(&|q| q.sender = Some("alice@contoso.com".into())))
        .await
        .unwrap();
    assert_eq!(by_sender.len(), 2);
    let by_status = store
        .query_traces(&q(&|q| q.status = Some("rejected".into())))
        .await
        .unwrap();
    assert_eq!(by_status[0].trace_id, "T1");
    let by_time = store
        .query_traces(&q(&|q| q.start_us = Some(150)))
        .await
        .unwrap();
    assert_eq!(by_time.len(), 1);
    assert!(store.get_trace("contoso", "T2").await.unwrap().is_some());
    let foreign = store
        .query_traces(&q(&|q| q.recipient = Some("dave@fabrikam.com".into())))
        .await
        .unwrap();
    assert!(foreign.is_empty(), "tenant isolation");
    assert_eq!(store.purge_traces(150).await.unwrap(), 1);
    assert!(store.get_trace("contoso", "T1").await.unwrap().is_none());
    // A single recipient is kept in the trace row, several in trace_recipients: a later state
    // that adds one (a redirect at delivery) leaves both findable, and so is the recipient of a
    // row written by an earlier version (trace_recipients only).
    let mut redirected = rec("R1", "contoso", 300, "erin@contoso.com", "pending");
    store.upsert_traces(&[redirected.clone()]).await.unwrap();
    redirected.status = "delivered".into();
    redirected.recipients.push(TraceRecipient {
        address: "Frank@Contoso.com".into(),
        status: "delivered".into(),
        reply: "250".into(),
    });
    store.upsert_traces(&[redirected]).await.unwrap();
    store
        .execute_admin(
            "INSERT INTO trace (tenant, trace_id, received_at, client_ip, mail_from, status, record) \
             VALUES ('contoso', 'OLD1', 400, '127.0.0.1', 'x@y.example', 'rejected', \
             '{\"mail_from\":\"x@y.example\",\"attribution\":\"anonymous\"}')",
        )
        .await
        .unwrap();
    store
        .execute_admin(
            "INSERT INTO trace_recipients (tenant, trace_id, address) VALUES ('contoso', 'OLD1', 'gina@contoso.com')",
        )
        .await
        .unwrap();
    for (rcpt, id) in [
        ("erin@contoso.com", "R1"),
        ("FRANK@contoso.com", "R1"),
        ("gina@contoso.com", "OLD1"),
        ("carol@contoso.com", "T2"),
    ] {
        let found = store
            .query_traces(&q(&|q| q.recipient = Some(rcpt.into())))
            .await
            .unwrap();
        let ids: Vec<&str> = found.iter().map(|r| r.trace_id.as_str()).collect();
        assert_eq!(ids, [id], "{rcpt}");
    }

    // Rules: create, conflict, replace, tenant scope, listed with the directory.
    let mut rule: portcullis_policy::rules::Rule = serde_json::from_value(serde_json::json!({
        "tenant": "contoso", "name": "hold", "priority": 1, "actions": ["quarantine"]
    }))
    .unwrap();
    store.put_rule(&rule, true).await.unwrap();
    assert!(matches!(
        store.put_rule(&rule, true).await,
        Err(StoreError::Conflict(_))
    ));
    rule.priority = 5;
    store.put_rule(&rule, false).await.unwrap();
    assert_eq!(
        store.load_directory().await.unwrap().rules,
        vec![rule.clone()]
    );
    assert!(matches!(
        store.remove_rule("fabrikam", "hold").await,
        Err(StoreError::NotFound(_))
    ));

    // Quarantine: binary-safe message, filters, release once, delete, expiry.
    let entry = |id: &str, at: i64, expires: i64| QuarantineEntry {
        id: id.into(),
        tenant: "contoso".into(),
        trace_id: "T9".into(),
        reason: "rule:hold".into(),
        mail_from: "Eve@Evil.example".into(),
        recipients: vec!["bob@contoso.com".into()],
        received_at_us: at,
        expires_at_us: expires,
        ..Default::default()
    };
    let body: Vec<u8> = (0..=255u8)
        .chain(b"Subject: x\r\n\r\nhi".iter().copied())
        .collect();
    store
        .put_quarantine(&entry("Q1", 10, 1000), &body)
        .await
        .unwrap();
    store
        .put_quarantine(&entry("Q2", 20, 50), b"x")
        .await
        .unwrap();
    let q = |f: &dyn Fn(&mut QuarantineQuery)| {
        let mut q = QuarantineQuery {
            tenant: "contoso".into(),
            ..Default::default()
        };
        f(&mut q);
        q
    };
    assert_eq!(store.list_quarantine(&q(&|_| {})).await.unwrap().len(), 2);
    assert_eq!(
        store
            .list_quarantine(&q(&|q| q.sender = Some("eve@evil.example".into())))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .list_quarantine(&q(&|q| q.recipient = Some("BOB@contoso.com".into())))
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .list_quarantine(&q(&|q| q.reason = Some("dmarc".into())))
            .await
            .unwrap()
            .is_empty()
    );
    let (e, msg) = store
        .get_quarantine("contoso", "Q1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg, body, "binary safe");
    assert!(
        store
            .get_quarantine("fabrikam", "Q1")
            .await
            .unwrap()
            .is_none(),
        "tenant isolation"
    );
    assert!(store.mark_released(&e).await.unwrap());
    assert!(!store.mark_released(&e).await.unwrap(), "released once");
    assert_eq!(store.purge_quarantine(100).await.unwrap(), 1, "Q2 expired");
    assert!(store.delete_quarantine("contoso", "Q1").await.unwrap());
    assert!(!store.delete_quarantine("contoso", "Q1").await.unwrap());

    store.remove_tenant("contoso").await.unwrap();
    let dir = store.load_directory().await.unwrap();
    assert_eq!(dir.tenants.len(), 1);
    assert!(dir.domains.is_empty() && dir.connectors.is_empty());
    assert!(matches!(
        store.remove_tenant("contoso").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let store = Store::connect(&url).await.unwrap();
    scenario(&store).await;
    store.close().await;
    // Reopening applies no migration twice and keeps the data.
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.load_directory().await.unwrap().tenants.len(), 1);
}

#[tokio::test]
async fn postgres_server() {
    let Some((admin, url)) = common::scratch_postgres("t").await else {
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    scenario(&store).await;
    store.close().await;
    common::drop_postgres(&admin, &url).await;
}

/// Directory writes racing the trace batcher: every write must wait for the lock, never fail with
/// "database is locked" (a deferred SQLite transaction cannot upgrade after another commit).
#[tokio::test]
async fn concurrent_writers_on_sqlite_wait_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let store = Store::connect(&url).await.unwrap();
    store
        .add_tenant(
            &Tenant {
                name: "contoso".into(),
                settings: OrgSettings::default(),
            },
            1,
        )
        .await
        .unwrap();
    let tracer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                let r = TraceRecord {
                    trace_id: format!("T{i}"),
                    tenant: "contoso".into(),
                    received_at_us: i,
                    recipients: vec![TraceRecipient {
                        address: format!("u{i}@contoso.com"),
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                store.upsert_traces(&[r]).await.unwrap();
            }
        })
    };
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                let name = format!("t{w}-{i}");
                store
                    .add_tenant(
                        &Tenant {
                            name: name.clone(),
                            settings: OrgSettings::default(),
                        },
                        1,
                    )
                    .await
                    .unwrap();
                let d = AcceptedDomain {
                    domain: format!("{name}.example"),
                    tenant: name.clone(),
                    domain_type: DomainType::Authoritative,
                    match_subdomains: false,
                    route: None,
                    verification: None,
                    recipient_validation: None,
                };
                store.add_domain(&d).await.unwrap();
            }
        }));
    }
    tracer.await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(store.load_directory().await.unwrap().tenants.len(), 101);
    let traced = store
        .query_traces(&TraceQuery {
            tenant: "contoso".into(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(traced.len(), 300);
}
