//! The spool: where a message lives from the moment it is accepted until every recipient has a
//! final outcome. One entry per tenant copy, in its one-file form: `PCSPOOL1 <n>`, the envelope
//! and its trace record as JSON, then the message as delivered, headers included. Accepted, it
//! is appended to the journal (`journal.rs`) and `250` is sent once that is on disk. If its first
//! delivery attempt does not finish it, it is written out as `<id>.<tenant>.q` (aside, fsynced,
//! renamed into place, directory fsynced: complete iff it exists), and later delivery states go
//! into `<id>.<tenant>.env` beside it. Delivery resolves or removes the entry; on start, the
//! journal is replayed into files and leftovers are delivered again (at-least-once: a crash
//! between delivery and removal can duplicate, never lose). Spools of earlier versions (`.q`
//! files only; `.msg` + `.env`, the `.env` written last) are still read.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Context;

use crate::queue::envelope::Envelope;
use crate::queue::journal::Journal;
use crate::sys::durable::{sync_dir, write_durable, write_durable_all};
use crate::sys::group_sync::GroupSync;

#[derive(Clone, Debug)]
pub struct Spool {
    dir: PathBuf,
    /// Complete entries in the spool (the queue length, for back-pressure).
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The last free-space reading and when it was taken: asked at every MAIL FROM, read from
    /// the file system at most once a second.
    free: std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, u64)>>>,
    dir_sync: std::sync::Arc<GroupSync>,
    /// Bytes of [`Written`] copies alive.
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Where accepted copies are made durable until their first attempt ends.
    journal: std::sync::Arc<Journal>,
    /// Bumped by every store, update and removal: the queue index lists the spool again only
    /// when it moved.
    changes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A spooled entry, identified by its file stem `<id>.<tenant>`.
#[derive(Clone, Debug)]
pub struct Entry {
    pub stem: String,
    pub envelope: Envelope,
    /// The file as written, kept in memory from acceptance to the first delivery attempt so that
    /// attempt does not read back what was just written (within [`MEMORY_BUDGET`]).
    pub written: Option<std::sync::Arc<Written>>,
}

/// Bytes of accepted messages held in memory for their first delivery attempt, at most: beyond
/// it (a backlog, a slow downstream) entries are read back from the spool like any retry.
pub const MEMORY_BUDGET: usize = 64 << 20;

/// A spool file's bytes held in memory; counted against [`MEMORY_BUDGET`] until dropped.
#[derive(Debug)]
pub struct Written {
    bytes: Vec<u8>,
    body: usize,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Written {
    /// The message (what follows the envelope in the file).
    pub fn message(&self) -> &[u8] {
        &self.bytes[self.body..]
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes.len(), Ordering::Relaxed);
    }
}

impl Spool {
    pub fn open(dir: PathBuf) -> anyhow::Result<Spool> {
        Self::open_with(dir, crate::queue::journal::SEGMENT_BYTES)
    }

    /// With journal segments of `segment_bytes` (tests use small ones).
    fn open_with(dir: PathBuf, segment_bytes: u64) -> anyhow::Result<Spool> {
        fs::create_dir_all(&dir).with_context(|| format!("creating spool {}", dir.display()))?;
        let mut journal_dir = dir.clone().into_os_string();
        journal_dir.push("-journal");
        let journal = Journal::open(journal_dir.into(), segment_bytes)?;
        Ok(Spool {
            dir,
            count: Default::default(),
            free: Default::default(),
            dir_sync: Default::default(),
            held: Default::default(),
            journal: std::sync::Arc::new(journal),
            changes: Default::default(),
        })
    }

