//! Reading and editing the header section of a received message: the facts the trace and
//! policy need (P2 `From:`, `Message-ID`, `Subject`), removal of forged `X-Portcullis-*` headers,
//! and the trace headers we prepend.

use std::borrow::Cow;

/// Facts from the header section.
#[derive(Clone, Debug, Default)]
pub struct HeaderFacts {
    /// The first `From:` address (P2 sender).
    pub from: Option<String>,
    /// Lower-cased domain of `from`.
    pub from_domain: Option<String>,
    pub message_id: Option<String>,
    pub subject: Option<String>,
}

pub fn header_facts(message: &[u8]) -> HeaderFacts {
    let Some(parsed) = mail_parser::MessageParser::default().parse_headers(message) else {
        return HeaderFacts::default();
    };
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let from_domain = from
        .as_deref()
        .and_then(|a| a.rsplit_once('@'))
        .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
        .filter(|d| !d.is_empty());
    HeaderFacts {
        from,
        from_domain,
        message_id: parsed.message_id().map(|s| s.to_string()),
        subject: parsed.subject().map(|s| s.to_string()),
    }
}

/// Length of the header section including the blank line that ends it (or the whole message
/// if it has no body).
fn header_section_len(message: &[u8]) -> usize {
    if message.starts_with(b"\r\n") {
        return 2;
    }
    memfind(message, b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(message.len())
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Is this header line (its first line) one that only we may write: any `X-Portcullis-*`, and
/// `Authentication-Results` claiming our host name as authserv-id (RFC 8601 §5)?
fn is_ours(line: &[u8], hostname: &str) -> bool {
    const PREFIX: &[u8] = b"x-portcullis-";
    const AR: &[u8] = b"authentication-results:";
    if line.len() >= PREFIX.len() && line[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        return true;
    }
    if line.len() >= AR.len() && line[..AR.len()].eq_ignore_ascii_case(AR) {
        let value = String::from_utf8_lossy(&line[AR.len()..]);
        let authserv_id = value
            .trim()
            .split([';', ' ', '\t', '\r'])
            .next()
            .unwrap_or("");
        return authserv_id.eq_ignore_ascii_case(hostname);
    }
    false
}

/// Removes from the header section every header only we may write (see `is_ours`), with its
/// continuation lines: nobody outside may forge them. Borrows when there is nothing to remove.
pub fn strip_own_headers<'m>(message: &'m [u8], hostname: &str) -> Cow<'m, [u8]> {
    let end = header_section_len(message);
    let headers = &message[..end];
    let has_own = headers
        .split(|b| *b == b'\n')
        .any(|line| is_ours(line, hostname));
    if !has_own {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    let mut skipping = false;
    let mut pos = 0;
    while pos < end {
        let line_end = headers[pos..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|i| pos + i + 1)
            .unwrap_or(end);
        let line = &headers[pos..line_end];
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            skipping = is_ours(line, hostname);
        }
        if !skipping {
            out.extend_from_slice(line);
        }
        pos = line_end;
    }
    out.extend_from_slice(&message[end..]);
    Cow::Owned(out)
}

/// Folds nothing and escapes nothing: callers pass values without CR/LF. This strips them anyway
/// so a header value from the wire can never inject a header line.
pub fn header_value(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_forged_headers_with_continuations() {
        let m = b"X-Portcullis-Attribution: tenant=evil;\r\n connector=\"x\"\r\nSubject: hi\r\nx-portcullis-direct-send: no\r\n\r\nX-Portcullis-Body: stays\r\n";
        let out = strip_own_headers(m, "mx.example");
        assert_eq!(
            &*out,
            b"Subject: hi\r\n\r\nX-Portcullis-Body: stays\r\n".as_slice()
        );
        assert!(matches!(
            strip_own_headers(b"Subject: x\r\n\r\nbody", "mx.example"),
            Cow::Borrowed(_)
        ));
        // Authentication-Results claiming our host name go; others stay.
        let m = b"Authentication-Results: MX.example;\r\n\tspf=pass\r\nAuthentication-Results: other.example; dkim=pass\r\n\r\nb";
        assert_eq!(
            &*strip_own_headers(m, "mx.example"),
            b"Authentication-Results: other.example; dkim=pass\r\n\r\nb".as_slice()
        );
    }

    #[test]
    fn facts() {
        let f = header_facts(b"From: \"Alice\" <Alice@Contoso.COM>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <m1@x>\r\n\r\nbody");
        assert_eq!(f.from.as_deref(), Some("Alice@Contoso.COM"));
        assert_eq!(f.from_domain.as_deref(), Some("contoso.com"));
        assert_eq!(f.subject.as_deref(), Some("café"));
        assert_eq!(f.message_id.as_deref(), Some("m1@x"));
        let none = header_facts(b"garbage without headers");
        assert!(none.from.is_none());
    }
}
