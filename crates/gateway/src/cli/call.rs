//! The HTTP call a client command becomes: method, path, body and how its answer is shown.

use serde::Serialize;
use serde_json::Value;

use crate::api_types::{self, encode};

use super::args::{RuleFlags, SimulateArgs};

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
    /// `domain add`: added, or added pending proof of control (what to publish).
    DomainAdded,
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
    /// `recipient list`: one address a line; a note on stderr when more pages exist.
    RecipientList,
    /// `recipient add|remove|import`: what changed.
    RecipientsChanged,
    /// `report unknown-recipients`: one row per source.
    UnknownRecipients,
    /// `tenant show`: the tenant at a glance.
    TenantSummary,
    /// `config show`: the answer as TOML.
    ConfigToml,
    /// `queue reroute`: the messages moved.
    Rerouted,
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
    /// A paged listing (`X-Next-Cursor`): `Some(true)` to fetch every page (`--all`).
    pub pages: Option<bool>,
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

impl Call {
    pub(super) fn new(method: Method, path: String, output: Output) -> Call {
        Call {
            method,
            path,
            body: None,
            output,
            json: false,
            pages: None,
            edit: None,
        }
    }
    pub(super) fn body<T: Serialize>(mut self, b: &T) -> Call {
        self.body = Some(serde_json::to_value(b).expect("request bodies serialize"));
        self
    }
    pub(super) fn json(mut self, json: bool) -> Call {
        self.json = json;
        self
    }
    pub(super) fn paged(mut self, p: &super::args::Paging) -> Call {
        self.pages = Some(p.all);
        self
    }
}

pub(super) const API: &str = "/api/v1";

pub(super) fn tenant_path(tenant: &str) -> Result<String, String> {
    let t = api_types::parse_tenant_name(tenant)?;
    Ok(format!("{API}/tenants/{}", encode(&t)))
}

/// `simulate`, and `rule test` (the same request, printed differently).
pub(super) fn simulate_call(a: &SimulateArgs, output: Output) -> Result<Call, String> {
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
