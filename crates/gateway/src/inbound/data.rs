//! The end of DATA: the message authenticated once, each tenant copy's fate from
//! `policy::decide_copy`, the accepted copies made durable (all or none), one reply for the
//! client and a trace record per copy.

use std::borrow::Cow;
use std::time::SystemTime;

use portcullis_policy::{
    CopyOutcome, DataFacts, DataVerdict, Delivery, Fate, MessageFacts, Refusal, decide_copy,
};
use portcullis_smtp::{Reply, Session, reply};
use portcullis_store::{
    DirectSendOutcome, EventKind, QuarantineEntry, RecipientStatus, TraceRecord, TraceStatus,
};

use super::connection::{Conn, Copy, Recovered, Txn};
use super::headers::added_headers;
use super::record::{
    fill_auth, fill_header_facts, note_direct_send, record_action, refuse_recipients,
    reverse_path_text,
};
use crate::auth::MessageAuth;
use crate::message::{
    HeaderEdits, HeaderFacts, edit_headers, header_facts, header_fields, strip_own_headers,
};
use crate::queue::envelope::Envelope;
use crate::sys::clock::{micros, rfc3339};
use crate::trace::event;

/// The authentication a copy is judged by: for its original client when a skip list recovered
/// one, else the message's as received.
fn auth_of<'a>(recovered: &'a Option<Recovered>, received: &'a Received<'_>) -> &'a MessageAuth {
    recovered.as_ref().map_or(&received.auth, |r| &r.auth)
}

/// The message as received, with what every copy's decision reads of it.
struct Received<'m> {
    facts: HeaderFacts,
    fields: Vec<(String, String)>,
    auth: MessageAuth,
    /// The message without forged `X-Portcullis-*` headers.
    body: Cow<'m, [u8]>,
    size: u64,
    /// Time spent in DNS for this message, for its trace records: SPF (while the session went
    /// on), then DKIM, ARC and DMARC (while the end of DATA waited).
    dns_time: Option<String>,
}

/// How long the end of DATA waits for the authentication of a message every copy of which is
/// attributed to a connector (nothing about it is decided by the results).
const ATTRIBUTED_AUTH_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// What the copies of one message came to, before anything is written.
#[derive(Default)]
struct Written {
    /// The first refusal: the reply when no copy is accepted.
    refusal: Option<Reply>,
    to_quarantine: Vec<(QuarantineEntry, Vec<u8>)>,
    to_store: Vec<(Envelope, Vec<u8>)>,
}

impl Conn {
    pub(super) async fn data(&mut self, session: &Session, message: Vec<u8>) -> Reply {
        let Some(mut txn) = self.txn.take() else {
            return reply::NEED_MAIL_BEFORE_DATA;
        };
        let received = self.receive(&mut txn, &message).await;
        self.recover_clients(&mut txn, &message, &received.fields)
            .await;

        // Every copy's fate first: one DNS failure defers the whole message (one DATA reply).
        let now = micros(SystemTime::now()) / 1_000_000;
        let outcomes: Vec<Option<CopyOutcome>> = txn
            .copies
            .iter()
            .map(|copy| {
                (!copy.accepted.is_empty()).then(|| self.decide_copy(&txn, copy, &received, now))
            })
            .collect();
        let deferred = outcomes.iter().flatten().any(|o| {
            matches!(
                o.fate,
                Fate::Refuse {
                    why: Refusal::AuthTempError,
                    ..
                }
            )
        });

        let mut written = Written::default();
        let view = TxnView {
            id: &txn.id,
            dir: &txn.dir,
            from: &txn.from,
        };
        for (copy, outcome) in txn.copies.iter_mut().zip(outcomes) {
            fill_header_facts(&mut copy.record, &received.facts, received.size);
            fill_auth(&mut copy.record, &auth_of(&copy.recovered, &received).facts);
            let Some(outcome) = outcome else {
                copy.record.status = TraceStatus::Rejected;
                continue;
            };
            if deferred {
                // What could not be evaluated, for the administrator reading the deferral.
                let auth = auth_of(&copy.recovered, &received);
                let summary = auth_summary(&outcome, auth, received.dns_time.as_deref());
                event(&mut copy.record, EventKind::Auth, summary);
            } else {
                self.apply(session, &view, copy, outcome, &received, &mut written);
            }
        }
        let reply = if deferred {
            reply::AUTH_TEMP_ERROR
        } else if written.to_store.is_empty() && written.to_quarantine.is_empty() {
            written.refusal.unwrap_or(reply::NO_VALID_RECIPIENTS)
        } else {
            match self.persist(written.to_quarantine, written.to_store).await {
                Ok(entries) => {
                    self.log_accepted(&txn, received.size);
                    // Durable: now the trace and the delivery may learn of it.
                    for entry in entries {
                        self.shared.trace.send(entry.envelope.trace.clone()).await;
                        self.shared.delivery.submit(entry);
                    }
                    for copy in txn
                        .copies
                        .iter()
                        .filter(|c| c.record.status != TraceStatus::Pending)
                    {
                        self.shared.trace.send(copy.record.clone()).await;
                    }
                    return reply::queued(&txn.id);
                }
                Err(e) => {
                    tracing::error!(trace_id = %txn.id, "storing the message failed: {e:#}");
                    reply::TEMPORARY_ERROR
                }
            }
        };
        self.record_refused(&mut txn, &reply).await;
        reply
    }

