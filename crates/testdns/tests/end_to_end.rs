//! The test server and signing helpers, end to end over real sockets on 127.0.0.1: raw DNS
//! queries over UDP and TCP, and mail-auth's SPF, DKIM, DMARC and ARC verification through
//! `authenticator`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, SpfResult, dmarc::Policy,
    dmarc::verify::DmarcParameters,
};
use portcullis_testdns::sign::DkimKey;
use portcullis_testdns::{TestDns, authenticator, reverse_name};

const MESSAGE: &str = "From: Alice <alice@example.com>\r\n\
To: Bob <bob@portcullis.test>\r\n\
Subject: Lunch\r\n\
Date: Tue, 3 Mar 2026 12:00:00 +0000\r\n\
Message-ID: <lunch-1@example.com>\r\n\
\r\n\
Shall we have lunch at noon?\r\n";

fn message_from(from: &str) -> String {
    MESSAGE.replace("alice@example.com", from)
}

/// One query, the way any resolver sends it, over UDP or TCP; returns the whole response.
fn raw_query(addr: SocketAddr, name: &str, qtype: RecordType, tcp: bool) -> Message {
    let mut query = Message::query();
    query.metadata.id = 4242;
    query.metadata.recursion_desired = true;
    query.add_query(hickory_server::proto::op::Query::query(
        Name::from_ascii(name).unwrap(),
        qtype,
    ));
    let bytes = query.to_vec().unwrap();
    let response = if tcp {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(&(bytes.len() as u16).to_be_bytes())
            .unwrap();
        stream.write_all(&bytes).unwrap();
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut buf).unwrap();
        buf
    } else {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket.send_to(&bytes, addr).unwrap();
        let mut buf = vec![0u8; 65535];
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    let message = Message::from_vec(&response).unwrap();
    assert_eq!(message.metadata.id, 4242);
    message
}

fn txt_strings(message: &Message) -> Vec<Vec<Vec<u8>>> {
    message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(txt.txt_data.iter().map(|s| s.to_vec()).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn answers_over_udp_and_tcp_with_aa_nodata_and_nxdomain() {
    let dns = TestDns::start();
    dns.txt("Example.COM.", "v=spf1 ip4:127.0.0.1 -all");
    dns.a("mx.example.com", Ipv4Addr::new(127, 0, 0, 1));
    dns.mx("example.com", 10, "mx.example.com");
    dns.ptr(IpAddr::V4(Ipv4Addr::LOCALHOST), "mx.example.com");

    for tcp in [false, true] {
        // Case-insensitive, trailing dot or not.
        let r = raw_query(dns.addr, "eXample.com.", RecordType::TXT, tcp);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.metadata.authoritative, "AA flag");
        assert_eq!(
            txt_strings(&r),
            vec![vec![b"v=spf1 ip4:127.0.0.1 -all".to_vec()]]
        );
        // The owner name echoes the question.
        assert_eq!(r.answers[0].name.to_ascii(), "eXample.com.");
        assert_eq!(r.answers[0].ttl, 300);

        let r = raw_query(dns.addr, "example.com", RecordType::MX, tcp);
        assert_eq!(r.answers.len(), 1);
        match &r.answers[0].data {
            RData::MX(mx) => {
                assert_eq!(mx.preference, 10);
                assert_eq!(mx.exchange.to_ascii(), "mx.example.com.");
            }
            other => panic!("not an MX: {other:?}"),
        }

        let r = raw_query(dns.addr, "1.0.0.127.in-addr.arpa", RecordType::PTR, tcp);
        assert_eq!(r.answers.len(), 1, "{r:?}");

        // NODATA: the name has records, none of this type.
        let r = raw_query(dns.addr, "example.com", RecordType::AAAA, tcp);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.metadata.authoritative);
        assert!(r.answers.is_empty());

        // NODATA for an empty non-terminal, NXDOMAIN (never REFUSED) for the rest.
        let r = raw_query(dns.addr, "in-addr.arpa", RecordType::TXT, tcp);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        let r = raw_query(dns.addr, "_dmarc.nowhere.example", RecordType::TXT, tcp);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert!(r.metadata.authoritative);
    }
    assert_eq!(dns.queries(), 12);

    // Records change at any time.
    dns.clear("EXAMPLE.com");
    let r = raw_query(dns.addr, "example.com", RecordType::TXT, false);
    // mx.example.com is below: example.com is now an empty non-terminal.
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    dns.clear("mx.example.com");
    let r = raw_query(dns.addr, "example.com", RecordType::TXT, false);
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    dns.set_ttl(5);
    dns.aaaa("example.com", "2001:db8::1".parse().unwrap());
    let r = raw_query(dns.addr, "example.com", RecordType::AAAA, true);
    assert_eq!(r.answers[0].ttl, 5);
    assert_eq!(
        reverse_name(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "1.0.0.127.in-addr.arpa"
    );
}

#[tokio::test]
async fn long_txt_values_are_split_and_big_answers_truncate_to_tcp() {
    let dns = TestDns::start();
    let long = "x".repeat(600);
    dns.txt("long.example", &long);
    let r = raw_query(dns.addr, "long.example", RecordType::TXT, true);
    let strings = &txt_strings(&r)[0];
    assert_eq!(
        strings.iter().map(Vec::len).collect::<Vec<_>>(),
        [255, 255, 90]
    );
    assert_eq!(strings.concat(), long.as_bytes());

    // Too big for a UDP answer without EDNS (512 bytes): TC set, no partial answer.
    let r = raw_query(dns.addr, "long.example", RecordType::TXT, false);
    assert!(r.metadata.truncation);
    assert!(r.answers.is_empty());
    for i in 0..6 {
        dns.txt("big.example", &format!("{i}{}", "y".repeat(399)));
    }
    let r = raw_query(dns.addr, "big.example", RecordType::TXT, false);
    assert!(r.metadata.truncation, "6 x 400 bytes do not fit 512 bytes");
    // The resolver (EDNS, 1232 bytes) sees TC too and retries over TCP transparently.
    let auth = authenticator(&dns);
    let before = dns.queries();
    let lookup = auth
        .resolver()
        .txt_lookup("big.example.")
        .await
        .expect("answer over TCP after truncation");
    assert_eq!(lookup.answers().len(), 6);
    assert!(dns.queries() >= before + 2, "a UDP query, then TCP");
    // And a long value reaches mail-auth concatenated.
    assert_eq!(
        auth.txt_raw_lookup("long.example").await.unwrap(),
        long.as_bytes()
    );
    let r = raw_query(dns.addr, "big.example", RecordType::TXT, true);
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 6);
}

