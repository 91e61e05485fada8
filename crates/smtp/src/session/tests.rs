//! Transcript tests: SMTP dialogues as text, run through one `check` helper.
//!
//! Transcript lines:
//! - `C: text`  client sends `text` + CRLF (escapes `\r`, `\n`, `\\`, `\xHH` allowed)
//! - `R: text`  client sends `text` raw, no CRLF appended
//! - `A: KEY 550 5.7.68 text`  the next `Decide` for KEY (`MAIL`, `DATA` or the recipient
//!   address of an RCPT) is answered with this reply instead of the default (Mail →
//!   `250 2.1.0`, Rcpt → `250 2.1.5`, Data → `250 2.6.0 Queued as T1`)
//! - `S: prefix`  the next reply line (wire form without CRLF) starts with `prefix`;
//!   `S: <close>` / `S: <starttls>` expect those steps; `S: ...` skips the rest of a
//!   multi-line reply.
//!
//! Consecutive client lines are fed together (pipelining). `check` runs the transcript twice:
//! all input of a batch in one `feed`, and byte by byte; both must give the same output.

use super::*;
use crate::command::BodyType;

fn test_config() -> SessionConfig {
    SessionConfig {
        hostname: "mx.test".into(),
        max_message_size: 10_000,
        max_recipients: 5,
        ..SessionConfig::default()
    }
}

struct Harness {
    session: Session,
    /// (MAIL | DATA | recipient address, reply)
    overrides: Vec<(String, Reply)>,
    closed: bool,
    /// Reply lines (wire form without CRLF), `<close>`, `<starttls>`.
    out: Vec<String>,
    decided: Vec<Stage>,
}

impl Harness {
    fn new(config: SessionConfig) -> Harness {
        Harness {
            session: Session::new(Arc::new(config)),
            overrides: Vec::new(),
            closed: false,
            out: Vec::new(),
            decided: Vec::new(),
        }
    }

    /// Steps until the session wants input or is closed.
    fn drive(&mut self) {
        for _ in 0..100_000 {
            match self.session.step() {
                Step::Reply(r) => {
                    let mut wire = Vec::new();
                    r.write_to(&mut wire);
                    let wire = String::from_utf8(wire).unwrap();
                    assert!(wire.ends_with("\r\n"));
                    self.out
                        .extend(wire.split_terminator("\r\n").map(str::to_string));
                }
                Step::NeedInput => return,
                Step::StartTls => {
                    self.out.push("<starttls>".into());
                    self.session.tls_established();
                }
                Step::Decide(stage) => {
                    let (key, default) = match &stage {
                        Stage::Mail { .. } => ("MAIL".to_string(), reply::SENDER_OK),
                        Stage::Rcpt { to } => (to.to_string(), reply::RECIPIENT_OK),
                        Stage::Data { .. } => ("DATA".to_string(), reply::queued("T1")),
                    };
                    let reply = match self.overrides.iter().position(|(k, _)| *k == key) {
                        Some(i) => self.overrides.remove(i).1,
                        None => default,
                    };
                    self.decided.push(stage);
                    self.session.answer(reply);
                }
                Step::Close => {
                    self.out.push("<close>".into());
                    self.closed = true;
                    return;
                }
            }
        }
        panic!("session did not settle");
    }

    fn send(&mut self, input: &[u8], bytewise: bool) {
        if self.closed {
            return;
        }
        if bytewise {
            for b in input {
                if self.closed {
                    return;
                }
                self.session.feed(std::slice::from_ref(b));
                self.drive();
            }
        } else {
            self.session.feed(input);
            self.drive();
        }
    }
}

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).unwrap());
            }
            other => panic!("bad escape {other:?}"),
        }
    }
    out
}

fn parse_reply(s: &str) -> Reply {
    let mut parts = s.splitn(3, ' ');
    let code = parts.next().unwrap().parse().unwrap();
    let status: &'static str = Box::leak(parts.next().unwrap_or("").to_string().into_boxed_str());
    Reply::dynamic(code, status, parts.next().unwrap_or("").to_string())
}

fn run(config: SessionConfig, transcript: &str, bytewise: bool) -> Harness {
    let mut h = Harness::new(config);
    let mut pending: Vec<u8> = Vec::new();
    let mut seen = 0;
    for (n, line) in transcript.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (tag, rest) = line.split_at(2.min(line.len()));
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        match tag {
            "C:" | "R:" => {
                assert_eq!(
                    seen,
                    h.out.len(),
                    "line {}: unexpected output before next input: {:?}",
                    n + 1,
                    &h.out[seen..]
                );
                pending.extend(unescape(rest));
                if tag == "C:" {
                    pending.extend_from_slice(b"\r\n");
                }
            }
            "A:" => {
                let (key, reply) = rest.split_once(' ').unwrap();
                h.overrides.push((key.to_string(), parse_reply(reply)));
            }
            "S:" => {
                if !pending.is_empty() {
                    h.send(&std::mem::take(&mut pending), bytewise);
                }
                if rest == "..." {
                    while h
                        .out
                        .get(seen)
                        .is_some_and(|l| l.as_bytes().get(3) == Some(&b'-'))
                    {
                        seen += 1;
                    }
                    seen += 1;
                    continue;
                }
                let got = h.out.get(seen).unwrap_or_else(|| {
                    panic!(
                        "line {}: expected {rest:?}, got nothing; all: {:?}",
                        n + 1,
                        h.out
                    )
                });
                assert!(
                    got.starts_with(rest),
                    "line {} (bytewise={bytewise}): expected {rest:?}, got {got:?}; all: {:#?}",
                    n + 1,
                    h.out
                );
                seen += 1;
            }
            _ => panic!("line {}: bad transcript line {line:?}", n + 1),
        }
    }
    if !pending.is_empty() {
        h.send(&pending, bytewise);
    }
    assert_eq!(
        seen,
        h.out.len(),
        "unexpected trailing output: {:?}",
        &h.out[seen..]
    );
    h
}

