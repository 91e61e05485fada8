//! `portcullis simulate`: explains, step by step, what the gateway would decide for a
//! transaction. It calls the same functions the SMTP session calls (`Authenticator::spf`,
//! `policy::decide_rcpt`, `Authenticator::message`, `policy::decide_copy`) on the live snapshot
//! and live DNS; only the explanation around them is extra. Nothing is sent, stored or traced.

use std::net::IpAddr;

use portcullis_policy::{
    AuthResult, DataFacts, DataVerdict, DirectSend, Directory, Fate, MatchedBy, MessageFacts,
    PeerFacts, RcptFacts, RcptVerdict, Refusal, check_connector, decide_copy, decide_rcpt,
};
use portcullis_smtp::{Address, reply};
use portcullis_store::TraceAuth;

use crate::api_types::{
    SimulateConnector, SimulateReport, SimulateRequest, SimulateStep, parse_cert_name,
};
use crate::auth::Authenticator;
use crate::sys::clock::now_unix;

fn step(
    report: &mut SimulateReport,
    step: &str,
    outcome: impl Into<String>,
    detail: impl Into<String>,
) {
    report.steps.push(SimulateStep {
        step: step.into(),
        outcome: outcome.into(),
        detail: detail.into(),
    });
}

/// Runs the simulation for `tenant` (the API path's tenant: a recipient of another tenant is an
/// error, so no tenant learns about another's configuration).
pub async fn run(
    dir: &Directory,
    auth: &Authenticator,
    tenant: &str,
    req: &SimulateRequest,
) -> Result<SimulateReport, String> {
    let ip = req
        .ip
        .trim()
        .parse::<IpAddr>()
        .map_err(|_| format!("invalid IP address {:?}", req.ip))?
        // As the listener does at accept: the session sees the canonical form.
        .to_canonical();
    let from: Option<Address> = match req.mail_from.trim() {
        "<>" | "" => None,
        a => Some(
            Address::parse(a.trim_start_matches('<').trim_end_matches('>'))
                .ok_or_else(|| format!("invalid sender address {:?}", req.mail_from))?,
        ),
    };
    let rcpt = Address::parse(
        req.rcpt
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>'),
    )
    .ok_or_else(|| format!("invalid recipient address {:?}", req.rcpt))?;
    let cert = req
        .tls_cert_name
        .as_deref()
        .map(parse_cert_name)
        .transpose()?;
    let helo = req
        .helo
        .clone()
        .unwrap_or_else(|| "simulate.invalid".into());
    let peer = PeerFacts {
        ip,
        tls: cert.is_some(),
        cert_names: cert.iter().cloned().collect(),
    };
    let p1_domain = from.as_ref().map(|a| a.domain());

    let mut report = SimulateReport {
        directory_version: dir.version,
        ..Default::default()
    };
    // 1. Tenant resolution.
    let resolved = dir.resolve(rcpt.domain());
    match resolved {
        Some((entry, d)) if entry.tenant.name != tenant => {
            let _ = d;
            return Err(format!(
                "recipient domain {} does not belong to tenant {tenant}",
                rcpt.domain()
            ));
        }
        Some((entry, d)) => {
            report.tenant = Some(entry.tenant.name.clone());
            let how = if d.domain == rcpt.domain() {
                "exact match"
            } else {
                "subdomain, match_subdomains on"
            };
            step(
                &mut report,
                "tenant",
                entry.tenant.name.clone(),
                format!("{} → accepted domain {} ({how})", rcpt.domain(), d.domain),
            );
        }
        None => step(
            &mut report,
            "tenant",
            "none",
            format!("{} is no tenant's accepted domain", rcpt.domain()),
        ),
    }

    // 2. Connectors (conditions 1–4), for the tenant that owns the recipient.
    if let Some((entry, _)) = resolved {
        for c in &entry.connectors {
            let check = check_connector(c, &peer, p1_domain);
            let peer_match = check.peer.map(|m| match m {
                MatchedBy::Certificate => "certificate".to_string(),
                MatchedBy::Ip(p) => format!("ip/{p}"),
            });
            let mut why = Vec::new();
            if !check.enabled {
                why.push("disabled".to_string());
            }
            match &peer_match {
                Some(m) => why.push(format!("peer matches by {m}")),
                None => why.push("neither certificate name nor IP matches".into()),
            }
            if !check.tls_ok {
                why.push("requires TLS, session without STARTTLS".into());
            }
            if !check.sender_domain_ok {
                why.push(format!(
                    "sender domain {} not in {}",
                    p1_domain.unwrap_or("<>"),
                    c.sender_domains.join(", ")
                ));
            }
            let verdict = if check.attributes() {
                "attributes"
            } else {
                "does not attribute"
            };
            step(
                &mut report,
                "connector",
                format!("{} {verdict}", c.name),
                why.join("; "),
            );
            report.connectors.push(SimulateConnector {
                name: check.name.clone(),
                enabled: check.enabled,
                peer_match,
                tls_ok: check.tls_ok,
                sender_domain_ok: check.sender_domain_ok,
                attributes: check.attributes(),
            });
        }
    }

    // 3. SPF, as at MAIL FROM.
    let from_text = from.as_ref().map(|a| a.to_string());
    let spf = auth.spf(ip, &helo, from_text.as_deref()).await;
    step(
        &mut report,
        "spf",
        spf.result.as_str(),
        format!(
            "identity {}",
            spf.domain.as_deref().unwrap_or(if auth.enabled() {
                "-"
            } else {
                "(authentication off)"
            })
        ),
    );

    // 4. The RCPT decision.
    let facts = RcptFacts {
        peer: &peer,
        p1_domain,
        rcpt_domain: rcpt.domain(),
        spf_temp_error: spf.result == AuthResult::TempError,
    };
    let verdict = decide_rcpt(dir, &facts);
    let rcpt_reply = verdict.reply();
    report.row = verdict.row();
    report.rcpt_reply = rcpt_reply.to_string();
    report.reply = report.rcpt_reply.clone();
    report.attribution = "anonymous".into();
    let (attribution, direct_send) = match &verdict {
        RcptVerdict::Accept {
            attribution,
            direct_send,
            ..
        } => (attribution.clone(), *direct_send),
        _ => (portcullis_policy::Attribution::Anonymous, DirectSend::No),
    };
    if let Some(name) = attribution.connector() {
        report.attribution = "connector".into();
        report.connector = Some(name.to_string());
    }
    report.direct_send =
        direct_send.is_direct_send() || matches!(verdict, RcptVerdict::DirectSendRefused { .. });
    let who = match &attribution {
        portcullis_policy::Attribution::Anonymous => "anonymous".to_string(),
        portcullis_policy::Attribution::Connector { name, kind, .. } => {
            format!("connector \"{name}\" ({})", kind.as_str())
        }
    };
    let ds = if report.direct_send {
        "direct send: anonymous, P1 domain is the tenant's"
    } else {
        ""
    };
    step(&mut report, "attribution", who, ds);
    let row = report
        .row
        .map(|r| format!("row {r}"))
        .unwrap_or_else(|| "deferred".into());
    let r = report.rcpt_reply.clone();
    step(&mut report, "rcpt", row, r);

    // 5. End of DATA, if a message was given and the recipient would be accepted.
    let Some(eml) = &req.eml else {
        return Ok(report);
    };
    let RcptVerdict::Accept { tenant: t, .. } = &verdict else {
        return Ok(report);
    };
    let raw = normalize_crlf(eml);
    let auth_out = auth.message(&raw, ip, &spf).await;
    let mut facts = auth_out.facts.clone();
    let hf = crate::message::header_facts(&raw);
    if facts.from_domain.is_none() {
        facts.from_domain = hf.from_domain.clone();
    }
    let headers = crate::message::header_fields(&raw);
    let recipients = [rcpt.to_string()];
    let outcome = decide_copy(
        dir,
        &DataFacts {
            tenant: t,
            attribution: &attribution,
            direct_send,
            p1_domain,
            auth: &facts,
        },
        &MessageFacts {
            now: now_unix(),
            client_ip: ip,
            mail_from: from_text.as_deref(),
            header_from: hf.from.as_deref(),
            headers: &headers,
            subject: hf.subject.as_deref(),
            recipients: &recipients,
        },
        true,
    );
    let comp = outcome.compauth;
    report.compauth = Some(comp.to_string());
    report.auth = Some(TraceAuth {
        spf: Some(facts.spf.as_str().into()),
        dkim: Some(facts.dkim_summary().as_str().into()),
        dmarc: Some(facts.dmarc.as_str().into()),
        arc: Some(facts.arc.as_str().into()),
        compauth: Some(comp.verdict.as_str().into()),
        compauth_reason: Some(comp.reason),
        ..Default::default()
    });
    step(
        &mut report,
        "authentication",
        comp.to_string(),
        auth_out.summary(&comp),
    );
    let mut detail = Vec::new();
    if let DataVerdict::Accept {
        exemption, actions, ..
    } = &outcome.verdict
    {
        if let Some(e) = exemption {
            detail.push(format!("direct send exempted: {e}"));
        }
        for a in actions {
            detail.push(format!("{a:?}"));
        }
    }
    for m in &outcome.rules.matched {
        let acts: Vec<String> = m.actions.iter().map(|a| a.describe()).collect();
        step(
            &mut report,
            "rule",
            format!("{} matches ({:?})", m.rule, m.mode),
            format!("{} — {}", acts.join(", "), m.why.join("; ")),
        );
    }
    report.rules_matched = outcome.rules.matched;
    report.rules_missed = outcome.rules.missed;
    // The session's reply: a refusal's own, or `250 Queued as <id>` for a copy it accepts
    // (held in the quarantine or not: the client is not told).
    let data_reply = match outcome.fate {
        Fate::Refuse { reply, why } => {
            let how = match why {
                Refusal::Rule { .. } => "refused by rule",
                _ => "refused",
            };
            step(&mut report, "data", how, reply.to_string());
            reply
        }
        Fate::Quarantine { reason, .. } => {
            detail.insert(0, format!("reason {reason}"));
            step(&mut report, "data", "quarantined", detail.join("; "));
            reply::queued("(simulated; quarantined)")
        }
        Fate::Deliver(_) => {
            step(&mut report, "data", "accepted", detail.join("; "));
            reply::queued("(simulated)")
        }
    };
    report.reply = data_reply.to_string();
    report.data_reply = Some(report.reply.clone());
    Ok(report)
}

/// Messages pasted or read from files often have bare LF line endings; SMTP delivers CRLF.
fn normalize_crlf(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 20);
    let mut prev = 0u8;
    for &b in text.as_bytes() {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}
