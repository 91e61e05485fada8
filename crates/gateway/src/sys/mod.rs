//! Operating-system helpers that know nothing of the rest of the crate: the clock, durable file
//! writes and their group commit, thread priorities, the journal.

pub mod clock;
pub mod durable;
pub mod group_sync;
pub mod journal;
pub mod priority;
