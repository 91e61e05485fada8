//! One SMTP connection: drives the sans-IO `smtp::Session` over a socket (plain, then TLS after
//! STARTTLS) and hands each decision to its stage: MAIL here, RCPT in `rcpt.rs`, the end of DATA
//! in `data.rs`. Reply texts come from the smtp crate's table or the verdicts' single mapping.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_policy::{Attribution, DirectSend, Directory, PeerFacts};
use portcullis_smtp::{Reply, ReversePath, Session, Stage, Step, reply};
use portcullis_store::TraceRecord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::deadlines::Deadlines;
use super::record::{abandoned, refuse_recipients};
use super::spf_check::SpfCheck;
use crate::shared::Shared;
use crate::tls::TlsInfo;
use crate::trace::event;
use crate::trace::new_trace_id;
use portcullis_store::EventKind;

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
pub(super) struct Copy {
    pub(super) tenant: String,
    pub(super) attribution: Attribution,
    pub(super) direct_send: DirectSend,
    pub(super) accepted: Vec<String>,
    pub(super) record: TraceRecord,
    /// The original client behind a filtering service (the connector's skip list), with the
    /// message's authentication judged for it.
    pub(super) recovered: Option<Recovered>,
}

/// A copy's original client and its authentication (see `policy::skiplist`).
pub(super) struct Recovered {
    pub(super) ip: std::net::IpAddr,
    pub(super) auth: crate::auth::MessageAuth,
}

/// The transaction in progress (from MAIL to the end of DATA, RSET or disconnect).
pub(super) struct Txn {
    pub(super) id: String,
    pub(super) dir: Arc<Directory>,
    pub(super) from: ReversePath,
    /// SPF of this transaction's MAIL FROM (or HELO for the null sender), evaluated while the
    /// session goes on.
    pub(super) spf: SpfCheck,
    pub(super) copies: Vec<Copy>,
}

/// One connection's state between its steps.
pub(super) struct Conn {
    pub(super) shared: Arc<Shared>,
    /// The client's address, canonical (an IPv4-mapped IPv6 address as IPv4): the one a PROXY
    /// header named, behind a trusted balancer.
    pub(super) peer: SocketAddr,
    /// The trusted balancer the connection came through, if any.
    pub(super) balancer: Option<SocketAddr>,
    pub(super) tls: Option<TlsInfo>,
    pub(super) txn: Option<Txn>,
    /// Unknown recipients refused in this session (`[smtp] max_unknown_recipients`).
    pub(super) unknown_recipients: usize,
}

/// Who is on the other end of an admitted connection.
pub struct Client {
    /// The client (canonical): the connection's peer, or the one its PROXY header named.
    pub peer: SocketAddr,
    /// The trusted balancer that sent a PROXY header, if one did.
    pub balancer: Option<SocketAddr>,
    /// Bytes read with the PROXY header that belong to the session.
    pub early: Vec<u8>,
}

