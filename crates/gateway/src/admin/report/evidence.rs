//! What one address's direct-send traffic says about its sender, and the verdict that follows.
//!
//! Authentication alone misjudges the commonest legitimate direct sender: a printer or scanner
//! that the domain's SPF record never listed fails SPF exactly like a spoofer. So the verdict
//! weighs more evidence, each piece named in the report with its weight: the authentication
//! results (where `none` — nothing published — counts neither way, and only a failure counts
//! against), a trusted client certificate, a private address, reverse DNS inside the tenant's
//! domains that resolves back, the same address over days, a stable HELO name, and the pattern
//! of recipients and volume. Pure: the caller gathers the traffic and the DNS answers.

use std::collections::BTreeSet;
use std::net::IpAddr;

use portcullis_policy::names::is_same_or_subdomain;
use portcullis_store::{SourceAgg, TraceRecord};

use crate::api_types::{Counts, Evidence};

#[cfg(test)]
const DAY_US: i64 = 86_400_000_000;

/// What one address (or a group of alike addresses) sent in the report's period: the store's
/// mergeable aggregate (`portcullis_store::SourceAgg`, what the rollups hold) and the addresses.
#[derive(Default)]
pub(super) struct Agg {
    pub ips: BTreeSet<IpAddr>,
    pub traffic: SourceAgg,
}

impl std::ops::Deref for Agg {
    type Target = SourceAgg;
    fn deref(&self) -> &SourceAgg {
        &self.traffic
    }
}

impl Agg {
    /// One address's traffic.
    pub fn of(ip: IpAddr, traffic: SourceAgg) -> Agg {
        Agg {
            ips: BTreeSet::from([ip]),
            traffic,
        }
    }

    pub fn add(&mut self, r: &TraceRecord, ip: IpAddr) {
        self.ips.insert(ip);
        self.traffic.add(r);
    }

    pub fn merge(&mut self, o: Agg) {
        self.ips.extend(o.ips);
        self.traffic.merge(o.traffic);
    }
}

/// The reverse DNS of an address, as the report found it.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Rdns {
    /// Not looked up (only the busiest addresses are).
    NotLooked,
    /// No PTR record (or the lookup failed).
    None,
    /// The resolver did not answer within the report's budget.
    Unanswered,
    /// The PTR name, and whether it resolves back to the address.
    Name { name: String, confirmed: bool },
}

impl Rdns {
    pub fn name(&self) -> Option<String> {
        match self {
            Rdns::Name { name, .. } => Some(name.clone()),
            _ => None,
        }
    }
}

/// A verdict with its score and evidence.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Classified {
    pub verdict: &'static str,
    pub score: i32,
    pub evidence: Vec<Evidence>,
}

impl Classified {
    /// The evidence's signals and weights: addresses of one network with the same signature (and
    /// verdict) behave alike and are listed as one source.
    pub fn signature(&self) -> Vec<(String, i32)> {
        self.evidence
            .iter()
            .map(|e| (e.signal.clone(), e.weight))
            .collect()
    }
}

/// At or above: `likely-legitimate`; at or below [`SPOOFING`]: `likely-spoofing`.
pub(super) const LEGITIMATE: i32 = 3;
pub(super) const SPOOFING: i32 = -2;

/// The private range an address is in (RFC 1918, RFC 4193 unique local, link-local), if any.
/// Loopback is not counted: mail from the gateway's own host says nothing about a sender.
pub(super) fn private_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            match o {
                [10, ..] => Some("10.0.0.0/8"),
                [172, b, ..] if (16..32).contains(&b) => Some("172.16.0.0/12"),
                [192, 168, ..] => Some("192.168.0.0/16"),
                [169, 254, ..] => Some("169.254.0.0/16"),
                _ => None,
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if first & 0xfe00 == 0xfc00 {
                Some("fc00::/7")
            } else if first & 0xffc0 == 0xfe80 {
                Some("fe80::/10")
            } else {
                None
            }
        }
    }
}

/// `pass 3, fail 1` (most frequent first), or `-`.
fn counts(c: &Counts) -> String {
    let mut v: Vec<(&String, &u64)> = c.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn count(c: &Counts, key: &str) -> u64 {
    c.get(key).copied().unwrap_or(0)
}

/// The one of `domains` that `name` is or is below, if any.
fn within(name: &str, domains: &[String]) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    domains
        .iter()
        .find(|d| is_same_or_subdomain(&name, d))
        .cloned()
}

