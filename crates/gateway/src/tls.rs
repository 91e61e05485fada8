//! STARTTLS: the server certificate (configured, or self-signed on first start), and a client
//! certificate verifier that *asks* for a certificate but never lets its trust decide the
//! handshake. Trust is evaluated after the handshake and becomes a fact for attribution (SPEC §2:
//! "an untrusted or unmatched client certificate never breaks the TLS handshake").

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::config::Config;

/// What the session learned from TLS, for attribution, `Received` and the trace.
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    pub client_cert_subject: Option<String>,
    pub client_cert_trusted: bool,
    /// Subject CN and DNS SANs of the client certificate *if trusted*; empty otherwise.
    pub trusted_names: Vec<String>,
}

/// The STARTTLS acceptor plus the verifier used for the post-handshake trust check.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    trust: Option<Arc<dyn ClientCertVerifier>>,
}

impl Tls {
    pub fn load(config: &Config) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (certs, key) = match (&config.tls_cert_file, &config.tls_key_file) {
            (Some(c), Some(k)) => load_pair(c, k, "tls.cert_file", "tls.key_file")?,
            _ => self_signed(&config.data_dir.join("tls"), &config.hostname)?,
        };

        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // Skip the odd unparsable system certificate rather than refusing to start.
            let _ = roots.add(cert);
        }
        if let Some(ca) = &config.tls_client_ca_file {
            let extra = CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("{}: cannot read tls.client_ca_file", ca.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{}: invalid PEM in tls.client_ca_file", ca.display()))?;
            if extra.is_empty() {
                bail!("{}: tls.client_ca_file holds no certificate", ca.display());
            }
            for cert in extra {
                roots
                    .add(cert)
                    .with_context(|| format!("{}: unusable CA certificate", ca.display()))?;
            }
        }
        let trust = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .allow_unauthenticated()
                    .build()
                    .context("building the client certificate verifier")?,
            )
        };
        let verifier = Arc::new(AskButDoNotRequire {
            provider: provider.clone(),
        });
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .context("server certificate and key do not match")?;
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            trust,
        })
    }

    /// Reads version, cipher and the client certificate's trust and names after a handshake.
    pub fn info(&self, conn: &rustls::ServerConnection) -> TlsInfo {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(v) => format!("{v:?}"),
            None => "unknown".to_string(),
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .map(|s| s.suite().as_str().unwrap_or("unknown").to_string())
            .unwrap_or_default();
        let mut info = TlsInfo {
            version,
            cipher,
            ..Default::default()
        };
        let Some(chain) = conn.peer_certificates() else {
            return info;
        };
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return info;
        };
        let (subject, names) = cert_names(end_entity);
        info.client_cert_subject = subject;
        info.client_cert_trusted = self.trust.as_ref().is_some_and(|v| {
            v.verify_client_cert(end_entity, intermediates, UnixTime::now())
                .is_ok()
        });
        if info.client_cert_trusted {
            info.trusted_names = names;
        }
        info
    }
}

/// Subject (RFC 4514 form) and the names attribution compares: subject CNs and DNS SANs.
fn cert_names(der: &CertificateDer<'_>) -> (Option<String>, Vec<String>) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return (None, Vec::new());
    };
    let subject = cert.subject().to_string();
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = name {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    (Some(subject), names)
}

/// A PEM certificate chain and private key; errors name the file and its configuration key.
fn load_pair(
    cert: &Path,
    key: &Path,
    cert_key: &str,
    key_key: &str,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("{}: cannot read {cert_key}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: invalid PEM in {cert_key}", cert.display()))?;
    if certs.is_empty() {
        bail!("{}: {cert_key} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "{}: cannot read a private key from {key_key}",
            key.display()
        )
    })?;
    Ok((certs, key))
}

/// The admin API's HTTPS acceptor (`[admin] tls_cert_file/tls_key_file`): TLS 1.2+, no client
/// certificates (the bearer token authenticates), HTTP/2 or HTTP/1.1.
pub fn admin_acceptor(cert: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (certs, key) = load_pair(cert, key, "admin.tls_cert_file", "admin.tls_key_file")?;
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("admin.tls_cert_file and admin.tls_key_file do not match")?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// The admin listener over TLS, for `axum::serve`: a task accepts TCP connections and runs each
/// handshake in its own task (at most [`MAX_HANDSHAKES`] at once, each within
/// [`HANDSHAKE_TIMEOUT`]), so a slow or silent client never holds up the others. The acceptor is
/// read per connection: a certificate reloaded on SIGHUP applies to the next connection.
pub struct TlsListener {
    incoming: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    local: std::net::SocketAddr,
}

const MAX_HANDSHAKES: usize = 256;
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl TlsListener {
    pub fn new(
        tcp: tokio::net::TcpListener,
        acceptor: Arc<arc_swap::ArcSwap<tokio_rustls::TlsAcceptor>>,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, incoming) = tokio::sync::mpsc::channel(64);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            while !tx.is_closed() {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("admin API: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.load_full();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "admin API: TLS handshake failed: {e}")
                        }
                        Err(_) => tracing::debug!(%peer, "admin API: TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { incoming, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(conn) => conn,
            // The accepting task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Loads `<dir>/server.crt` and `server.key`, generating a self-signed pair on first start.
fn self_signed(
    dir: &Path,
    hostname: &str,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
    if !crt.exists() || !key.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ck = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
            .context("generating the self-signed certificate")?;
        crate::sys::durable::write_private(&key, ck.signing_key.serialize_pem().as_bytes())?;
        std::fs::write(&crt, ck.cert.pem())
            .with_context(|| format!("writing {}", crt.display()))?;
        tracing::info!(cert = %crt.display(), "generated a self-signed STARTTLS certificate");
    }
    load_pair(&crt, &key, "tls.cert_file", "tls.key_file")
}

/// Requests a client certificate, accepts any (trust is checked after the handshake), but still
/// verifies the handshake signature so a client cannot present a certificate it has no key for.
#[derive(Debug)]
struct AskButDoNotRequire {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AskButDoNotRequire {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No CA hints: with the system roots the list would be huge, and clients send their
    /// configured certificate without one.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
