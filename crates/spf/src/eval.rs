//! `check_host()` (RFC 7208 §4): record lookup and selection, mechanisms (§5), `redirect=` and
//! `exp=` (§6), and the processing limits of §4.6.4, counted across `include:` and `redirect=`.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;

use crate::macros::{MacroString, Place, Values};
use crate::record::{self, Directive, Mechanism, Qualifier, Record};
use crate::{Lookup, LookupError, Outcome, Query, SpfResult, canonical, name};

/// At most this many DNS-querying terms per evaluation (§4.6.4).
const MAX_DNS_TERMS: u32 = 10;
/// At most this many void lookups (NXDOMAIN or no records) per evaluation (§4.6.4).
const MAX_VOID_LOOKUPS: u32 = 2;
/// At most this many MX names per `mx`, and PTR names per `ptr` / `%{p}` (§4.6.4).
const MAX_NAMES: usize = 10;

/// `check_host(ip, domain, sender)` for `domain` (§4.1): the MAIL FROM or HELO domain.
pub async fn check_host<L: Lookup>(lookup: &L, query: &Query<'_>, domain: &str) -> Outcome {
    let domain = domain.strip_suffix('.').unwrap_or(domain).to_string();
    let (local, sender_domain) = match query.mail_from.and_then(|m| m.rsplit_once('@')) {
        Some(("", d)) => ("postmaster".to_string(), d.to_string()),
        Some((l, d)) => (l.to_string(), d.to_string()),
        None => ("postmaster".to_string(), query.helo.to_string()),
    };
    let outcome = |result, problem: Option<String>| Outcome {
        result,
        domain: domain.clone(),
        explanation: None,
        problem,
    };
    // §4.3: a name that is not a valid multi-label domain (a domain literal, an empty or
    // over-long label) has no policy.
    if !name::is_checkable(&domain) {
        return outcome(
            SpfResult::None,
            Some(format!("\"{domain}\" is not a valid domain name")),
        );
    }
    let mut evaluation = Evaluation {
        lookup,
        ip: canonical(query.ip),
        sender: format!("{local}@{sender_domain}"),
        local,
        sender_domain,
        helo: query.helo,
        receiver: query.receiver,
        now: query.now,
        dns_terms: 0,
        void_lookups: 0,
        validated: None,
    };
    let result = evaluation.evaluate(domain.clone(), true).await;
    Outcome {
        result: result.result,
        domain,
        explanation: result.explanation,
        problem: result.problem,
    }
}

struct Evaluation<'a, L> {
    lookup: &'a L,
    ip: IpAddr,
    sender: String,
    local: String,
    sender_domain: String,
    helo: &'a str,
    receiver: &'a str,
    now: u64,
    dns_terms: u32,
    void_lookups: u32,
    /// `%{p}`, looked up once when first needed.
    validated: Option<String>,
}

/// The outcome of one record's evaluation.
struct Evaluated {
    result: SpfResult,
    explanation: Option<String>,
    problem: Option<String>,
}

impl Evaluated {
    fn of(result: SpfResult) -> Evaluated {
        Evaluated {
            result,
            explanation: None,
            problem: None,
        }
    }

    fn error(result: SpfResult, problem: String) -> Evaluated {
        Evaluated {
            result,
            explanation: None,
            problem: Some(problem),
        }
    }
}

/// A mechanism that could not be evaluated ends the evaluation with this result.
struct Abort(SpfResult, String);

impl From<Abort> for Evaluated {
    fn from(Abort(result, problem): Abort) -> Evaluated {
        Evaluated::error(result, problem)
    }
}

type Boxed<'f, T> = Pin<Box<dyn Future<Output = T> + Send + 'f>>;

