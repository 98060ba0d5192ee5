//! tract back-end: an optimised plan per input shape, CPU.

use std::collections::HashMap;
use std::path::Path;

use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;
use vmunet_data::Array;

use crate::guard::{contain, Poison};
use crate::validate::ModelDefect;
use crate::{ModelFile, Runtime, RuntimeError};

type Plan = Arc<TypedRunnableModel>;

/// Runs an ONNX model with tract; plans are built lazily for each input shape.
pub struct TractRuntime {
    file: ModelFile,
    model: InferenceModel,
    plans: HashMap<Vec<usize>, Plan>,
    executor: Executor,
    threads: usize,
    poison: Poison,
}

fn backend(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Backend {
        runtime: "tract".into(),
        message: e.to_string(),
    }
}

impl TractRuntime {
    /// Loads and checks `path`; tract's matrix products run on one thread.
    pub fn open(path: &Path) -> Result<Self, RuntimeError> {
        Self::open_with_threads(path, 1)
    }

    /// Loads and checks `path`; matrix products use a pool of `threads` threads (tract's
    /// multithreaded executor) when `threads > 1`.
    ///
    /// A panic inside tract while loading is returned as [`RuntimeError::Panicked`].
    pub fn open_with_threads(path: &Path, threads: usize) -> Result<Self, RuntimeError> {
        contain("tract", "loading", path, || Self::load(path, threads))
    }

    fn load(path: &Path, threads: usize) -> Result<Self, RuntimeError> {
        let (file, model) = read_inference(path)?;
        let threads = threads.max(1);
        let executor = if threads > 1 {
            Executor::multithread_with_name(threads, "vmunet-tract")
        } else {
            Executor::SingleThread
        };
        Ok(Self {
            file,
            model,
            plans: HashMap::new(),
            executor,
            threads,
            poison: Poison::default(),
        })
    }

    /// The model file's header information.
    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    /// Whether the plan reads a float16 input (only where the CPU computes in float16).
    fn half_input(&self) -> bool {
        self.file.input.elem == vmunet_onnx_ir::pb::tensor_proto::DataType::Float16 && native_half()
    }

    fn input_fact(&self, shape: &[usize]) -> InferenceFact {
        input_fact(
            self.file.input.elem == vmunet_onnx_ir::pb::tensor_proto::DataType::Float16,
            shape,
        )
    }

    /// The optimised plan for `shape` (built on first use).
    pub(crate) fn plan_for(&mut self, shape: &[usize]) -> Result<Plan, RuntimeError> {
        self.plan(shape)
    }

    /// Runs `f` with this runtime's executor (tract's thread pool for matrix products).
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        multithread_tract_scope(self.executor.clone(), f)
    }

    fn plan(&mut self, shape: &[usize]) -> Result<Plan, RuntimeError> {
        if let Some(p) = self.plans.get(shape) {
            return Ok(p.clone());
        }
        let typed = self
            .model
            .clone()
            .with_input_fact(0, self.input_fact(shape))
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .and_then(widen_half)
            .map_err(backend)?;
        check_gathers(&typed).map_err(|defect| RuntimeError::Malformed {
            path: self.file.path.clone(),
            defect,
        })?;
        let plan = typed
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(backend)?;
        self.plans.insert(shape.to_vec(), plan.clone());
        Ok(plan)
    }
}

/// Reads and checks `path`, then parses it with tract (the custom scan operator registered).
fn read_inference(path: &Path) -> Result<(ModelFile, InferenceModel), RuntimeError> {
    let file = ModelFile::read(path)?;
    let mut onnx = tract_onnx::onnx();
    crate::custom::tract_op::register(&mut onnx);
    let model = onnx
        .model_for_path(path)
        .map_err(|e| RuntimeError::NotOnnx {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        })?;
    Ok((file, model))
}

/// The input fact of a model whose input is float16 (`half`) or float32.
pub(crate) fn input_fact(half: bool, shape: &[usize]) -> InferenceFact {
    if half {
        f16::fact(shape).into()
    } else {
        f32::fact(shape).into()
    }
}

/// Whether this CPU has float16 arithmetic that tract's kernels use (ARMv8.2 FP16, e.g. a
/// Jetson Orin's Cortex-A78AE). Elsewhere float16 would be emulated, slowly and with float16
/// accumulation: a float16 model then computes in float32 (as ONNX Runtime's CPU provider
/// does), keeping its float16 storage.
pub fn native_half() -> bool {
    tract_linalg::has_fp16()
}

