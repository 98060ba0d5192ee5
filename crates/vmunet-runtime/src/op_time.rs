//! Where a forward's time goes: wall time per operator type, from tract (every node timed
//! through its plan's evaluation hook) and ONNX Runtime (its profiler's per-kernel events),
//! for `vmunet bench --by-op`.

use std::collections::HashMap;
use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{eval, SimpleState};

#[cfg(feature = "ort")]
use crate::OrtRuntime;
use crate::{Array, Runtime, RuntimeError, TractRuntime};

/// One operator type's share of a forward.
#[derive(Debug, Clone, PartialEq)]
pub struct OpTime {
    /// The runtime's name for the operator (tract's optimised op, ONNX Runtime's kernel op).
    pub op: String,
    /// Nodes of this type executed per forward.
    pub nodes: usize,
    /// Seconds per forward (mean over the profiled runs).
    pub seconds: f64,
}

/// Time per operator type in one forward, largest first.
#[derive(Debug, Clone, PartialEq)]
pub struct OpProfile {
    /// `tract` or `onnxruntime`.
    pub runtime: &'static str,
    /// Sum of the node times per forward (excludes the runtime's own overhead between nodes).
    pub total_s: f64,
    /// Operator types, largest first.
    pub ops: Vec<OpTime>,
}

impl OpProfile {
    fn from_sums(runtime: &'static str, sums: HashMap<String, (usize, f64)>, runs: usize) -> Self {
        let runs = runs.max(1) as f64;
        let mut ops: Vec<OpTime> = sums
            .into_iter()
            .map(|(op, (n, s))| OpTime {
                op,
                nodes: (n as f64 / runs).round() as usize,
                seconds: s / runs,
            })
            .collect();
        ops.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then(a.op.cmp(&b.op)));
        Self {
            runtime,
            total_s: ops.iter().map(|o| o.seconds).sum(),
            ops,
        }
    }
}

fn backend(runtime: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Backend {
        runtime: runtime.into(),
        message: e.to_string(),
    }
}

impl TractRuntime {
    /// Runs `input` `runs` times after one warm-up, timing every node of the optimised plan.
    pub fn op_profile(&mut self, input: &Array, runs: usize) -> Result<OpProfile, RuntimeError> {
        self.file().check(&input.shape)?;
        self.run(input)?; // builds the plan, warms caches
        let plan = self.plan_for(&input.shape)?;
        let x = Tensor::from_shape(&input.shape, &input.data).map_err(|e| backend("tract", e))?;
        let mut sums: HashMap<String, (usize, f64)> = HashMap::new();
        for _ in 0..runs.max(1) {
            let mut state = SimpleState::new(&plan).map_err(|e| backend("tract", e))?;
            let inputs = tvec!(x.clone().into());
            self.in_scope(|| {
                state.run_plan_with_eval(inputs, |ctx, st, node, inp| {
                    let t = Instant::now();
                    let r = eval(ctx, st, node, inp);
                    let e = sums.entry(node.op().name().to_string()).or_default();
                    e.0 += 1;
                    e.1 += t.elapsed().as_secs_f64();
                    r
                })
            })
            .map_err(|e| backend("tract", e))?;
        }
        Ok(OpProfile::from_sums("tract", sums, runs))
    }
}

#[cfg(feature = "ort")]
impl OrtRuntime {
    /// Runs `input` once to warm up and then `runs` times, and sums the per-kernel events of the
    /// timed runs by operator type. The session must have been opened with ONNX Runtime's
    /// profiler on ([`crate::OrtOptions::profile`]); the profiler ends here and its trace file is
    /// removed.
    pub fn op_profile(&mut self, input: &Array, runs: usize) -> Result<OpProfile, RuntimeError> {
        if !self.profiling {
            return Err(backend(
                "onnxruntime",
                "per-operator times need a session opened with the profiler on",
            ));
        }
        let before = self.runs_done;
        self.run(input)?;
        for _ in 0..runs.max(1) {
            self.run(input)?;
        }
        let trace = self.end_profiling()?;
        self.profiling = false;
        let text = std::fs::read_to_string(&trace);
        let _ = std::fs::remove_file(&trace);
        let text = text.map_err(|e| backend("onnxruntime", format!("{}: {e}", trace.display())))?;
        let sums = parse_ort_trace(&text, self.runs_done, before + 1)
            .map_err(|e| backend("onnxruntime", format!("{}: {e}", trace.display())))?;
        Ok(OpProfile::from_sums("onnxruntime", sums, runs))
    }
}

#[cfg(feature = "ort")]
/// Sums ONNX Runtime's `Node` `*_kernel_time` events of `calls` runs by `args.op_name`,
/// skipping the first `skip` runs' events (warm-up; every run executes the same kernels).
fn parse_ort_trace(
    text: &str,
    calls: usize,
    skip: usize,
) -> Result<HashMap<String, (usize, f64)>, String> {
    let events: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not an ONNX Runtime trace: {e}"))?;
    let kernels: Vec<(&str, f64)> = events
        .iter()
        .filter(|e| e["cat"] == "Node")
        .filter(|e| {
            e["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("_kernel_time"))
        })
        .filter_map(|e| Some((e["args"]["op_name"].as_str()?, e["dur"].as_f64()? * 1e-6)))
        .collect();
    if calls == 0 || kernels.is_empty() || !kernels.len().is_multiple_of(calls) {
        return Err(format!(
            "{} kernel events do not split into {calls} runs",
            kernels.len()
        ));
    }
    let mut sums: HashMap<String, (usize, f64)> = HashMap::new();
    for (op, s) in &kernels[(kernels.len() / calls * skip).min(kernels.len())..] {
        let e = sums.entry(op.to_string()).or_default();
        e.0 += 1;
        e.1 += s;
    }
    Ok(sums)
}

#[cfg(all(test, feature = "ort"))]
mod tests {
    use super::*;

    #[test]
    fn ort_trace_is_summed_by_op_after_the_warm_up() {
        let ev = |name: &str, op: &str, dur: f64| serde_json::json!({"cat": "Node", "name": name, "dur": dur, "args": {"op_name": op}});
        let mut events =
            vec![serde_json::json!({"cat": "Session", "name": "model_run", "dur": 9.0})];
        for run in 0..3 {
            let k = if run == 0 { 1000.0 } else { 1.0 };
            events.push(ev("conv_kernel_time", "Conv", 10.0 * k));
            events.push(ev("conv_fence_before", "Conv", 5.0));
            events.push(ev("mm1_kernel_time", "MatMul", 4.0 * k));
            events.push(ev("mm2_kernel_time", "MatMul", 2.0 * k));
        }
        let text = serde_json::to_string(&events).unwrap();
        let sums = parse_ort_trace(&text, 3, 1).unwrap();
        assert_eq!(sums["Conv"].0, 2);
        assert!((sums["Conv"].1 - 20e-6).abs() < 1e-12);
        assert_eq!(sums["MatMul"].0, 4);
        let p = OpProfile::from_sums("onnxruntime", sums, 2);
        assert_eq!(p.ops[0].op, "Conv");
        assert_eq!(p.ops[1].nodes, 2);
        assert!((p.total_s - 16e-6).abs() < 1e-12);
        assert!(parse_ort_trace(&text, 5, 1).is_err());
        assert!(parse_ort_trace("{", 1, 1).is_err());
    }
}
