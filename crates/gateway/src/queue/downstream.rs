//! Delivery to a tenant's mailbox server over SMTP or LMTP (the mail-send client; every recipient
//! gets its own reply). When the server offers PIPELINING (RFC 2920) `MAIL`, the `RCPT`s and
//! `DATA` go in one write and their replies are read together, and the message and its final dot
//! in another: two round trips per message instead of three plus one per recipient.
//!
//! SMTP routes use STARTTLS when offered (`smtp+tls-required` refuses to go on without it); the
//! certificate is not verified — mailbox servers behind a gateway commonly use private
//! certificates — so TLS here protects against passive observers only.
//!
//! Connections are reused: after a complete transaction the connection goes into a [`Pool`] per
//! route and the next message to that route starts with `MAIL FROM` on it, like Postfix's
//! connection cache. A pooled connection idle for more than [`IDLE_LIMIT`] or open for more than
//! [`AGE_LIMIT`] is closed; one the server closed while it was idle is noticed at `MAIL FROM`
//! (no reply) and the transaction goes to a new connection — nothing was accepted on the old one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mail_send::SmtpClient;
use mail_send::smtp::tls::build_tls_connector;
use portcullis_policy::route::Route;
use smtp_proto::{EXT_PIPELINING, EXT_START_TLS, Response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Transactions with more recipients go command by command even where PIPELINING is offered: the
/// whole group is written before any reply is read, so the server's replies must fit in the
/// socket buffers meanwhile (RFC 2920 §3.1 warns of the deadlock); 100 replies do by far.
const PIPELINE_MAX_RCPTS: usize = 100;

/// The reply for one recipient. `code` 0 means no reply at all (connection trouble): temporary.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub code: u16,
    pub reply: String,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

fn all(rcpts: &[String], code: u16, reply: String) -> Vec<Outcome> {
    rcpts
        .iter()
        .map(|_| Outcome {
            code,
            reply: reply.clone(),
        })
        .collect()
}

fn text(r: &smtp_proto::Response<String>) -> String {
    let esc = if r.esc[0] > 0 {
        format!("{}.{}.{} ", r.esc[0], r.esc[1], r.esc[2])
    } else {
        String::new()
    };
    format!("{} {esc}{}", r.code, r.message.replace(['\r', '\n'], " "))
}

/// mail-send applies its time-out to commands only: every bare read gets one here, so a stalled
/// server cannot hold a delivery slot.
async fn timed<T>(f: impl std::future::Future<Output = mail_send::Result<T>>) -> Result<T, String> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no reply within {} s", TIMEOUT.as_secs())),
    }
}

/// A pooled connection is closed after this long without a transaction.
pub const IDLE_LIMIT: Duration = Duration::from_secs(5);
/// ... and after this long in all (a downstream's view of a long-lived client stays fresh).
pub const AGE_LIMIT: Duration = Duration::from_secs(300);

/// An open downstream connection between transactions.
struct Conn {
    link: Link,
    /// The server offered PIPELINING in its EHLO/LHLO reply.
    pipelining: bool,
}

enum Link {
    Plain(SmtpClient<tokio::net::TcpStream>),
    Tls(Box<SmtpClient<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>),
    Unix(SmtpClient<tokio::net::UnixStream>),
}

impl Conn {
    async fn transact(
        &mut self,
        is_lmtp: bool,
        mail_from: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Result<(Vec<Outcome>, bool), Failure> {
        let t = Transaction {
            is_lmtp,
            pipelining: self.pipelining && rcpts.len() <= PIPELINE_MAX_RCPTS,
            mail_from,
            rcpts,
            message,
        };
        match &mut self.link {
            Link::Plain(c) => t.run(c).await,
            Link::Tls(c) => t.run(c.as_mut()).await,
            Link::Unix(c) => t.run(c).await,
        }
    }

    async fn quit(self) {
        let _ = match self.link {
            Link::Plain(mut c) => c.stream.write_all(b"QUIT\r\n").await,
            Link::Tls(mut c) => c.stream.write_all(b"QUIT\r\n").await,
            Link::Unix(mut c) => c.stream.write_all(b"QUIT\r\n").await,
        };
    }
}

struct Idle {
    conn: Conn,
    opened: Instant,
    since: Instant,
}

/// Idle downstream connections by route. Their number is bounded by the per-destination
/// concurrency: a connection is only put back by the delivery that used it.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
}

