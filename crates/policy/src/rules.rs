//! Mail-flow rules (SPEC §5): conditions, exceptions and actions per tenant, evaluated in
//! priority order for each tenant copy at the end of DATA. Rules are compiled once, when the
//! directory snapshot is built (regexes included); evaluation is pure — the clock arrives as a
//! fact (`RuleFacts::now`).

use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::attribution::Attribution;
use crate::auth::{AuthFacts, CompAuth};
use crate::model::ConnectorType;
use crate::names::is_same_or_subdomain;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RuleMode {
    #[default]
    Enforce,
    /// Matches and their actions are recorded in the trace; nothing is done.
    Audit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FromScope {
    /// Attributed to an on-premises connector.
    Inside,
    /// Anything else.
    Outside,
}

/// Which sender address `sender_domain_is` looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AddressLocation {
    /// The P2 `From:` header (the reference's default).
    #[default]
    Header,
    /// The P1 `MAIL FROM`.
    Envelope,
    HeaderOrEnvelope,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeaderWords {
    pub name: String,
    /// Any of these words (case-insensitive substring of the header value).
    pub words: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeaderPattern {
    pub name: String,
    /// A regular expression (Rust `regex` syntax) matched against the unfolded value.
    pub pattern: String,
}

/// A set of predicates. As conditions all present predicates must hold; as exceptions any one
/// present predicate exempts. Within a list, any element matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Predicates {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_scope: Option<FromScope>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sender_domain_is: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub sender_ip_ranges: Vec<IpNet>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub header_contains: Vec<HeaderWords>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub header_matches: Vec<HeaderPattern>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_contains: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipient_domain_is: Vec<String>,
    /// A connector name, or `anonymous`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributed_connector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_send: Option<bool>,
    /// `method=result`, e.g. `spf=fail`, `dmarc=fail`, `compauth=fail`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub auth_result: Vec<String>,
}

impl Predicates {
    pub fn is_empty(&self) -> bool {
        *self == Predicates::default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Hold the copy in the hosted quarantine (stops processing).
    Quarantine,
    /// Replace the recipients of this tenant's copy.
    RedirectTo(Vec<String>),
    /// Refuse at end of DATA with `550 <code> <text>` (stops processing).
    Reject {
        code: String,
        text: String,
    },
    SetHeader {
        name: String,
        value: String,
    },
    RemoveHeader(String),
    PrependSubject(String),
    SetScl(i8),
}

impl RuleAction {
    pub fn describe(&self) -> String {
        match self {
            RuleAction::Quarantine => "quarantine".into(),
            RuleAction::RedirectTo(to) => format!("redirect to {}", to.join(", ")),
            RuleAction::Reject { code, text } => format!("reject 550 {code} {text}"),
            RuleAction::SetHeader { name, value } => format!("set header {name}: {value}"),
            RuleAction::RemoveHeader(name) => format!("remove header {name}"),
            RuleAction::PrependSubject(p) => format!("prepend subject {p:?}"),
            RuleAction::SetScl(n) => format!("set SCL {n}"),
        }
    }
}

/// A mail-flow rule as the administrator writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rule {
    /// Set from the API path; may be omitted in request bodies and rule files.
    #[serde(default)]
    pub tenant: String,
    pub name: String,
    pub priority: u32,
    #[serde(default)]
    pub conditions: Predicates,
    #[serde(default)]
    pub exceptions: Predicates,
    #[serde(default)]
    pub sender_address_location: AddressLocation,
    pub actions: Vec<RuleAction>,
    #[serde(default)]
    pub mode: RuleMode,
    #[serde(default)]
    pub stop_processing: bool,
    /// RFC 3339; the rule applies from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activate_at: Option<String>,
    /// RFC 3339; the rule no longer applies from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Why a rule is invalid, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn err(field: &str, message: impl Into<String>) -> RuleError {
    RuleError {
        field: field.into(),
        message: message.into(),
    }
}

/// `5.7.1` or `5.7.900`–`5.7.999`.
pub fn valid_reject_code(code: &str) -> bool {
    code == "5.7.1"
        || code
            .strip_prefix("5.7.")
            .and_then(|n| n.parse::<u16>().ok())
            .is_some_and(|n| (900..=999).contains(&n) && code.len() == 7)
}

fn unix(field: &str, t: &Option<String>) -> Result<Option<i64>, RuleError> {
    t.as_ref()
        .map(|s| {
            humantime::parse_rfc3339_weak(s)
                .map(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0)
                })
                .map_err(|_| {
                    err(
                        field,
                        format!("invalid time {s:?}: expected RFC 3339, e.g. 2026-12-01T00:00:00Z"),
                    )
                })
        })
        .transpose()
}

