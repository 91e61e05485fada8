//! The admin API's request and response bodies, shared by the server (`api.rs`) and the CLI
//! (`cli.rs`) so both sides validate with the same code. Directory values travel as the policy
//! crate's model types; requests carry strings so a bad value is reported by name, not by serde.

use ipnet::IpNet;
use portcullis_policy::names;
use portcullis_policy::{
    AcceptedDomain, Connector, ConnectorType, DirectSendScope, DomainType, OrgSettings,
    RecipientValidation, RejectDirectSend, SpoofAction,
};
use serde::{Deserialize, Serialize};

/// Every error response: `{"error": "..."}` naming the bad value.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiError {
    pub error: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub name: String,
}

#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    pub domain: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub domain_type: Option<String>,
    #[serde(default)]
    pub match_subdomains: bool,
}

/// `PATCH /org`: only the fields present change.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_direct_send: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_send_scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honor_dmarc: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arc_trusted_sealers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_send_allow_dkim_aligned: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoof_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_services: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_only_release_direct_send: Option<bool>,
    /// off, list or verify
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_validation: Option<String>,
}

/// `POST /connectors` (with `name`) and `PATCH /connectors/{name}`: only the fields present change;
/// list fields replace the whole list.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub connector_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_tls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restrict_domains_to_ip: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restrict_domains_to_cert: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Hosts of a filtering service in front of the gateway, skipped in the `Received:` chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_last_ip: Option<bool>,
    /// Accept an IPv4 prefix broader than /16 or an IPv6 prefix broader than /32 in
    /// `sender_ips` or `skip_ips` (refused without it: such a range vouches for a large part
    /// of the internet). Not stored; the change is logged as a warning and audited.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_broad_range: bool,
}

/// Whether `net` is broader than a connector should vouch for without saying so: an IPv4
/// prefix shorter than /16, an IPv6 prefix shorter than /32.
pub fn is_broad_range(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => n.prefix_len() < 16,
        IpNet::V6(n) => n.prefix_len() < 32,
    }
}

/// Refuses broad networks in a connector's lists unless `allowed`.
pub fn check_broad_ranges(flag: &str, nets: &[IpNet], allowed: bool) -> Result<(), String> {
    match nets.iter().find(|n| is_broad_range(n)) {
        Some(n) if !allowed => Err(format!(
            "{flag} {n} covers more than a /16 (IPv4) or /32 (IPv6): the connector would vouch for a large part of the internet, and every spoof from it would be attributed; give --allow-broad-range if that is really meant"
        )),
        _ => Ok(()),
    }
}

/// Query parameters of `GET /trace`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TraceParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A humantime duration (`2h`, `7d`): records received since then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// RFC 3339 bounds (start inclusive, end exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// At most this many (1 to 100000; default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<u32>,
    /// Continue after the previous page: the `X-Next-Cursor` of its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A listing's cursor over a time-ordered listing: `<µs>_<id>` of the last item of a page (a
/// trace record's receipt time and id, a quarantined message's, an audit entry's).
pub fn time_cursor(us: i64, id: &str) -> String {
    format!("{us}_{id}")
}

fn bad_cursor(s: &str) -> String {
    format!("invalid cursor {s:?}: pass the X-Next-Cursor of the previous page")
}

/// An id inside a cursor: 1 to 200 of `A-Z a-z 0-9 . - _`.
fn cursor_id(s: &str, id: &str) -> Result<String, String> {
    if id.is_empty()
        || id.len() > 200
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(bad_cursor(s));
    }
    Ok(id.to_string())
}

/// The `<µs>_<id>` of [`time_cursor`].
pub fn parse_time_cursor(s: &str) -> Result<(i64, String), String> {
    let (us, id) = s.split_once('_').ok_or_else(|| bad_cursor(s))?;
    let us = us.parse::<i64>().map_err(|_| bad_cursor(s))?;
    Ok((us, cursor_id(s, id)?))
}

/// The queue's cursor: the id of the last message of a page (the queue lists by id, oldest
/// first: trace ids begin with their receipt time).
pub fn parse_queue_cursor(s: &str) -> Result<String, String> {
    cursor_id(s, s)
}

