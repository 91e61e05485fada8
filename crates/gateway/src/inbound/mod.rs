//! The SMTP side: one connection's session driver, stage by stage, from the greeting to the trace
//! record of each tenant copy.

pub mod admission;
pub mod connection;
mod data;
mod deadlines;
mod headers;
mod persist;
pub mod proxy;
mod rcpt;
mod record;
mod spf_check;