/// Weighs an address's traffic. `domains` are the tenant's accepted domains.
pub(super) fn classify(agg: &Agg, rdns: &Rdns, domains: &[String]) -> Classified {
    let n = agg.messages.max(1);
    let mut ev: Vec<Evidence> = Vec::new();
    let mut add = |signal: &str, weight: i32, detail: String| {
        ev.push(Evidence {
            signal: signal.to_string(),
            weight,
            detail,
        })
    };
    let majority = |k: u64| k * 2 > n;
    let owners = agg.p1.iter().cloned().collect::<Vec<_>>().join(", ");

    // Authentication: a pass proves the domain's owner vouches for the sender; a failure is the
    // owner saying it does not (but a forgotten printer fails too); `none` says nothing.
    let authenticated = agg.passing * 2 >= n;
    let forwarded = !authenticated && agg.arc_pass * 2 >= n;
    let results = format!(
        "SPF {}; DKIM {}; DMARC {}",
        counts(&agg.spf),
        counts(&agg.dkim),
        counts(&agg.dmarc)
    );
    if authenticated {
        add(
            "authentication",
            3,
            format!(
                "SPF, or DKIM aligned with the sender's domain, passes for {} of {} message(s) ({results}): the domain's owner vouches for this sender",
                agg.passing, agg.messages
            ),
        );
    } else if forwarded {
        let sealers = agg.sealers.iter().cloned().collect::<Vec<_>>().join(", ");
        add(
            "arc",
            2,
            format!(
                "an ARC chain sealed by {sealers} passes for {} of {} message(s) ({results}): mail forwarded by a list or forwarding service",
                agg.arc_pass, agg.messages
            ),
        );
    } else if majority(count(&agg.spf, "fail")) {
        add(
            "spf",
            -2,
            format!(
                "SPF fails for {} of {} message(s) ({results}): the SPF record of {owners} does not list this address — a spoofer, or a device of yours the record leaves out",
                count(&agg.spf, "fail"),
                agg.messages
            ),
        );
    } else if majority(count(&agg.spf, "softfail")) {
        add(
            "spf",
            -1,
            format!(
                "SPF soft-fails for {} of {} message(s) ({results}): the SPF record of {owners} does not list this address but asks for leniency",
                count(&agg.spf, "softfail"),
                agg.messages
            ),
        );
    } else {
        add(
            "spf",
            0,
            format!(
                "no SPF verdict either way ({results}): `none` means nothing is published (or authentication is off), `neutral` that the record makes no claim — not a failure"
            ),
        );
    }
    if !authenticated && majority(count(&agg.dkim, "fail")) {
        add(
            "dkim",
            -1,
            format!(
                "DKIM signatures fail to verify for {} of {} message(s): forged, or altered after signing",
                count(&agg.dkim, "fail"),
                agg.messages
            ),
        );
    }

    // How it connected.
    if agg.certified == agg.messages && agg.messages > 0 {
        let names = agg
            .cert_names
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        add(
            "certificate",
            3,
            format!("every message came with a trusted client certificate ({names})"),
        );
    } else if agg.tls == agg.messages {
        add(
            "tls",
            0,
            "TLS on every message, without a client certificate: common to senders of every kind"
                .into(),
        );
    } else if agg.tls == 0 {
        add(
            "tls",
            0,
            "no TLS: common for printers and scanners, and for spam tools".into(),
        );
    } else {
        add(
            "tls",
            0,
            format!("TLS on {} of {} message(s)", agg.tls, agg.messages),
        );
    }
    let ips: Vec<IpAddr> = agg.ips.iter().copied().collect();
    if let Some(range) = ips.first().and_then(|ip| private_range(*ip)) {
        add(
            "private-address",
            4,
            format!(
                "a private address ({range}): a host inside your network or reached over a VPN — a sender on the open internet cannot use one"
            ),
        );
    }
    match rdns {
        Rdns::Name { name, confirmed } => match (within(name, domains), confirmed) {
            (Some(d), true) => add(
                "rdns",
                2,
                format!(
                    "reverse DNS {name} is in your domain {d} and resolves back to the address"
                ),
            ),
            (Some(d), false) => add(
                "rdns",
                0,
                format!(
                    "reverse DNS {name} claims your domain {d} but does not resolve back to the address: not counted"
                ),
            ),
            (None, _) => add(
                "rdns",
                0,
                format!("reverse DNS {name}: not one of your domains"),
            ),
        },
        Rdns::None => add("rdns", 0, "no reverse DNS name".into()),
        Rdns::Unanswered => add(
            "rdns",
            0,
            "reverse DNS did not answer within the report's 2 s: not counted".into(),
        ),
        Rdns::NotLooked => {}
    }

    // Behaviour over time.
    let days = agg.days.len() as i64;
    let span = match (agg.days.first(), agg.days.last()) {
        (Some(a), Some(b)) => b - a + 1,
        _ => 0,
    };
    if days >= 5 && span >= 14 {
        add(
            "days",
            3,
            format!(
                "sent on {days} days over {span} days: a steady sender, as devices and applications are"
            ),
        );
    } else if days >= 3 && span >= 7 {
        add(
            "days",
            2,
            format!("sent on {days} days over {span} days: a recurring sender"),
        );
    } else if days >= 2 {
        add("days", 1, format!("sent on {days} days over {span} days"));
    } else if agg.messages >= 20 {
        add(
            "days",
            -1,
            format!(
                "{} messages on a single day and none on any other: a burst",
                agg.messages
            ),
        );
    } else {
        add("days", 0, "sent on one day only".into());
    }
    if agg.messages >= 2 {
        let literal = |h: &str| h.starts_with('[') || h.parse::<IpAddr>().is_ok();
        match agg.helo_count.count() as usize {
            1 => {
                let h = agg.helo.iter().next().expect("one");
                if literal(h) {
                    add(
                        "helo",
                        0,
                        format!("the same HELO in every message, an address literal ({h})"),
                    );
                } else {
                    add(
                        "helo",
                        1,
                        format!("the same HELO name ({h}) in all {} messages", agg.messages),
                    );
                }
            }
            k if k >= 3 && (k as u64) * 2 >= agg.messages => add(
                "helo",
                -1,
                format!("{k} different HELO names in {} messages", agg.messages),
            ),
            _ => {}
        }
    }
    let rcpts = agg.recipients.count();
    if agg.messages >= 3 && rcpts <= (agg.messages / 4).max(3) {
        add(
            "recipients",
            1,
            format!(
                "{} messages to {rcpts} recipient(s): the pattern of a device or an application",
                agg.messages
            ),
        );
    } else if agg.messages >= 5 && rcpts >= agg.messages {
        add(
            "recipients",
            -1,
            format!(
                "{rcpts} different recipients in {} messages: the pattern of a campaign",
                agg.messages
            ),
        );
    }

    let score: i32 = ev.iter().map(|e| e.weight).sum();
    let verdict = if authenticated {
        "likely-legitimate"
    } else if forwarded {
        "likely-forwarded"
    } else if score >= LEGITIMATE {
        "likely-legitimate"
    } else if score <= SPOOFING {
        "likely-spoofing"
    } else {
        "unknown"
    };
    Classified {
        verdict,
        score,
        evidence: ev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address's traffic: `n` messages on each of `days` (consecutive), SPF `spf`, HELO names
    /// cycling through `helos`, recipients cycling through `rcpts` distinct addresses.
    fn traffic(ip: &str, n: u64, days: i64, spf: &str, helos: usize, rcpts: usize) -> Agg {
        let ip: IpAddr = ip.parse().unwrap();
        let mut agg = Agg::default();
        let mut k = 0usize;
        for day in 0..days {
            for _ in 0..n {
                let r = TraceRecord {
                    trace_id: format!("t{k}"),
                    client_ip: ip.to_string(),
                    helo: Some(format!("host{}.example", k % helos)),
                    mail_from: "scanner@contoso.com".into(),
                    recipients: vec![portcullis_store::TraceRecipient {
                        address: format!("user{}@contoso.com", k % rcpts),
                        ..Default::default()
                    }],
                    auth: portcullis_store::TraceAuth {
                        spf: Some(spf.into()),
                        dkim: Some("none".into()),
                        dmarc: Some(if spf == "pass" { "pass" } else { "fail" }.into()),
                        ..Default::default()
                    },
                    received_at_us: 1_800_000_000_000_000 + day * DAY_US + k as i64,
                    ..Default::default()
                };
                agg.add(&r, ip);
                k += 1;
            }
        }
        agg
    }

    fn domains() -> Vec<String> {
        vec!["contoso.com".into()]
    }

    fn signals(c: &Classified) -> Vec<(&str, i32)> {
        c.evidence
            .iter()
            .filter(|e| e.weight != 0)
            .map(|e| (e.signal.as_str(), e.weight))
            .collect()
    }

    /// The decision table: each row an address's traffic, its verdict and the evidence that
    /// carried it.
    #[test]
    fn verdicts_follow_the_evidence() {
        let none = Rdns::None;
        let rows: Vec<(&str, Agg, Rdns, &str, Vec<(&str, i32)>)> = vec![
            (
                "the printer not in SPF, three weeks of scans to two people",
                traffic("198.51.100.7", 3, 21, "fail", 1, 2),
                none.clone(),
                "likely-legitimate",
                vec![("spf", -2), ("days", 3), ("helo", 1), ("recipients", 1)],
            ),
            (
                "the same printer seen for one week only: review, not yet trusted",
                traffic("198.51.100.7", 3, 7, "fail", 1, 2),
                none.clone(),
                "unknown",
                vec![("spf", -2), ("days", 2), ("helo", 1), ("recipients", 1)],
            ),
            (
                "a printer on the office LAN (behind a VPN)",
                traffic("10.1.2.3", 2, 1, "fail", 1, 1),
                none.clone(),
                "likely-legitimate",
                vec![("spf", -2), ("private-address", 4), ("helo", 1)],
            ),
            (
                "a one-off spoof",
                traffic("203.0.113.9", 1, 1, "fail", 1, 1),
                none.clone(),
                "likely-spoofing",
                vec![("spf", -2)],
            ),
            (
                "a campaign: one day, a new HELO and recipient per message",
                traffic("203.0.113.10", 40, 1, "fail", 40, 40),
                none.clone(),
                "likely-spoofing",
                vec![("spf", -2), ("days", -1), ("helo", -1), ("recipients", -1)],
            ),
            (
                "no SPF record published: none is not a failure",
                traffic("203.0.113.11", 1, 1, "none", 1, 1),
                none.clone(),
                "unknown",
                vec![],
            ),
            (
                "SPF passes",
                traffic("192.0.2.1", 1, 1, "pass", 1, 1),
                none.clone(),
                "likely-legitimate",
                vec![("authentication", 3)],
            ),
            (
                "reverse DNS in the tenant's domain, confirmed",
                traffic("198.51.100.8", 2, 3, "fail", 1, 1),
                Rdns::Name {
                    name: "scan1.office.contoso.com".into(),
                    confirmed: true,
                },
                "likely-legitimate",
                vec![
                    ("spf", -2),
                    ("rdns", 2),
                    ("days", 1),
                    ("helo", 1),
                    ("recipients", 1),
                ],
            ),
            (
                "reverse DNS claiming the tenant's domain without resolving back counts nothing",
                traffic("198.51.100.8", 1, 1, "fail", 1, 1),
                Rdns::Name {
                    name: "mail.contoso.com".into(),
                    confirmed: false,
                },
                "likely-spoofing",
                vec![("spf", -2)],
            ),
        ];
        for (what, agg, rdns, verdict, expected) in rows {
            let c = classify(&agg, &rdns, &domains());
            assert_eq!(c.verdict, verdict, "{what}: {c:#?}");
            assert_eq!(signals(&c), expected, "{what}: {c:#?}");
            assert_eq!(
                c.score,
                expected.iter().map(|(_, w)| w).sum::<i32>(),
                "{what}"
            );
        }
    }

    /// A spoofer signing with a domain of its own passes DKIM, but that vouches for nothing.
    #[test]
    fn only_dkim_aligned_with_the_sender_counts() {
        let mut agg = Agg::default();
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        for (k, signer) in ["spoofer.example", "mail.contoso.com"].iter().enumerate() {
            let r = TraceRecord {
                trace_id: format!("t{k}"),
                mail_from: "ceo@contoso.com".into(),
                auth: portcullis_store::TraceAuth {
                    spf: Some("fail".into()),
                    dkim: Some("pass".into()),
                    dkim_pass_domains: vec![signer.to_string()],
                    ..Default::default()
                },
                ..Default::default()
            };
            let mut one = Agg::default();
            one.add(&r, ip);
            let c = classify(&one, &Rdns::None, &domains());
            if k == 0 {
                assert_eq!(c.verdict, "likely-spoofing", "{c:#?}");
            } else {
                assert_eq!(c.verdict, "likely-legitimate", "{c:#?}");
            }
            agg.merge(one);
        }
    }

    #[test]
    fn none_is_never_called_a_failure() {
        let c = classify(
            &traffic("203.0.113.11", 1, 1, "none", 1, 1),
            &Rdns::None,
            &domains(),
        );
        let spf = c.evidence.iter().find(|e| e.signal == "spf").unwrap();
        assert_eq!(spf.weight, 0);
        assert!(spf.detail.contains("not a failure"), "{}", spf.detail);
        assert!(!spf.detail.contains("fails"), "{}", spf.detail);
    }

    #[test]
    fn private_ranges() {
        for (ip, range) in [
            ("10.0.0.1", Some("10.0.0.0/8")),
            ("172.16.5.4", Some("172.16.0.0/12")),
            ("172.32.0.1", None),
            ("192.168.1.1", Some("192.168.0.0/16")),
            ("127.0.0.1", None),
            ("203.0.113.1", None),
            ("fd00::1", Some("fc00::/7")),
            ("fe80::1", Some("fe80::/10")),
            ("2001:db8::1", None),
        ] {
            assert_eq!(private_range(ip.parse().unwrap()), range, "{ip}");
        }
    }
}
