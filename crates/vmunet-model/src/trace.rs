//! Optional capture of intermediate activations, keyed by official module paths.
//!
//! The modules' forward functions are generic over a [`Tracer`]. The plain forward pass uses
//! [`NoTrace`], whose calls compile to nothing; the parity tests use [`Trace`], which turns
//! the [`ModulePath`] (a chain of segments on the stack) into a string only when it records.

use std::fmt;

use burn::tensor::{backend::Backend, Tensor};

/// Where a module sits in the network: a chain of segments on the stack, each borrowing its
/// parent (`layers` -> `0` -> `blocks` -> `1` -> `self_attention`). Building one allocates
/// nothing; it becomes the official dotted path (`layers.0.blocks.1.self_attention`) through
/// [`fmt::Display`], which only a recording [`Tracer`] calls.
#[derive(Debug, Clone, Copy)]
pub struct ModulePath<'a> {
    parent: Option<&'a ModulePath<'a>>,
    segment: Segment<'a>,
}

/// One step of a [`ModulePath`].
#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    /// The network itself (renders as nothing).
    Root,
    /// A named child (`layers`, `self_attention`, `out_norm`).
    Name(&'a str),
    /// A list element (`0` in `layers.0`).
    Index(usize),
}

impl ModulePath<'static> {
    /// The network itself: the empty path.
    pub const ROOT: Self = Self {
        parent: None,
        segment: Segment::Root,
    };
}

impl<'a> ModulePath<'a> {
    /// The child named `name` (`self_attention`, or `out_norm.input` for an input).
    pub fn name<'b>(&'b self, name: &'b str) -> ModulePath<'b> {
        ModulePath {
            parent: Some(self),
            segment: Segment::Name(name),
        }
    }

    /// The list element `index` (`layers` -> `layers.0`).
    pub fn index(&self, index: usize) -> ModulePath<'_> {
        ModulePath {
            parent: Some(self),
            segment: Segment::Index(index),
        }
    }

    /// Writes the dotted path; returns whether anything was written.
    fn write_into(&self, f: &mut fmt::Formatter<'_>) -> Result<bool, fmt::Error> {
        let wrote = match self.parent {
            Some(p) => p.write_into(f)?,
            None => false,
        };
        let sep = if wrote { "." } else { "" };
        match self.segment {
            Segment::Root => return Ok(wrote),
            Segment::Name("") => return Ok(wrote),
            Segment::Name(n) => write!(f, "{sep}{n}")?,
            Segment::Index(i) => write!(f, "{sep}{i}")?,
        }
        Ok(true)
    }
}

impl fmt::Display for ModulePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_into(f).map(|_| ())
    }
}

/// Receives the activations of a forward pass, keyed by module path.
///
/// Paths follow the official PyTorch module names (`layers.0.blocks.1.self_attention`);
/// an `input` segment marks a module's input. Layout is NHWC except SS2D's `conv2d` / `act`
/// and `final_conv` (NCHW), as in the official code.
pub trait Tracer<B: Backend> {
    /// Whether anything is recorded; guards copies made only for the trace.
    fn enabled(&self) -> bool;

    /// Records the activation `t` of the module at `path`.
    fn record(&mut self, path: ModulePath<'_>, t: &Tensor<B, 4>);
}

/// The tracer of the plain forward pass: records nothing, costs nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTrace;

impl<B: Backend> Tracer<B> for NoTrace {
    #[inline(always)]
    fn enabled(&self) -> bool {
        false
    }

    #[inline(always)]
    fn record(&mut self, _path: ModulePath<'_>, _t: &Tensor<B, 4>) {}
}

/// A tracer that feeds `(module path, activation)` pairs to a callback (or nothing, when
/// off).
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
}

impl<B: Backend> Tracer<B> for Trace<'_, B> {
    fn enabled(&self) -> bool {
        Trace::enabled(self)
    }

    fn record(&mut self, path: ModulePath<'_>, t: &Tensor<B, 4>) {
        if let Some(sink) = self.sink.as_mut() {
            sink(&path.to_string(), t.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ModulePath;

    #[test]
    fn paths_render_as_official_module_names() {
        let root = ModulePath::ROOT;
        assert_eq!(root.to_string(), "");
        assert_eq!(root.name("patch_embed").to_string(), "patch_embed");
        let layers = root.name("layers");
        let layer = layers.index(2);
        let blocks = layer.name("blocks");
        let block = blocks.index(1);
        let sa = block.name("self_attention");
        assert_eq!(sa.to_string(), "layers.2.blocks.1.self_attention");
        assert_eq!(
            sa.name("out_norm").name("input").to_string(),
            "layers.2.blocks.1.self_attention.out_norm.input"
        );
        assert_eq!(layer.name("").to_string(), "layers.2");
    }
}
