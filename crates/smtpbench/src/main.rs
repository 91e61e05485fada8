//! `smtpbench`: the benchmark's own SMTP load client (`bench/run`, scenarios b, c and d), for what
//! postfix's `smtp-source` cannot drive: it stops at the first refused recipient.
//!
//! - `smtpbench rcpt`: per connection EHLO, then transactions `MAIL FROM`, `RCPT TO`, `RSET`
//!   until its share of `--attempts` is done, in lock-step (each command waits for its reply) or
//!   pipelined (the three commands in one write, RFC 2920). A connection the server closes is
//!   replaced and the unfinished attempt repeated. Prints the RCPT replies by class, the rate and
//!   the RCPT reply latency (lock-step: RCPT written → its reply read; pipelined: the write →
//!   the RCPT reply read) as p50/p90/p99/max. SIGINT or SIGTERM ends it early (after the
//!   transactions in flight) and it reports what was done: a latency probe alongside a load.
//! - `smtpbench idle`: opens `--connections` connections, sends EHLO on each and holds them
//!   until standard input closes; prints `ready N` once all are open (for memory measurements).
//!
//! One thread (a current-thread runtime), so that on a small machine most cores are left to the
//! server under test. Output is one line of `key=value` pairs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Parser)]
#[command(
    name = "smtpbench",
    about = "SMTP load client for Portcullis' benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// MAIL, RCPT, RSET transactions, lock-step or pipelined; reconnects when closed
    Rcpt(RcptArgs),
    /// Opens connections, greets each with EHLO, holds them until stdin closes
    Idle(IdleArgs),
}

#[derive(clap::Args)]
struct RcptArgs {
    /// Server address
    #[arg(long)]
    target: SocketAddr,
    /// Local address to connect from (a 127.0.0.x address is a distinct client)
    #[arg(long, default_value = "127.0.0.1")]
    source: IpAddr,
    /// Parallel connections
    #[arg(long, default_value_t = 20)]
    sessions: usize,
    /// Transactions in total (shared out among the sessions); SIGINT/SIGTERM stops earlier
    #[arg(long)]
    attempts: u64,
    /// Write MAIL, RCPT and RSET in one write
    #[arg(long)]
    pipeline: bool,
    #[arg(long)]
    from: String,
    #[arg(long)]
    rcpt: String,
    #[arg(long, default_value = "client.bench.test")]
    helo: String,
    /// Pause between two transactions of a session, in microseconds (paced load)
    #[arg(long, default_value_t = 0)]
    pause_us: u64,
}

#[derive(clap::Args)]
struct IdleArgs {
    #[arg(long)]
    target: SocketAddr,
    #[arg(long, default_value = "127.0.0.1")]
    source: IpAddr,
    #[arg(long)]
    connections: usize,
    #[arg(long, default_value = "client.bench.test")]
    helo: String,
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = rt.block_on(async {
        match cli.command {
            Command::Rcpt(a) => rcpt(a).await,
            Command::Idle(a) => idle(a).await,
        }
    });
    std::process::exit(code);
}

