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
    // RFC 5322 §4.5.8 (obsolete syntax, still read by parsers): white space may stand between
    // the field name and its colon, `Authentication-Results :` names the same field.
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return false;
    };
    let name = line[..colon].trim_ascii_end();
    if name.eq_ignore_ascii_case(&AR[..AR.len() - 1]) {
        let value = String::from_utf8_lossy(&line[colon + 1..]);
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
/// The client address each `Received:` header records, topmost first: one entry per header,
/// `None` where a header names no address (or does not parse), so a garbage header never lets
/// the one below it be read in its place.
pub fn received_clients(message: &[u8]) -> Vec<Option<std::net::IpAddr>> {
    let Some(parsed) = mail_parser::MessageParser::default().parse_headers(message) else {
        return Vec::new();
    };
    parsed
        .header_values(mail_parser::HeaderName::Received)
        .map(|v| {
            let r = v.as_received()?;
            r.from_ip().or(match r.from() {
                Some(mail_parser::Host::IpAddr(ip)) => Some(*ip),
                _ => None,
            })
        })
        .collect()
}

pub fn strip_own_headers<'m>(message: &'m [u8], hostname: &str) -> Cow<'m, [u8]> {
    filter_headers(message, |line| is_ours(line, hostname))
}

/// Removes every header field (with its continuation lines) whose first line `drop` selects.
/// Borrows when nothing is removed.
fn filter_headers(message: &[u8], drop: impl Fn(&[u8]) -> bool) -> Cow<'_, [u8]> {
    let end = header_section_len(message);
    let headers = &message[..end];
    if !headers.split(|b| *b == b'\n').any(&drop) {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    let mut skipping = false;
    for line in header_lines(headers) {
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            skipping = drop(line);
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&message[end..]);
    Cow::Owned(out)
}

/// The lines of a header section, each with its line ending.
fn header_lines(headers: &[u8]) -> impl Iterator<Item = &[u8]> {
    headers.split_inclusive(|b| *b == b'\n')
}

fn starts_with_name(line: &[u8], name: &str) -> bool {
    let n = name.len();
    line.len() > n && line[..n].eq_ignore_ascii_case(name.as_bytes()) && matches!(line[n], b':')
}

/// The header fields as (name, unfolded value), in order. Values are raw (not MIME-decoded).
pub fn header_fields(message: &[u8]) -> Vec<(String, String)> {
    let end = header_section_len(message);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in header_lines(&message[..end]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        if text.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push(' ');
                v.push_str(text.trim());
            }
        } else if let Some((name, value)) = text.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    fields
}

/// Header edits of mail-flow rules, applied in this order: removals, settings (replace any field
/// of that name), subject prefixes (first prefix outermost), SCL.
#[derive(Debug, Default)]
pub struct HeaderEdits<'a> {
    pub remove: &'a [String],
    pub set: &'a [(String, String)],
    pub prepend_subject: &'a [String],
    pub scl: Option<i8>,
}

pub fn edit_headers(message: &[u8], edits: &HeaderEdits<'_>) -> Vec<u8> {
    let mut names: Vec<&str> = edits.remove.iter().map(String::as_str).collect();
    names.extend(edits.set.iter().map(|(n, _)| n.as_str()));
    if edits.scl.is_some() {
        names.push("X-Portcullis-SCL");
    }
    let removed = filter_headers(message, |line| {
        names.iter().any(|n| starts_with_name(line, n))
    });
    let mut added = String::new();
    for (name, value) in edits.set {
        added.push_str(&format!("{name}: {}\r\n", header_value(value)));
    }
    if let Some(scl) = edits.scl {
        added.push_str(&format!("X-Portcullis-SCL: {scl}\r\n"));
    }
    let prefix: String = edits
        .prepend_subject
        .iter()
        .map(|p| header_value(p))
        .collect();
    let mut out = Vec::with_capacity(removed.len() + added.len() + prefix.len() + 16);
    out.extend_from_slice(added.as_bytes());
    if prefix.is_empty() {
        out.extend_from_slice(&removed);
        return out;
    }
    let end = header_section_len(&removed);
    let mut found = false;
    for line in header_lines(&removed[..end]) {
        if !found && starts_with_name(line, "Subject") {
            found = true;
            let value = &line[b"Subject:".len()..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            out.extend_from_slice(b"Subject: ");
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(value);
        } else if !found && (line == b"\r\n" || line == b"\n") {
            out.extend_from_slice(format!("Subject: {}\r\n", prefix.trim_end()).as_bytes());
            found = true;
            out.extend_from_slice(line);
        } else {
            out.extend_from_slice(line);
        }
    }
    if !found {
        out.extend_from_slice(format!("Subject: {}\r\n", prefix.trim_end()).as_bytes());
    }
    out.extend_from_slice(&removed[end..]);
    out
}

/// What an administrator may see of a quarantined message: the header section, a plain-text
/// preview (HTML converted to text, at most 4000 characters) and the attachments by name and size.
/// Nothing is rendered or executed; control characters are shown as `?`.
pub fn preview(message: &[u8]) -> (String, String, Vec<String>) {
    use mail_parser::MimeHeaders;
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_control() && !matches!(c, '\n' | '\t') {
                    if c == '\r' { '\r' } else { '?' }
                } else {
                    c
                }
            })
            .filter(|c| *c != '\r')
            .collect()
    };
    let end = header_section_len(message);
    let headers = clean(&String::from_utf8_lossy(&message[..end]));
    let Some(parsed) = mail_parser::MessageParser::default().parse(message) else {
        return (headers, String::new(), Vec::new());
    };
    let mut text: String = parsed
        .body_text(0)
        .map(|t| t.into_owned())
        .unwrap_or_default();
    if let Some((cut, _)) = text.char_indices().nth(4000) {
        text.truncate(cut);
        text.push_str("\n[…]");
    }
    let attachments = parsed
        .attachments()
        .map(|a| {
            format!(
                "{} ({} bytes)",
                a.attachment_name().unwrap_or("unnamed"),
                a.len()
            )
        })
        .collect();
    (headers, clean(&text), attachments)
}

