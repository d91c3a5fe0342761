//! The integration tests: the service as its users see it.

mod browser;
mod callback;
mod client;
mod client_auth;
mod connections;
mod crash;
mod edge_answers;
mod exchange;
mod fuzz_listeners;
mod hangups;
mod hardening;
mod helpers;
mod migrations;
mod observability;
mod openapi;
mod outcomes;
mod ownership;
mod postgres;
mod process;
mod properties;
mod raw_http;
mod replicas;
mod storage;
mod store_suite;
mod tokens;
mod upstream_answers;
