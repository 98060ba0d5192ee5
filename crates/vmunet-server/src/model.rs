//! A served model: its session lives on one worker thread (runtimes are not `Send`), fed by a
//! bounded queue. The worker batches dynamically: it takes the first waiting request, then
//! gathers more of the same sample shape until the batch holds `max_batch` samples or
//! `max_delay` has passed since the first, runs them as one batch and answers each request
//! with its own samples. A full queue is refused at once ([`ApiError::overloaded`]), never
//! grown.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use vmunet_data::{Array, Preprocess};
use vmunet_runtime::{
    ModelDim, Runtime, RuntimeError, SegmentPlan, Segmenter, SegmenterOptions, Session,
    SessionOptions,
};

use crate::metrics::Metrics;
use crate::protocol::{ModelMetadata, TensorMetadata};
use crate::{ApiError, ServerError};

/// Where a model comes from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// An ONNX file.
    File(PathBuf),
    /// The reference model compiled into the binary.
    Embedded(vmunet_embedded::EmbeddedModel),
}

/// How requests are batched for one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Most samples in one run (1: no batching; models with a fixed batch of 1 use 1).
    pub max_batch: usize,
    /// Longest wait, from the first request of a batch, for more requests.
    pub max_delay: Duration,
    /// Requests that may wait; one more is answered 503 with `Retry-After`.
    pub queue: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            max_batch: 4,
            max_delay: Duration::from_millis(5),
            queue: 32,
        }
    }
}

impl Batching {
    /// The batching a server runs with: each setting given on the command line, else the
    /// device profile's (`batch`, `max_batch_delay_ms`), else the default (4 samples, 5 ms,
    /// 32 waiting requests).
    pub fn resolve(
        profile: Option<&vmunet_runtime::DeviceProfile>,
        max_batch: Option<usize>,
        max_delay_ms: Option<u64>,
        queue: Option<usize>,
    ) -> Self {
        let d = Self::default();
        Self {
            max_batch: max_batch
                .or(profile.map(|p| p.batch))
                .unwrap_or(d.max_batch)
                .max(1),
            max_delay: max_delay_ms
                .or(profile.and_then(|p| p.max_batch_delay_ms))
                .map_or(d.max_delay, Duration::from_millis),
            queue: queue.unwrap_or(d.queue).max(1),
        }
    }
}

/// A model to serve.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Its name in URLs (`/v2/models/NAME`).
    pub name: String,
    /// The ONNX model.
    pub source: ModelSource,
    /// Runtime, profile, threads.
    pub session: SessionOptions,
    /// Input size (H = W); default: the model's own, else the size it was trained at, else
    /// the profile's.
    pub size: Option<usize>,
    /// Foreground threshold of `/segment`.
    pub threshold: f32,
    /// Batching.
    pub batching: Batching,
}

impl ModelSpec {
    /// A spec for `source` with default options; the name is the file's stem (the embedded
    /// model's own name).
    pub fn new(source: ModelSource) -> Self {
        let name = match &source {
            ModelSource::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into()),
            ModelSource::Embedded(e) => e.name.to_string(),
        };
        Self {
            name,
            source,
            session: SessionOptions::default(),
            size: None,
            threshold: 0.5,
            batching: Batching::default(),
        }
    }
}

/// What is known of a served model once its session is open.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Name.
    pub name: String,
    /// The ONNX file that runs.
    pub path: PathBuf,
    /// Whether it is the embedded reference model.
    pub embedded: bool,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Input tensor name.
    pub input: String,
    /// Output tensor name.
    pub output: String,
    /// Input channels.
    pub channels: usize,
    /// Input (H, W).
    pub size: (usize, usize),
    /// Output classes.
    pub classes: usize,
    /// Output activation (`sigmoid` or `softmax`).
    pub activation: &'static str,
    /// Class names from the model's metadata.
    pub class_names: Vec<String>,
    /// What runs it, e.g. `tract (CPU)`.
    pub runtime: String,
    /// Execution provider.
    pub provider: &'static str,
    /// Batching in effect.
    pub batching: Batching,
    /// Preprocessing and mask making of `/segment`.
    pub plan: SegmentPlan,
}

impl ModelInfo {
    /// The protocol's model metadata.
    pub fn metadata(&self) -> ModelMetadata {
        let (h, w) = self.size;
        let mut parameters = Map::new();
        for (k, v) in [
            ("input_size", json!([h, w])),
            ("classes", json!(self.classes)),
            ("class_names", json!(self.class_names)),
            ("activation", json!(self.activation)),
            ("sha256", json!(self.sha256)),
            ("runtime", json!(self.runtime)),
            ("provider", json!(self.provider)),
            ("embedded", json!(self.embedded)),
            ("max_batch_size", json!(self.batching.max_batch)),
            (
                "max_queue_delay_microseconds",
                json!(self.batching.max_delay.as_micros() as u64),
            ),
            ("threshold", json!(self.plan.threshold)),
            (
                "input_datatypes",
                json!(["FP32", "FP16", "UINT8 (pixels, normalised by the server)"]),
            ),
        ] {
            parameters.insert(k.into(), v);
        }
        let shape = |c: usize| vec![-1, c as i64, h as i64, w as i64];
        ModelMetadata {
            name: self.name.clone(),
            versions: vec!["1".into()],
            platform: "vmunet_onnx".into(),
            inputs: vec![TensorMetadata {
                name: self.input.clone(),
                datatype: "FP32",
                shape: shape(self.channels),
            }],
            outputs: vec![TensorMetadata {
                name: self.output.clone(),
                datatype: "FP32",
                shape: shape(self.classes),
            }],
            parameters,
        }
    }

