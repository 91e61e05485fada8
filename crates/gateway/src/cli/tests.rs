//! The command line's tests: parsing, planning (the request each command sends) and rendering.

use clap::Parser;
use portcullis_policy::rules::Rule;
use serde_json::Value;

use super::args::*;
use super::call::*;
use super::plan::*;
use super::render::*;
use super::render_reports::*;
use super::run::*;
use clap::CommandFactory;

fn parse(args: &[&str]) -> Cli {
    let mut v = vec!["portcullis"];
    v.extend_from_slice(args);
    Cli::try_parse_from(v).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn parse_err(args: &[&str]) -> clap::Error {
    let mut v = vec!["portcullis"];
    v.extend_from_slice(args);
    Cli::try_parse_from(v).expect_err(&format!("{args:?} should not parse"))
}

fn plan_of(args: &[&str]) -> Result<Call, String> {
    plan(&parse(args).command)
}

#[test]
fn clap_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_command_form_parses() {
    let forms: &[&[&str]] = &[
        &["serve"],
        &[
            "serve",
            "--config",
            "p.toml",
            "--data-dir",
            "/tmp/d",
            "--smtp-listen",
            "0.0.0.0:25",
            "--admin-listen",
            "127.0.0.1:8025",
        ],
        &["tenant", "add", "contoso"],
        &["tenant", "list"],
        &["tenant", "list", "--json"],
        &["tenant", "remove", "contoso"],
        &["domain", "add", "contoso.com", "--tenant", "contoso"],
        &[
            "domain",
            "add",
            "contoso.com",
            "--tenant",
            "contoso",
            "--type",
            "internal-relay",
            "--match-subdomains",
        ],
        &["domain", "list", "--tenant", "contoso", "--json"],
        &["domain", "remove", "contoso.com", "--tenant", "contoso"],
        &["org", "show", "--tenant", "contoso"],
        &["org", "show", "--tenant", "contoso", "--json"],
        &[
            "org",
            "set",
            "--tenant",
            "contoso",
            "--reject-direct-send",
            "on",
            "--direct-send-scope",
            "envelope-and-header",
            "--honor-dmarc",
            "off",
            "--arc-trusted-sealer",
            "google.com",
            "--arc-trusted-sealer",
            "microsoft.com",
            "--direct-send-allow-dkim-aligned",
            "on",
            "--spoof-action",
            "quarantine",
            "--trust-service",
            "mailchimp",
        ],
        &[
            "connector",
            "add",
            "Contoso on-prem",
            "--tenant",
            "contoso",
            "--type",
            "on-premises",
            "--sender-ip",
            "192.0.2.0/24",
            "--sender-ip",
            "2001:db8::/32",
            "--tls-cert-name",
            "mail.contoso.com",
            "--sender-domain",
            "*.contoso.com",
            "--require-tls",
            "--disabled",
        ],
        &[
            "connector",
            "add",
            "fabrikam",
            "--tenant",
            "contoso",
            "--tls-cert-name",
            "*.fabrikam.com",
            "--restrict-domains-to-ip",
            "--restrict-domains-to-cert",
            "--sender-ip",
            "198.51.100.7",
        ],
        &["connector", "list", "--tenant", "contoso"],
        &["connector", "list", "--tenant", "contoso", "--json"],
        &[
            "connector",
            "show",
            "fabrikam",
            "--tenant",
            "contoso",
            "--json",
        ],
        &[
            "connector",
            "set",
            "fabrikam",
            "--tenant",
            "contoso",
            "--require-tls=false",
            "--enabled",
            "--sender-ip",
            "203.0.113.9",
        ],
        &[
            "connector",
            "set",
            "fabrikam",
            "--tenant",
            "contoso",
            "--require-tls",
            "--disabled=false",
        ],
        &["connector", "remove", "fabrikam", "--tenant", "contoso"],
        &["trace", "--tenant", "contoso"],
        &["trace", "--tenant", "contoso", "--since", "1h"],
        &[
            "trace",
            "--tenant",
            "contoso",
            "--sender",
            "a@b.com",
            "--recipient",
            "c@contoso.com",
            "--from-ip",
            "192.0.2.1",
            "--message-id",
            "<x@y>",
            "--status",
            "rejected",
            "--start",
            "2024-05-01T00:00:00Z",
            "--end",
            "2024-05-02T00:00:00Z",
            "--limit",
            "10",
            "--json",
        ],
        &["trace", "show", "T1", "--tenant", "contoso"],
        &["trace", "show", "T1", "--tenant", "contoso", "--json"],
        &[
            "rule",
            "add",
            "Everything",
            "--tenant",
            "contoso",
            "--priority",
            "3",
            "--from-scope",
            "outside",
            "--sender-domain-is",
            "contoso.com",
            "--sender-domain-is",
            "fabrikam.com",
            "--sender-address-location",
            "header-or-envelope",
            "--sender-ip-ranges",
            "192.0.2.0/24",
            "--header-contains",
            "X-Vendor-App: Billing,Invoice",
            "--header-matches",
            "X-Mailer: ^bulk",
            "--subject-contains",
            "urgent",
            "--recipient-domain-is",
            "contoso.com",
            "--attributed-connector",
            "anonymous",
            "--direct-send",
            "--auth-result",
            "spf=fail",
            "--except-if-from-scope",
            "inside",
            "--except-if-sender-domain-is",
            "partner.com",
            "--except-if-sender-ip-ranges",
            "198.51.100.7",
            "--except-if-header-contains",
            "X-Safe: yes",
            "--except-if-header-matches",
            "X-Id: ^[0-9]+$",
            "--except-if-subject-contains",
            "newsletter",
            "--except-if-recipient-domain-is",
            "sub.contoso.com",
            "--except-if-attributed-connector",
            "Contoso on-prem",
            "--except-if-direct-send=false",
            "--except-if-auth-result",
            "dmarc=pass",
            "--quarantine",
            "--redirect-to",
            "a@contoso.com",
            "--reject",
            "--reject-code",
            "5.7.900",
            "--reject-text",
            "No.",
            "--set-header",
            "X-Tag: v",
            "--remove-header",
            "X-Old",
            "--prepend-subject",
            "[EXT] ",
            "--set-scl",
            "-1",
            "--mode",
            "audit",
            "--stop-processing",
            "--activate-at",
            "2026-12-01T00:00:00Z",
            "--expire-at",
            "2027-01-01T00:00:00Z",
            "--disabled",
            "--json",
        ],
        &[
            "rule",
            "add",
            "--tenant",
            "contoso",
            "--from-file",
            "rule.json",
        ],
        &[
            "rule",
            "add",
            "X",
            "--tenant",
            "contoso",
            "--from-file",
            "rule.json",
            "--json",
        ],
        &["rule", "list", "--tenant", "contoso"],
        &["rule", "list", "--tenant", "contoso", "--json"],
        &["rule", "show", "X", "--tenant", "contoso", "--json"],
        &[
            "rule",
            "set",
            "X",
            "--tenant",
            "contoso",
            "--mode",
            "enforce",
            "--enabled",
        ],
        &[
            "rule",
            "set",
            "X",
            "--tenant",
            "contoso",
            "--direct-send=",
            "--stop-processing=false",
        ],
        &[
            "rule",
            "set",
            "X",
            "--tenant",
            "contoso",
            "--from-file",
            "rule.json",
        ],
        &["rule", "remove", "X", "--tenant", "contoso"],
        &[
            "rule",
            "test",
            "--tenant",
            "contoso",
            "--eml",
            "m.eml",
            "--ip",
            "192.0.2.1",
            "--mail-from",
            "a@b.com",
            "--rcpt",
            "c@contoso.com",
            "--tls-cert-name",
            "mail.b.com",
            "--json",
        ],
        &["quarantine", "list", "--tenant", "contoso"],
        &[
            "quarantine",
            "list",
            "--tenant",
            "contoso",
            "--reason",
            "rule:X",
            "--sender",
            "a@b.com",
            "--recipient",
            "c@contoso.com",
            "--limit",
            "5",
            "--json",
        ],
        &["quarantine", "show", "Q1", "--tenant", "contoso", "--json"],
        &["quarantine", "release", "Q1", "--tenant", "contoso"],
        &[
            "quarantine",
            "release",
            "Q1",
            "--tenant",
            "contoso",
            "--to",
            "a@contoso.com",
            "--to",
            "b@contoso.com",
            "--json",
        ],
        &["quarantine", "delete", "Q1", "--tenant", "contoso"],
        &["report", "direct-send", "--tenant", "contoso"],
        &[
            "report",
            "direct-send",
            "--tenant",
            "contoso",
            "--since",
            "7d",
            "--format",
            "csv",
        ],
        &[
            "report",
            "direct-send",
            "--tenant",
            "contoso",
            "--format",
            "json",
            "--suggest-connectors",
        ],
        &[
            "report",
            "direct-send",
            "--tenant",
            "contoso",
            "--suggest-connectors",
            "--apply",
        ],
        &[
            "report",
            "direct-send",
            "--tenant",
            "contoso",
            "--suggest-connectors",
            "--apply",
            "--yes",
        ],
        &["org", "readiness", "--tenant", "contoso"],
        &[
            "org",
            "readiness",
            "--tenant",
            "contoso",
            "--since",
            "14d",
            "--json",
        ],
        &[
            "simulate",
            "--tenant",
            "contoso",
            "--ip",
            "192.0.2.1",
            "--mail-from",
            "a@b.com",
            "--rcpt",
            "c@contoso.com",
        ],
        &[
            "simulate",
            "--tenant",
            "contoso",
            "--ip",
            "192.0.2.1",
            "--mail-from",
            "<>",
            "--rcpt",
            "c@contoso.com",
            "--helo",
            "mx.b.com",
            "--tls-cert-name",
            "mx.b.com",
            "--eml",
            "m.eml",
            "--json",
        ],
        &["simulate", "replay", "--tenant", "contoso"],
        &[
            "simulate",
            "replay",
            "--tenant",
            "contoso",
            "--since",
            "24h",
            "--set",
            "reject-direct-send=on",
            "--set",
            "arc-trusted-sealer=google.com",
            "--add-connector",
            "Printer sender-ip=192.0.2.10/32 require-tls",
            "--add-connector",
            "SaaS tls-cert-name=*.saas.example sender-domain=contoso.com type=partner",
            "--remove-connector",
            "Old relay",
            "--json",
        ],
        &[
            "--server",
            "http://gw:8025",
            "--token",
            "s3cret",
            "tenant",
            "list",
        ],
        &[
            "tenant",
            "list",
            "--server",
            "http://gw:8025",
            "--data-dir",
            "d",
        ],
    ];
    for f in forms {
        parse(f);
    }
}

#[test]
fn trace_forms() {
    let cli = parse(&["trace", "show", "X", "--tenant", "t"]);
    let Command::Trace(t) = &cli.command else {
        panic!("not trace")
    };
    assert!(
        matches!(&t.command, Some(TraceCommand::Show { trace_id, tenant, json: false })
        if trace_id == "X" && tenant == "t")
    );
    assert!(t.tenant.is_none());

    let cli = parse(&["trace", "--tenant", "t", "--since", "1h"]);
    let Command::Trace(t) = &cli.command else {
        panic!("not trace")
    };
    assert!(t.command.is_none());
    assert_eq!(t.tenant.as_deref(), Some("t"));
    assert_eq!(t.since.as_deref(), Some("1h"));

    // --tenant is required for the search, `show` requires its own.
    parse_err(&["trace", "--since", "1h"]);
    parse_err(&["trace", "show", "X"]);
    // Search filters and `show` exclude each other.
    parse_err(&["trace", "--tenant", "t", "--since", "1h", "show", "X"]);
}

#[test]
fn simulate_forms() {
    // The flat form of before still works.
    let cli = parse(&[
        "simulate",
        "--tenant",
        "t",
        "--ip",
        "192.0.2.1",
        "--mail-from",
        "a@b.com",
        "--rcpt",
        "c@t.com",
        "--json",
    ]);
    let Command::Simulate(a) = &cli.command else {
        panic!("not simulate")
    };
    assert!(a.command.is_none());
    let t = a.transaction.as_ref().unwrap();
    assert_eq!(
        (t.tenant.as_str(), t.ip.as_str(), t.rcpt.as_str(), t.json),
        ("t", "192.0.2.1", "c@t.com", true)
    );
    let c = plan(&cli.command).unwrap();
    assert_eq!(
        (c.method, c.path.as_str(), c.output, c.json),
        (
            Method::Post,
            "/api/v1/tenants/t/simulate",
            Output::Simulate,
            true
        )
    );

    let cli = parse(&["simulate", "replay", "--tenant", "t"]);
    let Command::Simulate(a) = &cli.command else {
        panic!("not simulate")
    };
    assert!(a.transaction.is_none());
    assert!(matches!(&a.command, Some(SimulateCommand::Replay(r))
        if r.tenant == "t" && r.since == "7d" && r.set.is_empty() && !r.json));

    // The transaction flags are required without a subcommand, `replay` requires --tenant.
    parse_err(&["simulate"]);
    parse_err(&["simulate", "--tenant", "t", "--ip", "192.0.2.1"]);
    parse_err(&["simulate", "replay"]);
    // The transaction flags and `replay` exclude each other.
    parse_err(&[
        "simulate",
        "--tenant",
        "t",
        "--ip",
        "192.0.2.1",
        "--mail-from",
        "a@b.com",
        "--rcpt",
        "c@t.com",
        "replay",
        "--tenant",
        "t",
    ]);
    parse_err(&["simulate", "replay", "--tenant", "t", "--ip", "192.0.2.1"]);
}

#[test]
fn report_direct_send_calls() {
    let c = plan_of(&["report", "direct-send", "--tenant", "contoso"]).unwrap();
    assert_eq!(
        (c.method, c.path.as_str(), c.output, c.json),
        (
            Method::Get,
            "/api/v1/tenants/contoso/reports/direct-send?since=30d",
            Output::DirectSendReport,
            false
        )
    );
    assert!(c.body.is_none() && c.edit.is_none());
    let c = plan_of(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--since",
        " 1week 2days ",
        "--format",
        "json",
    ])
    .unwrap();
    assert_eq!(
        c.path,
        "/api/v1/tenants/contoso/reports/direct-send?since=1week%202days"
    );
    assert!(c.json);
    let c = plan_of(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--format",
        "csv",
    ])
    .unwrap();
    assert_eq!((c.output, c.json), (Output::DirectSendCsv, false));

    // --suggest-connectors: the plan first (apply: false), also with --apply.
    for extra in [&[][..], &["--apply"], &["--apply", "--yes"]] {
        let mut args = vec![
            "report",
            "direct-send",
            "--tenant",
            "contoso",
            "--since",
            "7d",
            "--suggest-connectors",
        ];
        args.extend_from_slice(extra);
        let c = plan_of(&args).unwrap();
        assert_eq!(
            (c.method, c.path.as_str(), c.output.clone(), c.json),
            (
                Method::Post,
                "/api/v1/tenants/contoso/reports/direct-send/suggest",
                Output::Suggest,
                false
            )
        );
        assert_eq!(
            c.body.clone().unwrap(),
            serde_json::json!({"since": "7d", "apply": false})
        );
        let apply = suggest_apply_call(&c);
        assert_eq!(
            (apply.method, &apply.path, apply.output, apply.json),
            (Method::Post, &c.path, Output::SuggestApplied, false)
        );
        assert_eq!(
            apply.body.unwrap(),
            serde_json::json!({"since": "7d", "apply": true})
        );
    }
    // --source: a named address (as a host network) or CIDR; host bits set is a usage error
    // naming the value; without --suggest-connectors it is refused by clap.
    let c = plan_of(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--suggest-connectors",
        "--source",
        "192.0.2.7",
    ])
    .unwrap();
    assert_eq!(
        c.body.unwrap(),
        serde_json::json!({"since": "30d", "apply": false, "source": "192.0.2.7/32"})
    );
    let e = plan_of(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--suggest-connectors",
        "--source",
        "192.0.2.7/24",
    ])
    .unwrap_err();
    assert!(e.contains("--source") && e.contains("192.0.2.0/24"), "{e}");
    let c = plan_of(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--suggest-connectors",
        "--format",
        "json",
    ])
    .unwrap();
    assert!(c.json && c.output == Output::Suggest);
    let e = plan_of(&[
        "report",
        "direct-send",
        "--tenant",
        "contoso",
        "--suggest-connectors",
        "--format",
        "csv",
    ])
    .unwrap_err();
    assert!(e.contains("csv"), "{e}");

    // --apply needs --suggest-connectors, --yes needs --apply; --format is one of three.
    for bad in [
        &["--apply"][..],
        &["--suggest-connectors", "--yes"],
        &["--format", "xml"],
    ] {
        let mut args = vec!["report", "direct-send", "--tenant", "contoso"];
        args.extend_from_slice(bad);
        parse_err(&args);
    }
    parse_err(&["report", "direct-send"]);

    let e = plan_of(&["report", "direct-send", "--tenant", "t", "--since", "soon"]).unwrap_err();
    assert!(e.contains("\"soon\"") && e.contains("--since"), "{e}");
    let e = plan_of(&["report", "direct-send", "--tenant", "Bad Name"]).unwrap_err();
    assert!(e.contains("\"Bad Name\""), "{e}");
}

