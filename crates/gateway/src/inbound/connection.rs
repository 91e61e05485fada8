//! One SMTP connection: drives the sans-IO `smtp::Session` over a socket, gathers the facts
//! (peer, TLS, envelope, headers), asks `policy` for verdicts, spools accepted copies and records
//! the trace. Reply texts come from the smtp crate's table or the verdicts' single mapping.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use portcullis_policy::rules::{RuleFacts, RuleMode, apply_rules};
use portcullis_policy::{
    Attribution, AuthAction, AuthFacts, AuthResult, DataFacts, DataVerdict, DirectSend, Directory,
    PeerFacts, RcptFacts, RcptVerdict, decide_data, decide_rcpt,
};
use portcullis_smtp::{Address, Reply, ReversePath, Session, Stage, Step, reply};
use portcullis_store::{QuarantineEntry, TraceAuth, TraceRecipient, TraceRecord, TraceTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::auth::Spf;
use crate::message::{
    HeaderEdits, HeaderFacts, edit_headers, header_facts, header_fields, header_value,
    strip_own_headers,
};
use crate::queue::envelope::Envelope;
use crate::queue::spool::Entry;
use crate::shared::Shared;
use crate::sys::clock::{micros, rfc3339};
use crate::tls::TlsInfo;
use crate::trace::{event, new_trace_id};

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Closed,
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Closed => Ok(0),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Stream::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
            Stream::Closed => Ok(()),
        };
    }
}

/// One tenant's share of a transaction.
struct Copy {
    tenant: String,
    attribution: Attribution,
    direct_send: DirectSend,
    accepted: Vec<String>,
    record: TraceRecord,
}

/// The transaction in progress (from MAIL to the end of DATA, RSET or disconnect).
struct Txn {
    id: String,
    dir: Arc<Directory>,
    from: ReversePath,
    /// SPF of this transaction's MAIL FROM (or HELO for the null sender).
    spf: Spf,
    copies: Vec<Copy>,
}

struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    tls: Option<TlsInfo>,
    txn: Option<Txn>,
}

/// Serves one connection to its end. Never panics on input; I/O errors end the connection.
pub async fn handle(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    metrics::counter!("portcullis_connections_total").increment(1);
    metrics::gauge!("portcullis_connections_active").increment(1.0);
    let mut stream = Stream::Plain(tcp);
    let mut session = Session::new(shared.session_config.load_full());
    let mut conn = Conn {
        shared: shared.clone(),
        peer,
        tls: None,
        txn: None,
    };
    let mut out = Vec::with_capacity(512);
    let mut buf = vec![0u8; 16 * 1024];
    session.greeting().write_to(&mut out);
    let idle = shared.config.idle_timeout;

    loop {
        match session.step() {
            Step::Reply(r) => {
                r.write_to(&mut out);
                // RSET, EHLO or a refusal ended the transaction: record its refusals now.
                if conn.txn.is_some() && session.mail_from().is_none() {
                    conn.finish_txn().await;
                }
            }
            Step::NeedInput => {
                if !out.is_empty() {
                    if stream.write_all(&out).await.is_err() {
                        break;
                    }
                    out.clear();
                }
                // A shutdown interrupts idle waits, but never a message being received.
                let draining = *shutdown.borrow() && !session.in_data();
                if draining {
                    session.on_shutdown();
                    continue;
                }
                let read = tokio::select! {
                    r = tokio::time::timeout(idle, stream.read(&mut buf)) => r,
                    _ = shutdown.changed(), if !session.in_data() => {
                        session.on_shutdown();
                        continue;
                    }
                };
                match read {
                    Err(_) => session.on_timeout(),
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => session.feed(&buf[..n]),
                }
            }
            Step::StartTls => {
                if stream.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
                let (Some(tls), Stream::Plain(tcp)) = (
                    shared.tls.as_ref().map(|t| t.load_full()),
                    std::mem::replace(&mut stream, Stream::Closed),
                ) else {
                    break;
                };
                match tokio::time::timeout(idle, tls.acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => {
                        conn.tls = Some(tls.info(s.get_ref().1));
                        stream = Stream::Tls(Box::new(s));
                        session.tls_established();
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        break;
                    }
                    Err(_) => break,
                }
            }
            Step::Decide(stage) => {
                let r = conn.decide(&session, stage).await;
                session.answer(r);
            }
            Step::Close => {
                if !out.is_empty() {
                    let _ = stream.write_all(&out).await;
                }
                stream.shutdown().await;
                break;
            }
        }
    }
    conn.finish_txn().await;
    metrics::gauge!("portcullis_connections_active").decrement(1.0);
}