    /// A Triton-style model configuration (`GET /v2/models/{m}/config`).
    pub fn config(&self) -> Value {
        let (h, w) = self.size;
        json!({
            "name": self.name,
            "platform": "vmunet_onnx",
            "backend": "vmunet",
            "max_batch_size": self.batching.max_batch,
            "input": [{"name": self.input, "data_type": "TYPE_FP32", "dims": [self.channels, h, w]}],
            "output": [{"name": self.output, "data_type": "TYPE_FP32", "dims": [self.classes, h, w]}],
            "dynamic_batching": {
                "max_queue_delay_microseconds": self.batching.max_delay.as_micros() as u64,
                "default_queue_policy": {"max_queue_size": self.batching.queue}
            }
        })
    }
}

/// One request waiting for the model: `[n, C, H, W]` in, `[n, classes, H, W]` out.
struct Job {
    input: Array,
    reply: oneshot::Sender<Result<Array, ApiError>>,
}

/// A model being served: its facts and the queue to its worker.
pub struct ServedModel {
    /// Facts.
    pub info: ModelInfo,
    queue: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for ServedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedModel")
            .field("info", &self.info)
            .finish()
    }
}

impl ServedModel {
    /// Opens the model on its own worker thread and waits until it has run once at its
    /// input size (so the first request does not pay for planning).
    pub fn start(
        spec: ModelSpec,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, std::thread::JoinHandle<()>), ServerError> {
        let (path, embedded) = match &spec.source {
            ModelSource::File(p) => (p.clone(), false),
            ModelSource::Embedded(e) => (e.materialize()?, true),
        };
        let err = |reason: String| ServerError::Model {
            name: spec.name.clone(),
            path: path.clone(),
            reason,
        };
        let sha256 = vmunet_fs::sha256_file(&path).map_err(|e| err(e.to_string()))?;
        let (tx, rx) = sync_channel::<Job>(spec.batching.queue.max(1));
        let (info_tx, info_rx) = sync_channel::<Result<ModelInfo, String>>(1);
        let depth = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            depth: depth.clone(),
            ready: ready.clone(),
            metrics,
        };
        let spec2 = spec.clone();
        let path2 = path.clone();
        let handle = std::thread::Builder::new()
            .name(format!("vmunet-model-{}", spec.name))
            .spawn(move || {
                let opened = open(&spec2, &path2, embedded, sha256);
                match opened {
                    Ok((segmenter, info)) => {
                        let batching = info.batching;
                        let _ = info_tx.send(Ok(info.clone()));
                        worker.run(segmenter, &info, batching, rx);
                    }
                    Err(e) => {
                        let _ = info_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| err(format!("cannot start its worker thread: {e}")))?;
        let info = info_rx
            .recv()
            .map_err(|_| err("its worker thread stopped while opening it".into()))?
            .map_err(err)?;
        ready.store(true, Ordering::SeqCst);
        Ok((
            Self {
                info,
                queue: tx,
                depth,
                ready,
            },
            handle,
        ))
    }

    /// Whether the model answers requests (false after its runtime panicked).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Requests waiting.
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }

    /// Runs `input` (`[n, C, H, W]`, checked by the caller) through the model, batched with
    /// other requests; 503 at once when the queue is full.
    pub async fn infer(&self, input: Array) -> Result<Array, ApiError> {
        if !self.is_ready() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("model '{}' is not ready", self.info.name),
            ));
        }
        let (reply, rx) = oneshot::channel();
        self.depth.fetch_add(1, Ordering::SeqCst);
        match self.queue.try_send(Job { input, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                return Err(ApiError::overloaded(&self.info.name, 1));
            }
            Err(TrySendError::Disconnected(_)) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("model '{}' has stopped", self.info.name),
                ));
            }
        }
        rx.await.unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("model '{}' dropped the request", self.info.name),
            ))
        })
    }
}

