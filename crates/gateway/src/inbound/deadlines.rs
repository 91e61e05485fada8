//! The session's deadlines beside the idle timer (postscreen's job): a client that trickles one
//! byte every few seconds restarts the idle timer forever, so a command line, the message data
//! and the session as a whole each have a deadline of their own (`[smtp] command_timeout`,
//! `data_timeout`, `session_timeout`). Each ends the session with a `421 4.4.2` of its own.

use std::time::Duration;

use portcullis_smtp::{Reply, reply};
use tokio::time::Instant;

use crate::config::Config;

/// Which deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Deadline {
    Command,
    Data,
    Session,
}

impl Deadline {
    /// The label in `portcullis_session_deadlines_total` and the log.
    pub(super) fn name(self) -> &'static str {
        match self {
            Deadline::Command => "command",
            Deadline::Data => "data",
            Deadline::Session => "session",
        }
    }

    /// Why, in the words of the trace event.
    pub(super) fn why(self) -> &'static str {
        match self {
            Deadline::Command => "command_timeout: a command line did not arrive in time",
            Deadline::Data => "data_timeout: the message data did not arrive in time",
            Deadline::Session => "session_timeout: the session lasted too long",
        }
    }

    pub(super) fn reply(self, host: &str) -> Reply {
        match self {
            Deadline::Command => reply::command_timeout(host),
            Deadline::Data => reply::data_timeout(host),
            Deadline::Session => reply::session_timeout(host),
        }
    }
}

/// The running deadlines of one session.
pub(super) struct Deadlines {
    command_timeout: Duration,
    data_timeout: Duration,
    session: Instant,
    /// The next command line must be whole by then (set when a reply goes out).
    command: Instant,
    /// The message data must be whole by then (set when DATA's 354 went out).
    data: Option<Instant>,
}

impl Deadlines {
    pub(super) fn new(config: &Config) -> Deadlines {
        let now = Instant::now();
        Deadlines {
            command_timeout: config.command_timeout,
            data_timeout: config.data_timeout,
            session: now + config.session_timeout,
            command: now + config.command_timeout,
            data: None,
        }
    }

    /// A reply was written: the client's next command line has `command_timeout` from now.
    pub(super) fn replied(&mut self) {
        self.command = Instant::now() + self.command_timeout;
    }

    /// Starts the data deadline when the DATA phase begins, forgets it when it ends.
    pub(super) fn track_data(&mut self, in_data: bool) {
        match (in_data, self.data) {
            (true, None) => self.data = Some(Instant::now() + self.data_timeout),
            (false, Some(_)) => self.data = None,
            _ => {}
        }
    }

    /// How long the next read may wait: the idle timeout, or less when a deadline is nearer.
    pub(super) fn wait(&self, idle: Duration, in_data: bool) -> Duration {
        let now = Instant::now();
        let nearest = self.session.min(self.phase(in_data));
        idle.min(nearest.saturating_duration_since(now))
    }

    /// How long a write may take: the idle timeout, or what is left of the session (at least
    /// a moment, so the 421 of a deadline still goes out).
    pub(super) fn write_limit(&self, idle: Duration) -> Duration {
        let left = self.session.saturating_duration_since(Instant::now());
        idle.min(left.max(Duration::from_secs(1)))
    }

    /// After a read timed out: the deadline that passed, or `None` when it was the idle timer.
    pub(super) fn passed(&self, in_data: bool) -> Option<Deadline> {
        let now = Instant::now();
        if now >= self.session {
            Some(Deadline::Session)
        } else if now >= self.phase(in_data) {
            Some(if in_data {
                Deadline::Data
            } else {
                Deadline::Command
            })
        } else {
            None
        }
    }

    fn phase(&self, in_data: bool) -> Instant {
        match (in_data, self.data) {
            (true, Some(d)) => d,
            _ => self.command,
        }
    }
}
