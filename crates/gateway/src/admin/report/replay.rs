//! `simulate replay`: recorded transactions re-decided against a proposed configuration with the
//! policy code the SMTP session uses.

use std::net::IpAddr;

use portcullis_policy::{
    AuthFacts, AuthResult, Connector, DataFacts, Directory, DkimFact, DmarcPolicy, Fate,
    MessageFacts, PeerFacts, RcptFacts, RcptVerdict, decide_copy, decide_rcpt,
};
use portcullis_store::{DirectoryData, Store, TraceRecord, TraceScan};

use crate::api_types::*;
use crate::sys::clock::micros;

use super::scan::{domain_of, scan, since};

/// The outcome of one recipient under one configuration: `accepted`, `quarantined` or the reply.
fn outcome(dir: &Directory, r: &TraceRecord, rcpt: &str, auth: &AuthFacts) -> String {
    let ip = r
        .client_ip
        .parse::<IpAddr>()
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let peer = PeerFacts {
        ip,
        tls: r.tls.is_some(),
        cert_names: r
            .tls
            .as_ref()
            .map(|t| t.client_cert_names.clone())
            .unwrap_or_default(),
    };
    let p1 = domain_of(&r.mail_from).filter(|_| r.mail_from != "<>");
    let Some(rcpt_domain) = domain_of(rcpt) else {
        return "invalid recipient".into();
    };
    let facts = RcptFacts {
        peer: &peer,
        p1_domain: p1.as_deref(),
        rcpt_domain: &rcpt_domain,
        spf_temp_error: false,
        recipient: portcullis_policy::RecipientLookup::NotValidated,
    };
    let verdict = decide_rcpt(dir, &facts);
    let RcptVerdict::Accept {
        tenant,
        attribution,
        direct_send,
    } = &verdict
    else {
        return verdict.reply().to_string();
    };
    // The rules see what the record kept: no header fields (a header condition does not match).
    let recipients = [rcpt.to_string()];
    let outcome = decide_copy(
        dir,
        &DataFacts {
            tenant,
            attribution,
            direct_send: *direct_send,
            p1_domain: p1.as_deref(),
            auth,
            // Recorded behind a filtering service: judged for the original client, as then.
            behind_filter: r.original_client_ip.is_some(),
        },
        &MessageFacts {
            now: r.received_at_us / 1_000_000,
            client_ip: r
                .original_client_ip
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or(ip),
            mail_from: (r.mail_from != "<>").then_some(r.mail_from.as_str()),
            header_from: r.header_from.as_deref(),
            headers: &[],
            subject: r.subject.as_deref(),
            recipients: &recipients,
        },
        false,
    );
    match outcome.fate {
        Fate::Refuse { reply, .. } => reply.to_string(),
        Fate::Quarantine { .. } => "quarantined".into(),
        Fate::Deliver(_) => "accepted".into(),
    }
}

/// The authentication facts a trace record kept.
fn recorded_auth(r: &TraceRecord) -> AuthFacts {
    let a = &r.auth;
    let parse = |v: &Option<String>| match v.as_deref() {
        Some("pass") => AuthResult::Pass,
        Some("fail") => AuthResult::Fail,
        Some("softfail") => AuthResult::SoftFail,
        Some("neutral") => AuthResult::Neutral,
        Some("temperror") => AuthResult::TempError,
        Some("permerror") => AuthResult::PermError,
        _ => AuthResult::None,
    };
    let mut dkim: Vec<DkimFact> = a
        .dkim_pass_domains
        .iter()
        .map(|d| DkimFact {
            result: AuthResult::Pass,
            domain: d.clone(),
            selector: String::new(),
        })
        .collect();
    let summary = parse(&a.dkim);
    if dkim.is_empty() && summary != AuthResult::None {
        dkim.push(DkimFact {
            result: summary,
            domain: String::new(),
            selector: String::new(),
        });
    }
    AuthFacts {
        evaluated: a.spf.is_some(),
        spf: parse(&a.spf),
        spf_domain: domain_of(&r.mail_from).or_else(|| r.helo.clone()),
        dkim,
        arc: parse(&a.arc),
        arc_sealer: a.arc_sealer.clone(),
        dmarc: parse(&a.dmarc),
        dmarc_policy: match a.dmarc_policy.as_deref() {
            Some("reject") => DmarcPolicy::Reject,
            Some("quarantine") => DmarcPolicy::Quarantine,
            Some("none") => DmarcPolicy::None,
            _ => DmarcPolicy::Absent,
        },
        from_domain: r.header_from.as_deref().and_then(domain_of),
    }
}

