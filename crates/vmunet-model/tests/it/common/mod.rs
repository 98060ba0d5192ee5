//! Helpers for tests that read `../shared` fixtures.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};
use vmunet_data::{read_npy, Array};
use vmunet_model::CpuBackend;

/// `../shared/fixtures/official-small`, or `None` (with a message) when absent.
pub fn fixtures() -> Option<PathBuf> {
    vmunet_testdata::official_small("official fixture tests")
}

pub fn npy(dir: &std::path::Path, name: &str) -> Array {
    read_npy(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"))
}

pub fn tensor4(a: &Array) -> Tensor<CpuBackend, 4> {
    let s: [usize; 4] = a.shape.clone().try_into().expect("4-D array");
    Tensor::from_data(TensorData::new(a.data.clone(), s), &Default::default())
}

pub fn to_vec(t: Tensor<CpuBackend, 4>) -> (Vec<usize>, Vec<f32>) {
    let dims = t.dims().to_vec();
    (dims, t.into_data().into_vec::<f32>().unwrap())
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// (name, shape, f32 data) of one tensor.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Minimal safetensors writer for building malformed test files: (name, shape, f32 data).
pub fn write_safetensors(path: &std::path::Path, tensors: &[NamedTensor]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape, data) in tensors {
        let end = offset + data.len() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    for (_, _, data) in tensors {
        for v in data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, out).unwrap();
}

/// Reads a safetensors file of F32 tensors: (name, shape, data) in header order.
pub fn read_safetensors(path: &std::path::Path) -> Vec<NamedTensor> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out: Vec<_> = header
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .map(|(k, v)| {
            let shape: Vec<usize> = serde_json::from_value(v["shape"].clone()).unwrap();
            let o: Vec<usize> = serde_json::from_value(v["data_offsets"].clone()).unwrap();
            let vals = data[o[0]..o[1]]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (k, shape, vals)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
