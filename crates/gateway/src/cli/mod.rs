//! The command line (SPEC §7): argument definitions for every command, and the admin-API client
//! behind every command except `serve`, in stages: `args` (what a user may type), `plan` (local
//! validation → one HTTP call), `run` (sending it), `render` (printing the answer).
//!
//! A client command runs in two steps: [`plan::plan`] validates the arguments locally with the shared
//! `api_types` functions and turns them into one HTTP [`plan::Call`] (a bad value never reaches the
//! server), then the call is sent and its answer printed. Two exceptions make a second call: `rule
//! set` GETs the rule, applies the flags to it and PUTs it back ([`plan::RuleEdit`]); `report
//! direct-send --suggest-connectors --apply` shows the plan, asks, then posts it again with
//! `apply: true` (`run::run_suggest_apply`).

pub mod args;
mod call;
mod plan;
mod plan_recipients;
mod plan_rules;
mod render;
mod render_reports;
pub mod run;
#[cfg(test)]
mod tests;
mod text;
mod values;