    /// Authenticates the message as received (once for every copy) and reads its headers.
    async fn receive<'m>(&self, txn: &mut Txn, message: &'m [u8]) -> Received<'m> {
        let facts = header_facts(message);
        let fields = header_fields(message);
        let mut started = std::time::Instant::now();
        // A message only connectors vouch for is not judged by its authentication: its results
        // (for the header, the trace and the rules) get a short budget, not the DNS's time-outs.
        let judged = txn
            .copies
            .iter()
            .any(|c| !c.accepted.is_empty() && c.attribution.is_anonymous());
        let auth = &self.shared.auth;
        let ip = self.peer.ip();
        let mut answered = true;
        let mut auth = if judged {
            let spf = txn.spf.result().await;
            started = std::time::Instant::now();
            auth.message(message, &fields, ip, spf).await
        } else {
            let spf = &mut txn.spf;
            let started = &mut started;
            let evaluated = tokio::time::timeout(ATTRIBUTED_AUTH_BUDGET, async {
                let spf = spf.result().await;
                *started = std::time::Instant::now();
                auth.message(message, &fields, ip, spf).await
            })
            .await;
            match evaluated {
                Ok(done) => done,
                Err(_) => {
                    answered = false;
                    auth.unavailable(
                        txn.spf.ready().unwrap_or(&crate::auth::Spf::temp_error()),
                        "DNS did not answer within the 2 s budget of attributed mail",
                    )
                }
            }
        };
        // SPF's time is its own (it ran alongside the session); DKIM/ARC/DMARC's is what the end
        // of DATA waited after it.
        let dns_time = auth.facts.evaluated.then(|| {
            let spf = match txn.spf.took() {
                Some(t) => format!("SPF {} ms", t.as_millis()),
                None => "SPF unanswered".to_string(),
            };
            let rest = if answered {
                format!("DKIM/ARC/DMARC {} ms", started.elapsed().as_millis())
            } else {
                format!(
                    "DKIM/ARC/DMARC unanswered within {} s",
                    ATTRIBUTED_AUTH_BUDGET.as_secs()
                )
            };
            format!("DNS: {spf}, {rest}")
        });
        if auth.facts.from_domain.is_none() {
            // Authentication off or unparsable: the P2 checks still need the From: domain.
            auth.facts.from_domain = facts.from_domain.clone();
        }
        if auth.facts.evaluated {
            let f = &auth.facts;
            for (method, result) in [
                ("spf", f.spf),
                ("dkim", f.dkim_summary()),
                ("arc", f.arc),
                ("dmarc", f.dmarc),
            ] {
                metrics::counter!("portcullis_auth_results_total", "method" => method, "result" => result.as_str())
                    .increment(1);
            }
        }
        Received {
            fields,
            body: strip_own_headers(message, &self.shared.config.hostname),
            size: message.len() as u64,
            facts,
            auth,
            dns_time,
        }
    }

    /// For each copy attributed to a connector with a skip list (a filtering service in front
    /// of the gateway): the original client from the `Received:` chain, and the message's
    /// authentication judged for it. Attribution to the connector stands.
    async fn recover_clients(&self, txn: &mut Txn, message: &[u8], fields: &[(String, String)]) {
        let mut chain = None;
        for copy in txn.copies.iter_mut().filter(|c| !c.accepted.is_empty()) {
            let Some(name) = copy.attribution.connector() else {
                continue;
            };
            let Some(connector) = txn
                .dir
                .tenant(&copy.tenant)
                .and_then(|e| e.connectors.iter().find(|c| c.name == name))
            else {
                continue;
            };
            let chain = chain.get_or_insert_with(|| crate::message::received_clients(message));
            let Some(walk) = portcullis_policy::skiplist::original_client(connector, chain) else {
                continue;
            };
            let found = match walk.client {
                Some(ip) => format!("original client {ip}"),
                None => format!("original client unknown; judged as [{}]", self.peer.ip()),
            };
            event(
                &mut copy.record,
                EventKind::Auth,
                format!(
                    "connector \"{name}\" skips the filtering service: {found} ({})",
                    walk.steps.join("; ")
                ),
            );
            let Some(ip) = walk.client else { continue };
            copy.record.original_client_ip = Some(ip.to_string());
            let sender = txn.from.address().map(|a| a.to_string());
            let spf = self.shared.auth.spf(ip, "", sender.as_deref()).await;
            let mut auth = self.shared.auth.message(message, fields, ip, &spf).await;
            if auth.facts.from_domain.is_none() {
                auth.facts.from_domain = header_facts(message).from_domain;
            }
            copy.recovered = Some(Recovered { ip, auth });
        }
    }

    /// The fate of one tenant copy, from the facts of the transaction and the message.
    fn decide_copy(
        &self,
        txn: &Txn,
        copy: &Copy,
        received: &Received<'_>,
        now: i64,
    ) -> CopyOutcome {
        decide_copy(
            &txn.dir,
            &DataFacts {
                tenant: &copy.tenant,
                attribution: &copy.attribution,
                direct_send: copy.direct_send,
                p1_domain: txn.from.domain(),
                auth: &auth_of(&copy.recovered, received).facts,
                behind_filter: copy.recovered.is_some(),
            },
            &MessageFacts {
                now,
                client_ip: copy.recovered.as_ref().map_or(self.peer.ip(), |r| r.ip),
                mail_from: txn.from.address().map(|_| copy.record.mail_from.as_str()),
                header_from: received.facts.from.as_deref(),
                headers: &received.fields,
                subject: received.facts.subject.as_deref(),
                recipients: &copy.accepted,
            },
            false,
        )
    }

    /// Records a copy's decision in its trace record and prepares what is to be written: the
    /// copy with our headers and the rules' edits, for the quarantine or the spool.
    fn apply(
        &self,
        session: &Session,
        txn: &TxnView<'_>,
        copy: &mut Copy,
        outcome: CopyOutcome,
        received: &Received<'_>,
        written: &mut Written,
    ) {
        let record = &mut copy.record;
        record_decision(
            record,
            &outcome,
            auth_of(&copy.recovered, received),
            received.dns_time.as_deref(),
        );
        let actions = match &outcome.verdict {
            DataVerdict::Accept { actions, .. } => actions.as_slice(),
            _ => &[],
        };
        let (delivery, quarantine) = match outcome.fate {
            Fate::Refuse { reply: r, why } => {
                record_refusal(record, &r, why);
                written.refusal.get_or_insert(r);
                return;
            }
            Fate::Quarantine { reason, delivery } => (delivery, Some(reason)),
            Fate::Deliver(delivery) => (delivery, None),
        };
        for action in actions {
            record_action(&mut copy.record, *action);
        }
        let full = self.copy_bytes(
            session,
            txn.id,
            copy,
            &delivery,
            &outcome.compauth,
            received,
        );
        let record = &mut copy.record;
        let host = &self.shared.config.hostname;
        let (ip, size) = (self.peer.ip(), received.size);
        event(
            record,
            EventKind::Receive,
            format!("received from [{ip}] by {host}, {size} bytes"),
        );
        let envelope = Envelope {
            trace_id: txn.id.to_string(),
            tenant: copy.tenant.clone(),
            mail_from: reverse_path_text(txn.from),
            recipients: delivery.recipients,
            trace: TraceRecord::default(),
            state: Vec::new(),
            attempts: 0,
            first_attempt_us: 0,
            is_dsn: false,
            next_attempt_us: 0,
        };
        match quarantine {
            Some(reason) => {
                let entry =
                    self.quarantine_entry(txn, copy, envelope, reason.to_string(), received);
                written.to_quarantine.push((entry, full));
            }
            None => {
                copy.record.status = TraceStatus::Pending;
                let envelope = Envelope {
                    trace: copy.record.clone(),
                    ..envelope
                };
                written.to_store.push((envelope, full));
            }
        }
    }

    /// The copy as it is written: our headers, `Authentication-Results`, then the message with
    /// the rules' header edits.
    fn copy_bytes(
        &self,
        session: &Session,
        id: &str,
        copy: &Copy,
        delivery: &Delivery,
        compauth: &portcullis_policy::CompAuth,
        received: &Received<'_>,
    ) -> Vec<u8> {
        let host = &self.shared.config.hostname;
        let tls = self.tls.as_ref();
        let mut headers = added_headers(
            host,
            self.peer,
            session,
            tls,
            id,
            copy,
            delivery.audit_header,
        );
        headers.push_str(&auth_of(&copy.recovered, received).header(compauth));
        if delivery.junk {
            headers.push_str("X-Spam-Flag: YES\r\nX-Portcullis-SCL: 5\r\n");
        }
        let e = &delivery.edits;
        let edited = if e.remove_headers.is_empty()
            && e.set_headers.is_empty()
            && e.prepend_subject.is_empty()
            && e.scl.is_none()
        {
            Cow::Borrowed(&*received.body)
        } else {
            let edits = HeaderEdits {
                remove: &e.remove_headers,
                set: &e.set_headers,
                prepend_subject: &e.prepend_subject,
                scl: e.scl,
            };
            Cow::Owned(edit_headers(&received.body, &edits))
        };
        let mut full = Vec::with_capacity(headers.len() + edited.len());
        full.extend_from_slice(headers.as_bytes());
        full.extend_from_slice(&edited);
        full
    }

    /// The quarantine entry of a held copy; its trace record says so.
    fn quarantine_entry(
        &self,
        txn: &TxnView<'_>,
        copy: &mut Copy,
        envelope: Envelope,
        reason: String,
        received: &Received<'_>,
    ) -> QuarantineEntry {
        let settings = txn
            .dir
            .tenant(&copy.tenant)
            .map(|e| e.tenant.settings.clone())
            .unwrap_or_default();
        let now = SystemTime::now();
        let expires = now + self.shared.config.quarantine_retention;
        let record = &mut copy.record;
        record.status = TraceStatus::Quarantined;
        for r in record
            .recipients
            .iter_mut()
            .filter(|r| r.status == RecipientStatus::Pending)
        {
            r.status = RecipientStatus::Quarantined;
        }
        event(
            record,
            EventKind::Quarantine,
            format!("held as {} ({reason})", txn.id),
        );
        QuarantineEntry {
            id: txn.id.to_string(),
            tenant: copy.tenant.clone(),
            trace_id: txn.id.to_string(),
            received_at: rfc3339(now),
            expires_at: rfc3339(expires),
            reason,
            mail_from: envelope.mail_from,
            recipients: envelope.recipients,
            header_from: received.facts.from.clone(),
            subject: received.facts.subject.clone(),
            size: received.size,
            admin_only_release: settings.admin_only_release_direct_send && record.direct_send,
            received_at_us: micros(now),
            expires_at_us: micros(expires),
            ..Default::default()
        }
    }

    fn log_accepted(&self, txn: &Txn, size: u64) {
        let tenants: Vec<&str> = txn
            .copies
            .iter()
            .filter(|c| !c.accepted.is_empty())
            .map(|c| c.tenant.as_str())
            .collect();
        tracing::info!(trace_id = %txn.id, peer = %self.peer, from = %txn.from, size, tenants = ?tenants, "message accepted");
    }

    /// Nothing was accepted: every copy is recorded with the final reply.
    async fn record_refused(&self, txn: &mut Txn, reply: &Reply) {
        let tenants: Vec<&str> = txn.copies.iter().map(|c| c.tenant.as_str()).collect();
        let rcpts: Vec<&str> = txn
            .copies
            .iter()
            .flat_map(|c| c.accepted.iter().map(String::as_str))
            .collect();
        tracing::info!(trace_id = %txn.id, tenants = ?tenants, peer = %self.peer, from = %txn.from, rcpts = ?rcpts, reply = %reply, "message refused");
        for copy in txn.copies.iter_mut() {
            if !copy.accepted.is_empty() && copy.record.status != TraceStatus::Rejected {
                for r in copy
                    .record
                    .recipients
                    .iter_mut()
                    .filter(|r| r.status == RecipientStatus::Quarantined)
                {
                    r.status = RecipientStatus::Pending;
                }
                copy.record.status = TraceStatus::Deferred;
                refuse_recipients(&mut copy.record, reply);
                event(&mut copy.record, EventKind::Defer, format!("DATA: {reply}"));
            }
            self.shared.trace.send(copy.record.clone()).await;
        }
    }
}

