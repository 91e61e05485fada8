//! The admin API (axum): the router and its one middleware, the role table, handlers by resource
//! group, and the reports and simulations they serve.

mod audit;
mod authorize;
mod config;
mod connectors;
mod console;
pub mod extract;
mod health;
mod openapi;
pub mod principals;
mod quarantine;
mod queue;
mod recipients;
pub mod report;
mod reports;
pub mod router;
mod rules;
pub mod simulate;
pub mod state;
mod tenants;
mod tokens;
mod trace;
mod unknown_recipients;
