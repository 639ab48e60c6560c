//! The forwarder's Prometheus metrics (`bbb_webhooks_forward_*`), in a registry of their own:
//! the forwarder is a process of its own and exposes only what it does.
//!
//! The subscriber ([`crate::input`]) counts its reconnects and intake drops in the service's
//! [`Metrics`]; [`ForwardMetrics::render`] carries those counts over before each scrape.

use std::sync::Arc;

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::metrics::Metrics;

pub struct ForwardMetrics {
    registry: Registry,
    /// What the shared subscriber counts into.
    pub input: Arc<Metrics>,
    /// Entries the cluster stream took (from the buffer or straight).
    pub forwarded: IntCounter,
    /// Entries written to the local buffer.
    pub buffered: IntCounter,
    pub buffer_depth: IntGauge,
    /// Messages received, not yet written to either Redis (in memory).
    pub backlog: IntGauge,
    /// Entries the cluster stream refused as already there (a re-send after a crash).
    pub duplicates: IntCounter,
    /// Messages lost: `buffer_cap` (the buffer's cap trimmed the oldest), `intake` (neither
    /// Redis took writes and the memory bound was reached), `malformed` (a buffer entry that is
    /// no ingest entry).
    pub dropped: IntCounterVec,
    /// Connections made again: `local`, `cluster`, `subscriber`.
    pub reconnects: IntCounterVec,
}

impl ForwardMetrics {
    pub fn new() -> Arc<ForwardMetrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique");
            c
        };
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique");
            g
        };
        let m = ForwardMetrics {
            input: Metrics::new(false),
            forwarded: counter(
                "bbb_webhooks_forward_forwarded_total",
                "Messages the cluster Redis took (straight or from the local buffer)",
            ),
            buffered: counter(
                "bbb_webhooks_forward_buffered_total",
                "Messages written to the local buffer while the cluster Redis did not take writes",
            ),
            buffer_depth: gauge(
                "bbb_webhooks_forward_buffer_depth",
                "Messages waiting in the local buffer",
            ),
            backlog: gauge(
                "bbb_webhooks_forward_backlog",
                "Messages received and not yet written to either Redis",
            ),
            duplicates: counter(
                "bbb_webhooks_forward_duplicates_total",
                "Messages the cluster stream already had (sent again after a crash), skipped",
            ),
            dropped: counter_vec(
                "bbb_webhooks_forward_dropped_total",
                "Messages lost: buffer_cap (the local buffer's cap), intake (neither Redis took writes, memory bound reached), malformed (unreadable buffer entry)",
                "reason",
            ),
            reconnects: counter_vec(
                "bbb_webhooks_forward_redis_reconnects_total",
                "Redis connections made again after a failure (local, cluster, subscriber)",
                "connection",
            ),
            registry,
        };
        for reason in ["buffer_cap", "intake", "malformed"] {
            m.dropped.with_label_values(&[reason]);
        }
        for connection in ["local", "cluster", "subscriber"] {
            m.reconnects.with_label_values(&[connection]);
        }
        Arc::new(m)
    }

    /// Brings the subscriber's counts over from [`Metrics`] (counters only grow: adds the
    /// difference).
    fn sync_input(&self) {
        let carry = |to: IntCounter, from: u64| {
            let now = to.get();
            if from > now {
                to.inc_by(from - now);
            }
        };
        carry(
            self.reconnects.with_label_values(&["subscriber"]),
            self.input
                .redis_reconnects
                .with_label_values(&["subscriber"])
                .get(),
        );
        carry(
            self.dropped.with_label_values(&["intake"]),
            self.input.intake_dropped.get(),
        );
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        self.sync_input();
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
