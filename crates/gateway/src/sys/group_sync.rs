//! Group commit: one sync shared by the writers waiting for it.

/// Group commit of a sync (the spool directory's fsync, a journal segment's fdatasync). Every
/// writer must have its writes on disk before it acknowledges; one sync started after a writer's
/// writes covers them, so writers arriving while a sync runs wait for the next one and share it,
/// instead of each paying (and queueing behind) a sync of its own.
#[derive(Debug, Default)]
pub struct GroupSync {
    state: std::sync::Mutex<GroupState>,
    done: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct GroupState {
    /// Tickets handed out: a writer takes one after its renames.
    requested: u64,
    /// Every ticket up to this one is covered by a finished sync.
    synced: u64,
    running: bool,
    /// Ticket ranges whose sync failed, with the error (the latest few).
    failed: std::collections::VecDeque<(u64, u64, String)>,
}

impl GroupSync {
    pub fn sync(&self, sync: impl Fn() -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut g = self.state.lock().expect("not poisoned");
        g.requested += 1;
        let ticket = g.requested;
        loop {
            if g.synced >= ticket {
                return match g
                    .failed
                    .iter()
                    .find(|(lo, hi, _)| (*lo..=*hi).contains(&ticket))
                {
                    Some((_, _, e)) => Err(anyhow::anyhow!("{e}")),
                    None => Ok(()),
                };
            }
            if g.running {
                g = self.done.wait(g).expect("not poisoned");
                continue;
            }
            // Lead a sync covering every ticket handed out so far.
            let (from, upto) = (g.synced + 1, g.requested);
            g.running = true;
            drop(g);
            let result = sync();
            g = self.state.lock().expect("not poisoned");
            g.running = false;
            g.synced = upto;
            if let Err(e) = result {
                g.failed.push_back((from, upto, format!("{e:#}")));
                if g.failed.len() > 64 {
                    g.failed.pop_front();
                }
            }
            self.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::durable::sync_dir;

    #[test]
    fn directory_syncs_are_shared_and_failures_reach_their_writers() {
        let dir = tempfile::tempdir().unwrap();
        let group = std::sync::Arc::new(GroupSync::default());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (group, path) = (group.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        group.sync(|| sync_dir(&path)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        {
            let g = group.state.lock().unwrap();
            assert_eq!((g.requested, g.synced, g.running), (800, 800, false));
            assert!(g.failed.is_empty());
        }
        // A sync that fails fails for the writers it covered, not for later ones.
        let gone = dir.path().join("gone");
        assert!(group.sync(|| sync_dir(&gone)).is_err());
        group.sync(|| sync_dir(dir.path())).unwrap();
    }
}
