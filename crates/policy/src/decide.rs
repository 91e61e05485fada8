//! The decision table of SPEC §2, as two total functions: one per recipient at RCPT time, one per
//! tenant copy at end of DATA. Each verdict maps to its SMTP reply in exactly one place
//! ([`RcptVerdict::reply`], [`DataVerdict::reply`]).

use portcullis_smtp::{Reply, reply};

use crate::attribution::{
    Attribution, PeerFacts, attribute, cert_matches, ip_match, sender_domain_ok,
};
use crate::auth::{AuthFacts, AuthResult, CompAuth, CompVerdict, DmarcPolicy, compauth};
use crate::directory::{Directory, TenantEntry};
use crate::model::{ConnectorType, DirectSendScope, RejectDirectSend, SpoofAction};

/// Facts for one RCPT TO.
#[derive(Clone, Copy, Debug)]
pub struct RcptFacts<'a> {
    pub peer: &'a PeerFacts,
    /// Domain of the P1 sender, lower case; `None` for the null sender `<>`.
    pub p1_domain: Option<&'a str>,
    /// Domain of the recipient, lower case.
    pub rcpt_domain: &'a str,
    /// SPF could not be evaluated (DNS time-out or SERVFAIL): anonymous mail is deferred.
    pub spf_temp_error: bool,
    /// What recipient validation found out about the recipient.
    pub recipient: RecipientLookup,
}

/// What recipient validation says about a recipient (`Directory::recipient_validation` says how
/// it is validated; the gateway looks it up: in the list, or in its cache or by a probe).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecipientLookup {
    /// Not validated (off, an internal-relay domain), or not asked yet (`verify`, before the
    /// probe: a verdict that refuses anyway needs none).
    #[default]
    NotValidated,
    Known,
    Unknown,
    /// The mailbox server could not be asked (time-out, refused connection, a 4xx).
    Unavailable,
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
    /// Anonymous mail whose SPF could not be evaluated (DNS failure): try again later.
    SpfTempError { tenant: String },
    /// Recipient validation: the recipient is not a known address of the tenant.
    UnknownRecipient { tenant: String },
    /// Recipient validation could not reach the mailbox server: try again later.
    RecipientUnverified { tenant: String },
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
            RcptVerdict::SpfTempError { .. } => reply::SPF_TEMP_ERROR,
            RcptVerdict::UnknownRecipient { .. } => reply::UNKNOWN_RECIPIENT,
            RcptVerdict::RecipientUnverified { .. } => reply::RECIPIENT_UNVERIFIED,
            RcptVerdict::Accept { .. } => reply::RECIPIENT_OK,
        }
    }

    /// The row of the SPEC §2 table this verdict comes from (`None`: outside the table: a DNS
    /// failure, recipient validation).
    pub fn row(&self) -> Option<u8> {
        match self {
            RcptVerdict::NoTenant => Some(1),
            RcptVerdict::RestrictedPartner { .. } => Some(2),
            RcptVerdict::DirectSendRefused { .. } => Some(3),
            RcptVerdict::SpfTempError { .. }
            | RcptVerdict::UnknownRecipient { .. }
            | RcptVerdict::RecipientUnverified { .. } => None,
            RcptVerdict::Accept {
                direct_send: DirectSend::Audit,
                ..
            } => Some(4),
            RcptVerdict::Accept {
                direct_send: DirectSend::Deferred,
                ..
            } => Some(3),
            RcptVerdict::Accept { .. } => Some(5),
        }
    }

    pub fn tenant(&self) -> Option<&str> {
        match self {
            RcptVerdict::NoTenant => None,
            RcptVerdict::RestrictedPartner { tenant, .. }
            | RcptVerdict::DirectSendRefused { tenant }
            | RcptVerdict::SpfTempError { tenant }
            | RcptVerdict::UnknownRecipient { tenant }
            | RcptVerdict::RecipientUnverified { tenant }
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
    // Before the SPF deferral: an unknown recipient is a final answer that needs no DNS.
    match facts.recipient {
        RecipientLookup::Unknown => return RcptVerdict::UnknownRecipient { tenant },
        RecipientLookup::Unavailable => return RcptVerdict::RecipientUnverified { tenant },
        RecipientLookup::NotValidated | RecipientLookup::Known => {}
    }
    if attribution.is_anonymous() && facts.spf_temp_error {
        return RcptVerdict::SpfTempError { tenant };
    }
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
    /// Domain of the P1 sender, lower case; `None` for the null sender.
    pub p1_domain: Option<&'a str>,
    /// SPF, DKIM, ARC and DMARC outcomes, with the P2 `From:` domain.
    pub auth: &'a AuthFacts,
    /// The connector is a filtering service whose skip list recovered the original client
    /// (`auth` is judged for it): attribution stands, but authentication acts as for anonymous
    /// mail — the service vouches for the path, not for the sender.
    pub behind_filter: bool,
}

/// What the gateway does to an accepted copy because of its authentication results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthAction {
    /// DMARC `p=quarantine` failed (quarantine the copy).
    DmarcQuarantine,
    /// Own-domain spoof with `spoof_action = junk`: `X-Spam-Flag: YES`, `X-Portcullis-SCL: 5`.
    SpoofJunk,
    /// Own-domain spoof with `spoof_action = quarantine`.
    SpoofQuarantine,
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
        compauth: CompAuth,
        actions: Vec<AuthAction>,
    },
    /// Row 3 at end of DATA (deferred P1 decision or the P2 header check).
    DirectSendRefused { header: bool },
    /// DMARC `p=reject` failed and the tenant honours DMARC.
    DmarcRejected { domain: String },
    /// Authentication could not complete (DNS failure) for anonymous mail: try again later.
    TempError,
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
            DataVerdict::DmarcRejected { domain } => Some(reply::dmarc_reject(domain)),
            DataVerdict::TempError => Some(reply::AUTH_TEMP_ERROR),
        }
    }
}

