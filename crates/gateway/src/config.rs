//! Configuration in two steps (ripgrep style): the TOML file is parsed into a raw, all-optional
//! form that rejects unknown keys, then validated into [`Config`] with every default filled in.
//! Every error names the file, the key and the reason; command-line flags override the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use portcullis_policy::RejectDirectSend;
use portcullis_policy::route::Route;
use serde::Deserialize;

use crate::api_types::{parse_cert_name, parse_cidr, parse_reject_direct_send};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    hostname: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    smtp: RawSmtp,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    dns: RawDns,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    trace: RawTrace,
    #[serde(default)]
    quarantine: RawQuarantine,
    #[serde(default)]
    delivery: RawDelivery,
    #[serde(default)]
    tenants: RawTenants,
    #[serde(default)]
    services: std::collections::BTreeMap<String, RawService>,
    #[serde(default)]
    node: RawNode,
    #[serde(default)]
    recipients: RawRecipients,
    #[serde(default)]
    log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
}

/// `[log] format`: how log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human line per event (colour only on a terminal, never with `NO_COLOR`).
    #[default]
    Text,
    /// One JSON object per line (for a log collector).
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    listen: Option<String>,
    max_message_size: Option<u64>,
    max_recipients: Option<u64>,
    max_line_length: Option<u64>,
    max_commands: Option<u64>,
    max_errors: Option<u64>,
    idle_timeout: Option<String>,
    max_connections: Option<u64>,
    max_connections_per_ip: Option<u64>,
    max_connections_per_network: Option<u64>,
    network_prefix_v4: Option<u8>,
    network_prefix_v6: Option<u8>,
    reserved_connector_slots: Option<u64>,
    command_timeout: Option<String>,
    data_timeout: Option<String>,
    session_timeout: Option<String>,
    proxy_trusted_networks: Option<Vec<String>>,
    proxy_timeout: Option<String>,
    max_unknown_recipients: Option<u64>,
    shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipients {
    verify_positive_ttl: Option<String>,
    verify_negative_ttl: Option<String>,
    verify_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    insecure: Option<bool>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    nameservers: Option<Vec<String>>,
    timeout: Option<String>,
    unhealthy_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    url: Option<String>,
    connect_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuarantine {
    retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    default_route: Option<String>,
    first_retry: Option<String>,
    max_retry: Option<String>,
    give_up_after: Option<String>,
    max_concurrency: Option<u64>,
    max_per_destination: Option<u64>,
    mx_port: Option<u16>,
    max_queue: Option<u64>,
    min_free_space_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenants {
    default_reject_direct_send: Option<String>,
    lock_reject_direct_send: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(default)]
    sender_ips: Vec<String>,
    #[serde(default)]
    tls_cert_names: Vec<String>,
}

impl RawConfig {
    /// The file's relative paths joined to `base`, the file's directory (`None`: as given).
    fn relative_to(mut self, base: Option<&Path>) -> RawConfig {
        let Some(base) = base else { return self };
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut()
                && path.is_relative()
            {
                *path = base.join(&*path);
            }
        };
        fix(&mut self.data_dir);
        fix(&mut self.tls.cert_file);
        fix(&mut self.tls.key_file);
        fix(&mut self.tls.client_ca_file);
        fix(&mut self.admin.tls_cert_file);
        fix(&mut self.admin.tls_key_file);
        self
    }
}

