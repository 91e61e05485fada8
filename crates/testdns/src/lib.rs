//! A test-only authoritative DNS server, plus DKIM/ARC signing helpers ([`sign`]), for Portcullis'
//! end-to-end tests of SPF, DKIM, DMARC and ARC.
//!
//! [`TestDns::start`] binds UDP and TCP on the same ephemeral port of 127.0.0.1 and answers from
//! records that the test adds or changes at any time ([`TestDns::txt`], [`TestDns::a`], ...). The
//! server runs on its own thread with its own tokio runtime, so a test that blocks its own thread
//! (for example on `std::process::Command::output`) never starves it.
//!
//! # Pointing Portcullis at it
//!
//! The gateway reads its resolvers from `[dns] nameservers`; a test writes the server's address
//! there:
//!
//! ```toml
//! [dns]
//! nameservers = ["127.0.0.1:PORT"]   # format!("{}", dns.addr)
//! ```
//!
//! and the gateway builds its resolver the way [`resolver_config`] does (UDP and TCP to each
//! address, with the port of the address). In-process tests use [`authenticator`], a
//! `mail_auth::MessageAuthenticator` pointed at the server with a 1 s timeout, one attempt and no
//! resolver cache.
//!
//! ```no_run
//! # async fn demo() {
//! use portcullis_testdns::{TestDns, authenticator, sign::DkimKey};
//! let dns = TestDns::start();
//! dns.txt("example.com", "v=spf1 ip4:127.0.0.1 -all");
//! let key = DkimKey::rsa();
//! dns.txt("sel._domainkey.example.com", &key.dns_record());
//! let auth = authenticator(&dns);
//! # let _ = auth;
//! # }
//! ```
//!
//! # Semantics
//!
//! - Names are case-insensitive, with or without a trailing dot.
//! - A name with records, but none of the queried type, gets NOERROR without answers (NODATA); so
//!   does an empty non-terminal (a name that only has records below it). Any other name gets
//!   NXDOMAIN — never REFUSED. Every answer has the AA flag set.
//! - Records carry TTL 300 unless [`TestDns::set_ttl`] changed the TTL for records added later.
//! - Names equal to or under a [`TestDns::timeout`] suffix get no answer at all; under a
//!   [`TestDns::servfail`] suffix, SERVFAIL. A [`TestDns::timeout_name`] times out only for the
//!   types it has no records of.
//! - A name with a [`TestDns::cname`] and no records of the queried type is answered with the
//!   CNAME and the target's records when the target is in the zone (up to eight links).
//! - Labels may hold any octets (`foo:bar/baz.example.com`, spaces, non-ASCII): names are
//!   compared by their octets, lowercased.
//! - Answers that do not fit a UDP response are truncated (TC), and the client retries over TCP.

pub mod sign;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};

/// The TTL of records added before any [`TestDns::set_ttl`].
pub const DEFAULT_TTL: u32 = 300;

/// An authoritative test DNS server on 127.0.0.1 (UDP and TCP on the same ephemeral port), running
/// on its own thread with its own tokio runtime, so tests that block their own thread
/// (`std::process` calls) never starve it. Dropping it stops the thread.
pub struct TestDns {
    /// Where the server listens, UDP and TCP.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    zone: Mutex<Zone>,
    queries: AtomicU64,
}

struct Zone {
    /// Normalized owner name (lowercase, no trailing dot) -> (TTL, data), in insertion order.
    records: HashMap<String, Vec<(u32, RData)>>,
    timeouts: Vec<String>,
    /// Names that time out for the types they have no records of ([`TestDns::timeout_name`]).
    timeout_names: Vec<String>,
    servfails: Vec<String>,
    ttl: u32,
}

