//! The running gateway's state, shared by every SMTP session and the admin API: configuration,
//! the live directory, TLS, the spool and delivery, the trace writer, authentication, the store.

use std::sync::Arc;

use portcullis_smtp::SessionConfig;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::directory::Live;
use crate::queue::delivery::Delivery;
use crate::queue::spool::Spool;
use crate::tls::Tls;
use crate::trace::TraceSender;

/// Everything a connection needs, shared by all connections.
pub struct Shared {
    pub config: Arc<Config>,
    /// Swapped whole on SIGHUP; a session keeps the limits it started with.
    pub session_config: arc_swap::ArcSwap<SessionConfig>,
    pub directory: Arc<Live>,
    /// Swapped whole on SIGHUP: a new STARTTLS uses the renewed certificate, sessions in flight
    /// keep theirs.
    pub tls: Option<arc_swap::ArcSwap<Tls>>,
    pub spool: Spool,
    pub trace: TraceSender,
    pub delivery: Delivery,
    pub auth: Arc<Authenticator>,
    pub store: portcullis_store::Store,
    /// Recipient verification's cache and probes.
    pub verifier: crate::recipients::Verifier,
}

impl Shared {
    /// Why new mail cannot be accepted now, if it cannot: the queue is full or the spool's disk
    /// nearly is (a 250 must never be given for mail that could not be kept).
    pub fn overloaded(&self) -> Option<String> {
        let queued = self.spool.len();
        if queued >= self.config.max_queue {
            return Some(format!(
                "{queued} messages queued (delivery.max_queue {})",
                self.config.max_queue
            ));
        }
        match self.spool.free_bytes() {
            Some(free) if free < self.config.min_free_space => {
                Some(format!("{} MiB free on the spool's disk", free / 1048576))
            }
            _ => None,
        }
    }
}