#[test]
fn serves_while_the_test_thread_blocks_and_stops_on_drop() {
    let dns = TestDns::start();
    dns.a("host.example", Ipv4Addr::new(192, 0, 2, 7));
    // A blocking call on this thread (no runtime here at all) is answered by the server's thread.
    let r = raw_query(dns.addr, "host.example", RecordType::A, false);
    assert_eq!(r.answers.len(), 1);
    let addr = dns.addr;
    drop(dns);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "the listener is closed after drop"
    );
}

fn publish_example(dns: &TestDns) {
    dns.txt("example.com", "v=spf1 ip4:127.0.0.1 -all");
    dns.txt("rsa._domainkey.example.com", &DkimKey::rsa().dns_record());
    dns.txt(
        "ed._domainkey.example.com",
        &DkimKey::ed25519().dns_record(),
    );
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject");
}

#[tokio::test]
async fn spf_pass_and_fail() {
    let dns = TestDns::start();
    publish_example(&dns);
    let auth = authenticator(&dns);
    let spf = |ip: &str| {
        auth.verify_spf(SpfParameters::verify_mail_from(
            ip.parse().unwrap(),
            "mail.example.com",
            "mx.portcullis.test",
            "alice@example.com",
        ))
    };
    assert_eq!(spf("127.0.0.1").await.result(), SpfResult::Pass);
    assert_eq!(spf("127.0.0.2").await.result(), SpfResult::Fail);
    // No SPF record at all: None (NXDOMAIN is not an error).
    let none = auth
        .verify_spf(SpfParameters::verify_mail_from(
            "127.0.0.1".parse().unwrap(),
            "mail.nowhere.example",
            "mx.portcullis.test",
            "bob@nowhere.example",
        ))
        .await;
    assert_eq!(none.result(), SpfResult::None);
}

async fn dkim_results(auth: &MessageAuthenticator, raw: &[u8]) -> Vec<DkimResult> {
    let message = AuthenticatedMessage::parse(raw).unwrap();
    auth.verify_dkim(&message)
        .await
        .iter()
        .map(|o| o.result().clone())
        .collect()
}

