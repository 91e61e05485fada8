//! Recipient validation at RCPT, end to end: the tenant's list (managed with the CLI, imported
//! all or nothing), the mailbox server asked by a probe and its answers cached, unknown
//! recipients refused with Exchange's words, traced, counted, and a dictionary attack cut off.

mod common;

use std::time::Duration;

use common::*;

const UNKNOWN: &str = "550 5.4.1 Recipient address rejected: Access denied";
const UNVERIFIED: &str = "450 4.4.3 Recipient address verification unavailable, try again later";

fn contoso(gw: &Gateway) {
    gw.ok(&["tenant", "add", "contoso"]);
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
    gw.ok(&[
        "domain",
        "add",
        "relay.contoso.com",
        "--tenant",
        "contoso",
        "--type",
        "internal-relay",
    ]);
}

async fn rcpt(gw: &Gateway, addresses: &[&str]) -> Vec<String> {
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert!(s.cmd("MAIL FROM:<a@example.org>").await.starts_with("250"));
    let mut replies = Vec::new();
    for a in addresses {
        replies.push(s.cmd(&format!("RCPT TO:<{a}>")).await);
    }
    s.cmd("QUIT").await;
    replies
}

/// `simulate --json` of a transaction from 192.0.2.1 to `rcpt`: the report and its `recipient`
/// step.
fn simulate_recipient(gw: &Gateway, rcpt: &str) -> (serde_json::Value, serde_json::Value) {
    let out = gw.ok(&[
        "simulate",
        "--tenant",
        "contoso",
        "--ip",
        "192.0.2.1",
        "--mail-from",
        "a@example.org",
        "--rcpt",
        rcpt,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let step = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "recipient")
        .unwrap_or_else(|| panic!("{v}"))
        .clone();
    (v, step)
}

#[tokio::test]
async fn the_list_refuses_unknown_recipients_of_authoritative_domains_only() {
    let gw = Gateway::start("");
    contoso(&gw);
    gw.ok(&[
        "recipient",
        "add",
        "Bob@Contoso.com",
        "@relay.contoso.com",
        "--tenant",
        "contoso",
    ]);
    // Off by default: anyone is accepted.
    assert_eq!(
        rcpt(&gw, &["eve@contoso.com"]).await,
        ["250 2.1.5 Recipient OK"]
    );
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--recipient-validation",
        "list",
    ]);
    let r = rcpt(
        &gw,
        &[
            "bob@contoso.com",
            "BOB+news@contoso.com",
            "eve@contoso.com",
            "anyone@relay.contoso.com",
        ],
    )
    .await;
    assert_eq!(
        r,
        [
            "250 2.1.5 Recipient OK",
            "250 2.1.5 Recipient OK",
            UNKNOWN,
            "250 2.1.5 Recipient OK"
        ]
    );
    // The refusal is in the trace, saying why, and counted.
    let t = gw.trace_until("contoso", &["--status", "rejected"], |v| !v.is_empty());
    let rec = &t[0];
    let eve = rec["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "eve@contoso.com")
        .unwrap();
    assert_eq!(eve["reply"], UNKNOWN);
    assert!(
        rec["events"]
            .to_string()
            .contains("unknown recipient: not in the tenant's recipient list"),
        "{rec}"
    );
    assert!(
        gw.metrics()
            .contains("portcullis_unknown_recipients_total{tenant=\"contoso\"} 1"),
        "metrics"
    );
    // A domain may override the tenant's setting.
    gw.ok(&[
        "domain",
        "set",
        "contoso.com",
        "--tenant",
        "contoso",
        "--recipient-validation",
        "off",
    ]);
    assert_eq!(
        rcpt(&gw, &["eve@contoso.com"]).await,
        ["250 2.1.5 Recipient OK"]
    );
    gw.ok(&[
        "domain",
        "set",
        "contoso.com",
        "--tenant",
        "contoso",
        "--recipient-validation",
        "inherit",
    ]);
    assert_eq!(rcpt(&gw, &["eve@contoso.com"]).await, [UNKNOWN]);
    // simulate shows the lookup and its source.
    let (v, step) = simulate_recipient(&gw, "eve@contoso.com");
    assert_eq!(step["outcome"], "unknown (list)");
    assert_eq!(v["reply"], UNKNOWN);
}

