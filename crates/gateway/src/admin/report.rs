//! The Direct Send report (who sends anonymously as the tenant's domains), the readiness
//! assessment and connector suggestions built on it, and `simulate replay` (recorded
//! transactions re-decided against a proposed configuration with the policy code the SMTP session
//! uses). Every scan streams the trace store page by page: memory grows with the number of
//! distinct sending IPs, not with the number of records.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use portcullis_policy::{
    AuthFacts, AuthResult, Connector, DataFacts, Directory, DkimFact, DmarcPolicy, Fate,
    MessageFacts, PeerFacts, RcptFacts, RcptVerdict, decide_copy, decide_rcpt,
};
use portcullis_store::{DirectSendOutcome, DirectoryData, Store, TraceRecord, TraceScan};

use crate::api_types::*;
use crate::auth::Authenticator;
use crate::sys::clock::{micros, rfc3339};

const PAGE: u32 = 2000;
const MAX_LISTED_IPS: usize = 20;
const SAMPLES: usize = 5;

/// Parses `since` (default `default`) into the scan's lower bound.
pub fn since(s: Option<&str>, default: &str) -> Result<(SystemTime, String), String> {
    let text = s.unwrap_or(default);
    let d = humantime::parse_duration(text)
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 7d, 30d, 12h"))?;
    let t = SystemTime::now()
        .checked_sub(d)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok((t, rfc3339(t)))
}

/// Calls `f` for every record of the scan, in receive order, one page in memory at a time.
pub(super) async fn scan(
    store: &Store,
    scan: &TraceScan,
    mut f: impl FnMut(&TraceRecord),
) -> anyhow::Result<()> {
    let mut after = None;
    loop {
        let page = store.scan_traces(scan, after.clone(), PAGE).await?;
        for r in &page {
            f(r);
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => {
                after = Some((last.received_at_us, last.trace_id.clone()));
            }
            _ => return Ok(()),
        }
    }
}

fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
}

fn bump(map: &mut Counts, key: Option<&str>) {
    *map.entry(key.unwrap_or("none").to_string()).or_default() += 1;
}

/// What one IP (then one network) sent.
#[derive(Default)]
struct Agg {
    ips: BTreeSet<IpAddr>,
    helo: BTreeSet<String>,
    p1: BTreeSet<String>,
    p2: BTreeSet<String>,
    spf: Counts,
    dkim: Counts,
    dmarc: Counts,
    arc: Counts,
    sealers: BTreeSet<String>,
    tls: u64,
    cert_names: BTreeSet<String>,
    messages: u64,
    recipients: HashSet<String>,
    first_us: i64,
    last_us: i64,
    delivered: u64,
    audited: u64,
    refused: u64,
    would_refuse: u64,
    /// Messages passing SPF or DKIM / with a passing ARC chain / failing everything.
    passing: u64,
    arc_pass: u64,
    failing: u64,
    samples: Vec<String>,
}

impl Agg {
    fn add(&mut self, r: &TraceRecord, ip: IpAddr) {
        self.ips.insert(ip);
        if let Some(h) = &r.helo {
            self.helo.insert(h.to_ascii_lowercase());
        }
        if let Some(d) = domain_of(&r.mail_from) {
            self.p1.insert(d);
        }
        if let Some(d) = r.header_from.as_deref().and_then(domain_of) {
            self.p2.insert(d);
        }
        let a = &r.auth;
        bump(&mut self.spf, a.spf.as_deref());
        bump(&mut self.dkim, a.dkim.as_deref());
        bump(&mut self.dmarc, a.dmarc.as_deref());
        bump(&mut self.arc, a.arc.as_deref());
        if let Some(s) = &a.arc_sealer {
            self.sealers.insert(s.clone());
        }
        if let Some(tls) = &r.tls {
            self.tls += 1;
            self.cert_names
                .extend(tls.client_cert_names.iter().cloned());
        }
        self.messages += 1;
        for rc in &r.recipients {
            self.recipients.insert(rc.address.to_lowercase());
        }
        if self.first_us == 0 || r.received_at_us < self.first_us {
            self.first_us = r.received_at_us;
        }
        self.last_us = self.last_us.max(r.received_at_us);
        // Rows of earlier versions get their outcome from the store (see `decode`).
        match r.direct_send_outcome {
            Some(DirectSendOutcome::Refused) => self.refused += 1,
            Some(DirectSendOutcome::Audited) => self.audited += 1,
            _ => self.delivered += 1,
        }
        if r.direct_send_outcome != Some(DirectSendOutcome::Exempted) {
            self.would_refuse += 1;
        }
        let pass = |v: &Option<String>| v.as_deref() == Some("pass");
        if pass(&a.spf) || pass(&a.dkim) {
            self.passing += 1;
        } else if pass(&a.arc) {
            self.arc_pass += 1;
        } else {
            self.failing += 1;
        }
        if self.samples.len() < SAMPLES {
            self.samples.push(r.trace_id.clone());
        }
    }

