//! Typed tensors: element types and their little-endian `raw_data` encoding.

use half::f16;

use crate::pb::{tensor_proto::DataType, TensorProto};

/// Errors reading or building a typed tensor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// The stored element type is not the one asked for.
    #[error("tensor `{name}`: element type is {found}, not {expected}")]
    DataType {
        /// Tensor name.
        name: String,
        /// Requested type.
        expected: String,
        /// Stored type.
        found: String,
    },
    /// The number of elements does not match the dimensions.
    #[error("tensor `{name}`: dimensions {dims:?} need {expected} elements, found {found}")]
    Length {
        /// Tensor name.
        name: String,
        /// Dimensions.
        dims: Vec<i64>,
        /// Elements the dimensions need.
        expected: usize,
        /// Elements present.
        found: usize,
    },
    /// A dimension is negative or the data lives outside the file.
    #[error("tensor `{name}`: {reason}")]
    Unsupported {
        /// Tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// An element type stored in ONNX tensors (`raw_data`, little-endian).
pub trait Element: Copy + std::fmt::Debug + PartialEq {
    /// The ONNX data type.
    const DATA_TYPE: DataType;
    /// Short name used in generated constant names (`f32`, `i64`, ...).
    const NAME: &'static str;
    /// Bytes per element.
    const SIZE: usize;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
    /// Reads one element from exactly [`Self::SIZE`] little-endian bytes.
    fn get(bytes: &[u8]) -> Self;
    /// Reads the typed (non-raw) field of `t`, if this type has data there.
    fn typed(t: &TensorProto) -> Vec<Self>;
}

macro_rules! element {
    ($t:ty, $dt:ident, $name:literal, |$tp:ident| $typed:expr) => {
        impl Element for $t {
            const DATA_TYPE: DataType = DataType::$dt;
            const NAME: &'static str = $name;
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                <$t>::from_le_bytes(b)
            }
            fn typed($tp: &TensorProto) -> Vec<Self> {
                $typed
            }
        }
    };
}

element!(f32, Float, "f32", |t| t.float_data.clone());
element!(f16, Float16, "f16", |t| t
    .int32_data
    .iter()
    .map(|&v| f16::from_bits(v as u16))
    .collect());
element!(i8, Int8, "i8", |t| t
    .int32_data
    .iter()
    .map(|&v| v as i8)
    .collect());
element!(u8, Uint8, "u8", |t| t
    .int32_data
    .iter()
    .map(|&v| v as u8)
    .collect());
element!(i32, Int32, "i32", |t| t.int32_data.clone());
element!(i64, Int64, "i64", |t| t.int64_data.clone());

/// Builds an initializer tensor `name` of `dims` holding `data` in `raw_data`.
pub fn tensor<T: Element>(
    name: &str,
    dims: &[usize],
    data: &[T],
) -> Result<TensorProto, TensorError> {
    let expected: usize = dims.iter().product();
    let dims_i64: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    if expected != data.len() {
        return Err(TensorError::Length {
            name: name.to_string(),
            dims: dims_i64,
            expected,
            found: data.len(),
        });
    }
    let mut raw = Vec::with_capacity(data.len() * T::SIZE);
    for &v in data {
        v.put(&mut raw);
    }
    Ok(TensorProto {
        name: Some(name.to_string()),
        dims: dims_i64,
        data_type: Some(T::DATA_TYPE as i32),
        raw_data: Some(raw),
        ..Default::default()
    })
}

/// Reads the dimensions and elements of `t` as `T` (from `raw_data` or the typed field).
pub fn tensor_data<T: Element>(t: &TensorProto) -> Result<(Vec<usize>, Vec<T>), TensorError> {
    let name = t.name().to_string();
    if t.data_type() != T::DATA_TYPE as i32 {
        let found = DataType::try_from(t.data_type.unwrap_or(0))
            .map(|d| d.as_str_name().to_string())
            .unwrap_or_else(|_| format!("unknown ({})", t.data_type.unwrap_or(0)));
        return Err(TensorError::DataType {
            name,
            expected: T::DATA_TYPE.as_str_name().to_string(),
            found,
        });
    }
    if t.data_location() == crate::pb::tensor_proto::DataLocation::External {
        return Err(TensorError::Unsupported {
            name,
            reason: "its data is stored in an external file".into(),
        });
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| TensorError::Unsupported {
            name: name.clone(),
            reason: format!("negative dimension in {:?}", t.dims),
        })?;
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| TensorError::Unsupported {
            name: name.clone(),
            reason: format!("dimensions {:?} overflow", t.dims),
        })?;
    let data: Vec<T> = match &t.raw_data {
        Some(raw) => {
            if raw.len() % T::SIZE != 0 {
                return Err(TensorError::Length {
                    name,
                    dims: t.dims.clone(),
                    expected,
                    found: raw.len() / T::SIZE,
                });
            }
            raw.chunks_exact(T::SIZE).map(T::get).collect()
        }
        None => T::typed(t),
    };
    if data.len() != expected {
        return Err(TensorError::Length {
            name,
            dims: t.dims.clone(),
            expected,
            found: data.len(),
        });
    }
    Ok((dims, data))
}
