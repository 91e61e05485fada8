//! One command line (without its CRLF) → [`Command`] or the reply that refuses it.

use crate::address::{self, Address, ReversePath};
use crate::reply::{self, Reply};

/// MAIL FROM parameters (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: BodyType,
    pub smtputf8: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyType {
    #[default]
    SevenBit,
    EightBitMime,
}

/// A syntactically valid SMTP command. Sequence checks are the session's job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The EHLO argument: one token of printable ASCII.
    Ehlo(String),
    Helo(String),
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    Rcpt {
        to: Address,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    /// EXPN, BDAT, AUTH, TURN, ETRN: recognised, answered 502.
    NotImplemented,
}

/// Parses one command line given without its line ending. `smtputf8_ok` says whether the
/// current transaction's MAIL carried SMTPUTF8 (for RCPT; MAIL decides for itself).
pub fn parse(line: &[u8], smtputf8_ok: bool) -> Result<Command, Reply> {
    let verb_len = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let (verb, args) = line.split_at(verb_len);
    let verb = Verb::from_bytes(verb).ok_or(reply::COMMAND_UNRECOGNIZED)?;
    let args = match std::str::from_utf8(args) {
        Ok(args) => args.trim_matches([' ', '\t']),
        Err(_) => {
            return Err(match verb {
                Verb::Mail => reply::BAD_SENDER_SYNTAX,
                Verb::Rcpt => reply::BAD_RECIPIENT_SYNTAX,
                Verb::Ehlo | Verb::Helo => reply::HELO_REQUIRES_DOMAIN,
                _ => reply::SYNTAX_ERROR_PARAMS,
            });
        }
    };
    let no_args = |command: Command| {
        if args.is_empty() {
            Ok(command)
        } else {
            Err(reply::SYNTAX_ERROR_PARAMS)
        }
    };
    match verb {
        Verb::Ehlo => helo_arg(args).map(Command::Ehlo),
        Verb::Helo => helo_arg(args).map(Command::Helo),
        Verb::Mail => parse_mail(args),
        Verb::Rcpt => parse_rcpt(args, smtputf8_ok),
        Verb::Data => no_args(Command::Data),
        Verb::Rset => no_args(Command::Rset),
        Verb::Quit => no_args(Command::Quit),
        Verb::StartTls => no_args(Command::StartTls),
        // RFC 5321 allows an argument to NOOP and HELP; it is ignored.
        Verb::Noop => Ok(Command::Noop),
        Verb::Help => Ok(Command::Help),
        Verb::Vrfy if args.is_empty() => Err(reply::SYNTAX_ERROR_PARAMS),
        Verb::Vrfy => Ok(Command::Vrfy),
        Verb::NotImplemented => Ok(Command::NotImplemented),
    }
}

#[derive(Clone, Copy)]
enum Verb {
    Ehlo,
    Helo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    NotImplemented,
}

impl Verb {
    fn from_bytes(verb: &[u8]) -> Option<Verb> {
        const VERBS: &[(&[u8], Verb)] = &[
            (b"EHLO", Verb::Ehlo),
            (b"HELO", Verb::Helo),
            (b"MAIL", Verb::Mail),
            (b"RCPT", Verb::Rcpt),
            (b"DATA", Verb::Data),
            (b"RSET", Verb::Rset),
            (b"NOOP", Verb::Noop),
            (b"QUIT", Verb::Quit),
            (b"VRFY", Verb::Vrfy),
            (b"HELP", Verb::Help),
            (b"STARTTLS", Verb::StartTls),
            (b"EXPN", Verb::NotImplemented),
            (b"BDAT", Verb::NotImplemented),
            (b"AUTH", Verb::NotImplemented),
            (b"TURN", Verb::NotImplemented),
            (b"ETRN", Verb::NotImplemented),
        ];
        VERBS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(verb))
            .map(|&(_, v)| v)
    }
}

/// Lenient like most MTAs: any single token of printable ASCII.
fn helo_arg(args: &str) -> Result<String, Reply> {
    if !args.is_empty() && args.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(args.to_string())
    } else {
        Err(reply::HELO_REQUIRES_DOMAIN)
    }
}

/// Strips a case-insensitive `prefix` (`FROM:` / `TO:`), then tolerates spaces before `<`.
fn strip_keyword<'a>(args: &'a str, prefix: &str) -> Option<&'a str> {
    let head = args.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| args[prefix.len()..].trim_start_matches(' '))
}