    fn merge(&mut self, o: Agg) {
        self.ips.extend(o.ips);
        self.helo.extend(o.helo);
        self.p1.extend(o.p1);
        self.p2.extend(o.p2);
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
        self.sealers.extend(o.sealers);
        self.tls += o.tls;
        self.cert_names.extend(o.cert_names);
        self.messages += o.messages;
        self.recipients.extend(o.recipients);
        self.first_us = if self.first_us == 0 {
            o.first_us
        } else {
            self.first_us.min(o.first_us)
        };
        self.last_us = self.last_us.max(o.last_us);
        self.delivered += o.delivered;
        self.audited += o.audited;
        self.refused += o.refused;
        self.would_refuse += o.would_refuse;
        self.passing += o.passing;
        self.arc_pass += o.arc_pass;
        self.failing += o.failing;
        for s in o.samples {
            if self.samples.len() < SAMPLES {
                self.samples.push(s);
            }
        }
    }

    fn verdict(&self) -> &'static str {
        if self.passing * 2 >= self.messages {
            "likely-legitimate"
        } else if self.arc_pass * 2 >= self.messages {
            "likely-forwarded"
        } else if self.failing == self.messages {
            "likely-spoofing"
        } else {
            "unknown"
        }
    }

    fn into_source(self, source: String, rdns: Option<String>) -> ReportSource {
        let ts =
            |us: i64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_micros(us.max(0) as u64));
        ReportSource {
            source,
            ips: self
                .ips
                .iter()
                .take(MAX_LISTED_IPS)
                .map(|i| i.to_string())
                .collect(),
            rdns,
            helo: self.helo.iter().cloned().collect(),
            p1_domains: self.p1.iter().cloned().collect(),
            p2_domains: self.p2.iter().cloned().collect(),
            spf: self.spf.clone(),
            dkim: self.dkim.clone(),
            dmarc: self.dmarc.clone(),
            arc: self.arc.clone(),
            tls: self.tls,
            cert_names: self.cert_names.iter().cloned().collect(),
            messages: self.messages,
            recipients: self.recipients.len() as u64,
            first_seen: ts(self.first_us),
            last_seen: ts(self.last_us),
            delivered: self.delivered,
            audited: self.audited,
            refused: self.refused,
            would_refuse: self.would_refuse,
            verdict: self.verdict().to_string(),
            sample_trace_ids: self.samples.clone(),
        }
    }
}

