//! [`Session`]: the one way to open a model for inference, whatever runs it.

use std::path::Path;

use vmunet_data::Array;

use crate::{
    default_input_size, DeviceProfile, ModelDim, ModelFile, Runtime, RuntimeError, RuntimeKind,
    TractRuntime,
};
#[cfg(feature = "ort")]
use crate::{OrtOptions, OrtRuntime};

/// How to open a model file: the runtime, a device profile, a thread count.
///
/// A profile chooses the runtime, providers, precision, threads and default input size; it
/// excludes `runtime` and `threads` (the profile's own values are used).
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Runtime for the ONNX file (default tract).
    pub runtime: Option<RuntimeKind>,
    /// Device profile (`devices/*.toml`).
    pub profile: Option<DeviceProfile>,
    /// Threads for ONNX Runtime's intra-op pool or tract's matrix products.
    pub threads: Option<usize>,
    /// Open ONNX Runtime with its profiler on, for [`Runtime::op_profile`] (tract times its
    /// operators without it).
    pub op_profile: bool,
    /// The `libonnxruntime.so` to load (first in the search order of
    /// [`crate::ort_lib::locate`]; the Python package passes the `onnxruntime` package's).
    pub ort_library: Option<std::path::PathBuf>,
}

/// An opened model: the runtime that runs it and what is known of its input.
pub struct Session {
    runtime: Box<dyn Runtime>,
    file: Option<ModelFile>,
    profile: Option<DeviceProfile>,
    channels: usize,
    fixed_size: Option<(usize, usize)>,
    trained_size: Option<usize>,
    label: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("runtime", &self.runtime.description())
            .field("label", &self.label)
            .field("channels", &self.channels)
            .field("fixed_size", &self.fixed_size)
            .finish()
    }
}

impl Session {
    /// Opens the ONNX file at `path` as `options` say.
    pub fn open(path: &Path, options: &SessionOptions) -> Result<Self, RuntimeError> {
        let file = ModelFile::read(path)?;
        let runtime: Box<dyn Runtime> = match &options.profile {
            Some(profile) => match profile.runtime {
                RuntimeKind::Tract => Box::new(TractRuntime::open_with_threads(
                    path,
                    profile.threads.unwrap_or(1),
                )?),
                #[cfg(feature = "ort")]
                RuntimeKind::Ort => Box::new(OrtRuntime::open(
                    path,
                    &OrtOptions {
                        profile: ort_profiler(options),
                        library: options.ort_library.clone(),
                        ..OrtOptions::for_profile(profile)
                    },
                )?),
                #[cfg(not(feature = "ort"))]
                RuntimeKind::Ort => return Err(no_ort()),
                RuntimeKind::Burn => return Err(burn_needs_checkpoint()),
            },
            None => match options.runtime.unwrap_or(RuntimeKind::Tract) {
                RuntimeKind::Tract => Box::new(TractRuntime::open_with_threads(
                    path,
                    options.threads.unwrap_or(1),
                )?),
                #[cfg(feature = "ort")]
                RuntimeKind::Ort => Box::new(OrtRuntime::open(
                    path,
                    &OrtOptions {
                        threads: options.threads,
                        profile: ort_profiler(options),
                        library: options.ort_library.clone(),
                        ..Default::default()
                    },
                )?),
                #[cfg(not(feature = "ort"))]
                RuntimeKind::Ort => return Err(no_ort()),
                RuntimeKind::Burn => return Err(burn_needs_checkpoint()),
            },
        };
        let fixed = |i: usize| match file.input.dims.get(i) {
            Some(ModelDim::Fixed(v)) => Some(*v),
            _ => None,
        };
        let channels = fixed(1).ok_or_else(|| RuntimeError::NotOnnx {
            path: path.to_path_buf(),
            reason: format!("input {} has no fixed channel count", file.input),
        })?;
        let fixed_size = fixed(2).zip(fixed(3));
        Ok(Self {
            runtime,
            channels,
            fixed_size,
            trained_size: None,
            profile: options.profile.clone(),
            label: path.display().to_string(),
            file: Some(file),
        })
    }

    /// Wraps a runtime that does not read an ONNX file (burn on a checkpoint): any input
    /// size that is a multiple of 32, `channels` input channels.
    pub fn from_runtime(runtime: Box<dyn Runtime>, channels: usize, label: String) -> Self {
        Self {
            runtime,
            file: None,
            profile: None,
            channels,
            fixed_size: None,
            trained_size: None,
            label,
        }
    }

