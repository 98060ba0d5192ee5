//! The graph's borders: the element type its inputs are fed in, a final `Cast` where the
//! outputs stay float32, and the declared types of both.

use std::collections::HashMap;

use vmunet_onnx_ir::pb::{type_proto, NodeProto, ValueInfoProto};
use vmunet_onnx_ir::{DataType, Graph};

use super::casts::cast_node;
use super::floats::Floats;
use super::options::{Fp16Options, Fp16Report};

/// The names of the graph inputs that are not initializers, and the element type each float
/// one is fed in (float32 when the I/O stays float32, float16 otherwise).
pub(super) fn input_types(
    graph: &Graph,
    floats: &Floats,
    opts: &Fp16Options,
) -> (Vec<String>, HashMap<String, DataType>) {
    let mut current: HashMap<String, DataType> = HashMap::new();
    let input_names: Vec<String> = graph
        .inputs()
        .iter()
        .filter(|i| !floats.inits.contains(i.name()))
        .map(|i| i.name().to_string())
        .collect();
    for i in &input_names {
        if floats.is_f32(i) {
            current.insert(
                i.clone(),
                if opts.keep_io_fp32 {
                    DataType::Float
                } else {
                    DataType::Float16
                },
            );
        }
    }
    (input_names, current)
}

/// Graph outputs: float32 when asked (a final `Cast` appended to `nodes`), float16 otherwise
/// where produced so. Returns the element type of each float output.
pub(super) fn output_casts(
    graph: &mut Graph,
    floats: &Floats,
    opts: &Fp16Options,
    nodes: &mut Vec<NodeProto>,
    current: &HashMap<String, DataType>,
    report: &mut Fp16Report,
) -> HashMap<String, DataType> {
    let outputs: Vec<String> = graph
        .outputs()
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    let mut output_types: HashMap<String, DataType> = HashMap::new();
    for o in &outputs {
        let cur = current.get(o).copied().unwrap_or(DataType::Float);
        if cur == DataType::Float16 && opts.keep_io_fp32 {
            let inner = graph.fresh(&format!("{o}/fp16"));
            for m in nodes.iter_mut() {
                for v in m.input.iter_mut().chain(m.output.iter_mut()) {
                    if v == o {
                        *v = inner.clone();
                    }
                }
            }
            let name = graph.fresh(&format!("{o}/Cast"));
            nodes.push(cast_node(name, &inner, o, DataType::Float));
            report.casts += 1;
            output_types.insert(o.clone(), DataType::Float);
        } else if floats.types.get(o) == Some(&DataType::Float) {
            output_types.insert(o.clone(), cur);
        }
    }
    output_types
}

fn set_elem(vi: &mut ValueInfoProto, t: DataType) {
    if let Some(type_proto::Value::TensorType(tt)) =
        vi.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        tt.elem_type = Some(t as i32);
    }
}

/// Installs `nodes` in `graph`, drops its value infos (stale) and declares the element types
/// of its float inputs (`input_names`, as fed: `current`) and outputs (`output_types`).
pub(super) fn set_types(
    graph: &mut Graph,
    nodes: Vec<NodeProto>,
    floats: &Floats,
    input_names: &[String],
    current: &HashMap<String, DataType>,
    output_types: &HashMap<String, DataType>,
) {
    let p = graph.proto_mut();
    p.node = nodes;
    p.value_info.clear();
    for vi in &mut p.input {
        if input_names.iter().any(|i| i == vi.name()) && floats.is_f32(vi.name()) {
            set_elem(
                vi,
                current.get(vi.name()).copied().unwrap_or(DataType::Float),
            );
        }
    }
    for vi in &mut p.output {
        if let Some(t) = output_types.get(vi.name()) {
            set_elem(vi, *t);
        }
    }
}
