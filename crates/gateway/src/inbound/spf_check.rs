//! SPF for a transaction: started at MAIL FROM, awaited only by a decision that needs it. The
//! connector a sender is attributed to, the direct-send refusal and the refusal of an unknown
//! recipient never depend on SPF, so with the DNS slow or gone they answer at once; an anonymous
//! recipient that would be accepted waits for SPF (its temporary error defers it), and so does the
//! end of DATA (DMARC needs the result).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::auth::{Authenticator, Spf};

pub(super) enum SpfCheck {
    /// Evaluating; the task stops when the transaction ends first.
    Running(JoinHandle<(Spf, Duration)>),
    /// The result, and how long the evaluation took.
    Done(Spf, Duration),
}

impl SpfCheck {
    /// Starts the evaluation for the client `ip`, its HELO name and the envelope sender.
    pub(super) fn start(
        auth: Arc<Authenticator>,
        ip: IpAddr,
        helo: &str,
        mail_from: Option<String>,
    ) -> SpfCheck {
        let helo = helo.to_string();
        SpfCheck::Running(tokio::spawn(async move {
            let started = Instant::now();
            let spf = auth.spf(ip, &helo, mail_from.as_deref()).await;
            (spf, started.elapsed())
        }))
    }

    /// The result, waiting for it if it is still being evaluated.
    pub(super) async fn result(&mut self) -> &Spf {
        if let SpfCheck::Running(task) = self {
            let (spf, took) = match task.await {
                Ok(done) => done,
                // The task cannot panic short of a bug; a temporary error defers, never refuses.
                Err(e) => {
                    tracing::error!("SPF evaluation failed: {e}");
                    (Spf::temp_error(), Duration::ZERO)
                }
            };
            *self = SpfCheck::Done(spf, took);
        }
        match self {
            SpfCheck::Done(spf, _) => spf,
            SpfCheck::Running(_) => unreachable!("just finished"),
        }
    }

    /// The result if it is in, without waiting.
    pub(super) fn ready(&self) -> Option<&Spf> {
        match self {
            SpfCheck::Done(spf, _) => Some(spf),
            SpfCheck::Running(_) => None,
        }
    }

    /// How long the evaluation took (once it is in).
    pub(super) fn took(&self) -> Option<Duration> {
        match self {
            SpfCheck::Done(_, took) => Some(*took),
            SpfCheck::Running(_) => None,
        }
    }
}

impl Drop for SpfCheck {
    fn drop(&mut self) {
        if let SpfCheck::Running(task) = self {
            task.abort();
        }
    }
}
