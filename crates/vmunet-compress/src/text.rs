//! The compression reports in words and as JSON, as `vmunet compress` prints them.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::{CalibrationSet, Fp16Report, Int8Options, Int8Report, KeepReason, NodeSensitivity};

impl Fp16Report {
    /// What was converted and what stays float32 (policy nodes counted, others named).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "fp16: {} nodes in float16, {} kept float32, {} casts; range check on {}\n",
            self.half_nodes,
            self.kept.len(),
            self.casts,
            self.calibration
        );
        let mut policy = BTreeMap::<&str, usize>::new();
        for (n, r) in &self.kept {
            match r {
                KeepReason::Scan | KeepReason::LayerNorm => {
                    *policy.entry(r.label()).or_default() += 1
                }
                _ => s += &format!("  kept float32: {n}: {r}\n"),
            }
        }
        for (k, v) in policy {
            s += &format!("  kept float32 by policy: {v} {k} node(s)\n");
        }
        s
    }

    /// The report as JSON, for `model` converted into `output` (`bytes` long).
    pub fn to_json(&self, model: &Path, output: &Path, bytes: u64) -> serde_json::Value {
        json!({
            "model": model.display().to_string(),
            "output": output.display().to_string(),
            "bytes": bytes,
            "half_nodes": self.half_nodes,
            "casts": self.casts,
            "half_initializers": self.half_initializers,
            "range_check": self.calibration,
            "kept_fp32": self.kept.iter().map(|(n, r)| json!({"node": n, "reason": r.to_string()})).collect::<Vec<_>>(),
        })
    }
}

impl Int8Report {
    /// What was quantised with `opts`, and why the rest stays float.
    pub fn summary(&self, opts: &Int8Options) -> String {
        let mut s = format!(
            "int8 ({}, {}): {} Conv/MatMul nodes quantised, {} with int8 weights only, {} kept float, {} constants stored as float16{}\n",
            opts.format,
            if opts.dynamic { "dynamic".to_string() } else { format!("{} calibration", opts.method) },
            self.quantized.len(),
            self.weight_only.len(),
            self.excluded.len() - self.weight_only.len(),
            self.fp16_constants,
            if self.calibration.is_empty() { String::new() } else { format!("; calibrated on {}", self.calibration) }
        );
        let mut reasons = BTreeMap::<&str, usize>::new();
        for (_, w) in &self.excluded {
            *reasons.entry(w.as_str()).or_default() += 1;
        }
        for (w, c) in reasons {
            s += &format!("  kept float: {c} node(s): {w}\n");
        }
        s
    }

    /// The report as JSON, for `model` quantised with `opts` into `output` (`bytes` long).
    pub fn to_json(
        &self,
        opts: &Int8Options,
        model: &Path,
        output: &Path,
        bytes: u64,
    ) -> serde_json::Value {
        json!({
            "model": model.display().to_string(),
            "output": output.display().to_string(),
            "bytes": bytes,
            "format": opts.format.name(),
            "method": if opts.dynamic { "dynamic".to_string() } else { opts.method.to_string() },
            "calibration": self.calibration,
            "quantized": self.quantized,
            "kept_float": self.excluded.iter().map(|(n, w)| json!({"node": n, "reason": w})).collect::<Vec<_>>(),
        })
    }
}

/// The sensitivity ranking's `top` rows as a table, with its header line.
pub fn sensitivity_table(
    rows: &[NodeSensitivity],
    top: usize,
    opts: &Int8Options,
    calib: &CalibrationSet,
) -> String {
    let mut s = format!(
        "int8 sensitivity ({} calibration, {} images from {}): mean |logit error| when only this node is quantised\n",
        opts.method,
        calib.len(),
        calib.source
    );
    s += &format!(
        "{:>4}  {:<64} {:>8} {:>11} {:>11} {:>9}  default\n",
        "rank", "node", "op", "mean |err|", "max |err|", "flips %"
    );
    for (i, r) in rows.iter().take(top).enumerate() {
        s += &format!(
            "{:>4}  {:<64} {:>8} {:>11.3e} {:>11.3e} {:>9.4}  {}\n",
            i + 1,
            r.node,
            r.op,
            r.mean_abs_error,
            r.max_abs_error,
            r.mask_flips * 100.0,
            r.default_excluded
                .as_deref()
                .map_or("quantised".to_string(), |w| format!("float ({w})"))
        );
    }
    if rows.len() > top {
        s += &format!(
            "({} more; --top N or --json FILE for all)\n",
            rows.len() - top
        );
    }
    s
}

/// `wrote OUT (X MB, Nx the Y MB input)`.
pub fn size_line(input: &Path, output: &Path, out_bytes: u64) -> String {
    let in_bytes = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
    format!(
        "wrote {} ({:.2} MB, {:.2}x the {:.2} MB input)",
        output.display(),
        out_bytes as f64 / 1e6,
        out_bytes as f64 / in_bytes.max(1) as f64,
        in_bytes as f64 / 1e6
    )
}

#[cfg(feature = "prune")]
impl crate::prune::PruneReport {
    /// What pruning `source` removed, per block.
    pub fn summary(&self, source: &Path, state_ratio: f64) -> String {
        let mut s = format!(
            "pruned {}: {} -> {} parameters ({:.1} %), {:.3} -> {:.3} GMACs at {size}x{size} ({:.1} %); every block keeps {:.1} % of its inner channels{}\n",
            source.display(),
            self.params.0,
            self.params.1,
            100.0 * self.params.1 as f64 / self.params.0 as f64,
            self.macs.0 as f64 / 1e9,
            self.macs.1 as f64 / 1e9,
            100.0 * self.macs.1 as f64 / self.macs.0 as f64,
            self.channel_keep * 100.0,
            if state_ratio > 0.0 {
                format!(" and {:.0} % of its states", (1.0 - state_ratio) * 100.0)
            } else {
                String::new()
            },
            size = self.size,
        );
        for b in &self.blocks {
            s += &format!(
                "  {:<22} d_inner {:>4} -> {:<4} d_state {:>3} -> {}\n",
                b.block, b.d_inner.0, b.d_inner.1, b.d_state.0, b.d_state.1
            );
        }
        s
    }
}
