//! SPEC §2 as a table: every row and every note, against one fixture directory.

use std::net::IpAddr;

use portcullis_policy::*;

fn dom(tenant: &str, domain: &str, sub: bool) -> AcceptedDomain {
    AcceptedDomain {
        domain: domain.into(),
        tenant: tenant.into(),
        domain_type: DomainType::Authoritative,
        match_subdomains: sub,
        route: None,
        verification: None,
        recipient_validation: None,
    }
}

fn conn(tenant: &str, name: &str, f: impl FnOnce(&mut Connector)) -> Connector {
    let mut c = Connector::new(tenant, name);
    f(&mut c);
    c
}

fn tenant(name: &str, mode: RejectDirectSend) -> Tenant {
    Tenant {
        name: name.into(),
        settings: OrgSettings {
            reject_direct_send: mode,
            ..Default::default()
        },
    }
}

fn fixture() -> Directory {
    let tenants = vec![
        tenant("contoso", RejectDirectSend::On),
        tenant("fabrikam", RejectDirectSend::Audit),
        tenant("woodgrove", RejectDirectSend::Off),
    ];
    let domains = vec![
        dom("contoso", "contoso.com", false),
        dom("contoso", "contoso.net", true),
        dom("fabrikam", "fabrikam.com", false),
        dom("woodgrove", "woodgrove.com", false),
        // A subdomain owned by another tenant wins over the parent's match_subdomains.
        dom("woodgrove", "wg.contoso.net", false),
    ];
    let connectors = vec![
        conn("contoso", "onprem-net", |c| {
            c.connector_type = ConnectorType::OnPremises;
            c.sender_ips = vec!["192.0.2.0/24".parse().unwrap()];
        }),
        conn("contoso", "onprem-host", |c| {
            c.connector_type = ConnectorType::OnPremises;
            c.sender_ips = vec!["192.0.2.10/32".parse().unwrap()];
        }),
        conn("contoso", "z-cert", |c| {
            c.tls_cert_names = vec!["*.relay.contoso.com".into()];
        }),
        conn("contoso", "tls-only", |c| {
            c.sender_ips = vec!["198.51.100.0/24".parse().unwrap()];
            c.require_tls = true;
        }),
        conn("contoso", "off", |c| {
            c.sender_ips = vec!["203.0.113.0/24".parse().unwrap()];
            c.enabled = false;
        }),
        conn("contoso", "scoped", |c| {
            c.sender_ips = vec!["10.0.0.0/8".parse().unwrap()];
            c.sender_domains = vec!["*.partner.example".into()];
        }),
        conn("contoso", "v6", |c| {
            c.sender_ips = vec!["2001:db8::/32".parse().unwrap()];
        }),
        // Two equal /24s: the tie breaks by name ("a-tie" < "b-tie").
        conn("contoso", "b-tie", |c| {
            c.sender_ips = vec!["172.16.5.0/24".parse().unwrap()]
        }),
        conn("contoso", "a-tie", |c| {
            c.sender_ips = vec!["172.16.5.0/24".parse().unwrap()]
        }),
        conn("fabrikam", "restricted", |c| {
            c.sender_ips = vec!["198.18.0.0/15".parse().unwrap()];
            c.sender_domains = vec!["partner.org".into()];
            c.restrict_domains_to_ip = true;
        }),
        conn("fabrikam", "restricted-cert", |c| {
            c.tls_cert_names = vec!["mx.certpartner.org".into()];
            c.sender_domains = vec!["certpartner.org".into()];
            c.restrict_domains_to_cert = true;
        }),
    ];
    Directory::build(1, tenants, domains, connectors, vec![])
}

struct Case {
    note: &'static str,
    ip: &'static str,
    tls: bool,
    cert: &'static [&'static str],
    from: Option<&'static str>,
    rcpt: &'static str,
    expect: &'static str,
}

const fn case(
    note: &'static str,
    ip: &'static str,
    from: Option<&'static str>,
    rcpt: &'static str,
    expect: &'static str,
) -> Case {
    Case {
        note,
        ip,
        tls: false,
        cert: &[],
        from,
        rcpt,
        expect,
    }
}

const fn tls(mut c: Case, cert: &'static [&'static str]) -> Case {
    c.tls = true;
    c.cert = cert;
    c
}