impl Pool {
    /// The most recently used live connection to `key`, if any.
    fn take(&self, key: &str) -> Option<(Conn, Instant)> {
        let mut map = self.idle.lock().expect("not poisoned");
        let list = map.get_mut(key)?;
        while let Some(i) = list.pop() {
            if i.since.elapsed() < IDLE_LIMIT && i.opened.elapsed() < AGE_LIMIT {
                return Some((i.conn, i.opened));
            }
            tokio::spawn(i.conn.quit());
        }
        None
    }

    fn put(&self, key: &str, conn: Conn, opened: Instant) {
        if opened.elapsed() >= AGE_LIMIT {
            tokio::spawn(conn.quit());
            return;
        }
        let mut map = self.idle.lock().expect("not poisoned");
        map.entry(key.to_string()).or_default().push(Idle {
            conn,
            opened,
            since: Instant::now(),
        });
    }

    /// Closes (QUIT) the connections idle for [`IDLE_LIMIT`]; run every second or so.
    pub fn sweep(&self) {
        let mut map = self.idle.lock().expect("not poisoned");
        for list in map.values_mut() {
            let (keep, expired): (Vec<Idle>, Vec<Idle>) = std::mem::take(list)
                .into_iter()
                .partition(|i| i.since.elapsed() < IDLE_LIMIT);
            *list = keep;
            for i in expired {
                tokio::spawn(i.conn.quit());
            }
        }
        map.retain(|_, l| !l.is_empty());
    }
}

/// Why a transaction did not produce outcomes.
enum Failure {
    /// The connection was dead before the server answered `MAIL FROM` (closed while pooled):
    /// nothing happened, the transaction may go to another connection.
    Stale(String),
    /// Trouble after that: the outcome is unknown, the recipients are retried later.
    Broken(String),
}

