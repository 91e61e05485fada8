//! The admin plane's principals: every route declares a role; tokens of other tenants and lesser
//! roles are refused with 403 and change nothing; no token is 401; changes are audited.

mod common;

use common::Gateway;
use serde_json::{Value, json};

struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    fn new(gw: &Gateway) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Api {
            base: gw.admin.clone(),
            agent,
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder()
            .method(method.parse::<ureq::http::Method>().unwrap())
            .uri(url)
            .header("Content-Type", "application/json");
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut resp = self.agent.run(req.body(body).unwrap()).unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    }

    fn json(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, text) = self.call(method, path, Some(token), body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

fn concrete(template: &str) -> String {
    template
        .replace("{t}", "contoso")
        .replace("{d}", "contoso.com")
        .replace("{c}", "partner")
        .replace("{name}", "r1")
        .replace("{id}", "00000000")
}

#[test]
fn every_route_refuses_without_its_role_and_changes_are_audited() {
    let gw = Gateway::start("");
    let boot = std::fs::read_to_string(gw.data().join("admin.token")).unwrap();
    let boot = boot.trim();
    let api = Api::new(&gw);
    for t in ["contoso", "fabrikam"] {
        api.json("POST", "/api/v1/tenants", boot, Some(json!({"name": t})));
    }
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
    gw.ok(&[
        "connector",
        "add",
        "partner",
        "--tenant",
        "contoso",
        "--type",
        "partner",
        "--sender-ip",
        "192.0.2.77/32",
    ]);

    let mut tokens = std::collections::HashMap::new();
    for (name, role, tenant) in [
        ("fab-admin", "org-admin", Some("fabrikam")),
        ("con-viewer", "viewer", Some("contoso")),
        ("con-flow", "mail-flow", Some("contoso")),
        ("con-config", "org-config", Some("contoso")),
    ] {
        let mut body = json!({"name": name, "role": role});
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        let created = api.json("POST", "/api/v1/tokens", boot, Some(body));
        let token = created["token"].as_str().unwrap().to_string();
        assert!(token.starts_with("pc_"), "{created}");
        assert_eq!(created["role"], role);
        tokens.insert(name, token);
    }
    // The store keeps only a hash: the token list never shows a token.
    let (_, list) = api.call("GET", "/api/v1/tokens", Some(boot), None);
    for t in tokens.values() {
        assert!(!list.contains(t.as_str()), "token list leaks a token");
    }
    // Bad values are named.
    let (status, text) = api.call(
        "POST",
        "/api/v1/tokens",
        Some(boot),
        Some(json!({"name": "x", "role": "admin", "tenant": "contoso"})),
    );
    assert_eq!(status, 400);
    assert!(text.contains(r#"role \"admin\""#), "{text}");

    let routes = api.json("GET", "/api/v1/routes", boot, None);
    let routes = routes.as_array().unwrap();
    assert!(routes.len() >= 40, "{routes:?}");
    let snapshot = |api: &Api| {
        [
            "/api/v1/tenants",
            "/api/v1/tenants/contoso",
            "/api/v1/tenants/contoso/domains",
            "/api/v1/tenants/contoso/org",
            "/api/v1/tenants/contoso/connectors",
            "/api/v1/tenants/contoso/rules",
            "/api/v1/tokens",
        ]
        .map(|p| api.call("GET", p, Some(boot), None))
    };
    let audit_before = api.json("GET", "/api/v1/audit", boot, None);
    let before = snapshot(&api);
    let mut refused = 0;
    for r in routes {
        let method = r["method"].as_str().unwrap();
        let path = concrete(r["path"].as_str().unwrap());
        let roles: Vec<&str> = r["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let body = (method != "GET" && method != "DELETE").then(|| json!({}));
        let (status, _) = api.call(method, &path, None, body.clone());
        assert_eq!(status, 401, "{method} {path} without a token");
        let (status, _) = api.call(method, &path, Some("pc_00000000_wrong"), body.clone());
        assert_eq!(status, 401, "{method} {path} with a wrong token");
        // Another tenant's administrator may touch nothing of contoso, nor operator routes.
        let (status, text) = api.call(method, &path, Some(&tokens["fab-admin"]), body.clone());
        assert_eq!(
            status, 403,
            "{method} {path} by fabrikam's org-admin: {text}"
        );
        assert!(!text.contains("192.0.2.77"), "{text}");
        refused += 1;
        for (token, role) in [
            ("con-viewer", "viewer"),
            ("con-flow", "mail-flow"),
            ("con-config", "org-config"),
        ] {
            if !roles.contains(&role) {
                let (status, text) = api.call(method, &path, Some(&tokens[token]), body.clone());
                assert_eq!(status, 403, "{method} {path} by contoso's {role}: {text}");
                refused += 1;
            }
        }
    }
    assert!(refused > 100, "{refused}");
    assert_eq!(
        snapshot(&api),
        before,
        "a refused request changed something"
    );
    assert_eq!(api.json("GET", "/api/v1/audit", boot, None), audit_before);

    // A misspelt field is refused naming it, not silently ignored.
    let (status, text) = api.call(
        "PATCH",
        "/api/v1/tenants/contoso/connectors/partner",
        Some(boot),
        Some(json!({"sender_ip": ["192.0.2.78/32"]})),
    );
    assert!((400..500).contains(&status), "{status} {text}");
    assert!(text.contains("sender_ip"), "{text}");

    // The roles that may, can; and the change is audited with who, from where, before and after.
    api.json(
        "PATCH",
        "/api/v1/tenants/contoso/connectors/partner",
        &tokens["con-flow"],
        Some(json!({"sender_ips": ["192.0.2.78/32"]})),
    );
    api.json(
        "PATCH",
        "/api/v1/tenants/contoso/org",
        &tokens["con-config"],
        Some(json!({"reject_direct_send": "on"})),
    );
    let audit = api.json(
        "GET",
        "/api/v1/tenants/contoso/audit",
        &tokens["con-viewer"],
        None,
    );
    let audit = audit.as_array().unwrap();
    // Newest first.
    let last = &audit[0];
    assert_eq!(last["action"], "PATCH /api/v1/tenants/{t}/org");
    assert!(
        last["principal"].as_str().unwrap().contains("con-config"),
        "{last}"
    );
    assert_eq!(last["address"], "127.0.0.1");
    assert_eq!(last["tenant"], "contoso");
    assert_eq!(
        last["before"]["tenant"]["settings"]["reject_direct_send"], "off",
        "{last}"
    );
    assert_eq!(
        last["after"]["tenant"]["settings"]["reject_direct_send"], "on",
        "{last}"
    );
    let flow = &audit[1];
    assert_eq!(flow["action"], "PATCH /api/v1/tenants/{t}/connectors/{c}");
    assert!(flow["before"].to_string().contains("192.0.2.77"));
    assert!(flow["after"].to_string().contains("192.0.2.78"));
    // The tenant's log starts with its creation and shows the tokens granted over it, never a
    // token itself.
    let oldest = &audit[audit.len() - 1];
    assert_eq!(oldest["action"], "POST /api/v1/tenants", "{oldest}");
    assert_eq!(oldest["after"]["tenant"]["name"], "contoso");
    let grant = audit
        .iter()
        .find(|e| e["action"] == "POST /api/v1/tokens" && e["after"]["token"]["name"] == "con-flow")
        .expect("token creation in the tenant's audit log");
    assert_eq!(grant["after"]["token"]["role"], "mail-flow");
    let all = api.json("GET", "/api/v1/audit", boot, None).to_string();
    for t in tokens.values() {
        assert!(!all.contains(t.as_str()), "the audit log leaks a token");
    }
    // fabrikam's audit shows nothing of contoso.
    let fab = api.json(
        "GET",
        "/api/v1/tenants/fabrikam/audit",
        &tokens["fab-admin"],
        None,
    );
    assert!(!fab.to_string().contains("contoso"), "{fab}");

    // Revoked and expired tokens stop working at once.
    let id = tokens["con-viewer"].split('_').nth(1).unwrap().to_string();
    api.json("DELETE", &format!("/api/v1/tokens/{id}"), boot, None);
    let newest = &api.json("GET", "/api/v1/audit", boot, None)[0];
    assert_eq!(newest["action"], "DELETE /api/v1/tokens/{id}");
    assert_eq!(newest["after"]["revoked_token"], id.as_str());
    let (status, _) = api.call(
        "GET",
        "/api/v1/tenants/contoso/trace",
        Some(&tokens["con-viewer"]),
        None,
    );
    assert_eq!(status, 401);
    let short = api.json(
        "POST",
        "/api/v1/tokens",
        boot,
        Some(json!({"name": "short", "role": "viewer", "tenant": "contoso", "expires": "3s"})),
    );
    // Used (and so remembered) while valid, refused once expired.
    let (status, _) = api.call(
        "GET",
        "/api/v1/tenants/contoso/trace",
        short["token"].as_str(),
        None,
    );
    assert_eq!(status, 200);
    std::thread::sleep(std::time::Duration::from_millis(4100));
    let (status, _) = api.call(
        "GET",
        "/api/v1/tenants/contoso/trace",
        short["token"].as_str(),
        None,
    );
    assert_eq!(status, 401);
}

/// Every `$ref` in `v` points at an existing component.
fn refs_resolve(doc: &Value, v: &Value, path: &str) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                let target = r.strip_prefix("#").and_then(|p| doc.pointer(p));
                assert!(target.is_some(), "{path}: dangling $ref {r}");
            }
            for (k, v) in m {
                refs_resolve(doc, v, &format!("{path}/{k}"));
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs_resolve(doc, v, path)),
        _ => {}
    }
}

#[test]
fn openapi_describes_exactly_the_enforced_routes() {
    let gw = Gateway::start("");
    let boot = std::fs::read_to_string(gw.data().join("admin.token")).unwrap();
    let api = Api::new(&gw);
    // Open, like the probes: it describes the API, not any tenant's data.
    let (status, text) = api.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200, "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    refs_resolve(&doc, &doc, "");

    let routes = api.json("GET", "/api/v1/routes", boot.trim(), None);
    let mut enforced: Vec<(String, String, Vec<String>)> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let roles = r["roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            (
                r["method"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
                roles,
            )
        })
        .collect();
    enforced.sort();
    let mut described = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if path == "/readyz" {
                assert!(op.get("security").is_none(), "the probe is open");
                continue;
            }
            described.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    described.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        enforced.iter().map(|(m, p, _)| (m, p)).collect::<Vec<_>>(),
        described.iter().map(|(m, p, _)| (m, p)).collect::<Vec<_>>(),
        "the description and the route table differ"
    );
    assert_eq!(enforced.len(), 53);
    for ((method, path, roles), (_, _, op)) in enforced.iter().zip(&described) {
        let what = format!("{method} {path}");
        assert_eq!(op["security"], json!([{"bearer": []}]), "{what}");
        for code in ["200", "201", "204"] {
            if let Some(r) = op["responses"].get(code) {
                assert!(r["description"].is_string(), "{what} {code}");
            }
        }
        for code in ["401", "403", "default"] {
            assert_eq!(
                op["responses"][code]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ApiError",
                "{what} {code}"
            );
        }
        if path.contains('{') {
            assert!(op["responses"].get("404").is_some(), "{what} 404");
        }
        // The roles the table admits are named in the description.
        let description = op["description"].as_str().unwrap_or_default();
        for role in roles {
            assert!(
                description.contains(role.as_str()),
                "{what}: {role} not in {description:?}"
            );
        }
        // Bodies and parameters are described.
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        for seg in path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(['{', '}']);
            assert!(
                params.contains(&name),
                "{what}: path parameter {name} undescribed"
            );
        }
        if ["POST", "PUT", "PATCH"].contains(&method.as_str()) && !path.ends_with("/retry") {
            assert!(op.get("requestBody").is_some(), "{what}: no request body");
        }
    }

    // A body that is not an object is refused as JSON naming the problem (serde alone would
    // build a patch from an array and change nothing).
    api.json(
        "POST",
        "/api/v1/tenants",
        boot.trim(),
        Some(json!({"name": "contoso"})),
    );
    let (status, text) = api.call(
        "PATCH",
        "/api/v1/tenants/contoso/org",
        Some(boot.trim()),
        Some(json!([null, null])),
    );
    assert_eq!(status, 422, "{text}");
    let err: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(err["error"], "request body: expected a JSON object");
    let (status, text) = api.call(
        "GET",
        "/api/v1/tenants/contoso/trace?limit=0",
        Some(boot.trim()),
        None,
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("limit 0: expected 1 to 100000"), "{text}");
    let (status, text) = api.call(
        "GET",
        "/api/v1/tenants/contoso/trace?limit=x",
        Some(boot.trim()),
        None,
    );
    assert_eq!(status, 400, "{text}");
    assert!(serde_json::from_str::<Value>(&text).unwrap()["error"].is_string());
    // A queue id that cannot name a spool file is simply not found.
    let long = "x".repeat(400);
    let (status, _) = api.call(
        "GET",
        &format!("/api/v1/queue/{long}"),
        Some(boot.trim()),
        None,
    );
    assert_eq!(status, 404);
}