#[derive(Clone)]
struct CompiledPredicates {
    p: Predicates,
    regexes: Vec<(String, Regex)>,
    header_words: Vec<(String, Vec<String>)>,
    subject_words: Vec<String>,
}

/// A rule ready to evaluate.
#[derive(Clone)]
pub struct CompiledRule {
    pub rule: Rule,
    conditions: CompiledPredicates,
    exceptions: CompiledPredicates,
    activate_at: Option<i64>,
    expire_at: Option<i64>,
}

impl std::fmt::Debug for CompiledRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledRule")
            .field("rule", &self.rule)
            .finish()
    }
}

fn compile_predicates(which: &str, p: &Predicates) -> Result<CompiledPredicates, RuleError> {
    let mut regexes = Vec::new();
    for (i, h) in p.header_matches.iter().enumerate() {
        if !valid_header_name(&h.name) {
            return Err(err(
                &format!("{which}.header_matches[{i}].name"),
                format!("invalid header name {:?}", h.name),
            ));
        }
        let re = regex::RegexBuilder::new(&h.pattern)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                err(
                    &format!("{which}.header_matches[{i}]"),
                    format!("invalid regex {:?}: {e}", h.pattern),
                )
            })?;
        regexes.push((h.name.to_ascii_lowercase(), re));
    }
    for (i, h) in p.header_contains.iter().enumerate() {
        if !valid_header_name(h.name.trim()) || h.words.iter().all(|w| w.trim().is_empty()) {
            return Err(err(
                &format!("{which}.header_contains[{i}]"),
                "needs 'Name: word[,word...]'",
            ));
        }
    }
    for (i, w) in p.subject_contains.iter().enumerate() {
        if w.trim().is_empty() {
            return Err(err(
                &format!("{which}.subject_contains[{i}]"),
                "an empty word would match every subject",
            ));
        }
    }
    // Domains are matched in their normalized form (lower case, no trailing dot).
    let normalize = |field: &str, list: &[String]| -> Result<Vec<String>, RuleError> {
        list.iter()
            .enumerate()
            .map(|(i, n)| {
                crate::names::normalize_domain(n).ok_or_else(|| {
                    err(
                        &format!("{which}.{field}[{i}]"),
                        format!("invalid domain {n:?}"),
                    )
                })
            })
            .collect()
    };
    let mut normalized = p.clone();
    normalized.sender_domain_is = normalize("sender_domain_is", &p.sender_domain_is)?;
    normalized.recipient_domain_is = normalize("recipient_domain_is", &p.recipient_domain_is)?;
    for (i, a) in p.auth_result.iter().enumerate() {
        let ok = a.split_once('=').is_some_and(|(m, r)| match m {
            "spf" | "dkim" | "dmarc" | "arc" => {
                AUTH_RESULTS.contains(&r.to_ascii_lowercase().as_str())
            }
            "compauth" => matches!(
                r.to_ascii_lowercase().as_str(),
                "pass" | "fail" | "softpass" | "none"
            ),
            _ => false,
        });
        if !ok {
            return Err(err(
                &format!("{which}.auth_result[{i}]"),
                format!("invalid {a:?}: expected spf|dkim|dmarc|arc|compauth=<result>"),
            ));
        }
    }
    Ok(CompiledPredicates {
        p: normalized,
        regexes,
        header_words: p
            .header_contains
            .iter()
            .map(|h| {
                let words = h
                    .words
                    .iter()
                    .map(|w| w.trim().to_lowercase())
                    .filter(|w| !w.is_empty())
                    .collect();
                (h.name.trim().to_ascii_lowercase(), words)
            })
            .collect(),
        subject_words: p
            .subject_contains
            .iter()
            .map(|w| w.trim().to_lowercase())
            .collect(),
    })
}