/// Runs the transcript fed per batch and byte by byte; returns the per-batch run.
fn check_with(config: SessionConfig, transcript: &str) -> Harness {
    let whole = run(config.clone(), transcript, false);
    let bytewise = run(config, transcript, true);
    assert_eq!(whole.out, bytewise.out);
    assert_eq!(whole.decided, bytewise.decided);
    whole
}

fn check(transcript: &str) -> Harness {
    check_with(test_config(), transcript)
}

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

const EHLO: &str = "C: EHLO client.example\nS: 250-mx.test Hello client.example\nS: ...";

#[test]
fn greeting() {
    let s = Session::new(Arc::new(test_config()));
    assert_eq!(s.greeting().to_wire(), "220 mx.test ESMTP Portcullis\r\n");
}

#[test]
fn full_transaction() {
    let mut h = check(
        "C: EHLO client.example
         S: 250-mx.test Hello client.example
         S: 250-PIPELINING
         S: 250-SIZE 10000
         S: 250-8BITMIME
         S: 250-SMTPUTF8
         S: 250-ENHANCEDSTATUSCODES
         S: 250 STARTTLS
         C: MAIL FROM:<alice@a.example> SIZE=100 BODY=8BITMIME
         S: 250 2.1.0 Sender OK
         C: RCPT TO:<bob@B.example>
         S: 250 2.1.5 Recipient OK
         C: RCPT TO:<carol@b.example>
         S: 250 2.1.5 Recipient OK
         C: DATA
         S: 354 Start mail input; end with <CRLF>.<CRLF>
         C: Subject: hi
         C:
         C: hello
         C: ..dot
         C: .
         S: 250 2.6.0 Queued as T1
         C: QUIT
         S: 221 2.0.0 mx.test closing connection
         S: <close>",
    );
    let params = MailParams {
        size: Some(100),
        body: BodyType::EightBitMime,
        smtputf8: false,
    };
    assert_eq!(
        h.decided,
        vec![
            Stage::Mail {
                from: ReversePath::Address(addr("alice@a.example")),
                params
            },
            Stage::Rcpt {
                to: addr("bob@b.example")
            },
            Stage::Rcpt {
                to: addr("carol@b.example")
            },
            Stage::Data {
                message: b"Subject: hi\r\n\r\nhello\r\n.dot\r\n".to_vec()
            },
        ]
    );
    assert_eq!(h.session.helo(), Some("client.example"));
    assert_eq!(h.session.step(), Step::Close);
}

#[test]
fn pipelining_in_one_feed() {
    let h = check(&format!(
        "{EHLO}
         C: MAIL FROM:<a@a.example>
         C: RCPT TO:<b@b.example>
         A: c@b.example 550 5.7.68 TenantInboundAttribution; Direct Send not allowed
         C: RCPT TO:<c@b.example>
         C: RCPT TO:<d@b.example>
         C: DATA
         C: body
         C: .
         C: MAIL FROM:<>
         C: RCPT TO:<b@b.example>
         C: DATA
         C: second
         C: .
         C: QUIT
         S: 250 2.1.0
         S: 250 2.1.5
         S: 550 5.7.68
         S: 250 2.1.5
         S: 354
         S: 250 2.6.0 Queued as T1
         S: 250 2.1.0
         S: 250 2.1.5
         S: 354
         S: 250 2.6.0
         S: 221 2.0.0
         S: <close>"
    ));
    let messages: Vec<_> = h
        .decided
        .iter()
        .filter_map(|s| match s {
            Stage::Data { message } => Some(message.as_slice()),
            _ => None,
        })
        .collect();
    assert_eq!(messages, [&b"body\r\n"[..], b"second\r\n"]);
    assert!(h.decided.contains(&Stage::Mail {
        from: ReversePath::Null,
        params: MailParams::default()
    }));
}

#[test]
fn whole_session_in_a_single_feed_and_every_split() {
    let input = b"EHLO x\r\nMAIL FROM:<a@a.example>\r\nRCPT TO:<b@b.example>\r\nDATA\r\n\
                  l1\r\n..l2\r\n.\r\nRSET\r\nQUIT\r\n";
    let reference = {
        let mut h = Harness::new(test_config());
        h.send(input, false);
        h.out
    };
    assert_eq!(reference.last().map(String::as_str), Some("<close>"));
    for split in 0..=input.len() {
        let mut h = Harness::new(test_config());
        h.send(&input[..split], false);
        h.send(&input[split..], false);
        assert_eq!(h.out, reference, "split at {split}");
    }
}

