"""The web console in a real browser: headless Chromium (Debian's) driven by Playwright, against
the running gateway binary, with real SMTP (smtplib) for the traffic the pages show.

Run by tests/interop/console.sh, which starts the gateway and passes its addresses:
  console_test.py SMTP_PORT ADMIN_URL DATA_DIR SCREENSHOT_DIR
Each check prints "ok - ..."; the first failure raises (exit status 1) with what was seen.
"""

import http.client
import json
import os
import re
import smtplib
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage

from playwright.sync_api import sync_playwright

SMTP_PORT = int(sys.argv[1])
ADMIN = sys.argv[2].rstrip("/")
DATA = sys.argv[3]
SHOTS = sys.argv[4]
BIN = os.environ["PORTCULLIS_BIN"]
TENANT = "acme"
BOOTSTRAP = open(os.path.join(DATA, "admin.token")).read().strip()
DS_REPLY = "5.7.68"
PASSED = 0

# Payloads an attacker controls: a subject and a From display name.
XSS_SUBJECT = 'hold-me <script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2">'
XSS_NAME = '<img src=x onerror="window.__pwned = 3">'


def ok(what):
    global PASSED
    PASSED += 1
    print(f"ok - {what}", flush=True)


def check(cond, what, seen=""):
    if not cond:
        raise AssertionError(f"FAILED: {what}\n--- seen:\n{seen}")
    ok(what)


