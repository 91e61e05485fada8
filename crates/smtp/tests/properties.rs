//! Properties over arbitrary input, the client as hostile as it likes: the session never panics
//! and always settles, every reply is a well-formed reply line, the replies do not depend on how
//! the input was split into reads, DATA hands over exactly the message the client meant, and an
//! address that parses prints back to itself.

use std::sync::Arc;

use portcullis_smtp::{Address, Session, SessionConfig, Stage, Step, reply};
use proptest::prelude::*;

/// What a session said to some input.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Everything written to the client, greeting first.
    wire: Vec<u8>,
    /// The messages DATA handed over.
    messages: Vec<Vec<u8>>,
    closed: bool,
}

/// Feeds `chunks` one read at a time to a session whose every decision accepts; STARTTLS is
/// "negotiated" at once.
fn run(config: &Arc<SessionConfig>, chunks: &[&[u8]]) -> Outcome {
    let mut session = Session::new(config.clone());
    let mut out = Outcome {
        wire: Vec::new(),
        messages: Vec::new(),
        closed: false,
    };
    session.greeting().write_to(&mut out.wire);
    let mut chunks = chunks.iter();
    'reads: loop {
        for steps in 0.. {
            assert!(steps < 1_000_000, "step() does not settle");
            match session.step() {
                Step::Reply(r) => r.write_to(&mut out.wire),
                Step::NeedInput => break,
                Step::StartTls => session.tls_established(),
                Step::Decide(stage) => session.answer(match stage {
                    Stage::Mail { .. } => reply::SENDER_OK,
                    Stage::Rcpt { .. } => reply::RECIPIENT_OK,
                    Stage::Data { message } => {
                        out.messages.push(message);
                        reply::queued("T1")
                    }
                }),
                Step::Close => {
                    out.closed = true;
                    break 'reads;
                }
            }
        }
        match chunks.next() {
            Some(chunk) => session.feed(chunk),
            None => break,
        }
    }
    out
}

/// Every line is `ddd` (2xx–5xx), then ` ` or `-`, text without control characters, CRLF; at
/// most 512 bytes (RFC 5321 §4.5.3.1.5); a multi-line reply keeps its code and ends with a
/// ` ` line.
fn assert_well_formed(wire: &[u8]) {
    let text = std::str::from_utf8(wire).expect("replies are UTF-8");
    assert!(text.ends_with("\r\n"), "{text:?}");
    let mut open: Option<&str> = None;
    for line in text.split_terminator("\r\n") {
        assert!(line.len() + 2 <= 512, "reply line too long: {line:?}");
        let (code, rest) = line.split_at(3.min(line.len()));
        assert!(
            code.len() == 3
                && code.bytes().all(|b| b.is_ascii_digit())
                && (b'2'..=b'5').contains(&code.as_bytes()[0]),
            "{line:?}"
        );
        assert!(rest.starts_with(' ') || rest.starts_with('-'), "{line:?}");
        assert!(!rest.chars().any(char::is_control), "{line:?}");
        if let Some(c) = open {
            assert_eq!(c, code, "a multi-line reply changed its code: {text:?}");
        }
        open = rest.starts_with('-').then_some(code);
    }
    assert!(open.is_none(), "unfinished multi-line reply: {text:?}");
}

fn config() -> Arc<SessionConfig> {
    Arc::new(SessionConfig {
        hostname: "mx.test".into(),
        max_line_length: 512,
        max_message_size: 2048,
        max_recipients: 3,
        max_errors: 50,
        max_commands: 200,
        offer_starttls: true,
    })
}

/// A line a client might send: commands with odd arguments, or anything at all.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "EHLO client.test", "HELO x", "ehlo", "MAIL FROM:<a@b.test>", "MAIL FROM:<>",
            "mail from:<a@b.test> SIZE=100 BODY=8BITMIME", "MAIL FROM:<a@b.test> SMTPUTF8",
            "RCPT TO:<c@d.test>", "RCPT TO:<\"q t\"@[127.0.0.1]>", "RCPT TO:<postmaster>",
            "DATA", ".", "..", "RSET", "NOOP", "VRFY x", "HELP", "QUIT", "STARTTLS",
            "BDAT 10 LAST", "AUTH PLAIN", "Subject: hi", "",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..80),
        1 => "(MAIL FROM|RCPT TO|EHLO|HELO):.{0,300}".prop_map(String::into_bytes),
    ]
}

