//! The original client behind a filtering service (Exchange's Enhanced Filtering for
//! Connectors, "skip listing"). The service's last host connects to us, so the connection's
//! address says nothing about the sender; the `Received:` chain does, as far as it can be
//! believed.
//!
//! Belief goes hop by hop from the top: the topmost `Received:` was written by the host that
//! connected to us (the service, vouched for by the connector). The client it records is the
//! host that handed the message to it; if that host is one of the service's (`skip_ips`), the
//! `Received:` below was written by a trusted host too, and the walk goes on. The first client
//! outside the service is the original one. Headers further down were written before the
//! message reached the service: a sender can forge any of them, so they are never read.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::Connector;

/// Where the walk ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    /// The original client, or `None` when the chain does not say (the connecting address
    /// stands).
    pub client: Option<IpAddr>,
    /// Each hop looked at, in words (for the trace and `simulate`).
    pub steps: Vec<String>,
}

/// The original client of a message attributed to `connector`, from the client address each
/// `Received:` header records (`recorded`, topmost first; `None` for a header without a
/// readable address). `None` when the connector skips nothing.
pub fn original_client(connector: &Connector, recorded: &[Option<IpAddr>]) -> Option<Walk> {
    if connector.skip_ips.is_empty() && !connector.skip_last_ip {
        return None;
    }
    let mut steps = Vec::new();
    let in_service = |ip: &IpAddr| {
        connector
            .skip_ips
            .iter()
            .any(|n: &IpNet| n.contains(&ip.to_canonical()))
    };
    for (i, hop) in recorded.iter().enumerate() {
        let n = i + 1;
        let Some(ip) = hop.map(|ip| ip.to_canonical()) else {
            steps.push(format!(
                "Received #{n}: no client address; the original client is unknown"
            ));
            return Some(Walk {
                client: None,
                steps,
            });
        };
        if connector.skip_last_ip && i == 0 {
            steps.push(format!(
                "Received #{n}: client {ip}, after the last hop (skip_last_ip): the original client"
            ));
            return Some(Walk {
                client: Some(ip),
                steps,
            });
        }
        if in_service(&ip) {
            steps.push(format!(
                "Received #{n}: client {ip} is a host of the service (skip_ips): next hop"
            ));
            continue;
        }
        steps.push(format!(
            "Received #{n}: client {ip} is outside the service: the original client"
        ));
        return Some(Walk {
            client: Some(ip),
            steps,
        });
    }
    steps.push(if recorded.is_empty() {
        "no Received header: the original client is unknown".to_string()
    } else {
        "every Received header names a host of the service: the original client is unknown"
            .to_string()
    });
    Some(Walk {
        client: None,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(skip: &[&str], last: bool) -> Connector {
        let mut c = Connector::new("contoso", "filter");
        c.skip_ips = skip.iter().map(|s| s.parse().unwrap()).collect();
        c.skip_last_ip = last;
        c
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn walks_past_the_service_and_no_further() {
        let c = connector(&["203.0.113.0/24", "2001:db8:f::/48"], false);
        // Two hops inside the service, then the sender; the forged header below is never read.
        let chain = [
            ip("203.0.113.10"),
            ip("2001:db8:f::5"),
            ip("198.51.100.7"),
            ip("192.0.2.66"),
        ];
        let w = original_client(&c, &chain).unwrap();
        assert_eq!(w.client, ip("198.51.100.7"));
        assert_eq!(w.steps.len(), 3, "{:?}", w.steps);
        // IPv4-mapped addresses are the IPv4 hosts they are.
        let w = original_client(&c, &[ip("::ffff:203.0.113.9"), ip("198.51.100.8")]).unwrap();
        assert_eq!(w.client, ip("198.51.100.8"));
    }

    #[test]
    fn an_unreadable_or_exhausted_chain_recovers_nothing() {
        let c = connector(&["203.0.113.0/24"], false);
        assert_eq!(
            original_client(&c, &[ip("203.0.113.1"), None])
                .unwrap()
                .client,
            None
        );
        assert_eq!(
            original_client(&c, &[ip("203.0.113.1")]).unwrap().client,
            None
        );
        assert_eq!(original_client(&c, &[]).unwrap().client, None);
        assert_eq!(
            original_client(&connector(&[], false), &[ip("198.51.100.7")]),
            None
        );
    }

    #[test]
    fn skip_last_ip_believes_only_the_top_header() {
        let c = connector(&[], true);
        let w = original_client(&c, &[ip("198.51.100.7"), ip("192.0.2.66")]).unwrap();
        assert_eq!(w.client, ip("198.51.100.7"));
        assert_eq!(
            original_client(&c, &[None, ip("192.0.2.66")])
                .unwrap()
                .client,
            None
        );
    }
}
