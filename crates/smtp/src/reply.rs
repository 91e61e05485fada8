//! The reply type and THE one reply table: every reply text of the product lives here.
//!
//! Handlers never format reply text themselves; they pick a constant or call one of the
//! functions below (the ones that need the hostname or a trace id).

use std::borrow::Cow;
use std::fmt;

/// One SMTP reply: code, optional RFC 3463 enhanced status, human text.
///
/// A `'\n'` in `text` makes a multi-line reply. Control characters (including `'\r'`) are
/// dropped on output, so no reply text can inject extra reply lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `"5.7.68"` (RFC 2034); `None` on greeting, EHLO and 354.
    pub status: Option<&'static str>,
    pub text: Cow<'static, str>,
}

impl Reply {
    /// Const constructor for the table; an empty `status` means "no enhanced status code".
    pub const fn new(code: u16, status: &'static str, text: &'static str) -> Reply {
        Reply {
            code,
            status: if status.is_empty() {
                None
            } else {
                Some(status)
            },
            text: Cow::Borrowed(text),
        }
    }

    /// A reply whose text is built at run time; an empty `status` means none.
    pub fn dynamic(code: u16, status: &'static str, text: String) -> Reply {
        Reply {
            code,
            status: if status.is_empty() {
                None
            } else {
                Some(status)
            },
            text: Cow::Owned(text),
        }
    }

    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// Appends the wire form: one `code[-| ][status ]text\r\n` line per `'\n'`-separated line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        // A code outside 100..=999 would break the three-digit wire format; clamp it to a
        // plausible value instead of panicking or writing garbage.
        let code = if (100..1000).contains(&self.code) {
            self.code
        } else {
            451
        };
        let mut lines = self.text.split('\n').peekable();
        while let Some(line) = lines.next() {
            let last = lines.peek().is_none();
            let has_text = if may_hold_control(line) {
                line.chars().any(|c| !c.is_control())
            } else {
                !line.is_empty()
            };
            out.extend_from_slice(&[
                b'0' + (code / 100) as u8,
                b'0' + (code / 10 % 10) as u8,
                b'0' + (code % 10) as u8,
            ]);
            if !last {
                out.push(b'-');
            } else if self.status.is_some() || has_text {
                out.push(b' ');
            }
            if let Some(status) = self.status {
                push_clean(out, status);
                if has_text {
                    out.push(b' ');
                }
            }
            if has_text {
                push_clean(out, line);
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a `String` (handy for logs and tests).
    pub fn to_wire(&self) -> String {
        let mut out = Vec::with_capacity(self.text.len() + 16);
        self.write_to(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Whether `s` may hold a control character (`char::is_control`: C0, DEL, C1): a byte scan that
/// is false for almost every text, so the char-by-char filtering runs only where it can matter.
/// C1 controls (U+0080..U+009F) are encoded with the lead byte 0xC2.
fn may_hold_control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2)
}

fn push_clean(out: &mut Vec<u8>, s: &str) {
    if !may_hold_control(s) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let mut buf = [0u8; 4];
    for c in s.chars().filter(|c| !c.is_control()) {
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

/// Single line: `"550 5.7.68 TenantInboundAttribution; ..."`, the lines of a multi-line
/// reply joined by `"; "`.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(status) = self.status {
            write!(f, " {status}")?;
        }
        for (i, line) in self.text.split('\n').enumerate() {
            f.write_str(if i == 0 { " " } else { "; " })?;
            if !may_hold_control(line) {
                f.write_str(line)?;
                continue;
            }
            // Runs between control characters (which are left out), not char by char.
            for run in line.split(char::is_control) {
                f.write_str(run)?;
            }
        }
        Ok(())
    }
}

// ---- 2xx / 3xx ----------------------------------------------------------------------------

/// NOOP, RSET.
pub const OK: Reply = Reply::new(250, "2.0.0", "OK");
pub const SENDER_OK: Reply = Reply::new(250, "2.1.0", "Sender OK");
pub const RECIPIENT_OK: Reply = Reply::new(250, "2.1.5", "Recipient OK");
pub const CANNOT_VRFY: Reply = Reply::new(
    252,
    "2.5.2",
    "Cannot VRFY user, but will accept message and attempt delivery",
);
pub const HELP: Reply = Reply::new(214, "2.0.0", "See RFC 5321");
pub const START_MAIL_INPUT: Reply = Reply::new(354, "", "Start mail input; end with <CRLF>.<CRLF>");
pub const READY_TO_START_TLS: Reply = Reply::new(220, "2.0.0", "Ready to start TLS");

/// `220 <host> ESMTP Portcullis` (the banner carries no enhanced status code).
pub fn greeting(host: &str) -> Reply {
    Reply::dynamic(220, "", format!("{host} ESMTP Portcullis"))
}

/// QUIT.
pub fn closing(host: &str) -> Reply {
    Reply::dynamic(221, "2.0.0", format!("{host} closing connection"))
}

/// The message is durable (only ever sent after fsync).
pub fn queued(trace_id: &str) -> Reply {
    Reply::dynamic(250, "2.6.0", format!("Queued as {trace_id}"))
}

/// HELO: `250 <host>`.
pub fn helo(host: &str) -> Reply {
    Reply::dynamic(250, "", host.to_string())
}

/// EHLO: greeting line then one line per extension; STARTTLS only when `starttls`.
pub fn ehlo(host: &str, helo_arg: &str, max_message_size: usize, starttls: bool) -> Reply {
    let mut text = format!(
        "{host} Hello {helo_arg}\nPIPELINING\nSIZE {max_message_size}\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES"
    );
    if starttls {
        text.push_str("\nSTARTTLS");
    }
    Reply::dynamic(250, "", text)
}

// ---- 5xx syntax and sequence --------------------------------------------------------------

pub const COMMAND_UNRECOGNIZED: Reply =
    Reply::new(500, "5.5.2", "Syntax error, command unrecognized");
pub const LINE_TOO_LONG: Reply = Reply::new(500, "5.5.2", "Line too long");
pub const SYNTAX_ERROR_PARAMS: Reply =
    Reply::new(501, "5.5.4", "Syntax error in parameters or arguments");
pub const BAD_SENDER_SYNTAX: Reply = Reply::new(501, "5.1.7", "Bad sender address syntax");
pub const BAD_RECIPIENT_SYNTAX: Reply = Reply::new(501, "5.1.3", "Bad recipient address syntax");
pub const HELO_REQUIRES_DOMAIN: Reply = Reply::new(
    501,
    "5.5.4",
    "HELO/EHLO requires a domain or address literal",
);
/// EXPN, BDAT, TURN, ETRN, AUTH; STARTTLS when not offered.
pub const NOT_IMPLEMENTED: Reply = Reply::new(502, "5.5.1", "Command not implemented");
pub const BAD_SEQUENCE: Reply = Reply::new(503, "5.5.1", "Bad sequence of commands");
pub const SEND_HELO_FIRST: Reply = Reply::new(503, "5.5.1", "Send EHLO/HELO first");
pub const SENDER_ALREADY_SPECIFIED: Reply = Reply::new(503, "5.5.1", "Sender already specified");
pub const NEED_MAIL_BEFORE_RCPT: Reply = Reply::new(503, "5.5.1", "Need MAIL before RCPT");
pub const NEED_MAIL_BEFORE_DATA: Reply = Reply::new(503, "5.5.1", "Need MAIL before DATA");
pub const TLS_ALREADY_ACTIVE: Reply = Reply::new(503, "5.5.1", "TLS already active");
/// DATA with a transaction but no accepted recipient.
pub const NO_VALID_RECIPIENTS: Reply = Reply::new(554, "5.5.1", "No valid recipients");
pub const UNSUPPORTED_PARAMETER: Reply = Reply::new(555, "5.5.4", "Unsupported parameter");
pub const NON_ASCII_REQUIRES_SMTPUTF8: Reply =
    Reply::new(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");

// ---- limits and message refusals ----------------------------------------------------------

pub const MESSAGE_TOO_BIG: Reply = Reply::new(
    552,
    "5.3.4",
    "Message size exceeds fixed maximum message size",
);
pub const TOO_MANY_RECIPIENTS: Reply = Reply::new(452, "4.5.3", "Too many recipients");
/// A bare CR or bare LF was found in the message data (SMTP smuggling defence).
pub const BARE_LINE_ENDING: Reply = Reply::new(
    554,
    "5.6.0",
    "Message refused: bare CR or LF in message data (lines must end with CRLF)",
);
/// A NUL byte was found in the message data: never relayed (RFC 5321 §4.5.2, RFC 6152).
pub const NUL_IN_DATA: Reply = Reply::new(
    554,
    "5.6.0",
    "Message refused: NUL character in message data",
);
pub const TEMPORARY_ERROR: Reply = Reply::new(
    451,
    "4.3.0",
    "Temporary server error, please try again later",
);

pub fn too_many_errors(host: &str) -> Reply {
    Reply::dynamic(
        421,
        "4.7.0",
        format!("{host} Too many errors, closing connection"),
    )
}

pub fn too_many_commands(host: &str) -> Reply {
    Reply::dynamic(
        421,
        "4.7.0",
        format!("{host} Too many commands, closing connection"),
    )
}

pub fn idle_timeout(host: &str) -> Reply {
    Reply::dynamic(
        421,
        "4.4.2",
        format!("{host} Idle timeout, closing connection"),
    )
}

/// `[smtp] command_timeout`: a command line did not arrive whole in time (a client trickling
/// bytes keeps the idle timer from firing, never this one).
pub fn command_timeout(host: &str) -> Reply {
    Reply::dynamic(
        421,
        "4.4.2",
        format!("{host} Command timeout, closing connection"),
    )
}

/// `[smtp] data_timeout`: the message data did not arrive whole in time.
pub fn data_timeout(host: &str) -> Reply {
    Reply::dynamic(
        421,
        "4.4.2",
        format!("{host} Message data timeout, closing connection"),
    )
}

/// `[smtp] session_timeout`: the session lasted longer than any client needs.
pub fn session_timeout(host: &str) -> Reply {
    Reply::dynamic(
        421,
        "4.4.2",
        format!("{host} Session time limit reached, closing connection"),
    )
}

pub fn shutting_down(host: &str) -> Reply {
    Reply::dynamic(
        421,
        "4.3.2",
        format!("{host} Service shutting down, closing connection"),
    )
}

pub fn too_many_connections(host: &str) -> Reply {
    Reply::dynamic(
        421,
        "4.7.0",
        format!("{host} Too many connections, try again later"),
    )
}

pub fn too_many_connections_from_address(host: &str) -> Reply {
    Reply::dynamic(
        421,
        "4.7.0",
        format!("{host} Too many connections from your address, try again later"),
    )
}

pub fn too_many_connections_from_network(host: &str) -> Reply {
    Reply::dynamic(
        421,
        "4.7.0",
        format!("{host} Too many connections from your network, try again later"),
    )
}

// ---- policy refusals (used by the gateway's one verdict -> reply function) ----------------

/// §2 row 1: the recipient domain belongs to no tenant.
pub const RELAY_ACCESS_DENIED: Reply =
    Reply::new(550, "5.7.64", "TenantAttribution; Relay Access Denied");
/// §2 row 2: a partner connector with RestrictDomainsTo* matched and the peer does not satisfy it.
pub const PARTNER_CONNECTOR_RESTRICTED: Reply = Reply::new(
    550,
    "5.7.51",
    "TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set",
);
/// §2 row 3: anonymous mail claiming one of the tenant's accepted domains.
pub const DIRECT_SEND_NOT_ALLOWED: Reply = Reply::new(
    550,
    "5.7.68",
    "TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources",
);
/// The queue is full or the spool's disk nearly is: new mail waits (RFC 3463 X.3.1).
pub const INSUFFICIENT_STORAGE: Reply = Reply::new(
    452,
    "4.3.1",
    "Insufficient system storage, please try again later",
);
/// SPEC §4: DMARC `p=reject` failure while the tenant honours DMARC.
pub fn dmarc_reject(domain: &str) -> Reply {
    Reply::dynamic(
        550,
        "5.7.509",
        format!(
            "Access denied, sending domain {} does not pass DMARC verification and has a DMARC policy of reject",
            domain.replace(|c: char| c.is_control() || c == ' ', "")
        ),
    )
}
/// SPEC §5: a mail-flow rule's reject action, `550 <code> <text>`. The text is the
/// administrator's: non-ASCII characters become `?` (replies are ASCII without SMTPUTF8) and long
/// texts are wrapped into a multi-line reply of at most ~400 octets per line (RFC 5321 §4.5.3.1.5).
pub fn rule_reject(code: &str, text: &str) -> Reply {
    let ascii: String = text
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in ascii.split(' ') {
        if !line.is_empty() && line.len() + 1 + word.len() > 400 {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.len() > 400 {
            let rest = line.split_off(400);
            lines.push(std::mem::replace(&mut line, rest));
        }
    }
    lines.push(line);
    let code: String = code
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let text = lines
        .iter()
        .map(|l| format!("{code} {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    Reply::dynamic(550, "", text)
}

/// SPEC §4: SPF could not be evaluated (DNS time-out or SERVFAIL): defer, never reject (RFC 7372).
pub const SPF_TEMP_ERROR: Reply = Reply::new(
    451,
    "4.7.24",
    "SPF validation error (temporary DNS failure), please try again later",
);
/// SPEC §4: DKIM, ARC or DMARC could not be evaluated because of a DNS failure: defer.
pub const AUTH_TEMP_ERROR: Reply = Reply::new(
    451,
    "4.7.0",
    "Temporary failure of email authentication (DNS), please try again later",
);
/// Not used yet (no connector requires TLS before MAIL); kept for the table.
/// Recipient validation: not a known address of the tenant (Exchange's Directory-Based Edge
/// Blocking answers with these words).
pub const UNKNOWN_RECIPIENT: Reply =
    Reply::new(550, "5.4.1", "Recipient address rejected: Access denied");
/// Recipient validation could not ask the mailbox server (never a 5xx: nothing is known).
pub const RECIPIENT_UNVERIFIED: Reply = Reply::new(
    450,
    "4.4.3",
    "Recipient address verification unavailable, try again later",
);
/// More unknown recipients in one session than `[smtp] max_unknown_recipients`.
pub fn too_many_unknown_recipients(host: &str) -> Reply {
    Reply::dynamic(
        421,
        "4.7.0",
        format!("{host} Too many unknown recipients, closing connection"),
    )
}
pub const MUST_ISSUE_STARTTLS_FIRST: Reply =
    Reply::new(530, "5.7.10", "Must issue a STARTTLS command first");

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry of the table with its exact wire form.
    #[test]
    fn table_wire_forms() {
        let h = "mx.example";
        let table: Vec<(Reply, &str)> = vec![
            (greeting(h), "220 mx.example ESMTP Portcullis\r\n"),
            (closing(h), "221 2.0.0 mx.example closing connection\r\n"),
            (OK, "250 2.0.0 OK\r\n"),
            (SENDER_OK, "250 2.1.0 Sender OK\r\n"),
            (RECIPIENT_OK, "250 2.1.5 Recipient OK\r\n"),
            (queued("T1"), "250 2.6.0 Queued as T1\r\n"),
            (
                CANNOT_VRFY,
                "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n",
            ),
            (HELP, "214 2.0.0 See RFC 5321\r\n"),
            (
                START_MAIL_INPUT,
                "354 Start mail input; end with <CRLF>.<CRLF>\r\n",
            ),
            (READY_TO_START_TLS, "220 2.0.0 Ready to start TLS\r\n"),
            (helo(h), "250 mx.example\r\n"),
            (
                ehlo(h, "client.example", 26214400, true),
                "250-mx.example Hello client.example\r\n250-PIPELINING\r\n250-SIZE 26214400\r\n\
                 250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n",
            ),
            (
                ehlo(h, "[192.0.2.1]", 1000, false),
                "250-mx.example Hello [192.0.2.1]\r\n250-PIPELINING\r\n250-SIZE 1000\r\n\
                 250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n",
            ),
            (
                COMMAND_UNRECOGNIZED,
                "500 5.5.2 Syntax error, command unrecognized\r\n",
            ),
            (LINE_TOO_LONG, "500 5.5.2 Line too long\r\n"),
            (
                SYNTAX_ERROR_PARAMS,
                "501 5.5.4 Syntax error in parameters or arguments\r\n",
            ),
            (BAD_SENDER_SYNTAX, "501 5.1.7 Bad sender address syntax\r\n"),
            (
                BAD_RECIPIENT_SYNTAX,
                "501 5.1.3 Bad recipient address syntax\r\n",
            ),
            (
                HELO_REQUIRES_DOMAIN,
                "501 5.5.4 HELO/EHLO requires a domain or address literal\r\n",
            ),
            (NOT_IMPLEMENTED, "502 5.5.1 Command not implemented\r\n"),
            (BAD_SEQUENCE, "503 5.5.1 Bad sequence of commands\r\n"),
            (SEND_HELO_FIRST, "503 5.5.1 Send EHLO/HELO first\r\n"),
            (
                SENDER_ALREADY_SPECIFIED,
                "503 5.5.1 Sender already specified\r\n",
            ),
            (NEED_MAIL_BEFORE_RCPT, "503 5.5.1 Need MAIL before RCPT\r\n"),
            (NEED_MAIL_BEFORE_DATA, "503 5.5.1 Need MAIL before DATA\r\n"),
            (TLS_ALREADY_ACTIVE, "503 5.5.1 TLS already active\r\n"),
            (NO_VALID_RECIPIENTS, "554 5.5.1 No valid recipients\r\n"),
            (UNSUPPORTED_PARAMETER, "555 5.5.4 Unsupported parameter\r\n"),
            (
                NON_ASCII_REQUIRES_SMTPUTF8,
                "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n",
            ),
            (
                MESSAGE_TOO_BIG,
                "552 5.3.4 Message size exceeds fixed maximum message size\r\n",
            ),
            (TOO_MANY_RECIPIENTS, "452 4.5.3 Too many recipients\r\n"),
            (
                BARE_LINE_ENDING,
                "554 5.6.0 Message refused: bare CR or LF in message data (lines must end with CRLF)\r\n",
            ),
            (
                TEMPORARY_ERROR,
                "451 4.3.0 Temporary server error, please try again later\r\n",
            ),
            (
                too_many_errors(h),
                "421 4.7.0 mx.example Too many errors, closing connection\r\n",
            ),
            (
                too_many_commands(h),
                "421 4.7.0 mx.example Too many commands, closing connection\r\n",
            ),
            (
                idle_timeout(h),
                "421 4.4.2 mx.example Idle timeout, closing connection\r\n",
            ),
            (
                shutting_down(h),
                "421 4.3.2 mx.example Service shutting down, closing connection\r\n",
            ),
            (
                too_many_connections(h),
                "421 4.7.0 mx.example Too many connections, try again later\r\n",
            ),
            (
                too_many_connections_from_address(h),
                "421 4.7.0 mx.example Too many connections from your address, try again later\r\n",
            ),
            (
                RELAY_ACCESS_DENIED,
                "550 5.7.64 TenantAttribution; Relay Access Denied\r\n",
            ),
            (
                PARTNER_CONNECTOR_RESTRICTED,
                "550 5.7.51 TenantInboundAttribution; There is a partner connector configured that \
                 matched the message's recipient domain. The connector had either the \
                 RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set\r\n",
            ),
            (
                DIRECT_SEND_NOT_ALLOWED,
                "550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this \
                 organization from unauthorized sources\r\n",
            ),
            (
                dmarc_reject("contoso.com"),
                "550 5.7.509 Access denied, sending domain contoso.com does not pass DMARC \
                 verification and has a DMARC policy of reject\r\n",
            ),
            (
                rule_reject("5.7.900", "Not from outside, please"),
                "550 5.7.900 Not from outside, please\r\n",
            ),
            (rule_reject("5.7.1", "caf\u{e9}"), "550 5.7.1 caf?\r\n"),
            (
                INSUFFICIENT_STORAGE,
                "452 4.3.1 Insufficient system storage, please try again later\r\n",
            ),
            (
                SPF_TEMP_ERROR,
                "451 4.7.24 SPF validation error (temporary DNS failure), please try again later\r\n",
            ),
            (
                AUTH_TEMP_ERROR,
                "451 4.7.0 Temporary failure of email authentication (DNS), please try again later\r\n",
            ),
            (
                MUST_ISSUE_STARTTLS_FIRST,
                "530 5.7.10 Must issue a STARTTLS command first\r\n",
            ),
        ];
        for (reply, wire) in table {
            assert_eq!(reply.to_wire(), wire, "{reply:?}");
            // Display is the same text on one line without CRLF.
            if !reply.text.contains('\n') {
                assert_eq!(format!("{reply}\r\n"), wire);
            }
        }
    }

    #[test]
    fn multiline_with_status_prefixes_every_line() {
        let r = Reply::dynamic(250, "2.0.0", "a\nb\nc".into());
        assert_eq!(r.to_wire(), "250-2.0.0 a\r\n250-2.0.0 b\r\n250 2.0.0 c\r\n");
        assert_eq!(r.to_string(), "250 2.0.0 a; b; c");
    }

    #[test]
    fn control_characters_cannot_inject_lines() {
        let r = Reply::dynamic(250, "2.6.0", "Queued as x\r250 fake\u{0}\t".into());
        assert_eq!(r.to_wire(), "250 2.6.0 Queued as x250 fake\r\n");
        let r = Reply::dynamic(550, "", "evil\r\n250 ok".into());
        // The '\n' splits lines but each still carries the real code.
        assert_eq!(r.to_wire(), "550-evil\r\n550 250 ok\r\n");
        assert_eq!(r.to_string(), "550 evil; 250 ok");
        // C1 controls (NEL, CSI) too; other characters of the Latin-1 block stay.
        let r = Reply::dynamic(550, "", "a\u{85}b\u{9b}c \u{a0}d é".into());
        assert_eq!(r.to_wire(), "550 abc \u{a0}d é\r\n");
        assert_eq!(r.to_string(), "550 abc \u{a0}d é");
        // A line of nothing but controls is a line without text.
        let r = Reply::dynamic(550, "5.0.0", "\u{85}\nx".into());
        assert_eq!(
            r.to_wire(),
            Reply::dynamic(550, "5.0.0", "\nx".into()).to_wire()
        );
    }

    #[test]
    fn empty_text_and_odd_codes() {
        assert_eq!(Reply::new(250, "", "").to_wire(), "250\r\n");
        assert_eq!(Reply::new(250, "2.0.0", "").to_wire(), "250 2.0.0\r\n");
        assert_eq!(Reply::new(7, "", "x").to_wire(), "451 x\r\n");
        assert_eq!(Reply::new(65535, "", "x").to_wire(), "451 x\r\n");
    }

    #[test]
    fn classes() {
        assert!(OK.is_positive() && !OK.is_transient() && !OK.is_permanent());
        assert!(START_MAIL_INPUT.is_positive());
        assert!(TOO_MANY_RECIPIENTS.is_transient() && !TOO_MANY_RECIPIENTS.is_positive());
        assert!(DIRECT_SEND_NOT_ALLOWED.is_permanent());
    }
}

#[cfg(test)]
mod rule_reject_tests {
    use super::*;

    #[test]
    fn long_texts_wrap_into_short_lines() {
        let text = "word ".repeat(200);
        let wire = rule_reject("5.7.950", text.trim()).to_wire();
        let lines: Vec<&str> = wire.trim_end().split("\r\n").collect();
        assert!(lines.len() >= 3, "{wire}");
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            assert!(l.starts_with(&format!("550{sep}5.7.950 ")), "{l}");
            assert!(l.len() <= 512, "{}", l.len());
        }
    }
}
