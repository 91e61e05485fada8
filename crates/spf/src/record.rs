//! The SPF record grammar (RFC 7208 §4.6, §12). A record is parsed whole before it is evaluated:
//! any syntax error anywhere makes it a `permerror` (§4.6), even after a matching mechanism.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::macros::{MacroString, Place};
use crate::name;

/// A parsed SPF record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub(crate) directives: Vec<Directive>,
    pub(crate) redirect: Option<MacroString>,
    pub(crate) explanation: Option<MacroString>,
}

/// Why a record is not valid SPF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError(pub String);

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Directive {
    pub qualifier: Qualifier,
    pub mechanism: Mechanism,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mechanism {
    All,
    Include(MacroString),
    A {
        domain: Option<MacroString>,
        v4: u8,
        v6: u8,
    },
    Mx {
        domain: Option<MacroString>,
        v4: u8,
        v6: u8,
    },
    Ptr(Option<MacroString>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(MacroString),
}

impl Mechanism {
    /// The terms that query DNS and count toward the limit of ten (§4.6.4).
    pub fn queries_dns(&self) -> bool {
        matches!(
            self,
            Mechanism::Include(_)
                | Mechanism::A { .. }
                | Mechanism::Mx { .. }
                | Mechanism::Ptr(_)
                | Mechanism::Exists(_)
        )
    }
}

/// Whether a TXT record is an SPF record: `v=spf1` alone or followed by a space (§4.5).
pub fn is_spf(txt: &[u8]) -> bool {
    txt.len() >= 6
        && txt[..6].eq_ignore_ascii_case(b"v=spf1")
        && txt.get(6).is_none_or(|b| *b == b' ')
}

impl Record {
    /// Parses a record selected by [`is_spf`].
    pub fn parse(txt: &[u8]) -> Result<Record, SyntaxError> {
        if let Some(b) = txt.iter().find(|b| !matches!(b, 0x20..=0x7e)) {
            return Err(SyntaxError(if b.is_ascii() {
                format!("control character 0x{b:02x} in the record")
            } else {
                "non-ASCII text in the record".to_string()
            }));
        }
        let text = std::str::from_utf8(txt).expect("ASCII");
        if !is_spf(txt) {
            return Err(SyntaxError("the record does not start with v=spf1".into()));
        }
        let mut record = Record {
            directives: Vec::new(),
            redirect: None,
            explanation: None,
        };
        for term in text[6..].split(' ').filter(|t| !t.is_empty()) {
            record
                .term(term)
                .map_err(|why| SyntaxError(format!("{why} (term \"{term}\")")))?;
        }
        Ok(record)
    }

    fn term(&mut self, term: &str) -> Result<(), String> {
        // name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ), then "=" makes a modifier.
        let name_len = term
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
            .count();
        if term.as_bytes().get(name_len) == Some(&b'=') {
            let name = &term[..name_len];
            let value = &term[name_len + 1..];
            if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                return Err("invalid modifier name".into());
            }
            let slot = if name.eq_ignore_ascii_case("redirect") {
                &mut self.redirect
            } else if name.eq_ignore_ascii_case("exp") {
                &mut self.explanation
            } else {
                // An unknown modifier is ignored, but its value must be a macro-string.
                MacroString::parse(value, Place::Record)?;
                return Ok(());
            };
            if slot.is_some() {
                return Err(format!("{name}= given twice"));
            }
            *slot = Some(domain_spec(value)?);
            return Ok(());
        }
        let (qualifier, rest) = match term.as_bytes()[0] {
            b'+' => (Qualifier::Pass, &term[1..]),
            b'-' => (Qualifier::Fail, &term[1..]),
            b'~' => (Qualifier::SoftFail, &term[1..]),
            b'?' => (Qualifier::Neutral, &term[1..]),
            _ => (Qualifier::Pass, term),
        };
        let name_end = rest.find([':', '/']).unwrap_or(rest.len());
        let (name, args) = rest.split_at(name_end);
        let mechanism = match name.to_ascii_lowercase().as_str() {
            "all" if args.is_empty() => Mechanism::All,
            "include" => Mechanism::Include(required_domain(args)?),
            "exists" => Mechanism::Exists(required_domain(args)?),
            "a" | "mx" => {
                let (args, v4, v6) = dual_cidr(args)?;
                let domain = optional_domain(args)?;
                if name.eq_ignore_ascii_case("a") {
                    Mechanism::A { domain, v4, v6 }
                } else {
                    Mechanism::Mx { domain, v4, v6 }
                }
            }
            "ptr" => Mechanism::Ptr(optional_domain(args)?),
            "ip4" => {
                let (address, prefix) = network(args, 32, "IPv4")?;
                Mechanism::Ip4(address, prefix)
            }
            "ip6" => {
                let (address, prefix) = network(args, 128, "IPv6")?;
                Mechanism::Ip6(address, prefix)
            }
            _ => return Err("unknown mechanism".into()),
        };
        self.directives.push(Directive {
            qualifier,
            mechanism,
        });
        Ok(())
    }
}

/// `":" ip-network [ "/" prefix ]` of `ip4` and `ip6`.
fn network<A: std::str::FromStr>(args: &str, max: u8, family: &str) -> Result<(A, u8), String> {
    let network = args
        .strip_prefix(':')
        .ok_or_else(|| format!("an {family} address is required"))?;
    let (address, prefix) = match network.split_once('/') {
        Some((a, p)) => (a, cidr(p, max)?),
        None => (network, max),
    };
    let address = address
        .parse()
        .map_err(|_| format!("invalid {family} address \"{address}\""))?;
    Ok((address, prefix))
}

/// `":" domain-spec`, required.
fn required_domain(args: &str) -> Result<MacroString, String> {
    match args.strip_prefix(':') {
        Some(spec) => domain_spec(spec),
        None => Err("a domain is required".into()),
    }
}

/// `[ ":" domain-spec ]`
fn optional_domain(args: &str) -> Result<Option<MacroString>, String> {
    if args.is_empty() {
        return Ok(None);
    }
    required_domain(args).map(Some)
}

/// `domain-spec = macro-string domain-end`, `domain-end = ( "." toplabel [ "." ] ) / macro-expand`
fn domain_spec(spec: &str) -> Result<MacroString, String> {
    let macro_string = MacroString::parse(spec, Place::Record)?;
    if macro_string.ends_with_macro() {
        return Ok(macro_string);
    }
    let tail = macro_string.trailing_literal();
    let tail = tail.strip_suffix('.').unwrap_or(tail);
    match tail.rsplit_once('.') {
        Some((_, top)) if name::is_toplabel(top) => Ok(macro_string),
        _ => Err(format!("invalid domain \"{spec}\"")),
    }
}

/// Splits `[ "/" ip4-cidr ] [ "//" ip6-cidr ]` off the end of `a` and `mx` arguments.
fn dual_cidr(args: &str) -> Result<(&str, u8, u8), String> {
    let mut rest = args;
    let mut v6 = 128;
    if let Some(i) = rest.rfind("//")
        && is_digits(&rest[i + 2..])
    {
        v6 = cidr(&rest[i + 2..], 128)?;
        rest = &rest[..i];
    }
    let mut v4 = 32;
    if let Some(i) = rest.rfind('/')
        && is_digits(&rest[i + 1..])
    {
        v4 = cidr(&rest[i + 1..], 32)?;
        rest = &rest[..i];
    }
    Ok((rest, v4, v6))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A prefix length: `"0" / %x31-39 0*nDIGIT`, at most `max`.
fn cidr(s: &str, max: u8) -> Result<u8, String> {
    let valid = is_digits(s) && (s == "0" || !s.starts_with('0'));
    match s.parse::<u8>() {
        Ok(n) if valid && n <= max => Ok(n),
        _ => Err(format!("invalid prefix length \"/{s}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        for good in [
            "v=spf1",
            "v=spf1 ",
            "v=spf1  -all",
            "v=spf1 a mx/24 a:example.com/24//64 -ptr ?include:_spf.example.com ~all",
            "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 exists:%{ir}.%{v}._spf.%{d} redirect=_spf.example.com",
            "v=spf1 a:foo:bar/baz.example.com",
            "v=spf1 foo=%{l} moo.cow-far_out=",
            "V=SPF1 A:EXAMPLE.COM. -ALL",
        ] {
            assert!(Record::parse(good.as_bytes()).is_ok(), "{good}");
        }
        for bad in [
            "v=spf1 ip4:192.0.2.0/33",
            "v=spf1 ip4:192.0.2.0/032",
            "v=spf1 ip4:192.0.2.256",
            "v=spf1 ip6:::1/129",
            "v=spf1 a/33",
            "v=spf1 mx//129",
            "v=spf1 a:",
            "v=spf1 a:example.123",
            "v=spf1 a:example.-com",
            "v=spf1 include",
            "v=spf1 all:x",
            "v=spf1 foo",
            "v=spf1 redirect=a.example.com redirect=b.example.com",
            "v=spf1 exp=",
            "v=spf1 1foo=bar",
            "v=spf1 foo=%x",
            "v=spf1 -all\x01",
            "v=spf1 a:ex\u{e4}mple.com",
            "v=spf1 exists:%{c}.example.com",
        ] {
            assert!(Record::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn selection() {
        assert!(is_spf(b"v=spf1") && is_spf(b"V=Spf1 -all"));
        assert!(!is_spf(b"v=spf10") && !is_spf(b"v=spf1-all") && !is_spf(b"spf1"));
    }
}
