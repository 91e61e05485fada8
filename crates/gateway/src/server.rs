//! `portcullis serve`: sets up the data directory, store, directory snapshot, TLS, spool,
//! trace writer and delivery, then runs the SMTP listener and the admin API until SIGTERM/SIGINT.
//!
//! Graceful shutdown (mini-redis recipe): a watch channel tells the accept loop to stop and every
//! idle session to say `421 4.3.2`; sessions receiving a message finish it; after
//! `smtp.shutdown_grace` the remaining ones are dropped (nothing acknowledged is lost: a `250`
//! is only sent once the spool holds the message). Then the trace is flushed and we exit 0.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use portcullis_smtp::SessionConfig;
use portcullis_store::Store;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Config, LogFormat, Overrides};
use crate::directory::Live;
use crate::inbound::admission::Admission;
use crate::inbound::connection::{self, Client};
use crate::inbound::proxy;
use crate::queue::delivery::Delivery;
use crate::queue::spool::Spool;
use crate::shared::Shared;
use crate::sys::durable::write_private;
use crate::sys::priority::background_priority;
use crate::tls::Tls;

/// Entry point of `portcullis serve`; returns the exit code.
pub fn main(args: &Overrides, data_dir: Option<&Path>) -> i32 {
    let config = match Config::load(args, data_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // The log is written by a thread of its own: a session hands its line over and goes on, so
    // a log reader that stops reading (a pipe to a stalled journal) stops no session. Lines
    // beyond LOG_BUFFER_LINES waiting are dropped and counted (`watch_log_drops`).
    let (log_writer, _log_flush) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .lossy(true)
        .thread_name("log-writer")
        // Lines are buffered and written when the writer has drained what waits (it flushes
        // then) or 64 KiB have gathered: one write(2) per burst, not per line — a line per
        // refused transaction at tens of thousands a second would otherwise cost a quarter of
        // the refusal rate (BENCHMARKS.md).
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let log_dropped = log_writer.error_counter();
    // Colour only for a person at a terminal: never into a file, a pipe or journald, never
    // with NO_COLOR (no-color.org: set and not empty).
    let colour = {
        use std::io::IsTerminal;
        config.log_format == LogFormat::Text
            && std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    };
    let logger = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(log_writer)
        .with_ansi(colour);
    // Under systemd the journal stamps every line itself: no second timestamp in the text.
    match (config.log_format, crate::sys::journal::stderr_is_journal()) {
        (LogFormat::Text, false) => logger.init(),
        (LogFormat::Text, true) => logger.without_time().init(),
        (LogFormat::Json, _) => logger.json().init(),
    }
    // Everything the gateway creates — database, spool, journal, Maildir, keys — is readable
    // by its own user only: files 0600, directories 0700.
    // SAFETY: umask only sets the process's file-mode creation mask; no memory is involved.
    unsafe {
        libc::umask(0o077);
    }
    // Sessions and deliveries on runtimes of their own: a delivery's work (downstream I/O, spool
    // updates, hundreds of microseconds per message) queued on the sessions' workers would delay
    // every SMTP reply behind it; apart, the kernel's scheduler shares the cores between them and
    // a command's reply waits only for other sessions' steps (RCPT latency under load, BENCHMARKS.md).
    // Deliveries run at background priority: no reply waits for them.
    let runtimes = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .and_then(|sessions| {
            let delivery = tokio::runtime::Builder::new_multi_thread()
                .thread_name("delivery")
                .on_thread_start(background_priority)
                .enable_all()
                .build()?;
            Ok((sessions, delivery))
        });
    let (runtime, delivery) = match runtimes {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    // SIGHUP reads the configuration again the same way.
    let reload = Reload {
        args: args.clone(),
        data_dir: data_dir.map(Path::to_path_buf),
    };
    let served = runtime.block_on(serve(config, reload, delivery.handle(), log_dropped));
    drop(delivery);
    match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", said_once(&e));
            1
        }
    }
}

