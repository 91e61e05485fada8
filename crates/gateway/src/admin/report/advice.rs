//! What the report advises: connectors for the likely-legitimate sources (or for a source the
//! administrator names, with the reasons for and against), trusted ARC sealers for forwarded
//! mail, and the readiness assessment in plain language.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use portcullis_policy::Connector;

use crate::api_types::*;

/// What the suggestions need beyond the report's columns.
pub struct SourceExtra {
    pub ips: Vec<IpAddr>,
    pub sealers: Vec<String>,
    /// Every message of the source came with a trusted client certificate.
    pub all_tls_certs: bool,
}

/// The smallest set of connectors covering the likely-legitimate sources: one certificate
/// connector per set of certificate names where every message presented a trusted certificate,
/// and one IP connector whose ranges are the sources' addresses merged into the narrowest CIDRs.
pub fn suggest(
    report: &DirectSendReport,
    extra: &[SourceExtra],
    existing: &[Connector],
) -> SuggestResponse {
    let tenant = &report.tenant;
    let unique = |base: &str, taken: &mut Vec<String>| unique_name(base, existing, taken);
    let mut taken = Vec::new();
    let mut out = SuggestResponse::default();
    let mut ip_sources: Vec<(&ReportSource, &SourceExtra)> = Vec::new();
    let mut domains: BTreeSet<String> = BTreeSet::new();
    for (s, x) in report.sources.iter().zip(extra) {
        match s.verdict.as_str() {
            "likely-legitimate" if x.all_tls_certs => {
                let name = unique("direct-send-cert", &mut taken);
                let mut cmd = format!("portcullis connector add {name} --tenant {tenant}");
                for c in &s.cert_names {
                    cmd.push_str(&format!(" --tls-cert-name {c}"));
                }
                for d in &s.p1_domains {
                    cmd.push_str(&format!(" --sender-domain {d}"));
                }
                out.connectors.push(SuggestedConnector {
                    name,
                    sender_ips: vec![],
                    tls_cert_names: s.cert_names.clone(),
                    sender_domains: s.p1_domains.clone(),
                    covers: vec![s.source.clone()],
                    messages: s.messages,
                    command: cmd,
                });
            }
            "likely-legitimate" => {
                ip_sources.push((s, x));
                domains.extend(s.p1_domains.iter().cloned());
            }
            "likely-forwarded" => {
                for sealer in &x.sealers {
                    let cmd = format!(
                        "portcullis org set --tenant {tenant} --arc-trusted-sealer {sealer}"
                    );
                    if !out.other.contains(&cmd) {
                        out.other.push(cmd);
                    }
                }
            }
            _ => {}
        }
    }
    if !ip_sources.is_empty() {
        let hosts: Vec<IpNet> = ip_sources
            .iter()
            .flat_map(|(_, x)| x.ips.iter().map(|ip| IpNet::from(*ip)))
            .collect();
        let cidrs: Vec<String> = IpNet::aggregate(&hosts)
            .iter()
            .map(|n| n.to_string())
            .collect();
        let name = unique("direct-send-sources", &mut taken);
        let mut cmd = format!("portcullis connector add {name} --tenant {tenant}");
        for c in &cidrs {
            cmd.push_str(&format!(" --sender-ip {c}"));
        }
        for d in &domains {
            cmd.push_str(&format!(" --sender-domain {d}"));
        }
        out.connectors.push(SuggestedConnector {
            name,
            sender_ips: cidrs,
            tls_cert_names: vec![],
            sender_domains: domains.iter().cloned().collect(),
            covers: ip_sources.iter().map(|(s, _)| s.source.clone()).collect(),
            messages: ip_sources.iter().map(|(s, _)| s.messages).sum(),
            command: cmd,
        });
    }
    out
}

/// `base`, or `base-2`, `base-3`... : a connector name neither existing nor taken by this plan.
fn unique_name(base: &str, existing: &[Connector], taken: &mut Vec<String>) -> String {
    let mut name = base.to_string();
    let mut n = 2;
    while existing.iter().any(|c| c.name == name) || taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    taken.push(name.clone());
    name
}

/// The evidence that moved a verdict (non-zero weights), and what SPF said in any case, signed:
/// `+3 SPF or DKIM passes …`.
fn evidence_lines(s: &ReportSource) -> Vec<String> {
    s.evidence
        .iter()
        .filter(|e| e.weight != 0 || e.signal == "spf")
        .map(|e| format!("{:+} {}", e.weight, e.detail))
        .collect()
}

