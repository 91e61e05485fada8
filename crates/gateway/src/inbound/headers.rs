//! The headers Portcullis adds to a tenant copy: `Received` and `X-Portcullis-*`.

use std::net::SocketAddr;

use portcullis_smtp::Session;

use super::connection::Copy;
use crate::message::header_value;
use crate::tls::TlsInfo;

/// `Received`, `Authentication-Results` and our `X-Portcullis-*` headers for one tenant copy.
pub(super) fn added_headers(
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
        ip = peer.ip(),
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
