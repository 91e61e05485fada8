//! Delivery to a tenant's mailbox server over SMTP or LMTP (the mail-send client, driven command
//! by command so every recipient gets its own reply). SMTP routes use STARTTLS when offered
//! (`smtp+tls-required` refuses to go on without it); the certificate is not verified — mailbox
//! servers behind a gateway commonly use private certificates — so TLS here protects against
//! passive observers only.
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
use smtp_proto::EXT_START_TLS;
use tokio::io::{AsyncRead, AsyncWrite};

const TIMEOUT: Duration = Duration::from_secs(60);

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
enum Conn {
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
        match self {
            Conn::Plain(c) => transact(c, is_lmtp, mail_from, rcpts, message).await,
            Conn::Tls(c) => transact(c.as_mut(), is_lmtp, mail_from, rcpts, message).await,
            Conn::Unix(c) => transact(c, is_lmtp, mail_from, rcpts, message).await,
        }
    }

    async fn quit(self) {
        use tokio::io::AsyncWriteExt;
        let _ = match self {
            Conn::Plain(mut c) => c.stream.write_all(b"QUIT\r\n").await,
            Conn::Tls(mut c) => c.stream.write_all(b"QUIT\r\n").await,
            Conn::Unix(mut c) => c.stream.write_all(b"QUIT\r\n").await,
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
    let key = route.to_string();
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
    let mut conn = match connect(route, helo).await {
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

/// Connects and greets (EHLO/LHLO, STARTTLS when offered): a connection ready for `MAIL FROM`,
/// or the server's refusal (code, reply) to apply to every recipient.
async fn connect(route: &Route, helo: &str) -> Result<Result<Conn, (u16, String)>, String> {
    match route {
        Route::Smtp {
            host,
            port,
            tls_required,
        } => {
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
                tls.ehlo(helo).await.map_err(|e| e.to_string())?;
                Ok(Ok(Conn::Tls(Box::new(tls))))
            } else if *tls_required {
                Ok(Err((
                    0,
                    format!(
                        "{route}: the server does not offer STARTTLS and the route requires TLS"
                    ),
                )))
            } else {
                Ok(Ok(Conn::Plain(client)))
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
            Ok(lhlo(&mut client, helo).await?.map(|()| Conn::Plain(client)))
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
            Ok(lhlo(&mut client, helo).await?.map(|()| Conn::Unix(client)))
        }
        Route::Maildir(_) | Route::Mx(_) => Err("not a network route".into()),
    }
}

/// The LMTP greeting and LHLO; `Err((code, reply))` when the server refuses.
async fn lhlo<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    helo: &str,
) -> Result<Result<(), (u16, String)>, String> {
    let greeting = timed(client.read()).await?;
    if greeting.code != 220 {
        return Ok(Err((greeting.code, text(&greeting))));
    }
    client.lhlo(helo).await.map_err(|e| e.to_string())?;
    Ok(Ok(()))
}

/// MAIL, one RCPT per recipient, DATA; one final reply (SMTP) or one per accepted recipient
/// (LMTP). Also says whether the connection is fit for another transaction.
async fn transact<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    is_lmtp: bool,
    mail_from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Result<(Vec<Outcome>, bool), Failure> {
    let from = if mail_from == "<>" {
        String::new()
    } else {
        mail_from.to_string()
    };
    let r = client
        .cmd(format!("MAIL FROM:<{from}>\r\n"))
        .await
        .map_err(|e| Failure::Stale(e.to_string()))?;
    if r.code == 421 {
        // The server is closing the connection (e.g. its own idle limit): nothing happened.
        return Err(Failure::Stale(text(&r)));
    }
    if !(200..300).contains(&r.code) {
        let _ = client.cmd("RSET\r\n").await;
        return Ok((all(rcpts, r.code, text(&r)), false));
    }
    let broken = |e: mail_send::Error| Failure::Broken(e.to_string());
    let mut outcomes = Vec::with_capacity(rcpts.len());
    let mut accepted = Vec::new();
    for (i, rcpt) in rcpts.iter().enumerate() {
        let r = client
            .cmd(format!("RCPT TO:<{rcpt}>\r\n"))
            .await
            .map_err(broken)?;
        if (200..300).contains(&r.code) {
            accepted.push(i);
        }
        outcomes.push(Outcome {
            code: r.code,
            reply: text(&r),
        });
    }
    if accepted.is_empty() {
        let reset = client.cmd("RSET\r\n").await;
        let reusable = reset.is_ok_and(|r| r.code == 250);
        return Ok((outcomes, reusable));
    }
    let r = client.cmd("DATA\r\n").await.map_err(broken)?;
    if r.code != 354 {
        for &i in &accepted {
            outcomes[i].code = r.code;
            outcomes[i].reply = text(&r);
        }
        return Ok((outcomes, false));
    }
    // write_message adds the final CRLF.CRLF: do not double the message's own last line ending.
    let body = message.strip_suffix(b"\r\n").unwrap_or(message);
    client
        .write_message(body)
        .await
        .map_err(|e| Failure::Broken(e.to_string()))?;
    // LMTP: one reply per accepted recipient, often all in one segment — read_many keeps the
    // rest of a segment for the next reply (a plain read() would drop it and wait forever).
    let replies = if is_lmtp {
        timed(client.read_many(accepted.len()))
            .await
            .map_err(Failure::Broken)?
    } else {
        let r = timed(client.read()).await.map_err(Failure::Broken)?;
        vec![r; accepted.len()]
    };
    for (&i, r) in accepted.iter().zip(&replies) {
        outcomes[i].code = r.code;
        outcomes[i].reply = text(r);
    }
    // The outcomes are known at once (no QUIT round trip): every moment between the
    // downstream's 250 and the spool's update is a window for a duplicate on a crash.
    Ok((outcomes, true))
}
