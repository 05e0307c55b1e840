//! Prometheus metrics: per-route request counts and latency histograms, and process metrics, rendered at
//! `/metrics`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const DURATION_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's metrics recorder, installed on first use. Metrics are process-global: one recorder serves every
/// role running in the process.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), DURATION_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only what this one records");
        }
        metrics_process::Collector::default().describe();
        metrics::describe_gauge!(
            "http_requests_in_flight",
            "HTTP requests being served now (their head read, their answer not yet sent)"
        );
        metrics::describe_counter!(
            "http_requests_total",
            "HTTP requests answered, by method, route and status"
        );
        metrics::describe_histogram!(
            "http_request_duration_seconds",
            metrics::Unit::Seconds,
            "Time to answer an HTTP request, by method and route"
        );
        handle
    })
}

/// The text exposition of every metric, with process metrics collected now.
pub fn render() -> String {
    let handle = handle();
    metrics_process::Collector::default().collect();
    handle.run_upkeep();
    handle.render()
}

/// Counts and times a request under its route template (`/api/v1/users/{id}`), never the raw path, so label
/// cardinality stays bounded.
pub fn observe(method: &Method, route: Option<&MatchedPath>, status: StatusCode, started: Instant) {
    let route = route
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method.as_str().to_owned();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.as_str().to_owned())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
}

/// Counts a request as in flight (`http_requests_in_flight`) until dropped, whichever way the request ends.
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        metrics::gauge!("http_requests_in_flight").increment(1.0);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("http_requests_in_flight").decrement(1.0);
    }
}