#[tokio::test]
async fn a_dictionary_attack_is_cut_off() {
    let gw = Gateway::start("[smtp]\nmax_unknown_recipients = 3\n");
    contoso(&gw);
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--recipient-validation",
        "list",
    ]);
    // An empty list validates nothing (turning validation on before the import refuses no mail).
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert!(s.cmd("MAIL FROM:<a@example.org>").await.starts_with("250"));
    assert_eq!(
        s.cmd("RCPT TO:<anyone@contoso.com>").await,
        "250 2.1.5 Recipient OK"
    );
    s.cmd("QUIT").await;
    gw.ok(&["recipient", "add", "ceo@contoso.com", "--tenant", "contoso"]);
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert!(s.cmd("MAIL FROM:<a@example.org>").await.starts_with("250"));
    for i in 0..3 {
        assert_eq!(
            s.cmd(&format!("RCPT TO:<guess{i}@contoso.com>")).await,
            UNKNOWN
        );
    }
    assert_eq!(
        s.cmd("RCPT TO:<guess3@contoso.com>").await,
        "421 4.7.0 mx.test.example Too many unknown recipients, closing connection"
    );
    assert_eq!(s.reply().await, "EOF");
    let t = gw.trace_until("contoso", &[], |v| !v.is_empty());
    assert_eq!(t[0]["recipients"].as_array().unwrap().len(), 4, "{t:?}");
    // The report shows the attack: one source, many addresses, cut off.
    let mut s = session(gw.smtp, "127.0.0.9").await;
    assert!(s.cmd("MAIL FROM:<a@example.org>").await.starts_with("250"));
    assert_eq!(s.cmd("RCPT TO:<old-colleague@contoso.com>").await, UNKNOWN);
    s.cmd("QUIT").await;
    let _ = gw.trace_until("contoso", &[], |v| v.len() == 2);
    let out = gw.ok(&[
        "report",
        "unknown-recipients",
        "--tenant",
        "contoso",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["refusals"], 4, "{v}");
    let top = &v["sources"][0];
    assert_eq!(top["client_ip"], "127.0.0.1");
    assert_eq!(top["refusals"], 3);
    assert_eq!(top["cut_off"], 1);
    assert_eq!(top["distinct_recipients"], 4);
    assert_eq!(top["samples"][0], "guess0@contoso.com");
    assert_eq!(v["sources"][1]["client_ip"], "127.0.0.9");
    let table = gw.ok(&["report", "unknown-recipients", "--tenant", "contoso"]);
    assert!(
        table.starts_with("Unknown recipients refused for tenant contoso since "),
        "{table}"
    );
    assert!(
        table.contains("127.0.0.1") && table.contains("guess0@contoso.com"),
        "{table}"
    );
}

#[tokio::test]
async fn import_is_all_or_nothing_and_lists_page() {
    let gw = Gateway::start("");
    contoso(&gw);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "address,name\n# exported from the directory\nann@contoso.com,Ann\n\"bob@contoso.com\",Bob\n\ncarol@contoso.com\n*@relay.contoso.com\n",
    )
    .unwrap();
    let out = gw.ok(&[
        "recipient",
        "import",
        "--tenant",
        "contoso",
        "--file",
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.trim(), "4 added, 0 removed; the list has 4 recipients");
    // A bad line: exit 2 naming the line, nothing changed.
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "dave@contoso.com\nerin@contoso.com\nnot an address\n").unwrap();
    let o = gw.cli(&[
        "recipient",
        "import",
        "--tenant",
        "contoso",
        "--file",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("line 3") && err.contains("not an address"),
        "{err}"
    );
    // An address of another tenant's domain: refused by the server, nothing changed.
    gw.ok(&["tenant", "add", "fabrikam"]);
    gw.ok(&["domain", "add", "fabrikam.com", "--tenant", "fabrikam"]);
    std::fs::write(&bad, "dave@contoso.com\nmallory@fabrikam.com\n").unwrap();
    let o = gw.cli(&[
        "recipient",
        "import",
        "--tenant",
        "contoso",
        "--file",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("fabrikam.com is not an accepted domain of tenant contoso"),
        "{err}"
    );
    let all = gw.ok(&["recipient", "list", "--tenant", "contoso", "--all"]);
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        [
            "@relay.contoso.com",
            "ann@contoso.com",
            "bob@contoso.com",
            "carol@contoso.com"
        ]
    );
    // A page says on stderr that more exist, and where to go on.
    let o = gw.cli(&["recipient", "list", "--tenant", "contoso", "--limit", "2"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--after ann@contoso.com"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = gw.ok(&[
        "recipient",
        "list",
        "--tenant",
        "contoso",
        "--after",
        "ann@contoso.com",
    ]);
    assert_eq!(
        o.lines().collect::<Vec<_>>(),
        ["bob@contoso.com", "carol@contoso.com"]
    );
    // --replace: the file is the whole list.
    std::fs::write(&bad, "bob@contoso.com\nzed@contoso.com\n").unwrap();
    let out = gw.ok(&[
        "recipient",
        "import",
        "--tenant",
        "contoso",
        "--file",
        bad.to_str().unwrap(),
        "--replace",
    ]);
    assert_eq!(out.trim(), "1 added, 3 removed; the list has 2 recipients");
    gw.ok(&[
        "recipient",
        "remove",
        "zed@contoso.com",
        "--tenant",
        "contoso",
    ]);
    assert_eq!(
        gw.ok(&["recipient", "list", "--tenant", "contoso"]).trim(),
        "bob@contoso.com"
    );
    // The audit log names what changed.
    let audit = gw.ok(&["audit", "--tenant", "contoso", "--json"]);
    assert!(
        audit.contains("POST /api/v1/tenants/{t}/recipients") && audit.contains("zed@contoso.com"),
        "{audit}"
    );
}

