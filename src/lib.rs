//! bbb-webhooks: a webhooks relay for BigBlueButton.
//!
//! Data flows one way, from BigBlueButton's Redis channels to the receivers' URLs:
//!
//! ```text
//!  Redis pub/sub ──► input ──► enqueuer ───────────────────────────────► queue ──► delivery ──► HTTP POST
//!   (channels)      (bytes)    │ mapping: message + state → events        (Redis     (one worker
//!                              │ routing: event × hooks → deliveries        streams,   per hook,
//!                              └ state:   meeting/user mappings            per hook)  retries)
//!
//!  in a cluster (docs/cluster.md): on each server  Redis pub/sub ──► input ──► forward ──► cluster Redis
//!  (ingest stream per server); on each relay  ingest streams ──► input::cluster ──► one enqueuer per
//!  leased server (fenced writes) ──► queue ──► delivery (leased parts of each hook's lanes)
//!
//!  at the side:  api (hooks/create|destroy|list|ping) ──► hooks (registry in memory + Redis)
//!                config, checksum, metrics, health (what /ready says), keys (every Redis key
//!                name), tls (the crypto provider of outgoing HTTPS)
//! ```
//!
//! * [`input`] subscribes to the channels and hands raw messages over without ever waiting on
//!   downstream work.
//! * [`mapping`] is pure: a parsed message plus the [`state`] it needs becomes zero or more
//!   [`event::Event`]s.
//! * [`enqueuer`] runs mapping and [`routing`] in arrival order and appends each delivery to the
//!   hook's durable [`queue`] before anything is sent.
//! * [`queue`] owns what is queued: the streams, depths, drops, acknowledgements, wake-ups.
//! * [`delivery`] drains each hook's queue: in order within each meeting, meetings in parallel.
//! * [`hooks`] owns the registered callbacks; [`api`] is the BigBlueButton-style HTTP API on them.
//! * [`app`] wires it together, supervises the tasks and owns start-up and shutdown order.
//! * [`checksum`] is the checksum maths the API, delivery and the configuration share.
//! * [`bbb_web`] asks bbb-web about meetings the service missed, for the enqueuer.
//! * [`xapi`] turns events into xAPI statements for a Learning Record Store, beside routing;
//!   they are queued like deliveries, one queue per LRS ([`lrs`]: endpoint, credentials).
//! * [`cluster`] names the cluster Redis's keys and the format forwarders and relays share;
//!   [`lease`] is how relays share servers and hooks (leases with fencing tokens).
//! * [`forward`] is `bbb-webhooks forward`: a server's channels to its cluster ingest stream,
//!   through a local buffer while the cluster Redis is away (takes input's hand-off, like the
//!   enqueuer).
//!
//! Imports follow the data: a stage imports the type it receives (`input::RawMessage`), the
//! queue it writes to or reads from, and the side modules; never a later stage past the queue,
//! never [`app`] or [`api`]. `tests/it/architecture.rs` checks it.

pub mod api;
pub mod app;
pub mod bbb_web;
pub mod checksum;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod enqueuer;
pub mod event;
pub mod fault;
pub mod forward;
pub mod health;
pub mod hooks;
pub mod input;
pub mod keys;
pub mod lease;
pub mod logging;
pub mod lrs;
pub mod mapping;
pub mod metrics;
pub mod queue;
pub mod redis_conn;
pub mod redis_watch;
pub mod routing;
pub mod state;
pub mod supervisor;
pub mod time;
pub mod tls;
pub mod xapi;

/// The version reported in `User-Agent` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
