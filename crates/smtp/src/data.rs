//! The DATA phase: end-of-data detection, dot-unstuffing and the size cap.
//!
//! SMTP smuggling (CVE-2023-51764 family): the ONLY terminator is `CRLF . CRLF`, where the
//! first CRLF may be the end of the DATA command line itself. A bare LF or bare CR anywhere
//! taints the message; it never ends it. A tainted message is read to the real terminator and
//! then refused, so the sender and this receiver always agree on where the message ends.

/// How a message ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataOutcome {
    /// Clean and within the cap: unstuffed, CRLF line endings, without the final `.` line.
    Message(Vec<u8>),
    /// A bare CR or bare LF was seen: refuse with `554 5.6.0`.
    BareLineEnding,
    /// A NUL byte was seen (RFC 5321 §4.5.2 / RFC 6152: never in a message, 8BITMIME or not;
    /// mailbox servers truncate or mangle at it): refuse with `554 5.6.0`, never relay it.
    NulByte,
    /// More than `max_message_size` bytes after unstuffing: refuse with `552 5.3.4`.
    TooBig,
}

/// Result of [`DataReceiver::feed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Feed {
    /// Every byte was consumed and the terminator has not been seen yet.
    NeedMore,
    /// The terminator ended within the input after `consumed` bytes; the rest is commands.
    Done {
        consumed: usize,
        outcome: DataOutcome,
    },
}

/// Where in a line the previous feed stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Right after a CRLF (or at the very start of data).
    LineStart,
    /// `.` at line start, not yet emitted (it is stuffing or the terminator).
    Dot,
    /// `.` CR at line start, neither emitted.
    DotCr,
    /// Inside a line.
    Mid,
    /// Inside a line, the last byte (already emitted) was a CR.
    Cr,
}

/// Consumes the bytes after the 354 until `CRLF.CRLF`. Memory stays bounded by
/// `max_message_size`: bytes past the cap, or after a taint, are counted but not kept.
#[derive(Debug)]
pub struct DataReceiver {
    max_size: usize,
    message: Vec<u8>,
    state: State,
    tainted: bool,
    nul: bool,
    too_big: bool,
}

impl DataReceiver {
    pub fn new(max_message_size: usize) -> DataReceiver {
        DataReceiver {
            max_size: max_message_size,
            message: Vec::new(),
            state: State::LineStart,
            tainted: false,
            nul: false,
            too_big: false,
        }
    }

