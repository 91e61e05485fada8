//! Directory data as the administrator sees it: tenants, their settings, accepted domains and
//! inbound connectors. These are the values the store persists and the admin API exchanges.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// How a tenant treats anonymous mail that uses its own domains as P1 sender (SPEC §2 rows 3–4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RejectDirectSend {
    #[default]
    Off,
    Audit,
    On,
}

/// How recipients of an accepted domain are checked at RCPT (Exchange's Directory-Based Edge
/// Blocking): not at all, against the tenant's recipient list, or by asking its mailbox server.
/// Internal-relay domains are never checked (their recipients may live elsewhere).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RecipientValidation {
    #[default]
    Off,
    List,
    Verify,
}

impl RecipientValidation {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientValidation::Off => "off",
            RecipientValidation::List => "list",
            RecipientValidation::Verify => "verify",
        }
    }
}

/// Which sender addresses row 3 looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DirectSendScope {
    /// P1 (`MAIL FROM`) only, at RCPT time.
    #[default]
    Envelope,
    /// P1 at RCPT time and the P2 `From:` domain at end of DATA.
    EnvelopeAndHeader,
}

/// What happens to anonymous mail failing authentication while claiming the tenant's P2 domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SpoofAction {
    #[default]
    Junk,
    Quarantine,
    None,
}

/// Per-tenant settings (`portcullis org show|set`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct OrgSettings {
    pub reject_direct_send: RejectDirectSend,
    pub direct_send_scope: DirectSendScope,
    pub honor_dmarc: bool,
    pub arc_trusted_sealers: Vec<String>,
    pub direct_send_allow_dkim_aligned: bool,
    pub spoof_action: SpoofAction,
    pub trust_services: Vec<String>,
    /// Quarantined direct-send spoofs may be released by an org admin only (enforced with roles).
    pub admin_only_release_direct_send: bool,
    /// Delivery route of the tenant (`tenant set --route`); `None`: the operator's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Recipient validation of the tenant's authoritative domains (each may override it).
    pub recipient_validation: RecipientValidation,
}

impl Default for OrgSettings {
    fn default() -> Self {
        OrgSettings {
            reject_direct_send: RejectDirectSend::Off,
            direct_send_scope: DirectSendScope::Envelope,
            honor_dmarc: true,
            arc_trusted_sealers: Vec::new(),
            direct_send_allow_dkim_aligned: false,
            spoof_action: SpoofAction::Junk,
            trust_services: Vec::new(),
            admin_only_release_direct_send: true,
            route: None,
            recipient_validation: RecipientValidation::Off,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tenant {
    pub name: String,
    pub settings: OrgSettings,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DomainType {
    #[default]
    Authoritative,
    InternalRelay,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AcceptedDomain {
    /// Lower-case ASCII, no trailing dot.
    pub domain: String,
    pub tenant: String,
    #[serde(rename = "type", default)]
    pub domain_type: DomainType,
    #[serde(default)]
    pub match_subdomains: bool,
    /// Delivery route for this domain's recipients, overriding the tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Set while the domain waits for proof of control (added by a tenant role): the TXT value
    /// to publish at the domain. A pending domain receives no mail and is nobody's own domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    /// Recipient validation of this domain, overriding the tenant's (`None`: the tenant's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_validation: Option<RecipientValidation>,
}

impl AcceptedDomain {
    /// Verified (or added by the operator): it receives mail.
    pub fn is_active(&self) -> bool {
        self.verification.is_none()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectorType {
    #[default]
    Partner,
    OnPremises,
    /// An operator-defined sending service the tenant opted into (`[services.NAME]`,
    /// `org set --trust-service`); never created by tenants directly.
    TrustedService,
}

impl ConnectorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorType::Partner => "partner",
            ConnectorType::OnPremises => "on-premises",
            ConnectorType::TrustedService => "trusted-service",
        }
    }
}

/// An inbound connector: "mail from these IPs / with this certificate name is ours or our partner's".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Connector {
    pub tenant: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub connector_type: ConnectorType,
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub sender_ips: Vec<IpNet>,
    #[serde(default)]
    pub tls_cert_names: Vec<String>,
    /// `*` (every sender, including the null sender), `*.x.com` (x.com and its subdomains) or `x.com`.
    #[serde(default = "default_sender_domains")]
    pub sender_domains: Vec<String>,
    #[serde(default)]
    pub require_tls: bool,
    #[serde(default)]
    pub restrict_domains_to_ip: bool,
    #[serde(default)]
    pub restrict_domains_to_cert: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The hosts of a filtering service in front of the gateway (Exchange's Enhanced Filtering
    /// "skip listing"): for mail attributed to this connector, the `Received:` hops they added
    /// are skipped to find the original client, which authentication and rules then judge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub skip_ips: Vec<IpNet>,
    /// Skip only the last hop: the client the topmost `Received:` names is the original one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_last_ip: bool,
}

pub fn default_sender_domains() -> Vec<String> {
    vec!["*".to_string()]
}

fn yes() -> bool {
    true
}

impl Connector {
    /// A connector with the SPEC §7 defaults (partner, every sender domain, enabled).
    pub fn new(tenant: &str, name: &str) -> Connector {
        Connector {
            tenant: tenant.to_string(),
            name: name.to_string(),
            connector_type: ConnectorType::Partner,
            sender_ips: Vec::new(),
            tls_cert_names: Vec::new(),
            sender_domains: default_sender_domains(),
            require_tls: false,
            restrict_domains_to_ip: false,
            restrict_domains_to_cert: false,
            enabled: true,
            skip_ips: Vec::new(),
            skip_last_ip: false,
        }
    }
}
