//! Reading a model's intermediate values: the fp32 run that compression calibrates on.

use std::path::PathBuf;

use tract_onnx::prelude::*;
use vmunet_data::Array;
use vmunet_onnx_ir::pb::ValueInfoProto;
use vmunet_onnx_ir::Model;

use crate::guard::contain;
use crate::RuntimeError;

type Plan = Arc<TypedRunnableModel>;

fn backend(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Backend {
        runtime: "tract".into(),
        message: format!("{e:#}"),
    }
}

/// Runs a model in tract and returns chosen intermediate values besides its outputs.
///
/// The values become extra graph outputs of a private copy of the model, so the plan computes
/// exactly what the model computes; float16 values come back widened to float32.
pub struct Probe {
    plan: Plan,
    names: Vec<String>,
    half_input: bool,
}

impl Probe {
    /// Prepares `model` (already checked by the caller) for inputs of `shape`, reporting the
    /// graph outputs followed by `values` (node outputs or inputs of the main graph).
    ///
    /// `label` names the model in errors. An unknown value name is an error.
    pub fn new(
        model: &Model,
        values: &[String],
        shape: &[usize],
        label: &str,
    ) -> Result<Self, RuntimeError> {
        let path = PathBuf::from(label);
        contain("tract", "loading", &path, || {
            Self::load(model, values, shape, label)
        })
    }

    fn load(
        model: &Model,
        values: &[String],
        shape: &[usize],
        label: &str,
    ) -> Result<Self, RuntimeError> {
        let mut m = model.clone();
        let produced: std::collections::HashSet<&str> = model
            .graph
            .nodes()
            .iter()
            .flat_map(|n| n.output.iter().map(String::as_str))
            .chain(model.graph.inputs().iter().map(|i| i.name()))
            .collect();
        if let Some(v) = values.iter().find(|v| !produced.contains(v.as_str())) {
            return Err(RuntimeError::NotOnnx {
                path: PathBuf::from(label),
                reason: format!("no node produces `{v}`"),
            });
        }
        let mut names: Vec<String> = model
            .graph
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        for v in values {
            if !names.contains(v) {
                m.graph.add_output(ValueInfoProto {
                    name: Some(v.clone()),
                    ..Default::default()
                });
                names.push(v.clone());
            }
        }
        let half_input = crate::ModelFile::first_input_is_half(&m);
        let bytes = m.to_bytes();
        let mut onnx = tract_onnx::onnx();
        crate::custom::tract_op::register(&mut onnx);
        let inference =
            onnx.model_for_read(&mut bytes.as_slice())
                .map_err(|e| RuntimeError::NotOnnx {
                    path: PathBuf::from(label),
                    reason: format!("{e:#}"),
                })?;
        let plan = inference
            .with_input_fact(0, crate::tract_rt::input_fact(half_input, shape))
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .and_then(crate::tract_rt::widen_half)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(backend)?;
        Ok(Self {
            plan,
            names,
            half_input: half_input && crate::tract_rt::native_half(),
        })
    }

    /// The names of what [`Probe::run`] returns, in order: graph outputs, then the values.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Runs one batch; returns every output and probed value as float32, in [`Probe::names`]
    /// order.
    pub fn run(&self, input: &Array) -> Result<Vec<Array>, RuntimeError> {
        let mut x = Tensor::from_shape(&input.shape, &input.data).map_err(backend)?;
        if self.half_input {
            x = x.cast_to::<f16>().map_err(backend)?.into_owned();
        }
        let out = self.plan.run(tvec!(x.into())).map_err(backend)?;
        out.iter()
            .map(|t| {
                let t = t.cast_to::<f32>().map_err(backend)?;
                let v = t.to_plain_array_view::<f32>().map_err(backend)?;
                Ok(Array {
                    shape: v.shape().to_vec(),
                    data: v.iter().copied().collect(),
                })
            })
            .collect()
    }
}
