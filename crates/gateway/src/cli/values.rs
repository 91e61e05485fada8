//! Flag values shared by the argument definitions and the planning: list flags, clearable
//! flags, enum names, `Name: value` headers.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api_types;

/// A repeatable list flag: absent → unchanged; given → replaces the list, empty values dropped
/// (so `--flag ''` clears it).
pub fn list_flag(values: &[String]) -> Option<Vec<String>> {
    if values.is_empty() {
        None
    } else {
        Some(
            values
                .iter()
                .filter(|v| !v.trim().is_empty())
                .cloned()
                .collect(),
        )
    }
}

/// An optional single-value flag that '' clears: absent → `None` (unchanged), '' →
/// `Some(None)`, a value → `Some(Some(value))`.
pub fn clearable(v: &Option<String>) -> Option<Option<&str>> {
    v.as_deref()
        .map(|s| Some(s.trim()).filter(|s| !s.is_empty()))
}

/// An enum value by its serde (kebab-case) name, the inverse of [`label`].
pub fn from_label<T: DeserializeOwned>(flag: &str, s: &str, expected: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(s.trim().to_string()))
        .map_err(|_| format!("invalid value {s:?} for {flag}: expected {expected}"))
}

/// `Name: value` split at the first ':' (the name trimmed, one space after the ':' dropped).
pub fn split_header(flag: &str, s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("invalid {s:?} for {flag}: expected 'Name: value'"))?;
    Ok((
        name.trim().to_string(),
        value.strip_prefix(' ').unwrap_or(value).to_string(),
    ))
}

pub(super) fn on_off(flag: &str, v: &Option<String>) -> Result<Option<bool>, String> {
    v.as_deref()
        .map(|s| api_types::parse_on_off(flag, s))
        .transpose()
}

/// `--disabled[=BOOL]` / `--enabled[=BOOL]` (they exclude each other): the new `enabled`, if given.
pub(super) fn enabled_flag(
    disabled: &Option<String>,
    enabled: &Option<String>,
) -> Result<Option<bool>, String> {
    Ok(
        match (
            on_off("--disabled", disabled)?,
            on_off("--enabled", enabled)?,
        ) {
            (Some(d), _) => Some(!d),
            (None, e) => e,
        },
    )
}

/// An RFC 3339 time (the weak form is accepted: `2024-05-01 10:00:00`, no zone = UTC), sent in
/// the strict UTC form.
pub(super) fn parse_time(flag: &str, s: &str) -> Result<String, String> {
    humantime::parse_rfc3339_weak(s.trim())
        .map(|t| humantime::format_rfc3339(t).to_string())
        .map_err(|e| {
            format!(
                "invalid time {s:?} for {flag}: {e} (expected RFC 3339, e.g. 2024-05-01T10:00:00Z)"
            )
        })
}

/// A `--since` duration (humantime: `2h`, `7d`, `1week`), trimmed.
pub(super) fn parse_since(s: &str) -> Result<String, String> {
    let t = s.trim();
    humantime::parse_duration(t)
        .map_err(|e| format!("invalid duration {s:?} for --since: {e} (expected e.g. 2h or 7d)"))?;
    Ok(t.to_string())
}

/// An id the server made up (trace, quarantine): anything but empty.
pub(super) fn parse_id<'a>(what: &str, id: &'a str) -> Result<&'a str, String> {
    match id.trim() {
        "" => Err(format!("invalid {what} {id:?}: must not be empty")),
        id => Ok(id),
    }
}
