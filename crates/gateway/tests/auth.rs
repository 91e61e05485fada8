//! Email authentication end to end: the real binary resolving through an in-process
//! authoritative DNS server, messages signed (DKIM, ARC) in the test, assertions on the reply,
//! the `Authentication-Results` header in the Maildir file and the trace.

mod common;

use common::*;
use portcullis_testdns::sign::DkimKey;
use std::time::Duration;

/// A message with the headers DKIM signs.
fn msg(from: &str, to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{}@test.example>\r\n\r\nHello, this is the body.\r\n",
        subject.replace(' ', "-")
    )
    .into_bytes()
}

fn text(m: &[u8]) -> String {
    String::from_utf8(m.to_vec()).unwrap()
}

/// Sends one message; returns the RCPT reply and, when accepted, the end-of-DATA reply.
async fn send(gw: &Gateway, ip: &str, from: &str, to: &str, message: &[u8]) -> (String, String) {
    let mut s = session(gw.smtp, ip).await;
    let r = s.mail(from, &[to], &text(message)).await;
    let data = r.get(3).cloned().unwrap_or_default();
    (r[1].clone(), data)
}

fn tenant(gw: &Gateway, name: &str, domain: &str) {
    gw.ok(&["tenant", "add", name]);
    gw.ok(&["domain", "add", domain, "--tenant", name]);
}