#[test]
fn readiness_call() {
    let c = plan_of(&["org", "readiness", "--tenant", "contoso"]).unwrap();
    assert_eq!(
        (c.method, c.path.as_str(), c.output, c.json),
        (
            Method::Get,
            "/api/v1/tenants/contoso/readiness?since=30d",
            Output::Readiness,
            false
        )
    );
    let c = plan_of(&[
        "org",
        "readiness",
        "--tenant",
        "contoso",
        "--since",
        "2h",
        "--json",
    ])
    .unwrap();
    assert_eq!(c.path, "/api/v1/tenants/contoso/readiness?since=2h");
    assert!(c.json);
    let e = plan_of(&["org", "readiness", "--tenant", "t", "--since", "7x"]).unwrap_err();
    assert!(e.contains("\"7x\""), "{e}");
}

#[test]
fn replay_call() {
    let c = plan_of(&["simulate", "replay", "--tenant", "contoso"]).unwrap();
    assert_eq!(
        (c.method, c.path.as_str(), c.output, c.json),
        (
            Method::Post,
            "/api/v1/tenants/contoso/simulate/replay",
            Output::Replay,
            false
        )
    );
    assert_eq!(
        c.body.unwrap(),
        serde_json::json!({"since": "7d", "set": [], "add_connectors": [], "remove_connectors": []})
    );
    let c = plan_of(&[
        "simulate",
        "replay",
        "--tenant",
        "contoso",
        "--since",
        "24h",
        "--set",
        "reject-direct-send=on",
        "--set",
        " direct-send-scope = envelope-and-header",
        "--set",
        "honor-dmarc=off",
        "--set",
        "arc-trusted-sealer=Google.COM",
        "--set",
        "direct-send-allow-dkim-aligned=on",
        "--add-connector",
        "  Contoso printers   sender-ip=192.0.2.0/24 sender-ip=2001:db8::/48 require-tls ",
        "--add-connector",
        "SaaS tls-cert-name=*.saas.example sender-domain=*.contoso.com type=partner",
        "--remove-connector",
        "Old relay",
        "--json",
    ])
    .unwrap();
    assert!(c.json);
    assert_eq!(
        c.body.unwrap(),
        serde_json::json!({
            "since": "24h",
            "set": ["reject-direct-send=on", "direct-send-scope=envelope-and-header",
                    "honor-dmarc=off", "arc-trusted-sealer=google.com",
                    "direct-send-allow-dkim-aligned=on"],
            "add_connectors": [
                "Contoso printers sender-ip=192.0.2.0/24 sender-ip=2001:db8::/48 require-tls",
                "SaaS tls-cert-name=*.saas.example sender-domain=*.contoso.com type=partner"
            ],
            "remove_connectors": ["Old relay"]
        })
    );
}

