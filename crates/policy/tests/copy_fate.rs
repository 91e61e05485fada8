//! The fate of one tenant copy at the end of DATA (`decide_copy`) as a table: direct send, DMARC,
//! the spoof action and the mail-flow rules, against one fixture directory.

use std::net::IpAddr;

use portcullis_policy::rules::{AddressLocation, Predicates, Rule, RuleAction, RuleMode};
use portcullis_policy::*;

/// 2026-06-01T00:00:00Z.
const NOW: i64 = 1_780_272_000;

fn dom(tenant: &str, domain: &str) -> AcceptedDomain {
    AcceptedDomain {
        domain: domain.into(),
        tenant: tenant.into(),
        domain_type: DomainType::Authoritative,
        match_subdomains: false,
        route: None,
        verification: None,
        recipient_validation: None,
    }
}

fn tenant(name: &str, mode: RejectDirectSend, f: impl FnOnce(&mut OrgSettings)) -> Tenant {
    let mut settings = OrgSettings {
        reject_direct_send: mode,
        ..Default::default()
    };
    f(&mut settings);
    Tenant {
        name: name.into(),
        settings,
    }
}

/// An enforced, enabled rule whose condition is "the subject contains `word`".
fn rule(tenant: &str, name: &str, priority: u32, word: &str, actions: Vec<RuleAction>) -> Rule {
    Rule {
        tenant: tenant.into(),
        name: name.into(),
        priority,
        conditions: Predicates {
            subject_contains: vec![word.into()],
            ..Default::default()
        },
        exceptions: Predicates::default(),
        sender_address_location: AddressLocation::Header,
        actions,
        mode: RuleMode::Enforce,
        stop_processing: false,
        activate_at: None,
        expire_at: None,
        enabled: true,
    }
}

fn reject(code: &str, text: &str) -> RuleAction {
    RuleAction::Reject {
        code: code.into(),
        text: text.into(),
    }
}

/// Each tenant owns `<name>.com`; `gone` is not in the directory (removed mid-transaction).
///
/// | tenant    | direct send | scope               | spoof      | other                        |
/// |-----------|-------------|---------------------|------------|------------------------------|
/// | contoso   | on          | envelope            | quarantine | on-prem connector, rules     |
/// | fabrikam  | audit       | envelope            | junk       |                              |
/// | woodgrove | off         | envelope            | junk       | rules                        |
/// | sealed    | on          | envelope            | junk       | ARC lists.example, DKIM ok   |
/// | northwind | on          | envelope-and-header | junk       |                              |
/// | tailspin  | off         | envelope            | none       | honor_dmarc off              |
fn fixture() -> Directory {
    let tenants = vec![
        tenant("contoso", RejectDirectSend::On, |s| {
            s.spoof_action = SpoofAction::Quarantine
        }),
        tenant("fabrikam", RejectDirectSend::Audit, |_| {}),
        tenant("woodgrove", RejectDirectSend::Off, |s| {
            s.spoof_action = SpoofAction::Junk
        }),
        tenant("sealed", RejectDirectSend::On, |s| {
            s.arc_trusted_sealers = vec!["lists.example".into()];
            s.direct_send_allow_dkim_aligned = true;
        }),
        tenant("northwind", RejectDirectSend::On, |s| {
            s.direct_send_scope = DirectSendScope::EnvelopeAndHeader
        }),
        tenant("tailspin", RejectDirectSend::Off, |s| {
            s.honor_dmarc = false;
            s.spoof_action = SpoofAction::None;
        }),
    ];
    let domains = [
        "contoso",
        "fabrikam",
        "woodgrove",
        "sealed",
        "northwind",
        "tailspin",
    ]
    .iter()
    .map(|t| dom(t, &format!("{t}.com")))
    .collect();
    let mut onprem = Connector::new("contoso", "onprem");
    onprem.connector_type = ConnectorType::OnPremises;
    onprem.sender_ips = vec!["192.0.2.0/24".parse().unwrap()];

    let mut disabled = rule("contoso", "disabled-reject", 1, "x", vec![]);
    disabled.conditions = Predicates::default(); // would match every message
    disabled.actions = vec![reject("5.7.903", "Disabled")];
    disabled.enabled = false;
    let mut audit = rule(
        "contoso",
        "audit-reject",
        5,
        "lottery",
        vec![reject("5.7.901", "No lotteries")],
    );
    audit.mode = RuleMode::Audit;
    let mut tag = rule(
        "woodgrove",
        "tag-bulk",
        30,
        "newsletter",
        vec![
            RuleAction::SetHeader {
                name: "X-Bulk".into(),
                value: "yes".into(),
            },
            RuleAction::PrependSubject("[Bulk]".into()),
            RuleAction::SetScl(6),
            RuleAction::RemoveHeader("X-Campaign".into()),
        ],
    );
    tag.stop_processing = true;
    let rules = vec![
        disabled,
        audit,
        rule(
            "contoso",
            "block-overdue",
            10,
            "overdue",
            vec![reject("5.7.900", "Blocked by policy")],
        ),
        rule(
            "contoso",
            "hold-and-refuse",
            15,
            "wire transfer",
            vec![
                RuleAction::Quarantine,
                reject("5.7.902", "No wire transfers"),
            ],
        ),
        rule(
            "contoso",
            "hold-payroll",
            20,
            "payroll",
            vec![RuleAction::Quarantine],
        ),
        rule(
            "woodgrove",
            "redirect-legal",
            10,
            "subpoena",
            vec![RuleAction::RedirectTo(vec![
                "legal@woodgrove.com".into(),
                "archive@woodgrove.com".into(),
            ])],
        ),
        rule(
            "woodgrove",
            "hold-wg",
            20,
            "payroll",
            vec![RuleAction::Quarantine],
        ),
        tag,
        // After tag-bulk's stop_processing: never reached for a newsletter.
        rule(
            "woodgrove",
            "never-reached",
            40,
            "newsletter",
            vec![RuleAction::SetScl(9)],
        ),
    ];
    let dir = Directory::build(1, tenants, domains, vec![onprem], rules);
    assert!(dir.rule_errors.is_empty(), "{:?}", dir.rule_errors);
    dir
}

