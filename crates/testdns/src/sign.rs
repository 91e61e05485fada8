//! DKIM signing and ARC sealing with fixed test keys, through mail-auth's own signers (ring).
//!
//! ```no_run
//! # async fn demo(message: &[u8]) {
//! use portcullis_testdns::{TestDns, sign::DkimKey};
//! let dns = TestDns::start();
//! let key = DkimKey::ed25519();
//! dns.txt("sel._domainkey.example.com", &key.dns_record());
//! let signed = key.sign(message, "example.com", "sel");
//! // A forwarder re-seals it; its own key must be published too.
//! let arc_key = DkimKey::rsa();
//! dns.txt("arc._domainkey.forwarder.example", &arc_key.dns_record());
//! let sealed = arc_key.arc_seal(&signed, "forwarder.example", "arc", &dns).await;
//! # let _ = sealed;
//! # }
//! ```

use std::net::{IpAddr, Ipv4Addr};

use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::{AuthenticatedMessage, AuthenticationResults};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};

use crate::TestDns;

/// A fixed 2048-bit RSA key (PKCS#1), generated once with `openssl genrsa -traditional 2048`.
/// Test material only: it is public.
pub const RSA_PRIVATE_KEY_PEM: &str = include_str!("test_rsa.pem");

/// A fixed Ed25519 key (PKCS#8 v1, seed only), generated once with
/// `openssl genpkey -algorithm ed25519`. Test material only: it is public.
pub const ED25519_PRIVATE_KEY_PEM: &str = include_str!("test_ed25519.pem");

/// The headers that [`DkimKey::sign`] and [`DkimKey::arc_seal`] sign (those present).
pub const SIGNED_HEADERS: [&str; 5] = ["From", "To", "Subject", "Date", "Message-ID"];

/// A DKIM (and ARC) signing key with fixed test key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkimKey {
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Rsa,
    Ed25519,
}

impl DkimKey {
    /// The fixed 2048-bit RSA test key ([`RSA_PRIVATE_KEY_PEM`]), for `a=rsa-sha256`.
    pub fn rsa() -> DkimKey {
        DkimKey { kind: Kind::Rsa }
    }

    /// The fixed Ed25519 test key ([`ED25519_PRIVATE_KEY_PEM`]), for `a=ed25519-sha256`.
    pub fn ed25519() -> DkimKey {
        DkimKey {
            kind: Kind::Ed25519,
        }
    }

    /// The TXT value to publish at `<selector>._domainkey.<domain>`:
    /// `v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo>` or `v=DKIM1; k=ed25519; p=<raw 32-byte key>`.
    pub fn dns_record(&self) -> String {
        match self.kind {
            Kind::Rsa => format!(
                "v=DKIM1; k=rsa; p={}",
                base64(&rsa_spki(&rsa_key().public_key()))
            ),
            Kind::Ed25519 => format!(
                "v=DKIM1; k=ed25519; p={}",
                base64(&ed25519_key().public_key())
            ),
        }
    }

    /// Returns the message with a DKIM-Signature header prepended (`c=relaxed/relaxed`, signing
    /// [`SIGNED_HEADERS`]).
    ///
    /// # Panics
    /// If mail-auth cannot sign (for example, the message has none of the signed headers).
    pub fn sign(&self, message: &[u8], domain: &str, selector: &str) -> Vec<u8> {
        let header = match self.kind {
            Kind::Rsa => DkimSigner::from_key(rsa_key())
                .domain(domain)
                .selector(selector)
                .headers(SIGNED_HEADERS)
                .sign(message)
                .expect("DKIM-sign with the RSA test key")
                .to_header(),
            Kind::Ed25519 => DkimSigner::from_key(ed25519_key())
                .domain(domain)
                .selector(selector)
                .headers(SIGNED_HEADERS)
                .sign(message)
                .expect("DKIM-sign with the Ed25519 test key")
                .to_header(),
        };
        prepend(header, message)
    }

