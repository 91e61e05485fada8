//! The argument definitions of every command (clap derive): what a user may type.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use portcullis_policy::rules::{HeaderPattern, HeaderWords, Predicates};

use crate::api_types::{self};

use super::values::*;

/// `--version`: the release and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PORTCULLIS_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "portcullis",
    version = VERSION,
    about = "Portcullis inbound SMTP gateway: tenant attribution and Reject Direct Send",
    after_help = "Exit status: 0 success, 1 cannot reach the server or internal error, 2 usage or bad value, 3 not found, 4 not authenticated or not allowed, 5 conflict."
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
    /// The recipient list of recipient validation (`--recipient-validation list`)
    #[command(subcommand)]
    Recipient(RecipientCommand),
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to standard output
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output
    Man,
    /// The running gateway's configuration
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// The effective configuration (defaults filled in, secrets redacted), as TOML (operator only)
    Show {
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
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
        /// Print the server's JSON (with the token)
        #[arg(long)]
        json: bool,
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
    #[command(flatten)]
    pub paging: Paging,
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
        #[command(flatten)]
        paging: Paging,
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
    /// Send waiting messages through another route from now on (a one-off move; a route fixed
    /// in the directory applies to waiting mail by itself)
    Reroute {
        /// Queue id
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Every waiting message (of this node), or with --destination those waiting for it
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// With --all: only the messages waiting for this route
        #[arg(long, value_name = "URL", requires = "all")]
        destination: Option<String>,
        /// The route to use instead: smtp://host:port, lmtp://host:port, maildir:PATH, ...
        #[arg(long, value_name = "URL")]
        to: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
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
    /// Who tried recipients the tenant does not have (recipient validation), per source: a
    /// dictionary attack is one address with many
    UnknownRecipients {
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// The traffic received within this long, e.g. 24h or 30d
        #[arg(long, value_name = "DURATION", default_value = "7d")]
        since: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
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
    /// The same as --format json
    #[arg(long)]
    pub json: bool,
    /// Propose inbound connectors for the legitimate sources (nothing is created without --apply)
    #[arg(long)]
    pub suggest_connectors: bool,
    /// With --suggest-connectors: propose a connector for this address or CIDR, whatever its
    /// verdict, and say why it is or is not recommended
    #[arg(long, value_name = "IP|CIDR", requires = "suggest_connectors")]
    pub source: Option<String>,
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
    /// A tenant at a glance: settings, domains, connectors, routes, counts
    Show {
        /// Tenant name
        name: String,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
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
    /// Prove control of a domain added by a tenant role: looks up the TXT record it asked for
    /// and, once published, lets the domain receive mail
    Verify {
        /// Domain name
        domain: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
    },
    /// Change an accepted domain's delivery route or recipient validation (each overrides the
    /// tenant's; only the flags given change)
    Set {
        /// Domain name
        domain: String,
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// A route URL as for `tenant set`; '' returns to the tenant's route
        #[arg(long, value_name = "URL")]
        route: Option<String>,
        /// off, list, verify, or inherit (the tenant's); authoritative domains only
        #[arg(long, value_name = "MODE")]
        recipient_validation: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RecipientCommand {
    /// Add addresses (or @domain for every address of a domain) to the tenant's list
    Add {
        /// Addresses of the tenant's accepted domains
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
        /// Tenant name
        #[arg(long)]
        tenant: String,
    },
    /// Remove addresses from the tenant's list
    Remove {
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
        /// Tenant name
        #[arg(long)]
        tenant: String,
    },
    /// The tenant's list in address order, a page at a time
    List {
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// At most this many (default 1000)
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Start after this address (the one the previous page said)
        #[arg(long, value_name = "ADDRESS")]
        after: Option<String>,
        /// Every page
        #[arg(long, conflicts_with_all = ["limit", "after"])]
        all: bool,
        /// Print the server's JSON
        #[arg(long)]
        json: bool,
    },
    /// Add every address of a file, all or nothing: one address a line, or CSV whose first
    /// column is the address (a header line `address` is skipped); blank lines and lines
    /// starting with # are ignored
    Import {
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// The file ('-': standard input)
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The file is the whole list: addresses not in it are removed
        #[arg(long)]
        replace: bool,
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
    /// Check recipients of the tenant's authoritative domains at RCPT: off, list (the
    /// `recipient` list) or verify (ask the mailbox server)
    #[arg(long, value_name = "MODE")]
    pub recipient_validation: Option<String>,
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
    /// Hosts of a filtering service in front of the gateway (CIDRs; replaces the list; ''
    /// clears it): mail attributed to this connector is judged by the first client outside them
    /// in the Received chain
    #[arg(long = "skip-ips", value_name = "CIDR", num_args = 1..)]
    pub skip_ips: Vec<String>,
    /// Judge mail attributed to this connector by the client the topmost Received names
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub skip_last_ip: Option<String>,
    /// Accept an IPv4 range broader than /16 or an IPv6 range broader than /32 (refused
    /// without it; logged as a warning and audited)
    #[arg(long)]
    pub allow_broad_range: bool,
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
    #[command(flatten)]
    pub paging: Paging,
    /// Print the server's JSON
    #[arg(long)]
    pub json: bool,
}

/// How much of a listing: one page (`--limit`, `--cursor`) or all of it (`--all`).
#[derive(Args, Debug, Clone, Default)]
pub struct Paging {
    /// At most this many (1 to 100000; default 100 for trace and quarantine, 1000 for audit and
    /// queue); when more match, says so on stderr with the cursor to go on from
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue where a previous listing stopped (the cursor it printed)
    #[arg(long, value_name = "CURSOR", conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Everything that matches, page by page
    #[arg(long)]
    pub all: bool,
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
            pub(super) fn apply(&self, p: &mut Predicates) -> Result<(), String> {
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
pub const DEFAULT_REJECT_CODE: &str = "5.7.1";
/// `--reject` without `--reject-text`.
pub const DEFAULT_REJECT_TEXT: &str = "Delivery not authorized, message refused";

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
        #[command(flatten)]
        paging: Paging,
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
