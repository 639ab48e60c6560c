//! Prometheus metrics: the reference's names and labels, plus ours.
//!
//! The reference (prom-client 14) exposes counters without a `_total` suffix; those names are
//! kept exactly so existing dashboards keep working. Metrics that only this service has follow
//! the usual conventions (`_total`, `_seconds`). Every metric lives in the [`Metrics`] of one
//! running app, so tests that start several apps see their own counts.
//!
//! Series labelled with a hook's URL or id live as long as the hook: [`Metrics::forget_hook`]
//! removes them once the hook is gone, so a service whose hooks come and go does not grow a
//! series per hook it ever had. This module does not observe hooks itself; whoever sees a hook
//! go (the delivery pool) calls it.

use std::net::SocketAddr;
use std::sync::Arc;

use std::collections::HashMap;

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Every metric family name this registry can expose.
    names: Vec<String>,
    // --- the reference's ---
    pub module_status: IntGaugeVec,
    pub event_process_failures: IntCounter,
    pub event_dispatch_failures: IntCounterVec,
    pub meeting_mappings: IntGauge,
    pub user_mappings: IntGauge,
    pub api_requests: IntCounterVec,
    pub registered_hooks: IntGaugeVec,
    pub hook_failures: IntCounterVec,
    pub processed_events: IntCounterVec,
    // --- ours ---
    pub messages_received: IntCounter,
    pub messages_ignored: IntCounterVec,
    pub messages_malformed: IntCounterVec,
    pub events_mapped: IntCounterVec,
    pub queue_depth: IntGaugeVec,
    pub queue_dropped: IntCounterVec,
    pub delivery_latency: Histogram,
    pub enqueue_latency: Histogram,
    pub delivery_retries: IntCounter,
    pub deliveries_in_flight: IntGauge,
    pub hooks_removed: IntCounterVec,
    pub redis_reconnects: IntCounterVec,
    pub worker_restarts: IntCounter,
    pub intake_dropped: IntCounter,
    pub redis_data_lost: IntCounter,
    pub api_checksum_failures: IntCounter,
    pub meeting_lookups: IntCounterVec,
    pub xapi_statements_queued: IntCounterVec,
    pub xapi_statements_skipped: IntCounterVec,
    pub xapi_statements_sent: IntCounterVec,
    pub xapi_statements_failed: IntCounterVec,
    // --- a relay's, in a cluster ---
    pub cluster_leases: IntGaugeVec,
    pub cluster_entries_read: IntCounterVec,
    pub cluster_bad_entries: IntCounter,
    pub cluster_takeovers: IntCounterVec,
}

/// A registry that remembers the name of every family registered in it.
struct Reg {
    registry: Registry,
    names: Vec<String>,
}

impl Reg {
    fn add<C: Collector + Clone + 'static>(&mut self, c: C) -> C {
        self.names
            .extend(c.desc().iter().map(|d| d.fq_name.clone()));
        self.registry
            .register(Box::new(c.clone()))
            .expect("unique metric");
        c
    }

    fn counter(&mut self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).expect("valid metric"))
    }

    fn counter_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    fn gauge(&mut self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).expect("valid metric"))
    }

    fn gauge_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }
}

impl Metrics {
    pub fn new(collect_process_metrics: bool) -> Arc<Metrics> {
        let mut r = Reg {
            registry: Registry::new(),
            names: Vec::new(),
        };
        if collect_process_metrics {
            let pc = process_collector();
            let names: Vec<String> = pc.desc().iter().map(|d| d.fq_name.clone()).collect();
            // Only fails where /proc is missing; the metrics are then simply absent.
            if r.registry.register(Box::new(pc)).is_ok() {
                r.names.extend(names);
            }
        }
        let delivery_latency = Histogram::with_opts(
            HistogramOpts::new(
                "bbb_webhooks_delivery_latency_seconds",
                "Time from an event entering a hook's queue to its successful delivery",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0, 300.0,
            ]),
        )
        .expect("valid metric");
        let delivery_latency = r.add(delivery_latency);
        let base = r.names.pop().unwrap_or_default();
        r.names
            .extend(["_bucket", "_sum", "_count"].map(|s| format!("{base}{s}")));
        // What a crash can lose: messages received but not yet in Redis (pub/sub cannot replay).
        let enqueue_latency = Histogram::with_opts(
            HistogramOpts::new(
                "bbb_webhooks_enqueue_latency_seconds",
                "Time from receiving a batch's oldest message to Redis taking its writes",
            )
            .buckets(vec![
                0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
            ]),
        )
        .expect("valid metric");
        let enqueue_latency = r.add(enqueue_latency);
        let base = r.names.pop().unwrap_or_default();
        r.names
            .extend(["_bucket", "_sum", "_count"].map(|s| format!("{base}{s}")));

