//! Text helpers of the human output: tables, field lists, labels, and terminal-safe strings.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub(super) fn parse<T: DeserializeOwned>(body: &str) -> Result<T, String> {
    serde_json::from_str(body).map_err(|e| e.to_string())
}

/// The serde (kebab-case) name of an enum value.
pub(super) fn label<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

pub(super) fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

pub(super) fn on_off_label(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

pub(super) fn list_or_dash<T: ToString>(v: &[T]) -> String {
    if v.is_empty() {
        "-".to_string()
    } else {
        v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
    }
}

pub(super) fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// Aligned columns separated by two spaces, header line first; the last column is not padded.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// `key  value` lines with the keys aligned.
pub(super) fn fields(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| {
            format!("{:<w$}  {v}", format!("{k}:"))
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Text from a message (subject, headers, preview) made safe for a terminal: control characters
/// (escape sequences) and bidirectional overrides are shown escaped, never passed through; line
/// breaks are kept only when `multiline`.
pub(super) fn printable(s: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.replace("\r\n", "\n").chars() {
        let keep = multiline && matches!(c, '\n' | '\t');
        let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if !keep && (c.is_control() || bidi) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The first address, with `(+N)` for the others.
pub(super) fn first_and_count<'a>(mut addresses: impl ExactSizeIterator<Item = &'a str>) -> String {
    match addresses.next() {
        None => "-".to_string(),
        Some(first) if addresses.len() == 0 => first.to_string(),
        Some(first) => format!("{first} (+{})", addresses.len()),
    }
}
