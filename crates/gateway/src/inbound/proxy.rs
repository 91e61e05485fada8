//! The PROXY protocol (HAProxy's, v1 text and v2 binary) on connections from the balancers of
//! `[smtp] proxy_trusted_networks`: such a connection must open with a header naming the real
//! client, within `proxy_timeout`, before any banner; from anywhere else a PROXY line is an
//! ordinary unknown command (nobody outside may pick the address they are seen as).
//!
//! The `ppp` crate parses; the checks it leaves to the receiver are here: the v1 line's 107-byte
//! limit, a bound on what is read before the header is whole, and what LOCAL / UNKNOWN mean (the
//! balancer speaking for itself, e.g. a health check: the connection's own address stands).

use std::net::SocketAddr;
use std::time::Duration;

use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 signature; a v1 header starts with `PROXY `.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// A v1 header, CRLF included, is at most 107 bytes (the protocol's §2.1).
const V1_MAX: usize = 107;
/// A v2 header is 16 bytes and at most 65535 more.
const V2_MAX: usize = 16 + 65535;

/// What the header said.
#[derive(Debug, PartialEq, Eq)]
pub struct Proxied {
    /// The client the balancer speaks for (canonical), or the balancer itself (LOCAL, UNKNOWN).
    pub client: SocketAddr,
    /// Bytes read past the header: the client's first SMTP bytes.
    pub early: Vec<u8>,
}

