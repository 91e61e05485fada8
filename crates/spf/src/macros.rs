//! Macro strings (RFC 7208 §7): parsed once with the record, expanded per evaluation.
//!
//! ```text
//! macro-string = *( macro-expand / macro-literal )
//! macro-expand = ( "%{" macro-letter transformers *delimiter "}" ) / "%%" / "%_" / "%-"
//! macro-literal = %x21-24 / %x26-7E
//! transformers = *DIGIT [ "r" ]
//! delimiter = "." / "-" / "+" / "," / "/" / "_" / "="
//! ```

use std::fmt::Write as _;
use std::net::IpAddr;

/// Where a macro string stands, which decides what it may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A domain-spec or an unknown modifier's value: no spaces, no `c`, `r`, `t` (§7.2).
    Record,
    /// The text of an explanation record (§6.2 `explain-string`): spaces and every letter.
    Explanation,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacroString {
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `%%`, `%_`, `%-`: literal in the output, a `macro-expand` in the grammar.
    Escape(&'static str),
    Macro(Macro),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Macro {
    letter: u8,
    /// An upper-case letter: the value is URL-escaped (§7.3).
    escape: bool,
    /// Keep this many right-hand parts.
    keep: Option<usize>,
    reverse: bool,
    delimiters: Vec<u8>,
}

/// The values the macro letters stand for in one evaluation.
pub struct Values<'a> {
    pub sender: &'a str,
    pub local: &'a str,
    pub sender_domain: &'a str,
    pub domain: &'a str,
    pub ip: IpAddr,
    pub helo: &'a str,
    pub receiver: &'a str,
    pub now: u64,
    /// The validated name of `%{p}` ("unknown" when there is none).
    pub validated: &'a str,
}

impl MacroString {
    pub fn parse(text: &str, place: Place) -> Result<MacroString, String> {
        let bytes = text.as_bytes();
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b != b'%' {
                let allowed =
                    matches!(b, 0x21..=0x7e) || (b == b' ' && place == Place::Explanation);
                if !allowed {
                    return Err(format!("invalid character {:?} in \"{text}\"", b as char));
                }
                literal.push(b as char);
                i += 1;
                continue;
            }
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            match bytes.get(i + 1) {
                Some(b'%') => segments.push(Segment::Escape("%")),
                Some(b'_') => segments.push(Segment::Escape(" ")),
                Some(b'-') => segments.push(Segment::Escape("%20")),
                Some(b'{') => {
                    let end = text[i..]
                        .find('}')
                        .map(|e| i + e)
                        .ok_or_else(|| format!("unterminated macro in \"{text}\""))?;
                    segments.push(Segment::Macro(Macro::parse(&text[i + 2..end], place)?));
                    i = end + 1;
                    continue;
                }
                _ => return Err(format!("\"%\" not followed by {{, %, _ or - in \"{text}\"")),
            }
            i += 2;
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(MacroString { segments })
    }

    /// Whether the string ends with a `macro-expand` (a valid `domain-end` by itself).
    pub fn ends_with_macro(&self) -> bool {
        matches!(
            self.segments.last(),
            Some(Segment::Macro(_) | Segment::Escape(_))
        )
    }

    /// The literal text after the last `macro-expand`.
    pub fn trailing_literal(&self) -> &str {
        match self.segments.last() {
            Some(Segment::Literal(s)) => s,
            _ => "",
        }
    }

    /// Whether expanding needs the validated name of the client (`%{p}`), a DNS lookup.
    pub fn uses_validated_name(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Macro(m) if m.letter == b'p'))
    }

    pub fn expand(&self, values: &Values<'_>) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(s) => out.push_str(s),
                Segment::Escape(s) => out.push_str(s),
                Segment::Macro(m) => m.expand(values, &mut out),
            }
        }
        out
    }
}