    /// Feeds the next bytes. Works for any split of the input into chunks.
    pub fn feed(&mut self, input: &[u8]) -> Feed {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Mid => {
                    // The hot path: copy everything up to the next CR or LF in one go.
                    let rest = &input[i..];
                    let Some(n) = memchr::memchr2(b'\r', b'\n', rest) else {
                        self.emit(rest);
                        return Feed::NeedMore;
                    };
                    if rest[n] == b'\r' && rest.get(n + 1) == Some(&b'\n') {
                        // The common case: a whole line with its CRLF in one copy.
                        self.emit(&rest[..n + 2]);
                        i += n + 2;
                        self.state = State::LineStart;
                        continue;
                    }
                    self.emit(&rest[..n]);
                    i += n;
                    if input[i] == b'\r' {
                        self.emit(b"\r");
                        self.state = State::Cr;
                    } else {
                        self.taint(b"\n"); // bare LF
                    }
                    i += 1;
                }
                State::Cr => {
                    if input[i] == b'\n' {
                        self.emit(b"\n");
                        self.state = State::LineStart;
                        i += 1;
                    } else {
                        // Bare CR; the byte is handled as ordinary line content.
                        self.tainted = true;
                        self.state = State::Mid;
                    }
                }
                State::LineStart => {
                    if input[i] == b'.' {
                        self.state = State::Dot;
                        i += 1;
                    } else {
                        self.state = State::Mid;
                    }
                }
                State::Dot => {
                    if input[i] == b'\r' {
                        self.state = State::DotCr;
                        i += 1;
                    } else {
                        // Dot-stuffing: the dot is dropped, the rest is line content.
                        self.state = State::Mid;
                    }
                }
                State::DotCr => {
                    if input[i] == b'\n' {
                        return Feed::Done {
                            consumed: i + 1,
                            outcome: self.finish(),
                        };
                    }
                    // `.` + bare CR: a stuffed line holding a bare CR, not a terminator.
                    self.taint(b"\r");
                }
            }
        }
        Feed::NeedMore
    }

    /// True while nothing has been found that will get the message refused.
    pub fn is_clean(&self) -> bool {
        !self.tainted && !self.nul && !self.too_big
    }

    fn taint(&mut self, bytes: &[u8]) {
        self.tainted = true;
        self.emit(bytes);
        self.state = State::Mid;
    }

    fn emit(&mut self, bytes: &[u8]) {
        if self.tainted || self.nul {
            // The message will be refused, and how is settled: keep nothing.
            if !self.message.is_empty() {
                self.message = Vec::new();
            }
            return;
        }
        // A NUL outranks the size (`finish`), so it is looked for past the cap as well: which
        // reply a message gets must not depend on how its bytes were split into reads.
        if memchr::memchr(0, bytes).is_some() {
            self.nul = true;
            self.message = Vec::new();
            return;
        }
        if self.too_big {
            return;
        }
        if bytes.len() > self.max_size - self.message.len() {
            self.too_big = true;
            self.message = Vec::new();
            return;
        }
        // Grow by doubling, but never past the cap, so memory stays within max_size.
        let needed = self.message.len() + bytes.len();
        if needed > self.message.capacity() {
            let target = needed.max(self.message.capacity() * 2).min(self.max_size);
            self.message.reserve_exact(target - self.message.len());
        }
        self.message.extend_from_slice(bytes);
    }

    fn finish(&mut self) -> DataOutcome {
        self.state = State::LineStart;
        let message = std::mem::take(&mut self.message);
        let outcome = if self.tainted {
            DataOutcome::BareLineEnding
        } else if self.nul {
            DataOutcome::NulByte
        } else if self.too_big {
            DataOutcome::TooBig
        } else {
            DataOutcome::Message(message)
        };
        self.tainted = false;
        self.nul = false;
        self.too_big = false;
        outcome
    }

    #[cfg(test)]
    fn retained(&self) -> usize {
        self.message.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` split at every pair of points and checks the result is always the same.
    fn run_all_splits(input: &[u8], max: usize) -> (usize, DataOutcome) {
        let whole = run(&[input], max);
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let chunks = [&input[..a], &input[a..b], &input[b..]];
                assert_eq!(
                    run(&chunks, max),
                    whole,
                    "split at {a},{b} of {:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
        // And byte by byte.
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes, max), whole);
        whole.expect("terminator not found")
    }

    fn run(chunks: &[&[u8]], max: usize) -> Option<(usize, DataOutcome)> {
        let mut r = DataReceiver::new(max);
        let mut offset = 0;
        for chunk in chunks {
            match r.feed(chunk) {
                Feed::NeedMore => offset += chunk.len(),
                Feed::Done { consumed, outcome } => return Some((offset + consumed, outcome)),
            }
        }
        None
    }

    fn msg(s: &str) -> DataOutcome {
        DataOutcome::Message(s.as_bytes().to_vec())
    }

    #[test]
    fn clean_messages() {
        let cases: &[(&str, &str)] = &[
            (".\r\n", ""),
            ("a\r\n.\r\n", "a\r\n"),
            (
                "Subject: x\r\n\r\nbody\r\n.\r\n",
                "Subject: x\r\n\r\nbody\r\n",
            ),
            ("..\r\n.\r\n", ".\r\n"),
            ("..x\r\n...\r\n.\r\n", ".x\r\n..\r\n"),
            (".a\r\nb.\r\n.b\r\n.\r\n", "a\r\nb.\r\nb\r\n"),
            ("\r\n\r\n.\r\n", "\r\n\r\n"),
            ("x .\r\n. \r\n.\r\n", "x .\r\n \r\n"),
        ];
        for &(input, expected) in cases {
            let (consumed, outcome) = run_all_splits(input.as_bytes(), 1000);
            assert_eq!(consumed, input.len(), "{input:?}");
            assert_eq!(outcome, msg(expected), "{input:?}");
        }
    }

    /// Found by the `smtp_data` fuzz target: a NUL past the size cap was seen when it came in
    /// the read that crossed the cap and missed when it came in a later read, so the same
    /// message got `554 5.6.0` or `552 5.3.4` depending on TCP segmentation.
    #[test]
    fn a_nul_past_the_cap_is_found_however_the_bytes_arrive() {
        for input in [
            &b"aaaaaaaaaaaa\0\r\n.\r\n"[..],
            b"aaaaaaaaaa\r\nbb\0b\r\n.\r\n",
        ] {
            let (consumed, outcome) = run_all_splits(input, 8);
            assert_eq!(consumed, input.len());
            assert_eq!(
                outcome,
                DataOutcome::NulByte,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let fuzzed = include_bytes!("../tests/data/fuzz-smtp_data-nul-after-cap.bin");
        let whole = run(&[fuzzed], 1024);
        for split in 1..fuzzed.len() {
            let (a, b) = fuzzed.split_at(split);
            assert_eq!(run(&[a, b], 1024), whole, "split at {split}");
        }
    }

    #[test]
    fn stops_at_terminator_leaving_pipelined_commands() {
        let input = b"hello\r\n.\r\nQUIT\r\n";
        let (consumed, outcome) = run_all_splits(input, 1000);
        assert_eq!(&input[consumed..], b"QUIT\r\n");
        assert_eq!(outcome, msg("hello\r\n"));
    }

    /// None of the smuggling variants ends the message; the real terminator does, and the
    /// message is refused.
    #[test]
    fn bare_line_endings_never_terminate() {
        let fakes = [
            "a\n.\nMAIL FROM:<x@y>\r\n",
            "a\r.\rMAIL\r\n",
            "a\n.\r\nMAIL\r\n",
            "a\r\n.\nMAIL\r\n",
            "a\r.\r\nMAIL\r\n",
            "a\r\n.\rMAIL\r\n",
            "a\r\r\n",
            "a\n",
            "a\r",
            ".\n",
            ".\r",
            ".\rx\r\n",
            "\n.\r\n",
            "x\r\n.\r\r\n",
        ];
        for fake in fakes {
            let input = format!("{fake}tail\r\n.\r\nNEXT");
            let (consumed, outcome) = run_all_splits(input.as_bytes(), 1000);
            assert_eq!(&input[consumed..], "NEXT", "{fake:?}");
            assert_eq!(outcome, DataOutcome::BareLineEnding, "{fake:?}");
        }
    }

    /// A NUL anywhere (line start, after a stuffing dot, mid-line, across chunk borders) gets
    /// the message refused at its real terminator; nothing of it is kept.
    #[test]
    fn nul_bytes_refuse_the_message() {
        for body in [
            &b"a\0b\r\n"[..],
            b"\0\r\n",
            b"..\0\r\n",
            b"ok\r\nline\0\r\nmore\r\n",
        ] {
            let mut input = body.to_vec();
            input.extend_from_slice(b".\r\nNEXT");
            let (consumed, outcome) = run_all_splits(&input, 1000);
            assert_eq!(&input[consumed..], b"NEXT", "{body:?}");
            assert_eq!(outcome, DataOutcome::NulByte, "{body:?}");
        }
        // Smuggling is named first: it is what the sender must fix.
        let (_, outcome) = run_all_splits(b"a\0\nb\r\n.\r\n", 1000);
        assert_eq!(outcome, DataOutcome::BareLineEnding);
        // A clean message after a refused one is accepted.
        let mut r = DataReceiver::new(100);
        assert!(matches!(
            r.feed(b"x\0\r\n.\r\n"),
            Feed::Done {
                outcome: DataOutcome::NulByte,
                ..
            }
        ));
        assert_eq!(
            r.feed(b"y\r\n.\r\n"),
            Feed::Done {
                consumed: 6,
                outcome: msg("y\r\n")
            }
        );
    }

    #[test]
    fn terminator_right_after_a_bare_cr_line() {
        // "\r\r\n" is a bare CR followed by a real CRLF, so ".\r\n" after it terminates.
        let (consumed, outcome) = run_all_splits(b"a\r\r\n.\r\nX", 1000);
        assert_eq!(consumed, 7);
        assert_eq!(outcome, DataOutcome::BareLineEnding);
    }

    #[test]
    fn size_cap_counts_unstuffed_bytes() {
        // Exactly at the cap (after unstuffing) is fine.
        let (_, outcome) = run_all_splits(b"..abc\r\n.\r\n", 6);
        assert_eq!(outcome, msg(".abc\r\n"));
        let (_, outcome) = run_all_splits(b"..abc\r\n.\r\n", 5);
        assert_eq!(outcome, DataOutcome::TooBig);
        let (_, outcome) = run_all_splits(b".\r\n", 0);
        assert_eq!(outcome, msg(""));
        // Tainted wins over too big.
        let (_, outcome) = run_all_splits(b"abcdef\nxyz\r\n.\r\n", 3);
        assert_eq!(outcome, DataOutcome::BareLineEnding);
    }

    #[test]
    fn memory_stays_bounded_when_too_big() {
        let max = 1000;
        let mut r = DataReceiver::new(max);
        let line = [b'x'; 998];
        for _ in 0..1000 {
            assert_eq!(r.feed(&line), Feed::NeedMore);
            assert_eq!(r.feed(b"\r\n"), Feed::NeedMore);
            assert!(r.retained() <= max);
        }
        assert!(!r.is_clean());
        assert_eq!(
            r.feed(b".\r\n"),
            Feed::Done {
                consumed: 3,
                outcome: DataOutcome::TooBig
            }
        );
    }

    #[test]
    fn large_message_in_odd_chunks() {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for i in 0..2000 {
            let line = format!(
                "{}line {i} {}\r\n",
                if i % 7 == 0 { "." } else { "" },
                "y".repeat(i % 90)
            );
            input.extend_from_slice(line.as_bytes());
            expected.extend_from_slice(line.strip_prefix('.').unwrap_or(&line).as_bytes());
        }
        input.extend_from_slice(b".\r\n");
        for chunk in [1, 2, 3, 7, 64, 1000, 4096, input.len()] {
            let chunks: Vec<&[u8]> = input.chunks(chunk).collect();
            assert_eq!(
                run(&chunks, 1 << 20),
                Some((input.len(), DataOutcome::Message(expected.clone()))),
                "chunk {chunk}"
            );
        }
    }
}
