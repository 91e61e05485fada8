//! The envelope of a spooled tenant copy: sender, recipients, the trace record and each
//! recipient's delivery state.

use portcullis_store::TraceRecord;
use serde::{Deserialize, Serialize};

/// The envelope of one tenant copy.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub trace_id: String,
    pub tenant: String,
    /// `<>` for the null sender.
    pub mail_from: String,
    pub recipients: Vec<String>,
    /// The trace record as of acceptance, so delivery (also after a restart) can complete it.
    /// Its receipt time in microseconds is not part of its JSON: it is restored from the text
    /// when read back, so a retried or recovered message keeps its true receipt time.
    #[serde(deserialize_with = "trace_with_receipt_time")]
    pub trace: TraceRecord,
    /// Per-recipient delivery state, filled at the first attempt (routes resolved then).
    #[serde(default)]
    pub state: Vec<RcptState>,
    /// Attempts so far and when the first one happened (microseconds since the epoch).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub first_attempt_us: i64,
    /// This is a delivery status notification: it never gets one of its own.
    #[serde(default)]
    pub is_dsn: bool,
    /// When the next attempt is due (microseconds since the epoch; 0: now).
    #[serde(default)]
    pub next_attempt_us: i64,
}

/// One recipient of a spooled copy.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RcptState {
    pub address: String,
    /// The route as a URL (`maildir:…`, `smtp://…`).
    pub route: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// The last reply (remote or local).
    pub reply: String,
    /// A route the administrator set for this message (`queue reroute`): it wins over the
    /// route resolved from the directory at each attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerouted: Option<String>,
}

fn trace_with_receipt_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<TraceRecord, D::Error> {
    let mut trace = TraceRecord::deserialize(d)?;
    if trace.received_at_us == 0 {
        trace.received_at_us = portcullis_store::parse_rfc3339_us(&trace.received_at).unwrap_or(0);
    }
    Ok(trace)
}
