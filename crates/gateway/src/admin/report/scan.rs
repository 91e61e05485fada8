//! Streaming over the trace store for the reports: the period (`since`), the scan page by page,
//! and the domain of an address.

use std::time::SystemTime;

use portcullis_store::{Store, TraceRecord, TraceScan};

use crate::sys::clock::rfc3339;

const PAGE: u32 = 2000;

/// Parses `since` (default `default`) into the scan's lower bound.
pub fn since(s: Option<&str>, default: &str) -> Result<(SystemTime, String), String> {
    let text = s.unwrap_or(default);
    let d = humantime::parse_duration(text)
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 7d, 30d, 12h"))?;
    let t = SystemTime::now()
        .checked_sub(d)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok((t, rfc3339(t)))
}

/// Calls `f` for every record of the scan, in receive order, one page in memory at a time.
pub async fn scan(
    store: &Store,
    scan: &TraceScan,
    mut f: impl FnMut(&TraceRecord),
) -> anyhow::Result<()> {
    let mut after = None;
    loop {
        let page = store.scan_traces(scan, after.clone(), PAGE).await?;
        for r in &page {
            f(r);
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => {
                after = Some((last.received_at_us, last.trace_id.clone()));
            }
            _ => return Ok(()),
        }
    }
}

pub fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
}