/// Reads SMTP replies from a stream: the code of each complete (possibly multi-line) reply.
struct Replies {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Replies {
    fn new(stream: TcpStream) -> Replies {
        Replies {
            stream,
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next reply's code; an error at end of stream.
    async fn reply(&mut self) -> std::io::Result<u16> {
        loop {
            while let Some(nl) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let line = &self.buf[self.start..self.start + nl];
                self.start += nl + 1;
                if line.len() >= 3 && (line.len() == 3 || line[3] != b'-') {
                    let code = std::str::from_utf8(&line[..3])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    return Ok(code);
                }
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if self.end == self.buf.len() {
                    self.buf.resize(self.buf.len() * 2, 0);
                }
            }
            let n = self.stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.end += n;
        }
    }
}

async fn connect(source: IpAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Connects, reads the greeting and sends EHLO; `None` when the server refuses or closes.
async fn open(source: IpAddr, target: SocketAddr, helo: &str) -> std::io::Result<Option<Replies>> {
    let mut r = Replies::new(connect(source, target).await?);
    if r.reply().await? / 100 != 2 {
        return Ok(None);
    }
    r.write(format!("EHLO {helo}\r\n").as_bytes()).await?;
    if r.reply().await? / 100 != 2 {
        return Ok(None);
    }
    Ok(Some(r))
}

#[derive(Default)]
struct Tally {
    by_class: [u64; 6],
    latencies_us: Vec<u32>,
    connections: u64,
    failed_connects: u64,
}

async fn session(
    args: Arc<RcptArgs>,
    quota: u64,
    done: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Tally {
    let mut t = Tally {
        latencies_us: Vec::with_capacity(quota as usize),
        ..Default::default()
    };
    let mail = format!("MAIL FROM:<{}>\r\n", args.from);
    let rcpt = format!("RCPT TO:<{}>\r\n", args.rcpt);
    let batch = format!("{mail}{rcpt}RSET\r\n");
    let mut finished = 0;
    let mut conn: Option<Replies> = None;
    while finished < quota && !stop.load(Ordering::Relaxed) {
        let r = match conn.as_mut() {
            Some(r) => r,
            None => match open(args.source, args.target, &args.helo).await {
                Ok(Some(r)) => {
                    t.connections += 1;
                    conn.insert(r)
                }
                Ok(None) | Err(_) => {
                    t.failed_connects += 1;
                    if t.failed_connects > 1000 + quota {
                        eprintln!(
                            "smtpbench: giving up, {} failed connections",
                            t.failed_connects
                        );
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let attempt: std::io::Result<(u16, Duration)> = async {
            if args.pipeline {
                let t0 = Instant::now();
                r.write(batch.as_bytes()).await?;
                r.reply().await?;
                let code = r.reply().await?;
                let latency = t0.elapsed();
                r.reply().await?;
                Ok((code, latency))
            } else {
                r.write(mail.as_bytes()).await?;
                r.reply().await?;
                let t0 = Instant::now();
                r.write(rcpt.as_bytes()).await?;
                let code = r.reply().await?;
                let latency = t0.elapsed();
                r.write(b"RSET\r\n").await?;
                r.reply().await?;
                Ok((code, latency))
            }
        }
        .await;
        match attempt {
            // 421: the server is closing this connection; the attempt is repeated on a new one.
            Ok((421, _)) | Err(_) => conn = None,
            Ok((code, latency)) => {
                t.by_class[(code / 100).min(5) as usize] += 1;
                t.latencies_us
                    .push(latency.as_micros().min(u32::MAX as u128) as u32);
                finished += 1;
                done.fetch_add(1, Ordering::Relaxed);
                if args.pause_us > 0 {
                    tokio::time::sleep(Duration::from_micros(args.pause_us)).await;
                }
            }
        }
    }
    if let Some(mut r) = conn {
        let _ = r.write(b"QUIT\r\n").await;
    }
    t
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn rcpt(args: RcptArgs) -> i32 {
    let args = Arc::new(args);
    let sessions = args.sessions.max(1) as u64;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..sessions {
        let quota = args.attempts / sessions + u64::from(i < args.attempts % sessions);
        tasks.spawn(session(args.clone(), quota, done.clone(), stop.clone()));
    }
    let stopper = stop.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        stopper.store(true, Ordering::Relaxed);
    });
    let mut total = Tally::default();
    while let Some(t) = tasks.join_next().await {
        let t = t.expect("session task");
        for (a, b) in total.by_class.iter_mut().zip(t.by_class) {
            *a += b;
        }
        total.latencies_us.extend(t.latencies_us);
        total.connections += t.connections;
        total.failed_connects += t.failed_connects;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    total.latencies_us.sort_unstable();
    let l = &total.latencies_us;
    println!(
        "attempts={n} seconds={secs:.3} rate={:.1} rcpt_2xx={} rcpt_4xx={} rcpt_5xx={} connections={} failed_connects={} p50_us={} p90_us={} p99_us={} max_us={}",
        n as f64 / secs,
        total.by_class[2],
        total.by_class[4],
        total.by_class[5],
        total.connections,
        total.failed_connects,
        percentile(l, 50.0),
        percentile(l, 90.0),
        percentile(l, 99.0),
        l.last().copied().unwrap_or(0),
    );
    if n == args.attempts || stop.load(Ordering::Relaxed) {
        0
    } else {
        1
    }
}

async fn idle(args: IdleArgs) -> i32 {
    let start = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(200));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let limit = limit.clone();
        let helo = args.helo.clone();
        let (source, target) = (args.source, args.target);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            open(source, target, &helo).await.ok().flatten()
        });
    }
    let mut open_conns = Vec::with_capacity(args.connections);
    let mut failed = 0;
    while let Some(c) = tasks.join_next().await {
        match c.ok().flatten() {
            Some(c) => open_conns.push(c),
            None => failed += 1,
        }
    }
    println!(
        "ready {} failed={failed} seconds={:.3}",
        open_conns.len(),
        start.elapsed().as_secs_f64()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Hold until standard input closes.
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    // Still open? A connection the server dropped meanwhile reads EOF at once.
    let mut alive = 0;
    for c in &mut open_conns {
        let mut b = [0u8; 1];
        if tokio::time::timeout(Duration::from_millis(1), c.stream.read(&mut b))
            .await
            .is_err()
        {
            alive += 1;
        }
    }
    println!("released alive={alive}");
    if failed == 0 && alive == open_conns.len() {
        0
    } else {
        1
    }
}
