//! The durable queue under crashes: N messages (`PORTCULLIS_DURABILITY_N`, default 2000) are sent
//! by 8 concurrent clients while the gateway is killed with SIGKILL at random moments and started
//! again on the same data directory. Afterwards every message that got a `250` must have reached
//! the downstream mailbox server (at-least-once); duplicates are counted and bounded.
//!
//! The random schedule comes from a seed printed at the start; `PORTCULLIS_DURABILITY_SEED`
//! replays it (the moments of the kills relative to the load still vary with timing).
//!
//! (The other half of the durability promise — downstream down for a while, messages deferred,
//! then all delivered when it returns — is `delivery.rs`'s
//! `smtp_route_per_domain_and_downstream_down_then_back`.)

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

const CLIENTS: usize = 8;
const MIN_KILLS: usize = 3;
/// `[delivery] max_concurrency`: how many copies can be between the downstream's `250` and the
/// removal of their spool entry at the moment of a kill.
const DELIVERY_CONCURRENCY: usize = 32;
/// How long a client keeps trying one message (through restarts, 4xx) before giving up on it.
const GIVE_UP: Duration = Duration::from_secs(30);

/// How one attempt at one message ended.
enum Attempt {
    /// `250` to the end of DATA: the gateway promised the message.
    Accepted,
    /// Anything short of sending the final dot (refused connection, EOF, a 4xx such as
    /// back-pressure), or a definite refusal after it: not accepted, nothing kept; safe to try
    /// again with the same Message-ID.
    Retry(String),
    /// The final dot went out and no reply came (the gateway died): the message may or may not
    /// have been spooled. Nothing is promised about it, and it is not sent again (a second copy
    /// would be indistinguishable from a gateway duplicate).
    Unknown,
}

fn message_text(i: usize) -> String {
    format!(
        "From: a@partner.example\r\nTo: bob@contoso.com\r\nSubject: durable {i}\r\n\
         Message-ID: <durable-{i}@test>\r\n\r\nMessage number {i}.\r\n"
    )
}

/// One SMTP reply's last line, or an error for EOF and I/O trouble.
async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Result<String, String> {
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line).await {
            Ok(0) => return Err("EOF".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return Ok(line.trim_end().to_string());
        }
    }
}

