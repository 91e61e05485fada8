//! The spool's journal: where an accepted copy is made durable before its `250`. Copies are
//! appended to a segment file (`<seq>.j` in `spool-journal/`, beside `spool/`), each a frame
//! `PCJ1 <stem> <length> <crc32>\n` followed by the entry in its `.q` form, and made durable by
//! one `fdatasync` shared by the writers of the moment. No file is created, renamed or removed
//! per message: that is what a file per copy cost most (BENCHMARKS.md).
//!
//! An entry lives in the journal until its first delivery attempt ends. Finished, it is
//! *resolved*: its stem is appended to the segment's `<seq>.done` (not synced). Not finished, the
//! spool writes it out as a `.q` file of its own (retries, `queue` commands and recovery as
//! before) and then resolves it. A segment is deleted once every entry in it is resolved and
//! nothing more is appended to it. At start, segments left by an earlier run are replayed before
//! the listener opens: every complete frame (length and checksum) not listed in its `.done`
//! becomes a `.q` file, then the segment goes. A frame cut short by a crash was never
//! acknowledged (its sync had not returned), nor was anything after it. A crash of the host
//! can lose the last `.done` lines: those copies are delivered again (at least once, never
//! lost), as a crash between a delivery and the removal of its `.q` does.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::queue::envelope::Envelope;
use crate::sys::group_sync::GroupSync;

const FRAME: &str = "PCJ1";
/// A segment takes new entries until it is this long.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// An idle segment (every entry resolved) this long is deleted rather than appended to.
const RETIRE_IDLE_BYTES: u64 = 1 << 20;

pub struct Journal {
    dir: PathBuf,
    segment_bytes: u64,
    state: Mutex<State>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("dir", &self.dir).finish()
    }
}

#[derive(Default)]
struct State {
    /// The segment new entries are appended to.
    current: Option<u64>,
    next_seq: u64,
    segments: HashMap<u64, Segment>,
    /// Entries whose only durable copy is a frame, by stem.
    entries: HashMap<String, Journaled>,
}

struct Segment {
    file: Arc<File>,
    len: u64,
    sync: Arc<GroupSync>,
    /// Entries not resolved yet.
    live: usize,
    done: File,
}

struct Journaled {
    seq: u64,
    /// Where the entry's `.q` form is in the segment.
    offset: u64,
    len: usize,
    envelope: Envelope,
}

