//! The words of a trace record (SPEC §6) as enums: a record's status, a recipient's status, the
//! attribution, an event's kind, and what the direct-send rule did to the copy. Each variant has
//! one wire word, the same in JSON and in the database; code compares variants, never text. A
//! word this version does not know (a row written by another version, or by hand) is kept as
//! read in `Other`, so nothing read is lost or rewritten.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines an enum whose variants are wire words, with `Other(String)` for unknown words.
macro_rules! wire_words {
    (
        $(#[$meta:meta])*
        $name:ident, default = $default:expr, {
            $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A word this version does not know, kept as read.
            Other(String),
        }

        impl $name {
            /// Every known value, in the order of the contract.
            pub const ALL: &[$name] = &[$($name::$variant,)+];

            /// The wire word.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $word,)+
                    $name::Other(word) => word,
                }
            }

            /// The value of a wire word; an unknown word is kept in `Other`.
            pub fn parse(word: &str) -> $name {
                match word {
                    $($word => $name::$variant,)+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $default
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(word: &str) -> Self {
                $name::parse(word)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, word: &str) -> bool {
                self.as_str() == word
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, word: &&str) -> bool {
                self.as_str() == *word
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = std::borrow::Cow::<str>::deserialize(d)?;
                Ok($name::parse(&word))
            }
        }
    };
}

wire_words! {
    /// A record's status: where the transaction stands for this tenant.
    TraceStatus, default = TraceStatus::Other(String::new()), {
        Pending = "pending",
        Delivered = "delivered",
        Quarantined = "quarantined",
        Rejected = "rejected",
        Deferred = "deferred",
        Failed = "failed",
    }
}

wire_words! {
    /// One recipient's status: a record's statuses, and `abandoned` for an accepted recipient of
    /// a transaction that ended before DATA.
    RecipientStatus, default = RecipientStatus::Other(String::new()), {
        Pending = "pending",
        Delivered = "delivered",
        Quarantined = "quarantined",
        Rejected = "rejected",
        Deferred = "deferred",
        Failed = "failed",
        Abandoned = "abandoned",
    }
}

wire_words! {
    /// Who vouched for the transaction.
    TraceAttribution, default = TraceAttribution::Other(String::new()), {
        /// No connector: anonymous mail.
        Anonymous = "anonymous",
        /// An inbound connector (named in the record's `connector`).
        Connector = "connector",
    }
}

wire_words! {
    /// The kind of a trace event (SPEC §6).
    EventKind, default = EventKind::Other(String::new()), {
        Receive = "RECEIVE",
        Reject = "REJECT",
        Audit = "AUDIT",
        Auth = "AUTH",
        Rule = "RULE",
        Quarantine = "QUARANTINE",
        Release = "RELEASE",
        Deliver = "DELIVER",
        Defer = "DEFER",
        Fail = "FAIL",
        /// A waiting message's route changed (the directory's, or `queue reroute`).
        Route = "ROUTE",
    }
}

wire_words! {
    /// What the direct-send rule (SPEC §2 rows 3–4) did to a direct-send copy; the Direct Send
    /// report counts by it. Ordered by weight: a later outcome of one copy never replaces a
    /// heavier one (see [`DirectSendOutcome::merge`]).
    DirectSendOutcome, default = DirectSendOutcome::Allowed, {
        /// Reject direct send `off`: accepted as it would have been anyway.
        Allowed = "allowed",
        /// `on`, but a trusted ARC sealer or an aligned DKIM signature exempted it.
        Exempted = "exempted",
        /// `audit`: accepted, would have been refused with 5.7.68.
        Audited = "audited",
        /// Refused with 5.7.68 (at RCPT, or at the end of DATA).
        Refused = "refused",
    }
}

impl DirectSendOutcome {
    fn weight(&self) -> usize {
        DirectSendOutcome::ALL
            .iter()
            .position(|o| o == self)
            .unwrap_or(0)
    }

    /// The heavier of `current` and `new`: a refusal stays a refusal.
    pub fn merge(current: Option<DirectSendOutcome>, new: DirectSendOutcome) -> DirectSendOutcome {
        match current {
            Some(c) if c.weight() >= new.weight() => c,
            _ => new,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_are_kept() {
        for s in TraceStatus::ALL {
            assert_eq!(&TraceStatus::parse(s.as_str()), s);
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        let odd: TraceStatus = serde_json::from_str("\"archived\"").unwrap();
        assert_eq!(odd, TraceStatus::Other("archived".into()));
        assert_eq!(serde_json::to_string(&odd).unwrap(), "\"archived\"");
        assert_eq!(EventKind::parse("AUDIT"), EventKind::Audit);
        assert_eq!(RecipientStatus::Abandoned, "abandoned");
    }

    #[test]
    fn a_refusal_outweighs_every_other_outcome() {
        use DirectSendOutcome::*;
        assert_eq!(DirectSendOutcome::merge(None, Allowed), Allowed);
        assert_eq!(DirectSendOutcome::merge(Some(Refused), Audited), Refused);
        assert_eq!(DirectSendOutcome::merge(Some(Audited), Refused), Refused);
        assert_eq!(DirectSendOutcome::merge(Some(Allowed), Exempted), Exempted);
    }
}