impl Conn {
    async fn decide(&mut self, session: &Session, stage: Stage) -> Reply {
        match stage {
            Stage::Mail { from, .. } => {
                self.finish_txn().await;
                if let Some(why) = self.shared.overloaded() {
                    tracing::warn!(peer = %self.peer, "refusing new mail: {why}");
                    return reply::INSUFFICIENT_STORAGE;
                }
                let sender = from.address().map(|a| a.to_string());
                let helo = session.helo().unwrap_or("");
                let spf = self
                    .shared
                    .auth
                    .spf(self.peer.ip(), helo, sender.as_deref())
                    .await;
                self.txn = Some(Txn {
                    id: new_trace_id(),
                    dir: self.shared.directory.get(),
                    from,
                    spf,
                    copies: Vec::new(),
                });
                reply::SENDER_OK
            }
            Stage::Rcpt { to } => self.rcpt(session, to),
            Stage::Data { message } => {
                let r = self.data(session, message).await;
                let outcome = match r.code {
                    250 => "accepted",
                    400..=499 => "deferred",
                    _ => "refused",
                };
                metrics::counter!("portcullis_messages_total", "outcome" => outcome).increment(1);
                r
            }
        }
    }

    fn peer_facts(&self) -> PeerFacts {
        PeerFacts {
            ip: self.peer.ip(),
            tls: self.tls.is_some(),
            cert_names: self
                .tls
                .as_ref()
                .map(|t| t.trusted_names.clone())
                .unwrap_or_default(),
        }
    }