/// An error with its causes, each said once: a cause whose text its effect already quotes
/// (a database error wrapped twice) is left out.
fn said_once(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// Log lines waiting for the log writer, at most (about 200 bytes each).
const LOG_BUFFER_LINES: usize = 65_536;

/// Reports log lines dropped because the log writer was [`LOG_BUFFER_LINES`] behind: counted in
/// `portcullis_log_lines_dropped_total`, and a warning (itself logged once there is room again).
fn watch_log_drops(dropped: tracing_appender::non_blocking::ErrorCounter) {
    tokio::spawn(async move {
        let mut reported = 0;
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            let now = dropped.dropped_lines();
            if now > reported {
                metrics::counter!("portcullis_log_lines_dropped_total")
                    .increment((now - reported) as u64);
                tracing::warn!(
                    lines = now - reported,
                    "log lines dropped: the log output (stderr) was not read fast enough"
                );
                reported = now;
            }
        }
    });
}

/// How `serve` was started, to load the configuration again on SIGHUP.
struct Reload {
    args: Overrides,
    data_dir: Option<std::path::PathBuf>,
}

fn session_config(config: &Config) -> SessionConfig {
    SessionConfig {
        hostname: config.hostname.clone(),
        max_line_length: config.max_line_length,
        max_message_size: config.max_message_size,
        max_recipients: config.max_recipients,
        max_commands: config.max_commands,
        max_errors: config.max_errors,
        offer_starttls: true,
    }
}

