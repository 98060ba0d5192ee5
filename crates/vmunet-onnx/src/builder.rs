//! A small ONNX graph builder over tract's prost types.

use std::collections::HashMap;

use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    tensor_shape_proto::Dimension, type_proto, AttributeProto, GraphProto, NodeProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Builds one `GraphProto` (the main graph or a `Scan` body).
#[derive(Default)]
pub struct Graph {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<ValueInfoProto>,
    pub outputs: Vec<ValueInfoProto>,
    counter: usize,
    consts: HashMap<String, String>,
}

/// An attribute value.
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Graph(GraphProto),
}

impl Graph {
    /// A fresh unique name with a readable prefix.
    pub fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{hint}#{}", self.counter)
    }

    /// Adds a float32 initializer under `name` (used as given: checkpoint keys).
    pub fn weight(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> String {
        assert_eq!(
            dims.iter().product::<usize>(),
            data.len(),
            "{name}: data/shape"
        );
        self.initializers.push(TensorProto {
            name: name.to_string(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.to_string()
    }

    /// An int64 constant, deduplicated by value.
    pub fn ints(&mut self, dims: &[usize], data: &[i64]) -> String {
        let key = format!("{dims:?}{data:?}");
        if let Some(n) = self.consts.get(&key) {
            return n.clone();
        }
        let name = self.fresh("const_i64");
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Int64 as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        self.consts.insert(key, name.clone());
        name
    }

    /// A 1-D int64 constant.
    pub fn ints1(&mut self, data: &[i64]) -> String {
        self.ints(&[data.len()], data)
    }

    /// A float32 constant, deduplicated by value.
    pub fn floats(&mut self, dims: &[usize], data: &[f32]) -> String {
        let key = format!(
            "f{dims:?}{:?}",
            data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        if let Some(n) = self.consts.get(&key) {
            return n.clone();
        }
        let name = self.fresh("const_f32");
        self.weight(&name, dims, data.to_vec());
        self.consts.insert(key, name.clone());
        name
    }

    /// Adds a node with `n_out` outputs named after `hint`.
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        hint: &str,
        n_out: usize,
    ) -> Vec<String> {
        let outputs: Vec<String> = (0..n_out).map(|_| self.fresh(hint)).collect();
        let name = self.fresh(&format!("{hint}/{op}"));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.clone(),
            name,
            op_type: op.to_string(),
            attribute: attrs.into_iter().map(|(k, v)| attr(k, v)).collect(),
            ..Default::default()
        });
        outputs
    }

    /// Adds a single-output node of operator domain `domain` (custom operators).
    pub fn op_in_domain(&mut self, domain: &str, op: &str, inputs: &[&str], hint: &str) -> String {
        let out = self.op(op, inputs, vec![], hint);
        if let Some(n) = self.nodes.last_mut() {
            n.domain = domain.to_string();
        }
        out
    }

    /// Adds a single-output node.
    pub fn op(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        hint: &str,
    ) -> String {
        self.node(op, inputs, attrs, hint, 1).remove(0)
    }

    /// Adds an attribute-free node whose single output gets the fixed name `output`
    /// (graph outputs such as `logits`).
    pub fn op_into(&mut self, op: &str, inputs: &[&str], output: &str) {
        let name = self.fresh(&format!("{output}/{op}"));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name,
            op_type: op.to_string(),
            ..Default::default()
        });
    }

    /// Finishes the graph.
    pub fn build(self, name: &str) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: name.to_string(),
            initializer: self.initializers,
            input: self.inputs,
            output: self.outputs,
            ..Default::default()
        }
    }
}

fn attr(name: &str, v: Attr) -> AttributeProto {
    let mut a = AttributeProto {
        name: name.to_string(),
        ..Default::default()
    };
    match v {
        Attr::Int(i) => {
            a.r#type = AttributeType::Int as i32;
            a.i = i;
        }
        Attr::Ints(i) => {
            a.r#type = AttributeType::Ints as i32;
            a.ints = i;
        }
        Attr::Float(f) => {
            a.r#type = AttributeType::Float as i32;
            a.f = f;
        }
        Attr::Graph(g) => {
            a.r#type = AttributeType::Graph as i32;
            a.g = Some(g);
        }
    }
    a
}

/// A dimension: fixed size or a named symbol.
pub enum Dim {
    Fixed(usize),
    Named(&'static str),
    /// Left open (Scan bodies: the batch comes from the outer graph).
    Any,
}

/// A float32 tensor value description.
pub fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: match d {
                                Dim::Fixed(v) => Some(dimension::Value::DimValue(*v as i64)),
                                Dim::Named(s) => Some(dimension::Value::DimParam(s.to_string())),
                                Dim::Any => None,
                            },
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