    fn rcpt(&mut self, session: &Session, to: Address) -> Reply {
        let peer = self.peer_facts();
        let Some(txn) = self.txn.as_mut() else {
            return reply::NEED_MAIL_BEFORE_RCPT;
        };
        let facts = RcptFacts {
            peer: &peer,
            p1_domain: txn.from.domain(),
            rcpt_domain: to.domain(),
            spf_temp_error: txn.spf.result == AuthResult::TempError,
        };
        let verdict = decide_rcpt(&txn.dir, &facts);
        let r = verdict.reply();
        metrics::counter!(
            "portcullis_rcpt_replies_total",
            "code" => code_label(r.code),
            "status" => r.status.unwrap_or("")
        )
        .increment(1);
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
                });
                txn.copies.last_mut().expect("just pushed")
            }
        };
        // Rendered once: for the recipient's outcome and its event.
        let reply = r.to_string();
        match &verdict {
            RcptVerdict::NoTenant => unreachable!("handled above"),
            RcptVerdict::SpfTempError { .. } => {
                event(
                    &mut copy.record,
                    "DEFER",
                    format!(
                        "{rcpt}: {reply} (SPF for {} could not be evaluated)",
                        txn.spf.domain.as_deref().unwrap_or("-")
                    ),
                );
            }
            RcptVerdict::RestrictedPartner { connector, .. } => {
                event(
                    &mut copy.record,
                    "REJECT",
                    format!(
                        "{rcpt}: {reply} (partner connector \"{connector}\" restricts this sender domain)"
                    ),
                );
            }
            RcptVerdict::DirectSendRefused { .. } => {
                copy.record.direct_send = true;
                event(
                    &mut copy.record,
                    "REJECT",
                    format!(
                        "{rcpt}: {reply} (anonymous sender uses an accepted domain of the tenant)"
                    ),
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
                    "anonymous"
                } else {
                    "connector"
                }
                .into();
                copy.record.connector = attribution.connector().map(str::to_string);
                copy.record.direct_send |= direct_send.is_direct_send();
                if *direct_send == DirectSend::Audit
                    && !copy.record.events.iter().any(|e| e.event == "AUDIT")
                {
                    event(
                        &mut copy.record,
                        "AUDIT",
                        format!("would reject {}", reply::DIRECT_SEND_NOT_ALLOWED),
                    );
                }
                copy.accepted.push(rcpt.clone());
            }
        }
        let status = if r.is_positive() {
            "pending"
        } else if r.is_transient() {
            "deferred"
        } else {
            "rejected"
        };
        copy.record.recipients.push(TraceRecipient {
            address: rcpt,
            status: status.into(),
            reply,
        });
        r
    }

    async fn data(&mut self, session: &Session, message: Vec<u8>) -> Reply {
        let Some(mut txn) = self.txn.take() else {
            return reply::NEED_MAIL_BEFORE_DATA;
        };
        let facts = header_facts(&message);
        let host = self.shared.config.hostname.clone();
        // Authentication sees the message exactly as received.
        let mut auth = self
            .shared
            .auth
            .message(&message, self.peer.ip(), &txn.spf)
            .await;
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
        let body = strip_own_headers(&message, &host);
        let size = message.len() as u64;

        // Every copy's verdict first: one DNS failure defers the whole message (one DATA reply).
        let verdicts: Vec<Option<DataVerdict>> = txn
            .copies
            .iter()
            .map(|copy| {
                (!copy.accepted.is_empty()).then(|| {
                    decide_data(
                        &txn.dir,
                        &DataFacts {
                            tenant: &copy.tenant,
                            attribution: &copy.attribution,
                            direct_send: copy.direct_send,
                            p1_domain: txn.from.domain(),
                            auth: &auth.facts,
                        },
                    )
                })
            })
            .collect();
        let deferred = verdicts
            .iter()
            .flatten()
            .any(|v| *v == DataVerdict::TempError);

        let mut refusal: Option<Reply> = None;
        let mut to_store: Vec<(Envelope, Vec<u8>)> = Vec::new();
        let mut to_quarantine: Vec<(QuarantineEntry, Vec<u8>)> = Vec::new();
        let fields = header_fields(&message);
        for (copy, verdict) in txn.copies.iter_mut().zip(verdicts) {
            fill_header_facts(&mut copy.record, &facts, size);
            fill_auth(&mut copy.record, &auth.facts);
            let Some(verdict) = verdict else {
                copy.record.status = "rejected".into();
                continue;
            };
            if deferred {
                continue;
            }
            match verdict {
                DataVerdict::Accept {
                    direct_send,
                    audit,
                    exemption,
                    compauth,
                    actions,
                } => {
                    copy.record.direct_send |= direct_send;
                    copy.record.auth.compauth = Some(compauth.verdict.as_str().to_string());
                    copy.record.auth.compauth_reason = Some(compauth.reason);
                    event(&mut copy.record, "AUTH", auth.summary(&compauth));
                    if let Some(why) = &exemption {
                        event(
                            &mut copy.record,
                            "AUDIT",
                            format!("direct send exempted: {why}"),
                        );
                    }
                    if audit.is_some() && !copy.record.events.iter().any(|e| e.event == "AUDIT") {
                        event(
                            &mut copy.record,
                            "AUDIT",
                            format!("would reject {}", reply::DIRECT_SEND_NOT_ALLOWED),
                        );
                    }
                    // Mail-flow rules of this tenant, on the message as received.
                    let rules = txn
                        .dir
                        .tenant(&copy.tenant)
                        .map(|e| e.rules.as_slice())
                        .unwrap_or(&[]);
                    let outcome = apply_rules(
                        rules,
                        &RuleFacts {
                            now: micros(SystemTime::now()) / 1_000_000,
                            attribution: &copy.attribution,
                            direct_send: copy.record.direct_send,
                            client_ip: self.peer.ip(),
                            mail_from: txn.from.address().map(|_| copy.record.mail_from.as_str()),
                            header_from: facts.from.as_deref(),
                            headers: &fields,
                            subject: facts.subject.as_deref(),
                            recipients: &copy.accepted,
                            auth: &auth.facts,
                            compauth: Some(compauth),
                        },
                    );
                    for m in &outcome.matched {
                        let acts: Vec<String> = m.actions.iter().map(|a| a.describe()).collect();
                        let mode = if m.mode == RuleMode::Audit {
                            "audit: not applied"
                        } else {
                            "enforce"
                        };
                        event(
                            &mut copy.record,
                            "RULE",
                            format!(
                                "{} ({mode}): {} — {}",
                                m.rule,
                                acts.join(", "),
                                m.why.join("; ")
                            ),
                        );
                    }
                    let effect = outcome.effect;
                    if let Some((code, text, rule)) = &effect.reject {
                        let r = reply::rule_reject(code, text);
                        event(
                            &mut copy.record,
                            "REJECT",
                            format!("DATA: {r} (rule {rule})"),
                        );
                        refuse_recipients(&mut copy.record, &r);
                        copy.record.status = "rejected".into();
                        refusal.get_or_insert(r);
                        continue;
                    }
                    let recipients = effect
                        .redirect_to
                        .clone()
                        .unwrap_or_else(|| copy.accepted.clone());
                    let mut headers = added_headers(
                        &host,
                        self.peer,
                        session,
                        self.tls.as_ref(),
                        &txn.id,
                        copy,
                        audit.is_some(),
                    );
                    headers.push_str(&auth.header(&compauth));
                    let mut quarantine = effect
                        .quarantine
                        .as_ref()
                        .map(|rule| format!("rule:{rule}"));
                    for action in &actions {
                        if let Some(reason) = apply_action(*action, &mut headers, &mut copy.record)
                        {
                            quarantine.get_or_insert_with(|| reason.to_string());
                        }
                    }
                    let edits = HeaderEdits {
                        remove: &effect.remove_headers,
                        set: &effect.set_headers,
                        prepend_subject: &effect.prepend_subject,
                        scl: effect.scl,
                    };
                    let edited = if effect.remove_headers.is_empty()
                        && effect.set_headers.is_empty()
                        && effect.prepend_subject.is_empty()
                        && effect.scl.is_none()
                    {
                        std::borrow::Cow::Borrowed(&*body)
                    } else {
                        std::borrow::Cow::Owned(edit_headers(&body, &edits))
                    };
                    let mut full = Vec::with_capacity(headers.len() + edited.len());
                    full.extend_from_slice(headers.as_bytes());
                    full.extend_from_slice(&edited);
                    event(
                        &mut copy.record,
                        "RECEIVE",
                        format!("received from [{}] by {host}, {size} bytes", self.peer.ip()),
                    );
                    match quarantine {
                        Some(reason) => {
                            let settings = txn
                                .dir
                                .tenant(&copy.tenant)
                                .map(|e| e.tenant.settings.clone())
                                .unwrap_or_default();
                            let now = SystemTime::now();
                            let expires = now + self.shared.config.quarantine_retention;
                            copy.record.status = "quarantined".into();
                            for r in copy
                                .record
                                .recipients
                                .iter_mut()
                                .filter(|r| r.status == "pending")
                            {
                                r.status = "quarantined".into();
                            }
                            event(
                                &mut copy.record,
                                "QUARANTINE",
                                format!("held as {} ({reason})", txn.id),
                            );
                            to_quarantine.push((
                                QuarantineEntry {
                                    id: txn.id.clone(),
                                    tenant: copy.tenant.clone(),
                                    trace_id: txn.id.clone(),
                                    received_at: rfc3339(now),
                                    expires_at: rfc3339(expires),
                                    reason,
                                    mail_from: reverse_path_text(&txn.from),
                                    recipients,
                                    header_from: facts.from.clone(),
                                    subject: facts.subject.clone(),
                                    size,
                                    admin_only_release: settings.admin_only_release_direct_send
                                        && copy.record.direct_send,
                                    received_at_us: micros(now),
                                    expires_at_us: micros(expires),
                                    ..Default::default()
                                },
                                full,
                            ));
                        }
                        None => {
                            copy.record.status = "pending".into();
                            to_store.push((
                                Envelope {
                                    trace_id: txn.id.clone(),
                                    tenant: copy.tenant.clone(),
                                    mail_from: reverse_path_text(&txn.from),
                                    recipients,
                                    trace: copy.record.clone(),
                                    state: Vec::new(),
                                    attempts: 0,
                                    first_attempt_us: 0,
                                    is_dsn: false,
                                    next_attempt_us: 0,
                                },
                                full,
                            ));
                        }
                    }
                }
                refused => {
                    let r = refused.reply().expect("refusals have a reply");
                    let why = match &refused {
                        DataVerdict::DirectSendRefused { header: true } => {
                            copy.record.direct_send = true;
                            "anonymous P2 From: domain uses an accepted domain of the tenant"
                                .to_string()
                        }
                        DataVerdict::DirectSendRefused { header: false } => {
                            copy.record.direct_send = true;
                            "anonymous envelope sender uses an accepted domain of the tenant, no exemption applies".to_string()
                        }
                        DataVerdict::DmarcRejected { domain } => {
                            format!("DMARC policy reject of {domain}")
                        }
                        _ => String::new(),
                    };
                    let comp =
                        portcullis_policy::tenant_compauth(&txn.dir, &copy.tenant, &auth.facts);
                    if auth.facts.evaluated {
                        copy.record.auth.compauth = Some(comp.verdict.as_str().to_string());
                        copy.record.auth.compauth_reason = Some(comp.reason);
                    }
                    event(&mut copy.record, "AUTH", auth.summary(&comp));
                    event(&mut copy.record, "REJECT", format!("DATA: {r} ({why})"));
                    refuse_recipients(&mut copy.record, &r);
                    copy.record.status = "rejected".into();
                    refusal.get_or_insert(r);
                }
            }
        }

        let reply = if deferred {
            reply::AUTH_TEMP_ERROR
        } else if to_store.is_empty() && to_quarantine.is_empty() {
            refusal.unwrap_or(reply::NO_VALID_RECIPIENTS)
        } else {
            match self.persist(to_quarantine, to_store).await {
                Ok(entries) => {
                    let tenants: Vec<&str> = txn
                        .copies
                        .iter()
                        .filter(|c| !c.accepted.is_empty())
                        .map(|c| c.tenant.as_str())
                        .collect();
                    tracing::info!(trace_id = %txn.id, peer = %self.peer, from = %txn.from, size, tenants = ?tenants, "message accepted");
                    // Durable: now the trace and the delivery may learn of it.
                    for entry in entries {
                        self.shared.trace.send(entry.envelope.trace.clone()).await;
                        self.shared.delivery.submit(entry);
                    }
                    for copy in txn.copies.iter().filter(|c| c.record.status != "pending") {
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
        tracing::info!(trace_id = %txn.id, peer = %self.peer, from = %txn.from, reply = %reply, "message refused");
        // Nothing was accepted: every copy is recorded with the final reply.
        for copy in txn.copies.iter_mut() {
            if !copy.accepted.is_empty() && copy.record.status != "rejected" {
                for r in copy
                    .record
                    .recipients
                    .iter_mut()
                    .filter(|r| r.status == "quarantined")
                {
                    r.status = "pending".into();
                }
                copy.record.status = "deferred".into();
                refuse_recipients(&mut copy.record, &reply);
                event(&mut copy.record, "DEFER", format!("DATA: {reply}"));
            }
            self.shared.trace.send(copy.record.clone()).await;
        }
        reply
    }

    /// Makes every accepted copy durable — quarantined ones in the store, the others in the spool —
    /// or none of them: on any failure what was written is removed and the client gets a 4xx.
    async fn persist(
        &self,
        to_quarantine: Vec<(QuarantineEntry, Vec<u8>)>,
        to_store: Vec<(Envelope, Vec<u8>)>,
    ) -> anyhow::Result<Vec<Entry>> {
        let store = &self.shared.store;
        let mut held: Vec<&QuarantineEntry> = Vec::new();
        let mut failure = None;
        for (entry, message) in &to_quarantine {
            match store.put_quarantine(entry, message).await {
                Ok(()) => held.push(entry),
                Err(e) => {
                    failure = Some(anyhow::Error::from(e));
                    break;
                }
            }
        }
        if failure.is_none() && !to_store.is_empty() {
            let spool = self.shared.spool.clone();
            let stored = tokio::task::spawn_blocking(move || {
                let mut done = Vec::new();
                for (env, msg) in &to_store {
                    match spool.store(env, msg) {
                        Ok(entry) => done.push(entry),
                        Err(e) => {
                            for entry in &done {
                                let _ = spool.remove(entry);
                            }
                            return Err(e);
                        }
                    }
                }
                Ok(done)
            })
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("spool task failed: {e}")));
            match stored {
                Ok(entries) => return Ok(entries),
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            None => Ok(Vec::new()),
            Some(e) => {
                for entry in held {
                    let _ = store.delete_quarantine(&entry.tenant, &entry.id).await;
                }
                Err(e)
            }
        }
    }

    /// Records a transaction that ended without a message (RSET, new MAIL, disconnect): only
    /// tenants with refused or deferred recipients get a record, so refusals are visible in the
    /// trace.
    async fn finish_txn(&mut self) {
        let Some(txn) = self.txn.take() else { return };
        for mut copy in txn.copies {
            let refused = |status: &str| copy.record.recipients.iter().any(|r| r.status == status);
            let status = if refused("rejected") {
                "rejected"
            } else if refused("deferred") {
                "deferred"
            } else {
                continue;
            };
            for r in copy
                .record
                .recipients
                .iter_mut()
                .filter(|r| r.status == "pending")
            {
                r.status = "abandoned".into();
                r.reply = "transaction ended before DATA".into();
            }
            copy.record.status = status.into();
            self.shared.trace.send(copy.record).await;
        }
    }
}

fn refuse_recipients(record: &mut TraceRecord, r: &Reply) {
    for rcpt in record
        .recipients
        .iter_mut()
        .filter(|x| x.status == "pending")
    {
        rcpt.status = if r.is_transient() {
            "deferred"
        } else {
            "rejected"
        }
        .into();
        rcpt.reply = r.to_string();
    }
}

fn fill_header_facts(record: &mut TraceRecord, facts: &HeaderFacts, size: u64) {
    record.header_from = facts.from.clone();
    record.message_id = facts.message_id.clone();
    record.subject = facts.subject.clone();
    record.size = size;
}

fn fill_auth(record: &mut TraceRecord, facts: &AuthFacts) {
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
            portcullis_policy::DmarcPolicy::Absent => None,
            portcullis_policy::DmarcPolicy::None => Some("none".into()),
            portcullis_policy::DmarcPolicy::Quarantine => Some("quarantine".into()),
            portcullis_policy::DmarcPolicy::Reject => Some("reject".into()),
        },
    };
}

