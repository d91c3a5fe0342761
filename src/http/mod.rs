//! The HTTP edge: the shared state, the layers every listener runs, the internal API and the
//! public callback with its pages.

pub mod internal;
pub mod layers;
pub mod public;
pub(crate) mod request_id;
pub mod state;
