//! Human output: the text printed for each successful answer (tables, detail views, reports,
//! CSV), made safe for a terminal.

use portcullis_policy::rules::{Predicates, Rule, RuleAction};
use portcullis_policy::{AcceptedDomain, Connector, OrgSettings, Tenant};
use portcullis_store::{QuarantineEntry, TraceRecord};
use serde_json::Value;

use crate::api_types::{self, QuarantineDetail, SimulateReport, SuggestResponse};

use super::call::*;
use super::render_reports::*;
use super::text::*;

/// The text printed for a successful answer.
pub(super) fn render(call: &Call, body: &str) -> Result<String, String> {
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
        Output::DomainAdded => domain_added(&parse(body)?),
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
        Output::RecipientList => {
            let page: api_types::RecipientPage = parse(body)?;
            if let Some(next) = &page.next {
                // On stderr: standard output stays the addresses, one a line.
                eprintln!("more recipients follow: run again with --after {next}, or with --all");
            }
            page.recipients
                .iter()
                .map(|a| printable(a, false))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Output::RecipientsChanged => {
            let r: api_types::RecipientsChanged = parse(body)?;
            format!(
                "{} added, {} removed; the list has {} recipient{}",
                r.added,
                r.removed,
                r.total,
                if r.total == 1 { "" } else { "s" }
            )
        }
        Output::UnknownRecipients => unknown_recipients_text(&parse(body)?),
        Output::TenantSummary => tenant_summary_text(&parse(body)?),
        Output::Rerouted => {
            let v: Value = parse(body)?;
            let ids: Vec<&str> = v["rerouted"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            let to = v["to"].as_str().unwrap_or_default();
            printable(
                &if ids.is_empty() {
                    "no waiting message to reroute".to_string()
                } else {
                    format!("rerouted {} to {to}: {}", ids.len(), ids.join(", "))
                },
                false,
            )
        }
        Output::ConfigToml => {
            let v: Value = parse(body)?;
            printable(&toml::to_string(&v).map_err(|e| e.to_string())?, true)
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

pub(super) fn token_table(tokens: &[portcullis_store::TokenRecord]) -> String {
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
pub(super) fn audit_text(entries: &[portcullis_store::AuditEntry]) -> String {
    if entries.is_empty() {
        return "no changes recorded".into();
    }
    let mut out = Vec::new();
    for e in entries {
        out.push(format!(
            "{}  {}  {} from {}{}{}",
            e.at,
            e.action,
            e.principal,
            if e.address.is_empty() {
                "-"
            } else {
                &e.address
            },
            e.node
                .as_deref()
                .map(|n| format!(" on node {n}"))
                .unwrap_or_default(),
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
pub(super) fn json_diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
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

pub(super) fn simulate_text(r: &SimulateReport) -> String {
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

pub(super) fn queue_table(items: &[api_types::QueueItem]) -> String {
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
                i.node.clone().unwrap_or_default(),
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
            "NODE",
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

pub(super) fn queue_text(i: &api_types::QueueItem) -> String {
    let mut out = fields(&[
        ("id", i.id.clone()),
        ("trace_id", i.trace_id.clone()),
        ("node", i.node.clone().unwrap_or_else(|| "-".into())),
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

pub(super) fn tenant_table(tenants: &[Tenant]) -> String {
    let rows = tenants
        .iter()
        .map(|t| vec![t.name.clone(), label(&t.settings.reject_direct_send)])
        .collect::<Vec<_>>();
    table(&["NAME", "REJECT-DIRECT-SEND"], &rows)
}

pub(super) fn domain_table(domains: &[AcceptedDomain]) -> String {
    let rows = domains
        .iter()
        .map(|d| {
            vec![
                d.domain.clone(),
                label(&d.domain_type),
                yes_no(d.match_subdomains).to_string(),
                match &d.verification {
                    None => "active".to_string(),
                    Some(token) => format!("pending: publish TXT \"{token}\""),
                },
            ]
        })
        .collect::<Vec<_>>();
    table(&["DOMAIN", "TYPE", "MATCH-SUBDOMAINS", "STATE"], &rows)
}

/// `domain add`: the domain, and for a domain pending proof of control what to publish.
fn domain_added(d: &AcceptedDomain) -> String {
    match &d.verification {
        None => format!("domain {} added to tenant {}", d.domain, d.tenant),
        Some(token) => format!(
            "domain {domain} added to tenant {tenant}, pending: it receives mail once you publish\n  {domain}. IN TXT \"{token}\"\nand run: portcullis domain verify {domain} --tenant {tenant}",
            domain = d.domain,
            tenant = d.tenant,
        ),
    }
}

pub(super) fn org_text(s: &OrgSettings) -> String {
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
        ("recipient_validation", label(&s.recipient_validation)),
    ])
}

fn tenant_summary_text(t: &api_types::TenantSummary) -> String {
    let mut out = format!("tenant {}\n", printable(&t.tenant.name, false));
    out.push_str(&format!("route: {}\n", printable(&t.route, false)));
    out.push_str(&format!(
        "rules: {}   recipients in the list: {}\n\nsettings\n",
        t.rules, t.recipients
    ));
    out.push_str(&org_text(&t.tenant.settings));
    out.push_str("\n\naccepted domains\n");
    out.push_str(&if t.domains.is_empty() {
        "(none)".to_string()
    } else {
        domain_table(&t.domains)
    });
    out.push_str("\n\ninbound connectors\n");
    out.push_str(&if t.connectors.is_empty() {
        "(none)".to_string()
    } else {
        connector_table(&t.connectors)
    });
    out
}

pub(super) fn connector_table(connectors: &[Connector]) -> String {
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

pub(super) fn connector_text(c: &Connector) -> String {
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

pub(super) fn trace_table(records: &[TraceRecord]) -> String {
    let rows = records
        .iter()
        .map(|r| {
            vec![
                r.received_at.clone(),
                r.trace_id.clone(),
                r.status.to_string(),
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

pub(super) fn trace_text(r: &TraceRecord) -> String {
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
        ("attribution", r.attribution.to_string()),
        ("connector", opt(&r.connector).to_string()),
        ("direct_send", yes_no(r.direct_send).to_string()),
        ("auth", auth),
        ("status", r.status.to_string()),
    ]);
    out.push_str("\nrecipients:");
    if r.recipients.is_empty() {
        out.push_str(" -");
    } else {
        let rows = r
            .recipients
            .iter()
            .map(|x| vec![x.address.clone(), x.status.to_string(), x.reply.clone()])
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
            .map(|e| vec![e.at.clone(), e.event.to_string(), e.detail.clone()])
            .collect::<Vec<_>>();
        // No header: each event line reads `at  EVENT  detail`.
        for line in table(&["", "", ""], &rows).lines().skip(1) {
            out.push_str("\n  ");
            out.push_str(line);
        }
    }
    out
}

/// How many predicates are present (the JSON leaves out the absent ones).
pub(super) fn predicate_count(p: &Predicates) -> usize {
    match serde_json::to_value(p) {
        Ok(Value::Object(map)) => map.len(),
        _ => 0,
    }
}

/// The present predicates, each as its flag takes it (`Name: value` for headers).
pub(super) fn predicate_lines(p: &Predicates) -> Vec<(&'static str, String)> {
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
pub(super) fn action_short(a: &RuleAction) -> String {
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

pub(super) fn rule_table(rules: &[Rule]) -> String {
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

pub(super) fn rule_text(r: &Rule) -> String {
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

pub(super) fn rule_test_text(r: &SimulateReport) -> String {
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

pub(super) fn quarantine_table(entries: &[QuarantineEntry]) -> String {
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

pub(super) fn quarantine_text(d: &QuarantineDetail) -> String {
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
