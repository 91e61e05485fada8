//! Test harness: starts the real `portcullis` binary in a temporary data directory on ephemeral
//! ports, runs its CLI against it, and speaks SMTP to it over real sockets (with STARTTLS and
//! client certificates from a generated CA).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Where the gateway's log goes.
enum Log {
    /// Warnings and errors, to the test's stderr.
    Warnings,
    /// Everything from `info` up, into a pipe the test never reads.
    UnreadPipe,
    /// Everything from `info` up, into a file (not a terminal).
    File(PathBuf),
}

pub struct Gateway {
    /// The authoritative DNS server the gateway resolves through (empty zones unless a test
    /// publishes records: every name is NXDOMAIN).
    pub dns: portcullis_testdns::TestDns,
    pub dir: tempfile::TempDir,
    pub smtp: SocketAddr,
    pub admin: String,
    child: Option<Child>,
}

impl Gateway {
    /// Starts `portcullis serve` with `config` (TOML, may be empty) in a fresh data directory.
    pub fn start(config: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, config)
    }

    pub fn start_in(dir: tempfile::TempDir, config: &str) -> Gateway {
        Self::start_with_dns(dir, config, portcullis_testdns::TestDns::start())
    }

    /// Starts with a DNS server the test prepared (records published before the first lookup).
    pub fn start_with_dns(
        dir: tempfile::TempDir,
        config: &str,
        dns: portcullis_testdns::TestDns,
    ) -> Gateway {
        Self::launch(dir, config, dns, Log::Warnings).0
    }

    /// Starts with the log at `info` written into `file`.
    pub fn start_logging_to(config: &str, file: &Path) -> Gateway {
        Self::launch(
            tempfile::tempdir().unwrap(),
            config,
            portcullis_testdns::TestDns::start(),
            Log::File(file.to_path_buf()),
        )
        .0
    }

    /// Starts with the log at `info` written into a pipe that nobody reads (a stalled log
    /// consumer); the pipe stays open while the returned handle lives.
    pub fn start_with_unread_log(config: &str) -> (Gateway, std::process::ChildStderr) {
        let (gw, stderr) = Self::launch(
            tempfile::tempdir().unwrap(),
            config,
            portcullis_testdns::TestDns::start(),
            Log::UnreadPipe,
        );
        (gw, stderr.expect("piped"))
    }

    fn launch(
        dir: tempfile::TempDir,
        config: &str,
        dns: portcullis_testdns::TestDns,
        log: Log,
    ) -> (Gateway, Option<std::process::ChildStderr>) {
        let cfg = dir.path().join("portcullis.toml");
        std::fs::write(
            &cfg,
            format!(
                "hostname = \"mx.test.example\"\n[dns]\nnameservers = [\"{}\"]\ntimeout = \"500ms\"\n{config}",
                dns.addr
            ),
        )
        .unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--smtp-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .env(
                "PORTCULLIS_LOG",
                match log {
                    Log::Warnings => "warn",
                    Log::UnreadPipe | Log::File(_) => "info",
                },
            )
            .stdout(Stdio::piped())
            .stderr(match &log {
                Log::Warnings => Stdio::inherit(),
                Log::UnreadPipe => Stdio::piped(),
                Log::File(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            })
            .spawn()
            .expect("start portcullis");
        let stderr = child.stderr.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "portcullis: SMTP on 127.0.0.1:PORT, admin API on http://127.0.0.1:PORT, data in ..."
        let smtp = line
            .split("SMTP on ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"));
        let admin = line
            .split("admin API on ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let gw = Gateway {
            dns,
            smtp: smtp.parse().unwrap(),
            admin: admin.to_string(),
            dir,
            child: Some(child),
        };
        (gw, stderr)
    }

    /// The gateway's process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a CLI command against this gateway.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--server")
            .arg(&self.admin)
            .arg("--data-dir")
            .arg(self.data())
            .env_remove("PORTCULLIS_TOKEN")
            .env_remove("PORTCULLIS_SERVER")
            .output()
            .unwrap()
    }

    /// The Prometheus text of `/metrics` (read with the admin token).
    pub fn metrics(&self) -> String {
        let token = std::fs::read_to_string(self.data().join("admin.token")).unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .get(format!("{}/metrics", self.admin))
            .header("Authorization", format!("Bearer {}", token.trim()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    }

    /// Creates an API token of `role` in `tenant` with the CLI; returns the token.
    pub fn create_token(&self, name: &str, role: &str, tenant: &str) -> String {
        let out = self.ok(&[
            "token", "create", "--name", name, "--role", role, "--tenant", tenant,
        ]);
        out.split_whitespace()
            .find(|w| w.starts_with("pc_"))
            .unwrap_or_else(|| panic!("no token in {out:?}"))
            .to_string()
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "portcullis {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `trace --json` records of a tenant (newest first), waiting until `pred` holds (the trace
    /// writer batches, so records appear shortly after the reply).
    pub fn trace_until(
        &self,
        tenant: &str,
        extra: &[&str],
        pred: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut args = vec!["trace", "--tenant", tenant, "--json"];
            args.extend_from_slice(extra);
            let out = self.ok(&args);
            let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
            if pred(&v) || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The Maildir `new/` files of a recipient.
    pub fn maildir(&self, tenant: &str, rcpt: &str) -> Vec<String> {
        let dir = self.data().join("mail").join(tenant).join(rcpt).join("new");
        let mut files: Vec<_> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => return Vec::new(),
        };
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// Waits for `n` messages in a recipient's Maildir.
    pub fn wait_maildir(&self, tenant: &str, rcpt: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.maildir(tenant, rcpt);
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        unsafe_kill(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not stop within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process without warning (crash simulation).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn into_dir(mut self) -> tempfile::TempDir {
        if self.child.is_some() {
            self.stop();
        }

        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------- SMTP client

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Gone,
}

pub struct Smtp {
    io: Io,
    buf: Vec<u8>,
}

impl Smtp {
    /// Connects from `127.0.0.1` and reads the banner.
    pub async fn connect(addr: SocketAddr) -> (Smtp, String) {
        Self::connect_from(addr, "127.0.0.1".parse().unwrap()).await
    }

    /// Connects from a chosen loopback address (a distinct client IP) and reads the banner.
    pub async fn connect_from(addr: SocketAddr, local: IpAddr) -> (Smtp, String) {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(local, 0)).unwrap();
        let stream = sock.connect(addr).await.unwrap();
        let mut s = Smtp {
            io: Io::Plain(stream),
            buf: Vec::new(),
        };
        let banner = s.reply().await;
        (s, banner)
    }

    /// Takes over a connected stream (after a PROXY header, say) and reads the banner.
    pub async fn from_stream(stream: TcpStream) -> Smtp {
        let mut s = Smtp {
            io: Io::Plain(stream),
            buf: Vec::new(),
        };
        let banner = s.reply().await;
        assert!(banner.starts_with("220 "), "{banner}");
        s
    }

    /// Sends bytes; false when the server has closed the connection.
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        match &mut self.io {
            Io::Plain(s) => s.write_all(bytes).await.is_ok(),
            Io::Tls(s) => s.write_all(bytes).await.is_ok() && s.flush().await.is_ok(),
            Io::Gone => false,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        match &mut self.io {
            Io::Plain(s) => s.write_all(bytes).await.unwrap(),
            Io::Tls(s) => {
                s.write_all(bytes).await.unwrap();
                s.flush().await.unwrap();
            }
            Io::Gone => panic!("connection gone"),
        }
    }

    /// Reads one complete (possibly multi-line) reply; returns its last line without CRLF, or
    /// "EOF" when the server closed the connection.
    pub async fn reply(&mut self) -> String {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                let line = String::from_utf8_lossy(&line[..pos]).to_string();
                if line.len() >= 4 && line.as_bytes()[3] == b'-' {
                    continue;
                }
                return line;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), async {
                match &mut self.io {
                    Io::Plain(s) => s.read(&mut chunk).await.unwrap_or(0),
                    Io::Tls(s) => s.read(&mut chunk).await.unwrap_or(0),
                    Io::Gone => 0,
                }
            })
            .await
            .expect("no reply within 10 s");
            if n == 0 {
                return "EOF".into();
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends one command line and returns the reply's last line.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// STARTTLS, optionally presenting a client certificate. Returns the 220 reply.
    pub async fn starttls(&mut self, client: Option<&Identity>) -> String {
        let r = self.cmd("STARTTLS").await;
        assert!(r.starts_with("220"), "STARTTLS refused: {r}");
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            panic!("TLS already active")
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert));
        let config = match client {
            Some(id) => builder
                .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tls = connector
            .connect(ServerName::try_from("mx.test.example").unwrap(), tcp)
            .await
            .expect("TLS handshake");
        self.io = Io::Tls(Box::new(tls));
        r
    }

    /// The server's leaf certificate (DER) after STARTTLS.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match &self.io {
            Io::Tls(t) => t
                .get_ref()
                .1
                .peer_certificates()?
                .first()
                .map(|c| c.to_vec()),
            _ => None,
        }
    }

    /// A whole transaction; returns the replies to MAIL, each RCPT, DATA and the end of data
    /// (stopping early when nothing was accepted).
    pub async fn mail(&mut self, from: &str, rcpts: &[&str], message: &str) -> Vec<String> {
        let mut replies = vec![self.cmd(&format!("MAIL FROM:<{from}>")).await];
        let mut any = false;
        for r in rcpts {
            let reply = self.cmd(&format!("RCPT TO:<{r}>")).await;
            any |= reply.starts_with("250");
            replies.push(reply);
        }
        if !any {
            self.cmd("RSET").await;
            return replies;
        }
        replies.push(self.cmd("DATA").await);
        self.send(message.as_bytes()).await;
        self.send(b".\r\n").await;
        replies.push(self.reply().await);
        replies
    }
}

/// A test message with CRLF line endings.
pub fn message(from: &str, to: &str, subject: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@test.example>\r\n\r\nHello.\r\n",
        subject.replace(' ', "-")
    )
}

/// One EHLO'd session; `ehlo` returns the final 250 line.
pub async fn session(addr: SocketAddr, from_ip: &str) -> Smtp {
    let (mut s, banner) = Smtp::connect_from(addr, from_ip.parse().unwrap()).await;
    assert!(
        banner.starts_with("220 mx.test.example ESMTP Portcullis"),
        "{banner}"
    );
    let r = s.cmd("EHLO client.test.example").await;
    assert!(r.starts_with("250"), "{r}");
    s
}

#[derive(Debug)]
struct AcceptAnyServerCert;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

// ---------------------------------------------------------------- certificates

/// A client certificate and its key.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

/// A test CA able to issue client certificates.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, &self.pem).unwrap();
    }

    /// A client certificate with CN and DNS SAN `name`.
    pub fn issue(&self, name: &str) -> Identity {
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            cert: cert.der().clone(),
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        }
    }
}

