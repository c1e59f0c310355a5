//! HTTP metrics and the Prometheus text rendering of everything.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ipfs_accelerate::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Requests per (route, status) and latency per route.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Arc<Histogram>>>,
}

impl HttpMetrics {
    fn record(&self, route: &str, status: u16, seconds: f64) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route.to_owned(), status)).or_default() += 1;
        }
        let histogram = self.latency.lock().ok().map(|mut l| {
            l.entry(route.to_owned())
                .or_insert_with(|| Arc::new(Histogram::latency_seconds()))
                .clone()
        });
        if let Some(h) = histogram {
            h.observe(seconds);
        }
    }
}

/// Middleware: counts every request by its route pattern and status.
pub async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.record(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &ipfs_accelerate::HistogramSnapshot) {
    for (bound, count) in &h.buckets {
        let le = if bound.is_infinite() {
            "+Inf".to_owned()
        } else {
            bound.to_string()
        };
        let sep = if labels.is_empty() { "" } else { "," };
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {count}");
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum);
    let _ = writeln!(out, "{name}_count{braces} {}", h.count);
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// (name, type, help, value) of a per-endpoint metric.
type EndpointMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ipfs_accelerate::EndpointStatus) -> f64,
);

/// (name, help, value) of a per-endpoint histogram.
type EndpointHistogram = (
    &'static str,
    &'static str,
    fn(&ipfs_accelerate::EndpointStatus) -> &ipfs_accelerate::HistogramSnapshot,
);

/// (name, help, value) of a per-storage-layer counter.
type LayerMetric = (
    &'static str,
    &'static str,
    fn(&ipfs_accelerate::storage::LayerStats) -> u64,
);

/// The `# HELP` and `# TYPE` lines of metric `name`.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Everything in the Prometheus text format.
pub fn render(state: &AppState) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "ipfs_accelerate_http_requests_total",
        "counter",
        "HTTP requests by route and status.",
    );
    if let Ok(requests) = state.metrics.requests.lock() {
        for ((route, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "ipfs_accelerate_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
    }
    header(
        &mut out,
        "ipfs_accelerate_http_request_duration_seconds",
        "histogram",
        "HTTP latency by route.",
    );
    let latencies: Vec<(String, Arc<Histogram>)> = state
        .metrics
        .latency
        .lock()
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    for (route, h) in latencies {
        histogram(
            &mut out,
            "ipfs_accelerate_http_request_duration_seconds",
            &format!("route=\"{}\"", escape(&route)),
            &h.snapshot(),
        );
    }

    let endpoints = state.accelerator.endpoints();
    let gauges: [EndpointMetric; 5] = [
        (
            "ipfs_accelerate_endpoint_requests_total",
            "counter",
            "Requests answered per endpoint.",
            |e| e.requests as f64,
        ),
        (
            "ipfs_accelerate_endpoint_errors_total",
            "counter",
            "Failed requests per endpoint.",
            |e| e.errors as f64,
        ),
        (
            "ipfs_accelerate_endpoint_rejected_total",
            "counter",
            "Requests refused with 429 (queue full).",
            |e| e.rejected as f64,
        ),
        (
            "ipfs_accelerate_endpoint_cancelled_total",
            "counter",
            "Generations stopped because the client went away.",
            |e| e.cancelled as f64,
        ),
        (
            "ipfs_accelerate_endpoint_queue_depth",
            "gauge",
            "Requests waiting per endpoint.",
            |e| e.queue_depth as f64,
        ),
    ];
    for (name, kind, help, value) in gauges {
        header(&mut out, name, kind, help);
        for e in &endpoints {
            let _ = writeln!(out, "{name}{{{}}} {}", endpoint_labels(e), value(e));
        }
    }
    let endpoint_histograms: [EndpointHistogram; 2] = [
        (
            "ipfs_accelerate_endpoint_latency_seconds",
            "Queue + inference latency per endpoint.",
            |e| &e.latency_seconds,
        ),
        (
            "ipfs_accelerate_batch_size",
            "Texts per executed batch.",
            |e| &e.batch_sizes,
        ),
    ];
    for (name, help, value) in endpoint_histograms {
        header(&mut out, name, "histogram", help);
        for e in &endpoints {
            histogram(&mut out, name, &endpoint_labels(e), value(e));
        }
    }

    let stats = state.accelerator.loader().store().session_stats();
    let layer_counters: [LayerMetric; 2] = [
        (
            "ipfs_accelerate_cache_hits_total",
            "Model-file lookups served, per storage layer.",
            |s| s.hits,
        ),
        (
            "ipfs_accelerate_cache_misses_total",
            "Model-file lookups missed, per storage layer.",
            |s| s.misses,
        ),
    ];
    for (name, help, value) in layer_counters {
        header(&mut out, name, "counter", help);
        for (layer, s) in &stats {
            let _ = writeln!(out, "{name}{{layer=\"{layer}\"}} {}", value(s));
        }
    }
    out
}

fn endpoint_labels(e: &ipfs_accelerate::EndpointStatus) -> String {
    format!("model=\"{}\",backend=\"{}\"", escape(&e.model), e.backend)
}
