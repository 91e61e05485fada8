//! Mail-flow rules: the list in evaluation order, enable/disable and priority (each a
//! read-modify-write guarded by the rule's version), a new rule from a form (or from its JSON),
//! removal behind a confirmation, and a test of the rules against a pasted message.

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use portcullis_policy::rules::{Predicates, Rule, RuleAction};

use crate::api_types::{SimulateReport, SimulateRequest, encode, rule_version};

use super::api::Failure;
use super::forms::{self, Confirm, Done, checkbox, error_for, form_refusal, lines, select, text};
use super::layout::{Ctx, badge, csrf, notice, page, word};
use super::session::Session;

/// `GET /t/{t}/rules`.
pub(super) async fn list(
    session: Session,
    Path(t): Path<String>,
    Query(d): Query<Done>,
) -> Response {
    let message = match d.done.as_deref() {
        Some("created") => Some("The rule was created."),
        Some("saved") => Some("The rule was changed."),
        Some("removed") => Some("The rule was removed."),
        _ => None,
    }
    .map(|m| (true, format!("{m} The change applies to the next message.")));
    render(
        &session,
        &t,
        Page {
            message,
            ..Default::default()
        },
        StatusCode::OK,
    )
    .await
}

/// What a render shows besides the rules: a notice, the typed form, a test's result.
#[derive(Default)]
struct Page<'a> {
    message: Option<(bool, String)>,
    typed: Option<&'a RuleForm>,
    test: Option<(&'a TestForm, Result<SimulateReport, String>)>,
}

/// A predicate list in words: `subject contains: a, b; sender IP: 192.0.2.0/24`.
fn summary(p: &Predicates) -> String {
    let mut parts = Vec::new();
    let mut add = |label: &str, items: Vec<String>| {
        if !items.is_empty() {
            parts.push(format!("{label}: {}", items.join(", ")));
        }
    };
    add("sender domain", p.sender_domain_is.clone());
    add(
        "sender IP",
        p.sender_ip_ranges.iter().map(|n| n.to_string()).collect(),
    );
    add("subject contains", p.subject_contains.clone());
    add("recipient domain", p.recipient_domain_is.clone());
    add("authentication", p.auth_result.clone());
    add(
        "header contains",
        p.header_contains.iter().map(|h| format!("{h:?}")).collect(),
    );
    add(
        "header matches",
        p.header_matches.iter().map(|h| format!("{h:?}")).collect(),
    );
    if let Some(c) = &p.attributed_connector {
        parts.push(format!("connector: {c}"));
    }
    if let Some(d) = p.direct_send {
        parts.push(format!("direct send: {}", if d { "yes" } else { "no" }));
    }
    if let Some(s) = &p.from_scope {
        parts.push(format!("from scope: {s:?}").to_lowercase());
    }
    if parts.is_empty() {
        "every message".into()
    } else {
        parts.join("; ")
    }
}

async fn render(session: &Session, t: &str, p: Page<'_>, status: StatusCode) -> Response {
    let path = format!("/api/v1/tenants/{}/rules", encode(t));
    let rules = match session.api.get::<Vec<Rule>>(&path).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::tenant(session, t, "rules").await;
    let may = ctx.may("POST", "/api/v1/tenants/{t}/rules");
    let error = p
        .message
        .as_ref()
        .filter(|(ok, _)| !ok)
        .map(|(_, m)| m.as_str());
    let base = format!("/t/{}/rules", encode(t));
    let body = html! {
        @if let Some((ok, text)) = &p.message { (notice(*ok, text)) }
        @if rules.is_empty() {
            div class="empty" {
                p { "No mail-flow rules." }
                p { "Rules quarantine, reject, redirect or mark messages by sender, IP, subject, headers or authentication results." }
            }
        } @else {
            div class="scroll" {
                table {
                    caption class="sr" { "Mail-flow rules in evaluation order" }
                    thead { tr {
                        th scope="col" class="num" { "Priority" } th scope="col" { "Name" } th scope="col" { "When" }
                        th scope="col" { "Except" } th scope="col" { "Then" } th scope="col" { "State" }
                        @if may { th scope="col" { "Change" } }
                    } }
                    tbody {
                        @for r in &rules {
                            tr {
                                td class="num" { (r.priority) }
                                td { (r.name) }
                                td { (summary(&r.conditions)) }
                                td { @if !r.exceptions.is_empty() { (summary(&r.exceptions)) } }
                                td { (r.actions.iter().map(RuleAction::describe).collect::<Vec<_>>().join("; "))
                                     @if r.stop_processing { br; span class="help" { "then stop" } } }
                                td {
                                    @if r.enabled { (badge("on")) } @else { (badge("off")) }
                                    " " (word(&r.mode))
                                }
                                @if may { td { (row_actions(session, &base, r)) } }
                            }
                        }
                    }
                }
            }
        }
        @if may {
            section class="panel" {
                h2 { "New rule" }
                (new_form(session, &base, p.typed, error))
            }
        }
        section class="panel" {
            h2 { "Test the rules against a message" }
            (test_form(session, t, p.test.as_ref().map(|(f, _)| *f)))
            @if let Some((_, result)) = &p.test {
                @match result {
                    Ok(r) => (test_result(r)),
                    Err(e) => (notice(false, e)),
                }
            }
        }
    };
    (status, page(&ctx, "Mail-flow rules", body)).into_response()
}