    /// Returns the message with an ARC set (ARC-Authentication-Results, ARC-Message-Signature,
    /// ARC-Seal) prepended, as a forwarder with domain `domain` would add it: first it verifies
    /// the DKIM signatures and any ARC chain already in the message through `dns`, so that `cv=`
    /// is right (`none` for the first set, `pass` after a valid chain). The AAR's authserv-id is
    /// `domain`; its results are the DKIM and ARC verdicts found (mail-auth builds the text, it
    /// does not take arbitrary results).
    ///
    /// Only the ARC signer is RSA or Ed25519 per `self` (`a=rsa-sha256` / `a=ed25519-sha256`);
    /// publish [`DkimKey::dns_record`] at `<selector>._domainkey.<domain>` for verifiers.
    ///
    /// # Panics
    /// If the message does not parse, or its ARC chain failed (mail-auth does not seal over
    /// `cv=fail`).
    pub async fn arc_seal(
        &self,
        message: &[u8],
        domain: &str,
        selector: &str,
        dns: &TestDns,
    ) -> Vec<u8> {
        let authenticator = crate::authenticator(dns);
        let parsed = AuthenticatedMessage::parse(message).expect("parse the message to ARC-seal");
        let dkim = authenticator.verify_dkim(&parsed).await;
        let arc = authenticator.verify_arc(&parsed).await;
        assert!(
            arc.can_be_sealed(),
            "the message's ARC chain failed validation; mail-auth refuses to seal it"
        );
        let results = AuthenticationResults::new(domain)
            .with_dkim_results(&dkim, parsed.from())
            .with_arc_result(&arc, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut headers: Vec<&str> = SIGNED_HEADERS.to_vec();
        headers.push("DKIM-Signature");
        let set = match self.kind {
            Kind::Rsa => ArcSealer::from_key(rsa_key())
                .domain(domain)
                .selector(selector)
                .headers(headers)
                .seal(&parsed, &results, &arc)
                .expect("ARC-seal with the RSA test key")
                .to_header(),
            Kind::Ed25519 => ArcSealer::from_key(ed25519_key())
                .domain(domain)
                .selector(selector)
                .headers(headers)
                .seal(&parsed, &results, &arc)
                .expect("ARC-seal with the Ed25519 test key")
                .to_header(),
        };
        prepend(set, message)
    }

    /// [`DkimKey::arc_seal`] for a test that is not async: runs it on a runtime of its own.
    ///
    /// # Panics
    /// As `arc_seal`, and if called from inside a tokio runtime.
    pub fn arc_seal_blocking(
        &self,
        message: &[u8],
        domain: &str,
        selector: &str,
        dns: &TestDns,
    ) -> Vec<u8> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for arc_seal_blocking")
            .block_on(self.arc_seal(message, domain, selector, dns))
    }
}

fn rsa_key() -> RsaKey<Sha256> {
    let der = PrivatePkcs1KeyDer::from_pem_slice(RSA_PRIVATE_KEY_PEM.as_bytes())
        .expect("RSA test key PEM");
    RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(der)).expect("RSA test key")
}

fn ed25519_key() -> Ed25519Key {
    let der = PrivatePkcs8KeyDer::from_pem_slice(ED25519_PRIVATE_KEY_PEM.as_bytes())
        .expect("Ed25519 test key PEM");
    // OpenSSL writes PKCS#8 v1 (no public key), which ring accepts only "maybe unchecked".
    Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der()).expect("Ed25519 test key")
}

fn prepend(header: String, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + message.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(message);
    out
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (the form RFC 6376 publishes).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    der(&mut body, 0x03, &bit_string);
    let mut out = Vec::new();
    der(&mut out, 0x30, &body);
    out
}

fn der(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl rsa -in test_rsa.pem -pubout`, body joined.
    const RSA_SPKI_FROM_OPENSSL: &str = include_str!("test_rsa_spki_openssl.b64");
    /// `openssl pkey -in test_ed25519.pem -pubout -outform DER | tail -c 32 | base64`.
    const ED25519_PUBLIC_FROM_OPENSSL: &str = "27NxDRsi/wsv0T+qaCEv8d2XtGA89I4Y5XfRCW0GaSY=";

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn dns_records_match_openssl() {
        assert_eq!(
            DkimKey::rsa().dns_record(),
            format!("v=DKIM1; k=rsa; p={}", RSA_SPKI_FROM_OPENSSL.trim())
        );
        assert_eq!(
            DkimKey::ed25519().dns_record(),
            format!("v=DKIM1; k=ed25519; p={ED25519_PUBLIC_FROM_OPENSSL}")
        );
    }
}