fn parse_mail(args: &str) -> Result<Command, Reply> {
    let path = strip_keyword(args, "FROM:").ok_or(reply::SYNTAX_ERROR_PARAMS)?;
    let (address, used) = address::parse_path(path, true).ok_or(reply::BAD_SENDER_SYNTAX)?;
    let params = parse_mail_params(&path[used..])?;
    let from = match address {
        None => ReversePath::Null,
        Some(a) if !a.is_ascii() && !params.smtputf8 => {
            return Err(reply::NON_ASCII_REQUIRES_SMTPUTF8);
        }
        Some(a) => ReversePath::Address(a),
    };
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(args: &str, smtputf8_ok: bool) -> Result<Command, Reply> {
    let path = strip_keyword(args, "TO:").ok_or(reply::SYNTAX_ERROR_PARAMS)?;
    let (address, used) = address::parse_path(path, false).ok_or(reply::BAD_RECIPIENT_SYNTAX)?;
    let to = address.ok_or(reply::BAD_RECIPIENT_SYNTAX)?;
    let rest = &path[used..];
    if !rest.is_empty() {
        // Parameters must be separated from the path; none are supported.
        return Err(if rest.starts_with(' ') {
            reply::UNSUPPORTED_PARAMETER
        } else {
            reply::BAD_RECIPIENT_SYNTAX
        });
    }
    if !to.is_ascii() && !smtputf8_ok {
        return Err(reply::NON_ASCII_REQUIRES_SMTPUTF8);
    }
    Ok(Command::Rcpt { to })
}

/// RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8; anything else or a repeat is 555.
fn parse_mail_params(rest: &str) -> Result<MailParams, Reply> {
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(reply::BAD_SENDER_SYNTAX);
    }
    let mut params = MailParams::default();
    let (mut seen_size, mut seen_body) = (false, false);
    for param in rest.split(' ').filter(|p| !p.is_empty()) {
        let (keyword, value) = match param.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (param, None),
        };
        if keyword.eq_ignore_ascii_case("SIZE") && !seen_size {
            seen_size = true;
            let value = value.unwrap_or("");
            if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(reply::SYNTAX_ERROR_PARAMS);
            }
            // 20 digits may overflow u64: saturate, it is "too big" either way.
            params.size = Some(value.parse().unwrap_or(u64::MAX));
        } else if keyword.eq_ignore_ascii_case("BODY") && !seen_body {
            seen_body = true;
            params.body = match value {
                Some(v) if v.eq_ignore_ascii_case("7BIT") => BodyType::SevenBit,
                Some(v) if v.eq_ignore_ascii_case("8BITMIME") => BodyType::EightBitMime,
                _ => return Err(reply::UNSUPPORTED_PARAMETER),
            };
        } else if keyword.eq_ignore_ascii_case("SMTPUTF8") && !params.smtputf8 && value.is_none() {
            params.smtputf8 = true;
        } else {
            return Err(reply::UNSUPPORTED_PARAMETER);
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn mail(from: Option<&str>, size: Option<u64>, body: BodyType, smtputf8: bool) -> Command {
        Command::Mail {
            from: from.map_or(ReversePath::Null, |a| ReversePath::Address(addr(a))),
            params: MailParams {
                size,
                body,
                smtputf8,
            },
        }
    }

    /// (line, smtputf8_ok, expected)
    #[test]
    fn table() {
        use BodyType::*;
        let ok: Vec<(&str, bool, Command)> = vec![
            (
                "EHLO client.example",
                false,
                Command::Ehlo("client.example".into()),
            ),
            (
                "ehlo [192.0.2.1]",
                false,
                Command::Ehlo("[192.0.2.1]".into()),
            ),
            (
                "EhLo   spaced.example  ",
                false,
                Command::Ehlo("spaced.example".into()),
            ),
            ("HELO x", false, Command::Helo("x".into())),
            (
                "MAIL FROM:<a@b.example>",
                false,
                mail(Some("a@b.example"), None, SevenBit, false),
            ),
            (
                "mail from:<A@B.Example>",
                false,
                mail(Some("A@b.example"), None, SevenBit, false),
            ),
            (
                "MAIL FROM: <a@b.example>",
                false,
                mail(Some("a@b.example"), None, SevenBit, false),
            ),
            ("MAIL FROM:<>", false, mail(None, None, SevenBit, false)),
            (
                "MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8",
                false,
                mail(Some("a@b.example"), Some(1000), EightBitMime, true),
            ),
            (
                "MAIL FROM:<a@b.example>  size=0  body=7bit ",
                false,
                mail(Some("a@b.example"), Some(0), SevenBit, false),
            ),
            (
                "MAIL FROM:<a@b.example> SIZE=99999999999999999999",
                false,
                mail(Some("a@b.example"), Some(u64::MAX), SevenBit, false),
            ),
            (
                "MAIL FROM:<δ@b.example> SMTPUTF8",
                false,
                mail(Some("δ@b.example"), None, SevenBit, true),
            ),
            (
                "MAIL FROM:<@relay.example:a@b.example>",
                false,
                mail(Some("a@b.example"), None, SevenBit, false),
            ),
            (
                "RCPT TO:<x@y.example>",
                false,
                Command::Rcpt {
                    to: addr("x@y.example"),
                },
            ),
            (
                "rcpt to: <x@y.example>",
                false,
                Command::Rcpt {
                    to: addr("x@y.example"),
                },
            ),
            (
                "RCPT TO:<δ@y.example>",
                true,
                Command::Rcpt {
                    to: addr("δ@y.example"),
                },
            ),
            ("DATA", false, Command::Data),
            ("data  ", false, Command::Data),
            ("RSET", false, Command::Rset),
            ("NOOP", false, Command::Noop),
            ("NOOP anything at all", false, Command::Noop),
            ("QUIT", false, Command::Quit),
            ("VRFY postmaster", false, Command::Vrfy),
            ("HELP", false, Command::Help),
            ("HELP MAIL", false, Command::Help),
            ("STARTTLS", false, Command::StartTls),
            ("starttls", false, Command::StartTls),
            ("EXPN list", false, Command::NotImplemented),
            ("BDAT 100 LAST", false, Command::NotImplemented),
            ("AUTH PLAIN", false, Command::NotImplemented),
            ("TURN", false, Command::NotImplemented),
            ("ETRN example.com", false, Command::NotImplemented),
        ];
        for (line, utf8, expected) in ok {
            assert_eq!(parse(line.as_bytes(), utf8), Ok(expected), "{line:?}");
        }

        let bad: Vec<(&[u8], bool, Reply)> = vec![
            (b"", false, reply::COMMAND_UNRECOGNIZED),
            (b" NOOP", false, reply::COMMAND_UNRECOGNIZED),
            (b"NOOP\r", false, reply::COMMAND_UNRECOGNIZED),
            (b"FOO bar", false, reply::COMMAND_UNRECOGNIZED),
            (b"GET / HTTP/1.1", false, reply::COMMAND_UNRECOGNIZED),
            (b"\xff\xfe", false, reply::COMMAND_UNRECOGNIZED),
            (b"EHLO", false, reply::HELO_REQUIRES_DOMAIN),
            (b"EHLO   ", false, reply::HELO_REQUIRES_DOMAIN),
            (b"EHLO two words", false, reply::HELO_REQUIRES_DOMAIN),
            (b"HELO caf\xc3\xa9", false, reply::HELO_REQUIRES_DOMAIN),
            (b"HELO \xff", false, reply::HELO_REQUIRES_DOMAIN),
            (b"MAIL", false, reply::SYNTAX_ERROR_PARAMS),
            (b"MAIL TO:<a@b.example>", false, reply::SYNTAX_ERROR_PARAMS),
            (b"MAIL FROM:a@b.example", false, reply::BAD_SENDER_SYNTAX),
            (b"MAIL FROM:<a@b.example", false, reply::BAD_SENDER_SYNTAX),
            (
                b"MAIL FROM:<a b@b.example>",
                false,
                reply::BAD_SENDER_SYNTAX,
            ),
            (
                b"MAIL FROM:<a@b.example>SIZE=1",
                false,
                reply::BAD_SENDER_SYNTAX,
            ),
            (
                b"MAIL FROM:<\xff@b.example>",
                false,
                reply::BAD_SENDER_SYNTAX,
            ),
            (
                b"MAIL FROM:<a@b.example> SIZE",
                false,
                reply::SYNTAX_ERROR_PARAMS,
            ),
            (
                b"MAIL FROM:<a@b.example> SIZE=",
                false,
                reply::SYNTAX_ERROR_PARAMS,
            ),
            (
                b"MAIL FROM:<a@b.example> SIZE=12k",
                false,
                reply::SYNTAX_ERROR_PARAMS,
            ),
            (
                b"MAIL FROM:<a@b.example> SIZE=-1",
                false,
                reply::SYNTAX_ERROR_PARAMS,
            ),
            (
                b"MAIL FROM:<a@b.example> SIZE=1 SIZE=2",
                false,
                reply::UNSUPPORTED_PARAMETER,
            ),
            (
                b"MAIL FROM:<a@b.example> BODY=BINARYMIME",
                false,
                reply::UNSUPPORTED_PARAMETER,
            ),
            (
                b"MAIL FROM:<a@b.example> BODY",
                false,
                reply::UNSUPPORTED_PARAMETER,
            ),
            (
                b"MAIL FROM:<a@b.example> BODY=7BIT BODY=7BIT",
                false,
                reply::UNSUPPORTED_PARAMETER,
            ),
            (
                b"MAIL FROM:<a@b.example> SMTPUTF8 SMTPUTF8",
                false,
                reply::UNSUPPORTED_PARAMETER,
            ),
            (
                b"MAIL FROM:<a@b.example> SMTPUTF8=yes",
                false,
                reply::UNSUPPORTED_PARAMETER,
            ),
            (
                b"MAIL FROM:<a@b.example> AUTH=<>",
                false,
                reply::UNSUPPORTED_PARAMETER,
            ),
            (
                b"MAIL FROM:<a@b.example> RET=HDRS",
                false,
                reply::UNSUPPORTED_PARAMETER,
            ),
            (
                "MAIL FROM:<δ@b.example>".as_bytes(),
                true,
                reply::NON_ASCII_REQUIRES_SMTPUTF8,
            ),
            (
                "MAIL FROM:<a@bücher.example> SIZE=10".as_bytes(),
                true,
                reply::NON_ASCII_REQUIRES_SMTPUTF8,
            ),
            (b"RCPT", false, reply::SYNTAX_ERROR_PARAMS),
            (b"RCPT TO:", false, reply::BAD_RECIPIENT_SYNTAX),
            (b"RCPT TO:x@y.example", false, reply::BAD_RECIPIENT_SYNTAX),
            (b"RCPT TO:<>", false, reply::BAD_RECIPIENT_SYNTAX),
            (b"RCPT TO:<postmaster>", false, reply::BAD_RECIPIENT_SYNTAX),
            (
                b"RCPT TO:<x@y.example>junk",
                false,
                reply::BAD_RECIPIENT_SYNTAX,
            ),
            (
                b"RCPT TO:<x@y.example> NOTIFY=NEVER",
                false,
                reply::UNSUPPORTED_PARAMETER,
            ),
            (b"RCPT TO:<x@\xff>", false, reply::BAD_RECIPIENT_SYNTAX),
            (
                "RCPT TO:<δ@y.example>".as_bytes(),
                false,
                reply::NON_ASCII_REQUIRES_SMTPUTF8,
            ),
            (b"DATA now", false, reply::SYNTAX_ERROR_PARAMS),
            (b"RSET x", false, reply::SYNTAX_ERROR_PARAMS),
            (b"QUIT x", false, reply::SYNTAX_ERROR_PARAMS),
            (b"STARTTLS x", false, reply::SYNTAX_ERROR_PARAMS),
            (b"VRFY", false, reply::SYNTAX_ERROR_PARAMS),
            (b"NOOP \xff", false, reply::SYNTAX_ERROR_PARAMS),
        ];
        for (line, utf8, expected) in bad {
            assert_eq!(
                parse(line, utf8),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn path_length_limit() {
        let local = "l".repeat(64);
        let domain = format!("{}.example", "d".repeat(63));
        let line = format!("RCPT TO:<{local}@{domain}>");
        assert!(parse(line.as_bytes(), false).is_ok());
        let domain = [&"d".repeat(63)[..]; 3].join(".");
        let line = format!("RCPT TO:<{local}@{domain}>");
        assert_eq!(
            parse(line.as_bytes(), false),
            Err(reply::BAD_RECIPIENT_SYNTAX)
        );
    }
}
