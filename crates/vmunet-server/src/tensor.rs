//! Inference requests to tensors and tensors to responses, for JSON data and Triton's binary
//! tensor extension alike: a body is a JSON header (its length in the
//! `Inference-Header-Content-Length` header) followed by each binary input's bytes in input
//! order, each input's `binary_data_size` saying how many. Every check answers 400 with the
//! protocol's error body: the message names the input and what is wrong.

use bytes::Bytes;
use half::f16;
use serde_json::{json, Map};
use vmunet_data::Array;

use crate::model::ModelInfo;
use crate::protocol::{
    flag, Datatype, InferRequest, InferResponse, RequestInput, ResponseOutput, BINARY_DATA,
    BINARY_DATA_OUTPUT, BINARY_DATA_SIZE,
};
use crate::ApiError;

/// Splits a request body into its JSON header and binary section; `header_len` is the
/// `Inference-Header-Content-Length` value, if sent.
pub fn split_body(body: &Bytes, header_len: Option<&str>) -> Result<(Bytes, Bytes), ApiError> {
    let Some(h) = header_len else {
        return Ok((body.clone(), Bytes::new()));
    };
    let len: usize = h.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Inference-Header-Content-Length `{h}` is not a byte count"
        ))
    })?;
    if len > body.len() {
        return Err(ApiError::bad_request(format!(
            "Inference-Header-Content-Length is {len} but the body has {} bytes",
            body.len()
        )));
    }
    Ok((body.slice(..len), body.slice(len..)))
}

/// Parses the JSON header of an inference request.
pub fn parse_request(json: &[u8]) -> Result<InferRequest, ApiError> {
    serde_json::from_slice(json)
        .map_err(|e| ApiError::bad_request(format!("malformed inference request JSON: {e}")))
}

/// The model input a request carries: one tensor `[n, C, H, W]` of the model's input name,
/// FP32, FP16 or UINT8 (pixels: normalised per sample as the official preprocessing does), as
/// JSON data or in the binary section, which it must use up exactly.
pub fn request_input(
    info: &ModelInfo,
    req: &InferRequest,
    binary: &[u8],
) -> Result<Array, ApiError> {
    let input = match req.inputs.as_slice() {
        [one] => one,
        [] => return Err(ApiError::bad_request("the request has no inputs")),
        more => {
            return Err(ApiError::bad_request(format!(
                "expected 1 input for model '{}', got {}",
                info.name,
                more.len()
            )))
        }
    };
    if input.name != info.input {
        return Err(ApiError::bad_request(format!(
            "unexpected inference input '{}' for model '{}' (its input is '{}')",
            input.name, info.name, info.input
        )));
    }
    let dt = Datatype::parse(&input.datatype).ok_or_else(|| {
        ApiError::bad_request(format!(
            "input '{}' has datatype {}; model '{}' takes FP32, FP16 or UINT8",
            input.name, input.datatype, info.name
        ))
    })?;
    let shape = check_shape(info, input)?;
    let count: usize = shape.iter().product();
    let binary_size = input
        .parameters
        .as_ref()
        .and_then(|p| p.get(BINARY_DATA_SIZE));
    let values = match (binary_size, &input.data) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(format!(
                "input '{}' has both JSON data and binary_data_size",
                input.name
            )))
        }
        (Some(size), None) => {
            let size = size.as_u64().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "input '{}': binary_data_size must be a byte count",
                    input.name
                ))
            })? as usize;
            let want = count * dt.size();
            if size != want {
                return Err(ApiError::bad_request(format!(
                    "input '{}': binary_data_size is {size} bytes but shape {:?} of {} takes {want}",
                    input.name,
                    input.shape,
                    dt.as_str()
                )));
            }
            if binary.len() != size {
                return Err(ApiError::bad_request(format!(
                    "input '{}': binary_data_size is {size} bytes but the body's binary section has {}",
                    input.name,
                    binary.len()
                )));
            }
            from_binary(dt, binary)
        }
        (None, Some(data)) => {
            if !binary.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "the body has {} bytes after the JSON header that no input claims",
                    binary.len()
                )));
            }
            from_json(dt, &input.name, &data.values)?
        }
        (None, None) => {
            return Err(ApiError::bad_request(format!(
                "input '{}' has neither data nor binary_data_size",
                input.name
            )))
        }
    };
    if values.len() != count {
        return Err(ApiError::bad_request(format!(
            "input '{}': shape {:?} has {count} elements but {} were sent",
            input.name,
            input.shape,
            values.len()
        )));
    }
    let mut data = values;
    if dt == Datatype::Uint8 {
        normalise_pixels(&mut data, count / shape[0]);
    }
    Ok(Array { shape, data })
}