/// Delivers one message to `rcpts` over an SMTP or LMTP route, in one transaction, on a pooled
/// connection when one is idle, else on a new one.
pub async fn deliver(
    pool: &Pool,
    route: &Route,
    helo: &str,
    mail_from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Vec<Outcome> {
    deliver_via(pool, route, None, helo, mail_from, rcpts, message).await
}

/// As [`deliver`], to one address of the route's host (`via`: a mail exchanger's address
/// resolved through the configured DNS) — the host name still names the server for STARTTLS.
pub async fn deliver_via(
    pool: &Pool,
    route: &Route,
    via: Option<std::net::IpAddr>,
    helo: &str,
    mail_from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Vec<Outcome> {
    let key = match via {
        Some(ip) => format!("{route} {ip}"),
        None => route.to_string(),
    };
    let is_lmtp = matches!(route, Route::Lmtp { .. } | Route::LmtpUnix(_));
    if let Some((mut conn, opened)) = pool.take(&key) {
        match conn.transact(is_lmtp, mail_from, rcpts, message).await {
            Ok((outcomes, reusable)) => {
                if reusable {
                    pool.put(&key, conn, opened);
                } else {
                    conn.quit().await;
                }
                return outcomes;
            }
            Err(Failure::Broken(e)) => return all(rcpts, 0, e),
            Err(Failure::Stale(_)) => {} // a new connection below
        }
    }
    let mut conn = match connect(route, via, helo).await {
        Ok(Ok(c)) => c,
        Ok(Err(refused)) => return all(rcpts, refused.0, refused.1),
        Err(e) => return all(rcpts, 0, e),
    };
    let opened = Instant::now();
    match conn.transact(is_lmtp, mail_from, rcpts, message).await {
        Ok((outcomes, reusable)) => {
            if reusable {
                pool.put(&key, conn, opened);
            } else {
                conn.quit().await;
            }
            outcomes
        }
        Err(Failure::Stale(e) | Failure::Broken(e)) => all(rcpts, 0, e),
    }
}

/// A mailbox server's answer to a recipient verification probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// 2xx to `RCPT TO`.
    Known,
    /// 5xx to `RCPT TO`: the server's reply.
    Unknown(String),
    /// 4xx to `RCPT TO` (the mailbox is busy, say): the server answered, but not either way.
    Deferred(String),
    /// No answer: connection trouble, a time-out, a refused greeting or `MAIL FROM:<>`.
    Unavailable(String),
}

/// Asks `route`'s server whether it would take `address`, as Postfix's address verification
/// does: `MAIL FROM:<>`, `RCPT TO`, `RSET`, `QUIT` — never `DATA`, so nothing is delivered.
/// On its own connection (a pooled one may be mid-transaction), within `limit` in all.
pub async fn probe(route: &Route, helo: &str, address: &str, limit: Duration) -> ProbeAnswer {
    let asked = async {
        let mut conn = match connect(route, None, helo).await {
            Ok(Ok(c)) => c,
            Ok(Err((_, reply))) => return ProbeAnswer::Unavailable(reply),
            Err(e) => return ProbeAnswer::Unavailable(e),
        };
        let answer = match &mut conn.link {
            Link::Plain(c) => probe_on(c, address).await,
            Link::Tls(c) => probe_on(c.as_mut(), address).await,
            Link::Unix(c) => probe_on(c, address).await,
        };
        conn.quit().await;
        answer
    };
    match tokio::time::timeout(limit, asked).await {
        Ok(answer) => answer,
        Err(_) => ProbeAnswer::Unavailable(format!(
            "{route}: no answer within {:.1} s",
            limit.as_secs_f64()
        )),
    }
}

async fn probe_on<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    address: &str,
) -> ProbeAnswer {
    let mail = match client.cmd("MAIL FROM:<>\r\n").await {
        Ok(r) => r,
        Err(e) => return ProbeAnswer::Unavailable(e.to_string()),
    };
    if !(200..300).contains(&mail.code) {
        return ProbeAnswer::Unavailable(format!("MAIL FROM:<> refused: {}", text(&mail)));
    }
    let answer = match client.cmd(format!("RCPT TO:<{address}>\r\n")).await {
        Ok(r) if (200..300).contains(&r.code) => ProbeAnswer::Known,
        Ok(r) if (500..600).contains(&r.code) => ProbeAnswer::Unknown(text(&r)),
        Ok(r) => ProbeAnswer::Deferred(text(&r)),
        Err(e) => ProbeAnswer::Unavailable(e.to_string()),
    };
    let _ = client.cmd("RSET\r\n").await;
    answer
}

/// Connects and greets (EHLO/LHLO, STARTTLS when offered): a connection ready for `MAIL FROM`,
/// or the server's refusal (code, reply) to apply to every recipient.
async fn connect(
    route: &Route,
    via: Option<std::net::IpAddr>,
    helo: &str,
) -> Result<Result<Conn, (u16, String)>, String> {
    match route {
        Route::Smtp {
            host,
            port,
            tls_required,
        } => {
            let addr = match via {
                Some(ip) => std::net::SocketAddr::new(ip, *port),
                None => tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| format!("cannot resolve {host}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{host} has no address"))?,
            };
            let mut client = SmtpClient::connect(addr, TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            // Commands and the message's last line are small writes each waiting for a reply:
            // with Nagle's algorithm they would wait for the previous segment's delayed ACK.
            client.stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let greeting = timed(client.read()).await?;
            if greeting.code != 220 {
                return Ok(Err((greeting.code, text(&greeting))));
            }
            let caps = client.ehlo(helo).await.map_err(|e| e.to_string())?;
            if caps.has_capability(EXT_START_TLS) {
                let connector = build_tls_connector(true)?;
                let mut tls = client
                    .start_tls(&connector, host)
                    .await
                    .map_err(|e| format!("STARTTLS: {e}"))?;
                let caps = tls.ehlo(helo).await.map_err(|e| e.to_string())?;
                Ok(Ok(Conn {
                    link: Link::Tls(Box::new(tls)),
                    pipelining: caps.has_capability(EXT_PIPELINING),
                }))
            } else if *tls_required {
                Ok(Err((
                    0,
                    format!(
                        "{route}: the server does not offer STARTTLS and the route requires TLS"
                    ),
                )))
            } else {
                Ok(Ok(Conn {
                    link: Link::Plain(client),
                    pipelining: caps.has_capability(EXT_PIPELINING),
                }))
            }
        }
        Route::Lmtp { host, port } => {
            let addr = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("{host} has no address"))?;
            let mut client = SmtpClient::connect(addr, TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            // Commands and the message's last line are small writes each waiting for a reply:
            // with Nagle's algorithm they would wait for the previous segment's delayed ACK.
            client.stream.set_nodelay(true).map_err(|e| e.to_string())?;
            Ok(lhlo(&mut client, helo).await?.map(|pipelining| Conn {
                link: Link::Plain(client),
                pipelining,
            }))
        }
        Route::LmtpUnix(path) => {
            let stream = tokio::time::timeout(TIMEOUT, tokio::net::UnixStream::connect(path))
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| format!("cannot connect to {path}: {e}"))?;
            let mut client = SmtpClient {
                stream,
                timeout: TIMEOUT,
            };
            Ok(lhlo(&mut client, helo).await?.map(|pipelining| Conn {
                link: Link::Unix(client),
                pipelining,
            }))
        }
        Route::Maildir(_) | Route::Mx(_) => Err("not a network route".into()),
    }
}