#[derive(Clone, Copy)]
struct Case {
    note: &'static str,
    tenant: &'static str,
    /// The attributing connector (looked up in the fixture); `None`: anonymous.
    via: Option<&'static str>,
    /// The RCPT-time outcome.
    ds: DirectSend,
    /// P1 and P2 addresses.
    mail_from: &'static str,
    from: &'static str,
    subject: &'static str,
    /// Space-separated `spf=R`, `dmarc=R`, `p=POLICY`, `dkim=R:DOMAIN`, `arc=R:SEALER`.
    auth: &'static str,
    expect: &'static str,
}

/// Anonymous mail from a foreign domain (example.net) that passes DMARC, to contoso.
const BASE: Case = Case {
    note: "",
    tenant: "contoso",
    via: None,
    ds: DirectSend::No,
    mail_from: "alice@example.net",
    from: "alice@example.net",
    subject: "Hello",
    auth: "spf=pass dmarc=pass p=reject",
    expect: "",
};

fn result(s: &str) -> AuthResult {
    match s {
        "pass" => AuthResult::Pass,
        "fail" => AuthResult::Fail,
        "softfail" => AuthResult::SoftFail,
        "neutral" => AuthResult::Neutral,
        "none" => AuthResult::None,
        "temperror" => AuthResult::TempError,
        "permerror" => AuthResult::PermError,
        _ => panic!("unknown result {s:?}"),
    }
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or(address)
}

fn auth_facts(c: &Case) -> AuthFacts {
    let mut a = AuthFacts {
        evaluated: true,
        spf_domain: Some(domain_of(c.mail_from).into()),
        from_domain: Some(domain_of(c.from).into()),
        ..Default::default()
    };
    for token in c.auth.split_whitespace() {
        let (key, value) = token.split_once('=').expect("key=value");
        match key {
            "spf" => a.spf = result(value),
            "dmarc" => a.dmarc = result(value),
            "p" => {
                a.dmarc_policy = match value {
                    "none" => DmarcPolicy::None,
                    "quarantine" => DmarcPolicy::Quarantine,
                    "reject" => DmarcPolicy::Reject,
                    _ => panic!("unknown policy {value:?}"),
                }
            }
            "dkim" => {
                let (r, d) = value.split_once(':').expect("dkim=R:DOMAIN");
                a.dkim.push(DkimFact {
                    result: result(r),
                    domain: d.into(),
                    selector: "s1".into(),
                });
            }
            "arc" => {
                let (r, s) = value.split_once(':').expect("arc=R:SEALER");
                a.arc = result(r);
                a.arc_sealer = Some(s.into());
            }
            _ => panic!("unknown auth token {token:?}"),
        }
    }
    a
}