/// Reads the PROXY header that must open a connection from a trusted balancer at `balancer`.
/// The error says why the connection is dropped (it is logged; the client gets no banner).
pub async fn read_header(
    tcp: &mut TcpStream,
    balancer: SocketAddr,
    timeout: Duration,
) -> Result<Proxied, String> {
    let read = async {
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 1024];
        loop {
            let n = tcp
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read failed before the PROXY header: {e}"))?;
            if n == 0 {
                return Err("closed before a whole PROXY header".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(done) = parse(&buf, balancer)? {
                return Ok(done);
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no whole PROXY header within {}",
            humantime::format_duration(timeout)
        )),
    }
}

/// Parses the start of a connection: `Ok(None)` while the header may still be incomplete.
pub fn parse(buf: &[u8], balancer: SocketAddr) -> Result<Option<Proxied>, String> {
    let starts = |prefix: &[u8]| {
        let n = buf.len().min(prefix.len());
        buf[..n] == prefix[..n]
    };
    let v2 = starts(V2_SIGNATURE);
    if !v2 && !starts(V1_PREFIX) {
        return Err(format!(
            "the connection did not open with a PROXY header (it began {:?})",
            String::from_utf8_lossy(&buf[..buf.len().min(24)])
        ));
    }
    if !v2 {
        // A v1 header is one line: until its CRLF it is incomplete, whatever a parser makes
        // of a prefix (ppp calls "… 51000 " an invalid port rather than a partial line).
        let line_end = buf.windows(2).position(|w| w == b"\r\n");
        match line_end {
            Some(end) if end + 2 > V1_MAX => {
                return Err("PROXY v1 header longer than 107 bytes".into());
            }
            None if buf.len() >= V1_MAX => {
                return Err("PROXY v1 header longer than 107 bytes".into());
            }
            None => return Ok(None),
            Some(_) => {}
        }
    }
    if buf.len() > V2_MAX {
        return Err("PROXY header too long".into());
    }
    let header = HeaderResult::parse(buf);
    if header.is_incomplete() {
        return Ok(None);
    }
    let (client, used) = match header {
        HeaderResult::V1(Ok(h)) => {
            let client = match h.addresses {
                v1::Addresses::Tcp4(a) => SocketAddr::from((a.source_address, a.source_port)),
                v1::Addresses::Tcp6(a) => SocketAddr::from((a.source_address, a.source_port)),
                v1::Addresses::Unknown => balancer,
            };
            (client, h.header.len())
        }
        HeaderResult::V2(Ok(h)) => {
            let client = match (h.command, h.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    SocketAddr::from((a.source_address, a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    SocketAddr::from((a.source_address, a.source_port))
                }
                // LOCAL (the balancer's own health check), or an address family that names no
                // IP client: the connection's own address stands.
                _ => balancer,
            };
            (client, h.len())
        }
        HeaderResult::V1(Err(e)) => return Err(format!("invalid PROXY v1 header: {e}")),
        HeaderResult::V2(Err(e)) => return Err(format!("invalid PROXY v2 header: {e}")),
    };
    let client = SocketAddr::new(client.ip().to_canonical(), client.port());
    Ok(Some(Proxied {
        client,
        early: buf[used..].to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer() -> SocketAddr {
        "127.0.0.9:40000".parse().unwrap()
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h
    }

    #[test]
    fn v1_names_the_client_and_keeps_what_follows() {
        let buf = b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 25\r\nEHLO x\r\n";
        // Byte by byte, it is incomplete until the CRLF.
        let end = buf.iter().position(|&b| b == b'\n').unwrap();
        for n in 1..=end {
            assert_eq!(parse(&buf[..n], balancer()), Ok(None), "{n}");
        }
        let p = parse(buf, balancer()).unwrap().unwrap();
        assert_eq!(p.client, "192.0.2.7:51000".parse().unwrap());
        assert_eq!(p.early, b"EHLO x\r\n");
        let p = parse(b"PROXY TCP6 2001:db8::7 ::1 51000 25\r\n", balancer())
            .unwrap()
            .unwrap();
        assert_eq!(p.client, "[2001:db8::7]:51000".parse().unwrap());
        let p = parse(b"PROXY UNKNOWN\r\n", balancer()).unwrap().unwrap();
        assert_eq!(p.client, balancer());
    }

    #[test]
    fn v2_names_the_client_local_is_the_balancer() {
        let mut addrs = vec![198, 51, 100, 20, 127, 0, 0, 1];
        addrs.extend_from_slice(&52000u16.to_be_bytes());
        addrs.extend_from_slice(&25u16.to_be_bytes());
        let mut buf = v2(1, 0x11, &addrs);
        buf.extend_from_slice(b"QUIT\r\n");
        for n in 1..buf.len() - 6 {
            assert_eq!(parse(&buf[..n], balancer()), Ok(None), "{n}");
        }
        let p = parse(&buf, balancer()).unwrap().unwrap();
        assert_eq!(p.client, "198.51.100.20:52000".parse().unwrap());
        assert_eq!(p.early, b"QUIT\r\n");
        let p = parse(&v2(0, 0x00, &[]), balancer()).unwrap().unwrap();
        assert_eq!(p.client, balancer());
        // An IPv4-mapped IPv6 client is the IPv4 client it is.
        let mut addrs = vec![0u8; 10];
        addrs.extend_from_slice(&[0xff, 0xff, 192, 0, 2, 1]);
        addrs.extend_from_slice(&[0u8; 16]);
        addrs.extend_from_slice(&[0, 1, 0, 25]);
        let p = parse(&v2(1, 0x21, &addrs), balancer()).unwrap().unwrap();
        assert_eq!(p.client, "192.0.2.1:1".parse().unwrap());
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        let cases: [&[u8]; 6] = [
            b"EHLO client.example\r\n",
            b"PROXY TCP4 999.0.2.7 127.0.0.1 1 25\r\n",
            b"PROXY TCP4 192.0.2.7 127.0.0.1 70000 25\r\n",
            b"PROXY SCTP 192.0.2.7 127.0.0.1 1 25\r\n",
            b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04\x01\x02\x03\x04",
        ];
        for case in cases {
            assert!(parse(case, balancer()).is_err(), "{case:?}");
        }
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(120));
        let e = parse(long.as_bytes(), balancer()).unwrap_err();
        assert!(e.contains("107"), "{e}");
    }
}