/// One connection, one transaction for message `i`. Every step has a timeout: a gateway killed
/// mid-session shows up as EOF or a reset, never as a hang.
async fn attempt(addr: SocketAddr, i: usize) -> Attempt {
    let mut dot_sent = false;
    let r = tokio::time::timeout(Duration::from_secs(20), async {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        let expect = |got: Result<String, String>, code: &str| match got {
            Ok(line) if line.starts_with(code) => Ok(line),
            Ok(line) => Err(line),
            Err(e) => Err(e),
        };
        expect(reply(&mut r).await, "220")?;
        for (cmd, code) in [
            ("EHLO client.test.example\r\n", "250"),
            ("MAIL FROM:<a@partner.example>\r\n", "250"),
            ("RCPT TO:<bob@contoso.com>\r\n", "250"),
            ("DATA\r\n", "354"),
        ] {
            w.write_all(cmd.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            expect(reply(&mut r).await, code)?;
        }
        w.write_all(message_text(i).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        w.write_all(b".\r\n").await.map_err(|e| e.to_string())?;
        dot_sent = true;
        let end = reply(&mut r).await?;
        let _ = w.write_all(b"QUIT\r\n").await;
        Ok::<String, String>(end)
    })
    .await
    .unwrap_or_else(|_| Err("timed out".into()));
    match r {
        Ok(end) if end.starts_with("250 2.6.0") => Attempt::Accepted,
        // A definite refusal (451: nothing was kept) is retried like a refused connection.
        Ok(end) => Attempt::Retry(end),
        Err(_) if dot_sent => Attempt::Unknown,
        Err(e) => Attempt::Retry(e),
    }
}

#[derive(Default)]
struct Tally {
    accepted: Vec<usize>,
    unknown: Vec<usize>,
    given_up: Vec<(usize, String)>,
    retries: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_sigkill() {
    let n: usize = std::env::var("PORTCULLIS_DURABILITY_N")
        .ok()
        .map(|v| v.parse().expect("PORTCULLIS_DURABILITY_N is a number"))
        .unwrap_or(2000);
    let seed: u64 = std::env::var("PORTCULLIS_DURABILITY_SEED")
        .ok()
        .map(|v| v.parse().expect("PORTCULLIS_DURABILITY_SEED is a number"))
        .unwrap_or_else(rand::random);
    eprintln!("durability: seed {seed} (PORTCULLIS_DURABILITY_SEED={seed} replays the schedule)");
    let started = Instant::now();

    let down = Downstream::start(0, false, 0).await;
    let config = format!(
        "[delivery]\nfirst_retry = \"1s\"\nmax_retry = \"2s\"\nmax_concurrency = {DELIVERY_CONCURRENCY}\n"
    );
    let route = format!("smtp://127.0.0.1:{}", down.port);
    let gw = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let gw = Gateway::start(&config);
            gw.ok(&["tenant", "add", "contoso"]);
            gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
            // In the directory (the SQLite file): survives every restart.
            gw.ok(&["tenant", "set", "contoso", "--route", &route]);
            gw
        })
        .await
        .unwrap()
    };
    let spool = gw.data().join("spool");
    let (addr_tx, addr_rx) = watch::channel(gw.smtp);

    // The clients: each takes the next message number and tries it until it is accepted or its
    // fate is unknown (or GIVE_UP passes: a gateway that does not come back).
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let sending = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, tally, addr_rx) = (next.clone(), tally.clone(), addr_rx.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        return;
                    }
                    let mut last = String::new();
                    let mut done = false;
                    let give_up = Instant::now() + GIVE_UP;
                    while Instant::now() < give_up {
                        let addr = *addr_rx.borrow();
                        match attempt(addr, i).await {
                            Attempt::Accepted => {
                                tally.lock().unwrap().accepted.push(i);
                                done = true;
                                break;
                            }
                            Attempt::Unknown => {
                                tally.lock().unwrap().unknown.push(i);
                                done = true;
                                break;
                            }
                            Attempt::Retry(why) => {
                                tally.lock().unwrap().retries += 1;
                                last = why;
                                // The gateway is (re)starting: give it a moment.
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                    if !done {
                        tally.lock().unwrap().given_up.push((i, last));
                    }
                }
            })
        })
        .collect();

    // The killer: SIGKILL at a random moment, start again on the same data directory, tell the
    // clients the new port. It goes on while the clients send, and at least MIN_KILLS times (the
    // later ones then hit the delivery of the backlog).
    let killer = {
        let (sending, config) = (sending.clone(), config.clone());
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut gw = gw;
            // When each kill was complete (the process gone, its successor not started yet).
            let mut kills: Vec<Instant> = Vec::new();
            while sending.load(Ordering::SeqCst) || kills.len() < MIN_KILLS {
                let pause = Duration::from_millis(rng.random_range(300..=1500));
                tokio::time::sleep(pause).await;
                let config = config.clone();
                let killed;
                (gw, killed) = tokio::task::spawn_blocking(move || {
                    let mut gw = gw;
                    gw.kill9();
                    let killed = Instant::now();
                    (Gateway::start_in(gw.into_dir(), &config), killed)
                })
                .await
                .expect("the gateway starts again after SIGKILL");
                kills.push(killed);
                addr_tx.send_replace(gw.smtp);
            }
            (gw, kills)
        })
    };

    for c in clients {
        c.await.unwrap();
    }
    sending.store(false, Ordering::SeqCst);
    let sent_for = started.elapsed();
    // The gateway left running by the killer is the final one: no more kills.
    let (gw, kill_times) = killer.await.unwrap();
    let kills = kill_times.len();
    let tally = std::mem::take(&mut *tally.lock().unwrap());

    // Every acknowledged message reaches the downstream.
    let accepted: HashSet<String> = tally
        .accepted
        .iter()
        .map(|i| format!("<durable-{i}@test>"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let arrivals = loop {
        let arrivals = down.arrivals();
        let got: HashSet<&String> = arrivals.iter().map(|(id, _)| id).collect();
        if accepted.iter().all(|id| got.contains(id)) || Instant::now() > deadline {
            break arrivals;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let received: Vec<String> = arrivals.iter().map(|(id, _)| id.clone()).collect();
    // Which gateway process delivered each copy: a process's delivery connections are accepted
    // after the kill of its predecessor and (for a message that arrived whole) before its own kill.
    let mut generations: HashMap<&str, Vec<usize>> = HashMap::new();
    for (id, at) in &arrivals {
        let generation = kill_times.partition_point(|k| k <= at);
        generations.entry(id.as_str()).or_default().push(generation);
    }
    let mut same_process: Vec<(&str, &Vec<usize>)> = generations
        .iter()
        .filter(|(_, g)| (1..g.len()).any(|j| g[..j].contains(&g[j])))
        .map(|(id, g)| (*id, g))
        .collect();
    same_process.sort();
    // Each repeat is charged to the kill that ended the process of the copy before it.
    let mut per_kill = vec![0usize; kills + 1];
    for g in generations.values() {
        for w in g.windows(2) {
            per_kill[w[0]] += 1;
        }
    }
    let worst_kill = per_kill.iter().copied().max().unwrap_or(0);
    // How long before its kill the first copy of each duplicate arrived (informational: copies in
    // flight arrive within a delivery's duration of the kill).
    let mut first_at: HashMap<&str, Instant> = HashMap::new();
    let mut worst_lag = Duration::ZERO;
    for (id, at) in &arrivals {
        match first_at.get(id.as_str()) {
            None => {
                first_at.insert(id.as_str(), *at);
            }
            Some(first) => {
                // (None: a repeat without a later kill, which the assertions below report.)
                if let Some(kill) = kill_times.get(kill_times.partition_point(|k| k <= first)) {
                    worst_lag = worst_lag.max(kill.duration_since(*first));
                }
            }
        }
    }
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for id in &received {
        *copies.entry(id.as_str()).or_default() += 1;
    }
    let mut missing: Vec<&String> = accepted
        .iter()
        .filter(|id| !copies.contains_key(id.as_str()))
        .collect();
    missing.sort();
    let delivered = accepted.len() - missing.len();
    // A duplicate is a second (third…) copy of an acknowledged message.
    let duplicates: usize = accepted
        .iter()
        .map(|id| {
            copies
                .get(id.as_str())
                .copied()
                .unwrap_or(0)
                .saturating_sub(1)
        })
        .sum();
    let most = copies.values().copied().max().unwrap_or(0);
    // Messages whose final dot was cut off by a kill may or may not have arrived: both are fine.
    let unknown_arrived = tally
        .unknown
        .iter()
        .filter(|i| copies.contains_key(format!("<durable-{i}@test>").as_str()))
        .count();

    println!(
        "durability: {n} sent, {} accepted, {delivered} delivered, {duplicates} duplicates, {kills} kills",
        accepted.len()
    );
    println!(
        "durability: {} unknown (dot sent, no reply; {unknown_arrived} of them arrived), {} given up, \
         {} retried attempts, at most {most} copies of one message, at most {worst_kill} duplicates from one kill \
         (first copies at most {} ms before it), sending {:.1} s, total {:.1} s, seed {seed}",
        tally.unknown.len(),
        tally.given_up.len(),
        tally.retries,
        worst_lag.as_millis(),
        sent_for.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    assert!(kills >= MIN_KILLS, "only {kills} kills");
    assert!(
        missing.is_empty(),
        "{} acknowledged message(s) never reached the downstream (lost), e.g. {:?}; spool now: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)],
        spool_files(&spool)
    );
    assert!(
        tally.given_up.is_empty(),
        "messages not accepted within {GIVE_UP:?} of trying (gateway not coming back?): {:?}",
        &tally.given_up[..tally.given_up.len().min(10)]
    );
    // Sanity of the bookkeeping: the downstream saw only messages of this test.
    let sent: HashSet<String> = (0..n).map(|i| format!("<durable-{i}@test>")).collect();
    assert!(
        received.iter().all(|id| sent.contains(id)),
        "unexpected Message-IDs downstream: {:?}",
        received
            .iter()
            .filter(|id| !sent.contains(*id))
            .take(5)
            .collect::<Vec<_>>()
    );
    // At-least-once, not exactly-once: a kill between the downstream's 250 and the removal of the
    // spool entry delivers that copy again at the next start (ARCHITECTURE.md, "A 250 after DATA
    // means durable"). Only copies in delivery at the moment of a kill can be repeated, and at
    // most `max_concurrency` copies are in delivery at once.
    // So a repeat always comes from a later process than the copy before it...
    assert!(
        same_process.is_empty(),
        "delivered more than once by the same gateway process (no crash in between): {:?}",
        &same_process[..same_process.len().min(10)]
    );
    // ...and no kill causes more than were in flight when it struck.
    assert!(
        worst_kill <= DELIVERY_CONCURRENCY,
        "{worst_kill} duplicates from one kill: more than the copies in flight can explain ({per_kill:?})"
    );

    // Nothing is left behind: every complete entry was delivered and removed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !spool_files(&spool).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        spool_files(&spool),
        Vec::<String>::new(),
        "spool not drained"
    );
    // Every acknowledged message has exactly one trace record, with its true receipt time (not
    // the epoch, not the time of a retry after a restart) and its final status.
    let test_start = std::time::SystemTime::now() - started.elapsed() - Duration::from_secs(5);
    let accepted_ids = accepted.clone();
    let (mut gw, records) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = gw.ok(&["trace", "--tenant", "contoso", "--limit", "10000", "--json"]);
            let records: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
            let done = records
                .iter()
                .filter(|r| r["status"] == "delivered")
                .count()
                >= accepted_ids.len();
            if done || Instant::now() > deadline {
                return (gw, records);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .unwrap();
    let mut per_message: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for r in &records {
        if let Some(id) = r["message_id"].as_str() {
            per_message
                .entry(format!("<{}>", id.trim_matches(['<', '>'])))
                .or_default()
                .push(r);
        }
    }
    let mut problems = Vec::new();
    for id in &accepted {
        match per_message.get(id).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!("{id}: no trace record")),
            Some([r]) => {
                let at = r["received_at"].as_str().unwrap_or("");
                let at_us = portcullis_store::parse_rfc3339_us(at).unwrap_or(0);
                let test_start_us = test_start
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_micros() as i64;
                if at_us < test_start_us {
                    problems.push(format!("{id}: received_at {at:?} is not its receipt time"));
                }
                if r["status"] != "delivered" {
                    problems.push(format!("{id}: status {} after delivery", r["status"]));
                }
            }
            Some(more) => problems.push(format!("{id}: {} trace records", more.len())),
        }
    }
    assert!(
        problems.is_empty(),
        "{} trace problems, e.g. {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );

    let status = tokio::task::spawn_blocking(move || gw.stop())
        .await
        .unwrap();
    assert!(status.success(), "final gateway exited with {status}");
}

fn spool_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