/// Opens the session and learns the model's facts by running it once.
fn open(
    spec: &ModelSpec,
    path: &std::path::Path,
    embedded: bool,
    sha256: String,
) -> Result<(Segmenter, ModelInfo), String> {
    let session = Session::open(path, &spec.session).map_err(|e| e.to_string())?;
    let file = session.file().cloned();
    let options = SegmenterOptions {
        size: spec.size,
        threshold: spec.threshold,
    };
    let mut segmenter = Segmenter::new(session, &options).map_err(|e| e.to_string())?;
    let plan = segmenter.plan();
    let Preprocess {
        height,
        width,
        channels,
    } = plan.pre;
    let warm = Array {
        shape: vec![1, channels, height, width],
        data: vec![0.0; channels * height * width],
    };
    let y = segmenter
        .session_mut()
        .run(&warm)
        .map_err(|e| format!("it does not run at {height}x{width}: {e}"))?;
    let classes = y.shape.get(1).copied().unwrap_or(1);
    let fixed_batch = file
        .as_ref()
        .is_some_and(|f| matches!(f.input.dims.first(), Some(ModelDim::Fixed(_))));
    let mut batching = spec.batching;
    batching.max_batch = if fixed_batch {
        1
    } else {
        batching.max_batch.max(1)
    };
    let activation = file
        .as_ref()
        .and_then(|f| f.activation())
        .map(|a| a.as_str())
        .unwrap_or(if classes == 1 { "sigmoid" } else { "softmax" });
    let info = ModelInfo {
        name: spec.name.clone(),
        path: path.to_path_buf(),
        embedded,
        sha256,
        input: file
            .as_ref()
            .map(|f| f.input.name.clone())
            .unwrap_or_else(|| "input".into()),
        output: file
            .as_ref()
            .map(|f| f.output.name.clone())
            .unwrap_or_else(|| "logits".into()),
        channels,
        size: (height, width),
        classes,
        activation,
        class_names: file
            .as_ref()
            .map(|f| f.metadata.class_names.clone())
            .unwrap_or_default(),
        runtime: segmenter.session().description(),
        provider: segmenter.session().provider(),
        batching,
        plan,
    };
    Ok((segmenter, info))
}

struct Worker {
    depth: Arc<AtomicUsize>,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn take(&self, rx: &Receiver<Job>, timeout: Option<Duration>) -> Result<Job, RecvTimeoutError> {
        let job = match timeout {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected)?,
            Some(t) => rx.recv_timeout(t)?,
        };
        self.depth.fetch_sub(1, Ordering::SeqCst);
        Ok(job)
    }

    /// Serves batches until every sender is gone (the server drained).
    fn run(&self, mut seg: Segmenter, info: &ModelInfo, batching: Batching, rx: Receiver<Job>) {
        let mut waiting: Option<Job> = None;
        loop {
            let first = match waiting.take() {
                Some(j) => j,
                None => match self.take(&rx, None) {
                    Ok(j) => j,
                    Err(_) => return,
                },
            };
            let started = Instant::now();
            let mut samples = first.input.shape[0];
            let mut batch = vec![first];
            while samples < batching.max_batch {
                let left = batching.max_delay.saturating_sub(started.elapsed());
                if left.is_zero() {
                    break;
                }
                match self.take(&rx, Some(left)) {
                    Ok(j) => {
                        let n = j.input.shape[0];
                        if j.input.shape[1..] == batch[0].input.shape[1..]
                            && samples + n <= batching.max_batch
                        {
                            samples += n;
                            batch.push(j);
                        } else {
                            waiting = Some(j);
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            // Requests whose client has gone are not run.
            batch.retain(|j| !j.reply.is_closed());
            if batch.is_empty() {
                continue;
            }
            self.run_batch(&mut seg, info, batch);
        }
    }

    fn run_batch(&self, seg: &mut Segmenter, info: &ModelInfo, batch: Vec<Job>) {
        let counts: Vec<usize> = batch.iter().map(|j| j.input.shape[0]).collect();
        let n: usize = counts.iter().sum();
        let input = if batch.len() == 1 {
            batch[0].input.clone()
        } else {
            let mut shape = batch[0].input.shape.clone();
            shape[0] = n;
            let mut data = Vec::with_capacity(batch.iter().map(|j| j.input.data.len()).sum());
            for j in &batch {
                data.extend_from_slice(&j.input.data);
            }
            Array { shape, data }
        };
        let t = Instant::now();
        let out = seg.session_mut().run(&input);
        self.metrics.batch(&info.name, n, t.elapsed().as_secs_f64());
        match out {
            Ok(y) if y.shape.first() == Some(&n) && n > 0 && y.data.len() % n == 0 => {
                let per = y.data.len() / n;
                let mut at = 0;
                for (job, c) in batch.into_iter().zip(counts) {
                    let mut shape = y.shape.clone();
                    shape[0] = c;
                    let data = y.data[at * per..(at + c) * per].to_vec();
                    at += c;
                    let _ = job.reply.send(Ok(Array { shape, data }));
                }
            }
            Ok(y) => {
                let e = ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "model '{}' returned shape {:?} for a batch of {n}",
                        info.name, y.shape
                    ),
                );
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                if matches!(
                    e,
                    RuntimeError::Panicked { .. } | RuntimeError::Poisoned { .. }
                ) {
                    self.ready.store(false, Ordering::SeqCst);
                }
                let e = ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("model '{}' failed: {e}", info.name),
                );
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