/// The reply's code and enhanced status (a rule's reject carries its code at the start of the
/// text, so the first two words of the one-line form).
fn head(reply: &portcullis_smtp::Reply) -> String {
    let line = reply.to_string();
    line.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

fn render_delivery(d: &Delivery) -> String {
    let mut out = vec![format!("to={}", d.recipients.join(","))];
    if d.audit_header {
        out.push("audit".into());
    }
    if d.junk {
        out.push("junk".into());
    }
    let e = &d.edits;
    out.extend(e.set_headers.iter().map(|(n, v)| format!("set={n}:{v}")));
    out.extend(e.prepend_subject.iter().map(|p| format!("prepend={p}")));
    out.extend(e.scl.map(|n| format!("scl={n}")));
    out.extend(e.remove_headers.iter().map(|n| format!("remove={n}")));
    assert!(
        e.quarantine.is_none() && e.reject.is_none() && e.redirect_to.is_none(),
        "taken out of the delivery's edits: {e:?}"
    );
    out.join(" ")
}

/// `refuse|defer <code> <status> <why>`, `quarantine <reason> <delivery>` or `deliver <delivery>`.
fn render(fate: &Fate) -> String {
    match fate {
        Fate::Refuse { reply, why } => {
            let verb = if reply.is_transient() {
                "defer"
            } else {
                "refuse"
            };
            let why = match why {
                Refusal::DirectSend { header: false } => "direct-send(envelope)".to_string(),
                Refusal::DirectSend { header: true } => "direct-send(header)".to_string(),
                Refusal::Dmarc { domain } => format!("dmarc({domain})"),
                Refusal::Rule { rule } => format!("rule({rule})"),
                Refusal::AuthTempError => "auth-temp-error".to_string(),
            };
            format!("{verb} {} {why}", head(reply))
        }
        Fate::Quarantine { reason, delivery } => {
            format!("quarantine {reason} {}", render_delivery(delivery))
        }
        Fate::Deliver(d) => format!("deliver {}", render_delivery(d)),
    }
}

/// Runs one case through `decide_copy`.
fn run(dir: &Directory, c: &Case, explain: bool) -> CopyOutcome {
    let attribution = match c.via {
        None => Attribution::Anonymous,
        Some(name) => {
            let conn = dir
                .tenant(c.tenant)
                .and_then(|t| t.connectors.iter().find(|x| x.name == name))
                .unwrap_or_else(|| panic!("{}: no connector {name}", c.note));
            Attribution::Connector {
                name: name.into(),
                kind: conn.connector_type,
                matched_by: MatchedBy::Ip(24),
            }
        }
    };
    let auth = auth_facts(c);
    let p1 = domain_of(c.mail_from).to_string();
    let data = DataFacts {
        tenant: c.tenant,
        attribution: &attribution,
        direct_send: c.ds,
        p1_domain: Some(&p1),
        auth: &auth,
        behind_filter: false,
    };
    let headers = vec![
        ("From".to_string(), c.from.to_string()),
        ("Subject".to_string(), c.subject.to_string()),
        ("X-Campaign".to_string(), "spring".to_string()),
    ];
    let t = c.tenant;
    let recipients = vec![format!("bob@{t}.com"), format!("carol@{t}.com")];
    let message = MessageFacts {
        now: NOW,
        client_ip: if c.via.is_some() {
            "192.0.2.10"
        } else {
            "203.0.113.5"
        }
        .parse::<IpAddr>()
        .unwrap(),
        mail_from: Some(c.mail_from),
        header_from: Some(c.from),
        headers: &headers,
        subject: Some(c.subject),
        recipients: &recipients,
    };
    decide_copy(dir, &data, &message, explain)
}

fn names(list: impl IntoIterator<Item = String>) -> Vec<String> {
    list.into_iter().collect()
}

/// The one helper: renders the fate (explained and not: the same fate, the same matches, and
/// no explanation of misses when not asked for) and compares it with `expect`.
fn check(dir: &Directory, c: &Case) -> Option<String> {
    let plain = run(dir, c, false);
    let explained = run(dir, c, true);
    assert_eq!(
        plain.fate, explained.fate,
        "{}: explain changed the fate",
        c.note
    );
    assert_eq!(plain.rules.matched, explained.rules.matched, "{}", c.note);
    assert!(
        plain.rules.missed.is_empty(),
        "{}: {:?}",
        c.note,
        plain.rules
    );
    let got = render(&plain.fate);
    (got != c.expect).then(|| format!("{}: expected {:?}, got {:?}", c.note, c.expect, got))
}

const CASES: &[Case] = &[
    // Attributed mail is vouched for by its connector: results recorded, not acted on.
    Case {
        note: "attributed own-domain copy failing DMARC p=reject is delivered untouched",
        via: Some("onprem"),
        mail_from: "ceo@contoso.com",
        from: "ceo@contoso.com",
        auth: "spf=fail dmarc=fail p=reject",
        expect: "deliver to=bob@contoso.com,carol@contoso.com",
        ..BASE
    },
    Case {
        note: "attributed copy with a DNS temp error is not deferred",
        via: Some("onprem"),
        auth: "spf=pass dmarc=temperror",
        expect: "deliver to=bob@contoso.com,carol@contoso.com",
        ..BASE
    },
    Case {
        note: "anonymous copy with a DNS temp error is deferred",
        auth: "spf=pass dmarc=temperror",
        expect: "defer 451 4.7.0 auth-temp-error",
        ..BASE
    },
    Case {
        note: "a DNS temp error defers even a deferred direct send (checked first)",
        tenant: "sealed",
        ds: DirectSend::Deferred,
        mail_from: "x@sealed.com",
        from: "x@sealed.com",
        auth: "spf=fail dkim=temperror:sealed.com",
        expect: "defer 451 4.7.0 auth-temp-error",
        ..BASE
    },
    // Own-domain spoof (anonymous, foreign P1, own P2, implicit fail 601): the tenant's action.
    Case {
        note: "own-domain spoof, spoof_action=quarantine",
        mail_from: "bulk@bulk.example",
        from: "ceo@contoso.com",
        auth: "spf=fail",
        expect: "quarantine spoof to=bob@contoso.com,carol@contoso.com",
        ..BASE
    },
    Case {
        note: "own-domain spoof, spoof_action=junk",
        tenant: "woodgrove",
        mail_from: "bulk@bulk.example",
        from: "ceo@woodgrove.com",
        auth: "spf=fail",
        expect: "deliver to=bob@woodgrove.com,carol@woodgrove.com junk",
        ..BASE
    },
    Case {
        note: "own-domain spoof, spoof_action=none",
        tenant: "tailspin",
        mail_from: "bulk@bulk.example",
        from: "ceo@tailspin.com",
        auth: "spf=fail",
        expect: "deliver to=bob@tailspin.com,carol@tailspin.com",
        ..BASE
    },
    Case {
        note: "a foreign From failing implicitly is not a spoof of ours",
        mail_from: "bulk@bulk.example",
        from: "ceo@other.example",
        auth: "spf=fail",
        expect: "deliver to=bob@contoso.com,carol@contoso.com",
        ..BASE
    },
    Case {
        note: "own-domain From with aligned DKIM is no spoof",
        tenant: "woodgrove",
        mail_from: "bulk@bulk.example",
        from: "news@woodgrove.com",
        auth: "spf=fail dkim=pass:woodgrove.com",
        expect: "deliver to=bob@woodgrove.com,carol@woodgrove.com",
        ..BASE
    },
    // DMARC.
    Case {
        note: "DMARC p=reject failure honoured",
        mail_from: "bounce@bank.example",
        from: "info@bank.example",
        auth: "spf=fail dmarc=fail p=reject",
        expect: "refuse 550 5.7.509 dmarc(bank.example)",
        ..BASE
    },
    Case {
        note: "DMARC p=reject failure ignored with honor_dmarc off",
        tenant: "tailspin",
        mail_from: "bounce@bank.example",
        from: "info@bank.example",
        auth: "spf=fail dmarc=fail p=reject",
        expect: "deliver to=bob@tailspin.com,carol@tailspin.com",
        ..BASE
    },
    Case {
        note: "DMARC p=reject failure honoured in an off tenant too",
        tenant: "woodgrove",
        mail_from: "bounce@bank.example",
        from: "info@bank.example",
        auth: "spf=fail dmarc=fail p=reject",
        expect: "refuse 550 5.7.509 dmarc(bank.example)",
        ..BASE
    },
    Case {
        note: "DMARC p=quarantine failure",
        mail_from: "bounce@bank.example",
        from: "info@bank.example",
        auth: "spf=fail dmarc=fail p=quarantine",
        expect: "quarantine dmarc-quarantine to=bob@contoso.com,carol@contoso.com",
        ..BASE
    },
    Case {
        note: "DMARC p=none failure: no action",
        mail_from: "bounce@bank.example",
        from: "info@bank.example",
        auth: "spf=fail dmarc=fail p=none",
        expect: "deliver to=bob@contoso.com,carol@contoso.com",
        ..BASE
    },
    Case {
        note: "DMARC quarantine takes precedence over spoof quarantine (one reason)",
        mail_from: "bulk@bulk.example",
        from: "ceo@contoso.com",
        auth: "spf=fail dmarc=fail p=quarantine",
        expect: "quarantine dmarc-quarantine to=bob@contoso.com,carol@contoso.com",
        ..BASE
    },
    Case {
        note: "DMARC quarantine of an own domain replaces the junk spoof action",
        tenant: "woodgrove",
        mail_from: "bulk@bulk.example",
        from: "ceo@woodgrove.com",
        auth: "spf=fail dmarc=fail p=quarantine",
        expect: "quarantine dmarc-quarantine to=bob@woodgrove.com,carol@woodgrove.com",
        ..BASE
    },
    Case {
        note: "DMARC quarantine failure overridden by a trusted ARC sealer",
        tenant: "sealed",
        mail_from: "bounce@bank.example",
        from: "info@bank.example",
        auth: "spf=fail dmarc=fail p=quarantine arc=pass:lists.example",
        expect: "deliver to=bob@sealed.com,carol@sealed.com",
        ..BASE
    },
    // Mail-flow rules.
    Case {
        note: "a rule's reject beats DMARC quarantine",
        mail_from: "bounce@bank.example",
        from: "info@bank.example",
        subject: "Your invoice is overdue",
        auth: "spf=fail dmarc=fail p=quarantine",
        expect: "refuse 550 5.7.900 rule(block-overdue)",
        ..BASE
    },
    Case {
        note: "a rule's reject stops before a lower-priority quarantine rule",
        subject: "Overdue payroll",
        expect: "refuse 550 5.7.900 rule(block-overdue)",
        ..BASE
    },
    Case {
        note: "a rule's reject beats its own quarantine action",
        subject: "Urgent wire transfer",
        expect: "refuse 550 5.7.902 rule(hold-and-refuse)",
        ..BASE
    },
    Case {
        note: "rule quarantine",
        subject: "Payroll for May",
        expect: "quarantine rule:hold-payroll to=bob@contoso.com,carol@contoso.com",
        ..BASE
    },
    Case {
        note: "rule quarantine beats spoof quarantine",
        mail_from: "bulk@bulk.example",
        from: "ceo@contoso.com",
        subject: "Payroll for May",
        auth: "spf=fail",
        expect: "quarantine rule:hold-payroll to=bob@contoso.com,carol@contoso.com",
        ..BASE
    },
    Case {
        note: "rule quarantine beats DMARC quarantine",
        mail_from: "bounce@bank.example",
        from: "info@bank.example",
        subject: "Payroll for May",
        auth: "spf=fail dmarc=fail p=quarantine",
        expect: "quarantine rule:hold-payroll to=bob@contoso.com,carol@contoso.com",
        ..BASE
    },
    Case {
        note: "junk flag kept when quarantined by a rule",
        tenant: "woodgrove",
        mail_from: "bulk@bulk.example",
        from: "ceo@woodgrove.com",
        subject: "Payroll for May",
        auth: "spf=fail",
        expect: "quarantine rule:hold-wg to=bob@woodgrove.com,carol@woodgrove.com junk",
        ..BASE
    },
    Case {
        note: "redirect replaces the recipients",
        tenant: "woodgrove",
        subject: "Subpoena",
        expect: "deliver to=legal@woodgrove.com,archive@woodgrove.com",
        ..BASE
    },
    Case {
        note: "redirect, then quarantine by a later rule: the held copy keeps the redirect",
        tenant: "woodgrove",
        subject: "Subpoena about payroll",
        expect: "quarantine rule:hold-wg to=legal@woodgrove.com,archive@woodgrove.com",
        ..BASE
    },
    Case {
        note: "redirect with the junk flag",
        tenant: "woodgrove",
        mail_from: "bulk@bulk.example",
        from: "ceo@woodgrove.com",
        subject: "Subpoena",
        auth: "spf=fail",
        expect: "deliver to=legal@woodgrove.com,archive@woodgrove.com junk",
        ..BASE
    },
    Case {
        note: "header edits; stop_processing keeps the next rule's SCL out",
        tenant: "woodgrove",
        subject: "Monthly newsletter",
        expect: "deliver to=bob@woodgrove.com,carol@woodgrove.com \
                 set=X-Bulk:yes prepend=[Bulk] scl=6 remove=X-Campaign",
        ..BASE
    },
    Case {
        note: "an audit-mode rule's reject does not apply (nor the disabled rule's)",
        subject: "You won the lottery",
        expect: "deliver to=bob@contoso.com,carol@contoso.com",
        ..BASE
    },
    Case {
        note: "rules apply to attributed copies too",
        via: Some("onprem"),
        subject: "Payroll for May",
        expect: "quarantine rule:hold-payroll to=bob@contoso.com,carol@contoso.com",
        ..BASE
    },
    // Direct send at the end of DATA.
    Case {
        note: "audit direct send: audit header (and the spoof action)",
        tenant: "fabrikam",
        ds: DirectSend::Audit,
        mail_from: "scanner@fabrikam.com",
        from: "scanner@fabrikam.com",
        auth: "spf=fail",
        expect: "deliver to=bob@fabrikam.com,carol@fabrikam.com audit junk",
        ..BASE
    },
    Case {
        note: "audit direct send that authenticates: audit header only",
        tenant: "fabrikam",
        ds: DirectSend::Audit,
        mail_from: "scanner@fabrikam.com",
        from: "scanner@fabrikam.com",
        auth: "spf=fail dkim=pass:fabrikam.com",
        expect: "deliver to=bob@fabrikam.com,carol@fabrikam.com audit",
        ..BASE
    },
    Case {
        note: "allowed direct send (off) is not marked",
        tenant: "woodgrove",
        ds: DirectSend::Allowed,
        mail_from: "scanner@woodgrove.com",
        from: "scanner@woodgrove.com",
        auth: "spf=fail dkim=pass:woodgrove.com",
        expect: "deliver to=bob@woodgrove.com,carol@woodgrove.com",
        ..BASE
    },
    Case {
        note: "deferred direct send without exemption is refused",
        tenant: "sealed",
        ds: DirectSend::Deferred,
        mail_from: "x@sealed.com",
        from: "x@sealed.com",
        auth: "spf=fail",
        expect: "refuse 550 5.7.68 direct-send(envelope)",
        ..BASE
    },
    Case {
        note: "deferred direct send sealed by an untrusted ARC sealer is refused",
        tenant: "sealed",
        ds: DirectSend::Deferred,
        mail_from: "x@sealed.com",
        from: "x@sealed.com",
        auth: "spf=fail arc=pass:evil.example",
        expect: "refuse 550 5.7.68 direct-send(envelope)",
        ..BASE
    },
    Case {
        note: "deferred direct send sealed by a trusted ARC sealer is delivered",
        tenant: "sealed",
        ds: DirectSend::Deferred,
        mail_from: "x@sealed.com",
        from: "x@sealed.com",
        auth: "spf=fail arc=pass:lists.example",
        expect: "deliver to=bob@sealed.com,carol@sealed.com",
        ..BASE
    },
    Case {
        note: "deferred direct send with DKIM aligned with P1 is delivered",
        tenant: "sealed",
        ds: DirectSend::Deferred,
        mail_from: "x@sealed.com",
        from: "x@sealed.com",
        auth: "spf=fail dkim=pass:sealed.com",
        expect: "deliver to=bob@sealed.com,carol@sealed.com",
        ..BASE
    },
    Case {
        note: "deferred direct send with unaligned DKIM is refused",
        tenant: "sealed",
        ds: DirectSend::Deferred,
        mail_from: "x@sealed.com",
        from: "x@sealed.com",
        auth: "spf=fail dkim=pass:esp.example",
        expect: "refuse 550 5.7.68 direct-send(envelope)",
        ..BASE
    },
    Case {
        note: "envelope-and-header scope: anonymous P2 spoof refused",
        tenant: "northwind",
        mail_from: "bulk@bulk.example",
        from: "ceo@northwind.com",
        auth: "spf=pass",
        expect: "refuse 550 5.7.68 direct-send(header)",
        ..BASE
    },
    Case {
        note: "envelope-and-header scope: foreign P2 accepted",
        tenant: "northwind",
        mail_from: "bulk@bulk.example",
        from: "news@bulk.example",
        auth: "spf=pass",
        expect: "deliver to=bob@northwind.com,carol@northwind.com",
        ..BASE
    },
    Case {
        note: "tenant removed mid-transaction: nothing of its policy applies",
        tenant: "gone",
        ds: DirectSend::Deferred,
        mail_from: "x@gone.com",
        from: "x@gone.com",
        auth: "spf=fail dmarc=fail p=reject",
        expect: "deliver to=bob@gone.com,carol@gone.com",
        ..BASE
    },
];

#[test]
fn copy_fate_table() {
    let dir = fixture();
    let failures: Vec<String> = CASES.iter().filter_map(|c| check(&dir, c)).collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn rules_matched_and_missed() {
    let dir = fixture();
    let matched = |o: &CopyOutcome| names(o.rules.matched.iter().map(|m| m.rule.clone()));
    let missed = |o: &CopyOutcome| names(o.rules.missed.iter().map(|m| m.rule.clone()));

    // The audit rule matches (recorded) without stopping; the quarantine rule stops processing.
    let c = Case {
        subject: "Lottery payroll",
        ..BASE
    };
    let o = run(&dir, &c, true);
    assert_eq!(matched(&o), ["audit-reject", "hold-payroll"]);
    assert_eq!(o.rules.matched[0].mode, RuleMode::Audit);
    assert_eq!(
        missed(&o),
        ["disabled-reject", "block-overdue", "hold-and-refuse"]
    );
    assert_eq!(o.rules.missed[0].why, "disabled");
    let o = run(&dir, &c, false);
    assert_eq!(matched(&o), ["audit-reject", "hold-payroll"]);
    assert!(o.rules.missed.is_empty());

    // A rule after stop_processing is neither matched nor missed.
    let c = Case {
        tenant: "woodgrove",
        subject: "Monthly newsletter",
        ..BASE
    };
    let o = run(&dir, &c, true);
    assert_eq!(matched(&o), ["tag-bulk"]);
    assert_eq!(missed(&o), ["redirect-legal", "hold-wg"]);
    assert!(run(&dir, &c, false).rules.missed.is_empty());

    // Refused before the rules: no rule is evaluated, even when explained.
    let c = Case {
        mail_from: "bounce@bank.example",
        from: "info@bank.example",
        subject: "Payroll",
        auth: "spf=fail dmarc=fail p=reject",
        ..BASE
    };
    let o = run(&dir, &c, true);
    assert_eq!(render(&o.fate), "refuse 550 5.7.509 dmarc(bank.example)");
    assert_eq!(o.rules, rules::RuleOutcome::default());
}

#[test]
fn quarantine_reason_wire_words() {
    assert_eq!(
        QuarantineReason::Rule("hold-payroll".into()).to_string(),
        "rule:hold-payroll"
    );
    assert_eq!(QuarantineReason::Dmarc.to_string(), "dmarc-quarantine");
    assert_eq!(QuarantineReason::Spoof.to_string(), "spoof");
}