/// The results `spf`, `dkim`, `dmarc` and `arc` can have (RFC 8601).
const AUTH_RESULTS: &[&str] = &[
    "pass",
    "fail",
    "softfail",
    "neutral",
    "none",
    "temperror",
    "permerror",
];

impl CompiledRule {
    /// Validates and compiles. Every error names the field.
    pub fn compile(rule: &Rule) -> Result<CompiledRule, RuleError> {
        if rule.actions.is_empty() {
            return Err(err("actions", "a rule needs at least one action"));
        }
        for a in &rule.actions {
            match a {
                RuleAction::Reject { code, text } => {
                    if !valid_reject_code(code) {
                        return Err(err(
                            "reject_code",
                            format!("{code:?} is not 5.7.1 or 5.7.900-5.7.999"),
                        ));
                    }
                    if text.chars().count() > 1024 {
                        return Err(err(
                            "reject_text",
                            format!("{} characters, at most 1024", text.chars().count()),
                        ));
                    }
                    if text.chars().any(|c| c.is_control()) {
                        return Err(err("reject_text", "control characters are not allowed"));
                    }
                }
                RuleAction::RedirectTo(to) if to.is_empty() => {
                    return Err(err("redirect_to", "needs an address"));
                }
                RuleAction::SetScl(n) if !(-1..=9).contains(n) => {
                    return Err(err("set_scl", format!("{n} is outside -1..9")));
                }
                RuleAction::SetHeader { name, .. } if !valid_header_name(name) => {
                    return Err(err("set_header", format!("invalid header name {name:?}")));
                }
                RuleAction::RemoveHeader(name) if !valid_header_name(name) => {
                    return Err(err(
                        "remove_header",
                        format!("invalid header name {name:?}"),
                    ));
                }
                RuleAction::SetHeader { value, .. } if value.contains(['\r', '\n']) => {
                    return Err(err("set_header", "the value may not contain line breaks"));
                }
                RuleAction::PrependSubject(p) if p.contains(['\r', '\n']) => {
                    return Err(err("prepend_subject", "may not contain line breaks"));
                }
                _ => {}
            }
        }
        Ok(CompiledRule {
            conditions: compile_predicates("conditions", &rule.conditions)?,
            exceptions: compile_predicates("exceptions", &rule.exceptions)?,
            activate_at: unix("activate_at", &rule.activate_at)?,
            expire_at: unix("expire_at", &rule.expire_at)?,
            rule: rule.clone(),
        })
    }
}

pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// What the rules see of one tenant copy.
#[derive(Clone, Copy, Debug)]
pub struct RuleFacts<'a> {
    /// Unix seconds.
    pub now: i64,
    pub attribution: &'a Attribution,
    pub direct_send: bool,
    pub client_ip: IpAddr,
    /// P1 address (`None`: null sender).
    pub mail_from: Option<&'a str>,
    /// P2 `From:` address.
    pub header_from: Option<&'a str>,
    /// Header fields (name, unfolded value) in message order.
    pub headers: &'a [(String, String)],
    pub subject: Option<&'a str>,
    /// This copy's recipients.
    pub recipients: &'a [String],
    pub auth: &'a AuthFacts,
    pub compauth: Option<CompAuth>,
}

fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
}

/// `domains` are normalized (lower case) when the rule is compiled; `candidate` is lower case.
fn any_domain(domains: &[String], candidate: Option<&str>) -> bool {
    candidate.is_some_and(|d| domains.iter().any(|p| is_same_or_subdomain(d, p)))
}
/// Per-message values every rule looks at, computed once per evaluation rather than per rule.
struct Prepared<'a> {
    f: &'a RuleFacts<'a>,
    /// Header names (ASCII lower case) with their lower-cased values.
    headers: Vec<(String, String)>,
    subject: String,
    mail_from_domain: Option<String>,
    header_from_domain: Option<String>,
    client_ip: IpAddr,
    recipient_domains: Vec<String>,
}

impl<'a> Prepared<'a> {
    fn new(f: &'a RuleFacts<'a>) -> Self {
        Prepared {
            headers: f
                .headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_lowercase()))
                .collect(),
            subject: f.subject.unwrap_or("").to_lowercase(),
            mail_from_domain: f.mail_from.and_then(domain_of),
            header_from_domain: f.header_from.and_then(domain_of),
            client_ip: f.client_ip.to_canonical(),
            recipient_domains: f.recipients.iter().filter_map(|r| domain_of(r)).collect(),
            f,
        }
    }

    fn header_values<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The kinds of predicate, in the order they are evaluated and described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    FromScope,
    SenderDomain,
    SenderIp,
    HeaderContains,
    HeaderMatches,
    Subject,
    RecipientDomain,
    Connector,
    DirectSend,
    AuthResult,
}

