//! What the RFCs require of DKIM and ARC header fields beyond what mail-auth 0.13.3 checks. Pure:
//! header values in, the first violation out. `auth.rs` applies the answers around mail-auth's
//! verdicts (a signature that breaks a rule is `permerror` and never reaches DMARC; an ARC chain
//! that breaks one is `fail`).
//!
//! Upstream leniencies each check works around (mail-auth 0.13.3):
//! - `a=rsa-sha1` verifies (RFC 8301 §3.1: verifiers MUST NOT consider it valid);
//! - a missing `a=` defaults to rsa-sha256 (RFC 6376 §3.5, RFC 8617 §4.1: required);
//! - duplicate tags, tag names outside `ALPHA *ALNUMPUNC` and empty tag-specs are accepted
//!   (RFC 6376 §3.2: the tag-list is then invalid);
//! - `arc-seal` may appear in an ARC-Message-Signature's `h=` (RFC 8617 §4.1.2: MUST NOT);
//! - an ARC set with an ARC-Seal but no ARC-Message-Signature gives `none` (RFC 8617 §5.1.1:
//!   every instance needs all three header fields; the chain fails).

use std::collections::BTreeMap;

/// The required tags of each kind of header field (case-sensitive, RFC 6376 §3.2).
const DKIM_REQUIRED: &[&str] = &["v", "a", "b", "bh", "d", "h", "s"];
const AMS_REQUIRED: &[&str] = &["i", "a", "b", "bh", "d", "h", "s"];
const SEAL_REQUIRED: &[&str] = &["i", "a", "b", "d", "s", "cv"];

/// Parses an (unfolded) tag-list, RFC 6376 §3.2: `tag-spec *( ";" tag-spec ) [ ";" ]`,
/// `tag-spec = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]`, `tag-name = ALPHA *ALNUMPUNC`.
/// A duplicate tag makes the whole list invalid.
pub fn tag_list(value: &str) -> Result<BTreeMap<String, String>, String> {
    let mut tags = BTreeMap::new();
    let specs: Vec<&str> = value.split(';').collect();
    for (n, spec) in specs.iter().enumerate() {
        if spec.trim().is_empty() {
            // Only the optional trailing ";" may leave an empty spec behind it.
            if n + 1 == specs.len() && n > 0 {
                continue;
            }
            return Err("an empty tag-spec".to_string());
        }
        let Some((name, val)) = spec.split_once('=') else {
            return Err(format!("tag-spec {:?} has no \"=\"", spec.trim()));
        };
        let name = name.trim();
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("invalid tag name {name:?}"));
        }
        if tags
            .insert(name.to_string(), val.trim().to_string())
            .is_some()
        {
            return Err(format!("duplicate tag {name:?}"));
        }
    }
    Ok(tags)
}

/// `a=`: present, and not rsa-sha1.
fn algorithm(tags: &BTreeMap<String, String>) -> Result<(), String> {
    match tags.get("a").map(|a| a.to_ascii_lowercase()) {
        None => Err("no a= tag".to_string()),
        Some(a) if a == "rsa-sha1" => Err("a=rsa-sha1 is not allowed (RFC 8301)".to_string()),
        Some(_) => Ok(()),
    }
}

fn required(tags: &BTreeMap<String, String>, names: &[&str]) -> Result<(), String> {
    match names.iter().find(|n| !tags.contains_key(**n)) {
        Some(n) => Err(format!("no {n}= tag")),
        None => Ok(()),
    }
}

/// The first rule a DKIM-Signature value breaks, if any.
pub fn dkim_signature_problem(value: &str) -> Option<String> {
    let check = || -> Result<(), String> {
        let tags = tag_list(value)?;
        algorithm(&tags)?;
        required(&tags, DKIM_REQUIRED)
    };
    check().err()
}

/// The `b=` of a signature header field, base64 decoded: what identifies it among a message's
/// signatures. Read as leniently as mail-auth reads it — whatever else is wrong with the
/// tag-list (the last `b=` counts), whitespace ignored, padding optional — so that the very
/// signatures the rules are for are found.
pub fn signature_b(value: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let b = value.split(';').rev().find_map(|spec| {
        let (name, v) = spec.split_once('=')?;
        (name.trim() == "b").then_some(v)
    })?;
    let b: String = b
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .collect();
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    lenient.decode(b).ok()
}

