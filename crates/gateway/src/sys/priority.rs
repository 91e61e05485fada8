//! Thread priorities: background work (deliveries, the trace writer) runs below the SMTP
//! sessions.

/// How much lower than the sessions' the priority of background threads is (nice steps).
const BACKGROUND_NICE: i32 = 5;

/// Sets the calling thread's scheduling priority [`BACKGROUND_NICE`] below the process's (its
/// main thread's); threads it starts later inherit it. Absolute, not relative to the calling
/// thread's: a runtime's threads may be started by one of its own, already lowered. For threads
/// whose work no SMTP reply waits for (deliveries, the trace writer): when the cores are busy,
/// the sessions' workers get the larger share, so a reply waits less behind background work;
/// when they are idle, it changes nothing. Lowering a priority needs no privilege; where it
/// fails the thread keeps running as it was.
pub fn background_priority() {
    // On Linux nice values are per thread: PRIO_PROCESS with the process id reads the main
    // thread's, with 0 it sets the calling thread's. getpriority returns the value itself, so -1
    // is an error only if errno says so.
    // SAFETY: errno is the calling thread's; these calls only read and set scheduling attributes.
    let result = unsafe {
        *libc::__errno_location() = 0;
        let base = libc::getpriority(libc::PRIO_PROCESS, libc::getpid() as libc::id_t);
        if base == -1 && *libc::__errno_location() != 0 {
            -1
        } else {
            libc::setpriority(libc::PRIO_PROCESS, 0, (base + BACKGROUND_NICE).min(19))
        }
    };
    if result == -1 {
        let e = std::io::Error::last_os_error();
        tracing::debug!("cannot lower a background thread's priority: {e}");
    }
}
