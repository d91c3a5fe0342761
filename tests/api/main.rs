//! The integration tests: the service as its users see it.

mod browser;
mod callback;
mod client_auth;
mod crash;
mod exchange;
mod hangups;
mod hardening;
mod helpers;
mod observability;
mod openapi;
mod outcomes;
mod ownership;
mod postgres;
mod process;
mod properties;
mod replicas;
mod storage;
mod store_suite;
mod tokens;
mod upstream_answers;