        Arc::new(Metrics {
            module_status: r.gauge_vec(
                "bbb_webhooks_module_status",
                "1 when the module runs, 0 when it failed",
                &["module", "moduleType"],
            ),
            event_process_failures: r.counter(
                "bbb_webhooks_event_process_failures",
                "Input messages that could not be processed",
            ),
            event_dispatch_failures: r.counter_vec(
                "bbb_webhooks_event_dispatch_failures",
                "Events that could not be handed to an output",
                &["outputEventId", "module"],
            ),
            meeting_mappings: r.gauge(
                "bbb_webhooks_meeting_mappings",
                "Meeting id mappings in memory",
            ),
            user_mappings: r.gauge("bbb_webhooks_user_mappings", "User id mappings in memory"),
            api_requests: r.counter_vec(
                "bbb_webhooks_out_hooks_api_requests",
                "Hooks API calls",
                &["method", "path", "statusCode", "returncode", "messageKey"],
            ),
            registered_hooks: r.gauge_vec(
                "bbb_webhooks_out_hooks_registered_hooks",
                "Registered hooks",
                &["callbackURL", "permanent", "getRaw", "enabled"],
            ),
            hook_failures: r.counter_vec(
                "bbb_webhooks_out_hooks_hook_failures",
                "Failed callback attempts and give-ups",
                &["callbackURL", "reason", "eventId"],
            ),
            processed_events: r.counter_vec(
                "bbb_webhooks_out_hooks_processed_events",
                "Events delivered successfully",
                &["eventId", "callbackURL"],
            ),
            messages_received: r.counter(
                "bbb_webhooks_messages_received_total",
                "Messages received on the Redis channels",
            ),
            messages_ignored: r.counter_vec(
                "bbb_webhooks_messages_ignored_total",
                "Well-formed messages that produce no event",
                &["reason"],
            ),
            messages_malformed: r.counter_vec(
                "bbb_webhooks_messages_malformed_total",
                "Messages that could not be parsed or lack required fields",
                &["reason"],
            ),
            events_mapped: r.counter_vec(
                "bbb_webhooks_events_mapped_total",
                "Events produced by the mapper",
                &["event"],
            ),
            queue_depth: r.gauge_vec(
                "bbb_webhooks_queue_depth",
                "Events waiting in a hook's queue",
                &["hook"],
            ),
            queue_dropped: r.counter_vec(
                "bbb_webhooks_queue_dropped_total",
                "Events dropped because a hook's queue was full (oldest first)",
                &["hook"],
            ),
            delivery_latency,
            enqueue_latency,
            delivery_retries: r.counter(
                "bbb_webhooks_delivery_retries_total",
                "Callback attempts after a failed one",
            ),
            deliveries_in_flight: r.gauge(
                "bbb_webhooks_deliveries_in_flight",
                "Callback requests under way",
            ),
            hooks_removed: r.counter_vec(
                "bbb_webhooks_hooks_removed_total",
                "Hooks removed, by reason",
                &["reason"],
            ),
            redis_reconnects: r.counter_vec(
                "bbb_webhooks_redis_reconnects_total",
                "Redis connections re-established after a failure",
                &["connection"],
            ),
            intake_dropped: r.counter(
                "bbb_webhooks_intake_dropped_total",
                "Messages dropped because the intake buffer was full (Redis refusing writes)",
            ),
            redis_data_lost: r.counter(
                "bbb_webhooks_redis_data_lost_total",
                "Times Redis was found without the service's data (restarted empty or flushed)",
            ),
            worker_restarts: r.counter(
                "bbb_webhooks_worker_restarts_total",
                "Hook workers started again after they ended unexpectedly (a panic)",
            ),
            api_checksum_failures: r.counter(
                "bbb_webhooks_api_checksum_failures_total",
                "Hooks API calls refused for their checksum",
            ),
            meeting_lookups: r.counter_vec(
                "bbb_webhooks_meeting_lookups_total",
                "Meetings unknown to the service asked about at bbb-web (found, not_found), or not (failed: bbb-web did not answer; skipped: it failed lately)",
                &["result"],
            ),
            xapi_statements_queued: r.counter_vec(
                "bbb_webhooks_xapi_statements_queued_total",
                "xAPI statements written to an LRS's queue (its depth: bbb_webhooks_queue_depth{hook=\"xapi:<lrs>\"})",
                &["lrs"],
            ),
            xapi_statements_skipped: r.counter_vec(
                "bbb_webhooks_xapi_statements_skipped_total",
                "Events that would make an xAPI statement but do not, by reason",
                &["reason"],
            ),
            xapi_statements_sent: r.counter_vec(
                "bbb_webhooks_xapi_statements_sent_total",
                "xAPI statements the LRS accepted",
                &["lrs"],
            ),
            xapi_statements_failed: r.counter_vec(
                "bbb_webhooks_xapi_statements_failed_total",
                "Failed attempts to send an xAPI statement (retried), and statements the LRS rejected (reason rejected_<status>: dropped)",
                &["lrs", "reason"],
            ),
            cluster_leases: r.gauge_vec(
                "bbb_webhooks_cluster_leases",
                "Leases this relay holds, by kind (ingest: a server's stream; hook: a hook's queue)",
                &["kind"],
            ),
            cluster_entries_read: r.counter_vec(
                "bbb_webhooks_cluster_entries_read_total",
                "Ingest entries this relay read, by server",
                &["server"],
            ),
            cluster_bad_entries: r.counter(
                "bbb_webhooks_cluster_bad_entries_total",
                "Ingest entries skipped because they are not in the forwarders' format",
            ),
            cluster_takeovers: r.counter_vec(
                "bbb_webhooks_cluster_takeovers_total",
                "Leases this relay took (a server's stream or a hook, at start or from a relay that stopped renewing)",
                &["kind"],
            ),
            names: r.names,
            registry: r.registry,
        })
    }

    /// Every metric family name the service can expose (histograms with their `_bucket`, `_sum`
    /// and `_count` series; process metrics when enabled).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Removes every series of a hook that is gone: those labelled with its callback URL
    /// (processed events, failures, the registered gauge) and those labelled with its id (queue
    /// depth and drops). Call it once nothing delivers for the hook any more, or a late
    /// increment brings a series back. A hook created again with the same URL starts its
    /// counters from zero, which Prometheus reads as a counter reset.
    pub fn forget_hook(&self, id: &str, url: &str) {
        remove_series(&self.processed_events, "callbackURL", url);
        remove_series(&self.hook_failures, "callbackURL", url);
        remove_series(&self.registered_hooks, "callbackURL", url);
        // Absent series are not an error worth reporting: there is simply nothing to remove.
        let _ = self.queue_depth.remove_label_values(&[id]);
        let _ = self.queue_dropped.remove_label_values(&[id]);
    }

    /// The Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Removes every series of `vec` whose label `name` is `value`, whatever its other labels.
