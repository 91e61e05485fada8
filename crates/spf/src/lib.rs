//! The Sender Policy Framework, RFC 7208, to the letter: the record grammar of §12 (any syntax
//! error anywhere makes the record a `permerror`), `check_host()` of §4 with every mechanism and
//! modifier, macro expansion (§7), and the processing limits of §4.6.4 (ten DNS-querying terms, two
//! void lookups, ten MX and PTR names).
//!
//! The crate does no I/O of its own: DNS answers come through the [`Lookup`] trait, which the
//! gateway implements over its resolver and caches. It has no dependencies and no runtime, so the
//! evaluation is the same wherever it runs (the SMTP session, `simulate`, the tests).
//!
//! Why our own: mail-auth's SPF evaluation (0.13.3) is lenient where the RFC says `permerror`
//! (bad CIDR lengths, invalid addresses and modifiers, control characters, duplicate records),
//! gives `temperror` for invalid names and macros, and does not limit void lookups; viaspf, written
//! to the RFC, is GPL-3.0-or-later, which the Apache-2.0 gateway cannot link.

mod eval;
mod macros;
mod name;
mod record;

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use eval::check_host;
pub use record::{Record, SyntaxError};

/// The result of `check_host()` (RFC 7208 §2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpfResult {
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

impl SpfResult {
    /// The result's name as RFC 7208 §2.6 and the `Received-SPF` / `Authentication-Results`
    /// fields write it.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

impl fmt::Display for SpfResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a DNS lookup gave no records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// NXDOMAIN, or an answer without records of the type (NODATA): a "void lookup" (§4.6.4).
    NotFound,
    /// A time-out, SERVFAIL or any other failure to get an answer (§2.6.6 `temperror`).
    Temporary(String),
}

/// The DNS queries SPF needs. Names are given without a trailing dot; an implementation follows
/// CNAMEs. Each method answers the records of its type at the name, or why there are none.
pub trait Lookup: Sync {
    /// Every TXT record at `name`, each one's character-strings concatenated, as bytes (a record
    /// that is not ASCII is a `permerror`, which the evaluation has to see).
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<Vec<u8>>, LookupError>> + Send;
    fn a(&self, name: &str) -> impl Future<Output = Result<Vec<Ipv4Addr>, LookupError>> + Send;
    fn aaaa(&self, name: &str) -> impl Future<Output = Result<Vec<Ipv6Addr>, LookupError>> + Send;
    /// The exchange names of the MX records (preference does not matter to SPF).
    fn mx(&self, name: &str) -> impl Future<Output = Result<Vec<String>, LookupError>> + Send;
    /// The PTR names at the reverse name of `ip`.
    fn ptr(&self, ip: IpAddr) -> impl Future<Output = Result<Vec<String>, LookupError>> + Send;
}

/// What `check_host()` is asked about (RFC 7208 §4.1).
#[derive(Clone, Debug)]
pub struct Query<'a> {
    /// The SMTP client's address; an IPv4-mapped IPv6 address is checked as IPv4 (§5).
    pub ip: IpAddr,
    /// The MAIL FROM address (`local@domain`), or the null reverse-path as `None`: then
    /// `postmaster@<helo>` (§2.4).
    pub mail_from: Option<&'a str>,
    /// The HELO/EHLO name as the client gave it.
    pub helo: &'a str,
    /// Our own host name, for the `%{r}` macro of explanations.
    pub receiver: &'a str,
    /// Seconds since the Unix epoch, for the `%{t}` macro of explanations.
    pub now: u64,
}

/// The outcome of one evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub result: SpfResult,
    /// The domain whose policy was evaluated: the MAIL FROM domain, or the HELO name.
    pub domain: String,
    /// For `fail`: the explanation the domain published with `exp=` (§6.2), if any.
    pub explanation: Option<String>,
    /// For `permerror` and `temperror`, and for `none`: what made it so, for logs and the
    /// `Authentication-Results` comment.
    pub problem: Option<String>,
}

/// SPF for a transaction: the MAIL FROM identity, or the HELO identity when the reverse-path is
/// null (RFC 7208 §2.3, §2.4). The result of the HELO check alone is [`check_helo`].
pub async fn check_mail_from<L: Lookup>(lookup: &L, query: &Query<'_>) -> Outcome {
    let domain = match query.mail_from.and_then(|m| m.rsplit_once('@')) {
        Some((_, domain)) => domain,
        None => query.helo,
    };
    check_host(lookup, query, domain).await
}

/// SPF for the HELO identity (RFC 7208 §2.3).
pub async fn check_helo<L: Lookup>(lookup: &L, query: &Query<'_>) -> Outcome {
    let query = Query {
        mail_from: None,
        ..query.clone()
    };
    check_host(lookup, &query, query.helo).await
}

/// The address as SPF sees it: IPv4-mapped IPv6 addresses are IPv4 (§5).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}
