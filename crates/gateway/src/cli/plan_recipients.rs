//! Planning of `recipient` commands: the list of recipient validation, an import file read and
//! checked line by line before anything is sent.

use crate::api_types::{self, encode};

use super::args::*;
use super::call::*;

pub(super) fn plan_recipient(c: &RecipientCommand) -> Result<Call, String> {
    let change = |tenant: &str, body: &api_types::RecipientsChange| -> Result<Call, String> {
        Ok(Call::new(
            Method::Post,
            format!("{}/recipients", tenant_path(tenant)?),
            Output::RecipientsChanged,
        )
        .body(body))
    };
    let entries = |list: &[String]| -> Result<Vec<String>, String> {
        list.iter()
            .map(|a| api_types::parse_recipient_entry(a).map(|(e, _)| e))
            .collect()
    };
    match c {
        RecipientCommand::Add { addresses, tenant } => change(
            tenant,
            &api_types::RecipientsChange {
                add: entries(addresses)?,
                ..Default::default()
            },
        ),
        RecipientCommand::Remove { addresses, tenant } => change(
            tenant,
            &api_types::RecipientsChange {
                remove: entries(addresses)?,
                ..Default::default()
            },
        ),
        RecipientCommand::Import {
            tenant,
            file,
            replace,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| format!("cannot read standard input: {e}"))?
            } else {
                std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?
            };
            let add = recipient_file(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            if add.is_empty() && !replace {
                return Err(format!("{}: no addresses", file.display()));
            }
            change(
                tenant,
                &api_types::RecipientsChange {
                    add,
                    remove: Vec::new(),
                    replace: *replace,
                },
            )
        }
        RecipientCommand::List {
            tenant,
            limit,
            after,
            all,
            json,
        } => {
            let mut query = Vec::new();
            let limit = if *all { Some(100_000) } else { *limit };
            if let Some(n) = limit {
                if n == 0 || n > 100_000 {
                    return Err(format!("invalid --limit {n}: expected 1 to 100000"));
                }
                query.push(format!("limit={n}"));
            }
            if let Some(a) = after {
                query.push(format!("after={}", encode(a)));
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            Ok(Call::new(
                Method::Get,
                format!("{}/recipients{query}", tenant_path(tenant)?),
                Output::RecipientList,
            )
            .json(*json))
        }
    }
}

/// The addresses of an import file, normalized; an error names the line. One address a line,
/// or CSV with the address first (quoted or not); a header `address` line, blank lines and `#`
/// comments are skipped.
pub(super) fn recipient_file(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if i == 0 && first.eq_ignore_ascii_case("address") {
            continue;
        }
        let (entry, _) =
            api_types::parse_recipient_entry(first).map_err(|e| format!("line {}: {e}", i + 1))?;
        out.push(entry);
    }
    Ok(out)
}
