//! Entry points for the cargo-fuzz targets (`fuzz/`): each takes arbitrary bytes, runs the code
//! that reads them in the gateway, and panics only when a property the gateway relies on does
//! not hold (a crash of the code itself is a finding too). Not used by the program.

use std::net::SocketAddr;
use std::path::Path;

/// The PROXY v1/v2 header parser: never panics; a header it accepts names a client, and the
/// bytes after it are a suffix of the input.
pub fn proxy_header(data: &[u8]) {
    let balancer: SocketAddr = "192.0.2.1:40000".parse().expect("address");
    if let Ok(Some(p)) = crate::inbound::proxy::parse(data, balancer) {
        assert!(
            data.ends_with(&p.early),
            "early bytes are not the input's tail"
        );
        assert!(p.early.len() < data.len(), "a header of no bytes");
    }
}

/// The configuration file: any text gives a configuration or an error naming the file; never
/// a panic.
pub fn config_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/nonexistent/fuzz/portcullis.toml");
    let args = crate::config::Overrides::default();
    if let Err(e) = crate::config::Config::from_text(text, path, &args, None) {
        assert!(
            e.0.contains("portcullis.toml"),
            "the error does not name the file: {}",
            e.0
        );
    }
}

/// The header handling of an incoming message: the facts read from it, the `Received:` chain
/// walked for a filtering service's original client, and the removal of headers only we may
/// write (`X-Portcullis-*`, our `Authentication-Results:`), which must be idempotent, keep the
/// body, and leave none of them.
pub fn message_headers(data: &[u8]) {
    // Only what the DATA receiver lets through reaches this code: CRLF line endings throughout
    // (a bare CR or LF gets 554 5.6.0). An early run of this target without this check found a
    // forged header after "\n\r" surviving the stripping — unreachable, since such a message is
    // refused at the end of DATA.
    if !crlf_only(data) {
        return;
    }
    let _ = crate::message::header_facts(data);
    let _ = crate::message::header_fields(data);
    let _ = crate::message::preview(data);
    let clients = crate::message::received_clients(data);
    let mut connector = portcullis_policy::Connector::new("t", "filter");
    connector.skip_last_ip = true;
    let _ = portcullis_policy::skiplist::original_client(&connector, &clients);
    connector.skip_last_ip = false;
    connector.skip_ips = vec!["192.0.2.0/24".parse().expect("net")];
    let _ = portcullis_policy::skiplist::original_client(&connector, &clients);

    let host = "mx.test.example";
    let once = crate::message::strip_own_headers(data, host).into_owned();
    let twice = crate::message::strip_own_headers(&once, host).into_owned();
    assert_eq!(once, twice, "stripping our headers is not idempotent");
    assert!(once.len() <= data.len());
    for (name, value) in crate::message::header_fields(&once) {
        let ours = name.to_ascii_lowercase().starts_with("x-portcullis-")
            || (name.eq_ignore_ascii_case("authentication-results")
                && value
                    .trim()
                    .split([';', ' ', '\t', '\r'])
                    .next()
                    .is_some_and(|id| id.eq_ignore_ascii_case(host)));
        assert!(
            !ours,
            "a header only we may write survived: {name}: {value}"
        );
    }
}

/// Every CR is followed by LF and every LF preceded by CR.
fn crlf_only(data: &[u8]) -> bool {
    data.iter().enumerate().all(|(i, b)| match b {
        b'\r' => data.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && data[i - 1] == b'\r',
        _ => true,
    })
}

/// The admin API's request bodies: every JSON document either fails to parse or gives a value
/// whose validation answers (an error string or a change), never a panic.
pub fn api_bodies(data: &[u8]) {
    use crate::api_types::*;
    if let Ok(p) = serde_json::from_slice::<ConnectorPatch>(data) {
        let mut c = portcullis_policy::Connector::new("t", "c");
        let _ = p.apply(&mut c);
    }
    if let Ok(p) = serde_json::from_slice::<OrgPatch>(data) {
        let mut s = portcullis_policy::OrgSettings::default();
        let _ = p.apply(&mut s, &["svc".to_string()]);
    }
    if let Ok(p) = serde_json::from_slice::<DomainPatch>(data) {
        let mut d = portcullis_policy::AcceptedDomain {
            domain: "contoso.com".into(),
            tenant: "t".into(),
            domain_type: Default::default(),
            match_subdomains: false,
            route: None,
            verification: None,
            recipient_validation: None,
        };
        let _ = p.apply(&mut d);
    }
    if let Ok(mut r) = serde_json::from_slice::<portcullis_policy::rules::Rule>(data) {
        let _ = validate_rule(&mut r, "t");
    }
    let _ = serde_json::from_slice::<NewDomain>(data).map(|d| parse_domain(&d.domain));
    let _ = serde_json::from_slice::<SimulateRequest>(data);
    let _ = serde_json::from_slice::<RecipientsChange>(data);
    if let Ok(r) = serde_json::from_slice::<ReplayRequest>(data) {
        for spec in &r.add_connectors {
            let _ = crate::admin::report::replay::parse_connector_spec("t", spec);
        }
    }
}

