#![no_main]
//! The SMTP command parser: any line is a command or a reply (a 5xx), never a panic; the reply
//! is a well-formed SMTP reply.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((flags, line)) = data.split_first() else {
        return;
    };
    if let Err(reply) = portcullis_smtp::command::parse(line, flags & 1 == 1) {
        let mut out = Vec::new();
        reply.write_to(&mut out);
        assert!(out.ends_with(b"\r\n"), "reply without CRLF: {out:?}");
        assert!(
            matches!(out.first(), Some(b'4' | b'5')),
            "a refusal that is not 4xx/5xx: {out:?}"
        );
    }
});