/// A connector for the address or network the administrator named (`source`), whatever the
/// report's verdicts, with the reasons it is or is not recommended: what the report says of the
/// sources inside it, a range broader than the traffic or than a connector should vouch for, and
/// an existing connector that already covers it.
pub fn suggest_for_source(
    report: &DirectSendReport,
    extra: &[SourceExtra],
    existing: &[Connector],
    source: IpNet,
) -> SuggestResponse {
    let tenant = &report.tenant;
    let mut reasons = Vec::new();
    let mut recommended = true;
    let inside: Vec<(&ReportSource, &SourceExtra)> = report
        .sources
        .iter()
        .zip(extra)
        .filter(|(_, x)| x.ips.iter().any(|ip| source.contains(ip)))
        .collect();
    let messages: u64 = inside.iter().map(|(s, _)| s.messages).sum();
    if is_broad_range(&source) {
        recommended = false;
        reasons.push(format!(
            "{source} covers more than a /16 (IPv4) or /32 (IPv6): every spoof from that part of the internet would be attributed to the connector (creating it needs --allow-broad-range)"
        ));
    }
    for c in existing {
        if c.sender_ips.iter().any(|n| n.contains(&source)) {
            recommended = false;
            reasons.push(format!(
                "connector {} already vouches for {source}: its mail is attributed, not direct send",
                c.name
            ));
        }
    }
    if inside.is_empty() {
        recommended = false;
        reasons.push(format!(
            "no direct-send mail from {source} since {}: the connector would change nothing seen so far — keep auditing and look again",
            report.since
        ));
    }
    for (s, x) in &inside {
        let within = x.ips.iter().filter(|ip| source.contains(*ip)).count();
        if within < x.ips.len() {
            reasons.push(format!(
                "only {within} of the {} addresses of {} are inside {source}; its counts below are the whole source's",
                x.ips.len(),
                s.source
            ));
        }
        let why = evidence_lines(s);
        let head = format!(
            "{} ({} message(s), score {:+}): {}",
            s.source, s.messages, s.score, s.verdict
        );
        match s.verdict.as_str() {
            "likely-legitimate" => reasons.push(format!("{head} — {}", why.join("; "))),
            "likely-forwarded" => {
                recommended = false;
                reasons.push(format!(
                    "{head}: forwarded mail; trust its ARC sealer ({}) rather than the forwarder's addresses",
                    x.sealers.join(", ")
                ));
            }
            "likely-spoofing" => {
                recommended = false;
                reasons.push(format!(
                    "{head} — {}; a connector would deliver its mail as your own",
                    why.join("; ")
                ));
            }
            _ => {
                recommended = false;
                reasons.push(format!(
                    "{head} — {}; look at trace {} before deciding",
                    why.join("; "),
                    s.sample_trace_ids.join(", ")
                ));
            }
        }
    }
    // A range wider than the addresses seen vouches for addresses nobody has looked at.
    let seen: Vec<IpNet> = inside
        .iter()
        .flat_map(|(_, x)| {
            x.ips
                .iter()
                .filter(|ip| source.contains(*ip))
                .map(|ip| IpNet::from(*ip))
        })
        .collect();
    let narrow = IpNet::aggregate(&seen);
    if !seen.is_empty() && narrow != [source] {
        let list: Vec<String> = narrow.iter().map(|n| n.to_string()).collect();
        reasons.push(format!(
            "{source} is wider than the {} address(es) seen sending ({}): a narrower range vouches for less",
            seen.len(),
            list.join(", ")
        ));
    }
    if recommended {
        reasons.push(format!(
            "recommended: every source inside {source} is likely legitimate; with the connector its mail is attributed and enforcement will not refuse it"
        ));
    }
    let domains: BTreeSet<String> = inside
        .iter()
        .flat_map(|(s, _)| s.p1_domains.iter().cloned())
        .collect();
    let base = format!(
        "direct-send-{}",
        source.to_string().replace(['/', ':', '.'], "-")
    );
    let name = unique_name(&base, existing, &mut Vec::new());
    let mut command =
        format!("portcullis connector add {name} --tenant {tenant} --sender-ip {source}");
    for d in &domains {
        command.push_str(&format!(" --sender-domain {d}"));
    }
    let covers: Vec<String> = inside.iter().map(|(s, _)| s.source.clone()).collect();
    SuggestResponse {
        connectors: vec![SuggestedConnector {
            name,
            sender_ips: vec![source.to_string()],
            tls_cert_names: vec![],
            sender_domains: domains.into_iter().collect(),
            covers: covers.clone(),
            messages,
            command,
        }],
        other: vec![],
        applied: vec![],
        assessment: Some(SourceAssessment {
            source: source.to_string(),
            recommended,
            covers,
            messages,
            reasons,
        }),
    }
}