#[test]
fn replay_bad_values_are_named() {
    let replay = |extra: &[&str]| {
        let mut args = vec!["simulate", "replay", "--tenant", "t"];
        args.extend_from_slice(extra);
        plan_of(&args).unwrap_err()
    };
    let e = replay(&["--set", "spoof-action=junk"]);
    assert!(
        e.contains("\"spoof-action\"") && e.contains("reject-direct-send"),
        "{e}"
    );
    let e = replay(&["--set", "reject-direct-send"]);
    assert!(
        e.contains("\"reject-direct-send\"") && e.contains("KEY=VALUE"),
        "{e}"
    );
    let e = replay(&["--set", "reject-direct-send=maybe"]);
    assert!(e.contains("\"maybe\""), "{e}");
    let e = replay(&["--set", "honor-dmarc=perhaps"]);
    assert!(e.contains("\"perhaps\""), "{e}");
    let e = replay(&["--set", "arc-trusted-sealer=not a domain"]);
    assert!(e.contains("\"not a domain\""), "{e}");
    let e = replay(&["--add-connector", "p sender-ip=10.0.0.300/8"]);
    assert!(e.contains("\"10.0.0.300/8\""), "{e}");
    let e = replay(&["--add-connector", "p tls-cert-name=*.*.x"]);
    assert!(e.contains("\"*.*.x\""), "{e}");
    let e = replay(&["--add-connector", "p sender-ip=192.0.2.1 type=cloud"]);
    assert!(e.contains("\"cloud\""), "{e}");
    let e = replay(&[
        "--add-connector",
        "p sender-ip=192.0.2.1 sender-domain=a..b",
    ]);
    assert!(e.contains("\"a..b\""), "{e}");
    let e = replay(&["--add-connector", "p sender-ip=192.0.2.1 colour=red"]);
    assert!(e.contains("\"colour\""), "{e}");
    let e = replay(&["--add-connector", "p sender-ip=192.0.2.1 tls"]);
    assert!(e.contains("\"tls\""), "{e}");
    let e = replay(&["--add-connector", "sender-ip=192.0.2.1"]);
    assert!(e.contains("NAME"), "{e}");
    let e = replay(&["--add-connector", "bad/name sender-ip=192.0.2.1"]);
    assert!(e.contains("\"bad/name\""), "{e}");
    // A connector with neither sender IPs nor certificate names matches nothing.
    let e = replay(&["--add-connector", "p require-tls"]);
    assert!(e.contains("\"p\""), "{e}");
    let e = replay(&["--remove-connector", "a/b"]);
    assert!(e.contains("\"a/b\""), "{e}");
    let e = replay(&["--since", "yesterday"]);
    assert!(e.contains("\"yesterday\"") && e.contains("--since"), "{e}");
}

#[test]
fn csv_fields() {
    assert_eq!(csv_field("plain"), "plain");
    assert_eq!(csv_field(""), "");
    assert_eq!(csv_field("pass=12 fail=3"), "pass=12 fail=3");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    assert_eq!(csv_field("cr\rhere"), "\"cr\rhere\"");
    assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
}

fn sample_report() -> Value {
    serde_json::json!({
        "tenant": "contoso", "since": "2024-05-01T00:00:00Z", "until": "2024-05-31T00:00:00Z",
        "mode": "audit",
        "summary": {"messages": 17, "sources": 2, "would_refuse": 4, "delivered": 0,
                    "audited": 17, "refused": 0,
                    "daily": [["2024-05-01", 10], ["2024-05-02", 7]]},
        "sources": [
            {"source": "192.0.2.0/24", "ips": ["192.0.2.1", "192.0.2.2"], "rdns": "mx.b.com",
             "helo": ["mx1.b.com", "mx2.b.com", "mx3.b.com"], "p1_domains": ["contoso.com"],
             "p2_domains": ["contoso.com", "sub.contoso.com"],
             "spf": {"pass": 12, "fail": 1}, "dkim": {"none": 13}, "dmarc": {"pass": 12, "fail": 1},
             "arc": {}, "tls": 13, "cert_names": [], "messages": 13, "recipients": 4,
             "first_seen": "2024-05-01T08:00:00Z", "last_seen": "2024-05-02T09:00:00Z",
             "delivered": 0, "audited": 13, "refused": 0, "would_refuse": 0,
             "verdict": "likely-legitimate", "score": 3, "days": 2,
             "evidence": [{"signal": "authentication", "weight": 3, "detail": "SPF or DKIM passes for 12 of 13 message(s)"},
                          {"signal": "tls", "weight": 0, "detail": "no TLS"}],
             "sample_trace_ids": ["T1", "T2"]},
            {"source": "203.0.113.9", "ips": ["203.0.113.9"], "rdns": null,
             "helo": ["evil,\"helo\"\u{1b}[2J"], "p1_domains": ["contoso.com"], "p2_domains": [],
             "spf": {"fail": 3, "softfail": 1}, "dkim": {}, "dmarc": {"fail": 4}, "arc": {},
             "tls": 0, "cert_names": [], "messages": 4, "recipients": 1,
             "first_seen": "2024-05-02T00:00:00Z", "last_seen": "2024-05-02T01:00:00Z",
             "delivered": 0, "audited": 4, "refused": 0, "would_refuse": 4,
             "verdict": "likely-spoofing", "score": -2, "days": 1,
             "evidence": [{"signal": "spf", "weight": -2, "detail": "SPF fails for 3 of 4 message(s)"}],
             "sample_trace_ids": ["T9"]}
        ]
    })
}

