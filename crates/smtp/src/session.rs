//! The session state machine: bytes in, [`Step`]s out.
//!
//! The driver feeds received bytes, then calls [`Session::step`] until it returns
//! `NeedInput`, `StartTls`, `Decide` or `Close`, writing every `Reply` it yields. Commands
//! are taken from the buffer one at a time, so PIPELINING needs no special handling: a
//! decision (`Decide`) holds back the following commands until the driver answers it.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::address::{Address, ReversePath};
use crate::command::{self, Command, MailParams};
use crate::data::{DataOutcome, DataReceiver, Feed};
use crate::reply::{self, Reply};

/// Per-listener limits and identity; shared by all sessions.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub hostname: String,
    /// Longest command line, CRLF included.
    pub max_line_length: usize,
    /// Largest message, counted after dot-unstuffing; also announced as `SIZE`.
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// Command lines per session before `421 4.7.0 Too many commands`.
    pub max_commands: usize,
    /// 4xx/5xx replies per session tolerated; one more gets `421 4.7.0 Too many errors`.
    pub max_errors: usize,
    pub offer_starttls: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            hostname: "localhost".to_string(),
            max_line_length: 2048,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_commands: 10_000,
            max_errors: 20,
            offer_starttls: true,
        }
    }
}

/// What the driver must decide on (policy, SPF, spooling), answered with [`Session::answer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// MAIL FROM passed syntax and sequence checks; the driver decides (policy, SPF later).
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    /// RCPT TO passed syntax, sequence and recipient-count checks.
    Rcpt { to: Address },
    /// A complete, clean, size-respecting message (unstuffed, CRLF endings, no final dot line).
    Data { message: Vec<u8> },
}

/// What the driver does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write this reply to the output buffer.
    Reply(Reply),
    /// Flush output, read more bytes, call `feed()`.
    NeedInput,
    /// Flush output (the 220 was yielded just before), do the TLS handshake, then call
    /// `tls_established()`.
    StartTls,
    /// Call `answer()` before calling `step()` again.
    Decide(Stage),
    /// Flush and close; `step()` keeps returning `Close` afterwards.
    Close,
}

#[derive(Debug)]
struct Transaction {
    from: ReversePath,
    params: MailParams,
    recipients: Vec<Address>,
}

/// A `Decide` handed out and not answered yet; keeps what `answer()` needs.
#[derive(Debug)]
enum Awaiting {
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    Rcpt(Address),
    Data,
}

#[derive(Debug)]
enum Mode {
    Command,
    Data(DataReceiver),
    /// `StartTls` was yielded; waiting for `tls_established()`.
    TlsHandshake,
    Closed,
}

/// One SMTP session, from banner to close. Pure: no I/O, no clock.
#[derive(Debug)]
pub struct Session {
    config: Arc<SessionConfig>,
    /// Received, unprocessed bytes are `input[pos..]`.
    input: Vec<u8>,
    pos: usize,
    mode: Mode,
    /// Skipping the rest of a too-long command line, up to its LF.
    discarding: bool,
    out: VecDeque<Step>,
    /// A `Close` is queued: no more input is processed, no more replies are added.
    closing: bool,
    awaiting: Option<Awaiting>,
    helo: Option<String>,
    tls: bool,
    transaction: Option<Transaction>,
    errors: usize,
    commands: usize,
}

impl Session {
    pub fn new(config: Arc<SessionConfig>) -> Session {
        Session {
            config,
            input: Vec::new(),
            pos: 0,
            mode: Mode::Command,
            discarding: false,
            out: VecDeque::new(),
            closing: false,
            awaiting: None,
            helo: None,
            tls: false,
            transaction: None,
            errors: 0,
            commands: 0,
        }
    }

    /// `220 <host> ESMTP Portcullis`.
    pub fn greeting(&self) -> Reply {
        reply::greeting(&self.config.hostname)
    }

    /// Appends received bytes. Ignored after close and while a TLS handshake is pending
    /// (plaintext sent after STARTTLS must never be executed, CVE-2011-0411).
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.closing || matches!(self.mode, Mode::Closed | Mode::TlsHandshake) {
            return;
        }
        if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Advances the session; call until `NeedInput`, `StartTls`, `Decide` or `Close`.
    pub fn step(&mut self) -> Step {
        loop {
            if let Some(step) = self.out.pop_front() {
                if step == Step::Close {
                    self.close_now();
                }
                return step;
            }
            match self.mode {
                Mode::Closed => return Step::Close,
                Mode::TlsHandshake => return Step::StartTls,
                Mode::Command | Mode::Data(_) => {}
            }
            if self.awaiting.is_some() {
                // The driver called step() without answering a Decide: defer rather than
                // guess (nothing is accepted, the client retries later).
                self.answer(reply::TEMPORARY_ERROR);
                continue;
            }
            let next = if matches!(self.mode, Mode::Data(_)) {
                self.step_data()
            } else {
                self.step_command()
            };
            if let Some(step) = next {
                return step;
            }
        }
    }

