//! What `vmunet bundle`, `verify-bundle` and `serve` print: each report in words.

use crate::{BundleReport, ServeSummary, TritonReport, VerifyReport, MANIFEST_FILE};

impl BundleReport {
    /// The bundle, its models (scan form, input, SHA-256 prefix) and how to check it.
    pub fn summary(&self) -> String {
        let info = &self.info;
        let mut s = format!(
            "bundle {}: profile `{}` ({} {}), binary {}, {} model(s){}\n",
            self.dir.display(),
            info.profile,
            info.runtime,
            info.providers.join("+"),
            info.arch,
            info.models.len(),
            if info.ort_ops {
                ", custom-op library"
            } else {
                ""
            }
        );
        for m in &info.models {
            s += &format!(
                "  {}  scan {}  {}  sha256 {}\n",
                m.file,
                m.scan.as_deref().unwrap_or("-"),
                m.input,
                &m.sha256[..16]
            );
        }
        s += &format!(
            "{} files, {:.1} MB, manifest {MANIFEST_FILE}; check it with `{}/run.sh verify`\n",
            self.files,
            self.bytes as f64 / 1e6,
            self.dir.display()
        );
        s
    }
}

impl TritonReport {
    /// One line: the model, its configuration, batching and the custom-op library.
    pub fn summary(&self) -> String {
        format!(
            "triton model `{}`: {} (max_batch_size {}{})",
            self.name,
            self.config.display(),
            self.max_batch_size,
            if self.custom_op {
                ", model_operations loads libvmunet_ort_ops.so"
            } else {
                ""
            }
        )
    }
}

impl VerifyReport {
    /// Each model opened (and run), and whether the binary runs on this machine.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for m in &self.models {
            s += &format!(
                "model {}: opens in {} ({}) at {}x{}{}\n",
                m.file,
                m.runtime,
                m.provider,
                m.input.0,
                m.input.1,
                m.seconds
                    .map(|t| format!(", one forward pass {t:.3} s"))
                    .unwrap_or_default()
            );
        }
        if let Some(arch) = self.arch.filter(|_| !self.runs_here) {
            s += &format!(
                "bin/vmunet is built for {arch}; this machine is {}: it runs on the device\n",
                crate::host_arch()
            );
        }
        if self.ok() {
            s += &format!(
                "bundle {}: OK ({} files match {MANIFEST_FILE})\n",
                self.dir.display(),
                self.files
            );
        }
        s
    }
}

/// The `q` quantile of `v` (0 when empty).
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(((s.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

impl ServeSummary {
    /// Images done, failed, skipped and recovered; throughput and latency when any was done.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} segmented, {} failed, {} already done, {} recovered ({} watcher)\n",
            self.done, self.failed, self.skipped, self.recovered, self.watcher
        );
        let n = self.latencies.len();
        if n > 0 {
            s += &format!(
                "throughput {:.2} images/s over {:.1} s; arrival to mask p50 {:.3} s, p95 {:.3} s, max {:.3} s; model p50 {:.3} s\n",
                n as f64 / self.busy_seconds.max(1e-9),
                self.busy_seconds,
                quantile(&self.latencies, 0.5),
                quantile(&self.latencies, 0.95),
                quantile(&self.latencies, 1.0),
                quantile(&self.inference, 0.5)
            );
        }
        s
    }
}
