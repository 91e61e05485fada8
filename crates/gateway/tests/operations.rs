//! What an operator relies on around the mail itself: the data directory closed to other users,
//! and logs fit for a file or a collector.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// Tenant contoso with its domain contoso.com.
fn contoso(gw: &Gateway) {
    gw.ok(&["tenant", "add", "contoso"]);
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
}

/// A rule that quarantines contoso's mail whose subject says "hold".
fn hold_rule(gw: &Gateway) {
    gw.ok(&[
        "rule",
        "add",
        "hold",
        "--tenant",
        "contoso",
        "--priority",
        "0",
        "--subject-contains",
        "hold",
        "--quarantine",
    ]);
}

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
    contoso(&gw);
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
        contoso(&gw);
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
    contoso(&gw);
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
    // While DNS is unhealthy, anonymous mail is deferred at once: one lookup in 2 s still goes
    // out (to see DNS come back), the others wait for nothing.
    for d in [
        "slow1.example",
        "slow2.example",
        "slow3.example",
        "slow4.example",
        "slow5.example",
    ] {
        gw.dns.timeout(d);
    }
    let queries = gw.dns.queries();
    let started = std::time::Instant::now();
    let mut s = session(gw.smtp, "127.0.0.1").await;
    for i in 1..=5 {
        assert!(
            s.cmd(&format!("MAIL FROM:<a@slow{i}.example>"))
                .await
                .starts_with("250")
        );
        assert!(
            s.cmd("RCPT TO:<bob@contoso.com>")
                .await
                .starts_with("451 4.7.24")
        );
        s.cmd("RSET").await;
    }
    s.cmd("QUIT").await;
    let asked = gw.dns.queries() - queries;
    assert!(
        asked <= 4,
        "{asked} queries while DNS was known to be failing"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The next lookup that goes out (2 s on) and answers (no SPF record is an answer) ends it.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert!(s.cmd("MAIL FROM:<a@example.org>").await.starts_with("250"));
    // SPF runs while the session goes on: its answer ends the trouble a moment after the 250.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while readyz(&gw).0 != 200 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
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

#[tokio::test]
async fn config_paths_are_relative_to_the_config_file_and_sighup_names_keys_needing_a_restart() {
    // Started from another directory: the data directory is next to the file.
    let etc = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("portcullis.toml");
    std::fs::write(
        &cfg,
        "hostname = \"mx.test.example\"\ndata_dir = \"relative-data\"\n[auth]\nenabled = false\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(BIN)
        .current_dir(elsewhere.path())
        .args(["serve", "--config"])
        .arg(&cfg)
        .args([
            "--smtp-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("PORTCULLIS_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let want = etc.path().join("relative-data");
    assert!(
        line.trim_end()
            .ends_with(&format!("data in {}", want.display())),
        "{line}"
    );
    assert!(want.join("portcullis.db").exists());
    assert!(!elsewhere.path().join("relative-data").exists());

    // SIGHUP after changing a key only a restart applies: a warning naming it.
    let log = tempfile::NamedTempFile::new().unwrap();
    let gw = Gateway::start_logging_to("", log.path());
    let path = gw.dir.path().join("portcullis.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[trace]\nretention = \"30d\"\n[smtp]\nmax_recipients = 50\nidle_timeout = \"7m\"\n",
    );
    std::fs::write(&path, text).unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    let mut warned = String::new();
    for _ in 0..50 {
        warned = std::fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .find(|l| l.contains("apply only after a restart"))
            .unwrap_or_default()
            .to_string();
        if !warned.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        warned.contains("WARN"),
        "{}",
        std::fs::read_to_string(log.path()).unwrap()
    );
    assert!(
        warned.contains("trace.retention") && warned.contains("smtp.idle_timeout"),
        "{warned}"
    );
    // What SIGHUP does apply is not listed.
    assert!(!warned.contains("max_recipients"), "{warned}");
}

#[test]
fn version_completions_and_man_page_need_no_server() {
    let run = |args: &[&str]| {
        let o = std::process::Command::new(BIN).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let v = run(&["--version"]);
    assert!(
        v.starts_with("portcullis 0.") && v.contains("(commit "),
        "{v}"
    );
    assert!(
        !v.contains("(commit unknown)"),
        "built in a git checkout: {v}"
    );
    let bash = run(&["completions", "bash"]);
    assert!(
        bash.contains("_portcullis()") && bash.contains("recipient"),
        "{}",
        &bash[..200]
    );
    let zsh = run(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef portcullis"), "{}", &zsh[..100]);
    let fish = run(&["completions", "fish"]);
    assert!(fish.contains("complete -c portcullis"));
    let man = run(&["man"]);
    assert!(
        man.contains(".TH portcullis") && man.contains("recipient"),
        "{}",
        &man[..300]
    );
    let o = std::process::Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let help = run(&["--help"]);
    assert!(help.contains("Exit status: 0 success"), "{help}");
}

#[tokio::test]
async fn tenant_show_and_json_everywhere() {
    let gw = Gateway::start("");
    contoso(&gw);
    gw.ok(&[
        "connector",
        "add",
        "onprem",
        "--tenant",
        "contoso",
        "--type",
        "on-premises",
        "--sender-ip",
        "192.0.2.0/24",
    ]);
    gw.ok(&[
        "recipient",
        "add",
        "bob@contoso.com",
        "ann@contoso.com",
        "--tenant",
        "contoso",
    ]);
    let text = gw.ok(&["tenant", "show", "contoso"]);
    for part in [
        "tenant contoso",
        "route: maildir:",
        "recipients in the list: 2",
        "contoso.com",
        "onprem",
        "192.0.2.0/24",
        "reject_direct_send",
    ] {
        assert!(text.contains(part), "{part} missing from\n{text}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&gw.ok(&["tenant", "show", "contoso", "--json"])).unwrap();
    assert_eq!(v["recipients"], 2);
    assert_eq!(v["domains"][0]["domain"], "contoso.com");
    // Another tenant's viewer cannot see it (exit 4).
    gw.ok(&["tenant", "add", "fabrikam"]);
    let viewer = gw.create_token("fab", "viewer", "fabrikam");
    let o = gw.cli(&["tenant", "show", "contoso", "--token", &viewer]);
    assert_eq!(o.status.code(), Some(4));
    // --json on token create; --json as --format json on the report.
    let v: serde_json::Value = serde_json::from_str(&gw.ok(&[
        "token", "create", "--name", "ci", "--role", "viewer", "--tenant", "contoso", "--json",
    ]))
    .unwrap();
    assert!(v["token"].as_str().unwrap().starts_with("pc_"), "{v}");
    let v: serde_json::Value =
        serde_json::from_str(&gw.ok(&["report", "direct-send", "--tenant", "contoso", "--json"]))
            .unwrap();
    assert_eq!(v["tenant"], "contoso");
}

#[tokio::test]
async fn audit_entries_name_the_message_acted_on_and_its_tenant() {
    let gw = Gateway::start("");
    contoso(&gw);
    hold_rule(&gw);
    let mut s = session(gw.smtp, "127.0.0.1").await;
    for subject in ["hold one", "hold two"] {
        let r = s
            .mail(
                "a@example.org",
                &["bob@contoso.com"],
                &message("a@example.org", "bob@contoso.com", subject),
            )
            .await;
        assert!(r.last().unwrap().starts_with("250 2.6.0"), "{r:?}");
    }
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&gw.ok(&["quarantine", "list", "--tenant", "contoso", "--json"]))
            .unwrap();
    assert_eq!(list.len(), 2);
    let (a, b) = (
        list[0]["id"].as_str().unwrap(),
        list[1]["id"].as_str().unwrap(),
    );
    gw.ok(&["quarantine", "release", a, "--tenant", "contoso"]);
    gw.ok(&["quarantine", "delete", b, "--tenant", "contoso"]);
    // A message waiting for a route that does not answer, deleted from the queue.
    gw.ok(&["tenant", "set", "contoso", "--route", "smtp://127.0.0.1:9"]);
    let r = s
        .mail(
            "a@example.org",
            &["carol@contoso.com"],
            &message("a@example.org", "carol@contoso.com", "waiting"),
        )
        .await;
    let queued = r.last().unwrap().rsplit(' ').next().unwrap().to_string();
    gw.trace_until("contoso", &["--status", "deferred"], |v| !v.is_empty());
    gw.ok(&["queue", "delete", &queued]);
    let audit: Vec<serde_json::Value> = serde_json::from_str(&gw.ok(&["audit", "--json"])).unwrap();
    let entry = |action: &str| {
        audit
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {audit:?}"))
            .clone()
    };
    let release = entry("POST /api/v1/tenants/{t}/quarantine/{id}/release");
    assert_eq!(release["tenant"], "contoso");
    assert_eq!(release["before"]["quarantined_message"]["id"], a);
    assert_eq!(release["after"]["released"], a);
    assert_eq!(release["after"]["to"][0], "bob@contoso.com");
    let delete = entry("DELETE /api/v1/tenants/{t}/quarantine/{id}");
    assert_eq!(delete["before"]["quarantined_message"]["id"], b);
    assert_eq!(delete["after"]["deleted"], b);
    let q = entry("DELETE /api/v1/queue/{id}");
    assert_eq!(q["tenant"], "contoso", "{q}");
    assert_eq!(q["before"]["queued_message"]["trace_id"], queued.as_str());
    assert_eq!(
        q["before"]["queued_message"]["recipients"][0],
        "carol@contoso.com"
    );
}

#[tokio::test]
async fn config_show_prints_the_running_configuration_for_the_operator_only() {
    let gw = Gateway::start("[smtp]\nmax_recipients = 77\n");
    let text = gw.ok(&["config", "show"]);
    let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["smtp"]["max_recipients"].as_integer(), Some(77));
    assert_eq!(v["hostname"].as_str(), Some("mx.test.example"));
    assert!(
        v["smtp"]["listen"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let j: serde_json::Value = serde_json::from_str(&gw.ok(&["config", "show", "--json"])).unwrap();
    assert_eq!(j["smtp"]["max_recipients"], 77);
    gw.ok(&["tenant", "add", "contoso"]);
    let admin = gw.create_token("admin", "org-admin", "contoso");
    assert_eq!(
        gw.cli(&["config", "show", "--token", &admin]).status.code(),
        Some(4)
    );
}

#[tokio::test]
async fn trace_listings_say_when_more_records_exist_and_page_through_all() {
    let gw = Gateway::start("");
    contoso(&gw);
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "on",
    ]);
    let mut s = session(gw.smtp, "127.0.0.1").await;
    for i in 0..5 {
        assert!(
            s.cmd(&format!("MAIL FROM:<ceo{i}@contoso.com>"))
                .await
                .starts_with("250")
        );
        assert!(
            s.cmd("RCPT TO:<bob@contoso.com>")
                .await
                .starts_with("550 5.7.68")
        );
        s.cmd("RSET").await;
    }
    s.cmd("QUIT").await;
    gw.trace_until("contoso", &[], |v| v.len() == 5);
    let o = gw.cli(&["trace", "--tenant", "contoso", "--limit", "2", "--json"]);
    assert!(o.status.success());
    let first: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(first.len(), 2);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let cursor = err
        .split("--cursor ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("no cursor in {err:?}"))
        .to_string();
    let second: Vec<serde_json::Value> = serde_json::from_str(&gw.ok(&[
        "trace", "--tenant", "contoso", "--limit", "2", "--cursor", &cursor, "--json",
    ]))
    .unwrap();
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|r| !first.contains(r)), "pages overlap");
    assert!(second[0]["received_at"].as_str() <= first[1]["received_at"].as_str());
    // --all: every record once, in order, with the filters kept.
    let all: Vec<serde_json::Value> = serde_json::from_str(&gw.ok(&[
        "trace", "--tenant", "contoso", "--status", "rejected", "--all", "--limit", "2", "--json",
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 5);
    let mut senders: Vec<&str> = all
        .iter()
        .map(|r| r["mail_from"].as_str().unwrap())
        .collect();
    senders.dedup();
    assert_eq!(senders.len(), 5);
    // The last page says nothing more.
    let o = gw.cli(&["trace", "--tenant", "contoso", "--limit", "5"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("more records"));
    // A cursor that is not one: exit 2 naming it.
    let o = gw.cli(&["trace", "--tenant", "contoso", "--cursor", "nonsense"]);
    assert_eq!(o.status.code(), Some(2));
}

/// One page of a listing with `--limit N --json` (and `--cursor`): the records and the cursor
/// the CLI printed on stderr, if any.
fn page(
    gw: &Gateway,
    args: &[&str],
    cursor: Option<&str>,
) -> (Vec<serde_json::Value>, Option<String>) {
    let mut a = args.to_vec();
    a.push("--json");
    if let Some(c) = cursor {
        a.extend_from_slice(&["--cursor", c]);
    }
    let o = gw.cli(&a);
    assert!(o.status.success(), "{a:?}: {o:?}");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let next = err
        .split("--cursor ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .map(str::to_string);
    if next.is_some() {
        assert!(err.contains("more records match"), "{err}");
    }
    (serde_json::from_slice(&o.stdout).unwrap(), next)
}

/// Pages through a listing by cursor, checks that no item repeats and that `--all` gives the
/// same items in the same order; returns them.
fn page_through(gw: &Gateway, args: &[&str], key: &str, pages: usize) -> Vec<serde_json::Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut n = 0;
    loop {
        let (mut p, next) = page(gw, args, cursor.as_deref());
        n += 1;
        assert!(!p.is_empty(), "{args:?}: an empty page");
        items.append(&mut p);
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(n, pages, "{args:?}: {items:#?}");
    let mut keys: Vec<String> = items.iter().map(|i| i[key].to_string()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), items.len(), "{args:?}: an item on two pages");
    let mut all_args = args.to_vec();
    all_args.extend_from_slice(&["--all", "--json"]);
    let all: Vec<serde_json::Value> = serde_json::from_str(&gw.ok(&all_args)).unwrap();
    assert_eq!(all, items, "{args:?}: --all");
    items
}

#[tokio::test]
async fn quarantine_audit_and_queue_listings_page_by_cursor() {
    let gw = Gateway::start("");
    contoso(&gw);
    hold_rule(&gw);
    let mut s = session(gw.smtp, "127.0.0.1").await;
    for i in 0..5 {
        let subject = format!("hold {i}");
        let r = s
            .mail(
                "a@example.org",
                &["bob@contoso.com"],
                &message("a@example.org", "bob@contoso.com", &subject),
            )
            .await;
        assert!(r.last().unwrap().starts_with("250 2.6.0"), "{r:?}");
    }
    let held = page_through(
        &gw,
        &["quarantine", "list", "--tenant", "contoso", "--limit", "2"],
        "id",
        3,
    );
    assert_eq!(held.len(), 5);
    assert!(
        held.windows(2)
            .all(|w| w[0]["received_at"].as_str() >= w[1]["received_at"].as_str())
    );
    let (_, next) = page(
        &gw,
        &["quarantine", "list", "--tenant", "contoso", "--limit", "5"],
        None,
    );
    assert!(next.is_none(), "the last page says nothing more");

    // Audit: more entries than a page (tenant, domain, rule, then changes).
    for i in 0..4 {
        gw.ok(&[
            "rule",
            "set",
            "hold",
            "--tenant",
            "contoso",
            "--priority",
            &i.to_string(),
        ]);
    }
    let entries = page_through(
        &gw,
        &["audit", "--tenant", "contoso", "--limit", "2"],
        "at",
        4,
    );
    assert_eq!(entries.len(), 7, "{entries:#?}");

    // Queue: messages waiting for a route that does not answer, listed oldest first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    gw.ok(&[
        "tenant",
        "set",
        "contoso",
        "--route",
        &format!("smtp://127.0.0.1:{port}"),
    ]);
    for i in 0..3 {
        let r = s
            .mail(
                "a@example.org",
                &["carol@contoso.com"],
                &message("a@example.org", "carol@contoso.com", &format!("queued {i}")),
            )
            .await;
        assert!(r.last().unwrap().starts_with("250 2.6.0"), "{r:?}");
    }
    let queued = page_through(&gw, &["queue", "list", "--limit", "2"], "id", 2);
    assert_eq!(queued.len(), 3);
    assert!(
        queued
            .windows(2)
            .all(|w| w[0]["id"].as_str() < w[1]["id"].as_str())
    );
    let o = gw.cli(&["queue", "list", "--cursor", "no such/cursor"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = gw.cli(&["audit", "--cursor", "nonsense"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}