/// The most records one page of a listing holds (trace, quarantine, audit, queue); the
/// `X-Next-Cursor` of an answer leads to the next page.
pub const MAX_LIMIT: u32 = 100_000;

/// A listing's `limit`: `default` when absent, else 1 to [`MAX_LIMIT`].
pub fn limit(given: Option<u32>, default: u32) -> Result<u32, String> {
    match given {
        None => Ok(default),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(format!("limit {n}: expected 1 to {MAX_LIMIT}")),
    }
}

/// A record status of the trace filter (`--status`), by its wire word.
pub fn parse_trace_status(s: &str) -> Result<portcullis_store::TraceStatus, String> {
    use portcullis_store::TraceStatus;
    match TraceStatus::parse(s) {
        TraceStatus::Other(_) => {
            let words: Vec<&str> = TraceStatus::ALL.iter().map(|t| t.as_str()).collect();
            Err(format!(
                "invalid status {s:?}: expected one of {}",
                words.join(", ")
            ))
        }
        status => Ok(status),
    }
}

// ---- validation shared by server and CLI: each error names the bad value ----

/// A `since` bound of the audit log: an RFC 3339 time, or an age such as `24h` (ages beyond the
/// epoch clamp to it). `Err` is the expectation, for the caller to prefix with the value.
pub fn parse_since_time(s: &str) -> Result<std::time::SystemTime, String> {
    let s = s.trim();
    humantime::parse_rfc3339_weak(s)
        .or_else(|_| {
            humantime::parse_duration(s).map(|d| {
                std::time::SystemTime::now()
                    .checked_sub(d)
                    .unwrap_or(std::time::UNIX_EPOCH)
            })
        })
        .map_err(|_| "expected an RFC 3339 time or an age such as 24h".to_string())
}

pub fn parse_tenant_name(s: &str) -> Result<String, String> {
    if names::is_valid_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid tenant name {s:?}: use 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
        ))
    }
}

pub fn parse_domain(s: &str) -> Result<String, String> {
    names::normalize_domain(s).ok_or_else(|| format!("invalid domain {s:?}"))
}

pub fn parse_domain_type(s: &str) -> Result<DomainType, String> {
    match s {
        "authoritative" => Ok(DomainType::Authoritative),
        "internal-relay" => Ok(DomainType::InternalRelay),
        _ => Err(format!(
            "invalid domain type {s:?}: expected authoritative or internal-relay"
        )),
    }
}

pub fn parse_reject_direct_send(s: &str) -> Result<RejectDirectSend, String> {
    match s {
        "on" => Ok(RejectDirectSend::On),
        "off" => Ok(RejectDirectSend::Off),
        "audit" => Ok(RejectDirectSend::Audit),
        _ => Err(format!(
            "invalid reject-direct-send mode {s:?}: expected on, off or audit"
        )),
    }
}

pub fn parse_direct_send_scope(s: &str) -> Result<DirectSendScope, String> {
    match s {
        "envelope" => Ok(DirectSendScope::Envelope),
        "envelope-and-header" => Ok(DirectSendScope::EnvelopeAndHeader),
        _ => Err(format!(
            "invalid direct-send scope {s:?}: expected envelope or envelope-and-header"
        )),
    }
}

pub fn parse_spoof_action(s: &str) -> Result<SpoofAction, String> {
    match s {
        "junk" => Ok(SpoofAction::Junk),
        "quarantine" => Ok(SpoofAction::Quarantine),
        "none" => Ok(SpoofAction::None),
        _ => Err(format!(
            "invalid spoof action {s:?}: expected junk, quarantine or none"
        )),
    }
}

pub fn parse_on_off(what: &str, s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!(
            "invalid value {s:?} for {what}: expected on or off"
        )),
    }
}

pub fn parse_connector_name(s: &str) -> Result<String, String> {
    if names::is_valid_connector_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid connector name {s:?}: use 1-64 characters of letters, digits, space, '.', '_', '-'"
        ))
    }
}

pub fn parse_connector_type(s: &str) -> Result<ConnectorType, String> {
    match s {
        "partner" => Ok(ConnectorType::Partner),
        "on-premises" => Ok(ConnectorType::OnPremises),
        _ => Err(format!(
            "invalid connector type {s:?}: expected partner or on-premises"
        )),
    }
}