#[test]
fn sequence_errors() {
    check(&format!(
        "C: MAIL FROM:<a@a.example>
         S: 503 5.5.1 Send EHLO/HELO first
         C: RCPT TO:<b@b.example>
         S: 503 5.5.1 Need MAIL before RCPT
         C: DATA
         S: 503 5.5.1 Need MAIL before DATA
         C: HELO client.example
         S: 250 mx.test
         C: MAIL FROM:<a@a.example>
         S: 250 2.1.0
         C: MAIL FROM:<a@a.example>
         S: 503 5.5.1 Sender already specified
         C: DATA
         S: 554 5.5.1 No valid recipients
         C: RSET
         S: 250 2.0.0 OK
         C: RCPT TO:<b@b.example>
         S: 503 5.5.1 Need MAIL before RCPT
         C: MAIL FROM:<a@a.example>
         S: 250 2.1.0
         C: RCPT TO:<b@b.example>
         S: 250 2.1.5
         {EHLO}
         C: DATA
         S: 503 5.5.1 Need MAIL before DATA"
    ));
}

#[test]
fn refused_mail_and_rcpt_decisions() {
    let h = check(&format!(
        "{EHLO}
         A: MAIL 550 5.7.1 no
         C: MAIL FROM:<a@a.example>
         S: 550 5.7.1 no
         C: RCPT TO:<b@b.example>
         S: 503 5.5.1 Need MAIL before RCPT
         C: MAIL FROM:<a@a.example>
         S: 250 2.1.0
         A: b@elsewhere.example 550 5.7.64 TenantAttribution; Relay Access Denied
         C: RCPT TO:<b@elsewhere.example>
         S: 550 5.7.64 TenantAttribution; Relay Access Denied
         C: DATA
         S: 554 5.5.1 No valid recipients
         C: RCPT TO:<b@b.example>
         S: 250 2.1.5
         A: DATA 451 4.3.0 Temporary server error, please try again later
         C: DATA
         C: x
         C: .
         S: 354
         S: 451 4.3.0
         C: RCPT TO:<b@b.example>
         S: 503 5.5.1 Need MAIL before RCPT"
    ));
    assert_eq!(h.session.recipients(), &[] as &[Address]);
    assert_eq!(h.session.mail_from(), None);
}

#[test]
fn accessors_follow_the_transaction() {
    let mut h = Harness::new(test_config());
    h.send(
        b"EHLO c.example\r\nMAIL FROM:<a@a.example> SMTPUTF8\r\n",
        false,
    );
    assert_eq!(h.session.helo(), Some("c.example"));
    assert_eq!(
        h.session.mail_from(),
        Some(&ReversePath::Address(addr("a@a.example")))
    );
    assert!(h.session.mail_params().unwrap().smtputf8);
    h.send(
        b"RCPT TO:<b@b.example>\r\nRCPT TO:<c@b.example>\r\nDATA\r\n",
        false,
    );
    assert_eq!(
        h.session.recipients(),
        &[addr("b@b.example"), addr("c@b.example")]
    );
    assert!(h.session.in_data());
    h.send(b"x\r\n.\r\n", false);
    assert!(!h.session.in_data());
    assert_eq!(h.session.mail_from(), None);
    assert!(h.session.recipients().is_empty());
    assert!(!h.session.is_tls());
}

#[test]
fn null_sender() {
    let h = check(&format!(
        "{EHLO}
         C: MAIL FROM:<>
         S: 250 2.1.0
         C: RCPT TO:<b@b.example>
         S: 250 2.1.5
         C: DATA
         S: 354
         C: bounce
         C: .
         S: 250 2.6.0"
    ));
    assert_eq!(
        h.decided[0],
        Stage::Mail {
            from: ReversePath::Null,
            params: MailParams::default()
        }
    );
}

#[test]
fn address_syntax_errors() {
    check(&format!(
        "{EHLO}
         C: MAIL FROM:a@a.example
         S: 501 5.1.7 Bad sender address syntax
         C: MAIL FROM:<a@@a.example>
         S: 501 5.1.7
         C: MAIL FROM: <a@a.example>
         S: 250 2.1.0
         C: RCPT TO:<postmaster>
         S: 501 5.1.3 Bad recipient address syntax
         C: RCPT TO:<>
         S: 501 5.1.3
         C: RCPT TO:<b@b.example> NOTIFY=NEVER
         S: 555 5.5.4 Unsupported parameter
         C: RCPT TO:<@relay.example:b@B.EXAMPLE>
         S: 250 2.1.5
         C: MAIL FROM:<a@a.example> BODY=BINARYMIME
         S: 555 5.5.4"
    ));
}

#[test]
fn size_parameter() {
    check(&format!(
        "{EHLO}
         C: MAIL FROM:<a@a.example> SIZE=10001
         S: 552 5.3.4 Message size exceeds fixed maximum message size
         C: MAIL FROM:<a@a.example> SIZE=99999999999999999999
         S: 552 5.3.4
         C: MAIL FROM:<a@a.example> SIZE=x
         S: 501 5.5.4
         C: MAIL FROM:<a@a.example> SIZE=10000
         S: 250 2.1.0"
    ));
}

