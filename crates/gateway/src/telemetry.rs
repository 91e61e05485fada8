//! Operational endpoints: `/metrics` (Prometheus text, behind the admin token), `/readyz`
//! (database reachable, spool writable) and `/healthz`. Counters are recorded where things
//! happen (connections, replies, refusals, authentication, deliveries) through the `metrics`
//! facade; the queue depth is read when scraped.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process.
pub fn install() -> anyhow::Result<()> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                3600.0,
            ],
        )?
        .install_recorder()?;
    let _ = HANDLE.set(handle);
    describe();
    Ok(())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("portcullis_connections_total", "SMTP connections accepted");
    describe_gauge!("portcullis_connections_active", "SMTP connections open now");
    describe_counter!(
        "portcullis_rcpt_replies_total",
        "RCPT TO replies, by reply code and enhanced status"
    );
    describe_counter!(
        "portcullis_direct_send_refused_total",
        "Recipients refused with 5.7.68, by tenant"
    );
    describe_counter!(
        "portcullis_messages_total",
        "Transactions at end of DATA, by outcome"
    );
    describe_counter!(
        "portcullis_auth_results_total",
        "Authentication results, by method and result"
    );
    describe_gauge!(
        "portcullis_queue_depth",
        "Messages in the spool waiting for delivery"
    );
    describe_counter!(
        "portcullis_deliveries_total",
        "Delivery outcomes per recipient, by outcome"
    );
    describe_histogram!(
        "portcullis_delivery_seconds",
        "From acceptance to the downstream's acknowledgment"
    );
}

/// The Prometheus text exposition, with the queue depth as of now.
pub fn render(queue_depth: usize) -> String {
    metrics::gauge!("portcullis_queue_depth").set(queue_depth as f64);
    HANDLE.get().map(|h| h.render()).unwrap_or_default()
}
