//! Maildir delivery, the embedded default route: `tmp/` → fsync → rename into `new/`.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;

use crate::queue::envelope::Envelope;
use crate::sys::durable::sync_dir;

/// The directory name of a recipient's mailbox: the lower-cased address with anything outside
/// `[a-z0-9._+=@-]` percent-encoded, so no address can escape the tree or collide.
pub fn mailbox_dir_name(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    for b in address.to_lowercase().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'=' | b'@' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.starts_with('.') {
        out.replace_range(0..1, "%2E");
    }
    out
}

static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// Delivers `message` into `<root>/<tenant>/<mailbox>/new/` for each recipient, prefixed with
/// the per-recipient `Return-Path` and `Delivered-To` an MDA adds. Returns the file paths.
pub fn deliver_maildir(
    root: &Path,
    hostname: &str,
    envelope: &Envelope,
    recipients: &[String],
    message: &[u8],
) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    for rcpt in recipients {
        let mailbox = root.join(&envelope.tenant).join(mailbox_dir_name(rcpt));
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(mailbox.join(sub))
                .with_context(|| format!("creating {}", mailbox.join(sub).display()))?;
        }
        let n = DELIVERIES.fetch_add(1, Ordering::Relaxed);
        let unique = format!(
            "{}.M{:06}P{}Q{}_{}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            n,
            envelope.trace_id,
            hostname.replace(['/', ':'], "_")
        );
        let tmp = mailbox.join("tmp").join(&unique);
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let return_path = if envelope.mail_from == "<>" {
            "<>".to_string()
        } else {
            format!("<{}>", envelope.mail_from)
        };
        write!(f, "Return-Path: {return_path}\r\nDelivered-To: {rcpt}\r\n")?;
        f.write_all(message)?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        drop(f);
        let new = mailbox.join("new").join(&unique);
        fs::rename(&tmp, &new).with_context(|| format!("moving into {}", new.display()))?;
        sync_dir(&mailbox.join("new"))?;
        written.push(new);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_names_cannot_escape() {
        assert_eq!(mailbox_dir_name("Bob@Contoso.com"), "bob@contoso.com");
        assert_eq!(mailbox_dir_name("a/../b@x.com"), "a%2F..%2Fb@x.com");
        assert_eq!(mailbox_dir_name(".hidden@x.com"), "%2Ehidden@x.com");
    }
}
