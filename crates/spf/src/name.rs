//! Domain names as SPF uses them: the validity test of §4.3, the truncation of §7.3, and the
//! `toplabel` of the §12 grammar.

/// The longest name SPF looks up (§7.3: longer expansions lose labels on the left).
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Whether `domain` can be evaluated at all (§4.3): a multi-label name of non-empty labels of at
/// most 63 octets, at most 253 octets long. `check_host()` answers `none` for any other.
pub fn is_checkable(domain: &str) -> bool {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    domain.len() <= MAX_NAME
        && domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= MAX_LABEL)
}

/// The name to query for an expanded domain-spec: without its trailing dot, shortened to 253
/// octets by dropping whole labels on the left (§7.3). `Err` names what makes it unusable (an
/// empty label, a label over 63 octets, nothing left), which makes the record a `permerror`.
pub fn for_lookup(expanded: &str) -> Result<String, String> {
    let mut name = expanded.strip_suffix('.').unwrap_or(expanded);
    while name.len() > MAX_NAME {
        match name.split_once('.') {
            Some((_, rest)) => name = rest,
            None => break,
        }
    }
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("invalid domain name \"{expanded}\""));
    }
    if let Some(label) = name
        .split('.')
        .find(|l| l.is_empty() || l.len() > MAX_LABEL)
    {
        return Err(if label.is_empty() {
            format!("empty label in domain name \"{name}\"")
        } else {
            format!("label longer than 63 octets in \"{name}\"")
        });
    }
    Ok(name.to_string())
}

/// `toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )`
pub fn is_toplabel(label: &str) -> bool {
    let bytes = label.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if bytes.iter().all(u8::is_ascii_alphanumeric) {
        return bytes.iter().any(u8::is_ascii_alphabetic);
    }
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// Whether `name` is `domain` or a name below it (case-insensitive, trailing dots ignored).
pub fn is_same_or_subdomain(name: &str, domain: &str) -> bool {
    let name = name.trim_end_matches('.');
    let domain = domain.trim_end_matches('.');
    if name.eq_ignore_ascii_case(domain) {
        return true;
    }
    name.len() > domain.len()
        && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
        && name[name.len() - domain.len()..].eq_ignore_ascii_case(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_checkable("example.com"));
        assert!(is_checkable("example.com."));
        assert!(!is_checkable("localhost"));
        assert!(!is_checkable("a..example.com"));
        assert!(!is_checkable(&format!("{}.com", "a".repeat(64))));
        assert!(is_toplabel("com") && is_toplabel("x1") && is_toplabel("1-2"));
        assert!(!is_toplabel("123") && !is_toplabel("-com") && !is_toplabel("co_m"));
        assert!(is_same_or_subdomain("mail.Example.com.", "example.com"));
        assert!(!is_same_or_subdomain("badexample.com", "example.com"));
        let long = format!("{}.example.com", ["abcdefghij"; 30].join("."));
        let short = for_lookup(&long).unwrap();
        assert!(short.len() <= 253 && long.ends_with(&short) && short.starts_with("abcdefghij."));
        assert!(for_lookup("foo..example.com").is_err());
    }
}