    /// Answers the pending `Decide`. For Mail a 2xx starts the transaction, for Rcpt a 2xx
    /// adds the recipient, for Data the transaction ends whatever the reply. The reply is
    /// yielded by the next `step()`; a 421 is followed by `Close`. Ignored when no decision
    /// is pending.
    pub fn answer(&mut self, reply: Reply) {
        let Some(awaiting) = self.awaiting.take() else {
            return;
        };
        let accepted = (200..300).contains(&reply.code);
        match awaiting {
            Awaiting::Mail { from, params } => {
                if accepted {
                    self.transaction = Some(Transaction {
                        from,
                        params,
                        recipients: Vec::new(),
                    });
                }
            }
            Awaiting::Rcpt(to) => {
                if let (true, Some(tx)) = (accepted, &mut self.transaction) {
                    tx.recipients.push(to);
                }
            }
            Awaiting::Data => self.transaction = None,
        }
        self.emit(reply);
    }

    /// The TLS handshake succeeded: back to the pre-EHLO state (RFC 3207), STARTTLS no longer
    /// offered. Error and command counts carry over.
    pub fn tls_established(&mut self) {
        self.tls = true;
        self.helo = None;
        self.transaction = None;
        self.awaiting = None;
        self.input.clear();
        self.pos = 0;
        self.discarding = false;
        if !matches!(self.mode, Mode::Closed) {
            self.mode = Mode::Command;
        }
    }

    /// The driver's idle timer fired: the next steps are `421 4.4.2` and `Close`.
    pub fn on_timeout(&mut self) {
        self.close_with(reply::idle_timeout(&self.config.hostname));
    }

    /// A deadline of the driver's passed (a command line, the DATA phase or the whole session
    /// took too long): the next steps are `reply` (a 421) and `Close`.
    pub fn on_deadline(&mut self, reply: Reply) {
        self.close_with(reply);
    }

    /// The server is shutting down: the next steps are `421 4.3.2` and `Close`.
    pub fn on_shutdown(&mut self) {
        self.close_with(reply::shutting_down(&self.config.hostname));
    }

    /// The HELO/EHLO argument, once given (reset by STARTTLS).
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The current transaction's sender (after the driver accepted MAIL).
    pub fn mail_from(&self) -> Option<&ReversePath> {
        self.transaction.as_ref().map(|tx| &tx.from)
    }

    pub fn mail_params(&self) -> Option<&MailParams> {
        self.transaction.as_ref().map(|tx| &tx.params)
    }

    /// Recipients accepted so far in this transaction.
    pub fn recipients(&self) -> &[Address] {
        self.transaction
            .as_ref()
            .map_or(&[], |tx| tx.recipients.as_slice())
    }

    /// Currently receiving message data.
    pub fn in_data(&self) -> bool {
        matches!(self.mode, Mode::Data(_))
    }

    /// Queues a reply, counting errors; a 421 (or one error too many) is followed by Close.
    fn emit(&mut self, reply: Reply) {
        if self.closing {
            return;
        }
        let code = reply.code;
        // 452 4.5.3 is flow control, not misbehaviour: a client with more recipients than
        // the limit pipelines them all and sends the rest in a later transaction.
        let counts = code >= 400 && code != 421 && reply != reply::TOO_MANY_RECIPIENTS;
        self.out.push_back(Step::Reply(reply));
        if code == 421 {
            self.queue_close();
        } else if counts {
            self.errors += 1;
            if self.errors > self.config.max_errors {
                self.out
                    .push_back(Step::Reply(reply::too_many_errors(&self.config.hostname)));
                self.queue_close();
            }
        }
    }

    fn close_with(&mut self, reply: Reply) {
        if self.closing || matches!(self.mode, Mode::Closed) {
            return;
        }
        self.awaiting = None;
        self.out.push_back(Step::Reply(reply));
        self.queue_close();
    }

    fn queue_close(&mut self) {
        self.out.push_back(Step::Close);
        self.closing = true;
    }

    fn close_now(&mut self) {
        self.mode = Mode::Closed;
        self.closing = true;
        self.out.clear();
        self.input = Vec::new();
        self.pos = 0;
        self.transaction = None;
        self.awaiting = None;
    }

    /// Takes one command line from the buffer. `None`: something was queued, loop again.
    fn step_command(&mut self) -> Option<Step> {
        let buf = &self.input[self.pos..];
        if self.discarding {
            let Some(lf) = memchr::memchr(b'\n', buf) else {
                self.clear_input();
                return Some(Step::NeedInput);
            };
            self.pos += lf + 1;
            self.discarding = false;
        }
        let buf = &self.input[self.pos..];
        let max = self.config.max_line_length;
        let Some(lf) = memchr::memchr(b'\n', buf) else {
            if !buf.is_empty() && buf.len() >= max {
                // Even with its LF arriving next, this line is too long: say so once and
                // drop bytes until the LF instead of buffering them.
                self.clear_input();
                self.discarding = true;
                if self.count_command() {
                    self.emit(reply::LINE_TOO_LONG);
                }
                return None;
            }
            // A partial line: keep it for the next feed().
            return Some(Step::NeedInput);
        };
        let start = self.pos;
        self.pos += lf + 1;
        if !self.count_command() {
            return None;
        }
        if lf + 1 > max {
            self.emit(reply::LINE_TOO_LONG);
            return None;
        }
        // CRLF ends a line; a bare LF too (lenient). Any other CR stays in the line.
        let mut line = &self.input[start..start + lf];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        let smtputf8_ok = self
            .transaction
            .as_ref()
            .is_some_and(|tx| tx.params.smtputf8);
        match command::parse(line, smtputf8_ok) {
            Ok(command) => self.execute(command),
            Err(reply) => {
                self.emit(reply);
                None
            }
        }
    }

