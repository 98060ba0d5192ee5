//! Error type shared by every metric in this crate.

use thiserror::Error;

/// Errors returned when metric inputs are inconsistent.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MetricsError {
    /// Two buffers that must be element-wise aligned have different lengths.
    #[error("length mismatch: {left} has {left_len} elements but {right} has {right_len}")]
    LengthMismatch {
        /// Name of the first buffer.
        left: &'static str,
        /// Length of the first buffer.
        left_len: usize,
        /// Name of the second buffer.
        right: &'static str,
        /// Length of the second buffer.
        right_len: usize,
    },
    /// A buffer does not hold exactly as many elements as its shape describes.
    #[error("shape {shape:?} describes {expected} elements but {what} has {got}")]
    ShapeMismatch {
        /// The shape that was supplied.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: usize,
        /// Which buffer was checked.
        what: &'static str,
        /// Length of that buffer.
        got: usize,
    },
    /// The shape has no axes, or the product of its axes overflows `usize`.
    #[error("invalid shape {shape:?}: need at least one axis and a product that fits in usize")]
    InvalidShape {
        /// The shape that was supplied.
        shape: Vec<usize>,
    },
    /// The voxel spacing does not have one entry per axis.
    #[error("spacing has {got} entries but the shape has {expected} axes")]
    SpacingLength {
        /// Number of axes of the shape.
        expected: usize,
        /// Number of spacing entries supplied.
        got: usize,
    },
    /// A voxel spacing entry is not finite and strictly positive.
    #[error("spacing on axis {axis} is {value}; it must be finite and > 0")]
    InvalidSpacing {
        /// Axis of the offending entry.
        axis: usize,
        /// The offending value.
        value: f64,
    },
    /// A surface distance was requested for a mask without foreground
    /// (medpy raises `RuntimeError` in this case).
    #[error("the {which} mask contains no foreground voxel")]
    EmptyMask {
        /// `"pred"` or `"gt"`.
        which: &'static str,
    },
    /// The number of classes is outside `2..=256`.
    #[error("num_classes must be in 2..=256 (background plus at least one label), got {0}")]
    InvalidNumClasses(usize),
}