#[tokio::test]
async fn dkim_rsa_and_ed25519_pass_and_tampering_is_caught() {
    let dns = TestDns::start();
    publish_example(&dns);
    let auth = authenticator(&dns);

    let rsa = DkimKey::rsa().sign(MESSAGE.as_bytes(), "example.com", "rsa");
    assert!(rsa.starts_with(b"DKIM-Signature: v=1; a=rsa-sha256;"));
    assert_eq!(dkim_results(&auth, &rsa).await, [DkimResult::Pass]);

    let ed = DkimKey::ed25519().sign(MESSAGE.as_bytes(), "example.com", "ed");
    assert!(String::from_utf8_lossy(&ed).contains("a=ed25519-sha256"));
    assert_eq!(dkim_results(&auth, &ed).await, [DkimResult::Pass]);

    // Both signatures on one message.
    let both = DkimKey::ed25519().sign(&rsa, "example.com", "ed");
    assert_eq!(
        dkim_results(&auth, &both).await,
        [DkimResult::Pass, DkimResult::Pass]
    );

    // A changed body: mail-auth reports the body-hash mismatch as neutral.
    let tampered = String::from_utf8(rsa.clone())
        .unwrap()
        .replace("noon", "one");
    let results = dkim_results(&auth, tampered.as_bytes()).await;
    assert!(
        matches!(results[..], [DkimResult::Neutral(_)]),
        "{results:?}"
    );
    // A changed signed header: a real signature failure.
    let tampered = String::from_utf8(ed).unwrap().replace("Lunch", "Dinner");
    let results = dkim_results(&auth, tampered.as_bytes()).await;
    assert!(matches!(results[..], [DkimResult::Fail(_)]), "{results:?}");

    // No key published for the selector: permerror, not a DNS failure.
    let unknown = DkimKey::rsa().sign(MESSAGE.as_bytes(), "example.com", "nosuch");
    let results = dkim_results(&auth, &unknown).await;
    assert!(
        matches!(results[..], [DkimResult::PermError(_)]),
        "{results:?}"
    );
}

async fn dmarc(
    auth: &MessageAuthenticator,
    raw: &[u8],
    mail_from: &str,
    ip: &str,
) -> mail_auth::DmarcOutput {
    let message = AuthenticatedMessage::parse(raw).unwrap();
    let dkim = auth.verify_dkim(&message).await;
    let domain = mail_from.rsplit_once('@').unwrap().1;
    let spf = auth
        .verify_spf(SpfParameters::verify_mail_from(
            ip.parse().unwrap(),
            domain,
            "mx.portcullis.test",
            mail_from,
        ))
        .await;
    auth.verify_dmarc(DmarcParameters::new(&message, &dkim, domain, &spf))
        .await
}

#[tokio::test]
async fn dmarc_pass_by_aligned_dkim_and_tree_walk_to_the_org_domain() {
    let dns = TestDns::start();
    publish_example(&dns);
    let auth = authenticator(&dns);

    // SPF fails (wrong IP, unaligned envelope), DKIM d=example.com aligns with From.
    let signed = DkimKey::rsa().sign(MESSAGE.as_bytes(), "example.com", "rsa");
    let out = dmarc(&auth, &signed, "bounce@other.example", "127.0.0.9").await;
    assert_eq!(out.dkim_result(), &DmarcResult::Pass);
    assert_eq!(out.policy(), Policy::Reject);
    assert_eq!(out.result(), DmarcResult::Pass);

    // Unsigned and SPF-failing: DMARC fails with p=reject.
    let out = dmarc(&auth, MESSAGE.as_bytes(), "alice@example.com", "127.0.0.9").await;
    assert!(matches!(out.result(), DmarcResult::Fail(_)), "{out:?}");
    assert_eq!(out.policy(), Policy::Reject);

    // From a@sub.example.com: no _dmarc.sub.example.com (NXDOMAIN), the walk finds
    // _dmarc.example.com; relaxed alignment lets d=example.com pass.
    let queries_before = dns.queries();
    let from_sub = message_from("a@sub.example.com");
    let signed = DkimKey::ed25519().sign(from_sub.as_bytes(), "example.com", "ed");
    let out = dmarc(&auth, &signed, "a@sub.example.com", "127.0.0.9").await;
    assert_eq!(out.domain(), "sub.example.com");
    assert!(out.dmarc_record().is_some(), "the walk found a record");
    assert_eq!(out.dkim_result(), &DmarcResult::Pass);
    assert_eq!(out.result(), DmarcResult::Pass);
    assert!(dns.queries() > queries_before);
}

