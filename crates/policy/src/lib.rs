//! The pure core of Portcullis: who owns a recipient domain, which inbound connector vouches for a
//! transaction, and what the decision table of SPEC §2 says about it.
//!
//! Deliberately absent: I/O, clocks, async, logging. Every function is total — bad or missing facts
//! are values (e.g. no certificate, null sender), never errors or panics.

pub mod attribution;
pub mod auth;
pub mod decide;
pub mod directory;
pub mod fate;
pub mod model;
pub mod names;
pub mod route;
pub mod rules;
pub mod skiplist;

pub use attribution::{Attribution, ConnectorCheck, MatchedBy, PeerFacts, check_connector};
pub use auth::{AuthFacts, AuthResult, CompAuth, CompVerdict, DkimFact, DmarcPolicy, compauth};
pub use decide::{
    AuditReason, AuthAction, DataFacts, DataVerdict, DirectSend, RcptFacts, RcptVerdict,
    RecipientLookup, decide_data, decide_rcpt, tenant_compauth,
};
pub use directory::{Directory, RecipientList, TenantEntry};
pub use fate::{CopyOutcome, Delivery, Fate, MessageFacts, QuarantineReason, Refusal, decide_copy};
pub use model::*;