/// The `Authentication-Results` header of the newest message of a mailbox, unfolded.
fn auth_results(gw: &Gateway, tenant: &str, rcpt: &str, n: usize) -> String {
    let mail = gw.wait_maildir(tenant, rcpt, n);
    assert_eq!(mail.len(), n, "{n} message(s) for {rcpt}");
    let m = mail
        .last()
        .unwrap()
        .replace("\r\n\t", " ")
        .replace("\r\n ", " ");
    m.lines()
        .find(|l| l.starts_with("Authentication-Results: "))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn spf_results_and_dns_failures() {
    let gw = Gateway::start("");
    tenant(&gw, "contoso", "contoso.com");
    let dns = &gw.dns;
    dns.txt("pass.example", "v=spf1 ip4:127.0.0.1 -all");
    dns.txt("fail.example", "v=spf1 ip4:192.0.2.1 -all");
    dns.txt("soft.example", "v=spf1 ip4:192.0.2.1 ~all");
    dns.txt("neutral.example", "v=spf1 ?all");
    dns.txt("perm.example", "v=spf1 ip4:not-an-ip -all");
    // What mail-auth's SPF got wrong (issue 22), now RFC 7208: a prefix over 32 bits passed, a
    // numeric top label deferred (451) for ever, the third void lookup was not a permerror.
    dns.txt("cidr.example", "v=spf1 ip4:127.0.0.1/33 -all");
    dns.txt("numeric.example", "v=spf1 a:mail.123 -all");
    dns.txt(
        "voids.example",
        "v=spf1 a:gone1.example a:gone2.example a:gone3.example +all",
    );
    dns.txt("twice.example", "v=spf1 +all");
    dns.txt("twice.example", "v=spf1 -all");
    dns.timeout("slow.example");
    dns.servfail("broken.example");
    let cases = [
        ("pass.example", "spf=pass"),
        ("fail.example", "spf=fail"),
        ("soft.example", "spf=softfail"),
        ("neutral.example", "spf=neutral"),
        ("none.example", "spf=none"),
        ("perm.example", "spf=permerror"),
        ("cidr.example", "spf=permerror"),
        ("numeric.example", "spf=permerror"),
        ("voids.example", "spf=permerror"),
        ("twice.example", "spf=permerror"),
    ];
    for (i, (domain, want)) in cases.iter().enumerate() {
        let from = format!("a@{domain}");
        let (rcpt, data) = send(
            &gw,
            "127.0.0.1",
            &from,
            "bob@contoso.com",
            &msg(&from, "bob@contoso.com", domain),
        )
        .await;
        assert_eq!(rcpt, "250 2.1.5 Recipient OK", "{domain}");
        assert!(data.starts_with("250 2.6.0"), "{domain}: {data}");
        let ar = auth_results(&gw, "contoso", "bob@contoso.com", i + 1);
        assert!(
            ar.starts_with("Authentication-Results: mx.test.example;"),
            "{ar}"
        );
        assert!(
            ar.contains(&format!("{want} ")),
            "{domain}: expected {want} in {ar}"
        );
        assert!(ar.contains(&format!("smtp.mailfrom={from}")), "{ar}");
    }
    // The trace says what made the record a permerror.
    for (domain, why) in [
        ("cidr.example", "invalid prefix length \"/33\""),
        ("numeric.example", "invalid domain \"mail.123\""),
        ("voids.example", "more than 2 void DNS lookups"),
        ("twice.example", "more than one SPF record"),
    ] {
        let t = gw.trace_until("contoso", &["--sender", &format!("a@{domain}")], |v| {
            !v.is_empty()
        });
        let id = t[0]["trace_id"].as_str().unwrap().to_string();
        let full: serde_json::Value =
            serde_json::from_str(&gw.ok(&["trace", "show", &id, "--tenant", "contoso", "--json"]))
                .unwrap();
        let auth = full["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"] == "AUTH")
            .unwrap_or_else(|| panic!("{full:#}"));
        let detail = auth["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("spf=permerror (") && detail.contains(why),
            "{domain}: {detail}"
        );
    }
    // A DNS time-out or SERVFAIL defers anonymous mail; it is never refused.
    for domain in ["slow.example", "broken.example"] {
        let from = format!("a@{domain}");
        let (rcpt, _) = send(
            &gw,
            "127.0.0.1",
            &from,
            "bob@contoso.com",
            &msg(&from, "bob@contoso.com", "x"),
        )
        .await;
        assert_eq!(
            rcpt, "451 4.7.24 SPF validation error (temporary DNS failure), please try again later",
            "{domain}"
        );
    }
    let t = gw.trace_until("contoso", &["--status", "deferred"], |v| v.len() == 2);
    if t.len() != 2 {
        eprintln!("{}", gw.ok(&["trace", "--tenant", "contoso", "--json"]));
    }
    assert_eq!(t.len(), 2, "deferrals are traced");
    assert!(
        t[0]["recipients"][0]["reply"]
            .as_str()
            .unwrap()
            .starts_with("451 4.7.24")
    );
    // An attributed sender is not held up by the DNS failure.
    gw.ok(&[
        "connector",
        "add",
        "onprem",
        "--tenant",
        "contoso",
        "--type",
        "on-premises",
        "--sender-ip",
        "127.0.0.9",
    ]);
    let (rcpt, data) = send(
        &gw,
        "127.0.0.9",
        "a@slow.example",
        "bob@contoso.com",
        &msg("a@slow.example", "bob@contoso.com", "x"),
    )
    .await;
    assert_eq!(rcpt, "250 2.1.5 Recipient OK");
    assert!(data.starts_with("250 2.6.0"), "{data}");
}

#[tokio::test]
async fn dkim_dmarc_and_the_dns_cache() {
    let gw = Gateway::start("");
    tenant(&gw, "contoso", "contoso.com");
    let dns = &gw.dns;
    let rsa = DkimKey::rsa();
    let ed = DkimKey::ed25519();
    dns.txt("rsa._domainkey.signer.example", &rsa.dns_record());
    dns.txt("ed._domainkey.signer.example", &ed.dns_record());
    dns.txt("_dmarc.signer.example", "v=DMARC1; p=reject");
    dns.txt("signer.example", "v=spf1 -all");
    dns.txt("spfonly.example", "v=spf1 ip4:127.0.0.1 -all");
    dns.txt("_dmarc.spfonly.example", "v=DMARC1; p=reject");
    dns.txt("_dmarc.strict.example", "v=DMARC1; p=reject");
    dns.txt("_dmarc.quar.example", "v=DMARC1; p=quarantine");
    dns.txt("_dmarc.lax.example", "v=DMARC1; p=none");
    dns.txt("_dmarc.parent.example", "v=DMARC1; p=reject");
    let rcpt = "bob@contoso.com";
    let mut n = 0;
    let mut deliver = |want: &str| {
        n += 1;
        let ar = auth_results(&gw, "contoso", rcpt, n);
        for w in want.split(" & ") {
            assert!(ar.contains(w), "expected {w:?} in {ar}");
        }
    };

    // DKIM pass (RSA), aligned: DMARC pass -> compauth pass 100.
    let m = rsa.sign(
        &msg("a@signer.example", rcpt, "rsa"),
        "signer.example",
        "rsa",
    );
    let (_, data) = send(&gw, "127.0.0.1", "bounce@other.example", rcpt, &m).await;
    assert!(data.starts_with("250 2.6.0"), "{data}");
    deliver(
        "dkim=pass header.d=signer.example header.s=rsa & dmarc=pass header.from=signer.example policy.dmarc=reject & compauth=pass reason=100",
    );
    // Ed25519.
    let m = ed.sign(&msg("a@signer.example", rcpt, "ed"), "signer.example", "ed");
    send(&gw, "127.0.0.1", "a@signer.example", rcpt, &m).await;
    deliver("dkim=pass header.d=signer.example header.s=ed & dmarc=pass");
    // DMARC pass through SPF alignment alone.
    send(
        &gw,
        "127.0.0.1",
        "a@spfonly.example",
        rcpt,
        &msg("a@spfonly.example", rcpt, "spf aligned"),
    )
    .await;
    deliver("spf=pass & dmarc=pass header.from=spfonly.example & compauth=pass reason=100");
    // Tampered body: DKIM fails (mail-auth says neutral; we record it as a failure), DMARC reject -> 550 5.7.509.
    let mut m = rsa.sign(
        &msg("a@signer.example", rcpt, "tampered"),
        "signer.example",
        "rsa",
    );
    let len = m.len();
    m.splice(len - 8..len - 2, b"CHANGE".iter().copied());
    let (_, data) = send(&gw, "127.0.0.1", "a@other.example", rcpt, &m).await;
    assert_eq!(
        data,
        "550 5.7.509 Access denied, sending domain signer.example does not pass DMARC verification and has a DMARC policy of reject"
    );
    let t = gw.trace_until("contoso", &["--status", "rejected"], |v| v.len() == 1);
    assert_eq!(t[0]["auth"]["dkim"], "fail");
    assert_eq!(t[0]["auth"]["dmarc"], "fail");
    assert_eq!(
        t[0]["recipients"][0]["reply"].as_str().unwrap()[..11],
        *"550 5.7.509"
    );
    // No signature at all, p=reject: refused too; the tenant can switch DMARC enforcement off.
    let (_, data) = send(
        &gw,
        "127.0.0.1",
        "a@other.example",
        rcpt,
        &msg("a@strict.example", rcpt, "unsigned"),
    )
    .await;
    assert!(data.starts_with("550 5.7.509"), "{data}");
    gw.ok(&["org", "set", "--tenant", "contoso", "--honor-dmarc", "off"]);
    let (_, data) = send(
        &gw,
        "127.0.0.1",
        "a@other.example",
        rcpt,
        &msg("a@strict.example", rcpt, "unsigned ok"),
    )
    .await;
    assert!(data.starts_with("250 2.6.0"), "{data}");
    deliver(
        "dkim=none & dmarc=fail & header.from=strict.example policy.dmarc=reject & compauth=fail reason=000",
    );
    gw.ok(&["org", "set", "--tenant", "contoso", "--honor-dmarc", "on"]);
    // p=quarantine: accepted, held in the quarantine (not delivered).
    let (_, data) = send(
        &gw,
        "127.0.0.1",
        "a@other.example",
        rcpt,
        &msg("a@quar.example", rcpt, "quarantine"),
    )
    .await;
    assert!(data.starts_with("250 2.6.0"), "{data}");
    let held: Vec<serde_json::Value> = serde_json::from_str(&gw.ok(&[
        "quarantine",
        "list",
        "--tenant",
        "contoso",
        "--reason",
        "dmarc-quarantine",
        "--json",
    ]))
    .unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["header_from"], "a@quar.example");
    assert_eq!(gw.maildir("contoso", rcpt).len(), 4, "not delivered");
    // p=none: delivered, no action.
    send(
        &gw,
        "127.0.0.1",
        "a@other.example",
        rcpt,
        &msg("a@lax.example", rcpt, "none"),
    )
    .await;
    deliver("dmarc=fail & header.from=lax.example policy.dmarc=none & compauth=fail reason=001");
    // Tree walk: From a subdomain, policy published at the parent.
    let (_, data) = send(
        &gw,
        "127.0.0.1",
        "a@other.example",
        rcpt,
        &msg("a@deep.sub.parent.example", rcpt, "walk"),
    )
    .await;
    assert!(
        data.starts_with("550 5.7.509"),
        "the parent's p=reject applies: {data}"
    );

    // Warm cache: the same message again asks the DNS server nothing new.
    let m = rsa.sign(
        &msg("a@signer.example", rcpt, "cached"),
        "signer.example",
        "rsa",
    );
    send(&gw, "127.0.0.1", "a@signer.example", rcpt, &m).await;
    let before = gw.dns.queries();
    send(&gw, "127.0.0.1", "a@signer.example", rcpt, &m).await;
    assert_eq!(gw.dns.queries(), before, "answers are cached by TTL");
}