#[tokio::test]
async fn arc_sealed_by_a_forwarder_verifies_as_pass_and_chains() {
    let dns = TestDns::start();
    publish_example(&dns);
    dns.txt(
        "arc._domainkey.forwarder.example",
        &DkimKey::rsa().dns_record(),
    );
    dns.txt(
        "arc._domainkey.second.example",
        &DkimKey::ed25519().dns_record(),
    );
    let auth = authenticator(&dns);

    let signed = DkimKey::rsa().sign(MESSAGE.as_bytes(), "example.com", "rsa");
    let sealed = DkimKey::rsa()
        .arc_seal(&signed, "forwarder.example", "arc", &dns)
        .await;
    let text = String::from_utf8_lossy(&sealed);
    assert!(text.contains("ARC-Seal: i=1;"), "{text}");
    assert!(text.contains("cv=none"), "{text}");
    assert!(text.contains("ARC-Authentication-Results: i=1; forwarder.example;"));
    assert!(text.contains("dkim=pass"), "{text}");

    let message = AuthenticatedMessage::parse(&sealed).unwrap();
    let arc = auth.verify_arc(&message).await;
    assert_eq!(arc.result(), &DkimResult::Pass);

    // A second hop seals over a valid chain: i=2, cv=pass, and the whole chain still verifies.
    let resealed = DkimKey::ed25519()
        .arc_seal(&sealed, "second.example", "arc", &dns)
        .await;
    let text = String::from_utf8_lossy(&resealed);
    assert!(text.contains("i=2;"), "{text}");
    assert!(text.contains("cv=pass"), "{text}");
    let message = AuthenticatedMessage::parse(&resealed).unwrap();
    assert_eq!(auth.verify_arc(&message).await.result(), &DkimResult::Pass);

    // Breaking the body after sealing fails the chain.
    let broken = String::from_utf8(resealed).unwrap().replace("noon", "one");
    let message = AuthenticatedMessage::parse(broken.as_bytes()).unwrap();
    assert!(matches!(
        auth.verify_arc(&message).await.result(),
        DkimResult::Fail(_) | DkimResult::Neutral(_)
    ));
}

#[test]
fn arc_seal_blocking_works_outside_a_runtime() {
    let dns = TestDns::start();
    publish_example(&dns);
    dns.txt(
        "arc._domainkey.forwarder.example",
        &DkimKey::rsa().dns_record(),
    );
    let sealed =
        DkimKey::rsa().arc_seal_blocking(MESSAGE.as_bytes(), "forwarder.example", "arc", &dns);
    assert!(String::from_utf8_lossy(&sealed).contains("cv=none"));
}

#[tokio::test]
async fn timeout_and_servfail_are_temperrors() {
    let dns = TestDns::start();
    dns.txt("slow.example", "v=spf1 -all");
    dns.txt("_dmarc.broken.example", "v=DMARC1; p=reject");
    dns.timeout("slow.example");
    dns.servfail("broken.example");
    let auth = authenticator(&dns);

    // The TXT lookup itself: the resolver gives up after its timeout (1 s; hickory 0.26.3 spends
    // two rounds of it, so about 2 s in all).
    let started = Instant::now();
    let err = auth.txt_raw_lookup("sub.slow.example").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(
        matches!(err, mail_auth::Error::Dns(mail_auth::DnsError::Resolver(_))),
        "{err:?}"
    );

    let spf = |sender: &'static str| {
        auth.verify_spf(SpfParameters::verify_mail_from(
            "127.0.0.1".parse().unwrap(),
            "helo.example",
            "mx.portcullis.test",
            sender,
        ))
    };
    assert_eq!(spf("a@slow.example").await.result(), SpfResult::TempError);
    assert_eq!(spf("a@broken.example").await.result(), SpfResult::TempError);

    let err = auth.txt_raw_lookup("broken.example").await.unwrap_err();
    assert!(
        matches!(err, mail_auth::Error::Dns(mail_auth::DnsError::Resolver(_))),
        "{err:?}"
    );

    // DMARC behind a SERVFAIL is a temperror, not "no policy".
    let out = dmarc(
        &auth,
        message_from("a@broken.example").as_bytes(),
        "a@broken.example",
        "127.0.0.1",
    )
    .await;
    assert!(
        matches!(out.dkim_result(), DmarcResult::TempError(_)),
        "{out:?}"
    );
}

#[tokio::test]
async fn authenticator_has_no_resolver_cache() {
    let dns = TestDns::start();
    dns.txt("changing.example", "one");
    let auth = authenticator(&dns);
    assert_eq!(
        auth.txt_raw_lookup("changing.example").await.unwrap(),
        b"one"
    );
    dns.clear("changing.example");
    dns.txt("changing.example", "two");
    assert_eq!(
        auth.txt_raw_lookup("changing.example").await.unwrap(),
        b"two"
    );
    assert_eq!(dns.queries(), 2);
    dns.clear("changing.example");
    let err = auth.txt_raw_lookup("changing.example").await.unwrap_err();
    assert_eq!(
        err,
        mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(ResponseCode::NXDomain))
    );
    assert_eq!(dns.queries(), 3);
}
