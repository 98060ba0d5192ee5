//! ONNX Runtime back-end (`ort`, loaded dynamically from `libonnxruntime.so`), with execution
//! providers tried in order and a report of the one that ran.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::ep;
use ort::session::Session;
use ort::value::Tensor;
use vmunet_data::Array;

use crate::guard::{contain, Poison};
use crate::ort_lib::OrtLibrary;
use crate::{ModelFile, Runtime, RuntimeError};
use vmunet_target::{DeviceProfile, Provider};

/// The provider's registration with its options ([`Provider::ort_options`]), or why this
/// build cannot offer it.
fn dispatch(p: &Provider) -> Result<ep::ExecutionProviderDispatch, String> {
    #[allow(unused_imports)]
    use ort::ep::ArbitrarilyConfigurableExecutionProvider;
    match p {
        Provider::Cpu => Ok(ep::CPU::default().build().error_on_failure()),
        #[cfg(feature = "cuda")]
        Provider::Cuda(_) => {
            let mut c = ep::CUDA::default();
            for (k, v) in p.ort_options() {
                c = c.with_arbitrary_config(k, v);
            }
            Ok(c.build().error_on_failure())
        }
        #[cfg(feature = "tensorrt")]
        Provider::TensorRt(_) => {
            let mut t = ep::TensorRT::default();
            for (k, v) in p.ort_options() {
                t = t.with_arbitrary_config(k, v);
            }
            Ok(t.build().error_on_failure())
        }
        #[allow(unreachable_patterns)]
        other => Err(format!(
            "this build has no {} support (build vmunet with the `ort-{}` feature)",
            other.name(),
            other.name().to_lowercase()
        )),
    }
}

/// Options for [`OrtRuntime`].
#[derive(Debug, Clone)]
pub struct OrtOptions {
    /// Providers in order of preference; CPU is the last resort when absent.
    pub providers: Vec<Provider>,
    /// Intra-op threads (None: one per available CPU, set explicitly so that ONNX Runtime
    /// does not pin them).
    pub threads: Option<usize>,
    /// `libonnxruntime.so`; None reads `ORT_DYLIB_PATH`, then looks beside the executable, in
    /// `../lib` and through the system loader ([`crate::ort_lib`]).
    pub library: Option<PathBuf>,
    /// Turn ONNX Runtime's profiler on, writing its trace to this prefix plus a timestamp
    /// ([`OrtRuntime::end_profiling`] ends it and names the file).
    pub profile: Option<PathBuf>,
}

impl Default for OrtOptions {
    fn default() -> Self {
        Self {
            providers: vec![Provider::Cpu],
            threads: None,
            library: None,
            profile: None,
        }
    }
}

impl OrtOptions {
    /// The options a device profile asks for: its providers (with their options) and threads.
    pub fn for_profile(profile: &DeviceProfile) -> Self {
        Self {
            providers: profile.providers(),
            threads: profile.threads,
            ..Default::default()
        }
    }
}

/// Runs an ONNX model with ONNX Runtime.
pub struct OrtRuntime {
    file: ModelFile,
    session: Session,
    provider: Provider,
    library: &'static OrtLibrary,
    /// Providers that failed to register, with ONNX Runtime's reason.
    pub skipped: Vec<(String, String)>,
    poison: Poison,
    /// ONNX Runtime's profiler is on (until [`OrtRuntime::op_profile`] ends it).
    pub(crate) profiling: bool,
    /// Forward passes run so far (the profiler's trace holds them all).
    pub(crate) runs_done: usize,
}

/// The process's ONNX Runtime environment and the library it runs on: the first call that
/// succeeds decides. A failed attempt (no library found, one too old) is not remembered, so
/// a long-lived process (the Python package) can still open ONNX Runtime once it names one.
static ENV: OnceLock<(ort::environment::Environment, OrtLibrary)> = OnceLock::new();
/// Serialises the first initialisation.
static ENV_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn ort_err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Backend {
        runtime: "onnxruntime".into(),
        message: e.to_string(),
    }
}

/// Finds and vets the library ([`crate::ort_lib::locate`]), then initialises `ort` from it.
fn environment(
    library: Option<&Path>,
) -> Result<&'static (ort::environment::Environment, OrtLibrary), RuntimeError> {
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    let _guard = ENV_INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    let lib = crate::ort_lib::locate(library).map_err(ort_err)?;
    let env = ort::init_from(&lib.path)
        .map_err(|e| ort_err(format!("cannot load {}: {e}", lib.path.display())))?
        .with_name("vmunet")
        .build()
        .map_err(|e| {
            ort_err(format!(
                "cannot initialise ONNX Runtime from {}: {e}",
                lib.path.display()
            ))
        })?;
    Ok(ENV.get_or_init(|| (env, lib)))
}

impl OrtRuntime {
    /// Loads `path`, trying the providers in order; a panic while loading is returned as
    /// [`RuntimeError::Panicked`].
    pub fn open(path: &Path, opts: &OrtOptions) -> Result<Self, RuntimeError> {
        contain("onnxruntime", "loading", path, || Self::load(path, opts))
    }

