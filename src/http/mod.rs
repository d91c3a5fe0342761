//! The HTTP edge: the shared state, the layers every listener runs, the internal API and the
//! public callback with its pages.

pub mod internal;
pub mod layers;
pub mod public;
pub mod state;