    /// Records the input size (H = W) the model was trained at: [`Session::input_size`]
    /// defaults to it.
    pub fn with_trained_size(mut self, size: Option<usize>) -> Self {
        self.trained_size = size;
        self
    }

    /// Where the model came from (the file path, or a checkpoint's label).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Input channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The model's fixed input (H, W), if it has one.
    pub fn fixed_size(&self) -> Option<(usize, usize)> {
        self.fixed_size
    }

    /// The ONNX file's declared input and metadata (`None` for burn).
    pub fn file(&self) -> Option<&ModelFile> {
        self.file.as_ref()
    }

    /// The device profile the session was opened with.
    pub fn profile(&self) -> Option<&DeviceProfile> {
        self.profile.as_ref()
    }

    /// The input (H, W) to run at: the model's own when fixed (a different `requested` size
    /// is an error), else `requested`, else the size it was trained at, else the profile's,
    /// else 256.
    pub fn input_size(&self, requested: Option<usize>) -> Result<(usize, usize), RuntimeError> {
        match (self.fixed_size, requested) {
            (Some(hw), Some(s)) if hw != (s, s) => Err(RuntimeError::Shape {
                expected: format!("{} (fixed at {}x{})", self.label, hw.0, hw.1),
                found: vec![1, self.channels, s, s],
            }),
            (Some(hw), _) => Ok(hw),
            (None, Some(s)) => Ok((s, s)),
            (None, None) => {
                let s = default_input_size(self.trained_size, self.profile.as_ref());
                Ok((s, s))
            }
        }
    }
}

impl Runtime for Session {
    fn description(&self) -> String {
        self.runtime.description()
    }
    fn provider(&self) -> &'static str {
        self.runtime.provider()
    }
    fn check(&self, shape: &[usize]) -> Result<(), RuntimeError> {
        self.runtime.check(shape)
    }
    fn run(&mut self, input: &Array) -> Result<Array, RuntimeError> {
        self.runtime.run(input)
    }
    fn op_profile(&mut self, input: &Array, runs: usize) -> Result<crate::OpProfile, RuntimeError> {
        self.runtime.op_profile(input, runs)
    }
}

/// Where ONNX Runtime's profiler writes its trace when `options` ask for operator times.
#[cfg(feature = "ort")]
fn ort_profiler(options: &SessionOptions) -> Option<std::path::PathBuf> {
    options
        .op_profile
        .then(|| std::env::temp_dir().join(format!("vmunet-ort-profile-{}", std::process::id())))
}

#[cfg(not(feature = "ort"))]
fn no_ort() -> RuntimeError {
    RuntimeError::Backend {
        runtime: "onnxruntime".into(),
        message: "this build has no ONNX Runtime support (enable the `ort` feature)".into(),
    }
}

fn burn_needs_checkpoint() -> RuntimeError {
    RuntimeError::Backend {
        runtime: "burn".into(),
        message: "burn runs checkpoints, not ONNX files: pass --checkpoint (or --preset)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(name: &str) -> std::path::PathBuf {
        vmunet_testdata::golden(name)
    }

    #[test]
    fn opens_a_golden_model_and_runs_it() {
        let mut s = Session::open(&golden("tiny-scan.onnx"), &SessionOptions::default()).unwrap();
        assert_eq!(s.channels(), 3);
        let (h, w) = s.fixed_size().expect("the golden model has a fixed size");
        assert_eq!(s.input_size(None).unwrap(), (h, w));
        assert!(s.input_size(Some(h + 32)).is_err());
        let x = vmunet_data::read_npy(&golden("tiny-input.npy")).unwrap();
        let y = s.run(&x).unwrap();
        let want = vmunet_data::read_npy(&golden("tiny-logits.npy")).unwrap();
        assert_eq!(y.shape, want.shape);
        let diff = y
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "max |diff| {diff}");
    }

    #[test]
    fn burn_kind_is_refused_for_files() {
        let e = Session::open(
            &golden("tiny-scan.onnx"),
            &SessionOptions {
                runtime: Some(RuntimeKind::Burn),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("checkpoint"), "{e}");
    }
}