/// `expect` is the reply code + status, then the tenant, attribution and direct-send flag.
fn render(v: &RcptVerdict) -> String {
    let r = v.reply();
    let head = format!("{} {}", r.code, r.status.unwrap_or(""));
    match v {
        RcptVerdict::NoTenant => head,
        RcptVerdict::RestrictedPartner { tenant, connector } => {
            format!("{head} {tenant} {connector}")
        }
        RcptVerdict::DirectSendRefused { tenant }
        | RcptVerdict::SpfTempError { tenant }
        | RcptVerdict::UnknownRecipient { tenant }
        | RcptVerdict::RecipientUnverified { tenant } => format!("{head} {tenant}"),
        RcptVerdict::Accept {
            tenant,
            attribution,
            direct_send,
        } => {
            let who = attribution.connector().unwrap_or("anonymous");
            format!("{head} {tenant} {who} {direct_send:?}")
        }
    }
}

const CASES: &[Case] = &[
    // Row 1
    case(
        "unknown domain is never relayed",
        "192.0.2.10",
        Some("contoso.com"),
        "example.org",
        "550 5.7.64",
    ),
    case(
        "subdomain without match_subdomains",
        "1.1.1.1",
        Some("x.org"),
        "sub.contoso.com",
        "550 5.7.64",
    ),
    // Row 5 and attribution
    case(
        "foreign sender, anonymous",
        "1.1.1.1",
        Some("x.org"),
        "contoso.com",
        "250 2.1.5 contoso anonymous No",
    ),
    case(
        "subdomain with match_subdomains",
        "1.1.1.1",
        Some("x.org"),
        "a.b.contoso.net",
        "250 2.1.5 contoso anonymous No",
    ),
    case(
        "child domain of another tenant wins",
        "1.1.1.1",
        Some("x.org"),
        "wg.contoso.net",
        "250 2.1.5 woodgrove anonymous No",
    ),
    case(
        "longest prefix wins",
        "192.0.2.10",
        Some("contoso.com"),
        "contoso.com",
        "250 2.1.5 contoso onprem-host No",
    ),
    case(
        "shorter prefix when the longer misses",
        "192.0.2.11",
        Some("contoso.com"),
        "contoso.com",
        "250 2.1.5 contoso onprem-net No",
    ),
    case(
        "tie breaks by name",
        "172.16.5.1",
        Some("contoso.com"),
        "contoso.com",
        "250 2.1.5 contoso a-tie No",
    ),
    case(
        "IPv6 CIDR",
        "2001:db8::25",
        Some("contoso.com"),
        "contoso.com",
        "250 2.1.5 contoso v6 No",
    ),
    case(
        "IPv4-mapped IPv6 peer",
        "::ffff:192.0.2.10",
        Some("contoso.com"),
        "contoso.com",
        "250 2.1.5 contoso onprem-host No",
    ),
    tls(
        case(
            "certificate beats IP",
            "192.0.2.10",
            Some("contoso.com"),
            "contoso.com",
            "250 2.1.5 contoso z-cert No",
        ),
        &["mx1.relay.contoso.com"],
    ),
    tls(
        case(
            "wildcard covers one label only",
            "1.1.1.1",
            Some("contoso.com"),
            "contoso.com",
            "550 5.7.68 contoso",
        ),
        &["a.mx1.relay.contoso.com"],
    ),
    tls(
        case(
            "require_tls met",
            "198.51.100.7",
            Some("contoso.com"),
            "contoso.com",
            "250 2.1.5 contoso tls-only No",
        ),
        &[],
    ),
    case(
        "require_tls not met",
        "198.51.100.7",
        Some("contoso.com"),
        "contoso.com",
        "550 5.7.68 contoso",
    ),
    case(
        "disabled connector never attributes",
        "203.0.113.9",
        Some("contoso.com"),
        "contoso.com",
        "550 5.7.68 contoso",
    ),
    case(
        "sender-domain scope matches subdomain",
        "10.1.2.3",
        Some("mail.partner.example"),
        "contoso.com",
        "250 2.1.5 contoso scoped No",
    ),
    case(
        "sender-domain scope excludes others",
        "10.1.2.3",
        Some("contoso.com"),
        "contoso.com",
        "550 5.7.68 contoso",
    ),
    case(
        "null sender matches only *",
        "10.1.2.3",
        None,
        "contoso.com",
        "250 2.1.5 contoso anonymous No",
    ),
    // Row 3
    case(
        "direct send refused",
        "1.1.1.1",
        Some("contoso.com"),
        "contoso.com",
        "550 5.7.68 contoso",
    ),
    case(
        "direct send from subdomain of match_subdomains domain",
        "1.1.1.1",
        Some("x.contoso.net"),
        "contoso.com",
        "550 5.7.68 contoso",
    ),
    case(
        "P1 subdomain without match_subdomains is foreign",
        "1.1.1.1",
        Some("x.contoso.com"),
        "contoso.com",
        "250 2.1.5 contoso anonymous No",
    ),
    case(
        "null sender is never direct send",
        "1.1.1.1",
        None,
        "contoso.com",
        "250 2.1.5 contoso anonymous No",
    ),
    case(
        "P2-only spoof accepted at RCPT (P1 foreign)",
        "1.1.1.1",
        Some("bulk.example"),
        "contoso.com",
        "250 2.1.5 contoso anonymous No",
    ),
    case(
        "another tenant's domain is not direct send",
        "1.1.1.1",
        Some("fabrikam.com"),
        "contoso.com",
        "250 2.1.5 contoso anonymous No",
    ),
    // Row 4
    case(
        "audit mode accepts and marks",
        "1.1.1.1",
        Some("fabrikam.com"),
        "fabrikam.com",
        "250 2.1.5 fabrikam anonymous Audit",
    ),
    case(
        "off mode records direct send",
        "1.1.1.1",
        Some("woodgrove.com"),
        "woodgrove.com",
        "250 2.1.5 woodgrove anonymous Allowed",
    ),
    // Row 2
    case(
        "restricted partner from the wrong IP",
        "1.1.1.1",
        Some("partner.org"),
        "fabrikam.com",
        "550 5.7.51 fabrikam restricted",
    ),
    case(
        "restricted partner from its IP",
        "198.19.0.1",
        Some("partner.org"),
        "fabrikam.com",
        "250 2.1.5 fabrikam restricted No",
    ),
    case(
        "restriction only for its sender domains",
        "1.1.1.1",
        Some("other.org"),
        "fabrikam.com",
        "250 2.1.5 fabrikam anonymous No",
    ),
    tls(
        case(
            "restricted to cert, no cert",
            "1.1.1.1",
            Some("certpartner.org"),
            "fabrikam.com",
            "550 5.7.51 fabrikam restricted-cert",
        ),
        &[],
    ),
    tls(
        case(
            "restricted to cert, right cert",
            "1.1.1.1",
            Some("certpartner.org"),
            "fabrikam.com",
            "250 2.1.5 fabrikam restricted-cert No",
        ),
        &["mx.certpartner.org"],
    ),
    case(
        "restriction does not apply to the null sender",
        "1.1.1.1",
        None,
        "fabrikam.com",
        "250 2.1.5 fabrikam anonymous No",
    ),
];

