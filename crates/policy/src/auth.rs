//! Email authentication as facts, and the composite verdict (`compauth`) built from them.
//! The gateway runs SPF, DKIM, ARC and DMARC (I/O: DNS) and hands the outcomes here as plain
//! values; everything decided from them is pure and table-tested.
//!
//! Reason codes, modelled on the reference system's `compauth` reasons:
//!
//! | verdict  | reason | meaning |
//! |---|---|---|
//! | pass     | 100 | DMARC pass |
//! | pass     | 102 | no enforcing DMARC verdict, but SPF or DKIM passes aligned with the `From:` domain (implicit pass) |
//! | pass     | 130 | DMARC fail overridden by a passing ARC chain sealed by a trusted sealer |
//! | softpass | 201 | SPF or DKIM passes, but not aligned with the `From:` domain |
//! | fail     | 000 | explicit failure: DMARC fail with policy `quarantine` or `reject` |
//! | fail     | 001 | implicit failure: no passing, aligned authentication and no enforcing DMARC policy |
//! | fail     | 010 | DMARC fail (`quarantine`/`reject`) and the `From:` domain is an accepted domain of the tenant |
//! | fail     | 601 | implicit failure and the `From:` domain is an accepted domain of the tenant (spoof of an own domain) |
//! | none     | 300 | no `From:` domain to authenticate |
//! | none     | 301 | authentication not evaluated (disabled by the operator) |

use crate::names::is_same_or_subdomain;

/// Outcome of one check, in RFC 8601 vocabulary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthResult {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    #[default]
    None,
    TempError,
    PermError,
}

impl AuthResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Pass => "pass",
            AuthResult::Fail => "fail",
            AuthResult::SoftFail => "softfail",
            AuthResult::Neutral => "neutral",
            AuthResult::None => "none",
            AuthResult::TempError => "temperror",
            AuthResult::PermError => "permerror",
        }
    }
}

/// The policy a DMARC record asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DmarcPolicy {
    /// No DMARC record was found.
    #[default]
    Absent,
    None,
    Quarantine,
    Reject,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DkimFact {
    pub result: AuthResult,
    /// The signing domain (`d=`), lower case.
    pub domain: String,
    pub selector: String,
}

/// Everything authentication found out about one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthFacts {
    /// False when authentication is switched off: nothing below was evaluated.
    pub evaluated: bool,
    /// SPF for MAIL FROM (the HELO identity for the null sender).
    pub spf: AuthResult,
    /// The domain SPF was evaluated for.
    pub spf_domain: Option<String>,
    pub dkim: Vec<DkimFact>,
    pub arc: AuthResult,
    /// Domain of the newest ARC seal, when the chain passes.
    pub arc_sealer: Option<String>,
    pub dmarc: AuthResult,
    pub dmarc_policy: DmarcPolicy,
    /// The `From:` (P2) domain, lower case.
    pub from_domain: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompVerdict {
    Pass,
    Fail,
    SoftPass,
    None,
}

impl CompVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            CompVerdict::Pass => "pass",
            CompVerdict::Fail => "fail",
            CompVerdict::SoftPass => "softpass",
            CompVerdict::None => "none",
        }
    }
}

/// The composite verdict: `compauth=<verdict> reason=<reason>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompAuth {
    pub verdict: CompVerdict,
    pub reason: u16,
}

impl std::fmt::Display for CompAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "compauth={} reason={:03}",
            self.verdict.as_str(),
            self.reason
        )
    }
}

impl CompAuth {
    /// Reasons 010 and 6xx: authentication failed while the `From:` domain is the tenant's own.
    pub fn is_own_domain_spoof(&self) -> bool {
        self.verdict == CompVerdict::Fail
            && (self.reason == 10 || (600..700).contains(&self.reason))
    }
}

/// Relaxed alignment without a public-suffix list: one domain equals the other or is a
/// subdomain of it. (Strictly, DMARC compares organizational domains; for the implicit checks
/// below this errs on the side of *not* aligning sibling subdomains.)
pub fn aligned(a: &str, b: &str) -> bool {
    is_same_or_subdomain(a, b) || is_same_or_subdomain(b, a)
}

impl AuthFacts {
    /// Any DNS temporary failure that makes the verdict unreliable (defer, never reject).
    pub fn temp_error(&self) -> bool {
        self.spf == AuthResult::TempError
            || self.dmarc == AuthResult::TempError
            || self.arc == AuthResult::TempError
            || self.dkim.iter().any(|d| d.result == AuthResult::TempError)
    }

    /// A passing DKIM signature whose domain aligns with `domain`.
    pub fn dkim_pass_aligned_with(&self, domain: &str) -> bool {
        self.dkim
            .iter()
            .any(|d| d.result == AuthResult::Pass && aligned(&d.domain, domain))
    }

    /// The newest ARC sealer, if the chain passes.
    pub fn arc_pass_sealer(&self) -> Option<&str> {
        (self.arc == AuthResult::Pass)
            .then_some(self.arc_sealer.as_deref())
            .flatten()
    }

    /// A one-line summary of the DKIM results for the trace (`pass`, `fail`, `none`, ...).
    pub fn dkim_summary(&self) -> AuthResult {
        for wanted in [
            AuthResult::Pass,
            AuthResult::TempError,
            AuthResult::Fail,
            AuthResult::Neutral,
            AuthResult::PermError,
        ] {
            if self.dkim.iter().any(|d| d.result == wanted) {
                return wanted;
            }
        }
        AuthResult::None
    }
}

