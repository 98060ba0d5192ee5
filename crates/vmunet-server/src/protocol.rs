//! The Open Inference Protocol's REST messages (KServe v2, as Triton speaks it): the inference
//! request and response, server and model metadata, the error body. One typed place: handlers
//! build these, never JSON by hand.

use serde::de::{DeserializeSeed, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The parameter of an input or output that says its data travels in the binary section
/// (Triton's binary tensor extension), and how many bytes it takes.
pub const BINARY_DATA_SIZE: &str = "binary_data_size";
/// The parameter of a requested output that asks for it in the binary section.
pub const BINARY_DATA: &str = "binary_data";
/// The request parameter that asks for every output in the binary section.
pub const BINARY_DATA_OUTPUT: &str = "binary_data_output";
/// The header that gives the length of the JSON part of a body with a binary section.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The tensor element types the server takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    /// float32.
    Fp32,
    /// float16 (IEEE half).
    Fp16,
    /// Pixels: the server applies the official per-image min-max normalisation.
    Uint8,
}

impl Datatype {
    /// Parses the protocol's name (`FP32`, `FP16`, `UINT8`); `None` for any other.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "FP32" => Some(Self::Fp32),
            "FP16" => Some(Self::Fp16),
            "UINT8" => Some(Self::Uint8),
            _ => None,
        }
    }

    /// The protocol's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fp32 => "FP32",
            Self::Fp16 => "FP16",
            Self::Uint8 => "UINT8",
        }
    }

    /// Bytes per element in the binary section.
    pub fn size(self) -> usize {
        match self {
            Self::Fp32 => 4,
            Self::Fp16 => 2,
            Self::Uint8 => 1,
        }
    }
}

/// `POST /v2/models/{m}/infer`: the JSON part of the request.
#[derive(Debug, Deserialize)]
pub struct InferRequest {
    /// Request id, echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters (`binary_data_output`).
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The input tensors.
    pub inputs: Vec<RequestInput>,
    /// The outputs wanted (all, when absent).
    #[serde(default)]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// One input tensor of a request.
#[derive(Debug, Deserialize)]
pub struct RequestInput {
    /// Input name.
    pub name: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// Element type name.
    pub datatype: String,
    /// `binary_data_size` when the data is in the binary section.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The elements, flat or nested row-major, when sent as JSON.
    #[serde(default)]
    pub data: Option<FlatData>,
}

/// One requested output.
#[derive(Debug, Deserialize)]
pub struct RequestOutput {
    /// Output name.
    pub name: String,
    /// `binary_data`.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

/// Tensor elements read from JSON without building a value tree: nested arrays are
/// flattened row-major as they are parsed. Booleans and strings are refused.
#[derive(Debug, Default)]
pub struct FlatData {
    /// The numbers, in order.
    pub values: Vec<f64>,
}

impl<'de> Deserialize<'de> for FlatData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut values = Vec::new();
        Flatten(&mut values).deserialize(d)?;
        Ok(Self { values })
    }
}

struct Flatten<'a>(&'a mut Vec<f64>);

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("numbers, or (nested) arrays of numbers")
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flatten(self.0))?.is_some() {}
        Ok(())
    }
}

/// The inference response (JSON part).
#[derive(Debug, Serialize)]
pub struct InferResponse {
    /// Model name.
    pub model_name: String,
    /// Model version.
    pub model_version: String,
    /// The request's id, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The outputs.
    pub outputs: Vec<ResponseOutput>,
}

/// One output tensor of a response.
#[derive(Debug, Serialize)]
pub struct ResponseOutput {
    /// Output name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Element type (always `FP32`).
    pub datatype: &'static str,
    /// `binary_data_size` when the data is in the binary section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// The elements (flat, row-major) when sent as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<f32>>,
}

/// `GET /v2`.
#[derive(Debug, Serialize)]
pub struct ServerMetadata {
    /// Server name.
    pub name: &'static str,
    /// Server version.
    pub version: &'static str,
    /// Protocol extensions it implements.
    pub extensions: Vec<&'static str>,
}

/// The extensions `GET /v2` lists.
pub const EXTENSIONS: [&str; 4] = [
    "binary_tensor_data",
    "model_configuration",
    "vmunet_segmentation",
    "metrics",
];

/// A tensor in model metadata.
#[derive(Debug, Clone, Serialize)]
pub struct TensorMetadata {
    /// Name.
    pub name: String,
    /// Element type.
    pub datatype: &'static str,
    /// Shape; -1 where any size is taken (the batch).
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{m}`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelMetadata {
    /// Name.
    pub name: String,
    /// Versions served (one: "1").
    pub versions: Vec<String>,
    /// What runs it.
    pub platform: String,
    /// Inputs.
    pub inputs: Vec<TensorMetadata>,
    /// Outputs.
    pub outputs: Vec<TensorMetadata>,
    /// vmunet's own facts: input size, classes, activation, SHA-256, runtime, batching.
    pub parameters: Map<String, Value>,
}

/// An error body: `{"error": "..."}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// What is wrong.
    pub error: &'a str,
}

/// Whether a parameter map says `key` is `true`.
pub fn flag(params: &Option<Map<String, Value>>, key: &str) -> bool {
    params
        .as_ref()
        .and_then(|p| p.get(key))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_data_flattens_row_major_and_strings_are_refused() {
        let r: RequestInput = serde_json::from_str(
            r#"{"name":"input","shape":[1,2,2],"datatype":"FP32","data":[[[1,2],[3.5,-4]]]}"#,
        )
        .unwrap();
        assert_eq!(r.data.unwrap().values, vec![1.0, 2.0, 3.5, -4.0]);
        let bad = serde_json::from_str::<RequestInput>(
            r#"{"name":"input","shape":[1],"datatype":"FP32","data":["x"]}"#,
        );
        assert!(bad.is_err());
        assert_eq!(Datatype::parse("FP16"), Some(Datatype::Fp16));
        assert_eq!(Datatype::parse("INT64"), None);
    }
}