/// The vector is only asked for what it holds now; series added meanwhile stay.
fn remove_series<T: MetricVecBuilder>(vec: &MetricVec<T>, name: &str, value: &str) {
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: HashMap<&str, &str> = metric
                .get_label()
                .iter()
                .map(|pair| (pair.name(), pair.value()))
                .collect();
            if labels.get(name) == Some(&value) {
                // Labels read back from the vector always match its description.
                let _ = vec.remove(&labels);
            }
        }
    }
}

fn process_collector() -> prometheus::process_collector::ProcessCollector {
    prometheus::process_collector::ProcessCollector::new(std::process::id() as i32, "bbb_webhooks")
}

/// Serves `GET <path>` on its own address, as the reference does: binds (failing clearly if the
/// address is taken) and returns the server as a future that runs until `shutdown`.
pub async fn serve(
    metrics: Arc<Metrics>,
    addr: SocketAddr,
    path: String,
    before_render: Arc<dyn Fn() + Send + Sync>,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>> + Send)> {
    use axum::http::{StatusCode, Uri, header};
    use axum::response::IntoResponse;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let metrics = metrics.clone();
        let path = path.clone();
        let before_render = before_render.clone();
        async move {
            if uri.path() != path || uri.query().is_some() {
                return (StatusCode::NOT_FOUND, "Not found").into_response();
            }
            before_render();
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                metrics.render(),
            )
                .into_response()
        }
    });
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .into_future();
    Ok((local, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgetting_a_hook_removes_its_series_and_only_them() {
        let m = Metrics::new(false);
        for url in ["http://gone/", "http://kept/"] {
            for event in ["user-joined", "user-left"] {
                m.processed_events.with_label_values(&[event, url]).inc();
                m.hook_failures
                    .with_label_values(&[url, "500", event])
                    .inc();
            }
            m.registered_hooks
                .with_label_values(&[url, "false", "false", "true"])
                .set(1);
        }
        m.queue_dropped.with_label_values(&["gone-id"]).inc();
        m.queue_dropped.with_label_values(&["kept-id"]).inc();
        m.forget_hook("gone-id", "http://gone/");
        let text = m.render();
        assert!(
            !text.contains("http://gone/") && !text.contains("gone-id"),
            "{text}"
        );
        assert_eq!(text.matches("http://kept/").count(), 5, "{text}");
        assert!(text.contains("kept-id"), "{text}");
        // Nothing left to forget is not a failure.
        m.forget_hook("gone-id", "http://gone/");
    }
}