/// An IPv4 or IPv6 CIDR; a bare address means a single host (/32 or /128). Host bits are cleared.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        // 10.0.0.1/24 is a typo for one of two things (the host 10.0.0.1, or 10.0.0.0/24):
        // storing either silently would be a guess at what to trust.
        if net.trunc() != net {
            return Err(format!(
                "invalid CIDR {s:?}: host bits are set (did you mean {} or {}?)",
                net.trunc(),
                IpNet::from(net.addr())
            ));
        }
        return Ok(net);
    }
    t.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("invalid CIDR {s:?}: expected e.g. 192.0.2.0/24 or 2001:db8::/32"))
}

pub fn parse_cert_name(s: &str) -> Result<String, String> {
    names::normalize_cert_name_pattern(s).ok_or_else(|| {
        format!("invalid certificate name {s:?}: expected mail.example.com or *.example.com")
    })
}

pub fn parse_sender_domain(s: &str) -> Result<String, String> {
    names::normalize_sender_domain_pattern(s).ok_or_else(|| {
        format!("invalid sender domain {s:?}: expected *, example.com or *.example.com")
    })
}

impl OrgPatch {
    /// Applies the patch to `settings`, validating every field; `services` are the trusted
    /// sending services the operator configured.
    pub fn apply(&self, settings: &mut OrgSettings, services: &[String]) -> Result<(), String> {
        if let Some(v) = &self.reject_direct_send {
            settings.reject_direct_send = parse_reject_direct_send(v)?;
        }
        if let Some(v) = &self.direct_send_scope {
            settings.direct_send_scope = parse_direct_send_scope(v)?;
        }
        if let Some(v) = self.honor_dmarc {
            settings.honor_dmarc = v;
        }
        if let Some(list) = &self.arc_trusted_sealers {
            settings.arc_trusted_sealers = list
                .iter()
                .map(|d| parse_domain(d))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = self.direct_send_allow_dkim_aligned {
            settings.direct_send_allow_dkim_aligned = v;
        }
        if let Some(v) = &self.spoof_action {
            settings.spoof_action = parse_spoof_action(v)?;
        }
        if let Some(list) = &self.trust_services {
            for s in list {
                if !services.iter().any(|k| k == s) {
                    return Err(format!(
                        "unknown trusted service {s:?}: the operator configured {}",
                        if services.is_empty() {
                            "none".to_string()
                        } else {
                            services.join(", ")
                        }
                    ));
                }
            }
            settings.trust_services = list.clone();
        }
        if let Some(v) = self.admin_only_release_direct_send {
            settings.admin_only_release_direct_send = v;
        }
        if let Some(v) = &self.recipient_validation {
            settings.recipient_validation = parse_recipient_validation(v)?;
        }
        Ok(())
    }
}

pub fn parse_recipient_validation(s: &str) -> Result<RecipientValidation, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" => Ok(RecipientValidation::Off),
        "list" => Ok(RecipientValidation::List),
        "verify" => Ok(RecipientValidation::Verify),
        _ => Err(format!(
            "invalid recipient validation {s:?}: expected off, list or verify"
        )),
    }
}

/// `PATCH /domains/{d}`: only the fields present change.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainPatch {
    /// The domain's own route; `''` or null: the tenant's.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub route: Option<Option<String>>,
    /// off, list or verify; `inherit` (or null): the tenant's.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub recipient_validation: Option<Option<String>>,
}

/// A field that is present, even as null: `Some(value)`; absent fields stay `None` (default).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

impl DomainPatch {
    /// Applies the patch to `d`, validating every field.
    pub fn apply(&self, d: &mut AcceptedDomain) -> Result<(), String> {
        if let Some(route) = &self.route {
            d.route = match route {
                Some(r) => parse_route_opt(r)?,
                None => None,
            };
        }
        if let Some(v) = &self.recipient_validation {
            d.recipient_validation = match v.as_deref().map(str::trim) {
                None | Some("inherit") | Some("") => None,
                Some(v) => Some(parse_recipient_validation(v)?),
            };
        }
        Ok(())
    }
}