impl<'a, L: Lookup> Evaluation<'a, L> {
    /// The record of `domain`, evaluated. `top` is false inside `include:`, whose `exp=` is never
    /// used (§6.2).
    fn evaluate(&mut self, domain: String, top: bool) -> Boxed<'_, Evaluated> {
        Box::pin(async move {
            let record = match self.record(&domain).await {
                Ok(Some(record)) => record,
                Ok(None) => {
                    return Evaluated::error(
                        SpfResult::None,
                        format!("{domain} publishes no SPF record"),
                    );
                }
                Err(abort) => return abort.into(),
            };
            for Directive {
                qualifier,
                mechanism,
            } in &record.directives
            {
                if mechanism.queries_dns()
                    && let Err(abort) = self.count_dns_term()
                {
                    return abort.into();
                }
                match self.matches(mechanism, &domain).await {
                    Ok(false) => continue,
                    Ok(true) => {
                        let result = match qualifier {
                            Qualifier::Pass => SpfResult::Pass,
                            Qualifier::Fail => SpfResult::Fail,
                            Qualifier::SoftFail => SpfResult::SoftFail,
                            Qualifier::Neutral => SpfResult::Neutral,
                        };
                        let mut evaluated = Evaluated::of(result);
                        if result == SpfResult::Fail
                            && top
                            && let Some(exp) = &record.explanation
                        {
                            evaluated.explanation = self.explanation(exp, &domain).await;
                        }
                        return evaluated;
                    }
                    Err(abort) => return abort.into(),
                }
            }
            let Some(redirect) = &record.redirect else {
                return Evaluated::of(SpfResult::Neutral);
            };
            // §6.1: the redirect's own result, with its own explanation; "none" is a permerror.
            if let Err(abort) = self.count_dns_term() {
                return abort.into();
            }
            let target = match self.target(redirect, &domain).await {
                Ok(target) => target,
                Err(abort) => return abort.into(),
            };
            let evaluated = self.evaluate(target.clone(), top).await;
            if evaluated.result == SpfResult::None {
                return Evaluated::error(
                    SpfResult::PermError,
                    format!("redirect={target}: no SPF record there"),
                );
            }
            evaluated
        })
    }

    /// The SPF record of `domain` (§4.4, §4.5): `None` when it has none.
    async fn record(&mut self, domain: &str) -> Result<Option<Record>, Abort> {
        let records = match self.lookup.txt(domain).await {
            Ok(records) => records,
            Err(LookupError::NotFound) => return Ok(None),
            Err(LookupError::Temporary(why)) => {
                return Err(Abort(SpfResult::TempError, format!("TXT {domain}: {why}")));
            }
        };
        let mut spf = records.iter().filter(|txt| record::is_spf(txt));
        let (Some(first), None) = (spf.next(), spf.next()) else {
            return if records.iter().any(|txt| record::is_spf(txt)) {
                Err(Abort(
                    SpfResult::PermError,
                    format!("{domain} publishes more than one SPF record"),
                ))
            } else {
                Ok(None)
            };
        };
        Record::parse(first)
            .map(Some)
            .map_err(|e| Abort(SpfResult::PermError, format!("{domain}: {e}")))
    }

    fn count_dns_term(&mut self) -> Result<(), Abort> {
        self.dns_terms += 1;
        if self.dns_terms > MAX_DNS_TERMS {
            return Err(Abort(
                SpfResult::PermError,
                format!("more than {MAX_DNS_TERMS} DNS-querying terms"),
            ));
        }
        Ok(())
    }

    /// Counts a lookup that found nothing (§4.6.4).
    fn void(&mut self) -> Result<(), Abort> {
        self.void_lookups += 1;
        if self.void_lookups > MAX_VOID_LOOKUPS {
            return Err(Abort(
                SpfResult::PermError,
                format!("more than {MAX_VOID_LOOKUPS} void DNS lookups"),
            ));
        }
        Ok(())
    }

    async fn matches(&mut self, mechanism: &Mechanism, domain: &str) -> Result<bool, Abort> {
        match mechanism {
            Mechanism::All => Ok(true),
            Mechanism::Ip4(network, prefix) => Ok(match self.ip {
                IpAddr::V4(ip) => in_v4(ip, *network, *prefix),
                IpAddr::V6(_) => false,
            }),
            Mechanism::Ip6(network, prefix) => Ok(match self.ip {
                IpAddr::V6(ip) => in_v6(ip, *network, *prefix),
                IpAddr::V4(_) => false,
            }),
            Mechanism::A {
                domain: spec,
                v4,
                v6,
            } => {
                let target = self.optional_target(spec.as_ref(), domain).await?;
                self.address_matches(&target, *v4, *v6, true).await
            }
            Mechanism::Mx {
                domain: spec,
                v4,
                v6,
            } => {
                let target = self.optional_target(spec.as_ref(), domain).await?;
                let exchanges = match self.lookup.mx(&target).await {
                    Ok(exchanges) => exchanges,
                    Err(LookupError::NotFound) => {
                        self.void()?;
                        return Ok(false);
                    }
                    Err(LookupError::Temporary(why)) => {
                        return Err(Abort(SpfResult::TempError, format!("MX {target}: {why}")));
                    }
                };
                if exchanges.len() > MAX_NAMES {
                    return Err(Abort(
                        SpfResult::PermError,
                        format!("{target} has more than {MAX_NAMES} MX records"),
                    ));
                }
                for exchange in exchanges {
                    let exchange = exchange.trim_end_matches('.');
                    // A null MX (RFC 7505) names no host.
                    if exchange.is_empty() {
                        continue;
                    }
                    if self.address_matches(exchange, *v4, *v6, false).await? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                let target = self.optional_target(spec.as_ref(), domain).await?;
                let names = self.validated_names().await?;
                Ok(names.iter().any(|n| name::is_same_or_subdomain(n, &target)))
            }
            Mechanism::Exists(spec) => {
                let target = self.target(spec, domain).await?;
                // §5.7: an A query whatever the client's address family.
                match self.lookup.a(&target).await {
                    Ok(addresses) => Ok(!addresses.is_empty()),
                    Err(LookupError::NotFound) => {
                        self.void()?;
                        Ok(false)
                    }
                    Err(LookupError::Temporary(why)) => {
                        Err(Abort(SpfResult::TempError, format!("A {target}: {why}")))
                    }
                }
            }
            Mechanism::Include(spec) => {
                let target = self.target(spec, domain).await?;
                let inner = self.evaluate(target.clone(), false).await;
                // §5.2: the included record's result decides only whether this matches.
                match inner.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError => Err(Abort(
                        SpfResult::TempError,
                        inner.problem.unwrap_or_default(),
                    )),
                    SpfResult::PermError => Err(Abort(
                        SpfResult::PermError,
                        inner.problem.unwrap_or_default(),
                    )),
                    SpfResult::None => Err(Abort(
                        SpfResult::PermError,
                        format!("include:{target}: no SPF record there"),
                    )),
                }
            }
        }
    }

    /// Whether an address of `host` (A or AAAA by the client's family) is in the client's
    /// network. `void` counts a name without addresses as a void lookup (the `a` mechanism's own
    /// name; not each MX host).
    async fn address_matches(
        &mut self,
        host: &str,
        v4: u8,
        v6: u8,
        void: bool,
    ) -> Result<bool, Abort> {
        let found = match self.ip {
            IpAddr::V4(ip) => self
                .lookup
                .a(host)
                .await
                .map(|list| list.iter().any(|a| in_v4(ip, *a, v4))),
            IpAddr::V6(ip) => self
                .lookup
                .aaaa(host)
                .await
                .map(|list| list.iter().any(|a| in_v6(ip, *a, v6))),
        };
        match found {
            Ok(found) => Ok(found),
            Err(LookupError::NotFound) => {
                if void {
                    self.void()?;
                }
                Ok(false)
            }
            Err(LookupError::Temporary(why)) => Err(Abort(
                SpfResult::TempError,
                format!("address lookup for {host}: {why}"),
            )),
        }
    }

    /// The client's validated names (§5.5): PTR names (at most ten) that resolve back to the
    /// client's address. A failed PTR lookup validates nothing.
    async fn validated_names(&mut self) -> Result<Vec<String>, Abort> {
        let names = match self.lookup.ptr(self.ip).await {
            Ok(names) => names,
            Err(LookupError::NotFound) => {
                self.void()?;
                return Ok(Vec::new());
            }
            Err(LookupError::Temporary(_)) => return Ok(Vec::new()),
        };
        let mut validated = Vec::new();
        for name in names.into_iter().take(MAX_NAMES) {
            let name = name.trim_end_matches('.').to_string();
            let confirmed = match self.ip {
                IpAddr::V4(ip) => self.lookup.a(&name).await.is_ok_and(|l| l.contains(&ip)),
                IpAddr::V6(ip) => self.lookup.aaaa(&name).await.is_ok_and(|l| l.contains(&ip)),
            };
            if confirmed {
                validated.push(name);
            }
        }
        Ok(validated)
    }

    /// `%{p}` (§7.3): a validated name equal to or under the current domain, else any validated
    /// name, else "unknown".
    async fn validated_name(&mut self, domain: &str) -> String {
        if let Some(p) = &self.validated {
            return p.clone();
        }
        // Its lookups are not mechanisms: they count toward no limit.
        let (terms, voids) = (self.dns_terms, self.void_lookups);
        let names = self.validated_names().await.unwrap_or_default();
        (self.dns_terms, self.void_lookups) = (terms, voids);
        let p = names
            .iter()
            .find(|n| name::is_same_or_subdomain(n, domain))
            .or(names.first())
            .cloned()
            .unwrap_or_else(|| "unknown".to_string());
        self.validated = Some(p.clone());
        p
    }

    async fn expand(&mut self, spec: &MacroString, domain: &str) -> String {
        let validated = if spec.uses_validated_name() {
            self.validated_name(domain).await
        } else {
            String::new()
        };
        spec.expand(&Values {
            sender: &self.sender,
            local: &self.local,
            sender_domain: &self.sender_domain,
            domain,
            ip: self.ip,
            helo: self.helo,
            receiver: self.receiver,
            now: self.now,
            validated: &validated,
        })
    }

    /// The name a domain-spec expands to, ready to look up.
    async fn target(&mut self, spec: &MacroString, domain: &str) -> Result<String, Abort> {
        let expanded = self.expand(spec, domain).await;
        name::for_lookup(&expanded).map_err(|why| Abort(SpfResult::PermError, why))
    }

    async fn optional_target(
        &mut self,
        spec: Option<&MacroString>,
        domain: &str,
    ) -> Result<String, Abort> {
        match spec {
            Some(spec) => self.target(spec, domain).await,
            None => Ok(domain.to_string()),
        }
    }

    /// The explanation of a `fail` (§6.2): the one TXT record at the expanded `exp=` name,
    /// itself expanded. Any problem on the way means no explanation, never another result.
    async fn explanation(&mut self, spec: &MacroString, domain: &str) -> Option<String> {
        let target = self.target(spec, domain).await.ok()?;
        let records = self.lookup.txt(&target).await.ok()?;
        let [text] = records.as_slice() else {
            return None;
        };
        let text = std::str::from_utf8(text).ok()?;
        let text = MacroString::parse(text, Place::Explanation).ok()?;
        let explanation = self.expand(&text, domain).await;
        explanation.is_ascii().then_some(explanation)
    }
}

fn in_v4(ip: Ipv4Addr, network: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(network) & mask
}

fn in_v6(ip: Ipv6Addr, network: Ipv6Addr, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(network) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let ip: Ipv4Addr = "192.0.2.77".parse().unwrap();
        assert!(in_v4(ip, "192.0.2.0".parse().unwrap(), 24));
        assert!(in_v4(ip, "10.0.0.0".parse().unwrap(), 0));
        assert!(!in_v4(ip, "192.0.2.76".parse().unwrap(), 32));
        let ip6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert!(in_v6(ip6, "2001:db8::".parse().unwrap(), 32));
        assert!(in_v6(ip6, "::".parse().unwrap(), 0));
        assert!(!in_v6(ip6, "2001:db8::2".parse().unwrap(), 128));
    }
}
