//! Optional capture of intermediate activations, keyed by official module paths.

use burn::tensor::{backend::Backend, Tensor};

/// Receives `(module path, activation)` pairs during a forward pass; a no-op when off.
///
/// Paths follow the official PyTorch module names (`layers.0.blocks.1.self_attention`);
/// a `.input` suffix marks a module's input. Layout is NHWC except SS2D's `conv2d` / `act`
/// and `final_conv` (NCHW), as in the official code.
pub struct Trace<'a, B: Backend> {
    sink: Option<&'a mut Sink<'a, B>>,
}

/// The callback a [`Trace`] feeds.
pub type Sink<'s, B> = dyn FnMut(&str, Tensor<B, 4>) + 's;

impl<'a, B: Backend> Trace<'a, B> {
    /// A trace that records nothing.
    pub fn off() -> Self {
        Self { sink: None }
    }

    /// A trace that calls `sink` for every activation.
    pub fn new(sink: &'a mut Sink<'a, B>) -> Self {
        Self { sink: Some(sink) }
    }

    /// Whether anything is recorded.
    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    pub(crate) fn emit(&mut self, path: &str, name: &str, t: &Tensor<B, 4>) {
        if let Some(sink) = self.sink.as_mut() {
            let key = match (path.is_empty(), name.is_empty()) {
                (true, _) => name.to_string(),
                (_, true) => path.to_string(),
                _ => format!("{path}.{name}"),
            };
            sink(&key, t.clone());
        }
    }
}

/// `parent.child` path helper.
pub(crate) fn join(parent: &str, child: impl std::fmt::Display) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}