#[test]
fn smtputf8_rules() {
    let h = check(&format!(
        "{EHLO}
         C: MAIL FROM:<δοκιμή@a.example>
         S: 553 5.6.7 Non-ASCII address requires SMTPUTF8
         C: MAIL FROM:<a@a.example>
         S: 250 2.1.0
         C: RCPT TO:<δοκιμή@b.example>
         S: 553 5.6.7
         C: RCPT TO:<b@bücher.example>
         S: 553 5.6.7
         C: RSET
         S: 250 2.0.0
         C: MAIL FROM:<δοκιμή@a.example> SMTPUTF8
         S: 250 2.1.0
         C: RCPT TO:<b@BÜCHER.example>
         S: 250 2.1.5
         C: RSET
         S: 250 2.0.0
         C: MAIL FROM:<a@a.example> SMTPUTF8
         S: 250 2.1.0
         C: RCPT TO:<δ@b.example>
         S: 250 2.1.5"
    ));
    assert!(h.decided.contains(&Stage::Rcpt {
        to: addr("b@bücher.example")
    }));
}

#[test]
fn too_many_recipients_is_452_and_not_an_error() {
    let config = SessionConfig {
        max_recipients: 2,
        max_errors: 1,
        ..test_config()
    };
    let h = check_with(
        config,
        &format!(
            "{EHLO}
             C: MAIL FROM:<a@a.example>
             C: RCPT TO:<r1@b.example>
             C: RCPT TO:<r2@b.example>
             C: RCPT TO:<r3@b.example>
             C: RCPT TO:<r4@b.example>
             C: RCPT TO:<r5@b.example>
             C: DATA
             C: x
             C: .
             S: 250 2.1.0
             S: 250 2.1.5
             S: 250 2.1.5
             S: 452 4.5.3 Too many recipients
             S: 452 4.5.3
             S: 452 4.5.3
             S: 354
             S: 250 2.6.0"
        ),
    );
    assert_eq!(h.decided.len(), 4); // MAIL, 2 RCPT, DATA
}

#[test]
fn dot_stuffing() {
    let h = check(&format!(
        "{EHLO}
         C: MAIL FROM:<a@a.example>
         C: RCPT TO:<b@b.example>
         C: DATA
         S: 250 2.1.0
         S: 250 2.1.5
         S: 354
         C: .
         S: 250 2.6.0
         C: MAIL FROM:<a@a.example>
         C: RCPT TO:<b@b.example>
         C: DATA
         C: ..
         C: ...x
         C: a.
         C: .b
         C:  .
         C: .
         S: 250 2.1.0
         S: 250 2.1.5
         S: 354
         S: 250 2.6.0"
    ));
    assert_eq!(h.decided[2], Stage::Data { message: vec![] });
    assert_eq!(
        h.decided[5],
        Stage::Data {
            message: b".\r\n..x\r\na.\r\nb\r\n .\r\n".to_vec()
        }
    );
}

/// SMTP smuggling: no variant ends the message early; each is refused, the commands hidden
/// in the body are never executed and the session carries on.
#[test]
fn bare_lf_and_bare_cr_in_data_are_refused() {
    for fake in [
        r"\n.\n", r"\r.\r", r"\n.\r\n", r"\r\n.\n", r"\r.\r\n", r"\r\n.\r", r"\n", r"\r", r"\r\r\n",
    ] {
        let h = check(&format!(
            "{EHLO}
             C: MAIL FROM:<a@a.example>
             C: RCPT TO:<b@b.example>
             C: DATA
             S: 250 2.1.0
             S: 250 2.1.5
             S: 354
             R: text{fake}MAIL FROM:<evil@x.example>\\r\\nRCPT TO:<victim@b.example>\\r\\nDATA\\r\\nsmuggled\\r\\n
             C: .
             S: 554 5.6.0 Message refused: bare CR or LF in message data (lines must end with CRLF)
             C: RCPT TO:<b@b.example>
             S: 503 5.5.1 Need MAIL before RCPT
             C: MAIL FROM:<a@a.example>
             C: RCPT TO:<b@b.example>
             C: DATA
             C: clean
             C: .
             S: 250 2.1.0
             S: 250 2.1.5
             S: 354
             S: 250 2.6.0"
        ));
        assert!(
            !h.decided
                .iter()
                .any(|s| matches!(s, Stage::Mail { from, .. }
                if from.domain() == Some("x.example"))),
            "{fake}"
        );
        assert_eq!(
            h.decided.last(),
            Some(&Stage::Data {
                message: b"clean\r\n".to_vec()
            })
        );
    }
}

