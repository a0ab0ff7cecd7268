//! The server's counters in Prometheus' text format (`GET /metrics`):
//! requests by model and status, rows, a latency histogram, batch sizes (of
//! the forward passes and of the encoders' passes) and the queue depth.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
/// Upper bounds of the batch-size buckets, in rows.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 512.0, 4096.0];

/// A histogram with fixed buckets.
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// The sum of the observations, in millionths.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, x: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| x <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add((x * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Everything `/metrics` reports.
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    rows: AtomicU64,
    latency: Histogram,
    batches: Histogram,
    encoder_batches: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            rows: AtomicU64::new(0),
            latency: Histogram::new(&LATENCY_BUCKETS),
            batches: Histogram::new(&BATCH_BUCKETS),
            encoder_batches: Histogram::new(&BATCH_BUCKETS),
        }
    }
}

impl Metrics {
    /// An inference request to `model` answered with `status` after `elapsed`, holding `rows` rows.
    pub fn request(&self, model: &str, status: u16, rows: usize, elapsed: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((model.to_string(), status))
            .or_insert(0) += 1;
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// A forward pass over `rows` rows.
    pub fn batch(&self, rows: usize) {
        self.batches.observe(rows as f64);
    }

    /// An encoder pass over `rows` raw inputs of one view.
    pub fn encoder_batch(&self, rows: usize) {
        self.encoder_batches.observe(rows as f64);
    }

    /// The text format, with each model's queue depth.
    pub fn render(&self, queues: &[(&str, usize)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP gmu_requests_total Inference requests by model and HTTP status.\n# TYPE gmu_requests_total counter\n");
        for ((model, status), n) in self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            let _ = writeln!(
                out,
                "gmu_requests_total{{model=\"{}\",status=\"{status}\"}} {n}",
                model.replace(['"', '\\', '\n'], "_")
            );
        }
        let _ = writeln!(
            out,
            "# HELP gmu_rows_total Rows predicted.\n# TYPE gmu_rows_total counter\ngmu_rows_total {}",
            self.rows.load(Ordering::Relaxed)
        );
        self.latency.write(
            &mut out,
            "gmu_request_duration_seconds",
            "Inference request latency, from the body read to the answer.",
        );
        self.batches.write(&mut out, "gmu_batch_rows", "Rows per forward pass (concurrent requests batched).");
        self.encoder_batches.write(
            &mut out,
            "gmu_encoder_batch_rows",
            "Raw inputs per encoder pass (concurrent requests' plots or posters encoded together).",
        );
        out.push_str(
            "# HELP gmu_queue_depth Requests waiting for an encoder or a forward pass.\n# TYPE gmu_queue_depth gauge\n",
        );
        for (model, depth) in queues {
            let _ = writeln!(out, "gmu_queue_depth{{model=\"{}\"}} {depth}", model.replace(['"', '\\', '\n'], "_"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_counts_by_status_and_buckets_cumulatively() {
        let m = Metrics::default();
        m.request("mfeat", 200, 3, Duration::from_micros(300));
        m.request("mfeat", 200, 1, Duration::from_millis(3));
        m.request("mfeat", 400, 0, Duration::from_micros(50));
        m.batch(4);
        m.encoder_batch(8);
        let text = m.render(&[("mfeat", 2)]);
        assert!(text.contains("gmu_requests_total{model=\"mfeat\",status=\"200\"} 2\n"), "{text}");
        assert!(text.contains("gmu_requests_total{model=\"mfeat\",status=\"400\"} 1\n"));
        assert!(text.contains("gmu_rows_total 4\n"));
        assert!(text.contains("gmu_request_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("gmu_request_duration_seconds_bucket{le=\"0.0005\"} 2\n"));
        assert!(text.contains("gmu_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("gmu_request_duration_seconds_count 3\n"));
        assert!(text.contains("gmu_batch_rows_bucket{le=\"2\"} 0\ngmu_batch_rows_bucket{le=\"4\"} 1\n"));
        assert!(
            text.contains("gmu_encoder_batch_rows_bucket{le=\"4\"} 0\ngmu_encoder_batch_rows_bucket{le=\"8\"} 1\n")
        );
        assert!(text.contains("gmu_queue_depth{model=\"mfeat\"} 2\n"));
    }
}
