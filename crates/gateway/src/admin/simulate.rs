//! `portcullis simulate`: explains, step by step, what the gateway would decide for a
//! transaction. It calls the same functions the SMTP session calls (`Authenticator::spf`,
//! `policy::decide_rcpt`, `Authenticator::message`, `policy::decide_copy`) on the live snapshot
//! and live DNS; only the explanation around them is extra. Nothing is sent, stored or traced.

use std::net::IpAddr;

use portcullis_policy::{
    Attribution, AuthResult, CopyOutcome, DataFacts, DataVerdict, DirectSend, Directory, Fate,
    MatchedBy, MessageFacts, PeerFacts, RcptFacts, RcptVerdict, Refusal, TenantEntry,
    check_connector, decide_copy, decide_rcpt,
};
use portcullis_smtp::{Address, reply};
use portcullis_store::TraceAuth;

use crate::api_types::{
    SimulateConnector, SimulateReport, SimulateRequest, SimulateStep, parse_cert_name,
};
use crate::auth::{Authenticator, Spf};
use crate::recipients::{Lookup, Source, Verifier};
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

/// The transaction to simulate, parsed and validated as the session would see it.
struct Transaction {
    /// Canonical, as the listener makes it at accept.
    ip: IpAddr,
    from: Option<Address>,
    rcpt: Address,
    helo: String,
    peer: PeerFacts,
}

impl Transaction {
    fn parse(req: &SimulateRequest) -> Result<Transaction, String> {
        let ip = req
            .ip
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| format!("invalid IP address {:?}", req.ip))?
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
        Ok(Transaction {
            ip,
            from,
            rcpt,
            helo,
            peer,
        })
    }

    fn p1_domain(&self) -> Option<&str> {
        self.from.as_ref().map(|a| a.domain())
    }
}

/// Runs the simulation for `tenant` (the API path's tenant: a recipient of another tenant is an
/// error, so no tenant learns about another's configuration).
pub async fn run(
    dir: &Directory,
    auth: &Authenticator,
    verifier: &Verifier,
    tenant: &str,
    req: &SimulateRequest,
) -> Result<SimulateReport, String> {
    let tx = Transaction::parse(req)?;
    let mut report = SimulateReport {
        directory_version: dir.version,
        ..Default::default()
    };
    if let Some(entry) = explain_tenant(dir, tenant, &tx, &mut report)? {
        explain_connectors(entry, &tx, &mut report);
    }
    let spf = explain_spf(auth, &tx, &mut report).await;
    let verdict = explain_rcpt(dir, verifier, &tx, &spf, &mut report).await;
    // The end of DATA, if a message was given and the recipient would be accepted.
    if let (Some(eml), RcptVerdict::Accept { .. }) = (&req.eml, &verdict) {
        explain_data(dir, auth, &tx, &spf, &verdict, eml, &mut report).await;
    }
    Ok(report)
}

/// Step 1: tenant resolution. The recipient of another tenant is an error.
fn explain_tenant<'d>(
    dir: &'d Directory,
    tenant: &str,
    tx: &Transaction,
    report: &mut SimulateReport,
) -> Result<Option<&'d TenantEntry>, String> {
    let domain = tx.rcpt.domain();
    match dir.resolve(domain) {
        Some((entry, _)) if entry.tenant.name != tenant => Err(format!(
            "recipient domain {domain} does not belong to tenant {tenant}"
        )),
        Some((entry, d)) => {
            report.tenant = Some(entry.tenant.name.clone());
            let how = if d.domain == domain {
                "exact match"
            } else {
                "subdomain, match_subdomains on"
            };
            let detail = format!("{domain} → accepted domain {} ({how})", d.domain);
            step(report, "tenant", entry.tenant.name.clone(), detail);
            Ok(Some(entry))
        }
        None => {
            let detail = format!("{domain} is no tenant's accepted domain");
            step(report, "tenant", "none", detail);
            Ok(None)
        }
    }
}

