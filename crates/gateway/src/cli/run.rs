//! Running a client command: the HTTP client, the token, sending the planned call and turning
//! the answer into output and an exit status.

use std::path::Path;

use portcullis_policy::rules::Rule;

use crate::api_types::{self, SuggestResponse};

use super::args::*;
use super::call::*;
use super::plan::*;
use super::render::*;
use super::text::*;

/// `portcullis completions SHELL`: the completion script, from the same definitions as the
/// parser (clap_complete).
pub fn completions(shell: clap_complete::Shell) -> i32 {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "portcullis", &mut script);
    out(&String::from_utf8_lossy(&script))
}

/// `portcullis man`: the manual page in roff (clap_mangen), e.g. `portcullis man > portcullis.1`.
pub fn man() -> i32 {
    use clap::CommandFactory;
    let mut page = Vec::new();
    if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut page) {
        return fail(1, &format!("cannot render the manual page: {e}"));
    }
    out(&String::from_utf8_lossy(&page))
}

/// Runs every non-serve command; returns the process exit code: 0 ok, 2 bad input (local
/// validation error or HTTP 400/422 from the API), 3 not found, 4 not authenticated or not
/// allowed, 5 conflict, 1 server error (HTTP 5xx, connection refused, unreadable token file).
pub fn run_client(cli: &Cli) -> i32 {
    let call = match plan(&cli.command) {
        Ok(c) => c,
        Err(e) => return fail(2, &e),
    };
    let server = cli.server.trim().trim_end_matches('/');
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return fail(
            2,
            &format!(
                "invalid --server {server:?}: expected a URL such as http://127.0.0.1:8025 or https://gw1.example.net:8025"
            ),
        );
    }
    let agent = match agent(server, cli.server_ca.as_deref()) {
        Ok(a) => a,
        Err(e) => return fail(2, &e),
    };
    let token = match resolve_token(cli) {
        Ok(t) => t,
        Err(e) => return fail(1, &e),
    };
    // `rule set`: GET the rule, apply the flags, then PUT it (below).
    let call = match &call.edit {
        None => call,
        Some(edit) => match send(&agent, server, &token, &call) {
            Ok((status, body)) if (200..300).contains(&status) => match parse::<Rule>(&body) {
                Ok(rule) => match edit.put(&call, rule) {
                    Ok(put) => put,
                    Err(e) => return fail(2, &e),
                },
                Err(e) => return fail(1, &format!("unexpected answer from the gateway: {e}")),
            },
            Ok((status, body)) => return handle_answer(&call, status, &body),
            Err(e) => return fail(1, &e),
        },
    };
    if let Command::Recipient(RecipientCommand::List { all: true, .. }) = &cli.command {
        return run_all_recipients(&agent, server, &token, &call);
    }
    if let Some(all) = call.pages {
        return run_pages(&agent, server, &token, &call, all);
    }
    if let Command::Report(ReportCommand::DirectSend(a)) = &cli.command
        && a.apply
    {
        return run_suggest_apply(&agent, server, &token, &call, a.yes);
    }
    match send(&agent, server, &token, &call) {
        Ok((status, body)) => handle_answer(&call, status, &body),
        Err(e) => fail(1, &e),
    }
}

/// `report direct-send --suggest-connectors --apply`: shows the plan (`call`, `apply: false`),
/// asks unless `yes`, then sends it again with `apply: true` and prints what was created.
pub(super) fn run_suggest_apply(
    agent: &ureq::Agent,
    server: &str,
    token: &str,
    call: &Call,
    yes: bool,
) -> i32 {
    let (status, body) = match send(agent, server, token, call) {
        Ok(answer) => answer,
        Err(e) => return fail(1, &e),
    };
    let code = handle_answer(call, status, &body);
    if code != 0 {
        return code;
    }
    let plan: SuggestResponse = match parse(&body) {
        Ok(p) => p,
        Err(e) => return fail(1, &format!("unexpected answer from the gateway: {e}")),
    };
    // With --format json stdout holds only the JSON documents.
    let nothing_changed = || {
        if call.json {
            eprintln!("nothing changed");
            0
        } else {
            out("nothing changed\n")
        }
    };
    if plan.connectors.is_empty() {
        return nothing_changed();
    }
    let prompt = match &plan.assessment {
        Some(a) if !a.recommended => format!(
            "Create connector {} although it is NOT recommended (see above)? [y/N] ",
            plan.connectors[0].name
        ),
        _ => format!("Create these {} connectors? [y/N] ", plan.connectors.len()),
    };
    if !yes && !confirm(&prompt) {
        return nothing_changed();
    }
    let apply = suggest_apply_call(call);
    match send(agent, server, token, &apply) {
        Ok((status, body)) => handle_answer(&apply, status, &body),
        Err(e) => fail(1, &e),
    }
}

