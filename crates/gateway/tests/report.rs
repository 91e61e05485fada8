//! The Direct Send report, readiness, connector suggestions and what-if replay over realistic
//! mixed traffic sent through the real SMTP path in audit mode.

mod common;

use common::*;
use portcullis_testdns::sign::DkimKey;

fn msg(from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: bob@contoso.com\r\nSubject: {subject}\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{}@t>\r\n\r\nHello.\r\n",
        subject.replace(' ', "-")
    )
    .into_bytes()
}

/// Sends one message from `ip`; returns the final reply (RCPT refusal or end of DATA).
async fn send(gw: &Gateway, ip: &str, from: &str, message: &[u8]) -> String {
    let mut s = session(gw.smtp, ip).await;
    let r = s
        .mail(
            from,
            &["bob@contoso.com"],
            &String::from_utf8_lossy(message),
        )
        .await;
    r.get(3).cloned().unwrap_or_else(|| r[1].clone())
}

struct Traffic {
    saas: Vec<u8>,
    forwarded: Vec<u8>,
}

/// The mixed traffic, once. Returns the final replies per class.
async fn traffic(gw: &Gateway, t: &Traffic) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for i in 0..3 {
        out.push((
            "printer",
            send(
                gw,
                "127.1.0.20",
                "scanner@contoso.com",
                &msg("scanner@contoso.com", &format!("scan {i}")),
            )
            .await,
        ));
    }
    for _ in 0..2 {
        out.push((
            "saas",
            send(gw, "127.2.0.21", "news@contoso.com", &t.saas).await,
        ));
    }
    out.push((
        "forwarded",
        send(gw, "127.3.0.22", "ceo@contoso.com", &t.forwarded).await,
    ));
    for i in 1..=4 {
        out.push((
            "spoofer",
            send(
                gw,
                &format!("127.5.0.{i}"),
                "ceo@contoso.com",
                &msg("ceo@contoso.com", "wire transfer"),
            )
            .await,
        ));
    }
    out.push((
        "spoofer",
        send(
            gw,
            "127.6.0.9",
            "payroll@contoso.com",
            &msg("payroll@contoso.com", "bank details"),
        )
        .await,
    ));
    out.push((
        "external",
        send(
            gw,
            "127.7.0.1",
            "a@partner.example",
            &msg("a@partner.example", "hello"),
        )
        .await,
    ));
    out
}