impl Journal {
    /// New segments are numbered after those already in `dir` (left for [`Journal::recover`]).
    pub fn open(dir: PathBuf, segment_bytes: u64) -> anyhow::Result<Journal> {
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let next_seq = segment_files(&dir)?.last().map_or(0, |(seq, _)| seq + 1);
        Ok(Journal {
            dir,
            segment_bytes,
            state: Mutex::new(State {
                next_seq,
                ..Default::default()
            }),
        })
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Appends an entry (`body`: its `.q` form) and returns once it is on disk.
    pub fn append(&self, stem: &str, envelope: &Envelope, body: &[u8]) -> anyhow::Result<()> {
        let header = format!(
            "{FRAME} {stem} {} {:08x}\n",
            body.len(),
            crc32fast::hash(body)
        );
        let (file, sync) = {
            let mut st = self.state.lock().expect("not poisoned");
            let seq = self.current(&mut st)?;
            // The same name twice (not made by the gateway, whose ids are unique): the later
            // copy replaces the earlier, as a file of the same name would.
            if let Some(old) = st.entries.remove(stem) {
                if let Some(seg) = st.segments.get_mut(&old.seq) {
                    seg.live -= 1;
                }
                self.retire_if_done(&mut st, old.seq);
            }
            let seg = st.segments.get_mut(&seq).expect("current segment");
            let offset = seg.len;
            // Appended in order under the lock: a frame is never written after a gap, and a
            // failed write is cut off again.
            let written = seg
                .file
                .write_all_at(header.as_bytes(), offset)
                .and_then(|()| seg.file.write_all_at(body, offset + header.len() as u64));
            if let Err(e) = written {
                let _ = seg.file.set_len(offset);
                return Err(e).context("writing to the spool journal");
            }
            seg.len += (header.len() + body.len()) as u64;
            seg.live += 1;
            let (file, sync) = (seg.file.clone(), seg.sync.clone());
            st.entries.insert(
                stem.to_string(),
                Journaled {
                    seq,
                    offset: offset + header.len() as u64,
                    len: body.len(),
                    envelope: envelope.clone(),
                },
            );
            (file, sync)
        };
        if let Err(e) = sync.sync(|| file.sync_data().context("syncing the spool journal")) {
            // Not acknowledged, so not delivered either.
            self.resolve(stem);
            return Err(e);
        }
        Ok(())
    }

    /// The segment to append to; a new one when there is none or it is full.
    fn current(&self, st: &mut State) -> anyhow::Result<u64> {
        if let Some(seq) = st.current {
            if st.segments[&seq].len < self.segment_bytes {
                return Ok(seq);
            }
            st.current = None;
            self.retire_if_done(st, seq);
        }
        let seq = st.next_seq;
        let path = self.dir.join(format!("{seq:016x}.j"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let done = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path.with_extension("done"))
            .with_context(|| format!("creating {}", path.with_extension("done").display()))?;
        // The segment's name on disk before anything in it is acknowledged.
        crate::sys::durable::sync_dir(&self.dir)?;
        st.next_seq += 1;
        st.segments.insert(
            seq,
            Segment {
                file: Arc::new(file),
                len: 0,
                sync: Default::default(),
                live: 0,
                done,
            },
        );
        st.current = Some(seq);
        Ok(seq)
    }

    /// Deletes a segment that takes no more entries and has none unresolved.
    fn retire_if_done(&self, st: &mut State, seq: u64) {
        self.retire(st, seq, RETIRE_IDLE_BYTES);
    }

    /// Deletes segment `seq` if every entry in it is resolved; the current one only if it is
    /// `idle_bytes` long or longer.
    fn retire(&self, st: &mut State, seq: u64, idle_bytes: u64) {
        let Some(seg) = st.segments.get(&seq) else {
            return;
        };
        if seg.live > 0 {
            return;
        }
        if st.current == Some(seq) {
            if seg.len < idle_bytes {
                return;
            }
            st.current = None;
        }
        st.segments.remove(&seq);
        let path = self.dir.join(format!("{seq:016x}.j"));
        let _ = fs::remove_file(&path);
        let _ = fs::remove_file(path.with_extension("done"));
    }

    /// The entry's first attempt is over (or it was deleted, or written out to a file of its
    /// own): recovery must not bring it back. False if it was not in the journal (any more).
    pub fn resolve(&self, stem: &str) -> bool {
        let mut st = self.state.lock().expect("not poisoned");
        let Some(j) = st.entries.remove(stem) else {
            return false;
        };
        if let Some(seg) = st.segments.get_mut(&j.seq) {
            seg.live -= 1;
            if let Err(e) = seg.done.write_all(format!("{stem}\n").as_bytes()) {
                // Only a duplicate delivery after a crash at stake.
                tracing::warn!("spool journal: cannot mark {stem} resolved: {e}");
            }
        }
        self.retire_if_done(&mut st, j.seq);
        true
    }

    /// Deletes every segment whose entries are all resolved, the current one too (at a clean
    /// stop, after the entries left were written out).
    pub fn close(&self) {
        let mut st = self.state.lock().expect("not poisoned");
        let seqs: Vec<u64> = st.segments.keys().copied().collect();
        for seq in seqs {
            self.retire(&mut st, seq, 0);
        }
    }

    pub fn contains(&self, stem: &str) -> bool {
        let st = self.state.lock().expect("not poisoned");
        st.entries.contains_key(stem)
    }

    /// The envelope an entry was accepted with.
    pub fn envelope(&self, stem: &str) -> Option<Envelope> {
        let st = self.state.lock().expect("not poisoned");
        st.entries.get(stem).map(|j| j.envelope.clone())
    }

    /// Every entry in the journal now, with the envelope it was accepted with.
    pub fn entries(&self) -> Vec<(String, Envelope)> {
        let st = self.state.lock().expect("not poisoned");
        st.entries
            .iter()
            .map(|(stem, j)| (stem.clone(), j.envelope.clone()))
            .collect()
    }

    /// An entry's `.q` form, read back from its segment.
    pub fn read(&self, stem: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let (file, offset, len) = {
            let st = self.state.lock().expect("not poisoned");
            let Some(j) = st.entries.get(stem) else {
                return Ok(None);
            };
            (st.segments[&j.seq].file.clone(), j.offset, j.len)
        };
        let mut body = vec![0; len];
        file.read_exact_at(&mut body, offset)
            .context("reading the spool journal")?;
        Ok(Some(body))
    }

    /// Replays the segments an earlier run left (not this one's), a segment at a time: `keep`
    /// gets its complete frames not resolved (stem, body) and must have them on disk when it
    /// returns; then the segment is deleted.
    pub fn recover(
        &self,
        mut keep: impl FnMut(&[(&str, &[u8])]) -> anyhow::Result<()>,
    ) -> anyhow::Result<usize> {
        let ours: HashSet<u64> = {
            let st = self.state.lock().expect("not poisoned");
            st.segments.keys().copied().collect()
        };
        let segments: Vec<(u64, PathBuf)> = segment_files(&self.dir)?
            .into_iter()
            .filter(|(seq, _)| !ours.contains(seq))
            .collect();
        let mut kept = 0;
        for (_, path) in &segments {
            let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let done: HashSet<String> = fs::read_to_string(path.with_extension("done"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            let (frames, rest) = frames(&bytes);
            if rest > 0 {
                tracing::warn!(
                    segment = %path.display(),
                    bytes = rest,
                    "spool journal: the end of a segment is not a complete entry (a write cut short by a crash, never acknowledged); dropped"
                );
            }
            let unresolved: Vec<(&str, &[u8])> = frames
                .into_iter()
                .filter(|(stem, _)| !done.contains(*stem))
                .collect();
            keep(&unresolved)?;
            kept += unresolved.len();
            fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
            let _ = fs::remove_file(path.with_extension("done"));
        }
        // Leftover `.done` files of segments already gone.
        for item in fs::read_dir(&self.dir)? {
            let path = item?.path();
            if path.extension().is_some_and(|e| e == "done") && !path.with_extension("j").exists() {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(kept)
    }
}

/// The segments in `dir`, in order.
fn segment_files(dir: &std::path::Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for item in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = item?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".j"))
            .and_then(|n| u64::from_str_radix(n, 16).ok());
        if let Some(seq) = seq {
            segments.push((seq, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// The complete frames of a segment, in order, up to the first that is cut short or damaged
/// (a crash while it was written: neither it nor anything after it was acknowledged), and how
/// many bytes follow them.
fn frames(bytes: &[u8]) -> (Vec<(&str, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(frame) = frame_at(&bytes[at..]) else {
            break;
        };
        out.push((frame.0, frame.1));
        at += frame.2;
    }
    (out, bytes.len() - at)
}

/// The frame at the start of `bytes`: stem, body and its whole length.
fn frame_at(bytes: &[u8]) -> Option<(&str, &[u8], usize)> {
    let nl = bytes.iter().take(512).position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let mut fields = header.split(' ');
    if fields.next()? != FRAME {
        return None;
    }
    let stem = fields.next()?;
    let len: usize = fields.next()?.parse().ok()?;
    let crc = u32::from_str_radix(fields.next()?, 16).ok()?;
    if fields.next().is_some() {
        return None;
    }
    let start = nl + 1;
    let end = start.checked_add(len)?;
    let body = bytes.get(start..end)?;
    (crc32fast::hash(body) == crc).then_some((stem, body, end))
}