/// Float16 models compute in float32 where the CPU has no float16 arithmetic
/// ([`native_half`]); the plan then reads and writes float32.
pub(crate) fn widen_half(model: TypedModel) -> TractResult<TypedModel> {
    let half = model.nodes().iter().any(|n| {
        n.outputs
            .iter()
            .any(|o| o.fact.datum_type == f16::datum_type())
    });
    if !half || native_half() {
        return Ok(model);
    }
    let mut model = model;
    model.transform(
        &tract_onnx::tract_core::floats::FloatPrecisionTranslator::new(
            f16::datum_type(),
            f32::datum_type(),
        ),
    )?;
    model.into_decluttered()
}

impl Runtime for TractRuntime {
    fn description(&self) -> String {
        let half = self.file.input.elem == vmunet_onnx_ir::pb::tensor_proto::DataType::Float16
            || self.file.metadata.precision == Some(vmunet_onnx_ir::Precision::Fp16);
        let widened = if half && !native_half() {
            ", float16 weights computed in float32: no float16 arithmetic on this CPU"
        } else {
            ""
        };
        if self.threads > 1 {
            format!("tract (CPU, {} threads{widened})", self.threads)
        } else {
            format!("tract (CPU{widened})")
        }
    }

    fn check(&self, shape: &[usize]) -> Result<(), RuntimeError> {
        self.file.check(shape)
    }

    fn run(&mut self, input: &Array) -> Result<Array, RuntimeError> {
        self.file.check(&input.shape)?;
        let path = self.file.path.clone();
        let mut poison = std::mem::take(&mut self.poison);
        let r = poison.run("tract", &path, || self.run_unguarded(input));
        self.poison = poison;
        r
    }

    fn op_profile(&mut self, input: &Array, runs: usize) -> Result<crate::OpProfile, RuntimeError> {
        TractRuntime::op_profile(self, input, runs)
    }
}

impl TractRuntime {
    fn run_unguarded(&mut self, input: &Array) -> Result<Array, RuntimeError> {
        let plan = self.plan(&input.shape)?;
        let mut x = Tensor::from_shape(&input.shape, &input.data).map_err(backend)?;
        if self.half_input() {
            x = x.cast_to::<f16>().map_err(backend)?.into_owned();
        }
        let out = multithread_tract_scope(self.executor.clone(), || plan.run(tvec!(x.into())))
            .map_err(backend)?;
        let y = out
            .first()
            .ok_or_else(|| backend("the model produced no output"))?
            .cast_to::<f32>()
            .map_err(backend)?;
        let y = y.to_plain_array_view::<f32>().map_err(backend)?;
        Ok(Array {
            shape: y.shape().to_vec(),
            data: y.iter().copied().collect(),
        })
    }
}

/// Checks every `Gather` whose indices are constant against the axis it indexes, with the
/// shapes tract inferred for this input: tract's kernel indexes without checking.
fn check_gathers(model: &TypedModel) -> Result<(), ModelDefect> {
    for node in &model.nodes {
        let Some(g) = node.op_as::<tract_onnx::tract_core::ops::array::Gather>() else {
            continue;
        };
        let Ok(facts) = model.node_input_facts(node.id) else {
            continue;
        };
        let (Some(data), Some(indices)) = (facts.first(), facts.get(1)) else {
            continue;
        };
        let (Some(len), Some(k)) = (
            data.shape.get(g.axis).and_then(|d| d.as_i64()),
            indices.konst.as_ref(),
        ) else {
            continue;
        };
        let Ok(k) = k.cast_to::<i64>() else { continue };
        let Ok(values) = k.to_plain_array_view::<i64>() else {
            continue;
        };
        if let Some(bad) = values.iter().find(|&&i| i < -len || i >= len) {
            return Err(ModelDefect::BadOperand {
                node: node.name.clone(),
                op: "Gather".into(),
                reason: format!("index {bad} is outside axis {} of length {len}", g.axis),
            });
        }
    }
    Ok(())
}

/// Multiply-adds of one forward pass of the model at `path` for an input of `shape`, counted
/// by tract from the decluttered graph (matrix products and convolutions, and the custom
/// scan operator's estimate).
pub fn count_macs(path: &Path, shape: &[usize]) -> Result<u64, RuntimeError> {
    contain("tract", "counting", path, || {
        let (file, model) = read_inference(path)?;
        let half = file.input.elem == vmunet_onnx_ir::pb::tensor_proto::DataType::Float16;
        let typed = model
            .with_input_fact(0, input_fact(half, shape))
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .map_err(backend)?;
        let mut total: u64 = 0;
        for node in typed.nodes() {
            let inputs: Vec<&TypedFact> = node
                .inputs
                .iter()
                .map(|i| typed.outlet_fact(*i))
                .collect::<TractResult<_>>()
                .map_err(backend)?;
            for (cost, n) in node.op.cost(&inputs).map_err(backend)? {
                if let tract_onnx::tract_core::ops::Cost::FMA(_) = cost {
                    total += n.to_i64().unwrap_or(0).max(0) as u64;
                }
            }
        }
        Ok(total)
    })
}