/// A paged listing (`trace`, `quarantine list`, `audit`, `queue list`): one page (saying on
/// stderr when more match, and how to go on), or with `--all` every page in order (as JSON, one
/// array).
fn run_pages(agent: &ureq::Agent, server: &str, token: &str, first: &Call, all: bool) -> i32 {
    let mut call = first.clone();
    let mut records: Vec<serde_json::Value> = Vec::new();
    loop {
        let (status, body, next) = match send_paged(agent, server, token, &call) {
            Ok(answer) => answer,
            Err(e) => return fail(1, &e),
        };
        if !(200..300).contains(&status) {
            return handle_answer(&call, status, &body);
        }
        if !all {
            let code = handle_answer(&call, status, &body);
            if let (0, Some(next)) = (code, &next) {
                eprintln!("more records match: run again with --cursor {next}, or with --all");
            }
            return code;
        }
        let page: Vec<serde_json::Value> = match parse(&body) {
            Ok(p) => p,
            Err(e) => return fail(1, &format!("unexpected answer from the gateway: {e}")),
        };
        records.extend(page);
        match next {
            Some(next) => {
                let base = first.path.split('?').next().unwrap_or_default();
                let query = first.path.split_once('?').map_or("", |(_, q)| q);
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|kv| !kv.is_empty() && !kv.starts_with("cursor="))
                    .collect();
                let mut query = kept.join("&");
                if !query.is_empty() {
                    query.push('&');
                }
                call.path = format!("{base}?{query}cursor={}", encode(&next));
            }
            None => break,
        }
    }
    let body = serde_json::Value::Array(records).to_string();
    handle_answer(&call, 200, &body)
}

/// `recipient list --all`: every page, in order; as JSON, one document with every address.
fn run_all_recipients(agent: &ureq::Agent, server: &str, token: &str, first: &Call) -> i32 {
    let mut call = first.clone();
    let mut all = Vec::new();
    loop {
        let (status, body) = match send(agent, server, token, &call) {
            Ok(answer) => answer,
            Err(e) => return fail(1, &e),
        };
        if !(200..300).contains(&status) {
            return handle_answer(&call, status, &body);
        }
        let page: api_types::RecipientPage = match parse(&body) {
            Ok(p) => p,
            Err(e) => return fail(1, &format!("unexpected answer from the gateway: {e}")),
        };
        if !call.json && !page.recipients.is_empty() {
            let text = page
                .recipients
                .iter()
                .map(|a| printable(a, false))
                .collect::<Vec<_>>()
                .join("\n");
            let code = out(&format!("{text}\n"));
            if code != 0 {
                return code;
            }
        }
        all.extend(page.recipients);
        match page.next {
            Some(next) => {
                let base = first.path.split('?').next().unwrap_or_default();
                call.path = format!("{base}?limit=100000&after={}", encode(&next));
            }
            None => break,
        }
    }
    if call.json {
        let doc = serde_json::json!({ "recipients": all });
        return out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        ));
    }
    0
}

/// Asks `prompt` on the terminal (stderr) and reads one line from stdin: true for y or yes; end of
/// input or anything else is no.
pub(super) fn confirm(prompt: &str) -> bool {
    use std::io::Write;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(n) if n > 0 => is_yes(&line),
        _ => false,
    }
}

pub(super) fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The exit status of an HTTP error answer (SPEC §10): 2 bad value, 3 not found, 4 not
/// authenticated or not allowed, 5 conflict, 1 the server's trouble.
pub(super) fn exit_status(http: u16) -> i32 {
    match http {
        404 => 3,
        401 | 403 => 4,
        409 => 5,
        400..=499 => 2,
        _ => 1,
    }
}

/// Writes `text` to standard output. A reader that went away (`portcullis trace | head -1`)
/// ends the command quietly and successfully, as it does for other tools in a pipe; `print!`
/// would panic.
pub(super) fn out(text: &str) -> i32 {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => fail(1, &format!("writing the output: {e}")),
    }
}

pub(super) fn fail(code: i32, msg: &str) -> i32 {
    eprintln!("error: {msg}");
    code
}

