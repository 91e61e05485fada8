//! Sans-IO ESMTP server protocol for Portcullis: command parsing, the one reply table, the
//! smuggling-safe DATA receiver and the session state machine.
//!
//! Deliberately absent: sockets, tokio, clocks, policy and storage. The gateway drives a
//! [`Session`] with bytes and answers its [`Step::Decide`] stages. Malformed input is never
//! an error or a panic here; it is a value that becomes a [`Reply`].
//!
//! A driver in miniature (the real one reads and writes a socket, and gathers facts for
//! each `Decide` before answering it):
//!
//! ```
//! use std::sync::Arc;
//! use portcullis_smtp::{reply, Session, SessionConfig, Stage, Step};
//!
//! let mut session = Session::new(Arc::new(SessionConfig::default()));
//! let mut out = Vec::new();
//! session.greeting().write_to(&mut out);
//! session.feed(b"EHLO client.example\r\nMAIL FROM:<a@a.example>\r\nQUIT\r\n");
//! loop {
//!     match session.step() {
//!         Step::Reply(r) => r.write_to(&mut out),
//!         Step::Decide(Stage::Mail { .. }) => session.answer(reply::SENDER_OK),
//!         Step::Decide(_) => session.answer(reply::TEMPORARY_ERROR),
//!         Step::NeedInput | Step::StartTls => unreachable!("all input was given"),
//!         Step::Close => break,
//!     }
//! }
//! assert!(out.ends_with(b"250 2.1.0 Sender OK\r\n221 2.0.0 localhost closing connection\r\n"));
//! ```

pub mod address;
pub mod command;
pub mod data;
pub mod reply;
pub mod session;

pub use address::{Address, ReversePath};
pub use command::{BodyType, MailParams};
pub use reply::Reply;
pub use session::{Session, SessionConfig, Stage, Step};