/// Headers and trace events for an authentication action; returns the quarantine reason for
/// the quarantine actions.
fn apply_action(
    action: AuthAction,
    headers: &mut String,
    record: &mut TraceRecord,
) -> Option<&'static str> {
    match action {
        AuthAction::DmarcQuarantine => {
            event(
                record,
                "AUTH",
                "DMARC policy quarantine failed: quarantined",
            );
            Some("dmarc-quarantine")
        }
        AuthAction::SpoofJunk => {
            headers.push_str("X-Spam-Flag: YES\r\nX-Portcullis-SCL: 5\r\n");
            event(
                record,
                "AUTH",
                "spoof of an accepted domain: marked as junk (SCL 5)",
            );
            None
        }
        AuthAction::SpoofQuarantine => {
            event(record, "AUTH", "spoof of an accepted domain: quarantined");
            Some("spoof")
        }
    }
}

fn reverse_path_text(from: &ReversePath) -> String {
    match from {
        ReversePath::Null => "<>".into(),
        ReversePath::Address(a) => a.to_string(),
    }
}

fn new_record(
    id: &str,
    tenant: &str,
    peer: SocketAddr,
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
        client_ip: peer.ip().to_canonical().to_string(),
        helo: session.helo().map(str::to_string),
        tls: tls.map(|t| TraceTls {
            version: t.version.clone(),
            cipher: t.cipher.clone(),
            client_cert_subject: t.client_cert_subject.clone(),
            client_cert_trusted: t.client_cert_trusted,
            client_cert_names: t.trusted_names.clone(),
        }),
        mail_from: reverse_path_text(from),
        attribution: "anonymous".into(),
        status: "pending".into(),
        ..Default::default()
    }
}

