//! End to end: the real binary, real sockets, real TLS, a real SQLite file. Each test starts its
//! own gateway on ephemeral ports and asserts what an administrator relies on: the exact reply,
//! the trace record, the file in the Maildir.

mod common;

use common::*;

const R5768: &str = "550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources";
const R5764: &str = "550 5.7.64 TenantAttribution; Relay Access Denied";
const R5751: &str = "550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set";

fn contoso(gw: &Gateway, mode: &str) {
    gw.ok(&["tenant", "add", "contoso"]);
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        mode,
    ]);
}

fn queued_id(reply: &str) -> String {
    assert!(
        reply.starts_with("250 2.6.0 Queued as "),
        "expected 250 2.6.0, got {reply:?}"
    );
    reply.rsplit(' ').next().unwrap().to_string()
}

#[tokio::test]
async fn direct_send_refused_until_a_connector_vouches_for_the_ip() {
    let gw = Gateway::start("");
    contoso(&gw, "on");
    let msg = message("ceo@contoso.com", "bob@contoso.com", "direct send");

    // Anonymous direct send: refused at RCPT with the exact text.
    let mut s = session(gw.smtp, "127.0.0.1").await;
    let r = s.mail("ceo@contoso.com", &["bob@contoso.com"], &msg).await;
    assert_eq!(r, ["250 2.1.0 Sender OK", R5768]);

    // A connector for 127.0.0.1 applies to the very next transaction on the same session.
    gw.ok(&[
        "connector",
        "add",
        "Contoso on-prem",
        "--tenant",
        "contoso",
        "--type",
        "on-premises",
        "--sender-ip",
        "127.0.0.1/32",
    ]);
    let r = s.mail("ceo@contoso.com", &["bob@contoso.com"], &msg).await;
    assert_eq!(
        r[..3],
        [
            "250 2.1.0 Sender OK",
            "250 2.1.5 Recipient OK",
            "354 Start mail input; end with <CRLF>.<CRLF>"
        ]
    );
    let accepted = queued_id(&r[3]);
    assert_eq!(
        s.cmd("QUIT").await,
        "221 2.0.0 mx.test.example closing connection"
    );

    // Still refused from another address.
    let mut s2 = session(gw.smtp, "127.0.0.2").await;
    let r = s2.mail("ceo@contoso.com", &["bob@contoso.com"], &msg).await;
    assert_eq!(r[1], R5768);
    // Mail from a foreign domain is not direct send.
    let r = s2
        .mail(
            "alice@fabrikam.example",
            &["bob@contoso.com"],
            &message("alice@fabrikam.example", "bob@contoso.com", "hello"),
        )
        .await;
    queued_id(&r[3]);

    // The attributed message is in the Maildir with our headers.
    let mail = gw.wait_maildir("contoso", "bob@contoso.com", 2);
    assert_eq!(mail.len(), 2, "two accepted messages delivered");
    let m = mail
        .iter()
        .find(|m| m.contains("Subject: direct send"))
        .expect("attributed message");
    assert!(m.starts_with("Return-Path: <ceo@contoso.com>\r\nDelivered-To: bob@contoso.com\r\nReceived: from client.test.example ([127.0.0.1])\r\n\tby mx.test.example (Portcullis) with ESMTP\r\n\tid "), "{m}");
    assert!(m.contains("X-Portcullis-Attribution: tenant=contoso; auth-as=on-premises; connector=\"Contoso on-prem\"\r\n"), "{m}");
    let other = mail.iter().find(|m| m.contains("Subject: hello")).unwrap();
    assert!(other.contains(
        "X-Portcullis-Attribution: tenant=contoso; auth-as=anonymous; connector=\"\"\r\n"
    ));

    // The trace holds the refusals with their replies, and the accepted message as delivered.
    let trace = gw.trace_until("contoso", &[], |v| {
        v.len() == 4 && v.iter().filter(|r| r["status"] == "delivered").count() == 2
    });
    assert_eq!(trace.len(), 4, "{trace:#?}");
    let refused: Vec<_> = trace.iter().filter(|r| r["status"] == "rejected").collect();
    assert_eq!(refused.len(), 2);
    for r in &refused {
        assert_eq!(r["direct_send"], true);
        assert_eq!(r["attribution"], "anonymous");
        assert_eq!(r["mail_from"], "ceo@contoso.com");
        assert_eq!(r["recipients"][0]["address"], "bob@contoso.com");
        assert_eq!(r["recipients"][0]["status"], "rejected");
        assert_eq!(r["recipients"][0]["reply"], R5768);
        assert!(
            r["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["event"] == "REJECT")
        );
    }
    assert!(refused.iter().any(|r| r["client_ip"] == "127.0.0.2"));
    let ok = trace
        .iter()
        .find(|r| r["trace_id"] == accepted.as_str())
        .unwrap();
    assert_eq!(ok["status"], "delivered");
    assert_eq!(ok["attribution"], "connector");
    assert_eq!(ok["connector"], "Contoso on-prem");
    assert_eq!(ok["direct_send"], false);
    assert_eq!(ok["subject"], "direct send");
    assert_eq!(ok["message_id"], "direct-send@test.example");
    assert_eq!(ok["helo"], "client.test.example");
    let events: Vec<_> = ok["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["AUTH", "RECEIVE", "DELIVER"]);

    // Filters and `trace show`.
    let rejected = gw.trace_until(
        "contoso",
        &["--status", "rejected", "--from-ip", "127.0.0.2"],
        |v| v.len() == 1,
    );
    assert_eq!(rejected.len(), 1);
    let shown: serde_json::Value = serde_json::from_str(
        &gw.ok(&["trace", "show", &accepted, "--tenant", "contoso", "--json"]),
    )
    .unwrap();
    assert_eq!(shown["trace_id"], accepted.as_str());
    // Tenant isolation: another tenant cannot read it.
    gw.ok(&["tenant", "add", "fabrikam"]);
    let out = gw.cli(&["trace", "show", &accepted, "--tenant", "fabrikam"]);
    assert_eq!(out.status.code(), Some(3), "not found (SPEC §10: 3)");
}

#[tokio::test]
async fn client_certificate_attribution_needs_a_trusted_chain() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Contoso Test CA");
    ca.write(&dir.path().join("ca.pem"));
    let config = format!(
        "[tls]\nclient_ca_file = \"{}\"\n",
        dir.path().join("ca.pem").display()
    );
    let gw = Gateway::start_in(dir, &config);
    contoso(&gw, "on");
    gw.ok(&[
        "connector",
        "add",
        "relay",
        "--tenant",
        "contoso",
        "--tls-cert-name",
        "*.relay.contoso.com",
    ]);
    let msg = message("app@contoso.com", "bob@contoso.com", "via cert");

    // Trusted certificate with a matching name: attributed by certificate.
    let good = ca.issue("mx1.relay.contoso.com");
    let mut s = session(gw.smtp, "127.0.0.3").await;
    s.starttls(Some(&good)).await;
    assert!(s.cmd("EHLO client.test.example").await.starts_with("250 "));
    let r = s.mail("app@contoso.com", &["bob@contoso.com"], &msg).await;
    let id = queued_id(&r[3]);

    // Same name from an untrusted CA: the handshake succeeds, attribution does not.
    let rogue = TestCa::new("Rogue CA").issue("mx1.relay.contoso.com");
    let mut s2 = session(gw.smtp, "127.0.0.3").await;
    s2.starttls(Some(&rogue)).await;
    assert!(s2.cmd("EHLO client.test.example").await.starts_with("250 "));
    let r = s2.mail("app@contoso.com", &["bob@contoso.com"], &msg).await;
    assert_eq!(r[1], R5768);

    // Wildcard covers one label only.
    let deep = ca.issue("a.mx1.relay.contoso.com");
    let mut s3 = session(gw.smtp, "127.0.0.3").await;
    s3.starttls(Some(&deep)).await;
    s3.cmd("EHLO client.test.example").await;
    assert_eq!(
        s3.mail("app@contoso.com", &["bob@contoso.com"], &msg).await[1],
        R5768
    );

    let mail = gw.wait_maildir("contoso", "bob@contoso.com", 1);
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains(
        "X-Portcullis-Attribution: tenant=contoso; auth-as=partner; connector=\"relay\""
    ));
    assert!(
        mail[0].contains("with ESMTPS (version=TLSv1.3 cipher=TLS13_"),
        "{}",
        mail[0]
    );

    let trace = gw.trace_until("contoso", &[], |v| v.len() == 3);
    let ok = trace.iter().find(|r| r["trace_id"] == id.as_str()).unwrap();
    assert_eq!(ok["connector"], "relay");
    assert_eq!(ok["tls"]["version"], "TLSv1.3");
    assert_eq!(ok["tls"]["client_cert_trusted"], true);
    assert!(
        ok["tls"]["client_cert_subject"]
            .as_str()
            .unwrap()
            .contains("mx1.relay.contoso.com")
    );
    let refused: Vec<_> = trace.iter().filter(|r| r["status"] == "rejected").collect();
    assert_eq!(refused.len(), 2);
    assert!(
        refused
            .iter()
            .any(|r| r["tls"]["client_cert_trusted"] == false)
    );
}