impl CompiledPredicates {
    /// The predicates present, in evaluation order.
    fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        let p = &self.p;
        [
            (p.from_scope.is_some(), Kind::FromScope),
            (!p.sender_domain_is.is_empty(), Kind::SenderDomain),
            (!p.sender_ip_ranges.is_empty(), Kind::SenderIp),
            (!self.header_words.is_empty(), Kind::HeaderContains),
            (!self.regexes.is_empty(), Kind::HeaderMatches),
            (!self.subject_words.is_empty(), Kind::Subject),
            (!p.recipient_domain_is.is_empty(), Kind::RecipientDomain),
            (p.attributed_connector.is_some(), Kind::Connector),
            (p.direct_send.is_some(), Kind::DirectSend),
            (!p.auth_result.is_empty(), Kind::AuthResult),
        ]
        .into_iter()
        .filter_map(|(present, k)| present.then_some(k))
    }

    fn holds(&self, k: Kind, loc: AddressLocation, m: &Prepared<'_>) -> bool {
        let p = &self.p;
        match k {
            Kind::FromScope => p
                .from_scope
                .is_some_and(|scope| (scope == FromScope::Inside) == inside(m.f)),
            Kind::SenderDomain => {
                let env = any_domain(&p.sender_domain_is, m.mail_from_domain.as_deref());
                let hdr = any_domain(&p.sender_domain_is, m.header_from_domain.as_deref());
                match loc {
                    AddressLocation::Header => hdr,
                    AddressLocation::Envelope => env,
                    AddressLocation::HeaderOrEnvelope => hdr || env,
                }
            }
            Kind::SenderIp => p.sender_ip_ranges.iter().any(|n| n.contains(&m.client_ip)),
            Kind::HeaderContains => self.header_words.iter().any(|(name, words)| {
                m.header_values(name)
                    .any(|v| words.iter().any(|w| v.contains(w.as_str())))
            }),
            Kind::HeaderMatches => self.regexes.iter().any(|(name, re)| {
                m.f.headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .any(|(_, v)| re.is_match(v))
            }),
            Kind::Subject => self
                .subject_words
                .iter()
                .any(|w| m.subject.contains(w.as_str())),
            Kind::RecipientDomain => m.recipient_domains.iter().any(|d| {
                p.recipient_domain_is
                    .iter()
                    .any(|x| is_same_or_subdomain(d, x))
            }),
            Kind::Connector => {
                p.attributed_connector
                    .as_ref()
                    .is_some_and(|c| match m.f.attribution.connector() {
                        None => c.eq_ignore_ascii_case("anonymous"),
                        Some(name) => name == c,
                    })
            }
            Kind::DirectSend => p.direct_send == Some(m.f.direct_send),
            Kind::AuthResult => p.auth_result.iter().any(|a| {
                let (method, want) = a.split_once('=').unwrap_or((a, ""));
                auth_value(m.f, method).eq_ignore_ascii_case(want)
            }),
        }
    }

    /// Says what the predicate looked at (only built for the trace and `rule test`).
    fn describe(&self, k: Kind, loc: AddressLocation, m: &Prepared<'_>) -> String {
        let p = &self.p;
        match k {
            Kind::FromScope => format!(
                "from scope {}",
                if inside(m.f) { "inside" } else { "outside" }
            ),
            Kind::SenderDomain => format!(
                "sender domain is {} ({loc:?})",
                p.sender_domain_is.join("|")
            ),
            Kind::SenderIp => format!("client IP {} in sender IP ranges", m.client_ip),
            Kind::HeaderContains => self
                .header_words
                .iter()
                .map(|(name, words)| format!("header {name} contains {}", words.join("|")))
                .collect::<Vec<_>>()
                .join(" or "),
            Kind::HeaderMatches => self
                .regexes
                .iter()
                .map(|(name, re)| format!("header {name} matches /{}/", re.as_str()))
                .collect::<Vec<_>>()
                .join(" or "),
            Kind::Subject => format!("subject contains {}", self.subject_words.join("|")),
            Kind::RecipientDomain => {
                format!("recipient domain is {}", p.recipient_domain_is.join("|"))
            }
            Kind::Connector => format!(
                "attributed connector is {}",
                p.attributed_connector.as_deref().unwrap_or("")
            ),
            Kind::DirectSend => format!("direct send is {}", p.direct_send.unwrap_or(false)),
            Kind::AuthResult => {
                let mut seen: Vec<String> = Vec::new();
                for a in &p.auth_result {
                    let method = a.split_once('=').map(|(m, _)| m).unwrap_or(a);
                    let fact = format!("{method}={}", auth_value(m.f, method));
                    if !seen.contains(&fact) {
                        seen.push(fact);
                    }
                }
                format!(
                    "auth result {} (wanted {})",
                    seen.join(" "),
                    p.auth_result.join("|")
                )
            }
        }
    }
}

fn inside(f: &RuleFacts<'_>) -> bool {
    matches!(
        f.attribution,
        Attribution::Connector {
            kind: ConnectorType::OnPremises,
            ..
        }
    )
}

fn auth_value(f: &RuleFacts<'_>, method: &str) -> &'static str {
    match method {
        "spf" => f.auth.spf.as_str(),
        "dkim" => f.auth.dkim_summary().as_str(),
        "dmarc" => f.auth.dmarc.as_str(),
        "arc" => f.auth.arc.as_str(),
        "compauth" => f.compauth.map(|c| c.verdict.as_str()).unwrap_or("none"),
        _ => "",
    }
}

/// One rule that matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleMatch {
    pub rule: String,
    pub mode: RuleMode,
    pub actions: Vec<RuleAction>,
    /// The conditions that held.
    pub why: Vec<String>,
}

/// One rule that did not apply, and why (for `rule test`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleMiss {
    pub rule: String,
    pub why: String,
}

