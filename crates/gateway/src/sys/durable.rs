//! Durable file writes: a file is on disk, under its final name, before the caller goes on.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Writes `path` via a temporary file, fsyncs it and renames it into place.
pub fn write_durable(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// New files in `dir`, durably, with one directory sync: a batch at a time written aside, then
/// each fsynced (after the first, the file system's journal commit it forced has usually taken
/// the others' data too), then renamed into place.
pub fn write_durable_all(dir: &Path, files: &[(PathBuf, impl AsRef<[u8]>)]) -> anyhow::Result<()> {
    // Bounded: every file of a batch is open at once.
    for batch in files.chunks(256) {
        let mut open = Vec::with_capacity(batch.len());
        for (path, bytes) in batch {
            let tmp = path.with_extension("tmp");
            let mut f =
                File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            f.write_all(bytes.as_ref())
                .with_context(|| format!("writing {}", tmp.display()))?;
            open.push((f, tmp, path));
        }
        for (f, tmp, _) in &open {
            f.sync_all()
                .with_context(|| format!("syncing {}", tmp.display()))?;
        }
        for (_, tmp, path) in &open {
            fs::rename(tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
        }
    }
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Creates a file readable only by its owner (the admin token, the TLS key).
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()?;
    Ok(())
}