/// A trusted sending service (`[services.NAME]`) tenants may opt into with `trust_services`.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub sender_ips: Vec<IpNet>,
    pub tls_cert_names: Vec<String>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub hostname: String,
    /// `[node] name` (default: the host name): names this node where several share a database
    /// (the bootstrap principal is `bootstrap@<node>`).
    pub node_name: String,
    pub data_dir: PathBuf,
    pub smtp_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// HTTPS for the admin API: certificate chain and key (`[admin] tls_cert_file/tls_key_file`).
    pub admin_tls: Option<(PathBuf, PathBuf)>,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_line_length: usize,
    pub max_commands: usize,
    pub max_errors: usize,
    pub idle_timeout: Duration,
    /// A command line must arrive whole within this time of the previous reply.
    pub command_timeout: Duration,
    /// The message data must arrive whole within this time of the 354.
    pub data_timeout: Duration,
    /// No session lasts longer.
    pub session_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Connections from one network (`network_prefix_v4`/`_v6`, /24 and /48 by default);
    /// inbound connectors' addresses are not counted against it.
    pub max_connections_per_network: usize,
    pub network_prefix_v4: u8,
    pub network_prefix_v6: u8,
    /// Of `max_connections`, this many only for inbound connectors' addresses: a flood from the
    /// internet never locks out an attributed partner.
    pub reserved_connector_slots: usize,
    /// Connections from these networks must open with a PROXY v1 or v2 header.
    pub proxy_trusted_networks: Vec<IpNet>,
    pub proxy_timeout: Duration,
    /// Unknown recipients a session may try before it is closed with 421.
    pub max_unknown_recipients: usize,
    /// `[recipients]`: how long a verification probe's answer is believed, and how long a probe
    /// may take.
    pub verify_positive_ttl: Duration,
    pub verify_negative_ttl: Duration,
    pub verify_timeout: Duration,
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_client_ca_file: Option<PathBuf>,
    /// DNS servers for email authentication (empty: the system resolver).
    pub nameservers: Vec<SocketAddr>,
    /// Per-query DNS time-out (two attempts per server).
    pub dns_timeout: Duration,
    /// DNS failing this long (no lookup succeeding) is reported: log, metric, `/readyz`.
    pub dns_unhealthy_after: Duration,
    /// SPF, DKIM, ARC and DMARC on (default) or off (`[auth] enabled = false`).
    pub auth_enabled: bool,
    pub storage_url: String,
    /// `[storage] connect_timeout`: how long start-up waits for the database.
    pub storage_connect_timeout: Duration,
    pub trace_retention: Duration,
    /// How long quarantined messages are kept.
    pub quarantine_retention: Duration,
    /// Root of the Maildir tree.
    /// Where mail goes unless the tenant or the accepted domain has a route of its own.
    pub default_route: Route,
    /// Retry schedule: first retry, doubling up to `max_retry`, ±10% jitter; give up after.
    pub first_retry: Duration,
    pub max_retry: Duration,
    pub give_up_after: Duration,
    /// Concurrent deliveries in total and per destination (route).
    pub delivery_concurrency: usize,
    pub delivery_per_destination: usize,
    /// The port of mail exchangers for `mx:` routes (25; tests on loopback use another).
    pub mx_port: u16,
    /// Back-pressure: beyond this many spooled messages, or below this much free disk space,
    /// new transactions get `452 4.3.1` instead of being accepted.
    pub max_queue: usize,
    pub min_free_space: u64,
    pub default_reject_direct_send: RejectDirectSend,
    pub lock_reject_direct_send: bool,
    pub services: Vec<Service>,
}

/// A configuration error, already phrased for the operator.
/// What `serve`'s command line sets over the configuration file (flags win).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The configuration file, if any.
    pub config: Option<PathBuf>,
    pub smtp_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// Allow the admin API off loopback without TLS.
    pub admin_insecure: bool,
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Config {
    /// Reads `--config` (if any), applies flags, validates.
    pub fn load(args: &Overrides, data_dir_flag: Option<&Path>) -> Result<Config, ConfigError> {
        match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("{}: cannot read config file: {e}", path.display()))
                })?;
                Config::from_text(&text, path, args, data_dir_flag)
            }
            None => validate(RawConfig::default(), "(defaults)", args, data_dir_flag),
        }
    }

    /// The configuration file `path`'s `text`, with the flags applied, validated; errors name
    /// the file, the key and the reason.
    pub fn from_text(
        text: &str,
        path: &Path,
        args: &Overrides,
        data_dir_flag: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            ConfigError(format!("{}: {}", path.display(), e.to_string().trim_end()))
        })?;
        // Paths in the file are relative to the file, wherever the gateway was started from.
        let base = path.parent().filter(|p| !p.as_os_str().is_empty());
        let raw = raw.relative_to(base);
        validate(raw, &path.display().to_string(), args, data_dir_flag)
    }
}