#[tokio::test]
async fn forwarded_and_saas_mail_and_reject_direct_send_exemptions() {
    let gw = Gateway::start("");
    tenant(&gw, "contoso", "contoso.com");
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "on",
    ]);
    let dns = &gw.dns;
    let key = DkimKey::rsa();
    dns.txt("arc._domainkey.forwarder.example", &key.dns_record());
    dns.txt("arc._domainkey.evil.example", &key.dns_record());
    dns.txt("s1._domainkey.contoso.com", &key.dns_record());
    dns.txt("_dmarc.contoso.com", "v=DMARC1; p=reject");
    let rcpt = "bob@contoso.com";
    const R5768: &str = "550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources";

    // A contoso user's message, forwarded by a list without SRS: P1 stays contoso.com, the
    // forwarder's IP is nobody's connector. Sealed by the forwarder, and by an untrusted party.
    let original = msg("ceo@contoso.com", "list@forwarder.example", "forwarded");
    let trusted = key
        .arc_seal(&original, "forwarder.example", "arc", dns)
        .await;
    let untrusted = key.arc_seal(&original, "evil.example", "arc", dns).await;

    // No exemption configured: refused at RCPT, as ever.
    let (r, _) = send(&gw, "127.0.0.5", "ceo@contoso.com", rcpt, &trusted).await;
    assert_eq!(r, R5768);

    // Trusting the forwarder moves the decision to end of DATA.
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--arc-trusted-sealer",
        "forwarder.example",
    ]);
    let (r, data) = send(&gw, "127.0.0.5", "ceo@contoso.com", rcpt, &trusted).await;
    assert_eq!(r, "250 2.1.5 Recipient OK");
    assert!(data.starts_with("250 2.6.0"), "trusted sealer: {data}");
    let ar = auth_results(&gw, "contoso", rcpt, 1);
    assert!(
        ar.contains("arc=pass") && ar.contains("compauth=pass reason=130"),
        "{ar}"
    );
    let (_, data) = send(&gw, "127.0.0.5", "ceo@contoso.com", rcpt, &untrusted).await;
    assert_eq!(data, R5768, "untrusted sealer");
    let t = gw.trace_until("contoso", &[], |v| {
        v.iter().any(|r| r["status"] == "delivered")
    });
    let ok = t.iter().find(|r| r["status"] == "delivered").unwrap();
    assert_eq!(ok["auth"]["arc"], "pass");
    assert_eq!(ok["auth"]["compauth"], "pass");
    assert!(ok["events"].as_array().unwrap().iter().any(|e| {
        e["detail"]
            .as_str()
            .unwrap()
            .contains("trusted ARC sealer forwarder.example")
    }));

    // A SaaS sender mailing as newsletter@contoso.com from its own IP, DKIM-signed with a key
    // contoso delegated (d=contoso.com): accepted only with the explicit opt-in.
    let saas = key.sign(
        &msg("newsletter@contoso.com", rcpt, "saas"),
        "contoso.com",
        "s1",
    );
    let (r, data) = send(&gw, "127.0.0.6", "newsletter@contoso.com", rcpt, &saas).await;
    assert_eq!(
        r, "250 2.1.5 Recipient OK",
        "deferred to DATA while a sealer is configured"
    );
    assert_eq!(data, R5768, "no opt-in yet");
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--direct-send-allow-dkim-aligned",
        "on",
    ]);
    let (_, data) = send(&gw, "127.0.0.6", "newsletter@contoso.com", rcpt, &saas).await;
    assert!(data.starts_with("250 2.6.0"), "opted in: {data}");
    let ar = auth_results(&gw, "contoso", rcpt, 2);
    assert!(
        ar.contains("dkim=pass header.d=contoso.com header.s=s1") && ar.contains("dmarc=pass"),
        "{ar}"
    );
    // A plain spoof still gets nothing: unsigned, anonymous, own domain.
    let (_, data) = send(
        &gw,
        "127.0.0.6",
        "ceo@contoso.com",
        rcpt,
        &msg("ceo@contoso.com", rcpt, "spoof"),
    )
    .await;
    assert_eq!(data, R5768);
    // Clearing the sealer list with '' (and the opt-in) brings the RCPT-time refusal back.
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--arc-trusted-sealer",
        "",
        "--direct-send-allow-dkim-aligned",
        "off",
    ]);
    let (r, _) = send(&gw, "127.0.0.5", "ceo@contoso.com", rcpt, &trusted).await;
    assert_eq!(r, R5768);
}

