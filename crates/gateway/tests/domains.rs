//! Who may claim a domain: a tenant's own administrators prove control of a new domain with a
//! DNS TXT record before it receives mail, and can never take a domain inside or above one that
//! another tenant holds; the operator can, and does so at once.

mod common;

use common::*;

fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn rcpt(gw: &Gateway, to: &str) -> String {
    let mut s = session(gw.smtp, "127.0.0.1").await;
    assert!(
        s.cmd("MAIL FROM:<a@partner.example>")
            .await
            .starts_with("250")
    );
    s.cmd(&format!("RCPT TO:<{to}>")).await
}

#[tokio::test]
async fn a_tenant_proves_control_and_never_takes_another_tenants_domain() {
    let gw = Gateway::start("");
    for t in ["contoso", "fabrikam"] {
        gw.ok(&["tenant", "add", t]);
    }
    // The operator gives fabrikam a domain with its subdomains.
    gw.ok(&[
        "domain",
        "add",
        "corp.fabrikam.test",
        "--tenant",
        "fabrikam",
        "--match-subdomains",
    ]);
    assert!(
        rcpt(&gw, "u@eu.corp.fabrikam.test")
            .await
            .starts_with("250")
    );
    let admin = gw.create_token("contoso-admin", "org-admin", "contoso");
    let as_admin = |args: &[&str]| {
        let mut all = vec!["--token", admin.as_str()];
        all.extend_from_slice(args);
        gw.cli(&all)
    };

    // Inside another tenant's domain, or above it: refused, naming no other tenant.
    for domain in [
        "eu.corp.fabrikam.test",
        "fabrikam.test",
        "corp.fabrikam.test",
    ] {
        let o = as_admin(&["domain", "add", domain, "--tenant", "contoso"]);
        assert_eq!(o.status.code(), Some(5), "conflict: {domain}: {}", out(&o));
        assert!(!out(&o).contains("tenant fabrikam"), "{}", out(&o));
    }
    // Not a domain at all.
    let o = as_admin(&["domain", "add", "127.0.0.1", "--tenant", "contoso"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    // fabrikam's subdomain still resolves to fabrikam.
    let owner = |rcpt: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(&gw.ok(&[
            "simulate",
            "--tenant",
            "fabrikam",
            "--ip",
            "192.0.2.1",
            "--mail-from",
            "a@partner.example",
            "--rcpt",
            rcpt,
            "--json",
        ]))
        .unwrap();
        v["tenant"].as_str().unwrap_or("").to_string()
    };
    assert_eq!(owner("u@eu.corp.fabrikam.test"), "fabrikam");

    // A new domain of its own: pending until the TXT record is published.
    let o = as_admin(&["domain", "add", "contoso.example", "--tenant", "contoso"]);
    assert!(o.status.success(), "{}", out(&o));
    let text = out(&o);
    let token = text
        .split('"')
        .find(|w| w.starts_with("portcullis-verification="))
        .unwrap_or_else(|| panic!("no token to publish in {text}"))
        .to_string();
    assert!(
        rcpt(&gw, "bob@contoso.example").await.starts_with("550"),
        "a pending domain receives no mail"
    );
    let o = as_admin(&["domain", "verify", "contoso.example", "--tenant", "contoso"]);
    assert_eq!(o.status.code(), Some(5), "not published yet: {}", out(&o));
    assert!(out(&o).contains("no TXT record"), "{}", out(&o));
    gw.dns.txt("contoso.example", &token);
    let o = as_admin(&["domain", "verify", "contoso.example", "--tenant", "contoso"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(rcpt(&gw, "bob@contoso.example").await.starts_with("250"));
    let list = gw.ok(&["domain", "list", "--tenant", "contoso"]);
    assert!(
        list.contains("contoso.example") && list.contains("active"),
        "{list}"
    );

    // The operator may carve a subdomain out for contoso (audited), and it takes effect at once.
    gw.ok(&[
        "domain",
        "add",
        "eu.corp.fabrikam.test",
        "--tenant",
        "contoso",
    ]);
    assert!(
        rcpt(&gw, "u@eu.corp.fabrikam.test")
            .await
            .starts_with("250")
    );
    let audit = gw.ok(&["audit", "--tenant", "contoso", "--since", "1h"]);
    assert!(audit.contains("eu.corp.fabrikam.test"), "{audit}");
}
