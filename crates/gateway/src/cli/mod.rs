//! The command line (SPEC §7): argument definitions for every command, and the admin-API client
//! behind every command except `serve`.
//!
//! A client command runs in two steps: [`plan`] validates the arguments locally with the shared
//! `api_types` functions and turns them into one HTTP [`Call`] (a bad value never reaches the
//! server), then the call is sent and its answer printed. Two exceptions make a second call: `rule
//! set` GETs the rule, applies the flags to it and PUTs it back ([`RuleEdit`]); `report
//! direct-send --suggest-connectors --apply` shows the plan, asks, then posts it again with
//! `apply: true` ([`run_suggest_apply`]).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use portcullis_policy::rules::{HeaderPattern, HeaderWords, Predicates, Rule, RuleAction};
use portcullis_policy::{AcceptedDomain, Connector, OrgSettings, Tenant};
use portcullis_store::{QuarantineEntry, TraceRecord};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api_types::{
    self, ConnectorPatch, Counts, DirectSendReport, NewDomain, NewTenant, OrgPatch,
    QuarantineDetail, QuarantineParams, Readiness, ReleaseRequest, ReplayReport, ReplayRequest,
    ReportParams, ReportSource, SimulateReport, SuggestRequest, SuggestResponse, TRACE_STATUSES,
    TraceParams,
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
    /// CA certificate (PEM) to trust for an https:// --server besides the system's, e.g. the
    /// admin API's own self-signed certificate
    #[arg(long, global = true, env = "PORTCULLIS_SERVER_CA", value_name = "FILE")]
    pub server_ca: Option<PathBuf>,
    /// API token (default: the bootstrap operator token in <data-dir>/admin.token)
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

// Parsed once per process: boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
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
    /// Mail-flow rules of a tenant: conditions, exceptions and actions
    #[command(subcommand)]
    Rule(RuleCommand),
    /// The hosted quarantine of a tenant
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Message trace
    Trace(TraceArgs),
    /// Reports on recorded traffic
    #[command(subcommand)]
    Report(ReportCommand),
    /// Explain step by step what the gateway would decide for a transaction, or replay recorded
    /// traffic against a proposed configuration (nothing is sent or changed)
    Simulate(SimulateCommandArgs),
    /// The delivery queue: messages waiting for their mailbox server
    #[command(subcommand)]
    Queue(QueueCommand),
    /// API tokens and their roles (operator only)
    #[command(subcommand)]
    Token(TokenCommand),
    /// The admin audit log: who changed what, when, from where, before and after
    Audit(AuditArgs),
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; it is printed once and stored only as a hash
    Create {
        /// A name saying who or what uses it, e.g. "ci-deploy"
        #[arg(long)]
        name: String,
        /// operator, org-admin, org-config, mail-flow, quarantine-admin or viewer
        #[arg(long)]
        role: String,
        /// The tenant of a tenant role (not for operator)
        #[arg(long)]
        tenant: Option<String>,
        /// Lifetime, e.g. 90d (default: until revoked)
        #[arg(long)]
        expires: Option<String>,
    },
    /// Tokens with their role, tenant, expiry and state (never the token itself)
    List {
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once
    Revoke {
        /// The token id (the part after `pc_`, as `token list` shows it)
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only this tenant's changes (default: all tenants; operator only)
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only changes at or after this time: RFC 3339 or an age such as 24h
    #[arg(long)]
    pub since: Option<String>,
    /// Print the server's JSON (with the whole configuration before and after)
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Messages in the queue, with each recipient's route and state
    List {
        /// Only this tenant's messages
        #[arg(long)]
        tenant: Option<String>,
        /// Only messages with recipients pending on this route (URL or prefix)
        #[arg(long, value_name = "ROUTE")]
        destination: Option<String>,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// One queued message
    Show {
        /// Queue id (`<trace id>.<tenant>`, as listed)
        id: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Attempt delivery now instead of at the scheduled time
    Retry {
        /// Queue id
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Every waiting message
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Take a message out of the queue (its undelivered recipients fail)
    Delete {
        /// Queue id
        id: String,
        /// Send the sender a delivery status notification (default: silently)
        #[arg(long)]
        dsn: bool,
    },
}

/// `portcullis simulate --tenant T --ip IP ...` explains one transaction; `portcullis simulate
/// replay --tenant T ...` replays recorded traffic. The transaction flags and the `replay`
/// subcommand exclude each other; the transaction flags are required only when no subcommand is
/// given.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SimulateCommandArgs {
    #[command(subcommand)]
    pub command: Option<SimulateCommand>,
    #[command(flatten)]
    pub transaction: Option<SimulateArgs>,
}

#[derive(Subcommand, Debug)]
pub enum SimulateCommand {
    /// Replay recorded transactions against a proposed configuration: which outcomes would change
    Replay(ReplayArgs),
}

/// The `--set` keys of `simulate replay`.
pub const REPLAY_SET_KEYS: &[&str] = &[
    "reject-direct-send",
    "direct-send-scope",
    "honor-dmarc",
    "arc-trusted-sealer",
    "direct-send-allow-dkim-aligned",
];

#[derive(Args, Debug, Clone, Default)]
pub struct ReplayArgs {
    /// Tenant name
    #[arg(long)]
    pub tenant: String,
    /// Replay the transactions received within this long, e.g. 2h or 7d
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    pub since: String,
    /// A proposed setting (repeatable): reject-direct-send=on|off|audit,
    /// direct-send-scope=envelope|envelope-and-header, honor-dmarc=on|off,
    /// arc-trusted-sealer=DOMAIN, direct-send-allow-dkim-aligned=on|off
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A proposed inbound connector (repeatable): 'NAME sender-ip=CIDR [sender-ip=CIDR...]
    /// [tls-cert-name=NAME] [sender-domain=DOMAIN] [type=partner|on-premises] [require-tls]'
    #[arg(long = "add-connector", value_name = "'NAME KEY=VALUE...'")]
    pub add_connectors: Vec<String>,
    /// Replay as if this inbound connector did not exist (repeatable)
    #[arg(long = "remove-connector", value_name = "NAME")]
    pub remove_connectors: Vec<String>,
    /// Print the server's JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Who sends direct send (anonymous mail) as the tenant's domains: from where, with which
    /// SPF/DKIM/DMARC results, how often, and what `reject-direct-send on` would refuse
    DirectSend(DirectSendArgs),
}

/// How `report direct-send` prints the report.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    #[default]
    Table,
    Json,
    Csv,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DirectSendArgs {
    /// Tenant name
    #[arg(long)]
    pub tenant: String,
    /// The traffic received within this long, e.g. 24h or 30d
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub since: String,
    /// table, json (the server's JSON) or csv (RFC 4180)
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Propose inbound connectors for the legitimate sources (nothing is created without --apply)
    #[arg(long)]
    pub suggest_connectors: bool,
    /// Create the suggested connectors (after showing them and asking)
    #[arg(long, requires = "suggest_connectors")]
    pub apply: bool,
    /// Do not ask before creating the connectors
    #[arg(long, requires = "apply")]
    pub yes: bool,
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
    /// Allow the admin API on a non-loopback address without [admin] tls_cert_file (plain HTTP,
    /// e.g. behind a TLS proxy)
    #[arg(long)]
    pub admin_insecure: bool,
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
    /// Change a tenant's delivery route
    Set {
        /// Tenant name
        name: String,
        /// maildir:PATH, smtp://host:port, smtp+tls-required://host:port, lmtp://host:port or
        /// lmtp+unix:///path ('' returns to the operator's default)
        #[arg(long, value_name = "URL")]
        route: String,
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
    /// Change an accepted domain's delivery route (overrides the tenant's)
    Set {
        /// Domain name
        domain: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// A route URL as for `tenant set`; '' returns to the tenant's route
        #[arg(long, value_name = "URL")]
        route: String,
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
    /// Is the tenant ready for `--reject-direct-send on`? What it would refuse, and what to do first
    Readiness {
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// The traffic received within this long, e.g. 24h or 30d
        #[arg(long, value_name = "DURATION", default_value = "30d")]
        since: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
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
    /// Only an org admin may release quarantined direct-send spoofs (on|off)
    #[arg(long, value_name = "on|off")]
    pub admin_only_release_direct_send: Option<String>,
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

#[derive(Subcommand, Debug)]
pub enum RuleCommand {
    /// Create a mail-flow rule
    ///
    /// The actions run in a fixed order, whatever the order of the flags: quarantine, reject,
    /// redirect-to, set-header, remove-header, prepend-subject, set-scl.
    Add {
        /// Rule name (with --from-file: default the file's)
        #[arg(required_unless_present = "from_file")]
        name: Option<String>,
        /// Tenant name
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        flags: RuleFlags,
    },
    /// List the rules of a tenant
    List {
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one rule
    Show {
        /// Rule name
        name: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Change a rule (only the flags given change)
    ///
    /// A condition or exception flag replaces that field (a repeatable one the whole list; ''
    /// clears it); any action flag replaces the whole action list. --from-file replaces the whole
    /// rule.
    Set {
        /// Rule name
        name: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        flags: RuleFlags,
    },
    /// Delete a rule
    Remove {
        /// Rule name
        name: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
    },
    /// Show which rules a message would match, and why (nothing is sent)
    #[command(mut_arg("eml", |a| a.required(true).help("The message file the rules look at")))]
    Test(SimulateArgs),
}

/// The rule properties shared by `rule add` and `rule set`. Boolean flags take an optional value:
/// `--direct-send` means true, `--direct-send=false` false.
#[derive(Args, Debug, Clone, Default)]
pub struct RuleFlags {
    /// The whole rule as JSON (the form `rule show --json` prints); its tenant is replaced by --tenant
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["RuleSettings", "ConditionFlags", "ExceptionFlags", "ActionFlags"]
    )]
    pub from_file: Option<PathBuf>,
    /// Print the server's JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub settings: RuleSettings,
    #[command(flatten)]
    pub conditions: ConditionFlags,
    #[command(flatten)]
    pub exceptions: ExceptionFlags,
    #[command(flatten)]
    pub actions: ActionFlags,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RuleSettings {
    /// Evaluation order, 0 first (required by `rule add`)
    #[arg(long, value_name = "N")]
    pub priority: Option<u32>,
    /// Which sender address --sender-domain-is looks at: header (default), envelope or header-or-envelope
    #[arg(long, value_name = "LOCATION")]
    pub sender_address_location: Option<String>,
    /// enforce (default) or audit (matches are only recorded in the trace)
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// Evaluate no further rules once this one matched
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub stop_processing: Option<String>,
    /// The rule applies from then on (RFC 3339; '' clears it)
    #[arg(long, value_name = "TIME")]
    pub activate_at: Option<String>,
    /// The rule no longer applies from then on (RFC 3339; '' clears it)
    #[arg(long, value_name = "TIME")]
    pub expire_at: Option<String>,
    /// Disable the rule
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", conflicts_with = "enabled")]
    pub disabled: Option<String>,
    /// Enable the rule
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub enabled: Option<String>,
}

/// Defines the flags of one predicate set: the conditions (`--sender-domain-is`, ...) and the
/// exceptions (`--except-if-sender-domain-is`, ...) are the same flags under another prefix.
/// Repeatable flags replace the whole list ('' clears it); `--from-scope`,
/// `--attributed-connector` and `--direct-send` are cleared by ''.
macro_rules! predicate_flags {
    ($name:ident, $prefix:literal, $heading:literal) => {
        #[derive(Args, Debug, Clone, Default)]
        #[command(next_help_heading = $heading)]
        pub struct $name {
            /// inside (attributed to an on-premises connector) or outside
            #[arg(long = concat!($prefix, "from-scope"), id = concat!($prefix, "from-scope"), value_name = "SCOPE")]
            pub from_scope: Option<String>,
            /// Sender domain, subdomains included (repeatable; see --sender-address-location)
            #[arg(long = concat!($prefix, "sender-domain-is"), id = concat!($prefix, "sender-domain-is"), value_name = "DOMAIN")]
            pub sender_domain_is: Vec<String>,
            /// Client IP address or CIDR (repeatable)
            #[arg(long = concat!($prefix, "sender-ip-ranges"), id = concat!($prefix, "sender-ip-ranges"), value_name = "CIDR")]
            pub sender_ip_ranges: Vec<String>,
            /// 'Name: word1,word2': the header contains one of the words (repeatable)
            #[arg(long = concat!($prefix, "header-contains"), id = concat!($prefix, "header-contains"), value_name = "'NAME: WORDS'")]
            pub header_contains: Vec<String>,
            /// 'Name: regex': the header matches the regular expression (repeatable)
            #[arg(long = concat!($prefix, "header-matches"), id = concat!($prefix, "header-matches"), value_name = "'NAME: REGEX'")]
            pub header_matches: Vec<String>,
            /// The subject contains this word (repeatable)
            #[arg(long = concat!($prefix, "subject-contains"), id = concat!($prefix, "subject-contains"), value_name = "WORD")]
            pub subject_contains: Vec<String>,
            /// A recipient's domain, subdomains included (repeatable)
            #[arg(long = concat!($prefix, "recipient-domain-is"), id = concat!($prefix, "recipient-domain-is"), value_name = "DOMAIN")]
            pub recipient_domain_is: Vec<String>,
            /// Attributed to this inbound connector, or anonymous
            #[arg(long = concat!($prefix, "attributed-connector"), id = concat!($prefix, "attributed-connector"), value_name = "NAME")]
            pub attributed_connector: Option<String>,
            /// The message is direct send
            #[arg(long = concat!($prefix, "direct-send"), id = concat!($prefix, "direct-send"), value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
            pub direct_send: Option<String>,
            /// Authentication result, e.g. spf=fail, dmarc=fail or compauth=fail (repeatable)
            #[arg(long = concat!($prefix, "auth-result"), id = concat!($prefix, "auth-result"), value_name = "METHOD=RESULT")]
            pub auth_result: Vec<String>,
        }

        impl $name {
            /// Replaces each predicate whose flag was given.
            fn apply(&self, p: &mut Predicates) -> Result<(), String> {
                if let Some(v) = clearable(&self.from_scope) {
                    p.from_scope = v
                        .map(|s| from_label(concat!("--", $prefix, "from-scope"), s, "inside or outside"))
                        .transpose()?;
                }
                if let Some(list) = list_flag(&self.sender_domain_is) {
                    p.sender_domain_is = list;
                }
                if let Some(list) = list_flag(&self.sender_ip_ranges) {
                    p.sender_ip_ranges = list
                        .iter()
                        .map(|s| api_types::parse_cidr(s))
                        .collect::<Result<_, _>>()?;
                }
                if let Some(list) = list_flag(&self.header_contains) {
                    p.header_contains = list
                        .iter()
                        .map(|s| {
                            let (name, words) = split_header(concat!("--", $prefix, "header-contains"), s)?;
                            let words = words
                                .split(',')
                                .map(str::trim)
                                .filter(|w| !w.is_empty())
                                .map(String::from)
                                .collect();
                            Ok(HeaderWords { name, words })
                        })
                        .collect::<Result<_, String>>()?;
                }
                if let Some(list) = list_flag(&self.header_matches) {
                    p.header_matches = list
                        .iter()
                        .map(|s| {
                            split_header(concat!("--", $prefix, "header-matches"), s)
                                .map(|(name, pattern)| HeaderPattern { name, pattern })
                        })
                        .collect::<Result<_, _>>()?;
                }
                if let Some(list) = list_flag(&self.subject_contains) {
                    p.subject_contains = list;
                }
                if let Some(list) = list_flag(&self.recipient_domain_is) {
                    p.recipient_domain_is = list;
                }
                if let Some(v) = clearable(&self.attributed_connector) {
                    p.attributed_connector = v.map(String::from);
                }
                if let Some(v) = clearable(&self.direct_send) {
                    p.direct_send = v
                        .map(|s| api_types::parse_on_off(concat!("--", $prefix, "direct-send"), s))
                        .transpose()?;
                }
                if let Some(list) = list_flag(&self.auth_result) {
                    p.auth_result = list.iter().map(|s| s.trim().to_string()).collect();
                }
                Ok(())
            }
        }
    };
}

predicate_flags!(ConditionFlags, "", "Conditions (all must hold)");
predicate_flags!(
    ExceptionFlags,
    "except-if-",
    "Exceptions (any one exempts the message)"
);

/// `--reject` without `--reject-code`.
const DEFAULT_REJECT_CODE: &str = "5.7.1";
/// `--reject` without `--reject-text`.
const DEFAULT_REJECT_TEXT: &str = "Delivery not authorized, message refused";

#[derive(Args, Debug, Clone, Default)]
#[command(
    next_help_heading = "Actions (run in this order: quarantine, reject, redirect-to, set-header, remove-header, prepend-subject, set-scl)"
)]
pub struct ActionFlags {
    /// Hold the message in the hosted quarantine (stops processing)
    #[arg(long)]
    pub quarantine: bool,
    /// Refuse the message at the end of DATA: 550 <code> <text> (stops processing)
    #[arg(long)]
    pub reject: bool,
    /// Enhanced status code of --reject: 5.7.1 (default) or 5.7.900-5.7.999
    #[arg(long, value_name = "CODE", requires = "reject")]
    pub reject_code: Option<String>,
    /// Text of --reject, at most 1024 characters (default: "Delivery not authorized, message refused")
    #[arg(long, value_name = "TEXT", requires = "reject")]
    pub reject_text: Option<String>,
    /// Deliver the tenant's copy to these addresses instead (repeatable)
    #[arg(long = "redirect-to", value_name = "ADDRESS")]
    pub redirect_to: Vec<String>,
    /// 'Name: value': add the header (repeatable)
    #[arg(long = "set-header", value_name = "'NAME: VALUE'")]
    pub set_headers: Vec<String>,
    /// Remove every header of this name (repeatable)
    #[arg(long = "remove-header", value_name = "NAME")]
    pub remove_headers: Vec<String>,
    /// Put this text in front of the subject
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub prepend_subject: Option<String>,
    /// Set the spam confidence level (-1..9)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub set_scl: Option<i8>,
}

#[derive(Subcommand, Debug)]
pub enum QuarantineCommand {
    /// List quarantined messages (newest first)
    List {
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// Why the message was held, e.g. rule:<name>, dmarc-quarantine or spoof
        #[arg(long, value_name = "REASON")]
        reason: Option<String>,
        /// P1 (MAIL FROM) address
        #[arg(long, value_name = "ADDRESS")]
        sender: Option<String>,
        /// Recipient address
        #[arg(long, value_name = "ADDRESS")]
        recipient: Option<String>,
        /// At most this many entries
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Show a quarantined message: its headers and a plain-text preview (nothing in it is rendered or run)
    Show {
        /// Quarantine id (from `portcullis quarantine list`)
        id: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Deliver a quarantined message (once) to its original recipients, or to --to
    Release {
        /// Quarantine id
        id: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// Deliver to this address instead of the original recipients (repeatable)
        #[arg(long, value_name = "ADDRESS")]
        to: Vec<String>,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete a quarantined message
    Delete {
        /// Quarantine id
        id: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Planning: local validation, then one HTTP call.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
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
    QueueList,
    QueueShow,
    RuleList,
    Rule,
    RuleTest,
    QuarantineList,
    QuarantineShow,
    /// `released <id> to <recipients>`
    QuarantineReleased,
    /// `report direct-send`: the summary block, then one row per source.
    DirectSendReport,
    /// `report direct-send --format csv`: RFC 4180, CRLF line ends.
    DirectSendCsv,
    /// `report direct-send --suggest-connectors`: the proposed connectors and other advice.
    Suggest,
    /// `... --suggest-connectors --apply`, second call: `created connector <name>` per connector.
    SuggestApplied,
    Readiness,
    Replay,
    /// `token create`: the token, once.
    TokenCreated,
    TokenList,
    AuditList,
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
    /// `rule set`: this call GETs the rule; the flags are applied to the answer, which is then
    /// sent back with PUT (a second call, see [`run_client`]).
    pub edit: Option<RuleEdit>,
}

/// The flags of `rule set` (without `--from-file`), to apply to the stored rule.
#[derive(Debug, Clone)]
pub struct RuleEdit {
    pub tenant: String,
    pub flags: RuleFlags,
}

impl RuleEdit {
    /// The PUT of `rule`, the answer of the GET `call`, with the flags applied.
    fn put(&self, call: &Call, mut rule: Rule) -> Result<Call, String> {
        apply_rule_flags(&self.flags, &mut rule)?;
        api_types::validate_rule(&mut rule, &self.tenant)?;
        Ok(
            Call::new(Method::Put, call.path.clone(), call.output.clone())
                .body(&rule)
                .json(call.json),
        )
    }
}

impl Call {
    fn new(method: Method, path: String, output: Output) -> Call {
        Call {
            method,
            path,
            body: None,
            output,
            json: false,
            edit: None,
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
        Command::Rule(c) => plan_rule(c),
        Command::Quarantine(c) => plan_quarantine(c),
        Command::Trace(t) => plan_trace(t),
        Command::Report(ReportCommand::DirectSend(a)) => plan_direct_send(a),
        Command::Simulate(a) => match (&a.command, &a.transaction) {
            (Some(SimulateCommand::Replay(r)), _) => plan_replay(r),
            (None, Some(t)) => simulate_call(t, Output::Simulate),
            (None, None) => Err("missing --tenant, --ip, --mail-from and --rcpt".to_string()),
        },
        Command::Queue(c) => plan_queue(c),
        Command::Token(c) => plan_token(c),
        Command::Audit(a) => plan_audit(a),
    }
}

fn plan_token(c: &TokenCommand) -> Result<Call, String> {
    Ok(match c {
        TokenCommand::Create {
            name,
            role,
            tenant,
            expires,
        } => {
            if name.trim().is_empty() || name.len() > 100 {
                return Err(format!(
                    "invalid --name {name:?}: expected 1 to 100 characters"
                ));
            }
            let r = crate::api_types::Role::parse(role).ok_or_else(|| {
                format!(
                    "invalid --role {role:?}: expected operator, org-admin, org-config, mail-flow, quarantine-admin or viewer"
                )
            })?;
            match (r, tenant) {
                (crate::api_types::Role::Operator, Some(t)) => {
                    return Err(format!(
                        "invalid --tenant {t:?}: an operator token spans all tenants"
                    ));
                }
                (crate::api_types::Role::Operator, None) => {}
                (_, None) => return Err(format!("--role {role} needs --tenant")),
                (_, Some(t)) => {
                    api_types::parse_tenant_name(t)?;
                }
            }
            if let Some(e) = expires {
                humantime::parse_duration(e).map_err(|_| {
                    format!("invalid --expires {e:?}: expected a duration such as 90d")
                })?;
            }
            Call::new(Method::Post, format!("{API}/tokens"), Output::TokenCreated).body(
                &serde_json::json!({"name": name, "role": role, "tenant": tenant, "expires": expires}),
            )
        }
        TokenCommand::List { json } => {
            Call::new(Method::Get, format!("{API}/tokens"), Output::TokenList).json(*json)
        }
        TokenCommand::Revoke { id } => {
            let id = id.strip_prefix("pc_").unwrap_or(id);
            let id = id.split('_').next().unwrap_or(id);
            if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("invalid token id {id:?}"));
            }
            Call::new(
                Method::Delete,
                format!("{API}/tokens/{id}"),
                Output::Confirm(format!("revoked token {id}")),
            )
        }
    })
}

fn plan_audit(a: &AuditArgs) -> Result<Call, String> {
    if let Some(s) = &a.since {
        api_types::parse_since_time(s).map_err(|e| format!("invalid --since {s:?}: {e}"))?;
    }
    let q = match &a.since {
        Some(s) => format!("?since={}", encode(s)),
        None => String::new(),
    };
    let path = match &a.tenant {
        Some(t) => format!(
            "{API}/tenants/{}/audit{q}",
            encode(&api_types::parse_tenant_name(t)?)
        ),
        None => format!("{API}/audit{q}"),
    };
    Ok(Call::new(Method::Get, path, Output::AuditList).json(a.json))
}

fn plan_queue(c: &QueueCommand) -> Result<Call, String> {
    let queue_id = |id: &str| -> Result<String, String> {
        let ok = !id.is_empty()
            && id.len() <= 200
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(encode(id))
        } else {
            Err(format!("invalid queue id {id:?}"))
        }
    };
    Ok(match c {
        QueueCommand::List {
            tenant,
            destination,
            json,
        } => {
            if let Some(t) = tenant {
                api_types::parse_tenant_name(t)?;
            }
            let q = query_string(&api_types::QueueParams {
                tenant: tenant.clone(),
                destination: destination.clone(),
            });
            Call::new(Method::Get, format!("{API}/queue{q}"), Output::QueueList).json(*json)
        }
        QueueCommand::Show { id, json } => Call::new(
            Method::Get,
            format!("{API}/queue/{}", queue_id(id)?),
            Output::QueueShow,
        )
        .json(*json),
        QueueCommand::Retry { id: Some(id), .. } => Call::new(
            Method::Post,
            format!("{API}/queue/{}/retry", queue_id(id)?),
            Output::Confirm(format!("retrying {id} now")),
        ),
        QueueCommand::Retry { id: None, .. } => Call::new(
            Method::Post,
            format!("{API}/queue/retry"),
            Output::Confirm("retrying every waiting message now".into()),
        ),
        QueueCommand::Delete { id, dsn } => Call::new(
            Method::Delete,
            format!(
                "{API}/queue/{}{}",
                queue_id(id)?,
                if *dsn { "?dsn=true" } else { "" }
            ),
            Output::Confirm(format!(
                "deleted {id} from the queue{}",
                if *dsn {
                    " (the sender gets a bounce)"
                } else {
                    ""
                }
            )),
        ),
    })
}

fn queue_table(items: &[api_types::QueueItem]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let pending: Vec<&api_types::QueueRecipient> = i
                .recipients
                .iter()
                .filter(|r| r.status == "pending")
                .collect();
            let mut routes: Vec<&str> = pending.iter().map(|r| r.route.as_str()).collect();
            routes.dedup();
            vec![
                i.id.clone(),
                i.tenant.clone(),
                i.mail_from.clone(),
                format!("{}/{}", pending.len(), i.recipients.len()),
                i.attempts.to_string(),
                i.next_attempt.clone().unwrap_or_else(|| "now".into()),
                routes.join(" "),
                pending.first().map(|r| r.reply.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "the queue is empty".into();
    }
    table(
        &[
            "ID",
            "TENANT",
            "FROM",
            "PENDING",
            "ATTEMPTS",
            "NEXT ATTEMPT",
            "ROUTES",
            "LAST REPLY",
        ],
        &rows,
    )
}

fn queue_text(i: &api_types::QueueItem) -> String {
    let mut out = fields(&[
        ("id", i.id.clone()),
        ("trace_id", i.trace_id.clone()),
        ("tenant", i.tenant.clone()),
        ("mail_from", i.mail_from.clone()),
        ("size", i.size.to_string()),
        ("attempts", i.attempts.to_string()),
        (
            "first_attempt",
            i.first_attempt.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "next_attempt",
            i.next_attempt.clone().unwrap_or_else(|| "now".into()),
        ),
    ]);
    out.push_str("\nrecipients:\n");
    for r in &i.recipients {
        out.push_str(&format!(
            "  {}  {}  {}  {}\n",
            r.address, r.status, r.route, r.reply
        ));
    }
    out.trim_end().to_string()
}

/// A `--since` duration (humantime: `2h`, `7d`, `1week`), trimmed.
fn parse_since(s: &str) -> Result<String, String> {
    let t = s.trim();
    humantime::parse_duration(t)
        .map_err(|e| format!("invalid duration {s:?} for --since: {e} (expected e.g. 2h or 7d)"))?;
    Ok(t.to_string())
}

/// `report direct-send`: the report (GET), or with `--suggest-connectors` the proposed connectors
/// (POST, `apply: false`; `--apply` creates them with a second POST, see [`run_suggest_apply`]).
fn plan_direct_send(a: &DirectSendArgs) -> Result<Call, String> {
    let base = tenant_path(&a.tenant)?;
    let since = parse_since(&a.since)?;
    let json = a.format == ReportFormat::Json;
    if a.suggest_connectors {
        if a.format == ReportFormat::Csv {
            return Err("--format csv does not apply to --suggest-connectors".to_string());
        }
        let req = SuggestRequest {
            since: Some(since),
            apply: false,
        };
        return Ok(Call::new(
            Method::Post,
            format!("{base}/reports/direct-send/suggest"),
            Output::Suggest,
        )
        .body(&req)
        .json(json));
    }
    let params = ReportParams { since: Some(since) };
    let output = match a.format {
        ReportFormat::Csv => Output::DirectSendCsv,
        _ => Output::DirectSendReport,
    };
    Ok(Call::new(
        Method::Get,
        format!("{base}/reports/direct-send{}", query_string(&params)),
        output,
    )
    .json(json))
}

/// The second call of `--suggest-connectors --apply`: the same request with `apply: true`.
fn suggest_apply_call(plan: &Call) -> Call {
    let mut call = plan.clone();
    if let Some(Value::Object(body)) = &mut call.body {
        body.insert("apply".into(), Value::Bool(true));
    }
    call.output = Output::SuggestApplied;
    call
}

/// One `simulate replay --set KEY=VALUE`, validated; the value trimmed (a domain normalized).
fn parse_replay_set(s: &str) -> Result<String, String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid --set {s:?}: expected KEY=VALUE"))?;
    let (key, value) = (key.trim(), value.trim());
    let value = match key {
        "reject-direct-send" => api_types::parse_reject_direct_send(value).map(|_| value.into()),
        "direct-send-scope" => api_types::parse_direct_send_scope(value).map(|_| value.into()),
        "honor-dmarc" | "direct-send-allow-dkim-aligned" => {
            api_types::parse_on_off(key, value).map(|_| value.into())
        }
        "arc-trusted-sealer" => api_types::parse_domain(value),
        _ => {
            return Err(format!(
                "invalid --set key {key:?}: expected one of {}",
                REPLAY_SET_KEYS.join(", ")
            ));
        }
    }
    .map_err(|e| format!("--set {s:?}: {e}"))?;
    Ok(format!("{key}={value}"))
}

/// One `simulate replay --add-connector 'NAME key=value... [require-tls]'`, validated as
/// `connector add` validates its flags; sent with single spaces between the words. The name may
/// contain spaces: it is every word before the first `key=value` (or `require-tls`).
fn parse_replay_connector(tenant: &str, spec: &str) -> Result<String, String> {
    let flag = format!("--add-connector {spec:?}");
    let words: Vec<&str> = spec.split_whitespace().collect();
    let is_option = |w: &&str| w.contains('=') || *w == "require-tls";
    let split = words.iter().position(is_option).unwrap_or(words.len());
    if split == 0 {
        return Err(format!(
            "invalid {flag}: expected 'NAME sender-ip=CIDR [tls-cert-name=NAME] ...'"
        ));
    }
    let name = words[..split].join(" ");
    let name = api_types::parse_connector_name(&name).map_err(|e| format!("{flag}: {e}"))?;
    let mut patch = ConnectorPatch::default();
    for w in &words[split..] {
        if *w == "require-tls" {
            patch.require_tls = Some(true);
            continue;
        }
        let (key, value) = w
            .split_once('=')
            .ok_or_else(|| format!("invalid {flag}: {w:?} is not KEY=VALUE"))?;
        let list = match key {
            "sender-ip" => &mut patch.sender_ips,
            "tls-cert-name" => &mut patch.tls_cert_names,
            "sender-domain" => &mut patch.sender_domains,
            "type" => {
                patch.connector_type = Some(value.to_string());
                continue;
            }
            _ => {
                return Err(format!(
                    "invalid {flag}: unknown key {key:?} (expected sender-ip, tls-cert-name, sender-domain, type or require-tls)"
                ));
            }
        };
        list.get_or_insert_with(Vec::new).push(value.to_string());
    }
    // Each value and the combination, on a new connector (as `connector add`).
    patch
        .apply(&mut Connector::new(tenant, &name))
        .map_err(|e| format!("{flag}: {e}"))?;
    Ok(words.join(" "))
}

fn plan_replay(a: &ReplayArgs) -> Result<Call, String> {
    let base = tenant_path(&a.tenant)?;
    let req = ReplayRequest {
        since: Some(parse_since(&a.since)?),
        set: a
            .set
            .iter()
            .map(|s| parse_replay_set(s))
            .collect::<Result<_, _>>()?,
        add_connectors: a
            .add_connectors
            .iter()
            .map(|s| parse_replay_connector(&a.tenant, s))
            .collect::<Result<_, _>>()?,
        remove_connectors: a
            .remove_connectors
            .iter()
            .map(|s| {
                api_types::parse_connector_name(s.trim())
                    .map_err(|e| format!("--remove-connector: {e}"))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Call::new(
        Method::Post,
        format!("{base}/simulate/replay"),
        Output::Replay,
    )
    .body(&req)
    .json(a.json))
}

/// `simulate`, and `rule test` (the same request, printed differently).
fn simulate_call(a: &SimulateArgs, output: Output) -> Result<Call, String> {
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
    Ok(Call::new(Method::Post, path, output)
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
        TenantCommand::Set { name, route } => {
            let body = api_types::RoutePatch {
                route: api_types::parse_route_opt(route)?,
            };
            Call::new(
                Method::Patch,
                tenant_path(name)?,
                Output::Confirm(format!("tenant {name} updated")),
            )
            .body(&body)
        }
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
        DomainCommand::Set {
            domain,
            tenant,
            route,
        } => {
            let base = tenant_path(tenant)?;
            let domain = api_types::parse_domain(domain)?;
            let body = api_types::RoutePatch {
                route: api_types::parse_route_opt(route)?,
            };
            Call::new(
                Method::Patch,
                format!("{base}/domains/{}", encode(&domain)),
                Output::Confirm(format!("domain {domain} of tenant {tenant} updated")),
            )
            .body(&body)
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
        OrgCommand::Readiness {
            tenant,
            since,
            json,
        } => {
            let params = ReportParams {
                since: Some(parse_since(since)?),
            };
            Call::new(
                Method::Get,
                format!(
                    "{}/readiness{}",
                    tenant_path(tenant)?,
                    query_string(&params)
                ),
                Output::Readiness,
            )
            .json(*json)
        }
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
                admin_only_release_direct_send: on_off(
                    "--admin-only-release-direct-send",
                    &a.admin_only_release_direct_send,
                )?,
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

/// `--disabled[=BOOL]` / `--enabled[=BOOL]` (they exclude each other): the new `enabled`, if given.
fn enabled_flag(
    disabled: &Option<String>,
    enabled: &Option<String>,
) -> Result<Option<bool>, String> {
    Ok(
        match (
            on_off("--disabled", disabled)?,
            on_off("--enabled", enabled)?,
        ) {
            (Some(d), _) => Some(!d),
            (None, e) => e,
        },
    )
}

fn connector_patch(f: &ConnectorFlags) -> Result<ConnectorPatch, String> {
    let enabled = enabled_flag(&f.disabled, &f.enabled)?;
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

/// An id the server made up (trace, quarantine): anything but empty.
fn parse_id<'a>(what: &str, id: &'a str) -> Result<&'a str, String> {
    match id.trim() {
        "" => Err(format!("invalid {what} {id:?}: must not be empty")),
        id => Ok(id),
    }
}

/// An optional single-value flag that '' clears: absent → `None` (unchanged), '' →
/// `Some(None)`, a value → `Some(Some(value))`.
fn clearable(v: &Option<String>) -> Option<Option<&str>> {
    v.as_deref()
        .map(|s| Some(s.trim()).filter(|s| !s.is_empty()))
}

/// An enum value by its serde (kebab-case) name, the inverse of [`label`].
fn from_label<T: DeserializeOwned>(flag: &str, s: &str, expected: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(s.trim().to_string()))
        .map_err(|_| format!("invalid value {s:?} for {flag}: expected {expected}"))
}

/// `Name: value` split at the first ':' (the name trimmed, one space after the ':' dropped).
fn split_header(flag: &str, s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("invalid {s:?} for {flag}: expected 'Name: value'"))?;
    Ok((
        name.trim().to_string(),
        value.strip_prefix(' ').unwrap_or(value).to_string(),
    ))
}

fn parse_rule_name(s: &str) -> Result<String, String> {
    api_types::parse_connector_name(s).map_err(|e| e.replace("connector name", "rule name"))
}

fn rule_path(tenant: &str, name: &str) -> Result<String, String> {
    let base = tenant_path(tenant)?;
    Ok(format!("{base}/rules/{}", encode(&parse_rule_name(name)?)))
}

/// A rule from its JSON with the tenant (and, if given, the name) replaced; the fields the JSON
/// leaves out get their serde defaults, as on the server.
fn rule_from_json(mut v: Value, tenant: &str, name: Option<&str>) -> Result<Rule, String> {
    let Value::Object(map) = &mut v else {
        return Err("a rule must be a JSON object".to_string());
    };
    map.insert("tenant".into(), tenant.into());
    if let Some(name) = name {
        map.insert("name".into(), name.into());
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// `--from-file`: the rule in the file, for `tenant`, named `name` if given.
fn read_rule_file(
    file: &std::path::Path,
    tenant: &str,
    name: Option<&str>,
) -> Result<Rule, String> {
    let what = || format!("--from-file {}", file.display());
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", what()))?;
    let v = serde_json::from_str(&text).map_err(|e| format!("invalid JSON in {}: {e}", what()))?;
    rule_from_json(v, tenant, name).map_err(|e| format!("invalid rule in {}: {e}", what()))
}

impl ActionFlags {
    /// The actions given, in the fixed order; `None` when no action flag was given.
    fn actions(&self) -> Result<Option<Vec<RuleAction>>, String> {
        let mut actions = Vec::new();
        if self.quarantine {
            actions.push(RuleAction::Quarantine);
        }
        if self.reject {
            actions.push(RuleAction::Reject {
                code: self
                    .reject_code
                    .as_deref()
                    .unwrap_or(DEFAULT_REJECT_CODE)
                    .trim()
                    .to_string(),
                text: self
                    .reject_text
                    .as_deref()
                    .unwrap_or(DEFAULT_REJECT_TEXT)
                    .to_string(),
            });
        }
        if let Some(to) = list_flag(&self.redirect_to) {
            actions.push(RuleAction::RedirectTo(to));
        }
        for h in &self.set_headers {
            let (name, value) = split_header("--set-header", h)?;
            actions.push(RuleAction::SetHeader { name, value });
        }
        for name in &self.remove_headers {
            actions.push(RuleAction::RemoveHeader(name.trim().to_string()));
        }
        if let Some(p) = &self.prepend_subject {
            actions.push(RuleAction::PrependSubject(p.clone()));
        }
        if let Some(n) = self.set_scl {
            actions.push(RuleAction::SetScl(n));
        }
        Ok(Some(actions).filter(|a| !a.is_empty()))
    }
}

/// Applies the flags given to `rule`: `rule add` starts from a new rule, `rule set` from the
/// stored one. The values are parsed here; the whole rule is checked by `validate_rule`.
fn apply_rule_flags(f: &RuleFlags, rule: &mut Rule) -> Result<(), String> {
    let s = &f.settings;
    if let Some(p) = s.priority {
        rule.priority = p;
    }
    if let Some(v) = &s.sender_address_location {
        rule.sender_address_location = from_label(
            "--sender-address-location",
            v,
            "header, envelope or header-or-envelope",
        )?;
    }
    if let Some(v) = &s.mode {
        rule.mode = from_label("--mode", v, "enforce or audit")?;
    }
    if let Some(v) = on_off("--stop-processing", &s.stop_processing)? {
        rule.stop_processing = v;
    }
    if let Some(v) = clearable(&s.activate_at) {
        rule.activate_at = v.map(|t| parse_time("--activate-at", t)).transpose()?;
    }
    if let Some(v) = clearable(&s.expire_at) {
        rule.expire_at = v.map(|t| parse_time("--expire-at", t)).transpose()?;
    }
    if let Some(v) = enabled_flag(&s.disabled, &s.enabled)? {
        rule.enabled = v;
    }
    f.conditions.apply(&mut rule.conditions)?;
    f.exceptions.apply(&mut rule.exceptions)?;
    if let Some(actions) = f.actions.actions()? {
        rule.actions = actions;
    }
    Ok(())
}

fn plan_rule(c: &RuleCommand) -> Result<Call, String> {
    Ok(match c {
        RuleCommand::Add {
            name,
            tenant,
            flags,
        } => {
            let base = tenant_path(tenant)?;
            let mut rule = match &flags.from_file {
                Some(file) => read_rule_file(file, tenant, name.as_deref())?,
                None => {
                    if flags.settings.priority.is_none() {
                        return Err("missing --priority N (0 is evaluated first)".to_string());
                    }
                    let new = serde_json::json!({"priority": 0, "actions": []});
                    let mut rule = rule_from_json(new, tenant, name.as_deref())?;
                    apply_rule_flags(flags, &mut rule)?;
                    rule
                }
            };
            api_types::validate_rule(&mut rule, tenant)?;
            Call::new(
                Method::Post,
                format!("{base}/rules"),
                Output::Confirm(format!("rule {:?} added", rule.name)),
            )
            .body(&rule)
            .json(flags.json)
        }
        RuleCommand::List { tenant, json } => Call::new(
            Method::Get,
            format!("{}/rules", tenant_path(tenant)?),
            Output::RuleList,
        )
        .json(*json),
        RuleCommand::Show { name, tenant, json } => {
            Call::new(Method::Get, rule_path(tenant, name)?, Output::Rule).json(*json)
        }
        RuleCommand::Set {
            name,
            tenant,
            flags,
        } => {
            let path = rule_path(tenant, name)?;
            let output = Output::Confirm(format!("rule {name:?} updated"));
            if let Some(file) = &flags.from_file {
                let mut rule = read_rule_file(file, tenant, Some(name))?;
                api_types::validate_rule(&mut rule, tenant)?;
                return Ok(Call::new(Method::Put, path, output)
                    .body(&rule)
                    .json(flags.json));
            }
            // Every value is checked now, on a stand-in for the stored rule (nothing is sent when
            // one is bad); the edited rule is checked again before the PUT.
            let stand_in = serde_json::json!({"priority": 0, "actions": ["quarantine"]});
            let mut rule = rule_from_json(stand_in, tenant, Some(name))?;
            apply_rule_flags(flags, &mut rule)?;
            api_types::validate_rule(&mut rule, tenant)?;
            let mut call = Call::new(Method::Get, path, output).json(flags.json);
            call.edit = Some(RuleEdit {
                tenant: tenant.clone(),
                flags: flags.clone(),
            });
            call
        }
        RuleCommand::Remove { name, tenant } => Call::new(
            Method::Delete,
            rule_path(tenant, name)?,
            Output::Confirm(format!("rule {name:?} removed")),
        ),
        RuleCommand::Test(a) => simulate_call(a, Output::RuleTest)?,
    })
}

fn quarantine_path(tenant: &str, id: &str) -> Result<String, String> {
    let base = tenant_path(tenant)?;
    Ok(format!(
        "{base}/quarantine/{}",
        encode(parse_id("quarantine id", id)?)
    ))
}

fn plan_quarantine(c: &QuarantineCommand) -> Result<Call, String> {
    Ok(match c {
        QuarantineCommand::List {
            tenant,
            reason,
            sender,
            recipient,
            limit,
            json,
        } => {
            let params = QuarantineParams {
                reason: reason.clone(),
                sender: sender.clone(),
                recipient: recipient.clone(),
                limit: *limit,
            };
            Call::new(
                Method::Get,
                format!(
                    "{}/quarantine{}",
                    tenant_path(tenant)?,
                    query_string(&params)
                ),
                Output::QuarantineList,
            )
            .json(*json)
        }
        QuarantineCommand::Show { id, tenant, json } => Call::new(
            Method::Get,
            quarantine_path(tenant, id)?,
            Output::QuarantineShow,
        )
        .json(*json),
        QuarantineCommand::Release {
            id,
            tenant,
            to,
            json,
        } => {
            let to = list_flag(to)
                .filter(|to| !to.is_empty())
                .map(|to| {
                    to.iter()
                        .map(|a| {
                            portcullis_smtp::Address::parse(a.trim())
                                .map(|a| a.to_string())
                                .ok_or_else(|| format!("invalid address {a:?} for --to"))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            Call::new(
                Method::Post,
                format!("{}/release", quarantine_path(tenant, id)?),
                Output::QuarantineReleased,
            )
            .body(&ReleaseRequest { to })
            .json(*json)
        }
        QuarantineCommand::Delete { id, tenant } => Call::new(
            Method::Delete,
            quarantine_path(tenant, id)?,
            Output::Confirm(format!("deleted {}", id.trim())),
        ),
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
        return Ok(Call::new(
            Method::Get,
            format!("{base}/trace/{}", encode(parse_id("trace id", trace_id)?)),
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
    let since = t.since.as_deref().map(parse_since).transpose()?;
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
        since,
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
    let server = cli.server.trim().trim_end_matches('/');
    let agent = match agent(server, cli.server_ca.as_deref()) {
        Ok(a) => a,
        Err(e) => return fail(2, &e),
    };
    let token = match resolve_token(cli) {
        Ok(t) => t,
        Err(e) => return fail(1, &e),
    };
    // `rule set`: GET the rule, apply the flags, then PUT it (below).
    let call = match &call.edit {
        None => call,
        Some(edit) => match send(&agent, server, &token, &call) {
            Ok((status, body)) if (200..300).contains(&status) => match parse::<Rule>(&body) {
                Ok(rule) => match edit.put(&call, rule) {
                    Ok(put) => put,
                    Err(e) => return fail(2, &e),
                },
                Err(e) => return fail(1, &format!("unexpected answer from the gateway: {e}")),
            },
            Ok((status, body)) => return handle_answer(&call, status, &body),
            Err(e) => return fail(1, &e),
        },
    };
    if let Command::Report(ReportCommand::DirectSend(a)) = &cli.command
        && a.apply
    {
        return run_suggest_apply(&agent, server, &token, &call, a.yes);
    }
    match send(&agent, server, &token, &call) {
        Ok((status, body)) => handle_answer(&call, status, &body),
        Err(e) => fail(1, &e),
    }
}

/// `report direct-send --suggest-connectors --apply`: shows the plan (`call`, `apply: false`),
/// asks unless `yes`, then sends it again with `apply: true` and prints what was created.
fn run_suggest_apply(
    agent: &ureq::Agent,
    server: &str,
    token: &str,
    call: &Call,
    yes: bool,
) -> i32 {
    let (status, body) = match send(agent, server, token, call) {
        Ok(answer) => answer,
        Err(e) => return fail(1, &e),
    };
    let code = handle_answer(call, status, &body);
    if code != 0 {
        return code;
    }
    let plan: SuggestResponse = match parse(&body) {
        Ok(p) => p,
        Err(e) => return fail(1, &format!("unexpected answer from the gateway: {e}")),
    };
    // With --format json stdout holds only the JSON documents.
    let nothing_changed = || {
        if call.json {
            eprintln!("nothing changed");
        } else {
            println!("nothing changed");
        }
        0
    };
    if plan.connectors.is_empty() {
        return nothing_changed();
    }
    let prompt = format!("Create these {} connectors? [y/N] ", plan.connectors.len());
    if !yes && !confirm(&prompt) {
        return nothing_changed();
    }
    let apply = suggest_apply_call(call);
    match send(agent, server, token, &apply) {
        Ok((status, body)) => handle_answer(&apply, status, &body),
        Err(e) => fail(1, &e),
    }
}

/// Asks `prompt` on the terminal (stderr) and reads one line from stdin: true for y or yes; end of
/// input or anything else is no.
fn confirm(prompt: &str) -> bool {
    use std::io::Write;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(n) if n > 0 => is_yes(&line),
        _ => false,
    }
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

fn fail(code: i32, msg: &str) -> i32 {
    eprintln!("error: {msg}");
    code
}

/// The HTTP client for `server`. For https:// it trusts the system's roots and, with
/// `--server-ca`, that file's certificates; a `--server-ca` that holds none is a bad value (exit 2).
fn agent(server: &str, server_ca: Option<&Path>) -> Result<ureq::Agent, String> {
    use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
    let mut extra = Vec::new();
    if let Some(ca) = server_ca {
        let pem = std::fs::read(ca).map_err(|e| format!("--server-ca {}: {e}", ca.display()))?;
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(c)) => extra.push(c),
                Ok(_) => {}
                Err(e) => return Err(format!("--server-ca {}: {e}", ca.display())),
            }
        }
        if extra.is_empty() {
            return Err(format!(
                "--server-ca {}: no PEM certificate in it",
                ca.display()
            ));
        }
    }
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(std::time::Duration::from_secs(10)))
        .timeout_global(Some(std::time::Duration::from_secs(300)));
    if server.starts_with("https://") {
        let mut roots: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        roots.extend(extra);
        config = config.tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .root_certs(RootCerts::Specific(std::sync::Arc::new(roots)))
                .build(),
        );
    }
    Ok(config.build().into())
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
fn send(
    agent: &ureq::Agent,
    server: &str,
    token: &str,
    call: &Call,
) -> Result<(u16, String), String> {
    let url = format!("{server}{}", call.path);
    let auth = format!("Bearer {token}");
    let unreachable = |e: ureq::Error| format!("cannot reach the gateway at {server}: {e}");
    let result = match (call.method, &call.body) {
        (Method::Get, _) => agent.get(&url).header("Authorization", &auth).call(),
        (Method::Delete, _) => agent.delete(&url).header("Authorization", &auth).call(),
        (Method::Post, Some(b)) => agent.post(&url).header("Authorization", &auth).send_json(b),
        (Method::Post, None) => agent.post(&url).header("Authorization", &auth).send_empty(),
        (Method::Put, Some(b)) => agent.put(&url).header("Authorization", &auth).send_json(b),
        (Method::Put, None) => agent.put(&url).header("Authorization", &auth).send_empty(),
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
            // CSV ends its own lines (CRLF).
            if text.ends_with('\n') {
                print!("{text}");
            } else if !text.is_empty() {
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
        Output::QueueList => queue_table(&parse::<Vec<_>>(body)?),
        Output::QueueShow => queue_text(&parse(body)?),
        Output::RuleList => rule_table(&parse::<Vec<_>>(body)?),
        Output::Rule => rule_text(&parse(body)?),
        Output::RuleTest => rule_test_text(&parse(body)?),
        Output::QuarantineList => quarantine_table(&parse::<Vec<_>>(body)?),
        Output::QuarantineShow => quarantine_text(&parse(body)?),
        Output::QuarantineReleased => {
            let e: QuarantineEntry = parse(body)?;
            let to = e.released_to.as_ref().unwrap_or(&e.recipients);
            printable(&format!("released {} to {}", e.id, list_or_dash(to)), false)
        }
        Output::DirectSendReport => direct_send_text(&parse(body)?),
        Output::DirectSendCsv => direct_send_csv(&parse(body)?),
        Output::Suggest => suggest_text(&parse(body)?),
        Output::SuggestApplied => {
            let r: SuggestResponse = parse(body)?;
            if r.applied.is_empty() {
                "no connector was created".to_string()
            } else {
                r.applied
                    .iter()
                    .map(|n| printable(&format!("created connector {n}"), false))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Output::Readiness => readiness_text(&parse(body)?),
        Output::Replay => replay_text(&parse(body)?),
        Output::TokenCreated => {
            let v: Value = parse(body)?;
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            let scope = match v["tenant"].as_str() {
                Some(t) => format!("{} of tenant {t}", s("role")),
                None => s("role"),
            };
            printable(
                &format!(
                    "created token {} ({}, {scope})\n{}\nThis is the only time the token is shown; it is stored as a hash.",
                    s("id"),
                    s("name"),
                    s("token")
                ),
                true,
            )
        }
        Output::TokenList => token_table(&parse::<Vec<portcullis_store::TokenRecord>>(body)?),
        Output::AuditList => audit_text(&parse::<Vec<portcullis_store::AuditEntry>>(body)?),
    })
}

fn token_table(tokens: &[portcullis_store::TokenRecord]) -> String {
    if tokens.is_empty() {
        return "no API tokens (the bootstrap admin.token is always an operator token)".into();
    }
    let when = |s: i64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(s.max(0) as u64),
        )
        .to_string()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.role.clone(),
                t.tenant.clone().unwrap_or_else(|| "-".into()),
                when(t.created_at),
                t.expires_at.map(when).unwrap_or_else(|| "never".into()),
                if t.revoked {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                }
                .into(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "NAME", "ROLE", "TENANT", "CREATED", "EXPIRES", "STATE",
        ],
        &rows,
    )
}

/// One block per change, newest first, with the fields that changed.
fn audit_text(entries: &[portcullis_store::AuditEntry]) -> String {
    if entries.is_empty() {
        return "no changes recorded".into();
    }
    let mut out = Vec::new();
    for e in entries {
        out.push(format!(
            "{}  {}  {} from {}{}",
            e.at,
            e.action,
            e.principal,
            if e.address.is_empty() {
                "-"
            } else {
                &e.address
            },
            e.tenant
                .as_deref()
                .map(|t| format!("  tenant {t}"))
                .unwrap_or_default()
        ));
        let mut changes = Vec::new();
        json_diff(
            "",
            e.before.as_ref().unwrap_or(&Value::Null),
            e.after.as_ref().unwrap_or(&Value::Null),
            &mut changes,
        );
        for c in changes {
            out.push(format!("    {c}"));
        }
    }
    printable(&out.join("\n"), true)
}

/// `path: before -> after` for every leaf that differs.
fn json_diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.dedup();
            let mut seen = std::collections::HashSet::new();
            for k in keys {
                if !seen.insert(k) {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                json_diff(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!(
            "{}: {} -> {}",
            if path.is_empty() { "(all)" } else { path },
            a,
            b
        )),
        _ => {}
    }
}

fn simulate_text(r: &SimulateReport) -> String {
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
        (
            "admin_only_release_direct_send",
            on_off_label(s.admin_only_release_direct_send).to_string(),
        ),
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

/// The first address, with `(+N)` for the others.
fn first_and_count<'a>(mut addresses: impl ExactSizeIterator<Item = &'a str>) -> String {
    match addresses.next() {
        None => "-".to_string(),
        Some(first) if addresses.len() == 0 => first.to_string(),
        Some(first) => format!("{first} (+{})", addresses.len()),
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
                first_and_count(r.recipients.iter().map(|x| x.address.as_str())),
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

/// Text from a message (subject, headers, preview) made safe for a terminal: control characters
/// (escape sequences) and bidirectional overrides are shown escaped, never passed through; line
/// breaks are kept only when `multiline`.
fn printable(s: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.replace("\r\n", "\n").chars() {
        let keep = multiline && matches!(c, '\n' | '\t');
        let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if !keep && (c.is_control() || bidi) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// How many predicates are present (the JSON leaves out the absent ones).
fn predicate_count(p: &Predicates) -> usize {
    match serde_json::to_value(p) {
        Ok(Value::Object(map)) => map.len(),
        _ => 0,
    }
}

/// The present predicates, each as its flag takes it (`Name: value` for headers).
fn predicate_lines(p: &Predicates) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut list = |key, v: &[String]| {
        if !v.is_empty() {
            out.push((key, v.join(", ")));
        }
    };
    list("sender_domain_is", &p.sender_domain_is);
    list(
        "sender_ip_ranges",
        &p.sender_ip_ranges
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
    );
    list(
        "header_contains",
        &p.header_contains
            .iter()
            .map(|h| format!("{}: {}", h.name, h.words.join(",")))
            .collect::<Vec<_>>(),
    );
    list(
        "header_matches",
        &p.header_matches
            .iter()
            .map(|h| format!("{}: {}", h.name, h.pattern))
            .collect::<Vec<_>>(),
    );
    list("subject_contains", &p.subject_contains);
    list("recipient_domain_is", &p.recipient_domain_is);
    list("auth_result", &p.auth_result);
    if let Some(s) = &p.from_scope {
        out.insert(0, ("from_scope", label(s)));
    }
    if let Some(c) = &p.attributed_connector {
        out.push(("attributed_connector", c.clone()));
    }
    if let Some(d) = p.direct_send {
        out.push(("direct_send", yes_no(d).to_string()));
    }
    out
}

/// A short name of an action, for the rule table.
fn action_short(a: &RuleAction) -> String {
    match a {
        RuleAction::Quarantine => "quarantine".to_string(),
        RuleAction::Reject { code, .. } => format!("reject {code}"),
        RuleAction::RedirectTo(_) => "redirect".to_string(),
        RuleAction::SetHeader { name, .. } => format!("set-header {name}"),
        RuleAction::RemoveHeader(name) => format!("remove-header {name}"),
        RuleAction::PrependSubject(_) => "prepend-subject".to_string(),
        RuleAction::SetScl(n) => format!("set-scl {n}"),
    }
}

fn rule_table(rules: &[Rule]) -> String {
    let rows = rules
        .iter()
        .map(|r| {
            vec![
                r.priority.to_string(),
                r.name.clone(),
                label(&r.mode),
                yes_no(r.enabled).to_string(),
                predicate_count(&r.conditions).to_string(),
                r.actions
                    .iter()
                    .map(action_short)
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect::<Vec<_>>();
    table(
        &[
            "PRIORITY",
            "NAME",
            "MODE",
            "ENABLED",
            "CONDITIONS",
            "ACTIONS",
        ],
        &rows,
    )
}

fn rule_text(r: &Rule) -> String {
    let mut out = fields(&[
        ("name", r.name.clone()),
        ("tenant", r.tenant.clone()),
        ("priority", r.priority.to_string()),
        ("mode", label(&r.mode)),
        ("enabled", yes_no(r.enabled).to_string()),
        ("stop_processing", yes_no(r.stop_processing).to_string()),
        ("sender_address_location", label(&r.sender_address_location)),
        ("activate_at", opt(&r.activate_at).to_string()),
        ("expire_at", opt(&r.expire_at).to_string()),
    ]);
    for (title, p) in [("conditions", &r.conditions), ("exceptions", &r.exceptions)] {
        out.push_str(&format!("\n{title}:"));
        let lines = predicate_lines(p);
        if lines.is_empty() {
            out.push_str(" -");
        }
        for line in fields(&lines).lines() {
            out.push_str("\n  ");
            out.push_str(line);
        }
    }
    out.push_str("\nactions:");
    for a in &r.actions {
        out.push_str("\n  ");
        out.push_str(&a.describe());
    }
    out
}

fn rule_test_text(r: &SimulateReport) -> String {
    let mut out = String::new();
    for m in &r.rules_matched {
        let actions: Vec<String> = m.actions.iter().map(RuleAction::describe).collect();
        out.push_str(&format!(
            "MATCH  {} ({}): {}\n        because: {}\n",
            m.rule,
            label(&m.mode),
            actions.join("; "),
            m.why.join("; ")
        ));
    }
    for m in &r.rules_missed {
        out.push_str(&format!("skip   {}: {}\n", m.rule, m.why));
    }
    if r.rules_matched.is_empty() && r.rules_missed.is_empty() {
        out.push_str("no mail-flow rules were evaluated\n");
    }
    out.push_str(&format!("reply: {}", r.reply));
    out
}

fn quarantine_table(entries: &[QuarantineEntry]) -> String {
    let rows = entries
        .iter()
        .map(|e| {
            [
                e.received_at.clone(),
                e.id.clone(),
                e.reason.clone(),
                e.mail_from.clone(),
                first_and_count(e.recipients.iter().map(String::as_str)),
                opt(&e.subject).to_string(),
                yes_no(e.released_at.is_some()).to_string(),
            ]
            .iter()
            .map(|cell| printable(cell, false))
            .collect()
        })
        .collect::<Vec<_>>();
    table(
        &[
            "RECEIVED", "ID", "REASON", "FROM", "TO", "SUBJECT", "RELEASED",
        ],
        &rows,
    )
}

fn quarantine_text(d: &QuarantineDetail) -> String {
    let e = &d.entry;
    let released = match &e.released_at {
        None => "no".to_string(),
        Some(at) => format!(
            "{at} by {} to {}",
            opt(&e.released_by),
            list_or_dash(e.released_to.as_deref().unwrap_or(&e.recipients))
        ),
    };
    let entry = fields(&[
        ("id", e.id.clone()),
        ("tenant", e.tenant.clone()),
        ("trace_id", e.trace_id.clone()),
        ("received_at", e.received_at.clone()),
        ("expires_at", e.expires_at.clone()),
        ("reason", e.reason.clone()),
        ("mail_from", e.mail_from.clone()),
        ("header_from", opt(&e.header_from).to_string()),
        ("recipients", list_or_dash(&e.recipients)),
        ("subject", opt(&e.subject).to_string()),
        ("size", e.size.to_string()),
        (
            "admin_only_release",
            yes_no(e.admin_only_release).to_string(),
        ),
        ("released", released),
    ]);
    let attachments = if d.attachments.is_empty() {
        "-".to_string()
    } else {
        d.attachments.join("\n")
    };
    let text = format!(
        "{entry}\n--- headers ---\n{}\n--- preview ---\n{}\n--- attachments ---\n{attachments}",
        d.headers.trim_end(),
        d.preview.trim_end()
    );
    // Only the line structure of the headers and the preview is kept.
    text.lines()
        .map(|line| printable(line, true))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Result counts, most frequent first (ties by name): `fail 3/pass 1` (`sep` "/", `kv` " "), or
/// `fail=3 pass=1` (`sep` " ", `kv` "="); "" when empty.
fn counts_text(c: &Counts, kv: &str, sep: &str) -> String {
    let mut v: Vec<(&String, &u64)> = c.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k}{kv}{n}"))
        .collect::<Vec<_>>()
        .join(sep)
}

fn counts_or_dash(c: &Counts) -> String {
    Some(counts_text(c, " ", "/"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".to_string())
}

fn direct_send_text(r: &DirectSendReport) -> String {
    let s = &r.summary;
    let daily = s
        .daily
        .iter()
        .map(|(day, n)| format!("{day} {n}"))
        .collect::<Vec<_>>();
    let mut out = fields(&[
        ("tenant", r.tenant.clone()),
        ("period", format!("{} .. {}", r.since, r.until)),
        ("mode", r.mode.clone()),
        ("messages", s.messages.to_string()),
        ("distinct sources", s.sources.to_string()),
        ("would be refused by `on`", s.would_refuse.to_string()),
        (
            "delivered/audited/refused",
            format!("{}/{}/{}", s.delivered, s.audited, s.refused),
        ),
        (
            "daily",
            if daily.is_empty() {
                "-".to_string()
            } else {
                daily.join(", ")
            },
        ),
    ]);
    out = printable(&out, true);
    if r.sources.is_empty() {
        out.push_str("\n\nno direct-send traffic in this period");
        return out;
    }
    let rows = r
        .sources
        .iter()
        .map(|x| {
            [
                x.source.clone(),
                opt(&x.rdns).to_string(),
                first_and_count(x.helo.iter().map(String::as_str)),
                list_or_dash(&x.p1_domains),
                list_or_dash(&x.p2_domains),
                counts_or_dash(&x.spf),
                counts_or_dash(&x.dkim),
                counts_or_dash(&x.dmarc),
                x.tls.to_string(),
                x.messages.to_string(),
                x.recipients.to_string(),
                x.first_seen.clone(),
                x.last_seen.clone(),
                x.verdict.clone(),
            ]
            .iter()
            .map(|cell| printable(cell, false))
            .collect()
        })
        .collect::<Vec<_>>();
    out.push_str("\n\n");
    out.push_str(&table(
        &[
            "SOURCE",
            "RDNS",
            "HELO",
            "P1 DOMAINS",
            "P2 DOMAINS",
            "SPF",
            "DKIM",
            "DMARC",
            "TLS",
            "MSGS",
            "RCPTS",
            "FIRST SEEN",
            "LAST SEEN",
            "VERDICT",
        ],
        &rows,
    ));
    out
}

/// One RFC 4180 field: quoted (inner quotes doubled) when it holds a comma, a double quote, CR or
/// LF; as is otherwise.
/// One RFC 4180 field. Values a sender chose (HELO names) could start with `=`, `+`, `-` or `@`
/// and run as a formula in a spreadsheet: those get a leading `'` (OWASP's CSV-injection advice).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The columns of `report direct-send --format csv`.
const CSV_COLUMNS: &[&str] = &[
    "source",
    "ips",
    "rdns",
    "helo",
    "p1_domains",
    "p2_domains",
    "spf",
    "dkim",
    "dmarc",
    "arc",
    "tls",
    "cert_names",
    "messages",
    "recipients",
    "first_seen",
    "last_seen",
    "delivered",
    "audited",
    "refused",
    "would_refuse",
    "verdict",
    "sample_trace_ids",
];

fn csv_row(x: &ReportSource) -> Vec<String> {
    let counts = |c: &Counts| counts_text(c, "=", " ");
    vec![
        x.source.clone(),
        x.ips.join(" "),
        x.rdns.clone().unwrap_or_default(),
        x.helo.join(" "),
        x.p1_domains.join(" "),
        x.p2_domains.join(" "),
        counts(&x.spf),
        counts(&x.dkim),
        counts(&x.dmarc),
        counts(&x.arc),
        x.tls.to_string(),
        x.cert_names.join(" "),
        x.messages.to_string(),
        x.recipients.to_string(),
        x.first_seen.clone(),
        x.last_seen.clone(),
        x.delivered.to_string(),
        x.audited.to_string(),
        x.refused.to_string(),
        x.would_refuse.to_string(),
        x.verdict.clone(),
        x.sample_trace_ids.join(" "),
    ]
}

/// RFC 4180: a header row, then one row per source; every line ends with CRLF.
fn direct_send_csv(r: &DirectSendReport) -> String {
    let mut out = String::new();
    let header = CSV_COLUMNS.iter().map(|c| c.to_string());
    for row in std::iter::once(header.collect::<Vec<_>>()).chain(r.sources.iter().map(csv_row)) {
        let cells: Vec<String> = row.iter().map(|c| csv_field(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn suggest_text(r: &SuggestResponse) -> String {
    let mut out = Vec::new();
    if r.connectors.is_empty() {
        out.push("no connector to suggest".to_string());
    } else {
        out.push(format!("suggested connectors ({}):", r.connectors.len()));
    }
    for c in &r.connectors {
        out.push(String::new());
        out.push(format!("  {}", c.name));
        for line in fields(&[
            ("sender ips", list_or_dash(&c.sender_ips)),
            ("cert names", list_or_dash(&c.tls_cert_names)),
            (
                "covers",
                format!(
                    "{} sources / {} messages ({})",
                    c.covers.len(),
                    c.messages,
                    list_or_dash(&c.covers)
                ),
            ),
            ("command", c.command.clone()),
        ])
        .lines()
        {
            out.push(format!("    {line}"));
        }
    }
    if !r.other.is_empty() {
        out.push(String::new());
        out.push("other advice:".to_string());
        out.extend(r.other.iter().map(|o| format!("  {o}")));
    }
    out.iter()
        .map(|line| printable(line, false))
        .collect::<Vec<_>>()
        .join("\n")
}

fn readiness_text(r: &Readiness) -> String {
    let mut out = printable(r.assessment.trim_end(), true);
    for item in &r.items {
        let mut s = format!(
            "[{}] {} — {} messages\n    {}",
            item.verdict, item.source, item.messages, item.explanation
        );
        if let Some(cmd) = &item.command {
            s.push_str(&format!("\n    run: {cmd}"));
        }
        out.push_str("\n\n");
        out.push_str(
            &s.lines()
                .map(|line| printable(line, false))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    out
}

fn replay_text(r: &ReplayReport) -> String {
    let mut out = format!(
        "replayed {} transactions ({} recipients) since {}: {} would change — {} newly refused, {} newly accepted",
        r.transactions, r.recipients, r.since, r.changed, r.newly_refused, r.newly_accepted
    );
    out = printable(&out, false);
    if r.changes.is_empty() {
        return out;
    }
    let rows = r
        .changes
        .iter()
        .map(|c| {
            [
                c.trace_id.clone(),
                c.received_at.clone(),
                c.client_ip.clone(),
                c.mail_from.clone(),
                c.recipient.clone(),
                format!("{} → {}", c.before, c.after),
            ]
            .iter()
            .map(|cell| printable(cell, false))
            .collect()
        })
        .collect::<Vec<_>>();
    out.push_str("\n\n");
    out.push_str(&table(
        &[
            "TRACE-ID",
            "RECEIVED",
            "IP",
            "FROM",
            "RCPT",
            "BEFORE → AFTER",
        ],
        &rows,
    ));
    if (r.changes.len() as u64) < r.changed {
        out.push_str(&format!(
            "\n(showing {} of {} changes)",
            r.changes.len(),
            r.changed
        ));
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
                "rule",
                "add",
                "Everything",
                "--tenant",
                "contoso",
                "--priority",
                "3",
                "--from-scope",
                "outside",
                "--sender-domain-is",
                "contoso.com",
                "--sender-domain-is",
                "fabrikam.com",
                "--sender-address-location",
                "header-or-envelope",
                "--sender-ip-ranges",
                "192.0.2.0/24",
                "--header-contains",
                "X-Vendor-App: Billing,Invoice",
                "--header-matches",
                "X-Mailer: ^bulk",
                "--subject-contains",
                "urgent",
                "--recipient-domain-is",
                "contoso.com",
                "--attributed-connector",
                "anonymous",
                "--direct-send",
                "--auth-result",
                "spf=fail",
                "--except-if-from-scope",
                "inside",
                "--except-if-sender-domain-is",
                "partner.com",
                "--except-if-sender-ip-ranges",
                "198.51.100.7",
                "--except-if-header-contains",
                "X-Safe: yes",
                "--except-if-header-matches",
                "X-Id: ^[0-9]+$",
                "--except-if-subject-contains",
                "newsletter",
                "--except-if-recipient-domain-is",
                "sub.contoso.com",
                "--except-if-attributed-connector",
                "Contoso on-prem",
                "--except-if-direct-send=false",
                "--except-if-auth-result",
                "dmarc=pass",
                "--quarantine",
                "--redirect-to",
                "a@contoso.com",
                "--reject",
                "--reject-code",
                "5.7.900",
                "--reject-text",
                "No.",
                "--set-header",
                "X-Tag: v",
                "--remove-header",
                "X-Old",
                "--prepend-subject",
                "[EXT] ",
                "--set-scl",
                "-1",
                "--mode",
                "audit",
                "--stop-processing",
                "--activate-at",
                "2026-12-01T00:00:00Z",
                "--expire-at",
                "2027-01-01T00:00:00Z",
                "--disabled",
                "--json",
            ],
            &[
                "rule",
                "add",
                "--tenant",
                "contoso",
                "--from-file",
                "rule.json",
            ],
            &[
                "rule",
                "add",
                "X",
                "--tenant",
                "contoso",
                "--from-file",
                "rule.json",
                "--json",
            ],
            &["rule", "list", "--tenant", "contoso"],
            &["rule", "list", "--tenant", "contoso", "--json"],
            &["rule", "show", "X", "--tenant", "contoso", "--json"],
            &[
                "rule",
                "set",
                "X",
                "--tenant",
                "contoso",
                "--mode",
                "enforce",
                "--enabled",
            ],
            &[
                "rule",
                "set",
                "X",
                "--tenant",
                "contoso",
                "--direct-send=",
                "--stop-processing=false",
            ],
            &[
                "rule",
                "set",
                "X",
                "--tenant",
                "contoso",
                "--from-file",
                "rule.json",
            ],
            &["rule", "remove", "X", "--tenant", "contoso"],
            &[
                "rule",
                "test",
                "--tenant",
                "contoso",
                "--eml",
                "m.eml",
                "--ip",
                "192.0.2.1",
                "--mail-from",
                "a@b.com",
                "--rcpt",
                "c@contoso.com",
                "--tls-cert-name",
                "mail.b.com",
                "--json",
            ],
            &["quarantine", "list", "--tenant", "contoso"],
            &[
                "quarantine",
                "list",
                "--tenant",
                "contoso",
                "--reason",
                "rule:X",
                "--sender",
                "a@b.com",
                "--recipient",
                "c@contoso.com",
                "--limit",
                "5",
                "--json",
            ],
            &["quarantine", "show", "Q1", "--tenant", "contoso", "--json"],
            &["quarantine", "release", "Q1", "--tenant", "contoso"],
            &[
                "quarantine",
                "release",
                "Q1",
                "--tenant",
                "contoso",
                "--to",
                "a@contoso.com",
                "--to",
                "b@contoso.com",
                "--json",
            ],
            &["quarantine", "delete", "Q1", "--tenant", "contoso"],
            &["report", "direct-send", "--tenant", "contoso"],
            &[
                "report",
                "direct-send",
                "--tenant",
                "contoso",
                "--since",
                "7d",
                "--format",
                "csv",
            ],
            &[
                "report",
                "direct-send",
                "--tenant",
                "contoso",
                "--format",
                "json",
                "--suggest-connectors",
            ],
            &[
                "report",
                "direct-send",
                "--tenant",
                "contoso",
                "--suggest-connectors",
                "--apply",
            ],
            &[
                "report",
                "direct-send",
                "--tenant",
                "contoso",
                "--suggest-connectors",
                "--apply",
                "--yes",
            ],
            &["org", "readiness", "--tenant", "contoso"],
            &[
                "org",
                "readiness",
                "--tenant",
                "contoso",
                "--since",
                "14d",
                "--json",
            ],
            &[
                "simulate",
                "--tenant",
                "contoso",
                "--ip",
                "192.0.2.1",
                "--mail-from",
                "a@b.com",
                "--rcpt",
                "c@contoso.com",
            ],
            &[
                "simulate",
                "--tenant",
                "contoso",
                "--ip",
                "192.0.2.1",
                "--mail-from",
                "<>",
                "--rcpt",
                "c@contoso.com",
                "--helo",
                "mx.b.com",
                "--tls-cert-name",
                "mx.b.com",
                "--eml",
                "m.eml",
                "--json",
            ],
            &["simulate", "replay", "--tenant", "contoso"],
            &[
                "simulate",
                "replay",
                "--tenant",
                "contoso",
                "--since",
                "24h",
                "--set",
                "reject-direct-send=on",
                "--set",
                "arc-trusted-sealer=google.com",
                "--add-connector",
                "Printer sender-ip=192.0.2.10/32 require-tls",
                "--add-connector",
                "SaaS tls-cert-name=*.saas.example sender-domain=contoso.com type=partner",
                "--remove-connector",
                "Old relay",
                "--json",
            ],
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
    fn simulate_forms() {
        // The flat form of before still works.
        let cli = parse(&[
            "simulate",
            "--tenant",
            "t",
            "--ip",
            "192.0.2.1",
            "--mail-from",
            "a@b.com",
            "--rcpt",
            "c@t.com",
            "--json",
        ]);
        let Command::Simulate(a) = &cli.command else {
            panic!("not simulate")
        };
        assert!(a.command.is_none());
        let t = a.transaction.as_ref().unwrap();
        assert_eq!(
            (t.tenant.as_str(), t.ip.as_str(), t.rcpt.as_str(), t.json),
            ("t", "192.0.2.1", "c@t.com", true)
        );
        let c = plan(&cli.command).unwrap();
        assert_eq!(
            (c.method, c.path.as_str(), c.output, c.json),
            (
                Method::Post,
                "/api/v1/tenants/t/simulate",
                Output::Simulate,
                true
            )
        );

        let cli = parse(&["simulate", "replay", "--tenant", "t"]);
        let Command::Simulate(a) = &cli.command else {
            panic!("not simulate")
        };
        assert!(a.transaction.is_none());
        assert!(matches!(&a.command, Some(SimulateCommand::Replay(r))
            if r.tenant == "t" && r.since == "7d" && r.set.is_empty() && !r.json));

        // The transaction flags are required without a subcommand, `replay` requires --tenant.
        parse_err(&["simulate"]);
        parse_err(&["simulate", "--tenant", "t", "--ip", "192.0.2.1"]);
        parse_err(&["simulate", "replay"]);
        // The transaction flags and `replay` exclude each other.
        parse_err(&[
            "simulate",
            "--tenant",
            "t",
            "--ip",
            "192.0.2.1",
            "--mail-from",
            "a@b.com",
            "--rcpt",
            "c@t.com",
            "replay",
            "--tenant",
            "t",
        ]);
        parse_err(&["simulate", "replay", "--tenant", "t", "--ip", "192.0.2.1"]);
    }

    #[test]
    fn report_direct_send_calls() {
        let c = plan_of(&["report", "direct-send", "--tenant", "contoso"]).unwrap();
        assert_eq!(
            (c.method, c.path.as_str(), c.output, c.json),
            (
                Method::Get,
                "/api/v1/tenants/contoso/reports/direct-send?since=30d",
                Output::DirectSendReport,
                false
            )
        );
        assert!(c.body.is_none() && c.edit.is_none());
        let c = plan_of(&[
            "report",
            "direct-send",
            "--tenant",
            "contoso",
            "--since",
            " 1week 2days ",
            "--format",
            "json",
        ])
        .unwrap();
        assert_eq!(
            c.path,
            "/api/v1/tenants/contoso/reports/direct-send?since=1week%202days"
        );
        assert!(c.json);
        let c = plan_of(&[
            "report",
            "direct-send",
            "--tenant",
            "contoso",
            "--format",
            "csv",
        ])
        .unwrap();
        assert_eq!((c.output, c.json), (Output::DirectSendCsv, false));

        // --suggest-connectors: the plan first (apply: false), also with --apply.
        for extra in [&[][..], &["--apply"], &["--apply", "--yes"]] {
            let mut args = vec![
                "report",
                "direct-send",
                "--tenant",
                "contoso",
                "--since",
                "7d",
                "--suggest-connectors",
            ];
            args.extend_from_slice(extra);
            let c = plan_of(&args).unwrap();
            assert_eq!(
                (c.method, c.path.as_str(), c.output.clone(), c.json),
                (
                    Method::Post,
                    "/api/v1/tenants/contoso/reports/direct-send/suggest",
                    Output::Suggest,
                    false
                )
            );
            assert_eq!(
                c.body.clone().unwrap(),
                serde_json::json!({"since": "7d", "apply": false})
            );
            let apply = suggest_apply_call(&c);
            assert_eq!(
                (apply.method, &apply.path, apply.output, apply.json),
                (Method::Post, &c.path, Output::SuggestApplied, false)
            );
            assert_eq!(
                apply.body.unwrap(),
                serde_json::json!({"since": "7d", "apply": true})
            );
        }
        let c = plan_of(&[
            "report",
            "direct-send",
            "--tenant",
            "contoso",
            "--suggest-connectors",
            "--format",
            "json",
        ])
        .unwrap();
        assert!(c.json && c.output == Output::Suggest);
        let e = plan_of(&[
            "report",
            "direct-send",
            "--tenant",
            "contoso",
            "--suggest-connectors",
            "--format",
            "csv",
        ])
        .unwrap_err();
        assert!(e.contains("csv"), "{e}");

        // --apply needs --suggest-connectors, --yes needs --apply; --format is one of three.
        for bad in [
            &["--apply"][..],
            &["--suggest-connectors", "--yes"],
            &["--format", "xml"],
        ] {
            let mut args = vec!["report", "direct-send", "--tenant", "contoso"];
            args.extend_from_slice(bad);
            parse_err(&args);
        }
        parse_err(&["report", "direct-send"]);

        let e =
            plan_of(&["report", "direct-send", "--tenant", "t", "--since", "soon"]).unwrap_err();
        assert!(e.contains("\"soon\"") && e.contains("--since"), "{e}");
        let e = plan_of(&["report", "direct-send", "--tenant", "Bad Name"]).unwrap_err();
        assert!(e.contains("\"Bad Name\""), "{e}");
    }

    #[test]
    fn readiness_call() {
        let c = plan_of(&["org", "readiness", "--tenant", "contoso"]).unwrap();
        assert_eq!(
            (c.method, c.path.as_str(), c.output, c.json),
            (
                Method::Get,
                "/api/v1/tenants/contoso/readiness?since=30d",
                Output::Readiness,
                false
            )
        );
        let c = plan_of(&[
            "org",
            "readiness",
            "--tenant",
            "contoso",
            "--since",
            "2h",
            "--json",
        ])
        .unwrap();
        assert_eq!(c.path, "/api/v1/tenants/contoso/readiness?since=2h");
        assert!(c.json);
        let e = plan_of(&["org", "readiness", "--tenant", "t", "--since", "7x"]).unwrap_err();
        assert!(e.contains("\"7x\""), "{e}");
    }

    #[test]
    fn replay_call() {
        let c = plan_of(&["simulate", "replay", "--tenant", "contoso"]).unwrap();
        assert_eq!(
            (c.method, c.path.as_str(), c.output, c.json),
            (
                Method::Post,
                "/api/v1/tenants/contoso/simulate/replay",
                Output::Replay,
                false
            )
        );
        assert_eq!(
            c.body.unwrap(),
            serde_json::json!({"since": "7d", "set": [], "add_connectors": [], "remove_connectors": []})
        );
        let c = plan_of(&[
            "simulate",
            "replay",
            "--tenant",
            "contoso",
            "--since",
            "24h",
            "--set",
            "reject-direct-send=on",
            "--set",
            " direct-send-scope = envelope-and-header",
            "--set",
            "honor-dmarc=off",
            "--set",
            "arc-trusted-sealer=Google.COM",
            "--set",
            "direct-send-allow-dkim-aligned=on",
            "--add-connector",
            "  Contoso printers   sender-ip=192.0.2.0/24 sender-ip=2001:db8::/48 require-tls ",
            "--add-connector",
            "SaaS tls-cert-name=*.saas.example sender-domain=*.contoso.com type=partner",
            "--remove-connector",
            "Old relay",
            "--json",
        ])
        .unwrap();
        assert!(c.json);
        assert_eq!(
            c.body.unwrap(),
            serde_json::json!({
                "since": "24h",
                "set": ["reject-direct-send=on", "direct-send-scope=envelope-and-header",
                        "honor-dmarc=off", "arc-trusted-sealer=google.com",
                        "direct-send-allow-dkim-aligned=on"],
                "add_connectors": [
                    "Contoso printers sender-ip=192.0.2.0/24 sender-ip=2001:db8::/48 require-tls",
                    "SaaS tls-cert-name=*.saas.example sender-domain=*.contoso.com type=partner"
                ],
                "remove_connectors": ["Old relay"]
            })
        );
    }

    #[test]
    fn replay_bad_values_are_named() {
        let replay = |extra: &[&str]| {
            let mut args = vec!["simulate", "replay", "--tenant", "t"];
            args.extend_from_slice(extra);
            plan_of(&args).unwrap_err()
        };
        let e = replay(&["--set", "spoof-action=junk"]);
        assert!(
            e.contains("\"spoof-action\"") && e.contains("reject-direct-send"),
            "{e}"
        );
        let e = replay(&["--set", "reject-direct-send"]);
        assert!(
            e.contains("\"reject-direct-send\"") && e.contains("KEY=VALUE"),
            "{e}"
        );
        let e = replay(&["--set", "reject-direct-send=maybe"]);
        assert!(e.contains("\"maybe\""), "{e}");
        let e = replay(&["--set", "honor-dmarc=perhaps"]);
        assert!(e.contains("\"perhaps\""), "{e}");
        let e = replay(&["--set", "arc-trusted-sealer=not a domain"]);
        assert!(e.contains("\"not a domain\""), "{e}");
        let e = replay(&["--add-connector", "p sender-ip=10.0.0.300/8"]);
        assert!(e.contains("\"10.0.0.300/8\""), "{e}");
        let e = replay(&["--add-connector", "p tls-cert-name=*.*.x"]);
        assert!(e.contains("\"*.*.x\""), "{e}");
        let e = replay(&["--add-connector", "p sender-ip=192.0.2.1 type=cloud"]);
        assert!(e.contains("\"cloud\""), "{e}");
        let e = replay(&[
            "--add-connector",
            "p sender-ip=192.0.2.1 sender-domain=a..b",
        ]);
        assert!(e.contains("\"a..b\""), "{e}");
        let e = replay(&["--add-connector", "p sender-ip=192.0.2.1 colour=red"]);
        assert!(e.contains("\"colour\""), "{e}");
        let e = replay(&["--add-connector", "p sender-ip=192.0.2.1 tls"]);
        assert!(e.contains("\"tls\""), "{e}");
        let e = replay(&["--add-connector", "sender-ip=192.0.2.1"]);
        assert!(e.contains("NAME"), "{e}");
        let e = replay(&["--add-connector", "bad/name sender-ip=192.0.2.1"]);
        assert!(e.contains("\"bad/name\""), "{e}");
        // A connector with neither sender IPs nor certificate names matches nothing.
        let e = replay(&["--add-connector", "p require-tls"]);
        assert!(e.contains("\"p\""), "{e}");
        let e = replay(&["--remove-connector", "a/b"]);
        assert!(e.contains("\"a/b\""), "{e}");
        let e = replay(&["--since", "yesterday"]);
        assert!(e.contains("\"yesterday\"") && e.contains("--since"), "{e}");
    }

    #[test]
    fn csv_fields() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field(""), "");
        assert_eq!(csv_field("pass=12 fail=3"), "pass=12 fail=3");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    fn sample_report() -> Value {
        serde_json::json!({
            "tenant": "contoso", "since": "2024-05-01T00:00:00Z", "until": "2024-05-31T00:00:00Z",
            "mode": "audit",
            "summary": {"messages": 17, "sources": 2, "would_refuse": 4, "delivered": 0,
                        "audited": 17, "refused": 0,
                        "daily": [["2024-05-01", 10], ["2024-05-02", 7]]},
            "sources": [
                {"source": "192.0.2.0/24", "ips": ["192.0.2.1", "192.0.2.2"], "rdns": "mx.b.com",
                 "helo": ["mx1.b.com", "mx2.b.com", "mx3.b.com"], "p1_domains": ["contoso.com"],
                 "p2_domains": ["contoso.com", "sub.contoso.com"],
                 "spf": {"pass": 12, "fail": 1}, "dkim": {"none": 13}, "dmarc": {"pass": 12, "fail": 1},
                 "arc": {}, "tls": 13, "cert_names": [], "messages": 13, "recipients": 4,
                 "first_seen": "2024-05-01T08:00:00Z", "last_seen": "2024-05-02T09:00:00Z",
                 "delivered": 0, "audited": 13, "refused": 0, "would_refuse": 0,
                 "verdict": "likely-legitimate", "sample_trace_ids": ["T1", "T2"]},
                {"source": "203.0.113.9", "ips": ["203.0.113.9"], "rdns": null,
                 "helo": ["evil,\"helo\"\u{1b}[2J"], "p1_domains": ["contoso.com"], "p2_domains": [],
                 "spf": {"fail": 3, "softfail": 1}, "dkim": {}, "dmarc": {"fail": 4}, "arc": {},
                 "tls": 0, "cert_names": [], "messages": 4, "recipients": 1,
                 "first_seen": "2024-05-02T00:00:00Z", "last_seen": "2024-05-02T01:00:00Z",
                 "delivered": 0, "audited": 4, "refused": 0, "would_refuse": 4,
                 "verdict": "likely-spoofing", "sample_trace_ids": ["T9"]}
            ]
        })
    }

    #[test]
    fn direct_send_rendering() {
        let report = sample_report().to_string();
        let call = Call::new(Method::Get, String::new(), Output::DirectSendReport);
        let text = render(&call, &report).unwrap();
        assert!(text.contains("mode:"), "{text}");
        assert!(
            text.contains("would be refused by `on`:   4")
                && text.contains("delivered/audited/refused:  0/17/0")
                && text.contains("daily:                      2024-05-01 10, 2024-05-02 7"),
            "{text}"
        );
        let mut lines = text.lines().skip_while(|l| !l.starts_with("SOURCE"));
        let header = lines.next().unwrap();
        assert!(
            header.starts_with("SOURCE") && header.ends_with("VERDICT"),
            "{header}"
        );
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("192.0.2.0/24")
                && row.contains("mx1.b.com (+2)")
                && row.contains("contoso.com,sub.contoso.com")
                && row.contains("pass 12/fail 1")
                && row.contains("none 13")
                && row.ends_with("likely-legitimate"),
            "{row}"
        );
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("203.0.113.9")
                && row.contains("fail 3/softfail 1")
                && row.ends_with("likely-spoofing"),
            "{row}"
        );
        assert!(!text.contains('\u{1b}'));

        // JSON: the server's, pretty-printed, in its order.
        let call = Call::new(Method::Get, String::new(), Output::DirectSendReport).json(true);
        let text = render(&call, &report).unwrap();
        assert!(
            text.starts_with("{\n  \"tenant\": \"contoso\",\n  \"since\""),
            "{text}"
        );

        let call = Call::new(Method::Get, String::new(), Output::DirectSendCsv);
        let csv = render(&call, &report).unwrap();
        let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 3, "{csv:?}");
        assert!(csv.ends_with("\r\n") && !csv.replace("\r\n", "").contains('\n'));
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "192.0.2.0/24,192.0.2.1 192.0.2.2,mx.b.com,mx1.b.com mx2.b.com mx3.b.com,contoso.com,\
             contoso.com sub.contoso.com,pass=12 fail=1,none=13,pass=12 fail=1,,13,,13,4,\
             2024-05-01T08:00:00Z,2024-05-02T09:00:00Z,0,13,0,0,likely-legitimate,T1 T2"
        );
        assert!(
            lines[2].starts_with("203.0.113.9,203.0.113.9,,\"evil,\"\"helo\"\"\u{1b}[2J\",contoso.com,,fail=3 softfail=1,,fail=4,,0,"),
            "{}",
            lines[2]
        );

        let empty = serde_json::json!({"tenant": "t", "since": "a", "until": "b", "mode": "off",
            "summary": {"messages": 0, "sources": 0, "would_refuse": 0, "delivered": 0,
                        "audited": 0, "refused": 0, "daily": []},
            "sources": []});
        let call = Call::new(Method::Get, String::new(), Output::DirectSendReport);
        let text = render(&call, &empty.to_string()).unwrap();
        assert!(
            text.contains("daily:") && text.ends_with("no direct-send traffic in this period"),
            "{text}"
        );
        let call = Call::new(Method::Get, String::new(), Output::DirectSendCsv);
        assert_eq!(
            render(&call, &empty.to_string()).unwrap(),
            format!("{}\r\n", CSV_COLUMNS.join(","))
        );
    }

    #[test]
    fn suggest_readiness_replay_rendering() {
        let plan = serde_json::json!({
            "connectors": [{"name": "b.com relay", "sender_ips": ["192.0.2.0/24"],
                            "tls_cert_names": ["mx.b.com"], "covers": ["192.0.2.0/24", "192.0.2.77"],
                            "messages": 13,
                            "command": "portcullis connector add 'b.com relay' --tenant contoso --sender-ip 192.0.2.0/24"}],
            "other": ["portcullis org set --tenant contoso --arc-trusted-sealer google.com"],
            "applied": []
        });
        let call = Call::new(Method::Post, String::new(), Output::Suggest);
        let text = render(&call, &plan.to_string()).unwrap();
        assert!(
            text.starts_with("suggested connectors (1):\n\n  b.com relay\n"),
            "{text}"
        );
        assert!(text.contains("    sender ips:  192.0.2.0/24\n    cert names:  mx.b.com\n    covers:      2 sources / 13 messages (192.0.2.0/24,192.0.2.77)\n    command:     portcullis connector add 'b.com relay'"), "{text}");
        assert!(text.ends_with("\n\nother advice:\n  portcullis org set --tenant contoso --arc-trusted-sealer google.com"), "{text}");
        let none = serde_json::json!({"connectors": [], "other": [], "applied": []});
        assert_eq!(
            render(&call, &none.to_string()).unwrap(),
            "no connector to suggest"
        );

        let mut applied = plan.clone();
        applied["applied"] = serde_json::json!(["b.com relay", "other"]);
        let call = Call::new(Method::Post, String::new(), Output::SuggestApplied);
        assert_eq!(
            render(&call, &applied.to_string()).unwrap(),
            "created connector b.com relay\ncreated connector other"
        );

        let readiness = serde_json::json!({
            "tenant": "contoso", "mode": "audit", "since": "2024-05-01T00:00:00Z",
            "assessment": "Not ready: one legitimate source would be refused.", "would_refuse": 17,
            "items": [
                {"source": "192.0.2.0/24", "verdict": "likely-legitimate", "messages": 13,
                 "explanation": "Passes SPF for b.com.", "command": "portcullis connector add x"},
                {"source": "203.0.113.9", "verdict": "likely-spoofing", "messages": 4,
                 "explanation": "Fails everything.", "command": null}
            ]
        });
        let call = Call::new(Method::Get, String::new(), Output::Readiness);
        assert_eq!(
            render(&call, &readiness.to_string()).unwrap(),
            "Not ready: one legitimate source would be refused.\n\n\
             [likely-legitimate] 192.0.2.0/24 — 13 messages\n    Passes SPF for b.com.\n    run: portcullis connector add x\n\n\
             [likely-spoofing] 203.0.113.9 — 4 messages\n    Fails everything."
        );

        let replay = serde_json::json!({
            "tenant": "contoso", "since": "2024-05-24T00:00:00Z", "transactions": 20,
            "recipients": 31, "changed": 3, "newly_refused": 2, "newly_accepted": 1,
            "changes": [
                {"trace_id": "T1", "received_at": "2024-05-25T10:00:00Z", "client_ip": "203.0.113.9",
                 "mail_from": "ceo@contoso.com", "recipient": "a@contoso.com",
                 "before": "accepted", "after": "550 5.7.68 TenantInboundAttribution; Direct Send not allowed"}
            ]
        });
        let call = Call::new(Method::Post, String::new(), Output::Replay);
        let text = render(&call, &replay.to_string()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "replayed 20 transactions (31 recipients) since 2024-05-24T00:00:00Z: 3 would change — 2 newly refused, 1 newly accepted"
        );
        assert!(
            lines[2].starts_with("TRACE-ID") && lines[2].ends_with("RCPT           BEFORE → AFTER"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("T1")
                && lines[3].ends_with(
                    "accepted → 550 5.7.68 TenantInboundAttribution; Direct Send not allowed"
                ),
            "{text}"
        );
        assert_eq!(lines[4], "(showing 1 of 3 changes)");
    }

    #[test]
    fn confirmation_answers() {
        for yes in ["y\n", "Y\r\n", " yes \n", "YES"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n\n", "no", "yep", "ja"] {
            assert!(!is_yes(no), "{no:?}");
        }
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
        // `rule set`: the GET fails to connect (1); a bad value is refused before it (2).
        let set = |extra: &str| {
            parse(&[
                "--server",
                "http://127.0.0.1:9",
                "--token",
                "x",
                "rule",
                "set",
                "R",
                "--tenant",
                "t",
                "--set-scl",
                extra,
            ])
        };
        assert_eq!(run_client(&set("5")), 1);
        assert_eq!(run_client(&set("12")), 2);
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
    /// The body of a planned `rule add` (or `rule set --from-file`).
    fn rule_body(args: &[&str]) -> Value {
        plan_of(args)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .body
            .expect("a body")
    }

    fn rule_err(extra: &[&str]) -> String {
        let mut args = vec!["rule", "add", "R", "--tenant", "t", "--priority", "1"];
        args.extend_from_slice(extra);
        plan_of(&args).expect_err(&format!("{args:?} should be refused"))
    }

    #[test]
    fn rule_add_reference_recipe() {
        let c = plan_of(&[
            "rule",
            "add",
            "Quarantine spoofs",
            "--tenant",
            "contoso",
            "--priority",
            "0",
            "--from-scope",
            "outside",
            "--sender-domain-is",
            "contoso.com",
            "--sender-address-location",
            "envelope",
            "--except-if-header-contains",
            "X-Vendor-App: Billing",
            "--quarantine",
        ])
        .unwrap();
        assert_eq!(
            (c.method, c.path.as_str()),
            (Method::Post, "/api/v1/tenants/contoso/rules")
        );
        assert_eq!(
            c.body.unwrap(),
            serde_json::json!({
                "tenant": "contoso", "name": "Quarantine spoofs", "priority": 0,
                "conditions": {"from_scope": "outside", "sender_domain_is": ["contoso.com"]},
                "exceptions": {"header_contains": [{"name": "X-Vendor-App", "words": ["Billing"]}]},
                "sender_address_location": "envelope",
                "actions": ["quarantine"],
                "mode": "enforce", "stop_processing": false, "enabled": true
            })
        );
        assert_eq!(
            c.output,
            Output::Confirm("rule \"Quarantine spoofs\" added".to_string())
        );
        assert!(c.edit.is_none());
    }

    #[test]
    fn rule_add_every_flag() {
        let body = rule_body(&[
            "rule",
            "add",
            "All",
            "--tenant",
            "contoso",
            "--priority",
            "7",
            "--set-scl",
            "-1",
            "--prepend-subject",
            "[EXT] ",
            "--remove-header",
            "X-Old",
            "--set-header",
            "X-Tag: a: b",
            "--redirect-to",
            "A@Contoso.com",
            "--reject",
            "--quarantine",
            "--header-contains",
            " X-Vendor-App : Billing, Invoice,,",
            "--header-matches",
            "X-Mailer:  ^bulk",
            "--sender-ip-ranges",
            "192.0.2.1/24",
            "--direct-send",
            "--except-if-direct-send=false",
            "--except-if-auth-result",
            "dmarc=pass",
            "--attributed-connector",
            "anonymous",
            "--mode",
            "audit",
            "--stop-processing",
            "--activate-at",
            "2026-12-01 00:00:00",
            "--disabled",
            "--sender-domain-is",
            "Contoso.COM.",
        ]);
        assert_eq!(
            body["conditions"],
            serde_json::json!({
                "sender_domain_is": ["contoso.com"],
                "sender_ip_ranges": ["192.0.2.0/24"],
                "header_contains": [{"name": "X-Vendor-App", "words": ["Billing", "Invoice"]}],
                "header_matches": [{"name": "X-Mailer", "pattern": " ^bulk"}],
                "attributed_connector": "anonymous",
                "direct_send": true
            })
        );
        assert_eq!(
            body["exceptions"],
            serde_json::json!({"direct_send": false, "auth_result": ["dmarc=pass"]})
        );
        // The fixed order, whatever the order of the flags.
        assert_eq!(
            body["actions"],
            serde_json::json!([
                "quarantine",
                {"reject": {"code": "5.7.1", "text": "Delivery not authorized, message refused"}},
                {"redirect_to": ["A@contoso.com"]},
                {"set_header": {"name": "X-Tag", "value": "a: b"}},
                {"remove_header": "X-Old"},
                {"prepend_subject": "[EXT] "},
                {"set_scl": -1}
            ])
        );
        assert_eq!(body["priority"], 7);
        assert_eq!(body["mode"], "audit");
        assert_eq!(body["stop_processing"], true);
        assert_eq!(body["enabled"], false);
        assert_eq!(body["activate_at"], "2026-12-01T00:00:00Z");
        assert!(body.get("expire_at").is_none());
    }

    #[test]
    fn rule_validation_names_the_field() {
        let e = rule_err(&["--header-matches", "X-Mailer: ([a-z", "--quarantine"]);
        assert!(e.contains("header_matches") && e.contains("regex"), "{e}");
        let e = rule_err(&["--reject", "--reject-code", "5.7.2"]);
        assert!(e.contains("reject_code") && e.contains("5.7.2"), "{e}");
        let e = rule_err(&["--reject", "--reject-text", &"x".repeat(1025)]);
        assert!(e.contains("reject_text") && e.contains("1024"), "{e}");
        rule_body(&[
            "rule",
            "add",
            "R",
            "--tenant",
            "t",
            "--priority",
            "1",
            "--reject",
            "--reject-code",
            "5.7.999",
            "--reject-text",
            &"x".repeat(1024),
        ]);
        let e = rule_err(&["--from-scope", "outside"]);
        assert!(e.contains("a rule needs at least one action"), "{e}");
        let e = rule_err(&["--from-scope", "sideways", "--quarantine"]);
        assert!(e.contains("--from-scope") && e.contains("sideways"), "{e}");
        let e = rule_err(&["--except-if-header-contains", "no colon", "--quarantine"]);
        assert!(
            e.contains("--except-if-header-contains") && e.contains("no colon"),
            "{e}"
        );
        let e = rule_err(&["--sender-ip-ranges", "10.0.0.300", "--quarantine"]);
        assert!(e.contains("10.0.0.300"), "{e}");
        let e = rule_err(&["--sender-domain-is", "bad..dom", "--quarantine"]);
        assert!(e.contains("bad..dom"), "{e}");
        let e = rule_err(&["--auth-result", "spf=maybe", "--quarantine"]);
        assert!(e.contains("auth_result") && e.contains("spf=maybe"), "{e}");
        let e = rule_err(&["--redirect-to", "not an address"]);
        assert!(e.contains("redirect_to"), "{e}");
        let e = rule_err(&["--set-scl", "10"]);
        assert!(e.contains("set_scl"), "{e}");
        let e = rule_err(&["--expire-at", "tomorrow", "--quarantine"]);
        assert!(e.contains("--expire-at") && e.contains("tomorrow"), "{e}");
        let e = rule_err(&["--mode", "loud", "--quarantine"]);
        assert!(e.contains("--mode") && e.contains("loud"), "{e}");
        let e = plan_of(&["rule", "add", "R", "--tenant", "t", "--quarantine"]).unwrap_err();
        assert!(e.contains("--priority"), "{e}");
        let e = plan_of(&[
            "rule",
            "add",
            "Bad/Name",
            "--tenant",
            "t",
            "--priority",
            "0",
            "--quarantine",
        ])
        .unwrap_err();
        assert!(e.contains("rule name") && e.contains("Bad/Name"), "{e}");
        // Parse-level: NAME is required without --from-file, --eml for `rule test`,
        // --reject-code needs --reject, --from-file excludes the field flags.
        parse_err(&[
            "rule",
            "add",
            "--tenant",
            "t",
            "--priority",
            "0",
            "--quarantine",
        ]);
        parse_err(&[
            "rule",
            "test",
            "--tenant",
            "t",
            "--ip",
            "192.0.2.1",
            "--mail-from",
            "a@b.c",
            "--rcpt",
            "d@e.f",
        ]);
        parse_err(&[
            "rule",
            "add",
            "R",
            "--tenant",
            "t",
            "--priority",
            "0",
            "--reject-code",
            "5.7.1",
        ]);
        for extra in [
            ["--priority", "1"],
            ["--sender-domain-is", "a.com"],
            ["--except-if-from-scope", "inside"],
            ["--redirect-to", "a@b.com"],
        ] {
            let mut args = vec!["rule", "set", "R", "--tenant", "t", "--from-file", "r.json"];
            args.extend_from_slice(&extra);
            let e = parse_err(&args);
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{extra:?}"
            );
        }
        parse_err(&[
            "rule",
            "set",
            "R",
            "--tenant",
            "t",
            "--disabled",
            "--enabled",
        ]);
    }

    #[test]
    fn rule_from_file() {
        let dir = std::env::temp_dir().join(format!("portcullis-cli-rule-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rule.json");
        let f = file.to_str().unwrap();
        std::fs::write(
            &file,
            r#"{"tenant": "elsewhere", "name": "From file", "priority": 2,
                "conditions": {"header_matches": [{"name": "X-Mailer", "pattern": "^bulk"}]},
                "actions": [{"reject": {"code": "5.7.950", "text": "no"}}]}"#,
        )
        .unwrap();
        let c = plan_of(&["rule", "add", "--tenant", "contoso", "--from-file", f]).unwrap();
        assert_eq!(c.path, "/api/v1/tenants/contoso/rules");
        let body = c.body.unwrap();
        assert_eq!(
            (&body["tenant"], &body["name"]),
            (&"contoso".into(), &"From file".into())
        );
        assert_eq!(body["actions"][0]["reject"]["code"], "5.7.950");
        assert_eq!(
            (&body["mode"], &body["enabled"]),
            (&"enforce".into(), &true.into())
        );
        // NAME overrides the file's name; `set` PUTs the whole rule under NAME.
        let body = rule_body(&[
            "rule",
            "add",
            "Other",
            "--tenant",
            "contoso",
            "--from-file",
            f,
        ]);
        assert_eq!(body["name"], "Other");
        let c = plan_of(&[
            "rule",
            "set",
            "Kept",
            "--tenant",
            "contoso",
            "--from-file",
            f,
        ])
        .unwrap();
        assert_eq!(
            (c.method, c.path.as_str()),
            (Method::Put, "/api/v1/tenants/contoso/rules/Kept")
        );
        assert_eq!(c.body.unwrap()["name"], "Kept");
        assert!(c.edit.is_none());
        // The same validation as the flags.
        std::fs::write(
            &file,
            r#"{"name": "R", "priority": 0, "actions": [{"reject": {"code": "5.7.2", "text": "x"}}]}"#,
        )
        .unwrap();
        let e = plan_of(&["rule", "add", "--tenant", "t", "--from-file", f]).unwrap_err();
        assert!(e.contains("reject_code"), "{e}");
        std::fs::write(
            &file,
            r#"{"name": "R", "priority": 0, "actions": ["quarantine"],
                "exceptions": {"header_matches": [{"name": "X", "pattern": "("}]}}"#,
        )
        .unwrap();
        let e = plan_of(&["rule", "add", "--tenant", "t", "--from-file", f]).unwrap_err();
        assert!(e.contains("exceptions.header_matches[0]"), "{e}");
        std::fs::write(&file, r#"{"name": "R", "actions": ["quarantine"]}"#).unwrap();
        let e = plan_of(&["rule", "add", "--tenant", "t", "--from-file", f]).unwrap_err();
        assert!(e.contains("priority"), "{e}");
        std::fs::write(&file, "{not json").unwrap();
        let e = plan_of(&["rule", "add", "--tenant", "t", "--from-file", f]).unwrap_err();
        assert!(e.contains("invalid JSON"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        let e = plan_of(&["rule", "add", "--tenant", "t", "--from-file", f]).unwrap_err();
        assert!(e.contains("cannot read --from-file"), "{e}");
    }

    #[test]
    fn rule_set_gets_then_puts() {
        let c = plan_of(&[
            "rule",
            "set",
            "Hold spoofs",
            "--tenant",
            "contoso",
            "--sender-domain-is",
            "fabrikam.com",
            "--except-if-direct-send=",
            "--set-header",
            "X-Tag: v",
            "--stop-processing",
            "--json",
        ])
        .unwrap();
        assert_eq!(
            (c.method, c.path.as_str()),
            (Method::Get, "/api/v1/tenants/contoso/rules/Hold%20spoofs")
        );
        assert!(c.body.is_none() && c.json);
        let stored: Rule = serde_json::from_value(serde_json::json!({
            "tenant": "contoso", "name": "Hold spoofs", "priority": 4,
            "conditions": {"from_scope": "outside", "sender_domain_is": ["contoso.com"]},
            "exceptions": {"direct_send": true, "subject_contains": ["x"]},
            "actions": ["quarantine", {"prepend_subject": "[X]"}],
            "mode": "audit", "activate_at": "2026-12-01T00:00:00Z"
        }))
        .unwrap();
        let put = c.edit.as_ref().unwrap().put(&c, stored.clone()).unwrap();
        assert_eq!(
            (put.method, &put.path, put.json),
            (Method::Put, &c.path, true)
        );
        assert_eq!(
            put.body.unwrap(),
            serde_json::json!({
                "tenant": "contoso", "name": "Hold spoofs", "priority": 4,
                "conditions": {"from_scope": "outside", "sender_domain_is": ["fabrikam.com"]},
                "exceptions": {"subject_contains": ["x"]},
                "sender_address_location": "header",
                "actions": [{"set_header": {"name": "X-Tag", "value": "v"}}],
                "mode": "audit", "stop_processing": true,
                "activate_at": "2026-12-01T00:00:00Z", "enabled": true
            })
        );
        // No action flag: the actions stay; '' clears a list and a time.
        let c = plan_of(&[
            "rule",
            "set",
            "Hold spoofs",
            "--tenant",
            "contoso",
            "--sender-domain-is",
            "",
            "--activate-at",
            "",
            "--priority",
            "0",
        ])
        .unwrap();
        let body = c
            .edit
            .as_ref()
            .unwrap()
            .put(&c, stored.clone())
            .unwrap()
            .body
            .unwrap();
        assert_eq!(
            body["actions"],
            serde_json::json!(["quarantine", {"prepend_subject": "[X]"}])
        );
        assert_eq!(
            body["conditions"],
            serde_json::json!({"from_scope": "outside"})
        );
        assert_eq!(body["priority"], 0);
        assert!(body.get("activate_at").is_none());
        // Bad values are refused before anything is sent.
        let e = plan_of(&[
            "rule",
            "set",
            "R",
            "--tenant",
            "t",
            "--header-matches",
            "X: (",
        ])
        .unwrap_err();
        assert!(e.contains("header_matches"), "{e}");
        let e = plan_of(&[
            "rule",
            "set",
            "R",
            "--tenant",
            "t",
            "--reject",
            "--reject-code",
            "5.7.2",
        ])
        .unwrap_err();
        assert!(e.contains("reject_code"), "{e}");
    }

    #[test]
    fn rule_and_quarantine_calls() {
        let c = plan_of(&["rule", "list", "--tenant", "contoso"]).unwrap();
        assert_eq!(
            (c.method, c.path.as_str(), c.output),
            (
                Method::Get,
                "/api/v1/tenants/contoso/rules",
                Output::RuleList
            )
        );
        let c = plan_of(&["rule", "show", "Hold spoofs", "--tenant", "contoso"]).unwrap();
        assert_eq!(
            (c.method, c.path.as_str(), c.output),
            (
                Method::Get,
                "/api/v1/tenants/contoso/rules/Hold%20spoofs",
                Output::Rule
            )
        );
        let c = plan_of(&["rule", "remove", "R", "--tenant", "contoso"]).unwrap();
        assert_eq!(
            (c.method, c.path.as_str()),
            (Method::Delete, "/api/v1/tenants/contoso/rules/R")
        );

        let dir = std::env::temp_dir().join(format!("portcullis-cli-eml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let eml = dir.join("m.eml");
        std::fs::write(&eml, "Subject: hi\r\n\r\nbody\r\n").unwrap();
        let c = plan_of(&[
            "rule",
            "test",
            "--tenant",
            "contoso",
            "--eml",
            eml.to_str().unwrap(),
            "--ip",
            "192.0.2.1",
            "--mail-from",
            "a@b.com",
            "--rcpt",
            "c@contoso.com",
        ])
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            (c.method, c.path.as_str(), c.output),
            (
                Method::Post,
                "/api/v1/tenants/contoso/simulate",
                Output::RuleTest
            )
        );
        assert_eq!(
            c.body.unwrap(),
            serde_json::json!({"ip": "192.0.2.1", "mail_from": "a@b.com", "rcpt": "c@contoso.com",
                               "eml": "Subject: hi\r\n\r\nbody\r\n"})
        );

        let c = plan_of(&[
            "quarantine",
            "list",
            "--tenant",
            "contoso",
            "--reason",
            "rule:Hold spoofs",
            "--recipient",
            "c@contoso.com",
            "--limit",
            "5",
        ])
        .unwrap();
        assert_eq!((c.method, c.output), (Method::Get, Output::QuarantineList));
        assert_eq!(
            c.path,
            "/api/v1/tenants/contoso/quarantine?reason=rule%3AHold%20spoofs&recipient=c%40contoso.com&limit=5"
        );
        let c = plan_of(&["quarantine", "list", "--tenant", "contoso"]).unwrap();
        assert_eq!(c.path, "/api/v1/tenants/contoso/quarantine");
        let c = plan_of(&["quarantine", "show", "q/1", "--tenant", "contoso"]).unwrap();
        assert_eq!(
            (c.method, c.path.as_str(), c.output),
            (
                Method::Get,
                "/api/v1/tenants/contoso/quarantine/q%2F1",
                Output::QuarantineShow
            )
        );
        let c = plan_of(&["quarantine", "release", "Q1", "--tenant", "contoso"]).unwrap();
        assert_eq!(
            (c.method, c.path.as_str()),
            (
                Method::Post,
                "/api/v1/tenants/contoso/quarantine/Q1/release"
            )
        );
        assert_eq!(c.body.unwrap(), serde_json::json!({}));
        let c = plan_of(&[
            "quarantine",
            "release",
            "Q1",
            "--tenant",
            "contoso",
            "--to",
            "A@Contoso.COM",
            "--to",
            "b@contoso.com",
        ])
        .unwrap();
        assert_eq!(
            c.body.unwrap(),
            serde_json::json!({"to": ["A@contoso.com", "b@contoso.com"]})
        );
        let e = plan_of(&[
            "quarantine",
            "release",
            "Q1",
            "--tenant",
            "contoso",
            "--to",
            "nope",
        ])
        .unwrap_err();
        assert!(e.contains("\"nope\"") && e.contains("--to"), "{e}");
        let c = plan_of(&["quarantine", "delete", "Q1", "--tenant", "contoso"]).unwrap();
        assert_eq!(
            (c.method, c.path.as_str()),
            (Method::Delete, "/api/v1/tenants/contoso/quarantine/Q1")
        );
        assert_eq!(c.output, Output::Confirm("deleted Q1".to_string()));
        let e = plan_of(&["quarantine", "delete", " ", "--tenant", "contoso"]).unwrap_err();
        assert!(e.contains("quarantine id"), "{e}");
        parse_err(&["quarantine", "show", "Q1"]);
    }

    #[test]
    fn rule_and_quarantine_rendering() {
        let rule = serde_json::json!({
            "tenant": "contoso", "name": "Hold spoofs", "priority": 0,
            "conditions": {"from_scope": "outside", "sender_domain_is": ["contoso.com"],
                           "header_contains": [{"name": "X-App", "words": ["a", "b"]}]},
            "exceptions": {},
            "sender_address_location": "envelope",
            "actions": ["quarantine", {"reject": {"code": "5.7.900", "text": "no"}}, {"redirect_to": ["a@b.c"]}],
            "mode": "enforce", "stop_processing": false, "enabled": true
        });
        let call = Call::new(Method::Get, String::new(), Output::RuleList);
        let text = render(&call, &serde_json::json!([rule]).to_string()).unwrap();
        let mut lines = text.lines();
        assert!(
            lines.next().unwrap().starts_with("PRIORITY  NAME"),
            "{text}"
        );
        let row = lines.next().unwrap();
        assert!(
            row.contains("Hold spoofs")
                && row.contains("  3  ")
                && row.ends_with("quarantine, reject 5.7.900, redirect"),
            "{row}"
        );

        let call = Call::new(Method::Get, String::new(), Output::Rule);
        let text = render(&call, &rule.to_string()).unwrap();
        assert!(
            text.contains("sender_address_location:  envelope"),
            "{text}"
        );
        assert!(text.contains("\nconditions:\n  from_scope:"), "{text}");
        assert!(text.contains("header_contains:   X-App: a,b"), "{text}");
        assert!(text.contains("\nexceptions: -\nactions:\n  quarantine\n  reject 550 5.7.900 no\n  redirect to a@b.c"), "{text}");

        let call = Call::new(Method::Post, String::new(), Output::RuleTest);
        let report = serde_json::json!({
            "tenant": "contoso", "directory_version": 1, "steps": [], "connectors": [],
            "attribution": "anonymous", "connector": null, "direct_send": true, "row": 3,
            "rcpt_reply": "250", "data_reply": "550", "auth": null, "compauth": null,
            "reply": "550 5.7.900 no",
            "rules_matched": [{"rule": "Hold spoofs", "mode": "enforce", "actions": ["quarantine"],
                               "why": ["from scope outside", "sender domain is contoso.com (Envelope)"]}],
            "rules_missed": [{"rule": "Other", "why": "disabled"}]
        });
        assert_eq!(
            render(&call, &report.to_string()).unwrap(),
            "MATCH  Hold spoofs (enforce): quarantine\n        because: from scope outside; sender domain is contoso.com (Envelope)\nskip   Other: disabled\nreply: 550 5.7.900 no"
        );

        let entry = serde_json::json!({
            "id": "Q1", "tenant": "contoso", "trace_id": "T1", "received_at": "2024-05-01T10:00:00Z",
            "expires_at": "2024-05-31T10:00:00Z", "reason": "rule:Hold spoofs", "mail_from": "a@x.com",
            "recipients": ["b@contoso.com", "c@contoso.com"], "header_from": "a@x.com",
            "subject": "hi\u{1b}[2J", "size": 10, "admin_only_release": false,
            "released_at": null, "released_by": null, "released_to": null
        });
        let call = Call::new(Method::Get, String::new(), Output::QuarantineList);
        let text = render(&call, &serde_json::json!([entry]).to_string()).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert!(
            row.contains("b@contoso.com (+1)")
                && row.contains("hi\\u{1b}[2J")
                && row.ends_with("no"),
            "{row}"
        );
        assert!(!text.contains('\u{1b}'));

        let detail = serde_json::json!({
            "entry": entry, "headers": "Subject: hi\r\nX-Evil: \u{1b}]0;pwned\u{7}\r\n",
            "preview": "line 1\nline \u{202e}2", "attachments": ["a.pdf (10 bytes)"]
        });
        let call = Call::new(Method::Get, String::new(), Output::QuarantineShow);
        let text = render(&call, &detail.to_string()).unwrap();
        assert!(text.contains("\n--- headers ---\nSubject: hi\nX-Evil: \\u{1b}]0;pwned\\u{7}\n--- preview ---\nline 1\nline \\u{202e}2\n--- attachments ---\na.pdf (10 bytes)"), "{text}");
        assert!(!text.contains(['\u{1b}', '\u{7}', '\u{202e}', '\r']));

        let mut released = entry.clone();
        released["released_to"] = serde_json::json!(["x@contoso.com"]);
        let call = Call::new(Method::Post, String::new(), Output::QuarantineReleased);
        assert_eq!(
            render(&call, &released.to_string()).unwrap(),
            "released Q1 to x@contoso.com"
        );
        assert_eq!(
            render(&call, &entry.to_string()).unwrap(),
            "released Q1 to b@contoso.com,c@contoso.com"
        );
    }
}
