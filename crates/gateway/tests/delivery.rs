//! Delivery to a downstream mailbox server over SMTP and LMTP: the harness's `Downstream` answers
//! each recipient as told by its local part (`reject…` → 550, `later…` → 451, else 250), can be
//! taken down and brought back, and records what it received.

mod common;

use common::*;

fn setup(gw: &Gateway) {
    gw.ok(&["tenant", "add", "contoso"]);
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
}

async fn send(gw: &Gateway, rcpts: &[&str], subject: &str) -> String {
    let mut s = session(gw.smtp, "127.0.0.1").await;
    let r = s
        .mail(
            "a@partner.example",
            rcpts,
            &message("a@partner.example", rcpts[0], subject),
        )
        .await;
    r.last().unwrap().clone()
}

async fn wait<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 10 s");
}

#[tokio::test]
async fn lmtp_gives_each_recipient_its_outcome_and_retries_the_deferred() {
    let down = Downstream::start(0, true, 1).await;
    // The sender's mail exchanger, for the bounce: partner.example MX → 127.0.0.44.
    let mx = Downstream::start_on("127.0.0.44", 0, false, 0).await;
    let gw = Gateway::start(&format!(
        "[delivery]\nfirst_retry = \"1s\"\nmx_port = {}\n",
        mx.port
    ));
    gw.dns.mx("partner.example", 10, "mx.partner.example");
    gw.dns
        .a("mx.partner.example", "127.0.0.44".parse().unwrap());
    setup(&gw);
    gw.ok(&[
        "tenant",
        "set",
        "contoso",
        "--route",
        &format!("lmtp://127.0.0.1:{}", down.port),
    ]);
    let r = send(
        &gw,
        &[
            "bob@contoso.com",
            "reject-me@contoso.com",
            "later@contoso.com",
            "carol@contoso.com",
        ],
        "three recipients",
    )
    .await;
    assert!(r.starts_with("250 2.6.0"), "{r}");
    // One transaction; the two accepted recipients get their replies (sent by the server in one
    // segment); then the deferred one is retried alone.
    let got = wait(|| {
        let m = down.messages();
        (m.len() == 2).then_some(m)
    })
    .await;
    assert_eq!(got[0].1, ["bob@contoso.com", "carol@contoso.com"]);
    assert_eq!(got[1].1, ["later@contoso.com"]);
    assert!(got[0].2.contains("Subject: three recipients"));
    let t = gw.trace_until("contoso", &["--sender", "a@partner.example"], |v| {
        v.len() == 1 && v[0]["status"] != "pending" && v[0]["status"] != "deferred"
    });
    let rec = &t[0];
    let status = |a: &str| {
        rec["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == a)
            .unwrap()
            .clone()
    };
    assert_eq!(status("bob@contoso.com")["status"], "delivered");
    assert_eq!(status("carol@contoso.com")["status"], "delivered");
    assert_eq!(status("reject-me@contoso.com")["status"], "failed");
    assert_eq!(
        status("reject-me@contoso.com")["reply"],
        "550 5.1.1 no such user"
    );
    assert_eq!(status("later@contoso.com")["status"], "delivered");
    let events: Vec<&str> = rec["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"FAIL") && events.contains(&"DEFER") && events.contains(&"DELIVER"),
        "{events:?}"
    );
    assert!(
        gw.maildir("contoso", "bob@contoso.com").is_empty(),
        "the route, not the Maildir"
    );
}

#[tokio::test]
async fn smtp_route_per_domain_and_downstream_down_then_back() {
    // Take a port, stop the server: the downstream is down when the message arrives.
    let down = Downstream::start(0, false, 0).await;
    let port = down.stop();
    let gw = Gateway::start("[delivery]\nfirst_retry = \"1s\"\nmax_retry = \"1s\"\n");
    setup(&gw);
    gw.ok(&["domain", "add", "fabrikam.example", "--tenant", "contoso"]);
    gw.ok(&[
        "domain",
        "set",
        "contoso.com",
        "--tenant",
        "contoso",
        "--route",
        &format!("smtp://127.0.0.1:{port}"),
    ]);
    let r = send(&gw, &["bob@contoso.com", "ann@fabrikam.example"], "down").await;
    assert!(r.starts_with("250 2.6.0"), "{r}");
    // fabrikam.example has no route of its own: the default Maildir; contoso.com waits.
    assert_eq!(
        gw.wait_maildir("contoso", "ann@fabrikam.example", 1).len(),
        1
    );
    let t = gw.trace_until("contoso", &["--status", "deferred"], |v| v.len() == 1);
    assert_eq!(t.len(), 1, "deferred while the downstream is down");
    assert_eq!(
        std::fs::read_dir(gw.data().join("spool")).unwrap().count(),
        1,
        "written out of the journal after the failed first attempt (.q)"
    );
    // Back up: the retry delivers.
    let back = Downstream::start(port, false, 0).await;
    let got = wait(|| {
        let m = back.messages();
        (m.len() == 1).then_some(m)
    })
    .await;
    assert_eq!(got[0].1, ["bob@contoso.com"]);
    assert_eq!(got[0].0, "a@partner.example");
    gw.trace_until("contoso", &["--status", "delivered"], |v| v.len() == 1);
    wait(|| (std::fs::read_dir(gw.data().join("spool")).unwrap().count() == 0).then_some(())).await;
    // Routes are validated, naming the URL.
    let out = gw.cli(&["tenant", "set", "contoso", "--route", "ftp://x:21"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ftp://x:21"));
}

#[tokio::test]
async fn queue_list_retry_delete_and_back_pressure() {
    let down = Downstream::start(0, false, 0).await;
    let port = down.stop();
    let gw = Gateway::start("[delivery]\nfirst_retry = \"1h\"\nmax_queue = 2\n");
    setup(&gw);
    gw.ok(&[
        "tenant",
        "set",
        "contoso",
        "--route",
        &format!("smtp://127.0.0.1:{port}"),
    ]);
    assert!(
        send(&gw, &["bob@contoso.com"], "first")
            .await
            .starts_with("250 2.6.0")
    );
    assert!(
        send(&gw, &["carol@contoso.com"], "second")
            .await
            .starts_with("250 2.6.0")
    );
    // The queue is full: new mail is refused with a 4xx, never accepted and lost.
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert_eq!(
        s.cmd("MAIL FROM:<a@partner.example>").await,
        "452 4.3.1 Insufficient system storage, please try again later"
    );

    let list = || -> Vec<serde_json::Value> {
        serde_json::from_str(&gw.ok(&["queue", "list", "--json"])).unwrap()
    };
    let queued = wait(|| {
        let l = list();
        (l.len() == 2 && l.iter().all(|i| i["attempts"] == 1)).then_some(l)
    })
    .await;
    let first = queued
        .iter()
        .find(|i| i["recipients"][0]["address"] == "bob@contoso.com")
        .unwrap();
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(first["tenant"], "contoso");
    assert_eq!(first["recipients"][0]["status"], "pending");
    assert_eq!(
        first["recipients"][0]["route"],
        format!("smtp://127.0.0.1:{port}")
    );
    assert!(first["next_attempt"].is_string());
    let filtered: Vec<serde_json::Value> =
        serde_json::from_str(&gw.ok(&["queue", "list", "--destination", "lmtp://", "--json"]))
            .unwrap();
    assert!(filtered.is_empty());
    let show = gw.ok(&["queue", "show", &id]);
    assert!(
        show.contains("bob@contoso.com") && show.contains("pending"),
        "{show}"
    );

    // Delete the second one silently: its recipient fails, no bounce.
    let second = queued
        .iter()
        .find(|i| i["recipients"][0]["address"] == "carol@contoso.com")
        .unwrap();
    gw.ok(&["queue", "delete", second["id"].as_str().unwrap()]);
    let t = gw.trace_until("contoso", &["--recipient", "carol@contoso.com"], |v| {
        v.len() == 1 && v[0]["status"] == "failed"
    });
    assert_eq!(
        t[0]["recipients"][0]["reply"],
        "550 5.0.0 deleted from the queue by the administrator"
    );

    // The downstream comes back; retry now instead of in an hour.
    let back = Downstream::start(port, false, 0).await;
    gw.ok(&["queue", "retry", &id]);
    let got = wait(|| {
        let m = back.messages();
        (m.len() == 1).then_some(m)
    })
    .await;
    assert_eq!(got[0].1, ["bob@contoso.com"]);
    wait(|| list().is_empty().then_some(())).await;
    assert_eq!(
        gw.cli(&["queue", "show", &id]).status.code(),
        Some(3),
        "gone from the queue (3: not found)"
    );
    // Room again: new mail is accepted.
    assert!(
        send(&gw, &["dave@contoso.com"], "third")
            .await
            .starts_with("250 2.6.0")
    );
}

#[tokio::test]
async fn downstream_connections_are_reused_and_a_closed_one_is_replaced() {
    let down = Downstream::start(0, false, 0).await;
    let gw = Gateway::start("");
    setup(&gw);
    gw.ok(&[
        "tenant",
        "set",
        "contoso",
        "--route",
        &format!("smtp://127.0.0.1:{}", down.port),
    ]);
    // One after the other: each message finds the previous one's connection idle in the pool.
    for i in 1..=4 {
        let r = send(&gw, &["bob@contoso.com"], &format!("reuse {i}")).await;
        assert!(r.starts_with("250 2.6.0"), "{r}");
        wait(|| (down.messages().len() == i).then_some(())).await;
    }
    assert_eq!(down.connections(), 1, "four messages over one connection");
    gw.trace_until("contoso", &["--status", "delivered"], |v| v.len() == 4);

    // The downstream restarts: the pooled connection is dead. The next message notices at MAIL
    // FROM and goes over a new connection at once (no deferral, no retry delay).
    let port = down.stop();
    // Let the aborted tasks drop their sockets (listener and connections).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let back = Downstream::start(port, false, 0).await;
    let r = send(&gw, &["bob@contoso.com"], "after restart").await;
    assert!(r.starts_with("250 2.6.0"), "{r}");
    let got = wait(|| {
        let m = back.messages();
        (m.len() == 1).then_some(m)
    })
    .await;
    assert!(got[0].2.contains("Subject: after restart"));
    assert_eq!(back.connections(), 1);
    let t = gw.trace_until("contoso", &["--status", "delivered"], |v| v.len() == 5);
    assert!(
        !serde_json::to_string(&t).unwrap().contains("DEFER"),
        "a stale pooled connection is not a deferral"
    );
}

#[tokio::test]
async fn pipelined_where_offered_lock_step_elsewhere_with_the_same_outcomes() {
    // Two mailbox servers, one offering PIPELINING and one not, one domain routed to each.
    let piped = Downstream::start_with("127.0.0.1", 0, false, 1, true).await;
    let plain = Downstream::start_with("127.0.0.1", 0, false, 1, false).await;
    let gw = Gateway::start("[smtp]\nmax_recipients = 200\n[delivery]\nfirst_retry = \"1s\"\n");
    setup(&gw);
    gw.ok(&["domain", "add", "fabrikam.com", "--tenant", "contoso"]);
    for (domain, down) in [("contoso.com", &piped), ("fabrikam.com", &plain)] {
        gw.ok(&[
            "domain",
            "set",
            domain,
            "--tenant",
            "contoso",
            "--route",
            &format!("smtp://127.0.0.1:{}", down.port),
        ]);
    }
    for domain in ["contoso.com", "fabrikam.com"] {
        let rcpts = [
            format!("bob@{domain}"),
            format!("reject-me@{domain}"),
            format!("later@{domain}"),
        ];
        let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        let r = send(&gw, &rcpts, &format!("to {domain}")).await;
        assert!(r.starts_with("250 2.6.0"), "{r}");
        // Its first attempt over (one recipient waits for a retry) before the next message, so
        // that message finds the connection back in the pool rather than racing it. (The
        // downstream runs on this test's runtime: wait without blocking it.)
        let subject = format!("to {domain}");
        wait(|| {
            let out = gw.ok(&["trace", "--tenant", "contoso", "--json"]);
            let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
            v.iter()
                .any(|r| r["subject"] == subject.as_str() && r["status"] == "deferred")
                .then_some(())
        })
        .await;
        // Every recipient refused: no message, and the connection stays usable.
        let r = send(&gw, &[&format!("reject-too@{domain}")], "refused").await;
        assert!(r.starts_with("250 2.6.0"), "{r}");
    }
    for (down, domain) in [(&piped, "contoso.com"), (&plain, "fabrikam.com")] {
        let got = wait(|| {
            let m = down.messages();
            (m.len() == 2).then_some(m)
        })
        .await;
        assert_eq!(got[0].1, [format!("bob@{domain}")], "{domain}");
        assert_eq!(got[1].1, [format!("later@{domain}")], "{domain}: the retry");
        assert!(got[0].2.contains(&format!("Subject: to {domain}")));
    }
    let t = gw.trace_until("contoso", &["--sender", "a@partner.example"], |v| {
        v.len() == 4
            && v.iter()
                .all(|r| r["status"] != "pending" && r["status"] != "deferred")
    });
    for rec in &t {
        for r in rec["recipients"].as_array().unwrap() {
            let address = r["address"].as_str().unwrap();
            let want = if address.starts_with("reject") {
                ("failed", "550 5.1.1 no such user")
            } else {
                ("delivered", "250 2.0.0 queued downstream")
            };
            assert_eq!(
                (r["status"].as_str().unwrap(), r["reply"].as_str().unwrap()),
                want,
                "{address}"
            );
        }
    }
    // Three transactions each (message, refused one, retry): grouped where PIPELINING is
    // offered, command by command where not; one connection each, reused throughout.
    assert_eq!(piped.transactions(), (3, 0));
    assert_eq!(plain.transactions(), (0, 3));
    assert_eq!((piped.connections(), plain.connections()), (1, 1));

    // More than 100 recipients: command by command even where PIPELINING is offered (the
    // replies of a group must fit in the socket buffers while it is written).
    let many: Vec<String> = (0..101).map(|i| format!("user{i}@contoso.com")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = send(&gw, &many, "many").await;
    assert!(r.starts_with("250 2.6.0"), "{r}");
    let got = wait(|| {
        let m = piped.messages();
        (m.len() == 3).then_some(m)
    })
    .await;
    assert_eq!(got[2].1.len(), 101);
    assert_eq!(piped.transactions(), (3, 1));
}

/// A route fixed while mail waits applies to the waiting mail; `queue reroute` moves it at once.
#[tokio::test]
async fn waiting_mail_follows_a_fixed_route_and_can_be_rerouted() {
    let down = Downstream::start(0, false, 0).await;
    let dead = down.stop();
    let good = Downstream::start(0, false, 0).await;
    let gw = Gateway::start("[delivery]\nfirst_retry = \"1s\"\nmax_retry = \"1s\"\n");
    setup(&gw);
    gw.ok(&[
        "tenant",
        "set",
        "contoso",
        "--route",
        &format!("smtp://127.0.0.1:{dead}"),
    ]);
    let r = send(&gw, &["bob@contoso.com"], "fixed later").await;
    let id = r.rsplit(' ').next().unwrap().to_string();
    gw.trace_until("contoso", &["--status", "deferred"], |v| v.len() == 1);
    // The administrator fixes the tenant's route: the next retry takes it.
    gw.ok(&[
        "tenant",
        "set",
        "contoso",
        "--route",
        &format!("smtp://127.0.0.1:{}", good.port),
    ]);
    let got = wait(|| (good.messages().len() == 1).then(|| good.messages())).await;
    assert!(got[0].2.contains("Subject: fixed later"));
    let t = gw.trace_until("contoso", &["--status", "delivered"], |v| v.len() == 1);
    let events = t[0]["events"].to_string();
    assert!(
        events.contains("\"ROUTE\"") && events.contains("the directory's route changed"),
        "{events}"
    );
    assert!(
        events.contains(&format!("smtp://127.0.0.1:{}", good.port)),
        "{events}"
    );
    let _ = id;

    // A one-off move: a message waiting an hour for its retry goes at once.
    let gw = Gateway::start("[delivery]\nfirst_retry = \"1h\"\n");
    setup(&gw);
    gw.ok(&[
        "tenant",
        "set",
        "contoso",
        "--route",
        &format!("smtp://127.0.0.1:{dead}"),
    ]);
    let r = send(&gw, &["carol@contoso.com"], "rerouted").await;
    let id = r.rsplit(' ').next().unwrap().to_string();
    gw.trace_until("contoso", &["--status", "deferred"], |v| v.len() == 1);
    let list = gw.ok(&["queue", "list"]);
    let stem = list
        .lines()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with(&id)))
        .unwrap_or_else(|| panic!("{id} not in\n{list}"))
        .to_string();
    let out = gw.ok(&[
        "queue",
        "reroute",
        &stem,
        "--to",
        &format!("smtp://127.0.0.1:{}", good.port),
    ]);
    assert!(out.starts_with("rerouted 1 to smtp://127.0.0.1:"), "{out}");
    let got = wait(|| (good.messages().len() == 2).then(|| good.messages())).await;
    assert!(got[1].2.contains("Subject: rerouted"));
    let t = gw.trace_until("contoso", &["--status", "delivered"], |v| v.len() == 1);
    assert!(
        t[0]["events"]
            .to_string()
            .contains("rerouted by the administrator")
    );
    let audit = gw.ok(&["audit", "--json"]);
    assert!(
        audit.contains("POST /api/v1/queue/{id}/reroute") && audit.contains("carol@contoso.com"),
        "{audit}"
    );
    // --all with a destination that nothing waits for moves nothing; a bad route exits 2.
    let out = gw.ok(&[
        "queue",
        "reroute",
        "--all",
        "--destination",
        "smtp://127.0.0.1:1",
        "--to",
        "maildir:/tmp/x",
    ]);
    assert_eq!(out.trim(), "no waiting message to reroute");
    assert_eq!(
        gw.cli(&["queue", "reroute", "--all", "--to", "ftp://x:21"])
            .status
            .code(),
        Some(2)
    );
}