    fn load(path: &Path, opts: &OrtOptions) -> Result<Self, RuntimeError> {
        let file = ModelFile::read(path)?;
        let (env, library) = environment(opts.library.as_deref())?;
        let mut providers = opts.providers.clone();
        if !providers.contains(&Provider::Cpu) {
            providers.push(Provider::Cpu);
        }
        let mut skipped = Vec::new();
        for p in providers {
            let attempt = (|| -> Result<Session, String> {
                let mut b = Session::builder(env)
                    .map_err(|e| e.to_string())?
                    .with_execution_providers([dispatch(&p)?])
                    .map_err(|e| e.to_string())?;
                if crate::custom::uses_custom_scan(&file) {
                    let ops = crate::custom::ort_op::domain().map_err(|e| e.to_string())?;
                    b = b.with_operators(ops).map_err(|e| e.to_string())?;
                    // The scan kernel runs on vmunet's own thread pool: ONNX Runtime's intra-op
                    // threads must sleep, not spin, between nodes, or they take its cores (the
                    // scan ran 1.9x slower inside ONNX Runtime than alone, paper size).
                    b = b.with_intra_op_spinning(false).map_err(|e| e.to_string())?;
                }
                // Always an explicit pool size: left to ONNX Runtime (0), it also pins its
                // threads to cores, and the caller's thread then competes with one of them
                // (the paper model's standard-op export ran 1.96 s that way, 1.53 s unpinned
                // with the same two threads).
                let threads = opts
                    .threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
                b = b.with_intra_threads(threads).map_err(|e| e.to_string())?;
                if let Some(prefix) = &opts.profile {
                    b = b.with_profiling(prefix).map_err(|e| e.to_string())?;
                }
                b.commit_from_file(path).map_err(|e| e.to_string())
            })();
            match attempt {
                Ok(session) => {
                    return Ok(Self {
                        file,
                        session,
                        provider: p,
                        library,
                        skipped,
                        poison: Poison::default(),
                        profiling: opts.profile.is_some(),
                        runs_done: 0,
                    })
                }
                Err(e) if p == Provider::Cpu => {
                    return Err(RuntimeError::NotOnnx {
                        path: path.to_path_buf(),
                        reason: format!("ONNX Runtime rejected it: {e}"),
                    })
                }
                Err(e) => skipped.push((p.name().to_string(), e)),
            }
        }
        unreachable!("the CPU provider ends the loop")
    }

    /// Ends the profiler started by [`OrtOptions::profile`] and returns its trace file.
    pub fn end_profiling(&mut self) -> Result<PathBuf, RuntimeError> {
        self.session
            .end_profiling()
            .map(PathBuf::from)
            .map_err(|e| RuntimeError::Backend {
                runtime: "onnxruntime".into(),
                message: format!("ending the profiler: {e}"),
            })
    }

    /// The provider that runs the model.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The ONNX Runtime library the process loaded: path, version and how it was found.
    pub fn library(&self) -> &'static OrtLibrary {
        self.library
    }
}

impl Runtime for OrtRuntime {
    fn provider(&self) -> &'static str {
        self.provider.name()
    }

    fn description(&self) -> String {
        let mut s = format!("onnxruntime ({})", self.provider.name());
        for (name, why) in &self.skipped {
            s.push_str(&format!("; {name} unavailable: {why}"));
        }
        s.push_str(&format!(
            "; ONNX Runtime {} from {} ({})",
            self.library.version,
            self.library.path.display(),
            self.library.source.describe()
        ));
        s
    }

    fn check(&self, shape: &[usize]) -> Result<(), RuntimeError> {
        self.file.check(shape)
    }

    fn op_profile(&mut self, input: &Array, runs: usize) -> Result<crate::OpProfile, RuntimeError> {
        OrtRuntime::op_profile(self, input, runs)
    }

    fn run(&mut self, input: &Array) -> Result<Array, RuntimeError> {
        self.file.check(&input.shape)?;
        let path = self.file.path.clone();
        let mut poison = std::mem::take(&mut self.poison);
        let r = poison.run("onnxruntime", &path, || self.run_unguarded(input));
        self.poison = poison;
        self.runs_done += 1;
        r
    }
}

impl OrtRuntime {
    fn run_unguarded(&mut self, input: &Array) -> Result<Array, RuntimeError> {
        use vmunet_onnx_ir::pb::tensor_proto::DataType;
        let outputs = if self.file.input.elem == DataType::Float16 {
            let data: Vec<half::f16> = input.data.iter().map(|&v| half::f16::from_f32(v)).collect();
            let x = Tensor::from_array((input.shape.clone(), data.into_boxed_slice()))
                .map_err(ort_err)?;
            self.session.run(ort::inputs![x]).map_err(ort_err)?
        } else {
            let x =
                Tensor::from_array((input.shape.clone(), input.data.clone().into_boxed_slice()))
                    .map_err(ort_err)?;
            self.session.run(ort::inputs![x]).map_err(ort_err)?
        };
        if outputs.len() == 0 {
            return Err(ort_err("the model produced no output"));
        }
        let (shape, data) = if self.file.output_elem == DataType::Float16 {
            let (shape, data) = outputs[0]
                .try_extract_tensor::<half::f16>()
                .map_err(ort_err)?;
            (shape.to_vec(), data.iter().map(|v| v.to_f32()).collect())
        } else {
            let (shape, data) = outputs[0].try_extract_tensor::<f32>().map_err(ort_err)?;
            (shape.to_vec(), data.to_vec())
        };
        Ok(Array {
            shape: shape.iter().map(|&d| d as usize).collect(),
            data,
        })
    }
}
