//! The queue: where an accepted message lives until every recipient has a final outcome — the
//! spool and its journal (durability), delivery (routes, retries, bounces) and its transports
//! (Maildir, SMTP/LMTP downstream).

pub mod delivery;
pub mod downstream;
pub mod dsn;
pub mod envelope;
pub mod index;
pub mod journal;
pub mod maildir;
pub mod spool;
