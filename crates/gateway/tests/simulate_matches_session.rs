//! `simulate` answers what the SMTP session does: the same messages are sent through SMTP and
//! given to `simulate`, and the outcomes compared one by one — the reply, and whether the copy is
//! held in the quarantine (by a rule, by DMARC `p=quarantine`, by the spoof action) or delivered.

mod common;

use common::*;

/// One transaction of the comparison: envelope, `From:` and subject.
struct Case {
    note: &'static str,
    mail_from: &'static str,
    header_from: &'static str,
    subject: &'static str,
}

const CASES: &[Case] = &[
    Case {
        note: "foreign sender, nothing published",
        mail_from: "alice@fabrikam.example",
        header_from: "alice@fabrikam.example",
        subject: "hello",
    },
    Case {
        note: "DMARC p=quarantine fails",
        mail_from: "news@quar.example",
        header_from: "news@quar.example",
        subject: "dmarc quarantine",
    },
    Case {
        note: "DMARC p=reject fails",
        mail_from: "news@rej.example",
        header_from: "news@rej.example",
        subject: "dmarc reject",
    },
    Case {
        note: "own-domain spoof: the spoof action quarantines",
        mail_from: "alice@fabrikam.example",
        header_from: "ceo@contoso.com",
        subject: "spoof",
    },
    Case {
        note: "a rule quarantines",
        mail_from: "alice@fabrikam.example",
        header_from: "alice@fabrikam.example",
        subject: "please hold",
    },
    Case {
        note: "a rule refuses (and wins over DMARC quarantine)",
        mail_from: "news@quar.example",
        header_from: "news@quar.example",
        subject: "refuse this",
    },
    Case {
        note: "direct send refused at RCPT",
        mail_from: "ceo@contoso.com",
        header_from: "ceo@contoso.com",
        subject: "direct",
    },
];

const RCPT: &str = "bob@contoso.com";

fn setup(gw: &Gateway) {
    gw.ok(&["tenant", "add", "contoso"]);
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
    let org = [
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "on",
        "--spoof-action",
        "quarantine",
        "--honor-dmarc",
        "on",
    ];
    gw.ok(&org);
    let rule = |name: &str, priority: &str, subject: &str, action: &[&str]| {
        let mut args = vec![
            "rule",
            "add",
            name,
            "--tenant",
            "contoso",
            "--priority",
            priority,
            "--subject-contains",
            subject,
        ];
        args.extend_from_slice(action);
        gw.ok(&args);
    };
    rule("hold", "1", "hold", &["--quarantine"]);
    rule(
        "refuse",
        "0",
        "refuse",
        &[
            "--reject",
            "--reject-code",
            "5.7.900",
            "--reject-text",
            "Not here",
        ],
    );
    for d in ["quar.example", "rej.example", "contoso.com"] {
        gw.dns.txt(d, "v=spf1 ip4:192.0.2.1 -all");
    }
    gw.dns.txt("_dmarc.quar.example", "v=DMARC1; p=quarantine");
    gw.dns.txt("_dmarc.rej.example", "v=DMARC1; p=reject");
    gw.dns.txt("_dmarc.contoso.com", "v=DMARC1; p=none");
}

/// The reply's code and enhanced status (`250 2.6.0`), the part both sides must agree on.
fn code(reply: &str) -> String {
    reply
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn simulate_predicts_every_outcome_of_the_session() {
    let gw = Gateway::start("");
    setup(&gw);
    let mut session_outcomes = Vec::new();
    for c in CASES {
        let message = message(c.header_from, RCPT, c.subject);
        let mut s = session(gw.smtp, "127.0.0.1").await;
        let replies = s.mail(c.mail_from, &[RCPT], &message).await;
        session_outcomes.push(replies.last().unwrap().clone());
    }
    // Whether each accepted message was held: its trace record says.
    let accepted = session_outcomes
        .iter()
        .filter(|r| r.starts_with("250"))
        .count();
    let records = gw.trace_until("contoso", &[], |v| {
        v.iter().filter(|r| r["subject"].is_string()).count() >= accepted
    });
    let held = |subject: &str| {
        records
            .iter()
            .any(|r| r["subject"] == subject && r["status"] == "quarantined")
    };

    let eml = gw.dir.path().join("case.eml");
    let mut mismatches = Vec::new();
    for (c, session_reply) in CASES.iter().zip(&session_outcomes) {
        std::fs::write(&eml, message(c.header_from, RCPT, c.subject)).unwrap();
        let sim: serde_json::Value = serde_json::from_str(&gw.ok(&[
            "simulate",
            "--tenant",
            "contoso",
            "--json",
            "--ip",
            "127.0.0.1",
            "--helo",
            "client.test.example",
            "--mail-from",
            c.mail_from,
            "--rcpt",
            RCPT,
            "--eml",
            eml.to_str().unwrap(),
        ]))
        .unwrap();
        let steps = sim["steps"].as_array().unwrap();
        let sim_held = steps
            .iter()
            .any(|s| s["step"] == "data" && s["outcome"] == "quarantined");
        let session_side = (code(session_reply), held(c.subject));
        let simulate_side = (code(sim["reply"].as_str().unwrap()), sim_held);
        if session_side != simulate_side {
            mismatches.push(format!(
                "{}: session {session_side:?} ({session_reply}), simulate {simulate_side:?}\n{sim:#}",
                c.note
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
    // The comparison means something only if every kind of outcome occurred.
    let kinds: Vec<(String, bool)> = CASES
        .iter()
        .zip(&session_outcomes)
        .map(|(c, r)| (code(r), held(c.subject)))
        .collect();
    for expected in [
        ("250 2.6.0", false),
        ("250 2.6.0", true),
        ("550 5.7.509", false),
        ("550 5.7.68", false),
    ] {
        assert!(
            kinds.contains(&(expected.0.to_string(), expected.1)),
            "no case gave {expected:?}: {kinds:?}"
        );
    }
    assert!(
        session_outcomes
            .iter()
            .any(|r| r.starts_with("550 5.7.900")),
        "{session_outcomes:?}"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["status"] == "quarantined")
            .count(),
        3,
        "DMARC, spoof and rule quarantines: {records:#?}"
    );
}
