//! mondiapay-token-proxy: the merchant's backend behind MondiaPay's thank-you URL. It exchanges
//! each authorization code exactly once, stores the User Access Token encrypted, and serves it
//! to internal services over an authenticated API.

pub mod cli;
pub mod commands;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod events;
pub mod exchange;
pub mod healthcheck;
pub mod housekeeping;
pub mod http;
pub mod keyfile;
pub mod metrics;
pub mod mondiapay;
pub mod purchases;
pub mod sandbox;
pub mod serve;
pub mod settings;
pub mod startup;
pub mod store;
pub mod subscriptions;
pub mod telemetry;
