//! Recipient validation at RCPT: what the tenant's list says (from the snapshot, never the
//! database), or what its mailbox server says to a probe (`verify`), cached with a TTL for each
//! answer as Postfix's address verification does. A probe that cannot complete is never taken
//! for a "no": the recipient is deferred (`450 4.4.3`), not refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use mail_auth::ResolverCache;
use portcullis_policy::route::Route;
use portcullis_policy::{
    Directory, RcptFacts, RcptVerdict, RecipientLookup, RecipientValidation, decide_rcpt,
};

use crate::auth::TtlCache;
use crate::config::Config;
use crate::queue::downstream::{self, ProbeAnswer};

/// Where an answer came from (shown in the trace and by `simulate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Not validated: nothing was looked up.
    None,
    List,
    Cache,
    Probe,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::None => "none",
            Source::List => "list",
            Source::Cache => "cache",
            Source::Probe => "probe",
        }
    }
}

/// One recipient's lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    pub validation: RecipientValidation,
    pub result: RecipientLookup,
    pub source: Source,
    /// What the mailbox server said, or why it could not be asked.
    pub detail: String,
}

impl Lookup {
    fn not_validated(validation: RecipientValidation, detail: String) -> Lookup {
        Lookup {
            validation,
            result: RecipientLookup::NotValidated,
            source: Source::None,
            detail,
        }
    }
}

/// Probes running at once per route.
pub const PROBES_PER_ROUTE: usize = 8;
/// How long a route that could not answer a probe is left alone.
pub const ROUTE_RETRY: Duration = Duration::from_secs(10);

struct RouteState {
    slots: Arc<Semaphore>,
    down_until: Option<Instant>,
}

/// The verification cache and the probe's settings.
pub struct Verifier {
    routes: Mutex<HashMap<String, RouteState>>,
    /// (route, address) → (known, the server's reply).
    cache: TtlCache<String, (bool, String)>,
    positive_ttl: Duration,
    negative_ttl: Duration,
    timeout: Duration,
    hostname: String,
    default_route: Route,
}

impl Verifier {
    pub fn new(config: &Config) -> Verifier {
        Verifier {
            routes: Mutex::default(),
            cache: TtlCache::new(100_000),
            positive_ttl: config.verify_positive_ttl,
            negative_ttl: config.verify_negative_ttl,
            timeout: config.verify_timeout,
            hostname: config.hostname.clone(),
            default_route: config.default_route.clone(),
        }
    }

    /// The lookup that needs no I/O: the list's answer or a cached probe answer; `Err(route)`
    /// when the route's server must be asked ([`Verifier::probe`]).
    pub fn quick(
        &self,
        dir: &Directory,
        tenant: &str,
        address: &str,
        domain: &str,
    ) -> Result<Lookup, Route> {
        let validation = dir.recipient_validation(domain);
        match validation {
            RecipientValidation::Off => Ok(Lookup::not_validated(validation, String::new())),
            RecipientValidation::List => {
                // No list yet (validation turned on before the import, or everything
                // removed): refusing every recipient would refuse all the tenant's mail.
                if dir
                    .recipient_lists()
                    .get(tenant)
                    .is_none_or(|l| l.is_empty())
                {
                    return Ok(Lookup::not_validated(
                        validation,
                        "the tenant's recipient list is empty: not validated".into(),
                    ));
                }
                let known = dir.recipient_listed(tenant, address);
                Ok(Lookup {
                    validation,
                    result: if known {
                        RecipientLookup::Known
                    } else {
                        RecipientLookup::Unknown
                    },
                    source: Source::List,
                    detail: String::new(),
                })
            }
            RecipientValidation::Verify => {
                let route = match dir.route_for(domain).map(Route::parse) {
                    None => self.default_route.clone(),
                    Some(Ok(r)) => r,
                    Some(Err(e)) => {
                        return Ok(Lookup::not_validated(
                            validation,
                            format!("the route cannot be read ({e}): not verified"),
                        ));
                    }
                };
                if matches!(route, Route::Maildir(_) | Route::Mx(_)) {
                    return Ok(Lookup::not_validated(
                        validation,
                        format!("route {route} has no mailbox server to ask: not verified"),
                    ));
                }
                match self.cache.get(&cache_key(&route, address)) {
                    Some((known, reply)) => Ok(Lookup {
                        validation,
                        result: if known {
                            RecipientLookup::Known
                        } else {
                            RecipientLookup::Unknown
                        },
                        source: Source::Cache,
                        detail: reply,
                    }),
                    None => Err(route),
                }
            }
        }
    }