#[test]
fn direct_send_rendering() {
    let report = sample_report().to_string();
    let call = Call::new(Method::Get, String::new(), Output::DirectSendReport);
    let text = render(&call, &report).unwrap();
    assert!(text.contains("mode:"), "{text}");
    assert!(
        text.contains("would be refused by `on`:   4")
            && text.contains("delivered/audited/refused:  0/17/0")
            && text.contains("daily:                      2024-05-01 10, 2024-05-02 7"),
        "{text}"
    );
    let mut lines = text.lines().skip_while(|l| !l.starts_with("SOURCE"));
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("SOURCE") && header.ends_with("VERDICT (SCORE)"),
        "{header}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("192.0.2.0/24")
            && row.contains("mx1.b.com (+2)")
            && row.contains("contoso.com,sub.contoso.com")
            && row.contains("pass 12/fail 1")
            && row.contains("none 13")
            && row.ends_with("likely-legitimate (+3)"),
        "{row}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("203.0.113.9")
            && row.contains("fail 3/softfail 1")
            && row.ends_with("likely-spoofing (-2)"),
        "{row}"
    );
    // Why: the weighed evidence per source; what is not weighed stays in the JSON.
    assert!(
        text.contains("why:\n  192.0.2.0/24 — likely-legitimate (+3)\n    +3 SPF or DKIM passes for 12 of 13 message(s)\n  203.0.113.9 — likely-spoofing (-2)\n    -2 SPF fails for 3 of 4 message(s)"),
        "{text}"
    );
    assert!(!text.contains("no TLS"), "{text}");
    assert!(!text.contains('\u{1b}'));

    // JSON: the server's, pretty-printed, in its order.
    let call = Call::new(Method::Get, String::new(), Output::DirectSendReport).json(true);
    let text = render(&call, &report).unwrap();
    assert!(
        text.starts_with("{\n  \"tenant\": \"contoso\",\n  \"since\""),
        "{text}"
    );

    let call = Call::new(Method::Get, String::new(), Output::DirectSendCsv);
    let csv = render(&call, &report).unwrap();
    let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 3, "{csv:?}");
    assert!(csv.ends_with("\r\n") && !csv.replace("\r\n", "").contains('\n'));
    assert_eq!(lines[0], CSV_COLUMNS.join(","));
    assert_eq!(
        lines[1],
        "192.0.2.0/24,192.0.2.1 192.0.2.2,mx.b.com,mx1.b.com mx2.b.com mx3.b.com,contoso.com,\
         contoso.com sub.contoso.com,pass=12 fail=1,none=13,pass=12 fail=1,,13,,13,4,\
         2024-05-01T08:00:00Z,2024-05-02T09:00:00Z,0,13,0,0,likely-legitimate,3,2,authentication +3: SPF or DKIM passes for 12 of 13 message(s); tls +0: no TLS,T1 T2"
    );
    assert!(
        lines[2].starts_with("203.0.113.9,203.0.113.9,,\"evil,\"\"helo\"\"\u{1b}[2J\",contoso.com,,fail=3 softfail=1,,fail=4,,0,"),
        "{}",
        lines[2]
    );

    let empty = serde_json::json!({"tenant": "t", "since": "a", "until": "b", "mode": "off",
        "summary": {"messages": 0, "sources": 0, "would_refuse": 0, "delivered": 0,
                    "audited": 0, "refused": 0, "daily": []},
        "sources": []});
    let call = Call::new(Method::Get, String::new(), Output::DirectSendReport);
    let text = render(&call, &empty.to_string()).unwrap();
    assert!(
        text.contains("daily:") && text.ends_with("no direct-send traffic in this period"),
        "{text}"
    );
    let call = Call::new(Method::Get, String::new(), Output::DirectSendCsv);
    assert_eq!(
        render(&call, &empty.to_string()).unwrap(),
        format!("{}\r\n", CSV_COLUMNS.join(","))
    );
}

