//! A benchmark's report: the table, the profile block, the peer line, time per operator type,
//! the kernel table and the split of the forward into scan and the rest; as text and JSON.

use vmunet_runtime::OpProfile;

use crate::{DeviceReport, KernelReport, Peer, Row};

/// Everything one `vmunet bench` run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// What was timed (model, parameters, input shape).
    pub header: String,
    /// The input shape.
    pub shape: Vec<usize>,
    /// Threads of the run.
    pub threads: usize,
    /// Images per run.
    pub batch: usize,
    /// One row per runtime and scan form.
    pub rows: Vec<Row>,
    /// The device profile's verdict, when run under one.
    pub device: Option<DeviceReport>,
    /// The scan kernel at the model's stage shapes.
    pub kernel: Option<KernelReport>,
    /// Time per operator type, per runtime and form.
    pub by_op: Vec<(String, OpProfile)>,
    /// The official model's timings from the same run (only when its input shape matches).
    pub peer: Option<Peer>,
    /// Things the reader should know (a peer file for another shape, ...).
    pub warnings: Vec<String>,
}

impl BenchReport {
    /// An empty report; a peer timed at another input shape is dropped with a warning.
    pub(crate) fn new(
        header: String,
        shape: Vec<usize>,
        threads: usize,
        peer: Option<Peer>,
    ) -> Self {
        let mut warnings = Vec::new();
        let peer = match peer {
            Some(p) if p.shape != shape => {
                warnings.push(format!(
                    "the peer timings are for input {:?}, this run is {:?}: no ratios",
                    p.shape, shape
                ));
                None
            }
            p => p,
        };
        Self {
            header,
            batch: shape.first().copied().unwrap_or(1),
            shape,
            threads,
            rows: Vec::new(),
            device: None,
            kernel: None,
            by_op: Vec::new(),
            peer,
            warnings,
        }
    }

    /// The report as `vmunet bench` prints it.
    pub fn text(&self) -> String {
        let mut s = format!("vmunet bench: {}, {} threads\n", self.header, self.threads);
        s += &self.table();
        if let Some(d) = &self.device {
            s += &d.text();
        }
        if let Some(p) = &self.peer {
            s += &format!("\n{}\n", p.line());
        }
        for (label, p) in &self.by_op {
            s += &op_profile_text(label, p);
        }
        if let Some(k) = &self.kernel {
            s += &k.text();
            for split in self.non_scan(k) {
                s += &split.line(self.peer.as_ref());
            }
        }
        s
    }

    fn table(&self) -> String {
        let peer = self.peer.as_ref();
        let peer_col = peer.map_or(String::new(), |p| {
            format!(
                " vs PyTorch {} ({}) |",
                p.torch,
                p.forward_s
                    .map_or("reference scan not timed".into(), |f| format!("{f:.2} s"))
            )
        });
        let mut s = format!(
            "| runtime | provider | scan | runs | min s | p50 s | p95 s | images/s | peak RSS MB |{peer_col}\n"
        );
        s += &format!(
            "|---|---|---|---|---|---|---|---|---|{}\n",
            if peer.is_some() { "---|" } else { "" }
        );
        for r in &self.rows {
            let ratio = match peer.and_then(|p| p.forward_s) {
                Some(f) => format!(" {:.1}x faster |", f / r.pct(0.5)),
                None if peer.is_some() => " - |".into(),
                None => String::new(),
            };
            s += &format!(
                "| {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.2} | {} |{ratio}\n",
                r.runtime,
                r.provider,
                r.scan,
                r.times.len(),
                r.times[0],
                r.pct(0.5),
                r.pct(0.95),
                self.batch as f64 / r.pct(0.5),
                r.rss
                    .map_or("?".into(), |b| format!("{:.0}", b as f64 / 1e6)),
            );
        }
        s
    }

