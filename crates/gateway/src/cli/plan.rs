//! Planning: every client command validated locally with the shared `api_types` functions and
//! turned into one HTTP [`Call`]; a bad value never reaches the server.

use std::net::IpAddr;

use portcullis_policy::{Connector, OrgSettings};

use serde_json::Value;

use crate::api_types::{
    self, ConnectorPatch, NewDomain, NewTenant, OrgPatch, QuarantineParams, ReleaseRequest,
    ReplayRequest, ReportParams, SuggestRequest, TraceParams, parse_trace_status,
};

use super::args::*;
use super::call::*;
use super::plan_recipients::*;
use super::plan_rules::*;
use super::values::*;

/// Validates a client command locally and turns it into its HTTP call. `Err` is the one-line
/// message naming the bad value (exit status 2). `serve` is not a client command.
pub fn plan(command: &Command) -> Result<Call, String> {
    match command {
        Command::Serve(_) | Command::Completions { .. } | Command::Man => {
            Err("not a client command".to_string())
        }
        Command::Tenant(c) => plan_tenant(c),
        Command::Domain(c) => plan_domain(c),
        Command::Org(c) => plan_org(c),
        Command::Connector(c) => plan_connector(c),
        Command::Recipient(c) => plan_recipient(c),
        Command::Config(ConfigCommand::Show { json }) => {
            Ok(Call::new(Method::Get, format!("{API}/config"), Output::ConfigToml).json(*json))
        }
        Command::Rule(c) => plan_rule(c),
        Command::Quarantine(c) => plan_quarantine(c),
        Command::Trace(t) => plan_trace(t),
        Command::Report(ReportCommand::DirectSend(a)) => plan_direct_send(a),
        Command::Report(ReportCommand::UnknownRecipients {
            tenant,
            since,
            json,
        }) => {
            humantime::parse_duration(since).map_err(|_| {
                format!("invalid --since {since:?}: expected a duration such as 24h or 7d")
            })?;
            Ok(Call::new(
                Method::Get,
                format!(
                    "{}/reports/unknown-recipients?since={}",
                    tenant_path(tenant)?,
                    encode(since)
                ),
                Output::UnknownRecipients,
            )
            .json(*json))
        }
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

pub(super) fn plan_token(c: &TokenCommand) -> Result<Call, String> {
    Ok(match c {
        TokenCommand::Create {
            name,
            role,
            tenant,
            expires,
            json,
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
            Call::new(Method::Post, format!("{API}/tokens"), Output::TokenCreated)
                .body(
                    &serde_json::json!({"name": name, "role": role, "tenant": tenant, "expires": expires}),
                )
                .json(*json)
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

pub(super) fn plan_audit(a: &AuditArgs) -> Result<Call, String> {
    if let Some(s) = &a.since {
        api_types::parse_since_time(s).map_err(|e| format!("invalid --since {s:?}: {e}"))?;
    }
    let mut params = Vec::new();
    if let Some(s) = &a.since {
        params.push(format!("since={}", encode(s)));
    }
    if let Some(n) = page_limit(&a.paging)? {
        params.push(format!("limit={n}"));
    }
    if let Some(c) = time_cursor(&a.paging)? {
        params.push(format!("cursor={}", encode(&c)));
    }
    let q = if params.is_empty() {
        String::new()
    } else {
        format!("?{}", params.join("&"))
    };
    let path = match &a.tenant {
        Some(t) => format!(
            "{API}/tenants/{}/audit{q}",
            encode(&api_types::parse_tenant_name(t)?)
        ),
        None => format!("{API}/audit{q}"),
    };
    Ok(Call::new(Method::Get, path, Output::AuditList)
        .json(a.json)
        .paged(&a.paging))
}

pub(super) fn plan_queue(c: &QueueCommand) -> Result<Call, String> {
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
            paging,
            json,
        } => {
            if let Some(t) = tenant {
                api_types::parse_tenant_name(t)?;
            }
            let q = query_string(&api_types::QueueParams {
                tenant: tenant.clone(),
                destination: destination.clone(),
                limit: page_limit(paging)?,
                cursor: paging
                    .cursor
                    .as_deref()
                    .map(api_types::parse_queue_cursor)
                    .transpose()?,
            });
            Call::new(Method::Get, format!("{API}/queue{q}"), Output::QueueList)
                .json(*json)
                .paged(paging)
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
        QueueCommand::Reroute {
            id,
            destination,
            to,
            json,
            ..
        } => {
            let to = api_types::parse_route_opt(to)?
                .ok_or_else(|| "invalid --to '': expected a route URL".to_string())?;
            let destination = destination
                .as_deref()
                .map(|d| {
                    api_types::parse_route_opt(d)?
                        .ok_or_else(|| "invalid --destination '': expected a route URL".to_string())
                })
                .transpose()?;
            let path = match id {
                Some(id) => format!("{API}/queue/{}/reroute", queue_id(id)?),
                None => format!("{API}/queue/reroute"),
            };
            Call::new(Method::Post, path, Output::Rerouted)
                .body(&serde_json::json!({ "to": to, "destination": destination }))
                .json(*json)
        }
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

/// `report direct-send`: the report (GET), or with `--suggest-connectors` the proposed connectors
/// (POST, `apply: false`; `--apply` creates them with a second POST, see [`run_suggest_apply`]).
pub(super) fn plan_direct_send(a: &DirectSendArgs) -> Result<Call, String> {
    let base = tenant_path(&a.tenant)?;
    let since = parse_since(&a.since)?;
    if a.json && a.format == ReportFormat::Csv {
        return Err("--json and --format csv exclude each other".to_string());
    }
    // `--json` is `--format json`, as on every other command.
    let format = if a.json { ReportFormat::Json } else { a.format };
    let json = format == ReportFormat::Json;
    if a.suggest_connectors {
        if a.format == ReportFormat::Csv {
            return Err("--format csv does not apply to --suggest-connectors".to_string());
        }
        let source = a
            .source
            .as_deref()
            .map(|s| {
                api_types::parse_cidr(s)
                    .map(|n| n.to_string())
                    .map_err(|e| format!("--source: {e}"))
            })
            .transpose()?;
        let req = SuggestRequest {
            since: Some(since),
            apply: false,
            source,
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
pub(super) fn suggest_apply_call(plan: &Call) -> Call {
    let mut call = plan.clone();
    if let Some(Value::Object(body)) = &mut call.body {
        body.insert("apply".into(), Value::Bool(true));
    }
    call.output = Output::SuggestApplied;
    call
}

/// One `simulate replay --set KEY=VALUE`, validated; the value trimmed (a domain normalized).
pub(super) fn parse_replay_set(s: &str) -> Result<String, String> {
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
pub(super) fn parse_replay_connector(tenant: &str, spec: &str) -> Result<String, String> {
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

pub(super) fn plan_replay(a: &ReplayArgs) -> Result<Call, String> {
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

pub(super) fn plan_tenant(c: &TenantCommand) -> Result<Call, String> {
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
        TenantCommand::Show { name, json } => Call::new(
            Method::Get,
            format!("{}/summary", tenant_path(name)?),
            Output::TenantSummary,
        )
        .json(*json),
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

pub(super) fn plan_domain(c: &DomainCommand) -> Result<Call, String> {
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
            Call::new(Method::Post, format!("{base}/domains"), Output::DomainAdded).body(&body)
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
        DomainCommand::Verify { domain, tenant } => {
            let base = tenant_path(tenant)?;
            let domain = api_types::parse_domain(domain)?;
            Call::new(
                Method::Post,
                format!("{base}/domains/{}/verify", encode(&domain)),
                Output::Confirm(format!(
                    "domain {domain} of tenant {tenant} verified: it receives mail now"
                )),
            )
            .body(&api_types::VerifyDomain {})
        }
        DomainCommand::Set {
            domain,
            tenant,
            route,
            recipient_validation,
        } => {
            let base = tenant_path(tenant)?;
            let domain = api_types::parse_domain(domain)?;
            if route.is_none() && recipient_validation.is_none() {
                return Err("nothing to change: give --route or --recipient-validation".into());
            }
            let body = api_types::DomainPatch {
                route: route
                    .as_deref()
                    .map(api_types::parse_route_opt)
                    .transpose()?,
                recipient_validation: recipient_validation.as_ref().map(|v| Some(v.clone())),
            };
            if let Some(Some(v)) = &body.recipient_validation
                && v.trim() != "inherit"
            {
                api_types::parse_recipient_validation(v)?;
            }
            Call::new(
                Method::Patch,
                format!("{base}/domains/{}", encode(&domain)),
                Output::Confirm(format!("domain {domain} of tenant {tenant} updated")),
            )
            .body(&body)
        }
    })
}

pub(super) fn plan_org(c: &OrgCommand) -> Result<Call, String> {
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
                recipient_validation: a.recipient_validation.clone(),
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

pub(super) fn connector_patch(f: &ConnectorFlags) -> Result<ConnectorPatch, String> {
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
        skip_ips: list_flag(&f.skip_ips),
        skip_last_ip: on_off("--skip-last-ip", &f.skip_last_ip)?,
        allow_broad_range: f.allow_broad_range,
    })
}

/// Validates each value of a `connector set` patch on its own; the combination with the stored
/// connector is the server's to check.
pub(super) fn check_connector_values(p: &ConnectorPatch) -> Result<(), String> {
    if let Some(t) = &p.connector_type {
        api_types::parse_connector_type(t)?;
    }
    for (flag, list) in [("--sender-ip", &p.sender_ips), ("--skip-ips", &p.skip_ips)] {
        let nets = list
            .iter()
            .flatten()
            .map(|s| api_types::parse_cidr(s))
            .collect::<Result<Vec<_>, _>>()?;
        api_types::check_broad_ranges(flag, &nets, p.allow_broad_range)?;
    }
    for s in p.tls_cert_names.iter().flatten() {
        api_types::parse_cert_name(s)?;
    }
    for s in p.sender_domains.iter().flatten() {
        api_types::parse_sender_domain(s)?;
    }
    Ok(())
}

pub(super) fn plan_connector(c: &ConnectorCommand) -> Result<Call, String> {
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

pub(super) fn quarantine_path(tenant: &str, id: &str) -> Result<String, String> {
    let base = tenant_path(tenant)?;
    Ok(format!(
        "{base}/quarantine/{}",
        encode(parse_id("quarantine id", id)?)
    ))
}

pub(super) fn plan_quarantine(c: &QuarantineCommand) -> Result<Call, String> {
    Ok(match c {
        QuarantineCommand::List {
            tenant,
            reason,
            sender,
            recipient,
            paging,
            json,
        } => {
            let params = QuarantineParams {
                reason: reason.clone(),
                sender: sender.clone(),
                recipient: recipient.clone(),
                limit: page_limit(paging)?,
                cursor: time_cursor(paging)?,
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
            .paged(paging)
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

pub(super) fn plan_trace(t: &TraceArgs) -> Result<Call, String> {
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
    if let Some(s) = &t.status {
        parse_trace_status(s)?;
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
        limit: page_limit(&t.paging)?,
        cursor: time_cursor(&t.paging)?,
    };
    Ok(Call::new(
        Method::Get,
        format!("{base}/trace{}", query_string(&params)),
        Output::TraceList,
    )
    .json(t.json)
    .paged(&t.paging))
}

/// `--limit`, checked; with `--all`, pages of `--limit` (default 10,000).
pub(super) fn page_limit(p: &Paging) -> Result<Option<u32>, String> {
    if let Some(n) = p.limit {
        api_types::limit(Some(n), n).map_err(|e| format!("invalid --limit: {e}"))?;
    }
    Ok(if p.all {
        p.limit.or(Some(10_000))
    } else {
        p.limit
    })
}

/// `--cursor` of a time-ordered listing (trace, quarantine, audit), checked.
pub(super) fn time_cursor(p: &Paging) -> Result<Option<String>, String> {
    p.cursor
        .as_deref()
        .map(|c| api_types::parse_time_cursor(c).map(|_| c.to_string()))
        .transpose()
}

pub(super) use crate::api_types::{encode, query_string};