/// The HTTP client for `server`. For https:// it trusts the system's roots and, with
/// `--server-ca`, that file's certificates; a `--server-ca` that holds none is a bad value (exit 2).
pub(super) fn agent(server: &str, server_ca: Option<&Path>) -> Result<ureq::Agent, String> {
    use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
    let mut extra = Vec::new();
    if let Some(ca) = server_ca {
        let pem = std::fs::read(ca).map_err(|e| format!("--server-ca {}: {e}", ca.display()))?;
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(c)) => extra.push(c),
                Ok(_) => {}
                Err(e) => return Err(format!("--server-ca {}: {e}", ca.display())),
            }
        }
        if extra.is_empty() {
            return Err(format!(
                "--server-ca {}: no PEM certificate in it",
                ca.display()
            ));
        }
    }
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(std::time::Duration::from_secs(10)))
        .timeout_global(Some(std::time::Duration::from_secs(300)));
    if server.starts_with("https://") {
        let mut roots: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        roots.extend(extra);
        config = config.tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .root_certs(RootCerts::Specific(std::sync::Arc::new(roots)))
                .build(),
        );
    }
    Ok(config.build().into())
}

/// `--token` / `PORTCULLIS_TOKEN`, else `<data-dir>/admin.token` (trimmed).
pub(super) fn resolve_token(cli: &Cli) -> Result<String, String> {
    if let Some(t) = cli
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Ok(t.to_string());
    }
    let path = cli.data_dir().join("admin.token");
    let missing = "no admin token: pass --token, set PORTCULLIS_TOKEN, or run from the directory holding portcullis-data/admin.token";
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Ok(_) => Err(format!("{missing} ({} is empty)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing.to_string()),
        Err(e) => Err(format!("cannot read admin token {}: {e}", path.display())),
    }
}

/// Sends the call; `Ok((status, body))` for every HTTP answer, `Err` when the gateway could not
/// be reached or the answer not read.
pub(super) fn send(
    agent: &ureq::Agent,
    server: &str,
    token: &str,
    call: &Call,
) -> Result<(u16, String), String> {
    send_paged(agent, server, token, call).map(|(status, body, _)| (status, body))
}

/// As [`send`], with the answer's `X-Next-Cursor` (a listing with more records).
pub(super) fn send_paged(
    agent: &ureq::Agent,
    server: &str,
    token: &str,
    call: &Call,
) -> Result<(u16, String, Option<String>), String> {
    let url = format!("{server}{}", call.path);
    let auth = format!("Bearer {token}");
    let unreachable = |e: ureq::Error| format!("cannot reach the gateway at {server}: {e}");
    let result = match (call.method, &call.body) {
        (Method::Get, _) => agent.get(&url).header("Authorization", &auth).call(),
        (Method::Delete, _) => agent.delete(&url).header("Authorization", &auth).call(),
        (Method::Post, Some(b)) => agent.post(&url).header("Authorization", &auth).send_json(b),
        (Method::Post, None) => agent.post(&url).header("Authorization", &auth).send_empty(),
        (Method::Put, Some(b)) => agent.put(&url).header("Authorization", &auth).send_json(b),
        (Method::Put, None) => agent.put(&url).header("Authorization", &auth).send_empty(),
        (Method::Patch, Some(b)) => agent
            .patch(&url)
            .header("Authorization", &auth)
            .send_json(b),
        (Method::Patch, None) => agent
            .patch(&url)
            .header("Authorization", &auth)
            .send_empty(),
    };
    let mut resp = result.map_err(unreachable)?;
    let status = resp.status().as_u16();
    let next = resp
        .headers()
        .get("x-next-cursor")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if next.is_none()
        && resp.headers().contains_key("x-more-records")
        && (200..300).contains(&status)
    {
        // A listing cut at its --limit by a gateway without cursors: said on stderr, standard
        // output stays the records.
        eprintln!("more records match than --limit allowed: raise --limit or narrow the filters");
    }
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .map_err(|e| format!("reading the answer from the gateway at {server}: {e}"))?;
    Ok((status, body, next))
}

pub(super) fn handle_answer(call: &Call, status: u16, body: &str) -> i32 {
    if !(200..300).contains(&status) {
        let msg = serde_json::from_str::<api_types::ApiError>(body)
            .map(|e| e.error)
            .unwrap_or_else(|_| {
                let b = body.trim();
                if b.is_empty() {
                    format!("the gateway answered HTTP {status}")
                } else {
                    format!(
                        "the gateway answered HTTP {status}: {}",
                        b.lines().next().unwrap_or(b)
                    )
                }
            });
        return fail(exit_status(status), &msg);
    }
    match render(call, body) {
        Ok(text) => {
            // CSV ends its own lines (CRLF).
            if text.ends_with('\n') || text.is_empty() {
                out(&text)
            } else {
                out(&format!("{text}\n"))
            }
        }
        Err(e) => fail(1, &format!("unexpected answer from the gateway: {e}")),
    }
}