    fn paths(&self, stem: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{stem}.msg")),
            self.dir.join(format!("{stem}.env")),
        )
    }

    /// The one-file form of an entry: `PCSPOOL1 <n>\n`, the envelope's JSON (n bytes), the message.
    fn queue_path(&self, stem: &str) -> PathBuf {
        self.dir.join(format!("{stem}.q"))
    }

    /// Writes one copy durably. Blocking: call from `spawn_blocking`.
    ///
    /// Appended to the journal (`journal.rs`: no file created per copy, one `fdatasync` shared
    /// with the writers of the moment) until its first delivery attempt ends; if that does not
    /// finish it, [`Spool::update`] writes it out as a `.q` file of its own.
    pub fn store(&self, envelope: &Envelope, message: &[u8]) -> anyhow::Result<Entry> {
        let stem = format!("{}.{}", envelope.trace_id, envelope.tenant);
        self.changed();
        let (bytes, body) = queue_file(envelope, message);
        self.journal.append(&stem, envelope, &bytes)?;
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let size = bytes.len();
        let written = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held + size <= MEMORY_BUDGET).then_some(held + size)
            })
            .is_ok()
            .then(|| {
                std::sync::Arc::new(Written {
                    bytes,
                    body,
                    held: self.held.clone(),
                })
            });
        Ok(Entry {
            stem,
            envelope: envelope.clone(),
            written,
        })
    }

    /// Rewrites an entry's envelope (delivery state after an attempt), durably. An entry still
    /// in the journal is written out as a `.q` file with this envelope (one file, written aside,
    /// synced, renamed into place, the directory synced with the writers of the moment), then
    /// leaves the journal; later states go into a `.env` beside it, which wins over the
    /// embedded envelope.
    pub fn update(&self, entry: &Entry) -> anyhow::Result<()> {
        self.changed();
        if self.journal.contains(&entry.stem) {
            let read;
            let message = match &entry.written {
                Some(w) => w.message(),
                None => {
                    read = self.read_message(entry)?;
                    &read
                }
            };
            let (bytes, _) = queue_file(&entry.envelope, message);
            let q = self.queue_path(&entry.stem);
            write_durable(&q, &bytes)?;
            self.dir_sync.sync(|| sync_dir(&self.dir))?;
            if !self.journal.resolve(&entry.stem) {
                // Deleted from the queue meanwhile: the file must not bring it back.
                let _ = fs::remove_file(&q);
            }
            return Ok(());
        }
        let (msg, env) = self.paths(&entry.stem);
        if !self.queue_path(&entry.stem).exists() && !msg.exists() {
            // Deleted from the queue while it was being delivered: do not bring it back.
            return Ok(());
        }
        let json = serde_json::to_vec(&entry.envelope).expect("envelopes serialize");
        write_durable(&env, &json)?;
        self.dir_sync.sync(|| sync_dir(&self.dir))
    }

    pub fn read_message(&self, entry: &Entry) -> anyhow::Result<Vec<u8>> {
        if let Some(mut bytes) = self.journal.read(&entry.stem)? {
            let (_, body) = split_queue_file(&bytes).context("spool journal: not a spool entry")?;
            bytes.drain(..body);
            return Ok(bytes);
        }
        let q = self.queue_path(&entry.stem);
        match fs::read(&q) {
            Ok(mut bytes) => {
                let (_, body) = split_queue_file(&bytes)
                    .with_context(|| format!("{}: not a spool file", q.display()))?;
                bytes.drain(..body);
                Ok(bytes)
            }
            // The two-file form of earlier versions.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (msg, _) = self.paths(&entry.stem);
                fs::read(&msg).with_context(|| format!("reading {}", msg.display()))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", q.display())),
        }
    }

    /// Removes a finished entry: resolves it in the journal, or removes its files.
    pub fn remove(&self, entry: &Entry) -> anyhow::Result<()> {
        self.changed();
        let (msg, env) = self.paths(&entry.stem);
        let q = self.queue_path(&entry.stem);
        if self.journal.resolve(&entry.stem) {
            // Never written out: nothing on disk but its frame.
        } else {
            self.remove_files(&q, &msg, &env)?;
        }
        let dec = |n: usize| n.checked_sub(1);
        let _ = self.count.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            dec,
        );
        Ok(())
    }

    /// An entry's files: its commit file first (`.q`, or the `.env` of the two-file form), so
    /// a crash leaves no half entry that counts; recovery removes the rest.
    fn remove_files(&self, q: &Path, msg: &Path, env: &Path) -> anyhow::Result<()> {
        match fs::remove_file(q) {
            Ok(()) => {
                let _ = fs::remove_file(env);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::remove_file(env).with_context(|| format!("removing {}", env.display()))?;
                let _ = fs::remove_file(msg);
            }
            Err(e) => return Err(e).with_context(|| format!("removing {}", q.display())),
        }
        Ok(())
    }

    /// Complete entries left by a previous run: the journal's unresolved entries are written
    /// out as `.q` files first. Half-written ones (a frame cut short, a `.tmp`; in the two-file
    /// form a `.msg` without `.env`) are discarded, since they were never acknowledged, and so
    /// is an `.env` whose entry was removed. Call once, before the listener opens.
    pub fn recover(&self) -> anyhow::Result<Vec<Entry>> {
        let replayed = self.journal.recover(|frames| {
            let mut files = Vec::with_capacity(frames.len());
            for (stem, body) in frames {
                if !plausible_stem(stem) {
                    anyhow::bail!("spool journal: {stem:?} is not a spool entry's name");
                }
                let q = self.queue_path(stem);
                // Written out before the crash (then resolved, unless the crash came first).
                if !q.exists() && !self.paths(stem).1.exists() {
                    files.push((q, *body));
                }
            }
            write_durable_all(&self.dir, &files)
        })?;
        if replayed > 0 {
            tracing::info!(entries = replayed, "spool journal replayed");
        }
        for item in fs::read_dir(&self.dir)? {
            let path = item?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
            } else if let Some(stem) = name.strip_suffix(".msg")
                && !self.dir.join(format!("{stem}.env")).exists()
            {
                let _ = fs::remove_file(&path);
            } else if let Some(stem) = name.strip_suffix(".env")
                && !self.queue_path(stem).exists()
                && !self.dir.join(format!("{stem}.msg")).exists()
            {
                let _ = fs::remove_file(&path);
            }
        }
        let entries = self.list()?;
        self.count
            .store(entries.len(), std::sync::atomic::Ordering::SeqCst);
        Ok(entries)
    }

    /// The complete entries (read only: a session may be writing a new one meanwhile).
    pub fn list(&self) -> anyhow::Result<Vec<Entry>> {
        let mut entries: Vec<Entry> = self
            .journal
            .entries()
            .into_iter()
            .map(|(stem, envelope)| Entry {
                stem,
                envelope,
                written: None,
            })
            .collect();
        for item in fs::read_dir(&self.dir)? {
            let path = item?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let stem = match name.strip_suffix(".q") {
                Some(stem) => Some(stem),
                // A two-file entry; an `.env` beside a `.q` is listed with the `.q`.
                None => name
                    .strip_suffix(".env")
                    .filter(|stem| !self.queue_path(stem).exists()),
            };
            // One being written out of the journal is listed from there.
            if let Some(stem) = stem.filter(|s| !self.journal.contains(s)) {
                match self.get(stem) {
                    Ok(Some(e)) => entries.push(e),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(file = %path.display(), "unreadable spool envelope, left in place: {e:#}")
                    }
                }
            }
        }
        entries.sort_by(|a, b| a.stem.cmp(&b.stem));
        Ok(entries)
    }

    /// One entry by its stem, if it is (still) spooled.
    pub fn get(&self, stem: &str) -> anyhow::Result<Option<Entry>> {
        if !plausible_stem(stem) {
            return Ok(None);
        }
        if let Some(envelope) = self.journal.envelope(stem) {
            return Ok(Some(Entry {
                stem: stem.to_string(),
                envelope,
                written: None,
            }));
        }
        let (msg, env) = self.paths(stem);
        let q = self.queue_path(stem);
        let committed = q.exists() || msg.exists();
        match fs::read(&env) {
            Ok(bytes) if committed => {
                let envelope = serde_json::from_slice::<Envelope>(&bytes)
                    .with_context(|| format!("{}: unreadable envelope", env.display()))?;
                Ok(Some(Entry {
                    stem: stem.to_string(),
                    envelope,
                    written: None,
                }))
            }
            // An `.env` left by a removal that a crash interrupted.
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The envelope embedded in the one-file form.
                let mut head = Vec::new();
                match File::open(&q) {
                    Ok(f) => {
                        use std::io::Read;
                        f.take(64 * 1024)
                            .read_to_end(&mut head)
                            .with_context(|| format!("reading {}", q.display()))?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e).with_context(|| format!("reading {}", q.display())),
                };
                let (json, _) = match split_queue_file(&head) {
                    Some(parts) => parts,
                    // A larger envelope than the first read holds: read it all.
                    None => {
                        head = fs::read(&q).with_context(|| format!("reading {}", q.display()))?;
                        split_queue_file(&head)
                            .with_context(|| format!("{}: not a spool file", q.display()))?
                    }
                };
                let envelope = serde_json::from_slice::<Envelope>(&head[json])
                    .with_context(|| format!("{}: unreadable envelope", q.display()))?;
                Ok(Some(Entry {
                    stem: stem.to_string(),
                    envelope,
                    written: None,
                }))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", env.display())),
        }
    }

    /// At a clean stop: entries still in the journal (their first attempt unfinished) are
    /// written out as `.q` files in their accepted form, and the journal's segments go, so a
    /// stopped spool is files only. Returns how many were written out.
    pub fn write_out_journal(&self) -> anyhow::Result<usize> {
        let mut written = Vec::new();
        let mut files = Vec::new();
        for (stem, _) in self.journal.entries() {
            if let Some(body) = self.journal.read(&stem)? {
                files.push((self.queue_path(&stem), body));
                written.push(stem);
            }
        }
        write_durable_all(&self.dir, &files)?;
        for stem in &written {
            if !self.journal.resolve(stem) {
                // Its delivery finished meanwhile: the file must not bring it back.
                let _ = fs::remove_file(self.queue_path(stem));
            }
        }
        self.journal.close();
        Ok(written.len())
    }

    /// Writes, syncs and removes a probe file, in the spool and in its journal: the spool can
    /// take mail (`/readyz`).
    pub fn probe(&self) -> anyhow::Result<()> {
        for dir in [&self.dir, self.journal.dir()] {
            let path = dir.join(".probe.tmp");
            write_durable(&path.with_extension("probe"), b"ok")?;
            fs::remove_file(path.with_extension("probe"))?;
        }
        Ok(())
    }

    /// Entries in the spool now.
    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// A counter that moves whenever an entry is stored, updated or removed.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Free bytes on the spool's file system, as of at most a second ago.
    pub fn free_bytes(&self) -> Option<u64> {
        let mut cached = self.free.lock().expect("not poisoned");
        if let Some((at, bytes)) = *cached
            && at.elapsed() < std::time::Duration::from_secs(1)
        {
            return Some(bytes);
        }
        let bytes = self.statvfs_free()?;
        *cached = Some((std::time::Instant::now(), bytes));
        Some(bytes)
    }

    fn statvfs_free(&self) -> Option<u64> {
        let path = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: statvfs is plain old data; all-zero is a valid value to be overwritten.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is a valid NUL-terminated string and `st` a writable statvfs.
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
    }
}