/// The composite verdict for one tenant copy. `own_from_domain`: the `From:` domain is an
/// accepted domain of that tenant; `trusted_sealers`: the tenant's `arc_trusted_sealers`.
pub fn compauth(facts: &AuthFacts, own_from_domain: bool, trusted_sealers: &[String]) -> CompAuth {
    let c = |verdict, reason| CompAuth { verdict, reason };
    if !facts.evaluated {
        return c(CompVerdict::None, 301);
    }
    let Some(from) = facts.from_domain.as_deref() else {
        return c(CompVerdict::None, 300);
    };
    if facts.dmarc == AuthResult::Pass {
        return c(CompVerdict::Pass, 100);
    }
    let trusted_arc = facts
        .arc_pass_sealer()
        .is_some_and(|s| trusted_sealers.iter().any(|t| t.eq_ignore_ascii_case(s)));
    let enforcing = matches!(
        facts.dmarc_policy,
        DmarcPolicy::Quarantine | DmarcPolicy::Reject
    );
    if facts.dmarc == AuthResult::Fail && enforcing {
        if trusted_arc {
            return c(CompVerdict::Pass, 130);
        }
        return c(CompVerdict::Fail, if own_from_domain { 10 } else { 0 });
    }
    // Implicit authentication: no DMARC record, or one that does not enforce.
    let spf_aligned = facts.spf == AuthResult::Pass
        && facts
            .spf_domain
            .as_deref()
            .is_some_and(|d| aligned(d, from));
    if spf_aligned || facts.dkim_pass_aligned_with(from) {
        return c(CompVerdict::Pass, 102);
    }
    if trusted_arc {
        return c(CompVerdict::Pass, 130);
    }
    if facts.spf == AuthResult::Pass || facts.dkim.iter().any(|d| d.result == AuthResult::Pass) {
        return c(CompVerdict::SoftPass, 201);
    }
    c(CompVerdict::Fail, if own_from_domain { 601 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(f: impl FnOnce(&mut AuthFacts)) -> AuthFacts {
        let mut a = AuthFacts {
            evaluated: true,
            from_domain: Some("contoso.com".into()),
            ..Default::default()
        };
        f(&mut a);
        a
    }

    fn dkim(domain: &str, result: AuthResult) -> DkimFact {
        DkimFact {
            result,
            domain: domain.into(),
            selector: "s".into(),
        }
    }

    #[test]
    fn composite_table() {
        let sealers = vec!["forwarder.example".to_string()];
        let cases: Vec<(&str, AuthFacts, bool, &str)> = vec![
            (
                "disabled",
                AuthFacts::default(),
                false,
                "compauth=none reason=301",
            ),
            (
                "no From",
                facts(|a| a.from_domain = None),
                false,
                "compauth=none reason=300",
            ),
            (
                "dmarc pass",
                facts(|a| a.dmarc = AuthResult::Pass),
                false,
                "compauth=pass reason=100",
            ),
            (
                "dmarc reject fail",
                facts(|a| {
                    a.dmarc = AuthResult::Fail;
                    a.dmarc_policy = DmarcPolicy::Reject;
                }),
                false,
                "compauth=fail reason=000",
            ),
            (
                "dmarc quarantine fail, own domain",
                facts(|a| {
                    a.dmarc = AuthResult::Fail;
                    a.dmarc_policy = DmarcPolicy::Quarantine;
                }),
                true,
                "compauth=fail reason=010",
            ),
            (
                "dmarc fail, trusted ARC",
                facts(|a| {
                    a.dmarc = AuthResult::Fail;
                    a.dmarc_policy = DmarcPolicy::Reject;
                    a.arc = AuthResult::Pass;
                    a.arc_sealer = Some("forwarder.example".into());
                }),
                true,
                "compauth=pass reason=130",
            ),
            (
                "dmarc fail, untrusted ARC",
                facts(|a| {
                    a.dmarc = AuthResult::Fail;
                    a.dmarc_policy = DmarcPolicy::Reject;
                    a.arc = AuthResult::Pass;
                    a.arc_sealer = Some("evil.example".into());
                }),
                true,
                "compauth=fail reason=010",
            ),
            (
                "p=none fail, aligned DKIM pass",
                facts(|a| {
                    a.dmarc = AuthResult::Fail;
                    a.dmarc_policy = DmarcPolicy::None;
                    a.dkim = vec![dkim("mail.contoso.com", AuthResult::Pass)];
                }),
                false,
                "compauth=pass reason=102",
            ),
            (
                "no dmarc, spf aligned",
                facts(|a| {
                    a.spf = AuthResult::Pass;
                    a.spf_domain = Some("contoso.com".into());
                }),
                false,
                "compauth=pass reason=102",
            ),
            (
                "no dmarc, unaligned dkim",
                facts(|a| a.dkim = vec![dkim("esp.example", AuthResult::Pass)]),
                false,
                "compauth=softpass reason=201",
            ),
            (
                "nothing, foreign",
                facts(|a| a.spf = AuthResult::SoftFail),
                false,
                "compauth=fail reason=001",
            ),
            (
                "nothing, own domain",
                facts(|a| a.spf = AuthResult::Fail),
                true,
                "compauth=fail reason=601",
            ),
        ];
        for (note, f, own, want) in cases {
            assert_eq!(compauth(&f, own, &sealers).to_string(), want, "{note}");
        }
    }

    #[test]
    fn own_domain_spoof_reasons() {
        let spoof = |r| {
            CompAuth {
                verdict: CompVerdict::Fail,
                reason: r,
            }
            .is_own_domain_spoof()
        };
        assert!(spoof(10) && spoof(601) && !spoof(0) && !spoof(1));
    }
}
