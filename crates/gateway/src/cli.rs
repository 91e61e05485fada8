//! The command line (SPEC §7): argument definitions for every command, and the admin-API client
//! behind every command except `serve`.
//!
//! A client command runs in two steps: [`plan`] validates the arguments locally with the shared
//! `api_types` functions and turns them into one HTTP [`Call`] (a bad value never reaches the
//! server), then the call is sent and its answer printed.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use portcullis_policy::{AcceptedDomain, Connector, OrgSettings, Tenant};
use portcullis_store::TraceRecord;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api_types::{
    self, ConnectorPatch, NewDomain, NewTenant, OrgPatch, TRACE_STATUSES, TraceParams,
};

#[derive(Parser, Debug)]
#[command(
    name = "portcullis",
    version,
    about = "Portcullis inbound SMTP gateway: tenant attribution and Reject Direct Send"
)]
pub struct Cli {
    /// Admin API of a running gateway
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_SERVER",
        default_value = "http://127.0.0.1:8025"
    )]
    pub server: String,
    /// Admin token (default: read from <data-dir>/admin.token)
    #[arg(long, global = true, env = "PORTCULLIS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory (gateway state; where `admin.token` is read from)
    #[arg(long, global = true, env = "PORTCULLIS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The data directory when `--data-dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "./portcullis-data";