fn row_actions(session: &Session, base: &str, r: &Rule) -> Markup {
    let rule = format!("{base}/{}", encode(&r.name));
    html! {
        div class="actions" {
            form method="post" action=(format!("{rule}/enabled")) {
                (csrf(session))
                input type="hidden" name="enabled" value=(if r.enabled { "false" } else { "true" });
                button type="submit" class="secondary" { @if r.enabled { "Disable" } @else { "Enable" } }
            }
            form method="post" action=(format!("{rule}/priority")) {
                (csrf(session))
                label for=(format!("prio-{}", r.name)) class="sr" { "Priority of " (r.name) }
                input id=(format!("prio-{}", r.name)) name="priority" type="number" min="0" value=(r.priority) size="4";
                button type="submit" class="secondary" { "Set priority" }
            }
            form method="post" action=(format!("{rule}/remove")) class="danger" {
                (csrf(session))
                label { input type="checkbox" name="confirm" value="yes" required; " remove" }
                button type="submit" { "Remove" }
            }
        }
    }
}

fn new_form(session: &Session, base: &str, f: Option<&RuleForm>, error: Option<&str>) -> Markup {
    let v = |get: fn(&RuleForm) -> &str| f.map_or("", get);
    html! {
        form method="post" class="stack" action=(base) {
            (csrf(session))
            (text("name", "Name", v(|f| &f.name), None, error_for(error, "name")))
            (text("priority", "Priority", f.map_or("0", |f| f.priority.as_str()), Some("0 is evaluated first."), error_for(error, "priority")))
            fieldset class="field" {
                legend { "When the message (all that are filled)" }
                (lines("subject_contains", "Subject contains (any of)", &forms::items(v(|f| &f.subject_contains)), None, error_for(error, "subject_contains")))
                (lines("sender_domain_is", "Sender domain is (any of)", &forms::items(v(|f| &f.sender_domain_is)), Some("The From header's domain; subdomains match."), error_for(error, "sender_domain_is")))
                (lines("sender_ip_ranges", "Client IP in", &forms::items(v(|f| &f.sender_ip_ranges)), None, error_for(error, "sender_ip_ranges")))
                (lines("recipient_domain_is", "Recipient domain is", &forms::items(v(|f| &f.recipient_domain_is)), None, error_for(error, "recipient_domain_is")))
                (lines("auth_result", "Authentication result", &forms::items(v(|f| &f.auth_result)), Some("e.g. spf=fail, dmarc=fail"), error_for(error, "auth_result")))
                (select("direct_send", "Direct send", &[("", "either"), ("true", "yes"), ("false", "no")], v(|f| &f.direct_send), None))
            }
            (select("action", "Then", &[
                ("quarantine", "quarantine it"),
                ("reject", "reject it (550, with the text below)"),
                ("prepend_subject", "prepend the text below to the subject"),
                ("set_header", "set the header below (Name: value)"),
                ("redirect_to", "redirect it to the addresses below"),
            ], f.map_or("quarantine", |f| f.action.as_str()), None))
            (text("argument", "Text, header or addresses", v(|f| &f.argument), Some("For reject: the reply text (code 5.7.1). For a header: Name: value."), error_for(error, "actions")))
            (select("mode", "Mode", &[("enforce", "enforce"), ("audit", "audit: only record the match in the trace")], f.map_or("enforce", |f| f.mode.as_str()), None))
            (checkbox("stop_processing", "Evaluate no further rules once this one matched", f.is_some_and(|f| forms::checked(&f.stop_processing)), None))
            details {
                summary { "Or paste the whole rule as JSON (the form rule show --json prints)" }
                (lines("json", "Rule JSON", &f.map_or(Vec::new(), |f| vec![f.json.clone()]).into_iter().filter(|j| !j.is_empty()).collect::<Vec<_>>(), Some("When filled, the fields above are ignored."), None))
            }
            div class="actions" { button type="submit" { "Create rule" } }
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub(super) struct RuleForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    subject_contains: String,
    #[serde(default)]
    sender_domain_is: String,
    #[serde(default)]
    sender_ip_ranges: String,
    #[serde(default)]
    recipient_domain_is: String,
    #[serde(default)]
    auth_result: String,
    #[serde(default)]
    direct_send: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    argument: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    stop_processing: Option<String>,
    #[serde(default)]
    json: String,
}

impl RuleForm {
    /// The rule as the API takes it (validated there, which names the field that is wrong).
    fn rule(&self) -> Result<serde_json::Value, String> {
        if !self.json.trim().is_empty() {
            return serde_json::from_str(&self.json).map_err(|e| format!("rule JSON: {e}"));
        }
        let priority: u32 = self.priority.trim().parse().map_err(|_| {
            format!(
                "priority {:?}: expected a whole number, 0 first",
                self.priority
            )
        })?;
        let arg = self.argument.trim();
        let action = match self.action.as_str() {
            "quarantine" => serde_json::json!("quarantine"),
            "reject" => serde_json::json!({ "reject": { "code": "5.7.1", "text": arg } }),
            "prepend_subject" => serde_json::json!({ "prepend_subject": arg }),
            "set_header" => {
                let (name, value) = arg
                    .split_once(':')
                    .ok_or_else(|| format!("actions: header {arg:?}: expected Name: value"))?;
                serde_json::json!({ "set_header": { "name": name.trim(), "value": value.trim() } })
            }
            "redirect_to" => serde_json::json!({ "redirect_to": forms::items(arg) }),
            other => return Err(format!("actions: unknown action {other:?}")),
        };
        let mut conditions = serde_json::Map::new();
        for (key, value) in [
            ("subject_contains", &self.subject_contains),
            ("sender_domain_is", &self.sender_domain_is),
            ("sender_ip_ranges", &self.sender_ip_ranges),
            ("recipient_domain_is", &self.recipient_domain_is),
            ("auth_result", &self.auth_result),
        ] {
            let items = forms::items(value);
            if !items.is_empty() {
                conditions.insert(key.into(), serde_json::json!(items));
            }
        }
        if let Ok(d) = self.direct_send.parse::<bool>() {
            conditions.insert("direct_send".into(), serde_json::json!(d));
        }
        Ok(serde_json::json!({
            "name": self.name.trim(),
            "priority": priority,
            "conditions": conditions,
            "actions": [action],
            "mode": if self.mode == "audit" { "audit" } else { "enforce" },
            "stop_processing": forms::checked(&self.stop_processing),
        }))
    }
}

/// `POST /t/{t}/rules`.
pub(super) async fn create(
    session: Session,
    Path(t): Path<String>,
    Form(f): Form<RuleForm>,
) -> Response {
    let refused = |message: String| Page {
        message: Some((false, message)),
        typed: Some(&f),
        test: None,
    };
    let rule = match f.rule() {
        Ok(r) => r,
        Err(e) => return render(&session, &t, refused(e), StatusCode::BAD_REQUEST).await,
    };
    let path = format!("/api/v1/tenants/{}/rules", encode(&t));
    match session.api.send(Method::POST, &path, Some(rule)).await {
        Ok(_) => Redirect::to(&format!("/t/{}/rules?done=created", encode(&t))).into_response(),
        Err(Failure { status, message }) if form_refusal(status) => {
            render(&session, &t, refused(message), status).await
        }
        Err(e) => e.into_response(),
    }
}

/// Reads a rule, changes it, writes it back unless it changed in between (409 otherwise).
async fn change(
    session: &Session,
    t: &str,
    name: &str,
    edit: impl FnOnce(&mut Rule),
) -> Result<(), Failure> {
    let path = format!("/api/v1/tenants/{}/rules/{}", encode(t), encode(name));
    let mut rule: Rule = session.api.get(&path).await?;
    let version = rule_version(&rule);
    edit(&mut rule);
    let put = format!("{path}?if_version={}", encode(&version));
    session
        .api
        .send(Method::PUT, &put, serde_json::to_value(&rule).ok())
        .await
        .map(|_| ())
}

async fn after_change(session: &Session, t: &str, result: Result<(), Failure>) -> Response {
    match result {
        Ok(()) => Redirect::to(&format!("/t/{}/rules?done=saved", encode(t))).into_response(),
        Err(Failure { status, message }) if form_refusal(status) => {
            let p = Page {
                message: Some((false, message)),
                ..Default::default()
            };
            render(session, t, p, status).await
        }
        Err(e) => e.into_response(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct Enabled {
    enabled: String,
}

/// `POST /t/{t}/rules/{name}/enabled`.
pub(super) async fn set_enabled(
    session: Session,
    Path((t, name)): Path<(String, String)>,
    Form(f): Form<Enabled>,
) -> Response {
    let on = f.enabled == "true";
    let result = change(&session, &t, &name, |r| r.enabled = on).await;
    after_change(&session, &t, result).await
}

#[derive(serde::Deserialize)]
pub(super) struct Priority {
    priority: String,
}

/// `POST /t/{t}/rules/{name}/priority`.
pub(super) async fn set_priority(
    session: Session,
    Path((t, name)): Path<(String, String)>,
    Form(f): Form<Priority>,
) -> Response {
    let result = match f.priority.trim().parse::<u32>() {
        Ok(p) => change(&session, &t, &name, |r| r.priority = p).await,
        Err(_) => Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!(
                "priority {:?}: expected a whole number, 0 first",
                f.priority
            ),
        )),
    };
    after_change(&session, &t, result).await
}

/// `POST /t/{t}/rules/{name}/remove` (confirmed).
pub(super) async fn remove(
    session: Session,
    Path((t, name)): Path<(String, String)>,
    Form(k): Form<Confirm>,
) -> Response {
    let result = if k.given() {
        let path = format!("/api/v1/tenants/{}/rules/{}", encode(&t), encode(&name));
        session
            .api
            .send(Method::DELETE, &path, None)
            .await
            .map(|_| ())
    } else {
        Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "Tick the box to confirm the removal.",
        ))
    };
    match result {
        Ok(()) => Redirect::to(&format!("/t/{}/rules?done=removed", encode(&t))).into_response(),
        other => after_change(&session, &t, other).await,
    }
}

fn test_form(session: &Session, t: &str, f: Option<&TestForm>) -> Markup {
    html! {
        form method="post" class="stack" action=(format!("/t/{}/rules/test", encode(t))) {
            (csrf(session))
            p class="help" { "Nothing is delivered or recorded: the message goes through the decision and the rules as if it had arrived." }
            (text("ip", "Client IP", f.map_or("192.0.2.1", |f| f.ip.as_str()), None, None))
            (text("mail_from", "Envelope sender", f.map_or("", |f| f.mail_from.as_str()), None, None))
            (text("rcpt", "Recipient", f.map_or("", |f| f.rcpt.as_str()), None, None))
            div class="field" {
                label for="eml" { "The message (headers and body)" }
                textarea id="eml" name="eml" rows="8" { (f.map_or("", |f| f.eml.as_str())) }
            }
            div class="actions" { button type="submit" class="secondary" { "Test" } }
        }
    }
}

fn test_result(r: &SimulateReport) -> Markup {
    html! {
        h3 { "Result: " code { (r.reply) } }
        @if r.rules_matched.is_empty() && r.rules_missed.is_empty() {
            p { "No mail-flow rule was evaluated (the message did not reach them)." }
        }
        ul {
            @for m in &r.rules_matched {
                li { (badge("match")) " " strong { (m.rule) } ": "
                    (m.actions.iter().map(RuleAction::describe).collect::<Vec<_>>().join("; "))
                    " — because " (m.why.join("; ")) }
            }
            @for m in &r.rules_missed {
                li { (badge("skip")) " " strong { (m.rule) } ": " (m.why) }
            }
        }
        details {
            summary { "Every step of the decision" }
            ol { @for s in &r.steps { li { strong { (s.step) } " " (s.outcome) ": " (s.detail) } } }
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct TestForm {
    ip: String,
    mail_from: String,
    rcpt: String,
    #[serde(default)]
    eml: String,
}

/// `POST /t/{t}/rules/test`: `simulate` with the pasted message (changes nothing).
pub(super) async fn test(
    session: Session,
    Path(t): Path<String>,
    Form(f): Form<TestForm>,
) -> Response {
    let req = SimulateRequest {
        ip: f.ip.trim().to_string(),
        helo: None,
        mail_from: f.mail_from.trim().to_string(),
        rcpt: f.rcpt.trim().to_string(),
        tls_cert_name: None,
        // Pasted text has the browser's line ends; the message wants CRLF either way.
        eml: (!f.eml.trim().is_empty()).then(|| f.eml.replace("\r\n", "\n").replace('\n', "\r\n")),
    };
    let path = format!("/api/v1/tenants/{}/simulate", encode(&t));
    let result = session
        .api
        .send(Method::POST, &path, serde_json::to_value(&req).ok())
        .await
        .and_then(|b| {
            serde_json::from_slice::<SimulateReport>(&b)
                .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        });
    let (status, result) = match result {
        Ok(r) => (StatusCode::OK, Ok(r)),
        Err(Failure { status, message }) if form_refusal(status) => (status, Err(message)),
        Err(e) => return e.into_response(),
    };
    let p = Page {
        test: Some((&f, result)),
        ..Default::default()
    };
    render(&session, &t, p, status).await
}