/// `POST /recipients`: one all-or-nothing change of the recipient list. Entries are addresses of
/// the tenant's accepted domains, or `@domain` / `*@domain` for a domain's catch-all.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientsChange {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Empty the list first: `add` becomes the whole list (an import of the directory).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

/// What a recipient list change did.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecipientsChanged {
    pub added: u64,
    pub removed: u64,
    pub total: u64,
}

/// `GET /recipients`: one page of the list, in address order.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecipientPage {
    pub recipients: Vec<String>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One entry of a recipient list, normalized: `local@domain` lower case, or `@domain` for a
/// catch-all (written `@domain` or `*@domain`). The domain is returned for the caller to check.
pub fn parse_recipient_entry(s: &str) -> Result<(String, String), String> {
    let t = s.trim();
    let bad = || {
        format!(
            "invalid recipient {s:?}: expected an address such as bob@contoso.com, or @contoso.com for every address of the domain"
        )
    };
    if let Some(domain) = t.strip_prefix("*@").or_else(|| t.strip_prefix('@')) {
        let domain = names::normalize_domain(domain).ok_or_else(bad)?;
        return Ok((format!("@{domain}"), domain));
    }
    let a = portcullis_smtp::Address::parse(t).ok_or_else(bad)?;
    let address = a.to_string().to_ascii_lowercase();
    let domain = a.domain().to_string();
    Ok((address, domain))
}

impl ConnectorPatch {
    /// Applies the patch to `c`, validating every field and the combination.
    pub fn apply(&self, c: &mut Connector) -> Result<(), String> {
        if let Some(v) = &self.connector_type {
            c.connector_type = parse_connector_type(v)?;
        }
        if let Some(list) = &self.sender_ips {
            c.sender_ips = list
                .iter()
                .map(|s| parse_cidr(s))
                .collect::<Result<_, _>>()?;
        }
        if let Some(list) = &self.tls_cert_names {
            c.tls_cert_names = list
                .iter()
                .map(|s| parse_cert_name(s))
                .collect::<Result<_, _>>()?;
        }
        if let Some(list) = &self.sender_domains {
            c.sender_domains = list
                .iter()
                .map(|s| parse_sender_domain(s))
                .collect::<Result<_, _>>()?;
            if c.sender_domains.is_empty() {
                c.sender_domains = portcullis_policy::default_sender_domains();
            }
        }
        if let Some(v) = self.require_tls {
            c.require_tls = v;
        }
        if let Some(v) = self.restrict_domains_to_ip {
            c.restrict_domains_to_ip = v;
        }
        if let Some(v) = self.restrict_domains_to_cert {
            c.restrict_domains_to_cert = v;
        }
        if let Some(v) = self.enabled {
            c.enabled = v;
        }
        if let Some(list) = &self.skip_ips {
            c.skip_ips = list
                .iter()
                .map(|s| parse_cidr(s))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = self.skip_last_ip {
            c.skip_last_ip = v;
        }
        if self.sender_ips.is_some() {
            check_broad_ranges("sender IP range", &c.sender_ips, self.allow_broad_range)?;
        }
        if self.skip_ips.is_some() {
            check_broad_ranges("skip range", &c.skip_ips, self.allow_broad_range)?;
        }
        if c.skip_last_ip && !c.skip_ips.is_empty() {
            return Err(format!(
                "connector {:?}: --skip-ips and --skip-last-ip exclude each other (skip-last-ip believes only the top Received header)",
                c.name
            ));
        }
        if c.restrict_domains_to_ip && c.sender_ips.is_empty() {
            return Err(format!(
                "connector {:?}: restrict-domains-to-ip needs at least one --sender-ip",
                c.name
            ));
        }
        if c.restrict_domains_to_cert && c.tls_cert_names.is_empty() {
            return Err(format!(
                "connector {:?}: restrict-domains-to-cert needs at least one --tls-cert-name",
                c.name
            ));
        }
        if (c.restrict_domains_to_ip || c.restrict_domains_to_cert)
            && c.connector_type != ConnectorType::Partner
        {
            return Err(format!(
                "connector {:?}: restrict-domains-to-ip/cert apply to partner connectors only",
                c.name
            ));
        }
        if c.sender_ips.is_empty() && c.tls_cert_names.is_empty() {
            return Err(format!(
                "connector {:?}: needs at least one --sender-ip or --tls-cert-name",
                c.name
            ));
        }
        Ok(())
    }
}

/// `POST /tenants/{t}/simulate`: a transaction to explain, nothing is sent or stored.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helo: Option<String>,
    /// An address, or `<>` for the null sender.
    pub mail_from: String,
    pub rcpt: String,
    /// Pretend the client presented a trusted certificate with this name (over STARTTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_name: Option<String>,
    /// The message (RFC 5322 text) for the end-of-DATA checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eml: Option<String>,
}

