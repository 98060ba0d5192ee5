//! The official PyTorch model timed beside a run (`tests/bench_peer.py`'s JSON).

use std::path::Path;

use crate::BenchError;

/// The official PyTorch model's timings from the same run.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Peer {
    /// torch version.
    pub torch: String,
    /// Threads torch ran with.
    pub threads: usize,
    /// Input shape it ran at.
    pub shape: Vec<usize>,
    /// Median forward with the official code's CPU scan (mamba's reference algorithm).
    pub forward_s: Option<f64>,
    /// Median forward with the scan replaced by a stand-in of the same shapes: everything
    /// except the scan.
    pub no_scan_s: f64,
    /// When and where it ran.
    pub machine: String,
    /// ISO date of the run.
    pub date: String,
}

impl Peer {
    /// Reads `tests/bench_peer.py --out`'s file.
    pub fn read(path: &Path) -> Result<Self, BenchError> {
        let bad = |reason: String| BenchError::Peer {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read the peer timings: {e}")))?;
        serde_json::from_str(&text).map_err(|e| {
            bad(format!(
                "not a bench_peer.py result (torch, threads, shape, forward_s, no_scan_s, machine, date): {e}"
            ))
        })
    }

    /// The "official PyTorch ..." line of a report.
    pub(crate) fn line(&self) -> String {
        format!(
            "official PyTorch {} ({} threads, {}, {}): forward {}, without the scan {:.3} s",
            self.torch,
            self.threads,
            self.machine,
            self.date,
            self.forward_s
                .map_or("not timed".into(), |f| format!("{f:.2} s")),
            self.no_scan_s
        )
    }
}
