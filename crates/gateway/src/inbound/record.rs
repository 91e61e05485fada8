//! The trace record of a tenant copy: created at its first recipient, completed at the end of
//! DATA (header facts, authentication, the recipients' outcomes) or when the transaction ends
//! without a message.

use std::net::SocketAddr;
use std::time::SystemTime;

use portcullis_policy::{AuthAction, AuthFacts, AuthResult, DmarcPolicy};
use portcullis_smtp::{Reply, ReversePath, Session};
use portcullis_store::{
    DirectSendOutcome, EventKind, RecipientStatus, TraceAttribution, TraceAuth, TraceRecord,
    TraceStatus, TraceTls,
};

use crate::message::HeaderFacts;
use crate::sys::clock::{micros, rfc3339};
use crate::tls::TlsInfo;
use crate::trace::event;

pub(super) fn refuse_recipients(record: &mut TraceRecord, r: &Reply) {
    for rcpt in record
        .recipients
        .iter_mut()
        .filter(|x| x.status == RecipientStatus::Pending)
    {
        rcpt.status = if r.is_transient() {
            RecipientStatus::Deferred
        } else {
            RecipientStatus::Rejected
        };
        rcpt.reply = r.to_string();
    }
}

pub(super) fn fill_header_facts(record: &mut TraceRecord, facts: &HeaderFacts, size: u64) {
    record.header_from = facts.from.clone();
    record.message_id = facts.message_id.clone();
    record.subject = facts.subject.clone();
    record.size = size;
}

pub(super) fn fill_auth(record: &mut TraceRecord, facts: &AuthFacts) {
    if !facts.evaluated {
        return;
    }
    record.auth = TraceAuth {
        spf: Some(facts.spf.as_str().into()),
        dkim: Some(facts.dkim_summary().as_str().into()),
        dmarc: Some(facts.dmarc.as_str().into()),
        arc: Some(facts.arc.as_str().into()),
        compauth: record.auth.compauth.take(),
        compauth_reason: record.auth.compauth_reason.take(),
        dkim_pass_domains: facts
            .dkim
            .iter()
            .filter(|d| d.result == AuthResult::Pass)
            .map(|d| d.domain.clone())
            .collect(),
        arc_sealer: facts.arc_pass_sealer().map(str::to_string),
        dmarc_policy: match facts.dmarc_policy {
            DmarcPolicy::Absent => None,
            DmarcPolicy::None => Some("none".into()),
            DmarcPolicy::Quarantine => Some("quarantine".into()),
            DmarcPolicy::Reject => Some("reject".into()),
        },
    };
}

pub(super) fn reverse_path_text(from: &ReversePath) -> String {
    match from {
        ReversePath::Null => "<>".into(),
        ReversePath::Address(a) => a.to_string(),
    }
}

pub(super) fn new_record(
    id: &str,
    tenant: &str,
    peer: SocketAddr,
    balancer: Option<SocketAddr>,
    session: &Session,
    tls: Option<&TlsInfo>,
    from: &ReversePath,
) -> TraceRecord {
    let now = SystemTime::now();
    TraceRecord {
        trace_id: id.to_string(),
        tenant: tenant.to_string(),
        received_at: rfc3339(now),
        received_at_us: micros(now),
        client_ip: peer.ip().to_string(),
        proxy_ip: balancer.map(|b| b.ip().to_string()),
        helo: session.helo().map(str::to_string),
        tls: tls.map(|t| TraceTls {
            version: t.version.clone(),
            cipher: t.cipher.clone(),
            client_cert_subject: t.client_cert_subject.clone(),
            client_cert_trusted: t.client_cert_trusted,
            client_cert_names: t.trusted_names.clone(),
        }),
        mail_from: reverse_path_text(from),
        attribution: TraceAttribution::Anonymous,
        status: TraceStatus::Pending,
        ..Default::default()
    }
}

/// Marks the record as direct send with what the rule did; a heavier outcome already noted (a
/// refusal) stays.
pub(super) fn note_direct_send(record: &mut TraceRecord, outcome: DirectSendOutcome) {
    record.direct_send = true;
    let current = record.direct_send_outcome.take();
    record.direct_send_outcome = Some(DirectSendOutcome::merge(current, outcome));
}

/// The trace event of an authentication action taken on an accepted copy.
pub(super) fn record_action(record: &mut TraceRecord, action: AuthAction) {
    let detail = match action {
        AuthAction::DmarcQuarantine => "DMARC policy quarantine failed: quarantined",
        AuthAction::SpoofJunk => "spoof of an accepted domain: marked as junk (SCL 5)",
        AuthAction::SpoofQuarantine => "spoof of an accepted domain: quarantined",
    };
    event(record, EventKind::Auth, detail);
}

/// The record of a transaction that ended without a message (RSET, new MAIL, disconnect), for
/// a tenant with a refused or deferred recipient; `None` for the others (nothing to show).
pub(super) fn abandoned(mut record: TraceRecord) -> Option<TraceRecord> {
    let refused = |status: RecipientStatus| record.recipients.iter().any(|r| r.status == status);
    let status = if refused(RecipientStatus::Rejected) {
        TraceStatus::Rejected
    } else if refused(RecipientStatus::Deferred) {
        TraceStatus::Deferred
    } else {
        return None;
    };
    for r in record
        .recipients
        .iter_mut()
        .filter(|r| r.status == RecipientStatus::Pending)
    {
        r.status = RecipientStatus::Abandoned;
        r.reply = "transaction ended before DATA".into();
    }
    record.status = status;
    if record.direct_send && record.direct_send_outcome.is_none() {
        // A copy whose direct-send decision waited for the message that never came.
        note_direct_send(&mut record, DirectSendOutcome::Allowed);
    }
    Some(record)
}