async fn serve(
    config: Config,
    reload: Reload,
    delivery_runtime: &tokio::runtime::Handle,
    log_dropped: tracing_appender::non_blocking::ErrorCounter,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    crate::trace::set_node(&config.node_name);
    crate::telemetry::install()?;
    watch_log_drops(log_dropped);
    // The database first: a start that cannot reach it writes nothing into the data directory
    // (an embedded SQLite database lives there, so its directory is made for it).
    if config.storage_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    }
    let store = Store::connect_within(&config.storage_url, config.storage_connect_timeout)
        .await
        .with_context(|| {
            format!(
                "opening storage {}",
                portcullis_store::redacted(&config.storage_url)
            )
        })?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    // A data directory made by an earlier version (or by hand) is closed too: what is in it
    // is then out of other users' reach whatever its own mode.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting data directory {}", config.data_dir.display()))?;
    }
    ensure_admin_token(&config.data_dir)?;
    let directory = Live::load(store.clone(), config.services.clone()).await?;
    let poller = directory.spawn_poller(Duration::from_millis(500));
    let listener = directory.spawn_listener();
    let tls = Tls::load(&config)?;
    let auth = Arc::new(crate::auth::Authenticator::new(
        &config.hostname,
        config.auth_enabled,
        &config.nameservers,
        config.dns_timeout,
        config.dns_unhealthy_after,
    )?);
    log_authentication(&auth, &config);
    let dns_watch = watch_dns(auth.clone(), config.dns_unhealthy_after);
    let spool = Spool::open(config.data_dir.join("spool"))?;
    let recovered = spool.recover()?;
    if !recovered.is_empty() {
        tracing::info!(
            count = recovered.len(),
            "delivering messages left in the spool"
        );
    }
    restore_trace_records(&store, &recovered).await?;
    let trace = crate::trace::start(&store)
        .await
        .context("starting the trace writer")?;
    let delivery = Delivery::start(
        delivery_runtime,
        spool.clone(),
        config.clone(),
        directory.clone(),
        auth.clone(),
        trace.clone(),
        recovered,
    );
    let retention = spawn_retention(store.clone(), config.trace_retention);
    let queue_index = crate::queue::index::spawn_publisher(
        store.clone(),
        spool.clone(),
        config.node_name.clone(),
        config.default_route.to_string(),
    );

    let smtp = TcpListener::bind(config.smtp_listen)
        .await
        .with_context(|| format!("binding SMTP listener {}", config.smtp_listen))?;
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding admin API {}", config.admin_listen))?;
    let admin_tls = match &config.admin_tls {
        Some((cert, key)) => Some(Arc::new(arc_swap::ArcSwap::from_pointee(
            crate::tls::admin_acceptor(cert, key)?,
        ))),
        None => None,
    };

    let announcement = format!(
        "portcullis: SMTP on {}, admin API on {}://{}, data in {}",
        smtp.local_addr()?,
        if admin_tls.is_some() { "https" } else { "http" },
        admin.local_addr()?,
        config.data_dir.display()
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let session_config = arc_swap::ArcSwap::from_pointee(session_config(&config));
    let delivery_handle = delivery.clone();
    let shared = Arc::new(Shared {
        config: config.clone(),
        session_config,
        directory: directory.clone(),
        tls: Some(arc_swap::ArcSwap::from_pointee(tls)),
        spool: spool.clone(),
        trace: trace.clone(),
        delivery,
        auth,
        store: store.clone(),
        verifier: crate::recipients::Verifier::new(&config),
    });

    let api = spawn_admin_api(
        admin,
        admin_tls.clone(),
        shared.clone(),
        shutdown_rx.clone(),
    )?;

    spawn_reload_on_hup(shared.clone(), reload, admin_tls);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: no new connections, finishing sessions in flight");
        let _ = shutdown_tx.send(true);
    });

    // Tests and scripts read this line to learn the bound ports (`--smtp-listen 127.0.0.1:0`);
    // it comes once everything is in place, the SIGHUP handler included.
    println!("{announcement}");
    accept_loop(smtp, shared, shutdown_rx).await;

    poller.abort();
    dns_watch.abort();
    queue_index.abort();
    listener.abort();
    retention.abort();
    let _ = api.await;
    delivery_handle.shutdown(Duration::from_secs(10)).await;
    match tokio::task::spawn_blocking(move || spool.write_out_journal()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(entries = n, "spool journal written out for the next start"),
        Ok(Err(e)) => tracing::error!("spool journal left for the next start to replay: {e:#}"),
        Err(e) => tracing::error!("spool journal left for the next start to replay: {e}"),
    }
    trace.stop().await;
    drop(trace);
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Every message the spool holds has its trace record as the spool knows it: a crash can come
/// between a `250` (or a later delivery state written to the spool) and the trace writer's
/// batch. A record missing from the database, or behind the spool's (fewer events), is written
/// from the spool's copy, with the message's true receipt time.
async fn restore_trace_records(
    store: &Store,
    recovered: &[crate::queue::spool::Entry],
) -> anyhow::Result<()> {
    let mut behind = Vec::new();
    for entry in recovered {
        let spooled = &entry.envelope.trace;
        let stored = store
            .get_trace(&entry.envelope.tenant, &spooled.trace_id)
            .await
            .context("reading the trace of a spooled message")?;
        if stored.is_none_or(|r| r.events.len() < spooled.events.len()) {
            behind.push(spooled.clone());
        }
    }
    for chunk in behind.chunks(256) {
        store
            .upsert_traces(chunk)
            .await
            .context("restoring the trace records of spooled messages")?;
    }
    if !behind.is_empty() {
        tracing::info!(
            records = behind.len(),
            "trace records restored from the spool"
        );
    }
    Ok(())
}

/// DNS health in the log and `/metrics` (`portcullis_dns_healthy`): a warning once lookups have
/// failed for `after`, a line when they answer again.
fn watch_dns(
    auth: Arc<crate::auth::Authenticator>,
    after: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut healthy = true;
        metrics::gauge!("portcullis_dns_healthy").set(1.0);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let failing = auth.dns_health.failing_for().filter(|d| *d >= after);
            match (healthy, failing) {
                (true, Some(d)) => {
                    healthy = false;
                    metrics::gauge!("portcullis_dns_healthy").set(0.0);
                    tracing::warn!(
                        seconds = d.as_secs(),
                        "DNS lookups have been failing (time-outs or SERVFAIL): anonymous mail is deferred; /readyz says degraded"
                    );
                }
                (false, None) => {
                    healthy = true;
                    metrics::gauge!("portcullis_dns_healthy").set(1.0);
                    tracing::info!("DNS answers again");
                }
                _ => {}
            }
        }
    })
}