#[tokio::test]
async fn require_tls_connector_needs_starttls() {
    let gw = Gateway::start("");
    contoso(&gw, "on");
    gw.ok(&[
        "connector",
        "add",
        "tls-only",
        "--tenant",
        "contoso",
        "--sender-ip",
        "127.0.0.4",
        "--require-tls",
    ]);
    let msg = message("app@contoso.com", "bob@contoso.com", "tls");
    let mut plain = session(gw.smtp, "127.0.0.4").await;
    assert_eq!(
        plain
            .mail("app@contoso.com", &["bob@contoso.com"], &msg)
            .await[1],
        R5768
    );
    let mut tls = session(gw.smtp, "127.0.0.4").await;
    tls.starttls(None).await;
    tls.cmd("EHLO client.test.example").await;
    queued_id(
        &tls.mail("app@contoso.com", &["bob@contoso.com"], &msg)
            .await[3],
    );
}

#[tokio::test]
async fn restricted_partner_and_unknown_domain() {
    let gw = Gateway::start("");
    contoso(&gw, "off");
    gw.ok(&[
        "connector",
        "add",
        "Partner",
        "--tenant",
        "contoso",
        "--sender-ip",
        "127.0.0.5/32",
        "--sender-domain",
        "*.partner.example",
        "--restrict-domains-to-ip",
    ]);
    let mut s = session(gw.smtp, "127.0.0.6").await;
    // Partner's domain from the wrong IP.
    let r = s
        .mail("billing@mail.partner.example", &["bob@contoso.com"], "")
        .await;
    assert_eq!(r[1], R5751);
    // Unknown recipient domain: never relayed.
    let r = s
        .mail("x@elsewhere.example", &["someone@example.org"], "")
        .await;
    assert_eq!(r[1], R5764);
    // From the partner's IP it is attributed.
    let mut ok = session(gw.smtp, "127.0.0.5").await;
    let r = ok
        .mail(
            "billing@partner.example",
            &["bob@contoso.com"],
            &message("billing@partner.example", "bob@contoso.com", "invoice"),
        )
        .await;
    queued_id(&r[3]);
    let trace = gw.trace_until("contoso", &["--status", "rejected"], |v| v.len() == 1);
    assert_eq!(trace[0]["recipients"][0]["reply"], R5751);
    let mail = gw.wait_maildir("contoso", "bob@contoso.com", 1);
    assert!(mail[0].contains("auth-as=partner; connector=\"Partner\""));
}