/// One step of a simulated decision, in order.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimulateStep {
    pub step: String,
    pub outcome: String,
    pub detail: String,
}

/// How one connector of the tenant fared (SPEC §2 conditions 1–4).
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimulateConnector {
    pub name: String,
    pub enabled: bool,
    /// `certificate`, `ip/<prefix>` or null.
    pub peer_match: Option<String>,
    pub tls_ok: bool,
    pub sender_domain_ok: bool,
    pub attributes: bool,
}

#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimulateReport {
    pub tenant: Option<String>,
    pub directory_version: u64,
    pub steps: Vec<SimulateStep>,
    pub connectors: Vec<SimulateConnector>,
    pub attribution: String,
    pub connector: Option<String>,
    pub direct_send: bool,
    /// The decision-table row of SPEC §2 (null when deferred by a DNS failure).
    pub row: Option<u8>,
    pub rcpt_reply: String,
    pub data_reply: Option<String>,
    pub auth: Option<portcullis_store::TraceAuth>,
    /// `compauth=<verdict> reason=<nnn>` when a message was given.
    pub compauth: Option<String>,
    /// The reply the client would finally get.
    pub reply: String,
    /// Mail-flow rules, when a message was given: which matched (and why) and which did not.
    #[serde(default)]
    pub rules_matched: Vec<portcullis_policy::rules::RuleMatch>,
    #[serde(default)]
    pub rules_missed: Vec<portcullis_policy::rules::RuleMiss>,
}

/// `POST /tenants/{t}/quarantine/{id}/release`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Deliver to these addresses instead of the original recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
}

/// `GET /tenants/{t}/quarantine/{id}`: the entry, its header section and a plain-text preview.
/// Nothing in the message is rendered or executed: HTML parts are shown as text, attachments by
/// name and size only.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuarantineDetail {
    pub entry: portcullis_store::QuarantineEntry,
    pub headers: String,
    pub preview: String,
    pub attachments: Vec<String>,
}

/// Query parameters of `GET /tenants/{t}/quarantine`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuarantineParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// At most this many (1 to 100000; default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<u32>,
    /// Continue after the previous page: the `X-Next-Cursor` of its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Validates a rule as the API receives it: name, tenant, and everything `CompiledRule::compile`
/// checks (regexes, reject code and text, header names, domains, times). The error names the field.
pub fn validate_rule(
    rule: &mut portcullis_policy::rules::Rule,
    tenant: &str,
) -> Result<(), String> {
    rule.tenant = tenant.to_string();
    parse_connector_name(&rule.name).map_err(|e| e.replace("connector name", "rule name"))?;
    for a in &mut rule.actions {
        if let portcullis_policy::rules::RuleAction::RedirectTo(to) = a {
            for addr in to.iter_mut() {
                let parsed = portcullis_smtp::Address::parse(addr.trim())
                    .ok_or_else(|| format!("redirect_to: invalid address {addr:?}"))?;
                *addr = parsed.to_string();
            }
        }
    }
    for list in [&mut rule.conditions, &mut rule.exceptions] {
        for d in list
            .sender_domain_is
            .iter_mut()
            .chain(list.recipient_domain_is.iter_mut())
        {
            *d = parse_domain(d)?;
        }
    }
    portcullis_policy::rules::CompiledRule::compile(rule)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

// ---- Direct Send report, readiness, connector suggestions, replay (SPEC §9) ----

/// Query of `GET /tenants/{t}/reports/direct-send` and `GET /tenants/{t}/readiness`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// A humantime duration (default 30d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// `report unknown-recipients`: who tried recipients the tenant does not have (recipient
/// validation), per client address — a dictionary attack is one source with many.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnknownRecipientsReport {
    pub tenant: String,
    /// RFC 3339: the start of the period.
    pub since: String,
    /// Unknown recipients refused in the period, from every source.
    pub refusals: u64,
    /// Most refusals first.
    pub sources: Vec<UnknownRecipientSource>,
}

