//! A tenant's overview: messages per day by status and direct-send attempts by outcome (from the
//! daily rollup), and reject direct send's state with what turning it on would change.

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use portcullis_policy::OrgSettings;

use crate::api_types::{Counts, DailyReport, encode};

use super::charts;
use super::layout::{Ctx, badge, page, word};
use super::session::Session;

const PERIODS: &[&str] = &["7d", "30d", "90d"];

/// The statuses charted, in this order (a status without mail in the period is left out).
const STATUSES: &[&str] = &[
    "delivered",
    "pending",
    "quarantined",
    "rejected",
    "deferred",
    "failed",
];
const OUTCOMES: &[&str] = &["allowed", "exempted", "audited", "refused"];

#[derive(serde::Deserialize, Default)]
pub(super) struct Period {
    #[serde(default)]
    since: Option<String>,
}

/// `GET /t/{t}/overview`.
pub(super) async fn show(
    session: Session,
    Path(t): Path<String>,
    Query(p): Query<Period>,
) -> Response {
    let since = p
        .since
        .as_deref()
        .filter(|s| PERIODS.contains(s))
        .unwrap_or("30d");
    let base = format!("/api/v1/tenants/{}", encode(&t));
    let (daily_path, org_path) = (
        format!("{base}/reports/daily?since={since}"),
        format!("{base}/org"),
    );
    let (daily, org) = tokio::join!(
        session.api.get::<DailyReport>(&daily_path),
        session.api.get::<OrgSettings>(&org_path),
    );
    let (daily, org) = match (daily, org) {
        (Ok(d), Ok(o)) => (d, o),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let ctx = Ctx::tenant(&session, &t, "overview").await;
    let series = |counts: fn(&crate::api_types::DailyRow) -> &Counts, keys: &[&'static str]| {
        keys.iter()
            .filter(|k| {
                daily
                    .days
                    .iter()
                    .any(|d| counts(d).get(**k).is_some_and(|n| *n > 0))
            })
            .map(|k| {
                let values: Vec<(String, u64)> = daily
                    .days
                    .iter()
                    .map(|d| (d.date.clone(), counts(d).get(*k).copied().unwrap_or(0)))
                    .collect();
                (*k, values)
            })
            .collect::<Vec<_>>()
    };
    let by_status = series(|d| &d.statuses, STATUSES);
    let by_outcome = series(|d| &d.direct_send, OUTCOMES);
    let total = |c: &Counts, k: &str| c.get(k).copied().unwrap_or(0);
    let all: u64 = daily.totals.statuses.values().sum();
    let body = html! {
        (charts::period(PERIODS, since, html! { (daily.since) " to " (daily.until) ", UTC days" }))
        (direct_send_state(&t, &org, &daily.totals.direct_send))
        div class="cards" id="totals" {
            (charts::card("Messages", all))
            @for k in STATUSES {
                @let n = total(&daily.totals.statuses, k);
                @if n > 0 || ["delivered", "quarantined", "rejected"].contains(k) {
                    (charts::card(k, n))
                }
            }
        }
        @if all == 0 {
            div class="empty" {
                p { "No mail for this tenant in this period." }
                p { "Point the MX of the tenant's domains at the gateway, or send a test message; every transaction, accepted or refused, is counted here." }
            }
        } @else {
            section {
                h2 { "Messages per day, by status" }
                (charts::daily(&by_status.iter().map(|(k, v)| (*k, v)).collect::<Vec<_>>()))
            }
            section {
                h2 { "Direct-send attempts per day, by what the rule did" }
                @if by_outcome.is_empty() {
                    p class="empty" { "No direct send in this period: nobody sent as the tenant's domains from outside a connector." }
                } @else {
                    (charts::daily(&by_outcome.iter().map(|(k, v)| (*k, v)).collect::<Vec<_>>()))
                }
            }
        }
    };
    page(&ctx, &format!("Overview of {t}"), body).into_response()
}

/// Reject direct send's mode and, in words, what it did or would do with this period's traffic.
fn direct_send_state(t: &str, org: &OrgSettings, ds: &Counts) -> Markup {
    let n = |k: &str| ds.get(k).copied().unwrap_or(0);
    let mode = word(&org.reject_direct_send);
    let report = format!("/t/{}/direct-send", encode(t));
    let settings = format!("/t/{}/settings", encode(t));
    html! {
        section class="card" {
            h2 { "Reject direct send: " (badge(&mode)) }
            @match mode.as_str() {
                "off" => p {
                    "Anonymous mail that uses this tenant's own domains is accepted. In this period "
                    strong { (n("allowed")) } " such messages were delivered. Turned on, they would be refused with "
                    code { "550 5.7.68" } " unless they come through a connector, a trusted ARC sealer or (when allowed) an aligned DKIM signature. "
                    a href=(report) { "See who sends them" } " before you "
                    a href=(settings) { "turn it on or to audit" } "."
                },
                "audit" => p {
                    "Audit mode: such messages are accepted and marked. In this period "
                    strong { (n("audited")) } " would have been refused and " strong { (n("exempted")) }
                    " were exempted. " a href=(report) { "Review the sources" } ", then "
                    a href=(settings) { "turn it on" } "."
                },
                _ => p {
                    "Anonymous mail as this tenant's domains is refused. In this period "
                    strong { (n("refused")) } " messages were refused and " strong { (n("exempted")) }
                    " were exempted. " a href=(report) { "The Direct Send report" } " lists the sources."
                },
            }
        }
    }
}