fn json(s: String) -> serde_json::Value {
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[tokio::test]
async fn report_readiness_suggestions_and_replay_predict_enforcement() {
    let gw = Gateway::start("");
    gw.ok(&["tenant", "add", "contoso"]);
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "audit",
    ]);
    let key = DkimKey::rsa();
    let dns = &gw.dns;
    dns.txt("contoso.com", "v=spf1 ip4:127.1.0.20 -all");
    dns.txt("_dmarc.contoso.com", "v=DMARC1; p=none");
    dns.txt("s1._domainkey.contoso.com", &key.dns_record());
    dns.txt("arc._domainkey.forwarder.example", &key.dns_record());
    let t = Traffic {
        saas: key.sign(&msg("news@contoso.com", "newsletter"), "contoso.com", "s1"),
        forwarded: key
            .arc_seal(
                &msg("ceo@contoso.com", "forwarded note"),
                "forwarder.example",
                "arc",
                dns,
            )
            .await,
    };
    for (class, reply) in traffic(&gw, &t).await {
        assert!(
            reply.starts_with("250 2.6.0"),
            "audit mode accepts everything: {class} {reply}"
        );
    }
    gw.trace_until("contoso", &[], |v| v.len() == 12);

    // The report: five sources, the four spoofing addresses of one /24 grouped, sorted by volume.
    let r = json(gw.ok(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--since",
        "1h",
        "--format",
        "json",
    ]));
    assert_eq!(r["mode"], "audit");
    assert_eq!(
        r["summary"]["messages"], 11,
        "the external message is not direct send: {r:#}"
    );
    assert_eq!(r["summary"]["sources"], 5);
    assert_eq!(r["summary"]["would_refuse"], 11);
    assert_eq!(r["summary"]["audited"], 11);
    let sources = r["sources"].as_array().unwrap();
    let by = |s: &str| {
        sources
            .iter()
            .find(|x| x["source"] == s)
            .unwrap_or_else(|| panic!("no source {s}: {r:#}"))
    };
    assert_eq!(sources[0]["source"], "127.5.0.0/24");
    assert_eq!(by("127.5.0.0/24")["ips"].as_array().unwrap().len(), 4);
    assert_eq!(by("127.5.0.0/24")["messages"], 4);
    assert_eq!(by("127.5.0.0/24")["verdict"], "likely-spoofing");
    assert_eq!(by("127.1.0.20")["verdict"], "likely-legitimate");
    assert_eq!(by("127.1.0.20")["spf"]["pass"], 3);
    assert_eq!(by("127.1.0.20")["helo"][0], "client.test.example");
    assert_eq!(by("127.2.0.21")["verdict"], "likely-legitimate");
    assert_eq!(by("127.2.0.21")["dkim"]["pass"], 2);
    assert_eq!(by("127.3.0.22")["verdict"], "likely-forwarded");
    assert_eq!(by("127.6.0.9")["p1_domains"][0], "contoso.com");
    assert_eq!(
        by("127.6.0.9")["sample_trace_ids"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // CSV: RFC 4180, a header and one row per source.
    let csv = gw.ok(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--since",
        "1h",
        "--format",
        "csv",
    ]);
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 6, "{csv}");
    assert!(
        lines[0].starts_with("source,ips,rdns,helo,"),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("127.5.0.0/24,"), "{}", lines[1]);

    // Readiness in plain language, with the command for each legitimate source.
    let ready = json(gw.ok(&[
        "org",
        "readiness",
        "--tenant",
        "contoso",
        "--since",
        "1h",
        "--json",
    ]));
    assert!(
        ready["assessment"].as_str().unwrap().contains("refuse 11"),
        "{ready:#}"
    );
    let items = ready["items"].as_array().unwrap();
    let item = |s: &str| items.iter().find(|i| i["source"] == s).unwrap();
    assert!(
        item("127.1.0.20")["command"]
            .as_str()
            .unwrap()
            .contains("connector add")
    );
    assert!(
        item("127.3.0.22")["command"]
            .as_str()
            .unwrap()
            .contains("--arc-trusted-sealer forwarder.example")
    );
    assert!(item("127.5.0.0/24")["command"].is_null());

    // Suggested connectors: one IP connector covering the printer and the SaaS sender.
    let plan = json(gw.ok(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--since",
        "1h",
        "--suggest-connectors",
        "--format",
        "json",
    ]));
    let conns = plan["connectors"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{plan:#}");
    let ips: Vec<&str> = conns[0]["sender_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ips, ["127.1.0.20/32", "127.2.0.21/32"]);
    gw.ok(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--since",
        "1h",
        "--suggest-connectors",
        "--apply",
        "--yes",
    ]);
    let created = json(gw.ok(&[
        "connector",
        "show",
        "direct-send-sources",
        "--tenant",
        "contoso",
        "--json",
    ]));
    assert_eq!(created["sender_domains"][0], "contoso.com");
    // ... and the advice for forwarded mail: trust the list's ARC sealer.
    let advice = plan["other"].as_array().unwrap();
    assert_eq!(advice.len(), 1);
    assert_eq!(
        advice[0],
        "portcullis org set --tenant contoso --arc-trusted-sealer forwarder.example"
    );
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--arc-trusted-sealer",
        "forwarder.example",
    ]);

    // What-if: enforcement now would refuse the spoofers only.
    let replay = json(gw.ok(&[
        "simulate",
        "replay",
        "--tenant",
        "contoso",
        "--since",
        "1h",
        "--set",
        "reject-direct-send=on",
        "--json",
    ]));
    assert_eq!(replay["transactions"], 12);
    assert_eq!(replay["newly_refused"], 5, "{replay:#}");
    let predicted: std::collections::BTreeMap<String, String> = replay["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["client_ip"].as_str().unwrap().to_string(),
                c["after"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        predicted.values().all(|a| a.starts_with("550 5.7.68")),
        "{predicted:?}"
    );
    let predicted_ips: Vec<&str> = predicted.keys().map(String::as_str).collect();
    assert_eq!(
        predicted_ips,
        [
            "127.5.0.1",
            "127.5.0.2",
            "127.5.0.3",
            "127.5.0.4",
            "127.6.0.9"
        ]
    );

    // The real run with that configuration does exactly what the replay predicted.
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "on",
    ]);
    for (class, reply) in traffic(&gw, &t).await {
        match class {
            "spoofer" => assert!(reply.starts_with("550 5.7.68"), "{class}: {reply}"),
            _ => assert!(reply.starts_with("250 2.6.0"), "{class}: {reply}"),
        }
    }
    let refused = gw.trace_until("contoso", &["--status", "rejected", "--since", "1h"], |v| {
        v.len() == 5
    });
    let mut actual: Vec<String> = refused
        .iter()
        .map(|r| r["client_ip"].as_str().unwrap().to_string())
        .collect();
    actual.sort();
    let mut expected: Vec<String> = predicted.keys().cloned().collect();
    expected.sort();
    assert_eq!(actual, expected, "replay predicted the refusals exactly");
}

