//! Who may open a session: connections counted in total, per client address and per network
//! (/24 and /48 by default), with part of the total reserved for inbound connectors' addresses,
//! so that a flood from the internet (50 addresses of one /24 × 20 connections each) neither
//! fills the gateway nor locks out a tenant's own servers or partners.
//!
//! Counted after the PROXY header, when there is one: the client is the address it names.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use portcullis_smtp::{Reply, reply};

use crate::config::Config;

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every unreserved slot is taken (or every slot, for a connector's address).
    Full,
    Address,
    Network,
}

impl Refusal {
    pub fn reply(self, host: &str) -> Reply {
        match self {
            Refusal::Full => reply::too_many_connections(host),
            Refusal::Address => reply::too_many_connections_from_address(host),
            Refusal::Network => reply::too_many_connections_from_network(host),
        }
    }

    /// The label of `portcullis_connections_refused_total`.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::Address => "address",
            Refusal::Network => "network",
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_network: HashMap<IpNet, usize>,
}

/// The connection counts of one listener.
pub struct Admission {
    max_total: usize,
    reserved: usize,
    per_ip: usize,
    per_network: usize,
    prefix_v4: u8,
    prefix_v6: u8,
    counts: Mutex<Counts>,
}

impl Admission {
    pub fn new(config: &Config) -> Arc<Admission> {
        Arc::new(Admission {
            max_total: config.max_connections,
            reserved: config.reserved_connector_slots,
            per_ip: config.max_connections_per_ip,
            per_network: config.max_connections_per_network,
            prefix_v4: config.network_prefix_v4,
            prefix_v6: config.network_prefix_v6,
            counts: Mutex::default(),
        })
    }

    /// Whether a client a connector vouches for with a network of `prefix` bits is a
    /// connector's address here: only a network no broader than the counting network is (a
    /// tenant's `0.0.0.0/0` connector must not lift the limits for every client).
    pub fn is_connector(&self, ip: IpAddr, prefix: Option<u8>) -> bool {
        let bucket = match ip {
            IpAddr::V4(_) => self.prefix_v4,
            IpAddr::V6(_) => self.prefix_v6,
        };
        prefix.is_some_and(|p| p >= bucket)
    }

    /// The network `ip` is counted in.
    fn network(&self, ip: IpAddr) -> IpNet {
        let prefix = match ip {
            IpAddr::V4(_) => self.prefix_v4,
            IpAddr::V6(_) => self.prefix_v6,
        };
        IpNet::new(ip, prefix)
            .expect("prefix lengths validated by the configuration")
            .trunc()
    }

    /// Admits a connection from `ip` or says why not. A connector's address (`connector`) may
    /// use the reserved slots and is not counted against its network: a partner's relays often
    /// share one.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, connector: bool) -> Result<Slot, Refusal> {
        let network = (!connector).then(|| self.network(ip));
        let mut counts = self.counts.lock().expect("not poisoned");
        let limit = if connector {
            self.max_total
        } else {
            self.max_total - self.reserved
        };
        if counts.total >= limit {
            return Err(Refusal::Full);
        }
        if counts.per_ip.get(&ip).copied().unwrap_or(0) >= self.per_ip {
            return Err(Refusal::Address);
        }
        if let Some(net) = network
            && counts.per_network.get(&net).copied().unwrap_or(0) >= self.per_network
        {
            return Err(Refusal::Network);
        }
        counts.total += 1;
        *counts.per_ip.entry(ip).or_insert(0) += 1;
        if let Some(net) = network {
            *counts.per_network.entry(net).or_insert(0) += 1;
        }
        Ok(Slot {
            admission: self.clone(),
            ip,
            network,
        })
    }
}

/// An admitted connection's place in the counts, given back when the session ends.
pub struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
    network: Option<IpNet>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.admission.counts.lock().expect("not poisoned");
        counts.total -= 1;
        release(&mut counts.per_ip, &self.ip);
        if let Some(net) = &self.network {
            release(&mut counts.per_network, net);
        }
    }
}

fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(
        total: usize,
        reserved: usize,
        per_ip: usize,
        per_network: usize,
    ) -> Arc<Admission> {
        Arc::new(Admission {
            max_total: total,
            reserved,
            per_ip,
            per_network,
            prefix_v4: 24,
            prefix_v6: 48,
            counts: Mutex::default(),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_network_cannot_fill_the_gateway() {
        let a = admission(100, 10, 5, 20);
        let mut slots = Vec::new();
        // 50 addresses of one /24: the network's 20 connections, then refusals.
        for host in 1..=50 {
            for _ in 0..5 {
                match a.admit(ip(&format!("198.51.100.{host}")), false) {
                    Ok(s) => slots.push(s),
                    Err(r) => assert_eq!(r, Refusal::Network),
                }
            }
        }
        assert_eq!(slots.len(), 20);
        // Another network is still served; per address at most 5.
        for _ in 0..5 {
            slots.push(a.admit(ip("203.0.113.7"), false).unwrap());
        }
        assert_eq!(
            a.admit(ip("203.0.113.7"), false).err(),
            Some(Refusal::Address)
        );
        // IPv6 counts by /48.
        for i in 0..4 {
            slots.push(a.admit(ip(&format!("2001:db8:1:{i}::1")), false).unwrap());
        }
    }

    #[test]
    fn reserved_slots_keep_connectors_in() {
        let a = admission(10, 3, 10, 10);
        let mut slots: Vec<Slot> = (0..7)
            .map(|i| a.admit(ip(&format!("10.{i}.0.1")), false).unwrap())
            .collect();
        assert_eq!(a.admit(ip("10.9.0.1"), false).err(), Some(Refusal::Full));
        // The tenant's own server gets in, three times; then it is full for everybody.
        for _ in 0..3 {
            slots.push(a.admit(ip("192.0.2.25"), true).unwrap());
        }
        assert_eq!(a.admit(ip("192.0.2.25"), true).err(), Some(Refusal::Full));
        // Only a narrow connector network counts: a tenant's 0.0.0.0/0 lifts nothing.
        let ip1 = ip("198.51.100.1");
        assert!(a.is_connector(ip1, Some(32)) && a.is_connector(ip1, Some(24)));
        assert!(
            !a.is_connector(ip1, Some(0))
                && !a.is_connector(ip1, Some(16))
                && !a.is_connector(ip1, None)
        );
        assert!(
            !a.is_connector(ip("2001:db8::1"), Some(32))
                && a.is_connector(ip("2001:db8::1"), Some(64))
        );
        // Slots come back when sessions end.
        slots.truncate(5);
        assert!(a.admit(ip("10.9.0.1"), false).is_ok());
        drop(slots);
        let counts = a.counts.lock().unwrap();
        assert_eq!(counts.total, 0);
        assert!(counts.per_ip.is_empty() && counts.per_network.is_empty());
    }
}