/// Applies a replay request's changes to a copy of the directory data. Errors name the value.
pub fn proposed(
    mut data: DirectoryData,
    tenant: &str,
    req: &ReplayRequest,
    services: &[String],
) -> Result<DirectoryData, String> {
    let Some(t) = data.tenants.iter_mut().find(|t| t.name == tenant) else {
        return Err(format!("tenant {tenant} not found"));
    };
    for s in &req.set {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("invalid --set {s:?}: expected KEY=VALUE"))?;
        let mut patch = OrgPatch::default();
        match key {
            "reject-direct-send" => patch.reject_direct_send = Some(value.into()),
            "direct-send-scope" => patch.direct_send_scope = Some(value.into()),
            "honor-dmarc" => patch.honor_dmarc = Some(parse_on_off("honor-dmarc", value)?),
            "arc-trusted-sealer" => {
                let mut list = t.settings.arc_trusted_sealers.clone();
                list.push(value.to_string());
                patch.arc_trusted_sealers = Some(list);
            }
            "direct-send-allow-dkim-aligned" => {
                patch.direct_send_allow_dkim_aligned = Some(parse_on_off(key, value)?)
            }
            _ => return Err(format!("invalid --set key {key:?}")),
        }
        patch.apply(&mut t.settings, services)?;
    }
    for name in &req.remove_connectors {
        let before = data.connectors.len();
        data.connectors
            .retain(|c| !(c.tenant == tenant && &c.name == name));
        if data.connectors.len() == before {
            return Err(format!("connector {name:?} of tenant {tenant} not found"));
        }
    }
    for spec in &req.add_connectors {
        data.connectors.push(parse_connector_spec(tenant, spec)?);
    }
    Ok(data)
}

/// `NAME sender-ip=CIDR tls-cert-name=N sender-domain=D type=T require-tls`; the name is every
/// word before the first option (names may contain spaces).
pub fn parse_connector_spec(tenant: &str, spec: &str) -> Result<Connector, String> {
    let all: Vec<&str> = spec.split_whitespace().collect();
    let first_option = all
        .iter()
        .position(|w| w.contains('=') || *w == "require-tls")
        .unwrap_or(all.len());
    let name = parse_connector_name(&all[..first_option].join(" "))?;
    let words = all[first_option..].iter().copied();
    let mut patch = ConnectorPatch::default();
    let push = |list: &mut Option<Vec<String>>, v: &str| {
        list.get_or_insert_with(Vec::new).push(v.to_string())
    };
    for w in words {
        match w.split_once('=') {
            Some(("sender-ip", v)) => push(&mut patch.sender_ips, v),
            Some(("tls-cert-name", v)) => push(&mut patch.tls_cert_names, v),
            Some(("sender-domain", v)) => push(&mut patch.sender_domains, v),
            Some(("type", v)) => patch.connector_type = Some(v.to_string()),
            None if w == "require-tls" => patch.require_tls = Some(true),
            _ => return Err(format!("invalid connector option {w:?} in {spec:?}")),
        }
    }
    let mut c = Connector::new(tenant, &name);
    patch.apply(&mut c)?;
    Ok(c)
}

/// Re-decides every recorded transaction of the period under the current and the proposed
/// configuration and lists the recipients whose outcome changes.
pub async fn replay(
    store: &Store,
    current: &Directory,
    proposed: &Directory,
    tenant: &str,
    since_param: Option<&str>,
) -> anyhow::Result<ReplayReport> {
    let (start, since_text) = since(since_param, "7d").map_err(anyhow::Error::msg)?;
    let mut report = ReplayReport {
        tenant: tenant.to_string(),
        since: since_text,
        ..Default::default()
    };
    let q = TraceScan {
        tenant: tenant.to_string(),
        since_us: micros(start),
        until_us: None,
        direct_send_only: false,
    };
    scan(store, &q, |r| {
        report.transactions += 1;
        let auth = recorded_auth(r);
        for rc in &r.recipients {
            report.recipients += 1;
            let before = outcome(current, r, &rc.address, &auth);
            let after = outcome(proposed, r, &rc.address, &auth);
            if before != after {
                report.changed += 1;
                let refused = |o: &str| o.starts_with('5') || o.starts_with('4');
                if refused(&after) && !refused(&before) {
                    report.newly_refused += 1;
                } else if !refused(&after) && refused(&before) {
                    report.newly_accepted += 1;
                }
                report.changes.push(ReplayChange {
                    trace_id: r.trace_id.clone(),
                    received_at: r.received_at.clone(),
                    client_ip: r.client_ip.clone(),
                    mail_from: r.mail_from.clone(),
                    recipient: rc.address.clone(),
                    before,
                    after,
                });
            }
        }
    })
    .await?;
    Ok(report)
}
