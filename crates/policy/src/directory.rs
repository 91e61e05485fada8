//! The directory snapshot: an immutable, indexed view of every tenant, accepted domain and
//! connector. Built once per change (by the gateway, from the store) and shared behind an atomic
//! pointer, so a decision never waits on the database and always sees one consistent version.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::model::{AcceptedDomain, Connector, DomainType, RecipientValidation, Tenant};
use crate::names::is_same_or_subdomain;
use crate::rules::{CompiledRule, Rule, RuleError};

/// One tenant with everything the decisions need.
#[derive(Clone, Debug)]
pub struct TenantEntry {
    pub tenant: Tenant,
    pub domains: Vec<AcceptedDomain>,
    /// Sorted by name, so ties between equally good matches break by name.
    pub connectors: Vec<Connector>,
    /// Compiled mail-flow rules, in evaluation order (priority, then name).
    pub rules: Vec<CompiledRule>,
}

#[derive(Clone, Debug, Default)]
pub struct Directory {
    tenants: HashMap<String, TenantEntry>,
    /// Accepted domain -> index into its tenant's `domains`.
    domains: HashMap<String, (String, usize)>,
    /// A version number, increasing with every rebuild (shown in logs and `simulate`).
    pub version: u64,
    /// Stored rules that failed to compile (validated on the way in, so normally empty), with why.
    pub rule_errors: Vec<(String, String, RuleError)>,
    /// Every enabled connector's sender networks, of every tenant, deduplicated: the addresses
    /// connection admission reserves capacity for.
    connector_networks: Vec<ipnet::IpNet>,
    /// Each tenant's recipient list (recipient validation `list`), shared between snapshots
    /// while its version stays.
    recipients: HashMap<String, Arc<RecipientList>>,
}

/// A tenant's known recipients: addresses (lower case) and the domains with a catch-all.
#[derive(Clone, Debug, Default)]
pub struct RecipientList {
    pub version: i64,
    addresses: HashSet<String>,
    catch_all: HashSet<String>,
}

impl RecipientList {
    /// From stored entries: `local@domain`, or `@domain` for a domain's catch-all.
    pub fn new(version: i64, entries: impl IntoIterator<Item = String>) -> RecipientList {
        let mut list = RecipientList {
            version,
            ..Default::default()
        };
        for e in entries {
            match e.strip_prefix('@') {
                Some(domain) => list.catch_all.insert(domain.to_string()),
                None => list.addresses.insert(e),
            };
        }
        list
    }

    pub fn len(&self) -> usize {
        self.addresses.len() + self.catch_all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `address` (lower case) is known: listed, listed without its `+tag`
    /// (subaddressing, RFC 5233), or under a domain with a catch-all.
    pub fn contains(&self, address: &str) -> bool {
        if self.addresses.contains(address) {
            return true;
        }
        let Some((local, domain)) = address.rsplit_once('@') else {
            return false;
        };
        if self.catch_all.contains(domain) {
            return true;
        }
        match local.split_once('+') {
            Some((base, _)) if !base.is_empty() => {
                self.addresses.contains(&format!("{base}@{domain}"))
            }
            _ => false,
        }
    }
}

impl Directory {
    /// Builds the snapshot. Domains or connectors naming an unknown tenant are ignored (the store's
    /// foreign keys make that impossible; the core stays total anyway).
    pub fn build(
        version: u64,
        tenants: Vec<Tenant>,
        domains: Vec<AcceptedDomain>,
        connectors: Vec<Connector>,
        rules: Vec<Rule>,
    ) -> Directory {
        Self::rebuild(None, version, tenants, domains, connectors, rules)
    }

    /// As [`Directory::build`], reusing the compiled form of every rule that is unchanged since
    /// `previous` (compiling a thousand regexes on every directory change would make each admin
    /// write cost as much as the whole rule set).
    pub fn rebuild(
        previous: Option<&Directory>,
        version: u64,
        tenants: Vec<Tenant>,
        domains: Vec<AcceptedDomain>,
        connectors: Vec<Connector>,
        rules: Vec<Rule>,
    ) -> Directory {
        let mut map: HashMap<String, TenantEntry> = tenants
            .into_iter()
            .map(|t| {
                let entry = TenantEntry {
                    tenant: t,
                    domains: Vec::new(),
                    connectors: Vec::new(),
                    rules: Vec::new(),
                };
                (entry.tenant.name.clone(), entry)
            })
            .collect();
        let mut index = HashMap::new();
        for d in domains {
            if let Some(entry) = map.get_mut(&d.tenant) {
                index.insert(d.domain.clone(), (d.tenant.clone(), entry.domains.len()));
                entry.domains.push(d);
            }
        }
        for c in connectors {
            if let Some(entry) = map.get_mut(&c.tenant) {
                entry.connectors.push(c);
            }
        }
        let compiled: HashMap<(&str, &str), &CompiledRule> = previous
            .into_iter()
            .flat_map(|d| d.tenants.values())
            .flat_map(|e| e.rules.iter())
            .map(|c| ((c.rule.tenant.as_str(), c.rule.name.as_str()), c))
            .collect();
        let mut rule_errors = Vec::new();
        for r in rules {
            if let Some(entry) = map.get_mut(&r.tenant) {
                let reused = compiled
                    .get(&(r.tenant.as_str(), r.name.as_str()))
                    .filter(|c| c.rule == r)
                    .map(|c| (*c).clone());
                if let Some(c) = reused {
                    entry.rules.push(c);
                    continue;
                }
                match CompiledRule::compile(&r) {
                    Ok(c) => entry.rules.push(c),
                    Err(e) => rule_errors.push((r.tenant.clone(), r.name.clone(), e)),
                }
            }
        }
        for entry in map.values_mut() {
            entry.connectors.sort_by(|a, b| a.name.cmp(&b.name));
            entry.domains.sort_by(|a, b| a.domain.cmp(&b.domain));
            entry.rules.sort_by(|a, b| {
                (a.rule.priority, &a.rule.name).cmp(&(b.rule.priority, &b.rule.name))
            });
        }
        // Indexes were taken before sorting; rebuild them against the sorted order.
        index.clear();
        // A domain waiting for proof of control is listed with its tenant but resolves nobody.
        for entry in map.values() {
            for (i, d) in entry.domains.iter().enumerate() {
                if d.is_active() {
                    index.insert(d.domain.clone(), (entry.tenant.name.clone(), i));
                }
            }
        }
        let mut connector_networks: Vec<ipnet::IpNet> = map
            .values()
            .flat_map(|e| e.connectors.iter())
            .filter(|c| c.enabled)
            .flat_map(|c| c.sender_ips.iter().copied())
            .collect();
        connector_networks.sort();
        connector_networks.dedup();
        Directory {
            tenants: map,
            domains: index,
            version,
            rule_errors,
            connector_networks,
            recipients: HashMap::new(),
        }
    }