/// The LMTP greeting and LHLO: whether the server offers PIPELINING, or `Err((code, reply))`
/// when it refuses.
async fn lhlo<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    helo: &str,
) -> Result<Result<bool, (u16, String)>, String> {
    let greeting = timed(client.read()).await?;
    if greeting.code != 220 {
        return Ok(Err((greeting.code, text(&greeting))));
    }
    let caps = client.lhlo(helo).await.map_err(|e| e.to_string())?;
    Ok(Ok(caps.has_capability(EXT_PIPELINING)))
}

/// One transaction on an open connection.
struct Transaction<'a> {
    is_lmtp: bool,
    pipelining: bool,
    mail_from: &'a str,
    rcpts: &'a [String],
    message: &'a [u8],
}

/// The replies to a transaction's envelope. Lock-step stops early: no `RCPT` after a refused
/// `MAIL`, no `DATA` without an accepted recipient.
struct EnvelopeReplies {
    mail: Response<String>,
    rcpts: Vec<Response<String>>,
    data: Option<Response<String>>,
}

impl Transaction<'_> {
    /// MAIL, one RCPT per recipient, DATA; one final reply (SMTP) or one per accepted recipient
    /// (LMTP). Also says whether the connection is fit for another transaction.
    async fn run<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
    ) -> Result<(Vec<Outcome>, bool), Failure> {
        let EnvelopeReplies { mail, rcpts, data } = if self.pipelining {
            self.pipelined_envelope(client).await?
        } else {
            self.lockstep_envelope(client).await?
        };
        if mail.code == 421 {
            // The server is closing the connection (e.g. its own idle limit): nothing happened.
            return Err(Failure::Stale(text(&mail)));
        }
        if !(200..300).contains(&mail.code) {
            if !end_stray_data(client, data.as_ref()).await {
                let _ = client.cmd("RSET\r\n").await;
            }
            return Ok((all(self.rcpts, mail.code, text(&mail)), false));
        }
        let mut outcomes = Vec::with_capacity(self.rcpts.len());
        let mut accepted = Vec::new();
        for (i, r) in rcpts.iter().enumerate() {
            if (200..300).contains(&r.code) {
                accepted.push(i);
            }
            outcomes.push(Outcome {
                code: r.code,
                reply: text(r),
            });
        }
        if accepted.is_empty() {
            if end_stray_data(client, data.as_ref()).await {
                return Ok((outcomes, false));
            }
            let reset = client.cmd("RSET\r\n").await;
            let reusable = reset.is_ok_and(|r| r.code == 250);
            return Ok((outcomes, reusable));
        }
        let broken = |e: mail_send::Error| Failure::Broken(e.to_string());
        let r = match data {
            Some(r) => r,
            None => client.cmd("DATA\r\n").await.map_err(broken)?,
        };
        if r.code != 354 {
            for &i in &accepted {
                outcomes[i].code = r.code;
                outcomes[i].reply = text(&r);
            }
            return Ok((outcomes, false));
        }
        // The message and its final dot in one write. LMTP: one reply per accepted recipient,
        // often all in one segment (read_many parses them all; read() would drop the rest and
        // wait forever).
        let body = dot_stuffed(self.message);
        let replies = timed(async {
            client.stream.write_all(&body).await?;
            client.stream.flush().await?;
            if self.is_lmtp {
                client.read_many(accepted.len()).await
            } else {
                Ok(vec![client.read().await?; accepted.len()])
            }
        })
        .await
        .map_err(Failure::Broken)?;
        for (&i, r) in accepted.iter().zip(&replies) {
            outcomes[i].code = r.code;
            outcomes[i].reply = text(r);
        }
        // The outcomes are known at once (no QUIT round trip): every moment between the
        // downstream's 250 and the spool's update is a window for a duplicate on a crash.
        Ok((outcomes, true))
    }

    /// MAIL, the RCPTs and DATA in one write, then their replies. Nothing can have been delivered
    /// before the message is sent, so any failure here is [`Failure::Stale`]: a pooled
    /// connection's transaction goes to a new one.
    async fn pipelined_envelope<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
    ) -> Result<EnvelopeReplies, Failure> {
        let mut group = format!("MAIL FROM:<{}>\r\n", self.reverse_path());
        for rcpt in self.rcpts {
            group.push_str("RCPT TO:<");
            group.push_str(rcpt);
            group.push_str(">\r\n");
        }
        group.push_str("DATA\r\n");
        let mut replies = timed(async {
            client.stream.write_all(group.as_bytes()).await?;
            client.stream.flush().await?;
            client.read_many(self.rcpts.len() + 2).await
        })
        .await
        .map_err(Failure::Stale)?;
        let data = replies.pop();
        let rcpts = replies.split_off(1);
        let mail = replies
            .pop()
            .ok_or_else(|| Failure::Stale("no reply".into()))?;
        Ok(EnvelopeReplies { mail, rcpts, data })
    }

    /// Command by command, each waiting for its reply (servers without PIPELINING).
    async fn lockstep_envelope<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
    ) -> Result<EnvelopeReplies, Failure> {
        let mail = client
            .cmd(format!("MAIL FROM:<{}>\r\n", self.reverse_path()))
            .await
            .map_err(|e| Failure::Stale(e.to_string()))?;
        let mut rcpts = Vec::with_capacity(self.rcpts.len());
        if (200..300).contains(&mail.code) {
            for rcpt in self.rcpts {
                let r = client
                    .cmd(format!("RCPT TO:<{rcpt}>\r\n"))
                    .await
                    .map_err(|e| Failure::Broken(e.to_string()))?;
                rcpts.push(r);
            }
        }
        Ok(EnvelopeReplies {
            mail,
            rcpts,
            data: None,
        })
    }

    fn reverse_path(&self) -> &str {
        if self.mail_from == "<>" {
            ""
        } else {
            self.mail_from
        }
    }
}

