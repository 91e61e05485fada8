//! SPEC §5 mail-flow rules as tables: every condition (and its `except_if` twin), every action
//! and the merged effect, priority, stop-processing, audit mode, activation/expiry, compile-time
//! validation, the reference recipe, and how `Directory::build` compiles and orders rules.
//!
//! Every evaluation goes through `check`, which builds a one-tenant directory (so the rules are
//! compiled and ordered exactly as in production), evaluates them against the facts and renders
//! the outcome as `<matched> => <effect>`:
//!
//! * `<matched>`: the matched rules in order, audit ones as `name(audit)`, or `-`;
//! * `<effect>`: `;`-separated `quarantine(rule)`, `reject(code text, rule)`, `redirect(a,b)`,
//!   `set(Name: value)`, `remove(Name)`, `prepend("p1","p2")`, `scl(n)`, or `-`.

use std::net::IpAddr;

use portcullis_policy::rules::{
    AddressLocation, CompiledRule, FromScope, HeaderPattern, HeaderWords, Predicates, Rule,
    RuleAction, RuleFacts, RuleMode, evaluate_rules,
};
use portcullis_policy::*;

/// 2026-06-01T00:00:00Z.
const NOW: i64 = 1_780_272_000;
const JUNE: &str = "2026-06-01T00:00:00Z";

/// Owned facts; `check` lends them to `RuleFacts`.
struct Facts {
    now: i64,
    attribution: Attribution,
    direct_send: bool,
    client_ip: IpAddr,
    mail_from: Option<String>,
    header_from: Option<String>,
    headers: Vec<(String, String)>,
    subject: Option<String>,
    recipients: Vec<String>,
    auth: AuthFacts,
    compauth: Option<CompAuth>,
}

