//! What the reports compute over the message trace: the Direct Send report (`sources`, with the
//! weighing of each address's traffic in `evidence`), what it advises (`advice`: readiness,
//! connector suggestions, a named source's assessment), `replay` (recorded transactions
//! re-decided against a proposed configuration), over `scan` (the trace store streamed page by
//! page).

pub mod advice;
pub mod evidence;
pub mod replay;
pub mod scan;
pub mod sources;
