//! Where a tenant's mail goes: the delivery routes of `tenant set --route`, `domain set --route`
//! and `[delivery] default_route`. Parsing is here so that the CLI, the API, the config and the
//! delivery agree on what a route is, and every error names the URL.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// The embedded Maildir tree rooted at this path: `<root>/<tenant>/<recipient>/new/`.
    Maildir(String),
    /// SMTP with opportunistic STARTTLS (`smtp://host:port`), or refusing plaintext
    /// (`smtp+tls-required://host:port`).
    Smtp {
        host: String,
        port: u16,
        tls_required: bool,
    },
    /// LMTP over TCP (`lmtp://host:port`): one reply per recipient.
    Lmtp { host: String, port: u16 },
    /// LMTP over a Unix socket (`lmtp+unix:///path`).
    LmtpUnix(String),
    /// SMTP to the mail exchangers (MX) of the recipients' domain (`mx:` with the domain filled in
    /// per recipient): for addresses outside every tenant — bounces, redirects to other domains.
    Mx(String),
}

impl Route {
    pub fn parse(url: &str) -> Result<Route, String> {
        let bad = |why: &str| format!("invalid route {url:?}: {why}");
        let url = url.trim();
        if let Some(path) = url.strip_prefix("maildir:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("maildir: needs a path"));
            }
            return Ok(Route::Maildir(path.to_string()));
        }
        if let Some(domain) = url.strip_prefix("mx:") {
            return Ok(Route::Mx(domain.to_ascii_lowercase()));
        }
        if let Some(path) = url.strip_prefix("lmtp+unix://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "lmtp+unix:// needs an absolute socket path, e.g. lmtp+unix:///run/dovecot/lmtp",
                ));
            }
            return Ok(Route::LmtpUnix(path.to_string()));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected maildir:PATH, smtp://host:port, smtp+tls-required://host:port, lmtp://host:port or lmtp+unix:///path"))?;
        if !matches!(scheme, "smtp" | "smtp+tls-required" | "lmtp") {
            return Err(bad(&format!(
                "unknown scheme {scheme:?}: expected maildir:PATH, smtp://, smtp+tls-required://, lmtp:// or lmtp+unix://"
            )));
        }
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad("the port must be a number from 1 to 65535"))?,
            ),
            _ => return Err(bad("a port is required, e.g. smtp://mail.contoso.com:25")),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host_ok = host.parse::<std::net::IpAddr>().is_ok()
            || crate::names::normalize_domain(host).is_some()
            || host == "localhost";
        if !host_ok || port == 0 {
            return Err(bad("expected a host name or IP address and a port"));
        }
        let host = host.to_ascii_lowercase();
        match scheme {
            "smtp" => Ok(Route::Smtp {
                host,
                port,
                tls_required: false,
            }),
            "smtp+tls-required" => Ok(Route::Smtp {
                host,
                port,
                tls_required: true,
            }),
            "lmtp" => Ok(Route::Lmtp { host, port }),
            _ => Err(bad("unknown scheme")),
        }
    }

    /// The destination key for concurrency limits and queue listings.
    pub fn destination(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = |h: &str| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_string()
            }
        };
        match self {
            Route::Maildir(p) => write!(f, "maildir:{p}"),
            Route::Smtp {
                host: h,
                port,
                tls_required: false,
            } => write!(f, "smtp://{}:{port}", host(h)),
            Route::Smtp {
                host: h,
                port,
                tls_required: true,
            } => {
                write!(f, "smtp+tls-required://{}:{port}", host(h))
            }
            Route::Lmtp { host: h, port } => write!(f, "lmtp://{}:{port}", host(h)),
            Route::LmtpUnix(p) => write!(f, "lmtp+unix://{p}"),
            Route::Mx(d) => write!(f, "mx:{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let ok = [
            ("maildir:/var/mail", "maildir:/var/mail"),
            ("smtp://Mail.Contoso.com:25", "smtp://mail.contoso.com:25"),
            (
                "smtp+tls-required://10.0.0.5:587",
                "smtp+tls-required://10.0.0.5:587",
            ),
            ("lmtp://127.0.0.1:24", "lmtp://127.0.0.1:24"),
            ("lmtp://[::1]:24", "lmtp://[::1]:24"),
            (
                "lmtp+unix:///run/dovecot/lmtp",
                "lmtp+unix:///run/dovecot/lmtp",
            ),
        ];
        for (input, shown) in ok {
            assert_eq!(Route::parse(input).unwrap().to_string(), shown, "{input}");
        }
        for bad in [
            "",
            "smtp://host",
            "smtp://:25",
            "smtp://h:0",
            "smtp://h:99999",
            "ftp://h:21",
            "maildir:",
            "lmtp+unix://rel",
            "mail.contoso.com:25",
            "smtp://bad host:25",
        ] {
            let e = Route::parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        // An unknown scheme is named as such, not as a bad host.
        let e = Route::parse("ftp://x:21").unwrap_err();
        assert!(e.contains("unknown scheme \"ftp\""), "{e}");
    }
}
