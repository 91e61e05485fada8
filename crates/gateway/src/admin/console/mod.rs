//! The web console at the admin listener's `/`: server-rendered pages (maud) over the admin API,
//! called in process as the logged-in principal ([`api`]), so every page and every action passes
//! the API's role table, tenant check and audit log. Progressive enhancement only: htmx boosts
//! links and forms, uPlot draws the charts; everything but the charts works without JavaScript.
//! Security: sessions in the store ([`session`]), a CSRF token on every change, a
//! Content-Security-Policy without inline script or style, output escaped by maud.

mod api;
mod assets;
mod audit;
mod charts;
mod connectors;
mod direct_send;
mod domains;
mod forms;
mod layout;
mod login;
mod login_limit;
mod operator;
mod overview;
mod quarantine;
mod report_cache;
mod router;
mod rules;
mod session;
mod settings;
mod state;
mod trace;

pub(super) use router::router;
