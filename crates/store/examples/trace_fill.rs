//! Fills a store with synthetic trace records through the trace writer's own write path
//! (`Store::upsert_traces`, batches of 500, each record written as received and, for accepted
//! mail, again as delivered), for `bench/trace-scale.sh`.
//!
//! Usage: trace_fill URL RECORDS [DAYS] [TENANTS]
//!
//! RECORDS over the last DAYS (default 90) across TENANTS (default 100) tenants `t00`…, `t00`
//! holding 30 % and the others sharing the rest evenly. Of the records: 60 % delivered mail from
//! 20 000 outside addresses (one recipient, one in ten with two to four), 30 % refused at RCPT
//! (direct-send refusals and unknown recipients), 10 % direct send accepted in audit mode from
//! 3 000 addresses. Prints one line per million and the rate; deterministic (fixed seed).

use std::time::Instant;

use portcullis_store::{
    DirectSendOutcome, EventKind, RecipientStatus, Store, TraceAuth, TraceEvent, TraceRecipient,
    TraceRecord, TraceStatus, rfc3339_us,
};

const DAY_US: i64 = 86_400_000_000;
const BATCH: usize = 500;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn record(rng: &mut Rng, n: u64, now_us: i64, days: i64, tenants: u64) -> TraceRecord {
    let tenant = if rng.below(10) < 3 {
        0
    } else {
        1 + rng.below(tenants - 1)
    };
    let t = format!("t{tenant:02}");
    let domain = format!("{t}.example");
    let at = now_us - rng.below((days * DAY_US) as u64) as i64;
    let kind = rng.below(10);
    let (ip, from, direct) = match kind {
        0..=5 => (
            format!("203.0.{}.{}", rng.below(80), 1 + rng.below(250)),
            format!("user{}@partner{}.example", rng.below(5000), rng.below(300)),
            false,
        ),
        6..=8 => (
            format!("198.51.{}.{}", rng.below(60), 1 + rng.below(250)),
            format!(
                "{}@{domain}",
                ["ceo", "payroll", "it"][rng.below(3) as usize]
            ),
            true,
        ),
        _ => (
            format!("192.0.{}.{}", rng.below(12), 1 + rng.below(250)),
            format!("scanner@{domain}"),
            true,
        ),
    };
    let rcpts = if kind <= 5 && rng.below(10) == 0 {
        2 + rng.below(3)
    } else {
        1
    };
    let refused = (6..=8).contains(&kind);
    let when = rfc3339_us(at);
    let id = format!("{:013X}{:08X}", at / 1000, n);
    let recipients = (0..rcpts)
        .map(|_| TraceRecipient {
            address: format!("user{}@{domain}", rng.below(2000)),
            status: if refused {
                RecipientStatus::Rejected
            } else {
                RecipientStatus::Pending
            },
            reply: if refused {
                "550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources".into()
            } else {
                "250 2.1.5 Recipient OK".into()
            },
        })
        .collect();
    let pass = |rng: &mut Rng, p: u64| if rng.below(100) < p { "pass" } else { "fail" };
    TraceRecord {
        trace_id: id.clone(),
        tenant: t,
        received_at: when.clone(),
        received_at_us: at,
        client_ip: ip.clone(),
        helo: Some(format!("mail{}.example", rng.below(500))),
        mail_from: from.clone(),
        header_from: (!refused).then(|| from.clone()),
        message_id: (!refused).then(|| format!("{id}@mail.example")),
        subject: (!refused).then(|| "Quarterly figures".into()),
        size: if refused { 0 } else { 2000 + rng.below(60000) },
        direct_send: direct,
        direct_send_outcome: direct.then_some(if refused {
            DirectSendOutcome::Refused
        } else {
            DirectSendOutcome::Audited
        }),
        auth: if refused {
            TraceAuth::default()
        } else {
            TraceAuth {
                spf: Some(pass(rng, if direct { 30 } else { 95 }).into()),
                dkim: Some(pass(rng, if direct { 10 } else { 90 }).into()),
                dmarc: Some(pass(rng, if direct { 10 } else { 90 }).into()),
                arc: Some("none".into()),
                ..Default::default()
            }
        },
        status: if refused {
            TraceStatus::Rejected
        } else {
            TraceStatus::Pending
        },
        recipients,
        events: vec![TraceEvent {
            at: when,
            event: if refused {
                EventKind::Reject
            } else {
                EventKind::Receive
            },
            detail: if refused {
                "RCPT: 550 5.7.68 (anonymous envelope sender uses an accepted domain of the tenant) [node a]".into()
            } else {
                format!("received from [{ip}] by mx.example, 4096 bytes [node a]")
            },
        }],
        ..Default::default()
    }
}

/// The accepted record's later state: delivered.
fn delivered(mut r: TraceRecord) -> TraceRecord {
    r.status = TraceStatus::Delivered;
    for rc in &mut r.recipients {
        rc.status = RecipientStatus::Delivered;
        rc.reply = "250 2.0.0 delivered to mailbox".into();
    }
    r.events.push(TraceEvent {
        at: r.received_at.clone(),
        event: EventKind::Deliver,
        detail: "maildir: 1 recipient(s) [node a]".into(),
    });
    r
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: trace_fill URL RECORDS [DAYS] [TENANTS]";
    let url = args.get(1).expect(usage);
    let total: u64 = args.get(2).and_then(|s| s.parse().ok()).expect(usage);
    let days: i64 = args.get(3).map_or(90, |s| s.parse().expect(usage));
    let tenants: u64 = args.get(4).map_or(100, |s| s.parse().expect(usage));
    let store = Store::connect(url).await.expect("connect");
    // The trace writer's own connection (SQLite synchronous = NORMAL, PostgreSQL
    // synchronous_commit = off).
    let store = store.background_writer().await.expect("writer connection");
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let started = Instant::now();
    let mut later: Vec<TraceRecord> = Vec::new();
    let mut n = 0;
    while n < total {
        let mut batch = Vec::with_capacity(BATCH);
        // The previous batch's accepted mail, now delivered, rides with this one, as the trace
        // writer sees it.
        batch.append(&mut later);
        while batch.len() < BATCH && n < total {
            let r = record(&mut rng, n, now_us, days, tenants);
            if r.status == TraceStatus::Pending {
                later.push(delivered(r.clone()));
            }
            batch.push(r);
            n += 1;
            if n % 1_000_000 == 0 {
                eprintln!("# {n} records, {:.0} s", started.elapsed().as_secs_f64());
            }
        }
        store.upsert_traces(&batch).await.expect("write");
    }
    store.upsert_traces(&later).await.expect("write");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "filled {total} records in {secs:.0} s ({:.0} records/s)",
        total as f64 / secs
    );
    store.close().await;
}
