//! RCPT TO: the decision table's verdict for one recipient, and the recipient in its tenant's
//! copy and trace record.

use portcullis_policy::{
    Attribution, AuthResult, DirectSend, RcptFacts, RcptVerdict, RecipientLookup, decide_rcpt,
};
use portcullis_smtp::{Address, Reply, Session, reply};
use portcullis_store::{
    DirectSendOutcome, EventKind, RecipientStatus, TraceAttribution, TraceRecipient,
};

use super::connection::{Conn, Copy};
use super::record::{new_record, note_direct_send};
use crate::recipients::{Lookup, Source};
use crate::trace::event;

impl Conn {
    pub(super) async fn rcpt(&mut self, session: &Session, to: Address) -> Reply {
        let peer = self.peer_facts();
        let Some(txn) = self.txn.as_mut() else {
            return reply::NEED_MAIL_BEFORE_RCPT;
        };
        let dir = txn.dir.clone();
        let from = &txn.from;
        let mut facts = RcptFacts {
            peer: &peer,
            p1_domain: from.domain(),
            rcpt_domain: to.domain(),
            spf_temp_error: txn
                .spf
                .ready()
                .is_some_and(|s| s.result == AuthResult::TempError),
            recipient: RecipientLookup::NotValidated,
        };
        let lookup = self.shared.verifier.look_up(&dir, &facts, &to).await;
        if let Some(l) = &lookup {
            facts.recipient = l.result;
        }
        let mut verdict = decide_rcpt(&dir, &facts);
        // Only an anonymous recipient about to be accepted depends on SPF (its temporary error
        // defers it): attribution, the direct-send refusal and every other refusal answer
        // without waiting for DNS.
        if let RcptVerdict::Accept { attribution, .. } = &verdict
            && attribution.is_anonymous()
            && txn.spf.ready().is_none()
        {
            facts.spf_temp_error = txn.spf.result().await.result == AuthResult::TempError;
            verdict = decide_rcpt(&dir, &facts);
        }
        let mut r = verdict.reply();
        if let RcptVerdict::UnknownRecipient { tenant } = &verdict {
            metrics::counter!("portcullis_unknown_recipients_total", "tenant" => tenant.clone())
                .increment(1);
            self.unknown_recipients += 1;
            if self.unknown_recipients > self.shared.config.max_unknown_recipients {
                // A dictionary attack: the session ends here (the refusal is traced as such).
                tracing::warn!(peer = %self.peer, count = self.unknown_recipients, "too many unknown recipients; closing the session");
                r = reply::too_many_unknown_recipients(&self.shared.config.hostname);
            }
        }
        metrics::counter!(
            "portcullis_rcpt_replies_total",
            "code" => code_label(r.code),
            "status" => r.status.unwrap_or("")
        )
        .increment(1);
        let Some(txn) = self.txn.as_mut() else {
            return reply::NEED_MAIL_BEFORE_RCPT;
        };
        if let RcptVerdict::DirectSendRefused { tenant } = &verdict {
            metrics::counter!("portcullis_direct_send_refused_total", "tenant" => tenant.clone())
                .increment(1);
        }
        let rcpt = to.to_string();
        let Some(tenant) = verdict.tenant() else {
            // No tenant owns the domain: nobody may see this refusal but the operator's log.
            tracing::info!(peer = %self.peer, from = %txn.from, rcpt, reply = %r, "relay refused");
            return r;
        };
        let copy = match txn.copies.iter().position(|c| c.tenant == tenant) {
            Some(i) => &mut txn.copies[i],
            None => {
                let record = new_record(
                    &txn.id,
                    tenant,
                    self.peer,
                    self.balancer,
                    session,
                    self.tls.as_ref(),
                    &txn.from,
                );
                txn.copies.push(Copy {
                    tenant: tenant.to_string(),
                    attribution: Attribution::Anonymous,
                    direct_send: DirectSend::No,
                    accepted: Vec::new(),
                    record,
                    recovered: None,
                });
                txn.copies.last_mut().expect("just pushed")
            }
        };
        record_recipient(
            copy,
            &verdict,
            rcpt,
            &r,
            txn.spf.ready().and_then(|s| s.domain.as_deref()),
            lookup.as_ref(),
        );
        r
    }
}