/// Step 2: each connector of the tenant that owns the recipient (SPEC §2 conditions 1–4).
fn explain_connectors(entry: &TenantEntry, tx: &Transaction, report: &mut SimulateReport) {
    let p1_domain = tx.p1_domain();
    for c in &entry.connectors {
        let check = check_connector(c, &tx.peer, p1_domain);
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
            report,
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

/// Step 3: SPF, as at MAIL FROM.
async fn explain_spf(auth: &Authenticator, tx: &Transaction, report: &mut SimulateReport) -> Spf {
    let from_text = tx.from.as_ref().map(|a| a.to_string());
    let spf = auth.spf(tx.ip, &tx.helo, from_text.as_deref()).await;
    let identity = spf.domain.as_deref().unwrap_or(if auth.enabled() {
        "-"
    } else {
        "(authentication off)"
    });
    step(
        report,
        "spf",
        spf.result.as_str(),
        format!("identity {identity}"),
    );
    spf
}

/// Step 4: the recipient lookup, the RCPT decision and the attribution it found.
async fn explain_rcpt(
    dir: &Directory,
    verifier: &Verifier,
    tx: &Transaction,
    spf: &Spf,
    report: &mut SimulateReport,
) -> RcptVerdict {
    let mut facts = RcptFacts {
        peer: &tx.peer,
        p1_domain: tx.p1_domain(),
        rcpt_domain: tx.rcpt.domain(),
        spf_temp_error: spf.result == AuthResult::TempError,
        recipient: portcullis_policy::RecipientLookup::NotValidated,
    };
    if let Some(lookup) = verifier.look_up(dir, &facts, &tx.rcpt).await {
        facts.recipient = lookup.result;
        explain_lookup(&lookup, report);
    }
    let verdict = decide_rcpt(dir, &facts);
    report.row = verdict.row();
    report.rcpt_reply = verdict.reply().to_string();
    report.reply = report.rcpt_reply.clone();
    report.attribution = "anonymous".into();
    let (attribution, direct_send) = accepted_as(&verdict);
    if let Some(name) = attribution.connector() {
        report.attribution = "connector".into();
        report.connector = Some(name.to_string());
    }
    report.direct_send =
        direct_send.is_direct_send() || matches!(verdict, RcptVerdict::DirectSendRefused { .. });
    let who = match &attribution {
        Attribution::Anonymous => "anonymous".to_string(),
        Attribution::Connector { name, kind, .. } => {
            format!("connector \"{name}\" ({})", kind.as_str())
        }
    };
    let ds = if report.direct_send {
        "direct send: anonymous, P1 domain is the tenant's"
    } else {
        ""
    };
    step(report, "attribution", who, ds);
    let row = report
        .row
        .map(|r| format!("row {r}"))
        .unwrap_or_else(|| "deferred".into());
    let r = report.rcpt_reply.clone();
    step(report, "rcpt", row, r);
    verdict
}

/// The recipient lookup as a step: how the recipient was validated, what was found, where.
fn explain_lookup(lookup: &Lookup, report: &mut SimulateReport) {
    use portcullis_policy::RecipientLookup as L;
    let found = match lookup.result {
        L::NotValidated => "not validated",
        L::Known => "known",
        L::Unknown => "unknown",
        L::Unavailable => "could not be verified",
    };
    let outcome = match lookup.source {
        Source::None => found.to_string(),
        source => format!("{found} ({})", source.as_str()),
    };
    let mut detail = format!("recipient validation {}", lookup.validation.as_str());
    if !lookup.detail.is_empty() {
        detail.push_str(": ");
        detail.push_str(&lookup.detail);
    }
    step(report, "recipient", outcome, detail);
}

/// The attribution and direct-send outcome of an accepted recipient (anonymous, not direct send
/// for a refused one).
fn accepted_as(verdict: &RcptVerdict) -> (Attribution, DirectSend) {
    match verdict {
        RcptVerdict::Accept {
            attribution,
            direct_send,
            ..
        } => (attribution.clone(), *direct_send),
        _ => (Attribution::Anonymous, DirectSend::No),
    }
}

/// Step 5: the message authenticated as the session does, then `decide_copy` — the session's
/// own end-of-DATA decision — with every rule explained.
async fn explain_data(
    dir: &Directory,
    auth: &Authenticator,
    tx: &Transaction,
    spf: &Spf,
    verdict: &RcptVerdict,
    eml: &str,
    report: &mut SimulateReport,
) {
    let Some(tenant) = verdict.tenant() else {
        return;
    };
    let (attribution, direct_send) = accepted_as(verdict);
    let raw = normalize_crlf(eml);
    // Behind a filtering service (the connector's skip list): the original client, as the
    // session finds it, judges authentication and rules.
    let mut client = tx.ip;
    let mut recovered_spf = None;
    let connector = attribution.connector().and_then(|name| {
        dir.tenant(tenant)
            .and_then(|e| e.connectors.iter().find(|c| c.name == name))
    });
    if let Some(c) = connector {
        let chain = crate::message::received_clients(&raw);
        if let Some(walk) = portcullis_policy::skiplist::original_client(c, &chain) {
            let outcome = match walk.client {
                Some(ip) => format!("{ip}"),
                None => format!("unknown; judged as {}", tx.ip),
            };
            step(report, "original-client", outcome, walk.steps.join("; "));
            if let Some(ip) = walk.client {
                client = ip;
                let from_text = tx.from.as_ref().map(|a| a.to_string());
                recovered_spf = Some(auth.spf(ip, "", from_text.as_deref()).await);
            }
        }
    }
    let spf = recovered_spf.as_ref().unwrap_or(spf);
    let headers = crate::message::header_fields(&raw);
    let auth_out = auth.message(&raw, &headers, client, spf).await;
    let mut facts = auth_out.facts.clone();
    let hf = crate::message::header_facts(&raw);
    if facts.from_domain.is_none() {
        facts.from_domain = hf.from_domain.clone();
    }
    let recipients = [tx.rcpt.to_string()];
    let from_text = tx.from.as_ref().map(|a| a.to_string());
    let outcome = decide_copy(
        dir,
        &DataFacts {
            tenant,
            attribution: &attribution,
            direct_send,
            p1_domain: tx.p1_domain(),
            auth: &facts,
            behind_filter: recovered_spf.is_some(),
        },
        &MessageFacts {
            now: now_unix(),
            client_ip: client,
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
        report,
        "authentication",
        comp.to_string(),
        auth_out.summary(&comp),
    );
    explain_fate(outcome, report);
}

/// The rules that matched and what becomes of the copy, with the reply the session gives: a
/// refusal's own, or `250 Queued as <id>` for a copy it accepts (held in the quarantine or not:
/// the client is not told).
fn explain_fate(outcome: CopyOutcome, report: &mut SimulateReport) {
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
            report,
            "rule",
            format!("{} matches ({:?})", m.rule, m.mode),
            format!("{} — {}", acts.join(", "), m.why.join("; ")),
        );
    }
    report.rules_matched = outcome.rules.matched;
    report.rules_missed = outcome.rules.missed;
    let data_reply = match outcome.fate {
        Fate::Refuse { reply, why } => {
            let how = match why {
                Refusal::Rule { .. } => "refused by rule",
                _ => "refused",
            };
            step(report, "data", how, reply.to_string());
            reply
        }
        Fate::Quarantine { reason, .. } => {
            detail.insert(0, format!("reason {reason}"));
            step(report, "data", "quarantined", detail.join("; "));
            reply::queued("(simulated; quarantined)")
        }
        Fate::Deliver(_) => {
            step(report, "data", "accepted", detail.join("; "));
            reply::queued("(simulated)")
        }
    };
    report.reply = data_reply.to_string();
    report.data_reply = Some(report.reply.clone());
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