#[test]
fn decision_table() {
    let dir = fixture();
    let mut failures = Vec::new();
    for c in CASES {
        let peer = PeerFacts {
            ip: c.ip.parse::<IpAddr>().unwrap(),
            tls: c.tls,
            cert_names: c.cert.iter().map(|s| s.to_string()).collect(),
        };
        let facts = RcptFacts {
            peer: &peer,
            p1_domain: c.from,
            rcpt_domain: c.rcpt,
            spf_temp_error: false,
            recipient: portcullis_policy::RecipientLookup::NotValidated,
        };
        let got = render(&decide_rcpt(&dir, &facts));
        if got != c.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                c.note, c.expect, got
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn recipients_in_two_tenants_get_separate_decisions() {
    let dir = fixture();
    let peer = PeerFacts {
        ip: "1.1.1.1".parse().unwrap(),
        tls: false,
        cert_names: vec![],
    };
    let a = decide_rcpt(
        &dir,
        &RcptFacts {
            peer: &peer,
            p1_domain: Some("contoso.com"),
            rcpt_domain: "contoso.com",
            spf_temp_error: false,
            recipient: portcullis_policy::RecipientLookup::NotValidated,
        },
    );
    let b = decide_rcpt(
        &dir,
        &RcptFacts {
            peer: &peer,
            p1_domain: Some("contoso.com"),
            rcpt_domain: "woodgrove.com",
            spf_temp_error: false,
            recipient: portcullis_policy::RecipientLookup::NotValidated,
        },
    );
    assert_eq!(render(&a), "550 5.7.68 contoso");
    assert_eq!(render(&b), "250 2.1.5 woodgrove anonymous No");
}

fn data(
    dir: &Directory,
    tenant: &str,
    ds: DirectSend,
    p2: Option<&str>,
    arc: Option<&str>,
    dkim: bool,
) -> DataVerdict {
    let auth = AuthFacts {
        evaluated: true,
        from_domain: p2.map(str::to_string),
        arc: if arc.is_some() {
            AuthResult::Pass
        } else {
            AuthResult::None
        },
        arc_sealer: arc.map(str::to_string),
        dkim: if dkim {
            vec![DkimFact {
                result: AuthResult::Pass,
                domain: "contoso.com".into(),
                selector: "s".into(),
            }]
        } else {
            vec![]
        },
        ..Default::default()
    };
    data_with(dir, tenant, ds, &auth, &Attribution::Anonymous)
}

fn data_with(
    dir: &Directory,
    tenant: &str,
    ds: DirectSend,
    auth: &AuthFacts,
    who: &Attribution,
) -> DataVerdict {
    decide_data(
        dir,
        &DataFacts {
            tenant,
            attribution: who,
            direct_send: ds,
            p1_domain: Some("contoso.com"),
            auth,
            behind_filter: false,
        },
    )
}

fn accepted(v: &DataVerdict) -> bool {
    matches!(v, DataVerdict::Accept { .. })
}

#[test]
fn end_of_data_decisions() {
    let mut t = tenant("contoso", RejectDirectSend::On);
    t.settings.direct_send_scope = DirectSendScope::EnvelopeAndHeader;
    t.settings.arc_trusted_sealers = vec!["forwarder.example".into()];
    let mut audit = tenant("fabrikam", RejectDirectSend::Audit);
    audit.settings.direct_send_scope = DirectSendScope::EnvelopeAndHeader;
    let mut dkimco = tenant("dkimco", RejectDirectSend::On);
    dkimco.settings.direct_send_allow_dkim_aligned = true;
    let dir = Directory::build(
        1,
        vec![t, audit, tenant("woodgrove", RejectDirectSend::On), dkimco],
        vec![
            dom("contoso", "contoso.com", false),
            dom("fabrikam", "fabrikam.com", false),
            dom("woodgrove", "woodgrove.com", false),
            dom("dkimco", "dkimco.com", false),
        ],
        vec![],
        vec![],
    );
    // With exemptions configured, row 3 moved to DATA: an ARC seal from a trusted sealer exempts.
    let peer = PeerFacts {
        ip: "1.1.1.1".parse().unwrap(),
        tls: false,
        cert_names: vec![],
    };
    let v = decide_rcpt(
        &dir,
        &RcptFacts {
            peer: &peer,
            p1_domain: Some("contoso.com"),
            rcpt_domain: "contoso.com",
            spf_temp_error: false,
            recipient: portcullis_policy::RecipientLookup::NotValidated,
        },
    );
    assert!(matches!(
        v,
        RcptVerdict::Accept {
            direct_send: DirectSend::Deferred,
            ..
        }
    ));
    assert_eq!(
        data(&dir, "contoso", DirectSend::Deferred, None, None, false),
        DataVerdict::DirectSendRefused { header: false }
    );
    assert_eq!(
        data(
            &dir,
            "contoso",
            DirectSend::Deferred,
            None,
            Some("evil.example"),
            false
        ),
        DataVerdict::DirectSendRefused { header: false }
    );
    assert!(matches!(
        data(
            &dir,
            "contoso",
            DirectSend::Deferred,
            None,
            Some("forwarder.example"),
            false
        ),
        DataVerdict::Accept {
            exemption: Some(_),
            ..
        }
    ));
    // DKIM alignment only when opted in.
    assert_eq!(
        data(&dir, "contoso", DirectSend::Deferred, None, None, true),
        DataVerdict::DirectSendRefused { header: false }
    );
    assert!(
        accepted(&data(
            &dir,
            "dkimco",
            DirectSend::Deferred,
            None,
            None,
            true
        )),
        "opted in: aligned DKIM exempts"
    );
    assert_eq!(
        data(&dir, "dkimco", DirectSend::Deferred, None, None, false),
        DataVerdict::DirectSendRefused { header: false }
    );
    // P2 check with envelope-and-header scope.
    let r = data(
        &dir,
        "contoso",
        DirectSend::No,
        Some("contoso.com"),
        None,
        false,
    );
    assert_eq!(r, DataVerdict::DirectSendRefused { header: true });
    assert_eq!(r.reply().unwrap().status, Some("5.7.68"));
    assert_eq!(
        data(
            &dir,
            "contoso",
            DirectSend::No,
            Some("other.org"),
            None,
            false
        )
        .reply(),
        None
    );
    // The envelope scope (woodgrove) leaves P2 to DMARC.
    assert_eq!(
        data(
            &dir,
            "woodgrove",
            DirectSend::No,
            Some("woodgrove.com"),
            None,
            false
        )
        .reply(),
        None
    );
    // Audit mode marks a header spoof instead of refusing.
    assert!(matches!(
        data(
            &dir,
            "fabrikam",
            DirectSend::No,
            Some("fabrikam.com"),
            None,
            false
        ),
        DataVerdict::Accept {
            direct_send: true,
            audit: Some(AuditReason::Header),
            exemption: None,
            ..
        }
    ));
}

#[test]
fn verdict_reply_table() {
    let cases = [
        (
            RcptVerdict::NoTenant,
            "550 5.7.64 TenantAttribution; Relay Access Denied",
        ),
        (
            RcptVerdict::RestrictedPartner {
                tenant: "t".into(),
                connector: "c".into(),
            },
            "550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set",
        ),
        (
            RcptVerdict::DirectSendRefused { tenant: "t".into() },
            "550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources",
        ),
        (
            RcptVerdict::Accept {
                tenant: "t".into(),
                attribution: Attribution::Anonymous,
                direct_send: DirectSend::No,
            },
            "250 2.1.5 Recipient OK",
        ),
    ];
    for (v, want) in cases {
        assert_eq!(v.reply().to_string(), want);
    }
}

#[test]
fn authentication_actions() {
    let mut junk = tenant("contoso", RejectDirectSend::Off);
    junk.settings.spoof_action = SpoofAction::Junk;
    let mut quarantine = tenant("fabrikam", RejectDirectSend::Off);
    quarantine.settings.spoof_action = SpoofAction::Quarantine;
    let mut lax = tenant("woodgrove", RejectDirectSend::Off);
    lax.settings.honor_dmarc = false;
    lax.settings.spoof_action = SpoofAction::None;
    let dir = Directory::build(
        1,
        vec![junk, quarantine, lax],
        vec![
            dom("contoso", "contoso.com", false),
            dom("fabrikam", "fabrikam.com", false),
            dom("woodgrove", "woodgrove.com", false),
        ],
        vec![],
        vec![],
    );
    let anon = Attribution::Anonymous;
    let onprem = Attribution::Connector {
        name: "onprem".into(),
        kind: ConnectorType::OnPremises,
        matched_by: MatchedBy::Ip(32),
    };
    let dmarc = |domain: &str, policy: DmarcPolicy| AuthFacts {
        evaluated: true,
        from_domain: Some(domain.into()),
        dmarc: AuthResult::Fail,
        dmarc_policy: policy,
        spf: AuthResult::Fail,
        ..Default::default()
    };
    // p=reject failure: refused with the domain in the text, unless the tenant ignores DMARC.
    let v = data_with(
        &dir,
        "contoso",
        DirectSend::No,
        &dmarc("bank.example", DmarcPolicy::Reject),
        &anon,
    );
    assert_eq!(
        v,
        DataVerdict::DmarcRejected {
            domain: "bank.example".into()
        }
    );
    assert_eq!(
        v.reply().unwrap().to_string(),
        "550 5.7.509 Access denied, sending domain bank.example does not pass DMARC verification and has a DMARC policy of reject"
    );
    assert!(accepted(&data_with(
        &dir,
        "woodgrove",
        DirectSend::No,
        &dmarc("bank.example", DmarcPolicy::Reject),
        &anon
    )));
    // Attributed mail is vouched for by its connector.
    assert!(accepted(&data_with(
        &dir,
        "contoso",
        DirectSend::No,
        &dmarc("bank.example", DmarcPolicy::Reject),
        &onprem
    )));
    // A trusted ARC sealer overrides the DMARC failure.
    let mut arc = dmarc("bank.example", DmarcPolicy::Reject);
    arc.arc = AuthResult::Pass;
    arc.arc_sealer = Some("lists.example".into());
    let mut sealed = tenant("sealed", RejectDirectSend::Off);
    sealed.settings.arc_trusted_sealers = vec!["lists.example".into()];
    let dir2 = Directory::build(
        1,
        vec![sealed],
        vec![dom("sealed", "sealed.com", false)],
        vec![],
        vec![],
    );
    assert!(matches!(
        data_with(&dir2, "sealed", DirectSend::No, &arc, &anon),
        DataVerdict::Accept {
            compauth: CompAuth { reason: 130, .. },
            ..
        }
    ));
    // p=quarantine failure: quarantine action.
    let v = data_with(
        &dir,
        "contoso",
        DirectSend::No,
        &dmarc("bank.example", DmarcPolicy::Quarantine),
        &anon,
    );
    assert!(
        matches!(&v, DataVerdict::Accept { actions, .. } if actions == &[AuthAction::DmarcQuarantine]),
        "{v:?}"
    );
    // Own-domain spoof failing implicit authentication: the tenant's spoof action.
    let spoof = |d: &str| AuthFacts {
        evaluated: true,
        from_domain: Some(d.into()),
        spf: AuthResult::Fail,
        ..Default::default()
    };
    let v = data_with(
        &dir,
        "contoso",
        DirectSend::No,
        &spoof("contoso.com"),
        &anon,
    );
    assert!(
        matches!(&v, DataVerdict::Accept { actions, compauth, .. } if actions == &[AuthAction::SpoofJunk] && compauth.reason == 601),
        "{v:?}"
    );
    let v = data_with(
        &dir,
        "fabrikam",
        DirectSend::No,
        &spoof("fabrikam.com"),
        &anon,
    );
    assert!(
        matches!(&v, DataVerdict::Accept { actions, .. } if actions == &[AuthAction::SpoofQuarantine]),
        "{v:?}"
    );
    let v = data_with(
        &dir,
        "woodgrove",
        DirectSend::No,
        &spoof("woodgrove.com"),
        &anon,
    );
    assert!(
        matches!(&v, DataVerdict::Accept { actions, .. } if actions.is_empty()),
        "{v:?}"
    );
    // A foreign domain failing implicitly is not a spoof of ours.
    let v = data_with(
        &dir,
        "contoso",
        DirectSend::No,
        &spoof("other.example"),
        &anon,
    );
    assert!(
        matches!(&v, DataVerdict::Accept { actions, compauth, .. } if actions.is_empty() && compauth.reason == 1),
        "{v:?}"
    );
    // DNS trouble defers anonymous mail, never refuses it.
    let temp = AuthFacts {
        evaluated: true,
        from_domain: Some("x.example".into()),
        dmarc: AuthResult::TempError,
        ..Default::default()
    };
    let v = data_with(&dir, "contoso", DirectSend::No, &temp, &anon);
    assert_eq!(v, DataVerdict::TempError);
    assert_eq!(v.reply().unwrap().code, 451);
    assert!(accepted(&data_with(
        &dir,
        "contoso",
        DirectSend::No,
        &temp,
        &onprem
    )));
}

#[test]
fn spf_temp_error_defers_anonymous_recipients_only() {
    let dir = fixture();
    let peer = PeerFacts {
        ip: "1.1.1.1".parse().unwrap(),
        tls: false,
        cert_names: vec![],
    };
    let facts = |peer, from, rcpt| RcptFacts {
        peer,
        p1_domain: Some(from),
        rcpt_domain: rcpt,
        spf_temp_error: true,
        recipient: portcullis_policy::RecipientLookup::NotValidated,
    };
    let v = decide_rcpt(&dir, &facts(&peer, "x.org", "contoso.com"));
    assert_eq!(
        v.reply().to_string(),
        "451 4.7.24 SPF validation error (temporary DNS failure), please try again later"
    );
    let onprem = PeerFacts {
        ip: "192.0.2.10".parse().unwrap(),
        tls: false,
        cert_names: vec![],
    };
    assert_eq!(
        decide_rcpt(&dir, &facts(&onprem, "x.org", "contoso.com"))
            .reply()
            .code,
        250
    );
    // Direct send is refused outright: no need to wait for SPF.
    let v = decide_rcpt(&dir, &facts(&peer, "contoso.com", "contoso.com"));
    assert_eq!(v.reply().status, Some("5.7.68"));
}

/// Recipient validation: which domains are validated and how, what the list knows, and where
/// its verdict stands among the table's rows.
#[test]
fn recipient_validation_after_the_policy_rows() {
    let mut contoso = tenant("contoso", RejectDirectSend::On);
    contoso.settings.recipient_validation = RecipientValidation::List;
    let mut relay = dom("contoso", "relay.contoso.com", false);
    relay.domain_type = DomainType::InternalRelay;
    let mut verified = dom("contoso", "contoso.org", false);
    verified.recipient_validation = Some(RecipientValidation::Verify);
    let mut open = dom("contoso", "contoso.net", true);
    open.recipient_validation = Some(RecipientValidation::Off);
    let dir = Directory::build(
        1,
        vec![contoso, tenant("woodgrove", RejectDirectSend::Off)],
        vec![
            dom("contoso", "contoso.com", false),
            relay,
            verified,
            open,
            dom("woodgrove", "woodgrove.com", false),
        ],
        vec![],
        vec![],
    )
    .with_recipients(
        [(
            "contoso".to_string(),
            std::sync::Arc::new(RecipientList::new(
                3,
                ["bob@contoso.com".to_string(), "@contoso.org".to_string()],
            )),
        )]
        .into(),
    );
    assert_eq!(
        dir.recipient_validation("contoso.com"),
        RecipientValidation::List
    );
    assert_eq!(
        dir.recipient_validation("relay.contoso.com"),
        RecipientValidation::Off
    );
    assert_eq!(
        dir.recipient_validation("contoso.org"),
        RecipientValidation::Verify
    );
    assert_eq!(
        dir.recipient_validation("a.contoso.net"),
        RecipientValidation::Off
    );
    assert_eq!(
        dir.recipient_validation("woodgrove.com"),
        RecipientValidation::Off
    );
    assert_eq!(
        dir.recipient_validation("nobody.example"),
        RecipientValidation::Off
    );
    // The list: exact, subaddressed, catch-all; never another tenant's.
    assert!(dir.recipient_listed("contoso", "bob@contoso.com"));
    assert!(dir.recipient_listed("contoso", "bob+news@contoso.com"));
    assert!(dir.recipient_listed("contoso", "anyone@contoso.org"));
    assert!(!dir.recipient_listed("contoso", "eve@contoso.com"));
    assert!(!dir.recipient_listed("contoso", "+x@contoso.com"));
    assert!(!dir.recipient_listed("woodgrove", "bob@contoso.com"));

    let peer = PeerFacts {
        ip: "1.1.1.1".parse().unwrap(),
        tls: false,
        cert_names: vec![],
    };
    let v = |from: &str, rcpt: &str, recipient, spf_temp_error| {
        render(&decide_rcpt(
            &dir,
            &RcptFacts {
                peer: &peer,
                p1_domain: Some(from),
                rcpt_domain: rcpt,
                spf_temp_error,
                recipient,
            },
        ))
    };
    use RecipientLookup::*;
    assert_eq!(
        v("x.org", "contoso.com", Unknown, false),
        "550 5.4.1 contoso"
    );
    assert_eq!(
        v("x.org", "contoso.com", Unavailable, false),
        "450 4.4.3 contoso"
    );
    assert_eq!(
        v("x.org", "contoso.com", Known, false),
        "250 2.1.5 contoso anonymous No"
    );
    // Direct send is refused as such, whoever the recipient is.
    assert_eq!(
        v("contoso.com", "contoso.com", Unknown, false),
        "550 5.7.68 contoso"
    );
    // An unknown recipient needs no DNS: refused even while SPF cannot be evaluated.
    assert_eq!(
        v("x.org", "contoso.com", Unknown, true),
        "550 5.4.1 contoso"
    );
    assert_eq!(v("x.org", "contoso.com", Known, true), "451 4.7.24 contoso");
    assert_eq!(
        decide_rcpt(
            &dir,
            &RcptFacts {
                peer: &peer,
                p1_domain: None,
                rcpt_domain: "contoso.com",
                spf_temp_error: false,
                recipient: Unknown,
            }
        )
        .reply()
        .to_string(),
        "550 5.4.1 Recipient address rejected: Access denied"
    );
}