    /// The lookup of `rcpt`, the recipient of RCPT `facts`: the list or a cached answer at
    /// once; a probe only when the policy would accept the recipient without one (a refusal
    /// needs no mailbox server). `None` for a domain of no tenant. Validation off (the common
    /// case) costs one lookup of the domain, nothing more.
    pub async fn look_up(
        &self,
        dir: &Directory,
        facts: &RcptFacts<'_>,
        rcpt: &portcullis_smtp::Address,
    ) -> Option<Lookup> {
        let (entry, domain) = dir.resolve(facts.rcpt_domain)?;
        let validation = Directory::recipient_validation_of(entry, domain);
        if validation == RecipientValidation::Off {
            return Some(Lookup::not_validated(validation, String::new()));
        }
        let address = rcpt.to_string().to_ascii_lowercase();
        let address = address.as_str();
        match self.quick(dir, &entry.tenant.name, address, facts.rcpt_domain) {
            Ok(l) => Some(l),
            Err(route) => {
                if matches!(decide_rcpt(dir, facts), RcptVerdict::Accept { .. }) {
                    Some(self.probe(&route, address).await)
                } else {
                    Some(Lookup::not_validated(
                        RecipientValidation::Verify,
                        "not asked: the recipient is refused anyway".into(),
                    ))
                }
            }
        }
    }

    /// Asks `route`'s server about `address` and caches a definite answer. At most
    /// [`PROBES_PER_ROUTE`] probes run at once per route (a dictionary attack must not become
    /// a flood of connections to the mailbox server), and a route that could not answer is not
    /// asked again for [`ROUTE_RETRY`]: recipients are deferred at once meanwhile.
    pub async fn probe(&self, route: &Route, address: &str) -> Lookup {
        let key = route.to_string();
        let (slots, down_until) = {
            let mut routes = self.routes.lock().expect("not poisoned");
            let r = routes.entry(key.clone()).or_insert_with(|| RouteState {
                slots: Arc::new(Semaphore::new(PROBES_PER_ROUTE)),
                down_until: None,
            });
            (r.slots.clone(), r.down_until)
        };
        if down_until.is_some_and(|t| t > Instant::now()) {
            metrics::counter!("portcullis_recipient_probes_total", "outcome" => "skipped")
                .increment(1);
            return Lookup {
                validation: RecipientValidation::Verify,
                result: RecipientLookup::Unavailable,
                source: Source::Probe,
                detail: format!("{route}: did not answer a moment ago; not asked again yet"),
            };
        }
        let started = Instant::now();
        let answer = match tokio::time::timeout(self.timeout, slots.acquire_owned()).await {
            Ok(Ok(_permit)) => {
                let left = self.timeout.saturating_sub(started.elapsed());
                downstream::probe(route, &self.hostname, address, left).await
            }
            _ => ProbeAnswer::Unavailable(format!(
                "{route}: {PROBES_PER_ROUTE} probes already waiting for it"
            )),
        };
        // Connection trouble (not a 4xx for one recipient) leaves the route alone a while.
        if let ProbeAnswer::Unavailable(_) = &answer
            && let Some(r) = self.routes.lock().expect("not poisoned").get_mut(&key)
        {
            r.down_until = Some(Instant::now() + ROUTE_RETRY);
        }
        metrics::histogram!("portcullis_recipient_probe_seconds")
            .record(started.elapsed().as_secs_f64());
        let outcome = match &answer {
            ProbeAnswer::Known => "known",
            ProbeAnswer::Unknown(_) => "unknown",
            ProbeAnswer::Deferred(_) => "deferred",
            ProbeAnswer::Unavailable(_) => "unavailable",
        };
        metrics::counter!("portcullis_recipient_probes_total", "outcome" => outcome).increment(1);
        let (result, detail) = match answer {
            ProbeAnswer::Known => {
                let reply = format!("{route} accepts it");
                self.remember(route, address, true, &reply, self.positive_ttl);
                (RecipientLookup::Known, reply)
            }
            ProbeAnswer::Unknown(reply) => {
                let reply = format!("{route}: {reply}");
                self.remember(route, address, false, &reply, self.negative_ttl);
                (RecipientLookup::Unknown, reply)
            }
            ProbeAnswer::Deferred(why) | ProbeAnswer::Unavailable(why) => {
                tracing::warn!(%route, address, "recipient verification failed: {why}");
                (RecipientLookup::Unavailable, format!("{route}: {why}"))
            }
        };
        Lookup {
            validation: RecipientValidation::Verify,
            result,
            source: Source::Probe,
            detail,
        }
    }

    fn remember(&self, route: &Route, address: &str, known: bool, reply: &str, ttl: Duration) {
        self.cache.insert(
            cache_key(route, address),
            (known, reply.to_string()),
            Instant::now() + ttl,
        );
    }
}

fn cache_key(route: &Route, address: &str) -> String {
    format!("{route} {address}")
}