/// Lines joined by CRLF, bare LF, bare CR or nothing (a line running on into the next).
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            line(),
            prop::sample::select(vec!["\r\n", "\r\n", "\r\n", "\n", "\r", ""]),
        ),
        0..40,
    )
    .prop_map(|parts| {
        let mut bytes = Vec::new();
        for (l, end) in parts {
            bytes.extend_from_slice(&l);
            bytes.extend_from_slice(end.as_bytes());
        }
        bytes
    })
}

/// `bytes` cut at the given points (taken modulo its length).
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| if bytes.is_empty() { 0 } else { c % bytes.len() })
        .collect();
    at.sort_unstable();
    at.dedup();
    let mut chunks = Vec::new();
    let mut from = 0;
    for a in at {
        chunks.push(&bytes[from..a]);
        from = a;
    }
    chunks.push(&bytes[from..]);
    chunks
}

fn has_starttls(bytes: &[u8]) -> bool {
    bytes
        .to_ascii_uppercase()
        .windows(8)
        .any(|w| w == b"STARTTLS")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_input_gets_well_formed_replies(
        bytes in input(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let out = run(&config(), &split(&bytes, &cuts));
        assert_well_formed(&out.wire);
    }

    /// However the client's bytes arrive (one read, several, one byte at a time), the session
    /// says the same. STARTTLS aside: what follows it in the same read is dropped by design
    /// (CVE-2011-0411), in a later read it is not.
    #[test]
    fn replies_do_not_depend_on_how_reads_split_the_input(
        bytes in input().prop_filter("no STARTTLS", |b| !has_starttls(b)),
        cuts in prop::collection::vec(any::<usize>(), 1..8),
    ) {
        let config = config();
        let whole = run(&config, &[&bytes]);
        prop_assert_eq!(&run(&config, &split(&bytes, &cuts)), &whole);
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&run(&config, &bytewise), &whole);
    }

    /// Dot-stuffed lines come out unstuffed, CRLF-terminated, byte for byte.
    #[test]
    fn data_hands_over_the_message_the_client_meant(
        lines in prop::collection::vec("[ -~\t]{0,100}", 0..30),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire =
            b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n".to_vec();
        let mut meant = Vec::new();
        for l in &lines {
            if l.starts_with('.') {
                wire.push(b'.');
            }
            wire.extend_from_slice(l.as_bytes());
            wire.extend_from_slice(b"\r\n");
            meant.extend_from_slice(l.as_bytes());
            meant.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\nQUIT\r\n");
        let config = Arc::new(SessionConfig {
            max_message_size: 1 << 20,
            ..SessionConfig::default()
        });
        let out = run(&config, &split(&wire, &cuts));
        prop_assert_eq!(out.messages, vec![meant]);
        prop_assert!(out.closed);
    }

    #[test]
    fn a_parsed_address_prints_back_to_itself(s in "\\PC{0,80}") {
        if let Some(a) = Address::parse(&s) {
            prop_assert_eq!(Address::parse(&a.to_string()), Some(a));
        }
    }

    #[test]
    fn addresses_of_the_usual_shape_parse_and_print_back(
        local in "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[A-Za-z0-9_-]{1,10}){0,2}",
        domain in "[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?(\\.[A-Za-z]{2,6}){1,3}",
    ) {
        let text = format!("{local}@{domain}");
        let a = Address::parse(&text).expect("parses");
        prop_assert_eq!(a.local(), local.as_str());
        prop_assert_eq!(a.domain(), domain.to_lowercase());
        prop_assert_eq!(a.to_string(), format!("{local}@{}", domain.to_lowercase()));
    }
}
