//! Numbers as cards and daily series as charts: the chart is drawn by uPlot from a data
//! attribute (no inline script), and the same numbers stand in a table beneath it, so they read
//! without JavaScript and to a screen reader.

use maud::{Markup, html};

/// The period chooser of a page of charts (`?since=`), with a note beside it.
pub(super) fn period(periods: &[&str], since: &str, note: Markup) -> Markup {
    html! {
        form method="get" class="actions" {
            label for="since" { "Period" }
            select id="since" name="since" {
                @for d in periods {
                    option value=(d) selected[*d == since] { "last " (d) }
                }
            }
            button type="submit" class="secondary" { "Show" }
            span class="help" { (note) }
        }
    }
}

/// A number with its label.
pub(super) fn card(label: &str, n: u64) -> Markup {
    html! { div class="card" { div class="n" { (n) } div class="l" { (label) } } }
}

/// Series over the same UTC days: `(label, [(YYYY-MM-DD, count)])`, oldest first; every series
/// must cover the days of the first.
pub(super) fn daily(series: &[(&str, &Vec<(String, u64)>)]) -> Markup {
    let Some((_, first)) = series.first() else {
        return html! {};
    };
    let days: Vec<&str> = first.iter().map(|(d, _)| d.as_str()).collect();
    let x: Vec<i64> = days.iter().map(|d| day_seconds(d)).collect();
    let value =
        |s: &Vec<(String, u64)>, day: &str| s.iter().find(|(d, _)| d == day).map_or(0, |(_, n)| *n);
    let spec = serde_json::json!({
        "x": x,
        "series": series.iter().map(|(label, s)| serde_json::json!({
            "label": label,
            "values": days.iter().map(|d| value(s, d)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    html! {
        div class="chart" role="img" aria-label="Chart of the table below" data-series=(spec.to_string()) {}
        details {
            summary { "The numbers per day" }
            div class="scroll" {
                table {
                    thead { tr {
                        th scope="col" { "Day (UTC)" }
                        @for (label, _) in series { th scope="col" class="num" { (label) } }
                    } }
                    tbody {
                        @for d in days.iter().rev() {
                            tr {
                                td { (d) }
                                @for (_, s) in series { td class="num" { (value(s, d)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `series` with a zero for every day from `since` to `until` (RFC 3339 or `YYYY-MM-DD`) it
/// lacks: a chart's time axis spans the period, not only the days with mail.
pub(super) fn every_day(since: &str, until: &str, series: &[(String, u64)]) -> Vec<(String, u64)> {
    let day =
        |s: &str| chrono::NaiveDate::parse_from_str(s.get(..10).unwrap_or(""), "%Y-%m-%d").ok();
    let (Some(mut d), Some(last)) = (day(since), day(until)) else {
        return series.to_vec();
    };
    let mut out = Vec::new();
    while d <= last && out.len() <= 400 {
        let date = d.format("%Y-%m-%d").to_string();
        let n = series
            .iter()
            .find(|(x, _)| *x == date)
            .map_or(0, |(_, n)| *n);
        out.push((date, n));
        let Some(next) = d.succ_opt() else { break };
        d = next;
    }
    out
}

/// Unix seconds of a UTC day's start (`YYYY-MM-DD`); 0 for anything else.
fn day_seconds(day: &str) -> i64 {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(0, |t| t.and_utc().timestamp())
}