fn validate(
    raw: RawConfig,
    file: &str,
    args: &Overrides,
    data_dir_flag: Option<&Path>,
) -> Result<Config, ConfigError> {
    let keys = Keys { file };
    let err = |key: &str, reason: String| keys.err(key, reason);
    let duration = |key: &str, v: &Option<String>, default: &str| keys.duration(key, v, default);
    let positive = |key: &str, v: Option<u64>, default: u64| keys.positive(key, v, default);

    let hostname = match raw.hostname {
        Some(h) => portcullis_policy::names::normalize_domain(&h)
            // A single-label name (a lab machine's `vm`, `localhost`): what the default takes
            // from the system is accepted when written down too.
            .or_else(|| single_label(&h).then(|| h.to_ascii_lowercase()))
            .ok_or_else(|| err("hostname", format!("invalid host name {h:?}")))?,
        None => hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into()),
    };
    let node_name = match raw.node.name {
        Some(n) => valid_node_name(&n).then_some(n.clone()).ok_or_else(|| {
            err(
                "node.name",
                format!(
                    "invalid node name {n:?} (expected letters, digits, '.', '-', '_', at most 64)"
                ),
            )
        })?,
        None => hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| valid_node_name(h))
            .unwrap_or_else(|| "localhost".into()),
    };
    let data_dir = data_dir_flag
        .map(Path::to_path_buf)
        .or(raw.data_dir)
        .unwrap_or_else(|| PathBuf::from("portcullis-data"));

    let smtp_listen = match args.smtp_listen {
        Some(a) => a,
        None => keys.addr("smtp.listen", &raw.smtp.listen, "127.0.0.1:2525")?,
    };
    let (admin_listen, admin_tls) = admin(&keys, raw.admin, args)?;
    let max_line_length = positive("smtp.max_line_length", raw.smtp.max_line_length, 2048)?;
    if max_line_length < 512 {
        return Err(err(
            "smtp.max_line_length",
            "must be at least 512 (RFC 5321 §4.5.3.1.4)".into(),
        ));
    }

    let nameservers = nameservers(&keys, raw.dns.nameservers.unwrap_or_default())?;

    let storage_url = match raw.storage.url {
        Some(u)
            if u.starts_with("sqlite:")
                || u.starts_with("postgres:")
                || u.starts_with("postgresql:") =>
        {
            u
        }
        Some(u) => {
            return Err(err(
                "storage.url",
                format!(
                    "unsupported url {:?} (expected sqlite://… or postgres://…)",
                    portcullis_store::redacted(&u)
                ),
            ));
        }
        None => format!("sqlite://{}", data_dir.join("portcullis.db").display()),
    };

    let default_route = match &raw.delivery.default_route {
        None => Route::Maildir(data_dir.join("mail").display().to_string()),
        Some(r) => Route::parse(r).map_err(|e| err("delivery.default_route", e))?,
    };

    let default_reject_direct_send = match &raw.tenants.default_reject_direct_send {
        Some(s) => {
            parse_reject_direct_send(s).map_err(|e| err("tenants.default_reject_direct_send", e))?
        }
        None => RejectDirectSend::Off,
    };

    let services = services(&keys, raw.services)?;
    let log_format = match raw.log.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(err(
                "log.format",
                format!("invalid log format {other:?} (expected \"text\" or \"json\")"),
            ));
        }
    };

    let first_retry = duration("delivery.first_retry", &raw.delivery.first_retry, "1m")?;
    let max_retry = duration("delivery.max_retry", &raw.delivery.max_retry, "1h")?;
    if first_retry > max_retry {
        return Err(err(
            "delivery.first_retry",
            format!(
                "{} is longer than delivery.max_retry ({}): retries start at first_retry and double up to max_retry",
                humantime::format_duration(first_retry),
                humantime::format_duration(max_retry)
            ),
        ));
    }
    let max_connections = positive("smtp.max_connections", raw.smtp.max_connections, 1000)?;
    let reserved_connector_slots = raw.smtp.reserved_connector_slots.unwrap_or(100) as usize;
    if reserved_connector_slots >= max_connections {
        return Err(err(
            "smtp.reserved_connector_slots",
            format!(
                "{reserved_connector_slots} leaves no connection for anybody else (smtp.max_connections is {max_connections})"
            ),
        ));
    }
    let network_prefix_v4 = raw.smtp.network_prefix_v4.unwrap_or(24);
    if !(8..=32).contains(&network_prefix_v4) {
        return Err(err(
            "smtp.network_prefix_v4",
            format!("{network_prefix_v4} is not a prefix length from 8 to 32"),
        ));
    }
    let network_prefix_v6 = raw.smtp.network_prefix_v6.unwrap_or(48);
    if !(16..=128).contains(&network_prefix_v6) {
        return Err(err(
            "smtp.network_prefix_v6",
            format!("{network_prefix_v6} is not a prefix length from 16 to 128"),
        ));
    }
    let proxy_trusted_networks = raw
        .smtp
        .proxy_trusted_networks
        .unwrap_or_default()
        .iter()
        .map(|v| parse_cidr(v).map_err(|e| err("smtp.proxy_trusted_networks", e)))
        .collect::<Result<Vec<_>, _>>()?;
    // Timeouts and cache lifetimes: neither 0 (every session would end at once) nor beyond a
    // year (a deadline that far overflows the clock).
    let nonzero = |key: &str, v: &Option<String>, default: &str| {
        let d = keys.duration(key, v, default)?;
        if d.is_zero() {
            return Err(err(key, "must be longer than 0s".into()));
        }
        if d > Duration::from_secs(365 * 86_400) {
            return Err(err(key, "must be at most 365d".into()));
        }
        Ok(d)
    };

    if raw.tls.cert_file.is_some() != raw.tls.key_file.is_some() {
        return Err(err(
            "tls.cert_file",
            "tls.cert_file and tls.key_file go together".into(),
        ));
    }

    Ok(Config {
        hostname,
        node_name,
        data_dir,
        smtp_listen,
        admin_listen,
        admin_tls,
        max_message_size: positive(
            "smtp.max_message_size",
            raw.smtp.max_message_size,
            25 * 1024 * 1024,
        )?,
        max_recipients: positive("smtp.max_recipients", raw.smtp.max_recipients, 100)?,
        max_line_length,
        max_commands: positive("smtp.max_commands", raw.smtp.max_commands, 10_000)?,
        max_errors: positive("smtp.max_errors", raw.smtp.max_errors, 20)?,
        idle_timeout: nonzero("smtp.idle_timeout", &raw.smtp.idle_timeout, "5m")?,
        command_timeout: nonzero("smtp.command_timeout", &raw.smtp.command_timeout, "5m")?,
        data_timeout: nonzero("smtp.data_timeout", &raw.smtp.data_timeout, "10m")?,
        session_timeout: nonzero("smtp.session_timeout", &raw.smtp.session_timeout, "1h")?,
        max_connections,
        max_connections_per_ip: positive(
            "smtp.max_connections_per_ip",
            raw.smtp.max_connections_per_ip,
            20,
        )?,
        max_connections_per_network: positive(
            "smtp.max_connections_per_network",
            raw.smtp.max_connections_per_network,
            100,
        )?,
        network_prefix_v4,
        network_prefix_v6,
        reserved_connector_slots,
        proxy_trusted_networks,
        proxy_timeout: nonzero("smtp.proxy_timeout", &raw.smtp.proxy_timeout, "5s")?,
        max_unknown_recipients: positive(
            "smtp.max_unknown_recipients",
            raw.smtp.max_unknown_recipients,
            20,
        )?,
        verify_positive_ttl: nonzero(
            "recipients.verify_positive_ttl",
            &raw.recipients.verify_positive_ttl,
            "7d",
        )?,
        verify_negative_ttl: nonzero(
            "recipients.verify_negative_ttl",
            &raw.recipients.verify_negative_ttl,
            "1h",
        )?,
        verify_timeout: nonzero(
            "recipients.verify_timeout",
            &raw.recipients.verify_timeout,
            "30s",
        )?,
        shutdown_grace: duration("smtp.shutdown_grace", &raw.smtp.shutdown_grace, "30s")?,
        log_format,
        tls_cert_file: raw.tls.cert_file,
        tls_key_file: raw.tls.key_file,
        tls_client_ca_file: raw.tls.client_ca_file,
        nameservers,
        dns_timeout: nonzero("dns.timeout", &raw.dns.timeout, "5s")?,
        dns_unhealthy_after: nonzero("dns.unhealthy_after", &raw.dns.unhealthy_after, "30s")?,
        auth_enabled: raw.auth.enabled.unwrap_or(true),
        storage_url,
        storage_connect_timeout: duration(
            "storage.connect_timeout",
            &raw.storage.connect_timeout,
            "10s",
        )?,
        trace_retention: duration("trace.retention", &raw.trace.retention, "90d")?,
        quarantine_retention: duration("quarantine.retention", &raw.quarantine.retention, "30d")?,
        default_route,
        first_retry,
        max_retry,
        give_up_after: duration("delivery.give_up_after", &raw.delivery.give_up_after, "2d")?,
        delivery_concurrency: positive(
            "delivery.max_concurrency",
            raw.delivery.max_concurrency,
            32,
        )?,
        mx_port: raw.delivery.mx_port.unwrap_or(25),
        max_queue: positive("delivery.max_queue", raw.delivery.max_queue, 100_000)?,
        min_free_space: raw.delivery.min_free_space_mb.unwrap_or(512) * 1024 * 1024,
        delivery_per_destination: positive(
            "delivery.max_per_destination",
            raw.delivery.max_per_destination,
            8,
        )?,
        default_reject_direct_send,
        lock_reject_direct_send: raw.tenants.lock_reject_direct_send.unwrap_or(false),
        services,
    })
}