#[test]
fn oversize_message_is_refused_and_session_continues() {
    let big = "y".repeat(998);
    let mut transcript = format!(
        "{EHLO}
         C: MAIL FROM:<a@a.example>
         C: RCPT TO:<b@b.example>
         C: DATA
         S: 250 2.1.0
         S: 250 2.1.5
         S: 354
"
    );
    for _ in 0..11 {
        transcript.push_str(&format!("C: {big}\n"));
    }
    transcript.push_str(
        "C: .
         S: 552 5.3.4 Message size exceeds fixed maximum message size
         C: MAIL FROM:<a@a.example>
         C: RCPT TO:<b@b.example>
         C: DATA
         C: small
         C: .
         S: 250 2.1.0
         S: 250 2.1.5
         S: 354
         S: 250 2.6.0",
    );
    let h = check(&transcript);
    assert_eq!(h.decided.len(), 5);
}

#[test]
fn message_of_exactly_max_size_is_accepted() {
    let config = SessionConfig {
        max_message_size: 10,
        ..test_config()
    };
    check_with(
        config,
        &format!(
            "{EHLO}
             C: MAIL FROM:<a@a.example>
             C: RCPT TO:<b@b.example>
             C: DATA
             C: 12345678
             C: .
             S: 250 2.1.0
             S: 250 2.1.5
             S: 354
             S: 250 2.6.0
             C: MAIL FROM:<a@a.example>
             C: RCPT TO:<b@b.example>
             C: DATA
             C: 123456789
             C: .
             S: 250 2.1.0
             S: 250 2.1.5
             S: 354
             S: 552 5.3.4"
        ),
    );
}

#[test]
fn long_lines() {
    let long = "x".repeat(10_000);
    check(&format!(
        "C: {long}
         S: 500 5.5.2 Line too long
         C: NOOP
         S: 250 2.0.0 OK
         C: MAIL FROM:<{long}@a.example>
         S: 500 5.5.2 Line too long
         {EHLO}
         C: NOOP
         S: 250 2.0.0"
    ));
    // Boundary: a line of exactly max_line_length bytes with its CRLF (or LF) is fine.
    let exact = format!("NOOP {}", "p".repeat(2048 - 7));
    let over = format!("NOOP {}", "p".repeat(2048 - 6));
    let exact_lf = format!("NOOP {}", "p".repeat(2048 - 6));
    check(&format!(
        "C: {exact}
         S: 250 2.0.0
         C: {over}
         S: 500 5.5.2 Line too long
         R: {exact_lf}\\n
         S: 250 2.0.0"
    ));
}

#[test]
fn long_line_is_never_buffered() {
    let mut s = Session::new(Arc::new(test_config()));
    let chunk = [b'z'; 100];
    let mut replies = Vec::new();
    for _ in 0..1000 {
        s.feed(&chunk);
        loop {
            match s.step() {
                Step::NeedInput => break,
                Step::Reply(r) => replies.push(r),
                other => panic!("{other:?}"),
            }
        }
        assert!(s.input.len() <= 2048 + chunk.len());
    }
    assert_eq!(replies, vec![reply::LINE_TOO_LONG]);
    s.feed(b"zz\r\nNOOP\r\n");
    assert_eq!(s.step(), Step::Reply(reply::OK));
    assert_eq!(s.step(), Step::NeedInput);
}

#[test]
fn lenient_line_endings_and_stray_cr() {
    check(
        r"R: noop\n
         S: 250 2.0.0
         R: NOOP\r\r\n
         S: 500 5.5.2 Syntax error, command unrecognized
         R: NOOP\rNOOP\r\n
         S: 500 5.5.2
         R: \r\n
         S: 500 5.5.2
         R: VRFY\x00\r\n
         S: 500 5.5.2
         R: MAIL FROM:<\xff@a.example>\r\n
         S: 501 5.1.7",
    );
}

#[test]
fn misc_commands() {
    check(
        "C: NOOP
         S: 250 2.0.0 OK
         C: RSET
         S: 250 2.0.0 OK
         C: VRFY postmaster
         S: 252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery
         C: HELP
         S: 214 2.0.0 See RFC 5321
         C: EXPN staff
         S: 502 5.5.1 Command not implemented
         C: AUTH PLAIN AGFhAGI=
         S: 502 5.5.1
         C: BDAT 10 LAST
         S: 502 5.5.1
         C: FOO
         S: 500 5.5.2 Syntax error, command unrecognized
         C: EHLO
         S: 501 5.5.4 HELO/EHLO requires a domain or address literal
         C: HELO two words
         S: 501 5.5.4 HELO/EHLO requires
         C: DATA x
         S: 501 5.5.4 Syntax error in parameters or arguments
         C: quit
         S: 221 2.0.0 mx.test closing connection
         S: <close>",
    );
}

#[test]
fn quit_ignores_pipelined_rest() {
    let mut h = check(
        "C: QUIT
         C: NOOP
         C: NOOP
         S: 221 2.0.0
         S: <close>",
    );
    h.session.feed(b"NOOP\r\n");
    assert_eq!(h.session.step(), Step::Close);
    assert_eq!(h.session.step(), Step::Close);
}

#[test]
fn ehlo_resets_transaction() {
    check(&format!(
        "{EHLO}
         C: MAIL FROM:<a@a.example>
         S: 250 2.1.0
         {EHLO}
         C: RCPT TO:<b@b.example>
         S: 503 5.5.1 Need MAIL before RCPT
         C: MAIL FROM:<a@a.example>
         S: 250 2.1.0
         C: HELO again.example
         S: 250 mx.test
         C: MAIL FROM:<a@a.example>
         S: 250 2.1.0"
    ));
}