/// `Received`, `Authentication-Results` and our `X-Portcullis-*` headers for one tenant copy.
fn added_headers(
    host: &str,
    peer: SocketAddr,
    session: &Session,
    tls: Option<&TlsInfo>,
    id: &str,
    copy: &Copy,
    audit: bool,
) -> String {
    let helo = header_value(session.helo().unwrap_or("unknown"));
    let utf8 = session.mail_params().is_some_and(|p| p.smtputf8);
    let proto = match (utf8, tls.is_some()) {
        (false, false) => "ESMTP",
        (false, true) => "ESMTPS",
        (true, false) => "UTF8SMTP",
        (true, true) => "UTF8SMTPS",
    };
    let tls_comment = tls
        .map(|t| format!(" (version={} cipher={})", t.version, t.cipher))
        .unwrap_or_default();
    let for_clause = match copy.accepted.as_slice() {
        [one] => format!("\r\n\tfor <{}>", header_value(one)),
        _ => String::new(),
    };
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000");
    let mut h = format!(
        "Received: from {helo} ([{ip}])\r\n\tby {host} (Portcullis) with {proto}{tls_comment}\r\n\tid {id}{for_clause};\r\n\t{date}\r\n",
        ip = peer.ip().to_canonical(),
    );
    h.push_str(&format!(
        "X-Portcullis-Attribution: tenant={}; auth-as={}; connector=\"{}\"\r\n",
        copy.tenant,
        copy.attribution.auth_as(),
        header_value(copy.attribution.connector().unwrap_or("")),
    ));
    if audit {
        h.push_str("X-Portcullis-Direct-Send: audit\r\n");
    }
    h
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
