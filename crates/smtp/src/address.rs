//! Mailbox addresses and paths (RFC 5321 §4.1.2, with RFC 6531 UTF-8 extensions).
//!
//! Parsing is byte-oriented over `&str`: every delimiter is ASCII, so slicing is always on a
//! char boundary. Non-ASCII characters are accepted wherever RFC 6531 allows UTF-8; whether
//! the transaction may use them (SMTPUTF8) is the caller's check, via [`Address::is_ascii`].

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 5321 §4.5.3.1.1.
const MAX_LOCAL: usize = 64;
/// RFC 5321 §4.5.3.1.2.
const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3, brackets included.
const MAX_PATH: usize = 256;

/// A mailbox `local@domain`. The local part is kept exactly as written (quotes included, so it
/// round-trips); the domain is lowercased.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    local: String,
    domain: String,
}

impl Address {
    /// Parses a bare `local@domain` (no angle brackets), as typed on the CLI or admin API.
    pub fn parse(s: &str) -> Option<Address> {
        if s.len() > MAX_PATH - 2 {
            return None;
        }
        let mut p = Parser::new(s);
        let address = p.mailbox()?;
        p.at_end().then_some(address)
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    /// Lowercased domain, or an address literal such as `[192.0.2.1]` / `[ipv6:2001:db8::1]`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// False when the local part or the domain has UTF-8 (needs SMTPUTF8).
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// The MAIL FROM path: the null sender `<>` or a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReversePath {
    Null,
    Address(Address),
}

impl ReversePath {
    /// The sender's domain; `None` for the null sender.
    pub fn domain(&self) -> Option<&str> {
        self.address().map(Address::domain)
    }

    pub fn address(&self) -> Option<&Address> {
        match self {
            ReversePath::Null => None,
            ReversePath::Address(a) => Some(a),
        }
    }
}

/// `<>` for the null sender, `local@domain` otherwise.
impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Address(a) => a.fmt(f),
        }
    }
}

/// Parses `<path>` at the start of `s`: `Some((None, n))` for `<>` when `allow_null`,
/// `Some((Some(address), n))` otherwise, `n` being the bytes consumed. An A-d-l source route
/// (`<@a.example,@b.example:user@domain>`) is accepted and ignored. `<postmaster>` without a
/// domain is not accepted (documented limitation).
pub(crate) fn parse_path(s: &str, allow_null: bool) -> Option<(Option<Address>, usize)> {
    let mut p = Parser::new(s);
    p.eat(b'<')?;
    if allow_null && p.eat(b'>').is_some() {
        return Some((None, p.pos));
    }
    if p.peek() == Some(b'@') {
        loop {
            p.eat(b'@')?;
            p.domain()?;
            if p.eat(b',').is_none() {
                p.eat(b':')?;
                break;
            }
        }
    }
    let address = p.mailbox()?;
    p.eat(b'>')?;
    (p.pos <= MAX_PATH).then_some((Some(address), p.pos))
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos == self.s.len()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.pos += 1)
    }

    /// Advances over bytes satisfying `f`; returns how many.
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn mailbox(&mut self) -> Option<Address> {
        let start = self.pos;
        if self.peek() == Some(b'"') {
            self.quoted_string()?;
        } else {
            self.dot_string()?;
        }
        let local = &self.s[start..self.pos];
        if local.len() > MAX_LOCAL || has_control(local) {
            return None;
        }
        self.eat(b'@')?;
        let domain = self.domain()?;
        Some(Address {
            local: local.to_string(),
            domain,
        })
    }

    fn dot_string(&mut self) -> Option<()> {
        loop {
            if self.take_while(is_atext) == 0 {
                return None;
            }
            if self.eat(b'.').is_none() {
                return Some(());
            }
        }
    }

    fn quoted_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\' => {
                    self.pos += 1;
                    // quoted-pairSMTP = "\" %d32-126
                    if !(32..=126).contains(&self.peek()?) {
                        return None;
                    }
                    self.pos += 1;
                }
                32..=126 | 0x80.. => self.pos += 1,
                _ => return None,
            }
        }
    }

    /// A domain name or address literal, returned lowercased.
    fn domain(&mut self) -> Option<String> {
        let start = self.pos;
        if self.eat(b'[').is_some() {
            let len = self.take_while(|b| b != b']' && b != b'[' && b != b'\\');
            self.eat(b']')?;
            let inner = &self.s[start + 1..start + 1 + len];
            let valid = match inner.get(..5) {
                Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
                    inner[5..].parse::<Ipv6Addr>().is_ok()
                }
                _ => inner.parse::<Ipv4Addr>().is_ok(),
            };
            return valid.then(|| self.s[start..self.pos].to_ascii_lowercase());
        }
        loop {
            let label_start = self.pos;
            let len = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80);
            let label = &self.s.as_bytes()[label_start..self.pos];
            if len == 0 || len > 63 || label[0] == b'-' || label[len - 1] == b'-' {
                return None;
            }
            // Only continue when a dot is followed by another label character.
            if self.peek() == Some(b'.')
                && self
                    .s
                    .as_bytes()
                    .get(self.pos + 1)
                    .is_some_and(|&b| b.is_ascii_alphanumeric() || b >= 0x80)
            {
                self.pos += 1;
            } else {
                break;
            }
        }
        let domain = &self.s[start..self.pos];
        if domain.len() > MAX_DOMAIN || has_control(domain) {
            return None;
        }
        Some(if domain.is_ascii() {
            domain.to_ascii_lowercase()
        } else {
            domain.to_lowercase()
        })
    }
}

