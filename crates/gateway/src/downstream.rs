//! Delivery to a tenant's mailbox server over SMTP or LMTP (the mail-send client, driven command
//! by command so every recipient gets its own reply). SMTP routes use STARTTLS when offered
//! (`smtp+tls-required` refuses to go on without it); the certificate is not verified — mailbox
//! servers behind a gateway commonly use private certificates — so TLS here protects against
//! passive observers only.

use std::time::Duration;

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

/// Delivers one message to `rcpts` over an SMTP or LMTP route, in one transaction.
pub async fn deliver(
    route: &Route,
    helo: &str,
    mail_from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Vec<Outcome> {
    match connect_and_send(route, helo, mail_from, rcpts, message).await {
        Ok(outcomes) => outcomes,
        Err(e) => all(rcpts, 0, e),
    }
}

async fn connect_and_send(
    route: &Route,
    helo: &str,
    mail_from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Result<Vec<Outcome>, String> {
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
            let greeting = timed(client.read()).await?;
            if greeting.code != 220 {
                return Ok(all(rcpts, greeting.code, text(&greeting)));
            }
            let caps = client.ehlo(helo).await.map_err(|e| e.to_string())?;
            if caps.has_capability(EXT_START_TLS) {
                let connector = build_tls_connector(true)?;
                let mut tls = client
                    .start_tls(&connector, host)
                    .await
                    .map_err(|e| format!("STARTTLS: {e}"))?;
                tls.ehlo(helo).await.map_err(|e| e.to_string())?;
                transact(&mut tls, false, mail_from, rcpts, message).await
            } else if *tls_required {
                Ok(all(
                    rcpts,
                    0,
                    format!(
                        "{route}: the server does not offer STARTTLS and the route requires TLS"
                    ),
                ))
            } else {
                transact(&mut client, false, mail_from, rcpts, message).await
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
            lmtp(&mut client, helo, mail_from, rcpts, message).await
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
            lmtp(&mut client, helo, mail_from, rcpts, message).await
        }
        Route::Maildir(_) | Route::Mx(_) => Err("not a network route".into()),
    }
}

async fn lmtp<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    helo: &str,
    mail_from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Result<Vec<Outcome>, String> {
    let greeting = timed(client.read()).await?;
    if greeting.code != 220 {
        return Ok(all(rcpts, greeting.code, text(&greeting)));
    }
    client.lhlo(helo).await.map_err(|e| e.to_string())?;
    transact(client, true, mail_from, rcpts, message).await
}

/// MAIL, one RCPT per recipient, DATA; one final reply (SMTP) or one per accepted recipient (LMTP).
async fn transact<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    is_lmtp: bool,
    mail_from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Result<Vec<Outcome>, String> {
    let from = if mail_from == "<>" {
        String::new()
    } else {
        mail_from.to_string()
    };
    let r = client
        .cmd(format!("MAIL FROM:<{from}>\r\n"))
        .await
        .map_err(|e| e.to_string())?;
    if !(200..300).contains(&r.code) {
        return Ok(all(rcpts, r.code, text(&r)));
    }
    let mut outcomes = Vec::with_capacity(rcpts.len());
    let mut accepted = Vec::new();
    for (i, rcpt) in rcpts.iter().enumerate() {
        let r = client
            .cmd(format!("RCPT TO:<{rcpt}>\r\n"))
            .await
            .map_err(|e| e.to_string())?;
        if (200..300).contains(&r.code) {
            accepted.push(i);
        }
        outcomes.push(Outcome {
            code: r.code,
            reply: text(&r),
        });
    }
    if accepted.is_empty() {
        let _ = client.cmd("RSET\r\n").await;
        return Ok(outcomes);
    }
    let r = client.cmd("DATA\r\n").await.map_err(|e| e.to_string())?;
    if r.code != 354 {
        for &i in &accepted {
            outcomes[i].code = r.code;
            outcomes[i].reply = text(&r);
        }
        return Ok(outcomes);
    }
    // write_message adds the final CRLF.CRLF: do not double the message's own last line ending.
    let body = message.strip_suffix(b"\r\n").unwrap_or(message);
    client
        .write_message(body)
        .await
        .map_err(|e| e.to_string())?;
    // LMTP: one reply per accepted recipient, often all in one segment — read_many keeps the
    // rest of a segment for the next reply (a plain read() would drop it and wait forever).
    let replies = if is_lmtp {
        timed(client.read_many(accepted.len())).await?
    } else {
        let r = timed(client.read()).await?;
        vec![r; accepted.len()]
    };
    for (&i, r) in accepted.iter().zip(&replies) {
        outcomes[i].code = r.code;
        outcomes[i].reply = text(r);
    }
    // Say goodbye without waiting for the answer: the outcomes are known, and every moment
    // between the downstream's 250 and the spool's update is a window for a duplicate on a crash.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut client.stream, b"QUIT\r\n").await;
    Ok(outcomes)
}
