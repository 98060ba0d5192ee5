//! What the conversion reads of the float32 graph: every value's element type and the names
//! of its initializers.

use std::collections::{HashMap, HashSet};

use vmunet_onnx_ir::pb::NodeProto;
use vmunet_onnx_ir::{DataType, Graph};

use crate::types::{is_f32, value_types};

/// The float32 values of a graph.
pub(super) struct Floats<'a> {
    /// Every value's element type.
    pub(super) types: HashMap<String, DataType>,
    /// The initializers' names.
    pub(super) inits: HashSet<&'a str>,
}

impl<'a> Floats<'a> {
    /// The float32 values of `graph`.
    pub(super) fn new(graph: &'a Graph) -> Self {
        Self {
            types: value_types(graph),
            inits: graph.initializers().iter().map(|t| t.name()).collect(),
        }
    }

    /// Whether `value` is float32.
    pub(super) fn is_f32(&self, value: &str) -> bool {
        is_f32(&self.types, value)
    }

    /// Whether `value` is a float32 initializer.
    pub(super) fn is_f32_init(&self, value: &str) -> bool {
        self.inits.contains(value) && self.is_f32(value)
    }

    /// Whether `n` carries float tensors (the rest, shape arithmetic, is left as it is).
    pub(super) fn floaty(&self, n: &NodeProto) -> bool {
        n.input.iter().chain(&n.output).any(|v| self.is_f32(v))
    }
}
