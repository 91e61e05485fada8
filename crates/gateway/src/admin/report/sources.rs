//! The Direct Send report (who sends anonymously as the tenant's domains): one source per
//! address, each with a verdict and the evidence behind it (`evidence`), the addresses of a
//! network listed as one source only when they behave alike. Memory grows with the number of
//! distinct sending addresses, not with the number of records.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use portcullis_policy::Directory;
use portcullis_store::{SourceAgg, Store, TraceScan};

use crate::api_types::*;
use crate::auth::Authenticator;
use crate::sys::clock::{micros, rfc3339};

use super::advice::SourceExtra;
use super::evidence::{Agg, Classified, Rdns, classify};
use super::scan::{scan, since};

const MAX_LISTED_IPS: usize = 20;
/// Reverse DNS is looked up for this many of the busiest addresses, this many at a time.
const RDNS_LOOKUPS: usize = 200;
const RDNS_PARALLEL: usize = 32;
const RDNS_BUDGET: Duration = Duration::from_secs(2);

/// The /24 (IPv4) or /48 (IPv6) an address belongs to.
fn network(ip: IpAddr) -> IpNet {
    let prefix = if ip.is_ipv4() { 24 } else { 48 };
    IpNet::new(ip, prefix)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

/// The PTR name of each address, and whether it resolves back (forward-confirmed reverse DNS),
/// for the busiest [`RDNS_LOOKUPS`] addresses, within [`RDNS_BUDGET`] in all: a slow or dead
/// resolver costs the report that long at most ([`Rdns::Unanswered`] for what did not come in
/// time), [`Rdns::NotLooked`] for the rest.
async fn reverse_dns(auth: &Authenticator, busiest: &[IpAddr]) -> HashMap<IpAddr, Rdns> {
    use futures_util::stream::{self, StreamExt};
    let mut lookups = stream::iter(busiest.iter().take(RDNS_LOOKUPS).copied())
        .map(|ip| async move {
            let rdns = match auth.ptr(ip).await {
                None => Rdns::None,
                Some(name) => {
                    let confirmed = matches!(
                        auth.host_addresses(&name).await,
                        Ok(Some(addrs)) if addrs.contains(&ip)
                    );
                    Rdns::Name { name, confirmed }
                }
            };
            (ip, rdns)
        })
        .buffer_unordered(RDNS_PARALLEL);
    let mut found: HashMap<IpAddr, Rdns> = HashMap::new();
    let deadline = tokio::time::sleep(RDNS_BUDGET);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = lookups.next() => match next {
                Some((ip, rdns)) => {
                    found.insert(ip, rdns);
                }
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    for ip in busiest.iter().take(RDNS_LOOKUPS) {
        found.entry(*ip).or_insert(Rdns::Unanswered);
    }
    found
}

/// One address, classified.
struct Classed {
    ip: IpAddr,
    agg: Agg,
    rdns: Rdns,
    class: Classified,
}

/// Lists the addresses of a network as one source only when they behave alike (same verdict,
/// same evidence signals and weights, same domains); any other address stands alone, so a
/// printer is never merged with the spoofer next door.
fn group(classed: Vec<Classed>) -> Vec<(String, Agg, Option<String>, Classified)> {
    /// Network, verdict, evidence signature, sender domains: what alike addresses share.
    type Kind = (IpNet, String, Vec<(String, i32)>, Vec<String>);
    let mut by_kind: BTreeMap<Kind, Vec<Classed>> = BTreeMap::new();
    for c in classed {
        let key = (
            network(c.ip),
            c.class.verdict.to_string(),
            c.class.signature(),
            c.agg.p1.iter().cloned().collect(),
        );
        by_kind.entry(key).or_default().push(c);
    }
    let mut out = Vec::new();
    for ((net, ..), mut members) in by_kind {
        if members.len() == 1 {
            let c = members.pop().expect("one");
            out.push((c.ip.to_string(), c.agg, c.rdns.name(), c.class));
            continue;
        }
        // The busiest member's evidence stands for all: every member has the same signals
        // with the same weights.
        members.sort_by(|a, b| b.agg.messages.cmp(&a.agg.messages).then(a.ip.cmp(&b.ip)));
        let count = members.len();
        let mut members = members.into_iter();
        let first = members.next().expect("several");
        let mut class = first.class;
        class.evidence.insert(
            0,
            Evidence {
                signal: "network".into(),
                weight: 0,
                detail: format!(
                    "{count} addresses of {net} behave alike (the same verdict, domains and evidence); the evidence below is {}'s, the busiest",
                    first.ip
                ),
            },
        );
        let rdns = first.rdns.name();
        let mut agg = first.agg;
        for m in members {
            agg.merge(m.agg);
        }
        out.push((net.to_string(), agg, rdns, class));
    }
    out
}

fn source(source: String, agg: &Agg, rdns: Option<String>, class: Classified) -> ReportSource {
    let ts = |us: i64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_micros(us.max(0) as u64));
    ReportSource {
        source,
        ips: agg
            .ips
            .iter()
            .take(MAX_LISTED_IPS)
            .map(|i| i.to_string())
            .collect(),
        rdns,
        helo: agg.helo.iter().cloned().collect(),
        p1_domains: agg.p1.iter().cloned().collect(),
        p2_domains: agg.p2.iter().cloned().collect(),
        spf: agg.spf.clone(),
        dkim: agg.dkim.clone(),
        dmarc: agg.dmarc.clone(),
        arc: agg.arc.clone(),
        tls: agg.tls,
        cert_names: agg.cert_names.iter().cloned().collect(),
        messages: agg.messages,
        recipients: agg.recipients.count(),
        first_seen: ts(agg.first_us),
        last_seen: ts(agg.last_us),
        delivered: agg.delivered,
        audited: agg.audited,
        refused: agg.refused,
        would_refuse: agg.would_refuse,
        verdict: class.verdict.to_string(),
        score: class.score,
        days: agg.days.len() as u64,
        evidence: class.evidence,
        sample_trace_ids: agg.samples.iter().map(|(_, id)| id.clone()).collect(),
    }
}

/// The direct-send traffic of a tenant since `since_us`, per address, and messages per day: the
/// rollups (`trace_sources`) for the whole days after the first, the records themselves for the
/// part of the first day inside the period. Exactly what reading every record gives
/// (`tests/report_rollups.rs` compares them), at the cost of one row per address and day.
pub(super) async fn traffic(
    store: &Store,
    tenant: &str,
    since_us: i64,
) -> anyhow::Result<(HashMap<IpAddr, Agg>, BTreeMap<String, u64>)> {
    let mut per_ip: HashMap<IpAddr, Agg> = HashMap::new();
    let mut daily: BTreeMap<String, u64> = BTreeMap::new();
    let first_day = SourceAgg::day_of(since_us);
    let q = TraceScan {
        tenant: tenant.to_string(),
        since_us,
        until_us: Some((first_day + 1) * DAY_US),
        direct_send_only: true,
    };
    scan(store, &q, |r| {
        let Ok(ip) = r.client_ip.parse::<IpAddr>() else {
            return;
        };
        per_ip.entry(ip).or_default().add(r, ip);
        *daily
            .entry(r.received_at.get(..10).unwrap_or("").to_string())
            .or_default() += 1;
    })
    .await?;
    let mut days: BTreeMap<i64, u64> = BTreeMap::new();
    store
        .each_source_rollup(tenant, first_day + 1, |day, ip, traffic| {
            let Ok(ip) = ip.parse::<IpAddr>() else {
                return;
            };
            *days.entry(day).or_default() += traffic.messages;
            match per_ip.entry(ip) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    e.get_mut().merge(Agg::of(ip, traffic))
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Agg::of(ip, traffic));
                }
            }
        })
        .await?;
    for (day, messages) in days {
        let day_start = UNIX_EPOCH + Duration::from_micros((day * DAY_US) as u64);
        *daily
            .entry(rfc3339(day_start)[..10].to_string())
            .or_default() += messages;
    }
    Ok((per_ip, daily))
}

