//! The RFC 7208 conformance suite (openspf.org release 2014.04, `crates/spf/tests/data`) run
//! through the gateway's own SPF path: `Authenticator::spf` and its resolver, asking a real DNS
//! server (testdns) that serves each scenario's zone.
//!
//! The suite driver's conventions (pyspf's `testspf.py`) are kept: an `SPF` record is also served as
//! TXT unless the name has TXT records of its own (RFC 7208 dropped the SPF type; nothing asks
//! for it); `TIMEOUT` makes queries of types the name has no records of go unanswered; names under
//! `error.` that are not in the zone time out; `explanation: DEFAULT` means "no explanation of the
//! domain's own".

use std::net::IpAddr;
use std::time::Duration;

use portcullis_testdns::TestDns;
use serde_json::Value;

use crate::auth::Authenticator;

/// Cases where we follow the RFC's text over the suite's expectation, and why.
const DEVIATIONS: &[(&str, &str)] = &[(
    "v-macro-ip6",
    "the suite wants upper-case nibbles from %{ir} in an explanation; RFC 7208 §7.4's own \
     example expands 2001:db8::cb01 to lower-case ones (1.0.b.c...), as we do. DNS names are \
     case-insensitive, so lookups are the same either way",
)];

const SUITE: &str = include_str!("../../spf/tests/data/rfc7208-tests.json");

fn strings(v: &Value) -> Vec<Vec<u8>> {
    match v {
        // "Null text" (no character-strings) cannot be sent: TXT RDATA holds at least one string
        // (RFC 1035 §3.3.14), and hickory refuses to decode it. The nearest is one empty string.
        Value::Array(parts) if parts.is_empty() => vec![Vec::new()],
        Value::String(s) => vec![s.as_bytes().to_vec()],
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Array(bytes) => bytes.iter().map(|b| b.as_u64().unwrap() as u8).collect(),
                other => panic!("TXT part {other}"),
            })
            .collect(),
        other => panic!("TXT value {other}"),
    }
}

fn serve(dns: &TestDns, zone: &serde_json::Map<String, Value>) {
    dns.timeout("error");
    for (name, records) in zone {
        let records = records.as_array().unwrap();
        let has_txt = records.iter().any(|r| r.get("TXT").is_some());
        for record in records {
            let (kind, value) = record.as_object().unwrap().iter().next().unwrap();
            match kind.as_str() {
                "TIMEOUT" => dns.timeout_name(name),
                "A" => dns.a(name, value.as_str().unwrap().parse().unwrap()),
                "AAAA" => dns.aaaa(name, value.as_str().unwrap().parse().unwrap()),
                "MX" => dns.mx(
                    name,
                    value[0].as_u64().unwrap() as u16,
                    value[1].as_str().unwrap(),
                ),
                "PTR" => {
                    // The suite writes PTR owners as reverse names; testdns wants the address.
                    let ip = reverse_to_ip(name);
                    dns.ptr(ip, value.as_str().unwrap());
                }
                "CNAME" => dns.cname(name, value.as_str().unwrap()),
                "TXT" | "SPF" if kind == "TXT" || !has_txt => {
                    let parts = strings(value);
                    if parts == [b"NONE".to_vec()] {
                        continue;
                    }
                    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                    dns.txt_strings(name, &parts);
                }
                "SPF" => {}
                other => panic!("record type {other}"),
            }
        }
    }
}

fn reverse_to_ip(name: &str) -> IpAddr {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(v4) = name.strip_suffix(".in-addr.arpa") {
        let mut octets: Vec<&str> = v4.split('.').collect();
        octets.reverse();
        return octets.join(".").parse().unwrap();
    }
    let nibbles: Vec<&str> = name
        .strip_suffix(".ip6.arpa")
        .unwrap()
        .split('.')
        .rev()
        .collect();
    let hex: Vec<String> = nibbles.chunks(4).map(|c| c.concat()).collect();
    hex.join(":").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7208_conformance_suite() {
    let suite: Vec<Value> = serde_json::from_str(SUITE).unwrap();
    let mut failures: Vec<(String, String)> = Vec::new();
    let mut total = 0;
    for scenario in &suite {
        let dns = TestDns::start();
        serve(&dns, scenario["zonedata"].as_object().unwrap());
        for (id, test) in scenario["tests"].as_object().unwrap() {
            total += 1;
            // A fresh authenticator per case: a temporary failure is remembered per domain.
            let auth = Authenticator::new(
                "receiver.test",
                true,
                &[dns.addr],
                Duration::from_millis(250),
                Duration::from_secs(3600),
            )
            .unwrap();
            let ip: IpAddr = test["host"].as_str().unwrap().parse().unwrap();
            let helo = test["helo"].as_str().unwrap();
            let mail_from = test["mailfrom"].as_str().filter(|m| !m.is_empty());
            let spf = auth.spf(ip, helo, mail_from).await;
            let got = spf.result.as_str();
            let want: Vec<&str> = match &test["result"] {
                Value::String(s) => vec![s.as_str()],
                Value::Array(list) => list.iter().map(|v| v.as_str().unwrap()).collect(),
                other => panic!("result {other}"),
            };
            let mut wrong = Vec::new();
            if !want.contains(&got) {
                wrong.push(format!("result {got}, want {}", want.join(" or ")));
            }
            if let Some(explanation) = test["explanation"].as_str()
                && got == "fail"
            {
                let ours = spf.explanation().unwrap_or("DEFAULT");
                if ours != explanation {
                    wrong.push(format!("explanation {ours:?}, want {explanation:?}"));
                }
            }
            if !wrong.is_empty() {
                failures.push((
                    id.clone(),
                    format!(
                        "{} / {id} ({}): {} [{:?}]",
                        scenario["description"].as_str().unwrap(),
                        test["spec"],
                        wrong.join("; "),
                        spf.problem,
                    ),
                ));
            }
        }
    }
    assert_eq!(total, 203, "the whole suite ran");
    let unexpected: Vec<&str> = failures
        .iter()
        .filter(|(id, _)| !DEVIATIONS.iter().any(|(d, _)| d == id))
        .map(|(_, why)| why.as_str())
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} of {total} cases differ from RFC 7208:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    // A deviation that no longer happens is taken off the list.
    for (id, why) in DEVIATIONS {
        assert!(
            failures.iter().any(|(f, _)| f == id),
            "{id} now agrees with the suite; remove it from DEVIATIONS ({why})"
        );
    }
}