#[tokio::test]
async fn own_domain_spoofs_get_the_spoof_action_and_our_headers_cannot_be_forged() {
    let gw = Gateway::start("");
    tenant(&gw, "contoso", "contoso.com");
    let rcpt = "bob@contoso.com";
    // P1 foreign (so not direct send), P2 contoso.com, nothing authenticates: compauth fail 601.
    let forged = format!(
        "Authentication-Results: mx.test.example; dkim=pass; compauth=pass reason=100\r\n{}",
        text(&msg("ceo@contoso.com", rcpt, "spoof"))
    );
    let (_, data) = send(&gw, "127.0.0.1", "x@bulk.example", rcpt, forged.as_bytes()).await;
    assert!(data.starts_with("250 2.6.0"), "{data}");
    let mail = gw.wait_maildir("contoso", rcpt, 1);
    let m = &mail[0];
    assert!(
        m.contains("X-Spam-Flag: YES\r\nX-Portcullis-SCL: 5\r\n"),
        "{m}"
    );
    assert_eq!(
        m.matches("Authentication-Results: mx.test.example").count(),
        1,
        "the forged one is gone: {m}"
    );
    assert!(m.contains("compauth=fail reason=601"), "{m}");
    // spoof_action none: delivered unmarked; quarantine: marked for quarantine.
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--spoof-action",
        "none",
    ]);
    send(
        &gw,
        "127.0.0.1",
        "x@bulk.example",
        rcpt,
        &msg("ceo@contoso.com", rcpt, "spoof 2"),
    )
    .await;
    let mail = gw.wait_maildir("contoso", rcpt, 2);
    assert!(!mail[1].contains("X-Spam-Flag"), "{}", mail[1]);
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--spoof-action",
        "quarantine",
    ]);
    send(
        &gw,
        "127.0.0.1",
        "x@bulk.example",
        rcpt,
        &msg("ceo@contoso.com", rcpt, "spoof 3"),
    )
    .await;
    let (_, data) = send(
        &gw,
        "127.0.0.1",
        "x@bulk.example",
        rcpt,
        &msg("ceo@contoso.com", rcpt, "spoof 4"),
    )
    .await;
    assert!(data.starts_with("250 2.6.0"), "{data}");
    let t = gw.trace_until("contoso", &["--status", "quarantined"], |v| v.len() == 2);
    assert_eq!(t.len(), 2, "spoofs held: {t:?}");
    assert_eq!(gw.maildir("contoso", rcpt).len(), 2, "not delivered");
}