/// End-of-DATA decisions for one tenant copy: the end-of-DATA part of rows 3/4, then DMARC and
/// the spoof action (SPEC §4). Attributed copies are vouched for by their connector: their
/// authentication results are recorded, not acted on.
pub fn decide_data(dir: &Directory, facts: &DataFacts<'_>) -> DataVerdict {
    let own_from = |tenant: &str| {
        facts
            .auth
            .from_domain
            .as_deref()
            .is_some_and(|d| dir.is_own_domain(tenant, d))
    };
    let compauth = tenant_compauth(dir, facts.tenant, facts.auth);
    let Some(entry) = dir.tenant(facts.tenant) else {
        // The tenant was removed mid-transaction: nothing of its policy applies any more.
        return DataVerdict::Accept {
            direct_send: false,
            audit: None,
            exemption: None,
            compauth,
            actions: vec![],
        };
    };
    let s = &entry.tenant.settings;
    let anonymous = facts.attribution.is_anonymous();
    let judged = anonymous || facts.behind_filter;
    if judged && facts.auth.temp_error() {
        return DataVerdict::TempError;
    }

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
        && anonymous
        && own_from(facts.tenant);
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

    let mut actions = Vec::new();
    if judged && compauth.verdict != CompVerdict::Pass {
        if s.honor_dmarc && facts.auth.dmarc == AuthResult::Fail {
            match facts.auth.dmarc_policy {
                DmarcPolicy::Reject => {
                    let domain = facts.auth.from_domain.clone().unwrap_or_default();
                    return DataVerdict::DmarcRejected { domain };
                }
                DmarcPolicy::Quarantine => actions.push(AuthAction::DmarcQuarantine),
                DmarcPolicy::None | DmarcPolicy::Absent => {}
            }
        }
        if compauth.is_own_domain_spoof() && !actions.contains(&AuthAction::DmarcQuarantine) {
            match s.spoof_action {
                SpoofAction::Junk => actions.push(AuthAction::SpoofJunk),
                SpoofAction::Quarantine => actions.push(AuthAction::SpoofQuarantine),
                SpoofAction::None => {}
            }
        }
    }
    DataVerdict::Accept {
        direct_send,
        audit,
        exemption,
        compauth,
        actions,
    }
}

/// The composite verdict of a message for one tenant: own `From:` domain and trusted ARC sealers
/// are the tenant's.
pub fn tenant_compauth(dir: &Directory, tenant: &str, auth: &AuthFacts) -> CompAuth {
    let own = auth
        .from_domain
        .as_deref()
        .is_some_and(|d| dir.is_own_domain(tenant, d));
    let sealers = dir
        .tenant(tenant)
        .map(|e| e.tenant.settings.arc_trusted_sealers.as_slice())
        .unwrap_or(&[]);
    compauth(auth, own, sealers)
}

/// SPEC §4 exemptions from row 3: a passing ARC chain whose newest seal is from a trusted sealer,
/// or (opt-in) a passing DKIM signature aligned with the P1 domain.
fn exemption_for(entry: &TenantEntry, facts: &DataFacts<'_>) -> Option<String> {
    let s = &entry.tenant.settings;
    if let Some(sealer) = facts.auth.arc_pass_sealer()
        && s.arc_trusted_sealers
            .iter()
            .any(|t| t.eq_ignore_ascii_case(sealer))
    {
        return Some(format!("trusted ARC sealer {sealer}"));
    }
    if s.direct_send_allow_dkim_aligned
        && let Some(p1) = facts.p1_domain
        && facts.auth.dkim_pass_aligned_with(p1)
    {
        return Some(format!(
            "DKIM signature aligned with the envelope sender domain {p1}"
        ));
    }
    None
}