impl Config {
    /// The effective configuration, key by key as in the file (defaults filled in), with
    /// secrets redacted (the storage URL's password): what `portcullis config show` prints.
    pub fn effective(&self) -> serde_json::Value {
        use serde_json::json;
        let d = |v: Duration| humantime::format_duration(v).to_string();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let smtp = json!({
            "listen": self.smtp_listen.to_string(),
            "max_message_size": self.max_message_size,
            "max_recipients": self.max_recipients,
            "max_line_length": self.max_line_length,
            "max_commands": self.max_commands,
            "max_errors": self.max_errors,
            "idle_timeout": d(self.idle_timeout),
            "command_timeout": d(self.command_timeout),
            "data_timeout": d(self.data_timeout),
            "session_timeout": d(self.session_timeout),
            "max_connections": self.max_connections,
            "max_connections_per_ip": self.max_connections_per_ip,
            "max_connections_per_network": self.max_connections_per_network,
            "network_prefix_v4": self.network_prefix_v4,
            "network_prefix_v6": self.network_prefix_v6,
            "reserved_connector_slots": self.reserved_connector_slots,
            "proxy_trusted_networks": self.proxy_trusted_networks.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            "proxy_timeout": d(self.proxy_timeout),
            "max_unknown_recipients": self.max_unknown_recipients,
            "shutdown_grace": d(self.shutdown_grace),
        });
        let mut tls = serde_json::Map::new();
        for (k, v) in [
            ("cert_file", path(&self.tls_cert_file)),
            ("key_file", path(&self.tls_key_file)),
            ("client_ca_file", path(&self.tls_client_ca_file)),
        ] {
            if let Some(v) = v {
                tls.insert(k.into(), v.into());
            }
        }
        let mut admin = serde_json::Map::new();
        admin.insert("listen".into(), self.admin_listen.to_string().into());
        if let Some((cert, key)) = &self.admin_tls {
            admin.insert("tls_cert_file".into(), cert.display().to_string().into());
            admin.insert("tls_key_file".into(), key.display().to_string().into());
        }
        let services: serde_json::Map<String, serde_json::Value> = self
            .services
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    json!({
                        "sender_ips": s.sender_ips.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                        "tls_cert_names": s.tls_cert_names,
                    }),
                )
            })
            .collect();
        json!({
            "hostname": self.hostname,
            "data_dir": self.data_dir.display().to_string(),
            "node": { "name": self.node_name },
            "smtp": smtp,
            "admin": admin,
            "tls": tls,
            "dns": {
                "nameservers": self.nameservers.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "timeout": d(self.dns_timeout),
                "unhealthy_after": d(self.dns_unhealthy_after),
            },
            "auth": { "enabled": self.auth_enabled },
            "storage": {
                "url": portcullis_store::redacted(&self.storage_url),
                "connect_timeout": d(self.storage_connect_timeout),
            },
            "trace": { "retention": d(self.trace_retention) },
            "quarantine": { "retention": d(self.quarantine_retention) },
            "delivery": {
                "default_route": self.default_route.to_string(),
                "first_retry": d(self.first_retry),
                "max_retry": d(self.max_retry),
                "give_up_after": d(self.give_up_after),
                "max_concurrency": self.delivery_concurrency,
                "max_per_destination": self.delivery_per_destination,
                "mx_port": self.mx_port,
                "max_queue": self.max_queue,
                "min_free_space_mb": self.min_free_space / (1024 * 1024),
            },
            "recipients": {
                "verify_positive_ttl": d(self.verify_positive_ttl),
                "verify_negative_ttl": d(self.verify_negative_ttl),
                "verify_timeout": d(self.verify_timeout),
            },
            "tenants": {
                "default_reject_direct_send": format!("{:?}", self.default_reject_direct_send).to_ascii_lowercase(),
                "lock_reject_direct_send": self.lock_reject_direct_send,
            },
            "log": { "format": match self.log_format { LogFormat::Text => "text", LogFormat::Json => "json" } },
            "services": services,
        })
    }
}