impl Shared {
    fn zone(&self) -> MutexGuard<'_, Zone> {
        // A panicking test thread must not take the server down with it.
        self.zone
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TestDns {
    /// Binds 127.0.0.1:0 (UDP, then TCP on the same port) and starts serving on a new thread.
    ///
    /// # Panics
    /// If no port can be bound for both protocols, or the thread or runtime cannot start.
    pub fn start() -> TestDns {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("local address of the UDP socket");
        let shared = Arc::new(Shared {
            zone: Mutex::new(Zone {
                records: HashMap::new(),
                timeouts: Vec::new(),
                timeout_names: Vec::new(),
                servfails: Vec::new(),
                ttl: DEFAULT_TTL,
            }),
            queries: AtomicU64::new(0),
        });
        let handler = Handler(shared.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("testdns-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the test DNS server");
                runtime.block_on(async move {
                    udp.set_nonblocking(true).expect("non-blocking UDP socket");
                    tcp.set_nonblocking(true)
                        .expect("non-blocking TCP listener");
                    let mut server = Server::new(handler);
                    server.register_socket(
                        tokio::net::UdpSocket::from_std(udp).expect("tokio UDP socket"),
                    );
                    server.register_listener(
                        tokio::net::TcpListener::from_std(tcp).expect("tokio TCP listener"),
                        Duration::from_secs(10),
                        32,
                    );
                    let _ = ready_tx.send(());
                    // Sent by Drop, or the sender is dropped: either way, stop.
                    let _ = stop_rx.await;
                    // Dropping the server aborts its tasks; dropping the runtime ends the rest.
                    drop(server);
                });
            })
            .expect("spawn the test DNS server thread");
        ready_rx.recv().expect("the test DNS server thread started");
        TestDns {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Appends a TXT record. A value longer than 255 bytes is split into several
    /// character-strings (which SPF, DKIM and DMARC readers concatenate).
    pub fn txt(&self, name: &str, value: &str) {
        let chunks: Vec<&[u8]> = if value.is_empty() {
            vec![b""]
        } else {
            value.as_bytes().chunks(255).collect()
        };
        self.add(name, RData::TXT(TXT::from_bytes(chunks)));
    }

    /// Appends a TXT record made of exactly these character-strings (each at most 255 bytes),
    /// which need not be ASCII.
    pub fn txt_strings(&self, name: &str, strings: &[&[u8]]) {
        self.add(name, RData::TXT(TXT::from_bytes(strings.to_vec())));
    }

    /// Adds a CNAME record: queries for `name` are answered with it and, when the target is in
    /// the zone, the target's records (followed up to eight links, so loops end).
    pub fn cname(&self, name: &str, target: &str) {
        self.add(name, RData::CNAME(CNAME(fqdn(target))));
    }

    /// Appends an A record.
    pub fn a(&self, name: &str, ip: Ipv4Addr) {
        self.add(name, RData::A(A(ip)));
    }

    /// Appends an AAAA record.
    pub fn aaaa(&self, name: &str, ip: Ipv6Addr) {
        self.add(name, RData::AAAA(AAAA(ip)));
    }

    /// Appends an MX record.
    pub fn mx(&self, name: &str, preference: u16, exchange: &str) {
        self.add(name, RData::MX(MX::new(preference, fqdn(exchange))));
    }

    /// Appends a PTR record at the reverse name of `ip` (`in-addr.arpa` / `ip6.arpa`).
    pub fn ptr(&self, ip: IpAddr, name: &str) {
        self.add(&reverse_name(ip), RData::PTR(PTR(fqdn(name))));
    }

    /// Removes every record of that name (of every type). For a PTR, pass the reverse name
    /// (see [`reverse_name`]).
    pub fn clear(&self, name: &str) {
        self.shared.zone().records.remove(&normalize(name));
    }

    /// Sets the TTL of the records added from now on (initially [`DEFAULT_TTL`]).
    pub fn set_ttl(&self, ttl: u32) {
        self.shared.zone().ttl = ttl;
    }

    /// Names equal to or under `suffix` get no answer at all: the client times out.
    pub fn timeout(&self, suffix: &str) {
        self.shared.zone().timeouts.push(normalize(suffix));
    }

    /// Queries for exactly `name`, of a type it has no records of, get no answer at all.
    pub fn timeout_name(&self, name: &str) {
        self.shared.zone().timeout_names.push(normalize(name));
    }

    /// Names equal to or under `suffix` get SERVFAIL.
    pub fn servfail(&self, suffix: &str) {
        self.shared.zone().servfails.push(normalize(suffix));
    }

    /// How many queries reached the server so far, including those it answered with an error
    /// or (after [`TestDns::timeout`]) left unanswered.
    pub fn queries(&self) -> u64 {
        self.shared.queries.load(Ordering::SeqCst)
    }

    fn add(&self, name: &str, data: RData) {
        let mut zone = self.shared.zone();
        let ttl = zone.ttl;
        zone.records
            .entry(normalize(name))
            .or_default()
            .push((ttl, data));
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for TestDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDns")
            .field("addr", &self.addr)
            .field("queries", &self.queries())
            .finish_non_exhaustive()
    }
}

/// The resolver configuration for these name servers: UDP and TCP to each address's IP and port,
/// no search domains. The gateway builds its resolver from `[dns] nameservers` the same way.
pub fn resolver_config(nameservers: &[SocketAddr]) -> ResolverConfig {
    let servers = nameservers
        .iter()
        .map(|addr| {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
        })
        .collect();
    ResolverConfig::from_name_servers(servers)
}

/// Resolver options for tests: 1 s timeout, one attempt, no `/etc/hosts`, and no resolver cache
/// (records that a test changes are seen at once).
///
/// Measured with hickory-resolver 0.26.3: a lookup that gets no answer fails with
/// `NetError::Timeout` after about twice `timeout` (2 s here), whether or not TCP is configured;
/// `attempts` is read by nothing in 0.26 but `/etc/resolv.conf` parsing.
pub fn resolver_opts() -> ResolverOpts {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(1);
    opts.attempts = 1;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts
}

/// A `mail_auth::MessageAuthenticator` that resolves through `dns` only
/// ([`resolver_config`] + [`resolver_opts`]).
///
/// # Panics
/// If hickory refuses the configuration (it does not for a loopback address).
pub fn authenticator(dns: &TestDns) -> MessageAuthenticator {
    MessageAuthenticator::new(resolver_config(&[dns.addr]), resolver_opts())
        .expect("a resolver pointed at the test DNS server")
}

/// The reverse-lookup name of an address, without trailing dot: `4.3.2.1.in-addr.arpa` for
/// 1.2.3.4, nibbles under `ip6.arpa` for IPv6.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

/// A name as its labels' octets say, lowercased (Name's Display would turn `xn--` labels into
/// Unicode and escape octets like `:` and spaces).
fn wire_name(name: &Name) -> String {
    let labels: Vec<String> = name
        .iter()
        .map(|label| String::from_utf8_lossy(label).to_ascii_lowercase())
        .collect();
    labels.join(".")
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A name from any labels: DNS carries any octets in a label (RFC 2181 §11), and tests need names
/// that no hostname rule allows (`foo:bar/baz.example.com`, non-ASCII).
fn fqdn(name: &str) -> Name {
    let labels = name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .map(str::as_bytes);
    let mut name =
        Name::from_labels(labels).unwrap_or_else(|e| panic!("bad DNS name {name:?}: {e}"));
    name.set_fqdn(true);
    name
}

/// Binds UDP on an ephemeral port of 127.0.0.1, then TCP on the same port; retries when the TCP
/// port is taken.
fn bind_pair() -> (UdpSocket, TcpListener) {
    let mut last_error = None;
    for _ in 0..50 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind UDP on 127.0.0.1");
        let port = udp.local_addr().expect("UDP local address").port();
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(tcp) => return (udp, tcp),
            Err(e) => last_error = Some(e),
        }
    }
    panic!("no port of 127.0.0.1 free for both UDP and TCP: {last_error:?}");
}

fn under(name: &str, suffixes: &[String]) -> bool {
    suffixes.iter().any(|suffix| {
        suffix.is_empty()
            || name == suffix
            || (name.len() > suffix.len()
                && name.ends_with(suffix.as_str())
                && name.as_bytes()[name.len() - suffix.len() - 1] == b'.')
    })
}

enum Plan {
    NoAnswer,
    Error(ResponseCode),
    Answer(Vec<Record>),
}

/// The SOA sent with negative answers (RFC 2308), so resolvers cache NXDOMAIN and NODATA like
/// they do with a real authoritative server: owned by the last two labels of the name.
fn negative_soa(qname: &str, ttl: u32) -> Record {
    let labels: Vec<&str> = qname.split('.').filter(|l| !l.is_empty()).collect();
    let apex = labels[labels.len().saturating_sub(2)..].join(".");
    let soa = SOA::new(
        fqdn("ns.test.invalid"),
        fqdn("hostmaster.test.invalid"),
        1,
        3600,
        600,
        86400,
        ttl,
    );
    Record::from_rdata(fqdn(&apex), ttl, RData::SOA(soa))
}

struct Handler(Arc<Shared>);

impl Handler {
    fn plan(&self, request: &Request) -> Plan {
        let Ok(info) = request.request_info() else {
            return Plan::Error(ResponseCode::FormErr);
        };
        let owner = info.query.original().name().clone();
        let qname = wire_name(info.query.name());
        let qtype = info.query.query_type();
        let zone = self.0.zone();
        if under(&qname, &zone.timeouts) {
            return Plan::NoAnswer;
        }
        if under(&qname, &zone.servfails) {
            return Plan::Error(ResponseCode::ServFail);
        }
        let mut answers = Vec::new();
        let (mut name, mut owner) = (qname, owner);
        for _ in 0..8 {
            let Some(records) = zone.records.get(&name) else {
                if !answers.is_empty() {
                    // A CNAME pointing out of the zone: the client follows it.
                    return Plan::Answer(answers);
                }
                if zone.timeout_names.contains(&name) {
                    return Plan::NoAnswer;
                }
                // An empty non-terminal exists: NODATA, not NXDOMAIN.
                if zone
                    .records
                    .keys()
                    .any(|n| under(n, std::slice::from_ref(&name)))
                {
                    return Plan::Answer(Vec::new());
                }
                return Plan::Error(ResponseCode::NXDomain);
            };
            let direct: Vec<Record> = records
                .iter()
                .filter(|(_, data)| qtype == RecordType::ANY || data.record_type() == qtype)
                .map(|(ttl, data)| Record::from_rdata(owner.clone(), *ttl, data.clone()))
                .collect();
            if direct.is_empty()
                && let Some((ttl, RData::CNAME(target))) = records
                    .iter()
                    .find(|(_, data)| data.record_type() == RecordType::CNAME)
            {
                answers.push(Record::from_rdata(
                    owner.clone(),
                    *ttl,
                    RData::CNAME(target.clone()),
                ));
                name = wire_name(&target.0);
                owner = target.0.clone();
                continue;
            }
            if direct.is_empty() && answers.is_empty() && zone.timeout_names.contains(&name) {
                return Plan::NoAnswer;
            }
            answers.extend(direct);
            return Plan::Answer(answers);
        }
        Plan::Answer(answers)
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.0.queries.fetch_add(1, Ordering::SeqCst);
        let plan = self.plan(request);
        let negative_ttl = self.0.zone().ttl;
        let qname = request
            .request_info()
            .map(|i| normalize(&i.query.name().to_string()))
            .unwrap_or_default();

        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        let answers = match plan {
            Plan::NoAnswer => {
                metadata.response_code = ResponseCode::ServFail;
                return ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                });
            }
            Plan::Error(code) => {
                metadata.response_code = code;
                Vec::new()
            }
            Plan::Answer(answers) => answers,
        };
        let negative = answers.is_empty()
            && matches!(
                metadata.response_code,
                ResponseCode::NoError | ResponseCode::NXDomain
            );
        let soa: Vec<Record> = if negative && !qname.is_empty() {
            vec![negative_soa(&qname, negative_ttl)]
        } else {
            Vec::new()
        };

        // Echo EDNS so that UDP answers may use the client's advertised buffer size.
        let edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().max(512));
            edns.set_version(0);
            edns
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let response = builder.build(
            metadata,
            answers.iter(),
            std::iter::empty(),
            soa.iter(),
            std::iter::empty(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => {
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn suffix_matching() {
        let suffixes = vec![normalize("Slow.Example.")];
        assert!(under("slow.example", &suffixes));
        assert!(under("a.b.slow.example", &suffixes));
        assert!(!under("veryslow.example", &suffixes));
        assert!(!under("example", &suffixes));
    }
}
