//! Labelled form fields, each with its help text and, when the API refused the form naming the
//! field, the error beside it (`aria-invalid`, `aria-describedby`: read out with the field).

use axum::http::StatusCode;
use maud::{Markup, html};

/// The API's error text when it concerns `field` (the API names the field, its flag or its
/// words: `sender_ips`, `--sender-ips`, `sender ip`), for showing beside it.
pub(super) fn error_for<'e>(error: Option<&'e str>, field: &str) -> Option<&'e str> {
    let e = error?;
    let lower = e.to_lowercase();
    let words = field.replace('_', " ");
    let flag = format!("--{}", field.replace('_', "-"));
    let singular = words.trim_end_matches('s');
    (lower.starts_with(field)
        || lower.contains(&format!("{field}:"))
        || lower.contains(&format!("{field} "))
        || lower.contains(&flag)
        || lower.starts_with(&words)
        || lower.starts_with(singular))
    .then_some(e)
}

/// [`error_for`], or the error when it quotes one of the values typed in the field (the API
/// names a wrong value as `"10.1.2.300"`, not always its field).
pub(super) fn error_beside<'e>(
    error: Option<&'e str>,
    field: &str,
    values: &[String],
) -> Option<&'e str> {
    error_for(error, field).or_else(|| {
        let e = error?;
        values
            .iter()
            .any(|v| !v.is_empty() && e.contains(&format!("{v:?}")))
            .then_some(e)
    })
}

fn described(id: &str, help: Option<&str>, error: Option<&str>) -> String {
    let mut ids = Vec::new();
    if help.is_some() {
        ids.push(format!("{id}-help"));
    }
    if error.is_some() {
        ids.push(format!("{id}-error"));
    }
    ids.join(" ")
}

fn notes(id: &str, help: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        @if let Some(h) = help { span class="help" id=(format!("{id}-help")) { (h) } }
        @if let Some(e) = error { span class="error" id=(format!("{id}-error")) role="alert" { (e) } }
    }
}

pub(super) fn text(
    id: &str,
    label: &str,
    value: &str,
    help: Option<&str>,
    error: Option<&str>,
) -> Markup {
    html! {
        div class="field" {
            label for=(id) { (label) }
            input id=(id) name=(id) type="text" value=(value)
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=(described(id, help, error));
            (notes(id, help, error))
        }
    }
}

/// A list, one item per line (also accepted: separated by spaces or commas).
pub(super) fn lines(
    id: &str,
    label: &str,
    items: &[String],
    help: Option<&str>,
    error: Option<&str>,
) -> Markup {
    html! {
        div class="field" {
            label for=(id) { (label) }
            textarea id=(id) name=(id) rows="3"
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=(described(id, help, error)) { (items.join("\n")) }
            (notes(id, help, error))
        }
    }
}

pub(super) fn checkbox(id: &str, label: &str, checked: bool, help: Option<&str>) -> Markup {
    html! {
        div class="field check" {
            label {
                input type="checkbox" id=(id) name=(id) value="true" checked[checked]
                    aria-describedby=[help.map(|_| format!("{id}-help"))];
                " " (label)
            }
            (notes(id, help, None))
        }
    }
}

/// Choices as radio buttons, each with the consequence of choosing it.
pub(super) fn radios(
    id: &str,
    legend: &str,
    choices: &[(&str, &str, &str)],
    selected: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        fieldset class="field" {
            legend { (legend) }
            @for (value, label, consequence) in choices {
                label class="radio" {
                    input type="radio" name=(id) value=(value) checked[*value == selected];
                    " " strong { (label) } " — " (consequence)
                }
            }
            @if let Some(e) = error { span class="error" role="alert" { (e) } }
        }
    }
}

pub(super) fn select(
    id: &str,
    label: &str,
    choices: &[(&str, &str)],
    selected: &str,
    help: Option<&str>,
) -> Markup {
    html! {
        div class="field" {
            label for=(id) { (label) }
            select id=(id) name=(id) aria-describedby=[help.map(|_| format!("{id}-help"))] {
                @for (value, text) in choices {
                    option value=(value) selected[*value == selected] { (text) }
                }
            }
            (notes(id, help, None))
        }
    }
}

/// Items of a list field as typed: split on new lines, commas and spaces.
pub(super) fn items(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// A checkbox's value: present (`true`) or absent.
pub(super) fn checked(v: &Option<String>) -> bool {
    v.as_deref() == Some("true")
}

/// The confirmation box of a destructive form (`confirm=yes`).
#[derive(serde::Deserialize)]
pub(super) struct Confirm {
    #[serde(default)]
    confirm: Option<String>,
}

impl Confirm {
    pub(super) fn given(&self) -> bool {
        self.confirm.as_deref() == Some("yes")
    }
}

/// `?done=WORD` after a change: what it did, said by the page in its own words (the URL never
/// carries text to show).
#[derive(serde::Deserialize, Default)]
pub(super) struct Done {
    #[serde(default)]
    pub(super) done: Option<String>,
}

/// An API refusal the form shows above and beside its fields (a bad value, a conflict); a 403 or
/// 404 is a page of its own.
pub(super) fn form_refusal(status: StatusCode) -> bool {
    status.is_client_error() && status != StatusCode::FORBIDDEN && status != StatusCode::NOT_FOUND
}
