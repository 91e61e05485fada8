//! Several gateway processes on one PostgreSQL database, as an operator runs them: writes made
//! on two nodes at once are all kept and audited as made, a token created on one node works on
//! the other at once, and a revocation on one is refused on the other within a second.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The tenant's settings and its connector as the database holds them.
async fn stored(url: &str) -> (Value, Value) {
    let store = portcullis_store::Store::connect(url).await.unwrap();
    let data = store.load_directory().await.unwrap();
    let tenant = data.tenants.iter().find(|t| t.name == "contoso").unwrap();
    let connector = data.connectors.iter().find(|c| c.name == "onprem").unwrap();
    let pair = (
        serde_json::to_value(&tenant.settings).unwrap(),
        serde_json::to_value(connector).unwrap(),
    );
    store.close().await;
    pair
}

/// The keys of `after` whose values differ from `before`'s.
fn changed_keys(before: &Value, after: &Value) -> BTreeSet<String> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return BTreeSet::new();
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

#[tokio::test]
async fn writes_on_two_nodes_at_once_are_all_kept_and_audited_as_made() {
    let Some(db) = Database::fresh("writes").await else {
        return;
    };
    {
        let (a, b) = (db.node("node-a"), db.node("node-b"));
        a.ok(&["tenant", "add", "contoso"]);
        a.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
        a.ok(&[
            "connector",
            "add",
            "onprem",
            "--tenant",
            "contoso",
            "--sender-ip",
            "10.0.0.1/32",
        ]);
        // Different fields of one object, and of another, on the two nodes, from at once to a
        // second apart.
        let gaps = [0, 0, 0, 5, 20, 50, 100, 250, 500, 1000];
        for (round, gap) in gaps.into_iter().enumerate() {
            let mode = ["on", "audit"][round % 2];
            let spoof = ["quarantine", "junk"][round % 2];
            let tls = ["true", "false"][round % 2];
            let ip = format!("10.0.1.{round}/32");
            std::thread::scope(|s| {
                s.spawn(|| {
                    b.ok(&[
                        "org",
                        "set",
                        "--tenant",
                        "contoso",
                        "--reject-direct-send",
                        mode,
                    ]);
                    b.ok(&[
                        "connector",
                        "set",
                        "onprem",
                        "--tenant",
                        "contoso",
                        &format!("--require-tls={tls}"),
                    ]);
                });
                std::thread::sleep(Duration::from_millis(gap));
                a.ok(&["org", "set", "--tenant", "contoso", "--spoof-action", spoof]);
                a.ok(&[
                    "connector",
                    "set",
                    "onprem",
                    "--tenant",
                    "contoso",
                    "--sender-ip",
                    &ip,
                ]);
            });
            let (settings, connector) = stored(&db.url).await;
            let got = (
                settings["reject_direct_send"].as_str().unwrap(),
                settings["spoof_action"].as_str().unwrap(),
                connector["require_tls"].as_bool().unwrap(),
                connector["sender_ips"].clone(),
            );
            assert_eq!(
                got,
                (mode, spoof, tls == "true", serde_json::json!([ip])),
                "round {round} (gap {gap} ms): a write was lost"
            );
        }
        // Each audit entry shows exactly what its request changed, by the node that made it.
        let audit: Vec<Value> =
            serde_json::from_str(&a.ok(&["audit", "--tenant", "contoso", "--json"])).unwrap();
        let mut checked = 0;
        for e in &audit {
            let who = e["principal"].as_str().unwrap();
            let (before, after) = (&e["before"], &e["after"]);
            let changed = match e["action"].as_str().unwrap() {
                "PATCH /api/v1/tenants/{t}/org" => {
                    changed_keys(&before["tenant"]["settings"], &after["tenant"]["settings"])
                }
                "PATCH /api/v1/tenants/{t}/connectors/{c}" => {
                    changed_keys(&before["connectors"][0], &after["connectors"][0])
                }
                _ => continue,
            };
            let allowed: &[&str] = match who {
                "bootstrap@node-a" => &["spoof_action", "sender_ips"],
                "bootstrap@node-b" => &["reject_direct_send", "require_tls"],
                other => panic!("unexpected principal {other}"),
            };
            assert!(
                changed.iter().all(|k| allowed.contains(&k.as_str())),
                "{who} is credited with {changed:?}: {e:#}"
            );
            checked += 1;
        }
        assert_eq!(checked, 4 * gaps.len(), "every change is in the audit log");

        // A tenant created on one node takes writes on the other at once.
        b.ok(&["tenant", "add", "fresh1"]);
        a.ok(&["domain", "add", "fresh1.example", "--tenant", "fresh1"]);
    }
    db.drop_it().await;
}

