//! What an operator relies on around the mail itself: the data directory closed to other users,
//! and logs fit for a file or a collector.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// Every file and directory below `dir` with its mode.
fn modes(dir: &Path, out: &mut Vec<(String, u32, bool)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        out.push((e.path().display().to_string(), mode, meta.is_dir()));
        if meta.is_dir() {
            modes(&e.path(), out);
        }
    }
}

#[tokio::test]
async fn the_data_directory_is_readable_by_the_gateway_only() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut gw = Gateway::start_logging_to("", log.path());
    gw.ok(&["tenant", "add", "contoso"]);
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
    let mut s = session(gw.smtp, "127.0.0.1").await;
    let r = s
        .mail(
            "a@example.org",
            &["bob@contoso.com"],
            &message("a@example.org", "bob@contoso.com", "modes"),
        )
        .await;
    assert!(r.last().unwrap().starts_with("250 2.6.0"), "{r:?}");
    assert_eq!(gw.wait_maildir("contoso", "bob@contoso.com", 1).len(), 1);
    // A message waiting in the spool too.
    gw.ok(&["tenant", "set", "contoso", "--route", "smtp://127.0.0.1:9"]);
    let r = s
        .mail(
            "a@example.org",
            &["bob@contoso.com"],
            &message("a@example.org", "bob@contoso.com", "waiting"),
        )
        .await;
    assert!(r.last().unwrap().starts_with("250 2.6.0"), "{r:?}");
    gw.trace_until("contoso", &["--status", "deferred"], |v| !v.is_empty());
    assert!(gw.stop().success());
    let mut all = Vec::new();
    let data = gw.data();
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    modes(&data, &mut all);
    let kinds = |needle: &str| all.iter().any(|(p, _, _)| p.contains(needle));
    // The things that matter are all there to be checked.
    for needle in [
        "portcullis.db",
        "admin.token",
        "spool",
        "mail/contoso",
        "tls/",
    ] {
        assert!(kinds(needle), "no {needle} in {all:?}");
    }
    let open: Vec<_> = all
        .iter()
        .filter(|(_, mode, is_dir)| {
            if *is_dir {
                *mode != 0o700
            } else {
                *mode != 0o600
            }
        })
        .collect();
    assert!(open.is_empty(), "readable by others: {open:?}");
}

#[tokio::test]
async fn logs_in_a_file_have_no_colour_and_json_lines_parse() {
    for (config, json) in [("", false), ("[log]\nformat = \"json\"\n", true)] {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut gw = Gateway::start_logging_to(config, log.path());
        gw.ok(&["tenant", "add", "contoso"]);
        gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
        gw.ok(&[
            "org",
            "set",
            "--tenant",
            "contoso",
            "--reject-direct-send",
            "on",
        ]);
        let mut s = session(gw.smtp, "127.0.0.1").await;
        let r = s
            .mail(
                "ceo@contoso.com",
                &["bob@contoso.com"],
                &message("ceo@contoso.com", "bob@contoso.com", "spoof"),
            )
            .await;
        assert!(r[1].starts_with("550 5.7.68"), "{r:?}");
        s.cmd("QUIT").await;
        gw.trace_until("contoso", &[], |v| !v.is_empty());
        assert!(gw.stop().success());
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(!text.contains('\x1b'), "colour codes in a file: {text}");
        // The direct-send refusal has its line: tenant, client, sender, recipients, reply.
        let line = text
            .lines()
            .find(|l| l.contains("recipients refused"))
            .unwrap_or_else(|| panic!("no refusal line in {text}"));
        for part in [
            "contoso",
            "127.0.0.1",
            "ceo@contoso.com",
            "bob@contoso.com",
            "550 5.7.68",
        ] {
            assert!(line.contains(part), "{part} missing from {line}");
        }
        if json {
            for l in text.lines() {
                let v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
            }
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["fields"]["tenant"], "contoso");
        }
    }
}

fn readyz(gw: &Gateway) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent.get(format!("{}/readyz", gw.admin)).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

#[tokio::test]
async fn readyz_is_degraded_while_dns_fails_and_while_mail_is_refused_for_a_local_cause() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let gw = Gateway::start_logging_to(
        // Right after the harness's own [dns] table.
        "unhealthy_after = \"1s\"\n[delivery]\nmax_queue = 1\n",
        log.path(),
    );
    gw.ok(&["tenant", "add", "contoso"]);
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
    assert_eq!(readyz(&gw), (200, "ready\n".to_string()));
    // DNS times out for the sender's domain: SPF cannot be evaluated.
    gw.dns.timeout("slow.example");
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert!(s.cmd("MAIL FROM:<a@slow.example>").await.starts_with("250"));
    assert!(
        s.cmd("RCPT TO:<bob@contoso.com>")
            .await
            .starts_with("451 4.7.24")
    );
    s.cmd("QUIT").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (code, body) = loop {
        let (code, body) = readyz(&gw);
        if code == 503 || std::time::Instant::now() > deadline {
            break (code, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with("degraded: DNS lookups have failed for "),
        "{body}"
    );
    // The watcher (once a second) says it in /metrics and the log.
    let mut said = false;
    for _ in 0..30 {
        said = gw.metrics().contains("portcullis_dns_healthy 0")
            && std::fs::read_to_string(log.path())
                .unwrap()
                .contains("DNS lookups have been failing");
        if said {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(said, "no DNS warning in the metrics and the log");
    // A lookup that answers (no SPF record is an answer) ends it.
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert!(s.cmd("MAIL FROM:<a@example.org>").await.starts_with("250"));
    assert_eq!(readyz(&gw).0, 200);

    // The queue full (one message waiting for a route that does not answer): 452 at MAIL, and
    // readyz says why.
    gw.ok(&["tenant", "set", "contoso", "--route", "smtp://127.0.0.1:9"]);
    assert!(s.cmd("RCPT TO:<bob@contoso.com>").await.starts_with("250"));
    assert!(s.cmd("DATA").await.starts_with("354"));
    s.send(b"Subject: waits\r\n\r\nx\r\n.\r\n").await;
    assert!(s.reply().await.starts_with("250 2.6.0"));
    assert!(s.cmd("MAIL FROM:<a@example.org>").await.starts_with("452"));
    let (code, body) = readyz(&gw);
    assert_eq!(code, 503);
    assert!(
        body.starts_with("degraded: new mail is refused (452): 1 messages queued"),
        "{body}"
    );
}
