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