/// RFC 5322 atext, plus any UTF-8 byte (RFC 6531; control characters are refused afterwards).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

fn has_control(s: &str) -> bool {
    !s.is_ascii() && s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_addresses() {
        let ok: &[(&str, &str, &str)] = &[
            ("user@example.com", "user", "example.com"),
            ("User.Name@EXAMPLE.Com", "User.Name", "example.com"),
            ("a+tag@sub-1.example.org", "a+tag", "sub-1.example.org"),
            ("!#$%&'*+-/=?^_`{|}~@x", "!#$%&'*+-/=?^_`{|}~", "x"),
            ("\"john doe\"@example.com", "\"john doe\"", "example.com"),
            ("\"a@b\\\"c\"@example.com", "\"a@b\\\"c\"", "example.com"),
            ("\"\"@example.com", "\"\"", "example.com"),
            ("u@[192.0.2.1]", "u", "[192.0.2.1]"),
            ("u@[IPv6:2001:DB8::1]", "u", "[ipv6:2001:db8::1]"),
            ("δοκιμή@παράδειγμα.δοκιμή", "δοκιμή", "παράδειγμα.δοκιμή"),
            ("Ü@BÜCHER.Example", "Ü", "bücher.example"),
            ("x@123.example", "x", "123.example"),
        ];
        for &(input, local, domain) in ok {
            let a = Address::parse(input).unwrap_or_else(|| panic!("{input} should parse"));
            assert_eq!((a.local(), a.domain()), (local, domain), "{input}");
            assert_eq!(a.to_string(), format!("{local}@{domain}"));
            assert_eq!(a.is_ascii(), input.is_ascii(), "{input}");
        }
        let bad = [
            "",
            "user",
            "@example.com",
            "user@",
            "user@@example.com",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "us er@example.com",
            "user@-example.com",
            "user@example-.com",
            "user@example..com",
            "user@example.com.",
            "user@.example.com",
            "user@exa_mple.com",
            "<user@example.com>",
            "user@example.com ",
            "\"unterminated@example.com",
            "\"bad\u{7}ctl\"@example.com",
            "\"bad\\\u{1}\"@example.com",
            "a\u{85}b@example.com",
            "user@[192.0.2.256]",
            "user@[1.2.3]",
            "user@[IPv6:1.2.3.4]",
            "user@[IPv6:zz::1]",
            "user@[2001:db8::1]",
            "user@[foo:bar]",
            "user@[192.0.2.1",
        ];
        for input in bad {
            assert_eq!(Address::parse(input), None, "{input:?} should not parse");
        }
    }

    #[test]
    fn length_limits() {
        let local64 = "a".repeat(64);
        assert!(Address::parse(&format!("{local64}@x.example")).is_some());
        assert!(Address::parse(&format!("a{local64}@x.example")).is_none());
        let label63 = "b".repeat(63);
        assert!(Address::parse(&format!("u@{label63}.example")).is_some());
        assert!(Address::parse(&format!("u@b{label63}.example")).is_none());
        // 4 * 63 + 3 dots = 255 octets of domain: too long for a path with the local part.
        let long = [label63.as_str(); 4].join(".");
        assert_eq!(long.len(), 255);
        assert!(Address::parse(&format!("u@{long}")).is_none());
        let path_ok = format!("<u@{}>", [label63.as_str(); 3].join("."));
        assert!(parse_path(&path_ok, false).is_some());
    }

    #[test]
    fn paths() {
        let (a, n) = parse_path("<user@Example.COM> SIZE=1", false).unwrap();
        assert_eq!(n, 18);
        assert_eq!(a.unwrap().to_string(), "user@example.com");
        assert_eq!(parse_path("<>", true), Some((None, 2)));
        assert_eq!(parse_path("<>", false), None);
        let (a, _) = parse_path("<@a.example,@[192.0.2.1]:user@domain.example>", false).unwrap();
        assert_eq!(a.unwrap().to_string(), "user@domain.example");
        let (a, _) = parse_path("<\"odd >\"@example.com>", false).unwrap();
        assert_eq!(a.unwrap().local(), "\"odd >\"");
        for bad in [
            "user@example.com",
            "<user@example.com",
            "<postmaster>",
            "<@a.example:>",
            "<@a.example user@b.example>",
            "<@:user@b.example>",
            "< user@example.com>",
            "<user@example.com >",
            "",
            "<",
        ] {
            assert_eq!(parse_path(bad, true), None, "{bad:?}");
        }
    }

    #[test]
    fn reverse_path() {
        assert_eq!(ReversePath::Null.to_string(), "<>");
        assert_eq!(ReversePath::Null.domain(), None);
        let a = Address::parse("x@y.example").unwrap();
        let rp = ReversePath::Address(a.clone());
        assert_eq!(rp.domain(), Some("y.example"));
        assert_eq!(rp.address(), Some(&a));
        assert_eq!(rp.to_string(), "x@y.example");
    }
}