    /// For every custom-scan row: the forward minus the kernel's share (the rest of the graph).
    fn non_scan(&self, k: &KernelReport) -> Vec<NonScan> {
        let scan = k.per_forward();
        self.rows
            .iter()
            .filter(|r| r.scan == "custom")
            .map(|r| NonScan {
                runtime: r.runtime.clone(),
                forward: r.pct(0.5),
                scan,
            })
            .collect()
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let peer = self.peer.as_ref();
        serde_json::json!({
            "model": self.header, "threads": self.threads, "batch": self.batch,
            "profile": self.device.as_ref().map(DeviceReport::json),
            "kernel": self.kernel.as_ref().map(KernelReport::json),
            "non_scan": self.kernel.as_ref().map(|k| serde_json::Value::Array(
                self.non_scan(k).iter().map(|n| n.json(peer)).collect())),
            "by_op": self.by_op.iter().map(|(l, p)| op_profile_json(l, p)).collect::<Vec<_>>(),
            "peer": self.peer,
            "rows": self.rows.iter().map(|r| serde_json::json!({
                "runtime": r.runtime, "scan": r.scan, "runs_s": r.times,
                "min_s": r.times[0], "p50_s": r.pct(0.5), "p95_s": r.pct(0.95),
                "images_per_s": self.batch as f64 / r.pct(0.5), "peak_rss_bytes": r.rss,
                "provider": r.provider,
                "ratio_vs_pytorch": peer.and_then(|p| p.forward_s).map(|f| r.pct(0.5) / f),
            })).collect::<Vec<_>>(),
        })
    }
}

/// A custom-scan row's forward split into the kernel's share and the rest.
struct NonScan {
    runtime: String,
    forward: f64,
    scan: f64,
}

impl NonScan {
    fn rest(&self) -> f64 {
        self.forward - self.scan
    }

    fn line(&self, peer: Option<&Peer>) -> String {
        let vs = peer.map_or(String::new(), |p| {
            format!(
                "; PyTorch without the scan {:.3} s: {:.2}x",
                p.no_scan_s,
                self.rest() / p.no_scan_s
            )
        });
        format!(
            "{} [custom]: forward {:.3} s = scan {:.3} s + the rest {:.3} s{vs}\n",
            self.runtime,
            self.forward,
            self.scan,
            self.rest()
        )
    }

    fn json(&self, peer: Option<&Peer>) -> serde_json::Value {
        serde_json::json!({
            "runtime": self.runtime, "forward_s": self.forward, "scan_s": self.scan,
            "rest_s": self.rest(),
            "rest_vs_pytorch_no_scan": peer.map(|p| self.rest() / p.no_scan_s),
        })
    }
}

fn fmt_ms(s: f64) -> String {
    format!("{:.1}", s * 1e3)
}

/// One runtime's time per operator type (the 15 largest, then the rest together).
fn op_profile_text(label: &str, p: &OpProfile) -> String {
    let mut s = format!(
        "\n{label}: time per operator type, {} ms per forward in the nodes\n",
        fmt_ms(p.total_s)
    );
    s += "| op | nodes | ms | share |\n|---|---|---|---|\n";
    let share = |x: f64| 100.0 * x / p.total_s.max(f64::MIN_POSITIVE);
    for o in p.ops.iter().take(15) {
        s += &format!(
            "| {} | {} | {} | {:.1} % |\n",
            o.op,
            o.nodes,
            fmt_ms(o.seconds),
            share(o.seconds)
        );
    }
    if p.ops.len() > 15 {
        let rest = &p.ops[15..];
        let secs: f64 = rest.iter().map(|o| o.seconds).sum();
        let n: usize = rest.iter().map(|o| o.nodes).sum();
        s += &format!(
            "| {} other types | {n} | {} | {:.1} % |\n",
            rest.len(),
            fmt_ms(secs),
            share(secs)
        );
    }
    s
}

fn op_profile_json(label: &str, p: &OpProfile) -> serde_json::Value {
    serde_json::json!({
        "label": label, "runtime": p.runtime, "total_s": p.total_s,
        "ops": p.ops.iter().map(|o| serde_json::json!({
            "op": o.op, "nodes": o.nodes, "seconds": o.seconds,
        })).collect::<Vec<_>>(),
    })
}
