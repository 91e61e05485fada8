//! The web console over HTTP, against the running binary (the browser test in
//! `tests/browser/console_test.py` drives the same pages in Chromium): a session opened with an
//! API token and ended by logout or revocation; the CSRF and origin checks on every change; the
//! role table behind every page and form; the security headers; attacker text escaped.

mod common;

use common::Gateway;

/// A browser without a browser: one cookie jar entry (the session), no redirects followed.
struct Browser {
    base: String,
    agent: ureq::Agent,
    session: Option<String>,
}

struct Page {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> String {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The value of the first `name="…" value="…"` input.
    fn input(&self, name: &str) -> String {
        let at = self
            .body
            .find(&format!("name=\"{name}\" value=\""))
            .unwrap_or_else(|| panic!("no input {name} in {}", self.body));
        let rest = &self.body[at + name.len() + 15..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl Browser {
    fn new(gw: &Gateway) -> Browser {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Browser {
            base: gw.admin.clone(),
            agent,
            session: None,
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Page {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(s) = &self.session {
            req = req.header("Cookie", format!("portcullis_session={s}"));
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        if method != "GET" {
            req = req.header("Content-Type", "application/x-www-form-urlencoded");
        }
        let mut resp = self.agent.run(req.body(body).unwrap()).unwrap();
        Page {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str) -> Page {
        self.request("GET", path, &[], &[])
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.request("POST", path, form, &[])
    }

    /// Logs in with `token`; the answer to the login form.
    fn log_in(&mut self, token: &str) -> Page {
        let form = self.get("/login");
        let cookie = form.header("set-cookie");
        let login = cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("portcullis_login=")
            .to_string();
        let csrf = form.input("csrf");
        let answer = self.request(
            "POST",
            "/login",
            &[("csrf", &csrf), ("token", token), ("next", "/")],
            &[("Cookie", &format!("portcullis_login={login}"))],
        );
        let set = answer.header("set-cookie");
        if let Some(v) = set.strip_prefix("portcullis_session=") {
            self.session = Some(v.split(';').next().unwrap().to_string());
        }
        answer
    }

    fn csrf(&self) -> String {
        let page = self.get("/t/contoso/trace");
        let marker = "name=\"csrf-token\" content=\"";
        let at = page.body.find(marker).unwrap() + marker.len();
        page.body[at..at + 64].to_string()
    }
}

/// `application/x-www-form-urlencoded` of one value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn setup() -> (Gateway, String) {
    let gw = Gateway::start("");
    for t in ["contoso", "fabrikam"] {
        gw.ok(&["tenant", "add", t]);
    }
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
    let boot = std::fs::read_to_string(gw.data().join("admin.token")).unwrap();
    (gw, boot.trim().to_string())
}

#[test]
fn a_session_is_opened_by_a_token_checked_on_every_change_and_ended_by_revocation() {
    let (gw, _) = setup();
    let viewer = gw.create_token("helpdesk", "viewer", "contoso");
    let mut b = Browser::new(&gw);

    let anonymous = b.get("/t/contoso/trace");
    assert_eq!(anonymous.status, 303);
    assert_eq!(
        anonymous.header("location"),
        "/login?next=%2Ft%2Fcontoso%2Ftrace"
    );

    let form = b.get("/login");
    assert_eq!(form.status, 200);
    let csp = form.header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(form.header("x-frame-options"), "DENY");
    assert_eq!(form.header("x-content-type-options"), "nosniff");

    // The login form needs its own token (double submit) and a valid API token.
    let forged = b.post("/login", &[("token", &viewer)]);
    assert_eq!(forged.status, 403, "{}", forged.body);
    let wrong = b.log_in("pc_00000000_nottherightone");
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("not valid"), "{}", wrong.body);
    assert!(b.session.is_none());

    let ok = b.log_in(&viewer);
    assert_eq!(ok.status, 303, "{}", ok.body);
    let cookie = ok.header("set-cookie");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    let session = b.session.clone().unwrap();

    // The cookie is no API token; the store keeps only its hash.
    let api: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let status = api
        .get(format!("{}/api/v1/tenants/contoso/trace", gw.admin))
        .header("Authorization", format!("Bearer {session}"))
        .call()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 401);
    let db = std::fs::read(gw.data().join("portcullis.db")).unwrap();
    let wal = std::fs::read(gw.data().join("portcullis.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes
                .windows(session.len())
                .any(|w| w == session.as_bytes()),
            "the session id is stored in the clear"
        );
    }

    // Its tenant's pages, not another's; no forms for a viewer, and a forged change is refused
    // by the API's role table even with a valid CSRF token.
    let trace = b.get("/t/contoso/trace");
    assert_eq!(trace.status, 200, "{}", trace.body);
    assert_eq!(trace.header("cache-control"), "no-store");
    assert_eq!(b.get("/t/fabrikam/trace").status, 403);
    let settings = b.get("/t/contoso/settings");
    assert!(
        !settings.body.contains("Save settings"),
        "{}",
        settings.body
    );
    let csrf = b.csrf();
    let change = [
        ("csrf", csrf.as_str()),
        ("reject_direct_send", "on"),
        ("direct_send_scope", "envelope"),
        ("spoof_action", "junk"),
        ("recipient_validation", "off"),
    ];
    assert_eq!(b.post("/t/contoso/settings", &change).status, 403);
    assert!(
        gw.ok(&["org", "show", "--tenant", "contoso"])
            .contains("off")
    );

    // Without the session's CSRF token, or from another site: refused before any handler.
    let mut stale = change;
    stale[0] = (
        "csrf",
        "0000000000000000000000000000000000000000000000000000000000000000",
    );
    assert_eq!(b.post("/t/contoso/settings", &stale).status, 403);
    let cross = b.request(
        "POST",
        "/t/contoso/settings",
        &change,
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(cross.status, 403);
    assert!(cross.body.contains("another site"), "{}", cross.body);

    // Revoking the token ends the session at once.
    let id = viewer.split('_').nth(1).unwrap();
    gw.ok(&["token", "revoke", id]);
    let after = b.get("/t/contoso/trace");
    assert_eq!(after.status, 303);
    assert!(after.header("location").starts_with("/login"));
    // An htmx request is told to navigate (a 303 would be followed inside the page).
    let boosted = b.request("GET", "/t/contoso/trace", &[], &[("HX-Request", "true")]);
    assert_eq!(boosted.status, 200);
    assert_eq!(
        boosted.header("hx-redirect"),
        "/login?next=%2Ft%2Fcontoso%2Ftrace"
    );
}

#[test]
fn an_operator_changes_settings_through_the_api_and_the_audit_log_says_so() {
    let (gw, boot) = setup();
    let mut b = Browser::new(&gw);
    assert_eq!(b.log_in(&boot).status, 303);
    assert_eq!(b.get("/").header("location"), "/t/contoso/overview");
    let csrf = b.csrf();
    let saved = b.post(
        "/t/contoso/settings",
        &[
            ("csrf", &csrf),
            ("reject_direct_send", "audit"),
            ("direct_send_scope", "envelope"),
            ("spoof_action", "junk"),
            ("recipient_validation", "off"),
            ("honor_dmarc", "true"),
        ],
    );
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert!(
        gw.ok(&["org", "show", "--tenant", "contoso"])
            .contains("audit")
    );
    let audit = gw.ok(&["audit", "--tenant", "contoso"]);
    assert!(
        audit.contains("PATCH /api/v1/tenants/{t}/org") && audit.contains("bootstrap@"),
        "{audit}"
    );

    // A bad value is refused by the API and shown on the form, the value kept.
    let bad = b.post(
        "/t/contoso/connectors",
        &[
            ("csrf", &csrf),
            ("name", "printers"),
            ("type", "partner"),
            ("sender_ips", "10.1.2.300"),
        ],
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("id=\"sender_ips-error\""), "{}", bad.body);
    assert!(bad.body.contains("10.1.2.300"));

    // Static files are versioned, cached for a year and gzipped for a browser that accepts it;
    // pages are not compressed (they carry the CSRF token).
    let page = b.get("/t/contoso/overview");
    let at = page.body.find("/assets/htmx.min-").unwrap();
    let url = &page.body[at..at + page.body[at..].find('"').unwrap()];
    let plain = b.get(url);
    assert_eq!(plain.status, 200);
    assert_eq!(
        plain.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert!(plain.body.contains("htmx"));
    let zipped = b.request("GET", url, &[], &[("Accept-Encoding", "gzip, deflate")]);
    assert_eq!(zipped.header("content-encoding"), "gzip");
    let length = |p: &Page| p.header("content-length").parse::<usize>().unwrap();
    assert_eq!(length(&plain), plain.body.len());
    assert!(
        length(&zipped) < length(&plain) / 2,
        "{} of {}",
        length(&zipped),
        length(&plain)
    );
    let compressed_page = b.request(
        "GET",
        "/t/contoso/overview",
        &[],
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(compressed_page.header("content-encoding"), "");

    // Logging out ends the session.
    let out = b.post("/logout", &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    assert_eq!(b.get("/t/contoso/overview").status, 303);
}

#[tokio::test]
async fn attacker_controlled_text_is_shown_as_text() {
    let (gw, boot) = setup();
    let mut smtp = common::session(gw.smtp, "127.0.0.9").await;
    let subject = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    let replies = smtp
        .mail(
            "news@partner.example",
            &["alice@contoso.com"],
            &common::message("news@partner.example", "alice@contoso.com", subject),
        )
        .await;
    assert!(replies.last().unwrap().starts_with("250"), "{replies:?}");
    gw.trace_until("contoso", &[], |r| !r.is_empty());
    let mut b = Browser::new(&gw);
    b.log_in(&boot);
    let page = b.get("/t/contoso/trace");
    assert!(
        page.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>alert") && !page.body.contains("<img src=x"));
}