#[test]
fn cli_creates_scoped_tokens_and_shows_the_audit_log() {
    let gw = Gateway::start("[tenants]\nlock_reject_direct_send = true\n");
    gw.ok(&["tenant", "add", "contoso"]);
    gw.ok(&["tenant", "add", "fabrikam"]);

    // Bad values exit 2 naming the value, and create nothing.
    for (args, named) in [
        (
            vec![
                "token", "create", "--name", "x", "--role", "root", "--tenant", "contoso",
            ],
            "\"root\"",
        ),
        (
            vec!["token", "create", "--name", "x", "--role", "viewer"],
            "--tenant",
        ),
        (
            vec![
                "token",
                "create",
                "--name",
                "x",
                "--role",
                "viewer",
                "--tenant",
                "contoso",
                "--expires",
                "soon",
            ],
            "\"soon\"",
        ),
        (
            vec!["audit", "--since", "yesterday-ish"],
            "\"yesterday-ish\"",
        ),
    ] {
        let out = gw.cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(named),
            "{args:?}: {out:?}"
        );
    }
    assert!(gw.ok(&["token", "list"]).contains("no API tokens"));

    let created = gw.ok(&[
        "token",
        "create",
        "--name",
        "contoso-ops",
        "--role",
        "org-admin",
        "--tenant",
        "contoso",
        "--expires",
        "90d",
    ]);
    let token = created
        .split_whitespace()
        .find(|w| w.starts_with("pc_"))
        .expect(&created)
        .to_string();
    let list = gw.ok(&["token", "list"]);
    assert!(
        list.contains("contoso-ops") && list.contains("org-admin") && list.contains("active"),
        "{list}"
    );
    assert!(!list.contains(&token));

    // The tenant's administrator manages its own tenant, not the other one, and not the lock.
    gw.ok(&[
        "--token",
        &token,
        "domain",
        "add",
        "contoso.com",
        "--tenant",
        "contoso",
    ]);
    let out = gw.cli(&[
        "--token",
        &token,
        "domain",
        "add",
        "fabrikam.com",
        "--tenant",
        "fabrikam",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403")
            || String::from_utf8_lossy(&out.stderr).contains("may not"),
        "{out:?}"
    );
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "on",
    ]);
    let out = gw.cli(&[
        "--token",
        &token,
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "off",
    ]);
    assert!(!out.status.success(), "the lock binds tenant roles");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("locked"),
        "{out:?}"
    );
    // The operator may, and that is audited.
    gw.ok(&[
        "org",
        "set",
        "--tenant",
        "contoso",
        "--reject-direct-send",
        "off",
    ]);

    let audit = gw.ok(&["audit", "--tenant", "contoso", "--since", "1h"]);
    let lines: Vec<&str> = audit.lines().collect();
    assert!(
        lines[0].contains("PATCH /api/v1/tenants/{t}/org") && lines[0].contains("bootstrap"),
        "{audit}"
    );
    assert!(
        audit.contains("tenant.settings.reject_direct_send: \"on\" -> \"off\""),
        "{audit}"
    );
    assert!(
        audit.contains("POST /api/v1/tenants/{t}/domains") && audit.contains("contoso-ops"),
        "{audit}"
    );
    let json: Value =
        serde_json::from_str(&gw.ok(&["audit", "--tenant", "contoso", "--json"])).unwrap();
    assert_eq!(
        json[0]["after"]["tenant"]["settings"]["reject_direct_send"],
        "off"
    );
    // A tenant token may not read the whole log.
    assert!(!gw.cli(&["--token", &token, "audit"]).status.success());

    let id = token.split('_').nth(1).unwrap();
    gw.ok(&["token", "revoke", id]);
    assert!(gw.ok(&["token", "list"]).contains("revoked"));
    assert!(
        !gw.cli(&["--token", &token, "tenant", "show", "contoso"])
            .status
            .success()
    );
}