#[tokio::test]
async fn tokens_work_on_every_node_at_once_and_a_revocation_everywhere_within_a_second() {
    let Some(db) = Database::fresh("tokens").await else {
        return;
    };
    {
        let (a, b) = (db.node("node-a"), db.node("node-b"));
        a.ok(&["tenant", "add", "contoso"]);
        let token = a.create_token("viewer1", "viewer", "contoso");
        let id = token.split('_').nth(1).unwrap().to_string();
        // Created on A, used on B straight away.
        let show = ["org", "show", "--tenant", "contoso"];
        let with_token = |gw: &Gateway| {
            let mut args = vec!["--token", token.as_str()];
            args.extend_from_slice(&show);
            gw.cli(&args).status.success()
        };
        assert!(
            with_token(&b),
            "a token created on node A works on node B at once"
        );
        a.ok(&["token", "revoke", &id]);
        let revoked = Instant::now();
        while with_token(&b) {
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "node B still accepts a token revoked on node A"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!with_token(&a));
    }
    db.drop_it().await;
}

#[tokio::test]
async fn trace_events_and_audit_entries_name_the_node() {
    let Some(db) = Database::fresh("names").await else {
        return;
    };
    {
        let (a, b) = (db.node("node-a"), db.node("node-b"));
        a.ok(&["tenant", "add", "contoso"]);
        a.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
        a.ok(&[
            "org",
            "set",
            "--tenant",
            "contoso",
            "--reject-direct-send",
            "on",
        ]);
        // Node B enforces A's setting within its poll; its refusal names it.
        let mut refused = false;
        for _ in 0..100 {
            let mut s = session(b.smtp, "127.0.0.1").await;
            let r = s.mail("ceo@contoso.com", &["bob@contoso.com"], "").await;
            if r[1].starts_with("550 5.7.68") {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(refused, "node B never enforced the setting made on node A");
        let t = a.trace_until("contoso", &["--status", "rejected"], |v| !v.is_empty());
        let reject = t[0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"] == "REJECT")
            .cloned()
            .unwrap();
        assert!(
            reject["detail"]
                .as_str()
                .unwrap()
                .ends_with("[node node-b]"),
            "{reject}"
        );
        let audit: Vec<Value> =
            serde_json::from_str(&b.ok(&["audit", "--tenant", "contoso", "--json"])).unwrap();
        assert!(
            audit.iter().all(|e| e["principal"] == "bootstrap@node-a"),
            "{audit:#?}"
        );
        assert!(audit.iter().all(|e| e["node"] == "node-a"), "{audit:#?}");
    }
    db.drop_it().await;
}

#[tokio::test]
async fn every_node_lists_every_nodes_queue_and_names_the_node_that_holds_a_message() {
    let Some(db) = Database::fresh("queue").await else {
        return;
    };
    {
        let (a, b) = (db.node("node-a"), db.node("node-b"));
        a.ok(&["tenant", "add", "contoso"]);
        a.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
        // A route that refuses connections: the message waits in node B's queue.
        a.ok(&["tenant", "set", "contoso", "--route", "smtp://127.0.0.1:1"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut s = session(b.smtp, "127.0.0.1").await;
        let r = s
            .mail(
                "a@partner.example",
                &["bob@contoso.com"],
                &message("a@partner.example", "bob@contoso.com", "waits on b"),
            )
            .await;
        let id = r[3].rsplit(' ').next().unwrap().to_string();
        assert!(r[3].starts_with("250 2.6.0"), "{r:?}");
        // Node A lists it, naming node B, within the index's publishing period.
        let deadline = Instant::now() + Duration::from_secs(10);
        let listed = loop {
            let v: Vec<Value> = serde_json::from_str(&a.ok(&["queue", "list", "--json"])).unwrap();
            if let Some(item) = v.into_iter().find(|i| i["trace_id"] == id.as_str()) {
                break item;
            }
            assert!(
                Instant::now() < deadline,
                "node A never listed node B's message"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(listed["node"], "node-b", "{listed}");
        // The id of the 250 reply is what the queue commands take; on A they name B.
        let shown: Value = serde_json::from_str(&a.ok(&["queue", "show", &id, "--json"])).unwrap();
        assert_eq!(shown["node"], "node-b", "{shown}");
        let o = a.cli(&["queue", "retry", &id]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success() && err.contains("node-b"), "{err}");
        // On B they act; afterwards A no longer lists it.
        b.ok(&["queue", "delete", &id]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v: Vec<Value> = serde_json::from_str(&a.ok(&["queue", "list", "--json"])).unwrap();
            if !v.iter().any(|i| i["trace_id"] == id.as_str()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node A still lists a deleted message"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // The deleted message keeps its record, its receipt time and a final status.
        let t = a.trace_until("contoso", &["--status", "failed"], |v| !v.is_empty());
        assert_eq!(t.len(), 1, "{t:#?}");
        assert!(
            t[0]["received_at"].as_str().unwrap().starts_with("20"),
            "{t:#?}"
        );
    }
    db.drop_it().await;
}

#[tokio::test]
async fn concurrent_rule_edits_on_two_nodes_never_undo_each_other_silently() {
    let Some(db) = Database::fresh("rules").await else {
        return;
    };
    {
        let (a, b) = (db.node("node-a"), db.node("node-b"));
        a.ok(&["tenant", "add", "contoso"]);
        a.ok(&[
            "rule",
            "add",
            "tag",
            "--tenant",
            "contoso",
            "--priority",
            "1",
            "--subject-contains",
            "s0",
            "--set-scl",
            "1",
        ]);
        let mut conflicts = 0;
        for round in 1..=10u32 {
            let (pa, pb) = (format!("s{round}"), (round + 10).to_string());
            let (oa, ob) = std::thread::scope(|s| {
                let on_b = s.spawn(|| {
                    b.cli(&[
                        "rule",
                        "set",
                        "tag",
                        "--tenant",
                        "contoso",
                        "--priority",
                        &pb,
                    ])
                });
                let on_a = a.cli(&[
                    "rule",
                    "set",
                    "tag",
                    "--tenant",
                    "contoso",
                    "--subject-contains",
                    &pa,
                ]);
                (on_a, on_b.join().unwrap())
            });
            let store = portcullis_store::Store::connect(&db.url).await.unwrap();
            let rule = store
                .load_directory()
                .await
                .unwrap()
                .rules
                .into_iter()
                .find(|r| r.name == "tag")
                .unwrap();
            store.close().await;
            // Each edit is in the database, or its command said it was not.
            let kept_a = rule.conditions.subject_contains == [pa.clone()];
            let kept_b = rule.priority.to_string() == pb;
            assert!(
                kept_a || !oa.status.success(),
                "round {round}: A's edit lost silently"
            );
            assert!(
                kept_b || !ob.status.success(),
                "round {round}: B's edit lost silently"
            );
            for o in [&oa, &ob] {
                if !o.status.success() {
                    let err = String::from_utf8_lossy(&o.stderr);
                    assert!(err.contains("was changed since it was read"), "{err}");
                    conflicts += 1;
                }
            }
        }
        eprintln!("rule edits refused as concurrent: {conflicts} of 20");
    }
    db.drop_it().await;
}

/// A recipient list lives in the database with the directory: a change on one node applies on
/// the other within a second, and a 100,000-address import (multi-row statements) is all there.
#[tokio::test]
async fn recipient_lists_are_shared_by_every_node() {
    let Some(db) = Database::fresh("recipients").await else {
        return;
    };
    {
        let (a, b) = (db.node("node-a"), db.node("node-b"));
        a.ok(&["tenant", "add", "contoso"]);
        a.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
        a.ok(&[
            "org",
            "set",
            "--tenant",
            "contoso",
            "--recipient-validation",
            "list",
        ]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("all.txt");
        let mut text = String::from("address\n");
        for i in 0..100_000 {
            text.push_str(&format!("user{i:06}@contoso.com\n"));
        }
        std::fs::write(&file, text).unwrap();
        let out = a.ok(&[
            "recipient",
            "import",
            "--tenant",
            "contoso",
            "--file",
            file.to_str().unwrap(),
        ]);
        assert_eq!(
            out.trim(),
            "100000 added, 0 removed; the list has 100000 recipients"
        );
        let rcpt = async |gw: &Gateway, who: &str| {
            let mut s = session(gw.smtp, "127.0.0.1").await;
            s.cmd("MAIL FROM:<a@example.org>").await;
            let r = s.cmd(&format!("RCPT TO:<{who}>")).await;
            s.cmd("QUIT").await;
            r
        };
        let until = async |gw: &Gateway, who: &str, want: &str| {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let r = rcpt(gw, who).await;
                if r.starts_with(want) || Instant::now() > deadline {
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        // Until B has the list it validates nothing (an empty list refuses no mail): wait for
        // the refusal, then the listed address is known.
        assert!(
            until(&b, "nobody@contoso.com", "550")
                .await
                .starts_with("550 5.4.1")
        );
        assert!(rcpt(&b, "user099999@contoso.com").await.starts_with("250"));
        // Added on B, known on A; removed on A, unknown on B.
        b.ok(&[
            "recipient",
            "add",
            "new.hire@contoso.com",
            "--tenant",
            "contoso",
        ]);
        let started = Instant::now();
        assert!(
            until(&a, "new.hire@contoso.com", "250")
                .await
                .starts_with("250")
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        a.ok(&[
            "recipient",
            "remove",
            "user000001@contoso.com",
            "--tenant",
            "contoso",
        ]);
        assert!(
            until(&b, "user000001@contoso.com", "550")
                .await
                .starts_with("550 5.4.1")
        );
        let listed = b.ok(&["recipient", "list", "--tenant", "contoso", "--all"]);
        assert_eq!(listed.lines().count(), 100_000);
    }
    db.drop_it().await;
}
