//! Name syntax and matching: domains, sender-domain patterns, certificate-name patterns, tenant and
//! connector names. Used for validation at the admin edge and for matching in the core, so both
//! agree on what a name is.

/// Normalizes a domain for storage and lookup: trims, drops one trailing dot, lower-cases.
/// Returns `None` unless the result is a syntactically valid hostname (LDH labels, 1–63 octets each,
/// at most 253 octets, at least two labels).
pub fn normalize_domain(input: &str) -> Option<String> {
    let d = input.trim();
    let d = d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase();
    is_hostname(&d).then_some(d)
}

fn is_hostname(d: &str) -> bool {
    if d.is_empty() || d.len() > 253 {
        return false;
    }
    let mut labels = 0;
    for label in d.split('.') {
        labels += 1;
        let b = label.as_bytes();
        if b.is_empty() || b.len() > 63 || b[0] == b'-' || b[b.len() - 1] == b'-' {
            return false;
        }
        if !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        {
            return false;
        }
    }
    // A numeric top label is an IP address, not a domain (RFC 3696 §2).
    labels >= 2
        && !d
            .rsplit('.')
            .next()
            .is_some_and(|top| top.bytes().all(|c| c.is_ascii_digit()))
}

/// Validates and normalizes a sender-domain pattern: `*`, `*.example.com` or `example.com`.
pub fn normalize_sender_domain_pattern(input: &str) -> Option<String> {
    let p = input.trim();
    if p == "*" {
        return Some("*".into());
    }
    match p.strip_prefix("*.") {
        Some(rest) => normalize_domain(rest).map(|d| format!("*.{d}")),
        None => normalize_domain(p),
    }
}

/// Validates and normalizes a certificate-name pattern: `mail.example.com` or `*.example.com`.
pub fn normalize_cert_name_pattern(input: &str) -> Option<String> {
    let p = input.trim();
    match p.strip_prefix("*.") {
        Some(rest) => normalize_domain(rest).map(|d| format!("*.{d}")),
        None => normalize_domain(p),
    }
}

/// Tenant and connector names: 1–64 of `[a-z0-9._-]`, starting with a letter or digit.
/// Tenant names become Maildir path components, so nothing else is allowed.
pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

/// Connector names may also carry upper case and spaces (admins name them "Contoso on-prem").
pub fn is_valid_connector_name(name: &str) -> bool {
    let t = name.trim();
    !t.is_empty()
        && t.len() == name.len()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ' '))
}

/// Does `domain` (lower case) fall under `parent`: equal, or a subdomain of it?
pub fn is_same_or_subdomain(domain: &str, parent: &str) -> bool {
    domain == parent
        || (domain.len() > parent.len()
            && domain.ends_with(parent)
            && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.')
}

/// SPEC §2 condition 4: does the P1 domain (`None` = null sender) match a sender-domain pattern?
/// `*` matches everything including the null sender; `*.x.com` covers x.com and its subdomains.
pub fn sender_domain_matches(pattern: &str, p1_domain: Option<&str>) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some(domain) = p1_domain else {
        return false;
    };
    let domain = domain.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(parent) => is_same_or_subdomain(&domain, parent),
        None => domain == pattern,
    }
}

/// Does a name presented in a certificate match a connector's certificate-name pattern?
/// `*.contoso.com` matches exactly one extra label; anything else compares case-insensitively.
pub fn cert_name_matches(pattern: &str, presented: &str) -> bool {
    let presented = presented.trim_end_matches('.').to_ascii_lowercase();
    if pattern == presented {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(parent) => match presented.split_once('.') {
            Some((first, rest)) => !first.is_empty() && first != "*" && rest == parent,
            None => false,
        },
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(normalize_domain("Contoso.COM."), Some("contoso.com".into()));
        for bad in [
            "", "contoso", "-a.com", "a-.com", "a..com", "a b.com", "*.a.com", "a.com/x",
        ] {
            assert_eq!(normalize_domain(bad), None, "{bad}");
        }
    }

    #[test]
    fn sender_patterns() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("*", None, true),
            ("*", Some("x.com"), true),
            ("x.com", None, false),
            ("x.com", Some("X.com"), true),
            ("x.com", Some("a.x.com"), false),
            ("*.x.com", Some("x.com"), true),
            ("*.x.com", Some("a.b.x.com"), true),
            ("*.x.com", Some("evilx.com"), false),
            ("*.x.com", None, false),
        ];
        for (p, d, want) in cases {
            assert_eq!(sender_domain_matches(p, *d), *want, "{p} {d:?}");
        }
    }

    #[test]
    fn cert_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("mail.contoso.com", "MAIL.contoso.com", true),
            ("*.contoso.com", "mail.contoso.com", true),
            ("*.contoso.com", "contoso.com", false),
            ("*.contoso.com", "a.b.contoso.com", false),
            ("*.contoso.com", "*.contoso.com", true),
            ("*.contoso.com", "mailcontoso.com", false),
            ("mail.contoso.com", "smtp.contoso.com", false),
        ];
        for (p, n, want) in cases {
            assert_eq!(cert_name_matches(p, n), *want, "{p} {n}");
        }
    }

    #[test]
    fn names() {
        assert!(is_valid_name("contoso"));
        assert!(!is_valid_name("../etc"));
        assert!(!is_valid_name("Contoso"));
        assert!(is_valid_connector_name("Contoso on-prem"));
        assert!(!is_valid_connector_name(" x"));
    }
}
