//! Delivery to a downstream mailbox server over SMTP and LMTP: a server written here answers
//! each recipient as told by its local part (`reject…` → 550, `later…` → 451, else 250), can be
//! taken down and brought back, and records what it received.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Default)]
struct Received {
    /// (mail from, recipients accepted, message)
    messages: Vec<(String, Vec<String>, String)>,
    /// Replies the downstream gave to `later…` recipients (a 451 the first N times).
    later_budget: usize,
}

struct Downstream {
    port: u16,
    state: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Downstream {
    /// Starts on `port` (0: any). `lmtp`: one reply per recipient after DATA.
    async fn start(port: u16, lmtp: bool, later_budget: usize) -> Downstream {
        Self::start_on("127.0.0.1", port, lmtp, later_budget).await
    }

    async fn start_on(ip: &str, port: u16, lmtp: bool, later_budget: usize) -> Downstream {
        let listener = TcpListener::bind((ip, port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(Received {
            later_budget,
            ..Default::default()
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut r = BufReader::new(r);
                    w.write_all(b"220 downstream.test ready\r\n").await.ok();
                    let (mut from, mut rcpts) = (String::new(), Vec::<String>::new());
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_string();
                        let upper = cmd.to_ascii_uppercase();
                        let reply: String = if upper.starts_with("EHLO")
                            || upper.starts_with("LHLO")
                        {
                            "250-downstream.test\r\n250 PIPELINING\r\n".into()
                        } else if upper.starts_with("MAIL FROM:") {
                            from = cmd[10..].trim_matches(['<', '>', ' ']).to_string();
                            rcpts.clear();
                            "250 2.1.0 ok\r\n".into()
                        } else if upper.starts_with("RCPT TO:") {
                            let to = cmd[8..].trim_matches(['<', '>', ' ']).to_string();
                            if to.starts_with("reject") {
                                "550 5.1.1 no such user\r\n".into()
                            } else if to.starts_with("later") && {
                                let mut s = st.lock().unwrap();
                                let hit = s.later_budget > 0;
                                if hit {
                                    s.later_budget -= 1;
                                }
                                hit
                            } {
                                "451 4.2.0 mailbox busy, try later\r\n".into()
                            } else {
                                rcpts.push(to);
                                "250 2.1.5 ok\r\n".into()
                            }
                        } else if upper == "DATA" {
                            w.write_all(b"354 go ahead\r\n").await.ok();
                            let mut data = String::new();
                            loop {
                                line.clear();
                                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" {
                                    break;
                                }
                                data.push_str(&line);
                            }
                            let n = rcpts.len();
                            st.lock()
                                .unwrap()
                                .messages
                                .push((from.clone(), rcpts.clone(), data));
                            if lmtp {
                                "250 2.0.0 delivered\r\n".repeat(n)
                            } else {
                                "250 2.0.0 queued downstream\r\n".into()
                            }
                        } else if upper == "QUIT" {
                            w.write_all(b"221 bye\r\n").await.ok();
                            return;
                        } else {
                            "250 ok\r\n".into()
                        };
                        w.write_all(reply.as_bytes()).await.ok();
                    }
                });
            }
        });
        Downstream { port, state, task }
    }

    fn messages(&self) -> Vec<(String, Vec<String>, String)> {
        self.state.lock().unwrap().messages.clone()
    }

    fn stop(self) -> u16 {
        self.task.abort();
        self.port
    }
}

fn setup(gw: &Gateway) {
    gw.ok(&["tenant", "add", "contoso"]);
    gw.ok(&["domain", "add", "contoso.com", "--tenant", "contoso"]);
}

async fn send(gw: &Gateway, rcpts: &[&str], subject: &str) -> String {
    let mut s = session(gw.smtp, "127.0.0.1").await;
    let r = s
        .mail(
            "a@partner.example",
            rcpts,
            &message("a@partner.example", rcpts[0], subject),
        )
        .await;
    r.last().unwrap().clone()
}

async fn wait<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 10 s");
}

