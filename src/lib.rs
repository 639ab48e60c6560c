//! bbb-webhooks: a webhooks relay for BigBlueButton.
//!
//! Data flows one way, from BigBlueButton's Redis channels to the receivers' URLs:
//!
//! ```text
//!  Redis pub/sub ──► input ──► processor ──────────────────────────────► queue ──► delivery ──► HTTP POST
//!   (channels)      (bytes)    │ mapping: message + state → events        (Redis     (one worker
//!                              │ routing: event × hooks → deliveries        streams,   per hook,
//!                              └ state:   meeting/user mappings            per hook)  retries)
//!
//!  at the side:  api (hooks/create|destroy|list|ping) ──► hooks (registry in memory + Redis)
//!                config, metrics, keys (every Redis key name)
//! ```
//!
//! * [`input`] subscribes to the channels and hands raw messages over without ever waiting on
//!   downstream work.
//! * [`mapping`] is pure: a parsed message plus the [`state`] it needs becomes zero or more
//!   [`event::Event`]s.
//! * [`processor`] runs mapping and [`routing`] in arrival order and writes each delivery to the
//!   hook's durable [`queue`] before anything is sent.
//! * [`delivery`] drains each hook's queue in order, one request in flight per hook.
//! * [`hooks`] owns the registered callbacks; [`api`] is the BigBlueButton-style HTTP API on them.
//! * [`app`] wires it together and owns start-up and shutdown order.

pub mod api;
pub mod app;
pub mod config;
pub mod delivery;
pub mod event;
pub mod hooks;
pub mod input;
pub mod keys;
pub mod logging;
pub mod mapping;
pub mod metrics;
pub mod processor;
pub mod queue;
pub mod redis_conn;
pub mod routing;
pub mod state;
pub mod time;

/// The version reported in `User-Agent` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