impl Cli {
    /// `--data-dir`, else [`DEFAULT_DATA_DIR`].
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (SMTP listener + admin API)
    Serve(ServeArgs),
    /// Tenants (organizations)
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Accepted domains of a tenant
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Organization settings of a tenant (Reject Direct Send and friends)
    #[command(subcommand)]
    Org(OrgCommand),
    /// Inbound connectors of a tenant
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Message trace
    Trace(TraceArgs),
    /// Explain step by step what the gateway would decide for a transaction (nothing is sent)
    Simulate(SimulateArgs),
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Tenant name
    #[arg(long)]
    pub tenant: String,
    /// Client IP address
    #[arg(long, value_name = "IP")]
    pub ip: String,
    /// P1 sender (MAIL FROM); `<>` for the null sender
    #[arg(long, value_name = "ADDRESS")]
    pub mail_from: String,
    /// Recipient (RCPT TO)
    #[arg(long, value_name = "ADDRESS")]
    pub rcpt: String,
    /// HELO/EHLO name
    #[arg(long, value_name = "NAME")]
    pub helo: Option<String>,
    /// Assume STARTTLS with a trusted client certificate of this name
    #[arg(long, value_name = "NAME")]
    pub tls_cert_name: Option<String>,
    /// A message file for the end-of-DATA checks (DKIM, ARC, DMARC, P2)
    #[arg(long, value_name = "FILE")]
    pub eml: Option<PathBuf>,
    /// Print the server's JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Configuration file (TOML)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// SMTP listen address (overrides the config file)
    #[arg(long, value_name = "ADDR")]
    pub smtp_listen: Option<SocketAddr>,
    /// Admin API listen address (overrides the config file)
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant
    Add {
        /// Tenant name, e.g. contoso
        name: String,
    },
    /// List tenants
    List {
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete a tenant and everything it owns
    Remove {
        /// Tenant name
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DomainCommand {
    /// Add an accepted domain
    Add {
        /// Domain name
        domain: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// authoritative (default) or internal-relay
        #[arg(long = "type", value_name = "TYPE")]
        domain_type: Option<String>,
        /// Cover every subdomain too
        #[arg(long)]
        match_subdomains: bool,
    },
    /// List accepted domains
    List {
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove an accepted domain
    Remove {
        /// Domain name
        domain: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Show the tenant's settings
    Show {
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Change the tenant's settings (only the flags given change)
    Set(OrgSetArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct OrgSetArgs {
    /// Tenant name
    #[arg(long)]
    pub tenant: String,
    /// on, off or audit
    #[arg(long, value_name = "MODE")]
    pub reject_direct_send: Option<String>,
    /// envelope or envelope-and-header
    #[arg(long, value_name = "SCOPE")]
    pub direct_send_scope: Option<String>,
    /// on or off
    #[arg(long, value_name = "ON|OFF")]
    pub honor_dmarc: Option<String>,
    /// ARC sealer domain to trust (repeatable; replaces the list; '' clears it)
    #[arg(long = "arc-trusted-sealer", value_name = "DOMAIN")]
    pub arc_trusted_sealers: Vec<String>,
    /// on or off
    #[arg(long, value_name = "ON|OFF")]
    pub direct_send_allow_dkim_aligned: Option<String>,
    /// junk, quarantine or none
    #[arg(long, value_name = "ACTION")]
    pub spoof_action: Option<String>,
    /// Operator-configured sending service to trust (repeatable; replaces the list; '' clears it)
    #[arg(long = "trust-service", value_name = "NAME")]
    pub trust_services: Vec<String>,
    /// Print the server's JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ConnectorCommand {
    /// Create an inbound connector
    Add {
        /// Connector name
        name: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        flags: ConnectorFlags,
    },
    /// List inbound connectors
    List {
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one inbound connector
    Show {
        /// Connector name
        name: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Change an inbound connector (only the flags given change)
    Set {
        /// Connector name
        name: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        flags: ConnectorFlags,
    },
    /// Delete an inbound connector
    Remove {
        /// Connector name
        name: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
    },
}

/// The connector properties shared by `connector add` and `connector set`. Boolean flags take an
/// optional value: `--require-tls` means true, `--require-tls=false` false.
#[derive(Args, Debug, Clone, Default)]
pub struct ConnectorFlags {
    /// partner (default) or on-premises
    #[arg(long = "type", value_name = "TYPE")]
    pub connector_type: Option<String>,
    /// Sender IP address or CIDR (repeatable; replaces the list; '' clears it)
    #[arg(long = "sender-ip", value_name = "CIDR")]
    pub sender_ips: Vec<String>,
    /// TLS client certificate name, e.g. mail.example.com or *.example.com (repeatable; replaces the list)
    #[arg(long = "tls-cert-name", value_name = "NAME")]
    pub tls_cert_names: Vec<String>,
    /// Sender domain: *, example.com or *.example.com (repeatable; replaces the list; default *)
    #[arg(long = "sender-domain", value_name = "DOMAIN")]
    pub sender_domains: Vec<String>,
    /// Refuse mail from this connector without TLS
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub require_tls: Option<String>,
    /// Accept the sender domains only from the sender IPs (partner connectors)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub restrict_domains_to_ip: Option<String>,
    /// Accept the sender domains only with the certificate names (partner connectors)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub restrict_domains_to_cert: Option<String>,
    /// Disable the connector
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", conflicts_with = "enabled")]
    pub disabled: Option<String>,
    /// Enable the connector
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub enabled: Option<String>,
    /// Print the server's JSON
    #[arg(long)]
    pub json: bool,
}

/// `portcullis trace --tenant T [filters]` searches; `portcullis trace show ID --tenant T` shows one
/// record. The filters and the `show` subcommand exclude each other; `--tenant` of the search is
/// required only when no subcommand is given.
#[derive(Args, Debug, Clone, Default)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TraceArgs {
    #[command(subcommand)]
    pub command: Option<TraceCommand>,
    /// Tenant name
    #[arg(long, required = true)]
    pub tenant: Option<String>,
    /// P1 (MAIL FROM) address
    #[arg(long, value_name = "ADDRESS")]
    pub sender: Option<String>,
    /// Recipient address
    #[arg(long, value_name = "ADDRESS")]
    pub recipient: Option<String>,
    /// Client IP address
    #[arg(long, value_name = "IP")]
    pub from_ip: Option<String>,
    /// Message-ID header value
    #[arg(long, value_name = "ID")]
    pub message_id: Option<String>,
    /// pending, delivered, quarantined, rejected, deferred or failed
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Records received within this long, e.g. 2h or 7d
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["start", "end"])]
    pub since: Option<String>,
    /// Earliest receive time (RFC 3339, inclusive)
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// Latest receive time (RFC 3339, exclusive)
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
    /// At most this many records (newest first)
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Print the server's JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum TraceCommand {
    /// Show one trace record in full
    Show {
        /// Trace id (from `portcullis trace`)
        trace_id: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
}

// ---------------------------------------------------------------------------------------------
// Planning: local validation, then one HTTP call.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

/// How a successful answer is printed (unless `--json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A one-line confirmation, the body is not printed.
    Confirm(String),
    TenantList,
    DomainList,
    Org,
    ConnectorList,
    Connector,
    TraceList,
    TraceShow,
    Simulate,
}

/// One admin-API request, fully validated.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    /// Path below the server URL, segments percent-encoded, query included.
    pub path: String,
    pub body: Option<Value>,
    pub output: Output,
    /// Print the answer body as pretty JSON instead of `output`.
    pub json: bool,
}

impl Call {
    fn new(method: Method, path: String, output: Output) -> Call {
        Call {
            method,
            path,
            body: None,
            output,
            json: false,
        }
    }
    fn body<T: Serialize>(mut self, b: &T) -> Call {
        self.body = Some(serde_json::to_value(b).expect("request bodies serialize"));
        self
    }
    fn json(mut self, json: bool) -> Call {
        self.json = json;
        self
    }
}

/// Validates a client command locally and turns it into its HTTP call. `Err` is the one-line
/// message naming the bad value (exit status 2). `serve` is not a client command.
pub fn plan(command: &Command) -> Result<Call, String> {
    match command {
        Command::Serve(_) => Err("`serve` is not a client command".to_string()),
        Command::Tenant(c) => plan_tenant(c),
        Command::Domain(c) => plan_domain(c),
        Command::Org(c) => plan_org(c),
        Command::Connector(c) => plan_connector(c),
        Command::Trace(t) => plan_trace(t),
        Command::Simulate(a) => plan_simulate(a),
    }
}

fn plan_simulate(a: &SimulateArgs) -> Result<Call, String> {
    let path = format!("{}/simulate", tenant_path(&a.tenant)?);
    a.ip.trim()
        .parse::<std::net::IpAddr>()
        .map_err(|_| format!("invalid IP address {:?}", a.ip))?;
    if let Some(n) = &a.tls_cert_name {
        api_types::parse_cert_name(n)?;
    }
    let eml = match &a.eml {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read --eml {}: {e}", file.display()))?,
        ),
        None => None,
    };
    let req = api_types::SimulateRequest {
        ip: a.ip.clone(),
        helo: a.helo.clone(),
        mail_from: a.mail_from.clone(),
        rcpt: a.rcpt.clone(),
        tls_cert_name: a.tls_cert_name.clone(),
        eml,
    };
    Ok(Call::new(Method::Post, path, Output::Simulate)
        .body(&req)
        .json(a.json))
}

const API: &str = "/api/v1";

fn tenant_path(tenant: &str) -> Result<String, String> {
    let t = api_types::parse_tenant_name(tenant)?;
    Ok(format!("{API}/tenants/{}", encode(&t)))
}

fn plan_tenant(c: &TenantCommand) -> Result<Call, String> {
    Ok(match c {
        TenantCommand::Add { name } => {
            let name = api_types::parse_tenant_name(name)?;
            Call::new(
                Method::Post,
                format!("{API}/tenants"),
                Output::Confirm(format!("tenant {name} added")),
            )
            .body(&NewTenant { name })
        }
        TenantCommand::List { json } => {
            Call::new(Method::Get, format!("{API}/tenants"), Output::TenantList).json(*json)
        }
        TenantCommand::Remove { name } => Call::new(
            Method::Delete,
            tenant_path(name)?,
            Output::Confirm(format!("tenant {name} removed")),
        ),
    })
}

fn plan_domain(c: &DomainCommand) -> Result<Call, String> {
    Ok(match c {
        DomainCommand::Add {
            domain,
            tenant,
            domain_type,
            match_subdomains,
        } => {
            let base = tenant_path(tenant)?;
            let domain = api_types::parse_domain(domain)?;
            if let Some(t) = domain_type {
                api_types::parse_domain_type(t)?;
            }
            let body = NewDomain {
                domain: domain.clone(),
                domain_type: domain_type.clone(),
                match_subdomains: *match_subdomains,
            };
            Call::new(
                Method::Post,
                format!("{base}/domains"),
                Output::Confirm(format!("domain {domain} added to tenant {tenant}")),
            )
            .body(&body)
        }
        DomainCommand::List { tenant, json } => Call::new(
            Method::Get,
            format!("{}/domains", tenant_path(tenant)?),
            Output::DomainList,
        )
        .json(*json),
        DomainCommand::Remove { domain, tenant } => {
            let base = tenant_path(tenant)?;
            let domain = api_types::parse_domain(domain)?;
            Call::new(
                Method::Delete,
                format!("{base}/domains/{}", encode(&domain)),
                Output::Confirm(format!("domain {domain} removed from tenant {tenant}")),
            )
        }
    })
}

/// A repeatable list flag: absent → unchanged; given → replaces the list, empty values dropped
/// (so `--flag ''` clears it).
fn list_flag(values: &[String]) -> Option<Vec<String>> {
    if values.is_empty() {
        None
    } else {
        Some(
            values
                .iter()
                .filter(|v| !v.trim().is_empty())
                .cloned()
                .collect(),
        )
    }
}

fn on_off(flag: &str, v: &Option<String>) -> Result<Option<bool>, String> {
    v.as_deref()
        .map(|s| api_types::parse_on_off(flag, s))
        .transpose()
}

fn plan_org(c: &OrgCommand) -> Result<Call, String> {
    Ok(match c {
        OrgCommand::Show { tenant, json } => Call::new(
            Method::Get,
            format!("{}/org", tenant_path(tenant)?),
            Output::Org,
        )
        .json(*json),
        OrgCommand::Set(a) => {
            let base = tenant_path(&a.tenant)?;
            let mut patch = OrgPatch {
                reject_direct_send: a.reject_direct_send.clone(),
                direct_send_scope: a.direct_send_scope.clone(),
                honor_dmarc: on_off("--honor-dmarc", &a.honor_dmarc)?,
                arc_trusted_sealers: list_flag(&a.arc_trusted_sealers),
                direct_send_allow_dkim_aligned: on_off(
                    "--direct-send-allow-dkim-aligned",
                    &a.direct_send_allow_dkim_aligned,
                )?,
                spoof_action: a.spoof_action.clone(),
                trust_services: None,
            };
            // The trusted services are the operator's configuration, known only to the server.
            patch.apply(&mut OrgSettings::default(), &[])?;
            patch.trust_services = list_flag(&a.trust_services);
            Call::new(Method::Patch, format!("{base}/org"), Output::Org)
                .body(&patch)
                .json(a.json)
        }
    })
}

fn connector_patch(f: &ConnectorFlags) -> Result<ConnectorPatch, String> {
    let enabled = match (
        on_off("--disabled", &f.disabled)?,
        on_off("--enabled", &f.enabled)?,
    ) {
        (Some(d), _) => Some(!d),
        (None, e) => e,
    };
    Ok(ConnectorPatch {
        name: None,
        connector_type: f.connector_type.clone(),
        sender_ips: list_flag(&f.sender_ips),
        tls_cert_names: list_flag(&f.tls_cert_names),
        sender_domains: list_flag(&f.sender_domains),
        require_tls: on_off("--require-tls", &f.require_tls)?,
        restrict_domains_to_ip: on_off("--restrict-domains-to-ip", &f.restrict_domains_to_ip)?,
        restrict_domains_to_cert: on_off(
            "--restrict-domains-to-cert",
            &f.restrict_domains_to_cert,
        )?,
        enabled,
    })
}

/// Validates each value of a `connector set` patch on its own; the combination with the stored
/// connector is the server's to check.
fn check_connector_values(p: &ConnectorPatch) -> Result<(), String> {
    if let Some(t) = &p.connector_type {
        api_types::parse_connector_type(t)?;
    }
    for s in p.sender_ips.iter().flatten() {
        api_types::parse_cidr(s)?;
    }
    for s in p.tls_cert_names.iter().flatten() {
        api_types::parse_cert_name(s)?;
    }
    for s in p.sender_domains.iter().flatten() {
        api_types::parse_sender_domain(s)?;
    }
    Ok(())
}

fn plan_connector(c: &ConnectorCommand) -> Result<Call, String> {
    Ok(match c {
        ConnectorCommand::Add {
            name,
            tenant,
            flags,
        } => {
            let base = tenant_path(tenant)?;
            let name = api_types::parse_connector_name(name)?;
            let mut patch = connector_patch(flags)?;
            patch.apply(&mut Connector::new(tenant, &name))?;
            patch.name = Some(name.clone());
            Call::new(
                Method::Post,
                format!("{base}/connectors"),
                Output::Confirm(format!("connector {name:?} added")),
            )
            .body(&patch)
            .json(flags.json)
        }
        ConnectorCommand::List { tenant, json } => Call::new(
            Method::Get,
            format!("{}/connectors", tenant_path(tenant)?),
            Output::ConnectorList,
        )
        .json(*json),
        ConnectorCommand::Show { name, tenant, json } => {
            let base = tenant_path(tenant)?;
            let name = api_types::parse_connector_name(name)?;
            Call::new(
                Method::Get,
                format!("{base}/connectors/{}", encode(&name)),
                Output::Connector,
            )
            .json(*json)
        }
        ConnectorCommand::Set {
            name,
            tenant,
            flags,
        } => {
            let base = tenant_path(tenant)?;
            let name = api_types::parse_connector_name(name)?;
            let patch = connector_patch(flags)?;
            check_connector_values(&patch)?;
            Call::new(
                Method::Patch,
                format!("{base}/connectors/{}", encode(&name)),
                Output::Confirm(format!("connector {name:?} updated")),
            )
            .body(&patch)
            .json(flags.json)
        }
        ConnectorCommand::Remove { name, tenant } => {
            let base = tenant_path(tenant)?;
            let name = api_types::parse_connector_name(name)?;
            Call::new(
                Method::Delete,
                format!("{base}/connectors/{}", encode(&name)),
                Output::Confirm(format!("connector {name:?} removed")),
            )
        }
    })
}

/// An RFC 3339 time (the weak form is accepted: `2024-05-01 10:00:00`, no zone = UTC), sent in
/// the strict UTC form.
fn parse_time(flag: &str, s: &str) -> Result<String, String> {
    humantime::parse_rfc3339_weak(s.trim())
        .map(|t| humantime::format_rfc3339(t).to_string())
        .map_err(|e| {
            format!(
                "invalid time {s:?} for {flag}: {e} (expected RFC 3339, e.g. 2024-05-01T10:00:00Z)"
            )
        })
}

fn plan_trace(t: &TraceArgs) -> Result<Call, String> {
    if let Some(TraceCommand::Show {
        trace_id,
        tenant,
        json,
    }) = &t.command
    {
        let base = tenant_path(tenant)?;
        if trace_id.trim().is_empty() {
            return Err("invalid trace id \"\": must not be empty".to_string());
        }
        return Ok(Call::new(
            Method::Get,
            format!("{base}/trace/{}", encode(trace_id.trim())),
            Output::TraceShow,
        )
        .json(*json));
    }
    let tenant = t.tenant.as_deref().ok_or("missing --tenant")?;
    let base = tenant_path(tenant)?;
    let from_ip = match &t.from_ip {
        Some(s) => Some(
            s.trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("invalid IP address {s:?} for --from-ip"))?
                .to_string(),
        ),
        None => None,
    };
    if let Some(s) = &t.status
        && !TRACE_STATUSES.contains(&s.as_str())
    {
        return Err(format!(
            "invalid status {s:?}: expected one of {}",
            TRACE_STATUSES.join(", ")
        ));
    }
    if let Some(s) = &t.since {
        humantime::parse_duration(s.trim()).map_err(|e| {
            format!("invalid duration {s:?} for --since: {e} (expected e.g. 2h or 7d)")
        })?;
    }
    let start = t
        .start
        .as_deref()
        .map(|s| parse_time("--start", s))
        .transpose()?;
    let end = t
        .end
        .as_deref()
        .map(|s| parse_time("--end", s))
        .transpose()?;
    let params = TraceParams {
        sender: t.sender.clone(),
        recipient: t.recipient.clone(),
        from_ip,
        message_id: t.message_id.clone(),
        status: t.status.clone(),
        since: t.since.as_ref().map(|s| s.trim().to_string()),
        start,
        end,
        limit: t.limit,
    };
    Ok(Call::new(
        Method::Get,
        format!("{base}/trace{}", query_string(&params)),
        Output::TraceList,
    )
    .json(t.json))
}

/// `?k=v&…` from the serialized fields of `params` (absent fields are skipped), or "".
fn query_string<T: Serialize>(params: &T) -> String {
    let Ok(Value::Object(map)) = serde_json::to_value(params) else {
        return String::new();
    };
    let pairs: Vec<String> = map
        .iter()
        .filter_map(|(k, v)| {
            let v = match v {
                Value::Null => return None,
                Value::String(s) => s.clone(),
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

// ---------------------------------------------------------------------------------------------
// Running.

/// Runs every non-serve command; returns the process exit code: 0 ok, 2 bad input (local
/// validation error or HTTP 4xx from the API), 1 server error (HTTP 5xx, connection refused,
/// unreadable token file).
pub fn run_client(cli: &Cli) -> i32 {
    let call = match plan(&cli.command) {
        Ok(c) => c,
        Err(e) => return fail(2, &e),
    };
    let token = match resolve_token(cli) {
        Ok(t) => t,
        Err(e) => return fail(1, &e),
    };
    let server = cli.server.trim().trim_end_matches('/');
    match send(server, &token, &call) {
        Ok((status, body)) => handle_answer(&call, status, &body),
        Err(e) => fail(1, &e),
    }
}

fn fail(code: i32, msg: &str) -> i32 {
    eprintln!("error: {msg}");
    code
}

/// `--token` / `PORTCULLIS_TOKEN`, else `<data-dir>/admin.token` (trimmed).
fn resolve_token(cli: &Cli) -> Result<String, String> {
    if let Some(t) = cli
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Ok(t.to_string());
    }
    let path = cli.data_dir().join("admin.token");
    let missing = "no admin token: pass --token, set PORTCULLIS_TOKEN, or run from the directory holding portcullis-data/admin.token";
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Ok(_) => Err(format!("{missing} ({} is empty)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing.to_string()),
        Err(e) => Err(format!("cannot read admin token {}: {e}", path.display())),
    }
}

/// Sends the call; `Ok((status, body))` for every HTTP answer, `Err` when the gateway could not
/// be reached or the answer not read.
fn send(server: &str, token: &str, call: &Call) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(std::time::Duration::from_secs(10)))
        .timeout_global(Some(std::time::Duration::from_secs(300)))
        .build()
        .into();
    let url = format!("{server}{}", call.path);
    let auth = format!("Bearer {token}");
    let unreachable = |e: ureq::Error| format!("cannot reach the gateway at {server}: {e}");
    let result = match (call.method, &call.body) {
        (Method::Get, _) => agent.get(&url).header("Authorization", &auth).call(),
        (Method::Delete, _) => agent.delete(&url).header("Authorization", &auth).call(),
        (Method::Post, Some(b)) => agent.post(&url).header("Authorization", &auth).send_json(b),
        (Method::Post, None) => agent.post(&url).header("Authorization", &auth).send_empty(),
        (Method::Patch, Some(b)) => agent
            .patch(&url)
            .header("Authorization", &auth)
            .send_json(b),
        (Method::Patch, None) => agent
            .patch(&url)
            .header("Authorization", &auth)
            .send_empty(),
    };
    let mut resp = result.map_err(unreachable)?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .map_err(|e| format!("reading the answer from the gateway at {server}: {e}"))?;
    Ok((status, body))
}

fn handle_answer(call: &Call, status: u16, body: &str) -> i32 {
    if !(200..300).contains(&status) {
        let msg = serde_json::from_str::<api_types::ApiError>(body)
            .map(|e| e.error)
            .unwrap_or_else(|_| {
                let b = body.trim();
                if b.is_empty() {
                    format!("the gateway answered HTTP {status}")
                } else {
                    format!(
                        "the gateway answered HTTP {status}: {}",
                        b.lines().next().unwrap_or(b)
                    )
                }
            });
        return fail(if (400..500).contains(&status) { 2 } else { 1 }, &msg);
    }
    match render(call, body) {
        Ok(text) => {
            if !text.is_empty() {
                println!("{text}");
            }
            0
        }
        Err(e) => fail(1, &format!("unexpected answer from the gateway: {e}")),
    }
}

/// The text printed for a successful answer.
fn render(call: &Call, body: &str) -> Result<String, String> {
    if call.json {
        if body.trim().is_empty() {
            return Ok(String::new());
        }
        let v: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        return serde_json::to_string_pretty(&v).map_err(|e| e.to_string());
    }
    Ok(match &call.output {
        Output::Confirm(msg) => msg.clone(),
        Output::TenantList => tenant_table(&parse::<Vec<_>>(body)?),
        Output::DomainList => domain_table(&parse::<Vec<_>>(body)?),
        Output::Org => org_text(&parse(body)?),
        Output::ConnectorList => connector_table(&parse::<Vec<_>>(body)?),
        Output::Connector => connector_text(&parse(body)?),
        Output::TraceList => trace_table(&parse::<Vec<_>>(body)?),
        Output::TraceShow => trace_text(&parse(body)?),
        Output::Simulate => simulate_text(&parse(body)?),
    })
}

fn simulate_text(r: &api_types::SimulateReport) -> String {
    let width = r.steps.iter().map(|s| s.step.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, s) in r.steps.iter().enumerate() {
        out.push_str(&format!("{:>2}. {:<width$}  {}", i + 1, s.step, s.outcome));
        if !s.detail.is_empty() {
            out.push_str(&format!("  ({})", s.detail));
        }
        out.push('\n');
    }
    out.push_str(&format!("reply: {}", r.reply));
    out
}

fn parse<T: DeserializeOwned>(body: &str) -> Result<T, String> {
    serde_json::from_str(body).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Human output.

/// The serde (kebab-case) name of an enum value.
fn label<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn on_off_label(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn list_or_dash<T: ToString>(v: &[T]) -> String {
    if v.is_empty() {
        "-".to_string()
    } else {
        v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
    }
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// Aligned columns separated by two spaces, header line first; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// `key  value` lines with the keys aligned.
fn fields(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| {
            format!("{:<w$}  {v}", format!("{k}:"))
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn tenant_table(tenants: &[Tenant]) -> String {
    let rows = tenants
        .iter()
        .map(|t| vec![t.name.clone(), label(&t.settings.reject_direct_send)])
        .collect::<Vec<_>>();
    table(&["NAME", "REJECT-DIRECT-SEND"], &rows)
}

fn domain_table(domains: &[AcceptedDomain]) -> String {
    let rows = domains
        .iter()
        .map(|d| {
            vec![
                d.domain.clone(),
                label(&d.domain_type),
                yes_no(d.match_subdomains).to_string(),
            ]
        })
        .collect::<Vec<_>>();
    table(&["DOMAIN", "TYPE", "MATCH-SUBDOMAINS"], &rows)
}

fn org_text(s: &OrgSettings) -> String {
    fields(&[
        ("reject_direct_send", label(&s.reject_direct_send)),
        ("direct_send_scope", label(&s.direct_send_scope)),
        ("honor_dmarc", on_off_label(s.honor_dmarc).to_string()),
        ("arc_trusted_sealers", list_or_dash(&s.arc_trusted_sealers)),
        (
            "direct_send_allow_dkim_aligned",
            on_off_label(s.direct_send_allow_dkim_aligned).to_string(),
        ),
        ("spoof_action", label(&s.spoof_action)),
        ("trust_services", list_or_dash(&s.trust_services)),
    ])
}

fn connector_table(connectors: &[Connector]) -> String {
    let rows = connectors
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.connector_type.as_str().to_string(),
                yes_no(c.enabled).to_string(),
                yes_no(c.require_tls).to_string(),
                list_or_dash(&c.sender_ips),
                list_or_dash(&c.tls_cert_names),
                list_or_dash(&c.sender_domains),
            ]
        })
        .collect::<Vec<_>>();
    table(
        &[
            "NAME",
            "TYPE",
            "ENABLED",
            "REQUIRE-TLS",
            "SENDER-IPS",
            "TLS-CERT-NAMES",
            "SENDER-DOMAINS",
        ],
        &rows,
    )
}

fn connector_text(c: &Connector) -> String {
    fields(&[
        ("name", c.name.clone()),
        ("tenant", c.tenant.clone()),
        ("type", c.connector_type.as_str().to_string()),
        ("enabled", yes_no(c.enabled).to_string()),
        ("sender_ips", list_or_dash(&c.sender_ips)),
        ("tls_cert_names", list_or_dash(&c.tls_cert_names)),
        ("sender_domains", list_or_dash(&c.sender_domains)),
        ("require_tls", yes_no(c.require_tls).to_string()),
        (
            "restrict_domains_to_ip",
            yes_no(c.restrict_domains_to_ip).to_string(),
        ),
        (
            "restrict_domains_to_cert",
            yes_no(c.restrict_domains_to_cert).to_string(),
        ),
    ])
}

fn first_recipient(r: &TraceRecord) -> String {
    match r.recipients.split_first() {
        None => "-".to_string(),
        Some((first, [])) => first.address.clone(),
        Some((first, rest)) => format!("{} (+{})", first.address, rest.len()),
    }
}

fn trace_table(records: &[TraceRecord]) -> String {
    let rows = records
        .iter()
        .map(|r| {
            vec![
                r.received_at.clone(),
                r.trace_id.clone(),
                r.status.clone(),
                r.mail_from.clone(),
                first_recipient(r),
                r.client_ip.clone(),
                r.connector
                    .clone()
                    .unwrap_or_else(|| "anonymous".to_string()),
                yes_no(r.direct_send).to_string(),
            ]
        })
        .collect::<Vec<_>>();
    table(
        &[
            "RECEIVED",
            "TRACE-ID",
            "STATUS",
            "FROM",
            "TO",
            "IP",
            "CONNECTOR",
            "DIRECT-SEND",
        ],
        &rows,
    )
}

fn trace_text(r: &TraceRecord) -> String {
    let tls = match &r.tls {
        None => "none".to_string(),
        Some(t) => {
            let mut s = format!("{} {}", t.version, t.cipher);
            if let Some(subject) = &t.client_cert_subject {
                s.push_str(&format!(
                    ", client certificate {subject:?} ({})",
                    if t.client_cert_trusted {
                        "trusted"
                    } else {
                        "not trusted"
                    }
                ));
            }
            s
        }
    };
    let a = &r.auth;
    let auth = format!(
        "spf={} dkim={} dmarc={} arc={} compauth={}",
        opt(&a.spf),
        opt(&a.dkim),
        opt(&a.dmarc),
        opt(&a.arc),
        opt(&a.compauth)
    );
    let mut out = fields(&[
        ("trace_id", r.trace_id.clone()),
        ("tenant", r.tenant.clone()),
        ("received_at", r.received_at.clone()),
        ("client_ip", r.client_ip.clone()),
        ("helo", opt(&r.helo).to_string()),
        ("tls", tls),
        ("mail_from", r.mail_from.clone()),
        ("header_from", opt(&r.header_from).to_string()),
        ("message_id", opt(&r.message_id).to_string()),
        ("subject", opt(&r.subject).to_string()),
        ("size", r.size.to_string()),
        ("attribution", r.attribution.clone()),
        ("connector", opt(&r.connector).to_string()),
        ("direct_send", yes_no(r.direct_send).to_string()),
        ("auth", auth),
        ("status", r.status.clone()),
    ]);
    out.push_str("\nrecipients:");
    if r.recipients.is_empty() {
        out.push_str(" -");
    } else {
        let rows = r
            .recipients
            .iter()
            .map(|x| vec![x.address.clone(), x.status.clone(), x.reply.clone()])
            .collect::<Vec<_>>();
        for line in table(&["ADDRESS", "STATUS", "REPLY"], &rows).lines() {
            out.push_str("\n  ");
            out.push_str(line);
        }
    }
    out.push_str("\nevents:");
    if r.events.is_empty() {
        out.push_str(" -");
    } else {
        let rows = r
            .events
            .iter()
            .map(|e| vec![e.at.clone(), e.event.clone(), e.detail.clone()])
            .collect::<Vec<_>>();
        // No header: each event line reads `at  EVENT  detail`.
        for line in table(&["", "", ""], &rows).lines().skip(1) {
            out.push_str("\n  ");
            out.push_str(line);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        let mut v = vec!["portcullis"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn parse_err(args: &[&str]) -> clap::Error {
        let mut v = vec!["portcullis"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).expect_err(&format!("{args:?} should not parse"))
    }

    fn plan_of(args: &[&str]) -> Result<Call, String> {
        plan(&parse(args).command)
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_form_parses() {
        let forms: &[&[&str]] = &[
            &["serve"],
            &[
                "serve",
                "--config",
                "p.toml",
                "--data-dir",
                "/tmp/d",
                "--smtp-listen",
                "0.0.0.0:25",
                "--admin-listen",
                "127.0.0.1:8025",
            ],
            &["tenant", "add", "contoso"],
            &["tenant", "list"],
            &["tenant", "list", "--json"],
            &["tenant", "remove", "contoso"],
            &["domain", "add", "contoso.com", "--tenant", "contoso"],
            &[
                "domain",
                "add",
                "contoso.com",
                "--tenant",
                "contoso",
                "--type",
                "internal-relay",
                "--match-subdomains",
            ],
            &["domain", "list", "--tenant", "contoso", "--json"],
            &["domain", "remove", "contoso.com", "--tenant", "contoso"],
            &["org", "show", "--tenant", "contoso"],
            &["org", "show", "--tenant", "contoso", "--json"],
            &[
                "org",
                "set",
                "--tenant",
                "contoso",
                "--reject-direct-send",
                "on",
                "--direct-send-scope",
                "envelope-and-header",
                "--honor-dmarc",
                "off",
                "--arc-trusted-sealer",
                "google.com",
                "--arc-trusted-sealer",
                "microsoft.com",
                "--direct-send-allow-dkim-aligned",
                "on",
                "--spoof-action",
                "quarantine",
                "--trust-service",
                "mailchimp",
            ],
            &[
                "connector",
                "add",
                "Contoso on-prem",
                "--tenant",
                "contoso",
                "--type",
                "on-premises",
                "--sender-ip",
                "192.0.2.0/24",
                "--sender-ip",
                "2001:db8::/32",
                "--tls-cert-name",
                "mail.contoso.com",
                "--sender-domain",
                "*.contoso.com",
                "--require-tls",
                "--disabled",
            ],
            &[
                "connector",
                "add",
                "fabrikam",
                "--tenant",
                "contoso",
                "--tls-cert-name",
                "*.fabrikam.com",
                "--restrict-domains-to-ip",
                "--restrict-domains-to-cert",
                "--sender-ip",
                "198.51.100.7",
            ],
            &["connector", "list", "--tenant", "contoso"],
            &["connector", "list", "--tenant", "contoso", "--json"],
            &[
                "connector",
                "show",
                "fabrikam",
                "--tenant",
                "contoso",
                "--json",
            ],
            &[
                "connector",
                "set",
                "fabrikam",
                "--tenant",
                "contoso",
                "--require-tls=false",
                "--enabled",
                "--sender-ip",
                "203.0.113.9",
            ],
            &[
                "connector",
                "set",
                "fabrikam",
                "--tenant",
                "contoso",
                "--require-tls",
                "--disabled=false",
            ],
            &["connector", "remove", "fabrikam", "--tenant", "contoso"],
            &["trace", "--tenant", "contoso"],
            &["trace", "--tenant", "contoso", "--since", "1h"],
            &[
                "trace",
                "--tenant",
                "contoso",
                "--sender",
                "a@b.com",
                "--recipient",
                "c@contoso.com",
                "--from-ip",
                "192.0.2.1",
                "--message-id",
                "<x@y>",
                "--status",
                "rejected",
                "--start",
                "2024-05-01T00:00:00Z",
                "--end",
                "2024-05-02T00:00:00Z",
                "--limit",
                "10",
                "--json",
            ],
            &["trace", "show", "T1", "--tenant", "contoso"],
            &["trace", "show", "T1", "--tenant", "contoso", "--json"],
            &[
                "--server",
                "http://gw:8025",
                "--token",
                "s3cret",
                "tenant",
                "list",
            ],
            &[
                "tenant",
                "list",
                "--server",
                "http://gw:8025",
                "--data-dir",
                "d",
            ],
        ];
        for f in forms {
            parse(f);
        }
    }

    #[test]
    fn trace_forms() {
        let cli = parse(&["trace", "show", "X", "--tenant", "t"]);
        let Command::Trace(t) = &cli.command else {
            panic!("not trace")
        };
        assert!(
            matches!(&t.command, Some(TraceCommand::Show { trace_id, tenant, json: false })
            if trace_id == "X" && tenant == "t")
        );
        assert!(t.tenant.is_none());

        let cli = parse(&["trace", "--tenant", "t", "--since", "1h"]);
        let Command::Trace(t) = &cli.command else {
            panic!("not trace")
        };
        assert!(t.command.is_none());
        assert_eq!(t.tenant.as_deref(), Some("t"));
        assert_eq!(t.since.as_deref(), Some("1h"));

        // --tenant is required for the search, `show` requires its own.
        parse_err(&["trace", "--since", "1h"]);
        parse_err(&["trace", "show", "X"]);
        // Search filters and `show` exclude each other.
        parse_err(&["trace", "--tenant", "t", "--since", "1h", "show", "X"]);
    }

    #[test]
    fn since_conflicts_with_start_and_end() {
        let e = parse_err(&[
            "trace",
            "--tenant",
            "t",
            "--since",
            "1h",
            "--start",
            "2024-05-01T00:00:00Z",
        ]);
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        let e = parse_err(&[
            "trace",
            "--tenant",
            "t",
            "--end",
            "2024-05-01T00:00:00Z",
            "--since",
            "1h",
        ]);
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn connector_booleans_take_optional_values() {
        let cli = parse(&[
            "connector",
            "set",
            "x",
            "--tenant",
            "t",
            "--require-tls=false",
            "--disabled",
        ]);
        let Command::Connector(ConnectorCommand::Set { flags, .. }) = &cli.command else {
            panic!()
        };
        let p = connector_patch(flags).unwrap();
        assert_eq!(p.require_tls, Some(false));
        assert_eq!(p.enabled, Some(false));
        // A bare boolean flag does not swallow the positional name.
        let cli = parse(&[
            "connector",
            "set",
            "--require-tls",
            "x",
            "--tenant",
            "t",
            "--enabled",
        ]);
        let Command::Connector(ConnectorCommand::Set { name, flags, .. }) = &cli.command else {
            panic!()
        };
        assert_eq!(name, "x");
        let p = connector_patch(flags).unwrap();
        assert_eq!((p.require_tls, p.enabled), (Some(true), Some(true)));
        parse_err(&[
            "connector",
            "set",
            "x",
            "--tenant",
            "t",
            "--enabled",
            "--disabled",
        ]);
    }

    #[test]
    fn bad_cidr_is_named() {
        let e = plan_of(&[
            "connector",
            "add",
            "p",
            "--tenant",
            "t",
            "--sender-ip",
            "10.0.0.300/8",
        ])
        .unwrap_err();
        assert!(e.contains("10.0.0.300/8"), "{e}");
        let e = plan_of(&[
            "connector",
            "set",
            "p",
            "--tenant",
            "t",
            "--sender-ip",
            "nope",
        ])
        .unwrap_err();
        assert!(e.contains("\"nope\""), "{e}");
    }

    #[test]
    fn bad_mode_is_named() {
        let e = plan_of(&[
            "org",
            "set",
            "--tenant",
            "t",
            "--reject-direct-send",
            "maybe",
        ])
        .unwrap_err();
        assert!(e.contains("\"maybe\""), "{e}");
        let e =
            plan_of(&["org", "set", "--tenant", "t", "--honor-dmarc", "sometimes"]).unwrap_err();
        assert!(e.contains("\"sometimes\""), "{e}");
        let e =
            plan_of(&["connector", "set", "p", "--tenant", "t", "--type", "friend"]).unwrap_err();
        assert!(e.contains("\"friend\""), "{e}");
        let e =
            plan_of(&["domain", "add", "a.com", "--tenant", "t", "--type", "weird"]).unwrap_err();
        assert!(e.contains("\"weird\""), "{e}");
    }

    #[test]
    fn bad_domain_is_named() {
        let e = plan_of(&["domain", "add", "not a domain", "--tenant", "t"]).unwrap_err();
        assert!(e.contains("not a domain"), "{e}");
        let e = plan_of(&[
            "org",
            "set",
            "--tenant",
            "t",
            "--arc-trusted-sealer",
            "bad..dom",
        ])
        .unwrap_err();
        assert!(e.contains("bad..dom"), "{e}");
        let e = plan_of(&[
            "connector",
            "set",
            "p",
            "--tenant",
            "t",
            "--sender-domain",
            "a b.com",
        ])
        .unwrap_err();
        assert!(e.contains("a b.com"), "{e}");
    }

    #[test]
    fn other_local_validation() {
        let e = plan_of(&["tenant", "add", "Bad Name!"]).unwrap_err();
        assert!(e.contains("Bad Name!"), "{e}");
        let e = plan_of(&["trace", "--tenant", "t", "--from-ip", "1.2.3"]).unwrap_err();
        assert!(e.contains("1.2.3"), "{e}");
        let e = plan_of(&["trace", "--tenant", "t", "--status", "lost"]).unwrap_err();
        assert!(e.contains("lost"), "{e}");
        let e = plan_of(&["trace", "--tenant", "t", "--since", "soon"]).unwrap_err();
        assert!(e.contains("soon"), "{e}");
        let e = plan_of(&["trace", "--tenant", "t", "--start", "yesterday"]).unwrap_err();
        assert!(e.contains("yesterday"), "{e}");
        // `connector add` checks the combination too.
        let e = plan_of(&["connector", "add", "p", "--tenant", "t"]).unwrap_err();
        assert!(e.contains("--sender-ip"), "{e}");
        let e = plan_of(&[
            "connector",
            "add",
            "p",
            "--tenant",
            "t",
            "--type",
            "on-premises",
            "--sender-ip",
            "192.0.2.1",
            "--restrict-domains-to-ip",
        ])
        .unwrap_err();
        assert!(e.contains("partner"), "{e}");
        // ... `connector set` only the values.
        plan_of(&[
            "connector",
            "set",
            "p",
            "--tenant",
            "t",
            "--restrict-domains-to-ip",
        ])
        .unwrap();
    }

    #[test]
    fn planned_calls() {
        let c = plan_of(&["tenant", "add", "contoso"]).unwrap();
        assert_eq!(
            (c.method, c.path.as_str()),
            (Method::Post, "/api/v1/tenants")
        );
        assert_eq!(c.body.unwrap(), serde_json::json!({"name": "contoso"}));

        let c = plan_of(&[
            "connector",
            "show",
            "Contoso on-prem",
            "--tenant",
            "contoso",
        ])
        .unwrap();
        assert_eq!(
            c.path,
            "/api/v1/tenants/contoso/connectors/Contoso%20on-prem"
        );

        let c = plan_of(&["domain", "remove", "Contoso.COM", "--tenant", "contoso"]).unwrap();
        assert_eq!(
            (c.method, c.path.as_str()),
            (
                Method::Delete,
                "/api/v1/tenants/contoso/domains/contoso.com"
            )
        );

        let c = plan_of(&[
            "connector",
            "add",
            "Contoso on-prem",
            "--tenant",
            "contoso",
            "--sender-ip",
            "192.0.2.0/24",
            "--disabled",
        ])
        .unwrap();
        assert_eq!(c.method, Method::Post);
        assert_eq!(
            c.body.unwrap(),
            serde_json::json!({"name": "Contoso on-prem", "sender_ips": ["192.0.2.0/24"], "enabled": false})
        );
        assert_eq!(
            c.output,
            Output::Confirm("connector \"Contoso on-prem\" added".to_string())
        );

        let c = plan_of(&[
            "org",
            "set",
            "--tenant",
            "contoso",
            "--reject-direct-send",
            "on",
            "--trust-service",
            "x",
            "--honor-dmarc",
            "off",
        ])
        .unwrap();
        assert_eq!(c.method, Method::Patch);
        assert_eq!(
            c.body.unwrap(),
            serde_json::json!({"reject_direct_send": "on", "honor_dmarc": false, "trust_services": ["x"]})
        );

        let c = plan_of(&[
            "connector",
            "set",
            "p",
            "--tenant",
            "t",
            "--sender-domain",
            "",
        ])
        .unwrap();
        assert_eq!(c.body.unwrap(), serde_json::json!({"sender_domains": []}));

        let c = plan_of(&[
            "trace",
            "--tenant",
            "contoso",
            "--sender",
            "a+b@x.com",
            "--from-ip",
            "2001:DB8::1",
            "--since",
            "2h",
            "--limit",
            "5",
        ])
        .unwrap();
        let (p, q) = c.path.split_once('?').unwrap();
        assert_eq!(p, "/api/v1/tenants/contoso/trace");
        let mut q: Vec<&str> = q.split('&').collect();
        q.sort();
        assert_eq!(
            q,
            [
                "from_ip=2001%3Adb8%3A%3A1",
                "limit=5",
                "sender=a%2Bb%40x.com",
                "since=2h"
            ]
        );

        let c = plan_of(&["trace", "show", "abc/1", "--tenant", "contoso"]).unwrap();
        assert_eq!(c.path, "/api/v1/tenants/contoso/trace/abc%2F1");
        assert_eq!(c.output, Output::TraceShow);

        let c = plan_of(&["trace", "--tenant", "t", "--start", "2024-05-01 10:00:00"]).unwrap();
        assert!(
            c.path.ends_with("?start=2024-05-01T10%3A00%3A00Z"),
            "{}",
            c.path
        );
    }

    #[test]
    fn token_resolution() {
        let dir = std::env::temp_dir().join(format!("portcullis-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cli = parse(&["tenant", "list"]);
        cli.token = None;
        cli.data_dir = Some(dir.clone());
        let e = resolve_token(&cli).unwrap_err();
        assert!(e.starts_with("no admin token"), "{e}");
        std::fs::write(dir.join("admin.token"), "  abc\n").unwrap();
        assert_eq!(resolve_token(&cli).unwrap(), "abc");
        cli.token = Some("flag".into());
        assert_eq!(resolve_token(&cli).unwrap(), "flag");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreachable_server_exits_1() {
        // Port 9 on localhost (discard) is closed on test machines.
        let cli = parse(&[
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "x",
            "tenant",
            "list",
        ]);
        assert_eq!(run_client(&cli), 1);
        let cli = parse(&[
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "x",
            "tenant",
            "add",
            "Bad!",
        ]);
        assert_eq!(run_client(&cli), 2);
    }

    #[test]
    fn rendering() {
        let call = Call::new(Method::Get, String::new(), Output::TraceList);
        let body = serde_json::json!([{
            "trace_id": "T1", "tenant": "contoso", "received_at": "2024-05-01T10:00:00Z",
            "client_ip": "192.0.2.1", "helo": "mx", "tls": null, "mail_from": "a@x.com",
            "header_from": null, "message_id": null, "subject": null, "size": 10,
            "attribution": "anonymous", "connector": null, "direct_send": true,
            "auth": {"spf": "pass", "dkim": null, "dmarc": null, "arc": null, "compauth": null},
            "status": "rejected",
            "recipients": [{"address": "b@contoso.com", "status": "rejected", "reply": "550"},
                           {"address": "c@contoso.com", "status": "rejected", "reply": "550"}],
            "events": [{"at": "2024-05-01T10:00:00Z", "event": "REJECT", "detail": "direct send"}]
        }]);
        let text = render(&call, &body.to_string()).unwrap();
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("RECEIVED "));
        let row = lines.next().unwrap();
        assert!(
            row.contains("b@contoso.com (+1)") && row.contains("anonymous") && row.ends_with("yes"),
            "{row}"
        );

        let call = Call::new(Method::Get, String::new(), Output::TraceShow);
        let text = render(&call, &body[0].to_string()).unwrap();
        assert!(
            text.contains("2024-05-01T10:00:00Z  REJECT  direct send"),
            "{text}"
        );
        assert!(text.contains("spf=pass"), "{text}");

        let call = Call::new(Method::Get, String::new(), Output::TenantList).json(true);
        let text = render(&call, r#"[{"name":"contoso","settings":{}}]"#).unwrap();
        assert!(text.contains("\"name\": \"contoso\""), "{text}");
    }
}
