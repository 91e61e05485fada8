//! Mail-flow rules and the hosted quarantine, end to end through the CLI and SMTP.

mod common;

use common::*;

fn setup(gw: &Gateway) {
    gw.ok(&["tenant", "add", "contoso"]);
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
}

fn msg(from: &str, to: &str, subject: &str, extra: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}Message-ID: <{}@t>\r\n\r\nbody\r\n",
        subject.replace(' ', "-")
    )
}

async fn send(gw: &Gateway, from: &str, to: &str, message: &str) -> String {
    let mut s = session(gw.smtp, "127.0.0.1").await;
    let r = s.mail(from, &[to], message).await;
    r.get(3).cloned().unwrap_or_else(|| r[1].clone())
}

fn json(out: String) -> serde_json::Value {
    serde_json::from_str(&out).unwrap()
}

#[tokio::test]
async fn reference_recipe_quarantine_and_release_once() {
    let gw = Gateway::start("");
    setup(&gw);
    // "If the message is from outside the organization and the envelope sender domain is
    //  contoso.com, quarantine it — except if the header X-Vendor-App contains Billing."
    gw.ok(&[
        "rule",
        "add",
        "Quarantine spoofs",
        "--tenant",
        "contoso",
        "--priority",
        "0",
        "--from-scope",
        "outside",
        "--sender-domain-is",
        "contoso.com",
        "--sender-address-location",
        "envelope",
        "--except-if-header-contains",
        "X-Vendor-App: Billing",
        "--quarantine",
    ]);
    let bob = "bob@contoso.com";
    let r = send(
        &gw,
        "ceo@contoso.com",
        bob,
        &msg("ceo@contoso.com", bob, "spoof", ""),
    )
    .await;
    assert!(
        r.starts_with("250 2.6.0 Queued as "),
        "accepted (held): {r}"
    );
    let id = r.rsplit(' ').next().unwrap().to_string();
    let vendor = send(
        &gw,
        "billing@contoso.com",
        bob,
        &msg(
            "billing@contoso.com",
            bob,
            "invoice",
            "X-Vendor-App: Acme Billing 2.1\r\n",
        ),
    )
    .await;
    assert!(vendor.starts_with("250 2.6.0"), "{vendor}");
    let mail = gw.wait_maildir("contoso", bob, 1);
    assert_eq!(mail.len(), 1, "only the vendor's message is delivered");
    assert!(mail[0].contains("Subject: invoice"));

    let list = json(gw.ok(&["quarantine", "list", "--tenant", "contoso", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["reason"], "rule:Quarantine spoofs");
    assert_eq!(list[0]["recipients"][0], bob);
    let filtered = json(gw.ok(&[
        "quarantine",
        "list",
        "--tenant",
        "contoso",
        "--sender",
        "nobody@x.example",
        "--json",
    ]));
    assert!(filtered.as_array().unwrap().is_empty());
    let t = gw.trace_until("contoso", &["--status", "quarantined"], |v| v.len() == 1);
    let events: Vec<&str> = t[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"RULE") && events.contains(&"QUARANTINE"),
        "{events:?}"
    );

    // show: headers and a text preview.
    let show = json(gw.ok(&["quarantine", "show", &id, "--tenant", "contoso", "--json"]));
    assert!(show["headers"].as_str().unwrap().contains("Subject: spoof"));
    assert!(show["preview"].as_str().unwrap().contains("body"));

    // A direct-send spoof is released only by an org-admin: a quarantine-admin is refused.
    assert_eq!(list[0]["admin_only_release"], true);
    let qa = &gw.create_token("qa", "quarantine-admin", "contoso");
    let out = gw.cli(&[
        "--token",
        qa,
        "quarantine",
        "release",
        &id,
        "--tenant",
        "contoso",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only an org-admin may release it"),
        "{out:?}"
    );
    gw.ok(&[
        "--token",
        qa,
        "quarantine",
        "show",
        &id,
        "--tenant",
        "contoso",
    ]);

    // release (by an org-admin whose token name tries to add a header line): delivered once,
    // marked with who released it; a second release is refused.
    let admin = &gw.create_token("ann\r\nX-Evil: yes", "org-admin", "contoso");
    let token_id = admin["pc_".len()..].split('_').next().unwrap();
    gw.ok(&[
        "--token",
        admin,
        "quarantine",
        "release",
        &id,
        "--tenant",
        "contoso",
    ]);
    let mail = gw.wait_maildir("contoso", bob, 2);
    let released = mail
        .iter()
        .find(|m| m.contains("Subject: spoof"))
        .expect("released copy");
    assert!(
        released.contains("X-Portcullis-Released-By: token:ann  X-Evil: yes ("),
        "{released}"
    );
    assert!(!released.contains("\nX-Evil"), "{released}");
    let shown = json(gw.ok(&["quarantine", "show", &id, "--tenant", "contoso", "--json"]));
    // As the audit log names the token, and the node that released it.
    let by = shown["entry"]["released_by"].as_str().unwrap();
    assert!(
        by.starts_with(&format!("token:ann\r\nX-Evil: yes ({token_id}) on ")),
        "{by}"
    );
    let again = gw.cli(&["quarantine", "release", &id, "--tenant", "contoso"]);
    assert_eq!(
        again.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already released"));
    let t = gw.trace_until("contoso", &[], |v| {
        v.iter()
            .any(|r| r["trace_id"] == id.as_str() && r["status"] == "delivered")
    });
    let rec = t.iter().find(|r| r["trace_id"] == id.as_str()).unwrap();
    assert_eq!(rec["status"], "delivered");
    assert!(
        rec["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "RELEASE")
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        gw.maildir("contoso", bob).len(),
        2,
        "delivered exactly once"
    );

    // delete.
    let r = send(
        &gw,
        "ceo@contoso.com",
        bob,
        &msg("ceo@contoso.com", bob, "spoof 2", ""),
    )
    .await;
    let id2 = r.rsplit(' ').next().unwrap().to_string();
    gw.ok(&["quarantine", "delete", &id2, "--tenant", "contoso"]);
    assert_eq!(
        gw.cli(&["quarantine", "show", &id2, "--tenant", "contoso"])
            .status
            .code(),
        Some(3),
        "deleted: not found"
    );
}

#[tokio::test]
async fn redirect_reject_and_header_actions() {
    let gw = Gateway::start("");
    setup(&gw);
    gw.ok(&[
        "rule",
        "add",
        "no-invoices",
        "--tenant",
        "contoso",
        "--priority",
        "0",
        "--subject-contains",
        "invoice",
        "--reject",
        "--reject-code",
        "5.7.901",
        "--reject-text",
        "No invoices from outside, use the portal",
    ]);
    gw.ok(&[
        "rule",
        "add",
        "legal-hold",
        "--tenant",
        "contoso",
        "--priority",
        "1",
        "--recipient-domain-is",
        "contoso.com",
        "--header-matches",
        "X-Case: ^LH-[0-9]+$",
        "--redirect-to",
        "legal@contoso.com",
    ]);
    gw.ok(&[
        "rule",
        "add",
        "tag-external",
        "--tenant",
        "contoso",
        "--priority",
        "2",
        "--from-scope",
        "outside",
        "--prepend-subject",
        "[EXT] ",
        "--set-header",
        "X-External: yes",
        "--remove-header",
        "X-Internal-Only",
        "--set-scl",
        "3",
    ]);
    gw.ok(&[
        "rule",
        "add",
        "watch",
        "--tenant",
        "contoso",
        "--priority",
        "3",
        "--mode",
        "audit",
        "--sender-domain-is",
        "partner.example",
        "--quarantine",
    ]);
    let bob = "bob@contoso.com";

    let r = send(
        &gw,
        "a@partner.example",
        bob,
        &msg("a@partner.example", bob, "Your invoice", ""),
    )
    .await;
    assert_eq!(r, "550 5.7.901 No invoices from outside, use the portal");

    let r = send(
        &gw,
        "a@partner.example",
        bob,
        &msg("a@partner.example", bob, "case files", "X-Case: LH-42\r\n"),
    )
    .await;
    assert!(r.starts_with("250 2.6.0"), "{r}");
    let legal = gw.wait_maildir("contoso", "legal@contoso.com", 1);
    assert_eq!(legal.len(), 1, "redirected");
    assert!(
        gw.maildir("contoso", bob).is_empty(),
        "not to the original recipient"
    );

    let r = send(
        &gw,
        "a@partner.example",
        bob,
        &msg(
            "a@partner.example",
            bob,
            "hello",
            "X-Internal-Only: secret\r\n",
        ),
    )
    .await;
    assert!(r.starts_with("250 2.6.0"), "{r}");
    let mail = gw.wait_maildir("contoso", bob, 1);
    let m = &mail[0];
    assert!(m.contains("Subject: [EXT] hello\r\n"), "{m}");
    assert!(
        m.contains("X-External: yes\r\n") && m.contains("X-Portcullis-SCL: 3\r\n"),
        "{m}"
    );
    assert!(!m.contains("X-Internal-Only"), "{m}");
    // The audit rule matched, did nothing, and is in the trace.
    let t = gw.trace_until("contoso", &["--status", "delivered"], |v| v.len() == 2);
    let hello = t.iter().find(|r| r["subject"] == "hello").unwrap();
    let rules: Vec<String> = hello["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "RULE")
        .map(|e| e["detail"].as_str().unwrap().to_string())
        .collect();
    assert!(
        rules.iter().any(|d| d.starts_with("watch (audit")),
        "{rules:?}"
    );
    assert!(
        rules
            .iter()
            .any(|d| d.starts_with("tag-external (enforce)")),
        "{rules:?}"
    );
    let rejected = gw.trace_until("contoso", &["--status", "rejected"], |v| v.len() == 1);
    assert_eq!(
        rejected[0]["recipients"][0]["reply"],
        "550 5.7.901 No invoices from outside, use the portal"
    );

    // rule test explains without sending.
    let eml = gw.dir.path().join("t.eml");
    std::fs::write(&eml, msg("a@partner.example", bob, "Invoice 7", "")).unwrap();
    let report = json(gw.ok(&[
        "rule",
        "test",
        "--tenant",
        "contoso",
        "--eml",
        eml.to_str().unwrap(),
        "--ip",
        "127.0.0.1",
        "--mail-from",
        "a@partner.example",
        "--rcpt",
        bob,
        "--json",
    ]));
    assert_eq!(report["rules_matched"][0]["rule"], "no-invoices");
    assert!(report["reply"].as_str().unwrap().starts_with("550 5.7.901"));
    let text = gw.ok(&[
        "rule",
        "test",
        "--tenant",
        "contoso",
        "--eml",
        eml.to_str().unwrap(),
        "--ip",
        "127.0.0.1",
        "--mail-from",
        "a@partner.example",
        "--rcpt",
        bob,
    ]);
    assert!(text.contains("no-invoices"), "{text}");

    // list / show / set / remove.
    let list = json(gw.ok(&["rule", "list", "--tenant", "contoso", "--json"]));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["no-invoices", "legal-hold", "tag-external", "watch"]
    );
    gw.ok(&[
        "rule",
        "set",
        "no-invoices",
        "--tenant",
        "contoso",
        "--disabled",
    ]);
    let r = send(
        &gw,
        "a@partner.example",
        bob,
        &msg("a@partner.example", bob, "invoice 8", ""),
    )
    .await;
    assert!(
        r.starts_with("250 2.6.0"),
        "disabled rule does nothing: {r}"
    );
    gw.ok(&["rule", "remove", "no-invoices", "--tenant", "contoso"]);
    assert_eq!(
        gw.cli(&["rule", "show", "no-invoices", "--tenant", "contoso"])
            .status
            .code(),
        Some(3)
    );
}

#[tokio::test]
async fn bad_rules_exit_2_naming_the_field() {
    let gw = Gateway::start("");
    setup(&gw);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--header-matches", "X-A: (unclosed", "--quarantine"],
            "header_matches",
        ),
        (&["--reject", "--reject-code", "5.7.2"], "reject_code"),
        (&["--reject", "--reject-code", "5.7.1000"], "reject_code"),
        (&["--subject-contains", "x"], "action"),
    ];
    for (extra, field) in cases {
        let mut args = vec!["rule", "add", "r", "--tenant", "contoso", "--priority", "0"];
        args.extend_from_slice(extra);
        let out = gw.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(field), "{extra:?}: {err}");
    }
    let long = "x".repeat(1025);
    let out = gw.cli(&[
        "rule",
        "add",
        "r",
        "--tenant",
        "contoso",
        "--priority",
        "0",
        "--reject",
        "--reject-text",
        &long,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reject_text"));
    // The same validation applies to --from-file.
    let file = gw.dir.path().join("r.json");
    std::fs::write(&file, r#"{"name":"f","priority":0,"conditions":{"header_matches":[{"name":"X","pattern":"("}]},"actions":["quarantine"]}"#).unwrap();
    let out = gw.cli(&[
        "rule",
        "add",
        "--tenant",
        "contoso",
        "--from-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        json(gw.ok(&["rule", "list", "--tenant", "contoso", "--json"]))
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing changed"
    );
}

#[tokio::test]
async fn quarantine_survives_a_restart() {
    let gw = Gateway::start("");
    setup(&gw);
    gw.ok(&[
        "rule",
        "add",
        "hold-all",
        "--tenant",
        "contoso",
        "--priority",
        "0",
        "--quarantine",
    ]);
    let bob = "bob@contoso.com";
    let r = send(
        &gw,
        "a@x.example",
        bob,
        &msg("a@x.example", bob, "held", ""),
    )
    .await;
    let id = r.rsplit(' ').next().unwrap().to_string();
    let dir = gw.into_dir();
    let gw = Gateway::start_in(dir, "");
    let list = json(gw.ok(&["quarantine", "list", "--tenant", "contoso", "--json"]));
    assert_eq!(list[0]["id"], id.as_str());
    gw.ok(&["rule", "remove", "hold-all", "--tenant", "contoso"]);
    gw.ok(&[
        "quarantine",
        "release",
        &id,
        "--tenant",
        "contoso",
        "--to",
        "carol@contoso.com",
    ]);
    let mail = gw.wait_maildir("contoso", "carol@contoso.com", 1);
    assert_eq!(mail.len(), 1, "released to the --to address");
    assert!(gw.maildir("contoso", bob).is_empty());
}