/// The first rule the message's ARC header fields break, if any. `headers` are (name,
/// unfolded value) in message order.
pub fn arc_problem(headers: &[(String, String)]) -> Option<String> {
    #[derive(Default)]
    struct Instance {
        seal: usize,
        ams: usize,
        aar: usize,
    }
    let mut instances: BTreeMap<u32, Instance> = BTreeMap::new();
    for (name, value) in headers {
        let kind = name.to_ascii_lowercase();
        if !matches!(
            kind.as_str(),
            "arc-seal" | "arc-message-signature" | "arc-authentication-results"
        ) {
            continue;
        }
        let instance = |tags: &BTreeMap<String, String>| -> Result<u32, String> {
            tags.get("i")
                .and_then(|i| i.parse::<u32>().ok())
                .filter(|i| (1..=50).contains(i))
                .ok_or_else(|| format!("{name} without a valid i= tag"))
        };
        let checked = match kind.as_str() {
            "arc-authentication-results" => {
                // `i=N; authserv-id; results`: only the instance tag is a tag.
                let first = value.split(';').next().unwrap_or("");
                match first.split_once('=') {
                    Some((n, i)) if n.trim() == "i" => i
                        .trim()
                        .parse::<u32>()
                        .map(|i| (i, 2))
                        .map_err(|_| format!("{name} without a valid i= tag")),
                    _ => Err(format!("{name} without a valid i= tag")),
                }
            }
            "arc-seal" => tag_list(value)
                .map_err(|e| format!("ARC-Seal: {e}"))
                .and_then(|tags| {
                    algorithm(&tags).map_err(|e| format!("ARC-Seal: {e}"))?;
                    required(&tags, SEAL_REQUIRED).map_err(|e| format!("ARC-Seal: {e}"))?;
                    if tags.contains_key("h") {
                        return Err("ARC-Seal: an h= tag (RFC 8617 §4.1.3)".to_string());
                    }
                    Ok((instance(&tags)?, 0))
                }),
            _ => tag_list(value)
                .map_err(|e| format!("ARC-Message-Signature: {e}"))
                .and_then(|tags| {
                    algorithm(&tags).map_err(|e| format!("ARC-Message-Signature: {e}"))?;
                    required(&tags, AMS_REQUIRED)
                        .map_err(|e| format!("ARC-Message-Signature: {e}"))?;
                    let signs_seal = tags["h"]
                        .split(':')
                        .any(|h| h.trim().eq_ignore_ascii_case("arc-seal"));
                    if signs_seal {
                        return Err("ARC-Message-Signature: h= names arc-seal (RFC 8617 §4.1.2)"
                            .to_string());
                    }
                    Ok((instance(&tags)?, 1))
                }),
        };
        let (i, which) = match checked {
            Ok(x) => x,
            Err(e) => return Some(e),
        };
        let entry = instances.entry(i).or_default();
        match which {
            0 => entry.seal += 1,
            1 => entry.ams += 1,
            _ => entry.aar += 1,
        }
    }
    for (i, set) in &instances {
        if set.seal != 1 || set.ams != 1 || set.aar != 1 {
            return Some(format!(
                "ARC instance {i} has {} ARC-Seal, {} ARC-Message-Signature and {} ARC-Authentication-Results (one each required)",
                set.seal, set.ams, set.aar
            ));
        }
    }
    // Instances are 1..=N without gaps.
    if let Some((last, _)) = instances.iter().next_back()
        && *last as usize != instances.len()
    {
        return Some(format!("ARC instances are not 1 to {last} without gaps"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "v=1; a=rsa-sha256; c=relaxed/relaxed; d=contoso.com; s=s1; h=from:to:subject; bh=AAAA; b=QUJD";

    #[test]
    fn dkim_signature_rules() {
        assert_eq!(dkim_signature_problem(SIG), None);
        assert_eq!(
            dkim_signature_problem(&format!("{SIG};")),
            None,
            "a trailing ; is allowed"
        );
        for (value, why) in [
            (SIG.replace("rsa-sha256", "rsa-sha1"), "rsa-sha1"),
            (SIG.replace("a=rsa-sha256; ", ""), "no a= tag"),
            (format!("{SIG}; d=evil.example"), "duplicate tag \"d\""),
            (SIG.replace("c=", "1c="), "invalid tag name \"1c\""),
            (SIG.replace("; s=s1;", "; ; s=s1;"), "an empty tag-spec"),
            (SIG.replace("bh=AAAA; ", ""), "no bh= tag"),
            (SIG.replace("s=s1", "S=s1"), "no s= tag"),
            (format!("{SIG}; novalue"), "has no \"=\""),
        ] {
            let got = dkim_signature_problem(&value).unwrap_or_else(|| panic!("{value}: accepted"));
            assert!(got.contains(why), "{value}: {got}");
        }
    }

    #[test]
    fn the_b_tag_identifies_a_signature() {
        assert_eq!(signature_b(SIG).unwrap(), b"ABC");
        assert_eq!(signature_b("b=QU JD\t; a=x").unwrap(), b"ABC");
        assert_eq!(signature_b("a=x"), None);
        // Found however the rest breaks the rules, padding or not (mail-auth is as lenient).
        assert_eq!(signature_b("b=QUI=; d=a; d=b").unwrap(), b"AB");
        assert_eq!(signature_b("b=QUI; ;1x=y").unwrap(), b"AB");
        assert_eq!(
            signature_b("b=AAAA; b=QUI").unwrap(),
            b"AB",
            "the last b= counts"
        );
    }

    fn set(i: u32) -> Vec<(String, String)> {
        vec![
            (
                "ARC-Seal".into(),
                format!("i={i}; a=rsa-sha256; cv=none; d=fwd.example; s=arc; t=1; b=QUJD"),
            ),
            (
                "ARC-Message-Signature".into(),
                format!(
                    "i={i}; a=rsa-sha256; c=relaxed/relaxed; d=fwd.example; s=arc; h=from:to; bh=AA; b=QUJD"
                ),
            ),
            (
                "ARC-Authentication-Results".into(),
                format!("i={i}; fwd.example; spf=pass"),
            ),
        ]
    }

    #[test]
    fn arc_rules() {
        assert_eq!(arc_problem(&set(1)), None);
        let mut two = set(1);
        two.extend(set(2));
        assert_eq!(arc_problem(&two), None);
        let with = |f: &dyn Fn(&mut Vec<(String, String)>)| {
            let mut s = set(1);
            f(&mut s);
            arc_problem(&s).unwrap_or_else(|| panic!("accepted: {s:?}"))
        };
        let cases: Vec<(String, &str)> = vec![
            (
                with(&|s| s[0].1 = s[0].1.replace("rsa-sha256", "rsa-sha1")),
                "ARC-Seal: a=rsa-sha1",
            ),
            (
                with(&|s| s[1].1 = s[1].1.replace("rsa-sha256", "rsa-sha1")),
                "ARC-Message-Signature: a=rsa-sha1",
            ),
            (
                with(&|s| s[0].1 = s[0].1.replace("a=rsa-sha256; ", "")),
                "ARC-Seal: no a= tag",
            ),
            (
                with(&|s| {
                    s.remove(1);
                }),
                "1 ARC-Seal, 0 ARC-Message-Signature",
            ),
            (
                with(&|s| s[1].1 = s[1].1.replace("h=from:to", "h=from:arc-seal:to")),
                "names arc-seal",
            ),
            (
                with(&|s| s[0].1.push_str("; d=other.example")),
                "ARC-Seal: duplicate tag",
            ),
            (
                with(&|s| s[0].1 = s[0].1.replace("t=1", "t-x=1")),
                "ARC-Seal: invalid tag name",
            ),
            (
                with(&|s| s[0].1 = s[0].1.replace("cv=none", "CV=none")),
                "ARC-Seal: no cv= tag",
            ),
            (
                with(&|s| s[0].1 = s[0].1.replace("; s=arc;", "; ; s=arc;")),
                "ARC-Seal: an empty tag-spec",
            ),
            (
                with(&|s| s[0].1.push_str("; h=from")),
                "ARC-Seal: an h= tag",
            ),
            (with(&|s| s.extend(set(3))), "not 1 to 3"),
        ];
        for (got, want) in cases {
            assert!(got.contains(want), "{got:?} does not say {want:?}");
        }
    }
}
