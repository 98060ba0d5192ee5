//! Reading an ONNX file's declared input and metadata before any runtime touches it.

use std::path::{Path, PathBuf};

use vmunet_onnx_ir::pb::{
    tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, ValueInfoProto,
};
use vmunet_onnx_ir::{Activation, Model, ModelMetadata};

use crate::RuntimeError;

/// One input dimension: fixed or symbolic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelDim {
    /// A fixed size.
    Fixed(usize),
    /// A named or unknown size (any value is accepted).
    Free(String),
}

/// A declared tensor of the model (its first input, or its first output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInput {
    /// Tensor name.
    pub name: String,
    /// Declared dimensions.
    pub dims: Vec<ModelDim>,
    /// Element type (float32, or float16 for an fp16 model without `--keep-io-fp32`).
    pub elem: DataType,
}

impl ModelInput {
    /// Checks `shape` against the declared dimensions.
    pub fn check(&self, shape: &[usize]) -> Result<(), RuntimeError> {
        let ok = shape.len() == self.dims.len()
            && shape.iter().zip(&self.dims).all(|(s, d)| match d {
                ModelDim::Fixed(v) => v == s,
                ModelDim::Free(_) => *s > 0,
            });
        if ok {
            Ok(())
        } else {
            Err(RuntimeError::Shape {
                expected: self.to_string(),
                found: shape.to_vec(),
            })
        }
    }
}

impl std::fmt::Display for ModelInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|d| match d {
                ModelDim::Fixed(v) => v.to_string(),
                ModelDim::Free(n) => n.clone(),
            })
            .collect();
        write!(f, "`{}` [{}]", self.name, dims.join(", "))
    }
}

/// An ONNX file's input declaration and `metadata_props`.
#[derive(Debug, Clone)]
pub struct ModelFile {
    /// File.
    pub path: PathBuf,
    /// First input.
    pub input: ModelInput,
    /// Element type of the first output (the logits).
    pub output_elem: DataType,
    /// The first output (the logits): name, declared dimensions (empty when undeclared),
    /// element type.
    pub output: ModelInput,
    /// The vmunet metadata (all fields empty for other ONNX files).
    pub metadata: ModelMetadata,
}

/// The element type a value declares (undefined when it declares none).
fn elem_type(vi: &ValueInfoProto) -> DataType {
    match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => {
            DataType::try_from(t.elem_type.unwrap_or(0)).unwrap_or(DataType::Undefined)
        }
        _ => DataType::Undefined,
    }
}

/// The declared dimensions of a tensor value (`None` when it is not a tensor; empty when it
/// declares no shape).
fn dims_of(vi: &ValueInfoProto) -> Option<Vec<ModelDim>> {
    match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => Some(
            t.shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match &d.value {
                            Some(dimension::Value::DimValue(v)) if *v > 0 => {
                                ModelDim::Fixed(*v as usize)
                            }
                            Some(dimension::Value::DimParam(p)) => ModelDim::Free(p.clone()),
                            _ => ModelDim::Free("?".into()),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

impl ModelFile {
    /// Reads and checks the file's header information.
    pub fn read(path: &Path) -> Result<Self, RuntimeError> {
        let bad = |reason: String| RuntimeError::NotOnnx {
            path: path.to_path_buf(),
            reason,
        };
        let model = Model::read(path).map_err(|e| match e {
            vmunet_onnx_ir::OnnxFileError::Io { path, source } => RuntimeError::Io { path, source },
            other => bad(other.reason()),
        })?;
        crate::validate::check_model(&model).map_err(|defect| RuntimeError::Malformed {
            path: path.to_path_buf(),
            defect,
        })?;
        let metadata = model.metadata().map_err(|e| bad(e.to_string()))?;
        let graph = model.graph.proto();
        let inits: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name()).collect();
        let vi = graph
            .input
            .iter()
            .find(|i| !inits.contains(i.name()))
            .ok_or_else(|| bad("it declares no input".into()))?;
        let dims =
            dims_of(vi).ok_or_else(|| bad(format!("input `{}` is not a tensor", vi.name())))?;
        let elem = elem_type(vi);
        let out = graph
            .output
            .first()
            .ok_or_else(|| bad("it declares no output".into()))?;
        let output_elem = elem_type(out);
        let output = ModelInput {
            name: out.name().to_string(),
            dims: dims_of(out).unwrap_or_default(),
            elem: output_elem,
        };
        for (what, t) in [("input", elem), ("output", output_elem)] {
            if !matches!(t, DataType::Float | DataType::Float16 | DataType::Undefined) {
                return Err(bad(format!(
                    "its {what} is {}, not float32 or float16",
                    t.as_str_name()
                )));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            input: ModelInput {
                name: vi.name().to_string(),
                dims,
                elem,
            },
            output_elem,
            output,
            metadata,
        })
    }

    /// Checks an input shape against the declared input and, for size-dynamic exports, the
    /// recorded limits (multiples of 32, at most the recorded maximum size).
    pub fn check(&self, shape: &[usize]) -> Result<(), RuntimeError> {
        self.input.check(shape)?;
        if !self.metadata.is_vmunet() || shape.len() != 4 {
            return Ok(());
        }
        let max = self.metadata.max_size();
        let bad = shape[2..]
            .iter()
            .any(|&s| s % 32 != 0 || max.is_some_and(|m| s > m));
        if bad {
            let limit = max.map(|m| format!(" up to {m}")).unwrap_or_default();
            return Err(RuntimeError::Shape {
                expected: format!(
                    "{} with height and width multiples of 32{limit}",
                    self.input
                ),
                found: shape.to_vec(),
            });
        }
        Ok(())
    }

    /// Whether the first (non-initializer) input of `model` is float16.
    pub fn first_input_is_half(model: &Model) -> bool {
        let graph = model.graph.proto();
        let inits: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name()).collect();
        graph
            .input
            .iter()
            .find(|i| !inits.contains(i.name()))
            .is_some_and(|vi| elem_type(vi) == DataType::Float16)
    }

    /// The output activation recorded at export.
    pub fn activation(&self) -> Option<Activation> {
        self.metadata.output_activation
    }
}
