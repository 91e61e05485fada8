//! The Direct Send report as the console shows it: computed through the API (a scan of a busy
//! tenant's period takes a second at a million records), kept per tenant and period, served at
//! once and recomputed in the background when older than [`FRESH`], forgotten when the console
//! changes something the report shows (a connector, the mode). The page says when it was
//! computed. Only a principal the API's role table lets read the report is served a kept copy;
//! the API itself always computes afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::api_types::{DirectSendReport, Readiness, encode};

use super::api::{Api, Failure};

/// A kept report younger than this is served as it is.
const FRESH: Duration = Duration::from_secs(60);
/// Tenants and periods kept at most (a flood of distinct keys cannot grow it without end).
const ENTRIES: usize = 1000;

/// A report, its readiness assessment, and when they were computed.
#[derive(Clone)]
pub(super) struct Computed {
    pub(super) report: Arc<DirectSendReport>,
    pub(super) readiness: Option<Arc<Readiness>>,
    pub(super) at: SystemTime,
    age: Instant,
}

#[derive(Default)]
pub(super) struct ReportCache {
    /// `(tenant, period)` → the last computation, and whether a refresh is under way.
    entries: Mutex<HashMap<(String, String), (Computed, bool)>>,
}

impl ReportCache {
    /// The report of `tenant` over `since`, kept or computed.
    pub(super) async fn get(
        self: &Arc<Self>,
        api: &Api,
        tenant: &str,
        since: &str,
    ) -> Result<Computed, Failure> {
        let readable = [
            "/api/v1/tenants/{t}/reports/direct-send",
            "/api/v1/tenants/{t}/readiness",
        ]
        .iter()
        .all(|route| api.may("GET", route, Some(tenant)));
        let key = (tenant.to_string(), since.to_string());
        if readable {
            let mut entries = self.entries.lock().expect("not poisoned");
            if let Some((kept, refreshing)) = entries.get_mut(&key) {
                let kept = kept.clone();
                if kept.age.elapsed() > FRESH && !*refreshing {
                    *refreshing = true;
                    let (this, api) = (self.clone(), api.clone());
                    tokio::spawn(async move {
                        let fresh = compute(&api, &key.0, &key.1).await;
                        let mut entries = this.entries.lock().expect("not poisoned");
                        match fresh {
                            Ok(c) => {
                                entries.insert(key, (c, false));
                            }
                            // Tried again at the next view; the kept copy stays meanwhile.
                            Err(_) => {
                                entries.remove(&key);
                            }
                        }
                    });
                }
                return Ok(kept);
            }
        }
        // Nothing kept (or not allowed: the API answers why).
        let computed = compute(api, tenant, since).await?;
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() >= ENTRIES {
            entries.clear();
        }
        entries.insert(key, (computed.clone(), false));
        Ok(computed)
    }

    /// Forgets a tenant's reports (the console changed what they show).
    pub(super) fn forget(&self, tenant: &str) {
        self.entries
            .lock()
            .expect("not poisoned")
            .retain(|(t, _), _| t != tenant);
    }
}

async fn compute(api: &Api, tenant: &str, since: &str) -> Result<Computed, Failure> {
    let base = format!("/api/v1/tenants/{}", encode(tenant));
    let (report_path, readiness_path) = (
        format!("{base}/reports/direct-send?since={since}"),
        format!("{base}/readiness?since={since}"),
    );
    let at = SystemTime::now();
    let (report, readiness) = tokio::join!(
        api.get::<DirectSendReport>(&report_path),
        api.get::<Readiness>(&readiness_path),
    );
    Ok(Computed {
        report: Arc::new(report?),
        readiness: readiness.ok().map(Arc::new),
        at,
        age: Instant::now(),
    })
}