#[tokio::test]
async fn dns_timeout_at_end_of_data_defers_the_message() {
    let gw = Gateway::start("");
    tenant(&gw, "contoso", "contoso.com");
    gw.dns.txt("ok.example", "v=spf1 ip4:127.0.0.1 -all");
    gw.dns.timeout("_dmarc.ok.example");
    let rcpt = "bob@contoso.com";
    let (r, data) = send(
        &gw,
        "127.0.0.1",
        "a@ok.example",
        rcpt,
        &msg("a@ok.example", rcpt, "slow dmarc"),
    )
    .await;
    assert_eq!(r, "250 2.1.5 Recipient OK");
    assert_eq!(
        data,
        "451 4.7.0 Temporary failure of email authentication (DNS), please try again later"
    );
    assert!(gw.maildir("contoso", rcpt).is_empty(), "nothing delivered");
    let t = gw.trace_until("contoso", &["--status", "deferred"], |v| v.len() == 1);
    assert_eq!(t.len(), 1);
    // The failure is remembered for the From domain: the retry is deferred again at once,
    // without asking DNS (the SPF answer is in the resolver's cache).
    let queries = gw.dns.queries();
    let (r, data) = send(
        &gw,
        "127.0.0.1",
        "a@ok.example",
        rcpt,
        &msg("a@ok.example", rcpt, "slow dmarc again"),
    )
    .await;
    assert_eq!(r, "250 2.1.5 Recipient OK");
    assert!(data.starts_with("451 4.7.0 "), "{data}");
    assert_eq!(gw.dns.queries(), queries, "no DNS query for the retry");
    let t = gw.trace_until("contoso", &["--status", "deferred"], |v| v.len() == 2);
    let shown: Vec<String> = t
        .iter()
        .map(|r| {
            let id = r["trace_id"].as_str().unwrap();
            gw.ok(&["trace", "show", id, "--tenant", "contoso", "--json"])
        })
        .collect();
    assert!(
        shown
            .iter()
            .any(|s| s.contains("DNS for ok.example failed moments ago")),
        "{shown:?}"
    );
}