/// The /24 (IPv4) or /48 (IPv6) an address belongs to.
fn network(ip: IpAddr) -> IpNet {
    let prefix = if ip.is_ipv4() { 24 } else { 48 };
    IpNet::new(ip, prefix)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

/// Builds the report: all direct-send transactions (anonymous, P1 domain the tenant's) of the
/// period, grouped by source.
pub async fn direct_send(
    store: &Store,
    dir: &Directory,
    auth: &Authenticator,
    tenant: &str,
    since_param: Option<&str>,
) -> Result<(DirectSendReport, Vec<SourceExtra>), anyhow::Error> {
    let (start, since_text) = since(since_param, "30d").map_err(anyhow::Error::msg)?;
    let mut per_ip: HashMap<IpAddr, Agg> = HashMap::new();
    let mut daily: BTreeMap<String, u64> = BTreeMap::new();
    let q = TraceScan {
        tenant: tenant.to_string(),
        since_us: micros(start),
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

    // Group the IPs of a network that has several senders.
    let mut by_net: HashMap<IpNet, Vec<(IpAddr, Agg)>> = HashMap::new();
    for (ip, agg) in per_ip {
        by_net.entry(network(ip)).or_default().push((ip, agg));
    }
    let mut groups: Vec<(String, Agg)> = Vec::new();
    for (net, mut members) in by_net {
        if members.len() == 1 {
            let (ip, agg) = members.pop().expect("one");
            groups.push((ip.to_string(), agg));
        } else {
            let mut total = Agg::default();
            for (_, agg) in members {
                total.merge(agg);
            }
            groups.push((net.to_string(), total));
        }
    }
    groups.sort_by(|a, b| b.1.messages.cmp(&a.1.messages).then_with(|| a.0.cmp(&b.0)));

    let mut sources = Vec::with_capacity(groups.len());
    let mut aggs = Vec::with_capacity(groups.len());
    for (i, (source, agg)) in groups.into_iter().enumerate() {
        // Reverse DNS for the busiest sources only: one cached lookup each.
        let rdns = match agg.ips.iter().next() {
            Some(ip) if i < 100 => auth.ptr(*ip).await,
            _ => None,
        };
        aggs.push(SourceExtra {
            ips: agg.ips.iter().copied().collect(),
            sealers: agg.sealers.iter().cloned().collect(),
            all_tls_certs: agg.tls == agg.messages && !agg.cert_names.is_empty(),
        });
        sources.push(agg.into_source(source, rdns));
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
    Ok((report, aggs))
}

/// What the suggestions need beyond the report's columns.
pub struct SourceExtra {
    pub ips: Vec<IpAddr>,
    pub sealers: Vec<String>,
    /// Every message of the source came with a trusted client certificate.
    pub all_tls_certs: bool,
}

/// The smallest set of connectors covering the likely-legitimate sources: one certificate
/// connector per set of certificate names where every message presented a trusted certificate,
/// and one IP connector whose ranges are the sources' addresses merged into the narrowest CIDRs.
pub fn suggest(
    report: &DirectSendReport,
    extra: &[SourceExtra],
    existing: &[Connector],
) -> SuggestResponse {
    let tenant = &report.tenant;
    let unique = |base: &str, taken: &mut Vec<String>| {
        let mut name = base.to_string();
        let mut n = 2;
        while existing.iter().any(|c| c.name == name) || taken.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        taken.push(name.clone());
        name
    };
    let mut taken = Vec::new();
    let mut out = SuggestResponse::default();
    let mut ip_sources: Vec<(&ReportSource, &SourceExtra)> = Vec::new();
    let mut domains: BTreeSet<String> = BTreeSet::new();
    for (s, x) in report.sources.iter().zip(extra) {
        match s.verdict.as_str() {
            "likely-legitimate" if x.all_tls_certs => {
                let name = unique("direct-send-cert", &mut taken);
                let mut cmd = format!("portcullis connector add {name} --tenant {tenant}");
                for c in &s.cert_names {
                    cmd.push_str(&format!(" --tls-cert-name {c}"));
                }
                for d in &s.p1_domains {
                    cmd.push_str(&format!(" --sender-domain {d}"));
                }
                out.connectors.push(SuggestedConnector {
                    name,
                    sender_ips: vec![],
                    tls_cert_names: s.cert_names.clone(),
                    covers: vec![s.source.clone()],
                    messages: s.messages,
                    command: cmd,
                });
            }
            "likely-legitimate" => {
                ip_sources.push((s, x));
                domains.extend(s.p1_domains.iter().cloned());
            }
            "likely-forwarded" => {
                for sealer in &x.sealers {
                    let cmd = format!(
                        "portcullis org set --tenant {tenant} --arc-trusted-sealer {sealer}"
                    );
                    if !out.other.contains(&cmd) {
                        out.other.push(cmd);
                    }
                }
            }
            _ => {}
        }
    }
    if !ip_sources.is_empty() {
        let hosts: Vec<IpNet> = ip_sources
            .iter()
            .flat_map(|(_, x)| x.ips.iter().map(|ip| IpNet::from(*ip)))
            .collect();
        let cidrs: Vec<String> = IpNet::aggregate(&hosts)
            .iter()
            .map(|n| n.to_string())
            .collect();
        let name = unique("direct-send-sources", &mut taken);
        let mut cmd = format!("portcullis connector add {name} --tenant {tenant}");
        for c in &cidrs {
            cmd.push_str(&format!(" --sender-ip {c}"));
        }
        for d in &domains {
            cmd.push_str(&format!(" --sender-domain {d}"));
        }
        out.connectors.push(SuggestedConnector {
            name,
            sender_ips: cidrs,
            tls_cert_names: vec![],
            covers: ip_sources.iter().map(|(s, _)| s.source.clone()).collect(),
            messages: ip_sources.iter().map(|(s, _)| s.messages).sum(),
            command: cmd,
        });
    }
    out
}

/// The readiness assessment: plain language over the report and the suggestions.
pub fn readiness(report: &DirectSendReport, plan: &SuggestResponse) -> Readiness {
    let mut items = Vec::new();
    let command_for = |source: &str| {
        plan.connectors
            .iter()
            .find(|c| c.covers.iter().any(|s| s == source))
            .map(|c| c.command.clone())
    };
    let (mut legit, mut spoof, mut other) = (0u64, 0u64, 0u64);
    for s in &report.sources {
        let domains = s.p1_domains.join(", ");
        let (explanation, command) = match s.verdict.as_str() {
            "likely-legitimate" => {
                legit += s.would_refuse;
                (
                    format!(
                        "{} message(s) as {domains} that pass SPF or DKIM: probably a legitimate sender of yours \
                         (a printer, an application, a SaaS service). Enforcement would refuse them; add a connector first.",
                        s.messages
                    ),
                    command_for(&s.source),
                )
            }
            "likely-forwarded" => {
                other += s.would_refuse;
                (
                    format!(
                        "{} message(s) as {domains} that fail SPF and DKIM but arrive with a passing ARC chain: \
                         forwarded mail (a list or forwarding service). Trust its sealer to keep it.",
                        s.messages
                    ),
                    plan.other.first().cloned(),
                )
            }
            "likely-spoofing" => {
                spoof += s.would_refuse;
                (
                    format!(
                        "{} message(s) as {domains} that fail SPF, DKIM and DMARC: likely spoofing. Enforcement \
                         will refuse them — that is the point.",
                        s.messages
                    ),
                    None,
                )
            }
            _ => {
                other += s.would_refuse;
                (
                    format!(
                        "{} message(s) as {domains} with mixed results; look at trace {} before deciding.",
                        s.messages,
                        s.sample_trace_ids.join(", ")
                    ),
                    None,
                )
            }
        };
        items.push(ReadinessItem {
            source: s.source.clone(),
            verdict: s.verdict.clone(),
            messages: s.messages,
            explanation,
            command,
        });
    }
    let total = report.summary.would_refuse;
    let assessment = if report.summary.messages == 0 {
        format!(
            "No direct-send traffic since {}: enabling reject direct send (now {}) would refuse nothing seen so far.",
            report.since, report.mode
        )
    } else {
        format!(
            "Since {}, {} direct-send message(s) came from {} source(s); reject direct send is {}. Enabling it would \
             refuse {total} of them: {legit} from likely-legitimate sources (add the connectors below first), \
             {spoof} from likely-spoofing sources, {other} others to review.",
            report.since, report.summary.messages, report.summary.sources, report.mode
        )
    };
    Readiness {
        tenant: report.tenant.clone(),
        mode: report.mode.clone(),
        since: report.since.clone(),
        assessment,
        would_refuse: total,
        items,
    }
}

// ---- replay ----

/// The outcome of one recipient under one configuration: `accepted`, `quarantined` or the reply.
fn outcome(dir: &Directory, r: &TraceRecord, rcpt: &str, auth: &AuthFacts) -> String {
    let ip = r
        .client_ip
        .parse::<IpAddr>()
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let peer = PeerFacts {
        ip,
        tls: r.tls.is_some(),
        cert_names: r
            .tls
            .as_ref()
            .map(|t| t.client_cert_names.clone())
            .unwrap_or_default(),
    };
    let p1 = domain_of(&r.mail_from).filter(|_| r.mail_from != "<>");
    let Some(rcpt_domain) = domain_of(rcpt) else {
        return "invalid recipient".into();
    };
    let facts = RcptFacts {
        peer: &peer,
        p1_domain: p1.as_deref(),
        rcpt_domain: &rcpt_domain,
        spf_temp_error: false,
        recipient: portcullis_policy::RecipientLookup::NotValidated,
    };
    let verdict = decide_rcpt(dir, &facts);
    let RcptVerdict::Accept {
        tenant,
        attribution,
        direct_send,
    } = &verdict
    else {
        return verdict.reply().to_string();
    };
    // The rules see what the record kept: no header fields (a header condition does not match).
    let recipients = [rcpt.to_string()];
    let outcome = decide_copy(
        dir,
        &DataFacts {
            tenant,
            attribution,
            direct_send: *direct_send,
            p1_domain: p1.as_deref(),
            auth,
            // Recorded behind a filtering service: judged for the original client, as then.
            behind_filter: r.original_client_ip.is_some(),
        },
        &MessageFacts {
            now: r.received_at_us / 1_000_000,
            client_ip: r
                .original_client_ip
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or(ip),
            mail_from: (r.mail_from != "<>").then_some(r.mail_from.as_str()),
            header_from: r.header_from.as_deref(),
            headers: &[],
            subject: r.subject.as_deref(),
            recipients: &recipients,
        },
        false,
    );
    match outcome.fate {
        Fate::Refuse { reply, .. } => reply.to_string(),
        Fate::Quarantine { .. } => "quarantined".into(),
        Fate::Deliver(_) => "accepted".into(),
    }
}

/// The authentication facts a trace record kept.
fn recorded_auth(r: &TraceRecord) -> AuthFacts {
    let a = &r.auth;
    let parse = |v: &Option<String>| match v.as_deref() {
        Some("pass") => AuthResult::Pass,
        Some("fail") => AuthResult::Fail,
        Some("softfail") => AuthResult::SoftFail,
        Some("neutral") => AuthResult::Neutral,
        Some("temperror") => AuthResult::TempError,
        Some("permerror") => AuthResult::PermError,
        _ => AuthResult::None,
    };
    let mut dkim: Vec<DkimFact> = a
        .dkim_pass_domains
        .iter()
        .map(|d| DkimFact {
            result: AuthResult::Pass,
            domain: d.clone(),
            selector: String::new(),
        })
        .collect();
    let summary = parse(&a.dkim);
    if dkim.is_empty() && summary != AuthResult::None {
        dkim.push(DkimFact {
            result: summary,
            domain: String::new(),
            selector: String::new(),
        });
    }
    AuthFacts {
        evaluated: a.spf.is_some(),
        spf: parse(&a.spf),
        spf_domain: domain_of(&r.mail_from).or_else(|| r.helo.clone()),
        dkim,
        arc: parse(&a.arc),
        arc_sealer: a.arc_sealer.clone(),
        dmarc: parse(&a.dmarc),
        dmarc_policy: match a.dmarc_policy.as_deref() {
            Some("reject") => DmarcPolicy::Reject,
            Some("quarantine") => DmarcPolicy::Quarantine,
            Some("none") => DmarcPolicy::None,
            _ => DmarcPolicy::Absent,
        },
        from_domain: r.header_from.as_deref().and_then(domain_of),
    }
}

/// Applies a replay request's changes to a copy of the directory data. Errors name the value.
pub fn proposed(
    mut data: DirectoryData,
    tenant: &str,
    req: &ReplayRequest,
    services: &[String],
) -> Result<DirectoryData, String> {
    let Some(t) = data.tenants.iter_mut().find(|t| t.name == tenant) else {
        return Err(format!("tenant {tenant} not found"));
    };
    for s in &req.set {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("invalid --set {s:?}: expected KEY=VALUE"))?;
        let mut patch = OrgPatch::default();
        match key {
            "reject-direct-send" => patch.reject_direct_send = Some(value.into()),
            "direct-send-scope" => patch.direct_send_scope = Some(value.into()),
            "honor-dmarc" => patch.honor_dmarc = Some(parse_on_off("honor-dmarc", value)?),
            "arc-trusted-sealer" => {
                let mut list = t.settings.arc_trusted_sealers.clone();
                list.push(value.to_string());
                patch.arc_trusted_sealers = Some(list);
            }
            "direct-send-allow-dkim-aligned" => {
                patch.direct_send_allow_dkim_aligned = Some(parse_on_off(key, value)?)
            }
            _ => return Err(format!("invalid --set key {key:?}")),
        }
        patch.apply(&mut t.settings, services)?;
    }
    for name in &req.remove_connectors {
        let before = data.connectors.len();
        data.connectors
            .retain(|c| !(c.tenant == tenant && &c.name == name));
        if data.connectors.len() == before {
            return Err(format!("connector {name:?} of tenant {tenant} not found"));
        }
    }
    for spec in &req.add_connectors {
        data.connectors.push(parse_connector_spec(tenant, spec)?);
    }
    Ok(data)
}

/// `NAME sender-ip=CIDR tls-cert-name=N sender-domain=D type=T require-tls`; the name is every
/// word before the first option (names may contain spaces).
pub fn parse_connector_spec(tenant: &str, spec: &str) -> Result<Connector, String> {
    let all: Vec<&str> = spec.split_whitespace().collect();
    let first_option = all
        .iter()
        .position(|w| w.contains('=') || *w == "require-tls")
        .unwrap_or(all.len());
    let name = parse_connector_name(&all[..first_option].join(" "))?;
    let words = all[first_option..].iter().copied();
    let mut patch = ConnectorPatch::default();
    let push = |list: &mut Option<Vec<String>>, v: &str| {
        list.get_or_insert_with(Vec::new).push(v.to_string())
    };
    for w in words {
        match w.split_once('=') {
            Some(("sender-ip", v)) => push(&mut patch.sender_ips, v),
            Some(("tls-cert-name", v)) => push(&mut patch.tls_cert_names, v),
            Some(("sender-domain", v)) => push(&mut patch.sender_domains, v),
            Some(("type", v)) => patch.connector_type = Some(v.to_string()),
            None if w == "require-tls" => patch.require_tls = Some(true),
            _ => return Err(format!("invalid connector option {w:?} in {spec:?}")),
        }
    }
    let mut c = Connector::new(tenant, &name);
    patch.apply(&mut c)?;
    Ok(c)
}

/// Re-decides every recorded transaction of the period under the current and the proposed
/// configuration and lists the recipients whose outcome changes.
pub async fn replay(
    store: &Store,
    current: &Directory,
    proposed: &Directory,
    tenant: &str,
    since_param: Option<&str>,
) -> anyhow::Result<ReplayReport> {
    let (start, since_text) = since(since_param, "7d").map_err(anyhow::Error::msg)?;
    let mut report = ReplayReport {
        tenant: tenant.to_string(),
        since: since_text,
        ..Default::default()
    };
    let q = TraceScan {
        tenant: tenant.to_string(),
        since_us: micros(start),
        direct_send_only: false,
    };
    scan(store, &q, |r| {
        report.transactions += 1;
        let auth = recorded_auth(r);
        for rc in &r.recipients {
            report.recipients += 1;
            let before = outcome(current, r, &rc.address, &auth);
            let after = outcome(proposed, r, &rc.address, &auth);
            if before != after {
                report.changed += 1;
                let refused = |o: &str| o.starts_with('5') || o.starts_with('4');
                if refused(&after) && !refused(&before) {
                    report.newly_refused += 1;
                } else if !refused(&after) && refused(&before) {
                    report.newly_accepted += 1;
                }
                report.changes.push(ReplayChange {
                    trace_id: r.trace_id.clone(),
                    received_at: r.received_at.clone(),
                    client_ip: r.client_ip.clone(),
                    mail_from: r.mail_from.clone(),
                    recipient: rc.address.clone(),
                    before,
                    after,
                });
            }
        }
    })
    .await?;
    Ok(report)
}