#[tokio::test]
async fn lmtp_gives_each_recipient_its_outcome_and_retries_the_deferred() {
    let down = Downstream::start(0, true, 1).await;
    // The sender's mail exchanger, for the bounce: partner.example MX → 127.0.0.44.
    let mx = Downstream::start_on("127.0.0.44", 0, false, 0).await;
    let gw = Gateway::start(&format!(
        "[delivery]\nfirst_retry = \"1s\"\nmx_port = {}\n",
        mx.port
    ));
    gw.dns.mx("partner.example", 10, "mx.partner.example");
    gw.dns
        .a("mx.partner.example", "127.0.0.44".parse().unwrap());
    setup(&gw);
    gw.ok(&[
        "tenant",
        "set",
        "contoso",
        "--route",
        &format!("lmtp://127.0.0.1:{}", down.port),
    ]);
    let r = send(
        &gw,
        &[
            "bob@contoso.com",
            "reject-me@contoso.com",
            "later@contoso.com",
        ],
        "three recipients",
    )
    .await;
    assert!(r.starts_with("250 2.6.0"), "{r}");
    // One transaction with the two accepted recipients; then the deferred one is retried alone.
    let got = wait(|| {
        let m = down.messages();
        (m.len() == 2).then_some(m)
    })
    .await;
    assert_eq!(got[0].1, ["bob@contoso.com"]);
    assert_eq!(got[1].1, ["later@contoso.com"]);
    assert!(got[0].2.contains("Subject: three recipients"));
    let t = gw.trace_until("contoso", &["--sender", "a@partner.example"], |v| {
        v.len() == 1 && v[0]["status"] != "pending" && v[0]["status"] != "deferred"
    });
    let rec = &t[0];
    let status = |a: &str| {
        rec["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == a)
            .unwrap()
            .clone()
    };
    assert_eq!(status("bob@contoso.com")["status"], "delivered");
    assert_eq!(status("reject-me@contoso.com")["status"], "failed");
    assert_eq!(
        status("reject-me@contoso.com")["reply"],
        "550 5.1.1 no such user"
    );
    assert_eq!(status("later@contoso.com")["status"], "delivered");
    let events: Vec<&str> = rec["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"FAIL") && events.contains(&"DEFER") && events.contains(&"DELIVER"),
        "{events:?}"
    );
    assert!(
        gw.maildir("contoso", "bob@contoso.com").is_empty(),
        "the route, not the Maildir"
    );
}

#[tokio::test]
async fn smtp_route_per_domain_and_downstream_down_then_back() {
    // Take a port, stop the server: the downstream is down when the message arrives.
    let down = Downstream::start(0, false, 0).await;
    let port = down.stop();
    let gw = Gateway::start("[delivery]\nfirst_retry = \"1s\"\nmax_retry = \"1s\"\n");
    setup(&gw);
    gw.ok(&["domain", "add", "fabrikam.example", "--tenant", "contoso"]);
    gw.ok(&[
        "domain",
        "set",
        "contoso.com",
        "--tenant",
        "contoso",
        "--route",
        &format!("smtp://127.0.0.1:{port}"),
    ]);
    let r = send(&gw, &["bob@contoso.com", "ann@fabrikam.example"], "down").await;
    assert!(r.starts_with("250 2.6.0"), "{r}");
    // fabrikam.example has no route of its own: the default Maildir; contoso.com waits.
    assert_eq!(
        gw.wait_maildir("contoso", "ann@fabrikam.example", 1).len(),
        1
    );
    let t = gw.trace_until("contoso", &["--status", "deferred"], |v| v.len() == 1);
    assert_eq!(t.len(), 1, "deferred while the downstream is down");
    assert_eq!(
        std::fs::read_dir(gw.data().join("spool")).unwrap().count(),
        2,
        "still spooled (.msg + .env)"
    );
    // Back up: the retry delivers.
    let back = Downstream::start(port, false, 0).await;
    let got = wait(|| {
        let m = back.messages();
        (m.len() == 1).then_some(m)
    })
    .await;
    assert_eq!(got[0].1, ["bob@contoso.com"]);
    assert_eq!(got[0].0, "a@partner.example");
    gw.trace_until("contoso", &["--status", "delivered"], |v| v.len() == 1);
    wait(|| (std::fs::read_dir(gw.data().join("spool")).unwrap().count() == 0).then_some(())).await;
    // Routes are validated, naming the URL.
    let out = gw.cli(&["tenant", "set", "contoso", "--route", "ftp://x:21"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ftp://x:21"));
}
