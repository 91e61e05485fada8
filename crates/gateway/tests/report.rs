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