#[tokio::test]
async fn audit_mode_delivers_and_marks() {
    let gw = Gateway::start("");
    contoso(&gw, "audit");
    let mut s = session(gw.smtp, "127.0.0.1").await;
    // A forged header of ours must not survive.
    let msg = format!(
        "X-Portcullis-Direct-Send: no\r\n{}",
        message("ceo@contoso.com", "bob@contoso.com", "audit")
    );
    let r = s.mail("ceo@contoso.com", &["bob@contoso.com"], &msg).await;
    let id = queued_id(&r[3]);
    let mail = gw.wait_maildir("contoso", "bob@contoso.com", 1);
    assert!(mail[0].contains("X-Portcullis-Direct-Send: audit\r\n"));
    assert!(!mail[0].contains("X-Portcullis-Direct-Send: no"));
    let trace = gw.trace_until("contoso", &[], |v| {
        v.len() == 1 && v[0]["status"] == "delivered"
    });
    let t = &trace[0];
    assert_eq!(t["trace_id"], id.as_str());
    assert_eq!(t["direct_send"], true);
    let audit = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "AUDIT")
        .expect("AUDIT event");
    assert!(
        audit["detail"]
            .as_str()
            .unwrap()
            .starts_with("would reject 550 5.7.68"),
        "{audit}"
    );

    // Switching to `on` applies to the next transaction of the same session.
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "on",
    ]);
    assert_eq!(
        s.mail("ceo@contoso.com", &["bob@contoso.com"], &msg).await[1],
        R5768
    );
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "off",
    ]);
    queued_id(&s.mail("ceo@contoso.com", &["bob@contoso.com"], &msg).await[3]);
    // The null sender is never direct send.
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "on",
    ]);
    let r = s
        .mail(
            "",
            &["bob@contoso.com"],
            &message("MAILER-DAEMON@contoso.com", "bob@contoso.com", "bounce"),
        )
        .await;
    queued_id(&r[3]);
}

#[tokio::test]
async fn recipients_of_two_tenants_get_separate_copies_and_decisions() {
    let gw = Gateway::start("");
    contoso(&gw, "on");
    gw.ok(&["tenant", "add", "fabrikam"]);
    gw.ok(&[
        "domain",
        "add",
        "fabrikam.com",
        "--tenant",
        "fabrikam",
        "--match-subdomains",
    ]);
    let mut s = session(gw.smtp, "127.0.0.1").await;
    let r = s
        .mail(
            "ceo@contoso.com",
            &[
                "bob@contoso.com",
                "ann@sales.fabrikam.com",
                "x@nowhere.example",
            ],
            &message("ceo@contoso.com", "ann@sales.fabrikam.com", "split"),
        )
        .await;
    assert_eq!(r[1], R5768, "contoso enforces");
    assert_eq!(r[2], "250 2.1.5 Recipient OK", "fabrikam does not");
    assert_eq!(r[3], R5764);
    let id = queued_id(&r[5]);
    let mail = gw.wait_maildir("fabrikam", "ann@sales.fabrikam.com", 1);
    assert!(mail[0].contains("X-Portcullis-Attribution: tenant=fabrikam; auth-as=anonymous"));
    assert!(gw.maildir("contoso", "bob@contoso.com").is_empty());
    let c = gw.trace_until("contoso", &[], |v| v.len() == 1);
    let f = gw.trace_until("fabrikam", &[], |v| {
        v.len() == 1 && v[0]["status"] == "delivered"
    });
    assert_eq!(c[0]["trace_id"], id.as_str());
    assert_eq!(c[0]["status"], "rejected");
    assert_eq!(f[0]["trace_id"], id.as_str());
    // Each tenant sees only its own recipients.
    assert_eq!(c[0]["recipients"].as_array().unwrap().len(), 1);
    assert_eq!(f[0]["recipients"].as_array().unwrap().len(), 1);
    assert_eq!(f[0]["recipients"][0]["address"], "ann@sales.fabrikam.com");
}