/// The keys whose new value (in `new`) differs from the running one (`old`) and which only a
/// restart applies: SIGHUP applies the `[smtp]` session limits and the certificates, nothing else.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |key: &'static str, changed: bool| {
        if changed {
            keys.push(key);
        }
    };
    macro_rules! field {
        ($key:literal, $($f:ident).+) => {
            check($key, format!("{:?}", old.$($f).+) != format!("{:?}", new.$($f).+))
        };
    }
    field!("hostname", hostname);
    field!("node.name", node_name);
    field!("data_dir", data_dir);
    field!("smtp.listen", smtp_listen);
    field!("admin.listen", admin_listen);
    field!("smtp.idle_timeout", idle_timeout);
    field!("smtp.command_timeout", command_timeout);
    field!("smtp.data_timeout", data_timeout);
    field!("smtp.session_timeout", session_timeout);
    field!("smtp.max_connections", max_connections);
    field!("smtp.max_connections_per_ip", max_connections_per_ip);
    field!(
        "smtp.max_connections_per_network",
        max_connections_per_network
    );
    field!("smtp.network_prefix_v4", network_prefix_v4);
    field!("smtp.network_prefix_v6", network_prefix_v6);
    field!("smtp.reserved_connector_slots", reserved_connector_slots);
    field!("smtp.proxy_trusted_networks", proxy_trusted_networks);
    field!("smtp.proxy_timeout", proxy_timeout);
    field!("smtp.max_unknown_recipients", max_unknown_recipients);
    field!("smtp.shutdown_grace", shutdown_grace);
    field!("dns.nameservers", nameservers);
    field!("dns.timeout", dns_timeout);
    field!("dns.unhealthy_after", dns_unhealthy_after);
    field!("auth.enabled", auth_enabled);
    field!("storage.url", storage_url);
    field!("storage.connect_timeout", storage_connect_timeout);
    field!("trace.retention", trace_retention);
    field!("quarantine.retention", quarantine_retention);
    field!("delivery.default_route", default_route);
    field!("delivery.first_retry", first_retry);
    field!("delivery.max_retry", max_retry);
    field!("delivery.give_up_after", give_up_after);
    field!("delivery.max_concurrency", delivery_concurrency);
    field!("delivery.max_per_destination", delivery_per_destination);
    field!("delivery.mx_port", mx_port);
    field!("delivery.max_queue", max_queue);
    field!("delivery.min_free_space_mb", min_free_space);
    field!("recipients.verify_positive_ttl", verify_positive_ttl);
    field!("recipients.verify_negative_ttl", verify_negative_ttl);
    field!("recipients.verify_timeout", verify_timeout);
    field!(
        "tenants.default_reject_direct_send",
        default_reject_direct_send
    );
    field!("tenants.lock_reject_direct_send", lock_reject_direct_send);
    field!("services", services);
    field!("log.format", log_format);
    keys
}

