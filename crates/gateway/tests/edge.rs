//! The edge of a real MX, end to end: deadlines a trickling client cannot stretch, connection
//! limits by network with slots kept for connectors, the PROXY protocol from trusted balancers,
//! NUL bytes never relayed, and no bounce to a sender authentication says is forged.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn contoso(gw: &Gateway) {
    gw.ok(&["tenant", "add", "contoso"]);
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
}

/// Sends `bytes` one at a time, `gap` apart, until the server answers; returns the answer.
async fn trickle(s: &mut Smtp, bytes: &[u8], gap: Duration) -> String {
    for b in bytes {
        if !s.try_send(&[*b]).await {
            break;
        }
        tokio::time::sleep(gap).await;
    }
    s.reply().await
}

#[tokio::test]
async fn a_trickling_client_meets_the_command_deadline_and_its_transaction_is_traced() {
    let gw = Gateway::start("[smtp]\ncommand_timeout = \"2s\"\nidle_timeout = \"5m\"\n");
    contoso(&gw);
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert!(s.cmd("MAIL FROM:<a@example.org>").await.starts_with("250"));
    assert!(s.cmd("RCPT TO:<bob@contoso.com>").await.starts_with("250"));
    // One byte every 300 ms restarts an idle timer forever; the command deadline holds.
    let started = Instant::now();
    let r = trickle(
        &mut s,
        &b"NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP\r\n"[..],
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(
        r,
        "421 4.4.2 mx.test.example Command timeout, closing connection"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.reply().await, "EOF");
    // The accepted recipient was deferred by the 421, and the trace says so.
    let t = gw.trace_until("contoso", &[], |v| v.len() == 1);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0]["status"], "deferred");
    assert_eq!(t[0]["recipients"][0]["status"], "deferred");
    assert_eq!(
        t[0]["recipients"][0]["reply"],
        "421 4.4.2 mx.test.example Command timeout, closing connection"
    );
    let events = t[0]["events"].to_string();
    assert!(events.contains("command_timeout"), "{events}");
}

