//! The fate of one tenant copy at the end of DATA, in the order ARCHITECTURE.md documents:
//! direct send (rows 3/4 remainder) → DMARC reject → mail-flow rules (a rule's reject wins, then
//! quarantine by rule or by the authentication actions) → the header edits of the rules and of
//! the authentication actions. One function for the SMTP session, `simulate` and `simulate
//! replay`, so what they show is what the session does.

use std::net::IpAddr;

use portcullis_smtp::{Reply, reply};

use crate::auth::CompAuth;
use crate::decide::{AuthAction, DataFacts, DataVerdict, decide_data, tenant_compauth};
use crate::directory::Directory;
use crate::rules::{RuleEffect, RuleFacts, RuleOutcome, apply_rules, evaluate_rules};

/// What the mail-flow rules see of the message besides the decision's facts.
#[derive(Clone, Copy, Debug)]
pub struct MessageFacts<'a> {
    /// Unix seconds (rule activation and expiry).
    pub now: i64,
    /// The client's address, canonical (IPv4-mapped IPv6 as IPv4).
    pub client_ip: IpAddr,
    /// P1 address (`None`: null sender).
    pub mail_from: Option<&'a str>,
    /// P2 `From:` address.
    pub header_from: Option<&'a str>,
    /// Header fields (name, unfolded value) in message order.
    pub headers: &'a [(String, String)],
    pub subject: Option<&'a str>,
    /// The copy's accepted recipients.
    pub recipients: &'a [String],
}

/// Why a copy is refused at the end of DATA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Row 3 at end of DATA: the deferred P1 decision (`header: false`) or the P2 check.
    DirectSend { header: bool },
    /// DMARC `p=reject` failed and the tenant honours DMARC.
    Dmarc { domain: String },
    /// A mail-flow rule's reject action.
    Rule { rule: String },
    /// Authentication could not complete (DNS failure) for anonymous mail: the whole message
    /// is deferred.
    AuthTempError,
}

/// Why a copy is held in the quarantine; its wire word is the entry's `reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuarantineReason {
    /// A mail-flow rule's quarantine action (`rule:<name>`).
    Rule(String),
    /// DMARC `p=quarantine` failed (`dmarc-quarantine`).
    Dmarc,
    /// An own-domain spoof with `spoof_action = quarantine` (`spoof`).
    Spoof,
}

impl std::fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuarantineReason::Rule(rule) => write!(f, "rule:{rule}"),
            QuarantineReason::Dmarc => f.write_str("dmarc-quarantine"),
            QuarantineReason::Spoof => f.write_str("spoof"),
        }
    }
}

/// How an accepted copy is written: to whom, and with which header changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The copy's recipients, or a rule's `redirect_to`.
    pub recipients: Vec<String>,
    /// Audit mode matched: `X-Portcullis-Direct-Send: audit`.
    pub audit_header: bool,
    /// An own-domain spoof with `spoof_action = junk`: `X-Spam-Flag: YES`, `X-Portcullis-SCL: 5`.
    pub junk: bool,
    /// The rules' header edits (`quarantine`, `reject` and `redirect_to` are taken out).
    pub edits: RuleEffect,
}

/// What becomes of the copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Refused: every recipient of the copy gets `reply`.
    Refuse { reply: Reply, why: Refusal },
    /// Held in the hosted quarantine (the client gets `250`).
    Quarantine {
        reason: QuarantineReason,
        delivery: Delivery,
    },
    /// Spooled for delivery.
    Deliver(Delivery),
}

impl Fate {
    /// The reply of a refused copy; `None` for an accepted one (quarantined or delivered).
    pub fn refusal(&self) -> Option<&Reply> {
        match self {
            Fate::Refuse { reply, .. } => Some(reply),
            _ => None,
        }
    }
}

/// The fate and everything that led to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOutcome {
    /// The authentication decision (direct send, DMARC, spoof actions).
    pub verdict: DataVerdict,
    /// The composite authentication verdict for this tenant.
    pub compauth: CompAuth,
    /// The rules that matched (and, when explained, those that did not); empty when the
    /// verdict refused the copy before the rules.
    pub rules: RuleOutcome,
    pub fate: Fate,
}

/// Decides one tenant copy. `explain` also lists the rules that did not apply and why (for
/// `simulate` and `rule test`; the session does not pay for it).
pub fn decide_copy(
    dir: &Directory,
    data: &DataFacts<'_>,
    message: &MessageFacts<'_>,
    explain: bool,
) -> CopyOutcome {
    let verdict = decide_data(dir, data);
    let DataVerdict::Accept {
        direct_send,
        audit,
        compauth,
        ref actions,
        ..
    } = verdict
    else {
        let compauth = tenant_compauth(dir, data.tenant, data.auth);
        let why = match &verdict {
            DataVerdict::DirectSendRefused { header } => Refusal::DirectSend { header: *header },
            DataVerdict::DmarcRejected { domain } => Refusal::Dmarc {
                domain: domain.clone(),
            },
            _ => Refusal::AuthTempError,
        };
        let reply = verdict.reply().unwrap_or(reply::AUTH_TEMP_ERROR);
        let fate = Fate::Refuse { reply, why };
        return CopyOutcome {
            verdict,
            compauth,
            rules: RuleOutcome::default(),
            fate,
        };
    };

    let rules = dir
        .tenant(data.tenant)
        .map(|e| e.rules.as_slice())
        .unwrap_or(&[]);
    let facts = RuleFacts {
        now: message.now,
        attribution: data.attribution,
        direct_send,
        client_ip: message.client_ip,
        mail_from: message.mail_from,
        header_from: message.header_from,
        headers: message.headers,
        subject: message.subject,
        recipients: message.recipients,
        auth: data.auth,
        compauth: Some(compauth),
    };
    let rules = if explain {
        evaluate_rules(rules, &facts)
    } else {
        apply_rules(rules, &facts)
    };
    let fate = fate_of_accepted(audit.is_some(), actions, &rules.effect, message);
    CopyOutcome {
        verdict,
        compauth,
        rules,
        fate,
    }
}

/// An accepted copy after the rules: a rule's reject wins; then quarantine by rule, or by the
/// first quarantining authentication action; otherwise delivery.
fn fate_of_accepted(
    audit: bool,
    actions: &[AuthAction],
    effect: &RuleEffect,
    message: &MessageFacts<'_>,
) -> Fate {
    if let Some((code, text, rule)) = &effect.reject {
        return Fate::Refuse {
            reply: reply::rule_reject(code, text),
            why: Refusal::Rule { rule: rule.clone() },
        };
    }
    let by_rule = effect.quarantine.clone().map(QuarantineReason::Rule);
    let by_auth = actions.iter().find_map(|a| match a {
        AuthAction::DmarcQuarantine => Some(QuarantineReason::Dmarc),
        AuthAction::SpoofQuarantine => Some(QuarantineReason::Spoof),
        AuthAction::SpoofJunk => None,
    });
    let delivery = Delivery {
        recipients: effect
            .redirect_to
            .clone()
            .unwrap_or_else(|| message.recipients.to_vec()),
        audit_header: audit,
        junk: actions.contains(&AuthAction::SpoofJunk),
        edits: RuleEffect {
            set_headers: effect.set_headers.clone(),
            remove_headers: effect.remove_headers.clone(),
            prepend_subject: effect.prepend_subject.clone(),
            scl: effect.scl,
            ..RuleEffect::default()
        },
    };
    match by_rule.or(by_auth) {
        Some(reason) => Fate::Quarantine { reason, delivery },
        None => Fate::Deliver(delivery),
    }
}
