//! Failed logins per client address: past [`LOGIN_FAILURES`] in [`LOGIN_WINDOW`], the address
//! waits for the window to end (per node: each node counts its own).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins allowed per client address in [`LOGIN_WINDOW`].
const LOGIN_FAILURES: u32 = 10;
const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failed logins per client address, in a window: past [`LOGIN_FAILURES`], the address waits
/// for the window to end (per node: each node counts its own).
#[derive(Default)]
pub(super) struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginLimiter {
    pub(super) fn blocked(&self, address: IpAddr) -> Option<Duration> {
        let map = self.failures.lock().expect("not poisoned");
        let (n, since) = map.get(&address)?;
        let left = LOGIN_WINDOW.checked_sub(since.elapsed())?;
        (*n >= LOGIN_FAILURES).then_some(left)
    }

    pub(super) fn failed(&self, address: IpAddr) {
        let mut map = self.failures.lock().expect("not poisoned");
        // Bounded: old windows are forgotten when the table grows.
        if map.len() >= 10_000 {
            map.retain(|_, (_, since)| since.elapsed() < LOGIN_WINDOW);
        }
        let entry = map.entry(address).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= LOGIN_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}