#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnknownRecipientSource {
    pub client_ip: String,
    /// Unknown recipients refused (`550 5.4.1`).
    pub refusals: u64,
    /// Different addresses tried (counted up to 10,000 per source).
    pub distinct_recipients: u64,
    /// Transactions with at least one.
    pub transactions: u64,
    /// Sessions closed for too many unknown recipients (`421`).
    pub cut_off: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// A few of the addresses tried.
    pub samples: Vec<String>,
}

/// `GET /tenants/{t}/summary` (`tenant show`): a tenant at a glance.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantSummary {
    pub tenant: portcullis_policy::Tenant,
    /// Where its mail goes unless a domain has a route of its own (its own or the operator's).
    pub route: String,
    pub domains: Vec<AcceptedDomain>,
    pub connectors: Vec<Connector>,
    pub rules: u64,
    /// Addresses in its recipient list (recipient validation `list`).
    pub recipients: u64,
}

/// Counts of results (`pass` → 12, `fail` → 3, ...).
pub type Counts = std::collections::BTreeMap<String, u64>;

/// One sending source of direct-send traffic: a client IP, or its /24 (IPv4) or /48 (IPv6) when
/// several addresses of that network send.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportSource {
    /// The IP address or network.
    pub source: String,
    /// Distinct client IPs seen (at most 20 listed).
    pub ips: Vec<String>,
    /// Reverse DNS (PTR) name of the first IP, when it has one.
    pub rdns: Option<String>,
    pub helo: Vec<String>,
    pub p1_domains: Vec<String>,
    pub p2_domains: Vec<String>,
    pub spf: Counts,
    pub dkim: Counts,
    pub dmarc: Counts,
    pub arc: Counts,
    /// Messages received over TLS.
    pub tls: u64,
    /// Trusted client-certificate names presented.
    pub cert_names: Vec<String>,
    pub messages: u64,
    /// Distinct recipients.
    pub recipients: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// Delivered (or quarantined) while the mode was `off`.
    pub delivered: u64,
    /// Accepted and marked by `audit` mode.
    pub audited: u64,
    /// Refused with 5.7.68.
    pub refused: u64,
    /// Would be refused if reject direct send were `on` (not exempted by a trusted ARC sealer or
    /// aligned DKIM).
    pub would_refuse: u64,
    /// `likely-legitimate` (SPF or DKIM passes, or the evidence adds up to 3 or more),
    /// `likely-forwarded` (an ARC chain passes), `likely-spoofing` (the evidence adds up to -2 or
    /// less) or `unknown` (review it).
    pub verdict: String,
    /// The sum of the evidence's weights.
    #[serde(default)]
    pub score: i32,
    /// Distinct days (UTC) with traffic.
    #[serde(default)]
    pub days: u64,
    /// What the verdict rests on, one item per signal.
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    pub sample_trace_ids: Vec<String>,
}

/// One piece of evidence about a source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evidence {
    /// What was looked at: `authentication`, `arc`, `spf`, `dkim`, `certificate`, `tls`,
    /// `private-address`, `rdns`, `days`, `helo`, `recipients`, `network`.
    pub signal: String,
    /// For a legitimate sender (positive), against (negative), or neither (0).
    pub weight: i32,
    /// In plain language, with the numbers.
    pub detail: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportSummary {
    pub messages: u64,
    pub sources: u64,
    pub would_refuse: u64,
    pub delivered: u64,
    pub audited: u64,
    pub refused: u64,
    /// `[date (YYYY-MM-DD), messages]`, oldest first.
    pub daily: Vec<(String, u64)>,
}

