//! Prometheus-format metrics (`GET /metrics`): requests by endpoint and status, request
//! latency and batch-size histograms, model time, queue depth.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.buckets.len() != bounds.len() {
            self.buckets = vec![0; bounds.len()];
        }
        for (b, &le) in self.buckets.iter_mut().zip(bounds) {
            if v <= le {
                *b += 1;
            }
        }
        self.count += 1;
        self.sum += v;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, le) in self.buckets.iter().zip(bounds) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {b}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct State {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    batches: BTreeMap<String, Histogram>,
    model_seconds: BTreeMap<String, Histogram>,
}

/// The server's counters. Cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    /// One answered request on `endpoint` (a route name, never a raw path) with `status`.
    pub fn request(&self, endpoint: &str, status: u16, seconds: f64) {
        self.with(|s| {
            *s.requests
                .entry((endpoint.to_string(), status))
                .or_default() += 1;
            s.latency
                .entry(endpoint.to_string())
                .or_default()
                .observe(&LATENCY_BUCKETS, seconds);
        });
    }

    /// One model run of `samples` samples.
    pub fn batch(&self, model: &str, samples: usize, seconds: f64) {
        let bounds: Vec<f64> = (0..8).map(|i| f64::from(1u32 << i)).collect();
        self.with(|s| {
            s.batches
                .entry(model.to_string())
                .or_default()
                .observe(&bounds, samples as f64);
            s.model_seconds
                .entry(model.to_string())
                .or_default()
                .observe(&LATENCY_BUCKETS, seconds);
        });
    }

    /// Requests answered so far with `status` (all endpoints).
    pub fn count(&self, status: u16) -> u64 {
        self.with(|s| {
            s.requests
                .iter()
                .filter(|((_, st), _)| *st == status)
                .map(|(_, n)| n)
                .sum()
        })
    }

    /// The text exposition; `queues` gives each model's queue depth.
    pub fn render(&self, queues: &[(String, usize)]) -> String {
        let mut out = String::new();
        let bounds: Vec<f64> = (0..8).map(|i| f64::from(1u32 << i)).collect();
        self.with(|s| {
            out.push_str("# HELP vmunet_requests_total Requests answered, by endpoint and HTTP status.\n# TYPE vmunet_requests_total counter\n");
            for ((e, st), n) in &s.requests {
                let _ = writeln!(out, "vmunet_requests_total{{endpoint=\"{e}\",code=\"{st}\"}} {n}");
            }
            out.push_str("# HELP vmunet_request_duration_seconds Time from the request's head to its answer.\n# TYPE vmunet_request_duration_seconds histogram\n");
            for (e, h) in &s.latency {
                h.write(&mut out, "vmunet_request_duration_seconds", &format!("endpoint=\"{e}\""), &LATENCY_BUCKETS);
            }
            out.push_str("# HELP vmunet_batch_size Samples per model run (dynamic batching).\n# TYPE vmunet_batch_size histogram\n");
            for (m, h) in &s.batches {
                h.write(&mut out, "vmunet_batch_size", &format!("model=\"{m}\""), &bounds);
            }
            out.push_str("# HELP vmunet_model_run_seconds Time of one model run (one batch).\n# TYPE vmunet_model_run_seconds histogram\n");
            for (m, h) in &s.model_seconds {
                h.write(&mut out, "vmunet_model_run_seconds", &format!("model=\"{m}\""), &LATENCY_BUCKETS);
            }
        });
        out.push_str("# HELP vmunet_queue_depth Requests waiting for the model.\n# TYPE vmunet_queue_depth gauge\n");
        for (m, d) in queues {
            let _ = writeln!(out, "vmunet_queue_depth{{model=\"{m}\"}} {d}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let m = Metrics::default();
        m.request("infer", 200, 0.003);
        m.request("infer", 200, 0.2);
        m.request("infer", 503, 0.001);
        m.batch("ref", 3, 0.05);
        let t = m.render(&[("ref".into(), 2)]);
        assert!(
            t.contains("vmunet_requests_total{endpoint=\"infer\",code=\"200\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("vmunet_request_duration_seconds_bucket{endpoint=\"infer\",le=\"0.005\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("vmunet_request_duration_seconds_bucket{endpoint=\"infer\",le=\"+Inf\"} 3"),
            "{t}"
        );
        assert!(
            t.contains("vmunet_batch_size_bucket{model=\"ref\",le=\"2\"} 0"),
            "{t}"
        );
        assert!(
            t.contains("vmunet_batch_size_bucket{model=\"ref\",le=\"4\"} 1"),
            "{t}"
        );
        assert!(t.contains("vmunet_queue_depth{model=\"ref\"} 2"), "{t}");
        assert_eq!(m.count(503), 1);
    }
}
