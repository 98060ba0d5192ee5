//! tract back-end: an optimised plan per input shape, CPU.

use std::collections::HashMap;
use std::path::Path;

use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;
use vmunet_data::Array;

use crate::{ModelFile, Runtime, RuntimeError};

type Plan = Arc<TypedRunnableModel>;

/// Runs an ONNX model with tract; plans are built lazily for each input shape.
pub struct TractRuntime {
    file: ModelFile,
    model: InferenceModel,
    plans: HashMap<Vec<usize>, Plan>,
    executor: Executor,
    threads: usize,
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
    pub fn open_with_threads(path: &Path, threads: usize) -> Result<Self, RuntimeError> {
        let file = ModelFile::read(path)?;
        let mut onnx = tract_onnx::onnx();
        crate::custom::tract_op::register(&mut onnx);
        let model = onnx
            .model_for_path(path)
            .map_err(|e| RuntimeError::NotOnnx {
                path: path.to_path_buf(),
                reason: format!("{e:#}"),
            })?;
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
        })
    }

    /// The model file's header information.
    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    fn plan(&mut self, shape: &[usize]) -> Result<Plan, RuntimeError> {
        if let Some(p) = self.plans.get(shape) {
            return Ok(p.clone());
        }
        let plan = self
            .model
            .clone()
            .with_input_fact(0, f32::fact(shape).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(backend)?;
        self.plans.insert(shape.to_vec(), plan.clone());
        Ok(plan)
    }
}

impl Runtime for TractRuntime {
    fn description(&self) -> String {
        if self.threads > 1 {
            format!("tract (CPU, {} threads)", self.threads)
        } else {
            "tract (CPU)".into()
        }
    }

    fn check(&self, shape: &[usize]) -> Result<(), RuntimeError> {
        self.file.check(shape)
    }

    fn run(&mut self, input: &Array) -> Result<Array, RuntimeError> {
        self.file.check(&input.shape)?;
        let plan = self.plan(&input.shape)?;
        let x = Tensor::from_shape(&input.shape, &input.data).map_err(backend)?;
        let out = multithread_tract_scope(self.executor.clone(), || plan.run(tvec!(x.into())))
            .map_err(backend)?;
        let y = out[0].to_plain_array_view::<f32>().map_err(backend)?;
        Ok(Array {
            shape: y.shape().to_vec(),
            data: y.iter().copied().collect(),
        })
    }
}
