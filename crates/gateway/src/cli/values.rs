//! Flag values shared by the argument definitions and the planning: list flags, clearable
//! flags, enum names, `Name: value` headers.

use serde::de::DeserializeOwned;
use serde_json::Value;

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