/// A pipelined `DATA` the server accepted although nothing can be delivered (no `MAIL`, or no
/// recipient): an empty message ends it, which the server has no one to deliver to. Returns
/// whether that happened (the connection is then not reused).
async fn end_stray_data<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    data: Option<&Response<String>>,
) -> bool {
    if data.is_none_or(|r| r.code != 354) {
        return false;
    }
    let _ = client.cmd(".\r\n").await;
    true
}

/// The message as DATA sends it (RFC 5321 §4.5.2): a period starting a line doubled — also after
/// a bare CR or LF, which some servers take for a line end — and the final `.` line, after a CRLF
/// added if the message does not end with one.
fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut line_start = true;
    let mut from = 0;
    for (i, &b) in message.iter().enumerate() {
        if b == b'.' && line_start {
            out.extend_from_slice(&message[from..i]);
            out.push(b'.');
            from = i;
        }
        line_start = b == b'\r' || b == b'\n';
    }
    out.extend_from_slice(&message[from..]);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::dot_stuffed;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuffed(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(dot_stuffed(b"a"), b"a\r\n.\r\n");
        assert_eq!(
            dot_stuffed(b".lead\r\nx\r\n.\r\n..two\r\n"),
            b"..lead\r\nx\r\n..\r\n...two\r\n.\r\n"
        );
        assert_eq!(dot_stuffed(b"a\n.b\r.c"), b"a\n..b\r..c\r\n.\r\n");
        assert_eq!(dot_stuffed(b"a.b\r\n"), b"a.b\r\n.\r\n");
    }
}