/// A certificate for `name` (self-signed) written as PEM to `cert`/`key`; returns its DER.
fn write_cert(name: &str, cert: &std::path::Path, key: &std::path::Path) -> Vec<u8> {
    let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    std::fs::write(cert, c.cert.pem()).unwrap();
    std::fs::write(key, c.signing_key.serialize_pem()).unwrap();
    c.cert.der().to_vec()
}

#[tokio::test]
async fn sighup_reloads_certificate_and_smtp_limits_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("mx.crt"), dir.path().join("mx.key"));
    let old = write_cert("mx.test.example", &cert, &key);
    let config = format!(
        "[smtp]\nmax_message_size = 1000000\n[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let toml = dir.path().join("portcullis.toml");
    let gw = Gateway::start_in(dir, &config);
    let hup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &gw.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };

    let mut before = common::session(gw.smtp, "127.0.0.1").await;
    before.starttls(None).await;
    assert_eq!(before.peer_certificate(), Some(old.clone()));

    // The SIZE limit shows in MAIL FROM's answer to a declared size (RFC 1870).
    async fn size_5000(s: &mut common::Smtp) -> String {
        let r = s.cmd("MAIL FROM:<a@sender.example> SIZE=5000").await;
        assert!(s.cmd("RSET").await.starts_with("250"));
        r
    }
    assert!(
        before
            .cmd("EHLO client.test.example")
            .await
            .starts_with("250")
    );
    let r = size_5000(&mut before).await;
    assert!(r.starts_with("250"), "{r}");

    let new = write_cert("mx.test.example", &cert, &key);
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replace("max_message_size = 1000000", "max_message_size = 2000"),
    )
    .unwrap();
    hup();
    // The reload is asynchronous: wait until a new session sees the new certificate.
    let mut seen = None;
    for _ in 0..50 {
        let mut s = common::session(gw.smtp, "127.0.0.2").await;
        s.starttls(None).await;
        seen = s.peer_certificate();
        if seen.as_ref() == Some(&new) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen,
        Some(new.clone()),
        "a new STARTTLS session after SIGHUP uses the renewed certificate"
    );
    let mut s = common::session(gw.smtp, "127.0.0.2").await;
    let r = size_5000(&mut s).await;
    assert!(
        r.starts_with("552"),
        "new sessions get the reloaded [smtp] limits: {r}"
    );
    // The session opened before the reload is still alive on its old certificate.
    assert!(
        before
            .cmd("EHLO client.test.example")
            .await
            .starts_with("250")
    );
    assert!(before.cmd("NOOP").await.starts_with("250"));
    // ... and the limits it started with.
    assert!(size_5000(&mut before).await.starts_with("250"));

    // A broken renewal or a bad file is refused; the gateway keeps the last good configuration.
    std::fs::write(&cert, "not a certificate").unwrap();
    hup();
    // Replaced atomically: that reload may still be reading the file, and must see either the
    // whole old text or the whole new one (both leave the running configuration as it is).
    let text = std::fs::read_to_string(&toml).unwrap();
    let tmp = toml.with_extension("new");
    std::fs::write(
        &tmp,
        text.replace("max_message_size = 2000", "max_message_size = \"big\""),
    )
    .unwrap();
    std::fs::rename(&tmp, &toml).unwrap();
    hup();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut s = common::session(gw.smtp, "127.0.0.3").await;
    s.starttls(None).await;
    assert_eq!(s.peer_certificate(), Some(new));
    assert!(s.cmd("EHLO client.test.example").await.starts_with("250"));
    assert!(size_5000(&mut s).await.starts_with("552"));
}

