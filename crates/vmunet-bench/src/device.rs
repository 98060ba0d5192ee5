//! What a deployer needs to know about a run under a device profile.

use vmunet_runtime::{DeviceProfile, Session};

use crate::Row;

/// A run under a device profile: the provider that ran against the ones the profile asks for,
/// precision, model form, latency, peak memory against the profile's budget.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceReport {
    /// Profile name.
    pub profile: String,
    /// The profile file.
    pub path: String,
    /// Providers the profile asks for, in order.
    pub wanted: Vec<&'static str>,
    /// The provider that ran.
    pub provider: &'static str,
    /// What ran, with the reason each skipped provider was skipped.
    pub description: String,
    /// The profile's precision.
    pub precision: String,
    /// The model's precision (metadata; fp32 when it records none).
    pub model_precision: String,
    /// The model's scan form.
    pub form: String,
    /// Batch.
    pub batch: usize,
    /// Median seconds per run.
    pub p50: f64,
    /// 95th percentile seconds per run.
    pub p95: f64,
    /// Peak memory, MiB.
    pub peak_mb: Option<f64>,
    /// The profile's memory budget, MiB.
    pub budget_mb: Option<usize>,
}

impl DeviceReport {
    pub(crate) fn new(p: &DeviceProfile, session: &Session, row: &Row, batch: usize) -> Self {
        let metadata = session.file().map(|f| &f.metadata);
        Self {
            profile: p.name.clone(),
            path: p.origin(),
            wanted: p.provider_names(),
            provider: row.provider,
            description: row.runtime.clone(),
            precision: p.precision.to_string(),
            model_precision: metadata
                .and_then(|m| m.precision)
                .map_or("fp32".into(), |x| x.to_string()),
            form: row.scan.clone(),
            batch,
            p50: row.pct(0.5),
            p95: row.pct(0.95),
            peak_mb: row.rss.map(|b| b as f64 / (1u64 << 20) as f64),
            budget_mb: p.memory_budget_mb,
        }
    }

    /// `within budget`, `OVER BUDGET` or `no budget set` (no budget or no measurement).
    pub fn verdict(&self) -> &'static str {
        match (self.peak_mb, self.budget_mb) {
            (Some(peak), Some(budget)) if peak <= budget as f64 => "within budget",
            (Some(_), Some(_)) => "OVER BUDGET",
            _ => "no budget set",
        }
    }

    /// The block `vmunet bench --profile` prints.
    pub fn text(&self) -> String {
        let mut s = format!("\nprofile {} ({}):\n", self.profile, self.path);
        s += &format!(
            "  provider: {} (profile asks for {}){}\n",
            self.provider,
            self.wanted.join(" > "),
            if self.wanted.first() == Some(&self.provider) {
                String::new()
            } else {
                format!("; {}", self.description)
            }
        );
        s += &format!(
            "  precision: profile {}, model {}; model form: {}\n",
            self.precision, self.model_precision, self.form
        );
        s += &format!(
            "  latency: p50 {:.1} ms, p95 {:.1} ms; {:.2} images/s at batch {}\n",
            self.p50 * 1e3,
            self.p95 * 1e3,
            self.batch as f64 / self.p50,
            self.batch
        );
        let peak = self.peak_mb.map_or("?".into(), |m| format!("{m:.0} MiB"));
        s += &match self.budget_mb {
            Some(b) => format!(
                "  peak memory: {peak} of a {b} MiB budget: {}\n",
                self.verdict()
            ),
            None => format!("  peak memory: {peak} (the profile sets no memory_budget_mb)\n"),
        };
        s
    }

    /// The report as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.profile, "path": self.path, "providers_wanted": self.wanted,
            "provider": self.provider, "precision": self.precision,
            "model_precision": self.model_precision, "form": self.form, "batch": self.batch,
            "p50_s": self.p50, "p95_s": self.p95, "images_per_s": self.batch as f64 / self.p50,
            "peak_mib": self.peak_mb, "memory_budget_mib": self.budget_mb,
            "verdict": self.verdict(),
        })
    }
}