/// The transaction's fields a copy's decision reads, borrowed apart from its copies.
struct TxnView<'t> {
    id: &'t str,
    dir: &'t portcullis_policy::Directory,
    from: &'t portcullis_smtp::ReversePath,
}

/// The `AUTH` event's text: the results, the composite verdict, the time spent in DNS.
fn auth_summary(outcome: &CopyOutcome, auth: &MessageAuth, dns_time: Option<&str>) -> String {
    let mut summary = auth.summary(&outcome.compauth);
    if let Some(t) = dns_time {
        summary.push_str(&format!("; {t}"));
    }
    summary
}

/// The authentication decision in the record: compauth, the `AUTH` event, what the direct-send
/// rule did (`AUDIT` events for audit mode and exemptions) and the rules that matched.
fn record_decision(
    record: &mut TraceRecord,
    outcome: &CopyOutcome,
    auth: &MessageAuth,
    dns_time: Option<&str>,
) {
    let summary = auth_summary(outcome, auth, dns_time);
    match &outcome.verdict {
        DataVerdict::Accept {
            direct_send,
            audit,
            exemption,
            ..
        } => {
            let noted = if exemption.is_some() {
                Some(DirectSendOutcome::Exempted)
            } else if audit.is_some() {
                Some(DirectSendOutcome::Audited)
            } else {
                direct_send.then_some(DirectSendOutcome::Allowed)
            };
            if let Some(outcome) = noted {
                note_direct_send(record, outcome);
            }
            record.auth.compauth = Some(outcome.compauth.verdict.as_str().to_string());
            record.auth.compauth_reason = Some(outcome.compauth.reason);
            event(record, EventKind::Auth, summary);
            if let Some(why) = exemption {
                event(
                    record,
                    EventKind::Audit,
                    format!("direct send exempted: {why}"),
                );
            }
            if audit.is_some() && !record.events.iter().any(|e| e.event == EventKind::Audit) {
                let r = reply::DIRECT_SEND_NOT_ALLOWED;
                event(record, EventKind::Audit, format!("would reject {r}"));
            }
            record_rules(record, &outcome);
        }
        _ => {
            if auth.facts.evaluated {
                record.auth.compauth = Some(outcome.compauth.verdict.as_str().to_string());
                record.auth.compauth_reason = Some(outcome.compauth.reason);
            }
            event(record, EventKind::Auth, summary);
        }
    }
}