/// `GET /tenants/{t}/reports/daily`: the tenant's messages per UTC day, by trace status and by
/// direct-send outcome (from the `trace_daily` rollup: any period answers at once).
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DailyReport {
    pub tenant: String,
    /// The first and last day (`YYYY-MM-DD`, UTC) of the period.
    pub since: String,
    pub until: String,
    /// Every day of the period, oldest first (days without mail included, with empty counts).
    pub days: Vec<DailyRow>,
    /// The period's sums.
    pub totals: DailyTotals,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DailyRow {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Records by their current status (`delivered`, `quarantined`, `rejected`, `deferred`,
    /// `pending`, `failed`).
    pub statuses: Counts,
    /// Direct-send records by what the rule did: `allowed` (mode off), `exempted`, `audited`,
    /// `refused`.
    pub direct_send: Counts,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DailyTotals {
    pub statuses: Counts,
    pub direct_send: Counts,
}

/// `portcullis report direct-send --format json`: the documented schema (README).
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DirectSendReport {
    pub tenant: String,
    /// RFC 3339 bounds of the period.
    pub since: String,
    pub until: String,
    /// The tenant's current `reject_direct_send`.
    pub mode: String,
    pub summary: ReportSummary,
    /// Sorted by message count, largest first.
    pub sources: Vec<ReportSource>,
}

/// A connector the report proposes.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuggestedConnector {
    pub name: String,
    pub sender_ips: Vec<String>,
    pub tls_cert_names: Vec<String>,
    /// The tenant's domains it vouches for: those its sources used.
    #[serde(default)]
    pub sender_domains: Vec<String>,
    /// The sources (report `source`) it covers, and their messages.
    pub covers: Vec<String>,
    pub messages: u64,
    /// The command that creates it.
    pub command: String,
}

/// `POST /tenants/{t}/reports/direct-send/suggest`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuggestRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Create the suggested connectors.
    #[serde(default)]
    pub apply: bool,
    /// Propose a connector for this address or CIDR (whatever the report's verdicts), saying
    /// why it is or is not recommended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The assessment of a connector for a source the administrator named.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourceAssessment {
    /// The address or network named.
    pub source: String,
    pub recommended: bool,
    /// The report's sources inside it, and their messages.
    pub covers: Vec<String>,
    pub messages: u64,
    /// Why it is or is not recommended, in plain language.
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuggestResponse {
    pub connectors: Vec<SuggestedConnector>,
    /// Other advice (trusted ARC sealers for forwarded mail, ...), as commands.
    pub other: Vec<String>,
    /// Names of the connectors created (with `apply`).
    pub applied: Vec<String>,
    /// With `source`: whether the proposed connector is recommended, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment: Option<SourceAssessment>,
}

/// One finding of `portcullis org readiness`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReadinessItem {
    pub source: String,
    pub verdict: String,
    pub messages: u64,
    /// Plain-language explanation.
    pub explanation: String,
    /// What to run (empty for spoofing sources: refusing them is the point).
    pub command: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Readiness {
    pub tenant: String,
    pub mode: String,
    pub since: String,
    /// One-paragraph assessment.
    pub assessment: String,
    pub would_refuse: u64,
    pub items: Vec<ReadinessItem>,
}

/// `POST /tenants/{t}/simulate/replay`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// `reject-direct-send=on|off|audit`, `direct-send-scope=...`, `honor-dmarc=on|off`,
    /// `arc-trusted-sealer=D`, `direct-send-allow-dkim-aligned=on|off`.
    #[serde(default)]
    pub set: Vec<String>,
    /// `NAME sender-ip=CIDR [sender-ip=CIDR...] [tls-cert-name=N] [sender-domain=D] [type=partner|on-premises] [require-tls]`
    #[serde(default)]
    pub add_connectors: Vec<String>,
    #[serde(default)]
    pub remove_connectors: Vec<String>,
}

/// A transaction whose outcome would change.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayChange {
    pub trace_id: String,
    pub received_at: String,
    pub client_ip: String,
    pub mail_from: String,
    pub recipient: String,
    /// `accepted` or the refusal reply.
    pub before: String,
    pub after: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayReport {
    pub tenant: String,
    pub since: String,
    /// Recorded transactions (tenant copies) replayed, and recipients in them.
    pub transactions: u64,
    pub recipients: u64,
    pub changed: u64,
    pub newly_refused: u64,
    pub newly_accepted: u64,
    pub changes: Vec<ReplayChange>,
}

/// `PATCH /tenants/{t}` and `PATCH /tenants/{t}/domains/{d}`: the delivery route (`null` = default).
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutePatch {
    pub route: Option<String>,
}

/// A route URL, normalized; `''` means "no route of its own" (`None`).
pub fn parse_route_opt(s: &str) -> Result<Option<String>, String> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    portcullis_policy::route::Route::parse(s).map(|r| Some(r.to_string()))
}