// ---------------------------------------------------------------- downstream mailbox server

/// What a [`Downstream`] received.
#[derive(Default)]
pub struct Received {
    /// (mail from, recipients accepted, message)
    pub messages: Vec<(String, Vec<String>, String)>,
    /// The `Message-ID` of each message in `messages` (same order; empty when it has none).
    pub message_ids: Vec<String>,
    /// When the connection that brought each message in `messages` was accepted.
    pub connected_at: Vec<std::time::Instant>,
    /// Replies the downstream gave to `later…` recipients (a 451 the first N times).
    pub later_budget: usize,
    /// `MAIL FROM` commands that arrived together with what followed them (PIPELINING, RFC 2920).
    pub pipelined: usize,
    /// `MAIL FROM` commands that arrived alone, the client waiting for the reply.
    pub lockstep: usize,
}

/// A mailbox server speaking SMTP or LMTP, in the test process (so it outlives gateway
/// restarts). Each recipient is answered as told by its local part: `reject…` → 550, `later…` →
/// 451 (while `later_budget` lasts), else 250. A message is recorded when its final dot arrives,
/// just before the 250 is written; a message whose DATA is cut off is not recorded.
pub struct Downstream {
    pub port: u16,
    pub state: std::sync::Arc<std::sync::Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
    sessions: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Downstream {
    /// Starts on `port` (0: any). `lmtp`: one reply per recipient after DATA.
    pub async fn start(port: u16, lmtp: bool, later_budget: usize) -> Downstream {
        Self::start_on("127.0.0.1", port, lmtp, later_budget).await
    }

    pub async fn start_on(ip: &str, port: u16, lmtp: bool, later_budget: usize) -> Downstream {
        Self::start_with(ip, port, lmtp, later_budget, true).await
    }

    /// As [`Downstream::start_on`]; `pipelining`: whether EHLO/LHLO offers PIPELINING.
    pub async fn start_with(
        ip: &str,
        port: u16,
        lmtp: bool,
        later_budget: usize,
        pipelining: bool,
    ) -> Downstream {
        use tokio::io::AsyncBufReadExt;
        let listener = tokio::net::TcpListener::bind((ip, port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = std::sync::Arc::new(std::sync::Mutex::new(Received {
            later_budget,
            ..Default::default()
        }));
        let st = state.clone();
        let sessions: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> =
            Default::default();
        let open = sessions.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let connected_at = Instant::now();
                let st = st.clone();
                let session = tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut r = tokio::io::BufReader::new(r);
                    w.write_all(b"220 downstream.test ready\r\n").await.ok();
                    let (mut from, mut rcpts) = (String::new(), Vec::<String>::new());
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_string();
                        let upper = cmd.to_ascii_uppercase();
                        let reply: String =
                            if upper.starts_with("EHLO") || upper.starts_with("LHLO") {
                                if pipelining {
                                    "250-downstream.test\r\n250 PIPELINING\r\n".into()
                                } else {
                                    "250-downstream.test\r\n250 8BITMIME\r\n".into()
                                }
                            } else if upper.starts_with("MAIL FROM:") {
                                let mut s = st.lock().unwrap();
                                if r.buffer().is_empty() {
                                    s.lockstep += 1;
                                } else {
                                    s.pipelined += 1;
                                }
                                drop(s);
                                from = cmd[10..].trim_matches(['<', '>', ' ']).to_string();
                                rcpts.clear();
                                "250 2.1.0 ok\r\n".into()
                            } else if upper.starts_with("RCPT TO:") {
                                let to = cmd[8..].trim_matches(['<', '>', ' ']).to_string();
                                if to.starts_with("reject") {
                                    "550 5.1.1 no such user\r\n".into()
                                } else if to.starts_with("later") && {
                                    let mut s = st.lock().unwrap();
                                    let hit = s.later_budget > 0;
                                    if hit {
                                        s.later_budget -= 1;
                                    }
                                    hit
                                } {
                                    "451 4.2.0 mailbox busy, try later\r\n".into()
                                } else {
                                    rcpts.push(to);
                                    "250 2.1.5 ok\r\n".into()
                                }
                            } else if upper == "DATA" && rcpts.is_empty() {
                                // RFC 2920: a pipelined DATA without a valid recipient fails.
                                "554 5.5.1 no valid recipients\r\n".into()
                            } else if upper == "DATA" {
                                w.write_all(b"354 go ahead\r\n").await.ok();
                                let mut data = String::new();
                                loop {
                                    line.clear();
                                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                        return;
                                    }
                                    if line == ".\r\n" {
                                        break;
                                    }
                                    data.push_str(&line);
                                }
                                let n = rcpts.len();
                                let mut s = st.lock().unwrap();
                                s.message_ids.push(message_id(&data).unwrap_or_default());
                                s.connected_at.push(connected_at);
                                s.messages.push((from.clone(), rcpts.clone(), data));
                                drop(s);
                                if lmtp {
                                    "250 2.0.0 delivered\r\n".repeat(n)
                                } else {
                                    "250 2.0.0 queued downstream\r\n".into()
                                }
                            } else if upper == "QUIT" {
                                w.write_all(b"221 bye\r\n").await.ok();
                                return;
                            } else {
                                "250 ok\r\n".into()
                            };
                        w.write_all(reply.as_bytes()).await.ok();
                    }
                });
                open.lock().unwrap().push(session.abort_handle());
            }
        });
        Downstream {
            port,
            state,
            task,
            sessions,
        }
    }

    /// Connections accepted so far (the gateway reuses its connections between messages).
    pub fn connections(&self) -> usize {
        self.sessions.lock().unwrap().len()
    }

    /// `(pipelined, lock-step)`: how the transactions so far arrived (see [`Received`]).
    pub fn transactions(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        (s.pipelined, s.lockstep)
    }

    pub fn messages(&self) -> Vec<(String, Vec<String>, String)> {
        self.state.lock().unwrap().messages.clone()
    }

    /// The `Message-ID`s received so far, in arrival order (repeated when received again).
    pub fn message_ids(&self) -> Vec<String> {
        self.state.lock().unwrap().message_ids.clone()
    }

    /// `(Message-ID, when its connection was accepted)` of everything received so far.
    pub fn arrivals(&self) -> Vec<(String, Instant)> {
        let s = self.state.lock().unwrap();
        s.message_ids
            .iter()
            .cloned()
            .zip(s.connected_at.iter().copied())
            .collect()
    }

    /// Stops accepting connections and closes the open ones (a server going down); returns the
    /// port, free to start again on.
    pub fn stop(self) -> u16 {
        self.task.abort();
        for s in self.sessions.lock().unwrap().iter() {
            s.abort();
        }
        self.port
    }
}