/// Says at start whether email authentication is on, and through which DNS.
fn log_authentication(auth: &crate::auth::Authenticator, config: &Config) {
    if auth.enabled() {
        let dns = if config.nameservers.is_empty() {
            "the system resolver".to_string()
        } else {
            config
                .nameservers
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        tracing::info!("email authentication on (SPF, DKIM, ARC, DMARC), DNS via {dns}");
    } else {
        tracing::warn!("email authentication is off ([auth] enabled = false)");
    }
}

/// Serves the admin API on `admin` (through TLS when configured) until shutdown.
fn spawn_admin_api(
    admin: TcpListener,
    admin_tls: Option<Arc<arc_swap::ArcSwap<tokio_rustls::TlsAcceptor>>>,
    shared: Arc<Shared>,
    shutdown_rx: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let api_state = crate::admin::state::State::new(shared)?;
    let mut api_shutdown = shutdown_rx;
    let app = crate::admin::router::router(api_state)
        .into_make_service_with_connect_info::<crate::admin::extract::Peer>();
    let stopped = async move {
        let _ = api_shutdown.wait_for(|s| *s).await;
    };
    Ok(match &admin_tls {
        Some(acceptor) => {
            let listener = crate::tls::TlsListener::new(admin, acceptor.clone())?;
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            })
        }
        None => tokio::spawn(async move {
            axum::serve(admin, app)
                .with_graceful_shutdown(stopped)
                .await
        }),
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = shared.config.clone();
    let admission = Admission::new(&config);
    let mut sessions = JoinSet::new();
    let session_rx = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Canonical once, here: an IPv4-mapped address (a dual-stack listener) is the
                // IPv4 client it is, for the caps, SPF, attribution, rules and the trace.
                let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                let shared = shared.clone();
                let admission = admission.clone();
                let rx = session_rx.clone();
                sessions.spawn(open_session(shared, admission, tcp, peer, rx));
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    drop(listener);
    let grace = tokio::time::sleep(config.shutdown_grace);
    tokio::pin!(grace);
    while !sessions.is_empty() {
        tokio::select! {
            _ = sessions.join_next() => {}
            _ = &mut grace => {
                tracing::warn!(sessions = sessions.len(), "shutdown grace period over; dropping sessions");
                sessions.abort_all();
                break;
            }
        }
    }
}

/// One accepted connection: its PROXY header when it comes from a trusted balancer, then
/// admission (counted by the real client), then the session or a `421`.
async fn open_session(
    shared: Arc<Shared>,
    admission: Arc<Admission>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let client = if config
        .proxy_trusted_networks
        .iter()
        .any(|n| n.contains(&peer.ip()))
    {
        match proxy::read_header(&mut tcp, peer, config.proxy_timeout).await {
            Ok(p) => Client {
                peer: p.client,
                balancer: Some(peer),
                early: p.early,
            },
            Err(why) => {
                metrics::counter!("portcullis_proxy_header_failures_total").increment(1);
                tracing::warn!(balancer = %peer, "connection closed: {why}");
                return;
            }
        }
    } else {
        Client {
            peer,
            balancer: None,
            early: Vec::new(),
        }
    };
    let ip = client.peer.ip();
    let connector = admission.is_connector(ip, shared.directory.get().connector_prefix(ip));
    match admission.admit(client.peer.ip(), connector) {
        Ok(slot) => {
            connection::handle(shared, tcp, client, shutdown).await;
            drop(slot);
        }
        Err(refusal) => {
            metrics::counter!("portcullis_connections_refused_total", "reason" => refusal.name())
                .increment(1);
            tracing::debug!(peer = %client.peer, reason = refusal.name(), "connection refused");
            let mut out = Vec::new();
            refusal.reply(&config.hostname).write_to(&mut out);
            let _ = tcp.write_all(&out).await;
            let _ = tcp.shutdown().await;
        }
    }
}

/// SIGHUP loads the configuration file again and applies, without dropping sessions, the
/// `[smtp]` session limits (max_message_size, max_recipients, max_line_length, max_commands,
/// max_errors) and the TLS certificate and key (renewed in place, e.g. by an ACME client). New
/// sessions and new STARTTLS handshakes use them; sessions in flight keep theirs. A file or
/// certificate that does not load is logged and everything stays as it was. Other keys (listen
/// addresses, storage, connection limits, timeouts) need a restart.
fn spawn_reload_on_hup(
    shared: Arc<Shared>,
    reload: Reload,
    admin_tls: Option<Arc<arc_swap::ArcSwap<tokio_rustls::TlsAcceptor>>>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("no SIGHUP handler: configuration reload needs a restart");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let config = match Config::load(&reload.args, reload.data_dir.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(
                        "SIGHUP: configuration not reloaded, keeping the running one: {e}"
                    );
                    continue;
                }
            };
            let tls = match Tls::load(&config) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(
                        "SIGHUP: TLS certificate not loaded, keeping the running configuration: {e:#}"
                    );
                    continue;
                }
            };
            // The admin certificate, when HTTPS was on at start (turning it on or off needs a
            // restart: the listener's protocol does not change under its clients).
            let admin = match (&admin_tls, &config.admin_tls) {
                (Some(_), Some((cert, key))) => match crate::tls::admin_acceptor(cert, key) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        tracing::error!(
                            "SIGHUP: admin certificate not loaded, keeping the running configuration: {e:#}"
                        );
                        continue;
                    }
                },
                (Some(_), None) | (None, Some(_)) => {
                    tracing::warn!(
                        "SIGHUP: turning the admin API's TLS on or off needs a restart; keeping it as it is"
                    );
                    None
                }
                (None, None) => None,
            };
            if let Some(slot) = shared.tls.as_ref() {
                slot.store(Arc::new(tls));
            }
            if let (Some(slot), Some(acceptor)) = (&admin_tls, admin) {
                slot.store(Arc::new(acceptor));
            }
            shared
                .session_config
                .store(Arc::new(session_config(&config)));
            let pending = crate::config::restart_needed(&shared.config, &config);
            if !pending.is_empty() {
                tracing::warn!(
                    keys = ?pending,
                    "SIGHUP: these keys changed and apply only after a restart; the running values stay: {}",
                    pending.join(", ")
                );
            }
            tracing::info!(
                max_message_size = config.max_message_size,
                max_recipients = config.max_recipients,
                "SIGHUP: [smtp] limits and TLS certificate reloaded; new sessions use them"
            );
        }
    });
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn spawn_retention(store: Store, retention: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let cutoff = SystemTime::now()
                .checked_sub(retention)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            match store.purge_traces(crate::sys::clock::micros(cutoff)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "purged trace records past retention"),
                Err(e) => tracing::warn!("trace retention purge failed: {e}"),
            }
            // Quarantine entries carry their own expiry (set from [quarantine] retention).
            match store
                .purge_quarantine(crate::sys::clock::micros(SystemTime::now()))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "purged expired quarantined messages"),
                Err(e) => tracing::warn!("quarantine expiry purge failed: {e}"),
            }
            // The planner's statistics follow the trace's growth (each filter's index chosen).
            if let Err(e) = store.refresh_statistics().await {
                tracing::warn!("refreshing the database statistics failed: {e}");
            }
        }
    })
}

/// Creates `<data_dir>/admin.token` (mode 0600) on first start.
fn ensure_admin_token(data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join("admin.token");
    if path.exists() {
        return Ok(());
    }
    let token: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    write_private(&path, format!("{token}\n").as_bytes())?;
    tracing::info!(file = %path.display(), "created the admin token");
    Ok(())
}
