//! The integration tests: the service as its users see it.

mod browser;
mod callback;
mod client_auth;
mod crash;
mod exchange;
mod hardening;
mod helpers;
mod observability;
mod openapi;
mod process;
mod properties;
mod storage;
mod tokens;
mod upstream_answers;