const DAY_US: i64 = 86_400_000_000;

/// Builds the report: all direct-send transactions (anonymous, P1 domain the tenant's) of the
/// period, one source per address (or per network of alike addresses), busiest first.
pub async fn direct_send(
    store: &Store,
    dir: &Directory,
    auth: &Authenticator,
    tenant: &str,
    since_param: Option<&str>,
) -> Result<(DirectSendReport, Vec<SourceExtra>), anyhow::Error> {
    let (start, since_text) = since(since_param, "30d").map_err(anyhow::Error::msg)?;
    let (per_ip, daily) = traffic(store, tenant, micros(start)).await?;
    let domains: Vec<String> = dir
        .tenant(tenant)
        .map(|e| e.domains.iter().map(|d| d.domain.clone()).collect())
        .unwrap_or_default();
    let mut busiest: Vec<(IpAddr, u64)> = per_ip.iter().map(|(ip, a)| (*ip, a.messages)).collect();
    busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let busiest: Vec<IpAddr> = busiest.into_iter().map(|(ip, _)| ip).collect();
    let mut rdns = reverse_dns(auth, &busiest).await;
    let classed = per_ip
        .into_iter()
        .map(|(ip, agg)| {
            let rdns = rdns.remove(&ip).unwrap_or(Rdns::NotLooked);
            let class = classify(&agg, &rdns, &domains);
            Classed {
                ip,
                agg,
                rdns,
                class,
            }
        })
        .collect();
    let mut groups = group(classed);
    groups.sort_by(|a, b| b.1.messages.cmp(&a.1.messages).then_with(|| a.0.cmp(&b.0)));

    let mut sources = Vec::with_capacity(groups.len());
    let mut extra = Vec::with_capacity(groups.len());
    for (name, agg, rdns, class) in groups {
        extra.push(SourceExtra {
            ips: agg.ips.iter().copied().collect(),
            sealers: agg.sealers.iter().cloned().collect(),
            all_tls_certs: agg.certified == agg.messages && !agg.cert_names.is_empty(),
        });
        sources.push(source(name, &agg, rdns, class));
    }
    let mode = dir
        .tenant(tenant)
        .map(|e| format!("{:?}", e.tenant.settings.reject_direct_send).to_lowercase())
        .unwrap_or_default();
    let summary = ReportSummary {
        messages: sources.iter().map(|s| s.messages).sum(),
        sources: sources.len() as u64,
        would_refuse: sources.iter().map(|s| s.would_refuse).sum(),
        delivered: sources.iter().map(|s| s.delivered).sum(),
        audited: sources.iter().map(|s| s.audited).sum(),
        refused: sources.iter().map(|s| s.refused).sum(),
        daily: daily.into_iter().filter(|(d, _)| !d.is_empty()).collect(),
    };
    let report = DirectSendReport {
        tenant: tenant.to_string(),
        since: since_text,
        until: rfc3339(SystemTime::now()),
        mode,
        summary,
        sources,
    };
    Ok((report, extra))
}