#[tokio::test]
async fn verify_asks_the_mailbox_server_and_caches_its_answers() {
    let down = Downstream::start(0, false, 1).await;
    let gw = Gateway::start("[recipients]\nverify_timeout = \"2s\"\n");
    contoso(&gw);
    gw.ok(&[
        "tenant",
        "set",
        "contoso",
        "--route",
        &format!("smtp://127.0.0.1:{}", down.port),
    ]);
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--recipient-validation",
        "verify",
    ]);
    let r = rcpt(
        &gw,
        &[
            "bob@contoso.com",
            "reject-eve@contoso.com",
            "later-ann@contoso.com",
        ],
    )
    .await;
    assert_eq!(r, ["250 2.1.5 Recipient OK", UNKNOWN, UNVERIFIED]);
    // Probes never send DATA; three of them, one per recipient.
    assert!(down.messages().is_empty());
    assert_eq!(down.transactions().1, 3);
    // Known and unknown answers are cached; the one that could not be verified is asked again.
    let r = rcpt(
        &gw,
        &[
            "bob@contoso.com",
            "reject-eve@contoso.com",
            "later-ann@contoso.com",
        ],
    )
    .await;
    assert_eq!(
        r,
        ["250 2.1.5 Recipient OK", UNKNOWN, "250 2.1.5 Recipient OK"]
    );
    assert_eq!(down.transactions().1, 4);
    let (_, step) = simulate_recipient(&gw, "reject-eve@contoso.com");
    assert_eq!(step["outcome"], "unknown (cache)");
    assert!(
        step["detail"]
            .as_str()
            .unwrap()
            .contains("550 5.1.1 no such user"),
        "{step}"
    );
    let t = gw.trace_until("contoso", &["--status", "rejected"], |v| v.len() == 2);
    let events = serde_json::Value::from(t.clone()).to_string();
    assert!(
        events.contains("the mailbox server answered the probe: smtp://127.0.0.1:"),
        "{events}"
    );
    assert!(
        events.contains("the mailbox server's cached answer: smtp://127.0.0.1:"),
        "{events}"
    );
    // The mailbox server gone: a new address is deferred, never refused; cached ones still answer.
    down.stop();
    let r = rcpt(&gw, &["new@contoso.com", "bob@contoso.com"]).await;
    assert_eq!(r, [UNVERIFIED, "250 2.1.5 Recipient OK"]);

    // A domain routed to an LMTP server is asked over LMTP (LHLO), per user.
    let lmtp = Downstream::start(0, true, 0).await;
    gw.ok(&["domain", "add", "lmtp.contoso.com", "--tenant", "contoso"]);
    gw.ok(&[
        "domain",
        "set",
        "lmtp.contoso.com",
        "--tenant",
        "contoso",
        "--route",
        &format!("lmtp://127.0.0.1:{}", lmtp.port),
    ]);
    let r = rcpt(&gw, &["ann@lmtp.contoso.com", "reject-x@lmtp.contoso.com"]).await;
    assert_eq!(r, ["250 2.1.5 Recipient OK", UNKNOWN]);
    assert_eq!(lmtp.transactions().1, 2);
    assert!(lmtp.messages().is_empty());

    // A mailbox server that accepts the connection and never answers: deferred after
    // verify_timeout, the session goes on.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = hang.accept().await {
            open.push(sock);
        }
    });
    gw.ok(&["domain", "add", "hang.contoso.com", "--tenant", "contoso"]);
    gw.ok(&[
        "domain",
        "set",
        "hang.contoso.com",
        "--tenant",
        "contoso",
        "--route",
        &format!("smtp://127.0.0.1:{hang_port}"),
    ]);
    let started = std::time::Instant::now();
    let r = rcpt(&gw, &["ann@hang.contoso.com", "bob@contoso.com"]).await;
    assert_eq!(r, [UNVERIFIED, "250 2.1.5 Recipient OK"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
}