/// One DNS label (RFC 1123): letters, digits and inner hyphens, at most 63.
fn single_label(h: &str) -> bool {
    (1..=63).contains(&h.len())
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !h.starts_with('-')
        && !h.ends_with('-')
}

/// A node name: what an operator can read in a log line and a header.
fn valid_node_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The configuration file's name, for errors that name file, key and reason.
struct Keys<'a> {
    file: &'a str,
}

impl Keys<'_> {
    fn err(&self, key: &str, reason: String) -> ConfigError {
        ConfigError(format!("{}: key `{key}`: {reason}", self.file))
    }

    fn addr(
        &self,
        key: &str,
        v: &Option<String>,
        default: &str,
    ) -> Result<SocketAddr, ConfigError> {
        let s = v.as_deref().unwrap_or(default);
        s.parse().map_err(|_| {
            self.err(
                key,
                format!("invalid address {s:?} (expected e.g. 127.0.0.1:2525)"),
            )
        })
    }

    fn duration(
        &self,
        key: &str,
        v: &Option<String>,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        let s = v.as_deref().unwrap_or(default);
        humantime::parse_duration(s).map_err(|e| {
            self.err(
                key,
                format!("invalid duration {s:?}: {e} (expected e.g. 5m, 90d)"),
            )
        })
    }

    fn positive(&self, key: &str, v: Option<u64>, default: u64) -> Result<usize, ConfigError> {
        match v.unwrap_or(default) {
            0 => Err(self.err(key, "must be greater than 0".into())),
            n => usize::try_from(n).map_err(|_| self.err(key, format!("{n} is too large"))),
        }
    }
}

