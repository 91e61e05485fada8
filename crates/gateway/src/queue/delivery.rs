//! The queue's delivery side: every spooled copy goes to its recipients' routes — the embedded
//! Maildir tree, or the tenant's mailbox server over SMTP or LMTP — one transaction per route.
//! 2xx delivers, 5xx fails, 4xx and connection trouble defer: the entry stays in the spool with
//! its per-recipient state and is retried with exponential backoff and jitter until
//! `[delivery] give_up_after`. Concurrency is bounded in total and per destination.
//!
//! Crash safety: the spool entry is removed only once every recipient has a final outcome, and the
//! envelope's state is rewritten durably after each attempt, so a restart resumes where it
//! stopped. A crash between a downstream's acknowledgment and that rewrite re-delivers to that
//! route once (at-least-once; never loses a message that got a 250).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use portcullis_policy::route::Route;
use tokio::sync::{Semaphore, mpsc};

use crate::auth::Authenticator;
use crate::config::Config;
use crate::directory::Live;
use crate::queue::downstream;
use crate::queue::envelope::RcptState;
use crate::queue::maildir::deliver_maildir;
use crate::queue::spool::{Entry, Spool, Written};
use crate::sys::clock::micros;
use crate::trace::{TraceSender, event};
use portcullis_store::{EventKind, RecipientStatus, TraceAttribution, TraceStatus};

#[derive(Clone)]
pub struct Delivery {
    tx: mpsc::UnboundedSender<Entry>,
    limit: Arc<Semaphore>,
    total: u32,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    worker: Arc<Worker>,
}

impl Delivery {
    /// Starts the delivery worker on `runtime`, where every delivery runs. `pending` are entries
    /// recovered from the spool at start.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        spool: Spool,
        config: Arc<Config>,
        directory: Arc<Live>,
        auth: Arc<Authenticator>,
        trace: TraceSender,
        pending: Vec<Entry>,
    ) -> Delivery {
        let (tx, mut rx) = mpsc::unbounded_channel::<Entry>();
        let total = u32::try_from(config.delivery_concurrency).unwrap_or(u32::MAX);
        let limit = Arc::new(Semaphore::new(total as usize));
        let worker = Arc::new(Worker {
            spool,
            config,
            directory,
            auth,
            trace,
            destinations: Mutex::default(),
            waiting: Mutex::default(),
            pool: downstream::Pool::default(),
            reroutes: Mutex::default(),
        });
        let sweeper = Arc::downgrade(&worker);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                match sweeper.upgrade() {
                    Some(w) => w.pool.sweep(),
                    None => break,
                }
            }
        });
        let handle = worker.clone();
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for entry in pending {
            let _ = tx.send(entry);
        }
        let retry_tx = tx.clone();
        let (worker_limit, worker_stopping) = (limit.clone(), stopping.clone());
        runtime.spawn(async move {
            while let Some(entry) = rx.recv().await {
                let Ok(permit) = worker_limit.clone().acquire_owned().await else {
                    break;
                };
                if worker_stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    // Shutting down: the entry stays in the spool for the next start.
                    break;
                }
                let worker = worker.clone();
                let retry_tx = retry_tx.clone();
                tokio::spawn(async move {
                    worker.deliver(entry, retry_tx).await;
                    drop(permit);
                });
            }
        });
        Delivery {
            tx,
            limit,
            total,
            stopping,
            worker: handle,
        }
    }

    /// Entries waiting for their next attempt can be woken now (`queue retry`). Returns whether
    /// `stem` was waiting.
    pub fn retry_now(&self, stem: &str) -> bool {
        let waiting = self.worker.waiting.lock().expect("not poisoned");
        waiting.get(stem).map(|n| n.notify_one()).is_some()
    }

    /// `queue reroute`: the pending recipients of `stem` go to `route` from its next attempt
    /// on, which is made due now. False when no such entry waits here.
    pub fn reroute(&self, stem: &str, route: &Route) -> bool {
        if matches!(self.worker.spool.get(stem), Ok(None) | Err(_)) {
            return false;
        }
        self.worker
            .reroutes
            .lock()
            .expect("not poisoned")
            .insert(stem.to_string(), route.to_string());
        // Waiting: delivered at once; in flight: the next attempt takes it.
        self.retry_now(stem);
        true
    }

    /// Wakes every waiting entry; returns how many.
    pub fn retry_all(&self) -> usize {
        let waiting = self.worker.waiting.lock().expect("not poisoned");
        waiting.values().for_each(|n| n.notify_one());
        waiting.len()
    }

    /// Takes an entry out of the queue (`queue delete`): its pending recipients fail with
    /// `reason`; with `bounce` the sender gets a delivery status notification.
    pub async fn delete(&self, stem: &str, bounce: bool, reason: &str) -> anyhow::Result<bool> {
        let spool = self.worker.spool.clone();
        let key = stem.to_string();
        let Some(mut entry) = tokio::task::spawn_blocking(move || spool.get(&key)).await?? else {
            return Ok(false);
        };
        self.worker.resolve_routes(&mut entry);
        let mut record = entry.envelope.trace.clone();
        for s in entry
            .envelope
            .state
            .iter_mut()
            .filter(|s| s.status == "pending")
        {
            s.status = "failed".into();
            s.reply = format!("550 5.0.0 {reason}");
            event(
                &mut record,
                EventKind::Fail,
                format!("{}: {}", s.address, s.reply),
            );
            set_recipient(&mut record, &s.address, RecipientStatus::Failed, &s.reply);
        }
        if !bounce {
            entry.envelope.is_dsn = true; // suppresses the bounce
        }
        self.worker.finish(entry, record, &self.tx).await;
        self.retry_now(stem); // a waiting retry finds the entry gone and drops it
        Ok(true)
    }

    pub fn submit(&self, entry: Entry) {
        if self.tx.send(entry).is_err() {
            // Still in the spool: the next start delivers it.
            tracing::warn!("delivery worker stopped; message stays spooled");
        }
    }

    /// Stops taking new work and waits (up to `grace`) for deliveries in flight, so their trace
    /// updates are queued before the trace writer stops. Unfinished work stays spooled.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if tokio::time::timeout(grace, self.limit.acquire_many(self.total))
            .await
            .is_err()
        {
            tracing::warn!(
                "deliveries still running at shutdown; they resume from the spool at the next start"
            );
        }
    }
}