/// Folds nothing and escapes nothing: callers pass values without control characters. This
/// replaces them (tab aside) anyway, so a value from the wire or typed by an admin can never
/// inject a header line or put a NUL into a message.
pub fn header_value(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_clients_one_per_header_top_first() {
        let m = b"Received: from out.filter.example (out.filter.example [203.0.113.10])\r\n\tby mx.contoso.com with ESMTPS id 1; Mon, 7 Dec 2026 10:00:00 +0000\r\nReceived: garbage that names nobody\r\nReceived: from [IPv6:2001:db8::7] (helo=sender.example)\r\n\tby in.filter.example with ESMTP; Mon, 7 Dec 2026 09:59:59 +0000\r\nReceived: from mail.fabrikam.example ([198.51.100.7]:41234 helo=x) by in.filter.example; Mon, 7 Dec 2026 09:59:58 +0000\r\nSubject: x\r\n\r\nbody\r\n";
        let got = received_clients(m);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], Some("203.0.113.10".parse().unwrap()));
        assert_eq!(got[1], None);
        assert_eq!(got[2], Some("2001:db8::7".parse().unwrap()));
        assert_eq!(got[3], Some("198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn strips_a_forged_authentication_results_with_space_before_the_colon() {
        // The fuzz target `message_headers` found it (fuzz/artifacts, CI smoke run).
        let m = b"Authentication-Results :mx.test.example; spf=pass\r\nSubject: x\r\n\r\nbody\r\n";
        let out = strip_own_headers(m, "mx.test.example");
        assert_eq!(&out[..], b"Subject: x\r\n\r\nbody\r\n");
        let other = b"Authentication-Results :other.example; spf=pass\r\n\r\n";
        assert_eq!(&strip_own_headers(other, "mx.test.example")[..], &other[..]);
    }

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
    fn header_edits() {
        let m = b"From: a@x\r\nSubject: Hello\r\nX-Old: 1\r\n folded\r\nX-Keep: 2\r\n\r\nbody\r\n";
        let fields = header_fields(m);
        assert_eq!(fields[2], ("X-Old".to_string(), "1 folded".to_string()));
        let set = vec![
            ("X-Tag".to_string(), "v".to_string()),
            ("X-Keep".to_string(), "3".to_string()),
        ];
        let out = edit_headers(
            m,
            &HeaderEdits {
                remove: &["x-old".to_string()],
                set: &set,
                prepend_subject: &["[EXT] ".to_string(), "[A] ".to_string()],
                scl: Some(5),
            },
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "X-Tag: v\r\nX-Keep: 3\r\nX-Portcullis-SCL: 5\r\nFrom: a@x\r\nSubject: [EXT] [A] Hello\r\n\r\nbody\r\n"
        );
        // No Subject: one is added; the body is never touched.
        let out = edit_headers(
            b"From: a@x\r\n\r\nSubject: body\r\n",
            &HeaderEdits {
                prepend_subject: &["[EXT]".to_string()],
                ..Default::default()
            },
        );
        assert_eq!(
            out,
            b"From: a@x\r\nSubject: [EXT]\r\n\r\nSubject: body\r\n".to_vec()
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
