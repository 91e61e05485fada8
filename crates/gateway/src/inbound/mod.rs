//! The SMTP side: one connection's session driver, stage by stage, from the greeting to the trace
//! record of each tenant copy.

pub mod connection;
mod data;
mod headers;
mod persist;
mod rcpt;
mod record;