/// One attempt's message: the copy kept from acceptance, or the spool file's read back. Cheap to
/// clone (the Maildir route hands it to a blocking task).
#[derive(Clone)]
enum Message {
    Kept(Arc<Written>),
    Read(Arc<Vec<u8>>),
}

impl std::ops::Deref for Message {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Message::Kept(w) => w.message(),
            Message::Read(m) => m,
        }
    }
}

struct Worker {
    spool: Spool,
    config: Arc<Config>,
    directory: Arc<Live>,
    /// The resolver, for the mail exchangers of `mx:` routes.
    auth: Arc<Authenticator>,
    trace: TraceSender,
    /// One semaphore per destination (route URL): at most `delivery_per_destination` at once.
    destinations: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Entries waiting for their next attempt, by spool stem: `queue retry` wakes them.
    waiting: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// Idle downstream connections, reused by the next delivery to the same route.
    pool: downstream::Pool,
    /// `queue reroute`: routes set by the administrator, by spool stem, applied (and kept in
    /// the entry's state) at its next attempt.
    reroutes: Mutex<HashMap<String, String>>,
}

impl Worker {
    fn destination(&self, route: &str) -> Arc<Semaphore> {
        let mut map = self.destinations.lock().expect("not poisoned");
        map.entry(route.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.delivery_per_destination)))
            .clone()
    }

    /// The route of `address` as the directory says now: the domain's, else the tenant's, else
    /// the operator's default; an address outside every tenant goes to its mail exchangers.
    fn route_of(&self, dir: &portcullis_policy::Directory, address: &str) -> String {
        let domain = address
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        if dir.resolve(&domain).is_none() {
            // Outside every tenant (a bounce, a redirect elsewhere): its mail exchangers.
            Route::Mx(domain).to_string()
        } else {
            dir.route_for(&domain)
                .map(str::to_string)
                .unwrap_or_else(|| self.config.default_route.to_string())
        }
    }

    /// Resolves each pending recipient's route at every attempt, so a route changed while mail
    /// waits applies to it (a `queue reroute` wins); a change is a trace event. The route each
    /// attempt used is in its DELIVER / DEFER / FAIL event.
    fn resolve_routes(&self, entry: &mut Entry) {
        let rerouted = self
            .reroutes
            .lock()
            .expect("not poisoned")
            .remove(&entry.stem);
        let dir = self.directory.get();
        let env = &mut entry.envelope;
        if env.state.is_empty() {
            env.state = env
                .recipients
                .iter()
                .map(|r| RcptState {
                    address: r.clone(),
                    route: self.route_of(&dir, r),
                    status: "pending".into(),
                    reply: String::new(),
                    rerouted: None,
                })
                .collect();
        }
        for s in env.state.iter_mut().filter(|s| s.status == "pending") {
            if let Some(to) = &rerouted {
                s.rerouted = Some(to.clone());
            }
            let now = s
                .rerouted
                .clone()
                .unwrap_or_else(|| self.route_of(&dir, &s.address));
            if now != s.route {
                let why = if s.rerouted.is_some() {
                    "rerouted by the administrator"
                } else {
                    "the directory's route changed"
                };
                event(
                    &mut env.trace,
                    EventKind::Route,
                    format!("{}: {} (was {}; {why})", s.address, now, s.route),
                );
                s.route = now;
            }
        }
    }

    async fn deliver(self: Arc<Self>, mut entry: Entry, retry: mpsc::UnboundedSender<Entry>) {
        self.resolve_routes(&mut entry);
        let now_us = micros(SystemTime::now());
        if entry.envelope.first_attempt_us == 0 {
            entry.envelope.first_attempt_us = now_us;
        }
        entry.envelope.attempts += 1;
        let mut record = entry.envelope.trace.clone();

        // The first attempt has the message in memory (as written at acceptance); later ones
        // read it back. Taken out of the entry either way, so it is dropped with this attempt: a
        // retry may be hours away.
        let read = match entry.written.take() {
            Some(written) => Ok(Message::Kept(written)),
            None => {
                let spool = self.spool.clone();
                let job = entry.clone();
                tokio::task::spawn_blocking(move || spool.read_message(&job))
                    .await
                    .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")))
                    .map(|m| Message::Read(Arc::new(m)))
            }
        };
        let message = match read {
            Ok(m) => m,
            Err(_) if matches!(self.spool.get(&entry.stem), Ok(None)) => {
                // Deleted from the queue (`queue delete`) since it was scheduled.
                return;
            }
            Err(e) => {
                tracing::error!(trace_id = %record.trace_id, "cannot read spooled message: {e:#}");
                return self
                    .schedule(entry, record, retry, format!("local error: {e:#}"))
                    .await;
            }
        };

        // One transaction per route with the recipients still pending on it.
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, s) in entry.envelope.state.iter().enumerate() {
            if s.status == "pending" {
                groups.entry(s.route.clone()).or_default().push(i);
            }
        }
        for (route_url, idxs) in groups {
            let rcpts: Vec<String> = idxs
                .iter()
                .map(|&i| entry.envelope.state[i].address.clone())
                .collect();
            let outcomes = self.attempt(&route_url, &rcpts, &entry, &message).await;
            record_outcomes(&mut entry, &mut record, &route_url, &idxs, &outcomes);
        }

        let pending = entry.envelope.state.iter().any(|s| s.status == "pending");
        if pending {
            let last = entry
                .envelope
                .state
                .iter()
                .find(|s| s.status == "pending")
                .map(|s| s.reply.clone())
                .unwrap_or_default();
            return self.schedule(entry, record, retry, last).await;
        }
        self.finish(entry, record, &retry).await;
    }

    /// One transaction on one route for `rcpts`: an outcome per recipient, in order.
    async fn attempt(
        &self,
        route_url: &str,
        rcpts: &[String],
        entry: &Entry,
        message: &Message,
    ) -> Vec<downstream::Outcome> {
        match Route::parse(route_url) {
            Err(e) => rcpts
                .iter()
                .map(|_| downstream::Outcome {
                    code: 550,
                    reply: format!("550 5.3.5 {e}"),
                })
                .collect(),
            Ok(Route::Maildir(root)) => {
                let (spool_env, msg, hostname) = (
                    entry.envelope.clone(),
                    message.clone(),
                    self.config.hostname.clone(),
                );
                let list = rcpts.to_vec();
                let r = tokio::task::spawn_blocking(move || {
                    deliver_maildir(
                        std::path::Path::new(&root),
                        &hostname,
                        &spool_env,
                        &list,
                        &msg,
                    )
                })
                .await;
                let (code, reply) = match r {
                    Ok(Ok(_)) => (250, "250 2.0.0 delivered to mailbox".to_string()),
                    Ok(Err(e)) => (0, format!("maildir: {e:#}")),
                    Err(e) => (0, format!("maildir: {e}")),
                };
                rcpts
                    .iter()
                    .map(|_| downstream::Outcome {
                        code,
                        reply: reply.clone(),
                    })
                    .collect()
            }
            Ok(Route::Mx(domain)) => {
                self.deliver_mx(&domain, &entry.envelope.mail_from, rcpts, message)
                    .await
            }
            Ok(route) => {
                let slot = self.destination(route_url);
                let _permit = slot.acquire_owned().await.expect("never closed");
                downstream::deliver(
                    &self.pool,
                    &route,
                    &self.config.hostname,
                    &entry.envelope.mail_from,
                    rcpts,
                    message,
                )
                .await
            }
        }
    }

    /// SMTP to the domain's mail exchangers in preference order, until one answers.
    async fn deliver_mx(
        &self,
        domain: &str,
        mail_from: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Vec<downstream::Outcome> {
        let hosts = match self.auth.mx_hosts(domain).await {
            Ok(h) => h,
            Err(e) => {
                return rcpts
                    .iter()
                    .map(|_| downstream::Outcome {
                        code: 0,
                        reply: e.clone(),
                    })
                    .collect();
            }
        };
        let mut last = Vec::new();
        for host in hosts {
            // The exchanger's addresses through the configured DNS servers, as every lookup;
            // by name through the system resolver only when DNS is off.
            let targets = match self.auth.host_addresses(&host).await {
                Ok(Some(ips)) => ips.into_iter().map(Some).collect(),
                Ok(None) => vec![None],
                Err(e) => {
                    last = rcpts
                        .iter()
                        .map(|_| downstream::Outcome {
                            code: 0,
                            reply: e.clone(),
                        })
                        .collect();
                    continue;
                }
            };
            let route = Route::Smtp {
                host,
                port: self.config.mx_port,
                tls_required: false,
            };
            for via in targets {
                last = self
                    .deliver_to_exchanger(&route, via, mail_from, rcpts, message)
                    .await;
                if last.iter().any(|o| o.code != 0) {
                    return last;
                }
            }
        }
        last
    }

    /// One attempt at one address of a mail exchanger (named by `route`, so STARTTLS and the
    /// per-destination limit see the exchanger's host name).
    async fn deliver_to_exchanger(
        &self,
        route: &Route,
        via: Option<std::net::IpAddr>,
        mail_from: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Vec<downstream::Outcome> {
        let slot = self.destination(&route.to_string());
        let _permit = slot.acquire_owned().await.expect("never closed");
        downstream::deliver_via(
            &self.pool,
            route,
            via,
            &self.config.hostname,
            mail_from,
            rcpts,
            message,
        )
        .await
    }

    /// Some recipients are still pending: retry later, or give up once the message is too old.
    async fn schedule(
        self: &Arc<Self>,
        mut entry: Entry,
        mut record: portcullis_store::TraceRecord,
        retry: mpsc::UnboundedSender<Entry>,
        last: String,
    ) {
        let age = Duration::from_micros(
            (micros(SystemTime::now()) - entry.envelope.first_attempt_us).max(0) as u64,
        );
        if age >= self.config.give_up_after {
            for s in entry
                .envelope
                .state
                .iter_mut()
                .filter(|s| s.status == "pending")
            {
                s.status = "failed".into();
                s.reply = format!(
                    "554 4.4.7 delivery time expired after {}: {}",
                    humantime::format_duration(self.config.give_up_after),
                    s.reply
                );
                event(
                    &mut record,
                    EventKind::Fail,
                    format!("{}: {}", s.address, s.reply),
                );
                set_recipient(&mut record, &s.address, RecipientStatus::Failed, &s.reply);
            }
            return self.finish(entry, record, &retry).await;
        }
        let backoff = backoff(
            entry.envelope.attempts,
            self.config.first_retry,
            self.config.max_retry,
        );
        record.status = TraceStatus::Deferred;
        event(
            &mut record,
            EventKind::Defer,
            format!(
                "attempt {} failed ({last}); retry in {}",
                entry.envelope.attempts,
                humantime::format_duration(Duration::from_secs(backoff.as_secs()))
            ),
        );
        entry.envelope.trace = record.clone();
        entry.envelope.next_attempt_us = micros(SystemTime::now() + backoff);
        let spool = self.spool.clone();
        let job = entry.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || spool.update(&job)).await {
            tracing::error!(trace_id = %record.trace_id, "cannot record the delivery state: {e:#}");
        }
        self.trace.send(record).await;
        let wake = Arc::new(tokio::sync::Notify::new());
        self.waiting
            .lock()
            .expect("not poisoned")
            .insert(entry.stem.clone(), wake.clone());
        let worker = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = wake.notified() => {}
            }
            worker
                .waiting
                .lock()
                .expect("not poisoned")
                .remove(&entry.stem);
            // Deleted from the queue meanwhile? Then there is nothing to retry.
            let spool = worker.spool.clone();
            let stem = entry.stem.clone();
            let current = tokio::task::spawn_blocking(move || spool.get(&stem)).await;
            if let Ok(Ok(Some(current))) = current {
                let _ = retry.send(current);
            }
        });
    }

    /// Every recipient has a final outcome: the entry leaves the spool.
    async fn finish(
        &self,
        entry: Entry,
        mut record: portcullis_store::TraceRecord,
        queue: &mpsc::UnboundedSender<Entry>,
    ) {
        // A bounce to the envelope sender for the failed recipients: never for the null sender,
        // never for a bounce. It is spooled (durable) before this entry leaves the spool.
        let failed: Vec<&RcptState> = entry
            .envelope
            .state
            .iter()
            .filter(|s| s.status == "failed")
            .collect();
        let wants_bounce =
            !failed.is_empty() && entry.envelope.mail_from != "<>" && !entry.envelope.is_dsn;
        let forged = crate::queue::dsn::unverified_sender(&record.auth);
        if let (true, Some(why)) = (wants_bounce, forged) {
            // The envelope sender is likely forged: a bounce would be backscatter to an
            // innocent address (and gets the gateway on block lists). Recorded, not sent.
            metrics::counter!("portcullis_dsn_suppressed_total").increment(1);
            event(
                &mut record,
                EventKind::Fail,
                format!(
                    "no delivery status notification to {}: {why}",
                    entry.envelope.mail_from
                ),
            );
        } else if wants_bounce {
            match self.bounce(&entry, &failed).await {
                Ok((dsn, id)) => {
                    event(
                        &mut record,
                        EventKind::Fail,
                        format!(
                            "delivery status notification sent to {} as {id}",
                            entry.envelope.mail_from
                        ),
                    );
                    let _ = queue.send(dsn);
                }
                Err(e) => {
                    tracing::error!(trace_id = %record.trace_id, "cannot create the bounce: {e:#}")
                }
            }
        }
        // Delivered if any recipient got it (the per-recipient statuses say which did not).
        let states = &entry.envelope.state;
        record.status = if states.iter().any(|s| s.status == "delivered") {
            TraceStatus::Delivered
        } else {
            TraceStatus::Failed
        };
        // The final record is in the database before the entry leaves the spool: a crash in
        // between delivers again (at least once) rather than leaving the record pending.
        let trace_id = record.trace_id.clone();
        if !self.trace.send_durable(record).await {
            tracing::error!(trace_id = %trace_id, "final trace record not written; the entry stays in the spool (delivered again at the next start)");
            return;
        }
        let spool = self.spool.clone();
        let job = entry.clone();
        match tokio::task::spawn_blocking(move || spool.remove(&job)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(trace_id = %trace_id, "cannot remove spool entry: {e:#}")
            }
            Err(e) => {
                tracing::error!(trace_id = %trace_id, "cannot remove spool entry: {e}")
            }
        }
    }
}

