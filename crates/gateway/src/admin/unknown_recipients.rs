//! `report unknown-recipients`: the recipient-validation refusals of a period, per source. A
//! dictionary attack shows as one address with many distinct recipients and sessions cut off;
//! a stale address book as a partner with a few, again and again. Streams the trace like the
//! Direct Send report: memory grows with the sources, not the records.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State as Extract;
use portcullis_store::{RecipientStatus, TraceRecord, TraceScan};

use crate::api_types::*;
use crate::sys::clock::{micros, rfc3339};

use super::extract::*;
use super::report::scan::{scan, since};
use super::state::*;

/// Distinct recipients remembered per source (the count stops there).
const DISTINCT_CAP: usize = 10_000;
const SAMPLES: usize = 5;

#[derive(Default)]
struct Source {
    refusals: u64,
    transactions: u64,
    cut_off: u64,
    first: i64,
    last: i64,
    recipients: BTreeSet<String>,
}

/// Whether a recipient's reply is a recipient-validation refusal: the unknown recipient's
/// `550 5.4.1`, or the `421` that ended a session for too many of them.
fn unknown(reply: &str) -> Option<bool> {
    if reply.starts_with("550 5.4.1 ") {
        Some(false)
    } else if reply.starts_with("421 4.7.0 ")
        && reply.ends_with("Too many unknown recipients, closing connection")
    {
        Some(true)
    } else {
        None
    }
}

fn add(sources: &mut BTreeMap<String, Source>, r: &TraceRecord) {
    let mut seen = false;
    for rcpt in &r.recipients {
        if !matches!(
            rcpt.status,
            RecipientStatus::Rejected | RecipientStatus::Deferred
        ) {
            continue;
        }
        let Some(cut_off) = unknown(&rcpt.reply) else {
            continue;
        };
        let s = sources.entry(r.client_ip.clone()).or_default();
        if !seen {
            seen = true;
            s.transactions += 1;
            if s.first == 0 || r.received_at_us < s.first {
                s.first = r.received_at_us;
            }
            s.last = s.last.max(r.received_at_us);
        }
        if cut_off {
            s.cut_off += 1;
        } else {
            s.refusals += 1;
        }
        if s.recipients.len() < DISTINCT_CAP {
            s.recipients.insert(rcpt.address.to_ascii_lowercase());
        }
    }
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/reports/unknown-recipients", params(("t" = String, Path, description = "Tenant name"), ReportParams), responses((status = 200, body = UnknownRecipientsReport)))]
pub(super) async fn unknown_recipients_report(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> Res<Json<UnknownRecipientsReport>> {
    tenant(&state, &t)?;
    let (from, since_text) = since(p.since.as_deref(), "7d").map_err(bad)?;
    let mut sources = BTreeMap::new();
    scan(
        &state.store,
        &TraceScan {
            tenant: t.clone(),
            since_us: micros(from),
            until_us: None,
            direct_send_only: false,
        },
        |r| add(&mut sources, r),
    )
    .await?;
    let at = |us: i64| rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_micros(us as u64));
    let mut list: Vec<UnknownRecipientSource> = sources
        .into_iter()
        .map(|(ip, s)| UnknownRecipientSource {
            client_ip: ip,
            refusals: s.refusals,
            distinct_recipients: s.recipients.len() as u64,
            transactions: s.transactions,
            cut_off: s.cut_off,
            first_seen: at(s.first),
            last_seen: at(s.last),
            samples: s.recipients.iter().take(SAMPLES).cloned().collect(),
        })
        .collect();
    list.sort_by(|a, b| {
        (b.refusals + b.cut_off)
            .cmp(&(a.refusals + a.cut_off))
            .then_with(|| a.client_ip.cmp(&b.client_ip))
    });
    Ok(Json(UnknownRecipientsReport {
        tenant: t,
        since: since_text,
        refusals: list.iter().map(|s| s.refusals).sum(),
        sources: list,
    }))
}