#[tokio::test]
async fn header_scope_refuses_p2_spoof_at_end_of_data() {
    let gw = Gateway::start("");
    contoso(&gw, "on");
    let mut s = session(gw.smtp, "127.0.0.1").await;
    let spoof = message("CEO <ceo@contoso.com>", "bob@contoso.com", "p2 spoof");
    // Default scope (envelope): a P2-only spoof is accepted (left to DMARC).
    queued_id(
        &s.mail("bulk@mailer.example", &["bob@contoso.com"], &spoof)
            .await[3],
    );
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--direct-send-scope",
        "envelope-and-header",
    ]);
    let r = s
        .mail("bulk@mailer.example", &["bob@contoso.com"], &spoof)
        .await;
    assert_eq!(r[2], "354 Start mail input; end with <CRLF>.<CRLF>");
    assert_eq!(r[3], R5768);
    let trace = gw.trace_until("contoso", &["--status", "rejected"], |v| v.len() == 1);
    assert_eq!(trace[0]["header_from"], "ceo@contoso.com");
    assert_eq!(trace[0]["direct_send"], true);
}

#[tokio::test]
async fn bad_input_gets_replies_and_the_session_survives() {
    let gw = Gateway::start("[smtp]\nmax_message_size = 10000\nmax_recipients = 3\n");
    contoso(&gw, "off");
    let mut s = session(gw.smtp, "127.0.0.1").await;
    let cases: &[(&str, &str)] = &[
        ("FOO bar", "500 5.5.2"),
        ("MAIL FROM:<no-brackets", "501 5.1.7"),
        ("MAIL FROM:alice@example.org", "501 5.1.7"),
        ("RCPT TO:<bob@contoso.com>", "503 5.5.1"),
        ("DATA", "503 5.5.1"),
        ("MAIL FROM:<a@example.org> FROBNICATE=1", "555 5.5.4"),
        ("MAIL FROM:<a@example.org> SIZE=99999999", "552 5.3.4"),
        ("VRFY bob", "252 2.5.2"),
        ("NOOP", "250 2.0.0"),
    ];
    for (cmd, want) in cases {
        let r = s.cmd(cmd).await;
        assert!(r.starts_with(want), "{cmd:?}: expected {want}, got {r:?}");
    }
    // A 10 000-byte line.
    let long = format!("NOOP {}\r\n", "x".repeat(10_000));
    s.send(long.as_bytes()).await;
    assert_eq!(s.reply().await, "500 5.5.2 Line too long");
    assert_eq!(s.cmd("NOOP").await, "250 2.0.0 OK");
    // Too many recipients.
    s.cmd("MAIL FROM:<a@example.org>").await;
    for i in 0..3 {
        assert_eq!(
            s.cmd(&format!("RCPT TO:<u{i}@contoso.com>")).await,
            "250 2.1.5 Recipient OK"
        );
    }
    assert_eq!(
        s.cmd("RCPT TO:<u4@contoso.com>").await,
        "452 4.5.3 Too many recipients"
    );
    s.cmd("RSET").await;
    // Bare LF inside DATA never ends the message early (no smuggling) and is refused.
    s.cmd("MAIL FROM:<a@example.org>").await;
    s.cmd("RCPT TO:<bob@contoso.com>").await;
    assert!(s.cmd("DATA").await.starts_with("354"));
    s.send(b"Subject: smuggle\r\n\r\nhi\n.\nMAIL FROM:<evil@contoso.com>\r\nRCPT TO:<bob@contoso.com>\r\n.\r\n").await;
    let r = s.reply().await;
    assert!(r.starts_with("554 5.6.0"), "{r}");
    // Bare CR likewise.
    s.cmd("MAIL FROM:<a@example.org>").await;
    s.cmd("RCPT TO:<bob@contoso.com>").await;
    s.cmd("DATA").await;
    s.send(b"Subject: cr\r\n\r\nhi\r.\rstill data\r\n.\r\n")
        .await;
    assert!(s.reply().await.starts_with("554 5.6.0"));
    // A message over the size limit.
    s.cmd("MAIL FROM:<a@example.org>").await;
    s.cmd("RCPT TO:<bob@contoso.com>").await;
    s.cmd("DATA").await;
    let big = format!("Subject: big\r\n\r\n{}\r\n.\r\n", "y".repeat(20_000));
    s.send(big.as_bytes()).await;
    assert_eq!(
        s.reply().await,
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    // The same session still delivers a good message; nothing of the refused ones arrived.
    let r = s
        .mail(
            "a@example.org",
            &["bob@contoso.com"],
            &message("a@example.org", "bob@contoso.com", "after"),
        )
        .await;
    queued_id(&r[3]);
    let mail = gw.wait_maildir("contoso", "bob@contoso.com", 1);
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("Subject: after"));

    // Binary garbage gets an answer, never a crash; the next session works.
    let mut g = session(gw.smtp, "127.0.0.1").await;
    g.send(b"\x00\xff\xfe garbage\r\n").await;
    let r = g.reply().await;
    assert!(r.starts_with("500") || r.starts_with("501"), "{r}");
    drop(g);
    let mut next = session(gw.smtp, "127.0.0.1").await;
    assert_eq!(next.cmd("NOOP").await, "250 2.0.0 OK");
}