/// The `Message-ID` header's value (`<…>`) from a message's header section.
pub fn message_id(message: &str) -> Option<String> {
    message
        .split("\r\n")
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| value.trim().to_string())
        })
}

/// A fresh database on the local PostgreSQL server, dropped with the value; `None` (the test
/// skips) when the server is unreachable and not required.
pub struct Database {
    admin: portcullis_store::Store,
    name: String,
    pub url: String,
}

impl Database {
    pub async fn fresh(tag: &str) -> Option<Database> {
        let base = std::env::var("PORTCULLIS_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let admin = match portcullis_store::Store::connect(&base).await {
            Ok(s) => s,
            Err(e) if std::env::var("PORTCULLIS_REQUIRE_POSTGRES").is_ok() => {
                panic!("PostgreSQL required: {e}")
            }
            Err(e) => {
                eprintln!("skipping: PostgreSQL unreachable at {base}: {e}");
                return None;
            }
        };
        let name = format!("portcullis_{tag}{}", std::process::id());
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.execute_admin(&sql).await.unwrap();
        }
        let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
        Some(Database { admin, name, url })
    }

    /// A gateway on this database, named `node`.
    pub fn node(&self, node: &str) -> Gateway {
        Gateway::start(&format!(
            "[storage]\nurl = \"{}\"\n[node]\nname = \"{node}\"\n",
            self.url
        ))
    }

    pub async fn drop_it(self) {
        self.admin
            .execute_admin(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}
