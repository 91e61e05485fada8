//! Email authentication (SPEC §4): SPF at MAIL FROM (`portcullis-spf`, RFC 7208), DKIM, ARC and
//! DMARC at end of DATA (the `mail-auth` crate), over one hickory resolver built from
//! `[dns] nameservers`. Parsed DNS answers
//! are cached by TTL in bounded caches shared by all sessions. The outcomes become plain
//! `policy::AuthFacts`; every decision taken from them is in the pure policy crate.

use std::borrow::Borrow;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::{
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput,
    DmarcResult, Error as MaError, MX, MessageAuthenticator, Parameters, RecordSet, ResolverCache,
    SpfOutput, SpfResult, Txt,
};
use portcullis_policy::{AuthFacts, AuthResult, DkimFact, DmarcPolicy};

use crate::signature_rules;
use crate::spf_dns::SpfDns;

/// A bounded cache whose entries expire with their DNS TTL.
pub struct TtlCache<K, V> {
    inner: quick_cache::sync::Cache<K, (V, Instant)>,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        TtlCache {
            inner: quick_cache::sync::Cache::new(capacity),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ResolverCache<K, V> for TtlCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (value, valid_until) = self.inner.get(name)?;
        if valid_until > Instant::now() {
            Some(value)
        } else {
            self.inner.remove(name);
            None
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.remove(name).map(|(_, (v, _))| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        self.inner.insert(key, (value, valid_until));
    }
}

/// mail-auth's parameters with our caches plugged in.
type CachedParams<'a, P> = Parameters<
    'a,
    P,
    TtlCache<Box<str>, Txt>,
    TtlCache<Box<str>, RecordSet<MX>>,
    TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    TtlCache<IpAddr, RecordSet<Box<str>>>,
>;

struct Caches {
    txt: TtlCache<Box<str>, Txt>,
    mx: TtlCache<Box<str>, RecordSet<MX>>,
    ipv4: TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    ptr: TtlCache<IpAddr, RecordSet<Box<str>>>,
    /// SPF identities whose evaluation just failed for want of DNS (time-out, SERVFAIL), for
    /// [`FAILURE_MEMORY`]: the next message from them is deferred at once instead of waiting out
    /// the same time-outs again (NXDOMAIN and NODATA are cached by their SOA, RFC 2308, in the
    /// resolver).
    spf_failures: TtlCache<Box<str>, ()>,
    /// Header-From domains whose DMARC evaluation just failed for want of DNS, for
    /// [`FAILURE_MEMORY`]: their next messages get `dmarc=temperror` at once.
    dmarc_failures: TtlCache<Box<str>, ()>,
}

/// How long a temporary SPF or DMARC failure is remembered for its domain.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(30);

/// SPF as evaluated at MAIL FROM; kept for the DMARC evaluation and the header at end of DATA.
#[derive(Default)]
pub struct Spf {
    output: Option<SpfOutput>,
    pub result: AuthResult,
    /// The identity checked: the P1 domain, or the HELO name for the null sender.
    pub domain: Option<String>,
    helo: String,
    mail_from: String,
    /// Why SPF gave `permerror`, `temperror` or `none` (for the trace).
    pub problem: Option<String>,
}

impl Spf {
    /// The explanation a failing domain published (RFC 7208 §6.2 `exp=`).
    pub fn explanation(&self) -> Option<&str> {
        self.output.as_ref()?.explanation()
    }

    /// What an administrator reading the trace wants to know about this result: the domain's
    /// explanation of a `fail`, what made a `permerror` or `temperror`.
    pub fn note(&self) -> Option<String> {
        match self.result {
            AuthResult::Fail => self.explanation().map(|e| format!("explanation: {e}")),
            AuthResult::PermError | AuthResult::TempError => self.problem.clone(),
            _ => None,
        }
    }

    /// SPF that could not be evaluated: a temporary error (the transaction is deferred).
    pub fn temp_error() -> Spf {
        Spf {
            result: AuthResult::TempError,
            ..Default::default()
        }
    }
}

/// Authentication of one message: the facts, and the `Authentication-Results` header without the
/// per-tenant `compauth` (see [`MessageAuth::header`]).
pub struct MessageAuth {
    pub facts: AuthFacts,
    results: String,
    /// Why SPF failed or erred, for the trace (see [`Spf::note`]).
    spf_note: Option<String>,
    /// Why DMARC could not be evaluated, for the trace.
    dmarc_note: Option<String>,
}

impl MessageAuth {
    /// The header for one tenant copy: the shared results plus that copy's composite verdict.
    pub fn header(&self, compauth: &portcullis_policy::CompAuth) -> String {
        format!(
            "Authentication-Results: {};\r\n\t{compauth}\r\n",
            self.results
        )
    }

    /// A one-line summary for the trace's `AUTH` event.
    pub fn summary(&self, compauth: &portcullis_policy::CompAuth) -> String {
        let f = &self.facts;
        let dkim: Vec<String> = f
            .dkim
            .iter()
            .map(|d| format!("{} (d={} s={})", d.result.as_str(), d.domain, d.selector))
            .collect();
        format!(
            "spf={}{} dkim=[{}] arc={}{} dmarc={}{} policy={:?} header.from={} {compauth}",
            f.spf.as_str(),
            self.spf_note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            dkim.join(", "),
            f.arc.as_str(),
            f.arc_sealer
                .as_deref()
                .map(|s| format!(" (sealer {s})"))
                .unwrap_or_default(),
            f.dmarc.as_str(),
            self.dmarc_note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            f.dmarc_policy,
            f.from_domain.as_deref().unwrap_or("-"),
        )
    }
}

pub struct Authenticator {
    resolver: Option<MessageAuthenticator>,
    hostname: String,
    caches: Caches,
    pub dns_health: DnsHealth,
}

/// Whether DNS answers: set when a lookup fails with a temporary error (time-out, SERVFAIL),
/// cleared by the next that succeeds. `/readyz`, the log and `/metrics` say so once it has
/// lasted `[dns] unhealthy_after`.
pub struct DnsHealth {
    failing_since: std::sync::Mutex<Option<Instant>>,
    /// When a lookup last went out while DNS was unhealthy (one every [`DNS_RETRY_EVERY`]).
    last_try: std::sync::Mutex<Option<Instant>>,
    unhealthy_after: Duration,
}

/// While DNS is unhealthy, one lookup in this long still goes out, to see it come back; the
/// others are answered "temporary error" at once instead of each waiting out the time-outs.
pub const DNS_RETRY_EVERY: Duration = Duration::from_secs(2);

impl DnsHealth {
    fn new(unhealthy_after: Duration) -> DnsHealth {
        DnsHealth {
            failing_since: Default::default(),
            last_try: Default::default(),
            unhealthy_after,
        }
    }

    /// Whether to answer a lookup "temporary error" without asking: DNS has failed for
    /// `unhealthy_after` and another lookup tried within [`DNS_RETRY_EVERY`]. The mail is
    /// deferred either way (4xx); this only spares the client the wait.
    pub fn fail_fast(&self) -> bool {
        if self.failing_for().is_none_or(|d| d < self.unhealthy_after) {
            return false;
        }
        let mut last = self.last_try.lock().expect("not poisoned");
        match *last {
            Some(t) if t.elapsed() < DNS_RETRY_EVERY => true,
            _ => {
                *last = Some(Instant::now());
                false
            }
        }
    }

    fn record(&self, failed: bool) {
        let mut since = self.failing_since.lock().expect("not poisoned");
        if failed {
            since.get_or_insert_with(Instant::now);
        } else {
            *since = None;
        }
    }

    /// How long lookups have been failing with no success since, if they are.
    pub fn failing_for(&self) -> Option<Duration> {
        self.failing_since
            .lock()
            .expect("not poisoned")
            .map(|t| t.elapsed())
    }
}

impl Authenticator {
    /// `None` nameservers = the system resolver configuration. `enabled = false` skips every check
    /// (the header then says `none`).
    pub fn new(
        hostname: &str,
        enabled: bool,
        nameservers: &[SocketAddr],
        timeout: Duration,
        unhealthy_after: Duration,
    ) -> anyhow::Result<Authenticator> {
        let resolver = if enabled {
            let (config, mut opts) = if nameservers.is_empty() {
                mail_auth::hickory_resolver::system_conf::read_system_conf()
                    .context("reading the system resolver configuration (/etc/resolv.conf); set [dns] nameservers")?
            } else {
                let servers = nameservers
                    .iter()
                    .map(|addr| {
                        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                        for c in &mut ns.connections {
                            c.port = addr.port();
                        }
                        ns
                    })
                    .collect();
                (
                    ResolverConfig::from_parts(None, vec![], servers),
                    ResolverOpts::default(),
                )
            };
            opts.timeout = timeout;
            // One retry after the first try: an unanswered lookup fails after twice `timeout`, as the
            // README says (hickory counts retries, so its default of 2 made it three times).
            opts.attempts = 1;
            Some(MessageAuthenticator::new(config, opts).context("building the DNS resolver")?)
        } else {
            None
        };
        Ok(Authenticator {
            resolver,
            dns_health: DnsHealth::new(unhealthy_after),
            hostname: hostname.to_string(),
            caches: Caches {
                txt: TtlCache::new(16_384),
                mx: TtlCache::new(4096),
                ipv4: TtlCache::new(4096),
                ipv6: TtlCache::new(4096),
                ptr: TtlCache::new(4096),
                spf_failures: TtlCache::new(4096),
                dmarc_failures: TtlCache::new(4096),
            },
        })
    }

    /// The mail exchangers of a domain, most preferred first; the domain itself when it has no MX
    /// (RFC 5321 §5.1 implicit MX). `Err` is a temporary failure.
    pub async fn mx_hosts(&self, domain: &str) -> Result<Vec<String>, String> {
        let Some(resolver) = self.resolver.as_ref() else {
            return Ok(vec![domain.to_string()]);
        };
        match resolver.mx_lookup(domain, Some(&self.caches.mx)).await {
            Ok(set) => {
                let mut mx: Vec<(u16, String)> = set
                    .rrset
                    .iter()
                    .flat_map(|m| {
                        m.exchanges
                            .iter()
                            .map(move |e| (m.preference, e.trim_end_matches('.').to_string()))
                    })
                    .collect();
                mx.sort();
                if mx.is_empty() {
                    Ok(vec![domain.to_string()])
                } else {
                    Ok(mx.into_iter().map(|(_, h)| h).collect())
                }
            }
            Err(MaError::Dns(mail_auth::DnsError::RecordNotFound(_))) => {
                Ok(vec![domain.to_string()])
            }
            Err(e) => Err(format!("MX lookup for {domain}: {e}")),
        }
    }

    /// The addresses of a mail exchanger, through the configured DNS servers like every other
    /// lookup (IPv4 first). `Ok(None)` when DNS is off (`[auth] enabled = false`): the caller
    /// connects by name through the system resolver. `Err` is a temporary failure or no address.
    pub async fn host_addresses(
        &self,
        host: &str,
    ) -> Result<Option<Vec<std::net::IpAddr>>, String> {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(Some(vec![ip]));
        }
        let Some(resolver) = self.resolver.as_ref() else {
            return Ok(None);
        };
        let absent =
            |e: &MaError| matches!(e, MaError::Dns(mail_auth::DnsError::RecordNotFound(_)));
        let mut addresses = Vec::new();
        match resolver.ipv4_lookup(host, Some(&self.caches.ipv4)).await {
            Ok(set) => addresses.extend(set.rrset.iter().map(|a| std::net::IpAddr::V4(*a))),
            Err(e) if absent(&e) => {}
            Err(e) => return Err(format!("cannot resolve {host}: {e}")),
        }
        match resolver.ipv6_lookup(host, Some(&self.caches.ipv6)).await {
            Ok(set) => addresses.extend(set.rrset.iter().map(|a| std::net::IpAddr::V6(*a))),
            Err(e) if absent(&e) => {}
            Err(e) if addresses.is_empty() => return Err(format!("cannot resolve {host}: {e}")),
            Err(_) => {}
        }
        if addresses.is_empty() {
            return Err(format!("{host} has no address"));
        }
        Ok(Some(addresses))
    }

    /// The TXT values at `domain` (a domain's proof of control); empty when it has none.
    /// `Err` is a temporary failure. Asked afresh: a verification looks for a record just
    /// published.
    pub async fn txt_values(&self, domain: &str) -> Result<Vec<String>, String> {
        let Some(resolver) = self.resolver.as_ref() else {
            return Err("DNS is not configured ([auth] enabled = false)".into());
        };
        let name = format!("{}.", domain.trim_end_matches('.'));
        // The resolver's own cache would answer with the "no such record" of an earlier try
        // for as long as the zone's negative TTL. Verifications are rare administrator
        // actions: the parsed-record caches above it (SPF, DKIM, DMARC) are not touched.
        resolver.resolver().clear_cache();
        match resolver.resolver().txt_lookup(name).await {
            Ok(answer) => Ok(answer
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    mail_auth::hickory_resolver::proto::rr::RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The reverse DNS (PTR) name of an address, cached; `None` without one or without DNS.
    pub async fn ptr(&self, ip: IpAddr) -> Option<String> {
        let resolver = self.resolver.as_ref()?;
        let names = resolver.ptr_lookup(ip, Some(&self.caches.ptr)).await.ok()?;
        names
            .rrset
            .first()
            .map(|n| n.trim_end_matches('.').to_string())
    }

    pub fn enabled(&self) -> bool {
        self.resolver.is_some()
    }

    fn params<P>(&self, p: P) -> CachedParams<'_, P> {
        Parameters::new(p)
            .with_txt_cache(&self.caches.txt)
            .with_mx_cache(&self.caches.mx)
            .with_ipv4_cache(&self.caches.ipv4)
            .with_ipv6_cache(&self.caches.ipv6)
            .with_ptr_cache(&self.caches.ptr)
    }

    /// SPF for MAIL FROM, or for the HELO identity when the sender is null (RFC 7208 §2.3).
    /// `ip` is canonical (the listener canonicalizes at accept).
    pub async fn spf(&self, ip: IpAddr, helo: &str, mail_from: Option<&str>) -> Spf {
        let mut spf = Spf {
            output: None,
            result: AuthResult::None,
            domain: None,
            helo: helo.to_string(),
            mail_from: mail_from.unwrap_or("").to_string(),
            problem: None,
        };
        let Some(resolver) = &self.resolver else {
            return spf;
        };
        if self.dns_health.fail_fast() {
            metrics::counter!("portcullis_dns_fail_fast_total").increment(1);
            spf.result = AuthResult::TempError;
            return spf;
        }
        let identity: Box<str> = match mail_from.and_then(|f| f.rsplit_once('@')) {
            Some((_, d)) => d.to_ascii_lowercase().into(),
            None => helo.to_ascii_lowercase().into(),
        };
        if self.caches.spf_failures.get(&identity).is_some() {
            metrics::counter!("portcullis_dns_failure_remembered_total").increment(1);
            spf.result = AuthResult::TempError;
            spf.domain = Some(identity.into());
            return spf;
        }
        let query = portcullis_spf::Query {
            ip,
            mail_from,
            helo,
            receiver: &self.hostname,
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let outcome =
            portcullis_spf::check_mail_from(&SpfDns::new(resolver.resolver()), &query).await;
        let (result, ma_result) = match outcome.result {
            portcullis_spf::SpfResult::Pass => (AuthResult::Pass, SpfResult::Pass),
            portcullis_spf::SpfResult::Fail => (AuthResult::Fail, SpfResult::Fail),
            portcullis_spf::SpfResult::SoftFail => (AuthResult::SoftFail, SpfResult::SoftFail),
            portcullis_spf::SpfResult::Neutral => (AuthResult::Neutral, SpfResult::Neutral),
            portcullis_spf::SpfResult::TempError => (AuthResult::TempError, SpfResult::TempError),
            portcullis_spf::SpfResult::PermError => (AuthResult::PermError, SpfResult::PermError),
            portcullis_spf::SpfResult::None => (AuthResult::None, SpfResult::None),
        };
        spf.result = result;
        spf.problem = outcome.problem;
        self.dns_health.record(spf.result == AuthResult::TempError);
        if spf.result == AuthResult::TempError {
            self.caches
                .spf_failures
                .insert(identity, (), Instant::now() + FAILURE_MEMORY);
        }
        let domain = outcome.domain.to_ascii_lowercase();
        // DMARC (mail-auth) reads the result and domain from its own type.
        let mut output = SpfOutput::new(domain.clone()).with_result(ma_result);
        if let Some(explanation) = outcome.explanation {
            output = output.with_explanation(explanation);
        }
        spf.domain = Some(domain);
        spf.output = Some(output);
        spf
    }

    /// DKIM, ARC and DMARC for a received message (the bytes as received, before we add or
    /// remove anything).
    /// `headers` are the message's header fields (`message::header_fields`), read once by the
    /// caller for everything that needs them.
    pub async fn message(
        &self,
        raw: &[u8],
        headers: &[(String, String)],
        ip: IpAddr,
        spf: &Spf,
    ) -> MessageAuth {
        let Some(resolver) = &self.resolver else {
            return MessageAuth {
                facts: AuthFacts::default(),
                results: format!("{}; none", self.hostname),
                spf_note: None,
                dmarc_note: None,
            };
        };
        if self.dns_health.fail_fast() {
            metrics::counter!("portcullis_dns_fail_fast_total").increment(1);
            return self.unavailable(spf, "DNS unavailable");
        }
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            // Not even a header section: nothing can pass.
            let mut facts = AuthFacts {
                evaluated: true,
                spf: spf.result,
                spf_domain: spf.domain.clone(),
                ..Default::default()
            };
            facts.dmarc = AuthResult::None;
            let mut ar = AuthenticationResults::new(&self.hostname);
            if let Some(out) = &spf.output {
                ar = self.with_spf(ar, out, ip, spf);
            }
            return MessageAuth {
                facts,
                results: ar.to_string(),
                spf_note: spf.note(),
                dmarc_note: None,
            };
        };
        let from_domain = message
            .from()
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
            .filter(|d| !d.is_empty());
        if let Some(domain) = &from_domain
            && self.caches.dmarc_failures.get(domain.as_str()).is_some()
        {
            metrics::counter!("portcullis_dns_failure_remembered_total").increment(1);
            return self.unavailable(spf, &format!("DNS for {domain} failed moments ago"));
        }
        let dkim = resolver.verify_dkim(self.params(&message)).await;
        let arc = resolver.verify_arc(self.params(&message)).await;
        // What mail-auth does not check (signature_rules.rs): a signature breaking a rule is a
        // permerror and never reaches DMARC; an ARC chain breaking one fails.
        let dkim_values: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("dkim-signature"))
            .map(|(_, v)| v.as_str())
            .collect();
        let broken: Vec<Option<String>> = dkim
            .iter()
            .map(|d| {
                let sig = d.signature()?;
                let value = dkim_values
                    .iter()
                    .find(|v| signature_rules::signature_b(v).as_deref() == Some(&sig.b[..]))?;
                signature_rules::dkim_signature_problem(value)
            })
            .collect();
        let dkim_for_dmarc: Vec<DkimOutput<'_>> = dkim
            .iter()
            .zip(&broken)
            .filter(|(_, b)| b.is_none())
            .map(|(d, _)| d.clone())
            .collect();
        let arc_broken = signature_rules::arc_problem(headers);
        let spf_output = spf
            .output
            .clone()
            .unwrap_or_else(|| SpfOutput::new(String::new()));
        let p1_or_helo = match spf.mail_from.rsplit_once('@') {
            Some((_, d)) => d.to_string(),
            None => spf.helo.clone(),
        };
        let dmarc = resolver
            .verify_dmarc(self.params(DmarcParameters::new(
                &message,
                &dkim_for_dmarc,
                &p1_or_helo,
                &spf_output,
            )))
            .await;

        let facts = AuthFacts {
            evaluated: true,
            spf: spf.result,
            spf_domain: spf.domain.clone(),
            dkim: dkim
                .iter()
                .zip(&broken)
                .map(|(d, b)| DkimFact {
                    result: match b {
                        Some(_) => AuthResult::PermError,
                        None => dkim_result(d.result()),
                    },
                    domain: d
                        .signature()
                        .map(|s| s.d.to_ascii_lowercase())
                        .unwrap_or_default(),
                    selector: d.signature().map(|s| s.s.clone()).unwrap_or_default(),
                })
                .collect(),
            arc: match &arc_broken {
                Some(_) => AuthResult::Fail,
                None => arc_result(arc.result()),
            },
            arc_sealer: arc
                .sets()
                .iter()
                .max_by_key(|set| set.seal.header.i)
                .map(|set| set.seal.header.d.to_ascii_lowercase()),
            dmarc: match dmarc.result() {
                DmarcResult::Pass => AuthResult::Pass,
                DmarcResult::Fail(_) => AuthResult::Fail,
                DmarcResult::TempError(_) => AuthResult::TempError,
                DmarcResult::PermError(_) => AuthResult::PermError,
                DmarcResult::None => AuthResult::None,
            },
            dmarc_policy: match (dmarc.dmarc_record(), dmarc.policy()) {
                (None, _) => DmarcPolicy::Absent,
                (Some(_), Policy::Reject) => DmarcPolicy::Reject,
                (Some(_), Policy::Quarantine) => DmarcPolicy::Quarantine,
                (Some(_), Policy::None | Policy::Unspecified) => DmarcPolicy::None,
            },
            from_domain,
        };
        self.dns_health.record(facts.temp_error());
        if facts.dmarc == AuthResult::TempError
            && let Some(domain) = &facts.from_domain
        {
            self.caches.dmarc_failures.insert(
                domain.as_str().into(),
                (),
                Instant::now() + FAILURE_MEMORY,
            );
        }
        let results = self.results_text(ip, spf, &dkim, &broken, &arc, arc_broken, &dmarc, &facts);
        let dmarc_note = match dmarc.result() {
            DmarcResult::TempError(e) => Some(e.to_string()),
            _ => None,
        };
        MessageAuth {
            facts,
            results,
            spf_note: spf.note(),
            dmarc_note,
        }
    }

    /// The authentication of a message whose DKIM, ARC and DMARC could not be evaluated
    /// (`why`): DMARC a temporary error, SPF as far as it got.
    pub fn unavailable(&self, spf: &Spf, why: &str) -> MessageAuth {
        let facts = AuthFacts {
            evaluated: true,
            spf: spf.result,
            spf_domain: spf.domain.clone(),
            dmarc: AuthResult::TempError,
            ..Default::default()
        };
        MessageAuth {
            facts,
            results: format!("{};\r\n\tdmarc=temperror ({why})", self.hostname),
            spf_note: spf.note(),
            dmarc_note: Some(why.to_string()),
        }
    }

    /// The `Authentication-Results` value (RFC 8601) for a message: SPF, then DKIM and ARC
    /// entries of our own, then DMARC.
    fn results_text(
        &self,
        ip: IpAddr,
        spf: &Spf,
        dkim: &[DkimOutput<'_>],
        broken: &[Option<String>],
        arc: &ArcOutput<'_>,
        arc_broken: Option<String>,
        dmarc: &DmarcOutput,
        facts: &AuthFacts,
    ) -> String {
        // DKIM and ARC entries are ours: one per signature naming header.d (mail-auth writes
        // header.i when the signature has i=), with the results as mapped above (a body changed
        // after signing is a failure, and ARC knows only none, pass and fail).
        let mut results = self.hostname.clone();
        if dkim.is_empty() {
            // RFC 8601 §2.7.1: say that there was nothing to verify.
            results.push_str(";\r\n\tdkim=none (no signatures)");
        }
        for ((out, fact), broken) in dkim.iter().zip(&facts.dkim).zip(broken) {
            results.push_str(&format!(";\r\n\tdkim={}", fact.result.as_str()));
            if let Some(why) = broken.clone().or_else(|| dkim_error(out.result())) {
                results.push_str(&format!(" ({})", ar_comment(&why)));
            }
            if !fact.domain.is_empty() {
                results.push_str(&format!(
                    " header.d={} header.s={}",
                    ar_value(&fact.domain),
                    ar_value(&fact.selector)
                ));
            }
        }
        let mut ar = AuthenticationResults::new(&self.hostname);
        if let Some(out) = &spf.output {
            ar = self.with_spf(ar, out, ip, spf);
        }
        if facts.from_domain.is_some() {
            ar = ar.with_dmarc_result(dmarc);
        }
        let spf_dmarc = ar.to_string();
        let (spf_part, dmarc_part) = match spf_dmarc.find(";\r\n\tdmarc=") {
            Some(i) => spf_dmarc.split_at(i),
            None => (spf_dmarc.as_str(), ""),
        };
        results.push_str(&spf_part[self.hostname.len()..]);
        if !arc.sets().is_empty() || arc.result() != &DkimResult::None || arc_broken.is_some() {
            results.push_str(&format!(";\r\n\tarc={}", facts.arc.as_str()));
            if let Some(why) = arc_broken.or_else(|| dkim_error(arc.result())) {
                results.push_str(&format!(" ({})", ar_comment(&why)));
            }
            results.push_str(&format!(" smtp.remote-ip={ip}"));
        }
        results.push_str(dmarc_part);
        results
    }

    fn with_spf<'a>(
        &self,
        ar: AuthenticationResults<'a>,
        out: &SpfOutput,
        ip: IpAddr,
        spf: &Spf,
    ) -> AuthenticationResults<'a> {
        if spf.mail_from.is_empty() {
            ar.with_spf_ehlo_result(out, ip, &spf.helo)
        } else {
            ar.with_spf_mailfrom_result(out, ip, &spf.mail_from, &spf.helo)
        }
    }
}

/// mail-auth reports a body-hash mismatch as `neutral`; for us a body changed after signing is a
/// failed signature (RFC 6376 §6.3), so it is mapped to `fail` on purpose.
/// RFC 8617 §4.4: an ARC chain is `none`, `pass` or `fail` (temporary DNS errors aside).
fn arc_result(r: &DkimResult) -> AuthResult {
    match r {
        DkimResult::Pass => AuthResult::Pass,
        DkimResult::None => AuthResult::None,
        DkimResult::TempError(_) => AuthResult::TempError,
        _ => AuthResult::Fail,
    }
}

fn dkim_error(r: &DkimResult) -> Option<String> {
    match r {
        DkimResult::Pass | DkimResult::None => None,
        DkimResult::Neutral(e)
        | DkimResult::Fail(e)
        | DkimResult::PermError(e)
        | DkimResult::TempError(e) => Some(e.to_string()),
    }
}

/// An RFC 8601 comment: no parentheses, backslashes or line breaks from the error text.
fn ar_comment(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '(' | ')' | '\\' | '\r' | '\n'))
        .collect()
}

/// A property value: a token, else a quoted string.
fn ar_value(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace(['\\', '"', '\r', '\n'], ""))
    }
}

fn dkim_result(r: &DkimResult) -> AuthResult {
    match r {
        DkimResult::Pass => AuthResult::Pass,
        DkimResult::Neutral(MaError::Dkim(DkimError::FailedBodyHashMatch)) => AuthResult::Fail,
        DkimResult::Neutral(_) => AuthResult::Neutral,
        DkimResult::Fail(_) => AuthResult::Fail,
        DkimResult::PermError(_) => AuthResult::PermError,
        DkimResult::TempError(_) => AuthResult::TempError,
        DkimResult::None => AuthResult::None,
    }
}