const MAGIC: &str = "PCSPOOL1 ";

/// Stems are `<trace id>.<tenant>`: ASCII letters, digits, '.', '_', '-'. Anything else (a path,
/// an over-long name) cannot be spooled.
fn plausible_stem(stem: &str) -> bool {
    !stem.is_empty()
        && stem.len() <= 200
        && !stem.starts_with('.')
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// An entry's one-file form and where its message starts: `PCSPOOL1 <n>\n`, the envelope's
/// JSON (n bytes), the message.
fn queue_file(envelope: &Envelope, message: &[u8]) -> (Vec<u8>, usize) {
    let json = serde_json::to_vec(envelope).expect("envelopes serialize");
    let mut bytes = Vec::with_capacity(32 + json.len() + message.len());
    bytes.extend_from_slice(format!("{MAGIC}{}\n", json.len()).as_bytes());
    bytes.extend_from_slice(&json);
    let body = bytes.len();
    bytes.extend_from_slice(message);
    (bytes, body)
}

/// The envelope's and the message's byte ranges in a one-file spool entry; `None` if `bytes`
/// is not one (or is cut short before the message starts).
fn split_queue_file(bytes: &[u8]) -> Option<(std::ops::Range<usize>, usize)> {
    let rest = bytes.strip_prefix(MAGIC.as_bytes())?;
    let nl = rest.iter().take(20).position(|&b| b == b'\n')?;
    let len: usize = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
    let start = MAGIC.len() + nl + 1;
    let end = start.checked_add(len)?;
    (end <= bytes.len()).then_some((start..end, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::maildir::deliver_maildir;
    use portcullis_store::TraceRecord;
    use std::fs::OpenOptions;
    use std::io::Write;

    /// T1 for contoso, from a@x.org to b@contoso.com, not yet attempted.
    fn envelope() -> Envelope {
        Envelope {
            trace_id: "T1".into(),
            tenant: "contoso".into(),
            mail_from: "a@x.org".into(),
            recipients: vec!["b@contoso.com".into()],
            trace: TraceRecord::default(),
            state: Vec::new(),
            attempts: 0,
            first_attempt_us: 0,
            is_dsn: false,
            next_attempt_us: 0,
        }
    }

    #[test]
    fn store_recover_remove() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path().join("spool")).unwrap();
        let env = envelope();
        let e = spool.store(&env, b"Subject: x\r\n\r\nhi\r\n").unwrap();
        // A half-written entry from a crash is discarded on recovery.
        fs::write(dir.path().join("spool/T2.contoso.msg"), b"partial").unwrap();
        let found = spool.recover().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].stem, "T1.contoso");
        assert!(!dir.path().join("spool/T2.contoso.msg").exists());
        let paths = deliver_maildir(
            &dir.path().join("mail"),
            "mx",
            &env,
            &env.recipients,
            &spool.read_message(&e).unwrap(),
        )
        .unwrap();
        let text = fs::read_to_string(&paths[0]).unwrap();
        assert!(
            text.starts_with("Return-Path: <a@x.org>\r\nDelivered-To: b@contoso.com\r\nSubject: x")
        );
        assert!(paths[0].starts_with(dir.path().join("mail/contoso/b@contoso.com/new")));
        spool.remove(&e).unwrap();
        assert!(spool.recover().unwrap().is_empty());
    }

    fn names(d: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn journaled_until_the_first_attempt_then_one_file_with_later_states_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path().join("spool")).unwrap();
        let mut env = envelope();
        // A message that looks like a spool header itself stays a message.
        let message = b"PCSPOOL1 3\nabcSubject: x\r\n\r\nhi\r\n";
        let e = spool.store(&env, message).unwrap();
        assert!(names(&dir.path().join("spool")).is_empty());
        assert_eq!(
            names(&dir.path().join("spool-journal")),
            ["0000000000000000.done", "0000000000000000.j"]
        );
        assert_eq!(spool.read_message(&e).unwrap(), message);
        let unkept = Entry {
            written: None,
            ..e.clone()
        };
        assert_eq!(spool.read_message(&unkept).unwrap(), message);
        assert_eq!(
            spool.get("T1.contoso").unwrap().unwrap().envelope.attempts,
            0
        );
        assert_eq!(spool.list().unwrap().len(), 1);
        // The first attempt did not finish: a file of its own, with that state.
        env.attempts = 1;
        spool
            .update(&Entry {
                envelope: env.clone(),
                ..e.clone()
            })
            .unwrap();
        assert_eq!(names(&dir.path().join("spool")), ["T1.contoso.q"]);
        assert!(!spool.journal.contains("T1.contoso"));
        assert_eq!(
            spool.get("T1.contoso").unwrap().unwrap().envelope.attempts,
            1
        );
        assert_eq!(spool.read_message(&e).unwrap(), message);
        // A later state goes beside it and wins; the message is unchanged.
        env.attempts = 3;
        spool
            .update(&Entry {
                stem: e.stem.clone(),
                envelope: env.clone(),
                written: None,
            })
            .unwrap();
        let listed = spool.recover().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].envelope.attempts, 3);
        assert_eq!(spool.read_message(&listed[0]).unwrap(), message);
        // A removal cut short after the commit file leaves an .env: recovery drops it.
        fs::remove_file(dir.path().join("spool/T1.contoso.q")).unwrap();
        assert!(spool.get("T1.contoso").unwrap().is_none());
        assert!(spool.recover().unwrap().is_empty());
        assert!(names(&dir.path().join("spool")).is_empty());
        // A large envelope (beyond the first read of a file) is read whole.
        env.recipients = (0..5000).map(|i| format!("user{i}@contoso.com")).collect();
        env.trace_id = "T2".into();
        let big = spool.store(&env, b"Subject: big\r\n\r\n").unwrap();
        spool.update(&big).unwrap();
        let got = spool.get("T2.contoso").unwrap().unwrap();
        assert_eq!(got.envelope.recipients.len(), 5000);
        assert_eq!(spool.recover().unwrap().len(), 1);
    }

    /// A copy stored again under the same name replaces the earlier one, whose segment then goes.
    #[test]
    fn the_same_name_twice_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("spool-journal");
        let spool = Spool::open_with(dir.path().join("spool"), 1).unwrap();
        spool.store(&envelope(), b"Subject: 1\r\n\r\n").unwrap();
        let again = spool.store(&envelope(), b"Subject: 2\r\n\r\n").unwrap();
        assert_eq!(
            names(&journal),
            ["0000000000000001.done", "0000000000000001.j"]
        );
        assert_eq!(spool.list().unwrap().len(), 1);
        assert_eq!(spool.read_message(&again).unwrap(), b"Subject: 2\r\n\r\n");
        spool.remove(&again).unwrap();
        assert!(spool.list().unwrap().is_empty());
    }

    /// A clean stop leaves files only: the journal's unfinished entries as `.q` files.
    #[test]
    fn a_clean_stop_writes_the_journal_out() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path().join("spool")).unwrap();
        let mut env = envelope();
        let done = spool.store(&env, b"Subject: 1\r\n\r\n").unwrap();
        env.trace_id = "T2".into();
        spool.store(&env, b"Subject: 2\r\n\r\n").unwrap();
        spool.remove(&done).unwrap();
        assert_eq!(spool.write_out_journal().unwrap(), 1);
        assert_eq!(names(&dir.path().join("spool")), ["T2.contoso.q"]);
        assert!(names(&dir.path().join("spool-journal")).is_empty());
        drop(spool);
        let spool = Spool::open(dir.path().join("spool")).unwrap();
        let found = spool.recover().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            spool.read_message(&found[0]).unwrap(),
            b"Subject: 2\r\n\r\n"
        );
    }

    /// A crash leaves segments: every acknowledged entry not resolved comes back as a file,
    /// resolved ones do not, a frame cut short or damaged (never acknowledged) is dropped, and
    /// the segments go. While running, a segment goes once all its entries are resolved.
    #[test]
    fn the_journal_is_replayed_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("spool-journal");
        // One entry per segment.
        let spool = Spool::open_with(dir.path().join("spool"), 1).unwrap();
        let entries: Vec<Entry> = (1..=5)
            .map(|i| {
                let mut env = envelope();
                env.trace_id = format!("T{i}");
                spool
                    .store(&env, format!("Subject: {i}\r\n\r\nbody {i}\r\n").as_bytes())
                    .unwrap()
            })
            .collect();
        assert_eq!(names(&journal).len(), 10);
        spool.remove(&entries[0]).unwrap(); // delivered
        let mut deferred = entries[1].clone();
        deferred.envelope.attempts = 1;
        spool.update(&deferred).unwrap(); // written out
        assert_eq!(
            names(&journal),
            [
                "0000000000000002.done",
                "0000000000000002.j",
                "0000000000000003.done",
                "0000000000000003.j",
                "0000000000000004.done",
                "0000000000000004.j"
            ]
        );
        spool.remove(&entries[2]).unwrap();
        // The crash: a frame cut short after the last one, and one whose bytes are damaged.
        let last = journal.join("0000000000000004.j");
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        f.write_all(b"PCJ1 T9.contoso 100 0badc0de\nSubject: cut")
            .unwrap();
        let damaged = journal.join("0000000000000003.j");
        let mut bytes = fs::read(&damaged).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x20;
        fs::write(&damaged, bytes).unwrap();
        drop(spool);

        let spool = Spool::open(dir.path().join("spool")).unwrap();
        let found = spool.recover().unwrap();
        let stems: Vec<&str> = found.iter().map(|e| e.stem.as_str()).collect();
        assert_eq!(stems, ["T2.contoso", "T5.contoso"]);
        assert_eq!(found[0].envelope.attempts, 1);
        assert_eq!(
            spool.read_message(&found[1]).unwrap(),
            b"Subject: 5\r\n\r\nbody 5\r\n"
        );
        assert!(names(&journal).is_empty());
        assert_eq!(spool.len(), 2);
        // New segments are numbered on from there.
        let mut env = envelope();
        env.trace_id = "T6".into();
        spool.store(&env, b"Subject: 6\r\n\r\n").unwrap();
        assert_eq!(
            names(&journal),
            ["0000000000000005.done", "0000000000000005.j"]
        );
    }
}