    /// Drops consumed bytes without giving back the buffer's memory.
    fn clear_input(&mut self) {
        self.input.clear();
        self.pos = 0;
    }

    /// Counts a command line; false (and 421 queued) when over the limit.
    fn count_command(&mut self) -> bool {
        self.commands += 1;
        if self.commands > self.config.max_commands {
            self.emit(reply::too_many_commands(&self.config.hostname));
            return false;
        }
        true
    }

    fn execute(&mut self, command: Command) -> Option<Step> {
        let config = Arc::clone(&self.config);
        let reply = match command {
            Command::Ehlo(arg) => {
                self.transaction = None;
                let starttls = config.offer_starttls && !self.tls;
                let reply = reply::ehlo(&config.hostname, &arg, config.max_message_size, starttls);
                self.helo = Some(arg);
                reply
            }
            Command::Helo(arg) => {
                self.transaction = None;
                self.helo = Some(arg);
                reply::helo(&config.hostname)
            }
            Command::Mail { from, params } => {
                if self.helo.is_none() {
                    reply::SEND_HELO_FIRST
                } else if self.transaction.is_some() {
                    reply::SENDER_ALREADY_SPECIFIED
                } else if params
                    .size
                    .is_some_and(|size| size > config.max_message_size as u64)
                {
                    reply::MESSAGE_TOO_BIG
                } else {
                    self.awaiting = Some(Awaiting::Mail {
                        from: from.clone(),
                        params: params.clone(),
                    });
                    return Some(Step::Decide(Stage::Mail { from, params }));
                }
            }
            Command::Rcpt { to } => match &self.transaction {
                None => reply::NEED_MAIL_BEFORE_RCPT,
                Some(tx) if tx.recipients.len() >= config.max_recipients => {
                    reply::TOO_MANY_RECIPIENTS
                }
                Some(_) => {
                    self.awaiting = Some(Awaiting::Rcpt(to.clone()));
                    return Some(Step::Decide(Stage::Rcpt { to }));
                }
            },
            Command::Data => match &self.transaction {
                None => reply::NEED_MAIL_BEFORE_DATA,
                Some(tx) if tx.recipients.is_empty() => reply::NO_VALID_RECIPIENTS,
                Some(_) => {
                    self.mode = Mode::Data(DataReceiver::new(config.max_message_size));
                    reply::START_MAIL_INPUT
                }
            },
            Command::Rset => {
                self.transaction = None;
                reply::OK
            }
            Command::Noop => reply::OK,
            Command::Quit => {
                self.emit(reply::closing(&config.hostname));
                self.queue_close();
                return None;
            }
            Command::Vrfy => reply::CANNOT_VRFY,
            Command::Help => reply::HELP,
            Command::StartTls => {
                if !config.offer_starttls {
                    reply::NOT_IMPLEMENTED
                } else if self.tls {
                    reply::TLS_ALREADY_ACTIVE
                } else {
                    // Whatever the client pipelined after STARTTLS is plaintext that must
                    // not be executed after the handshake (CVE-2011-0411).
                    self.clear_input();
                    self.discarding = false;
                    self.mode = Mode::TlsHandshake;
                    reply::READY_TO_START_TLS
                }
            }
            Command::NotImplemented => reply::NOT_IMPLEMENTED,
        };
        self.emit(reply);
        None
    }

    /// Passes buffered bytes to the DATA receiver.
    fn step_data(&mut self) -> Option<Step> {
        let Mode::Data(receiver) = &mut self.mode else {
            return None;
        };
        match receiver.feed(&self.input[self.pos..]) {
            Feed::NeedMore => {
                self.clear_input();
                Some(Step::NeedInput)
            }
            Feed::Done { consumed, outcome } => {
                self.pos += consumed;
                self.mode = Mode::Command;
                match outcome {
                    DataOutcome::Message(message) => {
                        self.awaiting = Some(Awaiting::Data);
                        Some(Step::Decide(Stage::Data { message }))
                    }
                    DataOutcome::BareLineEnding => {
                        self.transaction = None;
                        self.emit(reply::BARE_LINE_ENDING);
                        None
                    }
                    DataOutcome::NulByte => {
                        self.transaction = None;
                        self.emit(reply::NUL_IN_DATA);
                        None
                    }
                    DataOutcome::TooBig => {
                        self.transaction = None;
                        self.emit(reply::MESSAGE_TOO_BIG);
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