#[test]
fn starttls_discards_injected_commands() {
    // Per-batch only: byte by byte, the handshake would happen before the rest is sent.
    let h = run(
        test_config(),
        "C: EHLO client.example
         S: 250-mx.test Hello client.example
         S: ...
         C: STARTTLS
         C: MAIL FROM:<evil@x.example>
         C: RCPT TO:<victim@b.example>
         S: 220 2.0.0 Ready to start TLS
         S: <starttls>
         C: MAIL FROM:<a@a.example>
         S: 503 5.5.1 Send EHLO/HELO first
         C: EHLO client.example
         S: 250-mx.test Hello client.example
         S: 250-PIPELINING
         S: 250-SIZE 10000
         S: 250-8BITMIME
         S: 250-SMTPUTF8
         S: 250 ENHANCEDSTATUSCODES
         C: STARTTLS
         S: 503 5.5.1 TLS already active
         C: MAIL FROM:<a@a.example>
         S: 250 2.1.0",
        false,
    );
    assert!(h.session.is_tls());
    assert_eq!(h.decided.len(), 1);
    assert_eq!(h.session.helo(), Some("client.example"));
}

#[test]
fn starttls_mid_transaction_resets_it() {
    let h = run(
        test_config(),
        &format!(
            "{EHLO}
             C: MAIL FROM:<a@a.example>
             S: 250 2.1.0
             C: STARTTLS
             S: 220 2.0.0
             S: <starttls>
             C: RCPT TO:<b@b.example>
             S: 503 5.5.1 Need MAIL before RCPT"
        ),
        false,
    );
    assert_eq!(h.session.helo(), None);
}

#[test]
fn starttls_step_repeats_until_established_and_input_is_ignored() {
    let mut s = Session::new(Arc::new(test_config()));
    s.feed(b"STARTTLS\r\nNOOP\r\n");
    assert_eq!(s.step(), Step::Reply(reply::READY_TO_START_TLS));
    assert_eq!(s.step(), Step::StartTls);
    s.feed(b"NOOP\r\n");
    assert_eq!(s.step(), Step::StartTls);
    s.tls_established();
    assert_eq!(s.step(), Step::NeedInput);
    s.feed(b"NOOP\r\n");
    assert_eq!(s.step(), Step::Reply(reply::OK));
}

#[test]
fn starttls_not_offered_or_with_arguments() {
    let config = SessionConfig {
        offer_starttls: false,
        ..test_config()
    };
    check_with(
        config,
        "C: EHLO c.example
         S: 250-mx.test Hello c.example
         S: 250-PIPELINING
         S: 250-SIZE 10000
         S: 250-8BITMIME
         S: 250-SMTPUTF8
         S: 250 ENHANCEDSTATUSCODES
         C: STARTTLS
         S: 502 5.5.1 Command not implemented",
    );
    check(
        "C: STARTTLS now
         S: 501 5.5.4",
    );
}

#[test]
fn error_limit() {
    let config = SessionConfig {
        max_errors: 3,
        ..test_config()
    };
    let mut h = check_with(
        config,
        "C: FOO
         C: NOOP
         C: BAR
         C: MAIL FROM:<a@a.example>
         C: BAZ
         C: NOOP
         S: 500 5.5.2
         S: 250 2.0.0
         S: 500 5.5.2
         S: 503 5.5.1
         S: 500 5.5.2
         S: 421 4.7.0 mx.test Too many errors, closing connection
         S: <close>",
    );
    h.session.feed(b"NOOP\r\n");
    assert_eq!(h.session.step(), Step::Close);
}

#[test]
fn errors_from_answers_count() {
    let config = SessionConfig {
        max_errors: 2,
        ..test_config()
    };
    check_with(
        config,
        &format!(
            "{EHLO}
             C: MAIL FROM:<a@a.example>
             A: b@x.example 550 5.7.64 TenantAttribution; Relay Access Denied
             C: RCPT TO:<b@x.example>
             A: c@x.example 550 5.7.64 TenantAttribution; Relay Access Denied
             C: RCPT TO:<c@x.example>
             A: d@x.example 550 5.7.64 TenantAttribution; Relay Access Denied
             C: RCPT TO:<d@x.example>
             C: RCPT TO:<e@x.example>
             S: 250 2.1.0
             S: 550 5.7.64
             S: 550 5.7.64
             S: 550 5.7.64
             S: 421 4.7.0 mx.test Too many errors
             S: <close>"
        ),
    );
}

#[test]
fn command_limit() {
    let config = SessionConfig {
        max_commands: 3,
        ..test_config()
    };
    check_with(
        config,
        "C: NOOP
         C: NOOP
         C: NOOP
         C: NOOP
         C: NOOP
         S: 250 2.0.0
         S: 250 2.0.0
         S: 250 2.0.0
         S: 421 4.7.0 mx.test Too many commands, closing connection
         S: <close>",
    );
}

