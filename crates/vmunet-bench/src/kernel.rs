//! The scan kernel alone at a model's stage shapes, against its arithmetic bound.

use vmunet_runtime::Session;
use vmunet_scan::perf::{self, KernelTiming};
use vmunet_scan::CrossScanDims;

use crate::BenchError;

/// Fewest timed calls per stage shape: the fractions use each shape's fastest call, and on a
/// shared machine a quiet one needs enough tries (the paper's stage 1 is ~12 ms a call).
const KERNEL_RUNS: usize = 30;

/// One stage of a model as the scan kernel sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelShape {
    /// `encoder.0`, `decoder.3`, ...
    pub name: String,
    /// VSS blocks in the stage (each runs the kernel once per forward).
    pub blocks: usize,
    /// The kernel's shape (batch 1).
    pub dims: CrossScanDims,
}

/// One stage shape of [`KernelReport`]: timed with the bench's threads, and on one core alone
/// (a core's efficiency without the other threads sharing its caches and memory).
#[derive(Debug, Clone)]
pub struct KernelStage {
    /// The stages with this shape (`encoder.0 + decoder.3`).
    pub name: String,
    /// Blocks with this shape in a forward.
    pub blocks: usize,
    /// With the bench's threads.
    pub timing: KernelTiming,
    /// On one core.
    pub one_core: KernelTiming,
}

/// The scan kernel timed at every distinct stage shape of a model.
#[derive(Debug, Clone)]
pub struct KernelReport {
    /// Core clock, GHz (measured).
    pub clock_ghz: f64,
    /// Threads of the timed calls.
    pub threads: usize,
    /// One entry per distinct shape.
    pub stages: Vec<KernelStage>,
}

impl KernelReport {
    /// Times the kernel at each distinct shape of `shapes` (at least 30 calls per shape).
    pub fn measure(
        shapes: &[KernelShape],
        runs: usize,
        threads: usize,
    ) -> Result<Self, BenchError> {
        let hz = perf::clock_hz().unwrap_or(f64::NAN);
        let one_core = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map_err(|e| BenchError::Kernel(format!("building a one-thread pool: {e}")))?;
        let kernel = |e: vmunet_scan::ScanError| BenchError::Kernel(e.to_string());
        let mut stages: Vec<KernelStage> = Vec::new();
        for st in shapes {
            if let Some(same) = stages.iter_mut().find(|s| s.timing.dims == st.dims) {
                same.name = format!("{} + {}", same.name, st.name);
                same.blocks += st.blocks;
                continue;
            }
            let n = runs.max(KERNEL_RUNS);
            let timing = perf::time_cross_scan(st.dims, n, threads, hz).map_err(kernel)?;
            let one = one_core
                .install(|| perf::time_cross_scan(st.dims, n, 1, hz))
                .map_err(kernel)?;
            stages.push(KernelStage {
                name: st.name.clone(),
                blocks: st.blocks,
                timing,
                one_core: one,
            });
        }
        Ok(Self {
            clock_ghz: hz / 1e9,
            threads,
            stages,
        })
    }

    /// Seconds of scan in one forward: each stage's time times its number of blocks.
    pub fn per_forward(&self) -> f64 {
        self.stages
            .iter()
            .map(|st| st.blocks as f64 * st.timing.seconds)
            .sum()
    }

    /// The kernel table.
    pub fn text(&self) -> String {
        let mut s = format!(
            "\nscan kernel ({}), {} threads, core clock ~{:.2} GHz; bound: {} multiply-class ops per state update + {} per position over {} FMA pipes\n",
            vmunet_scan::simd_isa(),
            self.threads,
            self.clock_ghz,
            perf::FMA_OPS_PER_STATE,
            perf::FMA_OPS_PER_POSITION,
            perf::FMA_PIPES
        );
        s += "| stage | D | H x W | blocks | ms per call (p50) | best ms | ns per state update | cycles per 8-lane update per core | bound cycles | fraction of bound | one core alone: cycles | one core: fraction |\n";
        s += "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
        for st in &self.stages {
            let (t, one) = (&st.timing, &st.one_core);
            s += &format!(
                "| {} | {} | {}x{} | {} | {:.2} | {:.2} | {:.3} | {:.1} | {:.2} | {:.0} % | {:.1} | {:.0} % |\n",
                st.name,
                t.dims.channels,
                t.dims.height,
                t.dims.width,
                st.blocks,
                t.seconds * 1e3,
                t.best_seconds * 1e3,
                t.ns_per_update,
                t.cycles_per_vector_update,
                t.bound_cycles,
                100.0 * t.fraction_of_bound(),
                one.cycles_per_vector_update,
                100.0 * one.fraction_of_bound()
            );
        }
        s += &format!(
            "scan per forward: {:.3} s (p50 calls; ns, cycles and fractions from each shape's best call)\n",
            self.per_forward()
        );
        s
    }

    /// The report as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "clock_ghz": self.clock_ghz, "threads": self.threads, "isa": vmunet_scan::simd_isa(),
            "per_forward_s": self.per_forward(),
            "stages": self.stages.iter().map(|st| {
                let (t, one) = (&st.timing, &st.one_core);
                serde_json::json!({
                    "stage": st.name, "d_inner": t.dims.channels, "height": t.dims.height,
                    "width": t.dims.width, "blocks": st.blocks, "seconds": t.seconds,
                    "best_seconds": t.best_seconds,
                    "ns_per_state_update": t.ns_per_update,
                    "cycles_per_vector_update": t.cycles_per_vector_update,
                    "bound_cycles": t.bound_cycles, "fraction_of_bound": t.fraction_of_bound(),
                    "one_core": {
                        "seconds": one.seconds, "best_seconds": one.best_seconds,
                        "cycles_per_vector_update": one.cycles_per_vector_update,
                        "fraction_of_bound": one.fraction_of_bound(),
                    },
                })
            }).collect::<Vec<_>>(),
        })
    }
}

/// The kernel shapes of a model configuration at `size` x `size`.
#[cfg(feature = "burn")]
pub(crate) fn shapes_of(cfg: &vmunet_model::VmUnetConfig, size: usize) -> Vec<KernelShape> {
    cfg.stage_shapes(size, size)
        .into_iter()
        .map(|st| KernelShape {
            dims: CrossScanDims {
                batch: 1,
                height: st.height,
                width: st.width,
                channels: st.d_inner,
                d_state: cfg.d_state,
                dt_rank: st.dt_rank,
            },
            name: st.name,
            blocks: st.blocks,
        })
        .collect()
}

/// The kernel report for an exported model: its configuration from the ONNX metadata.
#[cfg(feature = "burn")]
pub(crate) fn for_model_file(
    session: &Session,
    size: usize,
    runs: usize,
    threads: usize,
) -> Result<KernelReport, BenchError> {
    let cfg = session
        .file()
        .and_then(|f| f.metadata.config.as_deref())
        .and_then(|j| serde_json::from_str::<vmunet_model::VmUnetConfig>(j).ok())
        .ok_or_else(|| {
            BenchError::Kernel(
                "--kernel: the model records no vmunet configuration in its metadata".into(),
            )
        })?;
    KernelReport::measure(&shapes_of(&cfg, size), runs, threads)
}

/// Without burn there is no configuration type: no kernel report for a model file.
#[cfg(not(feature = "burn"))]
pub(crate) fn for_model_file(
    _: &Session,
    _: usize,
    _: usize,
    _: usize,
) -> Result<KernelReport, BenchError> {
    Err(BenchError::Kernel(
        "--kernel needs the full build (the stage shapes come from the model configuration)".into(),
    ))
}
