//! Model errors.

/// Errors from building or running the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The configuration is inconsistent.
    #[error("invalid VM-UNet configuration: {0}")]
    Config(String),
    /// The input tensor does not fit the model.
    #[error("invalid input shape {shape:?}: {reason}")]
    Input {
        /// Shape that was given (N, C, H, W).
        shape: Vec<usize>,
        /// What is wrong.
        reason: String,
    },
}