#[test]
fn data_lines_are_not_commands() {
    let config = SessionConfig {
        max_commands: 5,
        ..test_config()
    };
    let mut transcript = format!(
        "{EHLO}
         C: MAIL FROM:<a@a.example>
         C: RCPT TO:<b@b.example>
         C: DATA
"
    );
    for _ in 0..50 {
        transcript.push_str("C: line\n");
    }
    transcript.push_str(
        "C: .
         C: QUIT
         S: 250 2.1.0
         S: 250 2.1.5
         S: 354
         S: 250 2.6.0
         S: 221 2.0.0
         S: <close>",
    );
    check_with(config, &transcript);
}

#[test]
fn answer_421_closes() {
    check(&format!(
        "{EHLO}
         A: MAIL 421 4.3.2 mx.test Service shutting down, closing connection
         C: MAIL FROM:<a@a.example>
         C: NOOP
         S: 421 4.3.2
         S: <close>"
    ));
}

#[test]
fn timeout_and_shutdown() {
    for (event, expected) in [
        (
            Session::on_timeout as fn(&mut Session),
            "421 4.4.2 mx.test Idle timeout, closing connection\r\n",
        ),
        (
            Session::on_shutdown,
            "421 4.3.2 mx.test Service shutting down, closing connection\r\n",
        ),
    ] {
        let mut s = Session::new(Arc::new(test_config()));
        s.feed(b"EHLO x\r\nMAIL FROM:<a@a.example>\r\n");
        assert!(matches!(s.step(), Step::Reply(_)));
        assert!(matches!(s.step(), Step::Decide(_)));
        // The driver gives up waiting for its decision.
        event(&mut s);
        event(&mut s);
        match s.step() {
            Step::Reply(r) => assert_eq!(r.to_wire(), expected),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.step(), Step::Close);
        s.feed(b"NOOP\r\n");
        assert_eq!(s.step(), Step::Close);
        event(&mut s);
        assert_eq!(s.step(), Step::Close);
    }
}

#[test]
fn queued_reply_survives_shutdown() {
    let mut s = Session::new(Arc::new(test_config()));
    s.feed(b"EHLO x\r\nMAIL FROM:<a@a.example>\r\nRCPT TO:<b@b.example>\r\nDATA\r\nx\r\n.\r\n");
    loop {
        match s.step() {
            Step::Reply(_) => {}
            Step::Decide(Stage::Data { .. }) => {
                s.answer(reply::queued("T9"));
                s.on_shutdown();
                break;
            }
            Step::Decide(Stage::Mail { .. }) => s.answer(reply::SENDER_OK),
            Step::Decide(Stage::Rcpt { .. }) => s.answer(reply::RECIPIENT_OK),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(s.step(), Step::Reply(reply::queued("T9")));
    assert!(matches!(s.step(), Step::Reply(r) if r.code == 421));
    assert_eq!(s.step(), Step::Close);
}

#[test]
fn step_without_answer_defers_and_stray_answer_is_ignored() {
    let mut s = Session::new(Arc::new(test_config()));
    s.answer(reply::OK); // nothing pending: ignored
    s.feed(b"EHLO x\r\nMAIL FROM:<a@a.example>\r\n");
    assert!(matches!(s.step(), Step::Reply(_)));
    assert!(matches!(s.step(), Step::Decide(Stage::Mail { .. })));
    assert_eq!(s.step(), Step::Reply(reply::TEMPORARY_ERROR));
    assert_eq!(s.step(), Step::NeedInput);
    assert_eq!(s.mail_from(), None);
}

// ---- robustness ----------------------------------------------------------------------------

/// Small deterministic PRNG (xorshift64*), so the fuzz loops need no dependency and any
/// failure is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Feeds `input` in random chunks, answering decisions at random; never panics, never
/// loops. Returns the session (unless closed) for the recovery check.
fn drive_random(
    rng: &mut Rng,
    config: &Arc<SessionConfig>,
    input: &[u8],
    seen: &mut [usize; 4],
) -> Option<Session> {
    let mut s = Session::new(Arc::clone(config));
    let answers = [
        reply::SENDER_OK,
        reply::RECIPIENT_OK,
        reply::queued("T"),
        reply::DIRECT_SEND_NOT_ALLOWED,
        reply::TEMPORARY_ERROR,
        reply::too_many_errors("h"),
    ];
    let mut rest = input;
    let mut steps = 0;
    loop {
        if !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(64));
            s.feed(&rest[..n]);
            rest = &rest[n..];
        }
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "session loops");
            match s.step() {
                Step::Reply(r) => {
                    let mut out = Vec::new();
                    r.write_to(&mut out);
                    assert!(out.ends_with(b"\r\n") && out.len() >= 5);
                }
                Step::NeedInput => break,
                Step::StartTls => {
                    seen[3] += 1;
                    if rng.below(2) == 0 {
                        s.tls_established();
                    } else {
                        break;
                    }
                }
                Step::Decide(stage) => {
                    seen[match stage {
                        Stage::Mail { .. } => 0,
                        Stage::Rcpt { .. } => 1,
                        Stage::Data { .. } => 2,
                    }] += 1;
                    // Mostly accept, sometimes refuse or close.
                    let pick = if rng.below(4) == 0 {
                        rng.below(answers.len())
                    } else {
                        rng.below(3)
                    };
                    s.answer(answers[pick].clone());
                }
                Step::Close => return None,
            }
        }
        if rest.is_empty() {
            return Some(s);
        }
    }
}