/// The effect of all enforced matches on one copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleEffect {
    /// Quarantine, by this rule.
    pub quarantine: Option<String>,
    /// Reject with (code, text, rule name).
    pub reject: Option<(String, String, String)>,
    pub redirect_to: Option<Vec<String>>,
    pub set_headers: Vec<(String, String)>,
    pub remove_headers: Vec<String>,
    pub prepend_subject: Vec<String>,
    pub scl: Option<i8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleOutcome {
    pub matched: Vec<RuleMatch>,
    pub missed: Vec<RuleMiss>,
    pub effect: RuleEffect,
}

/// Evaluates the tenant's rules (sorted by priority, then name) for one copy.
pub fn evaluate_rules(rules: &[CompiledRule], f: &RuleFacts<'_>) -> RuleOutcome {
    run_rules(rules, f, true)
}

/// As [`evaluate_rules`] without the explanation of rules that did not apply (`missed` stays
/// empty): the SMTP path, where describing a thousand misses per message would cost more than
/// evaluating them.
pub fn apply_rules(rules: &[CompiledRule], f: &RuleFacts<'_>) -> RuleOutcome {
    run_rules(rules, f, false)
}

fn run_rules(rules: &[CompiledRule], f: &RuleFacts<'_>, explain: bool) -> RuleOutcome {
    let mut out = RuleOutcome::default();
    if rules.is_empty() {
        return out;
    }
    let m = Prepared::new(f);
    for cr in rules {
        let r = &cr.rule;
        let mut missed = |why: &dyn Fn() -> String| {
            if explain {
                out.missed.push(RuleMiss {
                    rule: r.name.clone(),
                    why: why(),
                });
            }
        };
        if !r.enabled {
            missed(&|| "disabled".into());
            continue;
        }
        if cr.activate_at.is_some_and(|t| f.now < t) {
            missed(&|| {
                format!(
                    "not active before {}",
                    r.activate_at.as_deref().unwrap_or("")
                )
            });
            continue;
        }
        if cr.expire_at.is_some_and(|t| f.now >= t) {
            missed(&|| format!("expired at {}", r.expire_at.as_deref().unwrap_or("")));
            continue;
        }
        // Stop at the first condition that fails and the first exception that holds; describe
        // only what is reported.
        let loc = r.sender_address_location;
        let (c, x) = (&cr.conditions, &cr.exceptions);
        if let Some(k) = c.kinds().find(|k| !c.holds(*k, loc, &m)) {
            missed(&|| format!("condition not met: {}", c.describe(k, loc, &m)));
            continue;
        }
        if let Some(k) = x.kinds().find(|k| x.holds(*k, loc, &m)) {
            missed(&|| format!("exception: {}", x.describe(k, loc, &m)));
            continue;
        }
        let mut why: Vec<String> = c.kinds().map(|k| c.describe(k, loc, &m)).collect();
        if why.is_empty() {
            why.push("no conditions (applies to every message)".to_string());
        }
        out.matched.push(RuleMatch {
            rule: r.name.clone(),
            mode: r.mode,
            actions: r.actions.clone(),
            why,
        });
        if r.mode == RuleMode::Audit {
            if r.stop_processing {
                break;
            }
            continue;
        }
        let mut stop = r.stop_processing;
        let e = &mut out.effect;
        for a in &r.actions {
            match a {
                RuleAction::Quarantine => {
                    e.quarantine.get_or_insert_with(|| r.name.clone());
                    stop = true;
                }
                RuleAction::Reject { code, text } => {
                    e.reject
                        .get_or_insert_with(|| (code.clone(), text.clone(), r.name.clone()));
                    stop = true;
                }
                RuleAction::RedirectTo(to) => e.redirect_to = Some(to.clone()),
                RuleAction::SetHeader { name, value } => {
                    e.set_headers.push((name.clone(), value.clone()))
                }
                RuleAction::RemoveHeader(name) => e.remove_headers.push(name.clone()),
                RuleAction::PrependSubject(p) => e.prepend_subject.push(p.clone()),
                RuleAction::SetScl(n) => e.scl = Some(*n),
            }
        }
        if stop {
            break;
        }
    }
    out
}
