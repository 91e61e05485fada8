//! The decision table of SPEC §2, as two total functions: one per recipient at RCPT time, one per
//! tenant copy at end of DATA. Each verdict maps to its SMTP reply in exactly one place
//! ([`RcptVerdict::reply`], [`DataVerdict::reply`]).

use portcullis_smtp::{Reply, reply};

use crate::attribution::{
    Attribution, PeerFacts, attribute, cert_matches, ip_match, sender_domain_ok,
};
use crate::directory::{Directory, TenantEntry};
use crate::model::{ConnectorType, DirectSendScope, RejectDirectSend};

/// Facts for one RCPT TO.
#[derive(Clone, Copy, Debug)]
pub struct RcptFacts<'a> {
    pub peer: &'a PeerFacts,
    /// Domain of the P1 sender, lower case; `None` for the null sender `<>`.
    pub p1_domain: Option<&'a str>,
    /// Domain of the recipient, lower case.
    pub rcpt_domain: &'a str,
}

/// How the direct-send rule (rows 3–4) came out for an accepted recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectSend {
    /// Not direct send (attributed, null sender, or a foreign P1 domain).
    No,
    /// Direct send, tenant in `audit`: accepted, marked, would have been refused with 5.7.68.
    Audit,
    /// Direct send, tenant in `on` with `off`-the-envelope exemptions configured (trusted ARC
    /// sealers, DKIM alignment): row 3 is decided at end of DATA when the body is known.
    Deferred,
    /// Direct send while the tenant's setting is `off`: accepted and recorded as such.
    Allowed,
}

