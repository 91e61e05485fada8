//! SPEC §2: which connector of a tenant (if any) vouches for a transaction.

use std::net::IpAddr;

use crate::model::{Connector, ConnectorType};
use crate::names::{cert_name_matches, sender_domain_matches};

/// What the gateway knows about the peer. Time-independent and already verified: `cert_names`
/// holds the subject CN and DNS SANs of a client certificate only if it chained to a trusted root.
#[derive(Clone, Debug)]
pub struct PeerFacts {
    pub ip: IpAddr,
    /// The session used STARTTLS.
    pub tls: bool,
    /// Names of a *trusted* client certificate; empty without one.
    pub cert_names: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchedBy {
    Certificate,
    /// Source IP, with the prefix length of the matching range.
    Ip(u8),
}

/// The outcome of attribution for one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribution {
    Anonymous,
    Connector {
        name: String,
        kind: ConnectorType,
        matched_by: MatchedBy,
    },
}

impl Attribution {
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Attribution::Anonymous)
    }

    pub fn connector(&self) -> Option<&str> {
        match self {
            Attribution::Anonymous => None,
            Attribution::Connector { name, .. } => Some(name),
        }
    }

    /// The `auth-as` value of `X-Portcullis-Attribution`.
    pub fn auth_as(&self) -> &'static str {
        match self {
            Attribution::Anonymous => "anonymous",
            Attribution::Connector { kind, .. } => kind.as_str(),
        }
    }
}

/// Does the peer's certificate carry a name the connector lists?
pub(crate) fn cert_matches(c: &Connector, peer: &PeerFacts) -> bool {
    c.tls_cert_names.iter().any(|pattern| {
        peer.cert_names
            .iter()
            .any(|n| cert_name_matches(pattern, n))
    })
}

/// The longest prefix among the connector's ranges containing the peer IP.
pub(crate) fn ip_match(c: &Connector, ip: IpAddr) -> Option<u8> {
    // The gateway canonicalizes at accept; the core stays total for any input: an IPv4-mapped
    // IPv6 peer (`::ffff:192.0.2.1`) matches IPv4 ranges.
    let ip = ip.to_canonical();
    c.sender_ips
        .iter()
        .filter(|net| net.contains(&ip))
        .map(|net| net.prefix_len())
        .max()
}

pub(crate) fn sender_domain_ok(c: &Connector, p1_domain: Option<&str>) -> bool {
    c.sender_domains
        .iter()
        .any(|p| sender_domain_matches(p, p1_domain))
}

/// How one connector fares against SPEC §2 conditions 1–4 (what `simulate` shows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorCheck {
    pub name: String,
    /// Condition 1.
    pub enabled: bool,
    /// Condition 2: how the peer matched, if it did.
    pub peer: Option<MatchedBy>,
    /// Condition 3: `require_tls` is off, or the session used STARTTLS.
    pub tls_ok: bool,
    /// Condition 4: the P1 domain matches the connector's sender domains.
    pub sender_domain_ok: bool,
}

impl ConnectorCheck {
    pub fn attributes(&self) -> bool {
        self.enabled && self.peer.is_some() && self.tls_ok && self.sender_domain_ok
    }
}

/// Evaluates conditions 1–4 for one connector.
pub fn check_connector(c: &Connector, peer: &PeerFacts, p1_domain: Option<&str>) -> ConnectorCheck {
    let matched = if cert_matches(c, peer) {
        Some(MatchedBy::Certificate)
    } else {
        ip_match(c, peer.ip).map(MatchedBy::Ip)
    };
    ConnectorCheck {
        name: c.name.clone(),
        enabled: c.enabled,
        peer: matched,
        tls_ok: !c.require_tls || peer.tls,
        sender_domain_ok: sender_domain_ok(c, p1_domain),
    }
}

/// Applies conditions 1–4 of SPEC §2 to every connector of the tenant and picks the winner:
/// certificate matches beat IP matches, the longest IP prefix beats shorter ones, ties break by
/// connector name (the slice is sorted by name).
pub fn attribute(
    connectors: &[Connector],
    peer: &PeerFacts,
    p1_domain: Option<&str>,
) -> Attribution {
    let mut best: Option<(&Connector, MatchedBy)> = None;
    for c in connectors {
        let check = check_connector(c, peer, p1_domain);
        let (true, Some(matched)) = (check.attributes(), check.peer) else {
            continue;
        };
        let better = match (&best, matched) {
            (None, _) => true,
            (Some((_, MatchedBy::Certificate)), _) => false,
            (Some((_, MatchedBy::Ip(_))), MatchedBy::Certificate) => true,
            (Some((_, MatchedBy::Ip(old))), MatchedBy::Ip(new)) => new > *old,
        };
        if better {
            best = Some((c, matched));
        }
    }
    match best {
        None => Attribution::Anonymous,
        Some((c, matched_by)) => Attribution::Connector {
            name: c.name.clone(),
            kind: c.connector_type,
            matched_by,
        },
    }
}
