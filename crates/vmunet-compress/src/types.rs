//! Element types of a graph's values, propagated from inputs and initializers through the ops
//! the exporter emits (enough to tell float tensors from shapes, axes and indices).

use std::collections::HashMap;

use vmunet_onnx_ir::pb::{attribute_proto::AttributeType, type_proto, NodeProto, ValueInfoProto};
use vmunet_onnx_ir::{DataType, Graph};

/// The declared element type of a value info (undefined when it declares none).
pub(crate) fn declared(vi: &ValueInfoProto) -> DataType {
    match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => {
            DataType::try_from(t.elem_type.unwrap_or(0)).unwrap_or(DataType::Undefined)
        }
        _ => DataType::Undefined,
    }
}

fn int_attr(n: &NodeProto, name: &str) -> Option<i64> {
    n.attribute
        .iter()
        .find(|a| a.name() == name && a.r#type() == AttributeType::Int)
        .and_then(|a| a.i)
}

/// The output element types of `n` given its input types.
fn output_type(n: &NodeProto, input: impl Fn(usize) -> DataType) -> DataType {
    match n.op_type() {
        "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" => DataType::Int64,
        "Cast" => int_attr(n, "to")
            .and_then(|t| DataType::try_from(t as i32).ok())
            .unwrap_or(DataType::Undefined),
        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And" | "Or" => {
            DataType::Bool
        }
        "Where" => input(1),
        "DequantizeLinear" | "SelectiveScan" => DataType::Float,
        "QuantizeLinear" => {
            if n.input.len() > 2 {
                input(2)
            } else {
                DataType::Uint8
            }
        }
        "MatMulInteger" | "ConvInteger" => DataType::Int32,
        "QLinearConv" | "QLinearMatMul" => input(7),
        "ConstantOfShape" | "Constant" => n
            .attribute
            .iter()
            .find(|a| a.name() == "value")
            .and_then(|a| a.t.as_ref())
            .and_then(|t| DataType::try_from(t.data_type()).ok())
            .unwrap_or(DataType::Float),
        // Scan outputs: float state and scan outputs in every export.
        "Scan" => DataType::Float,
        _ => input(0),
    }
}

/// Every value's element type: graph inputs and initializers as declared, node outputs
/// propagated in order.
pub(crate) fn value_types(graph: &Graph) -> HashMap<String, DataType> {
    let mut t: HashMap<String, DataType> = HashMap::new();
    for vi in graph.inputs() {
        t.insert(vi.name().to_string(), declared(vi));
    }
    for init in graph.initializers() {
        t.insert(
            init.name().to_string(),
            DataType::try_from(init.data_type()).unwrap_or(DataType::Undefined),
        );
    }
    for n in graph.nodes() {
        let ty = output_type(n, |i| {
            n.input
                .get(i)
                .and_then(|v| t.get(v))
                .copied()
                .unwrap_or(DataType::Undefined)
        });
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            t.insert(o.clone(), ty);
        }
    }
    t
}

/// Whether `t` is float32.
pub(crate) fn is_f32(types: &HashMap<String, DataType>, value: &str) -> bool {
    types.get(value) == Some(&DataType::Float)
}