/// After arbitrary input, a session that is not closed still answers NOOP with 250.
fn assert_recovers(mut s: Session) {
    if matches!(s.mode, Mode::TlsHandshake) {
        s.tls_established();
    }
    // End any partial line, then any DATA in progress.
    s.feed(b"\r\n");
    let mut replies = Vec::new();
    let mut ended_data = false;
    loop {
        match s.step() {
            Step::NeedInput if s.in_data() && !ended_data => {
                ended_data = true;
                s.feed(b"\r\n.\r\n");
            }
            Step::NeedInput => break,
            Step::Decide(_) => s.answer(reply::OK),
            Step::Close => return,
            Step::Reply(r) => replies.push(r),
            Step::StartTls => unreachable!(),
        }
    }
    s.feed(b"NOOP\r\n");
    loop {
        match s.step() {
            Step::Reply(r) => replies.push(r),
            Step::Close => return,
            Step::NeedInput => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(replies.last(), Some(&reply::OK), "{replies:?}");
}

#[test]
fn random_bytes_never_panic() {
    let config = Arc::new(SessionConfig {
        max_line_length: 64,
        max_message_size: 200,
        max_errors: 1_000_000,
        max_commands: 1_000_000,
        ..test_config()
    });
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen = [0; 4];
    for _ in 0..10_000 {
        let len = rng.below(400);
        // Bias towards the bytes that matter: CR, LF, '.', space, '<', '>', '@', ':'.
        let input: Vec<u8> = (0..len)
            .map(|_| match rng.below(3) {
                0 => b"\r\n. <>@:"[rng.below(8)],
                _ => rng.next() as u8,
            })
            .collect();
        if let Some(s) = drive_random(&mut rng, &config, &input, &mut seen) {
            assert_recovers(s);
        }
    }
}

#[test]
fn random_command_soup_never_panics() {
    // (weight, piece): mostly a plausible dialogue, with garbage and smuggling attempts.
    const PIECES: &[(usize, &str)] = &[
        (6, "EHLO x.example\r\n"),
        (1, "HELO [192.0.2.1]\r\n"),
        (6, "MAIL FROM:<a@a.example>\r\n"),
        (2, "MAIL FROM:<> SIZE=100 BODY=8BITMIME SMTPUTF8\r\n"),
        (1, "MAIL FROM:<δ@ü.example> SMTPUTF8\r\n"),
        (8, "RCPT TO:<b@b.example>\r\n"),
        (1, "RCPT TO:<δ@b.example>\r\n"),
        (1, "RCPT TO:<@r.example:b@b.example>\r\n"),
        (8, "DATA\r\n"),
        (1, "RSET\r\n"),
        (1, "NOOP\r\n"),
        (1, "STARTTLS\r\n"),
        (1, "VRFY x\r\n"),
        (1, "QUIT\r\n"),
        (8, ".\r\n"),
        (2, "..\r\n"),
        (4, "\r\n.\r\n"),
        (2, "\n.\n"),
        (2, "\r.\r"),
        (1, "\n"),
        (1, "\r"),
        (6, "text line\r\n"),
        (1, "MAIL FROM:<"),
        (
            1,
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ),
        (1, "\u{0}\u{7f}\u{ff}"),
        (
            1,
            "mail from:<a@[IPv6:::1]> size=99999999999999999999999\r\n",
        ),
    ];
    let total: usize = PIECES.iter().map(|(w, _)| w).sum();
    let config = Arc::new(SessionConfig {
        max_line_length: 64,
        max_message_size: 300,
        max_recipients: 3,
        max_errors: 1_000_000,
        max_commands: 1_000_000,
        ..test_config()
    });
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut seen = [0; 4];
    for _ in 0..10_000 {
        let mut input = Vec::new();
        for _ in 0..rng.below(60) {
            let mut pick = rng.below(total);
            let piece = PIECES
                .iter()
                .find(|(w, _)| {
                    let hit = pick < *w;
                    pick = pick.saturating_sub(*w);
                    hit
                })
                .map_or("", |(_, p)| p);
            input.extend_from_slice(piece.as_bytes());
        }
        if let Some(s) = drive_random(&mut rng, &config, &input, &mut seen) {
            assert_recovers(s);
        }
    }
    // The soup must really reach every stage, or it tests little.
    assert!(seen.iter().all(|&n| n > 100), "{seen:?}");
}

#[test]
fn random_garbage_never_panics_parsers() {
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let len = rng.below(80);
        let line: Vec<u8> = (0..len)
            .map(|_| match rng.below(4) {
                0 => b"<>@:.\"\\[] ="[rng.below(11)],
                1 => b"MAILFROMRCPTO"[rng.below(13)],
                _ => rng.next() as u8,
            })
            .collect();
        let _ = crate::command::parse(&line, rng.below(2) == 0);
        if let Ok(s) = std::str::from_utf8(&line) {
            let _ = Address::parse(s);
            let _ = crate::address::parse_path(s, true);
        }
    }
}