def cli(*args):
    env = dict(os.environ, PORTCULLIS_SERVER=ADMIN, PORTCULLIS_DATA_DIR=DATA, NO_COLOR="1")
    r = subprocess.run([BIN, *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"portcullis {' '.join(args)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r.stdout


def api(path, token=BOOTSTRAP, method="GET", body=None):
    req = urllib.request.Request(ADMIN + path, method=method,
                                 headers={"Authorization": f"Bearer {token}"})
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req) as r:
            data = r.read()
            return r.status, (json.loads(data) if data else None)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def send(source, mail_from, subject, from_header=None, rcpt=f"alice@{TENANT}.example"):
    """One message over SMTP from 127.0.0.x; the refusal (code, text) or None when accepted."""
    m = EmailMessage()
    m["From"] = from_header or mail_from
    m["To"] = rcpt
    m["Subject"] = subject
    m["Message-ID"] = f"<{abs(hash((source, subject)))}@test.example>"
    m.set_content("Hello from the console test.\n<b>not rendered</b>\n")
    with smtplib.SMTP("127.0.0.1", SMTP_PORT, source_address=(source, 0), timeout=20) as s:
        s.ehlo("client.test.example")
        try:
            s.send_message(m, from_addr=mail_from, to_addrs=[rcpt])
        except smtplib.SMTPRecipientsRefused as e:
            code, text = list(e.recipients.values())[0]
            return code, text.decode()
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
    return None


def wait_trace(predicate, what):
    """The trace writer batches: poll the API until a record satisfies `predicate`."""
    import time
    for _ in range(100):
        status, records = api(f"/api/v1/tenants/{TENANT}/trace?limit=100")
        if status == 200 and any(predicate(r) for r in records):
            return
        time.sleep(0.1)
    raise AssertionError(f"no trace record: {what}")


# --- the tenant, its rule, its traffic --------------------------------------------------------
cli("tenant", "add", TENANT)
cli("domain", "add", f"{TENANT}.example", "--tenant", TENANT)
cli("org", "set", "--tenant", TENANT, "--reject-direct-send", "on")
cli("rule", "add", "hold", "--tenant", TENANT, "--priority", "0", "--subject-contains", "hold-me",
    "--quarantine")
viewer = re.search(r"pc_[0-9a-f]+_[0-9a-f]+", cli("token", "create", "--name", "auditor", "--role",
                                                   "viewer", "--tenant", TENANT)).group(0)

r = send("127.0.0.5", "news@partner.example", XSS_SUBJECT, f'"{XSS_NAME}" <news@partner.example>')
check(r is None, "a message from outside is accepted (and held by the rule)", r)
r = send("127.0.0.7", f"ceo@{TENANT}.example", "Invoice due")
check(r is not None and r[0] == 550 and DS_REPLY in r[1], "a spoof from 127.0.0.7 is refused with 5.7.68", r)
for i in range(3):
    send("127.0.0.8", f"billing@{TENANT}.example", f"Reminder {i}")
wait_trace(lambda rec: rec["client_ip"] == "127.0.0.7", "the refused spoof")
wait_trace(lambda rec: rec["status"] == "quarantined", "the quarantined message")

# --- the browser ------------------------------------------------------------------------------
os.makedirs(SHOTS, exist_ok=True)
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                args=["--no-sandbox", "--disable-dev-shm-usage"])
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors = []
    page.on("console", lambda m: errors.append(f"{page.url}: console {m.type}: {m.text[:90]}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

    def shot(name, full=True):
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=full)

    # Logging in.
    page.goto(ADMIN + "/")
    check(page.url.startswith(ADMIN + "/login"), "an anonymous visit goes to the login form", page.url)
    shot("login")
    page.fill("#token", "pc_00000000_wrong")
    page.click("button[type=submit]")
    check("not valid" in page.inner_text("main"), "a wrong token is refused on the form", page.inner_text("main"))
    page.fill("#token", BOOTSTRAP)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/t/acme/overview$"))
    check(page.inner_text("h1") == f"Overview of {TENANT}", "the bootstrap token logs in to the overview",
          page.inner_text("h1"))
    cookie = next(c for c in ctx.cookies() if c["name"] == "portcullis_session")
    check(cookie["httpOnly"] and cookie["sameSite"] == "Strict", "the session cookie is HttpOnly, SameSite=Strict",
          cookie)

    # The overview's numbers are the API's.
    status, daily = api(f"/api/v1/tenants/{TENANT}/reports/daily?since=30d")
    check(status == 200, "the daily report answers", daily)
    cards = {c.inner_text().split("\n")[1].strip(): int(c.inner_text().split("\n")[0])
             for c in page.query_selector_all("#totals .card")}
    want = {"Messages": sum(daily["totals"]["statuses"].values()), **daily["totals"]["statuses"]}
    check(all(cards.get(k, 0) == v for k, v in want.items()) and cards["Messages"] == 5,
          "the overview's totals equal the API's daily report (5 messages)", f"page {cards}\napi {want}")
    page.wait_for_selector(".chart canvas")
    check(True, "the overview draws its charts (uPlot)")
    shot("overview")

    # Message trace: attacker-controlled text is shown as text, no script runs.
    page.click("nav >> text=Message trace")
    page.wait_for_url(re.compile(r".*/t/acme/trace$"))
    body = page.inner_text("#results")
    check("<script>window.__pwned = 1</script>" in body, "the trace shows the subject's markup as text", body)
    page.fill("#from_ip", "127.0.0.7")
    page.click("form.search button[type=submit]")
    page.wait_for_url(re.compile(r".*from_ip=127\.0\.0\.7.*"))
    rows = page.query_selector_all("#results tbody tr")
    check(len(rows) == 1 and "rejected" in rows[0].inner_text(), "the client IP filter finds the refused spoof",
          page.inner_text("#results"))
    shot("trace")
    rows[0].query_selector("a").click()
    page.wait_for_selector("ol.timeline")
    timeline = page.inner_text("ol.timeline")
    check("REJECT" in timeline and DS_REPLY in page.inner_text("main"),
          "a record's detail shows its events as a timeline with the 5.7.68 reply", timeline)
    shot("trace-detail")

    # Quarantine: preview as text, release once.
    page.click("nav >> text=Quarantine")
    page.wait_for_url(re.compile(r".*/t/acme/quarantine$"))
    page.wait_for_selector("main tbody tr")
    check("<script>window.__pwned = 1</script>" in page.inner_text("main"),
          "the quarantine list shows the subject's markup as text", page.content())
    shot("quarantine")
    page.click("main tbody a")
    page.wait_for_selector("text=Release to its recipients")
    check("<b>not rendered</b>" in page.inner_text("main") and page.query_selector("main b") is None,
          "the preview shows the message's text, its markup not rendered", page.inner_text("main"))
    check(XSS_NAME in page.inner_text("main") and page.query_selector("main img") is None,
          "the preview's headers show the From name's markup as text", page.inner_text("main"))
    shot("quarantine-preview")
    release_url = page.url + "/release"
    csrf = page.get_attribute('meta[name="csrf-token"]', "content")
    page.click("text=Release to its recipients")
    page.wait_for_selector(".notice.ok")
    check("released" in page.inner_text(".notice.ok"), "release says the message was released",
          page.inner_text("main"))
    check(page.query_selector("text=Release to its recipients") is None, "a released message offers no release")
    again = page.request.post(release_url, form={"csrf": csrf}, max_redirects=0)
    check(again.status == 409 and "already released" in again.text(),
          "a second release is refused, saying when the first was", f"{again.status} {again.text()[:400]}")
    check(page.evaluate("window.__pwned") is None, "no injected script ran (window.__pwned unset)")

    # A connector from a Direct Send source; the next spoof from it is accepted.
    page.click("nav >> text=Direct Send")
    page.wait_for_url(re.compile(r".*/t/acme/direct-send$"))
    check("127.0.0.7" in page.inner_text("main"), "the Direct Send report lists the spoofing source",
          page.inner_text("main"))
    shot("direct-send")
    page.click('a[href*="source=127.0.0.7"]')
    page.wait_for_selector("text=This will be created")
    facts = page.inner_text("table.facts")
    check("127.0.0.7" in facts, "the confirmation shows exactly the sender IP to be vouched for", facts)
    shot("direct-send-connector")
    page.click("form.actions button[type=submit]")
    page.wait_for_selector(".notice.ok")
    check("connector was created" in page.inner_text(".notice.ok"), "the connector is created",
          page.inner_text("main"))
    r = send("127.0.0.7", f"ceo@{TENANT}.example", "Invoice due, through the connector")
    check(r is None, "the next message from 127.0.0.7 is accepted", r)

    # Settings: audit mode, with its consequence stated; the audit log records the change.
    page.click("nav >> text=Settings")
    page.wait_for_url(re.compile(r".*/t/acme/settings$"))
    check("550 5.7.68" in page.inner_text("fieldset.field"), "the settings state what each mode does",
          page.inner_text("main"))
    page.check('input[name=reject_direct_send][value=audit]')
    page.click("text=Save settings")
    page.wait_for_selector(".notice.ok")
    status, org = api(f"/api/v1/tenants/{TENANT}/org")
    check(org["reject_direct_send"] == "audit", "saving the settings sets reject direct send to audit", org)
    shot("settings")

    # Connectors: the API's validation beside the field; then a valid one.
    page.click("nav >> text=Connectors")
    page.wait_for_url(re.compile(r".*/t/acme/connectors.*"))
    page.fill("#name", "printers")
    page.fill("#sender_ips", "10.1.2.300")
    page.click("text=Create connector")
    page.wait_for_selector("#sender_ips-error")
    err = page.inner_text("#sender_ips-error")
    check("10.1.2.300" in err and page.get_attribute("#sender_ips", "aria-invalid") == "true",
          "a bad sender IP is refused, the error beside the field", page.inner_text("main"))
    check(page.input_value("#name") == "printers", "the form keeps what was typed")
    page.fill("#sender_ips", "10.1.2.0/24")
    page.click("text=Create connector")
    page.wait_for_selector(".notice.ok")
    status, c = api(f"/api/v1/tenants/{TENANT}/connectors/printers")
    check(status == 200 and c["sender_ips"] == ["10.1.2.0/24"], "the connector is created as typed", c)
    shot("connectors")
    page.click("main >> text=printers")
    page.wait_for_selector("text=Save connector")
    page.check("#require_tls")
    page.click("text=Save connector")
    page.wait_for_selector(".notice.ok")
    status, c = api(f"/api/v1/tenants/{TENANT}/connectors/printers")
    check(c["require_tls"] is True, "editing a connector saves it", c)
    shot("connector-edit", full=False)

    # Domains.
    page.click("nav >> text=Domains")
    page.wait_for_url(re.compile(r".*/t/acme/domains.*"))
    page.fill("#domain", "acme-mail.example")
    page.click("text=Add domain")
    page.wait_for_selector(".notice.ok")
    check("acme-mail.example" in page.inner_text("main table"), "a domain is added", page.inner_text("main"))
    shot("domains")

    # Rules: created from the form, disabled, tested against a pasted message.
    page.click("nav >> text=Rules")
    page.wait_for_url(re.compile(r".*/t/acme/rules.*"))
    page.fill("#name", "tag-invoices")
    page.fill("#priority", "5")
    page.fill("#subject_contains", "invoice")
    page.select_option("#action", "prepend_subject")
    page.fill("#argument", "[ext]")
    page.click("text=Create rule")
    page.wait_for_selector(".notice.ok")
    status, rule = api(f"/api/v1/tenants/{TENANT}/rules/tag-invoices")
    check(status == 200 and rule["conditions"]["subject_contains"] == ["invoice"] and rule["priority"] == 5,
          "a rule is created from the form", rule)
    page.fill("#ip", "192.0.2.1")
    page.fill("#mail_from", "billing@vendor.example")
    page.fill("#rcpt", f"alice@{TENANT}.example")
    page.fill("#eml", "From: billing@vendor.example\nSubject: Your invoice\n\nPay.\n")
    page.click("button:text('Test')")
    page.wait_for_selector("text=Result:")
    check("tag-invoices" in page.inner_text("main") and "match" in page.inner_text("main"),
          "testing a pasted message shows the rule that matches", page.inner_text("main"))
    shot("rules")
    page.click("tr:has-text('tag-invoices') >> text=Disable")
    page.wait_for_selector(".notice.ok")
    status, rule = api(f"/api/v1/tenants/{TENANT}/rules/tag-invoices")
    check(rule["enabled"] is False, "a rule is disabled with one click", rule)

    # The audit log shows the console's changes, by the logged-in principal.
    page.click("nav >> text=Audit log")
    page.wait_for_url(re.compile(r".*/t/acme/audit.*"))
    log = page.inner_text("main")
    check("PATCH /api/v1/tenants/{t}/org" in log and "bootstrap@" in log,
          "the audit log records the console's changes as the principal's", log[:600])
    shot("audit")

    # Operator: a token is shown once; the queue; all tenants.
    page.click("nav >> text=Tokens")
    page.wait_for_url(re.compile(r".*/operator/tokens.*"))
    page.fill("#name", "deploy")
    page.select_option("#role", "mail-flow")
    page.select_option("#tenant", TENANT)
    page.click("text=Create token")
    page.wait_for_selector("#new-token")
    new_token = page.inner_text("#new-token").strip()
    status, _ = api(f"/api/v1/tenants/{TENANT}/connectors", token=new_token)
    check(new_token.startswith("pc_") and status == 200, "a created token is shown once and works", new_token)
    shot("tokens")
    page.goto(f"{ADMIN}/operator/tokens")
    check(new_token not in page.content(), "the token is not shown again")
    page.click("nav >> text=Queue")
    page.wait_for_url(re.compile(r".*/operator/queue.*"))
    shot("queue")
    page.click("nav >> text=Tenants")
    page.wait_for_url(re.compile(r".*/operator/tenants.*"))
    check(TENANT in page.inner_text("main table"), "the operator's tenant list", page.inner_text("main"))
    shot("tenants")

    # CSRF: a change without the form's token is refused; the cookie is no API token.
    forged = page.request.post(release_url, form={"csrf": "0" * 64}, max_redirects=0)
    check(forged.status == 403, "a POST without the session's CSRF token gets 403", forged.status)
    status, _ = api(f"/api/v1/tenants/{TENANT}/trace", token=cookie["value"])
    check(status == 401, "the session cookie is refused as an API token", status)

    # Refusals this test asks for on purpose (the wrong token's 401 page, the bad connector's 400)
    # are no errors; a CSP
    # violation ("Refused to ..."), a script error or a missing file is.
    errors = [e for e in errors if not re.search(r"status of (400|401|403|409|429)", e)]
    check(not errors, "no console errors, no CSP violations, no missing files on any page", "\n".join(errors))
    shot_ctx = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=ctx.storage_state())
    phone = shot_ctx.new_page()
    phone.goto(f"{ADMIN}/t/{TENANT}/overview")
    phone.screenshot(path=os.path.join(SHOTS, "overview-phone.png"), full_page=True)
    width = phone.evaluate("document.documentElement.scrollWidth")
    check(width <= 390, "the overview fits a phone's width (no sideways scrolling)", width)
    shot_ctx.close()

    # Without JavaScript everything but the charts works: search, a record, a change.
    nojs = browser.new_context(java_script_enabled=False, storage_state=ctx.storage_state())
    n = nojs.new_page()
    n.goto(f"{ADMIN}/t/{TENANT}/trace")
    n.fill("#from_ip", "127.0.0.7")
    n.click("form.search button[type=submit]")
    n.wait_for_url(re.compile(r".*from_ip=127\.0\.0\.7.*"))
    check(len(n.query_selector_all("#results tbody tr")) == 2, "without JavaScript the trace search works",
          n.inner_text("#results"))
    n.goto(f"{ADMIN}/t/{TENANT}/settings")
    n.check('input[name=reject_direct_send][value=on]')
    n.click("text=Save settings")
    n.wait_for_selector(".notice.ok")
    status, org = api(f"/api/v1/tenants/{TENANT}/org")
    check(org["reject_direct_send"] == "on", "without JavaScript a form saves", org)
    nojs.close()

    # A viewer sees and cannot change.
    vctx = browser.new_context(viewport={"width": 1280, "height": 900})
    v = vctx.new_page()
    v.goto(ADMIN + "/login")
    v.fill("#token", viewer)
    v.click("button[type=submit]")
    v.wait_for_url(re.compile(r".*/t/acme/overview$"))
    nav = v.inner_text("nav")
    check("Quarantine" not in nav and "Tenants" not in nav, "a viewer's navigation has no quarantine or operator pages", nav)
    v.goto(f"{ADMIN}/t/{TENANT}/direct-send")
    check(v.query_selector('a[href*="/direct-send/connector"]') is None, "a viewer is offered no connector creation")
    v.goto(f"{ADMIN}/t/{TENANT}/connectors")
    check(v.query_selector("main form") is None, "a viewer's connectors page has no forms", v.inner_text("main"))
    v.goto(f"{ADMIN}/t/{TENANT}/settings")
    check(v.query_selector("text=Save settings") is None and v.is_disabled("input[name=reject_direct_send] >> nth=0"),
          "a viewer's settings cannot be changed", v.inner_text("main"))
    vcsrf = v.get_attribute('meta[name="csrf-token"]', "content")
    forged = v.request.post(f"{ADMIN}/t/{TENANT}/direct-send/connector",
                            form={"csrf": vcsrf, "name": "sneaky", "sender_ips": "127.0.0.9"}, max_redirects=0)
    check(forged.status == 403, "a viewer's forged POST (with a valid CSRF token) gets 403", forged.status)
    status, conns = api(f"/api/v1/tenants/{TENANT}/connectors")
    check(all(c["name"] != "sneaky" for c in conns), "and created nothing", conns)
    forged = v.request.post(release_url, form={"csrf": vcsrf}, max_redirects=0)
    check(forged.status == 403, "a viewer cannot release from quarantine", forged.status)
    v.goto(f"{ADMIN}/t/other/overview")
    check("Not allowed" in v.inner_text("h1") or "not found" in v.inner_text("main"),
          "a tenant role cannot open another tenant's pages", v.inner_text("main"))

    # Revoking the token ends its sessions at once.
    v.goto(f"{ADMIN}/t/{TENANT}/overview")
    token_id = viewer.split("_")[1]
    status, _ = api(f"/api/v1/tokens/{token_id}", method="DELETE")
    check(status == 204, "the viewer's token is revoked", status)
    v.click("nav >> text=Message trace")
    v.wait_for_url(re.compile(r".*/login\?next=.*"))
    check(v.query_selector("#token") is not None and v.query_selector("nav") is None,
          "the revoked token's session is over: a boosted link navigates to the login page", v.url)

    # Logging out.
    page.click("header >> text=Log out")
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto(f"{ADMIN}/t/{TENANT}/overview")
    check(page.url.startswith(ADMIN + "/login"), "after logging out the pages ask for a login", page.url)
    browser.close()

# --- login attempts are limited per address (from 127.0.0.9, the others unaffected) -----------
host, port = urllib.parse.urlsplit(ADMIN).netloc.split(":")


def login_from(address, token):
    c = http.client.HTTPConnection(host, int(port), source_address=(address, 0), timeout=20)
    c.request("GET", "/login")
    r = c.getresponse()
    page = r.read().decode()
    login_cookie = re.search(r"portcullis_login=([0-9a-f]+)", r.getheader("Set-Cookie")).group(1)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    body = urllib.parse.urlencode({"csrf": csrf, "token": token, "next": "/"})
    c.request("POST", "/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"portcullis_login={login_cookie}"})
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    return r.status, text


statuses = [login_from("127.0.0.9", "pc_00000000_guess")[0] for _ in range(10)]
check(statuses == [401] * 10, "ten wrong tokens are each refused", statuses)
status, text = login_from("127.0.0.9", BOOTSTRAP)
check(status == 429 and "Too many failed logins" in text, "the eleventh attempt waits, even with the right token",
      f"{status} {text[:300]}")
status, _ = login_from("127.0.0.10", BOOTSTRAP)
check(status == 303, "another address still logs in", status)

print(f"# {PASSED} checks passed; screenshots in {SHOTS}")