#[tokio::test]
async fn error_limit_and_connection_limits() {
    let gw = Gateway::start("[smtp]\nmax_errors = 3\nmax_connections_per_ip = 2\n");
    let mut s = session(gw.smtp, "127.0.0.7").await;
    for _ in 0..3 {
        assert!(s.cmd("BOGUS").await.starts_with("500"));
    }
    assert_eq!(
        s.cmd("BOGUS").await,
        "500 5.5.2 Syntax error, command unrecognized"
    );
    assert_eq!(
        s.reply().await,
        "421 4.7.0 mx.test.example Too many errors, closing connection"
    );
    assert_eq!(s.reply().await, "EOF");

    let _a = session(gw.smtp, "127.0.0.8").await;
    let _b = session(gw.smtp, "127.0.0.8").await;
    let (_, banner) = Smtp::connect_from(gw.smtp, "127.0.0.8".parse().unwrap()).await;
    assert_eq!(
        banner,
        "421 4.7.0 mx.test.example Too many connections from your address, try again later"
    );
    let (_, other) = Smtp::connect_from(gw.smtp, "127.0.0.9".parse().unwrap()).await;
    assert!(other.starts_with("220 "));
}

#[tokio::test]
async fn idle_timeout() {
    let gw = Gateway::start("[smtp]\nidle_timeout = \"1s\"\n");
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert_eq!(
        s.reply().await,
        "421 4.4.2 mx.test.example Idle timeout, closing connection"
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_a_message_in_flight_and_exits_zero() {
    let mut gw = Gateway::start("");
    contoso(&gw, "off");
    let mut idle = session(gw.smtp, "127.0.0.1").await;
    let mut busy = session(gw.smtp, "127.0.0.1").await;
    busy.cmd("MAIL FROM:<a@example.org>").await;
    busy.cmd("RCPT TO:<bob@contoso.com>").await;
    assert!(busy.cmd("DATA").await.starts_with("354"));
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n").await;

    let pid_stop = std::thread::spawn(move || {
        let status = gw.stop();
        (gw, status)
    });
    // The idle session is told to go away; the one in DATA may finish.
    assert_eq!(
        idle.reply().await,
        "421 4.3.2 mx.test.example Service shutting down, closing connection"
    );
    busy.send(b"second half\r\n.\r\n").await;
    let r = busy.reply().await;
    let id = queued_id(&r);
    let (gw, status) = pid_stop.join().unwrap();
    assert!(status.success(), "exit status {status}");
    // Delivered before the exit, or by the next start from what the spool kept: never lost.
    let gw = if gw.maildir("contoso", "bob@contoso.com").is_empty() {
        Gateway::start_in(gw.into_dir(), "")
    } else {
        gw
    };
    let mail = gw.wait_maildir("contoso", "bob@contoso.com", 1);
    assert!(
        mail[0].contains("Subject: in flight") && mail[0].contains(&id),
        "{mail:?}"
    );
}

#[tokio::test]
async fn spooled_messages_survive_a_crash() {
    let gw = Gateway::start("");
    contoso(&gw, "off");
    let dir = gw.into_dir();
    // Simulate a crash between the 250 and delivery: an entry left in the spool.
    let spool = dir.path().join("data/spool");
    // Received just now: a fixed old date would be past the trace retention (90 days), and the
    // retention purge at start would race the test for the record.
    let received_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let envelope = serde_json::json!({
        "trace_id": "00000000000A1DEADBEEF0",
        "tenant": "contoso",
        "mail_from": "a@example.org",
        "recipients": ["bob@contoso.com"],
        "trace": {
            "trace_id": "00000000000A1DEADBEEF0", "tenant": "contoso", "received_at": received_at,
            "client_ip": "127.0.0.1", "helo": null, "tls": null, "mail_from": "a@example.org",
            "header_from": null, "message_id": null, "subject": "left behind", "size": 10,
            "attribution": "anonymous", "connector": null, "direct_send": false,
            "auth": {"spf": null, "dkim": null, "dmarc": null, "arc": null, "compauth": null},
            "status": "pending",
            "recipients": [{"address": "bob@contoso.com", "status": "pending", "reply": "250 2.1.5 Recipient OK"}],
            "events": []
        }
    });
    std::fs::write(
        spool.join("00000000000A1DEADBEEF0.contoso.msg"),
        b"Subject: left behind\r\n\r\nhi\r\n",
    )
    .unwrap();
    std::fs::write(
        spool.join("00000000000A1DEADBEEF0.contoso.env"),
        envelope.to_string(),
    )
    .unwrap();
    // A half-written entry (no envelope) was never acknowledged and is discarded.
    std::fs::write(spool.join("00000000000A2.contoso.msg"), b"partial").unwrap();
    let gw = Gateway::start_in(dir, "");
    let mail = gw.wait_maildir("contoso", "bob@contoso.com", 1);
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("Subject: left behind"));
    let trace = gw.trace_until("contoso", &[], |v| {
        v.len() == 1 && v[0]["status"] == "delivered"
    });
    assert_eq!(trace[0]["status"], "delivered");
}

#[test]
fn bad_cli_values_exit_2_and_change_nothing() {
    let gw = Gateway::start("");
    gw.ok(&["tenant", "add", "contoso"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "connector",
                "add",
                "x",
                "--tenant",
                "contoso",
                "--sender-ip",
                "10.0.0.0/33",
            ],
            "10.0.0.0/33",
        ),
        (
            &[
                "org",
                "set",
                "--tenant",
                "contoso",
                "--reject-direct-send",
                "maybe",
            ],
            "maybe",
        ),
        (
            &["domain", "add", "not a domain", "--tenant", "contoso"],
            "not a domain",
        ),
        (&["tenant", "add", "Bad/Name"], "Bad/Name"),
        (
            &[
                "connector",
                "add",
                "x",
                "--tenant",
                "contoso",
                "--tls-cert-name",
                "*.*.x.com",
            ],
            "*.*.x.com",
        ),
        (
            &["domain", "add", "contoso.com", "--tenant", "nobody"],
            "nobody",
        ),
    ];
    for (args, named) in cases {
        let out = gw.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        // SPEC §10: a value the server does not know (a tenant) is "not found" (3).
        let expected = if *named == "nobody" { 3 } else { 2 };
        assert_eq!(out.status.code(), Some(expected), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?} must name {named:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    let connectors: Vec<serde_json::Value> =
        serde_json::from_str(&gw.ok(&["connector", "list", "--tenant", "contoso", "--json"]))
            .unwrap();
    assert!(connectors.is_empty());
    let org: serde_json::Value =
        serde_json::from_str(&gw.ok(&["org", "show", "--tenant", "contoso", "--json"])).unwrap();
    assert_eq!(org["reject_direct_send"], "off");
    // A wrong token is refused.
    let out = std::process::Command::new(BIN)
        .args(["tenant", "list", "--server", &gw.admin, "--token", "wrong"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn bad_config_fails_at_start_naming_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[smtp]\nmax_recipients = 0\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.toml")
            && err.contains("smtp.max_recipients")
            && err.contains("greater than 0"),
        "{err}"
    );
    assert!(!dir.path().join("data").exists(), "nothing created");
}

/// PostgreSQL storage (where the server is reachable) and two nodes sharing it: a change made on
/// one node reaches the other without restart.
#[tokio::test]
async fn postgres_storage_shared_by_two_nodes() {
    let Some(db) = Database::fresh("e2e").await else {
        return;
    };
    let url = db.url.clone();
    let config = format!("[storage]\nurl = \"{url}\"\n");
    {
        let a = Gateway::start(&config);
        let b = Gateway::start(&config);
        contoso(&a, "on");
        let msg = message("ceo@contoso.com", "bob@contoso.com", "two nodes");
        // Node B learns of A's changes by polling the directory generation.
        let refused_on_b = async {
            for _ in 0..100 {
                let mut s = session(b.smtp, "127.0.0.1").await;
                if s.mail("ceo@contoso.com", &["bob@contoso.com"], &msg).await[1] == R5768 {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            false
        };
        assert!(
            refused_on_b.await,
            "node B never enforced the setting made on node A"
        );
        a.ok(&[
            "connector",
            "add",
            "onprem",
            "--tenant",
            "contoso",
            "--sender-ip",
            "127.0.0.1",
        ]);
        let mut accepted = None;
        for _ in 0..100 {
            let mut s = session(b.smtp, "127.0.0.1").await;
            let r = s.mail("ceo@contoso.com", &["bob@contoso.com"], &msg).await;
            if r.len() == 4 {
                accepted = Some(queued_id(&r[3]));
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let id = accepted.expect("node B never applied the connector added on node A");
        // One trace, whichever node is asked.
        let t = a.trace_until("contoso", &["--status", "delivered"], |v| {
            v.iter().any(|r| r["trace_id"] == id.as_str())
        });
        assert!(
            t.iter()
                .any(|r| r["trace_id"] == id.as_str() && r["connector"] == "onprem")
        );
        assert_eq!(b.wait_maildir("contoso", "bob@contoso.com", 1).len(), 1);
    }
    db.drop_it().await;
}

/// `/healthz` and `/readyz` for probes; `/metrics` (Prometheus text, behind the admin token)
/// parsed with a Prometheus text parser after real traffic.
#[tokio::test]
async fn metrics_and_probes() {
    let gw = Gateway::start("");
    contoso(&gw, "on");
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert_eq!(
        s.mail("ceo@contoso.com", &["bob@contoso.com"], "").await[1],
        R5768
    );
    let r = s
        .mail(
            "a@partner.example",
            &["bob@contoso.com"],
            &message("a@partner.example", "bob@contoso.com", "m"),
        )
        .await;
    queued_id(&r[3]);
    s.cmd("QUIT").await;

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |path: &str, token: Option<&str>| {
        let mut req = agent.get(format!("{}{path}", gw.admin));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.call().unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap())
    };
    assert_eq!(get("/healthz", None), (200, "ok\n".to_string()));
    assert_eq!(get("/readyz", None), (200, "ready\n".to_string()));
    assert_eq!(
        get("/metrics", None).0,
        401,
        "metrics name tenants: token required"
    );
    let token = std::fs::read_to_string(gw.data().join("admin.token")).unwrap();
    let (status, text) = get("/metrics", Some(token.trim()));
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text exposition");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert!(value("portcullis_connections_total", &[]) >= 1.0, "{text}");
    assert_eq!(
        value(
            "portcullis_rcpt_replies_total",
            &[("code", "550"), ("status", "5.7.68")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            "portcullis_direct_send_refused_total",
            &[("tenant", "contoso")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value("portcullis_messages_total", &[("outcome", "accepted")]),
        1.0,
        "{text}"
    );
    assert!(text.contains("portcullis_queue_depth"), "{text}");
}

/// An operator-defined sending service a tenant opted into attributes as `trusted-service`.
#[tokio::test]
async fn trusted_service_attributes_mail_from_its_addresses() {
    let gw = Gateway::start("[services.mailer]\nsender_ips = [\"127.0.0.77/32\"]\n");
    contoso(&gw, "on");
    let msg = message("news@contoso.com", "bob@contoso.com", "service");
    let mut s = session(gw.smtp, "127.0.0.77").await;
    assert_eq!(
        s.mail("news@contoso.com", &["bob@contoso.com"], &msg).await[1],
        R5768,
        "not trusted yet"
    );
    let out = gw.cli(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--trust-service",
        "nosuch",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"));
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--trust-service",
        "mailer",
    ]);
    queued_id(&s.mail("news@contoso.com", &["bob@contoso.com"], &msg).await[3]);
    let mail = gw.wait_maildir("contoso", "bob@contoso.com", 1);
    assert!(
        mail[0].contains("X-Portcullis-Attribution: tenant=contoso; auth-as=trusted-service; connector=\"service:mailer\""),
        "{}",
        mail[0]
    );
}

/// Threads of the running gateway by name, with their nice values (from /proc).
fn thread_priorities(pid: u32) -> Vec<(String, i64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Field 19 is the nice value; fields after the parenthesized name, which may hold spaces.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let nice = after_name.split(' ').nth(16).unwrap().parse().unwrap();
        threads.push((comm.trim().to_string(), nice));
    }
    threads
}

#[tokio::test]
async fn background_threads_run_below_the_sessions_priority() {
    let gw = Gateway::start("");
    contoso(&gw, "on");
    // One delivered message and one refusal: deliveries and the trace writer have worked.
    let mut s = session(gw.smtp, "127.0.0.7").await;
    let r = s
        .mail(
            "ann@fabrikam.example",
            &["bob@contoso.com"],
            &message("ann@fabrikam.example", "bob@contoso.com", "hello"),
        )
        .await;
    queued_id(&r[3]);
    let r = s.mail("ceo@contoso.com", &["bob@contoso.com"], "").await;
    assert_eq!(r[1], R5768);
    gw.wait_maildir("contoso", "bob@contoso.com", 1);
    gw.trace_until("contoso", &["--status", "rejected"], |v| v.len() == 1);

    let threads = thread_priorities(gw.pid());
    let nice_of = |name: &str| -> Vec<i64> {
        threads
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, nice)| *nice)
            .collect()
    };
    let main = nice_of("portcullis");
    assert_eq!(main.len(), 1, "{threads:?}");
    let base = main[0];
    let background = (base + 5).min(19);
    let sessions = nice_of("tokio-rt-worker");
    assert!(!sessions.is_empty(), "{threads:?}");
    assert!(sessions.iter().all(|n| *n == base), "{threads:?}");
    let delivery = nice_of("delivery");
    assert!(!delivery.is_empty(), "{threads:?}");
    assert!(delivery.iter().all(|n| *n == background), "{threads:?}");
    assert_eq!(nice_of("trace-writer"), vec![background], "{threads:?}");
    // The trace writer's SQLite connection runs on a thread it started, at its priority; the
    // connections of the admin API and the sessions stay at the sessions' priority.
    let sqlite = nice_of("sqlx-sqlite-wor");
    assert_eq!(
        sqlite.iter().filter(|n| **n == background).count(),
        1,
        "{threads:?}"
    );
    assert!(
        sqlite.iter().filter(|n| **n == base).count() >= 1,
        "{threads:?}"
    );
}

/// A log consumer that stops reading (a pipe to a stalled journal) never stalls SMTP: the
/// sessions hand their lines to the log writer and go on; lines beyond its buffer are dropped
/// and counted in the metrics.
#[tokio::test]
async fn a_log_reader_that_stops_reading_does_not_stall_sessions() {
    let (gw, _unread) =
        Gateway::start_with_unread_log("[smtp]\nmax_errors = 1000000\nmax_commands = 1000000\n");
    let mut s = session(gw.smtp, "127.0.0.7").await;
    assert!(
        s.cmd("MAIL FROM:<ann@fabrikam.example>")
            .await
            .starts_with("250")
    );
    // A refused relay logs a line of ~150 bytes at info; a pipe holds 64 KiB: 3 000 fill it
    // several times over.
    for i in 0..3000 {
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            s.cmd(&format!("RCPT TO:<user{i}@nowhere.example>")),
        )
        .await
        .unwrap_or_else(|_| panic!("no reply to RCPT {i} within 10 s"));
        assert_eq!(r, R5764, "RCPT {i}");
    }
    // Past the writer's buffer (65 536 lines), pipelined a thousand at a time.
    let batch: String = (0..1000)
        .map(|i| format!("RCPT TO:<more{i}@nowhere.example>\r\n"))
        .collect();
    for round in 0..70 {
        tokio::time::timeout(std::time::Duration::from_secs(30), async {
            s.send(batch.as_bytes()).await;
            for _ in 0..1000 {
                assert_eq!(s.reply().await, R5764);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no replies to batch {round} within 30 s"));
    }
    assert!(s.cmd("QUIT").await.starts_with("221"));
    // Counted within the watcher's 10 s.
    let token = std::fs::read_to_string(gw.data().join("admin.token")).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = agent
            .get(format!("{}/metrics", gw.admin))
            .header("Authorization", format!("Bearer {}", token.trim()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let dropped = text
            .lines()
            .find_map(|l| l.strip_prefix("portcullis_log_lines_dropped_total "))
            .map(|v| v.trim().parse::<f64>().unwrap());
        if let Some(n) = dropped {
            assert!(n > 0.0 && n < 73_000.0, "{n}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no portcullis_log_lines_dropped_total after 20 s:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// The session's own refusals at the end of DATA — a bare LF (the smuggling guard) and a
/// message over the size limit — are in the trace and the log like every other refusal.
#[tokio::test]
async fn refusals_at_the_end_of_data_by_the_protocol_are_traced() {
    let gw = Gateway::start("[smtp]\nmax_message_size = 2000\n");
    contoso(&gw, "off");
    for (subject, body, expect) in [
        (
            "smuggled",
            "Subject: smuggled\r\n\r\nline\nbare\r\n".to_string(),
            "554 5.6.0",
        ),
        (
            "too big",
            format!("Subject: too big\r\n\r\n{}\r\n", "x".repeat(3000)),
            "552 5.3.4",
        ),
    ] {
        let mut s = session(gw.smtp, "127.0.0.1").await;
        assert!(
            s.cmd("MAIL FROM:<a@partner.example>")
                .await
                .starts_with("250")
        );
        assert!(s.cmd("RCPT TO:<bob@contoso.com>").await.starts_with("250"));
        assert!(s.cmd("DATA").await.starts_with("354"));
        s.send(body.as_bytes()).await;
        s.send(b".\r\n").await;
        let r = s.reply().await;
        assert!(r.starts_with(expect), "{subject}: {r}");
        // The session goes on.
        assert!(s.cmd("NOOP").await.starts_with("250"), "{subject}");
    }
    let t = gw.trace_until("contoso", &["--status", "rejected"], |v| v.len() == 2);
    assert_eq!(t.len(), 2, "{t:#?}");
    for (r, expect) in t.iter().zip(["552 5.3.4", "554 5.6.0"]) {
        let rcpt = &r["recipients"][0];
        assert_eq!(rcpt["status"], "rejected", "{r:#}");
        assert!(rcpt["reply"].as_str().unwrap().starts_with(expect), "{r:#}");
        assert!(
            r["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["event"] == "REJECT" && e["detail"].as_str().unwrap().contains(expect)),
            "{r:#}"
        );
    }
}

/// A database that cannot be reached fails the start within `[storage] connect_timeout`,
/// naming the server and never the password, with each cause said once and nothing written
/// into the data directory.
#[test]
fn storage_errors_name_the_server_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    for (url, expect) in [
        (
            "postgres://portcullis:s3cret-pw@127.0.0.2:5999/x",
            "no connection to 127.0.0.2:5999 within 1 s",
        ),
        (
            "postgres://portcullis:s3cret-pw@127.0.0.1:5432/no_such_db_here",
            "no_such_db_here",
        ),
    ] {
        let config = dir.path().join("p.toml");
        std::fs::write(
            &config,
            format!("[storage]\nurl = \"{url}\"\nconnect_timeout = \"1s\"\n"),
        )
        .unwrap();
        let data = dir.path().join("data");
        let started = std::time::Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("--data-dir")
            .arg(&data)
            .args([
                "serve",
                "--smtp-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{text}"
        );
        assert!(
            !text.contains("s3cret-pw"),
            "the password is printed: {text}"
        );
        assert!(text.contains("portcullis:***@"), "{text}");
        assert!(text.contains(expect), "{text}");
        assert_eq!(
            text.matches(expect).count(),
            1,
            "said more than once: {text}"
        );
        assert!(!data.exists(), "the data directory was written: {text}");
    }
}

/// A listing piped into a reader that stops early (`| head -1`) ends quietly with status 0, and
/// a `--server` without a scheme is a bad value naming it.
#[tokio::test]
async fn the_cli_in_a_pipe_and_a_server_without_scheme() {
    let gw = Gateway::start("");
    contoso(&gw, "on");
    let mut child = std::process::Command::new(BIN)
        .args(["tenant", "list", "--server", &gw.admin, "--data-dir"])
        .arg(gw.data())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the answer is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let admin = gw.admin.trim_start_matches("http://").to_string();
    let out = std::process::Command::new(BIN)
        .args(["tenant", "list", "--server", &admin, "--data-dir"])
        .arg(gw.data())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("invalid --server {admin:?}")),
        "{err}"
    );
}
