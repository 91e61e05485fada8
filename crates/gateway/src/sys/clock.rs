//! The wall clock in the forms the product stores and shows: seconds and microseconds since the
//! Unix epoch, and RFC 3339 UTC text.

use std::time::SystemTime;

/// RFC 3339 UTC with microseconds: the store's rendering, so a trace record's `received_at`
/// always matches its column and is not stored twice.
pub fn rfc3339(t: SystemTime) -> String {
    portcullis_store::rfc3339_us(micros(t))
}

pub fn micros(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
