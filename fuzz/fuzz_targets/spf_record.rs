#![no_main]
//! An SPF record from DNS (attacker-controlled): parsed, and when it parses, evaluated by
//! `check_host()` against a zone where every name publishes that same record (so `include:` and
//! `redirect=` recurse into it) and resolves to a few addresses. The evaluation must end, within
//! the RFC 7208 limits, without panicking.
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use portcullis_spf::{Lookup, LookupError, Query, Record, SpfResult};

struct Zone<'a> {
    record: &'a [u8],
    queries: AtomicU32,
}

impl Zone<'_> {
    fn ask(&self, name: &str) -> Result<(), LookupError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        match name.len() % 3 {
            0 => Err(LookupError::NotFound),
            _ => Ok(()),
        }
    }
}

impl Lookup for Zone<'_> {
    async fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, LookupError> {
        self.ask(name).map(|()| vec![self.record.to_vec()])
    }
    async fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, LookupError> {
        self.ask(name).map(|()| vec![Ipv4Addr::new(192, 0, 2, 1)])
    }
    async fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, LookupError> {
        self.ask(name).map(|()| vec!["2001:db8::1".parse().unwrap()])
    }
    async fn mx(&self, name: &str) -> Result<Vec<String>, LookupError> {
        self.ask(name).map(|()| vec![format!("mx.{name}")])
    }
    async fn ptr(&self, _ip: IpAddr) -> Result<Vec<String>, LookupError> {
        self.ask("ptr").map(|()| vec!["mail.example.com".to_string()])
    }
}

/// Runs a future whose awaits are all ready (the zone answers at once).
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the zone answers at once"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut record = b"v=spf1 ".to_vec();
    record.extend_from_slice(data);
    if Record::parse(&record).is_err() {
        return;
    }
    let zone = Zone {
        record: &record,
        queries: AtomicU32::new(0),
    };
    for ip in ["192.0.2.1", "2001:db8::2"] {
        let query = Query {
            ip: ip.parse().unwrap(),
            mail_from: Some("user@example.com"),
            helo: "mail.example.com",
            receiver: "mx.example.net",
            now: 0,
        };
        zone.queries.store(0, Ordering::Relaxed);
        let outcome = run(portcullis_spf::check_host(&zone, &query, "example.com"));
        // Ten DNS-querying terms, each at most 1 + 10 (MX hosts) or 1 + 10 (PTR names) queries,
        // plus the record lookups, the explanation and %{p}.
        let asked = zone.queries.load(Ordering::Relaxed);
        assert!(asked < 300, "{asked} queries for {:?}", String::from_utf8_lossy(&record));
        assert!(outcome.result != SpfResult::None || outcome.problem.is_some());
    }
});
