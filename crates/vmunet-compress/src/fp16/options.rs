//! The options and report of the float16 conversion, and why a node stays float32.

/// Largest |x| a float16 activation may reach in calibration (float16's maximum is 65504;
/// the margin leaves room for images brighter or stranger than the calibration set).
pub const SAFE_MAX: f32 = 8192.0;

/// Options of [`super::to_fp16`].
#[derive(Debug, Clone)]
pub struct Fp16Options {
    /// Node names or glob patterns to keep in float32 besides the policy.
    pub keep_fp32: Vec<String>,
    /// Keep the model's input and output float32 (a `Cast` after the input and before the
    /// output), so callers feed and read float32 as before.
    pub keep_io_fp32: bool,
    /// Keep `LayerNormalization` in float32 (the default).
    pub keep_layernorm_fp32: bool,
    /// Keep the scan region in float32 (the default).
    pub keep_scan_fp32: bool,
}

impl Default for Fp16Options {
    fn default() -> Self {
        Self {
            keep_fp32: Vec::new(),
            keep_io_fp32: false,
            keep_layernorm_fp32: true,
            keep_scan_fp32: true,
        }
    }
}

/// Why a node stayed float32.
#[derive(Debug, Clone, PartialEq)]
pub enum KeepReason {
    /// The selective scan region (policy).
    Scan,
    /// A LayerNorm (policy).
    LayerNorm,
    /// Matched by a `--keep-fp32` pattern.
    Asked,
    /// Its output reached |x| = `abs_max` in calibration.
    Overflow {
        /// The largest |x| seen.
        abs_max: f32,
    },
    /// Every value of its output was below float16's smallest normal number.
    Underflow {
        /// The largest |x| seen.
        abs_max: f32,
    },
    /// It reads a weight beyond float16's range.
    Weight {
        /// The initializer.
        name: String,
    },
}

impl KeepReason {
    /// A short label (`scan`, `layernorm`, `asked`, `overflow`, `underflow`, `weight`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Scan => "scan",
            Self::LayerNorm => "layernorm",
            Self::Asked => "asked",
            Self::Overflow { .. } => "overflow",
            Self::Underflow { .. } => "underflow",
            Self::Weight { .. } => "weight",
        }
    }
}

impl std::fmt::Display for KeepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Scan => f.write_str("selective scan (policy)"),
            Self::LayerNorm => f.write_str("LayerNorm statistics (policy)"),
            Self::Asked => f.write_str("--keep-fp32"),
            Self::Overflow { abs_max } => {
                write!(f, "output reached |x| = {abs_max:.4e} (overflows float16)")
            }
            Self::Underflow { abs_max } => write!(
                f,
                "output stays below |x| = {abs_max:.4e} (underflows float16)"
            ),
            Self::Weight { name } => write!(f, "weight `{name}` is beyond float16's range"),
        }
    }
}

/// What [`super::to_fp16`] did.
#[derive(Debug, Clone, Default)]
pub struct Fp16Report {
    /// Nodes kept in float32, in graph order, with the reason.
    pub kept: Vec<(String, KeepReason)>,
    /// Nodes that run in float16.
    pub half_nodes: usize,
    /// `Cast` nodes inserted.
    pub casts: usize,
    /// Initializers stored in float16.
    pub half_initializers: usize,
    /// Where the range check's images came from, and how many.
    pub calibration: String,
}