/// `[admin]`: the listen address and its TLS certificate and key. Off loopback only with TLS or
/// on explicit request.
fn admin(
    keys: &Keys<'_>,
    raw: RawAdmin,
    args: &Overrides,
) -> Result<(SocketAddr, Option<(PathBuf, PathBuf)>), ConfigError> {
    let err = |key: &str, reason: String| keys.err(key, reason);
    let admin_listen = match args.admin_listen {
        Some(a) => a,
        None => keys.addr("admin.listen", &raw.listen, "127.0.0.1:8025")?,
    };
    let admin_tls = match (raw.tls_cert_file, raw.tls_key_file) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(err(
                "admin.tls_cert_file",
                "admin.tls_cert_file and admin.tls_key_file go together".into(),
            ));
        }
    };
    // Without TLS the bearer token would cross the network in clear: off loopback only with TLS
    // or on explicit request (a TLS proxy in front).
    if !admin_listen.ip().is_loopback()
        && admin_tls.is_none()
        && !args.admin_insecure
        && raw.insecure != Some(true)
    {
        return Err(err(
            "admin.listen",
            format!(
                "{admin_listen} is not a loopback address and the admin API has no TLS: set [admin] \
                 tls_cert_file and tls_key_file, keep it on loopback (behind a TLS proxy), or pass \
                 --admin-insecure / set [admin] insecure = true"
            ),
        ));
    }
    Ok((admin_listen, admin_tls))
}

/// `[dns] nameservers`.
fn nameservers(keys: &Keys<'_>, raw: Vec<String>) -> Result<Vec<SocketAddr>, ConfigError> {
    raw.iter()
        .map(|s| {
            s.parse::<SocketAddr>().map_err(|_| {
                keys.err(
                    "dns.nameservers",
                    format!("invalid address {s:?} (expected \"127.0.0.1:5353\")"),
                )
            })
        })
        .collect()
}