impl Worker {
    /// Spools the delivery status notification for `failed` recipients of `entry`.
    async fn bounce(
        &self,
        entry: &Entry,
        failed: &[&RcptState],
    ) -> anyhow::Result<(Entry, String)> {
        let id = crate::trace::new_trace_id();
        let spool = self.spool.clone();
        let job = entry.clone();
        let message = tokio::task::spawn_blocking(move || spool.read_message(&job)).await??;
        let dsn = crate::queue::dsn::build(
            &self.config.hostname,
            &id,
            &entry.envelope,
            failed,
            &message,
        );
        let now = SystemTime::now();
        let mut trace = portcullis_store::TraceRecord {
            trace_id: id.clone(),
            tenant: entry.envelope.tenant.clone(),
            received_at: crate::sys::clock::rfc3339(now),
            received_at_us: micros(now),
            client_ip: "127.0.0.1".into(),
            mail_from: "<>".into(),
            subject: Some("Undelivered Mail Returned to Sender".into()),
            size: dsn.len() as u64,
            attribution: TraceAttribution::Anonymous,
            status: TraceStatus::Pending,
            recipients: vec![portcullis_store::TraceRecipient {
                address: entry.envelope.mail_from.clone(),
                status: RecipientStatus::Pending,
                reply: String::new(),
            }],
            ..Default::default()
        };
        event(
            &mut trace,
            EventKind::Receive,
            format!(
                "delivery status notification for {}",
                entry.envelope.trace_id
            ),
        );
        let envelope = crate::queue::envelope::Envelope {
            trace_id: id.clone(),
            tenant: entry.envelope.tenant.clone(),
            mail_from: "<>".into(),
            recipients: vec![entry.envelope.mail_from.clone()],
            trace: trace.clone(),
            state: Vec::new(),
            attempts: 0,
            first_attempt_us: 0,
            is_dsn: true,
            next_attempt_us: 0,
        };
        let spool = self.spool.clone();
        let stored = tokio::task::spawn_blocking(move || spool.store(&envelope, &dsn)).await??;
        self.trace.send(trace).await;
        Ok((stored, id))
    }
}