/// A copy refused at the end of DATA: the `REJECT` event with the reason, every pending
/// recipient refused with `r`.
fn record_refusal(record: &mut TraceRecord, r: &Reply, why: Refusal) {
    let why = match why {
        Refusal::DirectSend { header: true } => {
            note_direct_send(record, DirectSendOutcome::Refused);
            "anonymous P2 From: domain uses an accepted domain of the tenant".into()
        }
        Refusal::DirectSend { header: false } => {
            note_direct_send(record, DirectSendOutcome::Refused);
            "anonymous envelope sender uses an accepted domain of the tenant, no exemption applies"
                .into()
        }
        Refusal::Dmarc { domain } => format!("DMARC policy reject of {domain}"),
        Refusal::Rule { rule } => format!("rule {rule}"),
        Refusal::AuthTempError => String::new(),
    };
    if record.direct_send && record.direct_send_outcome.is_none() {
        // Exempted or allowed, then refused for another reason (DMARC, a rule).
        note_direct_send(record, DirectSendOutcome::Allowed);
    }
    event(record, EventKind::Reject, format!("DATA: {r} ({why})"));
    refuse_recipients(record, r);
    record.status = TraceStatus::Rejected;
}

/// A `RULE` event per matching rule, in evaluation order.
fn record_rules(record: &mut portcullis_store::TraceRecord, outcome: &CopyOutcome) {
    for m in &outcome.rules.matched {
        let acts: Vec<String> = m.actions.iter().map(|a| a.describe()).collect();
        let mode = if m.mode == portcullis_policy::rules::RuleMode::Audit {
            "audit: not applied"
        } else {
            "enforce"
        };
        let detail = format!(
            "{} ({mode}): {} — {}",
            m.rule,
            acts.join(", "),
            m.why.join("; ")
        );
        event(record, EventKind::Rule, detail);
    }
}