/// One message in the delivery queue (`portcullis queue list/show`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueItem {
    /// `<trace_id>.<tenant>`: what `queue show/retry/delete` take.
    pub id: String,
    pub trace_id: String,
    pub tenant: String,
    pub mail_from: String,
    pub attempts: u32,
    pub first_attempt: Option<String>,
    pub next_attempt: Option<String>,
    pub size: u64,
    /// Per recipient: address, route, status (pending/delivered/failed) and the last reply.
    pub recipients: Vec<QueueRecipient>,
    /// The node whose spool holds it (`[node] name`): `queue retry/delete` go to that node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueRecipient {
    pub address: String,
    pub route: String,
    pub status: String,
    pub reply: String,
}

/// Query of `GET /queue`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// A route URL (or a prefix of one, e.g. `smtp://mail.contoso.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// At most this many (1 to 100000; default 1000), oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<u32>,
    /// Continue after the previous page: the `X-Next-Cursor` of its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Query of `PUT /tenants/{t}/rules/{name}`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PutRuleParams {
    /// Replace the rule only if it is still the version read (`rule_version` of the rule a GET
    /// answered); otherwise 409 and nothing changes. `rule set` sends it.
    pub if_version: Option<String>,
}

/// A rule's version: a checksum of its JSON, the same for the CLI and the server, so `rule
/// set` (GET, apply the flags, PUT) can refuse to write over a change made in between.
pub fn rule_version(rule: &portcullis_policy::rules::Rule) -> String {
    let json = serde_json::to_string(rule).unwrap_or_default();
    format!("{:08x}{:08x}", crc32fast::hash(json.as_bytes()), json.len())
}

/// Query of `DELETE /queue/{id}`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueDeleteParams {
    /// Send the sender a delivery status notification for the recipients not yet delivered.
    #[serde(default)]
    pub dsn: bool,
}

/// `POST /tenants/{t}/domains/{d}/verify`: nothing to say but the wish (the TXT record is
/// looked up at the domain).
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyDomain {}

/// The role of an API token (SPEC's role names), shared by the server's role table and the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// All tenants; creates tenants, manages tokens, the queue, metrics.
    Operator,
    /// Everything within its tenant.
    OrgAdmin,
    /// Tenant settings such as reject direct send.
    OrgConfig,
    /// Connectors, domains, rules, routes.
    MailFlow,
    QuarantineAdmin,
    /// Trace, reports, read-only.
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "operator" => Role::Operator,
            "org-admin" => Role::OrgAdmin,
            "org-config" => Role::OrgConfig,
            "mail-flow" => Role::MailFlow,
            "quarantine-admin" => Role::QuarantineAdmin,
            "viewer" => Role::Viewer,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::OrgAdmin => "org-admin",
            Role::OrgConfig => "org-config",
            Role::MailFlow => "mail-flow",
            Role::QuarantineAdmin => "quarantine-admin",
            Role::Viewer => "viewer",
        }
    }
}

/// `?k=v&…` from the serialized fields of `params` (absent fields are skipped), or "".
pub fn query_string<T: Serialize>(params: &T) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(params) else {
        return String::new();
    };
    let pairs: Vec<String> = map
        .iter()
        .filter_map(|(k, v)| {
            let v = match v {
                serde_json::Value::Null => return None,
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(format!("{}={}", encode(k), encode(&v)))
        })
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// Percent-encodes everything but the RFC 3986 unreserved characters (safe for a path segment
/// and a query value).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
