//! The initializers: stored in float16 for float16 readers; a float32 copy survives where
//! float32 nodes read them too.

use std::collections::{HashMap, HashSet};

use half::f16;
use vmunet_onnx_ir::pb::NodeProto;
use vmunet_onnx_ir::Graph;

use super::floats::Floats;
use super::options::Fp16Report;
use crate::CompressError;

/// Converts the float32 initializers of `graph` read by float16 nodes (`half`) in `out` (a
/// copy of `graph`); returns the float16 initializer's name for each (the same name unless a
/// float32 reader keeps the original).
pub(super) fn convert(
    graph: &Graph,
    out: &mut Graph,
    floats: &Floats,
    half: impl Fn(&NodeProto) -> bool,
    report: &mut Fp16Report,
) -> Result<HashMap<String, String>, CompressError> {
    let mut half_readers: HashMap<String, bool> = HashMap::new();
    let mut f32_readers: HashSet<String> = HashSet::new();
    for n in graph.nodes() {
        for i in n.input.iter().filter(|i| floats.is_f32_init(i)) {
            if half(n) {
                half_readers.insert(i.clone(), true);
            } else {
                f32_readers.insert(i.clone());
            }
        }
    }
    let mut half_init_name: HashMap<String, String> = HashMap::new();
    for name in half_readers.keys() {
        let (dims, data) = out.initializer::<f32>(name)?;
        let h: Vec<f16> = data.iter().map(|&v| f16::from_f32(v)).collect();
        if f32_readers.contains(name) {
            let copy = out.fresh(&format!("{name}/fp16"));
            out.add_initializer(&copy, &dims, &h)?;
            half_init_name.insert(name.clone(), copy);
        } else {
            out.set_initializer(name, &dims, &h)?;
            half_init_name.insert(name.clone(), name.clone());
        }
        report.half_initializers += 1;
    }
    Ok(half_init_name)
}