/// Mail-flow rules on an arbitrary message: the input is a JSON array of rules, a NUL byte, then
/// the message (without a NUL, a fixed set of rules covering every condition kind judges the
/// whole input). Rules that compile are evaluated on the message's facts: never a panic, and the
/// same outcome twice.
pub fn rules_on_message(data: &[u8]) {
    use portcullis_policy::rules::{CompiledRule, Rule, RuleFacts, evaluate_rules};
    let (rules, message) = match data.iter().position(|b| *b == 0) {
        Some(i) => (
            serde_json::from_slice::<Vec<Rule>>(&data[..i]).unwrap_or_default(),
            &data[i + 1..],
        ),
        None => (fixed_rules(), data),
    };
    let compiled: Vec<CompiledRule> = rules
        .iter()
        .filter_map(|r| CompiledRule::compile(r).ok())
        .collect();
    let headers = crate::message::header_fields(message);
    let facts = crate::message::header_facts(message);
    let recipients = vec!["bob@contoso.com".to_string()];
    let auth = portcullis_policy::AuthFacts::default();
    let f = RuleFacts {
        now: 1_800_000_000,
        attribution: &portcullis_policy::Attribution::Anonymous,
        direct_send: true,
        client_ip: "192.0.2.7".parse().expect("ip"),
        mail_from: Some("ceo@contoso.com"),
        header_from: facts.from.as_deref(),
        headers: &headers,
        subject: facts.subject.as_deref(),
        recipients: &recipients,
        auth: &auth,
        compauth: None,
    };
    let a = format!("{:?}", evaluate_rules(&compiled, &f));
    let b = format!("{:?}", evaluate_rules(&compiled, &f));
    assert_eq!(a, b, "rule evaluation is not deterministic");
}

/// One rule per kind of condition, each with a different action.
fn fixed_rules() -> Vec<portcullis_policy::rules::Rule> {
    use portcullis_policy::rules::{HeaderPattern, HeaderWords, Predicates, Rule, RuleAction};
    let rule = |name: &str, priority: u32, conditions: Predicates, action: RuleAction| Rule {
        tenant: "t".into(),
        name: name.into(),
        priority,
        conditions,
        exceptions: Predicates::default(),
        sender_address_location: Default::default(),
        actions: vec![action],
        mode: Default::default(),
        stop_processing: false,
        activate_at: None,
        expire_at: None,
        enabled: true,
    };
    vec![
        rule(
            "subject",
            0,
            Predicates {
                subject_contains: vec!["invoice".into(), "wire".into()],
                ..Default::default()
            },
            RuleAction::PrependSubject("[EXTERNAL] ".into()),
        ),
        rule(
            "headers",
            1,
            Predicates {
                header_contains: vec![HeaderWords {
                    name: "X-Mailer".into(),
                    words: vec!["bulk".into()],
                }],
                header_matches: vec![HeaderPattern {
                    name: "Reply-To".into(),
                    pattern: r"(?i)@evil\.".into(),
                }],
                ..Default::default()
            },
            RuleAction::SetHeader {
                name: "X-Flag".into(),
                value: "1".into(),
            },
        ),
        rule(
            "sender",
            2,
            Predicates {
                sender_domain_is: vec!["contoso.com".into()],
                direct_send: Some(true),
                recipient_domain_is: vec!["contoso.com".into()],
                ..Default::default()
            },
            RuleAction::Quarantine,
        ),
    ]
}

#[cfg(test)]
mod tests {
    /// The facade's fixed rules compile, and each entry point runs on a plain message.
    #[test]
    fn entry_points_run() {
        for r in super::fixed_rules() {
            portcullis_policy::rules::CompiledRule::compile(&r).unwrap();
        }
        let m = b"Received: from a ([192.0.2.9]) by b; Mon, 7 Dec 2026 10:00:00 +0000\r\nAuthentication-Results: mx.test.example; spf=pass\r\nX-Portcullis-Tenant: x\r\nFrom: ceo@contoso.com\r\nSubject: wire\r\n\r\nbody\r\n";
        super::message_headers(m);
        super::rules_on_message(m);
        super::proxy_header(b"PROXY TCP4 198.51.100.1 192.0.2.1 1234 25\r\nEHLO x\r\n");
        super::config_text(b"[smtp]\nlisten = \"127.0.0.1:25\"\n");
        super::config_text(b"[smtp]\nlisten = 7\n");
        super::api_bodies(br#"{"sender_ips":["10.0.0.1/8"]}"#);
    }
}