impl DirectSend {
    /// The trace's `direct_send` flag.
    pub fn is_direct_send(self) -> bool {
        !matches!(self, DirectSend::No)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RcptVerdict {
    /// Row 1: the recipient domain belongs to no tenant (never relay).
    NoTenant,
    /// Row 2: a restricted partner connector claims this sender domain and the peer does not satisfy it.
    RestrictedPartner { tenant: String, connector: String },
    /// Row 3: anonymous direct send while the tenant enforces.
    DirectSendRefused { tenant: String },
    /// Rows 4 and 5.
    Accept {
        tenant: String,
        attribution: Attribution,
        direct_send: DirectSend,
    },
}

impl RcptVerdict {
    /// The single mapping from RCPT verdict to SMTP reply (table-tested below).
    pub fn reply(&self) -> Reply {
        match self {
            RcptVerdict::NoTenant => reply::RELAY_ACCESS_DENIED,
            RcptVerdict::RestrictedPartner { .. } => reply::PARTNER_CONNECTOR_RESTRICTED,
            RcptVerdict::DirectSendRefused { .. } => reply::DIRECT_SEND_NOT_ALLOWED,
            RcptVerdict::Accept { .. } => reply::RECIPIENT_OK,
        }
    }

    pub fn tenant(&self) -> Option<&str> {
        match self {
            RcptVerdict::NoTenant => None,
            RcptVerdict::RestrictedPartner { tenant, .. }
            | RcptVerdict::DirectSendRefused { tenant }
            | RcptVerdict::Accept { tenant, .. } => Some(tenant),
        }
    }
}

/// SPEC §2, checks at RCPT TO, in table order.
pub fn decide_rcpt(dir: &Directory, facts: &RcptFacts<'_>) -> RcptVerdict {
    let Some((entry, _)) = dir.resolve(facts.rcpt_domain) else {
        return RcptVerdict::NoTenant;
    };
    let tenant = entry.tenant.name.clone();
    if let Some(connector) = restricted_partner_violation(entry, facts) {
        return RcptVerdict::RestrictedPartner { tenant, connector };
    }
    let attribution = attribute(&entry.connectors, facts.peer, facts.p1_domain);
    let direct = attribution.is_anonymous()
        && facts
            .p1_domain
            .is_some_and(|d| dir.is_own_domain(&tenant, d));
    let settings = &entry.tenant.settings;
    let direct_send = match (direct, settings.reject_direct_send) {
        (false, _) => DirectSend::No,
        (true, RejectDirectSend::Off) => DirectSend::Allowed,
        (true, RejectDirectSend::Audit) => DirectSend::Audit,
        (true, RejectDirectSend::On) if has_body_exemptions(entry) => DirectSend::Deferred,
        (true, RejectDirectSend::On) => return RcptVerdict::DirectSendRefused { tenant },
    };
    RcptVerdict::Accept {
        tenant,
        attribution,
        direct_send,
    }
}

/// Row 2. With both restrictions set, the peer must satisfy both (each one refuses on its own).
fn restricted_partner_violation(entry: &TenantEntry, facts: &RcptFacts<'_>) -> Option<String> {
    entry
        .connectors
        .iter()
        .filter(|c| c.enabled && c.connector_type == ConnectorType::Partner)
        .filter(|c| c.restrict_domains_to_ip || c.restrict_domains_to_cert)
        .filter(|c| sender_domain_ok(c, facts.p1_domain))
        .find(|c| {
            (c.restrict_domains_to_ip && ip_match(c, facts.peer.ip).is_none())
                || (c.restrict_domains_to_cert && !cert_matches(c, facts.peer))
        })
        .map(|c| c.name.clone())
}

fn has_body_exemptions(entry: &TenantEntry) -> bool {
    let s = &entry.tenant.settings;
    !s.arc_trusted_sealers.is_empty() || s.direct_send_allow_dkim_aligned
}

/// Facts for one tenant's copy at end of DATA.
#[derive(Clone, Copy, Debug)]
pub struct DataFacts<'a> {
    pub tenant: &'a str,
    pub attribution: &'a Attribution,
    /// The RCPT-time outcome for this tenant.
    pub direct_send: DirectSend,
    /// Domain of the P2 `From:` address, lower case, if one could be parsed.
    pub header_from_domain: Option<&'a str>,
    /// Domain that sealed a passing ARC chain, if any (SPEC §4).
    pub arc_pass_sealer: Option<&'a str>,
    /// A passing DKIM signature aligned with the P1 domain exists (SPEC §4).
    pub dkim_aligned_with_p1: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataVerdict {
    Accept {
        /// The trace's `direct_send` flag.
        direct_send: bool,
        /// Audit mode matched: add `X-Portcullis-Direct-Send: audit` and an `AUDIT` event.
        audit: Option<AuditReason>,
        /// Row 3 matched but an exemption let the message through.
        exemption: Option<String>,
    },
    /// Row 3 at end of DATA (deferred P1 decision or the P2 header check).
    DirectSendRefused { header: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditReason {
    Envelope,
    Header,
}

impl DataVerdict {
    /// The reply for a refused copy; `None` when the copy is accepted.
    pub fn reply(&self) -> Option<Reply> {
        match self {
            DataVerdict::Accept { .. } => None,
            DataVerdict::DirectSendRefused { .. } => Some(reply::DIRECT_SEND_NOT_ALLOWED),
        }
    }
}

/// End-of-DATA part of row 3/4 for one tenant copy.
pub fn decide_data(dir: &Directory, facts: &DataFacts<'_>) -> DataVerdict {
    let Some(entry) = dir.tenant(facts.tenant) else {
        // The tenant was removed mid-transaction: nothing of its policy applies any more.
        return DataVerdict::Accept {
            direct_send: false,
            audit: None,
            exemption: None,
        };
    };
    let s = &entry.tenant.settings;
    let mut direct_send = facts.direct_send.is_direct_send();
    let mut audit = (facts.direct_send == DirectSend::Audit).then_some(AuditReason::Envelope);
    let mut exemption = None;

    if facts.direct_send == DirectSend::Deferred {
        match exemption_for(entry, facts) {
            Some(why) => exemption = Some(why),
            None => return DataVerdict::DirectSendRefused { header: false },
        }
    }

    let header_spoof = s.direct_send_scope == DirectSendScope::EnvelopeAndHeader
        && facts.attribution.is_anonymous()
        && facts
            .header_from_domain
            .is_some_and(|d| dir.is_own_domain(facts.tenant, d));
    if header_spoof && exemption.is_none() {
        direct_send = true;
        match s.reject_direct_send {
            RejectDirectSend::Off => {}
            RejectDirectSend::Audit => audit = audit.or(Some(AuditReason::Header)),
            RejectDirectSend::On => match exemption_for(entry, facts) {
                Some(why) => exemption = Some(why),
                None => return DataVerdict::DirectSendRefused { header: true },
            },
        }
    }
    DataVerdict::Accept {
        direct_send,
        audit,
        exemption,
    }
}

fn exemption_for(entry: &TenantEntry, facts: &DataFacts<'_>) -> Option<String> {
    let s = &entry.tenant.settings;
    if let Some(sealer) = facts.arc_pass_sealer
        && s.arc_trusted_sealers
            .iter()
            .any(|t| t.eq_ignore_ascii_case(sealer))
    {
        return Some(format!("trusted ARC sealer {sealer}"));
    }
    if s.direct_send_allow_dkim_aligned && facts.dkim_aligned_with_p1 {
        return Some("DKIM signature aligned with the envelope sender".into());
    }
    None
}