#[test]
fn suggest_readiness_replay_rendering() {
    let plan = serde_json::json!({
        "connectors": [{"name": "b.com relay", "sender_ips": ["192.0.2.0/24"],
                        "tls_cert_names": ["mx.b.com"], "covers": ["192.0.2.0/24", "192.0.2.77"],
                        "messages": 13,
                        "command": "portcullis connector add 'b.com relay' --tenant contoso --sender-ip 192.0.2.0/24"}],
        "other": ["portcullis org set --tenant contoso --arc-trusted-sealer google.com"],
        "applied": []
    });
    let call = Call::new(Method::Post, String::new(), Output::Suggest);
    let text = render(&call, &plan.to_string()).unwrap();
    assert!(
        text.starts_with("suggested connectors (1):\n\n  b.com relay\n"),
        "{text}"
    );
    assert!(text.contains("    sender ips:  192.0.2.0/24\n    cert names:  mx.b.com\n    covers:      2 sources / 13 messages (192.0.2.0/24,192.0.2.77)\n    command:     portcullis connector add 'b.com relay'"), "{text}");
    assert!(text.ends_with("\n\nother advice:\n  portcullis org set --tenant contoso --arc-trusted-sealer google.com"), "{text}");
    let none = serde_json::json!({"connectors": [], "other": [], "applied": []});
    assert_eq!(
        render(&call, &none.to_string()).unwrap(),
        "no connector to suggest"
    );

    let mut applied = plan.clone();
    applied["applied"] = serde_json::json!(["b.com relay", "other"]);
    let call = Call::new(Method::Post, String::new(), Output::SuggestApplied);
    assert_eq!(
        render(&call, &applied.to_string()).unwrap(),
        "created connector b.com relay\ncreated connector other"
    );

    let readiness = serde_json::json!({
        "tenant": "contoso", "mode": "audit", "since": "2024-05-01T00:00:00Z",
        "assessment": "Not ready: one legitimate source would be refused.", "would_refuse": 17,
        "items": [
            {"source": "192.0.2.0/24", "verdict": "likely-legitimate", "messages": 13,
             "explanation": "Passes SPF for b.com.", "command": "portcullis connector add x"},
            {"source": "203.0.113.9", "verdict": "likely-spoofing", "messages": 4,
             "explanation": "Fails everything.", "command": null}
        ]
    });
    let call = Call::new(Method::Get, String::new(), Output::Readiness);
    assert_eq!(
        render(&call, &readiness.to_string()).unwrap(),
        "Not ready: one legitimate source would be refused.\n\n\
         [likely-legitimate] 192.0.2.0/24 — 13 messages\n    Passes SPF for b.com.\n    run: portcullis connector add x\n\n\
         [likely-spoofing] 203.0.113.9 — 4 messages\n    Fails everything."
    );

    let replay = serde_json::json!({
        "tenant": "contoso", "since": "2024-05-24T00:00:00Z", "transactions": 20,
        "recipients": 31, "changed": 3, "newly_refused": 2, "newly_accepted": 1,
        "changes": [
            {"trace_id": "T1", "received_at": "2024-05-25T10:00:00Z", "client_ip": "203.0.113.9",
             "mail_from": "ceo@contoso.com", "recipient": "a@contoso.com",
             "before": "accepted", "after": "550 5.7.68 TenantInboundAttribution; Direct Send not allowed"}
        ]
    });
    let call = Call::new(Method::Post, String::new(), Output::Replay);
    let text = render(&call, &replay.to_string()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "replayed 20 transactions (31 recipients) since 2024-05-24T00:00:00Z: 3 would change — 2 newly refused, 1 newly accepted"
    );
    assert!(
        lines[2].starts_with("TRACE-ID") && lines[2].ends_with("RCPT           BEFORE → AFTER"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("T1")
            && lines[3].ends_with(
                "accepted → 550 5.7.68 TenantInboundAttribution; Direct Send not allowed"
            ),
        "{text}"
    );
    assert_eq!(lines[4], "(showing 1 of 3 changes)");
}

#[test]
fn confirmation_answers() {
    for yes in ["y\n", "Y\r\n", " yes \n", "YES"] {
        assert!(is_yes(yes), "{yes:?}");
    }
    for no in ["", "\n", "n\n", "no", "yep", "ja"] {
        assert!(!is_yes(no), "{no:?}");
    }
}

#[test]
fn since_conflicts_with_start_and_end() {
    let e = parse_err(&[
        "trace",
        "--tenant",
        "t",
        "--since",
        "1h",
        "--start",
        "2024-05-01T00:00:00Z",
    ]);
    assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
    let e = parse_err(&[
        "trace",
        "--tenant",
        "t",
        "--end",
        "2024-05-01T00:00:00Z",
        "--since",
        "1h",
    ]);
    assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
}

#[test]
fn connector_booleans_take_optional_values() {
    let cli = parse(&[
        "connector",
        "set",
        "x",
        "--tenant",
        "t",
        "--require-tls=false",
        "--disabled",
    ]);
    let Command::Connector(ConnectorCommand::Set { flags, .. }) = &cli.command else {
        panic!()
    };
    let p = connector_patch(flags).unwrap();
    assert_eq!(p.require_tls, Some(false));
    assert_eq!(p.enabled, Some(false));
    // A bare boolean flag does not swallow the positional name.
    let cli = parse(&[
        "connector",
        "set",
        "--require-tls",
        "x",
        "--tenant",
        "t",
        "--enabled",
    ]);
    let Command::Connector(ConnectorCommand::Set { name, flags, .. }) = &cli.command else {
        panic!()
    };
    assert_eq!(name, "x");
    let p = connector_patch(flags).unwrap();
    assert_eq!((p.require_tls, p.enabled), (Some(true), Some(true)));
    parse_err(&[
        "connector",
        "set",
        "x",
        "--tenant",
        "t",
        "--enabled",
        "--disabled",
    ]);
}

#[test]
fn bad_cidr_is_named() {
    let e = plan_of(&[
        "connector",
        "add",
        "p",
        "--tenant",
        "t",
        "--sender-ip",
        "10.0.0.300/8",
    ])
    .unwrap_err();
    assert!(e.contains("10.0.0.300/8"), "{e}");
    let e = plan_of(&[
        "connector",
        "set",
        "p",
        "--tenant",
        "t",
        "--sender-ip",
        "nope",
    ])
    .unwrap_err();
    assert!(e.contains("\"nope\""), "{e}");
}

#[test]
fn bad_mode_is_named() {
    let e = plan_of(&[
        "org",
        "set",
        "--tenant",
        "t",
        "--reject-direct-send",
        "maybe",
    ])
    .unwrap_err();
    assert!(e.contains("\"maybe\""), "{e}");
    let e = plan_of(&["org", "set", "--tenant", "t", "--honor-dmarc", "sometimes"]).unwrap_err();
    assert!(e.contains("\"sometimes\""), "{e}");
    let e = plan_of(&["connector", "set", "p", "--tenant", "t", "--type", "friend"]).unwrap_err();
    assert!(e.contains("\"friend\""), "{e}");
    let e = plan_of(&["domain", "add", "a.com", "--tenant", "t", "--type", "weird"]).unwrap_err();
    assert!(e.contains("\"weird\""), "{e}");
}

#[test]
fn bad_domain_is_named() {
    let e = plan_of(&["domain", "add", "not a domain", "--tenant", "t"]).unwrap_err();
    assert!(e.contains("not a domain"), "{e}");
    let e = plan_of(&[
        "org",
        "set",
        "--tenant",
        "t",
        "--arc-trusted-sealer",
        "bad..dom",
    ])
    .unwrap_err();
    assert!(e.contains("bad..dom"), "{e}");
    let e = plan_of(&[
        "connector",
        "set",
        "p",
        "--tenant",
        "t",
        "--sender-domain",
        "a b.com",
    ])
    .unwrap_err();
    assert!(e.contains("a b.com"), "{e}");
}

#[test]
fn other_local_validation() {
    let e = plan_of(&["tenant", "add", "Bad Name!"]).unwrap_err();
    assert!(e.contains("Bad Name!"), "{e}");
    let e = plan_of(&["trace", "--tenant", "t", "--from-ip", "1.2.3"]).unwrap_err();
    assert!(e.contains("1.2.3"), "{e}");
    let e = plan_of(&["trace", "--tenant", "t", "--status", "lost"]).unwrap_err();
    assert!(e.contains("lost"), "{e}");
    let e = plan_of(&["trace", "--tenant", "t", "--since", "soon"]).unwrap_err();
    assert!(e.contains("soon"), "{e}");
    let e = plan_of(&["trace", "--tenant", "t", "--start", "yesterday"]).unwrap_err();
    assert!(e.contains("yesterday"), "{e}");
    // `connector add` checks the combination too.
    let e = plan_of(&["connector", "add", "p", "--tenant", "t"]).unwrap_err();
    assert!(e.contains("--sender-ip"), "{e}");
    let e = plan_of(&[
        "connector",
        "add",
        "p",
        "--tenant",
        "t",
        "--type",
        "on-premises",
        "--sender-ip",
        "192.0.2.1",
        "--restrict-domains-to-ip",
    ])
    .unwrap_err();
    assert!(e.contains("partner"), "{e}");
    // ... `connector set` only the values.
    plan_of(&[
        "connector",
        "set",
        "p",
        "--tenant",
        "t",
        "--restrict-domains-to-ip",
    ])
    .unwrap();
}

#[test]
fn planned_calls() {
    let c = plan_of(&["tenant", "add", "contoso"]).unwrap();
    assert_eq!(
        (c.method, c.path.as_str()),
        (Method::Post, "/api/v1/tenants")
    );
    assert_eq!(c.body.unwrap(), serde_json::json!({"name": "contoso"}));

    let c = plan_of(&[
        "connector",
        "show",
        "Contoso on-prem",
        "--tenant",
        "contoso",
    ])
    .unwrap();
    assert_eq!(
        c.path,
        "/api/v1/tenants/contoso/connectors/Contoso%20on-prem"
    );

    let c = plan_of(&["domain", "remove", "Contoso.COM", "--tenant", "contoso"]).unwrap();
    assert_eq!(
        (c.method, c.path.as_str()),
        (
            Method::Delete,
            "/api/v1/tenants/contoso/domains/contoso.com"
        )
    );

    let c = plan_of(&[
        "connector",
        "add",
        "Contoso on-prem",
        "--tenant",
        "contoso",
        "--sender-ip",
        "192.0.2.0/24",
        "--disabled",
    ])
    .unwrap();
    assert_eq!(c.method, Method::Post);
    assert_eq!(
        c.body.unwrap(),
        serde_json::json!({"name": "Contoso on-prem", "sender_ips": ["192.0.2.0/24"], "enabled": false})
    );
    assert_eq!(
        c.output,
        Output::Confirm("connector \"Contoso on-prem\" added".to_string())
    );

    let c = plan_of(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "on",
        "--trust-service",
        "x",
        "--honor-dmarc",
        "off",
    ])
    .unwrap();
    assert_eq!(c.method, Method::Patch);
    assert_eq!(
        c.body.unwrap(),
        serde_json::json!({"reject_direct_send": "on", "honor_dmarc": false, "trust_services": ["x"]})
    );

    let c = plan_of(&[
        "connector",
        "set",
        "p",
        "--tenant",
        "t",
        "--sender-domain",
        "",
    ])
    .unwrap();
    assert_eq!(c.body.unwrap(), serde_json::json!({"sender_domains": []}));

    let c = plan_of(&[
        "trace",
        "--tenant",
        "contoso",
        "--sender",
        "a+b@x.com",
        "--from-ip",
        "2001:DB8::1",
        "--since",
        "2h",
        "--limit",
        "5",
    ])
    .unwrap();
    let (p, q) = c.path.split_once('?').unwrap();
    assert_eq!(p, "/api/v1/tenants/contoso/trace");
    let mut q: Vec<&str> = q.split('&').collect();
    q.sort();
    assert_eq!(
        q,
        [
            "from_ip=2001%3Adb8%3A%3A1",
            "limit=5",
            "sender=a%2Bb%40x.com",
            "since=2h"
        ]
    );

    let c = plan_of(&["trace", "show", "abc/1", "--tenant", "contoso"]).unwrap();
    assert_eq!(c.path, "/api/v1/tenants/contoso/trace/abc%2F1");
    assert_eq!(c.output, Output::TraceShow);

    let c = plan_of(&["trace", "--tenant", "t", "--start", "2024-05-01 10:00:00"]).unwrap();
    assert!(
        c.path.ends_with("?start=2024-05-01T10%3A00%3A00Z"),
        "{}",
        c.path
    );
}