/// Serves one connection to its end. Never panics on input; I/O errors end the connection.
pub async fn handle(
    shared: Arc<Shared>,
    tcp: TcpStream,
    client: Client,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = client.peer;
    let _ = tcp.set_nodelay(true);
    metrics::counter!("portcullis_connections_total").increment(1);
    metrics::gauge!("portcullis_connections_active").increment(1.0);
    let mut stream = Stream::Plain(tcp);
    let mut session = Session::new(shared.session_config.load_full());
    if !client.early.is_empty() {
        session.feed(&client.early);
    }
    let mut conn = Conn {
        shared: shared.clone(),
        peer,
        balancer: client.balancer,
        tls: None,
        txn: None,
        unknown_recipients: 0,
    };
    let mut out = Vec::with_capacity(512);
    let mut buf = vec![0u8; 16 * 1024];
    session.greeting().write_to(&mut out);
    let idle = shared.config.idle_timeout;
    let mut deadlines = Deadlines::new(&shared.config);

    loop {
        match session.step() {
            Step::Reply(r) => {
                r.write_to(&mut out);
                // RSET, EHLO or a refusal ended the transaction: record its refusals now. The
                // session itself refuses a message at its end for a bare CR or LF (smuggling) or
                // its size: refusals of the whole message, recorded as such.
                if conn.txn.is_some() && session.mail_from().is_none() {
                    if let Some(why) = refused_at_end(&r) {
                        conn.refuse_message(&r, why).await;
                    }
                    conn.finish_txn().await;
                }
            }
            Step::NeedInput => {
                if !out.is_empty() {
                    // A client that stops reading holds no session: writes have the idle
                    // timeout (and the session deadline) too.
                    let limit = deadlines.write_limit(idle);
                    if !matches!(
                        tokio::time::timeout(limit, stream.write_all(&out)).await,
                        Ok(Ok(()))
                    ) {
                        break;
                    }
                    out.clear();
                    // A reply went out: the client's next command line starts its clock now.
                    deadlines.replied();
                }
                deadlines.track_data(session.in_data());
                // A shutdown interrupts idle waits, but never a message being received.
                let draining = *shutdown.borrow() && !session.in_data();
                if draining {
                    session.on_shutdown();
                    continue;
                }
                let wait = deadlines.wait(idle, session.in_data());
                // A deadline already passed ends the session even when the client keeps the
                // socket full (a read would always have bytes, and never time out).
                let read = if wait.is_zero() {
                    None
                } else {
                    tokio::select! {
                        r = tokio::time::timeout(wait, stream.read(&mut buf)) => r.ok(),
                        _ = shutdown.changed(), if !session.in_data() => {
                            session.on_shutdown();
                            continue;
                        }
                    }
                };
                match read {
                    None => match deadlines.passed(session.in_data()) {
                        None => session.on_timeout(),
                        Some(deadline) => {
                            let r = deadline.reply(&shared.config.hostname);
                            metrics::counter!("portcullis_session_deadlines_total", "deadline" => deadline.name()).increment(1);
                            tracing::info!(peer = %conn.peer, deadline = deadline.name(), "session ended: {r}");
                            if conn.txn.is_some() {
                                conn.refuse_message(&r, deadline.why()).await;
                            }
                            session.on_deadline(r);
                        }
                    },
                    Some(Ok(0)) | Some(Err(_)) => break,
                    Some(Ok(n)) => session.feed(&buf[..n]),
                }
            }
            Step::StartTls => {
                let limit = deadlines.write_limit(idle);
                if !matches!(
                    tokio::time::timeout(limit, stream.write_all(&out)).await,
                    Ok(Ok(()))
                ) {
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
                        // The handshake is not the client's next command line.
                        deadlines.replied();
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
                    let limit = deadlines.write_limit(idle);
                    let _ = tokio::time::timeout(limit, stream.write_all(&out)).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
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
                let spf = SpfCheck::start(self.shared.auth.clone(), self.peer.ip(), helo, sender);
                self.txn = Some(Txn {
                    id: new_trace_id(),
                    dir: self.shared.directory.get(),
                    from,
                    spf,
                    copies: Vec::new(),
                });
                reply::SENDER_OK
            }
            Stage::Rcpt { to } => self.rcpt(session, to).await,
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

    pub(super) fn peer_facts(&self) -> PeerFacts {
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

    /// Records a message the session refused at its end (a bare CR or LF, a NUL, its size) or
    /// a transaction a deadline cut short: every accepted recipient is refused (5xx) or deferred
    /// (421) with `r`, in the trace and the log, like a refusal by policy.
    pub(super) async fn refuse_message(&mut self, r: &Reply, why: &str) {
        let Some(txn) = self.txn.take() else { return };
        tracing::info!(trace_id = %txn.id, peer = %self.peer, from = %txn.from, reply = %r, "message refused: {why}");
        let outcome = if r.is_transient() {
            "deferred"
        } else {
            "refused"
        };
        metrics::counter!("portcullis_messages_total", "outcome" => outcome).increment(1);
        for mut copy in txn.copies {
            if !copy.accepted.is_empty() {
                let (kind, detail) = if r.is_transient() {
                    (EventKind::Defer, format!("session ended: {r} ({why})"))
                } else {
                    (EventKind::Reject, format!("DATA: {r} ({why})"))
                };
                event(&mut copy.record, kind, detail);
                refuse_recipients(&mut copy.record, r);
            }
            if let Some(record) = abandoned(copy.record) {
                self.shared.trace.send(record).await;
            }
        }
    }

    /// Records a transaction that ended without a message (RSET, new MAIL, disconnect): only
    /// tenants with refused or deferred recipients get a record, so refusals are visible in the
    /// trace.
    pub(super) async fn finish_txn(&mut self) {
        let Some(txn) = self.txn.take() else { return };
        for copy in txn.copies {
            if let Some(record) = abandoned(copy.record) {
                log_refused_recipients(&record, &self.peer);
                self.shared.trace.send(record).await;
            }
        }
    }
}

/// Why the session refused a message at its end, for the replies that mean it (`None` for
/// every other reply).
fn refused_at_end(r: &Reply) -> Option<&'static str> {
    if *r == reply::BARE_LINE_ENDING {
        Some("bare CR or LF in the message data")
    } else if *r == reply::NUL_IN_DATA {
        Some("NUL character in the message data")
    } else if *r == reply::MESSAGE_TOO_BIG {
        Some("message too big")
    } else {
        None
    }
}

/// One log line for a tenant's transaction that ended without a message because its recipients
/// were refused or deferred (direct send, a restricted partner, unknown recipients, DNS
/// trouble): tenant, client, sender, the recipients and the first reply.
fn log_refused_recipients(record: &TraceRecord, peer: &SocketAddr) {
    use portcullis_store::RecipientStatus;
    let refused: Vec<&portcullis_store::TraceRecipient> = record
        .recipients
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                RecipientStatus::Rejected | RecipientStatus::Deferred
            )
        })
        .collect();
    let Some(first) = refused.first() else { return };
    let rcpts: Vec<&str> = refused.iter().map(|r| r.address.as_str()).collect();
    tracing::info!(
        trace_id = %record.trace_id,
        tenant = %record.tenant,
        peer = %peer,
        from = %record.mail_from,
        rcpts = ?rcpts,
        reply = %first.reply,
        "recipients refused"
    );
}