/// The shape must be `[n, C, H, W]` with the model's channels and size, n >= 1.
fn check_shape(info: &ModelInfo, input: &RequestInput) -> Result<Vec<usize>, ApiError> {
    let (h, w) = info.size;
    let want = [info.channels, h, w];
    let ok = input.shape.len() == 4
        && input.shape[0] >= 1
        && input.shape[0] <= 4096
        && input.shape[1..]
            .iter()
            .zip(want)
            .all(|(&a, b)| a == b as i64);
    if !ok {
        return Err(ApiError::bad_request(format!(
            "input '{}' has shape {:?}; model '{}' takes [N, {}, {h}, {w}] (N from 1 to 4096)",
            input.name, input.shape, info.name, info.channels
        )));
    }
    Ok(input.shape.iter().map(|&d| d as usize).collect())
}

fn from_binary(dt: Datatype, bytes: &[u8]) -> Vec<f32> {
    match dt {
        Datatype::Fp32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Datatype::Fp16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Datatype::Uint8 => bytes.iter().map(|&b| f32::from(b)).collect(),
    }
}

fn from_json(dt: Datatype, name: &str, values: &[f64]) -> Result<Vec<f32>, ApiError> {
    values
        .iter()
        .map(|&v| match dt {
            Datatype::Fp32 => Ok(v as f32),
            Datatype::Fp16 => Ok(f16::from_f64(v).to_f32()),
            Datatype::Uint8 if v.fract() == 0.0 && (0.0..=255.0).contains(&v) => Ok(v as f32),
            Datatype::Uint8 => Err(ApiError::bad_request(format!(
                "input '{name}' is UINT8 but holds {v}"
            ))),
        })
        .collect()
}

/// The official normalisation of pixels: each sample rescaled jointly over its channels from
/// its own minimum and maximum to [0, 255] (the model's input range).
fn normalise_pixels(data: &mut [f32], per_sample: usize) {
    for s in data.chunks_mut(per_sample.max(1)) {
        let (lo, hi) = s
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let range = hi - lo;
        for v in s.iter_mut() {
            *v = if range > 0.0 {
                (*v - lo) / range * 255.0
            } else {
                0.0
            };
        }
    }
}

/// The response to `req` with the logits `y`: the JSON header and the binary section (each
/// output asked for in binary, in order). Unknown requested outputs are a 400.
pub fn response(
    info: &ModelInfo,
    req: &InferRequest,
    y: &Array,
) -> Result<(Vec<u8>, Vec<Bytes>), ApiError> {
    let all_binary = flag(&req.parameters, BINARY_DATA_OUTPUT);
    let wanted: Vec<(String, bool)> = match &req.outputs {
        None => vec![(info.output.clone(), all_binary)],
        Some(outs) => outs
            .iter()
            .map(|o| {
                if o.name != info.output {
                    return Err(ApiError::bad_request(format!(
                        "unexpected inference output '{}' for model '{}' (its output is '{}')",
                        o.name, info.name, info.output
                    )));
                }
                let binary = o
                    .parameters
                    .as_ref()
                    .and_then(|p| p.get(BINARY_DATA))
                    .and_then(|v| v.as_bool())
                    .unwrap_or(all_binary);
                Ok((o.name.clone(), binary))
            })
            .collect::<Result<_, _>>()?,
    };
    let mut binaries = Vec::new();
    let outputs = wanted
        .into_iter()
        .map(|(name, binary)| {
            if binary {
                let bytes: Vec<u8> = y.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                let mut p = Map::new();
                p.insert(BINARY_DATA_SIZE.into(), json!(bytes.len()));
                binaries.push(Bytes::from(bytes));
                ResponseOutput {
                    name,
                    shape: y.shape.clone(),
                    datatype: "FP32",
                    parameters: Some(p),
                    data: None,
                }
            } else {
                ResponseOutput {
                    name,
                    shape: y.shape.clone(),
                    datatype: "FP32",
                    parameters: None,
                    data: Some(y.data.clone()),
                }
            }
        })
        .collect();
    let resp = InferResponse {
        model_name: info.name.clone(),
        model_version: "1".into(),
        id: req.id.clone(),
        outputs,
    };
    let json = serde_json::to_vec(&resp).map_err(|e| {
        ApiError::new(
            hyper::StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the response: {e}"),
        )
    })?;
    Ok((json, binaries))
}