impl Default for Facts {
    /// Anonymous mail from fabrikam.com to contoso.com that authenticates cleanly.
    fn default() -> Self {
        Facts {
            now: NOW,
            attribution: Attribution::Anonymous,
            direct_send: false,
            client_ip: ip("203.0.113.5"),
            mail_from: Some("alice@fabrikam.com".into()),
            header_from: Some("Alice <alice@fabrikam.com>".into()),
            headers: vec![
                hdr("From", "Alice <alice@fabrikam.com>"),
                hdr("Subject", "Quarterly report"),
            ],
            subject: Some("Quarterly report".into()),
            recipients: vec!["bob@contoso.com".into()],
            auth: AuthFacts {
                evaluated: true,
                spf: AuthResult::Pass,
                spf_domain: Some("fabrikam.com".into()),
                dkim: vec![DkimFact {
                    result: AuthResult::Pass,
                    domain: "fabrikam.com".into(),
                    selector: "s1".into(),
                }],
                dmarc: AuthResult::Pass,
                dmarc_policy: DmarcPolicy::Reject,
                from_domain: Some("fabrikam.com".into()),
                ..Default::default()
            },
            compauth: Some(CompAuth {
                verdict: CompVerdict::Pass,
                reason: 100,
            }),
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn hdr(name: &str, value: &str) -> (String, String) {
    (name.into(), value.into())
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn connector(name: &str, kind: ConnectorType) -> Attribution {
    Attribution::Connector {
        name: name.into(),
        kind,
        matched_by: MatchedBy::Ip(24),
    }
}

fn onprem() -> Attribution {
    connector("onprem", ConnectorType::OnPremises)
}

fn partner() -> Attribution {
    connector("partner-x", ConnectorType::Partner)
}

/// A rule of tenant `contoso` with one action (`set_scl 5`), enforced, enabled.
fn rule(name: &str, priority: u32, f: impl FnOnce(&mut Rule)) -> Rule {
    let mut r = Rule {
        tenant: "contoso".into(),
        name: name.into(),
        priority,
        conditions: Predicates::default(),
        exceptions: Predicates::default(),
        sender_address_location: AddressLocation::Header,
        actions: vec![RuleAction::SetScl(5)],
        mode: RuleMode::Enforce,
        stop_processing: false,
        activate_at: None,
        expire_at: None,
        enabled: true,
    };
    f(&mut r);
    r
}

fn render(outcome: &rules::RuleOutcome) -> String {
    let matched: Vec<String> = outcome
        .matched
        .iter()
        .map(|m| match m.mode {
            RuleMode::Enforce => m.rule.clone(),
            RuleMode::Audit => format!("{}(audit)", m.rule),
        })
        .collect();
    let e = &outcome.effect;
    let mut effect = Vec::new();
    if let Some(r) = &e.quarantine {
        effect.push(format!("quarantine({r})"));
    }
    if let Some((code, text, r)) = &e.reject {
        effect.push(format!("reject({code} {text}, {r})"));
    }
    if let Some(to) = &e.redirect_to {
        effect.push(format!("redirect({})", to.join(",")));
    }
    for (n, v) in &e.set_headers {
        effect.push(format!("set({n}: {v})"));
    }
    for n in &e.remove_headers {
        effect.push(format!("remove({n})"));
    }
    if !e.prepend_subject.is_empty() {
        let p: Vec<String> = e.prepend_subject.iter().map(|p| format!("{p:?}")).collect();
        effect.push(format!("prepend({})", p.join(",")));
    }
    if let Some(n) = e.scl {
        effect.push(format!("scl({n})"));
    }
    let or_dash = |v: Vec<String>, sep: &str| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(sep)
        }
    };
    format!("{} => {}", or_dash(matched, " "), or_dash(effect, "; "))
}

/// The one helper: compile and order `rules` through `Directory::build`, evaluate them against
/// the default facts as changed by `facts`, and compare the rendered outcome with `expect`.
#[track_caller]
fn check(note: &str, rules: &[Rule], facts: impl FnOnce(&mut Facts), expect: &str) {
    let dir = Directory::build(
        1,
        vec![Tenant {
            name: "contoso".into(),
            settings: OrgSettings::default(),
        }],
        vec![AcceptedDomain {
            domain: "contoso.com".into(),
            tenant: "contoso".into(),
            domain_type: DomainType::Authoritative,
            match_subdomains: false,
            route: None,
            verification: None,
            recipient_validation: None,
        }],
        vec![],
        rules.to_vec(),
    );
    assert!(dir.rule_errors.is_empty(), "{note}: {:?}", dir.rule_errors);
    let compiled = &dir.tenant("contoso").unwrap().rules;
    let mut f = Facts::default();
    facts(&mut f);
    let view = RuleFacts {
        now: f.now,
        attribution: &f.attribution,
        direct_send: f.direct_send,
        client_ip: f.client_ip,
        mail_from: f.mail_from.as_deref(),
        header_from: f.header_from.as_deref(),
        headers: &f.headers,
        subject: f.subject.as_deref(),
        recipients: &f.recipients,
        auth: &f.auth,
        compauth: f.compauth,
    };
    let outcome = evaluate_rules(compiled, &view);
    // Every rule is accounted for exactly once, unless processing stopped early.
    assert!(
        outcome.matched.len() + outcome.missed.len() <= rules.len(),
        "{note}: {outcome:?}"
    );
    assert_eq!(render(&outcome), expect, "{note}\n{outcome:#?}");
}

type PredFn = fn(&mut Predicates);
type FactsFn = fn(&mut Facts);

/// One predicate: how to set it, the facts, and whether it holds for them. Each row runs twice:
/// as a condition (the rule matches iff it holds) and as an exception (iff it does not).
fn condition_table() -> Vec<(&'static str, AddressLocation, PredFn, FactsFn, bool)> {
    use AddressLocation::*;
    vec![
        // from_scope: inside = attributed to an on-premises connector.
        (
            "inside, on-prem connector",
            Header,
            |p| p.from_scope = Some(FromScope::Inside),
            |f| f.attribution = onprem(),
            true,
        ),
        (
            "inside, partner connector",
            Header,
            |p| p.from_scope = Some(FromScope::Inside),
            |f| f.attribution = partner(),
            false,
        ),
        (
            "inside, anonymous",
            Header,
            |p| p.from_scope = Some(FromScope::Inside),
            |_| {},
            false,
        ),
        (
            "outside, anonymous",
            Header,
            |p| p.from_scope = Some(FromScope::Outside),
            |_| {},
            true,
        ),
        (
            "outside, partner connector",
            Header,
            |p| p.from_scope = Some(FromScope::Outside),
            |f| f.attribution = partner(),
            true,
        ),
        (
            "outside, on-prem connector",
            Header,
            |p| p.from_scope = Some(FromScope::Outside),
            |f| f.attribution = onprem(),
            false,
        ),
        // sender_domain_is, by sender_address_location.
        (
            "header: From is contoso",
            Header,
            |p| p.sender_domain_is = strings(&["contoso.com"]),
            |f| f.header_from = Some("Eve <eve@contoso.com>".into()),
            true,
        ),
        (
            "header: only MAIL FROM is contoso",
            Header,
            |p| p.sender_domain_is = strings(&["contoso.com"]),
            |f| f.mail_from = Some("eve@contoso.com".into()),
            false,
        ),
        (
            "header: no From",
            Header,
            |p| p.sender_domain_is = strings(&["contoso.com"]),
            |f| {
                f.header_from = None;
                f.mail_from = Some("eve@contoso.com".into())
            },
            false,
        ),
        (
            "envelope: MAIL FROM is contoso",
            Envelope,
            |p| p.sender_domain_is = strings(&["contoso.com"]),
            |f| f.mail_from = Some("eve@contoso.com".into()),
            true,
        ),
        (
            "envelope: only From is contoso",
            Envelope,
            |p| p.sender_domain_is = strings(&["contoso.com"]),
            |f| f.header_from = Some("eve@contoso.com".into()),
            false,
        ),
        (
            "envelope: null sender",
            Envelope,
            |p| p.sender_domain_is = strings(&["contoso.com"]),
            |f| {
                f.mail_from = None;
                f.header_from = Some("eve@contoso.com".into())
            },
            false,
        ),
        (
            "header-or-envelope: From",
            HeaderOrEnvelope,
            |p| p.sender_domain_is = strings(&["contoso.com"]),
            |f| f.header_from = Some("<eve@contoso.com>".into()),
            true,
        ),
        (
            "header-or-envelope: MAIL FROM",
            HeaderOrEnvelope,
            |p| p.sender_domain_is = strings(&["contoso.com"]),
            |f| f.mail_from = Some("eve@contoso.com".into()),
            true,
        ),
        (
            "header-or-envelope: neither",
            HeaderOrEnvelope,
            |p| p.sender_domain_is = strings(&["contoso.com"]),
            |_| {},
            false,
        ),
        (
            "subdomain matches",
            Envelope,
            |p| p.sender_domain_is = strings(&["contoso.com"]),
            |f| f.mail_from = Some("eve@mail.eu.contoso.com".into()),
            true,
        ),
        (
            "suffix is not a subdomain",
            Envelope,
            |p| p.sender_domain_is = strings(&["contoso.com"]),
            |f| f.mail_from = Some("eve@evilcontoso.com".into()),
            false,
        ),
        (
            "parent of a listed subdomain",
            Envelope,
            |p| p.sender_domain_is = strings(&["mail.contoso.com"]),
            |f| f.mail_from = Some("eve@contoso.com".into()),
            false,
        ),
        (
            "sender domain case-insensitive",
            Envelope,
            |p| p.sender_domain_is = strings(&["contoso.com"]),
            |f| f.mail_from = Some("Eve@CONTOSO.Com".into()),
            true,
        ),
        (
            "listed domain normalized",
            Envelope,
            |p| p.sender_domain_is = strings(&["Contoso.COM."]),
            |f| f.mail_from = Some("eve@contoso.com".into()),
            true,
        ),
        (
            "any listed sender domain",
            Envelope,
            |p| p.sender_domain_is = strings(&["woodgrove.com", "contoso.com"]),
            |f| f.mail_from = Some("eve@contoso.com".into()),
            true,
        ),
        // sender_ip_ranges.
        (
            "IPv4 in range",
            Header,
            |p| p.sender_ip_ranges = vec!["192.0.2.0/24".parse().unwrap()],
            |f| f.client_ip = ip("192.0.2.77"),
            true,
        ),
        (
            "IPv4 outside range",
            Header,
            |p| p.sender_ip_ranges = vec!["192.0.2.0/24".parse().unwrap()],
            |f| f.client_ip = ip("192.0.3.1"),
            false,
        ),
        (
            "IPv6 in range",
            Header,
            |p| p.sender_ip_ranges = vec!["2001:db8::/32".parse().unwrap()],
            |f| f.client_ip = ip("2001:db8:1::25"),
            true,
        ),
        (
            "IPv6 outside range",
            Header,
            |p| p.sender_ip_ranges = vec!["2001:db8::/32".parse().unwrap()],
            |f| f.client_ip = ip("2001:db9::25"),
            false,
        ),
        (
            "IPv4-mapped IPv6 peer, IPv4 range",
            Header,
            |p| p.sender_ip_ranges = vec!["192.0.2.0/24".parse().unwrap()],
            |f| f.client_ip = ip("::ffff:192.0.2.9"),
            true,
        ),
        (
            "IPv4-mapped IPv6 peer, other range",
            Header,
            |p| p.sender_ip_ranges = vec!["198.51.100.0/24".parse().unwrap()],
            |f| f.client_ip = ip("::ffff:192.0.2.9"),
            false,
        ),
        (
            "IPv4 peer, IPv6 range",
            Header,
            |p| p.sender_ip_ranges = vec!["2001:db8::/32".parse().unwrap()],
            |f| f.client_ip = ip("192.0.2.9"),
            false,
        ),
        (
            "any listed range",
            Header,
            |p| {
                p.sender_ip_ranges = vec![
                    "10.0.0.0/8".parse().unwrap(),
                    "192.0.2.0/24".parse().unwrap(),
                ]
            },
            |f| f.client_ip = ip("192.0.2.9"),
            true,
        ),
        // header_contains: case-insensitive, any word, every field of that name.
        (
            "header contains word",
            Header,
            |p| {
                p.header_contains = vec![HeaderWords {
                    name: "X-Vendor-App".into(),
                    words: strings(&["Billing"]),
                }]
            },
            |f| f.headers.push(hdr("X-Vendor-App", "Contoso Billing 2.1")),
            true,
        ),
        (
            "header contains, case-insensitive value",
            Header,
            |p| {
                p.header_contains = vec![HeaderWords {
                    name: "X-Vendor-App".into(),
                    words: strings(&["BILLING"]),
                }]
            },
            |f| f.headers.push(hdr("X-Vendor-App", "billing-svc")),
            true,
        ),
        (
            "header contains, case-insensitive name",
            Header,
            |p| {
                p.header_contains = vec![HeaderWords {
                    name: "x-vendor-app".into(),
                    words: strings(&["billing"]),
                }]
            },
            |f| f.headers.push(hdr("X-VENDOR-APP", "Billing")),
            true,
        ),
        (
            "header contains any word",
            Header,
            |p| {
                p.header_contains = vec![HeaderWords {
                    name: "X-Vendor-App".into(),
                    words: strings(&["payroll", "billing"]),
                }]
            },
            |f| f.headers.push(hdr("X-Vendor-App", "Billing")),
            true,
        ),
        (
            "header contains no word",
            Header,
            |p| {
                p.header_contains = vec![HeaderWords {
                    name: "X-Vendor-App".into(),
                    words: strings(&["payroll", "hr"]),
                }]
            },
            |f| f.headers.push(hdr("X-Vendor-App", "Billing")),
            false,
        ),
        (
            "header contains, second field of the name",
            Header,
            |p| {
                p.header_contains = vec![HeaderWords {
                    name: "X-Vendor-App".into(),
                    words: strings(&["billing"]),
                }]
            },
            |f| {
                f.headers.push(hdr("X-Vendor-App", "CRM"));
                f.headers.push(hdr("X-Vendor-App", "Billing"))
            },
            true,
        ),
        (
            "header contains, header absent",
            Header,
            |p| {
                p.header_contains = vec![HeaderWords {
                    name: "X-Vendor-App".into(),
                    words: strings(&["billing"]),
                }]
            },
            |_| {},
            false,
        ),
        (
            "header contains, word in another header",
            Header,
            |p| {
                p.header_contains = vec![HeaderWords {
                    name: "X-Vendor-App".into(),
                    words: strings(&["billing"]),
                }]
            },
            |f| f.headers.push(hdr("X-Other", "Billing")),
            false,
        ),
        (
            "header contains, word padded",
            Header,
            |p| {
                p.header_contains = vec![HeaderWords {
                    name: "X-Vendor-App".into(),
                    words: strings(&[" billing "]),
                }]
            },
            |f| f.headers.push(hdr("X-Vendor-App", "Billing")),
            true,
        ),
        (
            "any header_contains entry",
            Header,
            |p| {
                p.header_contains = vec![
                    HeaderWords {
                        name: "X-A".into(),
                        words: strings(&["a"]),
                    },
                    HeaderWords {
                        name: "X-B".into(),
                        words: strings(&["b"]),
                    },
                ]
            },
            |f| f.headers.push(hdr("X-B", "b")),
            true,
        ),
        // header_matches: a case-insensitive regex against every field of that name.
        (
            "header matches",
            Header,
            |p| {
                p.header_matches = vec![HeaderPattern {
                    name: "X-Ref".into(),
                    pattern: r"^INV-\d{4}$".into(),
                }]
            },
            |f| f.headers.push(hdr("X-Ref", "INV-2024")),
            true,
        ),
        (
            "header matches, case-insensitive",
            Header,
            |p| {
                p.header_matches = vec![HeaderPattern {
                    name: "x-ref".into(),
                    pattern: r"^INV-\d{4}$".into(),
                }]
            },
            |f| f.headers.push(hdr("X-Ref", "inv-2024")),
            true,
        ),
        (
            "header does not match",
            Header,
            |p| {
                p.header_matches = vec![HeaderPattern {
                    name: "X-Ref".into(),
                    pattern: r"^INV-\d{4}$".into(),
                }]
            },
            |f| f.headers.push(hdr("X-Ref", "INV-24")),
            false,
        ),
        (
            "header matches, second field of the name",
            Header,
            |p| {
                p.header_matches = vec![HeaderPattern {
                    name: "X-Ref".into(),
                    pattern: r"^INV-\d{4}$".into(),
                }]
            },
            |f| {
                f.headers.push(hdr("X-Ref", "PO-1"));
                f.headers.push(hdr("X-Ref", "INV-7777"))
            },
            true,
        ),
        (
            "header matches, header absent",
            Header,
            |p| {
                p.header_matches = vec![HeaderPattern {
                    name: "X-Ref".into(),
                    pattern: ".*".into(),
                }]
            },
            |_| {},
            false,
        ),
        // subject_contains.
        (
            "subject contains",
            Header,
            |p| p.subject_contains = strings(&["URGENT"]),
            |f| f.subject = Some("urgent: wire transfer".into()),
            true,
        ),
        (
            "subject contains any word",
            Header,
            |p| p.subject_contains = strings(&["invoice", "wire"]),
            |f| f.subject = Some("Wire transfer".into()),
            true,
        ),
        (
            "subject lacks the words",
            Header,
            |p| p.subject_contains = strings(&["invoice", "wire"]),
            |_| {},
            false,
        ),
        (
            "no subject",
            Header,
            |p| p.subject_contains = strings(&["report"]),
            |f| f.subject = None,
            false,
        ),
        // recipient_domain_is: any recipient of this copy, subdomains included.
        (
            "recipient domain",
            Header,
            |p| p.recipient_domain_is = strings(&["contoso.com"]),
            |_| {},
            true,
        ),
        (
            "recipient subdomain, any recipient",
            Header,
            |p| p.recipient_domain_is = strings(&["contoso.com"]),
            |f| f.recipients = strings(&["x@woodgrove.com", "Bob@Sales.Contoso.com"]),
            true,
        ),
        (
            "recipient domain, none match",
            Header,
            |p| p.recipient_domain_is = strings(&["contoso.com"]),
            |f| f.recipients = strings(&["x@woodgrove.com"]),
            false,
        ),
        // attributed_connector: a name or `anonymous`.
        (
            "connector by name",
            Header,
            |p| p.attributed_connector = Some("onprem".into()),
            |f| f.attribution = onprem(),
            true,
        ),
        (
            "connector by name, other connector",
            Header,
            |p| p.attributed_connector = Some("onprem".into()),
            |f| f.attribution = partner(),
            false,
        ),
        (
            "connector by name, anonymous",
            Header,
            |p| p.attributed_connector = Some("onprem".into()),
            |_| {},
            false,
        ),
        (
            "anonymous, anonymous",
            Header,
            |p| p.attributed_connector = Some("anonymous".into()),
            |_| {},
            true,
        ),
        (
            "anonymous, attributed",
            Header,
            |p| p.attributed_connector = Some("anonymous".into()),
            |f| f.attribution = partner(),
            false,
        ),
        // direct_send.
        (
            "direct send true, is",
            Header,
            |p| p.direct_send = Some(true),
            |f| f.direct_send = true,
            true,
        ),
        (
            "direct send true, is not",
            Header,
            |p| p.direct_send = Some(true),
            |_| {},
            false,
        ),
        (
            "direct send false, is not",
            Header,
            |p| p.direct_send = Some(false),
            |_| {},
            true,
        ),
        (
            "direct send false, is",
            Header,
            |p| p.direct_send = Some(false),
            |f| f.direct_send = true,
            false,
        ),
        // auth_result.
        (
            "spf=fail, fails",
            Header,
            |p| p.auth_result = strings(&["spf=fail"]),
            |f| f.auth.spf = AuthResult::Fail,
            true,
        ),
        (
            "spf=fail, softfails",
            Header,
            |p| p.auth_result = strings(&["spf=fail"]),
            |f| f.auth.spf = AuthResult::SoftFail,
            false,
        ),
        (
            "spf=fail, passes",
            Header,
            |p| p.auth_result = strings(&["spf=fail"]),
            |_| {},
            false,
        ),
        (
            "dmarc=fail, fails",
            Header,
            |p| p.auth_result = strings(&["dmarc=fail"]),
            |f| f.auth.dmarc = AuthResult::Fail,
            true,
        ),
        (
            "dmarc=fail, passes",
            Header,
            |p| p.auth_result = strings(&["dmarc=fail"]),
            |_| {},
            false,
        ),
        (
            "compauth=fail, fails",
            Header,
            |p| p.auth_result = strings(&["compauth=fail"]),
            |f| {
                f.compauth = Some(CompAuth {
                    verdict: CompVerdict::Fail,
                    reason: 1,
                })
            },
            true,
        ),
        (
            "compauth=fail, passes",
            Header,
            |p| p.auth_result = strings(&["compauth=fail"]),
            |_| {},
            false,
        ),
        (
            "compauth=none, not computed",
            Header,
            |p| p.auth_result = strings(&["compauth=none"]),
            |f| f.compauth = None,
            true,
        ),
        (
            "dkim=fail, fails",
            Header,
            |p| p.auth_result = strings(&["dkim=fail"]),
            |f| f.auth.dkim[0].result = AuthResult::Fail,
            true,
        ),
        (
            "result case-insensitive",
            Header,
            |p| p.auth_result = strings(&["spf=FAIL"]),
            |f| f.auth.spf = AuthResult::Fail,
            true,
        ),
        (
            "any listed auth result",
            Header,
            |p| p.auth_result = strings(&["spf=fail", "dmarc=fail"]),
            |f| f.auth.dmarc = AuthResult::Fail,
            true,
        ),
        (
            "no listed auth result",
            Header,
            |p| p.auth_result = strings(&["spf=fail", "dmarc=fail"]),
            |_| {},
            false,
        ),
    ]
}

#[test]
fn each_condition_and_its_exception() {
    let rows = condition_table();
    for (note, loc, pred, facts, holds) in &rows {
        let as_condition = rule("r", 0, |r| {
            r.sender_address_location = *loc;
            pred(&mut r.conditions);
        });
        let want = if *holds { "r => scl(5)" } else { "- => -" };
        check(&format!("condition: {note}"), &[as_condition], facts, want);

        let as_exception = rule("r", 0, |r| {
            r.sender_address_location = *loc;
            pred(&mut r.exceptions);
        });
        let want = if *holds { "- => -" } else { "r => scl(5)" };
        check(&format!("except_if: {note}"), &[as_exception], facts, want);
    }
    assert!(rows.len() >= 60, "{} rows", rows.len());
}

#[test]
fn no_conditions_match_everything() {
    check(
        "no conditions",
        &[rule("all", 0, |_| {})],
        |_| {},
        "all => scl(5)",
    );
}

#[test]
fn all_conditions_must_hold() {
    let r = rule("all", 0, |r| {
        r.conditions.from_scope = Some(FromScope::Outside);
        r.conditions.subject_contains = strings(&["invoice"]);
        r.conditions.auth_result = strings(&["spf=fail"]);
        r.conditions.recipient_domain_is = strings(&["contoso.com"]);
    });
    let rules = [r];
    fn all(f: &mut Facts) {
        f.subject = Some("Invoice 42".into());
        f.auth.spf = AuthResult::Fail;
    }
    let cases: Vec<(&str, FactsFn, &str)> = vec![
        ("all hold", all, "all => scl(5)"),
        (
            "inside",
            |f| {
                all(f);
                f.attribution = onprem()
            },
            "- => -",
        ),
        (
            "other subject",
            |f| {
                all(f);
                f.subject = Some("Hello".into())
            },
            "- => -",
        ),
        (
            "spf passes",
            |f| {
                all(f);
                f.auth.spf = AuthResult::Pass
            },
            "- => -",
        ),
        (
            "other recipient",
            |f| {
                all(f);
                f.recipients = strings(&["x@woodgrove.com"])
            },
            "- => -",
        ),
    ];
    for (note, facts, want) in cases {
        check(note, &rules, facts, want);
    }
}

#[test]
fn any_exception_exempts() {
    let r = rule("r", 0, |r| {
        r.conditions.from_scope = Some(FromScope::Outside);
        r.exceptions.subject_contains = strings(&["[safe]"]);
        r.exceptions.sender_ip_ranges = vec!["192.0.2.0/24".parse().unwrap()];
        r.exceptions.direct_send = Some(true);
    });
    let rules = [r];
    let cases: Vec<(&str, FactsFn, &str)> = vec![
        ("no exception holds", |_| {}, "r => scl(5)"),
        (
            "subject exempts",
            |f| f.subject = Some("[SAFE] report".into()),
            "- => -",
        ),
        ("IP exempts", |f| f.client_ip = ip("192.0.2.1"), "- => -"),
        ("direct send exempts", |f| f.direct_send = true, "- => -"),
        (
            "two exempt",
            |f| {
                f.direct_send = true;
                f.client_ip = ip("192.0.2.1")
            },
            "- => -",
        ),
        (
            "condition fails first",
            |f| f.attribution = onprem(),
            "- => -",
        ),
    ];
    for (note, facts, want) in cases {
        check(note, &rules, facts, want);
    }
}

#[test]
fn actions_and_merged_effect() {
    use RuleAction::*;
    let act = |name: &str, priority: u32, actions: Vec<RuleAction>| {
        rule(name, priority, |r| r.actions = actions)
    };
    let cases: Vec<(&str, Vec<Rule>, &str)> = vec![
        (
            "quarantine stops processing",
            vec![act("a", 0, vec![Quarantine]), act("b", 1, vec![SetScl(9)])],
            "a => quarantine(a)",
        ),
        (
            "quarantine keeps the rule's other actions",
            vec![act(
                "a",
                0,
                vec![
                    SetHeader {
                        name: "X-Q".into(),
                        value: "1".into(),
                    },
                    Quarantine,
                    SetScl(6),
                ],
            )],
            "a => quarantine(a); set(X-Q: 1); scl(6)",
        ),
        (
            "earlier actions survive a later quarantine",
            vec![
                act("a", 0, vec![PrependSubject("[EXT] ".into())]),
                act("b", 1, vec![Quarantine]),
                act("c", 2, vec![SetScl(1)]),
            ],
            "a b => quarantine(b); prepend(\"[EXT] \")",
        ),
        (
            "reject stops processing",
            vec![
                act(
                    "a",
                    0,
                    vec![Reject {
                        code: "5.7.900".into(),
                        text: "Not accepted here".into(),
                    }],
                ),
                act("b", 1, vec![Quarantine]),
            ],
            "a => reject(5.7.900 Not accepted here, a)",
        ),
        (
            "redirect",
            vec![act(
                "a",
                0,
                vec![RedirectTo(strings(&[
                    "sec@contoso.com",
                    "audit@contoso.com",
                ]))],
            )],
            "a => redirect(sec@contoso.com,audit@contoso.com)",
        ),
        (
            "a later redirect replaces",
            vec![
                act("a", 0, vec![RedirectTo(strings(&["first@contoso.com"]))]),
                act("b", 1, vec![RedirectTo(strings(&["second@contoso.com"]))]),
            ],
            "a b => redirect(second@contoso.com)",
        ),
        (
            "set and remove headers accumulate in order",
            vec![
                act(
                    "a",
                    0,
                    vec![
                        SetHeader {
                            name: "X-A".into(),
                            value: "1".into(),
                        },
                        RemoveHeader("X-Old".into()),
                    ],
                ),
                act(
                    "b",
                    1,
                    vec![
                        SetHeader {
                            name: "X-B".into(),
                            value: "two words".into(),
                        },
                        RemoveHeader("X-Spam-Flag".into()),
                    ],
                ),
            ],
            "a b => set(X-A: 1); set(X-B: two words); remove(X-Old); remove(X-Spam-Flag)",
        ),
        (
            "several rules prepend in order",
            vec![
                act("a", 0, vec![PrependSubject("[EXT] ".into())]),
                act("b", 1, vec![PrependSubject("[SUSPECT] ".into())]),
            ],
            "a b => prepend(\"[EXT] \",\"[SUSPECT] \")",
        ),
        (
            "set SCL",
            vec![act("a", 0, vec![SetScl(-1)])],
            "a => scl(-1)",
        ),
        (
            "the last SCL wins",
            vec![act("a", 0, vec![SetScl(9)]), act("b", 1, vec![SetScl(6)])],
            "a b => scl(6)",
        ),
        (
            "every action merged",
            vec![
                act(
                    "a",
                    0,
                    vec![
                        SetHeader {
                            name: "X-A".into(),
                            value: "1".into(),
                        },
                        PrependSubject("[1] ".into()),
                        SetScl(3),
                    ],
                ),
                act(
                    "b",
                    1,
                    vec![
                        RemoveHeader("X-B".into()),
                        RedirectTo(strings(&["hr@contoso.com"])),
                    ],
                ),
                act("c", 2, vec![PrependSubject("[2] ".into()), Quarantine]),
            ],
            "a b c => quarantine(c); redirect(hr@contoso.com); set(X-A: 1); remove(X-B); prepend(\"[1] \",\"[2] \"); scl(3)",
        ),
    ];
    for (note, rules, want) in cases {
        check(note, &rules, |_| {}, want);
    }
}

#[test]
fn priority_stop_processing_disabled() {
    let tag = |name: &str, priority: u32| {
        rule(name, priority, |r| {
            r.actions = vec![RuleAction::PrependSubject(format!("[{name}]"))]
        })
    };
    let cases: Vec<(&str, Vec<Rule>, &str)> = vec![
        (
            "priority 0 first, regardless of input order",
            vec![tag("c", 10), tag("b", 2), tag("a", 0)],
            "a b c => prepend(\"[a]\",\"[b]\",\"[c]\")",
        ),
        (
            "ties by name",
            vec![tag("zeta", 1), tag("alpha", 1), tag("first", 0)],
            "first alpha zeta => prepend(\"[first]\",\"[alpha]\",\"[zeta]\")",
        ),
        (
            "stop_processing stops after its own actions",
            vec![
                tag("a", 0),
                rule("b", 1, |r| {
                    r.actions = vec![RuleAction::PrependSubject("[b]".into())];
                    r.stop_processing = true
                }),
                tag("c", 2),
            ],
            "a b => prepend(\"[a]\",\"[b]\")",
        ),
        (
            "stop_processing on a rule that does not match stops nothing",
            vec![
                rule("a", 0, |r| {
                    r.stop_processing = true;
                    r.conditions.direct_send = Some(true);
                }),
                tag("b", 1),
            ],
            "b => prepend(\"[b]\")",
        ),
        (
            "disabled rules do nothing",
            vec![
                rule("a", 0, |r| {
                    r.enabled = false;
                    r.actions = vec![RuleAction::Quarantine]
                }),
                tag("b", 1),
            ],
            "b => prepend(\"[b]\")",
        ),
        (
            "a disabled rule's stop_processing does not stop",
            vec![
                rule("a", 0, |r| {
                    r.enabled = false;
                    r.stop_processing = true
                }),
                tag("b", 1),
            ],
            "b => prepend(\"[b]\")",
        ),
    ];
    for (note, rules, want) in cases {
        check(note, &rules, |_| {}, want);
    }
}

#[test]
fn audit_mode() {
    let audit = |name: &str, priority: u32, actions: Vec<RuleAction>, stop: bool| {
        rule(name, priority, |r| {
            r.mode = RuleMode::Audit;
            r.actions = actions;
            r.stop_processing = stop;
        })
    };
    let scl = |name: &str, priority: u32, n: i8| {
        rule(name, priority, |r| r.actions = vec![RuleAction::SetScl(n)])
    };
    let cases: Vec<(&str, Vec<Rule>, &str)> = vec![
        (
            "audit quarantine: listed, nothing done, processing goes on",
            vec![
                audit("a", 0, vec![RuleAction::Quarantine], false),
                scl("b", 1, 4),
            ],
            "a(audit) b => scl(4)",
        ),
        (
            "audit reject does nothing",
            vec![audit(
                "a",
                0,
                vec![RuleAction::Reject {
                    code: "5.7.1".into(),
                    text: "no".into(),
                }],
                false,
            )],
            "a(audit) => -",
        ),
        (
            "audit header/subject/SCL/redirect do nothing",
            vec![audit(
                "a",
                0,
                vec![
                    RuleAction::SetHeader {
                        name: "X-A".into(),
                        value: "1".into(),
                    },
                    RuleAction::RemoveHeader("X-B".into()),
                    RuleAction::PrependSubject("[A] ".into()),
                    RuleAction::SetScl(9),
                    RuleAction::RedirectTo(strings(&["x@contoso.com"])),
                ],
                false,
            )],
            "a(audit) => -",
        ),
        (
            "audit with stop_processing stops",
            vec![
                audit("a", 0, vec![RuleAction::SetScl(9)], true),
                scl("b", 1, 4),
            ],
            "a(audit) => -",
        ),
        (
            "enforced rules before an audit stop still apply",
            vec![
                scl("a", 0, 2),
                audit("b", 1, vec![RuleAction::Quarantine], true),
                scl("c", 2, 4),
            ],
            "a b(audit) => scl(2)",
        ),
        (
            "audit after an enforced quarantine is not reached",
            vec![
                rule("a", 0, |r| r.actions = vec![RuleAction::Quarantine]),
                audit("b", 1, vec![RuleAction::SetScl(1)], false),
            ],
            "a => quarantine(a)",
        ),
    ];
    for (note, rules, want) in cases {
        check(note, &rules, |_| {}, want);
    }
    // What the trace shows for an audit match: the rule, its mode and the actions it would take.
    let dir = Directory::build(
        1,
        vec![Tenant {
            name: "contoso".into(),
            settings: OrgSettings::default(),
        }],
        vec![],
        vec![],
        vec![audit("a", 0, vec![RuleAction::Quarantine], false)],
    );
    let f = Facts::default();
    let out = evaluate_rules(
        &dir.tenant("contoso").unwrap().rules,
        &RuleFacts {
            now: f.now,
            attribution: &f.attribution,
            direct_send: f.direct_send,
            client_ip: f.client_ip,
            mail_from: f.mail_from.as_deref(),
            header_from: f.header_from.as_deref(),
            headers: &f.headers,
            subject: f.subject.as_deref(),
            recipients: &f.recipients,
            auth: &f.auth,
            compauth: f.compauth,
        },
    );
    assert_eq!(out.matched[0].mode, RuleMode::Audit);
    assert_eq!(out.matched[0].actions, vec![RuleAction::Quarantine]);
    assert_eq!(out.matched[0].actions[0].describe(), "quarantine");
}

#[test]
fn activation_and_expiry() {
    let start = rule("start", 0, |r| r.activate_at = Some(JUNE.into()));
    let end = rule("end", 0, |r| r.expire_at = Some(JUNE.into()));
    let window = rule("window", 0, |r| {
        r.activate_at = Some("2026-05-01T00:00:00Z".into());
        r.expire_at = Some("2026-07-01T00:00:00+00:00".into());
    });
    let cases: Vec<(&str, &Rule, i64, &str)> = vec![
        ("before activation", &start, NOW - 1, "- => -"),
        ("at activation", &start, NOW, "start => scl(5)"),
        ("after activation", &start, NOW + 1, "start => scl(5)"),
        ("before expiry", &end, NOW - 1, "end => scl(5)"),
        ("at expiry", &end, NOW, "- => -"),
        ("after expiry", &end, NOW + 1, "- => -"),
        ("before the window", &window, NOW - 32 * 86_400, "- => -"),
        ("in the window", &window, NOW, "window => scl(5)"),
        ("after the window", &window, NOW + 31 * 86_400, "- => -"),
    ];
    for (note, r, now, want) in cases {
        check(note, std::slice::from_ref(r), |f| f.now = now, want);
    }
    // Fractional seconds and offsets parse; the boundary is the same instant.
    let fractional = rule("frac", 0, |r| {
        r.activate_at = Some("2026-06-01T00:00:00.000Z".into())
    });
    check(
        "fractional seconds",
        &[fractional],
        |f| f.now = NOW,
        "frac => scl(5)",
    );
}

/// The recipe the reference documents, verbatim as an administrator would store it.
#[test]
fn reference_recipe_quarantine_outside_contoso_except_billing() {
    let recipe: Rule = serde_json::from_value(serde_json::json!({
        "tenant": "contoso",
        "name": "quarantine external contoso.com",
        "priority": 0,
        "conditions": { "from_scope": "outside", "sender_domain_is": ["contoso.com"] },
        "sender_address_location": "envelope",
        "exceptions": { "header_contains": [{ "name": "X-Vendor-App", "words": ["Billing"] }] },
        "actions": ["quarantine"]
    }))
    .unwrap();
    assert!(recipe.enabled && recipe.mode == RuleMode::Enforce && !recipe.stop_processing);
    let rules = [recipe];
    let q = "quarantine external contoso.com => quarantine(quarantine external contoso.com)";
    let cases: Vec<(&str, FactsFn, &str)> = vec![
        (
            "outside, envelope contoso.com",
            |f| f.mail_from = Some("ceo@contoso.com".into()),
            q,
        ),
        (
            "outside, envelope subdomain",
            |f| f.mail_from = Some("ceo@mail.contoso.com".into()),
            q,
        ),
        (
            "partner connector is still outside",
            |f| {
                f.mail_from = Some("ceo@contoso.com".into());
                f.attribution = partner()
            },
            q,
        ),
        (
            "except X-Vendor-App contains Billing",
            |f| {
                f.mail_from = Some("ceo@contoso.com".into());
                f.headers.push(hdr("X-Vendor-App", "Contoso Billing"))
            },
            "- => -",
        ),
        (
            "X-Vendor-App without Billing",
            |f| {
                f.mail_from = Some("ceo@contoso.com".into());
                f.headers.push(hdr("X-Vendor-App", "CRM"))
            },
            q,
        ),
        (
            "inside (on-premises connector)",
            |f| {
                f.mail_from = Some("ceo@contoso.com".into());
                f.attribution = onprem()
            },
            "- => -",
        ),
        (
            "only the header From is contoso.com",
            |f| f.header_from = Some("ceo@contoso.com".into()),
            "- => -",
        ),
        ("other sender", |_| {}, "- => -"),
    ];
    for (note, facts, want) in cases {
        check(note, &rules, facts, want);
    }
}

#[test]
fn compile_validation_names_the_field() {
    use RuleAction::*;
    let reject = |code: &str, text: &str| {
        vec![Reject {
            code: code.into(),
            text: text.into(),
        }]
    };
    type RuleFn = Box<dyn Fn(&mut Rule)>;
    let with_actions =
        |a: Vec<RuleAction>| -> RuleFn { Box::new(move |r: &mut Rule| r.actions = a.clone()) };
    let cases: Vec<(&str, RuleFn, &str)> = vec![
        ("valid", Box::new(|_| {}), "ok"),
        (
            "bad regex",
            Box::new(|r| {
                r.conditions.header_matches = vec![HeaderPattern {
                    name: "X-Ref".into(),
                    pattern: "(unclosed".into(),
                }]
            }),
            "conditions.header_matches[0]",
        ),
        (
            "bad regex in exception, second entry",
            Box::new(|r| {
                r.exceptions.header_matches = vec![
                    HeaderPattern {
                        name: "X-Ref".into(),
                        pattern: "ok".into(),
                    },
                    HeaderPattern {
                        name: "X-Ref".into(),
                        pattern: "a{2,1}".into(),
                    },
                ]
            }),
            "exceptions.header_matches[1]",
        ),
        (
            "header_matches bad name",
            Box::new(|r| {
                r.conditions.header_matches = vec![HeaderPattern {
                    name: "X-Ref:".into(),
                    pattern: "x".into(),
                }]
            }),
            "conditions.header_matches[0].name",
        ),
        (
            "reject 5.7.1",
            with_actions(reject("5.7.1", "Denied")),
            "ok",
        ),
        (
            "reject 5.7.900",
            with_actions(reject("5.7.900", "Denied")),
            "ok",
        ),
        (
            "reject 5.7.999",
            with_actions(reject("5.7.999", "Denied")),
            "ok",
        ),
        (
            "reject 5.7.2",
            with_actions(reject("5.7.2", "Denied")),
            "reject_code",
        ),
        (
            "reject 5.7.899",
            with_actions(reject("5.7.899", "Denied")),
            "reject_code",
        ),
        (
            "reject 5.7.1000",
            with_actions(reject("5.7.1000", "Denied")),
            "reject_code",
        ),
        (
            "reject 4.7.900",
            with_actions(reject("4.7.900", "Denied")),
            "reject_code",
        ),
        (
            "reject 5.7.0900",
            with_actions(reject("5.7.0900", "Denied")),
            "reject_code",
        ),
        (
            "reject 5.7.+900",
            with_actions(reject("5.7.+900", "Denied")),
            "reject_code",
        ),
        (
            "reject 5.7.01",
            with_actions(reject("5.7.01", "Denied")),
            "reject_code",
        ),
        (
            "reject empty code",
            with_actions(reject("", "Denied")),
            "reject_code",
        ),
        (
            "reject text 1024",
            with_actions(reject("5.7.1", &"x".repeat(1024))),
            "ok",
        ),
        (
            "reject text 1025",
            with_actions(reject("5.7.1", &"x".repeat(1025))),
            "reject_text",
        ),
        (
            "reject text 1024 non-ASCII chars",
            with_actions(reject("5.7.1", &"é".repeat(1024))),
            "ok",
        ),
        (
            "reject text with CRLF",
            with_actions(reject("5.7.1", "a\r\n250 ok")),
            "reject_text",
        ),
        ("no actions", with_actions(vec![]), "actions"),
        (
            "empty redirect",
            with_actions(vec![RedirectTo(vec![])]),
            "redirect_to",
        ),
        (
            "set_header bad name (space)",
            with_actions(vec![SetHeader {
                name: "X Bad".into(),
                value: "1".into(),
            }]),
            "set_header",
        ),
        (
            "set_header bad name (colon)",
            with_actions(vec![SetHeader {
                name: "X-Bad:".into(),
                value: "1".into(),
            }]),
            "set_header",
        ),
        (
            "set_header empty name",
            with_actions(vec![SetHeader {
                name: "".into(),
                value: "1".into(),
            }]),
            "set_header",
        ),
        (
            "set_header value with newline",
            with_actions(vec![SetHeader {
                name: "X-A".into(),
                value: "1\nBcc: x@evil".into(),
            }]),
            "set_header",
        ),
        (
            "remove_header bad name",
            with_actions(vec![RemoveHeader("X Bad".into())]),
            "remove_header",
        ),
        (
            "prepend_subject with newline",
            with_actions(vec![PrependSubject("[x]\r\n".into())]),
            "prepend_subject",
        ),
        ("set_scl -1", with_actions(vec![SetScl(-1)]), "ok"),
        ("set_scl 9", with_actions(vec![SetScl(9)]), "ok"),
        ("set_scl 10", with_actions(vec![SetScl(10)]), "set_scl"),
        ("set_scl -2", with_actions(vec![SetScl(-2)]), "set_scl"),
        (
            "header_contains no name",
            Box::new(|r| {
                r.conditions.header_contains = vec![HeaderWords {
                    name: " ".into(),
                    words: strings(&["a"]),
                }]
            }),
            "conditions.header_contains[0]",
        ),
        (
            "header_contains bad name",
            Box::new(|r| {
                r.exceptions.header_contains = vec![HeaderWords {
                    name: "X-Vendor App".into(),
                    words: strings(&["a"]),
                }]
            }),
            "exceptions.header_contains[0]",
        ),
        (
            "header_contains no words",
            Box::new(|r| {
                r.conditions.header_contains = vec![HeaderWords {
                    name: "X-A".into(),
                    words: strings(&["", " "]),
                }]
            }),
            "conditions.header_contains[0]",
        ),
        (
            "subject_contains empty word",
            Box::new(|r| r.exceptions.subject_contains = strings(&["ok", ""])),
            "exceptions.subject_contains[1]",
        ),
        (
            "bad sender domain",
            Box::new(|r| r.conditions.sender_domain_is = strings(&["not a domain"])),
            "conditions.sender_domain_is[0]",
        ),
        (
            "bad sender domain (single label)",
            Box::new(|r| r.exceptions.sender_domain_is = strings(&["contoso"])),
            "exceptions.sender_domain_is[0]",
        ),
        (
            "bad recipient domain, second entry",
            Box::new(|r| {
                r.conditions.sender_domain_is = strings(&["contoso.com"]);
                r.conditions.recipient_domain_is = strings(&["contoso.com", "*.contoso.com"])
            }),
            "conditions.recipient_domain_is[1]",
        ),
        (
            "auth_result without =",
            Box::new(|r| r.conditions.auth_result = strings(&["spf"])),
            "conditions.auth_result[0]",
        ),
        (
            "auth_result unknown method",
            Box::new(|r| r.conditions.auth_result = strings(&["spf=fail", "sender-id=fail"])),
            "conditions.auth_result[1]",
        ),
        (
            "auth_result unknown result",
            Box::new(|r| r.exceptions.auth_result = strings(&["dmarc=failed"])),
            "exceptions.auth_result[0]",
        ),
        (
            "auth_result empty result",
            Box::new(|r| r.conditions.auth_result = strings(&["spf="])),
            "conditions.auth_result[0]",
        ),
        (
            "auth_result compauth softfail",
            Box::new(|r| r.conditions.auth_result = strings(&["compauth=softfail"])),
            "conditions.auth_result[0]",
        ),
        (
            "auth_result compauth softpass",
            Box::new(|r| r.conditions.auth_result = strings(&["compauth=softpass"])),
            "ok",
        ),
        (
            "bad activate_at",
            Box::new(|r| r.activate_at = Some("tomorrow".into())),
            "activate_at",
        ),
        (
            "bad expire_at",
            Box::new(|r| r.expire_at = Some("2026-13-01T00:00:00Z".into())),
            "expire_at",
        ),
        (
            "good times",
            Box::new(|r| {
                r.activate_at = Some(JUNE.into());
                r.expire_at = Some("2026-12-01T00:00:00Z".into())
            }),
            "ok",
        ),
    ];
    for (note, f, want) in cases {
        let r = rule("r", 0, |r| f(r));
        let got = match CompiledRule::compile(&r) {
            Ok(_) => "ok".to_string(),
            Err(e) => {
                assert!(
                    e.to_string().starts_with(&format!("{}: ", e.field)),
                    "{note}: {e}"
                );
                assert!(!e.message.is_empty(), "{note}");
                e.field
            }
        };
        assert_eq!(got, want, "{note}");
    }
}

#[test]
fn directory_compiles_and_orders_rules_per_tenant() {
    let tenant = |name: &str| Tenant {
        name: name.into(),
        settings: OrgSettings::default(),
    };
    let for_tenant = |t: &str, name: &str, priority: u32| {
        let mut r = rule(name, priority, |_| {});
        r.tenant = t.into();
        r
    };
    let mut broken = for_tenant("contoso", "broken", 0);
    broken.conditions.header_matches = vec![HeaderPattern {
        name: "X-Ref".into(),
        pattern: "[".into(),
    }];
    let rules = vec![
        for_tenant("contoso", "late", 20),
        for_tenant("fabrikam", "f-only", 0),
        for_tenant("contoso", "b-tie", 5),
        broken,
        for_tenant("contoso", "a-tie", 5),
        for_tenant("contoso", "first", 0),
        for_tenant("nobody", "orphan", 0),
    ];
    let dir = Directory::build(
        7,
        vec![tenant("contoso"), tenant("fabrikam"), tenant("woodgrove")],
        vec![],
        vec![],
        rules,
    );
    let names = |t: &str| -> Vec<String> {
        dir.tenant(t)
            .unwrap()
            .rules
            .iter()
            .map(|c| c.rule.name.clone())
            .collect()
    };
    assert_eq!(names("contoso"), ["first", "a-tie", "b-tie", "late"]);
    assert_eq!(names("fabrikam"), ["f-only"]);
    assert!(names("woodgrove").is_empty());
    assert_eq!(dir.rule_errors.len(), 1, "{:?}", dir.rule_errors);
    let (t, name, e) = &dir.rule_errors[0];
    assert_eq!(
        (t.as_str(), name.as_str(), e.field.as_str()),
        ("contoso", "broken", "conditions.header_matches[0]")
    );
    // The snapshot can be cloned and shared without recompiling.
    let copy = dir.clone();
    assert_eq!(copy.tenant("contoso").unwrap().rules.len(), 4);
}