#[test]
fn token_resolution() {
    let dir = std::env::temp_dir().join(format!("portcullis-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cli = parse(&["tenant", "list"]);
    cli.token = None;
    cli.data_dir = Some(dir.clone());
    let e = resolve_token(&cli).unwrap_err();
    assert!(e.starts_with("no admin token"), "{e}");
    std::fs::write(dir.join("admin.token"), "  abc\n").unwrap();
    assert_eq!(resolve_token(&cli).unwrap(), "abc");
    cli.token = Some("flag".into());
    assert_eq!(resolve_token(&cli).unwrap(), "flag");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreachable_server_exits_1() {
    // Port 9 on localhost (discard) is closed on test machines.
    let cli = parse(&[
        "--server",
        "http://127.0.0.1:9",
        "--token",
        "x",
        "tenant",
        "list",
    ]);
    assert_eq!(run_client(&cli), 1);
    let cli = parse(&[
        "--server",
        "http://127.0.0.1:9",
        "--token",
        "x",
        "tenant",
        "add",
        "Bad!",
    ]);
    assert_eq!(run_client(&cli), 2);
    // `rule set`: the GET fails to connect (1); a bad value is refused before it (2).
    let set = |extra: &str| {
        parse(&[
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "x",
            "rule",
            "set",
            "R",
            "--tenant",
            "t",
            "--set-scl",
            extra,
        ])
    };
    assert_eq!(run_client(&set("5")), 1);
    assert_eq!(run_client(&set("12")), 2);
}

#[test]
fn rendering() {
    let call = Call::new(Method::Get, String::new(), Output::TraceList);
    let body = serde_json::json!([{
        "trace_id": "T1", "tenant": "contoso", "received_at": "2024-05-01T10:00:00Z",
        "client_ip": "192.0.2.1", "helo": "mx", "tls": null, "mail_from": "a@x.com",
        "header_from": null, "message_id": null, "subject": null, "size": 10,
        "attribution": "anonymous", "connector": null, "direct_send": true,
        "auth": {"spf": "pass", "dkim": null, "dmarc": null, "arc": null, "compauth": null},
        "status": "rejected",
        "recipients": [{"address": "b@contoso.com", "status": "rejected", "reply": "550"},
                       {"address": "c@contoso.com", "status": "rejected", "reply": "550"}],
        "events": [{"at": "2024-05-01T10:00:00Z", "event": "REJECT", "detail": "direct send"}]
    }]);
    let text = render(&call, &body.to_string()).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("RECEIVED "));
    let row = lines.next().unwrap();
    assert!(
        row.contains("b@contoso.com (+1)") && row.contains("anonymous") && row.ends_with("yes"),
        "{row}"
    );

    let call = Call::new(Method::Get, String::new(), Output::TraceShow);
    let text = render(&call, &body[0].to_string()).unwrap();
    assert!(
        text.contains("2024-05-01T10:00:00Z  REJECT  direct send"),
        "{text}"
    );
    assert!(text.contains("spf=pass"), "{text}");

    let call = Call::new(Method::Get, String::new(), Output::TenantList).json(true);
    let text = render(&call, r#"[{"name":"contoso","settings":{}}]"#).unwrap();
    assert!(text.contains("\"name\": \"contoso\""), "{text}");
}
/// The body of a planned `rule add` (or `rule set --from-file`).
fn rule_body(args: &[&str]) -> Value {
    plan_of(args)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .body
        .expect("a body")
}

fn rule_err(extra: &[&str]) -> String {
    let mut args = vec!["rule", "add", "R", "--tenant", "t", "--priority", "1"];
    args.extend_from_slice(extra);
    plan_of(&args).expect_err(&format!("{args:?} should be refused"))
}

#[test]
fn rule_add_reference_recipe() {
    let c = plan_of(&[
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
    ])
    .unwrap();
    assert_eq!(
        (c.method, c.path.as_str()),
        (Method::Post, "/api/v1/tenants/contoso/rules")
    );
    assert_eq!(
        c.body.unwrap(),
        serde_json::json!({
            "tenant": "contoso", "name": "Quarantine spoofs", "priority": 0,
            "conditions": {"from_scope": "outside", "sender_domain_is": ["contoso.com"]},
            "exceptions": {"header_contains": [{"name": "X-Vendor-App", "words": ["Billing"]}]},
            "sender_address_location": "envelope",
            "actions": ["quarantine"],
            "mode": "enforce", "stop_processing": false, "enabled": true
        })
    );
    assert_eq!(
        c.output,
        Output::Confirm("rule \"Quarantine spoofs\" added".to_string())
    );
    assert!(c.edit.is_none());
}

#[test]
fn rule_add_every_flag() {
    let body = rule_body(&[
        "rule",
        "add",
        "All",
        "--tenant",
        "contoso",
        "--priority",
        "7",
        "--set-scl",
        "-1",
        "--prepend-subject",
        "[EXT] ",
        "--remove-header",
        "X-Old",
        "--set-header",
        "X-Tag: a: b",
        "--redirect-to",
        "A@Contoso.com",
        "--reject",
        "--quarantine",
        "--header-contains",
        " X-Vendor-App : Billing, Invoice,,",
        "--header-matches",
        "X-Mailer:  ^bulk",
        "--sender-ip-ranges",
        "192.0.2.0/24",
        "--direct-send",
        "--except-if-direct-send=false",
        "--except-if-auth-result",
        "dmarc=pass",
        "--attributed-connector",
        "anonymous",
        "--mode",
        "audit",
        "--stop-processing",
        "--activate-at",
        "2026-12-01 00:00:00",
        "--disabled",
        "--sender-domain-is",
        "Contoso.COM.",
    ]);
    assert_eq!(
        body["conditions"],
        serde_json::json!({
            "sender_domain_is": ["contoso.com"],
            "sender_ip_ranges": ["192.0.2.0/24"],
            "header_contains": [{"name": "X-Vendor-App", "words": ["Billing", "Invoice"]}],
            "header_matches": [{"name": "X-Mailer", "pattern": " ^bulk"}],
            "attributed_connector": "anonymous",
            "direct_send": true
        })
    );
    assert_eq!(
        body["exceptions"],
        serde_json::json!({"direct_send": false, "auth_result": ["dmarc=pass"]})
    );
    // The fixed order, whatever the order of the flags.
    assert_eq!(
        body["actions"],
        serde_json::json!([
            "quarantine",
            {"reject": {"code": "5.7.1", "text": "Delivery not authorized, message refused"}},
            {"redirect_to": ["A@contoso.com"]},
            {"set_header": {"name": "X-Tag", "value": "a: b"}},
            {"remove_header": "X-Old"},
            {"prepend_subject": "[EXT] "},
            {"set_scl": -1}
        ])
    );
    assert_eq!(body["priority"], 7);
    assert_eq!(body["mode"], "audit");
    assert_eq!(body["stop_processing"], true);
    assert_eq!(body["enabled"], false);
    assert_eq!(body["activate_at"], "2026-12-01T00:00:00Z");
    assert!(body.get("expire_at").is_none());
}

#[test]
fn rule_validation_names_the_field() {
    let e = rule_err(&["--header-matches", "X-Mailer: ([a-z", "--quarantine"]);
    assert!(e.contains("header_matches") && e.contains("regex"), "{e}");
    let e = rule_err(&["--reject", "--reject-code", "5.7.2"]);
    assert!(e.contains("reject_code") && e.contains("5.7.2"), "{e}");
    let e = rule_err(&["--reject", "--reject-text", &"x".repeat(1025)]);
    assert!(e.contains("reject_text") && e.contains("1024"), "{e}");
    rule_body(&[
        "rule",
        "add",
        "R",
        "--tenant",
        "t",
        "--priority",
        "1",
        "--reject",
        "--reject-code",
        "5.7.999",
        "--reject-text",
        &"x".repeat(1024),
    ]);
    let e = rule_err(&["--from-scope", "outside"]);
    assert!(e.contains("a rule needs at least one action"), "{e}");
    let e = rule_err(&["--from-scope", "sideways", "--quarantine"]);
    assert!(e.contains("--from-scope") && e.contains("sideways"), "{e}");
    let e = rule_err(&["--except-if-header-contains", "no colon", "--quarantine"]);
    assert!(
        e.contains("--except-if-header-contains") && e.contains("no colon"),
        "{e}"
    );
    let e = rule_err(&["--sender-ip-ranges", "10.0.0.300", "--quarantine"]);
    assert!(e.contains("10.0.0.300"), "{e}");
    let e = rule_err(&["--sender-domain-is", "bad..dom", "--quarantine"]);
    assert!(e.contains("bad..dom"), "{e}");
    let e = rule_err(&["--auth-result", "spf=maybe", "--quarantine"]);
    assert!(e.contains("auth_result") && e.contains("spf=maybe"), "{e}");
    let e = rule_err(&["--redirect-to", "not an address"]);
    assert!(e.contains("redirect_to"), "{e}");
    let e = rule_err(&["--set-scl", "10"]);
    assert!(e.contains("set_scl"), "{e}");
    let e = rule_err(&["--expire-at", "tomorrow", "--quarantine"]);
    assert!(e.contains("--expire-at") && e.contains("tomorrow"), "{e}");
    let e = rule_err(&["--mode", "loud", "--quarantine"]);
    assert!(e.contains("--mode") && e.contains("loud"), "{e}");
    let e = plan_of(&["rule", "add", "R", "--tenant", "t", "--quarantine"]).unwrap_err();
    assert!(e.contains("--priority"), "{e}");
    let e = plan_of(&[
        "rule",
        "add",
        "Bad/Name",
        "--tenant",
        "t",
        "--priority",
        "0",
        "--quarantine",
    ])
    .unwrap_err();
    assert!(e.contains("rule name") && e.contains("Bad/Name"), "{e}");
    // Parse-level: NAME is required without --from-file, --eml for `rule test`,
    // --reject-code needs --reject, --from-file excludes the field flags.
    parse_err(&[
        "rule",
        "add",
        "--tenant",
        "t",
        "--priority",
        "0",
        "--quarantine",
    ]);
    parse_err(&[
        "rule",
        "test",
        "--tenant",
        "t",
        "--ip",
        "192.0.2.1",
        "--mail-from",
        "a@b.c",
        "--rcpt",
        "d@e.f",
    ]);
    parse_err(&[
        "rule",
        "add",
        "R",
        "--tenant",
        "t",
        "--priority",
        "0",
        "--reject-code",
        "5.7.1",
    ]);
    for extra in [
        ["--priority", "1"],
        ["--sender-domain-is", "a.com"],
        ["--except-if-from-scope", "inside"],
        ["--redirect-to", "a@b.com"],
    ] {
        let mut args = vec!["rule", "set", "R", "--tenant", "t", "--from-file", "r.json"];
        args.extend_from_slice(&extra);
        let e = parse_err(&args);
        assert_eq!(
            e.kind(),
            clap::error::ErrorKind::ArgumentConflict,
            "{extra:?}"
        );
    }
    parse_err(&[
        "rule",
        "set",
        "R",
        "--tenant",
        "t",
        "--disabled",
        "--enabled",
    ]);
}

#[test]
fn rule_from_file() {
    let dir = std::env::temp_dir().join(format!("portcullis-cli-rule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rule.json");
    let f = file.to_str().unwrap();
    std::fs::write(
        &file,
        r#"{"tenant": "elsewhere", "name": "From file", "priority": 2,
            "conditions": {"header_matches": [{"name": "X-Mailer", "pattern": "^bulk"}]},
            "actions": [{"reject": {"code": "5.7.950", "text": "no"}}]}"#,
    )
    .unwrap();
    let c = plan_of(&["rule", "add", "--tenant", "contoso", "--from-file", f]).unwrap();
    assert_eq!(c.path, "/api/v1/tenants/contoso/rules");
    let body = c.body.unwrap();
    assert_eq!(
        (&body["tenant"], &body["name"]),
        (&"contoso".into(), &"From file".into())
    );
    assert_eq!(body["actions"][0]["reject"]["code"], "5.7.950");
    assert_eq!(
        (&body["mode"], &body["enabled"]),
        (&"enforce".into(), &true.into())
    );
    // NAME overrides the file's name; `set` PUTs the whole rule under NAME.
    let body = rule_body(&[
        "rule",
        "add",
        "Other",
        "--tenant",
        "contoso",
        "--from-file",
        f,
    ]);
    assert_eq!(body["name"], "Other");
    let c = plan_of(&[
        "rule",
        "set",
        "Kept",
        "--tenant",
        "contoso",
        "--from-file",
        f,
    ])
    .unwrap();
    assert_eq!(
        (c.method, c.path.as_str()),
        (Method::Put, "/api/v1/tenants/contoso/rules/Kept")
    );
    assert_eq!(c.body.unwrap()["name"], "Kept");
    assert!(c.edit.is_none());
    // The same validation as the flags.
    std::fs::write(
        &file,
        r#"{"name": "R", "priority": 0, "actions": [{"reject": {"code": "5.7.2", "text": "x"}}]}"#,
    )
    .unwrap();
    let e = plan_of(&["rule", "add", "--tenant", "t", "--from-file", f]).unwrap_err();
    assert!(e.contains("reject_code"), "{e}");
    std::fs::write(
        &file,
        r#"{"name": "R", "priority": 0, "actions": ["quarantine"],
            "exceptions": {"header_matches": [{"name": "X", "pattern": "("}]}}"#,
    )
    .unwrap();
    let e = plan_of(&["rule", "add", "--tenant", "t", "--from-file", f]).unwrap_err();
    assert!(e.contains("exceptions.header_matches[0]"), "{e}");
    std::fs::write(&file, r#"{"name": "R", "actions": ["quarantine"]}"#).unwrap();
    let e = plan_of(&["rule", "add", "--tenant", "t", "--from-file", f]).unwrap_err();
    assert!(e.contains("priority"), "{e}");
    std::fs::write(&file, "{not json").unwrap();
    let e = plan_of(&["rule", "add", "--tenant", "t", "--from-file", f]).unwrap_err();
    assert!(e.contains("invalid JSON"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    let e = plan_of(&["rule", "add", "--tenant", "t", "--from-file", f]).unwrap_err();
    assert!(e.contains("cannot read --from-file"), "{e}");
}

#[test]
fn rule_set_gets_then_puts() {
    let c = plan_of(&[
        "rule",
        "set",
        "Hold spoofs",
        "--tenant",
        "contoso",
        "--sender-domain-is",
        "fabrikam.com",
        "--except-if-direct-send=",
        "--set-header",
        "X-Tag: v",
        "--stop-processing",
        "--json",
    ])
    .unwrap();
    assert_eq!(
        (c.method, c.path.as_str()),
        (Method::Get, "/api/v1/tenants/contoso/rules/Hold%20spoofs")
    );
    assert!(c.body.is_none() && c.json);
    let stored: Rule = serde_json::from_value(serde_json::json!({
        "tenant": "contoso", "name": "Hold spoofs", "priority": 4,
        "conditions": {"from_scope": "outside", "sender_domain_is": ["contoso.com"]},
        "exceptions": {"direct_send": true, "subject_contains": ["x"]},
        "actions": ["quarantine", {"prepend_subject": "[X]"}],
        "mode": "audit", "activate_at": "2026-12-01T00:00:00Z"
    }))
    .unwrap();
    let put = c.edit.as_ref().unwrap().put(&c, stored.clone()).unwrap();
    // Written only over the version read (compare and set on the server).
    let expected = format!(
        "{}?if_version={}",
        c.path,
        crate::api_types::rule_version(&stored)
    );
    assert_eq!(
        (put.method, &put.path, put.json),
        (Method::Put, &expected, true)
    );
    assert_eq!(
        put.body.unwrap(),
        serde_json::json!({
            "tenant": "contoso", "name": "Hold spoofs", "priority": 4,
            "conditions": {"from_scope": "outside", "sender_domain_is": ["fabrikam.com"]},
            "exceptions": {"subject_contains": ["x"]},
            "sender_address_location": "header",
            "actions": [{"set_header": {"name": "X-Tag", "value": "v"}}],
            "mode": "audit", "stop_processing": true,
            "activate_at": "2026-12-01T00:00:00Z", "enabled": true
        })
    );
    // No action flag: the actions stay; '' clears a list and a time.
    let c = plan_of(&[
        "rule",
        "set",
        "Hold spoofs",
        "--tenant",
        "contoso",
        "--sender-domain-is",
        "",
        "--activate-at",
        "",
        "--priority",
        "0",
    ])
    .unwrap();
    let body = c
        .edit
        .as_ref()
        .unwrap()
        .put(&c, stored.clone())
        .unwrap()
        .body
        .unwrap();
    assert_eq!(
        body["actions"],
        serde_json::json!(["quarantine", {"prepend_subject": "[X]"}])
    );
    assert_eq!(
        body["conditions"],
        serde_json::json!({"from_scope": "outside"})
    );
    assert_eq!(body["priority"], 0);
    assert!(body.get("activate_at").is_none());
    // Bad values are refused before anything is sent.
    let e = plan_of(&[
        "rule",
        "set",
        "R",
        "--tenant",
        "t",
        "--header-matches",
        "X: (",
    ])
    .unwrap_err();
    assert!(e.contains("header_matches"), "{e}");
    let e = plan_of(&[
        "rule",
        "set",
        "R",
        "--tenant",
        "t",
        "--reject",
        "--reject-code",
        "5.7.2",
    ])
    .unwrap_err();
    assert!(e.contains("reject_code"), "{e}");
}

#[test]
fn rule_and_quarantine_calls() {
    let c = plan_of(&["rule", "list", "--tenant", "contoso"]).unwrap();
    assert_eq!(
        (c.method, c.path.as_str(), c.output),
        (
            Method::Get,
            "/api/v1/tenants/contoso/rules",
            Output::RuleList
        )
    );
    let c = plan_of(&["rule", "show", "Hold spoofs", "--tenant", "contoso"]).unwrap();
    assert_eq!(
        (c.method, c.path.as_str(), c.output),
        (
            Method::Get,
            "/api/v1/tenants/contoso/rules/Hold%20spoofs",
            Output::Rule
        )
    );
    let c = plan_of(&["rule", "remove", "R", "--tenant", "contoso"]).unwrap();
    assert_eq!(
        (c.method, c.path.as_str()),
        (Method::Delete, "/api/v1/tenants/contoso/rules/R")
    );

    let dir = std::env::temp_dir().join(format!("portcullis-cli-eml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let eml = dir.join("m.eml");
    std::fs::write(&eml, "Subject: hi\r\n\r\nbody\r\n").unwrap();
    let c = plan_of(&[
        "rule",
        "test",
        "--tenant",
        "contoso",
        "--eml",
        eml.to_str().unwrap(),
        "--ip",
        "192.0.2.1",
        "--mail-from",
        "a@b.com",
        "--rcpt",
        "c@contoso.com",
    ])
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        (c.method, c.path.as_str(), c.output),
        (
            Method::Post,
            "/api/v1/tenants/contoso/simulate",
            Output::RuleTest
        )
    );
    assert_eq!(
        c.body.unwrap(),
        serde_json::json!({"ip": "192.0.2.1", "mail_from": "a@b.com", "rcpt": "c@contoso.com",
                           "eml": "Subject: hi\r\n\r\nbody\r\n"})
    );

    let c = plan_of(&[
        "quarantine",
        "list",
        "--tenant",
        "contoso",
        "--reason",
        "rule:Hold spoofs",
        "--recipient",
        "c@contoso.com",
        "--limit",
        "5",
    ])
    .unwrap();
    assert_eq!((c.method, c.output), (Method::Get, Output::QuarantineList));
    assert_eq!(
        c.path,
        "/api/v1/tenants/contoso/quarantine?reason=rule%3AHold%20spoofs&recipient=c%40contoso.com&limit=5"
    );
    let c = plan_of(&["quarantine", "list", "--tenant", "contoso"]).unwrap();
    assert_eq!(c.path, "/api/v1/tenants/contoso/quarantine");
    let c = plan_of(&["quarantine", "show", "q/1", "--tenant", "contoso"]).unwrap();
    assert_eq!(
        (c.method, c.path.as_str(), c.output),
        (
            Method::Get,
            "/api/v1/tenants/contoso/quarantine/q%2F1",
            Output::QuarantineShow
        )
    );
    let c = plan_of(&["quarantine", "release", "Q1", "--tenant", "contoso"]).unwrap();
    assert_eq!(
        (c.method, c.path.as_str()),
        (
            Method::Post,
            "/api/v1/tenants/contoso/quarantine/Q1/release"
        )
    );
    assert_eq!(c.body.unwrap(), serde_json::json!({}));
    let c = plan_of(&[
        "quarantine",
        "release",
        "Q1",
        "--tenant",
        "contoso",
        "--to",
        "A@Contoso.COM",
        "--to",
        "b@contoso.com",
    ])
    .unwrap();
    assert_eq!(
        c.body.unwrap(),
        serde_json::json!({"to": ["A@contoso.com", "b@contoso.com"]})
    );
    let e = plan_of(&[
        "quarantine",
        "release",
        "Q1",
        "--tenant",
        "contoso",
        "--to",
        "nope",
    ])
    .unwrap_err();
    assert!(e.contains("\"nope\"") && e.contains("--to"), "{e}");
    let c = plan_of(&["quarantine", "delete", "Q1", "--tenant", "contoso"]).unwrap();
    assert_eq!(
        (c.method, c.path.as_str()),
        (Method::Delete, "/api/v1/tenants/contoso/quarantine/Q1")
    );
    assert_eq!(c.output, Output::Confirm("deleted Q1".to_string()));
    let e = plan_of(&["quarantine", "delete", " ", "--tenant", "contoso"]).unwrap_err();
    assert!(e.contains("quarantine id"), "{e}");
    parse_err(&["quarantine", "show", "Q1"]);
}

#[test]
fn rule_and_quarantine_rendering() {
    let rule = serde_json::json!({
        "tenant": "contoso", "name": "Hold spoofs", "priority": 0,
        "conditions": {"from_scope": "outside", "sender_domain_is": ["contoso.com"],
                       "header_contains": [{"name": "X-App", "words": ["a", "b"]}]},
        "exceptions": {},
        "sender_address_location": "envelope",
        "actions": ["quarantine", {"reject": {"code": "5.7.900", "text": "no"}}, {"redirect_to": ["a@b.c"]}],
        "mode": "enforce", "stop_processing": false, "enabled": true
    });
    let call = Call::new(Method::Get, String::new(), Output::RuleList);
    let text = render(&call, &serde_json::json!([rule]).to_string()).unwrap();
    let mut lines = text.lines();
    assert!(
        lines.next().unwrap().starts_with("PRIORITY  NAME"),
        "{text}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.contains("Hold spoofs")
            && row.contains("  3  ")
            && row.ends_with("quarantine, reject 5.7.900, redirect"),
        "{row}"
    );

    let call = Call::new(Method::Get, String::new(), Output::Rule);
    let text = render(&call, &rule.to_string()).unwrap();
    assert!(
        text.contains("sender_address_location:  envelope"),
        "{text}"
    );
    assert!(text.contains("\nconditions:\n  from_scope:"), "{text}");
    assert!(text.contains("header_contains:   X-App: a,b"), "{text}");
    assert!(
        text.contains(
            "\nexceptions: -\nactions:\n  quarantine\n  reject 550 5.7.900 no\n  redirect to a@b.c"
        ),
        "{text}"
    );

    let call = Call::new(Method::Post, String::new(), Output::RuleTest);
    let report = serde_json::json!({
        "tenant": "contoso", "directory_version": 1, "steps": [], "connectors": [],
        "attribution": "anonymous", "connector": null, "direct_send": true, "row": 3,
        "rcpt_reply": "250", "data_reply": "550", "auth": null, "compauth": null,
        "reply": "550 5.7.900 no",
        "rules_matched": [{"rule": "Hold spoofs", "mode": "enforce", "actions": ["quarantine"],
                           "why": ["from scope outside", "sender domain is contoso.com (Envelope)"]}],
        "rules_missed": [{"rule": "Other", "why": "disabled"}]
    });
    assert_eq!(
        render(&call, &report.to_string()).unwrap(),
        "MATCH  Hold spoofs (enforce): quarantine\n        because: from scope outside; sender domain is contoso.com (Envelope)\nskip   Other: disabled\nreply: 550 5.7.900 no"
    );

    let entry = serde_json::json!({
        "id": "Q1", "tenant": "contoso", "trace_id": "T1", "received_at": "2024-05-01T10:00:00Z",
        "expires_at": "2024-05-31T10:00:00Z", "reason": "rule:Hold spoofs", "mail_from": "a@x.com",
        "recipients": ["b@contoso.com", "c@contoso.com"], "header_from": "a@x.com",
        "subject": "hi\u{1b}[2J", "size": 10, "admin_only_release": false,
        "released_at": null, "released_by": null, "released_to": null
    });
    let call = Call::new(Method::Get, String::new(), Output::QuarantineList);
    let text = render(&call, &serde_json::json!([entry]).to_string()).unwrap();
    let row = text.lines().nth(1).unwrap();
    assert!(
        row.contains("b@contoso.com (+1)") && row.contains("hi\\u{1b}[2J") && row.ends_with("no"),
        "{row}"
    );
    assert!(!text.contains('\u{1b}'));

    let detail = serde_json::json!({
        "entry": entry, "headers": "Subject: hi\r\nX-Evil: \u{1b}]0;pwned\u{7}\r\n",
        "preview": "line 1\nline \u{202e}2", "attachments": ["a.pdf (10 bytes)"]
    });
    let call = Call::new(Method::Get, String::new(), Output::QuarantineShow);
    let text = render(&call, &detail.to_string()).unwrap();
    assert!(text.contains("\n--- headers ---\nSubject: hi\nX-Evil: \\u{1b}]0;pwned\\u{7}\n--- preview ---\nline 1\nline \\u{202e}2\n--- attachments ---\na.pdf (10 bytes)"), "{text}");
    assert!(!text.contains(['\u{1b}', '\u{7}', '\u{202e}', '\r']));

    let mut released = entry.clone();
    released["released_to"] = serde_json::json!(["x@contoso.com"]);
    let call = Call::new(Method::Post, String::new(), Output::QuarantineReleased);
    assert_eq!(
        render(&call, &released.to_string()).unwrap(),
        "released Q1 to x@contoso.com"
    );
    assert_eq!(
        render(&call, &entry.to_string()).unwrap(),
        "released Q1 to b@contoso.com,c@contoso.com"
    );
}
