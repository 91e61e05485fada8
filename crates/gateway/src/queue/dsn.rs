//! Delivery status notifications (RFC 3464 `multipart/report`) for recipients that failed: sent
//! to the envelope sender through the same queue, never for the null sender and never for a DSN.

use std::time::SystemTime;

use crate::queue::envelope::{Envelope, RcptState};

/// Why the envelope sender of a message cannot be believed, if it cannot: SPF `fail` for it,
/// or a DMARC or composite-authentication failure of a message whose sender SPF did not
/// verify either. Such a sender gets no bounce. (A sender SPF verified gets its bounce even
/// when the `From:` header failed DMARC: the bounce goes to an address that really sent.)
pub fn unverified_sender(auth: &portcullis_store::TraceAuth) -> Option<&'static str> {
    let is_fail = |r: &Option<String>| r.as_deref() == Some("fail");
    if is_fail(&auth.spf) {
        Some("SPF failed for the sender (likely forged)")
    } else if auth.spf.as_deref() == Some("pass") {
        None
    } else if is_fail(&auth.dmarc) {
        Some("the message failed DMARC (sender likely forged)")
    } else if is_fail(&auth.compauth) {
        Some("the message failed composite authentication (sender likely forged)")
    } else {
        None
    }
}

/// The enhanced status code at the start of a reply (`550 5.1.1 …` → `5.1.1`), else `5.0.0`.
fn status_of(reply: &str) -> String {
    reply
        .split_whitespace()
        .nth(1)
        .filter(|s| {
            let parts: Vec<&str> = s.split('.').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        // The action is `failed`: the class is permanent whatever the last reply said.
        .map(|s| format!("5{}", &s[1..]))
        .unwrap_or_else(|| "5.0.0".into())
}

/// The header section of the original message (for `text/rfc822-headers`).
fn headers_of(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => &message[..i + 2],
        None => message,
    }
}

/// Builds the DSN message for the failed recipients of `original`.
pub fn build(
    hostname: &str,
    dsn_id: &str,
    original: &Envelope,
    failed: &[&RcptState],
    message: &[u8],
) -> Vec<u8> {
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000");
    let boundary = format!("{dsn_id}/{hostname}");
    let arrival = if original.trace.received_at.is_empty() {
        humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
    } else {
        original.trace.received_at.clone()
    };
    let mut text = format!(
        "This is the mail system at {hostname}.\r\n\r\nYour message could not be delivered to {} recipient(s):\r\n\r\n",
        failed.len()
    );
    let mut status = format!(
        "Reporting-MTA: dns; {hostname}\r\nX-Portcullis-Trace-ID: {}\r\nArrival-Date: {arrival}\r\n",
        original.trace_id
    );
    for r in failed {
        let reply = r.reply.replace(['\r', '\n'], " ");
        text.push_str(&format!("<{}>: {reply}\r\n", r.address));
        status.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {}\r\nDiagnostic-Code: smtp; {reply}\r\n",
            r.address,
            status_of(&reply)
        ));
        if let Some(host) = r.route.split("://").nth(1) {
            status.push_str(&format!(
                "Remote-MTA: dns; {}\r\n",
                host.split(':').next().unwrap_or(host)
            ));
        }
    }
    let mut out = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{to}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Message-ID: <{dsn_id}@{hostname}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         {text}\r\n\
         --{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         {status}\r\n\
         --{boundary}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n",
        to = original.mail_from,
    )
    .into_bytes();
    out.extend_from_slice(headers_of(message));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounces_only_to_senders_authentication_does_not_call_forged() {
        let auth = |spf: &str, dmarc: &str, compauth: &str| portcullis_store::TraceAuth {
            spf: (!spf.is_empty()).then(|| spf.to_string()),
            dmarc: (!dmarc.is_empty()).then(|| dmarc.to_string()),
            compauth: (!compauth.is_empty()).then(|| compauth.to_string()),
            ..Default::default()
        };
        assert!(unverified_sender(&auth("fail", "", "")).is_some());
        assert!(unverified_sender(&auth("softfail", "fail", "fail")).is_some());
        assert!(unverified_sender(&auth("none", "none", "fail")).is_some());
        // SPF verified the envelope sender: the bounce goes to an address that really sent.
        assert!(unverified_sender(&auth("pass", "fail", "fail")).is_none());
        assert!(unverified_sender(&auth("none", "none", "none")).is_none());
        // Authentication off: nothing known, nothing suppressed.
        assert!(unverified_sender(&auth("", "", "")).is_none());
    }

    #[test]
    fn status_codes_come_from_the_reply() {
        assert_eq!(status_of("550 5.1.1 no such user"), "5.1.1");
        assert_eq!(status_of("554 4.4.7 delivery time expired"), "5.4.7");
        assert_eq!(status_of("550 no enhanced code"), "5.0.0");
    }

    #[test]
    fn report_structure() {
        let env = Envelope {
            trace_id: "T1".into(),
            tenant: "contoso".into(),
            mail_from: "alice@contoso.com".into(),
            recipients: vec!["x@contoso.com".into()],
            trace: Default::default(),
            state: vec![],
            attempts: 1,
            first_attempt_us: 1,
            is_dsn: false,
            next_attempt_us: 0,
        };
        let failed = RcptState {
            address: "x@contoso.com".into(),
            route: "smtp://mail.contoso.com:25".into(),
            status: "failed".into(),
            reply: "550 5.1.1 no such user".into(),
            rerouted: None,
        };
        let m = String::from_utf8(build(
            "mx.example",
            "D1",
            &env,
            &[&failed],
            b"Subject: hi\r\nFrom: a\r\n\r\nsecret body\r\n",
        ))
        .unwrap();
        assert!(m.contains("Content-Type: multipart/report; report-type=delivery-status; boundary=\"D1/mx.example\""));
        assert!(m.contains(
            "Final-Recipient: rfc822; x@contoso.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ));
        assert!(m.contains("Remote-MTA: dns; mail.contoso.com"));
        assert!(m.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\nFrom: a\r\n"));
        assert!(!m.contains("secret body"), "only the headers are returned");
        assert!(m.ends_with("--D1/mx.example--\r\n"));
    }
}