fn hup(gw: &Gateway) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn admin_api_over_https_with_a_reloadable_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("admin.crt"), dir.path().join("admin.key"));
    let old = dir.path().join("old.crt");
    write_cert("127.0.0.1", &cert, &key);
    std::fs::copy(&cert, &old).unwrap();
    let config = format!("[admin]\ntls_cert_file = {cert:?}\ntls_key_file = {key:?}\n");
    let gw = Gateway::start_in(dir, &config);
    assert!(gw.admin.starts_with("https://127.0.0.1:"), "{}", gw.admin);
    let ca = |path: &std::path::Path| ["--server-ca".to_string(), path.display().to_string()];
    let with = |args: &[&str], ca: &[String; 2]| {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(ca.iter().map(String::as_str));
        gw.cli(&a)
    };

    // Unknown certificate: the CLI refuses to talk (and sends no token).
    let out = gw.cli(&["tenant", "add", "contoso"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the gateway at https://"),
        "{err}"
    );
    // Trusting it with --server-ca works; a file without a certificate is a bad value.
    let out = with(&["tenant", "add", "contoso"], &ca(&old));
    assert!(out.status.success(), "{out:?}");
    let empty = gw.data().join("empty.pem");
    std::fs::write(&empty, "no pem here\n").unwrap();
    let out = with(&["tenant", "list"], &ca(&empty));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--server-ca"),
        "{out:?}"
    );

    // Plain HTTP on the HTTPS port gets no answer.
    let port = gw.admin.rsplit(':').next().unwrap();
    let mut tcp = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    use std::io::{Read, Write};
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "plain HTTP was answered"
    );

    // The change over HTTPS is audited with the client's address.
    let audit = with(&["audit", "--json"], &ca(&old));
    assert!(audit.status.success(), "{audit:?}");
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.contains("\"127.0.0.1\""), "{audit}");

    // A renewed certificate (new key) applies to new connections after SIGHUP.
    write_cert("127.0.0.1", &cert, &key);
    hup(&gw);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = with(&["tenant", "list"], &ca(&cert));
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed admin certificate was not served after SIGHUP: {out:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = with(&["tenant", "list"], &ca(&old));
    assert_eq!(
        out.status.code(),
        Some(1),
        "the old certificate is still served"
    );
    // A broken certificate on reload changes nothing: the renewed one is still served.
    let renewed = gw.data().join("renewed.crt");
    std::fs::copy(&cert, &renewed).unwrap();
    std::fs::write(&cert, "garbage").unwrap();
    hup(&gw);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = with(&["tenant", "list"], &ca(&renewed));
    assert!(out.status.success(), "{out:?}");
}
