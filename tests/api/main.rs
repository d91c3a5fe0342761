//! The integration tests: the service as its users see it.

mod browser;
mod callback;
mod client_auth;
mod exchange;
mod helpers;
mod process;
mod storage;
mod tokens;
mod upstream_answers;