#[tokio::test]
async fn simulate_explains_the_decision() {
    let gw = Gateway::start("");
    tenant(&gw, "contoso", "contoso.com");
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "on",
    ]);
    gw.ok(&[
        "connector",
        "add",
        "onprem",
        "--tenant",
        "contoso",
        "--type",
        "on-premises",
        "--sender-ip",
        "10.1.0.0/16",
    ]);
    gw.ok(&[
        "connector",
        "add",
        "relay",
        "--tenant",
        "contoso",
        "--tls-cert-name",
        "*.relay.contoso.com",
        "--require-tls",
    ]);
    gw.dns.txt("contoso.com", "v=spf1 ip4:10.1.0.0/16 -all");
    let run = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["simulate", "--tenant", "contoso", "--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&gw.ok(&all)).unwrap()
    };
    let r = run(&[
        "--ip",
        "203.0.113.9",
        "--mail-from",
        "ceo@contoso.com",
        "--rcpt",
        "bob@contoso.com",
    ]);
    assert_eq!(r["row"], 3);
    assert_eq!(r["attribution"], "anonymous");
    assert_eq!(r["direct_send"], true);
    assert!(r["reply"].as_str().unwrap().starts_with("550 5.7.68"));
    assert_eq!(r["connectors"].as_array().unwrap().len(), 2);
    let r = run(&[
        "--ip",
        "10.1.2.3",
        "--mail-from",
        "ceo@contoso.com",
        "--rcpt",
        "bob@contoso.com",
    ]);
    assert_eq!(r["row"], 5);
    assert_eq!(r["connector"], "onprem");
    let spf = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "spf")
        .unwrap();
    assert_eq!(spf["outcome"], "pass");
    let r = run(&[
        "--ip",
        "203.0.113.9",
        "--tls-cert-name",
        "mx9.relay.contoso.com",
        "--mail-from",
        "app@contoso.com",
        "--rcpt",
        "bob@contoso.com",
    ]);
    assert_eq!(r["connector"], "relay");
    // With a message: the end-of-DATA checks too.
    let eml = gw.dir.path().join("m.eml");
    std::fs::write(
        &eml,
        "From: ceo@contoso.com\nTo: bob@contoso.com\nSubject: hi\n\nbody\n",
    )
    .unwrap();
    let r = run(&[
        "--ip",
        "10.1.2.3",
        "--mail-from",
        "ceo@contoso.com",
        "--rcpt",
        "bob@contoso.com",
        "--eml",
        eml.to_str().unwrap(),
    ]);
    assert_eq!(r["auth"]["spf"], "pass");
    assert!(
        r["compauth"].as_str().unwrap().starts_with("compauth="),
        "{r}"
    );
    assert!(r["reply"].as_str().unwrap().starts_with("250"), "{r}");
    // Human form.
    let text = gw.ok(&[
        "simulate",
        "--tenant",
        "contoso",
        "--ip",
        "203.0.113.9",
        "--mail-from",
        "ceo@contoso.com",
        "--rcpt",
        "bob@contoso.com",
    ]);
    assert!(text.contains("reply: 550 5.7.68"), "{text}");
    assert!(text.contains("onprem does not attribute"), "{text}");
    // Another tenant's recipient is not explained to this tenant.
    gw.ok(&["tenant", "add", "fabrikam"]);
    gw.ok(&["domain", "add", "fabrikam.com", "--tenant", "fabrikam"]);
    let out = gw.cli(&[
        "simulate",
        "--tenant",
        "contoso",
        "--ip",
        "1.2.3.4",
        "--mail-from",
        "a@x.org",
        "--rcpt",
        "b@fabrikam.com",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// With the tenant's DNS unanswered, decisions that do not depend on SPF answer at once: the
/// direct-send refusal of a spoof and a connector's attribution; only an anonymous recipient that
/// would be accepted waits for SPF (and is deferred). The time spent in DNS is in the trace.
#[tokio::test]
async fn dns_trouble_delays_only_the_decisions_that_need_dns() {
    let gw = Gateway::start("");
    tenant(&gw, "contoso", "contoso.com");
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "on",
    ]);
    gw.ok(&[
        "connector",
        "add",
        "onprem",
        "--tenant",
        "contoso",
        "--type",
        "on-premises",
        "--sender-ip",
        "127.0.0.30/32",
    ]);
    gw.dns.timeout("contoso.com");
    gw.dns.timeout("slow.example");
    let timed = |ip: &'static str, from: &'static str| async move {
        let mut s = session(gw.smtp, ip).await;
        let started = std::time::Instant::now();
        let mail = s.cmd(&format!("MAIL FROM:<{from}>")).await;
        let rcpt = s.cmd("RCPT TO:<bob@contoso.com>").await;
        (mail, rcpt, started.elapsed())
    };
    // The spoof: refused at RCPT without waiting for contoso.com's SPF.
    let (mail, rcpt, took) = timed("127.0.0.31", "ceo@contoso.com").await;
    assert_eq!(mail, "250 2.1.0 Sender OK");
    assert!(rcpt.starts_with("550 5.7.68"), "{rcpt}");
    assert!(
        took < Duration::from_millis(400),
        "the direct-send refusal waited {took:?}"
    );
    // The connector's server: attributed and accepted at once; its message too, its
    // authentication within the short budget of attributed mail (the header says temperror).
    let (_, rcpt, took) = timed("127.0.0.30", "ceo@contoso.com").await;
    assert_eq!(rcpt, "250 2.1.5 Recipient OK");
    assert!(
        took < Duration::from_millis(400),
        "the attributed recipient waited {took:?}"
    );
    let (r, data) = send(
        &gw,
        "127.0.0.30",
        "ceo@contoso.com",
        "bob@contoso.com",
        &msg("ceo@contoso.com", "bob@contoso.com", "from on-prem"),
    )
    .await;
    assert_eq!(r, "250 2.1.5 Recipient OK");
    assert!(
        data.starts_with("250 2.6.0"),
        "attributed mail is not deferred for DNS: {data}"
    );
    // Anonymous mail from elsewhere needs SPF: it waits for the time-out and is deferred.
    let (_, rcpt, took) = timed("127.0.0.32", "a@slow.example").await;
    assert!(rcpt.starts_with("451 4.7.24"), "{rcpt}");
    assert!(
        took >= Duration::from_millis(400),
        "SPF was not waited for ({took:?})"
    );
    // The documented bound: an unanswered lookup fails after about twice `[dns] timeout`.
    assert!(
        took < Duration::from_millis(1400),
        "SPF waited {took:?} for 500ms time-outs"
    );
    // The failure is remembered for a while: the next message from that domain is deferred at
    // once, without asking the DNS again.
    let asked = gw.dns.queries();
    let (_, rcpt, took) = timed("127.0.0.33", "b@slow.example").await;
    assert!(rcpt.starts_with("451 4.7.24"), "{rcpt}");
    assert!(
        took < Duration::from_millis(400),
        "the remembered failure waited {took:?}"
    );
    assert_eq!(gw.dns.queries(), asked, "the DNS was asked again");

    // A message that was accepted says in its trace how long DNS took.
    gw.dns.txt("ok.example", "v=spf1 ip4:127.0.0.1 -all");
    let (r, data) = send(
        &gw,
        "127.0.0.1",
        "a@ok.example",
        "bob@contoso.com",
        &msg("a@ok.example", "bob@contoso.com", "timed"),
    )
    .await;
    assert_eq!(r, "250 2.1.5 Recipient OK");
    assert!(data.starts_with("250"), "{data}");
    let t = gw.trace_until("contoso", &["--status", "delivered"], |v| !v.is_empty());
    let id = t[0]["trace_id"].as_str().unwrap().to_string();
    let full: serde_json::Value =
        serde_json::from_str(&gw.ok(&["trace", "show", &id, "--tenant", "contoso", "--json"]))
            .unwrap();
    assert!(
        full["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "AUTH"
                && e["detail"].as_str().unwrap_or("").contains("; DNS: SPF ")),
        "{full:#}"
    );
}