    /// Sets the tenants' recipient lists (built apart: they change apart from the documents).
    pub fn with_recipients(mut self, recipients: HashMap<String, Arc<RecipientList>>) -> Directory {
        self.recipients = recipients;
        self
    }

    /// The recipient lists, to reuse the unchanged ones in the next snapshot.
    pub fn recipient_lists(&self) -> &HashMap<String, Arc<RecipientList>> {
        &self.recipients
    }

    /// How recipients of `rcpt_domain` are validated: the domain's own setting, else its
    /// tenant's; never for an internal-relay domain or a domain of no tenant.
    pub fn recipient_validation(&self, rcpt_domain: &str) -> RecipientValidation {
        self.resolve(rcpt_domain)
            .map_or(RecipientValidation::Off, |(t, d)| {
                Self::recipient_validation_of(t, d)
            })
    }

    /// As [`Directory::recipient_validation`], for a domain already resolved.
    pub fn recipient_validation_of(t: &TenantEntry, d: &AcceptedDomain) -> RecipientValidation {
        if d.domain_type == DomainType::InternalRelay {
            return RecipientValidation::Off;
        }
        d.recipient_validation
            .unwrap_or(t.tenant.settings.recipient_validation)
    }

    /// Whether `tenant`'s recipient list knows `address` (lower case).
    pub fn recipient_listed(&self, tenant: &str, address: &str) -> bool {
        self.recipients
            .get(tenant)
            .is_some_and(|l| l.contains(address))
    }

    /// The longest prefix of the enabled inbound connectors' sender networks (any tenant's)
    /// that contains `ip`, if any: how narrowly a connector vouches for the address (a client
    /// admitted into the reserved connection slots must be vouched for narrowly).
    pub fn connector_prefix(&self, ip: std::net::IpAddr) -> Option<u8> {
        self.connector_networks
            .iter()
            .filter(|n| n.contains(&ip))
            .map(|n| n.prefix_len())
            .max()
    }

    pub fn tenant(&self, name: &str) -> Option<&TenantEntry> {
        self.tenants.get(name)
    }

    pub fn tenants(&self) -> impl Iterator<Item = &TenantEntry> {
        self.tenants.values()
    }

    /// SPEC §2 tenant resolution: exact accepted domain first, then the nearest parent with
    /// `match_subdomains`. `domain` must be lower case.
    pub fn resolve(&self, domain: &str) -> Option<(&TenantEntry, &AcceptedDomain)> {
        let domain = domain.trim_end_matches('.');
        if let Some(hit) = self.lookup(domain) {
            return Some(hit);
        }
        let mut rest = domain;
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some((t, d)) = self.lookup(parent)
                && d.match_subdomains
            {
                return Some((t, d));
            }
            rest = parent;
        }
        None
    }

    fn lookup(&self, domain: &str) -> Option<(&TenantEntry, &AcceptedDomain)> {
        let (tenant, i) = self.domains.get(domain)?;
        let t = self.tenants.get(tenant)?;
        Some((t, &t.domains[*i]))
    }

    /// The configured route for a recipient domain: the accepted domain's, else its tenant's;
    /// `None` means the operator's default route.
    pub fn route_for(&self, rcpt_domain: &str) -> Option<&str> {
        let (t, d) = self.resolve(rcpt_domain)?;
        d.route.as_deref().or(t.tenant.settings.route.as_deref())
    }

    /// Is `domain` (the P1 or P2 domain) one of `tenant`'s own domains, by the same resolution
    /// rules as recipients? This is the "direct send" test of SPEC §1.
    pub fn is_own_domain(&self, tenant: &str, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        matches!(self.resolve(&domain), Some((t, _)) if t.tenant.name == tenant)
    }
}

impl TenantEntry {
    /// Does any accepted domain of this tenant cover `domain` (lower case)?
    pub fn covers(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| {
            d.domain == domain || (d.match_subdomains && is_same_or_subdomain(domain, &d.domain))
        })
    }
}
