//! Integration tests: one binary (link time matters on 2 cores), one module per area.
//! Every test talks to the real Redis on 127.0.0.1:6379 (or a private one it starts) and to real
//! HTTP receivers on loopback, under its own key prefix and channel names.

mod api;
mod architecture;
mod cli;
mod cluster;
mod crash;
mod delivery;
mod docs;
mod fixtures;
mod forward;
mod hardening;
mod helpers;
mod lanes;
mod missed_meetings;
mod ops;
mod package_layout;
mod pipeline;
mod private_redis;
mod supervision;
/// The XML well-formedness check the library's own tests use.
#[path = "../../src/api/wellformed.rs"]
mod wellformed;
mod xapi;
