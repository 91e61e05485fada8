#![no_main]
//! A whole SMTP session fed arbitrary bytes in arbitrary reads (the first byte seeds the read
//! sizes): it never panics, every reply is a well-formed line ending in CRLF, it ends when the
//! input ends, and — unless STARTTLS is asked for (it discards the plaintext pipelined after
//! it, by design) — the read boundaries change nothing the client sees.
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use portcullis_smtp::{Session, SessionConfig, Stage, Step, reply};

/// Runs the session over `data` cut into reads of the given sizes; the bytes written back.
fn run(data: &[u8], sizes: &mut dyn Iterator<Item = usize>) -> Vec<u8> {
    let mut session = Session::new(Arc::new(SessionConfig::default()));
    let mut out = Vec::new();
    session.greeting().write_to(&mut out);
    let mut pos = 0;
    let mut steps = 0usize;
    loop {
        steps += 1;
        assert!(steps < 1_000_000, "the session does not end");
        match session.step() {
            Step::Reply(r) => {
                let start = out.len();
                r.write_to(&mut out);
                let written = &out[start..];
                assert!(
                    written.ends_with(b"\r\n"),
                    "a reply without CRLF: {written:?}"
                );
                assert!(
                    written.len() >= 5 && written[..3].iter().all(u8::is_ascii_digit),
                    "a reply without a code: {written:?}"
                );
            }
            Step::Decide(Stage::Mail { .. }) => session.answer(reply::SENDER_OK),
            Step::Decide(Stage::Rcpt { .. }) => session.answer(reply::RECIPIENT_OK),
            Step::Decide(Stage::Data { .. }) => session.answer(reply::OK),
            Step::StartTls => session.tls_established(),
            Step::NeedInput => {
                if pos >= data.len() {
                    session.on_timeout();
                    if matches!(session.step(), Step::Close) {
                        break;
                    }
                    continue;
                }
                let n = sizes
                    .next()
                    .unwrap_or(data.len())
                    .clamp(1, data.len() - pos);
                session.feed(&data[pos..pos + n]);
                pos += n;
            }
            Step::Close => break,
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((seed, data)) = data.split_first() else {
        return;
    };
    let whole = run(data, &mut std::iter::empty());
    let mut sizes = portcullis_fuzz::read_sizes(*seed, 13);
    let pieces = run(data, &mut sizes);
    let starttls = data.windows(8).any(|w| w.eq_ignore_ascii_case(b"STARTTLS"));
    if !starttls {
        assert_eq!(
            String::from_utf8_lossy(&whole),
            String::from_utf8_lossy(&pieces),
            "the read boundaries changed the replies"
        );
    }
});