#[tokio::test]
async fn the_data_phase_and_the_session_have_deadlines_of_their_own() {
    let gw = Gateway::start(
        "[smtp]\ndata_timeout = \"2s\"\nsession_timeout = \"4s\"\ncommand_timeout = \"10s\"\n",
    );
    contoso(&gw);
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert!(s.cmd("MAIL FROM:<a@example.org>").await.starts_with("250"));
    assert!(s.cmd("RCPT TO:<bob@contoso.com>").await.starts_with("250"));
    assert!(s.cmd("DATA").await.starts_with("354"));
    // Whole lines, slowly: each line is on time, the message is not.
    let mut r = String::new();
    for i in 0..40 {
        if !s.try_send(format!("line {i}\r\n").as_bytes()).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if i == 15 {
            break;
        }
    }
    r.push_str(&s.reply().await);
    assert_eq!(
        r,
        "421 4.4.2 mx.test.example Message data timeout, closing connection"
    );
    let t = gw.trace_until("contoso", &[], |v| v.len() == 1);
    assert_eq!(t[0]["status"], "deferred");
    assert!(gw.maildir("contoso", "bob@contoso.com").is_empty());

    // A client that is busy all the time still ends at the session deadline.
    let mut s = session(gw.smtp, "127.0.0.1").await;
    let started = Instant::now();
    let r = loop {
        let r = s.cmd("NOOP").await;
        if !r.starts_with("250") {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        r,
        "421 4.4.2 mx.test.example Session time limit reached, closing connection"
    );
    let took = started.elapsed();
    assert!(
        took > Duration::from_secs(3) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let metrics = gw.metrics();
    assert!(
        metrics.contains("portcullis_session_deadlines_total{deadline=\"data\"} 1")
            && metrics.contains("portcullis_session_deadlines_total{deadline=\"session\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn one_network_cannot_lock_out_a_tenants_connector() {
    let gw = Gateway::start(
        "[smtp]\nmax_connections = 10\nreserved_connector_slots = 3\nmax_connections_per_ip = 2\nmax_connections_per_network = 4\n",
    );
    contoso(&gw);
    gw.ok(&[
        "connector",
        "add",
        "on-prem",
        "--tenant",
        "contoso",
        "--type",
        "on-premises",
        "--sender-ip",
        "127.0.2.0/29",
    ]);
    // A connector for the whole internet (another tenant's, say) lifts no limit for anybody.
    gw.ok(&["tenant", "add", "wide"]);
    gw.ok(&[
        "connector",
        "add",
        "everything",
        "--tenant",
        "wide",
        "--sender-ip",
        "0.0.0.0/0",
        "--allow-broad-range",
    ]);
    let banner = |ip: &str| {
        let ip = ip.to_string();
        let addr = gw.smtp;
        async move {
            let (s, b) = Smtp::connect_from(addr, ip.parse().unwrap()).await;
            (s, b)
        }
    };
    let mut held = Vec::new();
    // Five addresses of 127.0.0.0/24, two connections each: four get in, then the network is full.
    let mut refused = Vec::new();
    for host in 1..=5 {
        for _ in 0..2 {
            let (s, b) = banner(&format!("127.0.0.{host}")).await;
            if b.starts_with("220") {
                held.push(s);
            } else {
                refused.push(b);
            }
        }
    }
    assert_eq!(held.len(), 4);
    assert!(refused.iter().all(|b| b
        == "421 4.7.0 mx.test.example Too many connections from your network, try again later"));
    // Another network fills what is left of the unreserved slots.
    for host in 1..=3 {
        let (s, b) = banner(&format!("127.0.1.{host}")).await;
        assert!(b.starts_with("220"), "{b}");
        held.push(s);
    }
    let (_, b) = banner("127.0.1.9").await;
    assert_eq!(
        b,
        "421 4.7.0 mx.test.example Too many connections, try again later"
    );
    // The tenant's own server still gets in, and can deliver.
    let mut s = session(gw.smtp, "127.0.2.1").await;
    let r = s
        .mail(
            "ceo@contoso.com",
            &["bob@contoso.com"],
            &message("ceo@contoso.com", "bob@contoso.com", "still in"),
        )
        .await;
    assert!(r.last().unwrap().starts_with("250 2.6.0"), "{r:?}");
    let metrics = gw.metrics();
    assert!(
        metrics.contains("portcullis_connections_refused_total{reason=\"network\"} 6"),
        "{metrics}"
    );
}

#[tokio::test]
async fn nul_in_message_data_is_refused_and_the_session_goes_on() {
    let gw = Gateway::start("");
    contoso(&gw);
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert!(s.cmd("MAIL FROM:<a@example.org>").await.starts_with("250"));
    assert!(s.cmd("RCPT TO:<bob@contoso.com>").await.starts_with("250"));
    assert!(s.cmd("DATA").await.starts_with("354"));
    s.send(b"Subject: nul\r\n\r\nbefore\0after\r\n.\r\n").await;
    assert_eq!(
        s.reply().await,
        "554 5.6.0 Message refused: NUL character in message data"
    );
    let t = gw.trace_until("contoso", &["--status", "rejected"], |v| v.len() == 1);
    assert_eq!(
        t[0]["recipients"][0]["reply"],
        "554 5.6.0 Message refused: NUL character in message data"
    );
    // Nothing relayed; the next message on the same session is accepted.
    let r = s
        .mail(
            "a@example.org",
            &["bob@contoso.com"],
            &message("a@example.org", "bob@contoso.com", "clean"),
        )
        .await;
    assert!(r.last().unwrap().starts_with("250 2.6.0"), "{r:?}");
    let mail = gw.wait_maildir("contoso", "bob@contoso.com", 1);
    assert_eq!(mail.len(), 1);
    assert!(!mail[0].contains('\0'));
}

#[tokio::test]
async fn no_bounce_to_a_sender_spf_says_is_forged() {
    let down = Downstream::start(0, false, 0).await;
    let mx = Downstream::start_on("127.0.0.46", 0, false, 0).await;
    let gw = Gateway::start(&format!("[delivery]\nmx_port = {}\n", mx.port));
    for domain in ["forged.example", "honest.example"] {
        gw.dns.mx(domain, 10, "mx.bounces.example");
    }
    gw.dns
        .a("mx.bounces.example", "127.0.0.46".parse().unwrap());
    gw.dns.txt("forged.example", "v=spf1 ip4:192.0.2.1 -all");
    gw.dns.txt("honest.example", "v=spf1 ip4:127.0.0.1 -all");
    contoso(&gw);
    gw.ok(&[
        "tenant",
        "set",
        "contoso",
        "--route",
        &format!("smtp://127.0.0.1:{}", down.port),
    ]);
    for sender in ["x@forged.example", "y@honest.example"] {
        let mut s = session(gw.smtp, "127.0.0.1").await;
        let r = s
            .mail(
                sender,
                &["reject-me@contoso.com"],
                &message(sender, "reject-me@contoso.com", sender),
            )
            .await;
        assert!(r.last().unwrap().starts_with("250 2.6.0"), "{r:?}");
    }
    // The honest sender gets its bounce; the forged one does not, and the trace says why.
    let t = gw.trace_until("contoso", &["--sender", "x@forged.example"], |v| {
        v.len() == 1 && v[0]["status"] == "failed"
    });
    let events = t[0]["events"].to_string();
    assert!(
        events.contains("no delivery status notification to x@forged.example: SPF failed"),
        "{events}"
    );
    for _ in 0..100 {
        if !mx.messages().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bounces = mx.messages();
    let honest = gw.trace_until("contoso", &["--sender", "<>"], |v| v.len() == 1);
    assert_eq!(bounces.len(), 1, "{bounces:?} {honest:?}");
    assert_eq!(bounces[0].1, ["y@honest.example"]);
}

// ---------------------------------------------------------------- PROXY protocol

async fn connect_from(addr: std::net::SocketAddr, local: &str) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(std::net::SocketAddr::new(local.parse().unwrap(), 0))
        .unwrap();
    sock.connect(addr).await.unwrap()
}

async fn read_some(tcp: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 1024];
    match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).to_string(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "silence".into(),
    }
}

#[tokio::test]
async fn proxy_headers_from_trusted_balancers_name_the_client() {
    let gw = Gateway::start(
        "[smtp]\nproxy_trusted_networks = [\"127.0.0.50/32\"]\nproxy_timeout = \"1s\"\n",
    );
    contoso(&gw);
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
        "on-prem",
        "--tenant",
        "contoso",
        "--type",
        "on-premises",
        "--sender-ip",
        "192.0.2.25/32",
    ]);
    // v1 from the balancer, for the tenant's server: attributed by the header's address.
    let mut tcp = connect_from(gw.smtp, "127.0.0.50").await;
    tcp.write_all(b"PROXY TCP4 192.0.2.25 127.0.0.1 40025 25\r\n")
        .await
        .unwrap();
    let mut s = Smtp::from_stream(tcp).await;
    assert!(s.cmd("EHLO onprem.contoso.com").await.starts_with("250"));
    let r = s
        .mail(
            "ceo@contoso.com",
            &["bob@contoso.com"],
            &message("ceo@contoso.com", "bob@contoso.com", "via v1"),
        )
        .await;
    assert!(r.last().unwrap().starts_with("250 2.6.0"), "{r:?}");
    // v2 for somebody else: anonymous direct send, refused, and traced under the real client.
    let mut tcp = connect_from(gw.smtp, "127.0.0.50").await;
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend_from_slice(&[198, 51, 100, 9, 127, 0, 0, 1, 0x9c, 0x40, 0, 25]);
    // The header and the client's first command in one segment.
    h.extend_from_slice(b"EHLO spoofer.example\r\n");
    tcp.write_all(&h).await.unwrap();
    let mut s = Smtp::from_stream(tcp).await;
    assert!(s.reply().await.starts_with("250"));
    let r = s
        .mail(
            "ceo@contoso.com",
            &["bob@contoso.com"],
            &message("ceo@contoso.com", "bob@contoso.com", "via v2"),
        )
        .await;
    assert!(r[1].starts_with("550 5.7.68"), "{r:?}");
    let t = gw.trace_until("contoso", &[], |v| v.len() == 2);
    let by_ip = |ip: &str| {
        t.iter()
            .find(|r| r["client_ip"] == ip)
            .unwrap_or_else(|| panic!("{ip}: {t:?}"))
            .clone()
    };
    let v1 = by_ip("192.0.2.25");
    assert_eq!(v1["attribution"], "connector");
    assert_eq!(v1["proxy_ip"], "127.0.0.50");
    let v2 = by_ip("198.51.100.9");
    assert_eq!(v2["status"], "rejected");
    assert_eq!(v2["proxy_ip"], "127.0.0.50");
    // `trace --from-ip` finds the real client.
    let t = gw.trace_until("contoso", &["--from-ip", "198.51.100.9"], |v| v.len() == 1);
    assert_eq!(t.len(), 1);
}