impl Macro {
    /// Parses the inside of `%{…}`.
    fn parse(inner: &str, place: Place) -> Result<Macro, String> {
        let bytes = inner.as_bytes();
        let bad = || format!("invalid macro \"%{{{inner}}}\"");
        let (&first, mut rest) = bytes.split_first().ok_or_else(bad)?;
        let letter = first.to_ascii_lowercase();
        let allowed: &[u8] = match place {
            Place::Record => b"slodiphv",
            Place::Explanation => b"slodiphvcrt",
        };
        if !allowed.contains(&letter) {
            return Err(if b"crt".contains(&letter) {
                format!("macro \"%{{{inner}}}\" is allowed only in explanations")
            } else {
                bad()
            });
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let keep = if digits > 0 {
            let n = rest[..digits].iter().fold(0usize, |n, d| {
                n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
            });
            if n == 0 {
                return Err(format!("macro \"%{{{inner}}}\" keeps zero parts"));
            }
            Some(n)
        } else {
            None
        };
        rest = &rest[digits..];
        let reverse = matches!(rest.first(), Some(b'r' | b'R'));
        if reverse {
            rest = &rest[1..];
        }
        if !rest.iter().all(|b| b".-+,/_=".contains(b)) {
            return Err(bad());
        }
        Ok(Macro {
            letter,
            escape: first.is_ascii_uppercase(),
            keep,
            reverse,
            delimiters: rest.to_vec(),
        })
    }

    fn expand(&self, v: &Values<'_>, out: &mut String) {
        let owned;
        let value: &str = match self.letter {
            b's' => v.sender,
            b'l' => v.local,
            b'o' => v.sender_domain,
            b'd' => v.domain,
            b'i' => {
                owned = dotted(v.ip);
                &owned
            }
            b'p' => v.validated,
            b'v' => match v.ip {
                IpAddr::V4(_) => "in-addr",
                IpAddr::V6(_) => "ip6",
            },
            b'h' => v.helo,
            b'c' => {
                owned = v.ip.to_string();
                &owned
            }
            b'r' => v.receiver,
            b't' => {
                owned = v.now.to_string();
                &owned
            }
            _ => unreachable!("letters are checked at parse"),
        };
        let delimiters: &[u8] = if self.delimiters.is_empty() {
            b"."
        } else {
            &self.delimiters
        };
        let mut parts: Vec<&str> = value
            .split(|c: char| c.is_ascii() && delimiters.contains(&(c as u8)))
            .collect();
        if self.reverse {
            parts.reverse();
        }
        if let Some(keep) = self.keep
            && keep < parts.len()
        {
            parts.drain(..parts.len() - keep);
        }
        let joined = parts.join(".");
        if self.escape {
            for b in joined.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(b as char);
                } else {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        } else {
            out.push_str(&joined);
        }
    }
}

/// `%{i}`: dotted-quad for IPv4, dot-separated nibbles for IPv6 (§7.3).
fn dotted(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(63);
            for byte in v6.octets() {
                for nibble in [byte >> 4, byte & 0xf] {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push(char::from_digit(u32::from(nibble), 16).expect("a nibble"));
                }
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of RFC 7208 §7.4.
    #[test]
    fn rfc_examples() {
        let v4 = Values {
            sender: "strong-bad@email.example.com",
            local: "strong-bad",
            sender_domain: "email.example.com",
            domain: "email.example.com",
            ip: "192.0.2.3".parse().unwrap(),
            helo: "mx.example.org",
            receiver: "mx.example.net",
            now: 1,
            validated: "unknown",
        };
        let expand =
            |s: &str, v: &Values| MacroString::parse(s, Place::Explanation).unwrap().expand(v);
        for (input, want) in [
            ("%{s}", "strong-bad@email.example.com"),
            ("%{o}", "email.example.com"),
            ("%{d}", "email.example.com"),
            ("%{d4}", "email.example.com"),
            ("%{d3}", "email.example.com"),
            ("%{d2}", "example.com"),
            ("%{d1}", "com"),
            ("%{dr}", "com.example.email"),
            ("%{d2r}", "example.email"),
            ("%{l}", "strong-bad"),
            ("%{l-}", "strong.bad"),
            ("%{lr}", "strong-bad"),
            ("%{lr-}", "bad.strong"),
            ("%{l1r-}", "strong"),
            (
                "%{ir}.%{v}._spf.%{d2}",
                "3.2.0.192.in-addr._spf.example.com",
            ),
            ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
            (
                "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
                "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
            ),
            (
                "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
                "3.2.0.192.in-addr.strong.lp._spf.example.com",
            ),
            (
                "%{d2}.trusted-domains.example.net",
                "example.com.trusted-domains.example.net",
            ),
            ("%{S}", "strong-bad%40email.example.com"),
            ("%%%_%-", "% %20"),
        ] {
            assert_eq!(expand(input, &v4), want, "{input}");
        }
        let v6 = Values {
            ip: "2001:db8::cb01".parse().unwrap(),
            ..v4
        };
        assert_eq!(
            expand("%{ir}.%{v}._spf.%{d2}", &v6),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
        );
    }

    #[test]
    fn syntax() {
        for bad in [
            "%{d0}", "%{x}", "%{d", "%a", "%", "a b", "%{c}", "%{d2r+x}", "\u{7f}",
        ] {
            assert!(MacroString::parse(bad, Place::Record).is_err(), "{bad}");
        }
        assert!(MacroString::parse("%{c} at %{t}", Place::Explanation).is_ok());
        assert!(MacroString::parse("", Place::Record).is_ok());
    }
}