/// The record `r` as if received `days_ago` days earlier, under a new id, written through the
/// store's own write path (the history a real deployment would have gathered).
fn earlier(
    r: &portcullis_store::TraceRecord,
    days_ago: i64,
    n: usize,
) -> portcullis_store::TraceRecord {
    let mut h = r.clone();
    let at = chrono::Utc::now() - chrono::Duration::days(days_ago);
    h.trace_id = format!("{}-h{n}", r.trace_id);
    h.received_at_us = at.timestamp_micros();
    h.received_at = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    h
}

/// The cases: a printer the SPF record leaves out (weeks of scans, the same HELO, two
/// recipients) beside a one-off spoofer in the same /24; a tenant with no SPF record (`none` is
/// no failure); reverse DNS in the tenant's domain; a connector for a source the administrator
/// names, with the reasons for and against, applied and audited.
#[tokio::test]
async fn report_weighs_evidence_and_advises_on_any_named_source() {
    // Behind a trusted balancer (PROXY v1), clients can have addresses other than loopback's
    // (whose reverse DNS the resolver answers itself, RFC 6761).
    let gw = Gateway::start("[smtp]\nproxy_trusted_networks = [\"127.0.0.50/32\"]\n");
    for (t, d) in [("contoso", "contoso.com"), ("fabrikam", "fabrikam.com")] {
        gw.ok(&["tenant", "add", t]);
        gw.ok(&["domain", "add", d, "--tenant", t]);
        gw.ok(&["org", "set", "--tenant", t, "--reject-direct-send", "audit"]);
    }
    let dns = &gw.dns;
    dns.txt("contoso.com", "v=spf1 ip4:192.0.2.1 -all");
    dns.txt("_dmarc.contoso.com", "v=DMARC1; p=none");
    // fabrikam publishes nothing.
    // A multifunction printer whose PTR is in the tenant's domain and resolves back.
    dns.ptr("198.51.100.30".parse().unwrap(), "mfp.office.contoso.com");
    dns.a("mfp.office.contoso.com", "198.51.100.30".parse().unwrap());

    for (ip, from, to) in [
        ("127.8.0.20", "scanner@contoso.com", "bob@contoso.com"),
        ("127.8.0.20", "scanner@contoso.com", "eve@contoso.com"),
        ("127.8.0.66", "ceo@contoso.com", "bob@contoso.com"),
        ("198.51.100.30", "mfp@contoso.com", "bob@contoso.com"),
        ("198.51.100.30", "mfp@contoso.com", "bob@contoso.com"),
        ("10.20.30.40", "alerts@contoso.com", "ops@contoso.com"),
        ("127.10.0.5", "billing@fabrikam.com", "ann@fabrikam.com"),
    ] {
        let mut s = if ip.starts_with("127.") {
            session(gw.smtp, ip).await
        } else {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind("127.0.0.50:0".parse().unwrap()).unwrap();
            let mut tcp = sock.connect(gw.smtp).await.unwrap();
            use tokio::io::AsyncWriteExt;
            tcp.write_all(format!("PROXY TCP4 {ip} 127.0.0.1 40025 25\r\n").as_bytes())
                .await
                .unwrap();
            let mut s = Smtp::from_stream(tcp).await;
            assert!(s.cmd("EHLO client.test.example").await.starts_with("250"));
            s
        };
        let r = s
            .mail(from, &[to], &message(from, to, &format!("from {ip}")))
            .await;
        assert!(r[3].starts_with("250"), "{ip}: {r:?}");
    }
    let recs = gw.trace_until("contoso", &["--since", "1h"], |v| v.len() == 6);
    // Three weeks of the printer's history, two scans a day, through the store's write path.
    let printer: Vec<portcullis_store::TraceRecord> = recs
        .iter()
        .filter(|r| r["client_ip"] == "127.8.0.20")
        .map(|r| serde_json::from_value(r.clone()).unwrap())
        .collect();
    assert_eq!(printer.len(), 2);
    let store = portcullis_store::Store::connect(&format!(
        "sqlite://{}",
        gw.data().join("portcullis.db").display()
    ))
    .await
    .unwrap();
    let mut history = Vec::new();
    for day in 1..=20 {
        for (n, r) in printer.iter().enumerate() {
            history.push(earlier(r, day, day as usize * 10 + n));
        }
    }
    store.upsert_traces(&history).await.unwrap();

    let report = |t: &str| json(gw.ok(&["report", "direct-send", "--tenant", t, "--json"]));
    let r = report("contoso");
    let sources = r["sources"].as_array().unwrap().clone();
    let by = |s: &str| {
        sources
            .iter()
            .find(|x| x["source"] == s)
            .cloned()
            .unwrap_or_else(|| panic!("no source {s}: {r:#}"))
    };
    let signals = |x: &serde_json::Value| -> Vec<(String, i64)> {
        x["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["weight"] != 0)
            .map(|e| {
                (
                    e["signal"].as_str().unwrap().to_string(),
                    e["weight"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    // Printer and spoofer share a /24 but not a verdict: two sources.
    assert_eq!(sources.len(), 4, "{r:#}");
    let printer = by("127.8.0.20");
    assert_eq!(printer["messages"], 42);
    assert_eq!(printer["days"], 21);
    assert_eq!(printer["verdict"], "likely-legitimate", "{printer:#}");
    assert_eq!(
        signals(&printer),
        [
            ("spf".to_string(), -2),
            ("days".to_string(), 3),
            ("helo".to_string(), 1),
            ("recipients".to_string(), 1)
        ]
    );
    let spoofer = by("127.8.0.66");
    assert_eq!(spoofer["verdict"], "likely-spoofing", "{spoofer:#}");
    let mfp = by("198.51.100.30");
    assert_eq!(mfp["rdns"], "mfp.office.contoso.com");
    assert!(signals(&mfp).contains(&("rdns".to_string(), 2)), "{mfp:#}");
    let lan = by("10.20.30.40");
    assert!(
        signals(&lan).contains(&("private-address".to_string(), 4)),
        "{lan:#}"
    );

    // No SPF record at all: `none`, weighed as nothing, never called a failure.
    let f = report("fabrikam");
    let src = &f["sources"][0];
    assert_eq!(src["spf"]["none"], 1, "{f:#}");
    assert_eq!(src["verdict"], "unknown", "{f:#}");
    let spf = src["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["signal"] == "spf")
        .unwrap();
    assert_eq!(spf["weight"], 0);
    let ready = gw.ok(&["org", "readiness", "--tenant", "fabrikam"]);
    assert!(!ready.contains("fail SPF"), "{ready}");
    assert!(ready.contains("not a failure"), "{ready}");
    assert!(
        ready.contains("--suggest-connectors --source 127.10.0.5"),
        "an unclear source points at the named-source advice: {ready}"
    );
    // The table says why.
    let table = gw.ok(&["report", "direct-send", "--tenant", "contoso"]);
    assert!(table.contains("why:"), "{table}");
    assert!(table.contains("sent on 21 days over 21 days"), "{table}");

    // The default suggestion covers the printer with weeks of history; the device seen on one
    // day only, with confirmed reverse DNS, and the LAN host stay for review (`unknown`).
    assert_eq!(mfp["verdict"], "unknown", "{mfp:#}");
    assert_eq!(lan["verdict"], "unknown", "{lan:#}");
    let plan = json(gw.ok(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--suggest-connectors",
        "--json",
    ]));
    assert_eq!(
        plan["connectors"][0]["sender_ips"],
        serde_json::json!(["127.8.0.20/32"]),
        "{plan:#}"
    );

    // A named source: the spoofer (not recommended, and why), the /24 holding both (not
    // recommended: it holds the spoofer, and is wider than the traffic), an address with no
    // traffic, and a value with host bits set (exit 2, nothing asked).
    let named = |source: &str| {
        json(gw.ok(&[
            "report",
            "direct-send",
            "--tenant",
            "contoso",
            "--suggest-connectors",
            "--source",
            source,
            "--json",
        ]))
    };
    let a = named("127.8.0.66");
    assert_eq!(a["assessment"]["recommended"], false, "{a:#}");
    let reasons = a["assessment"]["reasons"].to_string();
    assert!(reasons.contains("likely-spoofing"), "{reasons}");
    assert!(
        reasons.contains("deliver its mail as your own"),
        "{reasons}"
    );
    assert_eq!(a["connectors"][0]["sender_ips"][0], "127.8.0.66/32");
    let a = named("127.8.0.0/24");
    assert_eq!(a["assessment"]["recommended"], false);
    assert_eq!(a["assessment"]["messages"], 43);
    assert!(
        a["assessment"]["reasons"]
            .to_string()
            .contains("wider than the 2 address(es)"),
        "{a:#}"
    );
    let a = named("198.51.100.7");
    assert_eq!(a["assessment"]["recommended"], false);
    assert!(
        a["assessment"]["reasons"]
            .to_string()
            .contains("no direct-send mail")
    );
    let a = named("127.8.0.20");
    assert_eq!(a["assessment"]["recommended"], true, "{a:#}");
    let text = gw.ok(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--suggest-connectors",
        "--source",
        "127.8.0.66",
    ]);
    assert!(text.contains("NOT recommended for 127.8.0.66/32"), "{text}");
    let bad = gw.cli(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--suggest-connectors",
        "--source",
        "127.8.0.20/24",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("127.8.0.20/24"),
        "{bad:?}"
    );

    // Applied: the connector exists, vouches for the domain the printer used, and the audit
    // log names it.
    gw.ok(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--suggest-connectors",
        "--source",
        "127.8.0.20",
        "--apply",
        "--yes",
    ]);
    let c = json(gw.ok(&[
        "connector",
        "show",
        "direct-send-127-8-0-20-32",
        "--tenant",
        "contoso",
        "--json",
    ]));
    assert_eq!(c["sender_ips"][0], "127.8.0.20/32");
    assert_eq!(c["sender_domains"][0], "contoso.com");
    let audit = gw.ok(&["audit", "--tenant", "contoso", "--json"]);
    assert!(
        audit.contains("connectors_created") && audit.contains("direct-send-127-8-0-20-32"),
        "{audit}"
    );
    // ... and the printer's next scan is attributed, so `on` would not refuse it.
    let mut s = session(gw.smtp, "127.8.0.20").await;
    let r = s
        .mail(
            "scanner@contoso.com",
            &["bob@contoso.com"],
            &message("scanner@contoso.com", "bob@contoso.com", "after"),
        )
        .await;
    assert!(r[3].starts_with("250"), "{r:?}");
    let recs = gw.trace_until("contoso", &["--since", "1h"], |v| v.len() == 7);
    assert_eq!(recs[0]["attribution"], "connector", "{:#}", recs[0]);
}
