//! The admin API (axum): the router and its one middleware, the role table, handlers by resource
//! group, and the reports and simulations they serve.

pub mod principals;
pub mod report;
pub mod router;
pub mod simulate;