#[tokio::test]
async fn a_balancer_without_a_header_and_a_stranger_with_one() {
    let gw = Gateway::start(
        "[smtp]\nproxy_trusted_networks = [\"127.0.0.50/32\"]\nproxy_timeout = \"1s\"\n",
    );
    // From the balancer, SMTP instead of a header: closed before any banner.
    let mut tcp = connect_from(gw.smtp, "127.0.0.50").await;
    tcp.write_all(b"EHLO x\r\n").await.unwrap();
    assert_eq!(read_some(&mut tcp).await, "");
    // A malformed header: closed the same way.
    let mut tcp = connect_from(gw.smtp, "127.0.0.50").await;
    tcp.write_all(b"PROXY TCP4 192.0.2.300 127.0.0.1 1 25\r\n")
        .await
        .unwrap();
    assert_eq!(read_some(&mut tcp).await, "");
    // Nothing at all: closed after proxy_timeout, without a banner.
    let started = Instant::now();
    let mut tcp = connect_from(gw.smtp, "127.0.0.50").await;
    assert_eq!(read_some(&mut tcp).await, "");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // From anywhere else a PROXY line is an unknown command; the session goes on.
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert_eq!(
        s.cmd("PROXY TCP4 192.0.2.25 127.0.0.1 40025 25").await,
        "500 5.5.2 Syntax error, command unrecognized"
    );
    assert!(s.cmd("NOOP").await.starts_with("250"));
    let metrics = gw.metrics();
    assert!(
        metrics.contains("portcullis_proxy_header_failures_total 3"),
        "{metrics}"
    );
}

