//! What one client address sent as direct send (anonymous, the tenant's own domain) in a period:
//! the aggregate the Direct Send report weighs. The trace writer keeps one per tenant, UTC day
//! and address (`trace_sources`), in the transaction that writes the records, so the report reads
//! a row per address and day instead of every record.
//!
//! Every part merges associatively, so the rollups of any split of the records merge to exactly
//! what adding the records one by one gives: counts add; sets keep their [`KEPT`] smallest
//! members; distinct recipients and HELO names are counted by a K-minimum-values sketch ([`Kmv`],
//! exact up to [`KMV_K`] distinct values, an estimate within about 13 % above); samples are the
//! earliest [`SAMPLES`] records by (time, id).

use std::collections::{BTreeMap, BTreeSet};

use portcullis_policy::names::is_same_or_subdomain;
use serde::{Deserialize, Serialize};

use crate::{DirectSendOutcome, TraceRecord};

/// Members kept of each set (HELO names, domains, sealers, certificate names).
pub const KEPT: usize = 32;
/// Sample trace ids kept per source.
pub const SAMPLES: usize = 5;
/// Values a [`Kmv`] sketch keeps.
pub const KMV_K: usize = 64;
const DAY_US: i64 = 86_400_000_000;

/// Counts of results (`pass` → 12, `fail` → 3, ...).
pub type Counts = BTreeMap<String, u64>;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceAgg {
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub helo: BTreeSet<String>,
    /// Distinct HELO names, counted past [`KEPT`].
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub helo_count: Kmv,
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub p1: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub p2: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub spf: Counts,
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub dkim: Counts,
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub dmarc: Counts,
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub arc: Counts,
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub sealers: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tls: u64,
    /// Messages that presented a client certificate, and its names.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub certified: u64,
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub cert_names: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub messages: u64,
    /// Distinct recipients (lower case).
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub recipients: Kmv,
    /// Days (UTC, days since the epoch) with traffic.
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub days: BTreeSet<i64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub first_us: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last_us: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delivered: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub audited: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub would_refuse: u64,
    /// Messages passing SPF or aligned DKIM / with a passing ARC chain (and neither).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub passing: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub arc_pass: u64,
    /// The earliest records, `(received_at_us, trace_id)`.
    #[serde(default, skip_serializing_if = "IsEmpty::is_empty")]
    pub samples: Vec<(i64, String)>,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// What a field that is left out when empty (the stored documents are one per source and day,
/// most holding one message: empty fields would be most of them).
trait IsEmpty {
    fn is_empty(&self) -> bool;
}

impl<T> IsEmpty for BTreeSet<T> {
    fn is_empty(&self) -> bool {
        BTreeSet::is_empty(self)
    }
}

impl<K, V> IsEmpty for BTreeMap<K, V> {
    fn is_empty(&self) -> bool {
        BTreeMap::is_empty(self)
    }
}

impl<T> IsEmpty for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

impl IsEmpty for Kmv {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The domain of an address, lower case, without a closing `>`.
pub fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
}

/// DMARC's relaxed alignment, approximated without the public suffix list: one domain is the
/// other or below it (`mail.contoso.com` and `contoso.com`).
pub fn relaxed_aligned(a: &str, b: &str) -> bool {
    is_same_or_subdomain(a, b) || is_same_or_subdomain(b, a)
}

fn bump(map: &mut Counts, key: Option<&str>) {
    *map.entry(key.unwrap_or("none").to_string()).or_default() += 1;
}

/// Adds to a set, keeping its [`KEPT`] smallest members.
fn keep<I: IntoIterator<Item = String>>(set: &mut BTreeSet<String>, items: I) {
    set.extend(items);
    while set.len() > KEPT {
        set.pop_last();
    }
}

impl SourceAgg {
    /// The UTC day of a time, as rollups are keyed.
    pub fn day_of(us: i64) -> i64 {
        us.div_euclid(DAY_US)
    }

    pub fn add(&mut self, r: &TraceRecord) {
        if let Some(h) = &r.helo {
            let h = h.to_ascii_lowercase();
            self.helo_count.add(&h);
            keep(&mut self.helo, [h]);
        }
        let p1 = domain_of(&r.mail_from);
        keep(&mut self.p1, p1.clone());
        keep(&mut self.p2, r.header_from.as_deref().and_then(domain_of));
        let a = &r.auth;
        bump(&mut self.spf, a.spf.as_deref());
        bump(&mut self.dkim, a.dkim.as_deref());
        bump(&mut self.dmarc, a.dmarc.as_deref());
        bump(&mut self.arc, a.arc.as_deref());
        keep(&mut self.sealers, a.arc_sealer.clone());
        if let Some(tls) = &r.tls {
            self.tls += 1;
            if !tls.client_cert_names.is_empty() {
                self.certified += 1;
                keep(&mut self.cert_names, tls.client_cert_names.iter().cloned());
            }
        }
        self.messages += 1;
        for rc in &r.recipients {
            self.recipients.add(&rc.address.to_lowercase());
        }
        self.days.insert(Self::day_of(r.received_at_us));
        if self.messages == 1 || r.received_at_us < self.first_us {
            self.first_us = r.received_at_us;
        }
        self.last_us = self.last_us.max(r.received_at_us);
        match r.direct_send_outcome {
            Some(DirectSendOutcome::Refused) => self.refused += 1,
            Some(DirectSendOutcome::Audited) => self.audited += 1,
            _ => self.delivered += 1,
        }
        if r.direct_send_outcome != Some(DirectSendOutcome::Exempted) {
            self.would_refuse += 1;
        }
        // Authentication counts when it vouches for the tenant's domain the sender used: SPF
        // checks that very domain; a DKIM signature only when its d= is aligned with it (a
        // spoofer may well sign with a domain of its own).
        let pass = |v: &Option<String>| v.as_deref() == Some("pass");
        let dkim_aligned = p1.as_deref().is_some_and(|p1| {
            a.dkim_pass_domains
                .iter()
                .any(|d| relaxed_aligned(&d.to_ascii_lowercase(), p1))
        });
        if pass(&a.spf) || dkim_aligned {
            self.passing += 1;
        } else if pass(&a.arc) {
            self.arc_pass += 1;
        }
        self.sample(r.received_at_us, &r.trace_id);
    }

    fn sample(&mut self, us: i64, id: &str) {
        let entry = (us, id.to_string());
        if self.samples.contains(&entry) {
            return;
        }
        let at = self.samples.partition_point(|s| *s < entry);
        if at < SAMPLES {
            self.samples.insert(at, entry);
            self.samples.truncate(SAMPLES);
        }
    }

    pub fn merge(&mut self, o: SourceAgg) {
        self.helo_count.merge(&o.helo_count);
        keep(&mut self.helo, o.helo);
        keep(&mut self.p1, o.p1);
        keep(&mut self.p2, o.p2);
        for (mine, theirs) in [
            (&mut self.spf, o.spf),
            (&mut self.dkim, o.dkim),
            (&mut self.dmarc, o.dmarc),
            (&mut self.arc, o.arc),
        ] {
            for (k, v) in theirs {
                *mine.entry(k).or_default() += v;
            }
        }
        keep(&mut self.sealers, o.sealers);
        self.tls += o.tls;
        self.certified += o.certified;
        keep(&mut self.cert_names, o.cert_names);
        if o.messages > 0 && (self.messages == 0 || o.first_us < self.first_us) {
            self.first_us = o.first_us;
        }
        self.messages += o.messages;
        self.recipients.merge(&o.recipients);
        self.days.extend(o.days);
        self.last_us = self.last_us.max(o.last_us);
        self.delivered += o.delivered;
        self.audited += o.audited;
        self.refused += o.refused;
        self.would_refuse += o.would_refuse;
        self.passing += o.passing;
        self.arc_pass += o.arc_pass;
        for (us, id) in o.samples {
            self.sample(us, &id);
        }
    }
}

/// A K-minimum-values sketch of a set of strings: the [`KMV_K`] smallest 64-bit hashes. Below
/// `K` members it counts exactly; above, it estimates `(K − 1) / (k-th smallest / 2⁶⁴)`. Two
/// sketches merge into the sketch of the union. The hash is FNV-1a with a SplitMix64 finish,
/// fixed here, so stored sketches stay comparable across versions and machines.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Kmv(Vec<u64>);

impl Kmv {
    pub fn add(&mut self, value: &str) {
        self.insert(hash(value));
    }

    fn insert(&mut self, h: u64) {
        match self.0.binary_search(&h) {
            Ok(_) => {}
            Err(at) if at < KMV_K => {
                self.0.insert(at, h);
                self.0.truncate(KMV_K);
            }
            Err(_) => {}
        }
    }

    pub fn merge(&mut self, other: &Kmv) {
        for h in &other.0 {
            self.insert(*h);
        }
    }

    /// The number of distinct values added: exact below [`KMV_K`].
    pub fn count(&self) -> u64 {
        if self.0.len() < KMV_K {
            return self.0.len() as u64;
        }
        let kth = self.0[KMV_K - 1] as f64 / u64::MAX as f64;
        ((KMV_K as f64 - 1.0) / kth).round() as u64
    }
}

fn hash(value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // SplitMix64's finalizer spreads FNV's low-entropy high bits.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmv_counts_exactly_below_k_and_closely_above() {
        let mut small = Kmv::default();
        for i in 0..50 {
            small.add(&format!("user{i}@example.com"));
            small.add(&format!("user{i}@example.com"));
        }
        assert_eq!(small.count(), 50);
        for n in [1_000u64, 20_000] {
            let mut k = Kmv::default();
            for i in 0..n {
                k.add(&format!("rcpt{i}@contoso.com"));
            }
            let error = (k.count() as f64 - n as f64).abs() / n as f64;
            assert!(error < 0.3, "{n}: estimated {}", k.count());
        }
        // Merging is the sketch of the union, whatever the split.
        let (mut a, mut b, mut all) = (Kmv::default(), Kmv::default(), Kmv::default());
        for i in 0..500 {
            let v = format!("x{i}");
            all.add(&v);
            if i % 3 == 0 { &mut a } else { &mut b }.add(&v);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }
}