/// `[services.NAME]`: trusted sending services tenants may opt into.
fn services(
    keys: &Keys<'_>,
    raw: std::collections::BTreeMap<String, RawService>,
) -> Result<Vec<Service>, ConfigError> {
    let err = |key: &str, reason: String| keys.err(key, reason);
    let mut services = Vec::new();
    for (name, s) in raw {
        let key = |k: &str| format!("services.{name}.{k}");
        let sender_ips = s
            .sender_ips
            .iter()
            .map(|v| parse_cidr(v).map_err(|e| err(&key("sender_ips"), e)))
            .collect::<Result<Vec<_>, _>>()?;
        let tls_cert_names = s
            .tls_cert_names
            .iter()
            .map(|v| parse_cert_name(v).map_err(|e| err(&key("tls_cert_names"), e)))
            .collect::<Result<Vec<_>, _>>()?;
        if sender_ips.is_empty() && tls_cert_names.is_empty() {
            return Err(err(
                &format!("services.{name}"),
                "needs sender_ips or tls_cert_names".into(),
            ));
        }
        services.push(Service {
            name,
            sender_ips,
            tls_cert_names,
        });
    }

    Ok(services)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(raw, "p.toml", &Overrides::default(), None).map_err(|e| e.0)
    }

    #[test]
    fn effective_configuration_redacts_the_database_password() {
        let c = load("[storage]\nurl = \"postgres://portcullis:s3cret@db.example:5432/pc\"\n[smtp]\nproxy_trusted_networks = [\"10.0.0.10/32\"]").unwrap();
        let v = c.effective();
        assert_eq!(
            v["storage"]["url"],
            "postgres://portcullis:***@db.example:5432/pc"
        );
        assert!(!v.to_string().contains("s3cret"));
        assert_eq!(v["smtp"]["proxy_trusted_networks"][0], "10.0.0.10/32");
        assert_eq!(v["smtp"]["idle_timeout"], "5m");
        // It is a configuration file again: it loads, to the same configuration.
        let text = toml::to_string(&v).unwrap();
        let again = load(&text).unwrap();
        assert_eq!(again.effective()["smtp"], v["smtp"]);
        assert_eq!(again.effective()["delivery"], v["delivery"]);
    }

    #[test]
    fn defaults() {
        let c = load("").unwrap();
        assert_eq!(c.smtp_listen.to_string(), "127.0.0.1:2525");
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8025");
        assert!(c.storage_url.ends_with("portcullis-data/portcullis.db"));
        assert_eq!(c.trace_retention, Duration::from_secs(90 * 86400));
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let cases = [
            (
                "[smtp]\nlisten = \"nowhere\"",
                "p.toml: key `smtp.listen`: invalid address \"nowhere\"",
            ),
            (
                "[smtp]\nidle_timeout = \"soon\"",
                "key `smtp.idle_timeout`: invalid duration \"soon\"",
            ),
            (
                "[smtp]\nmax_recipients = 0",
                "key `smtp.max_recipients`: must be greater than 0",
            ),
            (
                "[tenants]\ndefault_reject_direct_send = \"maybe\"",
                "key `tenants.default_reject_direct_send`: invalid reject-direct-send mode \"maybe\"",
            ),
            (
                "[services.x]\nsender_ips = [\"10.0.0.0/33\"]",
                "key `services.x.sender_ips`: invalid CIDR \"10.0.0.0/33\"",
            ),
            (
                "[storage]\nurl = \"mysql://x\"",
                "key `storage.url`: unsupported url",
            ),
            (
                "[smtp]\nidle_timeout = \"0s\"",
                "key `smtp.idle_timeout`: must be longer than 0s",
            ),
            (
                "[smtp]\ncommand_timeout = \"0s\"",
                "key `smtp.command_timeout`: must be longer than 0s",
            ),
            (
                "[delivery]\nfirst_retry = \"2h\"",
                "key `delivery.first_retry`: 2h is longer than delivery.max_retry (1h)",
            ),
            (
                "[delivery]\ndefault_route = \"ftp://x:21\"",
                "key `delivery.default_route`: invalid route \"ftp://x:21\": unknown scheme \"ftp\"",
            ),
            (
                "[log]\nformat = \"xml\"",
                "key `log.format`: invalid log format \"xml\" (expected \"text\" or \"json\")",
            ),
            (
                "[recipients]\nverify_positive_ttl = \"1000000000y\"",
                "key `recipients.verify_positive_ttl`: must be at most 365d",
            ),
            (
                "[smtp]\nmax_connections = 10\nreserved_connector_slots = 10",
                "key `smtp.reserved_connector_slots`: 10 leaves no connection",
            ),
            (
                "[smtp]\nnetwork_prefix_v4 = 33",
                "key `smtp.network_prefix_v4`: 33 is not a prefix length",
            ),
            (
                "[smtp]\nproxy_trusted_networks = [\"haproxy\"]",
                "key `smtp.proxy_trusted_networks`: invalid CIDR \"haproxy\"",
            ),
            (
                "[recipients]\nverify_negative_ttl = \"soon\"",
                "key `recipients.verify_negative_ttl`: invalid duration",
            ),
        ];
        for (text, want) in cases {
            let got = load(text).unwrap_err();
            assert!(got.contains(want), "{text:?}: {got}");
        }
        assert!(
            load("[smtp]\nlisten_port = 25")
                .unwrap_err()
                .contains("listen_port")
        );
        let e = load("[admin]\nlisten = \"0.0.0.0:8025\"").unwrap_err();
        assert!(
            e.contains("key `admin.listen`")
                && e.contains("0.0.0.0:8025")
                && e.contains("--admin-insecure"),
            "{e}"
        );
        assert!(load("[admin]\nlisten = \"0.0.0.0:8025\"\ninsecure = true").is_ok());
        // With TLS the admin API may leave loopback.
        let c = load(
            "[admin]\nlisten = \"0.0.0.0:8025\"\ntls_cert_file = \"a.crt\"\ntls_key_file = \"a.key\"",
        )
        .unwrap();
        assert_eq!(
            c.admin_tls,
            Some((PathBuf::from("a.crt"), PathBuf::from("a.key")))
        );
        let e = load("[admin]\ntls_cert_file = \"a.crt\"").unwrap_err();
        assert!(e.contains("key `admin.tls_cert_file`"), "{e}");
        assert!(load("[admin]\nlisten = \"[::1]:8025\"").is_ok());
    }
}