/// The readiness assessment: plain language over the report and the suggestions, each source
/// with the evidence its verdict rests on.
pub fn readiness(report: &DirectSendReport, plan: &SuggestResponse) -> Readiness {
    let tenant = &report.tenant;
    let mut items = Vec::new();
    let command_for = |source: &str| {
        plan.connectors
            .iter()
            .find(|c| c.covers.iter().any(|s| s == source))
            .map(|c| c.command.clone())
    };
    let (mut legit, mut spoof, mut other) = (0u64, 0u64, 0u64);
    for s in &report.sources {
        let domains = s.p1_domains.join(", ");
        let why = evidence_lines(s);
        let because = if why.is_empty() {
            "no evidence either way".to_string()
        } else {
            why.join("; ")
        };
        let (explanation, command) = match s.verdict.as_str() {
            "likely-legitimate" => {
                legit += s.would_refuse;
                (
                    format!(
                        "{} message(s) as {domains}, probably a legitimate sender of yours (a printer, an application, a SaaS service): {because}. \
                         Enforcement would refuse them; add a connector first.",
                        s.messages
                    ),
                    command_for(&s.source),
                )
            }
            "likely-forwarded" => {
                other += s.would_refuse;
                (
                    format!(
                        "{} message(s) as {domains}, forwarded mail (a list or forwarding service): {because}. \
                         Trust its sealer to keep it.",
                        s.messages
                    ),
                    plan.other.first().cloned(),
                )
            }
            "likely-spoofing" => {
                spoof += s.would_refuse;
                (
                    format!(
                        "{} message(s) as {domains}, likely spoofing: {because}. Enforcement will refuse them — \
                         that is the point.",
                        s.messages
                    ),
                    None,
                )
            }
            _ => {
                other += s.would_refuse;
                (
                    format!(
                        "{} message(s) as {domains}, not clear either way: {because}. Look at trace {} and, \
                         if it is yours, see what a connector for it would mean.",
                        s.messages,
                        s.sample_trace_ids.join(", ")
                    ),
                    Some(format!(
                        "portcullis report direct-send --tenant {tenant} --suggest-connectors --source {}",
                        s.source
                    )),
                )
            }
        };
        items.push(ReadinessItem {
            source: s.source.clone(),
            verdict: s.verdict.clone(),
            messages: s.messages,
            explanation,
            command,
        });
    }
    let total = report.summary.would_refuse;
    let assessment = if report.summary.messages == 0 {
        format!(
            "No direct-send traffic since {}: enabling reject direct send (now {}) would refuse nothing seen so far.",
            report.since, report.mode
        )
    } else {
        format!(
            "Since {}, {} direct-send message(s) came from {} source(s); reject direct send is {}. Enabling it would \
             refuse {total} of them: {legit} from likely-legitimate sources (add the connectors below first), \
             {spoof} from likely-spoofing sources, {other} others to review.",
            report.since, report.summary.messages, report.summary.sources, report.mode
        )
    };
    Readiness {
        tenant: report.tenant.clone(),
        mode: report.mode.clone(),
        since: report.since.clone(),
        assessment,
        would_refuse: total,
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> (DirectSendReport, Vec<SourceExtra>) {
        let source = ReportSource {
            source: "192.0.2.0/24".into(),
            ips: vec!["192.0.2.1".into(), "192.0.2.2".into()],
            p1_domains: vec!["contoso.com".into()],
            messages: 10,
            verdict: "likely-spoofing".into(),
            score: -2,
            ..Default::default()
        };
        let extra = SourceExtra {
            ips: vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()],
            sealers: vec![],
            all_tls_certs: false,
        };
        let report = DirectSendReport {
            tenant: "contoso".into(),
            since: "2026-11-07T00:00:00Z".into(),
            sources: vec![source],
            ..Default::default()
        };
        (report, vec![extra])
    }

    /// A named source's assessment: the sources inside it and what they are, a partial overlap
    /// with a grouped source said, a broad range and no traffic not recommended.
    #[test]
    fn a_named_source_is_assessed() {
        let (r, x) = report();
        let a = suggest_for_source(&r, &x, &[], "192.0.2.1/32".parse().unwrap());
        let assessment = a.assessment.unwrap();
        assert!(!assessment.recommended);
        let reasons = assessment.reasons.join("\n");
        assert!(
            reasons.contains("only 1 of the 2 addresses of 192.0.2.0/24"),
            "{reasons}"
        );
        assert!(reasons.contains("likely-spoofing"), "{reasons}");
        assert_eq!(a.connectors[0].sender_domains, ["contoso.com"]);
        assert_eq!(a.connectors[0].name, "direct-send-192-0-2-1-32");

        let broad = suggest_for_source(&r, &x, &[], "192.0.0.0/8".parse().unwrap());
        let reasons = broad.assessment.unwrap().reasons.join("\n");
        assert!(reasons.contains("covers more than a /16"), "{reasons}");

        let none = suggest_for_source(&r, &x, &[], "198.51.100.7/32".parse().unwrap());
        let none = none.assessment.unwrap();
        assert!(!none.recommended);
        assert!(
            none.reasons[0].contains("no direct-send mail"),
            "{:?}",
            none.reasons
        );
    }
}
