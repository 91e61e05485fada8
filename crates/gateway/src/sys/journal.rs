//! Whether standard error is connected to the systemd journal.

/// True when `$JOURNAL_STREAM` (set by systemd for a service whose output goes to the journal)
/// names the device and inode of our standard error — the check systemd.exec(5) prescribes, so
/// that a child whose stderr was redirected elsewhere does not inherit the answer.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat writes only into the stat buffer we pass; fd 2 may be closed (then it fails).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    st.st_dev == dev && st.st_ino == ino
}
