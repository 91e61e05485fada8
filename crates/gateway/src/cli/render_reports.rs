//! Human output of the reports: the Direct Send report (text and RFC 4180 CSV), connector
//! suggestions, readiness, replay and the unknown-recipients report.

use crate::api_types::{
    self, Counts, DirectSendReport, Readiness, ReplayReport, ReportSource, SuggestResponse,
};

use super::text::*;

/// Result counts, most frequent first (ties by name): `fail 3/pass 1` (`sep` "/", `kv` " "), or
/// `fail=3 pass=1` (`sep` " ", `kv` "="); "" when empty.
pub(super) fn counts_text(c: &Counts, kv: &str, sep: &str) -> String {
    let mut v: Vec<(&String, &u64)> = c.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k}{kv}{n}"))
        .collect::<Vec<_>>()
        .join(sep)
}

pub(super) fn counts_or_dash(c: &Counts) -> String {
    Some(counts_text(c, " ", "/"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".to_string())
}

pub(super) fn direct_send_text(r: &DirectSendReport) -> String {
    let s = &r.summary;
    let daily = s
        .daily
        .iter()
        .map(|(day, n)| format!("{day} {n}"))
        .collect::<Vec<_>>();
    let mut out = fields(&[
        ("tenant", r.tenant.clone()),
        ("period", format!("{} .. {}", r.since, r.until)),
        ("mode", r.mode.clone()),
        ("messages", s.messages.to_string()),
        ("distinct sources", s.sources.to_string()),
        ("would be refused by `on`", s.would_refuse.to_string()),
        (
            "delivered/audited/refused",
            format!("{}/{}/{}", s.delivered, s.audited, s.refused),
        ),
        (
            "daily",
            if daily.is_empty() {
                "-".to_string()
            } else {
                daily.join(", ")
            },
        ),
    ]);
    out = printable(&out, true);
    if r.sources.is_empty() {
        out.push_str("\n\nno direct-send traffic in this period");
        return out;
    }
    let rows = r
        .sources
        .iter()
        .map(|x| {
            [
                x.source.clone(),
                opt(&x.rdns).to_string(),
                first_and_count(x.helo.iter().map(String::as_str)),
                list_or_dash(&x.p1_domains),
                list_or_dash(&x.p2_domains),
                counts_or_dash(&x.spf),
                counts_or_dash(&x.dkim),
                counts_or_dash(&x.dmarc),
                x.tls.to_string(),
                x.messages.to_string(),
                x.recipients.to_string(),
                x.first_seen.clone(),
                x.last_seen.clone(),
                format!("{} ({:+})", x.verdict, x.score),
            ]
            .iter()
            .map(|cell| printable(cell, false))
            .collect()
        })
        .collect::<Vec<_>>();
    out.push_str("\n\n");
    out.push_str(&table(
        &[
            "SOURCE",
            "RDNS",
            "HELO",
            "P1 DOMAINS",
            "P2 DOMAINS",
            "SPF",
            "DKIM",
            "DMARC",
            "TLS",
            "MSGS",
            "RCPTS",
            "FIRST SEEN",
            "LAST SEEN",
            "VERDICT (SCORE)",
        ],
        &rows,
    ));
    out.push_str("\n\nwhy:");
    for x in &r.sources {
        out.push_str(&format!(
            "\n  {} — {} ({:+})",
            printable(&x.source, false),
            x.verdict,
            x.score
        ));
        for e in x
            .evidence
            .iter()
            .filter(|e| e.weight != 0 || e.signal == "network")
        {
            let sign = if e.weight == 0 {
                " 0".to_string()
            } else {
                format!("{:+}", e.weight)
            };
            out.push_str(&format!("\n    {sign} {}", printable(&e.detail, false)));
        }
    }
    out
}

/// `authentication +3: …; spf -2: …` — every piece of evidence, for one CSV cell (starting with
/// the signal's name, not a sign a spreadsheet would take for a formula).
fn evidence_cell(x: &ReportSource) -> String {
    x.evidence
        .iter()
        .map(|e| format!("{} {:+}: {}", e.signal, e.weight, e.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One RFC 4180 field: quoted (inner quotes doubled) when it holds a comma, a double quote, CR or
/// LF; as is otherwise.
/// One RFC 4180 field. Values a sender chose (HELO names) could start with `=`, `+`, `-` or `@`
/// and run as a formula in a spreadsheet: those get a leading `'` (OWASP's CSV-injection advice).
pub(super) fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The columns of `report direct-send --format csv`.
pub(super) const CSV_COLUMNS: &[&str] = &[
    "source",
    "ips",
    "rdns",
    "helo",
    "p1_domains",
    "p2_domains",
    "spf",
    "dkim",
    "dmarc",
    "arc",
    "tls",
    "cert_names",
    "messages",
    "recipients",
    "first_seen",
    "last_seen",
    "delivered",
    "audited",
    "refused",
    "would_refuse",
    "verdict",
    "score",
    "days",
    "evidence",
    "sample_trace_ids",
];

pub(super) fn csv_row(x: &ReportSource) -> Vec<String> {
    let counts = |c: &Counts| counts_text(c, "=", " ");
    vec![
        x.source.clone(),
        x.ips.join(" "),
        x.rdns.clone().unwrap_or_default(),
        x.helo.join(" "),
        x.p1_domains.join(" "),
        x.p2_domains.join(" "),
        counts(&x.spf),
        counts(&x.dkim),
        counts(&x.dmarc),
        counts(&x.arc),
        x.tls.to_string(),
        x.cert_names.join(" "),
        x.messages.to_string(),
        x.recipients.to_string(),
        x.first_seen.clone(),
        x.last_seen.clone(),
        x.delivered.to_string(),
        x.audited.to_string(),
        x.refused.to_string(),
        x.would_refuse.to_string(),
        x.verdict.clone(),
        x.score.to_string(),
        x.days.to_string(),
        evidence_cell(x),
        x.sample_trace_ids.join(" "),
    ]
}

/// RFC 4180: a header row, then one row per source; every line ends with CRLF.
pub(super) fn direct_send_csv(r: &DirectSendReport) -> String {
    let mut out = String::new();
    let header = CSV_COLUMNS.iter().map(|c| c.to_string());
    for row in std::iter::once(header.collect::<Vec<_>>()).chain(r.sources.iter().map(csv_row)) {
        let cells: Vec<String> = row.iter().map(|c| csv_field(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

pub(super) fn suggest_text(r: &SuggestResponse) -> String {
    let mut out = Vec::new();
    if r.connectors.is_empty() {
        out.push("no connector to suggest".to_string());
    } else {
        out.push(format!("suggested connectors ({}):", r.connectors.len()));
    }
    for c in &r.connectors {
        out.push(String::new());
        out.push(format!("  {}", c.name));
        for line in fields(&[
            ("sender ips", list_or_dash(&c.sender_ips)),
            ("cert names", list_or_dash(&c.tls_cert_names)),
            (
                "covers",
                format!(
                    "{} sources / {} messages ({})",
                    c.covers.len(),
                    c.messages,
                    list_or_dash(&c.covers)
                ),
            ),
            ("command", c.command.clone()),
        ])
        .lines()
        {
            out.push(format!("    {line}"));
        }
    }
    if let Some(a) = &r.assessment {
        out.push(String::new());
        out.push(format!(
            "{} for {}:",
            if a.recommended {
                "recommended"
            } else {
                "NOT recommended"
            },
            a.source
        ));
        out.extend(a.reasons.iter().map(|why| format!("  - {why}")));
    }
    if !r.other.is_empty() {
        out.push(String::new());
        out.push("other advice:".to_string());
        out.extend(r.other.iter().map(|o| format!("  {o}")));
    }
    out.iter()
        .map(|line| printable(line, false))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn readiness_text(r: &Readiness) -> String {
    let mut out = printable(r.assessment.trim_end(), true);
    for item in &r.items {
        let mut s = format!(
            "[{}] {} — {} messages\n    {}",
            item.verdict, item.source, item.messages, item.explanation
        );
        if let Some(cmd) = &item.command {
            s.push_str(&format!("\n    run: {cmd}"));
        }
        out.push_str("\n\n");
        out.push_str(
            &s.lines()
                .map(|line| printable(line, false))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    out
}

pub(super) fn replay_text(r: &ReplayReport) -> String {
    let mut out = format!(
        "replayed {} transactions ({} recipients) since {}: {} would change — {} newly refused, {} newly accepted",
        r.transactions, r.recipients, r.since, r.changed, r.newly_refused, r.newly_accepted
    );
    out = printable(&out, false);
    if r.changes.is_empty() {
        return out;
    }
    let rows = r
        .changes
        .iter()
        .map(|c| {
            [
                c.trace_id.clone(),
                c.received_at.clone(),
                c.client_ip.clone(),
                c.mail_from.clone(),
                c.recipient.clone(),
                format!("{} → {}", c.before, c.after),
            ]
            .iter()
            .map(|cell| printable(cell, false))
            .collect()
        })
        .collect::<Vec<_>>();
    out.push_str("\n\n");
    out.push_str(&table(
        &[
            "TRACE-ID",
            "RECEIVED",
            "IP",
            "FROM",
            "RCPT",
            "BEFORE → AFTER",
        ],
        &rows,
    ));
    if (r.changes.len() as u64) < r.changed {
        out.push_str(&format!(
            "\n(showing {} of {} changes)",
            r.changes.len(),
            r.changed
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------

pub(super) fn unknown_recipients_text(r: &api_types::UnknownRecipientsReport) -> String {
    let mut out = format!(
        "Unknown recipients refused for tenant {} since {}: {} from {} source{}\n",
        r.tenant,
        r.since,
        r.refusals,
        r.sources.len(),
        if r.sources.len() == 1 { "" } else { "s" }
    );
    if r.sources.is_empty() {
        return printable(out.trim_end(), false);
    }
    out.push_str(&format!(
        "\n{:<39} {:>8} {:>8} {:>6} {:>7}  {:<20}  {}\n",
        "SOURCE", "REFUSED", "DISTINCT", "TXNS", "CUT OFF", "LAST SEEN", "SAMPLES"
    ));
    for s in &r.sources {
        out.push_str(&format!(
            "{:<39} {:>8} {:>8} {:>6} {:>7}  {:<20}  {}\n",
            s.client_ip,
            s.refusals,
            s.distinct_recipients,
            s.transactions,
            s.cut_off,
            s.last_seen.get(..19).unwrap_or(&s.last_seen),
            s.samples.join(", ")
        ));
    }
    printable(out.trim_end(), true)
}