// ---------------------------------------------------------------- behind a filtering service

/// A message as a filtering service hands it over: its own hops on top of the sender's.
fn filtered(chain: &[&str], subject: &str) -> String {
    let mut m = String::new();
    for hop in chain {
        m.push_str(&format!(
            "Received: {hop}; Mon, 7 Dec 2026 10:00:00 +0000\r\n"
        ));
    }
    m.push_str(&format!(
        "From: ann@fabrikam.example\r\nTo: bob@contoso.com\r\nSubject: {subject}\r\nMessage-ID: <{}@fabrikam.example>\r\n\r\nHello.\r\n",
        subject.replace(' ', "-")
    ));
    m
}

#[tokio::test]
async fn behind_a_filtering_service_the_original_client_is_judged() {
    let gw = Gateway::start("");
    gw.dns
        .txt("fabrikam.example", "v=spf1 ip4:198.51.100.7 -all");
    gw.dns.txt("_dmarc.fabrikam.example", "v=DMARC1; p=reject");
    contoso(&gw);
    // The service's hosts: the one that connects (127.0.0.70) and its inbound tier 10.1.0.0/16.
    gw.ok(&[
        "connector",
        "add",
        "filter",
        "--tenant",
        "contoso",
        "--sender-ip",
        "127.0.0.70/32",
        "--skip-ips",
        "127.0.0.70/32",
        "10.1.0.0/16",
    ]);
    let honest = [
        "from in1.filter.example (in1.filter.example [10.1.0.5]) by out.filter.example",
        "from mail.fabrikam.example (mail.fabrikam.example [198.51.100.7]) by in1.filter.example",
        // Written before the service: never read.
        "from forged.example ([192.0.2.99]) by mail.fabrikam.example",
    ];
    let spoofed = [
        "from in1.filter.example (in1.filter.example [10.1.0.5]) by out.filter.example",
        "from bad.example (bad.example [203.0.113.9]) by in1.filter.example",
        "from mail.fabrikam.example ([198.51.100.7]) by bad.example",
    ];
    let send = async |chain: &[&str], subject: &str| {
        let mut s = session(gw.smtp, "127.0.0.70").await;
        let r = s
            .mail(
                "ann@fabrikam.example",
                &["bob@contoso.com"],
                &filtered(chain, subject),
            )
            .await;
        r.last().unwrap().clone()
    };
    // The sender's own server is behind the service: SPF and DMARC pass for it.
    assert!(send(&honest, "honest").await.starts_with("250 2.6.0"));
    // Another host claiming fabrikam.example: SPF fails for it and DMARC p=reject refuses,
    // though the connection came from the service the connector vouches for.
    let r = send(&spoofed, "spoofed").await;
    assert!(r.starts_with("550 5.7.509"), "{r}");
    let t = gw.trace_until("contoso", &[], |v| v.len() == 2);
    let by_subject = |s: &str| t.iter().find(|r| r["subject"] == s).unwrap().clone();
    let h = by_subject("honest");
    assert_eq!(h["client_ip"], "127.0.0.70");
    assert_eq!(h["original_client_ip"], "198.51.100.7");
    assert_eq!(h["attribution"], "connector");
    assert_eq!(h["auth"]["spf"], "pass");
    assert_eq!(h["auth"]["dmarc"], "pass");
    assert!(
        h["events"]
            .to_string()
            .contains("original client 198.51.100.7"),
        "{h}"
    );
    let sp = by_subject("spoofed");
    assert_eq!(sp["original_client_ip"], "203.0.113.9");
    assert_eq!(sp["auth"]["spf"], "fail");
    assert_eq!(sp["status"], "rejected");
    let mail = gw.wait_maildir("contoso", "bob@contoso.com", 1);
    assert!(mail[0].contains("spf=pass"), "{}", mail[0]);

    // Without the skip list the service's own address is judged: SPF fails, DMARC refuses.
    gw.ok(&[
        "connector",
        "set",
        "filter",
        "--tenant",
        "contoso",
        "--skip-ips",
        "",
    ]);
    assert!(
        send(&honest, "honest again").await.starts_with("250 2.6.0"),
        "attributed mail is not judged"
    );
    // --skip-last-ip: the client the top header names.
    gw.ok(&[
        "connector",
        "set",
        "filter",
        "--tenant",
        "contoso",
        "--skip-last-ip",
    ]);
    let direct =
        ["from mail.fabrikam.example (mail.fabrikam.example [198.51.100.7]) by out.filter.example"];
    assert!(send(&direct, "last hop").await.starts_with("250 2.6.0"));
    let r = send(&spoofed[1..], "last hop spoofed").await;
    assert!(r.starts_with("550 5.7.509"), "{r}");
    // simulate --eml explains the walk.
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("m.eml");
    std::fs::write(&eml, filtered(&spoofed[1..], "simulated")).unwrap();
    let out = gw.ok(&[
        "simulate",
        "--tenant",
        "contoso",
        "--ip",
        "127.0.0.70",
        "--mail-from",
        "ann@fabrikam.example",
        "--rcpt",
        "bob@contoso.com",
        "--eml",
        eml.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let step = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "original-client")
        .unwrap_or_else(|| panic!("{v}"))
        .clone();
    assert_eq!(step["outcome"], "203.0.113.9");
    assert!(
        v["reply"].as_str().unwrap().starts_with("550 5.7.509"),
        "{v}"
    );
    // Both skip kinds at once are refused: exit 2, nothing changed.
    let o = gw.cli(&[
        "connector",
        "set",
        "filter",
        "--tenant",
        "contoso",
        "--skip-ips",
        "10.1.0.0/16",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test]
async fn a_client_that_keeps_the_socket_full_still_meets_the_data_deadline() {
    let gw = Gateway::start("[smtp]\ndata_timeout = \"1s\"\nmax_message_size = 1000\n");
    contoso(&gw);
    let tcp = connect_from(gw.smtp, "127.0.0.1").await;
    let (mut r, mut w) = tcp.into_split();
    w.write_all(
        b"EHLO flood.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@contoso.com>\r\nDATA\r\n",
    )
    .await
    .unwrap();
    // An endless message, as fast as the socket takes it (discarded past the size limit).
    let writer = tokio::spawn(async move {
        let line = [b'x'; 1022]
            .iter()
            .copied()
            .chain(*b"\r\n")
            .collect::<Vec<u8>>();
        while w.write_all(&line).await.is_ok() {}
    });
    let started = Instant::now();
    let mut seen = String::new();
    let mut buf = vec![0u8; 4096];
    while !seen.contains("421 ") {
        match tokio::time::timeout(Duration::from_secs(10), r.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
    assert!(
        seen.contains("421 4.4.2 mx.test.example Message data timeout, closing connection"),
        "{seen}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    writer.abort();
}

#[tokio::test]
async fn broad_or_mistyped_connector_ranges_are_refused_naming_the_value() {
    let gw = Gateway::start("");
    contoso(&gw);
    let add = |extra: &[&str]| {
        let mut args = vec!["connector", "add", "wide", "--tenant", "contoso"];
        args.extend_from_slice(extra);
        gw.cli(&args)
    };
    let o = add(&["--sender-ip", "0.0.0.0/0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("0.0.0.0/0") && err.contains("--allow-broad-range"),
        "{err}"
    );
    let o = add(&["--sender-ip", "2001:db8::/16"]);
    assert_eq!(o.status.code(), Some(2));
    let o = add(&["--sender-ip", "10.0.0.1/24"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("did you mean 10.0.0.0/24 or 10.0.0.1/32"),
        "{err}"
    );
    // Nothing was created by the refusals.
    assert!(
        !gw.ok(&["connector", "list", "--tenant", "contoso"])
            .contains("wide")
    );
    // Through the API too (the CLI is not the only client): 400 naming the value.
    let o = gw.cli(&[
        "connector",
        "add",
        "ok",
        "--tenant",
        "contoso",
        "--sender-ip",
        "10.0.0.0/16",
    ]);
    assert!(o.status.success());
    let token = std::fs::read_to_string(gw.data().join("admin.token")).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .patch(format!("{}/api/v1/tenants/contoso/connectors/ok", gw.admin))
        .header("Authorization", format!("Bearer {}", token.trim()))
        .send_json(serde_json::json!({"sender_ips": ["0.0.0.0/1"]}))
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.body_mut().read_to_string().unwrap().contains("0.0.0.0/1"));
    // Said explicitly: accepted, and the audit log has it.
    let o = add(&["--sender-ip", "0.0.0.0/0", "--allow-broad-range"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let audit = gw.ok(&["audit", "--tenant", "contoso", "--json"]);
    assert!(audit.contains("0.0.0.0/0"), "{audit}");
}