/// The recipient in its copy and trace record: the event of a refusal or deferral, or the
/// attribution and direct-send outcome of an accepted recipient; then its status and reply.
fn record_recipient(
    copy: &mut Copy,
    verdict: &RcptVerdict,
    rcpt: String,
    r: &Reply,
    spf_domain: Option<&str>,
    lookup: Option<&Lookup>,
) {
    // Rendered once: for the recipient's outcome and its event.
    let reply = r.to_string();
    match verdict {
        // No tenant's record: the caller logs the refusal.
        RcptVerdict::NoTenant => return,
        RcptVerdict::SpfTempError { .. } => {
            event(
                &mut copy.record,
                EventKind::Defer,
                format!(
                    "{rcpt}: {reply} (SPF for {} could not be evaluated)",
                    spf_domain.unwrap_or("-")
                ),
            );
        }
        RcptVerdict::UnknownRecipient { .. } => {
            let lookup = lookup.expect("an unknown recipient was looked up");
            let how = match lookup.source {
                Source::Probe => {
                    format!("the mailbox server answered the probe: {}", lookup.detail)
                }
                Source::Cache => format!("the mailbox server's cached answer: {}", lookup.detail),
                Source::List | Source::None => "not in the tenant's recipient list".to_string(),
            };
            event(
                &mut copy.record,
                EventKind::Reject,
                format!("{rcpt}: {reply} (unknown recipient: {how})"),
            );
        }
        RcptVerdict::RecipientUnverified { .. } => {
            let detail = lookup.map(|l| l.detail.as_str()).unwrap_or_default();
            event(
                &mut copy.record,
                EventKind::Defer,
                format!("{rcpt}: {reply} (recipient verification failed: {detail})"),
            );
        }
        RcptVerdict::RestrictedPartner { connector, .. } => {
            event(
                &mut copy.record,
                EventKind::Reject,
                format!(
                    "{rcpt}: {reply} (partner connector \"{connector}\" restricts this sender domain)"
                ),
            );
        }
        RcptVerdict::DirectSendRefused { .. } => {
            note_direct_send(&mut copy.record, DirectSendOutcome::Refused);
            event(
                &mut copy.record,
                EventKind::Reject,
                format!("{rcpt}: {reply} (anonymous sender uses an accepted domain of the tenant)"),
            );
        }
        RcptVerdict::Accept {
            attribution,
            direct_send,
            ..
        } => {
            copy.attribution = attribution.clone();
            copy.direct_send = *direct_send;
            copy.record.attribution = if attribution.is_anonymous() {
                TraceAttribution::Anonymous
            } else {
                TraceAttribution::Connector
            };
            copy.record.connector = attribution.connector().map(str::to_string);
            match direct_send {
                DirectSend::Allowed => {
                    note_direct_send(&mut copy.record, DirectSendOutcome::Allowed)
                }
                DirectSend::Audit => note_direct_send(&mut copy.record, DirectSendOutcome::Audited),
                // Decided at the end of DATA, when the message can show an exemption.
                DirectSend::Deferred => copy.record.direct_send = true,
                DirectSend::No => {}
            }
            if *direct_send == DirectSend::Audit
                && !copy
                    .record
                    .events
                    .iter()
                    .any(|e| e.event == EventKind::Audit)
            {
                event(
                    &mut copy.record,
                    EventKind::Audit,
                    format!("would reject {}", reply::DIRECT_SEND_NOT_ALLOWED),
                );
            }
            copy.accepted.push(rcpt.clone());
        }
    }
    let status = if r.is_positive() {
        RecipientStatus::Pending
    } else if r.is_transient() {
        RecipientStatus::Deferred
    } else {
        RecipientStatus::Rejected
    };
    copy.record.recipients.push(TraceRecipient {
        address: rcpt,
        status,
        reply,
    });
}

/// A reply code as a metrics label, without allocating for the codes RCPT answers with.
fn code_label(code: u16) -> std::borrow::Cow<'static, str> {
    match code {
        250 => "250".into(),
        451 => "451".into(),
        452 => "452".into(),
        550 => "550".into(),
        554 => "554".into(),
        _ => code.to_string().into(),
    }
}