/// Records one route's outcomes in the entry's states and the trace record: delivered, failed
/// (a `FAIL` event each), or deferred (one `DEFER` event).
fn record_outcomes(
    entry: &mut Entry,
    record: &mut portcullis_store::TraceRecord,
    route_url: &str,
    idxs: &[usize],
    outcomes: &[downstream::Outcome],
) {
    let mut delivered = Vec::new();
    for (&i, o) in idxs.iter().zip(outcomes) {
        let s = &mut entry.envelope.state[i];
        s.reply = o.reply.clone();
        let outcome = if o.is_success() {
            "delivered"
        } else if o.is_permanent() {
            "failed"
        } else {
            "deferred"
        };
        metrics::counter!("portcullis_deliveries_total", "outcome" => outcome).increment(1);
        if o.is_success() {
            let since = micros(SystemTime::now()) - entry.envelope.trace.received_at_us;
            metrics::histogram!("portcullis_delivery_seconds").record(since.max(0) as f64 / 1e6);
            s.status = "delivered".into();
            delivered.push(s.address.clone());
        } else if o.is_permanent() {
            s.status = "failed".into();
            event(
                record,
                EventKind::Fail,
                format!("{route_url}: {}: {}", s.address, o.reply),
            );
        }
        set_recipient(
            record,
            &s.address,
            RecipientStatus::parse(&s.status),
            &s.reply,
        );
    }
    if !delivered.is_empty() {
        let reply = outcomes
            .iter()
            .find(|o| o.is_success())
            .map(|o| o.reply.clone())
            .unwrap_or_default();
        let target = if route_url.starts_with("maildir:") {
            "maildir".to_string()
        } else {
            route_url.to_string()
        };
        event(
            record,
            EventKind::Deliver,
            format!("{target}: {} recipient(s): {reply}", delivered.len()),
        );
    }
    if let Some(o) = outcomes
        .iter()
        .find(|o| !o.is_success() && !o.is_permanent())
    {
        event(
            record,
            EventKind::Defer,
            format!("{route_url}: {}", o.reply),
        );
    }
}

fn set_recipient(
    record: &mut portcullis_store::TraceRecord,
    address: &str,
    status: RecipientStatus,
    reply: &str,
) {
    match record
        .recipients
        .iter_mut()
        .find(|r| r.address.eq_ignore_ascii_case(address))
    {
        Some(r) => {
            r.status = status;
            r.reply = reply.into();
        }
        None => record.recipients.push(portcullis_store::TraceRecipient {
            address: address.into(),
            status,
            reply: reply.into(),
        }),
    }
}

/// `first * 2^(attempts-1)`, at most `max`, ±10% jitter so retries of many messages spread out.
fn backoff(attempts: u32, first: Duration, max: Duration) -> Duration {
    let doubled = first.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let base = doubled.min(max);
    let jitter = 0.9 + rand::random::<f64>() * 0.2;
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let (first, max) = (Duration::from_secs(60), Duration::from_secs(3600));
        for (attempt, want) in [(1, 60.0), (2, 120.0), (3, 240.0), (7, 3600.0), (30, 3600.0)] {
            let got = backoff(attempt, first, max).as_secs_f64();
            assert!(
                got >= want * 0.9 - 0.001 && got <= want * 1.1 + 0.001,
                "attempt {attempt}: {got}"
            );
        }
    }
}
